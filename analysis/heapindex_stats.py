"""Paired ratios and their 95% confidence intervals, for bench and report.

A bench round runs every configuration once, in a shuffled order. Within a
round, configuration A's wall time over the baseline's (uninstrumented, or
memtable) is one *paired ratio*: drift of a shared machine between rounds
cancels in it. Over n rounds we have n ratios r_1..r_n.

Interval: the t interval of the mean of log r_i, exponentiated,

    exp(mean(log r) +- t(0.975, n-1) * sd(log r) / sqrt(n)),

an interval for the geometric mean ratio. Why this and not a bootstrap over
rounds: a bench has 3 to 15 rounds, and a percentile bootstrap of so few
values can only resample them, so its interval never reaches beyond the
smallest and largest ratio seen and covers the true ratio well under 95% of
the time at n = 3..5 (its width does not grow with t's small-sample factor:
4.30 at n = 3, 2.78 at n = 5). The log of a ratio of two run times is a
difference of logs, close to symmetric, and the t interval is exact for
normal log ratios at any n. One disturbed round widens it (sd grows), which
is the honest answer. n = 1 gives no interval.

Everything here is standard library; the t quantile comes from the
regularized incomplete beta function (continued fraction, as in Numerical
Recipes' betacf) and bisection, checked against tables in bench/test_pipeline.py.
"""

import math
import statistics

LEVEL = 0.95


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 3e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with df degrees of freedom."""
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p (0 < p < 1), by bisection on t_cdf."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile: p must be in (0, 1) and df > 0, not p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2.0


def ratio_ci(ratios, level: float = LEVEL) -> dict:
    """Summary of paired ratios: n, estimate (geometric mean), median, min,
    max, and with n >= 2 the interval lo..hi, its half-width in percent
    (exp(t * se) - 1: the interval is symmetric in log space) and whether
    it excludes 1.0 (resolved). Ratios must be positive."""
    values = [float(r) for r in ratios]
    if any(not r > 0 or math.isinf(r) for r in values):
        raise ValueError("ratio_ci: every ratio must be a positive finite number")
    n = len(values)
    out = {"n": n, "estimate": None, "median": None, "min": None, "max": None,
           "lo": None, "hi": None, "half_width_pct": None, "resolved": False}
    if n == 0:
        return out
    logs = [math.log(r) for r in values]
    mean = statistics.fmean(logs)
    out.update(estimate=math.exp(mean), median=statistics.median(values), min=min(values),
               max=max(values))
    if n < 2:
        return out
    half = t_quantile(0.5 + level / 2.0, n - 1) * statistics.stdev(logs) / math.sqrt(n)
    lo, hi = math.exp(mean - half), math.exp(mean + half)
    out.update(lo=lo, hi=hi, half_width_pct=(math.exp(half) - 1.0) * 100.0,
               resolved=lo > 1.0 or hi < 1.0)
    return out


def verdict(ci: dict) -> str:
    """'+2.9% (+1.2..+4.6%)' when the interval excludes 1.0, else
    'not resolved at N rounds' (or 'one round: no interval')."""
    if ci["n"] == 0:
        return "n/a"
    if ci["lo"] is None:
        return "one round: no interval"
    if not ci["resolved"]:
        return f"not resolved at {ci['n']} rounds"
    return f"{pct(ci['estimate'])} ({pct(ci['lo'])}..{pct(ci['hi'])})"


def pct(ratio: float) -> str:
    return f"{(ratio - 1.0) * 100.0:+.1f}%".replace("+-", "-")


def ratio_text(ci: dict) -> str:
    """'1.029 [1.012..1.046]' or, when unresolved, the same plus the words."""
    if ci["n"] == 0:
        return "n/a"
    text = f"{ci['estimate']:.3f}"
    if ci["lo"] is None:
        return text + " (1 round)"
    text += f" [{ci['lo']:.3f}..{ci['hi']:.3f}]"
    if not ci["resolved"]:
        text += f" not resolved at {ci['n']} rounds"
    return text
