"""Output paths made ready before any compute: a command that would fail to write its result fails first."""

from __future__ import annotations

import os
from pathlib import Path


def output_dir(path: str | Path, what: str) -> Path:
    """``path`` as a writable directory (created with its parents); else an OSError naming ``what`` and the path."""
    p = Path(path)
    blocker = next((a for a in (p, *p.parents) if a.exists() and not a.is_dir()), None)
    if blocker is not None:
        raise NotADirectoryError(f"{what} {p}: {blocker} is a file, not a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(e.errno, f"cannot create {what} {p}: {e.strerror}") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {p} is not writable")
    return p


def output_files(what: str, *paths: str | Path) -> tuple[Path, ...]:
    """Each of ``paths`` as a file that can be written (its directory made ready; not a directory itself)."""
    out = []
    for path in paths:
        p = Path(path)
        if p.is_dir():
            raise IsADirectoryError(f"{what} {p} is a directory, not a file")
        output_dir(p.parent, f"the directory of {what}")
        if p.exists() and not os.access(p, os.W_OK):
            raise PermissionError(f"{what} {p} is not writable")
        out.append(p)
    return tuple(out)
