"""The names of the evaluation's threat models and answer modes (``rna_core.evaluation`` runs them; recipes and the
CLI check them)."""

from __future__ import annotations

from collections.abc import Sequence

PROTOCOLS = ("paper", "adaptive", "oracle")
ALIASES = {"both": ("paper", "adaptive"), "all": PROTOCOLS}
ANSWER_MODES = ("per-batch", "per-example")


def parse_protocols(text: str | Sequence[str]) -> tuple[str, ...]:
    """``paper``, ``adaptive``, ``oracle``, joined with ``+`` (or a list), or ``both`` / ``all``."""
    items = ALIASES.get(text, text.split("+")) if isinstance(text, str) else tuple(text)
    bad = [p for p in items if p not in PROTOCOLS]
    if bad or not items:
        raise ValueError(f"protocol must be one or more of {PROTOCOLS} joined with '+', or one of "
                         f"{sorted(ALIASES)}; got {text!r}")
    return tuple(p for p in PROTOCOLS if p in items)
