"""Where a noisy forgetting curve crosses a target, read on its monotone fit.

Forget accuracy measured at checkpoints is noisy: read raw, a curve checked more often crosses a
target early by chance more often. The curve is first replaced by its best non-increasing fit in
least squares (isotonic regression, scipy's pool-adjacent-violators), weighted by the items behind
each checkpoint; the crossing is then where the fit first reaches the target, linearly
interpolated between the two checkpoints around it, as a fractional checkpoint index.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import isotonic_regression


def monotone_fit(values: Sequence[float], weights: Sequence[float] | None = None) -> list[float]:
    """The non-increasing least-squares fit of ``values`` (in checkpoint order)."""
    w = None if weights is None else np.asarray(weights, dtype=float)
    return [float(x) for x in isotonic_regression(np.asarray(values, dtype=float), weights=w, increasing=False).x]


def monotone_crossing(values: Sequence[float], target: float, weights: Sequence[float] | None = None) -> float | None:
    """The fractional checkpoint index where the monotone fit first reaches ``target`` (None: never)."""
    return crossing(monotone_fit(values, weights), target) if len(values) else None


def crossing(fit: Sequence[float], target: float) -> float | None:
    """The fractional checkpoint index where a non-increasing ``fit`` first reaches ``target``."""
    if fit[0] <= target:
        return 0.0
    for i in range(1, len(fit)):
        if fit[i] <= target:
            return i - 1 + (fit[i - 1] - target) / (fit[i - 1] - fit[i])
    return None
