"""Your own model, planned once: what ``randomize`` does to a user's module, computed and checked completely before
the module is touched, so an error leaves it as it was.

A backend's ``randomize`` (``rna_core.torch.randomize``, ``rna_core.mindspore.randomize``) reports what it found
in the module (``Layer``: every normalization layer of the kinds to replace; ``Target``: the part CTRW's random
weight is to precede), asks ``plan`` for the ``Plan`` and carries it out with a few hooks of its own (replace a
child, copy the replaced layer's weights into the candidate the plan names, attach the draw). The plan holds:

- the slots: slot i replaces ``layers[i]`` (module order) and holds the candidates of ``norms`` built for its
  channels (``PathSpace.uniform``; ``layer_free=False`` ties every layer to one choice); the candidate of the
  replaced layer's kind (and, for GN, groups) takes its weights and statistics (``takes``);
- APART's BN layout: every BN candidate's slice of the flat perturbation vector, in slot order (``apart.layout_of``,
  the layout function the built graphs use too);
- CTRW's random weight x * (mu + sigma eps) (Eq. 4): on the module's input (``"input"``, shape ``input_shape`` =
  (C, H, W)), before a named linear layer (shape (in_features,)) or before a named convolution (shape
  ``input_shape``, its input's), with the CIFAR bounds [A, B] scaled to its size (``bounds.scaled_sigma_bounds``).
  A compiled model runs no forward hook, so there the input's weight is refused and the first convolution named
  instead (it weights the same image).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .apart import BNLayout, layout_of
from .bounds import scaled_sigma_bounds
from .controller import DrawController
from .models.ctrw import user_weight_shape
from .norms import NormSpec
from .paths import PathSpace

KINDS = ("bn", "gn")  # BatchNorm2d, GroupNorm


@dataclass(frozen=True)
class Layer:
    """A normalization layer of the user's module: its dotted ``name``, ``kind`` (``KINDS``), ``channels`` and, for
    GN, ``groups``."""

    name: str
    kind: str
    channels: int
    groups: int = 0


@dataclass(frozen=True)
class Target:
    """What CTRW's random weight precedes: ``name`` (``"input"`` or a dotted name) and its ``kind`` (``input``,
    ``linear``, ``conv``, or the class name of another layer, refused), ``features`` a linear layer's inputs."""

    name: str
    kind: str
    features: int | None = None


@dataclass(frozen=True)
class Plan:
    """What ``randomize`` does (see the module docstring). ``weight``: the random weight's target name and shape
    (None: no weight); ``sigma_bounds``: its [A, B]."""

    space: PathSpace
    layers: tuple[Layer, ...]
    takes: tuple[str | None, ...]
    layout: BNLayout
    weight: tuple[str, tuple[int, ...]] | None
    sigma_bounds: tuple[float, float] | None
    seed: int

    @property
    def noise_size(self) -> int:
        return 0 if self.weight is None else int(np.prod(self.weight[1]))

    def controller(self) -> DrawController:
        """The draws of the randomized module (paths and noise from a Generator seeded by ``seed``)."""
        return DrawController(self.space, np.random.default_rng(self.seed), self.noise_size)


@dataclass(frozen=True, eq=False)
class Randomized:
    """What ``randomize`` leaves on the module, its one attribute ``rna`` (and ``rna_controller``, the controller
    again, the name the sampling policies are reached by): the ``plan``, the ``controller`` of its draws, the
    backend's draw ``state`` its slots and random weight read, whether it runs ``compiled``, and ``weight_at``:
    the submodule holding the random weight when the module itself cannot (torch's ``nn.Sequential`` runs every
    child it holds)."""

    plan: Plan
    controller: DrawController
    state: Any
    compiled: bool = False
    weight_at: str = ""

    @property
    def space(self) -> PathSpace:
        return self.plan.space

    @property
    def bn_layout(self) -> BNLayout:
        """APART's BN layout of the module's BN candidates (``randomize(m, "bn")``: a BN model APART trains)."""
        return self.plan.layout

    @property
    def sigma_bounds(self) -> tuple[float, float] | None:
        """CTRW's [A, B] for the random weight, the CIFAR bounds scaled to its size (recipe keys ``sigma_lower``,
        ``sigma_upper``)."""
        return self.plan.sigma_bounds

    @property
    def sigma_names(self) -> tuple[str, ...]:
        """The random weight's sigma, held by the module (or, ``weight_at``, by the submodule of that name)."""
        at = f"{self.weight_at}." if self.weight_at else ""
        return (f"{at}rna_random_weight.sigma",) if self.plan.weight is not None else ()


def _takes(specs: tuple[NormSpec, ...], layer: Layer) -> str | None:
    """The key of the candidate that takes ``layer``'s weights: its kind, and for GN its groups."""
    for spec in specs:
        if spec.kind == layer.kind and (layer.kind != "gn" or spec.num_groups(layer.channels) == layer.groups):
            return spec.key
    return None


def plan(layers: list[Layer], norms: str | None, layer_free: bool = True, seed: int = 0,
         target: Target | None = None, input_shape: tuple[int, ...] | None = None, compiled: bool = False,
         replace: tuple[str, ...] = ("bn",)) -> Plan:
    """The plan for a module whose normalization layers of the kinds ``replace`` are ``layers`` (module order) and
    whose random weight precedes ``target`` (None: no weight). Every check happens here: unknown kinds, nothing to
    randomize, a candidate spec a layer's channels do not allow, the weight's target and shape."""
    unknown = sorted(set(replace) - set(KINDS))
    if unknown:
        raise ValueError(f"replace: unknown layer kinds {unknown}; known: {list(KINDS)}")
    if not norms and target is None:
        raise ValueError("nothing to randomize: give norms, random_weight or both")
    if norms and not layers:
        names = {"bn": "BatchNorm2d", "gn": "GroupNorm"}
        raise ValueError(f"the module has no {' or '.join(names[k] for k in replace)} layer to randomize")
    layers = list(layers) if norms else []
    space = PathSpace.uniform(norms, len(layers), layer_free) if layers else PathSpace.uniform("bn", 1)
    for layer, specs in zip(layers, space.candidates, strict=False):
        for spec in specs:
            spec.num_groups(layer.channels)  # raises, naming the spec and the channels, if they do not fit
    weight = None
    if target is not None:
        if target.kind == "input" and compiled:
            raise ValueError("random_weight='input' runs as a forward hook, which a compiled model cannot run: name "
                             "the model's first convolution instead (random_weight='conv1', input_shape=(C, H, W)), "
                             "which weights the same image")
        weight = (target.name, user_weight_shape(target.name, target.kind, target.features, input_shape))
    layout = layout_of([(layer.name, layer.channels, specs) for layer, specs in zip(layers, space.candidates,
                                                                                      strict=False)])
    bounds = scaled_sigma_bounds(int(np.prod(weight[1]))) if weight is not None else None
    return Plan(space, tuple(layers), tuple(_takes(s, la) for la, s in zip(layers, space.candidates, strict=False)),
                layout, weight, bounds, seed)


def differs(run, tries: int = 3) -> bool:
    """True when ``run()`` (the logits of one forward on fixed images, as numpy) differs between calls: the model
    draws randomness of its own."""
    first = run()
    return any(not np.array_equal(first, run()) for _ in range(tries))
