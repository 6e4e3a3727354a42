"""Regenerate the command outputs and timings the README and the docs pages print, so that every such table is the
command's output on the current code (``python docs/regenerate.py``, from the repository root).

Two kinds of block, found in ``README.md`` and ``docs/*.md``:

- ``<!-- output: CMD -->`` ... ``<!-- /output -->``: CMD's standard output, then a line naming how long it took,
  on what machine and software, at which revision;
- ``<!-- times -->`` ... ``<!-- /times -->``: a table whose rows start with a command in backticks; each is run and
  its time written in the row's last cell, the machine under the table.

Commands run in document order in one working directory (default: a fresh temporary one; ``--workdir`` names
another), holding links to the checkout's ``docs/``, ``benchmarks/`` and ``ascend/``, so a later command finds
the runs an earlier one trained.
``--only TEXT`` (repeatable) runs the blocks whose command contains TEXT; ``--check`` writes nothing and exits 1
where an output differs from the page (the timing lines aside); ``--list`` prints the blocks.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
OUTPUT = re.compile(r"<!-- output: (?P<cmd>.+?) -->\n(?P<body>.*?)<!-- /output -->", re.S)
TIMES = re.compile(r"<!-- times -->\n(?P<body>.*?)<!-- /times -->", re.S)
ROW = re.compile(r"^\| `(?P<cmd>[^`]+)` \|(?P<rest>.*)\|\s*$")
MEASURED = "_Measured: "


@dataclass
class Block:
    page: str
    kind: str  # "output" or "times"
    commands: list[str]
    span: tuple[int, int]


def blocks(page: str) -> list[Block]:
    """The blocks of ``page``, in order."""
    text = (ROOT / page).read_text()
    found = [Block(page, "output", [m["cmd"]], m.span("body")) for m in OUTPUT.finditer(text)]
    for m in TIMES.finditer(text):
        rows = [r["cmd"] for line in m["body"].splitlines() if (r := ROW.match(line))]
        found.append(Block(page, "times", rows, m.span("body")))
    return sorted(found, key=lambda b: b.span)


def machine() -> str:
    """This machine and software in a few words: CPU model and core count, torch, rna-core's revision."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    try:
        import torch

        software = f"torch {torch.__version__}"
    except ImportError:
        software = "no torch"
    return (f"{len(os.sched_getaffinity(0))}-core {cpu}, {software}, rna-core {rev.strip() or '?'}"
            + (" with local changes" if dirty else ""))


def run(command: str, workdir: Path) -> tuple[str, float]:
    """(standard output, seconds) of ``command`` run by the shell in ``workdir``; a failure stops the script."""
    print(f"$ {command}", file=sys.stderr)
    start = time.perf_counter()
    done = subprocess.run(command, shell=True, cwd=workdir, stdout=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1) or (done.returncode == 1 and not command.startswith("rna-core sanity")):
        sys.exit(f"failed ({done.returncode}): {command}")
    return done.stdout.rstrip("\n"), seconds


def duration(seconds: float) -> str:
    """``53 s``, or ``2 min 00 s`` from 90 s on (rounded to the second first, so never ``1 min 60 s``)."""
    whole = round(seconds)
    return f"{whole} s" if whole < 90 else f"{whole // 60} min {whole % 60:02d} s"


def render(block: Block, body: str, workdir: Path, where: str) -> str:
    """The block's new body (``body``: its current one)."""
    if block.kind == "output":
        out, seconds = run(block.commands[0], workdir)
        return f"{out}\n\n{MEASURED}`{block.commands[0]}` took {duration(seconds)} on {where}._\n"
    lines = []
    for line in body.splitlines():
        row = ROW.match(line)
        if row:
            cells = row["rest"].split("|")[:-1]
            _, seconds = run(row["cmd"], workdir)
            line = f"| `{row['cmd']}` |" + "|".join([*cells, f" {duration(seconds)} "]) + "|"
        elif line.startswith(MEASURED):
            line = f"{MEASURED}on {where}._"
        lines.append(line)
    return "\n".join(lines) + "\n"


def comparable(body: str) -> str:
    """A body without its timings: what ``--check`` compares."""
    kept = [line for line in body.splitlines() if not line.startswith(MEASURED)]
    return "\n".join(re.sub(r"\| [0-9]+ (min [0-9]+ )?s \|$", "| |", line) for line in kept).strip()


def workspace(path: str | None) -> Path:
    """The working directory (made if needed), with links to the checkout's docs/, benchmarks/ and ascend/."""
    work = Path(path).resolve() if path else Path(tempfile.mkdtemp(prefix="rna-core-regenerate-"))
    work.mkdir(parents=True, exist_ok=True)
    for name in ("docs", "benchmarks", "ascend"):
        if not (work / name).exists():
            (work / name).symlink_to(ROOT / name)
    return work


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", action="append", default=None,
                   help="run only the blocks whose command contains this text (repeatable)")
    p.add_argument("--check", action="store_true", help="compare, write nothing; exit 1 on a difference")
    p.add_argument("--list", action="store_true", help="print the blocks and their commands")
    p.add_argument("--workdir", default=None, help="where the commands run (default: a fresh temporary directory)")
    args = p.parse_args(argv)
    chosen = [b for page in PAGES for b in blocks(page)
              if args.only is None or any(t in c for t in args.only for c in b.commands)]
    if args.list:
        for b in chosen:
            print(f"{b.page} [{b.kind}]: " + " ; ".join(b.commands))
        return 0
    workdir, where, differ = workspace(args.workdir), machine(), []
    print(f"working in {workdir} on {where}", file=sys.stderr)
    for b in chosen:
        page = ROOT / b.page
        text = page.read_text()  # as the blocks before this one left it
        old = next(x for x in blocks(b.page) if x.commands == b.commands and x.kind == b.kind)
        new = render(b, text[slice(*old.span)], workdir, where)
        if comparable(text[slice(*old.span)]) != comparable(new):
            differ.append(f"{b.page}: {shlex.join(b.commands[:1])}")
        if not args.check:
            page.write_text(text[:old.span[0]] + new + text[old.span[1]:])
    print("\n".join(["differs from the page:", *differ]) if differ else "every block matches", file=sys.stderr)
    return 1 if args.check and differ else 0


if __name__ == "__main__":
    sys.exit(main())
