"""CTRW trained end to end on MindSpore in GRAPH_MODE: sigma ends inside its bounds (the step-level promises of
every method, on both modes, live in tests/contract)."""

import rna_core
from rna_core.registry import get_backend


def test_train_ctrw_end_to_end_graph_mode(tmp_path):
    res = rna_core.train("quick-ctrw", get_backend("mindspore", mode="graph"), tmp_path, progress=False, width=4,
                         arch="small_cnn", train_samples=128, batch_size=64, epochs=1, eval_samples=32, eval_eot=2,
                         **{"train_attack.steps": 2, "eval_attack.steps": 2})
    assert {"clean", "PGD-2/paper", "PGD-2/adaptive"} <= set(res.final)
    total = res.classifier.sigmas()["ctrw.sigma"].sum()
    assert res.recipe.sigma_lower - 1e-2 <= total <= res.recipe.sigma_upper + 1e-2
