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


def test_autoattack_rand_is_the_published_rand_version():
    from rna_core import attacks as A

    ce, dlr = A.autoattack_rand()
    assert (ce.name, ce.steps, ce.eot, ce.eps) == ("apgd-ce", 100, 20, 8 / 255)
    assert (dlr.name, dlr.steps, dlr.eot) == ("apgd-dlr", 100, 20)
    assert [s.name for s in A.autoattack_rand(square_queries=1000)][-1] == "square"
    assert A.parse_attack("autoattack-rand")[0] == "AutoAttack-rand"
    assert len(A.parse_attack("autoattack-rand-square")[1]) == 3


def test_early_stopping_pgd_is_a_labelled_grammar_word():
    from rna_core.attacks import parse_attack

    label, (spec,) = parse_attack("pgd-es:20", 8 / 255)
    assert label == "PGD-20-ES" and spec.early_stop and spec.steps == 20 and spec.alpha == 2 / 255
    assert parse_attack("pgd:20", 8 / 255)[1][0].early_stop is False
