"""The Bayesian search of section 4.2.5 (Fig 4.12) as the report's bayes_opt ran it in 2019.

bayes_opt 1.x drew its random probes from the target space's own ``RandomState(random_state)`` (one
``uniform(low, high)`` per parameter, in the order dp, lr, wd) and proposed the next probes with a
second ``RandomState(random_state)`` shared by the Gaussian-process fits and the acquisition search:
UCB with kappa 2.576, the GP fitted on targets centred but not scaled (scikit-learn < 0.23's
``normalize_y``). bayes_opt 3.4 is configured here to do the same; ``reproduce audit`` shows that this
proposes the report's random probes and iterations 6, 7 and 9 digit for digit from its printed targets.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

KEYS = ("dp", "lr", "wd")
UCB_KAPPA = 2.576  # bayes_opt 1.x's default acquisition


def random_probes(bounds: dict[str, tuple[float, float]], random_state: int, n: int) -> list[dict[str, float]]:
    """bayes_opt's first ``n`` random probes: one uniform(low, high) per key, point by point."""
    rng = np.random.RandomState(random_state)
    return [{k: float(rng.uniform(*bounds[k], 1)[0]) for k in KEYS} for _ in range(n)]


def suggest(
    points: list[dict[str, float]],
    targets: list[float],
    bounds: dict[str, tuple[float, float]],
    rng: np.random.RandomState,
    centred: bool = True,
) -> dict[str, float]:
    """The next probe after ``points`` with ``targets``: bayes_opt 3.4, UCB kappa 2.576, the GP fitted on
    centred, unscaled targets as in 2019 (``centred=False``: bayes_opt 3.4's own normalised targets)."""
    from bayes_opt import BayesianOptimization, acquisition

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = BayesianOptimization(
            f=None,
            pbounds=dict(bounds),
            random_state=rng,
            verbose=0,
            acquisition_function=acquisition.UpperConfidenceBound(kappa=UCB_KAPPA),
        )
        y = np.asarray(targets, dtype=float)
        if centred:
            opt.set_gp_params(normalize_y=False)
            y = y - y.mean()
        for point, target in zip(points, y, strict=True):
            opt.register({k: float(point[k]) for k in KEYS}, float(target))
        return {k: float(v) for k, v in opt.suggest().items()}


def search(
    objective: Callable[[dict[str, float]], float],
    bounds: dict[str, tuple[float, float]],
    random_state: int,
    init_points: int,
    n_iter: int,
) -> list[dict]:
    """``init_points`` random probes, then ``n_iter`` proposed ones; every probe with its target, in order."""
    rng = np.random.RandomState(random_state)  # the GP's and the acquisition's generator
    probes: list[dict] = []
    randoms = random_probes(bounds, random_state, init_points)  # the target space's own generator
    for i in range(init_points + n_iter):
        if i < init_points:
            params = randoms[i]
        else:
            params = suggest([p["params"] for p in probes], [p["target"] for p in probes], bounds, rng)
        probes.append({"index": i, "params": params, "target": float(objective(params))})
    return probes
