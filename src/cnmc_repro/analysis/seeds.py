"""A published figure against the spread of N reproduced runs of its recipe, one run per seed.

The report printed one run of each recipe; runs of the same recipe differ by their seed. For the N stored
runs of a figure this module gives their mean m, sample standard deviation s, minimum and maximum, and the
95% prediction interval for one further run, m ± t(0.975, N-1) · s · √(1 + 1/N) (the Student-t interval
for one new draw from the same normal population: Hahn and Meeker, *Statistical Intervals: A Guide for
Practitioners*, Wiley 1991). The published figure is such a draw, so the interval is the test for it:

- ``reproduced``: the published value lies inside the interval widened by half the unit of its last printed
  digit (0.0000005 for "0.911207", 0.005 for "87%"): a printed value stands for every value that rounds to it;
- ``above`` / ``below``: the published value lies above or below that;
- ``inconclusive``: fewer than :data:`MIN_RUNS` runs, too few to tell a difference from the spread.

A confidence interval of the mean, m ± t · s / √N, would be the wrong test: it says where the recipe's mean
lies and narrows to nothing as seeds are added, so that with enough seeds any single published run would
differ from it by its own seed noise alone. The prediction interval keeps one run's spread (about ±1.96 σ as
N grows).

Plain numbers only; no torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from scipy.stats import t as student_t

from cnmc_repro.analysis.audit.printed import printed_value

LEVEL = 0.95  # of the prediction interval
MIN_RUNS = 3  # fewer runs: inconclusive


@dataclass(frozen=True)
class Spread:
    """The figures of N runs of one recipe (one per seed) and the prediction interval for one more run.

    ``sd`` is the sample standard deviation (ddof 1); with one run there is none, and no interval.
    """

    n: int
    seeds: tuple[int, ...]
    mean: float
    sd: float | None
    min: float
    max: float
    pi_low: float | None
    pi_high: float | None


def t_quantile(n: int, level: float = LEVEL) -> float:
    """t(0.975, n-1) at the 95% level: the two-sided quantile of Student's t with n-1 degrees of freedom."""
    return float(student_t.ppf(1 - (1 - level) / 2, n - 1))


def half_width(sd: float, n: int, level: float = LEVEL) -> float:
    """Half the prediction interval for one further run from N runs: t · s · √(1 + 1/N)."""
    return t_quantile(n, level) * sd * math.sqrt(1 + 1 / n)


def spread(values: Sequence[float], seeds: Sequence[int]) -> Spread | None:
    """The spread of the runs' ``values`` (``seeds[i]`` gave ``values[i]``); None without a run."""
    if len(values) != len(seeds):
        raise ValueError(f"{len(values)} values for {len(seeds)} seeds")
    n = len(values)
    if n == 0:
        return None
    mean = math.fsum(values) / n
    sd = pi_low = pi_high = None
    if n > 1:
        sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
        half = half_width(sd, n)
        pi_low, pi_high = mean - half, mean + half
    return Spread(n, tuple(seeds), mean, sd, min(values), max(values), pi_low, pi_high)


def half_unit(printed: str | Sequence[str]) -> float:
    """Half the unit of the last printed digit: "0.911207" -> 5e-7, "75.46%" -> 5e-5, "87%" -> 0.005.

    For a figure computed from several printed ones (the mean of Tables 4.9-4.13's last rows) the coarsest.
    """
    texts = [printed] if isinstance(printed, str) else list(printed)
    return max(0.5 * 10.0 ** -printed_value(text)[1] for text in texts)


class Verdict(StrEnum):
    """How a published figure stands against the reproduced runs (``format.verdict_text`` words it)."""

    REPRODUCED = "reproduced"  # inside the widened prediction interval
    ABOVE = "above"  # the published value lies above it
    BELOW = "below"  # the published value lies below it
    INCONCLUSIVE = "inconclusive"  # fewer than MIN_RUNS runs
    NOT_COMPARABLE = "not_comparable"  # runs on the built-in synthetic data
    NOT_RUN = "not_run"  # no run holds the figure
    NOT_PUBLISHED = "not_published"  # a figure the report does not print


def verdict(published: float | None, half: float, runs: Spread | None, synthetic: bool = False) -> Verdict:
    """The verdict of the rule above for a published value printed to ``half`` (see :func:`half_unit`)."""
    if published is None:
        return Verdict.NOT_PUBLISHED
    if runs is None:
        return Verdict.NOT_RUN
    if synthetic:
        return Verdict.NOT_COMPARABLE
    if runs.n < MIN_RUNS:
        return Verdict.INCONCLUSIVE
    if published < runs.pi_low - half:
        return Verdict.BELOW
    if published > runs.pi_high + half:
        return Verdict.ABOVE
    return Verdict.REPRODUCED


def outside(published: float, half: float, runs: Spread) -> float:
    """How far the published value lies outside the widened interval (0 inside it): the order of the
    figures that are not reproduced, worst first."""
    if runs.pi_low is None:
        return 0.0
    return max(0.0, runs.pi_low - half - published, published - runs.pi_high - half)
