"""Binomial intervals: the one implementation every rate in the project uses.

A rate promised in a service agreement ("at most 0.01% of legitimate mail
misjudged") is only shown by enough mail: 0 false positives in 5,000 legitimate
mails still allow a true rate of 0.06%. Each rate therefore carries an interval.
Clopper-Pearson (exact, conservative) is the one the report and the classifier's
evaluation use; Wilson (tighter, close to nominal coverage) is kept for the
antivirus evaluation, which has always printed it.
"""

from __future__ import annotations

import math
from statistics import NormalDist

CONFIDENCE = 0.95


def clopper_pearson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact two-sided interval for a binomial proportion k/n; (0, 1) when n = 0."""
    _check(k, n)
    if n == 0:
        return (0.0, 1.0)
    alpha = 1.0 - confidence
    lower = 0.0 if k == 0 else _beta_ppf(alpha / 2, k, n - k + 1)
    upper = 1.0 if k == n else _beta_ppf(1 - alpha / 2, k + 1, n - k)
    return (lower, upper)


def wilson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval: sound near 0 and 1 (unlike Wald), tighter than Clopper-Pearson."""
    _check(k, n)
    if n == 0:
        return (0.0, 1.0)
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def upper_bound(k: int, n: int, confidence: float = CONFIDENCE) -> float:
    """One-sided exact upper bound: the rate one may claim 'at most' with this confidence.

    For k = 0 it is 1 - (1 - confidence)^(1/n), about 3/n (the "rule of three").
    """
    _check(k, n)
    if n == 0 or k >= n:
        return 1.0
    return _beta_ppf(confidence, k + 1, n - k)


def needed_without_error(target: float, confidence: float = CONFIDENCE) -> int:
    """Trials with no error needed before the one-sided bound reaches `target`."""
    return math.ceil(math.log(1 - confidence) / math.log(1 - target))


def mean_interval(values_sum: float, squares_sum: float, n: int) -> tuple[float, float] | None:
    """95% Student-t interval for a mean from its sums (None below two values)."""
    if n < 2:
        return None
    from scipy.special import stdtrit  # Student t quantile

    mean = values_sum / n
    variance = max(0.0, (squares_sum - n * mean * mean) / (n - 1))
    half = float(stdtrit(n - 1, 1 - (1 - CONFIDENCE) / 2)) * math.sqrt(variance / n)
    return (mean - half, mean + half)


def quantile_interval(n: int, q: float, confidence: float = CONFIDENCE) -> tuple[int, int] | None:
    """Distribution-free interval for the q-quantile: 0-based ranks (lo, hi) into the
    sorted sample, from the binomial(n, q) distribution of the ranks; None when the
    sample is too small for one."""
    if n < 1:
        return None
    alpha = 1 - confidence
    lo = _binom_ppf(alpha / 2, n, q) - 1
    hi = _binom_ppf(1 - alpha / 2, n, q)
    if lo < 0 or hi > n - 1:
        return None
    return (lo, hi)


def _beta_ppf(q: float, a: float, b: float) -> float:
    # scipy.special, not scipy.stats: the same numbers, a tenth of the import time
    from scipy.special import betaincinv

    return float(betaincinv(a, b, q))


def _binom_ppf(q: float, n: int, p: float) -> int:
    """The smallest k with P(Binomial(n, p) <= k) >= q (binary search on the CDF)."""
    from scipy.special import bdtr

    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if bdtr(mid, n, p) >= q:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _check(k: int, n: int) -> None:
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
