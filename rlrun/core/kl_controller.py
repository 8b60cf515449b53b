"""The adaptive KL coefficient of PPO-Penalty (Alg 5.23 step 5; Schulman et al. 2017, sec. 4)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class AdaptiveKLController:
    """The penalty coefficient lambda, adapted once per iteration from the measured mean KL d.

    Alg 5.23 step 5 (the rule of the PPO paper, section 4):
        d < d_targ / a  ->  lambda <- lambda / b   (``update`` returns -1)
        d > d_targ * a  ->  lambda <- lambda * b   (returns +1)
        otherwise lambda is kept                   (returns 0)

    Args:
        kl_coef: lambda, the current coefficient (``kl_coef_init`` at the start); > 0.
        kl_target: d_targ, the target mean KL; > 0.
        kl_tolerance: a, the width of the dead band around d_targ; > 1.
        kl_adapt_factor: b, the multiplicative change of lambda; > 1.
    """

    kl_coef: float
    kl_target: float
    kl_tolerance: float = 1.5
    kl_adapt_factor: float = 2.0

    def __post_init__(self) -> None:
        for name, value, bound in (("kl_coef", self.kl_coef, 0.0), ("kl_target", self.kl_target, 0.0),
                                   ("kl_tolerance", self.kl_tolerance, 1.0),
                                   ("kl_adapt_factor", self.kl_adapt_factor, 1.0)):
            if not value > bound:  # also rejects NaN
                raise ValueError(f"{name}={value!r} must be > {bound}")

    def update(self, kl: float) -> int:
        """Apply the rule once to the mean KL ``kl`` of this iteration; return the branch taken."""
        if kl < self.kl_target / self.kl_tolerance:
            self.kl_coef /= self.kl_adapt_factor
            return -1
        if kl > self.kl_target * self.kl_tolerance:
            self.kl_coef *= self.kl_adapt_factor
            return 1
        return 0

    def state_dict(self) -> dict[str, float]:
        """The adapted state: only lambda changes; the other fields come from the config."""
        return {"kl_coef": self.kl_coef}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.kl_coef = float(state["kl_coef"])

