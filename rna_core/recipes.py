"""Training recipes: every hyper-parameter of a run in one frozen, JSON-serialisable record, in sections.

``paper-*`` recipes carry the published defaults (RNA Sec. 5.1); ``quick`` runs on the bundled data
in minutes on a CPU. Override any key with ``recipe.replace(**{"train_attack.steps": 5})``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .attacks import AttackSpec, pgd
from .methods import METHODS, OPTIONS
from .recipe_keys import (
    SECTIONS,
    AttackKeys,
    DataKeys,
    EvaluationKeys,
    ModelKeys,
    OptimizerKeys,
    RunKeys,
    SpeedKeys,
)
from .validation import ConfigError, UnknownKeyError, check_choice, check_range, check_types


def _default_options() -> dict[str, Any]:
    return {name: cls() for name, cls in OPTIONS.items()}


@dataclass(frozen=True)
class Recipe:
    """A run: ``name``, ``seed``, the training ``method`` (a registered one: ``clean`` (no attack), ``madry``
    (white-box PGD AT: the attack and the update use the same path), ``blackbox`` (RNA Algorithm 1: attack path
    p_a held for all PGD steps, a fresh path p for the update), ``ctrw`` (CTRW Algorithm 1), ``sam``, ``apart``,
    ``apart-sam``; ``rna_core.methods``) and the sections ``data``, ``model``, ``optimizer``, ``attack``,
    ``evaluation``, ``speed``, ``run`` (``rna_core.recipe_keys``) and ``options``: the keys the registered methods
    declare, by section (``ctrw``: sigma_lower, sigma_upper, sigma_constraint; ``sam``: sam_rho; ``apart``:
    apart_eps, apart_ratio, apart_groups).

    Every key keeps a flat name, unique across sections, for reading (``recipe.lr`` is ``recipe.optimizer.lr``),
    ``replace`` / ``get_recipe`` / ``rna_core.train(..., key=value)`` / ``--set key=value`` (dotted keys reach into
    attack specs: ``train_attack.steps``) and ``from_dict``, which takes the sectioned dict ``to_dict`` writes and
    the flat one of earlier sidecars. A "standard" run is method ``clean``; its 2x budget doubles ``epochs``
    (milestones are fractions, so the decay epochs double too)."""

    name: str = "custom"
    method: str = "blackbox"
    seed: int = 0
    data: DataKeys = field(default_factory=DataKeys)
    model: ModelKeys = field(default_factory=ModelKeys)
    optimizer: OptimizerKeys = field(default_factory=OptimizerKeys)
    attack: AttackKeys = field(default_factory=AttackKeys)
    evaluation: EvaluationKeys = field(default_factory=EvaluationKeys)
    speed: SpeedKeys = field(default_factory=SpeedKeys)
    run: RunKeys = field(default_factory=RunKeys)
    options: dict[str, Any] = field(default_factory=_default_options)

    def __post_init__(self) -> None:
        """The keys' types and ranges are checked by each section; here what spans sections."""
        check_types(self, "recipe key")
        check_range("recipe key", "seed", self.seed, 0)
        check_choice("recipe key", "method", self.method, tuple(METHODS))
        missing = {k: cls() for k, cls in OPTIONS.items() if k not in self.options}  # registered since
        if missing:
            object.__setattr__(self, "options", {**self.options, **missing})
        if self.model.random_weight is False and self.method == "ctrw":
            raise ConfigError("recipe key 'random_weight' is false, but method 'ctrw' trains the random weight")
        method = METHODS[self.method]
        if self.attack.train_attack is None and method.adversarial:
            raise ConfigError(f"recipe key 'train_attack' is null, but method {self.method!r} trains on attacks")
        if method.check is not None:
            try:
                method.check(self)
            except ConfigError:
                raise
            except ValueError as e:
                raise ConfigError(f"method {self.method!r}: {e}") from None

    def __getattr__(self, key: str) -> Any:
        """The flat view: a key of any section (called only for names that are not fields)."""
        where = _locations().get(key)
        if where is None or key.startswith("__"):
            raise AttributeError(f"{type(self).__name__} has no key {key!r}")
        section, _ = where
        if section.startswith(":"):
            holder = self.options.get(section[1:]) or OPTIONS[section[1:]]()
        else:
            holder = object.__getattribute__(self, section)
        return getattr(holder, key)

    @property
    def with_random_weight(self) -> bool:
        """Whether the model carries CTRW's random weight: ``random_weight``, or (null) method ``ctrw``."""
        rw = self.model.random_weight
        return self.method == "ctrw" if rw is None else rw

    @property
    def eval_attacks(self) -> list[AttackSpec]:
        """The final evaluation's attacks: ``eval_attack``, or none."""
        return [] if self.evaluation.eval_attack is None else [self.evaluation.eval_attack]

    def replace(self, **overrides) -> Recipe:
        """A copy with ``overrides`` (flat keys; dotted keys reach into attack specs: ``train_attack.steps``)."""
        where = _locations()
        changes: dict[str, dict[str, Any]] = {}
        for key, value in overrides.items():
            head, _, sub = key.partition(".")
            if head not in where:
                raise UnknownKeyError(f"unknown recipe key {key!r}; valid keys: {sorted(where)}")
            section, _ = where[head]
            if sub:
                spec = getattr(self, head)
                if not dataclasses.is_dataclass(spec) or sub not in {f.name for f in fields(spec)}:
                    raise UnknownKeyError(f"unknown recipe key {key!r}")
                value = dataclasses.replace(changes.get(section, {}).get(head, spec), **{sub: value})
            elif isinstance(value, dict) and head.endswith("attack"):
                value = AttackSpec.from_dict(value, f"recipe key {head!r}")
            changes.setdefault(section, {})[head] = value
        top = changes.pop("", {})
        options = dict(self.options)
        for section, keys in changes.items():
            if section.startswith(":"):
                group = section[1:]  # a recipe built before the method registered has its defaults
                options[group] = dataclasses.replace(options.get(group) or OPTIONS[group](), **keys)
            else:
                top[section] = dataclasses.replace(getattr(self, section), **keys)
        return dataclasses.replace(self, **top, options=options)

    def flat(self) -> dict[str, Any]:
        """Every key by its flat name (JSON-able: attack specs as dicts)."""
        return {key: _plain(getattr(self, key)) for key in _locations()}

    def to_dict(self) -> dict:
        """The sectioned record (what the sidecars hold)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Recipe:
        """A recipe from ``to_dict``'s record, or from the flat one of the sidecars before sections (whose
        ``image_size`` 224, the old default, means the data's own size for a data set other than an image folder)."""
        flat = {}
        for key, value in d.items():
            if key in SECTIONS or key == "options":
                if not isinstance(value, dict):
                    raise ConfigError(f"recipe section {key!r} must be a mapping, got {value!r}")
                for sub in (value.values() if key == "options" else (value,)):
                    flat.update(sub)
            else:
                flat[key] = value
        if flat.get("image_size") == 224 and flat.get("dataset") != "imagefolder":
            flat["image_size"] = None
        unknown = set(flat) - set(_locations())
        if unknown:
            raise UnknownKeyError(f"unknown recipe keys {sorted(unknown)}")
        return cls().replace(**flat)


def saved_recipe(meta: dict, where: str | Path) -> Recipe:
    """The recipe a checkpoint's sidecar holds, checked as any recipe is; an invalid one is a ConfigError naming
    ``where`` (the checkpoint) and the key."""
    try:
        return Recipe.from_dict(meta["recipe"])
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{where}: the checkpoint's recipe is invalid: {e}") from None


def _plain(value: Any) -> Any:
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


@functools.cache
def _locations_of(registered: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    out = {"name": ("", "name"), "method": ("", "method"), "seed": ("", "seed")}
    for section, cls in SECTIONS.items():
        out.update({f.name: (section, f.name) for f in fields(cls)})
    for section in registered:
        out.update({f.name: (f":{section}", f.name) for f in fields(OPTIONS[section])})
    return out


def _locations() -> dict[str, tuple[str, str]]:
    """Flat key -> (section, key): "" for the recipe's own fields, ":<name>" for a method options section (for
    the methods registered now)."""
    return _locations_of(tuple(OPTIONS))


def recipe(**keys) -> Recipe:
    """A recipe from the defaults and flat ``keys``."""
    return Recipe().replace(**keys)


def lr_at(recipe: Recipe, epoch: int, step_in_epoch: int, steps_per_epoch: int) -> float:
    """Learning rate of an iteration. piecewise: lr * gamma^k, k = #milestones m with epoch >= m * epochs
    (torch MultiStepLR stepped per epoch); cosine: lr_min + (lr - lr_min)(1 + cos(pi t / T)) / 2 per iteration."""
    if recipe.schedule == "constant":
        return recipe.lr
    if recipe.schedule == "piecewise":
        k = sum(epoch >= m * recipe.epochs for m in recipe.milestones)
        return recipe.lr * recipe.lr_gamma**k
    t = (epoch * steps_per_epoch + step_in_epoch) / (recipe.epochs * steps_per_epoch)
    return recipe.lr_min + (recipe.lr - recipe.lr_min) * (1 + math.cos(math.pi * t)) / 2


_PAPER_CIFAR = dict(epochs=200, batch_size=128, lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="piecewise",
                    milestones=(0.5, 0.75), crop_padding=4, flip=True)

RECIPES: dict[str, Recipe] = {
    "paper-cifar10-rna": recipe(name="paper-cifar10-rna", dataset="cifar10", arch="resnet18", norms="bn+in",
                                method="blackbox", **_PAPER_CIFAR),
    "paper-cifar10-bn": recipe(name="paper-cifar10-bn", dataset="cifar10", arch="resnet18", norms="bn",
                               method="madry", **_PAPER_CIFAR),
    "paper-cifar10-wrn-rna": recipe(name="paper-cifar10-wrn-rna", dataset="cifar10", arch="wrn34_10",
                                    norms="bn+in", method="blackbox", **_PAPER_CIFAR),
    "paper-cifar100-rna": recipe(name="paper-cifar100-rna", dataset="cifar100", arch="resnet18", norms="bn+in",
                                 method="blackbox", **_PAPER_CIFAR),
    "paper-imagenet-rna": recipe(name="paper-imagenet-rna", dataset="imagefolder", arch="resnet50",
                                 norms="bgn@1-2+gn@1-2", method="blackbox", epochs=60, batch_size=512, lr=0.02,
                                 weight_decay=1e-4, schedule="cosine", crop_padding=0, flip=True,
                                 train_attack=pgd(2, 4 / 255, 2 / 255), eval_attack=pgd(50, 4 / 255, 1 / 255)),
    # The paper gives PGD-2 with eps 4/255 for training and PGD-50 for evaluation but no step sizes;
    # 2/255 (= eps / 2) and 1/255 are our choice.
    "paper-cifar10-ctrw": recipe(name="paper-cifar10-ctrw", dataset="cifar10", arch="resnet18", norms="bn",
                                 method="ctrw", random_weight=True, **_PAPER_CIFAR),
    "paper-cifar100-ctrw": recipe(name="paper-cifar100-ctrw", dataset="cifar100", arch="resnet18", norms="bn",
                                  method="ctrw", random_weight=True, **_PAPER_CIFAR),
    # CTRW on the bundled 28 x 28 x 1 data: the paper's per-entry mean sigma (A / m = 1000 / 3072, B / m = 2400 /
    # 3072 at position 0 on CIFAR) scaled to m = 784 entries
    "quick-ctrw": recipe(name="quick-ctrw", dataset="bundled", arch="resnet18", width=8, norms="bn", method="ctrw",
                         random_weight=True, epochs=4, batch_size=128, lr=0.05, schedule="piecewise",
                         milestones=(0.75,), crop_padding=2, flip=True, train_attack=pgd(5, 8 / 255, 2.5 / 255),
                         eval_samples=500, sigma_lower=1000 * 784 / 3072, sigma_upper=2400 * 784 / 3072),
    "quick": recipe(name="quick", dataset="bundled", arch="resnet18", width=8, norms="bn+in", method="blackbox",
                    epochs=4, batch_size=128, lr=0.05, schedule="piecewise", milestones=(0.75,), crop_padding=2,
                    flip=True, train_attack=pgd(5, 8 / 255, 2.5 / 255), eval_samples=500),
    # an install check in about a minute on 2 CPU cores (``rna-core compare --recipe smoke``): train, both
    # protocols, every file; its numbers are a smoke signal, not a result
    "smoke": recipe(name="smoke", dataset="bundled", arch="small_cnn", width=16, norms="bn+in", method="blackbox",
                    epochs=4, batch_size=64, lr=0.1, schedule="piecewise", milestones=(0.75,), train_samples=2048,
                    train_attack=pgd(3, 8 / 255, 8 / 255 / 3), eval_attack=pgd(10), eval_samples=200, eval_eot=4,
                    eval_answers=4),
}


def _apart_family(prefix: str, base: Recipe, epochs: int, rho: float, four: bool = False) -> dict[str, Recipe]:
    """Standard 1x and 2x budgets, SAM, APART and APART-SAM (each 2 passes per step, so 2x) on one setting; with
    ``four``, also the 4x budgets of standard (4x epochs) and APART (2x epochs). Milestones are fractions of the
    epochs, so a longer budget stretches its decay epochs too."""
    runs = {"standard": dict(method="clean", epochs=epochs), "standard-2x": dict(method="clean", epochs=2 * epochs),
            "sam": dict(method="sam", epochs=epochs), "apart": dict(method="apart", epochs=epochs),
            "apart-sam": dict(method="apart-sam", epochs=epochs)}
    if four:
        runs.update({"standard-4x": dict(method="clean", epochs=4 * epochs),
                     "apart-4x": dict(method="apart", epochs=2 * epochs)})
    return {f"{prefix}-{k}": base.replace(name=f"{prefix}-{k}", sam_rho=rho, **v) for k, v in runs.items()}


# APART Sec. 4.1 and Table 3: SGD lr 0.1, momentum 0.9, wd 5e-4, batch 128, 200 epochs with decay at 100 and 150,
# flips and translations; eps 0.1, N = M, n = 16; SAM rho 0.05 (CIFAR-10) and 0.1 (CIFAR-100). Clean accuracy only.
for _ds, _rho in (("cifar10", 0.05), ("cifar100", 0.1)):
    for _arch, _short in (("wrn40_2", "wrn"), ("preact_resnet18", "preact")):
        RECIPES.update(_apart_family(f"paper-{_ds}-{_short}", recipe(
            dataset=_ds, arch=_arch, norms="bn", eval_attack=None, apart_eps=0.1, apart_ratio=1.0, apart_groups=16,
            **_PAPER_CIFAR), 200, _rho))
# APART Sec. 4.1 and Table 2. Tiny-ImageNet: PreAct-ResNet-18, batch 256, the CIFAR schedule otherwise (the
# authors' code: RandomCrop(64, padding 4) + flip, 200 epochs, decay at 100 and 150, wd 5e-4). ImageNet: torchvision's
# ResNet-18, SGD lr 0.1, momentum 0.9, wd 1e-4, batch 256, 105 epochs, lr x0.1 at 30, 60, 90 and 100, random
# resized crops of 224 + flip (rna_core.data.pipeline); Table 2 also has 4x budgets. The paper
# picks APART's hyper-parameters per setting without printing them for these two: we take the authors' scripts'
# defaults, eps 0.1, N = M, n = 1 (no groups), and their rho 0.1 for SAM and APART-SAM.
_TINY = dict(_PAPER_CIFAR, batch_size=256)
RECIPES.update(_apart_family("paper-tinyimagenet-preact", recipe(
    dataset="tiny_imagenet", arch="preact_resnet18", norms="bn", eval_attack=None, apart_eps=0.1, apart_ratio=1.0,
    apart_groups=1, **_TINY), 200, 0.1))
RECIPES.update(_apart_family("paper-imagenet-r18", recipe(
    dataset="imagefolder", arch="resnet18_imagenet", norms="bn", eval_attack=None, batch_size=256, lr=0.1,
    momentum=0.9, weight_decay=1e-4, schedule="piecewise", milestones=tuple(e / 105 for e in (30, 60, 90, 100)),
    crop_padding=0, flip=True, apart_eps=0.1, apart_ratio=1.0, apart_groups=1), 105, 0.1, four=True))
# The same comparison on the bundled data in minutes on a CPU (PreAct-ResNet-18 width 16, 1,000 test images).
RECIPES.update(_apart_family("quick", recipe(
    dataset="bundled", arch="preact_resnet18", width=16, norms="bn", eval_attack=None, epochs=8, batch_size=128,
    lr=0.05, schedule="piecewise", milestones=(0.5, 0.75), crop_padding=2, flip=True, apart_eps=0.1,
    apart_ratio=1.0, apart_groups=16), 8, 0.05))


def get_recipe(name: str | Recipe, **overrides) -> Recipe:
    """A built-in recipe by name (see ``RECIPES``), with ``overrides`` applied, then those of the environment
    variable ``RNA_SET`` (``environment_overrides``)."""
    if isinstance(name, Recipe):
        base = name
    else:
        if name not in RECIPES:
            raise UnknownKeyError(f"unknown recipe {name!r}; built-in recipes: {sorted(RECIPES)}")
        base = RECIPES[name]
    overrides = {**overrides, **environment_overrides()}
    return base.replace(**overrides) if overrides else base


ENVIRONMENT = "RNA_SET"


@functools.cache
def _announce(text: str) -> None:
    print(f"rna-core: {ENVIRONMENT} overrides every recipe: {text}", file=sys.stderr)


def environment_overrides() -> dict[str, Any]:
    """Recipe keys every recipe takes from the environment, after the caller's: ``RNA_SET="epochs=1
    train_samples=256"`` (``key=value`` pairs separated by spaces, values read as JSON where they parse, as
    ``--set`` reads them). It shrinks the README's examples in the tests and a cluster job without editing its
    script; a run announces it once on stderr."""
    text = os.environ.get(ENVIRONMENT, "").strip()
    if not text:
        return {}
    out = {}
    for pair in text.split():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{ENVIRONMENT} takes key=value pairs separated by spaces, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    _announce(text)
    return out
