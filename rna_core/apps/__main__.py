"""``python -m rna_core.apps``: the ``rna-core`` command."""

import sys

from .cli import main

sys.exit(main())
