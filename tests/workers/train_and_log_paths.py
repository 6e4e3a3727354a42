"""Worker for the data-parallel tests: ``rna_core.train`` under a launcher (torchrun / msrun) or alone, logging
every path this process draws to OUT/paths-<rank>.json.

usage: train_and_log_paths.py BACKEND OUT RECIPE_JSON
"""

import json
import sys
from pathlib import Path

import rna_core
from rna_core.controller import DrawController


def main() -> None:
    backend, out, overrides = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
    seen: list[list[int]] = []
    draw = DrawController.next_draw

    def logged(self):
        d = draw(self)
        seen.append([int(v) for v in d.path])
        return d

    DrawController.next_draw = logged
    be = rna_core.get_backend("mindspore", mode="graph") if backend == "mindspore" else rna_core.get_backend(backend)
    rna_core.train("quick", be, out, progress=False, evaluate_at_end=False, **overrides)
    out.mkdir(parents=True, exist_ok=True)  # rank 0 creates it with its first checkpoint, maybe not yet
    (out / f"paths-{be.world().rank}.json").write_text(json.dumps(seen))


if __name__ == "__main__":
    main()
