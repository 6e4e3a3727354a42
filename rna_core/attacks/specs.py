"""``AttackSpec``: one frozen record of an attack's settings, checked when built against the attack's registered
kind (``registry``); the papers' settings are each attack's factory, in its loop's file.

``eot`` > 1 averages every gradient (DeepFool: Jacobian; Square: margin) over that many forwards, each drawing the
model's randomness afresh (Athalye et al. 2018). The formulas live with the loops (``rna_core.attacks.loops``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass

from ..validation import UnknownKeyError, check_range, check_types
from .registry import kind_of, names

NORMS = ("linf", "l2")


@dataclass(frozen=True)
class AttackSpec:
    """One attack's settings; fields an attack does not use are ignored by it.

    ``steps`` counts iterations (Square: queries). For the minimum-norm attacks ``eps`` is an L2 budget:
    an example counts as broken only if its perturbation's L2 norm is at most ``eps`` (``inf``: any size,
    the papers' reading). ``restarts`` > 1 runs the attack again from new random numbers and keeps, per
    example, the first run that fools the model. ``early_stop`` (PGD only): an example stops at the first iterate
    the attacked draw misclassifies, the RNA supplement's weak setting.
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
    early_stop: bool = False

    def __post_init__(self) -> None:
        check_types(self, "attack")
        kind = kind_of(self.name)
        if self.norm not in NORMS:
            raise ValueError(f"attack norm must be one of {NORMS}, got {self.norm!r}")
        if not self.eps >= 0 or not self.alpha >= 0:
            raise ValueError(f"attack eps and alpha must be >= 0, got eps={self.eps}, alpha={self.alpha}")
        if math.isinf(self.eps) and not kind.minimum_norm:
            raise ValueError(f"attack {self.name}: eps must be finite (an unbounded eps is for the minimum-norm "
                             f"attacks {names('minimum_norm')}), got {self.eps}")
        for key in ("steps", "restarts", "eot", "search_steps", "n_targets"):
            check_range(f"attack {self.name}:", key, getattr(self, key), 1)
        for key in ("c", "kappa", "lr", "overshoot", "decay"):
            check_range(f"attack {self.name}:", key, getattr(self, key), 0)
        check_range(f"attack {self.name}:", "p_init", self.p_init, 0, 1, low_open=True)
        check_range(f"attack {self.name}:", "rho", self.rho, 0, 1, low_open=True)
        if self.early_stop and self.name != "pgd":
            raise ValueError(f"early_stop is PGD's option (the RNA supplement's early-stopping PGD), not {self.name}'s")
        if kind.check is not None:
            kind.check(self)
        if self.targeted and not kind.targetable:
            raise ValueError(f"targeted {self.name} is not available; targeted attacks: {names('targetable')} and "
                             "apgd-t (targeted by construction)")

    @property
    def label(self) -> str:
        """Short name for tables: FGSM, PGD-20, PGD-L2-10, MIFGSM, CW, DeepFool, APGD-CE, Square... (+EOTk)."""
        return kind_of(self.name).label(self) + (f"+EOT{self.eot}" if self.eot > 1 else "")

    @property
    def minimum_norm(self) -> bool:
        """CW, DeepFool: ``eps`` is an L2 budget on success, not a ball the attack stays in."""
        return kind_of(self.name).minimum_norm

    @property
    def gradient_free(self) -> bool:
        return kind_of(self.name).gradient_free

    def replace(self, **changes) -> AttackSpec:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, where: str = "attack") -> AttackSpec:
        """A spec from ``to_dict``'s record; an unknown key is a KeyError naming it (and ``where`` it was)."""
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise UnknownKeyError(f"unknown key(s) {unknown} in {where}; an attack takes "
                           f"{[f.name for f in dataclasses.fields(cls)]}")
        return cls(**d)
