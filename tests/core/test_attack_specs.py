"""Attack specs reject what no backend can run, with errors that name the problem."""

import pytest

from rna_core.attacks import AttackSpec, apgd_t, pgd


def test_bad_specs_are_rejected_in_the_core():
    with pytest.raises(ValueError, match="unknown attack 'pgdx'"):
        AttackSpec("pgdx")
    with pytest.raises(ValueError, match="targeted cw is not available"):
        AttackSpec("cw", targeted=True)
    with pytest.raises(ValueError, match="square is implemented for the L-inf norm only"):
        AttackSpec("square", norm="l2")
    assert AttackSpec("square", eot=4).label == "Square+EOT4"
    assert pgd(5).replace(targeted=True).targeted and apgd_t(5).name == "apgd-t"
