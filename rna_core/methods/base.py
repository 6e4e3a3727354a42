"""What a training method is and what its step may use: ``Method`` (the registry's entry) and ``Step`` (one step's
classifier, optimizer, learning rate, recipe and attack stream, with the few operations every method composes).

Every pass runs on one draw taken at its start (``Step.draw``), in training mode; the core's losses
(``rna_core.losses``) and the Backend's primitives do the rest, so a method is written once for every backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..apart import BNPerturbation
from ..attacks import attack
from ..backend import PARAMS, Grad
from ..controller import Draw
from ..losses import Loss
from ..ops import T
from ..validation import UnknownKeyError

if TYPE_CHECKING:
    from ..classifier import Classifier


@dataclass
class StepResult:
    """A training step's mean loss and correct count: 0-d tensors of the backend left on its device, or Python
    numbers (``float()`` reads either; the training loop reads its running sums every ``log_every`` steps)."""

    loss: Any
    correct: Any
    count: int


@dataclass
class Step:
    """One training step's context: ``clf`` and its ``optimizer``, the step's learning rate ``lr``, the ``recipe``
    (a ``rna_core.recipes.Recipe``) and ``rng``, the attack stream (random starts of the training attack, APART's
    second-pass sample)."""

    clf: Classifier
    optimizer: Any
    recipe: Any
    rng: np.random.Generator
    lr: float

    @property
    def backend(self):
        return self.clf.backend

    @property
    def ops(self):
        return self.clf.backend.ops

    def frozen(self):
        """One fresh draw held for every forward of the block (``DrawController.frozen``)."""
        return self.clf.controller.frozen()

    def draw(self, bn: BNPerturbation | None = None) -> Draw:
        """The draw of the forward that starts now (the held one inside ``frozen``), with APART's ``bn``."""
        return self.clf.controller.next_draw().perturbed(bn)

    def tensor(self, a: np.ndarray | T) -> T:
        return self.ops.tensor(a) if isinstance(a, np.ndarray) else a

    def attack(self, x: np.ndarray, y: np.ndarray, spec: Any = None) -> T:
        """``spec``'s examples for (x, y) (default ``recipe.train_attack``), in training mode if
        ``recipe.attack_in_train_mode``, on the controller's current draws."""
        self.clf.model.set_train(self.recipe.attack_in_train_mode)
        return attack(self.backend, self.clf.model, self.tensor(x), self.tensor(y),
                      self.recipe.train_attack if spec is None else spec, self.rng)

    def gradient(self, loss: Loss, x: np.ndarray | T, y: np.ndarray, w: T | None = None,
                 bn: BNPerturbation | None = None, wrt: tuple[str, ...] = (PARAMS,)) -> Grad:
        """``loss`` on one forward (a fresh draw, or the held one) in training mode and its gradients; ``w`` the
        loss's per-example data (default: the labels); ``x`` may be a tuple of inputs (one loss of their
        logits)."""
        self.clf.model.set_train(True)
        xs = tuple(self.tensor(t) for t in x) if isinstance(x, tuple) else self.tensor(x)
        yb = self.tensor(y)
        return self.backend.value_and_grad(self.clf.model, loss, xs, yb, yb if w is None else w, self.draw(bn), wrt)

    def update(self, terms: list[tuple[float, Grad]]) -> None:
        """One optimizer step with sum_i w_i g_i at this step's learning rate."""
        self.backend.update(self.clf.model, self.optimizer, terms, self.lr)

    def result(self, grad: Grad, y: np.ndarray | T) -> StepResult:
        """The step's mean loss and correct count (on the device) from ``grad``'s pass."""
        ops = self.ops
        correct = ops.sum(ops.where(ops.argmax(grad.logits, 1) == self.tensor(y), 1.0, 0.0), 0)
        return StepResult(grad.loss, correct, len(y))

    def descend(self, loss: Loss, x: np.ndarray | T, y: np.ndarray) -> StepResult:
        """W <- W - lr grad_W loss on one forward: ``gradient`` then ``update``."""
        grad = self.gradient(loss, x, y)
        self.update([(1.0, grad)])
        return self.result(grad, y)

    @contextmanager
    def shifted(self, grad: Grad, scale: float) -> Iterator[None]:
        """Inside the block the parameters are w + ``scale`` g (``grad.params``; those without a gradient stay);
        on exit the saved values are written back exactly."""
        be, model = self.backend, self.clf.model
        saved = be.get_params(model)
        be.set_params(model, [w if g is None else w + scale * g for w, g in zip(saved, grad.params, strict=True)])
        try:
            yield
        finally:
            be.set_params(model, saved)

    def grad_norm(self, grad: Grad) -> float:
        """||g||_2 over every parameter with a gradient (one host read)."""
        ops = self.ops
        total = sum(ops.sum(g * g, tuple(range(g.ndim))) for g in grad.params if g is not None)
        return float(np.sqrt(ops.numpy(total)))


@dataclass(frozen=True)
class Method:
    """A training method: ``step(step: Step, x, y) -> StepResult`` on a (sharded) numpy batch; ``adversarial``: it
    trains on ``recipe.train_attack``'s examples (the recipe must give one); ``options``: the frozen dataclasses of
    its recipe keys (each with a ``section`` name; their fields are recipe keys, checked in their
    ``__post_init__``, every recipe holds every registered section); ``check(recipe)`` raises ``ConfigError`` for
    recipe keys the method cannot run with (None: it runs with any); ``passes(recipe)``: forward-backward passes
    per training image of one step (None: the training attack's steps + 1 if ``adversarial``, else 1)."""

    name: str
    step: Callable[[Step, np.ndarray, np.ndarray], StepResult]
    adversarial: bool = False
    options: tuple[type, ...] = ()
    check: Callable[[Any], None] | None = None
    passes: Callable[[Any], float] | None = None


def passes_per_image(recipe) -> float:
    """Forward-backward passes per training image of one step of ``recipe.method``: a training cost to compare
    methods at."""
    method = get_method(recipe.method)
    if method.passes is not None:
        return method.passes(recipe)
    return recipe.train_attack.steps + 1 if method.adversarial else 1


METHODS: dict[str, Method] = {}
OPTIONS: dict[str, type] = {}  # section name -> the options dataclass of the registered methods


def register_method(method: Method) -> Method:
    """Add ``method`` to ``METHODS`` (and its options' sections); ``recipe.method`` may then name it
    (``rna_core.train(method=...)``) and recipes take its keys."""
    if method.name in METHODS:
        raise ValueError(f"training method {method.name!r} is registered already")
    for options in method.options:
        if OPTIONS.setdefault(options.section, options) is not options:
            raise ValueError(f"options section {options.section!r} is registered already")
    METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise UnknownKeyError(f"unknown training method {name!r}; known: {sorted(METHODS)}")
    return METHODS[name]


def take_step(clf: Classifier, optimizer: Any, method: str, x: np.ndarray, y: np.ndarray, recipe: Any,
              rng: np.random.Generator, lr: float) -> StepResult:
    """One step of the registered ``method`` (what ``rna_core.train`` runs for every batch)."""
    return get_method(method).step(Step(clf, optimizer, recipe, rng, lr), x, y)
