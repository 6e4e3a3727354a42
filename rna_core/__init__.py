"""rna-core: randomized and adversarial defenses of image classifiers (RNA, CTRW, APART).

The core is numpy only; ``import rna_core`` never imports torch or mindspore. A framework loads when a
backend is asked for: ``rna_core.train(backend="torch")`` or ``rna_core.get_backend("torch")``.
"""

from .attacks import AttackSpec, pgd
from .backend import Backend, Capabilities, SGDConfig
from .controller import PathController
from .norms import NormSpec, parse_norms
from .paths import PathSpace
from .recipes import RECIPES, Recipe, get_recipe
from .registry import available_backends, get_backend
from .training import TrainResult, evaluate_checkpoint, train

__version__ = "0.1.0"

__all__ = ["RECIPES", "AttackSpec", "Backend", "Capabilities", "NormSpec", "PathController", "PathSpace", "Recipe",
           "SGDConfig", "TrainResult", "available_backends", "evaluate_checkpoint", "get_backend", "get_recipe",
           "parse_norms", "pgd", "train"]
