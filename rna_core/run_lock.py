"""An exclusive lock on a run directory, so two processes never train into the same ``--out``.

``fcntl.flock`` on ``<run>/.lock`` (released by the kernel when the holder dies, so a killed run never leaves a
stale lock); the holder's PID is written into the file for the error message of the next process.
"""

from __future__ import annotations

import os
from pathlib import Path


class RunLocked(RuntimeError):
    """Another live process trains into this run directory."""


class RunLock:
    """``with RunLock(run_dir):`` holds the directory's lock for the block (a no-op where flock is missing)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / ".lock"
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return self
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(self.fd)
            self.fd = None
            raise RunLocked(f"{self.path.parent} is in use by another training process (PID {holder}); wait for "
                            "it or choose another out_dir") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing releases the flock
            self.fd = None
