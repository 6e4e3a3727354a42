"""Bad configuration never gives a silently wrong result: each bad value is refused when the recipe or attack is
built, with a message that names the key (or the attack grammar) and the value."""

import math
import os

import pytest

from rna_core import attacks as A
from rna_core.attacks import parse_attack
from rna_core.recipes import Recipe, get_recipe
from rna_core.validation import ConfigError

BAD_RECIPES = [
    ("epochs", 1.5, "'epochs' must be an integer"),
    ("epochs", "abc", "'epochs' must be an integer"),
    ("epochs", 0, "'epochs' must be in"),
    ("epochs", True, "'epochs' must be an integer"),
    ("batch_size", -8, "'batch_size' must be in"),
    ("lr", math.nan, "'lr' must be a finite number"),
    ("lr", math.inf, "'lr' must be a finite number"),
    ("lr", 0, "'lr' must be in"),
    ("lr", "fast", "'lr' must be a number"),
    ("momentum", 1.0, "'momentum' must be in"),
    ("momentum", -0.1, "'momentum' must be in"),
    ("weight_decay", -1e-4, "'weight_decay' must be in"),
    ("layer_free", "no", "'layer_free' must be true or false"),
    ("layer_free", 2, "'layer_free' must be true or false"),
    ("sync_bn", "yes", "'sync_bn' must be true or false"),
    ("train_samples", -1, "'train_samples' must be in"),
    ("train_samples", 0, "'train_samples' must be in"),
    ("eval_samples", 0, "'eval_samples' must be in"),
    ("width", 0, "'width' must be in"),
    ("image_size", 0, "'image_size' must be in"),
    ("lr_gamma", 0, "'lr_gamma' must be in"),
    ("lr_gamma", 1.5, "'lr_gamma' must be in"),
    ("crop_padding", -1, "'crop_padding' must be in"),
    ("seed", -3, "'seed' must be in"),
    ("seed", 0.5, "'seed' must be an integer"),
    ("milestones", [0.5, 1.5], "'milestones' must be in"),
    ("milestones", "0.5", "'milestones' must be a list"),
    ("method", "pgd", "'method' must be one of"),
    ("schedule", "step", "'schedule' must be one of"),
    ("sigma_constraint", "clip", "'sigma_constraint' must be one of"),
    ("eval_answer", "per-image", "'eval_answer' must be one of"),
    ("ctrw_variant", "middle", "'ctrw_variant' must be one of"),
    ("eval_protocol", "fixed-path", "'eval_protocol'"),
    ("norms", "bn+xn", "'norms'"),
    ("norms", "gn:0", "recipe key 'norms': group argument must be >= 1"),
    ("norms", "gn@64-1", "recipe key 'norms': bad range in 'gn@64-1'"),
    ("norms", "gn@1-3", "recipe key 'norms': bad range in 'gn@1-3'"),
    ("dataset", "cifar11", "'dataset' must be one of"),
    ("train_attack.eps", math.inf, "eps must be finite"),
    ("eval_eot", 0, "'eval_eot' must be in"),
    ("eval_answers", 0, "'eval_answers' must be in"),
    ("eval_transfer_draws", -2, "'eval_transfer_draws' must be in"),
    ("apart_ratio", 0, "'apart_ratio' must be in"),
    ("apart_groups", 0, "'apart_groups' must be in"),
    ("sam_rho", -0.1, "'sam_rho' must be in"),
    ("checkpoint_every", -1, "'checkpoint_every' must be in"),
    ("sigma_lower", -1.0, "'sigma_lower' must be in"),
    ("dataset", 3, "'dataset' must be a string"),
    ("data_dir", 5, "'data_dir' must be a string"),
    ("train_attack.steps", 0, "'steps' must be in"),
    ("train_attack.steps", 1.5, "'steps' must be an integer"),
    ("train_attack.eps", math.nan, "'eps' must be a finite number"),
    ("train_attack.eps", -0.1, "eps and alpha must be >= 0"),
    ("train_attack.eot", 0, "'eot' must be in"),
    ("train_attack.norm", "l1", "norm must be one of"),
    ("train_attack.random_start", "no", "'random_start' must be true or false"),
    ("eval_attack.restarts", 0, "'restarts' must be in"),
]


@pytest.mark.parametrize("key, value, message", BAD_RECIPES, ids=[f"{k}={v!r}" for k, v, _ in BAD_RECIPES])
def test_bad_recipe_value_is_refused_naming_the_key(key, value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        get_recipe("quick", **{key: value})


def test_unknown_nested_key_lists_nothing_silently():
    with pytest.raises(KeyError, match="train_attack.stepz"):
        get_recipe("quick", **{"train_attack.stepz": 3})


def test_no_training_attack_for_an_adversarial_method():
    with pytest.raises(ConfigError, match="'train_attack' is null"):
        get_recipe("quick", train_attack=None)
    assert get_recipe("quick", method="clean", train_attack=None).train_attack is None


def test_sidecar_recipes_are_checked_too():
    good = get_recipe("quick").to_dict()
    with pytest.raises(ConfigError, match="'epochs' must be an integer"):
        Recipe.from_dict({**good, "epochs": "4"})


def test_valid_forms_are_normalised():
    r = get_recipe("quick", layer_free=0, lr=1, milestones=[0.5])
    assert r.layer_free is False and isinstance(r.lr, float) and r.milestones == (0.5,)


BAD_ATTACKS = ["pgd:0", "pgd:abc", "square:-5", "pgd:1.5", "fgsm:3", "pgd:", "nosuchattack", "apgd-ce:0"]


@pytest.mark.parametrize("text", BAD_ATTACKS)
def test_bad_attack_string_names_the_grammar(text):
    with pytest.raises(ConfigError, match="name:count|unknown attack"):
        parse_attack(text)


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": 0}, "'steps' must be in"), ({"eot": 0}, "'eot' must be in"), ({"p_init": 0.0}, "'p_init'"),
    ({"rho": 1.5}, "'rho'"), ({"steps": "20"}, "'steps' must be an integer"), ({"targeted": "yes"}, "targeted"),
], ids=["steps=0", "eot=0", "p_init=0", "rho=1.5", "steps=str", "targeted=str"])
def test_bad_attack_spec_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        A.AttackSpec(**{"name": "pgd", **kwargs})


@pytest.mark.parametrize("argv", [
    ["evaluate", "run", "--samples", "0"], ["evaluate", "run", "--samples", "-5"], ["evaluate", "run", "--eot", "0"],
    ["evaluate", "run", "--answers", "x"], ["evaluate", "run", "--trials", "-1"], ["sanity", "run", "--trials", "0"],
    ["evaluate", "run", "--transfer-draws", "0"], ["evaluate", "run", "--protocol", "fixed-path"],
], ids=lambda a: " ".join(a[2:]))
def test_cli_counts_are_checked_before_anything_runs(argv, capsys):
    from rna_core.apps.cli import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and argv[2] in capsys.readouterr().err


@pytest.mark.parametrize("setting, message", [
    ("epochs=1.5", "'epochs' must be an integer"), ("lr=nan", "'lr' must be a number"),
    ("layer_free=no", "'layer_free' must be true or false"), ("eval_attack.steps=0", "'steps' must be in"),
], ids=["epochs", "lr", "layer_free", "eval_attack.steps"])
def test_cli_set_values_fail_before_training(setting, message, capsys, tmp_path):
    from rna_core.apps.cli import main

    assert main(["train", "--set", setting, "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_two_processes_never_share_a_run_directory(tmp_path):
    from rna_core.run_lock import RunLock, RunLocked

    with RunLock(tmp_path), pytest.raises(RunLocked, match=rf"in use by another training process \(PID {os.getpid()}"):
        with RunLock(tmp_path):
            pass
    with RunLock(tmp_path):  # released on exit
        pass


def test_run_directory_problems_fail_before_any_data_is_read(tmp_path):
    import rna_core

    with pytest.raises(FileNotFoundError, match="cannot resume: .* holds no checkpoint"):
        rna_core.train("quick", "torch", tmp_path / "fresh", resume=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        rna_core.train("quick", "torch", tmp_path / "file")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if not os.access(locked, os.W_OK):  # root may write anywhere
        with pytest.raises(PermissionError, match="not writable"):
            rna_core.train("quick", "torch", locked / "run")


@pytest.mark.parametrize("name", ["../elsewhere", "/etc/passwd", "sub/ckpt", "..", ""])
def test_latest_json_may_only_name_files_in_its_run(tmp_path, name):
    import json

    from rna_core.checkpoints import load_checkpoint

    (tmp_path / "latest.json").write_text(json.dumps({"checkpoint": name}))
    with pytest.raises(ValueError, match="must lie in their own run directory"):
        load_checkpoint(tmp_path)


def test_checkpoint_files_follow_the_umask(tmp_path):
    from rna_core.checkpoints import atomic_write

    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "f.json", b"{}")
    finally:
        os.umask(old)
    assert (tmp_path / "f.json").stat().st_mode & 0o777 == 0o644


def test_unknown_attack_field_is_named_by_api_and_cli(tmp_path, capsys):
    from rna_core.apps.cli import main

    with pytest.raises(KeyError, match=r"unknown key\(s\) \['epz'\] in recipe key 'train_attack'"):
        get_recipe("quick", train_attack={"epz": 3})
    assert main(["train", "--set", "train_attack.epz=3", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "train_attack" in capsys.readouterr().err


def test_an_unbounded_eps_is_kept_for_minimum_norm_attacks():
    assert math.isinf(A.AttackSpec.from_dict({"name": "cw", "eps": math.inf}).eps)
    with pytest.raises(ValueError, match="eps must be finite"):
        A.AttackSpec.from_dict({"name": "pgd", "eps": math.inf})


@pytest.mark.parametrize("text, message", [
    ("{not json", "is not a readable latest.json"), ("[1, 2]", "holds a list, not a JSON object")])
def test_broken_latest_json_names_the_file(tmp_path, text, message):
    from rna_core.checkpoints import load_checkpoint

    (tmp_path / "latest.json").write_text(text)
    with pytest.raises(ValueError, match=message) as e:
        load_checkpoint(tmp_path)
    assert str(tmp_path / "latest.json") in str(e.value)


@pytest.mark.parametrize("change, message", [
    ({"epoch": "3"}, "sidecar key 'epoch' .* must be a int"), ({"history": {}}, "'history' .* must be a list"),
    ({"rng": None}, "'rng' .* must be a dict"), ({"history": [{"train_loss": "x"}]}, "'epoch' / 'history'"),
    ({"partial": {"step": 1, "sums": [0, 0, 0], "data_rng": []}}, "'partial.data_rng'"), ({"epoch": True}, "int"),
], ids=["epoch-str", "history-dict", "rng-null", "history-entry", "partial-rng", "epoch-bool"])
def test_a_sidecar_of_wrong_types_is_refused_on_load(tmp_path, change, message):
    import json

    import numpy as np

    from rna_core.checkpoints import load_checkpoint, save_checkpoint

    meta = {"recipe": {}, "arch": {}, "path_space": {}, "epoch": 0, "history": [], "rng": {}}
    save_checkpoint(tmp_path, "ckpt-e0000", {"w": np.zeros(2, np.float32)}, {}, meta)
    sidecar = tmp_path / "ckpt-e0000.json"
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), **change}))
    with pytest.raises(ValueError, match=message) as e:
        load_checkpoint(tmp_path)
    assert str(sidecar) in str(e.value)
    sidecar.write_text("{")
    with pytest.raises(ValueError, match="is not a readable checkpoint sidecar"):
        load_checkpoint(tmp_path)


def test_init_checkpoint_on_a_file_that_is_not_a_run(tmp_path):
    import rna_core

    (tmp_path / "notes.json").write_text("hello")
    with pytest.raises(ValueError, match="recipe key 'init_checkpoint': .*notes.json is not a readable"):
        rna_core.train("quick", "torch", tmp_path / "run", init_checkpoint=str(tmp_path / "notes.json"), epochs=1,
                       train_samples=8, eval_samples=8, progress=False, evaluate_at_end=False)


@pytest.mark.parametrize("payload, message", [
    ([1, 2], "holds a list, not a dict"), ({"data": [[1, 2]], "labels": [0]}, "must be N x 3072 uint8"),
    ({"labels": [0]}, "lacks 'data' or 'labels'"), (b"\x80\x02garbage", "is not a CIFAR python batch"),
], ids=["list", "wrong-shape", "no-data", "garbage"])
def test_malformed_cifar_files_are_named(tmp_path, payload, message):
    import pickle

    import numpy as np

    from rna_core.data import load_dataset

    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    if isinstance(payload, dict) and "data" in payload:
        payload = {"data": np.asarray(payload["data"], np.uint8), "labels": payload["labels"]}
    (d / "data_batch_1").write_bytes(payload if isinstance(payload, bytes) else pickle.dumps(payload, protocol=2))
    with pytest.raises(ValueError, match=message) as e:
        load_dataset("cifar10", "train", tmp_path)
    assert "data_batch_1" in str(e.value)


def test_an_image_size_that_cannot_be_honoured_is_an_error():
    from rna_core.data import load_dataset

    with pytest.raises(ValueError, match="image_size=64 cannot be honoured: bundled images are 28 x 28"):
        load_dataset("bundled", "test", image_size=64)
    assert load_dataset("bundled", "test", image_size=28).shape[1:] == (28, 28)
    with pytest.raises(ValueError, match="unknown data set 'cifar11'"):
        load_dataset("cifar11", "test", "/nowhere")


def test_a_bare_key_error_in_the_cli_names_the_key_and_where(capsys, monkeypatch):
    from rna_core.apps import cli

    def broken(args):
        return {}["rng"]

    monkeypatch.setattr(cli, "cmd_recipes", broken)
    assert cli.main(["recipes"]) == 2
    assert "missing key 'rng' (KeyError in test_bad_input.py:" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["evaluate", "RUN", "--report", "FILE/report"],
                                  ["compare", "--json", "FILE/out.json", "--out", "RUN"]])
def test_output_paths_under_a_file_fail_before_any_run_is_loaded(tmp_path, argv, capsys):
    from rna_core.apps.cli import main

    (tmp_path / "file").write_text("x")
    argv = [a.replace("RUN", str(tmp_path / "no-run")).replace("FILE", str(tmp_path / "file")) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "is a file, not a directory" in err and "no-run" not in err


def test_a_finite_loss_explosion_stops_the_run():
    from types import SimpleNamespace

    from rna_core.training.state import EXPLOSION, RunState, TrainingDiverged

    clf = SimpleNamespace(model=SimpleNamespace(num_classes=10))
    state = RunState(get_recipe("quick"), "run", clf, None, None, {}, None, None, 4)
    state.sums, state.step = [2.3 * 8, 1, 8], 1
    assert state.read() == [2.3 * 8, 1, 8]
    state.sums, state.step = [2.3 * 8 + 2.5e9 * 8, 1, 16], 2
    with pytest.raises(TrainingDiverged, match=f"exploded to a mean of 2.5e\\+09 \\(over {EXPLOSION}"):
        state.read()


def test_a_run_finished_while_this_one_started_is_not_trained_over(tmp_path, monkeypatch):
    """The race of two starts: the directory is empty at the early check, another process finishes a run there
    before this one holds the lock; the check under the lock refuses, and nothing of the run is touched."""
    from types import SimpleNamespace

    import rna_core
    from rna_core.distributed import World
    from rna_core.training import run

    run_dir = tmp_path / "run"

    def another_process_finishes(name):
        (run_dir / "latest.json").write_text('{"checkpoint": "ckpt-e0000"}')
        return SimpleNamespace(world=World)

    monkeypatch.setattr(run, "get_backend", another_process_finishes)
    with pytest.raises(FileExistsError, match="already holds a run"):
        rna_core.train("quick", "torch", run_dir, progress=False)
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock", "latest.json"]


def test_missing_plots_and_an_empty_report_fail_before_any_run_is_loaded(tmp_path, capsys, monkeypatch):
    import importlib.util

    from rna_core.apps.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    for argv in (["study", str(tmp_path / "no-run"), "transfer"], ["ctrw-report", str(tmp_path / "no-run")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "pip install 'rna-core[plots]'" in err and "no-run" not in err
    with pytest.raises(SystemExit):
        main(["evaluate", str(tmp_path / "no-run"), "--report", ""])
    assert "an empty path writes nowhere" in capsys.readouterr().err


def test_the_default_run_directory_follows_the_overrides():
    from rna_core.training import default_run_dir

    plain, other = default_run_dir(get_recipe("quick")), default_run_dir(get_recipe("quick", epochs=2))
    assert plain.name == "quick-bn_in-blackbox-seed0" and other.name.startswith(plain.name + "-")
    assert default_run_dir(get_recipe("quick", epochs=2)) == other != default_run_dir(get_recipe("quick", lr=0.1))
