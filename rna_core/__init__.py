"""rna-core: randomized and adversarial defenses of image classifiers (RNA, CTRW, APART).

The core is numpy only; ``import rna_core`` never imports torch or mindspore. A framework loads when a
backend is asked for: ``rna_core.train(backend="torch")`` or ``rna_core.get_backend("torch")``.
"""

from .attacks import AttackSpec, pgd
from .backend import Backend, SGDConfig
from .classifier import Classifier, build_classifier, load_classifier
from .controller import Draw, DrawController
from .evaluation import evaluate
from .norms import NormSpec, parse_norms
from .paths import PathSpace
from .recipes import RECIPES, Recipe, get_recipe
from .registry import available_backends, get_backend
from .runs import evaluate_checkpoint, load_run
from .training import TrainResult, train

__version__ = "0.1.0"

__all__ = ["RECIPES", "AttackSpec", "Backend", "Classifier", "Draw", "DrawController", "NormSpec", "PathSpace",
           "Recipe", "SGDConfig", "TrainResult", "available_backends", "build_classifier", "evaluate",
           "evaluate_checkpoint", "get_backend", "get_recipe", "load_classifier", "load_run", "parse_norms", "pgd",
           "train"]
