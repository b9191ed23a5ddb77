"""medbench.harness.stats.paired checked against statsmodels / scipy and published values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from medbench.harness.stats import paired as stats
from scipy.optimize import minimize_scalar
from scipy.stats import bootstrap, chi2_contingency, hypergeom, norm
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint


@pytest.mark.parametrize("k,n", [(0, 10), (10, 10), (3, 10), (1, 2), (37, 50), (412, 500), (1, 1000)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_matches_statsmodels(k, n, confidence):
    low, high = stats.wilson_interval(k, n, confidence)
    ref = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
    assert low == pytest.approx(ref[0], abs=1e-12)
    assert high == pytest.approx(ref[1], abs=1e-12)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_undefined_without_documents_and_rejects_bad_counts():
    assert stats.wilson_interval(0, 0) is None
    with pytest.raises(ValueError, match="between 0 and n"):
        stats.wilson_interval(11, 10)


@pytest.mark.parametrize(
    "table",
    [[[10, 5], [3, 12]], [[40, 12], [2, 46]], [[5, 0], [0, 5]], [[0, 25], [20, 0]], [[300, 31], [17, 152]]],
)
def test_exact_mcnemar_matches_statsmodels(table):
    # rows: reference correct / wrong; columns: candidate correct / wrong
    broken, fixed = table[0][1], table[1][0]
    assert stats.mcnemar_exact_p(fixed, broken) == pytest.approx(mcnemar(table, exact=True).pvalue, abs=1e-12)


def test_one_sided_mcnemar_by_hand():
    # 2 fixed, 12 broken: P(X >= 12 | 14, 1/2) = (C(14,12) + C(14,13) + C(14,14)) / 2**14 = 106 / 16384
    assert stats.mcnemar_exact_one_sided_p(2, 12) == pytest.approx(106 / 16384, rel=1e-12)
    assert stats.mcnemar_exact_one_sided_p(12, 2) > 0.99  # more fixed than broken: no evidence of worse
    assert stats.mcnemar_exact_one_sided_p(0, 0) == 1.0


def test_paired_counts_and_diff():
    ref = [1, 1, 0, 0, 1, 0]
    cand = [1, 0, 1, 0, 1, 1]
    c = stats.paired_counts(ref, cand)
    assert (c.n, c.both, c.fixed, c.broken, c.neither) == (6, 2, 2, 1, 1)
    assert c.diff == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match="align"):
        stats.paired_counts([1, 0], [1])
    with pytest.raises(ValueError, match="0/1"):
        stats.paired_counts([1, 2], [1, 0])


def _random_pair(n, p_ref, p_cand, seed):
    rng = np.random.default_rng(seed)
    return (rng.random(n) < p_ref).astype(float), (rng.random(n) < p_cand).astype(float)


def test_paired_bootstrap_is_seeded_and_agrees_with_scipy():
    ref, cand = _random_pair(300, 0.6, 0.55, seed=1)
    ci = stats.paired_bootstrap_diff_ci(ref, cand, n_resamples=20000, seed=3)
    assert ci == stats.paired_bootstrap_diff_ci(ref, cand, n_resamples=20000, seed=3)  # reproducible
    scipy_ci = bootstrap(
        (ref, cand), lambda r, c, axis: c.mean(axis=axis) - r.mean(axis=axis), paired=True, vectorized=True,
        n_resamples=20000, method="percentile", rng=np.random.default_rng(5),
    ).confidence_interval
    # Same distribution (multinomial counts vs index resampling): agreement to Monte Carlo error.
    assert ci[0] == pytest.approx(scipy_ci.low, abs=0.006)
    assert ci[1] == pytest.approx(scipy_ci.high, abs=0.006)
    diff = cand.mean() - ref.mean()
    assert ci[0] < diff < ci[1]


def test_paired_bootstrap_edge_cases():
    assert stats.paired_bootstrap_diff_ci([], []) is None
    same = np.array([1, 0, 1, 1, 0], dtype=float)
    assert stats.paired_bootstrap_diff_ci(same, same) == (0.0, 0.0)
    # 10k documents stay cheap: memory is O(resamples), not O(resamples × n).
    ref, cand = _random_pair(10_000, 0.7, 0.7, seed=2)
    low, high = stats.paired_bootstrap_diff_ci(ref, cand)
    assert -0.03 < low < 0 < high < 0.03


def _tango_numeric(a, b, c, d, null_diff):
    """Tango's score test with the restricted MLE found numerically (independent of the closed form)."""
    n = a + b + c + d

    def nll(t):
        probs = ((b, t), (c, t + null_diff), (a + d, 1 - 2 * t - null_diff))
        return -sum(k * math.log(max(p, 1e-300)) for k, p in probs if k)

    lo, hi = max(0.0, -null_diff) + 1e-12, (1 - null_diff) / 2 - 1e-12
    t = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12}).x
    var = 2 * t + null_diff * (1 - null_diff)
    return norm.cdf((c - b - n * null_diff) / math.sqrt(n * var))


@pytest.mark.parametrize(
    "a,b,c,d,null_diff",
    [(40, 12, 3, 45, -0.05), (10, 0, 0, 5, -0.1), (0, 5, 3, 0, -0.1), (5, 3, 0, 0, -0.02), (200, 30, 18, 252, -0.03),
     (7, 9, 2, 1, -0.2)],
)
def test_tango_closed_form_matches_numeric_restricted_mle(a, b, c, d, null_diff):
    p = stats.tango_score_p(c, b, a + b + c + d, null_diff)
    assert p == pytest.approx(_tango_numeric(a, b, c, d, null_diff), abs=1e-6)


def test_tango_at_zero_is_mcnemar_z():
    fixed, broken = 4, 15
    chi2 = mcnemar([[50, broken], [fixed, 31]], exact=False, correction=False).statistic
    z = -math.sqrt(chi2)  # more broken than fixed: negative z
    assert stats.tango_score_p(fixed, broken, 100, 0.0) == pytest.approx(norm.cdf(z), rel=1e-9)


def test_paired_regression_test_picks_exact_at_zero_and_tango_above():
    ref = np.array([1] * 40 + [0] * 10, dtype=float)
    cand = ref.copy()
    cand[:12] = 0  # 12 broken
    cand[40:42] = 1  # 2 fixed
    exact = stats.paired_regression_test(ref, cand, 0.0)
    assert exact.method.startswith("exact McNemar")
    assert exact.p_value == pytest.approx(106 / 16384)
    assert exact.diff == pytest.approx(-10 / 50)
    with_margin = stats.paired_regression_test(ref, cand, 0.05)
    assert with_margin.method.startswith("Tango")
    assert with_margin.p_score == pytest.approx(stats.tango_score_p(2, 12, 50, -0.05))
    assert with_margin.p_value == max(with_margin.p_exact, with_margin.p_score) == with_margin.p_score
    assert exact.p_value < with_margin.p_value < 0.05  # a margin makes a regression harder to claim
    assert with_margin.ci_low < with_margin.diff < with_margin.ci_high


def test_newcombe_matches_published_example():
    # Newcombe (1998), Stat Med 17:873-890, Table II example (a): 56/70 - 48/80, method 10: 0.0524 to 0.3339.
    low, high = stats.newcombe_diff_interval(56, 70, 48, 80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)
    assert stats.newcombe_diff_interval(0, 0, 3, 10) is None


def test_unpaired_test_at_zero_margin_is_fishers_exact_tail():
    ref = np.array([1] * 40 + [0] * 15, dtype=float)  # 40/55
    cand = np.array([1] * 30 + [0] * 30, dtype=float)  # 30/60
    result = stats.unpaired_regression_test(ref, cand, 0.0)
    # P(X <= 30) for X = correct answers among the candidate's 60, given 70 correct of 115 overall
    assert result.p_value == pytest.approx(hypergeom.cdf(30, 115, 70, 60), rel=1e-9)
    assert result.method.startswith("Fisher")
    assert not result.paired and result.n_reference == 55 and result.n_candidate == 60
    assert result.ci_low < result.diff < result.ci_high


def _miettinen_nurminen_numeric(k_cand, n_cand, k_ref, n_ref, null_diff):
    """MN score statistic with the restricted MLE found numerically (independent of statsmodels)."""

    def nll(p_ref):
        p_cand = p_ref + null_diff
        return -(k_cand * math.log(p_cand) + (n_cand - k_cand) * math.log(1 - p_cand)
                 + k_ref * math.log(p_ref) + (n_ref - k_ref) * math.log(1 - p_ref))

    lo, hi = max(0.0, -null_diff) + 1e-12, min(1.0, 1 - null_diff) - 1e-12
    p_ref = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-13}).x
    p_cand = p_ref + null_diff
    n = n_cand + n_ref
    var = (p_cand * (1 - p_cand) / n_cand + p_ref * (1 - p_ref) / n_ref) * n / (n - 1)
    return norm.cdf((k_cand / n_cand - k_ref / n_ref - null_diff) / math.sqrt(var))


@pytest.mark.parametrize(
    "k_cand,n_cand,k_ref,n_ref,margin",
    [(30, 60, 40, 55, 0.05), (55, 100, 60, 100, 0.1), (480, 500, 490, 500, 0.02), (7, 34, 1, 34, 0.2),
     (0, 20, 3, 25, 0.1), (20, 20, 24, 25, 0.05), (10, 50, 10, 50, 0.3)],
)
def test_unpaired_margin_test_is_miettinen_nurminen(k_cand, n_cand, k_ref, n_ref, margin):
    ref = np.array([1] * k_ref + [0] * (n_ref - k_ref), dtype=float)
    cand = np.array([1] * k_cand + [0] * (n_cand - k_cand), dtype=float)
    result = stats.unpaired_regression_test(ref, cand, margin)
    assert result.method.startswith("Miettinen-Nurminen")
    expected = _miettinen_nurminen_numeric(k_cand, n_cand, k_ref, n_ref, -margin)
    assert result.p_score == pytest.approx(expected, abs=1e-6)
    assert result.p_value == max(result.p_exact, result.p_score)  # floored at Fisher's exact p
    assert result.p_exact == stats.unpaired_regression_test(ref, cand, 0.0).p_value


def test_miettinen_nurminen_at_zero_is_the_scaled_pearson_chi_square():
    # At a null difference of 0 the restricted MLE is the pooled rate: z^2 = X^2 (N - 1) / N.
    chi2 = chi2_contingency([[30, 30], [40, 15]], correction=False)[0]
    expected = norm.cdf(-math.sqrt(chi2 * 114 / 115))
    assert stats.miettinen_nurminen_p(30, 60, 40, 55, 0.0) == pytest.approx(expected, rel=1e-9)


def test_unpaired_test_degenerate_and_margin():
    all_right = np.ones(20)
    assert stats.unpaired_regression_test(all_right, all_right, 0.0).p_value == 1.0
    assert stats.unpaired_regression_test(all_right, all_right, 0.05).p_value > 0.5
    ref = np.array([1] * 60 + [0] * 40, dtype=float)
    cand = np.array([1] * 55 + [0] * 45, dtype=float)
    p0 = stats.unpaired_regression_test(ref, cand, 0.0).p_value
    p10 = stats.unpaired_regression_test(ref, cand, 0.10).p_value
    assert p0 < 0.5 < p10  # a 5-point drop is evidence against "no worse", not against "within 10 points"


@pytest.mark.parametrize(
    "p_values",
    [[0.01, 0.04, 0.03, 0.2], [0.5], [0.001, 0.001, 0.9, 0.02, 0.049], [0.04, 0.01, 0.04]],
)
def test_holm_matches_statsmodels(p_values):
    expected = multipletests(p_values, alpha=0.05, method="holm")[1]
    assert stats.holm_adjust(p_values) == pytest.approx(list(expected), abs=1e-12)


def test_holm_rejects_bad_p_values():
    assert stats.holm_adjust([]) == []
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stats.holm_adjust([0.1, 1.5])


def test_margin_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="margin"):
        stats.paired_regression_test([1, 0], [1, 0], 1.5)


# -- non_inferiority_margin is monotone in the margin ------------------------------------------------------------


def test_the_issue_case_a_wider_margin_never_fails_what_a_narrower_one_passes():
    # b = 0 fixed, c = 4 broken of n = 30: exact one-sided McNemar p = 1/16. Before, margin 0.02 switched to
    # Tango alone (p 0.034 < 0.05: FAIL) while margin 0 passed (0.0625).
    ref = np.ones(30)
    cand = ref.copy()
    cand[:4] = 0
    p = {m: stats.paired_regression_test(ref, cand, m).p_value for m in (0.0, 0.02, 0.05, 0.1)}
    assert p[0.0] == pytest.approx(1 / 16)
    assert stats.tango_score_p(0, 4, 30, -0.02) < 0.05  # the score test alone would have failed it
    assert p[0.0] <= p[0.02] <= p[0.05] <= p[0.1] and p[0.02] > 0.05


MARGINS = np.linspace(0.0, 0.5, 26)


@pytest.mark.parametrize("n", [5, 12, 30])
def test_paired_p_value_never_falls_as_the_margin_grows_on_every_table(n):
    for fixed in range(n + 1):
        for broken in range(n + 1 - fixed):
            ref = np.array([1] * broken + [0] * fixed + [1] * (n - fixed - broken), dtype=float)
            cand = np.array([0] * broken + [1] * fixed + [1] * (n - fixed - broken), dtype=float)
            ps = [stats.paired_regression_test(ref, cand, m, n_resamples=1).p_value for m in MARGINS]
            assert np.all(np.diff(ps) >= -1e-12), (n, fixed, broken)


def test_the_score_tests_grow_with_the_margin_up_to_n_100():
    """What the floor relies on: the score p-values themselves never fall as the margin grows (the degenerate
    tables with no discordant documents, p = 1 at margin 0, are floored by the exact p = 1)."""
    fine = np.linspace(0.0, 0.5, 51)
    n = 100
    for fixed in range(n + 1):
        for broken in range(n + 1 - fixed):
            if fixed + broken == 0:
                continue
            ps = [stats.tango_score_p(fixed, broken, n, -m) for m in fine]
            assert np.all(np.diff(ps) >= -1e-12), (fixed, broken)
    for k_ref in range(31):
        for k_cand in range(31):
            if {k_ref, k_cand} <= {0} or {k_ref, k_cand} <= {30}:
                continue
            ps = [stats.miettinen_nurminen_p(k_cand, 30, k_ref, 30, -m) for m in fine]
            assert np.all(np.diff(ps) >= -1e-12), (k_ref, k_cand)


@pytest.mark.parametrize("n_ref,n_cand", [(5, 5), (10, 20)])
def test_unpaired_p_value_never_falls_as_the_margin_grows_on_every_table(n_ref, n_cand):
    for k_ref in range(n_ref + 1):
        for k_cand in range(n_cand + 1):
            ref = np.array([1] * k_ref + [0] * (n_ref - k_ref), dtype=float)
            cand = np.array([1] * k_cand + [0] * (n_cand - k_cand), dtype=float)
            ps = [stats.unpaired_regression_test(ref, cand, m).p_value for m in MARGINS]
            assert np.all(np.diff(ps) >= -1e-12), (k_ref, k_cand)
