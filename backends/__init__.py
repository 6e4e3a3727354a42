"""Framework backends (``rna_core.backends``); each subpackage imports its framework on first use only."""
