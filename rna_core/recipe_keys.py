"""The sections of a ``Recipe``, each a frozen record whose keys are checked for type and range when built.

``data`` (what is trained and evaluated on, and the training augmentation), ``model`` (architecture, normalization
candidates, CTRW's random-weight placement), ``optimizer`` (SGD and its schedule), ``attack`` (the training attack),
``evaluation`` (the final evaluation), ``speed`` (how the model runs) and ``run`` (checkpoints, initialisation);
the keys of the training methods are declared with the methods (``rna_core.methods``). Every key keeps its flat
name (``lr``, ``eval_eot``), which ``--set``, ``rna_core.train(..., key=value)`` and the sidecars use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .attacks import AttackSpec, pgd
from .data.datasets import DATASETS
from .norms import parse_norms
from .protocols import ANSWER_MODES, parse_protocols
from .validation import ConfigError, check_choice, check_range, check_types

SCHEDULES = ("piecewise", "cosine", "constant")
CTRW_VARIANTS = ("in", "out", "both", "filter")  # rna_core.models.ctrw
PRECISIONS = ("fp32", "bf16", "fp16")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's
KEY = "recipe key"


@dataclass(frozen=True)
class DataKeys:
    """``dataset`` (``rna_core.data.DATASETS``) under ``data_dir``, ``image_size`` of an image folder (None: 224;
    the other data sets have their own size, and another one is refused), ``train_samples`` (a stratified prefix;
    None: all), the training augmentation of in-memory data: random crops with ``crop_padding`` pixels of zero
    padding, horizontal ``flip`` (an image folder trains on random resized crops + flip, ``data.pipeline``, decoded
    by ``workers`` processes per rank; None: the cores available over the ranks, at most 8)."""

    dataset: str = "cifar10"
    data_dir: str | None = None
    image_size: int | None = None
    train_samples: int | None = None
    crop_padding: int = 4
    flip: bool = True
    workers: int | None = None

    def __post_init__(self) -> None:
        check_types(self, KEY)
        check_choice(KEY, "dataset", self.dataset, DATASETS)
        check_range(KEY, "image_size", self.image_size, 1)
        check_range(KEY, "train_samples", self.train_samples, 1)
        check_range(KEY, "crop_padding", self.crop_padding, 0)
        check_range(KEY, "workers", self.workers, 0)


@dataclass(frozen=True)
class ModelKeys:
    """``arch`` (``rna_core.models``) at ``width``, the normalization candidates ``norms`` of every slot, drawn per
    layer (``layer_free``) or tied; CTRW's random weight W = mu + sigma * eps (``random_weight``: true, false, or
    null for "with method ``ctrw`` only", so that a CTRW recipe trained by another method, ``eot``, keeps it) at
    ``ctrw_position`` / ``ctrw_variant`` (``rna_core.models.ctrw``)."""

    arch: str = "resnet18"
    width: int | None = None
    norms: str = "bn+in"
    layer_free: bool = True
    random_weight: bool | None = None
    ctrw_position: int = 0
    ctrw_variant: str = "in"

    def __post_init__(self) -> None:
        check_types(self, KEY)
        check_range(KEY, "width", self.width, 1)
        check_range(KEY, "ctrw_position", self.ctrw_position, 0)
        check_choice(KEY, "ctrw_variant", self.ctrw_variant, CTRW_VARIANTS)
        try:
            parse_norms(self.norms)
        except ValueError as e:
            raise ConfigError(f"{KEY} 'norms': {e}") from None


@dataclass(frozen=True)
class OptimizerKeys:
    """SGD (``lr``, ``momentum``, ``weight_decay``) for ``epochs`` of ``batch_size``; ``schedule``: ``piecewise``
    (times ``lr_gamma`` at each of the ``milestones``, fractions of ``epochs``), ``cosine`` (to ``lr_min``) or
    ``constant``."""

    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "piecewise"
    milestones: tuple[float, ...] = (0.5, 0.75)
    lr_gamma: float = 0.1
    lr_min: float = 0.0

    def __post_init__(self) -> None:
        check_types(self, KEY)
        check_choice(KEY, "schedule", self.schedule, SCHEDULES)
        for key in ("epochs", "batch_size"):
            check_range(KEY, key, getattr(self, key), 1)
        for key in ("weight_decay", "lr_min"):
            check_range(KEY, key, getattr(self, key), 0)
        check_range(KEY, "lr", self.lr, 0, low_open=True)
        check_range(KEY, "lr_gamma", self.lr_gamma, 0, 1, low_open=True)
        check_range(KEY, "momentum", self.momentum, 0, 1, high_open=True)
        for m in self.milestones:
            check_range(KEY, "milestones", m, 0, 1)


@dataclass(frozen=True)
class AttackKeys:
    """``train_attack``: the training attack of the adversarial methods (None: none); ``attack_in_train_mode``:
    it runs with batch statistics, as the authors' code does."""

    train_attack: AttackSpec | None = field(default_factory=lambda: pgd(10, 8 / 255, 2 / 255))
    attack_in_train_mode: bool = True

    def __post_init__(self) -> None:
        check_types(self, KEY)


@dataclass(frozen=True)
class EvaluationKeys:
    """The final evaluation (``rna_core.evaluation``): ``eval_attack`` (None: clean accuracy only) on
    ``eval_samples`` test images in batches of ``eval_batch_size``, under ``eval_protocol``, EOT-``eval_eot``,
    ``eval_answers`` fresh answers per image (``eval_answer``: per-batch or per-example draws) and transfer from
    ``eval_transfer_draws`` held draws."""

    eval_attack: AttackSpec | None = field(default_factory=lambda: pgd(20))
    eval_samples: int | None = None
    eval_protocol: str = "both"
    eval_eot: int = 8
    eval_answers: int = 10
    eval_answer: str = "per-batch"
    eval_transfer_draws: int = 1
    eval_batch_size: int = 250

    def __post_init__(self) -> None:
        check_types(self, KEY)
        check_choice(KEY, "eval_answer", self.eval_answer, ANSWER_MODES)
        for key in ("eval_samples", "eval_eot", "eval_answers", "eval_transfer_draws", "eval_batch_size"):
            check_range(KEY, key, getattr(self, key), 1)
        try:
            parse_protocols(self.eval_protocol)
        except ValueError as e:
            raise ConfigError(f"{KEY} 'eval_protocol': {e}") from None


@dataclass(frozen=True)
class SpeedKeys:
    """How the model runs (``Backend.prepare``; checkpoints stay float32): ``precision`` ``fp32``, ``bf16``
    (autocast) or ``fp16`` (autocast and a scaled loss) for training, attacks and evaluation; ``channels_last``
    NHWC activations (off by default: on an H200 it slowed the RNA step, see the README); ``compile`` a compiled
    network that serves every path (torch.compile with ``compile_mode``, e.g. ``reduce-overhead`` for CUDA graphs;
    MindSpore compiles in GRAPH_MODE); ``sync_bn``: under torchrun / msrun, BN layers use the global batch's
    statistics; ``log_every``: the loss and accuracy, kept on the device, are read (and checked for NaN) every
    this many steps, so the accelerator never waits for the host inside an epoch."""

    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    compile_mode: str = "default"
    sync_bn: bool = False
    log_every: int = 50

    def __post_init__(self) -> None:
        check_types(self, KEY)
        check_choice(KEY, "precision", self.precision, PRECISIONS)
        check_choice(KEY, "compile_mode", self.compile_mode, COMPILE_MODES)
        check_range(KEY, "log_every", self.log_every, 1)


@dataclass(frozen=True)
class RunKeys:
    """``checkpoint_every`` = k > 0 also writes a checkpoint every k steps inside an epoch (long epochs,
    preemptible machines); a run resumed from one ends with the weights of an uninterrupted run.
    ``init_checkpoint`` starts from the weights of another rna-core checkpoint (e.g. a BN model: its names are a
    subset of an RNA model's, so every BN candidate and every other layer is initialised from it; entries of
    another shape, such as a new classifier head, keep their init); a checkpoint of which fewer than half the
    entries fit is an error unless ``init_partial``."""

    checkpoint_every: int = 0
    init_checkpoint: str | None = None
    init_partial: bool = False

    def __post_init__(self) -> None:
        check_types(self, KEY)
        check_range(KEY, "checkpoint_every", self.checkpoint_every, 0)


SECTIONS = {"data": DataKeys, "model": ModelKeys, "optimizer": OptimizerKeys, "attack": AttackKeys,
            "evaluation": EvaluationKeys, "speed": SpeedKeys, "run": RunKeys}
