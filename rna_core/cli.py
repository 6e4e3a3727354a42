"""Deprecated location of the ``rna-core`` command: ``rna_core.apps.cli`` (``python -m rna_core.apps.cli``, or the
``rna-core`` script). Kept so that ``python -m rna_core.cli`` and ``from rna_core.cli import main`` keep working."""

import sys
import warnings

from .apps.cli import main

warnings.warn("rna_core.cli moved to rna_core.apps.cli (python -m rna_core.apps.cli, or the rna-core script)",
              FutureWarning, stacklevel=2)

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
