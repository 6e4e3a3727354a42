"""Training methods, one file each, registered by name (``register_method``): ``clean``, ``madry``, ``blackbox``
(RNA), ``ctrw`` (CTRW), ``sam``, ``apart`` and ``apart-sam`` (APART), ``trades`` (TRADES) and ``eot`` (EOT
adversarial training). A step is written once against ``Step``
(``base``) and the Backend's primitives; a new method is one file with no backend code (docs/architecture.md,
"Adding a training method")."""

from . import apart, blackbox, clean, ctrw, eot, madry, sam, trades
from .base import (
    METHODS,
    OPTIONS,
    Method,
    Step,
    StepResult,
    get_method,
    passes_per_image,
    register_method,
    take_step,
)

__all__ = ["METHODS", "OPTIONS", "Method", "Step", "StepResult", "apart", "blackbox", "clean", "ctrw", "eot",
           "get_method", "madry", "passes_per_image", "register_method", "sam", "take_step", "trades"]
