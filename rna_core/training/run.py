"""``rna_core.train``: a recipe, a backend, a run directory -> a trained, checkpointed, evaluated model: the run's
setup (data, streams, model, optimizer, resume), the loop with its callbacks (``loop``, ``callbacks``) and the
final evaluation."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import Backend, SGDConfig, Speed
from ..checkpoints import atomic_write, load_checkpoint, remove_stale_temporaries, resolve
from ..classifier import Classifier, adopt, build_classifier
from ..data import load_dataset
from ..data.loader import batches, num_batches
from ..evaluation import evaluate
from ..methods import get_method
from ..models.torchvision_names import from_torchvision, is_torchvision
from ..recipes import RECIPES, Recipe, get_recipe, saved_recipe
from ..registry import get_backend
from ..run_lock import RunLock
from .callbacks import Checkpoints, Divergence, Logging, Progress
from .loop import fit
from .state import STREAMS, RunState

# recipe keys that leave the weights unchanged (the compile and layout keys up to the rounding of another kernel order)
RESUMABLE_CHANGES = ("checkpoint_every", "log_every", "compile", "compile_mode", "channels_last", "workers")


@dataclass
class TrainResult:
    recipe: Recipe
    run_dir: Path
    checkpoint: Path
    history: list[dict]
    final: dict = field(default_factory=dict)
    classifier: Classifier | None = None


def _datasets(recipe: Recipe):
    train = load_dataset(recipe.dataset, "train", recipe.data_dir, recipe.image_size)
    test = load_dataset(recipe.dataset, "test", recipe.data_dir, recipe.image_size)
    return train.subset(recipe.train_samples), test.subset(recipe.eval_samples)


def _arch(recipe: Recipe, data) -> dict:
    arch = {"name": recipe.arch, "num_classes": data.num_classes, "in_channels": data.shape[0],
            "width": recipe.width, "mean": list(data.mean), "std": list(data.std)}
    if recipe.with_random_weight:
        arch["ctrw"] = {"position": recipe.ctrw_position, "variant": recipe.ctrw_variant,
                        "image_size": list(data.shape[1:])}
    return arch


def init_weights(checkpoint: str) -> dict[str, np.ndarray]:
    """The weights of ``init_checkpoint`` (read before any data or framework): an rna-core run, or a bare
    ``.safetensors`` file without a sidecar (another library's weights; torchvision's ResNet names are mapped to
    ours, ``models.torchvision_names``). Errors name the recipe key."""
    try:
        path = Path(checkpoint)
        if path.suffix == ".safetensors" and not path.with_suffix(".json").is_file():
            return foreign_weights(path)
        return load_checkpoint(checkpoint)[0]
    except (ValueError, OSError) as e:
        raise type(e)(f"recipe key 'init_checkpoint': {e}") from None


def foreign_weights(path: Path) -> dict[str, np.ndarray]:
    """A safetensors file of another library's weights, under rna-core's names (torchvision's mapped)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path}: not a readable safetensors file ({e})") from None
    return from_torchvision(state) if is_torchvision(state) else state


def initialise_from(clf: Classifier, checkpoint: str, verbose: bool, partial: bool = False,
                    source: dict[str, np.ndarray] | None = None) -> None:
    """Copy every entry of ``checkpoint`` (its weights ``source`` if already read) whose name and shape the model
    has (a pretrained start). Unless ``partial``, at least half of the checkpoint's entries must fit: a checkpoint
    of another architecture is an error that lists what did not match, not a silently random start."""
    source = init_weights(checkpoint) if source is None else source
    state = clf.backend.get_state(clf.model)
    taken = {k: v for k, v in source.items() if k in state and v.shape == state[k].shape}
    if not taken:
        raise ValueError(f"init_checkpoint {checkpoint} shares no parameter (name and shape) with this model")
    if not partial and len(taken) < len(source) / 2:
        missed = [f"{k} {tuple(v.shape)}" + (f" (model: {tuple(state[k].shape)})" if k in state else " (absent)")
                  for k, v in source.items() if k not in taken]
        raise ValueError(f"init_checkpoint {checkpoint}: only {len(taken)} of its {len(source)} entries fit this "
                         f"model (another architecture?); not matching: {missed[:8]}; set init_partial=true to "
                         "load the matching entries anyway")
    clf.backend.set_state(clf.model, {**state, **taken})
    if verbose:
        print(f"rna-core: initialised {len(taken)} of {len(state)} entries from {checkpoint}; "
              f"{len(source) - len(taken)} of its entries unused", file=sys.stderr)


def _check_writable(run_dir: Path) -> None:
    """The run directory exists (created here) and takes files, before any data is read."""
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(f"out_dir {run_dir} is a file, not a directory")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(e.errno, f"cannot create out_dir {run_dir}: {e.strerror}") from None
    if not os.access(run_dir, os.W_OK | os.X_OK):
        raise PermissionError(f"out_dir {run_dir} is not writable")


def default_run_dir(recipe: Recipe) -> Path:
    """``runs/<recipe>-<norms>-<method>-seed<seed>``, and where other keys differ from the built-in recipe of that
    name, ``-<8 hex digits>`` of those keys and values: another setting, another directory."""
    name = f"{recipe.name}-{recipe.norms.replace('+', '_').replace('@', 's').replace(':', '')}-{recipe.method}" \
        f"-seed{recipe.seed}"
    base = RECIPES.get(recipe.name)
    if base is not None:
        ours, theirs = json.loads(json.dumps(recipe.flat())), json.loads(json.dumps(base.flat()))
        changed = {k: v for k, v in ours.items() if theirs.get(k) != v and k not in ("norms", "method", "seed")}
        if changed:
            name += "-" + hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:8]
    return Path("runs") / name


def _existing_run(run_dir: Path, resume: bool) -> bool:
    """Whether ``run_dir`` holds a run to resume (read under the run lock); a run without ``resume`` and a
    ``resume`` without a run are errors."""
    has_ckpt = (run_dir / "latest.json").is_file()
    if has_ckpt and not resume:
        raise FileExistsError(f"{run_dir} already holds a run; pass resume=True (--resume) or another out_dir")
    if resume and not has_ckpt:
        raise FileNotFoundError(f"cannot resume: {run_dir} holds no checkpoint (no latest.json)")
    return has_ckpt


def _resolved(recipe: Recipe) -> dict:
    """The recipe's flat keys as JSON holds them, ``random_weight`` resolved (null and a ctrw method is true)."""
    return {**json.loads(json.dumps(recipe.flat())), "random_weight": recipe.with_random_weight}


def _resume(state: RunState, be: Backend) -> None:
    """Weights, momentum, streams, history and place of the run directory's latest checkpoint (same recipe but for
    ``RESUMABLE_CHANGES``)."""
    weights, opt_state, meta = load_checkpoint(state.run_dir)
    wanted, saved = (_resolved(r) for r in (state.recipe, saved_recipe(meta, state.run_dir)))
    diff = sorted(k for k in wanted if saved.get(k) != wanted[k] and k not in RESUMABLE_CHANGES)
    if diff:
        raise ValueError(f"cannot resume {state.run_dir}: recipe differs in {diff}")
    be.set_state(state.clf.model, weights)
    be.set_state(state.clf.model, opt_state, optimizer=state.optimizer)
    for name in STREAMS:
        _restore(state.streams[name], meta["rng"].get(name), f"{state.run_dir}: sidecar key 'rng.{name}'")
    state.history, state.start_epoch = meta["history"], meta["epoch"] + 1
    if "partial" in meta:  # a mid-epoch checkpoint: replay the epoch's data order, skip the steps done
        state.start_epoch, state.partial = meta["epoch"], meta["partial"]
        _restore(state.streams["data"], state.partial["data_rng"], f"{state.run_dir}: sidecar key 'partial.data_rng'")


def _restore(stream: np.random.Generator, saved: Any, where: str) -> None:
    """Set ``stream`` to a saved bit-generator state; a missing or foreign one is a ValueError naming ``where``."""
    try:
        stream.bit_generator.state = saved
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"{where} is not a saved {type(stream.bit_generator).__name__} state ({e})") from None


def _setup(recipe: Recipe, be: Backend, run_dir: Path, train_data, model: Any, resume: bool,
           init: dict[str, np.ndarray] | None) -> RunState:
    """The run's state: streams from the seed, the classifier (built, or the user's ``model`` adopted) as the speed
    keys say, its optimizer, and the checkpoint's state when resuming (else ``init``, ``init_checkpoint``'s
    weights)."""
    seeds = np.random.SeedSequence(recipe.seed).spawn(len(STREAMS))
    streams = {name: np.random.default_rng(s) for name, s in zip(STREAMS, seeds, strict=True)}
    world = be.world()
    if model is None:
        clf = build_classifier(_arch(recipe, train_data), recipe.norms, recipe.layer_free, be, streams["path"],
                               recipe.seed)
    else:
        probe, _ = next(batches(train_data, min(8, len(train_data))))
        clf = adopt(model, train_data.num_classes, train_data.shape[0], probe, backend=be)
    be.prepare(clf.model, Speed(recipe.precision, recipe.channels_last, recipe.compile, recipe.compile_mode,
                                recipe.sync_bn))
    optimizer = be.make_optimizer(clf.model, SGDConfig(recipe.lr, recipe.momentum, recipe.weight_decay))
    steps = num_batches(len(train_data), recipe.batch_size, True)
    if steps == 0:
        raise ValueError(f"{len(train_data)} training examples do not fill one batch of {recipe.batch_size}")
    state = RunState(recipe, run_dir, clf, optimizer, get_method(recipe.method), streams, world, train_data, steps)
    if resume:
        _resume(state, be)
    elif init is not None:
        initialise_from(clf, recipe.init_checkpoint, world.is_main, recipe.init_partial, source=init)
    return state


def train(recipe: str | Recipe = "quick", backend: str | Backend = "torch", out_dir: str | Path | None = None,
          resume: bool = False, progress: bool = True, evaluate_at_end: bool = True, model: Any = None,
          **overrides) -> TrainResult:
    """Train ``recipe`` (a name from ``RECIPES`` or a Recipe; ``overrides`` replace its keys) on ``backend``.

    Under ``torchrun`` / ``msrun`` every process runs this function: data parallel, one path per step for all
    ranks, rank 0 writing checkpoints and metrics (``rna_core.distributed``). Checkpoints go to ``out_dir`` after
    every epoch (and every ``checkpoint_every`` steps); ``resume=True`` continues from its latest checkpoint
    (same recipe required) and ends with the weights an uninterrupted run would have. At the end the test
    split is evaluated (clean and ``recipe.eval_attack`` under every protocol); the result is also written
    to ``out_dir/metrics.json``. The checkpoint is the last epoch's: nothing is selected on test data.

    ``model``: train the user's own module (e.g. one made by ``rna_core.torch.randomize``) instead of building
    ``recipe.arch``; the recipe's arch, width, norms and layer_free are then unused, and resuming needs the same
    module again (its checkpoint holds its state, not a recipe to rebuild it from).
    """
    recipe = get_recipe(recipe, **overrides)
    run_dir = Path(out_dir) if out_dir is not None else default_run_dir(recipe)
    _check_writable(run_dir)
    _existing_run(run_dir, resume)  # early word; checked again under the lock, which decides
    init = init_weights(recipe.init_checkpoint) if recipe.init_checkpoint and not resume else None
    be = get_backend(backend)
    world = be.world()  # data parallel under torchrun / msrun (rna_core.distributed); joined before any model exists
    with ExitStack() as held:
        if world.is_main:  # one training process per run directory; it looks into the directory once it holds it
            held.enter_context(RunLock(run_dir))
            remove_stale_temporaries(run_dir)
        has_ckpt = _existing_run(run_dir, resume)
        train_data, test_data = _datasets(recipe)
        state = _setup(recipe, be, run_dir, train_data, model, has_ckpt, init)
        fit(state, [Divergence(), Progress(progress and world.is_main), Logging(), Checkpoints()])
        if not world.is_main:  # rank 0 writes the checkpoints and evaluates
            return TrainResult(recipe, run_dir, run_dir / "latest.json", state.history, classifier=state.clf)
        result = TrainResult(recipe, run_dir, resolve(run_dir), state.history, classifier=state.clf)
        if evaluate_at_end:
            result.final = _final_evaluation(state, test_data, progress)
        return result


def _final_evaluation(state: RunState, test_data, progress: bool) -> dict:
    """The test split under the recipe's evaluation keys, written to ``metrics.json`` with the history."""
    r = state.recipe
    final = evaluate(state.clf, test_data, r.eval_attacks, r.eval_protocol, r.eval_eot, seed=r.seed,
                     batch_size=r.eval_batch_size, progress=progress, answers=r.eval_answers, answer=r.eval_answer,
                     transfer_draws=r.eval_transfer_draws)
    metrics = {"recipe": r.name, "norms": r.norms, "history": state.history, "test": final}
    atomic_write(state.run_dir / "metrics.json", json.dumps(metrics, indent=1).encode())
    return final
