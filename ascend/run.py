"""The task script msrun and the rank-table launcher start on every device: the ``rna-core`` command line
(``run.py train --backend mindspore ...``), so each worker runs ``rna_core.train`` in the data-parallel world."""

import sys

from rna_core.apps.cli import main

if __name__ == "__main__":
    sys.exit(main())
