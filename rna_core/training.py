"""``rna_core.train``: a recipe, a backend, a run directory -> a trained, checkpointed, evaluated model."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .backend import Backend, SGDConfig, Speed
from .checkpoints import atomic_write, load_checkpoint, remove_stale_temporaries, resolve, rng_state, save_checkpoint
from .classifier import Classifier, adopt, build_classifier
from .data import load_dataset
from .data.loader import batches, num_batches, prefetch
from .evaluation import evaluate
from .methods import Step, get_method
from .recipes import Recipe, get_recipe, lr_at
from .registry import get_backend
from .run_lock import RunLock

STREAMS = ("data", "path", "attack", "eval")
# recipe keys that leave the weights unchanged (the compile and layout keys up to the rounding of another kernel order)
RESUMABLE_CHANGES = ("checkpoint_every", "log_every", "compile", "compile_mode", "channels_last")


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
    if recipe.method == "ctrw":
        arch["ctrw"] = {"position": recipe.ctrw_position, "variant": recipe.ctrw_variant,
                        "image_size": list(data.shape[1:])}
    return arch


def initialise_from(clf: Classifier, checkpoint: str, verbose: bool, partial: bool = False) -> None:
    """Copy every entry of ``checkpoint`` whose name and shape the model has (a pretrained start). Unless
    ``partial``, at least half of the checkpoint's entries must fit: a checkpoint of another architecture is an
    error that lists what did not match, not a silently random start."""
    source, _, _ = load_checkpoint(checkpoint)
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


class TrainingDiverged(FloatingPointError):
    """The loss or the weights became non-finite; the run directory keeps the last finite checkpoint."""


def default_run_dir(recipe: Recipe) -> Path:
    return Path("runs") / f"{recipe.name}-{recipe.norms.replace('+', '_').replace('@', 's').replace(':', '')}" \
        f"-{recipe.method}-seed{recipe.seed}"


def train(recipe: str | Recipe = "quick", backend: str | Backend = "torch", out_dir: str | Path | None = None,
          resume: bool = False, progress: bool = True, evaluate_at_end: bool = True, model: Any = None,
          **overrides) -> TrainResult:
    """Train ``recipe`` (a name from ``RECIPES`` or a Recipe; ``overrides`` replace its fields) on ``backend``.

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
    has_ckpt = (run_dir / "latest.json").is_file()
    if has_ckpt and not resume:
        raise FileExistsError(f"{run_dir} already holds a run; pass resume=True (--resume) or another out_dir")
    if resume and not has_ckpt:
        raise FileNotFoundError(f"cannot resume: {run_dir} holds no checkpoint (no latest.json)")
    _check_writable(run_dir)
    train_ds, test_ds = _datasets(recipe)
    seeds = np.random.SeedSequence(recipe.seed).spawn(len(STREAMS))
    streams = {name: np.random.default_rng(s) for name, s in zip(STREAMS, seeds, strict=True)}
    be = get_backend(backend)
    world = be.world()  # data parallel under torchrun / msrun (rna_core.distributed); joined before any model exists
    with ExitStack() as held:
        if world.is_main:  # one training process per run directory
            held.enter_context(RunLock(run_dir))
            remove_stale_temporaries(run_dir)
        if model is None:
            clf = build_classifier(_arch(recipe, train_ds), recipe.norms, recipe.layer_free, be, streams["path"],
                                   recipe.seed)
        else:
            clf = adopt(model, train_ds.num_classes, train_ds.shape[0], backend=be)
        progress = progress and world.is_main
        be.prepare(clf.model, Speed(recipe.precision, recipe.channels_last, recipe.compile, recipe.compile_mode,
                                    recipe.sync_bn))
        optimizer = be.make_optimizer(clf.model, SGDConfig(recipe.lr, recipe.momentum, recipe.weight_decay))
        history: list[dict] = []
        start_epoch, partial = 0, None
        if has_ckpt:
            state, opt_state, meta = load_checkpoint(run_dir)
            wanted = json.loads(json.dumps(recipe.to_dict()))
            diff = sorted(k for k in wanted if meta["recipe"].get(k) != wanted[k] and k not in RESUMABLE_CHANGES)
            if diff:
                raise ValueError(f"cannot resume {run_dir}: recipe differs in {diff}")
            be.set_state(clf.model, state)
            be.set_state(clf.model, opt_state, optimizer=optimizer)
            for name in STREAMS:
                streams[name].bit_generator.state = meta["rng"][name]
            history, start_epoch = meta["history"], meta["epoch"] + 1
            if "partial" in meta:  # a mid-epoch checkpoint: replay the epoch's data order, skip the steps done
                start_epoch, partial = meta["epoch"], meta["partial"]
                streams["data"].bit_generator.state = partial["data_rng"]
        if recipe.init_checkpoint and not has_ckpt:
            initialise_from(clf, recipe.init_checkpoint, world.is_main, recipe.init_partial)
        method = get_method(recipe.method)
        steps_per_epoch = num_batches(len(train_ds), recipe.batch_size, True)
        if steps_per_epoch == 0:
            raise ValueError(f"{len(train_ds)} training examples do not fill one batch of {recipe.batch_size}")

        def save(epoch: int, inside: dict | None = None) -> None:
            """A checkpoint after epoch ``epoch``, or inside it (``inside``: steps done, running sums, and the data
            stream's state at the epoch's start)."""
            meta = {"recipe": recipe.to_dict(), "arch": clf.arch, "path_space": clf.space.to_dict(),
                    "backend": be.name, "epoch": epoch, "history": history,
                    "rng": {name: rng_state(g) for name, g in streams.items()}}
            tag = f"ckpt-e{epoch:04d}"
            if inside is not None:
                meta["partial"] = inside
                tag += f"-s{inside['step']:06d}"
            if world.is_main:
                state = be.get_state(clf.model)
                bad = [k for k, v in state.items() if not np.isfinite(v).all()]
                if bad:
                    raise TrainingDiverged(f"non-finite weights in {bad[:5]} at epoch {epoch}; not checkpointed: "
                                           f"{run_dir} keeps the last finite checkpoint, if any")
                save_checkpoint(run_dir, tag, state, be.get_state(clf.model, optimizer=optimizer), meta)

        def read(sums: list, first: int, last: int, lr: float) -> tuple[float, float, float]:
            """The running sums as numbers (one host read); raises if the loss became non-finite."""
            loss_sum, correct, seen = (float(v) for v in sums)
            if not math.isfinite(loss_sum):
                raise TrainingDiverged(f"the training loss became {loss_sum} at epoch {epoch}, between steps {first} "
                                       f"and {last} (lr {lr:.3g}); {run_dir} keeps the last finite checkpoint, if "
                                       "any: lower lr and resume from it or start again")
            return loss_sum, correct, seen

        for epoch in range(start_epoch, recipe.epochs):
            t0 = time.perf_counter()
            data_rng = rng_state(streams["data"])  # the epoch's order and augmentation start here
            skip = partial["step"] if partial else 0
            sums = list(partial["sums"]) if partial else [0.0, 0.0, 0.0]  # loss * count, correct, count
            partial = None
            bar = tqdm(prefetch(batches(train_ds, recipe.batch_size, streams["data"], shuffle=True,
                                        padding=recipe.crop_padding, flip=recipe.flip, drop_last=True)),
                       total=steps_per_epoch, desc=f"{recipe.name} [{recipe.norms}] epoch {epoch + 1}/{recipe.epochs}",
                       disable=not progress, leave=False, initial=skip)
            last_read = skip
            for i, (x, y) in enumerate(bar):
                if i < skip:  # drawn again (same order, same augmentation), already trained on
                    continue
                lr = lr_at(recipe, epoch, i, steps_per_epoch)
                res = method.step(Step(clf, optimizer, recipe, streams["attack"], lr), *world.shard(x, y))
                sums = [sums[0] + res.loss * res.count, sums[1] + res.correct, sums[2] + res.count]
                if (i + 1) % recipe.log_every == 0 or i + 1 == steps_per_epoch:
                    sums = list(read(sums, last_read, i, lr))
                    last_read = i + 1
                    bar.set_postfix(loss=f"{sums[0] / sums[2]:.3f}", acc=f"{sums[1] / sums[2]:.3f}", lr=f"{lr:.3g}")
                if recipe.checkpoint_every and (i + 1) % recipe.checkpoint_every == 0 and i + 1 < steps_per_epoch:
                    sums = list(read(sums, last_read, i, lr))
                    last_read = i + 1
                    save(epoch, {"step": i + 1, "sums": sums, "data_rng": data_rng})
            loss_sum, correct, seen = sums
            history.append({"epoch": epoch, "lr": lr_at(recipe, epoch, steps_per_epoch - 1, steps_per_epoch),
                            "train_loss": loss_sum / seen, "train_acc": correct / seen,
                            "seconds": time.perf_counter() - t0})
            save(epoch)
        if not world.is_main:  # rank 0 writes the checkpoints and evaluates
            return TrainResult(recipe, run_dir, run_dir / "latest.json", history, classifier=clf)
        result = TrainResult(recipe, run_dir, resolve(run_dir), history, classifier=clf)
        if evaluate_at_end:
            result.final = evaluate(clf, test_ds, recipe.eval_attacks, recipe.eval_protocol, recipe.eval_eot,
                                    streams["eval"], recipe.eval_batch_size, progress, recipe.eval_answers,
                                    recipe.eval_answer, recipe.eval_transfer_draws)
            metrics = {"recipe": recipe.name, "norms": recipe.norms, "history": history, "test": result.final}
            atomic_write(run_dir / "metrics.json", json.dumps(metrics, indent=1).encode())
        return result
