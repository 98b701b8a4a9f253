"""Bootstrap intervals clustered by person.

A person's questions ask the same attributes of the same person, so they are not independent:
the unit of resampling is the person (a *cluster*), and all of a person's items move together.
Items without a person (the general benchmark) are each their own cluster. A resampled mean is
the mean over the items of the drawn clusters (a cluster drawn twice counts twice):

    mean_b = sum_j sums[idx[b, j]] / sum_j counts[idx[b, j]]

The interval is the percentile interval of the resampled statistic: its ``(1 - level) / 2`` and
``(1 + level) / 2`` quantiles (numpy's linear interpolation between order statistics).

A comparison (``paired``) draws once from the union of its sides' clusters, and each side
takes the drawn clusters it has: a person on several sides (the same people's text and
multimodal questions, the same benchmark items under two models) is drawn on all of them at
once, so the interval reflects only how the sides differ on the same people; people only one
side has are resampled with it. A side may be a ``Curve``: the same items at several
checkpoints, resampled with one draw for every checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np


def _key(i: int, cluster: Hashable) -> Hashable:
    return ("item", i) if cluster in (None, "") else cluster


@dataclass(frozen=True)
class Sample:
    """Per-item values (1/0 for correct, or a score) and each item's cluster label; an empty or
    None label makes the item its own cluster."""

    values: Sequence[float]
    clusters: Sequence[Hashable]

    def by_cluster(self) -> dict[Hashable, tuple[float, int]]:
        """cluster -> (sum of values, number of items), in first-seen order."""
        out: dict[Hashable, list] = {}
        for i, (v, c) in enumerate(zip(self.values, self.clusters, strict=True)):
            cell = out.setdefault(_key(i, c), [0.0, 0])
            cell[0] += float(v)
            cell[1] += 1
        return {k: (s, n) for k, (s, n) in out.items()}

    def mean(self) -> float:
        return float(np.mean(np.asarray(self.values, dtype=float)))

    def cells(self) -> dict[Hashable, tuple[np.ndarray, np.ndarray]]:
        """cluster -> (sums, counts) over one checkpoint."""
        return {k: (np.array([s]), np.array([float(n)])) for k, (s, n) in self.by_cluster().items()}


@dataclass(frozen=True)
class Curve:
    """The same items scored at several checkpoints, one ``Sample`` each (a cluster missing at a
    checkpoint counts nothing there)."""

    points: Sequence[Sample]

    def cells(self) -> dict[Hashable, tuple[np.ndarray, np.ndarray]]:
        """cluster -> (sums, counts), one entry per checkpoint."""
        width, out = len(self.points), {}
        for i, point in enumerate(self.points):
            for k, (s, n) in point.by_cluster().items():
                sums, counts = out.setdefault(k, (np.zeros(width), np.zeros(width)))
                sums[i], counts[i] = s, n
        return out

    def means(self) -> np.ndarray:
        return np.array([p.mean() for p in self.points])


@lru_cache(maxsize=8)
def draws(n_clusters: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n_clusters) cluster indices drawn with replacement, from ``seed`` (kept: every
    row of a summary with the same number of people draws the same way; read-only)."""
    idx = np.random.default_rng(seed).integers(0, n_clusters, size=(resamples, n_clusters), dtype=np.int32)
    idx.flags.writeable = False
    return idx


def resampled_means(sums: np.ndarray, counts: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Each resample's item mean: the drawn clusters' summed values over their summed counts
    (``sums``, ``counts``: one row per cluster, optionally one column per checkpoint)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums[idx].sum(axis=1) / counts[idx].sum(axis=1)


def percentile_interval(stats: np.ndarray, level: float) -> tuple[float, float]:
    """The ``level`` percentile interval of resampled statistics (resamples where the statistic
    is undefined, nan, left out)."""
    low, high = np.nanquantile(np.asarray(stats, dtype=float), [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def interval(sample: Sample, resamples: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """The ``level`` interval of the sample's mean, people resampled together."""
    cells = sample.by_cluster()
    if len(cells) < 2:  # one cluster: nothing to resample, the mean is all there is
        m = sample.mean()
        return m, m
    sums = np.array([c[0] for c in cells.values()])
    counts = np.array([c[1] for c in cells.values()], dtype=float)
    return percentile_interval(resampled_means(sums, counts, draws(len(cells), resamples, seed)), level)


@dataclass(frozen=True)
class Paired:
    estimate: float  # the statistic of the sides' own means
    resampled: np.ndarray  # its value in each resample (nan where undefined)
    clusters: int  # the clusters drawn from: the union of the sides'
    shared: int  # those on every side


def paired(sides: Sequence[Sample | Curve], statistic: Callable[..., np.ndarray], resamples: int,
           seed: int) -> Paired:
    """``statistic(side_1, ..., side_k)`` of the sides' means (each an array: (n, 1) for a
    ``Sample``, (n, checkpoints) for a ``Curve``; it returns n values), on the sides themselves
    and on ``resamples`` draws from the union of their clusters (module docstring)."""
    cells = [side.cells() for side in sides]
    union = list(dict.fromkeys(k for c in cells for k in c))
    shared = sum(1 for k in union if all(k in c for c in cells))
    arrays = []
    for side_cells in cells:
        width = len(next(iter(side_cells.values()))[0]) if side_cells else 1
        zero = (np.zeros(width), np.zeros(width))
        arrays.append((np.stack([side_cells.get(k, zero)[0] for k in union]),
                       np.stack([side_cells.get(k, zero)[1] for k in union])))
    with np.errstate(invalid="ignore", divide="ignore"):
        own = [(s.sum(axis=0) / n.sum(axis=0))[None, :] for s, n in arrays]
    estimate = float(np.ravel(statistic(*own))[0])
    idx = draws(len(union), resamples, seed)
    stats = np.ravel(statistic(*(resampled_means(s, n, idx) for s, n in arrays))).astype(float)
    return Paired(estimate, stats, len(union), shared)


def p_value(stats: np.ndarray) -> float:
    """The two-sided bootstrap p-value of "the statistic is 0": twice the smaller share of
    resamples on either side of 0, each counted with the observed one ((1 + k) / (B + 1)), so
    that it is never 0 (undefined resamples, nan, left out)."""
    stats = np.asarray(stats, dtype=float)
    stats = stats[~np.isnan(stats)]
    b = len(stats)
    below, above = int(np.sum(stats <= 0)), int(np.sum(stats >= 0))
    return min(1.0, 2 * (1 + min(below, above)) / (b + 1))
