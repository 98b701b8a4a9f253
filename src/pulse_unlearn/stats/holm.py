"""Holm's step-down correction for the comparisons of one run.

With the m p-values in increasing order p_(1) <= ... <= p_(m), the adjusted value of the i-th is
max over j <= i of min(1, (m - j + 1) p_(j)); a comparison is significant at ``alpha`` when its
adjusted value is at most ``alpha``. The matching interval of a comparison is taken at level
1 - alpha_i with alpha_i = alpha p_i / adjusted_i: it excludes 0 exactly when the comparison is
significant (p_i <= alpha_i <=> adjusted_i <= alpha), and it is the plain
1 - alpha / (m - i + 1) interval where the step-down maximum does not bind.
"""

from __future__ import annotations

from collections.abc import Sequence


def holm(p: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the order given."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def holm_levels(p: Sequence[float], alpha: float = 0.05) -> list[float]:
    """Each comparison's confidence level after Holm's correction (see the module docstring)."""
    return [1 - alpha * pi / adj if adj > 0 else 1 - alpha for pi, adj in zip(p, holm(p), strict=True)]
