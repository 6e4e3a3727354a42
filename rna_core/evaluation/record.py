"""What an evaluation has answered so far, and its copy on disk (``docs/architecture.md``).

An evaluation runs column by column (the clean answers, then each attack column over every batch), so each
finished column is a result. ``Record`` holds the per-example answer matrices, forward counts and distances;
``Passes`` reads the data once per column and refuses data that changed between passes (a loader that shuffles or
augments would pair one column's answers with another's examples); ``Store`` keeps the record in a directory after
every finished column: ``evaluation.safetensors`` (the answer matrices) and then ``evaluation.json`` (the settings,
the columns done, the scores so far, the random streams' states), each written atomically, the JSON last: it names
what is complete. A killed evaluation keeps every finished column; run again with the same settings in the same
directory, it restores them and the random streams, continues with the next column and ends with the numbers of an
uninterrupted run. Other settings, or other data, in the same directory are refused by name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoints import atomic_write
from ..data.inputs import iterate
from .threats import Tally

STATE, ANSWERS = "evaluation.json", "evaluation.safetensors"


@dataclass
class Record:
    """Per member key (``clean``, ``<col>/<member>``) the (N, R) answer matrices of its specs over every example;
    the forward and distance tallies; each example's draw cluster; each batch's (labels, image sum) mark; the
    columns done, in order."""

    answers: dict[str, list[np.ndarray]] = field(default_factory=dict)
    tally: Tally = field(default_factory=Tally)
    clusters: np.ndarray | None = None
    marks: list[tuple[np.ndarray, float]] | None = None
    done: list[str] = field(default_factory=list)

    def labels(self) -> np.ndarray:
        """Every example's label, in the answers' row order (from the batches' marks)."""
        return np.concatenate([y for y, _ in self.marks]).astype(np.int64)

    def add(self, per_batch: list[dict[str, list[np.ndarray]]]) -> None:
        """One column's answers, batch by batch, joined over the batches."""
        for key in per_batch[0]:
            self.answers[key] = [np.concatenate([found[key][i] for found in per_batch])
                                 for i in range(len(per_batch[0][key]))]


class Passes:
    """The batches of ``source``, read once per pass; every pass must read the examples of the first (or of the
    saved ``marks``) in the same order."""

    def __init__(self, source: Any, batch_size: int, record: Record, where: str = "the first pass") -> None:
        self.source, self.batch_size, self.record, self.where = source, batch_size, record, where

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        marks, seen = self.record.marks, []
        for b, (x, y) in enumerate(iterate(self.source, self.batch_size)):
            mark = (y, float(x.sum(dtype=np.float64)))
            if marks is not None and (b >= len(marks) or not _same(mark, marks[b])):
                self._changed(f"batch {b + 1} holds other images or labels")
            seen.append(mark)
            yield x, y
        if marks is None:
            self.record.marks = seen
        elif len(seen) != len(marks):
            self._changed(f"it gave {len(seen)} batches, not {len(marks)}")

    def _changed(self, what: str) -> None:
        raise ValueError(f"the data changed between passes ({what} than on {self.where}): an evaluation reads the "
                         "data once for the clean answers and once per attack, so a loader must not shuffle or "
                         "augment (shuffle=False, no random transforms)")


def _same(a: tuple[np.ndarray, float], b: tuple[np.ndarray, float]) -> bool:
    return a[0].shape == b[0].shape and bool((a[0] == b[0]).all()) and a[1] == b[1]


class Store:
    """The record of an evaluation with ``settings`` (JSON), kept in ``directory``."""

    def __init__(self, directory: str | Path, settings: dict) -> None:
        self.dir, self.settings = Path(directory), json.loads(json.dumps(settings))

    def load(self, record: Record, streams: tuple[np.random.Generator, ...]) -> bool:
        """Fill ``record`` and the random ``streams`` from the directory; False if it holds no evaluation."""
        path = self.dir / STATE
        if not path.is_file():
            return False
        try:
            saved = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is not an evaluation record ({e}): delete it or give another directory") from e
        other = {k for k in self.settings.keys() | saved.get("settings", {}).keys()
                 if self.settings.get(k) != saved.get("settings", {}).get(k)}
        if other:
            raise ValueError(f"{self.dir} holds an evaluation with other settings ({', '.join(sorted(other))}): give "
                             "another directory, or delete it to start afresh")
        from safetensors.numpy import load_file

        arrays = load_file(str(self.dir / ANSWERS))
        record.done = list(saved["done"])
        record.answers = {k: [arrays[f"answers/{k}/{i}"] for i in range(n)] for k, n in saved["answers"].items()}
        record.tally.forwards = dict(saved["forwards"])
        record.tally.dists = {k: [arrays[f"dists/{k}"]] for k in saved["dists"]}
        record.clusters = arrays["clusters"]
        ends = np.cumsum(saved["batch_sizes"])
        record.marks = [(arrays["labels"][e - n:e], s)
                        for e, n, s in zip(ends, saved["batch_sizes"], saved["sums"], strict=True)]
        for stream, state in zip(streams, saved["streams"], strict=True):
            stream.bit_generator.state = state
        return True

    def save(self, record: Record, streams: tuple[np.random.Generator, ...], metrics: dict, complete: bool) -> None:
        """The record after a finished column: arrays first, then the JSON that names them."""
        from safetensors.numpy import save

        self.dir.mkdir(parents=True, exist_ok=True)
        arrays = {f"answers/{k}/{i}": np.ascontiguousarray(m) for k, ms in record.answers.items()
                  for i, m in enumerate(ms)}
        arrays.update({f"dists/{k}": np.concatenate(v) for k, v in record.tally.dists.items()})
        arrays["clusters"] = np.asarray(record.clusters, np.int64)
        arrays["labels"] = record.labels()
        atomic_write(self.dir / ANSWERS, save(arrays))
        state = {"settings": self.settings, "complete": complete, "done": record.done,
                 "answers": {k: len(v) for k, v in record.answers.items()}, "forwards": record.tally.forwards,
                 "dists": list(record.tally.dists), "batch_sizes": [len(y) for y, _ in record.marks],
                 "sums": [s for _, s in record.marks], "streams": [s.bit_generator.state for s in streams],
                 "metrics": metrics}
        atomic_write(self.dir / STATE, json.dumps(state, indent=1, default=_plain).encode())


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"{type(v).__name__} is not JSON")
