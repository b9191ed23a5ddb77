"""The statistics behind medbench's metrics and gate: intervals, paired and unpaired tests, Holm.

Why these methods
-----------------
* **Accuracy CI: Wilson score interval.** Benchmarks here are small (tens to a few hundred questions) and
  accuracies sit near 0 or 1 for easy/hard tasks. The normal-approximation ("Wald") interval undercovers badly
  there and can leave [0, 1]; Clopper-Pearson is needlessly wide. Wilson keeps close to nominal coverage at
  small n, never leaves [0, 1] and is what Agresti & Coull (1998) and Brown, Cai & DasGupta (2001) recommend.
  Computed by :func:`scipy.stats.binomtest` (``proportion_ci(method="wilson")``).
* **Difference of two checkpoints on the same documents: paired.** Both checkpoints answered the same questions,
  so most of the per-question variation cancels; only discordant questions (fixed / broken) carry information.
  The CI is a paired bootstrap (resampling documents), the test the exact McNemar test (a binomial test on the
  discordant pairs), which is exact at any sample size. They are two procedures and can disagree near the
  edge (the percentile interval is a little narrower than the exact test at small discordant counts), so
  everything that marks a difference "significant" (metrics.json ``significant``, the terminal summary, the
  report) decides by the test alone, Holm-adjusted, and says so; the interval is shown for scale and never
  decides.
* **Different documents: unpaired.** Newcombe's hybrid score interval (Newcombe 1998, method 10, statsmodels)
  for the CI; Fisher's exact test (scipy) without a margin, the Miettinen-Nurminen score test with one
  (written here: statsmodels' version has a known bug for non-zero margins, statsmodels#10269).
* **Regression tests with a margin: one rule at every margin.** The gate asks "is the candidate worse than
  the baseline by more than ``margin``?" (one-sided). Two tests answer parts of it. The *exact* test of "worse
  at all" (margin 0): the one-sided exact McNemar test paired, Fisher's exact test unpaired; exact, so its
  false-alarm rate on identical checkpoints is at most alpha at any n. The *score* test of "worse by more than
  ``margin``": Tango's score test paired (Tango 1998, *Stat Med* 17:891-908, the standard asymptotic test for
  a difference of paired proportions against a non-zero value; neither scipy nor statsmodels ships one),
  Miettinen-Nurminen unpaired. The gate's p-value at every margin is the **larger of the two**
  (:func:`paired_regression_test`, :func:`unpaired_regression_test`): a regression beyond the margin is a
  regression, so the verdict needs both. That keeps the verdict monotone in the margin (a wider margin never
  fails a candidate a narrower one passes: the exact p does not depend on the margin and the score p grows
  with it, which tests/test_stats.py checks over every 2×2 table up to n = 100) and keeps false alarms on
  identical checkpoints at or below alpha at every margin (the rejection region lies inside the exact test's).
  Before, margin 0 used the exact test and any margin > 0 Tango's alone, so b = 0, c = 4, n = 30 passed at
  margin 0 (exact p 0.0625) and failed at margin 0.02 (Tango p 0.034).
* **Many comparisons at once: Holm.** A run compares 100+ (checkpoint pair, task) cells (52 Health specialties
  × 2 checkpoints); metrics.json Holm-adjusts every McNemar p of the file, and the gate can Holm-correct its
  statistical checks. Holm is uniformly more powerful than Bonferroni and valid under any dependence between
  the tests (a task group pools its tasks; several metrics of one run are strongly dependent), which
  Benjamini-Hochberg is not.

Conventions: a *difference* is always ``candidate - reference`` on a higher-is-better scale; arrays of
per-document outcomes are 0/1 (or bool) and aligned by document for paired functions. Functions return
``None`` where a quantity is undefined (no documents) instead of a fake number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0


def wilson_interval(successes: int, n: int, confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float] | None:
    """Two-sided Wilson score interval for ``successes / n``; ``None`` when ``n == 0``."""
    from scipy.stats import binomtest

    if n == 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n={n}, got {successes}")
    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class PairedCounts:
    """The 2×2 table of two checkpoints on the same documents (correct = 1)."""

    n: int
    both: int  # correct for both
    fixed: int  # reference wrong, candidate correct
    broken: int  # reference correct, candidate wrong
    neither: int

    @property
    def reference_rate(self) -> float:
        return (self.both + self.broken) / self.n

    @property
    def candidate_rate(self) -> float:
        return (self.both + self.fixed) / self.n

    @property
    def diff(self) -> float:
        """candidate - reference accuracy: (fixed - broken) / n."""
        return (self.fixed - self.broken) / self.n


def _binary(values: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.isin(arr, (0.0, 1.0)).all():
        raise ValueError(f"{name} must hold only 0/1 (or False/True) per-document outcomes")
    return arr


def paired_counts(reference: ArrayLike, candidate: ArrayLike) -> PairedCounts:
    """Count the 2×2 table of aligned per-document outcomes."""
    ref = _binary(reference, "reference")
    cand = _binary(candidate, "candidate")
    if ref.shape != cand.shape:
        raise ValueError(f"paired outcomes must align: {ref.size} reference vs {cand.size} candidate documents")
    return PairedCounts(
        n=int(ref.size),
        both=int(((ref == 1) & (cand == 1)).sum()),
        fixed=int(((ref == 0) & (cand == 1)).sum()),
        broken=int(((ref == 1) & (cand == 0)).sum()),
        neither=int(((ref == 0) & (cand == 0)).sum()),
    )


def mcnemar_exact_p(fixed: int, broken: int) -> float:
    """Two-sided exact McNemar p-value: binomial test of ``broken`` among the discordant pairs at p = 1/2."""
    from scipy.stats import binomtest

    discordant = int(fixed) + int(broken)
    if discordant == 0:
        return 1.0
    return float(binomtest(int(broken), discordant, 0.5, alternative="two-sided").pvalue)


def mcnemar_exact_one_sided_p(fixed: int, broken: int) -> float:
    """One-sided exact McNemar p-value for "the candidate is worse" (more broken than fixed)."""
    from scipy.stats import binomtest

    discordant = int(fixed) + int(broken)
    if discordant == 0:
        return 1.0
    return float(binomtest(int(broken), discordant, 0.5, alternative="greater").pvalue)


def paired_bootstrap_diff_ci(
    reference: ArrayLike,
    candidate: ArrayLike,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float] | None:
    """Percentile CI of ``mean(candidate) - mean(reference)`` by resampling documents with replacement.

    Resampling n documents with replacement only changes how many documents of each kind the resample holds
    (for 0/1 outcomes: fixed, broken, unchanged), so the counts are drawn from the multinomial directly. That is
    the same distribution as drawing an (n_resamples × n) index matrix, in O(n_resamples) memory and time, so a
    10 000-question task costs nothing. Seeded: the same inputs give the same interval.
    """
    ref = np.asarray(reference, dtype=float)
    cand = np.asarray(candidate, dtype=float)
    if ref.shape != cand.shape or ref.ndim != 1:
        raise ValueError(f"paired outcomes must be aligned 1-D arrays, got {ref.shape} and {cand.shape}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    n = ref.size
    if n == 0:
        return None
    values, counts = np.unique(cand - ref, return_counts=True)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, counts / n, size=n_resamples)  # (n_resamples, kinds of document)
    means = draws @ values / n
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def tango_score_p(fixed: int, broken: int, n: int, null_diff: float) -> float:
    """Lower-tail p-value of Tango's score test of H0: diff = ``null_diff`` against H1: diff < ``null_diff``.

    ``diff`` = P(candidate correct) - P(reference correct) on paired documents; ``fixed``/``broken`` are the
    discordant counts among ``n`` documents. The variance is taken at the restricted maximum-likelihood
    estimate under H0 (the closed-form root of Tango's quadratic), which is what keeps the test close to its
    nominal level in small samples. At ``null_diff == 0`` the statistic is McNemar's z = (fixed-broken)/√(f+b).
    """
    from scipy.stats import norm

    if not -1.0 < null_diff < 1.0:
        raise ValueError(f"null_diff must lie in (-1, 1), got {null_diff}")
    if n <= 0 or fixed < 0 or broken < 0 or fixed + broken > n:
        raise ValueError(f"need 0 <= fixed + broken <= n with n > 0, got fixed={fixed}, broken={broken}, n={n}")
    b, c, d0 = float(broken), float(fixed), float(null_diff)
    # Restricted MLE of P(broken) under diff = d0: the feasible (larger) root of
    #   2n t² - B t - b d0 (1 - d0) = 0,  B = (b + c)(1 - d0) - 2 d0 (n - c).
    big_b = (b + c) * (1.0 - d0) - 2.0 * d0 * (n - c)
    disc = max(big_b * big_b + 8.0 * n * b * d0 * (1.0 - d0), 0.0)
    p_broken = (big_b + math.sqrt(disc)) / (4.0 * n)
    variance = 2.0 * p_broken + d0 * (1.0 - d0)  # P(broken) + P(fixed) - d0²
    if variance <= 0.0:
        return 1.0  # no discordant documents and d0 = 0: no evidence either way
    z = (c - b - n * d0) / math.sqrt(n * variance)
    return float(norm.cdf(z))


@dataclass(frozen=True)
class RegressionTest:
    """Outcome of a one-sided test of H0: diff >= -margin against H1: diff < -margin (candidate worse).

    ``p_value`` = max(``p_exact``, ``p_score``): the exact test of "worse at all" and, with a margin, the score
    test of "worse by more than the margin" must both reject (see the module docstring for why)."""

    method: str  # human-readable name of the test used
    paired: bool
    n_reference: int
    n_candidate: int
    reference_rate: float
    candidate_rate: float
    diff: float  # candidate - reference
    margin: float
    p_value: float  # small = evidence that the candidate is worse by more than the margin
    ci_low: float | None  # two-sided CI of diff at ``confidence``
    ci_high: float | None
    confidence: float
    p_exact: float | None = None  # the exact test of "worse at all" (McNemar paired, Fisher unpaired)
    p_score: float | None = None  # the score test at -margin (Tango paired, Miettinen-Nurminen); None at 0


def _check_margin(margin: float) -> None:
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"margin must be a fraction in [0, 1), got {margin}")


def paired_regression_test(
    reference: ArrayLike,
    candidate: ArrayLike,
    margin: float = 0.0,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> RegressionTest:
    """Is the candidate worse than the reference by more than ``margin`` on the same documents?

    ``p_value`` is the exact one-sided McNemar p at ``margin == 0``; above 0 the larger of it and Tango's score
    test at diff = -margin (monotone in the margin; module docstring). The reported CI is the paired bootstrap
    CI of the difference (shown for scale; the verdict is the test's).
    """
    _check_margin(margin)
    counts = paired_counts(reference, candidate)
    if counts.n == 0:
        raise ValueError("no paired documents to test")
    p_exact = mcnemar_exact_one_sided_p(counts.fixed, counts.broken)
    if margin == 0.0:
        method, p_score, p = "exact McNemar, one-sided (paired)", None, p_exact
    else:
        method = "Tango score test at the margin, floored at the exact McNemar p; one-sided (paired)"
        p_score = tango_score_p(counts.fixed, counts.broken, counts.n, -margin)
        p = max(p_exact, p_score)
    ci = paired_bootstrap_diff_ci(reference, candidate, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return RegressionTest(
        method=method, paired=True, n_reference=counts.n, n_candidate=counts.n,
        reference_rate=counts.reference_rate, candidate_rate=counts.candidate_rate, diff=counts.diff,
        margin=margin, p_value=p, ci_low=ci[0] if ci else None, ci_high=ci[1] if ci else None,
        confidence=confidence, p_exact=p_exact, p_score=p_score,
    )


def newcombe_diff_interval(
    candidate_successes: int, candidate_n: int, reference_successes: int, reference_n: int,
    confidence: float = DEFAULT_CONFIDENCE,
) -> tuple[float, float] | None:
    """Newcombe's hybrid score CI of candidate rate - reference rate (independent samples)."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    if candidate_n == 0 or reference_n == 0:
        return None
    low, high = confint_proportions_2indep(
        candidate_successes, candidate_n, reference_successes, reference_n,
        method="newcomb", compare="diff", alpha=1.0 - confidence,
    )
    return float(low), float(high)


def unpaired_regression_test(
    reference: ArrayLike, candidate: ArrayLike, margin: float = 0.0, *, confidence: float = DEFAULT_CONFIDENCE,
) -> RegressionTest:
    """The same question as :func:`paired_regression_test` when the two runs scored different documents.

    ``p_value`` is Fisher's exact one-sided p at ``margin == 0`` (exact, so its false-alarm rate never exceeds
    alpha); above 0 the larger of it and the Miettinen-Nurminen score test of H0: p_cand - p_ref >= -margin
    (:func:`miettinen_nurminen_p`). The reported CI is Newcombe's.
    """
    from scipy.stats import fisher_exact

    _check_margin(margin)
    ref = _binary(reference, "reference")
    cand = _binary(candidate, "candidate")
    if ref.size == 0 or cand.size == 0:
        raise ValueError(f"need documents on both sides, got {ref.size} reference and {cand.size} candidate")
    k_ref, k_cand = int(ref.sum()), int(cand.sum())
    table = [[k_cand, cand.size - k_cand], [k_ref, ref.size - k_ref]]
    p_exact = min(float(fisher_exact(table, alternative="less").pvalue), 1.0)  # candidate's odds are lower
    if margin == 0.0:
        method, p_score, p = "Fisher exact test, one-sided (unpaired)", None, p_exact
    else:
        method = "Miettinen-Nurminen score test at the margin, floored at the Fisher exact p; one-sided (unpaired)"
        p_score = miettinen_nurminen_p(k_cand, int(cand.size), k_ref, int(ref.size), -margin)
        p = max(p_exact, p_score)
    ci = newcombe_diff_interval(k_cand, cand.size, k_ref, ref.size, confidence)
    return RegressionTest(
        method=method, paired=False,
        n_reference=int(ref.size), n_candidate=int(cand.size), reference_rate=k_ref / ref.size,
        candidate_rate=k_cand / cand.size, diff=k_cand / cand.size - k_ref / ref.size, margin=margin,
        p_value=min(p, 1.0), ci_low=ci[0] if ci else None, ci_high=ci[1] if ci else None, confidence=confidence,
        p_exact=p_exact, p_score=p_score,
    )


def miettinen_nurminen_p(k_cand: int, n_cand: int, k_ref: int, n_ref: int, null_diff: float) -> float:
    """Lower-tail p-value of the Miettinen-Nurminen score test of H0: p_cand - p_ref = ``null_diff`` against
    H1: p_cand - p_ref < ``null_diff`` (independent samples).

    The restricted MLE is the Farrington-Manning closed-form root of the likelihood's cubic. Written here
    rather than called from statsmodels because statsmodels' ``test_proportions_2indep(method="score",
    compare="diff")`` has a wrong cubic coefficient whenever the null difference is not 0
    (statsmodels/statsmodels#10269, open at 0.15.0).
    """
    from scipy.stats import norm

    if not -1.0 < null_diff < 1.0:
        raise ValueError(f"null_diff must lie in (-1, 1), got {null_diff}")
    if n_cand <= 0 or n_ref <= 0 or not (0 <= k_cand <= n_cand and 0 <= k_ref <= n_ref):
        raise ValueError(f"need 0 <= k <= n > 0 on both sides, got {k_cand}/{n_cand} and {k_ref}/{n_ref}")
    p1, p2, d = k_cand / n_cand, k_ref / n_ref, float(null_diff)
    theta = n_ref / n_cand
    a = 1.0 + theta
    b = -(1.0 + theta + p1 + theta * p2 + d * (theta + 2.0))
    c = d * d + d * (2.0 * p1 + theta + 1.0) + p1 + theta * p2
    e = -p1 * d * (1.0 + d)
    v = b**3 / (27.0 * a**3) - b * c / (6.0 * a * a) + e / (2.0 * a)
    u_sq = max(b * b / (9.0 * a * a) - c / (3.0 * a), 0.0)
    u = math.copysign(math.sqrt(u_sq), v)
    if u == 0.0:
        p1_null = -b / (3.0 * a)
    else:
        w = (math.pi + math.acos(max(-1.0, min(1.0, v / u**3)))) / 3.0
        p1_null = 2.0 * u * math.cos(w) - b / (3.0 * a)
    p2_null = p1_null - d
    n = n_cand + n_ref
    variance = (p1_null * (1 - p1_null) / n_cand + p2_null * (1 - p2_null) / n_ref) * n / (n - 1)
    if variance <= 0.0:
        return 1.0  # both samples at the same extreme: no evidence of a drop
    return float(norm.cdf((p1 - p2 - d) / math.sqrt(variance)))


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (reject where adjusted p <= alpha); same order as the input."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return []
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"p-values must lie in [0, 1], got {list(p_values)}")
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return [float(x) for x in adjusted]
