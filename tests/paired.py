"""Paired comparisons over seeds for the statistical tests (a helper, not a test module).

A one-sided sign test: method A beats method B on seed s when its loss is strictly lower (a tie
is a loss for A). If A were no better than B, each seed would be a win with probability at most
1/2, so requiring at least k wins of n passes by chance with probability at most
P(Binomial(n, 1/2) >= k): the false-pass rate stated in each test's docstring.
"""

from math import comb


def false_pass_rate(n: int, k: int) -> float:
    """P(Binomial(n, 1/2) >= k): how often an equal method wins at least k of n paired seeds."""
    return sum(comb(n, i) for i in range(k, n + 1)) / 2 ** n


def assert_wins(ours, theirs, k: int, what: str) -> None:
    """At least ``k`` of the paired losses ``ours[s] < theirs[s]`` (lower is better)."""
    ours, theirs = [float(v) for v in ours], [float(v) for v in theirs]
    assert len(ours) == len(theirs)
    n = len(ours)
    wins = sum(o < t for o, t in zip(ours, theirs))
    assert false_pass_rate(n, k) < 0.05, "the threshold itself is too lenient"
    assert wins >= k, (f"{what}: {wins} wins of {n} seeds, {k} needed (false-pass rate "
                       f"{false_pass_rate(n, k):.3f}); ours {[round(v, 4) for v in ours]}, "
                       f"theirs {[round(v, 4) for v in theirs]}")
