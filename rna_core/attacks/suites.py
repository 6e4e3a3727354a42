"""Attack suites: AutoAttack's standard and rand versions and the papers' table columns, with their grammar words."""

from __future__ import annotations

from .loops.apgd import apgd, apgd_t
from .loops.cw import cw
from .loops.deepfool import deepfool
from .loops.pgd import fgsm, mifgsm, pgd
from .loops.square import square
from .registry import Word, register_word
from .specs import AttackSpec


def autoattack(eps: float = 8 / 255, steps: int = 100) -> list[AttackSpec]:
    """AutoAttack's "standard" gradient part, scored per example as the worst of its members: APGD-CE + APGD-T
    (Croce & Hein 2020; FAB-T and Square are left out)."""
    return [apgd("ce", steps, eps), apgd_t(steps, eps)]


def autoattack_rand(eps: float = 8 / 255, steps: int = 100, eot: int = 20, square_queries: int = 0
                    ) -> list[AttackSpec]:
    """AutoAttack's "rand" version for randomized defenses: APGD-CE and APGD-DLR, ``steps`` iterations, every
    gradient averaged over ``eot`` draws (AutoAttack: 100 iterations, EOT-20), and with ``square_queries`` > 0
    EOT-Square (a square is kept only if the margin averaged over ``eot`` draws improves) as an optional member."""
    members = [apgd("ce", steps, eps, eot), apgd("dlr", steps, eps, eot)]
    return members + ([square(square_queries, eps, eot=eot)] if square_queries else [])


def paper_suite(eps: float = 8 / 255, cw_steps: int = 1000) -> dict[str, list[AttackSpec]]:
    """The papers' table columns with their settings: FGSM, PGD-20 (step 2/255), CW (lr 0.01), MIFGSM (5 steps,
    decay 1), DeepFool (50 steps, overshoot 0.02), AutoAttack."""
    return {"FGSM": [fgsm(eps)], "PGD-20": [pgd(20, eps, eps / 4)], "CW": [cw(cw_steps)],
            "MIFGSM": [mifgsm(5, eps, eps / 4)], "DeepFool": [deepfool(50)], "AutoAttack": autoattack(eps)}


register_word(Word("autoattack", lambda eps, n: autoattack(eps, n or 100), "AutoAttack's APGD-CE + APGD-T (n = 100)",
                   label=lambda specs: "AutoAttack"))
register_word(Word("autoattack-rand", lambda eps, n: autoattack_rand(eps, n or 100),
                   "AutoAttack-rand: APGD-CE + APGD-DLR with EOT-20 (n = 100)", label=lambda specs: "AutoAttack-rand"))
register_word(Word("autoattack-rand-square", lambda eps, n: autoattack_rand(eps, n or 100, square_queries=1000),
                   "AutoAttack-rand with EOT-Square (1,000 queries)", label=lambda specs: "AutoAttack-rand+Square"))
