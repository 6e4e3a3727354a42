"""Build the API reference from the docstrings: ``python docs/api.py OUT`` writes ``OUT/index.html`` and one page
per module of ``rna_core`` (backends and models included) with pdoc. ``tox -e docs`` runs it with both frameworks
installed; a module that fails to import fails the build (pdoc raises for a module it is given by name)."""

from __future__ import annotations

import pkgutil
import sys
import warnings
from pathlib import Path

import pdoc

import rna_core

SKIPPED = {"rna_core.cli"}  # the deprecated location of rna_core.apps.cli (__main__ modules run the command)


def modules() -> list[str]:
    """Every module and package under ``rna_core`` (installed: backends and models are mapped in). Listed one by one:
    pdoc walks only the submodules a package's ``__all__`` names."""
    found = (m.name for m in pkgutil.walk_packages(rna_core.__path__, "rna_core."))
    return ["rna_core", *sorted(m for m in found if not m.endswith(".__main__") and m not in SKIPPED)]


def main(out: str) -> int:
    warnings.filterwarnings("ignore", message=".*a module with this name has already been added")  # walked twice
    pdoc.render.configure(docformat="markdown", footer_text=f"rna-core {rna_core.__version__}", show_source=True)
    pdoc.pdoc(*modules(), output_directory=Path(out))
    pages = list(Path(out).glob("**/*.html"))
    print(f"API reference: {len(pages)} pages in {out} (open {Path(out) / 'index.html'})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "docs/_build/api"))
