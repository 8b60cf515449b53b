"""An update's metrics when several seeds are stepped together: one value per seed."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


def per_seed(values: Tensor | Sequence[Tensor]) -> float | list[float]:
    """A metric of one run as a float, or of S stacked seeds as S floats in seed order."""
    values = torch.stack(list(values)) if not isinstance(values, Tensor) else values
    flat = values.detach().reshape(-1).tolist()
    return flat[0] if len(flat) == 1 else flat
