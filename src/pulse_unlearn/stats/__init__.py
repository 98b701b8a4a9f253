"""Uncertainty: bootstrap intervals that resample people, paired comparisons, Holm's correction,
and the crossing of a monotone fit. Plain numpy and scipy; nothing of the project below it."""

from .bootstrap import Curve, Paired, Sample, interval, p_value, paired, percentile_interval, resampled_means
from .holm import holm, holm_levels
from .monotone import crossing, monotone_crossing, monotone_fit

__all__ = ["Curve", "Paired", "Sample", "crossing", "holm", "holm_levels", "interval", "monotone_crossing",
           "monotone_fit", "p_value", "paired", "percentile_interval", "resampled_means"]
