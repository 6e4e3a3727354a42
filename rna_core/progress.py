"""Progress of long work as a user watching it needs it (``docs/architecture.md``): a bar in forward passes that
every attack iteration and every answer moves (tqdm's rate gives the time left), and, before the work starts, an
estimate: the passes it will take at most x the seconds one pass takes, measured on the work's own first batch.
``progress=False`` (the command's ``--quiet``) silences both.

A pass is one forward of a batch, a gradient counting one (the unit of ``AttackKind.forwards``); the measured
rate is that of one input-gradient pass, what an attack step costs, so the estimate is an upper bound where the
work is mostly answers (forwards without a backward).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np
from tqdm.auto import tqdm


def duration(seconds: float) -> str:
    """``seconds`` as a person reads it: 40 s, 3.5 min, 1.2 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def pass_seconds(clf: Any, images: np.ndarray, repeats: int = 2) -> float:
    """Seconds of one input-gradient pass of ``clf`` on ``images`` (float32 N x C x H x W): the fastest of
    ``repeats`` after one warm-up (a compiled program's first call compiles). The draws come from a throwaway
    Generator and the model is in eval mode, so the work's own random numbers and statistics are untouched."""
    ops = clf.backend.ops
    x, y = ops.tensor(np.ascontiguousarray(images, np.float32)), ops.tensor(np.zeros(len(images), np.int64))
    times = []
    with clf.controller.seeded(np.random.default_rng(0)), clf.evaluating():
        for i in range(repeats + 1):
            start = time.perf_counter()
            clf.input_gradient(x, y)  # returns host numbers: the device has finished
            if i:
                times.append(time.perf_counter() - start)
    return min(times)


def estimate(what: str, passes: int, seconds: float | None, images: int) -> str:
    """The line printed before long work: its passes and, with a measured ``seconds`` per pass, the time."""
    text = f"rna-core {what}: about {passes:,} passes of {images} images"
    if seconds is None:
        return text + "; the bar gives the time left once it has measured the rate"
    return text + (f", about {duration(passes * seconds)} at {seconds:.3g} s per gradient pass (measured on the "
                   "first batch; answers cost less)")


@contextmanager
def forward_bar(models: Any | Sequence[Any], total: int | None, what: str, progress: bool,
                probe: np.ndarray | None = None, initial: int = 0) -> Iterator[tqdm]:
    """A bar of ``total`` passes over the forwards of ``models`` (classifiers: every draw their controllers hand
    out moves it), the estimate printed first when ``progress`` (measured on ``probe``, the first batch, if
    given). Work nested inside with ``progress=False`` moves this bar."""
    models = list(models) if isinstance(models, list | tuple) else [models]
    if progress and total:
        seconds = pass_seconds(models[0], probe) if probe is not None and len(probe) else None
        left = total - initial
        print(estimate(what, left, seconds, len(probe) if probe is not None else 0), file=sys.stderr)
    bar = tqdm(total=total or None, initial=initial, desc=what, unit="pass", disable=not progress, leave=False,
               smoothing=0.05, file=sys.stderr)
    with ExitStack() as stack:
        for clf in {id(m.controller): m for m in models}.values():
            stack.enter_context(clf.controller.observe(lambda _: bar.update(1)))
        try:
            yield bar
        finally:
            bar.close()
