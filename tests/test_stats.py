"""The statistics behind every interval and verdict, against values worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from pulse_unlearn.stats import (Curve, Sample, holm, holm_levels, interval, monotone_crossing, monotone_fit, paired,
                                 percentile_interval, resampled_means)
from pulse_unlearn.stats.bootstrap import draws, p_value


def test_a_resampled_mean_is_the_drawn_clusters_items_mean():
    sums, counts = np.array([2.0, 1.0, 0.0]), np.array([2.0, 2.0, 1.0])
    # draw 1: clusters 0, 0, 1 -> (2 + 2 + 1) / (2 + 2 + 2); draw 2: clusters 2, 1, 2 -> 1 / 4
    means = resampled_means(sums, counts, np.array([[0, 0, 1], [2, 1, 2]]))
    assert means == pytest.approx([5 / 6, 1 / 4])


def test_the_percentile_interval_interpolates_between_order_statistics():
    assert percentile_interval(np.array([4.0, 0.0, 3.0, 1.0, 2.0]), 0.5) == pytest.approx((1.0, 3.0))
    assert percentile_interval(np.array([0.0, 1.0, 2.0, 3.0, 4.0]), 0.9) == pytest.approx((0.2, 3.8))


def test_a_persons_items_move_together():
    # each person's two items agree: resampling people is resampling one value per person
    people = interval(Sample([1, 1, 0, 0, 1, 1, 0, 0], list("aabbccdd")), 400, 3)
    one_each = interval(Sample([1, 0, 1, 0], list("abcd")), 400, 3)
    assert people == one_each
    # treated as independent items, the same data would look twice as large and the interval narrower
    items = interval(Sample([1, 1, 0, 0, 1, 1, 0, 0], [None] * 8), 400, 3)
    assert items[1] - items[0] < people[1] - people[0]


def test_items_without_a_person_are_their_own_clusters():
    alone = interval(Sample([1, 0, 1, 1], [None, "", None, None]), 300, 0)
    assert alone == interval(Sample([1, 0, 1, 1], "wxyz"), 300, 0)


def test_the_interval_holds_the_mean_and_is_seeded():
    s = Sample([1, 0, 1, 1, 0, 1, 1, 1, 0, 0], list("aabbccddee"))
    low, high = interval(s, 500, 7)
    assert low <= s.mean() <= high and low < high
    assert interval(s, 500, 7) == (low, high) and (draws(5, 500, 7) != draws(5, 500, 8)).any()
    assert interval(Sample([1, 0, 1], "aaa"), 500, 7) == (2 / 3, 2 / 3)  # one person: nothing to resample


def test_clustered_intervals_cover_the_truth_about_95_percent_of_the_time():
    """30 people x 5 items whose correctness shares a per-person ability: the people-resampled
    interval covers the population mean near its nominal rate; the item-resampled one does not."""
    rng, covered, naive = np.random.default_rng(0), 0, 0
    trials = 200
    for t in range(trials):
        ability = rng.beta(2, 2, size=30)  # population mean 0.5
        values = (rng.random((30, 5)) < ability[:, None]).astype(float).ravel()
        people = np.repeat(np.arange(30), 5)
        low, high = interval(Sample(values, people), 400, t)
        covered += low <= 0.5 <= high
        low, high = interval(Sample(values, [None] * len(values)), 400, t)
        naive += low <= 0.5 <= high
    assert 0.88 <= covered / trials <= 0.99
    assert naive / trials < covered / trials - 0.05


def test_a_comparison_draws_once_from_the_union_of_its_sides_people():
    a = Sample([1, 1, 0, 1], ["p", "p", "q", "r"])  # r only on this side
    b = Sample([0, 1, 0, 1], ["p", "p", "q", "s"])  # s only on this side
    got = paired([a, b], lambda x, y: x - y, 200, 5)
    # a's mean 3 / 4, b's 2 / 4; drawn from p, q, r, s, of which p and q are on both sides
    assert (got.clusters, got.shared) == (4, 2) and got.estimate == pytest.approx(0.25)
    idx = draws(4, 200, 5)  # clusters in first-seen order p, q, r, s; a side lacks one: it counts nothing
    sa, na = np.array([[2.0], [0.0], [1.0], [0.0]]), np.array([[2.0], [1.0], [1.0], [0.0]])
    sb, nb = np.array([[1.0], [0.0], [0.0], [1.0]]), np.array([[2.0], [1.0], [0.0], [1.0]])
    expected = (resampled_means(sa, na, idx) - resampled_means(sb, nb, idx)).ravel()
    assert got.resampled == pytest.approx(expected, nan_ok=True)


def test_pairing_removes_the_spread_of_who_was_drawn():
    # side b is side a plus one more correct answer per person: the paired difference hardly moves
    a = Sample([1, 0, 0, 1, 0, 1, 1, 0, 0, 0], list("aabbccddee"))
    b = Sample([1, 1, 1, 1, 1, 1, 1, 1, 1, 0], list("aabbccddee"))
    got = paired([b, a], lambda x, y: x - y, 500, 1)
    low, high = percentile_interval(got.resampled, 0.95)
    assert low == pytest.approx(0.5) and high == pytest.approx(0.5) and got.shared == 5


def test_a_curve_is_resampled_with_one_draw_for_every_checkpoint():
    # two people, two items each, at two checkpoints: 4/4 then 1/4 right
    curve = Curve([Sample([1, 1, 1, 1], list("aabb")), Sample([1, 0, 0, 0], list("aabb"))])
    got = paired([curve], lambda c: c[:, 0] - c[:, 1], 300, 2)
    assert got.estimate == pytest.approx(0.75)
    # a drawn twice: (2 - 1) / 2 = 0.5 per item... as a mean over 4 items: 1 - 2/4; b twice: 1 - 0
    idx = draws(2, 300, 2)
    sums, counts = np.array([[2.0, 1.0], [2.0, 0.0]]), np.full((2, 2), 2.0)
    means = resampled_means(sums, counts, idx)
    assert got.resampled == pytest.approx(means[:, 0] - means[:, 1])
    assert set(np.round(got.resampled, 6)) <= {0.5, 0.75, 1.0}


def test_the_bootstrap_p_value_counts_the_observed_statistic():
    assert p_value(np.array([-1.0, 1.0, 2.0, 3.0])) == pytest.approx(2 * 2 / 5)
    assert p_value(np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(2 * 1 / 5)
    assert p_value(np.array([0.0, 0.0])) == 1.0
    assert p_value(np.array([1.0, np.nan, 2.0])) == pytest.approx(2 * 1 / 3)  # undefined resamples left out


def test_holm_adjusts_step_down_in_the_order_given():
    # sorted: 0.005 x 4 = 0.02; 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04, raised to 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_holm_levels_match_the_adjusted_p_values():
    levels = holm_levels([0.01, 0.04, 0.03, 0.005])
    # 1 - 0.05 p / adjusted: 0.05 x 0.01 / 0.03, 0.05 x 0.04 / 0.06, 0.05 x 0.03 / 0.06, 0.05 / 4
    assert levels == pytest.approx([1 - 0.05 / 3, 1 - 0.05 * 2 / 3, 1 - 0.025, 1 - 0.0125])


def test_the_monotone_fit_pools_adjacent_violators():
    assert monotone_fit([0.8, 0.6, 0.7, 0.3]) == pytest.approx([0.8, 0.65, 0.65, 0.3])
    # weighted: (1 x 0.6 + 3 x 0.7) / 4
    assert monotone_fit([0.8, 0.6, 0.7], weights=[1, 1, 3]) == pytest.approx([0.8, 0.675, 0.675])
    assert monotone_fit([0.9, 0.5, 0.2]) == pytest.approx([0.9, 0.5, 0.2])


def test_the_crossing_is_read_on_the_monotone_fit():
    values = [0.8, 0.6, 0.7, 0.3]
    # fit 0.8, 0.65, 0.65, 0.3: 0.5 is crossed between checkpoints 2 and 3, at (0.65 - 0.5) / 0.35
    assert monotone_crossing(values, 0.5) == pytest.approx(2 + 0.15 / 0.35)
    # read raw, the dip to 0.6 would cross 0.62 at checkpoint 0.9; the fit reaches it at 2 + 0.03 / 0.35
    assert monotone_crossing(values, 0.62) == pytest.approx(2 + 0.03 / 0.35)
    assert monotone_crossing(values, 0.9) == 0.0
    assert monotone_crossing(values, 0.1) is None
    assert monotone_crossing([], 0.5) is None
