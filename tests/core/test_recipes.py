import pytest

from rna_core.recipes import RECIPES, Recipe, get_recipe, lr_at


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
    r = Recipe(epochs=200, lr=0.1, schedule="piecewise", milestones=(0.5, 0.75))
    assert [lr_at(r, e, 0, 10) for e in (0, 99, 100, 149, 150, 199)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    c = Recipe(epochs=2, lr=0.02, schedule="cosine")
    assert lr_at(c, 0, 0, 10) == pytest.approx(0.02) and lr_at(c, 1, 0, 10) == pytest.approx(0.01)
