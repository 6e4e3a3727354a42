"""The README and the docs pages hold together: every page they link exists, every command whose output or time
they print (``docs/regenerate.py``'s blocks) is one the command line accepts, and each has been run (its block
holds an output and the machine it was measured on)."""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path

import pytest

from rna_core.apps.cli import parser

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _regenerate():
    spec = importlib.util.spec_from_file_location("regenerate", ROOT / "docs" / "regenerate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["regenerate"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_linked_page_exists(page):
    for target in re.findall(r"\]\(([^)#]+\.md)\)", page.read_text()):
        assert (page.parent / target).is_file(), f"{page.name} links {target}, which does not exist"


def test_every_printed_command_parses_and_has_been_run():
    regenerate = _regenerate()
    found = [b for page in regenerate.PAGES for b in regenerate.blocks(page)]
    commands = [c for b in found for c in b.commands]
    assert {f"rna-core compare --recipe {r} --quiet" for r in ("smoke", "quick")} <= set(commands)
    for command in commands:
        words = shlex.split(command)
        if words[0] == "rna-core":
            parser().parse_args(words[1:])  # an unknown flag or value exits here
        else:
            assert (ROOT / words[1]).is_file(), command
    for b in found:
        body = (ROOT / b.page).read_text()[slice(*b.span)]
        assert regenerate.MEASURED in body and "not yet" not in body, f"{b.page}: {b.commands[0]} was never run"


def test_the_readme_methods_table_is_made_from_the_committed_cells():
    """The README's table of ``rna-core study-methods`` is ``--cached``'s table of the cells in docs/study-methods
    (each cell's JSON: its settings, scores and eps curve), for the default methods and seeds 0, 1, 2."""
    from rna_core.apps import methods_study

    settings = methods_study.settings_of("torch", {}, 500, 200, 10)
    _, table = methods_study.tabulate(ROOT / "docs" / "study-methods", list(methods_study.DEFAULT), [0, 1, 2],
                                      settings)
    assert table in (ROOT / "README.md").read_text()
