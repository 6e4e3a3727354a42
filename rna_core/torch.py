"""PyTorch entry points for a user's own model; importing this module imports torch (``import rna_core`` does not).

``randomize(module, norms="bn+in")`` turns a module's BatchNorm layers into RNA slots (``backends/torch/own_model.py``);
``rna_core.train(..., model=module)`` and ``rna_core.evaluate(module, data, ...)`` take any classifier module.
"""

from .backends.torch.own_model import randomize

__all__ = ["randomize"]
