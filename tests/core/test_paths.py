import numpy as np
import pytest

from rna_core.controller import DrawController
from rna_core.paths import PathSpace


def test_size_is_exact():
    assert PathSpace.uniform("bn+in", 20).size == 2**20
    assert PathSpace.uniform("bn+in+gn:2", 53).size == 3**53  # beyond float precision, still exact
    assert PathSpace.uniform("bn+in", 20, layer_free=False).size == 2


def test_sampling_is_uniform_and_in_range():
    space = PathSpace.uniform("bn+in+ln", 10)
    paths = space.sample(np.random.default_rng(0), 30000)
    assert paths.shape == (30000, 10) and paths.min() == 0 and paths.max() == 2
    freq = np.stack([(paths == k).mean(0) for k in range(3)])
    assert np.abs(freq - 1 / 3).max() < 0.02


def test_tied_paths_are_constant():
    paths = PathSpace.uniform("bn+in", 5, layer_free=False).sample(np.random.default_rng(1), 100)
    assert (paths == paths[:, :1]).all() and len(np.unique(paths[:, 0])) == 2


def test_same_seed_same_paths():
    space = PathSpace.uniform("bn+in", 20)
    assert (space.sample(np.random.default_rng(3), 5) == space.sample(np.random.default_rng(3), 5)).all()


def test_hamming_and_validate():
    space = PathSpace.uniform("bn+in", 4)
    assert PathSpace.hamming([0, 1, 1, 0], [1, 1, 0, 0]) == 2
    with pytest.raises(ValueError, match="out of range"):
        space.validate([0, 2, 0, 0])
    with pytest.raises(ValueError, match="must be 4 integers"):
        space.validate([0, 1])
    with pytest.raises(ValueError, match="not constant"):
        PathSpace.uniform("bn+in", 3, layer_free=False).validate([0, 1, 0])


def test_json_round_trip():
    space = PathSpace((tuple(PathSpace.uniform("bn+gn@1-4", 1).candidates[0]),
                       tuple(PathSpace.uniform("in/na", 1).candidates[0])), layer_free=True)
    again = PathSpace.from_json(space.to_json())
    assert again == space and again.describe([3, 0]) == ["gn@4", "in/na"]


def test_controller_policies():
    ctrl = DrawController(PathSpace.uniform("bn+in", 20), np.random.default_rng(0))
    free = {tuple(ctrl.next_draw().path) for _ in range(10)}
    assert len(free) == 10  # resample: a fresh path per forward
    with ctrl.frozen() as (p, _):
        assert all((ctrl.next_draw().path == p).all() for _ in range(5))
        with ctrl.fixed(np.zeros(20, int)):
            assert (ctrl.next_draw().path == 0).all()
        assert (ctrl.next_draw().path == p).all()
    seen = []
    with ctrl.observe(seen.append):
        ctrl.next_draw()
    after = [tuple(ctrl.next_draw().path) for _ in range(3)]
    assert len(seen) == 1 and len(set(after)) == 3  # observer gone, resampling again
