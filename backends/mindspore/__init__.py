"""MindSpore backend (``rna_core.backends.mindspore``). mindspore is imported by the submodules, not here."""
