"""Training recipes: every hyper-parameter of a run in one frozen, JSON-serialisable record.

``paper-*`` recipes carry the published defaults (RNA Sec. 5.1); ``quick`` runs on the bundled data
in minutes on a CPU. Override any field with ``recipe.replace(**{"train_attack.steps": 5})``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields

from .attacks import AttackSpec, pgd
from .methods import METHODS
from .validation import ConfigError, check_range, check_types

SIGMA_CONSTRAINTS = ("project", "authors", "none", "fixed-lower", "fixed-upper", "fixed-middle")
SCHEDULES = ("piecewise", "cosine", "constant")
CTRW_VARIANTS = ("in", "out", "both", "filter")  # rna_core.models.ctrw
PRECISIONS = ("fp32", "bf16", "fp16")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's


@dataclass(frozen=True)
class Recipe:
    """A run. ``method``: ``clean`` (no attack), ``madry`` (white-box PGD AT: the attack and the update use
    the same path), ``blackbox`` (RNA Algorithm 1: attack path p_a held for all PGD steps, a fresh path p
    for the update), ``ctrw`` (CTRW Algorithm 1: the same black-box scheme over the random weights' noise and
    the path, with sigma constrained after every optimizer step). ``milestones`` are fractions of ``epochs``
    where the lr is multiplied by ``lr_gamma``.

    CTRW keys: ``ctrw_position`` / ``ctrw_variant`` place the random weight (``rna_core.models.ctrw``);
    ``sigma_lower`` / ``sigma_upper`` are A and B of Eq. 5 for the sum over each random weight's sigma (the
    paper's CIFAR values: A = 1/|alpha| = 1000 with alpha = -1e-3, B ~ 2400 from Lemma 2);
    ``sigma_constraint``: ``project`` (both bounds, exact projection; default), ``authors`` (their rule: lower
    bound only), ``none`` (the "without constraint" ablation), ``fixed-lower`` / ``fixed-upper`` /
    ``fixed-middle`` (the "fixed std" ablations: sum(sigma) held at A, B or (A + B) / 2).

    APART / SAM keys (methods ``sam``, ``apart``, ``apart-sam``, see ``rna_core.methods``): ``apart_eps`` is
    the radius of the BN perturbations, ``apart_ratio`` = N / M the share of the batch in the second pass,
    ``apart_groups`` = n the number of BN groups in that pass, ``sam_rho`` SAM's radius (p = 2). A "standard"
    run is method ``clean``; its 2x budget doubles ``epochs`` (milestones are fractions, so the decay epochs
    double too). ``eval_attack = None`` evaluates clean accuracy only. The final evaluation
    (``rna_core.evaluation``) runs ``eval_protocol`` with EOT-``eval_eot``, ``eval_answers`` fresh answers per image
    (``eval_answer``: per-batch or per-example draws) and transfer from ``eval_transfer_draws`` held draws.
    ``checkpoint_every`` = k > 0 also writes a
    checkpoint every k steps inside an epoch (long epochs, preemptible machines); a run resumed from one ends
    with the weights of an uninterrupted run. ``init_checkpoint`` starts from the weights of another rna-core
    checkpoint (e.g. a BN model: its names are a subset of an RNA model's, so every BN candidate and every other
    layer is initialised from it; entries of another shape, such as a new classifier head, keep their init); a
    checkpoint of which fewer than half the entries fit is an error unless ``init_partial``.
    ``sync_bn``: under torchrun / msrun, BN layers use the global batch's statistics (SyncBN).

    Speed keys (``Backend.prepare``; checkpoints stay float32): ``precision`` ``fp32``, ``bf16`` (autocast) or
    ``fp16`` (autocast and a scaled loss) for training, attacks and evaluation; ``channels_last`` NHWC activations
    (off by default: on an H200 it slowed the RNA step, see the README); ``compile`` a compiled network that
    serves every path (torch.compile with ``compile_mode``, e.g. ``reduce-overhead`` for CUDA graphs; MindSpore
    compiles in GRAPH_MODE); ``log_every``: the loss and accuracy, kept on the device, are read (and checked for
    NaN) every this many steps, so the accelerator never waits for the host inside an epoch. SAM and APART run
    fp32, uncompiled: their BN perturbation (Eq. 3) and sign steps are defined on float32 gradients."""

    name: str = "custom"
    dataset: str = "cifar10"
    data_dir: str | None = None
    image_size: int = 224
    arch: str = "resnet18"
    width: int | None = None
    norms: str = "bn+in"
    layer_free: bool = True
    method: str = "blackbox"
    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "piecewise"
    milestones: tuple[float, ...] = (0.5, 0.75)
    lr_gamma: float = 0.1
    lr_min: float = 0.0
    train_attack: AttackSpec | None = field(default_factory=lambda: pgd(10, 8 / 255, 2 / 255))
    attack_in_train_mode: bool = True
    crop_padding: int = 4
    flip: bool = True
    train_samples: int | None = None
    eval_samples: int | None = None
    eval_attack: AttackSpec | None = field(default_factory=lambda: pgd(20))
    eval_protocol: str = "both"
    eval_eot: int = 8
    eval_answers: int = 10
    eval_answer: str = "per-batch"
    eval_transfer_draws: int = 1
    eval_batch_size: int = 250
    ctrw_position: int = 0
    ctrw_variant: str = "in"
    sigma_lower: float = 1000.0
    sigma_upper: float = 2400.0
    sigma_constraint: str = "project"
    apart_eps: float = 0.1
    apart_ratio: float = 1.0
    apart_groups: int = 16
    sam_rho: float = 0.05
    checkpoint_every: int = 0
    init_checkpoint: str | None = None
    init_partial: bool = False
    sync_bn: bool = False
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    compile_mode: str = "default"
    log_every: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        """Every key's type and range, checked when the recipe is built (before any data or model)."""
        from .evaluation import ANSWER_MODES, parse_protocols
        from .norms import parse_norms

        check_types(self, "recipe key")
        for key, allowed in (("method", tuple(METHODS)), ("schedule", SCHEDULES),
                             ("sigma_constraint", SIGMA_CONSTRAINTS), ("precision", PRECISIONS),
                             ("compile_mode", COMPILE_MODES),
                             ("eval_answer", ANSWER_MODES), ("ctrw_variant", CTRW_VARIANTS)):
            if getattr(self, key) not in allowed:
                raise ConfigError(f"recipe key {key!r} must be one of {allowed}, got {getattr(self, key)!r}")
        where = "recipe key"
        for key in ("epochs", "batch_size", "eval_batch_size", "image_size", "width", "train_samples",
                    "eval_samples", "eval_eot", "eval_answers", "eval_transfer_draws", "apart_groups", "log_every"):
            check_range(where, key, getattr(self, key), 1)
        for key in ("checkpoint_every", "crop_padding", "seed", "ctrw_position", "weight_decay", "lr_min",
                    "apart_eps", "sam_rho", "sigma_lower"):
            check_range(where, key, getattr(self, key), 0)
        check_range(where, "lr", self.lr, 0, low_open=True)
        check_range(where, "lr_gamma", self.lr_gamma, 0, 1, low_open=True)
        check_range(where, "momentum", self.momentum, 0, 1, high_open=True)
        check_range(where, "apart_ratio", self.apart_ratio, 0, 1, low_open=True)
        for m in self.milestones:
            check_range(where, "milestones", m, 0, 1)
        if self.sigma_upper < self.sigma_lower:
            raise ConfigError(f"recipe keys need sigma_lower <= sigma_upper, got {self.sigma_lower}, "
                              f"{self.sigma_upper}")
        try:
            parse_norms(self.norms)
            parse_protocols(self.eval_protocol)
        except ValueError as e:
            raise ConfigError(f"recipe key {'norms' if 'norm' in str(e) else 'eval_protocol'!r}: {e}") from None
        method = METHODS[self.method]
        if self.train_attack is None and method.adversarial:
            raise ConfigError(f"recipe key 'train_attack' is null, but method {self.method!r} trains on attacks")
        if method.check is not None:
            try:
                method.check(self)
            except ConfigError:
                raise
            except ValueError as e:
                raise ConfigError(f"method {self.method!r}: {e}") from None

    @property
    def eval_attacks(self) -> list[AttackSpec]:
        """The final evaluation's attacks: ``eval_attack``, or none."""
        return [] if self.eval_attack is None else [self.eval_attack]

    def replace(self, **overrides) -> Recipe:
        """A copy with ``overrides``; dotted keys reach into attack specs (``train_attack.steps``)."""
        top: dict = {}
        nested: dict[str, dict] = {}
        names = {f.name: f for f in fields(self)}
        for key, value in overrides.items():
            head, _, sub = key.partition(".")
            if head not in names:
                raise KeyError(f"unknown recipe key {key!r}; valid keys: {sorted(names)}")
            if sub:
                spec = getattr(self, head)
                if not dataclasses.is_dataclass(spec) or sub not in {f.name for f in fields(spec)}:
                    raise KeyError(f"unknown recipe key {key!r}")
                nested.setdefault(head, {})[sub] = value
            else:
                top[head] = AttackSpec(**value) if isinstance(value, dict) and head.endswith("attack") else value
        for head, subs in nested.items():
            top[head] = dataclasses.replace(top.get(head, getattr(self, head)), **subs)
        return dataclasses.replace(self, **top)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Recipe:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise KeyError(f"unknown recipe keys {sorted(unknown)}")
        return cls().replace(**d)


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
    "paper-cifar10-rna": Recipe(name="paper-cifar10-rna", dataset="cifar10", arch="resnet18", norms="bn+in",
                                method="blackbox", **_PAPER_CIFAR),
    "paper-cifar10-bn": Recipe(name="paper-cifar10-bn", dataset="cifar10", arch="resnet18", norms="bn",
                               method="madry", **_PAPER_CIFAR),
    "paper-cifar10-wrn-rna": Recipe(name="paper-cifar10-wrn-rna", dataset="cifar10", arch="wrn34_10",
                                    norms="bn+in", method="blackbox", **_PAPER_CIFAR),
    "paper-cifar100-rna": Recipe(name="paper-cifar100-rna", dataset="cifar100", arch="resnet18", norms="bn+in",
                                 method="blackbox", **_PAPER_CIFAR),
    "paper-imagenet-rna": Recipe(name="paper-imagenet-rna", dataset="imagefolder", arch="resnet50",
                                 norms="bgn@1-2+gn@1-2", method="blackbox", epochs=60, batch_size=512, lr=0.02,
                                 weight_decay=1e-4, schedule="cosine", crop_padding=0, flip=True,
                                 train_attack=pgd(2, 4 / 255, 2 / 255), eval_attack=pgd(50, 4 / 255, 1 / 255)),
    # The paper gives PGD-2 with eps 4/255 for training and PGD-50 for evaluation but no step sizes;
    # 2/255 (= eps / 2) and 1/255 are our choice.
    "paper-cifar10-ctrw": Recipe(name="paper-cifar10-ctrw", dataset="cifar10", arch="resnet18", norms="bn",
                                 method="ctrw", **_PAPER_CIFAR),
    "paper-cifar100-ctrw": Recipe(name="paper-cifar100-ctrw", dataset="cifar100", arch="resnet18", norms="bn",
                                  method="ctrw", **_PAPER_CIFAR),
    # CTRW on the bundled 28 x 28 x 1 data: the paper's per-entry mean sigma (A / m = 1000 / 3072, B / m = 2400 /
    # 3072 at position 0 on CIFAR) scaled to m = 784 entries
    "quick-ctrw": Recipe(name="quick-ctrw", dataset="bundled", arch="resnet18", width=8, norms="bn", method="ctrw",
                         epochs=4, batch_size=128, lr=0.05, schedule="piecewise", milestones=(0.75,), crop_padding=2,
                         flip=True, train_attack=pgd(5, 8 / 255, 2.5 / 255), eval_samples=500,
                         sigma_lower=1000 * 784 / 3072, sigma_upper=2400 * 784 / 3072),
    "quick": Recipe(name="quick", dataset="bundled", arch="resnet18", width=8, norms="bn+in", method="blackbox",
                    epochs=4, batch_size=128, lr=0.05, schedule="piecewise", milestones=(0.75,), crop_padding=2,
                    flip=True, train_attack=pgd(5, 8 / 255, 2.5 / 255), eval_samples=500),
}


def _apart_family(prefix: str, base: Recipe, epochs: int, rho: float) -> dict[str, Recipe]:
    """Standard 1x and 2x budgets, SAM, APART and APART-SAM (each 2 passes per step, so 2x) on one setting."""
    runs = {"standard": dict(method="clean", epochs=epochs), "standard-2x": dict(method="clean", epochs=2 * epochs),
            "sam": dict(method="sam", epochs=epochs), "apart": dict(method="apart", epochs=epochs),
            "apart-sam": dict(method="apart-sam", epochs=epochs)}
    return {f"{prefix}-{k}": base.replace(name=f"{prefix}-{k}", sam_rho=rho, **v) for k, v in runs.items()}


# APART Sec. 4.1 and Table 3: SGD lr 0.1, momentum 0.9, wd 5e-4, batch 128, 200 epochs with decay at 100 and 150,
# flips and translations; eps 0.1, N = M, n = 16; SAM rho 0.05 (CIFAR-10) and 0.1 (CIFAR-100). Clean accuracy only.
for _ds, _rho in (("cifar10", 0.05), ("cifar100", 0.1)):
    for _arch, _short in (("wrn40_2", "wrn"), ("preact_resnet18", "preact")):
        RECIPES.update(_apart_family(f"paper-{_ds}-{_short}", Recipe(
            dataset=_ds, arch=_arch, norms="bn", eval_attack=None, apart_eps=0.1, apart_ratio=1.0, apart_groups=16,
            **_PAPER_CIFAR), 200, _rho))
# The same comparison on the bundled data in minutes on a CPU (PreAct-ResNet-18 width 16, 1,000 test images).
RECIPES.update(_apart_family("quick", Recipe(
    dataset="bundled", arch="preact_resnet18", width=16, norms="bn", eval_attack=None, epochs=8, batch_size=128,
    lr=0.05, schedule="piecewise", milestones=(0.5, 0.75), crop_padding=2, flip=True, apart_eps=0.1,
    apart_ratio=1.0, apart_groups=16), 8, 0.05))


def get_recipe(name: str | Recipe, **overrides) -> Recipe:
    """A built-in recipe by name (see ``RECIPES``), with overrides applied."""
    if isinstance(name, Recipe):
        base = name
    else:
        if name not in RECIPES:
            raise KeyError(f"unknown recipe {name!r}; built-in recipes: {sorted(RECIPES)}")
        base = RECIPES[name]
    return base.replace(**overrides) if overrides else base
