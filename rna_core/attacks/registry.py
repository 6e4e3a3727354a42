"""The attack registry: every attack is declared once, in its loop's file, and everything that lists attacks reads
it (the spec checks and labels, the dispatch, the CLI grammar and help, the sanity flags, the parity and contract
tests).

- ``AttackKind``: one attack (``AttackSpec.name``): its loop ``run(oracle, x, y, spec, rng)``, its table label,
  whether it is minimum-norm (CW, DeepFool: its eps is an L2 budget on success), gradient-free (Square),
  targetable (a random other class) or draws a random start, what else it refuses (``check``), small
  ``examples`` the contract and parity tests run, and its forward passes (``cost``, for progress and estimates).
- ``Word``: one entry of the attack grammar of ``rna-core evaluate --attacks`` (``pgd:40``, ``autoattack``): the
  column label and the specs a word and its optional count stand for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..validation import ConfigError

KINDS: dict[str, AttackKind] = {}
WORDS: dict[str, Word] = {}


@dataclass(frozen=True)
class AttackKind:
    """``label``: the table label of a spec (``spec -> str``; EOT is appended by ``AttackSpec.label``); ``check``:
    raises ValueError for a spec the loop cannot run (beyond the common checks)."""

    name: str
    run: Callable[..., Any]
    label: Callable[[Any], str]
    minimum_norm: bool = False
    gradient_free: bool = False
    targetable: bool = False
    random_start: bool = False
    check: Callable[[Any], None] | None = None
    examples: dict[str, Callable[[], Any]] = field(default_factory=dict)
    cost: Callable[[Any], int] | None = None

    def forwards(self, spec: Any) -> int:
        """The forward passes one run of ``spec`` takes at most (a gradient counts one): ``cost(spec)``, by default
        steps x eot per restart, plus the restarts' checks; a progress bar's total."""
        once = self.cost(spec) if self.cost is not None else spec.steps * spec.eot
        return spec.restarts * once + (spec.restarts - 1) * spec.eot * 2


@dataclass(frozen=True)
class Word:
    """``build(eps, count)`` -> the specs of the column (``count`` None: the word alone); ``counted``: the word takes
    ``:count``; ``label(specs)`` the column's name."""

    word: str
    build: Callable[[float, int | None], list]
    help: str
    counted: bool = True
    label: Callable[[list], str] | None = None


def register_attack(kind: AttackKind, *words: Word) -> AttackKind:
    """Add ``kind`` (and its grammar ``words``) to the registry; a name is registered once."""
    if kind.name in KINDS:
        raise ValueError(f"attack {kind.name!r} is registered already")
    KINDS[kind.name] = kind
    for w in words:
        register_word(w)
    return kind


def register_word(word: Word) -> Word:
    if word.word in WORDS:
        raise ValueError(f"attack word {word.word!r} is registered already")
    WORDS[word.word] = word
    return word


def kind_of(name: str) -> AttackKind:
    if name not in KINDS:
        raise ValueError(f"unknown attack {name!r}; known: {tuple(KINDS)}")
    return KINDS[name]


def names(flag: str | None = None) -> tuple[str, ...]:
    """The registered attack names (with ``flag``: those whose kind sets it, e.g. ``minimum_norm``)."""
    return tuple(n for n, k in KINDS.items() if flag is None or getattr(k, flag))


def grammar_help() -> str:
    """The CLI's list of attack words."""
    return ", ".join(f"{w.word}[:n]" if w.counted else w.word for w in WORDS.values())


def parse_attack(text: str, eps: float = 8 / 255) -> tuple[str, list]:
    """A column name and its attacks from a grammar word, alone or as ``word:count`` (``pgd:40``, ``square:1000``;
    the words: ``grammar_help()``)."""
    name, sep, arg = text.strip().lower().partition(":")
    grammar = "name or name:count (a positive integer), e.g. pgd:40, square:1000"
    if sep and not (arg.isdigit() and int(arg) > 0):
        raise ConfigError(f"attack {text!r}: the count after ':' must be a positive integer ({grammar})")
    if name not in WORDS:
        raise ConfigError(f"unknown attack {text!r}; known: {sorted(WORDS)} ({grammar})")
    word = WORDS[name]
    if sep and not word.counted:
        raise ConfigError(f"attack {text!r}: {name} takes no count ({grammar})")
    specs = word.build(eps, int(arg) if sep else None)
    return (word.label(specs) if word.label else specs[0].label), specs
