"""Backend selection: RNA_TEST_BACKENDS=torch,mindspore (default: every installed framework).

Test folders of unselected backends are not collected, so their frameworks are never imported."""

from __future__ import annotations

import importlib.util
import os

KNOWN = ("torch", "mindspore")


def selected_backends() -> set[str]:
    env = os.environ.get("RNA_TEST_BACKENDS")
    if env is None:
        return {b for b in KNOWN if importlib.util.find_spec(b) is not None}
    return {b.strip() for b in env.split(",") if b.strip() in KNOWN}


collect_ignore_glob = [f"{b}/*" for b in KNOWN if b not in selected_backends()]
if {"torch", "mindspore"} - selected_backends():
    collect_ignore_glob.append("parity/*")
