"""A user's own MindSpore ``nn.Cell`` (images in [0, 1] -> logits) in rna-core.

``randomize(cell, norms="bn+in", graph_mode=...)`` turns every ``nn.BatchNorm2d`` of the cell into an RNA slot
(candidates built for its channels, the BN candidate taking the layer's gamma, beta and moving statistics), in
place. The path lives in one int32 ``Parameter`` shared by the slots (``rna_path``, not trainable): in compiled
graphs (``graph_mode=True``: ``ms.jit`` or GRAPH_MODE) each slot switches on its entry, so one graph serves every
path; eagerly (PyNative) the slots read a host copy, with no device read per slot. For eager runs a forward
pre-hook draws the path of every call; a cell randomized for compiled runs has no hook (MindSpore parses hooks into
the graph and fails), so call ``next_draw(cell)`` before each call (rna-core's programs do).

The rest of the draw reaches the slots the same way, since a user's ``construct(x)`` passes nothing on: CTRW's noise
in a shared float32 Parameter (``rna_noise``, written by every draw), APART's BN perturbation in another
(``rna_delta``: the programs write delta there and take the gradient with respect to it) with its (groups, track)
on the shared host object, read at compile time (each (groups, track) is its own compiled program, as for the
built networks).

``Adopted`` gives any cell the interface of a built ``Network`` (``construct(x, draw)``, ``next_draw``,
``programs``): the draw of a randomized cell, or none for a cell that is deterministic or random in its own way
(detected by ``differs_between_forwards``; only the protocols that hold no draw apply to it).
"""

from __future__ import annotations

from collections.abc import Callable

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from rna_core.apart import BNLayout
from rna_core.bounds import scaled_sigma_bounds
from rna_core.controller import DrawController, UnheldController
from rna_core.models import graph as g
from rna_core.models.ctrw import user_weight_shape
from rna_core.paths import PathSpace

from .layers import NormSlot, RandomWeight, candidate_owners, unique_parameter_names, used_mask
from .network import half_precision, synchronize_bn
from .programs import Programs


class _Shared:
    """What the slots and the random weight of one cell share: the path as a host array (PyNative slots read it),
    the path, noise and BN perturbation Parameters, and APART's (groups, track) while a perturbed pass runs."""

    def __init__(self, num_layers: int, noise_size: int, delta_size: int) -> None:
        self.path = np.zeros(num_layers, np.int32)
        self.external = False  # set while rna-core runs the cell with a draw of its own
        self.bn: tuple[int, bool] | None = None
        self.path_param = Parameter(Tensor(self.path), name="rna_path", requires_grad=False)
        self.noise = Parameter(Tensor(np.zeros(max(noise_size, 1), np.float32)), name="rna_noise",
                               requires_grad=False)
        self.delta = Parameter(Tensor(np.zeros(max(delta_size, 1), np.float32)), name="rna_delta")  # PyNative
        # differentiates only a Parameter that requires grad; held by reference, it is never trained


def _share(cell: nn.Cell, shared: _Shared) -> None:
    """Give ``cell`` the shared Parameters as plain references (registered nowhere: not state, not trained)."""
    for name, value in (("rna_path", shared.path_param), ("rna_noise", shared.noise), ("rna_delta", shared.delta),
                        ("shared", shared)):
        object.__setattr__(cell, name, value)


class ForeignSlot(NormSlot):
    """``NormSlot`` inside a user's cell: called as ``slot(x)``, it reads the path from the shared ``rna_path``
    Parameter (compiled) or its host copy (eager), and during an APART pass the perturbation from ``rna_delta``."""

    def __init__(self, channels: int, specs, slot: int, graph_mode: bool, shared: _Shared) -> None:
        super().__init__(channels, specs, slot, graph_mode)
        _share(self, shared)

    def construct(self, x):
        if self.float_in:
            x = x.astype(ms.float32)
        draw = (self.rna_path, self.rna_noise)
        if self.shared.bn is not None:  # a constant when compiled: the perturbed programs compile their own graph
            draw = (self.rna_path, self.rna_noise, self.rna_delta, self.shared.bn[0], self.shared.bn[1])
        if self.single:
            return getattr(self, self.keys[0])(x, draw)
        if self.graph_mode:
            return self.choices[self.rna_path[self.slot]](x, draw)
        return self.choices[int(self.shared.path[self.slot])](x, draw)


class Weighted(nn.Cell):
    """A user's dense or convolution layer behind CTRW's random weight (Eq. 4): ``layer(x * (mu + sigma eps))``.
    It takes the layer's place and its parameters' names (``fc.weight``); the layer and the weight (registered on
    the cell as ``rna_random_weight``) are held as references."""

    def __init__(self, layer: nn.Cell, weight: RandomWeight, shared: _Shared) -> None:
        super().__init__()
        for name, param in layer.parameters_and_names():
            if "." not in name:
                setattr(self, name, param)
        object.__setattr__(self, "layer", layer)
        object.__setattr__(self, "random", weight)
        _share(self, shared)

    def construct(self, x):
        if x.shape[1:] != self.random.shape:  # static shapes: checked when compiled
            raise ValueError("CTRW's random weight and the input of the layer it weights differ in shape (per "
                             "example): randomize with the layer's input_shape")
        return self.layer(x * self.random.weight((self.rna_path, self.rna_noise)))


def next_draw(cell: nn.Cell) -> np.ndarray:
    """Draw the path (and CTRW noise) of the next forward of a randomized ``cell`` (fresh, or the one its controller
    holds) and write it where the slots read it; returns the path. The pre-hook does this for eager calls."""
    path, noise = cell.rna_controller.next_draw()
    path = path.astype(np.int32)
    shared = cell.rna_shared
    shared.path[:] = path
    if cell.rna_graph_mode:
        shared.path_param.copy_(Tensor(path))
    if noise is not None:
        shared.noise.copy_(Tensor(np.asarray(noise, np.float32)))
    return path


def _draw(cell: nn.Cell, args: tuple) -> None:
    if not cell.rna_shared.external:
        next_draw(cell)


def _times_random_weight(weight: RandomWeight, shared: _Shared):
    """Forward pre-hook multiplying an eager cell's input by CTRW's random weight."""

    def hook(cell: nn.Cell, args: tuple) -> tuple:
        if tuple(args[0].shape[1:]) != weight.shape:
            raise ValueError(f"CTRW's random weight has shape {weight.shape} but the cell gets inputs of shape "
                             f"{tuple(args[0].shape[1:])} (per example): randomize with that input_shape")
        return (args[0] * weight.weight((shared.path_param, shared.noise)), *args[1:])

    return hook


def _replace(cell: nn.Cell, name: str, new: nn.Cell) -> None:
    """Put ``new`` in place of the child ``name`` (a dotted path) of ``cell``."""
    parent_name, _, child = name.rpartition(".")
    parent = _child(cell, parent_name) if parent_name else cell
    if isinstance(parent, nn.SequentialCell | nn.CellList):
        parent[int(child)] = new  # its own setter: a SequentialCell also keeps a list of its cells
    else:
        setattr(parent, child, new)


def _bn_key(specs) -> str | None:
    """The key of the BN candidate among ``specs`` (``bn`` or ``bn/na``), if any."""
    return next((spec.key for spec in specs if spec.kind == "bn"), None)


def _bn_layout(targets: list[tuple[str, nn.Cell]], space: PathSpace) -> BNLayout:
    """APART's layout of the BN candidates of the slots that replace ``targets`` (cell order, ``rna_core.apart``;
    the torch twin's module order)."""
    names, channels, offsets, offset = [], [], [], 0
    for i, (name, bn) in enumerate(targets):
        key = _bn_key(space.candidates[i])
        if key is not None:
            names.append(f"{name}.{key}")
            channels.append(bn.num_features)
            offsets.append(offset)
            offset += 2 * bn.num_features
    return BNLayout(tuple(names), tuple(channels), tuple(offsets))


def randomize(cell: nn.Cell, norms: str | None = "bn+in", layer_free: bool = True, seed: int = 0,
              graph_mode: bool = False, random_weight: str | None = None,
              input_shape: tuple[int, int, int] | None = None) -> nn.Cell:
    """``cell`` with every ``nn.BatchNorm2d`` turned into an RNA slot over ``norms`` (see the module docstring;
    ``norms=None`` leaves them), in place; it carries ``rna_controller`` (the sampling policies), ``rna_space`` and
    ``rna_bn_layout`` (its BN candidates take APART's perturbation: ``randomize(c, "bn")`` gives a BN model APART
    trains). ``graph_mode``: the cell will run compiled (the backend's ``mode="graph"``), else eagerly.

    ``random_weight``: CTRW's random weight x * (mu + sigma eps) (Eq. 4) before a named ``nn.Dense`` (shape
    (in_channels,)) or ``nn.Conv2d`` (shape ``input_shape``: its input's (C, H, W); the first convolution weights
    the image), or on the cell's input (``"input"``, eager cells only: a compiled cell cannot run the hook, name its
    first convolution instead); registered as ``rna_random_weight``, its eps drawn with the path;
    ``rna_sigma_bounds`` as on torch (``rna_core.bounds.scaled_sigma_bounds``)."""
    if hasattr(cell, "rna_controller"):
        raise ValueError("this cell is randomized already")
    targets = [(name, c) for name, c in cell.cells_and_names() if name and isinstance(c, nn.BatchNorm2d)] \
        if norms else []
    if norms and not targets:
        raise ValueError(f"{type(cell).__name__} has no nn.BatchNorm2d layer to randomize")
    if not norms and random_weight is None:
        raise ValueError("nothing to randomize: give norms, random_weight or both")
    space = PathSpace.uniform(norms, len(targets), layer_free) if targets else PathSpace.uniform("bn", 1)
    shape = _weight_shape(cell, random_weight, input_shape, graph_mode)
    noise_size = 0 if shape is None else int(np.prod(shape))
    layout = _bn_layout(targets, space)
    offsets = layout.offset_of()
    shared = _Shared(space.num_layers, noise_size, layout.size)
    for i, (name, bn) in enumerate(targets):
        slot = ForeignSlot(bn.num_features, space.candidates[i], i, graph_mode, shared)
        key = _bn_key(space.candidates[i])
        if key is not None:  # the BN candidate: its slice of APART's delta, the layer's affine and statistics
            target = getattr(slot, key)
            target.offset = offsets[f"{name}.{key}"]
            for mine, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                                 ("running_var", "moving_variance")):
                if getattr(target, mine, None) is not None and getattr(bn, theirs, None) is not None:
                    getattr(target, mine).copy_(getattr(bn, theirs).value())
        _replace(cell, name, slot)
    if not graph_mode:  # a compiled function would parse the hook into its graph
        cell.register_forward_pre_hook(_draw)
    if shape is not None:
        weight = RandomWeight(shape, 0)
        cell.insert_child_to_cell("rna_random_weight", weight)
        if random_weight == "input":  # after the draw's hook: the noise of this forward
            cell.register_forward_pre_hook(_times_random_weight(weight, shared))
        else:
            _replace(cell, random_weight, Weighted(_child(cell, random_weight), weight, shared))
        cell.rna_sigma_bounds = scaled_sigma_bounds(noise_size)
    unique_parameter_names(cell)
    cell.rna_controller = DrawController(space, np.random.default_rng(seed), noise_size)
    cell.rna_space, cell.rna_shared, cell.rna_graph_mode = space, shared, graph_mode
    cell.rna_bn_layout = layout
    return cell


def _child(cell: nn.Cell, name: str) -> nn.Cell | None:
    """The sub-cell at dotted path ``name``, or None."""
    for part in name.split("."):
        cell = cell._cells.get(part) if cell is not None else None
    return cell


def _weight_shape(cell: nn.Cell, where: str | None, input_shape, graph_mode: bool) -> tuple[int, ...] | None:
    """The shape of the random weight ``randomize`` places at ``where`` (None: no weight)."""
    if where is None:
        return None
    target = None
    if where == "input":
        if graph_mode:
            raise ValueError("random_weight='input' runs as a forward hook, which a compiled cell cannot run: name "
                             "the cell's first convolution instead (random_weight='conv1', input_shape=(C, H, W)), "
                             "which weights the same image")
    else:
        target = _child(cell, where)
        if target is None:
            raise ValueError(f"random_weight={where!r}: the cell has no sub-cell of that name")
    kind = ("linear" if isinstance(target, nn.Dense) else "conv" if isinstance(target, nn.Conv2d)
            else type(target).__name__)
    return user_weight_shape(where, kind, getattr(target, "in_channels", None), input_shape)


class Adopted(nn.Cell):
    """Any classifier cell seen as rna-core's ``Network`` (see the module docstring); ``holdable``: its draws can be
    held (rna-core's randomness, or none)."""

    def __init__(self, cell: nn.Cell, num_classes: int, in_channels: int, random: bool, graph_mode: bool,
                 world_size: int = 1) -> None:
        super().__init__()
        self.module = cell
        self.ours = hasattr(cell, "rna_controller")
        if self.ours and cell.rna_graph_mode != graph_mode:
            raise ValueError(f"the cell was randomized for {'compiled' if cell.rna_graph_mode else 'eager'} runs; "
                             f"randomize it with graph_mode={graph_mode} for this backend")
        self.controller = cell.rna_controller if self.ours else UnheldController(random)
        self.holdable = self.ours or not random
        self.graph = g.Graph(f"adopted:{type(cell).__name__}", g.Seq(()), self.controller.space.num_layers,
                             in_channels, num_classes)
        self.bn_layout = getattr(cell, "rna_bn_layout", BNLayout((), (), ()))
        self.amp = False
        self.sigma_names = ["rna_random_weight.sigma"] if hasattr(cell, "rna_sigma_bounds") else []
        self.loss_scale = 1.0
        self.graph_mode = graph_mode
        self.programs = AdoptedPrograms(self, graph_mode, world_size)
        self.last_path = np.zeros(self.controller.space.num_layers, np.int64)
        self.param_slots = candidate_owners(self)

    def construct(self, x, draw):
        if self.graph_mode or not self.ours:
            out = self.module(x)
        else:
            self.module.rna_shared.external = True  # eager: the path is this forward's draw, not the hook's
            out = self.module(x)
            self.module.rna_shared.external = False
        if self.amp:
            out = out.astype(ms.float32)
        return out

    def mixed_precision(self, dtype, loss_scale: float) -> None:
        """``Network.mixed_precision`` for the user's cell: its Conv2d / Dense cells in ``dtype``, rna-core's slots
        and the output in float32, the training loss scaled by ``loss_scale``."""
        half_precision(self, dtype)
        self.amp, self.loss_scale = True, loss_scale

    def synchronize_batch_norm(self, world_size: int) -> None:
        """SyncBN for the BN candidates of a randomized cell (the layers of ``bn_layout``), as a built network's."""
        if not self.bn_layout.names:
            raise ValueError("sync_bn: only rna-core's BN layers synchronize; randomize the cell first "
                             "(randomize(cell, 'bn') keeps it a BN model)")
        synchronize_bn(self, world_size)

    def next_draw(self):
        """The draw of the next forward, written where the cell's slots read it (a placeholder for a cell whose
        randomness rna-core does not draw); as data, so nothing is compiled in."""
        noise = Tensor(np.zeros(1, np.float32))
        if self.ours:
            self.last_path = next_draw(self.module).astype(np.int64)
        else:
            self.controller.next_draw()
        if self.graph_mode:
            return ms.mutable((Tensor(self.last_path.astype(np.int32)), noise))
        return self.last_path.astype(np.int32), noise

    def param_mask(self, path=None) -> np.ndarray:
        """``layers.used_mask`` for ``path`` (default: the last draw's)."""
        return used_mask(self.param_slots, self.last_path if path is None else path)


class AdoptedPrograms(Programs):
    """``Programs`` of an adopted cell. The APART passes cannot hand the perturbation to the slots through the
    user's ``construct(x)``: delta is written into the shared ``rna_delta`` Parameter (the gradient is taken with
    respect to it) and (groups, track) set on the shared host object for the call (read when it compiles)."""

    def _perturbed(self, key: tuple, build: Callable[[], Callable], split: bool = False) -> Callable:
        """The program ``build`` makes, called with delta in ``rna_delta`` and (groups, track) set; ``split``: its
        gradients (delta, *params) come back as (d delta, d params), as ``Programs.perturbed_grad`` gives them."""
        model, (groups, track) = self.model, key[1:]
        if not model.bn_layout.names:
            raise ValueError("APART needs rna-core's BN layers: randomize(cell, norms='bn') turns the cell's "
                             "nn.BatchNorm2d layers into them (one candidate: the model stays deterministic)")
        fn = self._once(key, build)
        shared = model.module.rna_shared

        def run(*args):
            shared.delta.copy_(args[-1])
            shared.bn = (groups, track)
            try:
                out = fn(*args[:-1])
            finally:
                shared.bn = None
            return (out[0], (out[1][0], tuple(out[1][1:]))) if split else out

        return run

    def perturbed_forward(self, groups: int, track: bool) -> Callable:
        model = self.model

        def build():
            def forward(x, draw):
                return model(x, draw)

            return forward

        return self._perturbed(("perturbed_forward", groups, track), build)

    def perturbed_grad(self, groups: int, track: bool) -> Callable:
        model = self.model

        def build():
            def loss_fn(x, y, draw):
                logits = model(x, draw)
                return ops.cross_entropy(logits, y), logits

            weights = [model.module.rna_shared.delta, *model.trainable_params()]
            grad_fn = ms.value_and_grad(loss_fn, None, weights, has_aux=True)
            if self.world_size == 1:
                return grad_fn
            reduce = self._reducer(weights)  # the mean over ranks, delta's gradient included

            def reduced(x, y, draw):
                out, grads = grad_fn(x, y, draw)
                return out, reduce(grads)

            return reduced

        return self._perturbed(("perturbed_grad", groups, track), build, split=True)


def differs_between_forwards(cell: nn.Cell, x: Tensor, tries: int = 3) -> bool:
    """True when forwards on the same input (eval mode) give different logits: the cell is randomized."""
    was = cell.training
    cell.set_train(False)
    first = cell(x).asnumpy()
    out = any(not np.array_equal(first, cell(x).asnumpy()) for _ in range(tries))
    cell.set_train(was)
    return out
