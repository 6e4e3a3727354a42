"""PyTorch backend (``rna_core.backends.torch``). torch is imported by the submodules, not here."""
