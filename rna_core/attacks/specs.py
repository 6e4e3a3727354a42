"""Attack specifications: one frozen :class:`AttackSpec` per attack, the papers' settings and the attack grammar.

``eot`` > 1 averages every gradient (DeepFool: Jacobian; Square: margin) over that many forwards, each drawing the
model's randomness afresh (Athalye et al. 2018). The formulas live with the loops (``rna_core.attacks.<module>``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass

from ..validation import ConfigError, check_range, check_types

NORMS = ("linf", "l2")
NAMES = ("fgsm", "pgd", "mifgsm", "cw", "deepfool", "apgd-ce", "apgd-dlr", "apgd-t", "square")
MIN_NORM = ("cw", "deepfool")
GRADIENT_FREE = ("square",)
TARGETABLE = ("fgsm", "pgd", "mifgsm")  # ``targeted=True``: a random other class (``random_targets``)
RANDOM_START = ("pgd", "apgd-ce", "apgd-dlr", "apgd-t")


@dataclass(frozen=True)
class AttackSpec:
    """One attack's settings; fields an attack does not use are ignored by it.

    ``steps`` counts iterations (Square: queries). For the minimum-norm attacks ``eps`` is an L2 budget:
    an example counts as broken only if its perturbation's L2 norm is at most ``eps`` (``inf``: any size,
    the papers' reading). ``restarts`` > 1 runs the attack again from new random numbers and keeps, per
    example, the first run that fools the model.
    """

    name: str = "pgd"
    eps: float = 8 / 255
    alpha: float = 2 / 255
    steps: int = 20
    norm: str = "linf"
    random_start: bool = True
    restarts: int = 1
    eot: int = 1
    targeted: bool = False
    decay: float = 1.0
    c: float = 1.0
    kappa: float = 0.0
    lr: float = 0.01
    search_steps: int = 1
    overshoot: float = 0.02
    n_targets: int = 9
    rho: float = 0.75
    p_init: float = 0.8

    def __post_init__(self) -> None:
        check_types(self, "attack")
        if self.name not in NAMES:
            raise ValueError(f"unknown attack {self.name!r}; known: {NAMES}")
        if self.norm not in NORMS:
            raise ValueError(f"attack norm must be one of {NORMS}, got {self.norm!r}")
        if not self.eps >= 0 or not self.alpha >= 0:
            raise ValueError(f"attack eps and alpha must be >= 0, got eps={self.eps}, alpha={self.alpha}")
        for key in ("steps", "restarts", "eot", "search_steps", "n_targets"):
            check_range(f"attack {self.name}:", key, getattr(self, key), 1)
        for key in ("c", "kappa", "lr", "overshoot", "decay"):
            check_range(f"attack {self.name}:", key, getattr(self, key), 0)
        check_range(f"attack {self.name}:", "p_init", self.p_init, 0, 1, low_open=True)
        check_range(f"attack {self.name}:", "rho", self.rho, 0, 1, low_open=True)
        if self.name == "square" and self.norm != "linf":
            raise ValueError("square is implemented for the L-inf norm only")
        if self.targeted and self.name not in TARGETABLE:
            raise ValueError(f"targeted {self.name} is not available; targeted attacks: {TARGETABLE} and apgd-t "
                             "(targeted by construction)")

    @property
    def label(self) -> str:
        """Short name for tables: FGSM, PGD-20, PGD-L2-10, MIFGSM, CW, DeepFool, APGD-CE, Square... (+EOTk)."""
        base = {"fgsm": "FGSM", "mifgsm": "MIFGSM", "cw": "CW", "deepfool": "DeepFool", "apgd-ce": "APGD-CE",
                "apgd-dlr": "APGD-DLR", "apgd-t": "APGD-T", "square": "Square"}.get(self.name)
        if base is None:
            base = f"PGD-{self.steps}" if self.norm == "linf" else f"PGD-L2-{self.steps}"
        return base + (f"+EOT{self.eot}" if self.eot > 1 else "")

    @property
    def minimum_norm(self) -> bool:
        return self.name in MIN_NORM

    @property
    def gradient_free(self) -> bool:
        return self.name in GRADIENT_FREE

    def replace(self, **changes) -> AttackSpec:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)


# the papers' evaluation settings (RNA Sec. 5.1, CTRW Sec. 4): CIFAR L-inf eps 8/255
def fgsm(eps: float = 8 / 255) -> AttackSpec:
    return AttackSpec("fgsm", eps=eps, alpha=eps, steps=1, random_start=False)


def pgd(steps: int = 20, eps: float = 8 / 255, alpha: float = 2 / 255, eot: int = 1, norm: str = "linf",
        restarts: int = 1) -> AttackSpec:
    """PGD with random start; the papers' PGD-20 is pgd(20, 8/255, 2/255)."""
    return AttackSpec("pgd", eps=eps, alpha=alpha, steps=steps, norm=norm, eot=eot, restarts=restarts)


def mifgsm(steps: int = 5, eps: float = 8 / 255, alpha: float = 2 / 255, decay: float = 1.0, eot: int = 1):
    return AttackSpec("mifgsm", eps=eps, alpha=alpha, steps=steps, decay=decay, random_start=False, eot=eot)


def cw(steps: int = 1000, c: float = 1.0, kappa: float = 0.0, lr: float = 0.01, search_steps: int = 1,
       eps: float = math.inf, eot: int = 1) -> AttackSpec:
    """CW-L2. The papers ran torchattacks 3.2.6 with 1000 steps, lr 0.01 and its default c = 1e-4, which leaves
    the images almost unchanged; rna-core defaults to c = 1 and offers a binary search over c."""
    return AttackSpec("cw", eps=eps, steps=steps, c=c, kappa=kappa, lr=lr, search_steps=search_steps,
                      random_start=False, norm="l2", eot=eot)


def deepfool(steps: int = 50, overshoot: float = 0.02, eps: float = math.inf, eot: int = 1) -> AttackSpec:
    return AttackSpec("deepfool", eps=eps, steps=steps, overshoot=overshoot, random_start=False, norm="l2", eot=eot)


def apgd(loss: str = "ce", steps: int = 100, eps: float = 8 / 255, eot: int = 1, norm: str = "linf",
         restarts: int = 1) -> AttackSpec:
    return AttackSpec(f"apgd-{loss}", eps=eps, steps=steps, eot=eot, norm=norm, restarts=restarts)


def apgd_t(steps: int = 100, eps: float = 8 / 255, n_targets: int = 9, eot: int = 1) -> AttackSpec:
    return AttackSpec("apgd-t", eps=eps, steps=steps, n_targets=n_targets, eot=eot)


def square(queries: int = 5000, eps: float = 8 / 255, p_init: float = 0.8, eot: int = 1) -> AttackSpec:
    return AttackSpec("square", eps=eps, steps=queries, p_init=p_init, random_start=False, eot=eot)


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


def parse_attack(text: str, eps: float = 8 / 255) -> tuple[str, list[AttackSpec]]:
    """A column name and its attacks from ``fgsm``, ``pgd`` / ``pgd:40``, ``pgdl2:10``, ``mifgsm``, ``cw`` /
    ``cw:100``, ``deepfool``, ``apgd-ce``, ``apgd-dlr``, ``apgd-t``, ``square`` / ``square:1000``, ``autoattack``,
    ``autoattack-rand`` (EOT-20) and ``autoattack-rand-square`` (with EOT-Square, 1,000 queries)."""
    name, sep, arg = text.strip().lower().partition(":")
    grammar = "name or name:count (a positive integer), e.g. pgd:40, square:1000"
    if sep and not (arg.isdigit() and int(arg) > 0):
        raise ConfigError(f"attack {text!r}: the count after ':' must be a positive integer ({grammar})")
    if sep and name == "fgsm":
        raise ConfigError(f"attack {text!r}: fgsm takes no count ({grammar})")
    n = int(arg) if sep else None
    table = {
        "fgsm": lambda: [fgsm(eps)],
        "pgd": lambda: [pgd(n or 20, eps, eps / 4)],
        "pgdl2": lambda: [pgd(n or 20, 0.5, 0.1, norm="l2")],
        "mifgsm": lambda: [mifgsm(n or 5, eps, eps / 4)],
        "cw": lambda: [cw(n or 1000)],
        "deepfool": lambda: [deepfool(n or 50)],
        "apgd-ce": lambda: [apgd("ce", n or 100, eps)],
        "apgd-dlr": lambda: [apgd("dlr", n or 100, eps)],
        "apgd-t": lambda: [apgd_t(n or 100, eps)],
        "square": lambda: [square(n or 5000, eps)],
        "autoattack": lambda: autoattack(eps, n or 100),
        "autoattack-rand": lambda: autoattack_rand(eps, n or 100),
        "autoattack-rand-square": lambda: autoattack_rand(eps, n or 100, square_queries=1000),
    }
    if name not in table:
        raise ConfigError(f"unknown attack {text!r}; known: {sorted(table)} ({grammar})")
    specs = table[name]()
    label = {"autoattack": "AutoAttack", "autoattack-rand": "AutoAttack-rand",
             "autoattack-rand-square": "AutoAttack-rand+Square"}.get(name, specs[0].label)
    return label, specs
