"""A built model together with what it needs to run: its backend, path controller and architecture."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import models
from .apart import BNLayout, BNPerturbation
from .backend import INPUT, Backend
from .checkpoints import load_checkpoint
from .controller import Draw, DrawController, UnheldController
from .data.inputs import framework
from .losses import CE
from .models.ctrw import add_random_weight
from .own_model import differs
from .paths import PathSpace
from .registry import get_backend


@dataclass
class Classifier:
    """``model`` (a backend's ``rna_core.model.Model``) asks ``controller`` for its path on every forward;
    ``graph`` and ``arch`` are the architecture it was built from (``arch`` is stored in checkpoints to rebuild it;
    a user's adopted model has no graph); ``meta``: the sidecar of the checkpoint it was loaded from."""

    backend: Backend
    model: Any
    controller: DrawController
    graph: models.Graph | None
    arch: dict
    meta: dict = field(default_factory=dict)

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """Eval mode inside the block; the model's train / eval mode is restored after."""
        was = bool(getattr(self.model, "training", False))
        self.model.set_train(False)
        try:
            yield
        finally:
            self.model.set_train(was)

    @property
    def space(self) -> PathSpace:
        return self.controller.space

    @property
    def bn_layout(self) -> BNLayout:
        """The BN layers and their slices of APART's perturbation vector."""
        return self.model.bn_layout

    @property
    def sigma_names(self) -> list[str]:
        """Canonical names of the CTRW sigma parameters (one per random weight)."""
        return list(self.model.sigma_names)

    def sigmas(self) -> dict[str, np.ndarray]:
        """Every random weight's sigma, by canonical name."""
        return self.backend.get_state(self.model, self.sigma_names)

    def set_sigmas(self, values: dict[str, np.ndarray]) -> None:
        self.backend.set_state(self.model, values, strict=False)

    def check_images(self, x: np.ndarray) -> np.ndarray:
        """Images must be float N x C x H x W in [0, 1] with the model's channel count."""
        x = np.asarray(x)
        c = self.model.in_channels
        if x.ndim != 4 or x.shape[1] != c:
            raise ValueError(f"expected images N x {c} x H x W, got shape {x.shape}")
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"expected float images in [0, 1], got dtype {x.dtype} (divide uint8 by 255)")
        if x.size and not np.isfinite(x).all():
            raise ValueError(f"images hold {int((~np.isfinite(x)).sum())} NaN or infinite values")
        if x.size and (x.min() < 0 or x.max() > 1):
            raise ValueError(f"images must lie in [0, 1], got range [{x.min():.3g}, {x.max():.3g}]")
        return x.astype(np.float32, copy=False)

    def check_labels(self, y: np.ndarray, n: int | None = None) -> np.ndarray:
        """Labels must be integers of shape (N,) (``n`` images) in [0, num_classes)."""
        y = np.asarray(y)
        if y.ndim != 1 or (n is not None and len(y) != n):
            raise ValueError(f"expected labels of shape ({n if n is not None else 'N'},), got {y.shape}")
        if y.size and not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"labels must be integers, got dtype {y.dtype}")
        k = self.model.num_classes
        if y.size and (y.min() < 0 or y.max() >= k):
            raise ValueError(f"labels must lie in [0, {k}) for this {k}-class model, got [{y.min()}, {y.max()}]")
        return y.astype(np.int64, copy=False)

    def logits(self, x: Any, bn: BNPerturbation | None = None) -> np.ndarray:
        """Host logits of images (numpy, or the backend's tensors) on the next draw, with APART's BN perturbation
        ``bn`` if given (training mode required); the mode is the caller's."""
        ops = self.backend.ops
        xb = ops.tensor(x) if isinstance(x, np.ndarray) else x
        return ops.numpy(self.backend.logits(self.model, xb, self.controller.next_draw().perturbed(bn)))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class predictions for one draw of the path per call (eval mode is the caller's choice)."""
        return self.logits(self.check_images(x)).argmax(1)

    def input_gradient(self, x: Any, y: Any) -> np.ndarray:
        """Per-example grad_x of the cross-entropy at one forward (the next draw), as numpy."""
        ops = self.backend.ops
        xb, yb = (ops.tensor(a) if isinstance(a, np.ndarray) else a for a in (x, y))
        g = self.backend.value_and_grad(self.model, CE, xb, yb, yb, self.controller.next_draw(), (INPUT,))
        return ops.numpy(g.input)


def graph_from_arch(arch: dict) -> models.Graph:
    """The architecture graph of an arch dict (see ``build_classifier``), random weights included."""
    kwargs = {k: v for k, v in arch.items() if k not in ("name", "ctrw") and v is not None}
    graph = models.create(arch["name"], **kwargs)
    if arch.get("ctrw"):
        c = arch["ctrw"]
        graph = add_random_weight(graph, c.get("position", 0), c.get("variant", "in"),
                                  tuple(c.get("image_size", (32, 32))))
    return graph


def build_classifier(arch: dict, space_spec: str | PathSpace, layer_free: bool, backend: str | Backend,
                     path_rng: np.random.Generator, seed: int = 0) -> Classifier:
    """Architecture dict (``name``, ``num_classes``, ``in_channels``, ``width``/``mean``/``std``..., and
    ``ctrw``: {position, variant, image_size} for CTRW random weights, see ``rna_core.models.ctrw``) + a norm
    spec (``"bn+in"``) or PathSpace -> a Classifier on ``backend`` with weights initialised from ``seed``."""
    be = get_backend(backend)
    graph = graph_from_arch(arch)
    space = space_spec if isinstance(space_spec, PathSpace) else PathSpace.uniform(space_spec, graph.num_slots,
                                                                                    layer_free)
    controller = DrawController(space, path_rng, graph.noise_size)
    model = be.build_model(graph, controller, seed)
    return Classifier(be, model, controller, graph, dict(arch))


def load_classifier(checkpoint: str | Path, backend: str | Backend = "torch", device: str | None = None,
                    seed: int = 0) -> Classifier:
    """The model of a checkpoint (run directory, .json or .safetensors) rebuilt on ``backend`` (on ``device``:
    ``"cuda:0"``, ``"cpu"``; MindSpore ``"CPU"``, ``"GPU"``, ``"Ascend"``), its draws from a Generator seeded by
    ``seed``; the sidecar is ``.meta``."""
    state, _, meta = load_checkpoint(checkpoint)
    space = PathSpace.from_dict(meta["path_space"])
    clf = build_classifier(meta["arch"], space, space.layer_free, _backend(backend, device),
                           np.random.default_rng(seed))
    clf.backend.set_state(clf.model, state)
    clf.meta = meta
    return clf


def create_model(name: str, norms: str = "bn+in", num_classes: int = 10, in_channels: int = 3,
                 backend: str | Backend = "torch", device: str | None = None, seed: int = 0,
                 layer_free: bool = True, **arch) -> Classifier:
    """A built-in architecture (``rna_core.models.ARCHITECTURES``: ``resnet18``, ``wrn34_10``, ``small_cnn``...)
    with RNA slots over ``norms`` (``"bn"``: a plain model), weights initialised from ``seed`` and its draws from
    a Generator seeded by ``seed``, like timm's / mindcv's ``create_model``; ``arch`` takes the architecture's
    other keys (``width``, ``mean``, ``std``, ``ctrw``; see ``build_classifier``). ``.model`` is the framework's
    module."""
    spec = {"name": name, "num_classes": num_classes, "in_channels": in_channels, **arch}
    return build_classifier(spec, norms, layer_free, _backend(backend, device), np.random.default_rng(seed), seed)


def _backend(backend: str | Backend, device: str | None) -> Backend:
    if device is None:
        return get_backend(backend)
    if isinstance(backend, Backend):
        raise ValueError("device= goes with a backend name; a Backend object has its device already")
    return get_backend(backend, device=device)


def framework_of(model: Any) -> str:
    """``torch`` or ``mindspore``: the framework whose module class ``model`` is (read from its classes' modules,
    importing nothing)."""
    fw = framework(model)
    if fw is None:
        raise TypeError(f"{type(model).__name__} is neither a torch nn.Module nor a MindSpore nn.Cell")
    return fw


def adopt(model: Any, num_classes: int | None, in_channels: int, probe: np.ndarray | None = None,
          backend: str | Backend | None = None) -> Classifier:
    """A user's own classifier (a torch ``nn.Module`` or MindSpore ``nn.Cell`` mapping [0, 1] images to logits;
    randomized by ``rna_core.torch.randomize`` / ``rna_core.mindspore.randomize``, deterministic, or random in its
    own way) as a Classifier: rna-core's training, attacks and evaluation run on it. On ``probe`` images (the first
    batch) its output is checked first: one finite float tensor of shape (N, ``num_classes``; None: the width the
    module gives, which needs a probe); and randomness rna-core does not draw is detected there (forwards on the
    same images that differ, eval mode)."""
    if num_classes is None and probe is None:
        raise ValueError("adopt needs num_classes, or probe images to read the module's class count from")
    be = get_backend(backend or framework_of(model))
    adopted, be = be.adopt(model, num_classes or 0, in_channels)
    if probe is not None:
        probe = np.asarray(probe, np.float32)
        z = _outputs(be, adopted, probe)
        if num_classes is None and z.ndim == 2:
            num_classes = z.shape[1]
            adopted, be = be.adopt(model, num_classes, in_channels)
        check_logits(z, len(probe), num_classes, type(model).__name__)
        if isinstance(adopted.controller, UnheldController) and differs(lambda: _outputs(be, adopted, probe)):
            adopted, be = be.adopt(model, num_classes, in_channels, random=True)
    arch = {"name": f"adopted:{type(model).__name__}", "num_classes": num_classes, "in_channels": in_channels}
    return Classifier(be, adopted, adopted.controller, None, arch)


def _outputs(be: Backend, model: Any, images: np.ndarray) -> np.ndarray:
    """The host output of ``images`` in eval mode on a fixed draw (the controller's Generator is left alone; the
    model's train / eval mode is restored)."""
    c = model.controller
    draw = Draw(np.zeros(c.space.num_layers, np.int64), np.zeros(c.noise_size, np.float32) if c.noise_size else None)
    was = bool(getattr(model, "training", False))
    model.set_train(False)
    try:
        out = be.logits(model, be.ops.tensor(images), draw)
    finally:
        model.set_train(was)
    if isinstance(out, tuple | list | dict):
        raise TypeError(f"the model must return one logits tensor, it returned a {type(out).__name__}")
    return np.asarray(be.ops.numpy(out))


def check_logits(z: np.ndarray, n: int, num_classes: int | None, name: str = "the model") -> None:
    """``z`` must be finite float logits of shape (n, num_classes)."""
    if z.ndim != 2 or z.shape[0] != n or (num_classes is not None and z.shape[1] != num_classes):
        want = f"({n}, {num_classes}) for {num_classes} classes (the data set's)" if num_classes else f"({n}, K)"
        raise ValueError(f"{name} gives outputs of shape {z.shape} for {n} images; expected logits of shape {want}")
    if not np.issubdtype(z.dtype, np.floating):
        raise ValueError(f"{name} gives {z.dtype} outputs; expected float logits")
    if not np.isfinite(z).all():
        raise ValueError(f"{name} gives NaN or infinite logits for {int((~np.isfinite(z)).any(1).sum())} of {n} "
                         "images: a diverged or broken model")
