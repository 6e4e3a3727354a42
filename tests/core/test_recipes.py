import pytest

from rna_core.recipes import RECIPES, Recipe, get_recipe, lr_at, recipe


def test_paper_defaults():
    r = RECIPES["paper-cifar10-rna"]
    assert (r.lr, r.momentum, r.weight_decay, r.batch_size, r.epochs) == (0.1, 0.9, 5e-4, 128, 200)
    assert (r.train_attack.steps, r.train_attack.eps, r.train_attack.alpha) == (10, 8 / 255, 2 / 255)
    assert r.norms == "bn+in" and r.method == "blackbox" and r.crop_padding == 4 and r.flip


def test_overrides_and_errors():
    r = get_recipe("quick", epochs=1, **{"train_attack.steps": 3})
    assert r.epochs == 1 and r.train_attack.steps == 3 and r.train_attack.eps == RECIPES["quick"].train_attack.eps
    with pytest.raises(KeyError, match="unknown recipe key 'epoch'"):
        get_recipe("quick", epoch=1)
    with pytest.raises(KeyError, match="train_attack.stepz"):
        get_recipe("quick", **{"train_attack.stepz": 1})
    with pytest.raises(ValueError, match="'method'"):
        get_recipe("quick", method="whitebox")
    with pytest.raises(KeyError, match="unknown recipe 'nope'"):
        get_recipe("nope")


def test_dict_round_trip():
    r = get_recipe("paper-imagenet-rna")
    assert Recipe.from_dict(r.to_dict()) == r


def test_piecewise_and_cosine():
    r = recipe(epochs=200, lr=0.1, schedule="piecewise", milestones=(0.5, 0.75))
    assert [lr_at(r, e, 0, 10) for e in (0, 99, 100, 149, 150, 199)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    c = recipe(epochs=2, lr=0.02, schedule="cosine")
    assert lr_at(c, 0, 0, 10) == pytest.approx(0.02) and lr_at(c, 1, 0, 10) == pytest.approx(0.01)


# the flat keys of every recipe before sections (100ff97): none is lost, so their sidecars load
FLAT_KEYS = {"apart_eps", "apart_groups", "apart_ratio", "arch", "attack_in_train_mode", "batch_size", "channels_last",
             "checkpoint_every", "compile", "compile_mode", "crop_padding", "ctrw_position", "ctrw_variant",
             "data_dir", "dataset", "epochs", "eval_answer", "eval_answers", "eval_attack", "eval_batch_size",
             "eval_eot", "eval_protocol", "eval_samples", "eval_transfer_draws", "flip", "image_size",
             "init_checkpoint", "init_partial", "layer_free", "log_every", "lr", "lr_gamma", "lr_min", "method",
             "milestones", "momentum", "name", "norms", "precision", "sam_rho", "schedule", "seed",
             "sigma_constraint", "sigma_lower", "sigma_upper", "sync_bn", "train_attack", "train_samples",
             "weight_decay", "width"}


# added since, with defaults: older sidecars load without them
ADDED = {"workers", "trades_beta", "eot_attack_draws", "eot_update_draws", "random_weight"}


def test_sections_keep_every_flat_key_and_both_sidecar_forms_load():
    r = get_recipe("quick", lr=0.02, apart_eps=0.3, **{"eval_attack.steps": 7})
    assert r.optimizer.lr == r.lr == 0.02 and r.options["apart"].apart_eps == r.apart_eps == 0.3
    assert r.evaluation.eval_attack.steps == 7 and r.data.dataset == "bundled" and r.model.width == 8
    assert set(r.flat()) == FLAT_KEYS | ADDED
    d = r.to_dict()
    assert set(d) == {"name", "method", "seed", "data", "model", "optimizer", "attack", "evaluation", "speed", "run",
                      "options"} and d["options"]["apart"]["apart_eps"] == 0.3
    assert Recipe.from_dict(d) == r == Recipe.from_dict(r.flat())  # sectioned, and flat as the older sidecars
    with pytest.raises(KeyError, match="unknown recipe keys \\['nope'\\]"):
        Recipe.from_dict({**r.flat(), "nope": 1})
    with pytest.raises(AttributeError, match="no key 'nope'"):
        r.nope  # noqa: B018


def test_a_ctrw_recipe_keeps_its_random_weight_under_another_method():
    """random_weight: null means "with method ctrw"; the CTRW recipes set it, so EOT training of quick-ctrw trains
    the random weight (the arch gets its entry), and a ctrw recipe without one is refused by name."""
    from rna_core.data import load_bundled
    from rna_core.training.run import _arch
    from rna_core.validation import ConfigError

    data = load_bundled("test")
    assert "ctrw" in _arch(get_recipe("quick-ctrw", method="eot"), data)
    assert "ctrw" in _arch(get_recipe("quick", method="ctrw"), data)  # null: the method decides
    assert "ctrw" not in _arch(get_recipe("quick"), data)
    assert "ctrw" not in _arch(get_recipe("quick-ctrw", method="madry", random_weight=None), data)
    assert get_recipe("quick", random_weight=True).with_random_weight
    with pytest.raises(ConfigError, match="'random_weight' is false, but method 'ctrw'"):
        get_recipe("quick-ctrw", random_weight=False)


def test_the_environment_overrides_every_recipe_after_the_callers_keys(monkeypatch, capsys):
    from rna_core.validation import ConfigError

    monkeypatch.setenv("RNA_SET", "epochs=1 train_samples=256 arch=small_cnn train_attack.steps=2")
    r = get_recipe("quick", epochs=4, lr=0.05)
    assert (r.epochs, r.train_samples, r.arch, r.train_attack.steps, r.lr) == (1, 256, "small_cnn", 2, 0.05)
    assert get_recipe(RECIPES["smoke"]).epochs == 1
    assert "RNA_SET overrides every recipe" in capsys.readouterr().err
    monkeypatch.setenv("RNA_SET", "epochs")
    with pytest.raises(ConfigError, match="RNA_SET takes key=value"):
        get_recipe("quick")
    monkeypatch.setenv("RNA_SET", "epoch=1")
    with pytest.raises(KeyError, match="unknown recipe key 'epoch'"):
        get_recipe("quick")
    monkeypatch.delenv("RNA_SET")
    assert get_recipe("quick") is RECIPES["quick"]


def test_each_method_states_its_passes_per_training_image():
    """The training cost methods are compared at: steps + 1 for an attack-then-update method, K steps + M for EOT
    training, steps + 2 for TRADES (its update differentiates two forwards), 2 for SAM, 1 + ratio for APART."""
    from rna_core.methods import passes_per_image

    quick = get_recipe("quick")  # PGD-5 training attack
    assert [passes_per_image(quick.replace(method=m)) for m in ("clean", "madry", "blackbox", "ctrw", "trades")] \
        == [1, 6, 6, 6, 7]
    assert passes_per_image(quick.replace(method="eot")) == 5 * 8 + 1
    assert passes_per_image(quick.replace(method="eot", eot_attack_draws=1, eot_update_draws=2)) == 7
    apart = get_recipe("quick-apart")
    assert passes_per_image(apart) == 1 + apart.apart_ratio and passes_per_image(get_recipe("quick-sam")) == 2
