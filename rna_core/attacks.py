"""Attack specifications (backend-neutral) and their random starts, drawn from the core's Generator."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

NORMS = ("linf", "l2")


@dataclass(frozen=True)
class AttackSpec:
    """One attack's settings.

    PGD (Madry et al. 2018), L-inf: x_{t+1} = clip_{x, eps}(x_t + alpha * sign(grad_x L(f(x_t), y))),
    kept in [0, 1]; with ``random_start`` x_0 = x + U(-eps, eps). ``eot`` > 1 averages the gradient over
    that many forwards, each drawing the model's randomness afresh (Athalye et al. 2018).
    """

    name: str = "pgd"
    eps: float = 8 / 255
    alpha: float = 2 / 255
    steps: int = 20
    norm: str = "linf"
    random_start: bool = True
    restarts: int = 1
    eot: int = 1

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"attack norm must be one of {NORMS}, got {self.norm!r}")
        if not self.eps >= 0 or not self.alpha >= 0:
            raise ValueError(f"attack eps and alpha must be >= 0, got eps={self.eps}, alpha={self.alpha}")
        if self.steps < 0 or self.restarts < 1 or self.eot < 1:
            raise ValueError(f"need steps >= 0, restarts >= 1, eot >= 1; got {self.steps}, {self.restarts}, {self.eot}")

    @property
    def label(self) -> str:
        eot = f"-EOT{self.eot}" if self.eot > 1 else ""
        return f"{self.name.upper()}-{self.steps}{eot}" if self.name == "pgd" else self.name.upper()

    def to_dict(self) -> dict:
        return asdict(self)

    def random_start_for(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """delta_0: U(-eps, eps) per pixel for L-inf, zeros without random start (float32, shape of x)."""
        if not self.random_start or self.eps == 0:
            return np.zeros(x.shape, np.float32)
        if self.norm == "linf":
            return rng.uniform(-self.eps, self.eps, size=x.shape).astype(np.float32)
        d = rng.standard_normal(size=x.shape)
        flat = d.reshape(len(d), -1)
        r = rng.uniform(0, 1, size=(len(d), 1))
        flat *= self.eps * r / np.linalg.norm(flat, axis=1, keepdims=True)
        return flat.reshape(x.shape).astype(np.float32)


def pgd(steps: int = 20, eps: float = 8 / 255, alpha: float = 2 / 255, eot: int = 1) -> AttackSpec:
    """L-inf PGD with random start, the papers' evaluation attack (PGD-20, eps 8/255, step 2/255)."""
    return AttackSpec("pgd", eps, alpha, steps, "linf", True, 1, eot)
