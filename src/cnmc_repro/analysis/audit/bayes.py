"""The Bayesian search's set-up (Fig 4.12): its bounds, random_state and init_points, and which of its probes
bayes_opt proposes again digit for digit.

bayes_opt draws its first probes uniformly from the bounds with ``RandomState(random_state)``; the bounds are
the extremes of the probes that sit on them (Fig 4.12, iterations 6-10) and the seed is found by search
(:func:`search_random_state`). The guided probes are asked of bayes_opt 3.4 again (:func:`guided_proposals`),
under the engine's own configuration (``cnmc_repro.run.bayesian``) and two others.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from cnmc_repro.run import bayesian
from cnmc_repro.run.bayesian import KEYS, UCB_KAPPA
from cnmc_repro.spec.schema import BayesIteration, Spec

SEED_RANGE = (0, 10_000)  # random_state values searched

GUIDED_SETTINGS = {
    "bayes_opt3_ucb_centred": (
        "bayes_opt 3.4, UCB kappa=2.576 (bayes_opt 1.x's default), the GP fitted on targets centred but not "
        "scaled (scikit-learn < 0.23's normalize_y, as in 2019), one RandomState(random_state) shared by the "
        "GP fits and the acquisition search (bayes_opt 1.x kept the random probes' generator apart)"
    ),
    "bayes_opt3_default": (
        "bayes_opt 3.4 defaults: UCB kappa=2.576, the GP with normalize_y=True (scikit-learn >= 0.23 also "
        "divides the targets by their standard deviation), one RandomState(random_state) as above"
    ),
    "bayes_opt1_emulated": (
        "bayes_opt 1.x's acq_max written out here (10,000 random tries, then L-BFGS-B from 10 fresh random "
        "seeds, UCB kappa=2.576) on the centred GP, one RandomState(random_state) as above"
    ),
}
PRIMARY_SETTING = "bayes_opt3_ucb_centred"


def _probe_values(it: BayesIteration) -> dict[str, str]:
    return {k: getattr(it, k) for k in KEYS}


def infer_bounds(published: list[BayesIteration]) -> dict[str, tuple[float, float]]:
    """Each parameter's bounds as the smallest and largest printed value (Fig 4.12). The guided probes
    (iterations 6-10) sit on the bounds, so the extremes are the bounds; the random draws confirm it."""
    return {
        k: (min(float(getattr(p, k)) for p in published), max(float(getattr(p, k)) for p in published)) for k in KEYS
    }


def on_bounds(published: list[BayesIteration], bounds: dict[str, tuple[float, float]]) -> dict[str, list[int]]:
    """The iterations whose printed value of each parameter is one of its bounds."""
    return {k: [p.index for p in published if float(getattr(p, k)) in bounds[k]] for k in KEYS}


def search_random_state(
    published: list[BayesIteration],
    bounds: dict[str, tuple[float, float]],
    states: tuple[int, int] = SEED_RANGE,
) -> list[int]:
    """Every random_state in ``states`` whose first draw equals the first printed probe digit for digit
    (the repr of the float against the printed string), all three parameters."""
    first = _probe_values(published[0])
    hits = []
    for seed in range(states[0], states[1] + 1):
        draw = bayesian.random_probes(bounds, seed, 1)[0]
        if all(repr(draw[k]) == first[k] for k in KEYS):
            hits.append(seed)
    return hits


def bayes_opt_random_probes(
    bounds: dict[str, tuple[float, float]], random_state: int, n: int
) -> list[dict[str, float]]:
    """The first ``n`` random probes bayes_opt 3.4 itself proposes with these bounds and random_state."""
    from bayes_opt import BayesianOptimization

    opt = BayesianOptimization(f=None, pbounds=dict(bounds), random_state=random_state, verbose=0)
    return [{k: float(v) for k, v in p.items()} for p in opt.random_sample(n)]


def _emulated_1x_suggest(
    x: np.ndarray, y: np.ndarray, bounds: np.ndarray, rng: np.random.RandomState, kappa: float
) -> np.ndarray:
    """bayes_opt 1.x's ``suggest``: fit the GP (Matern 2.5, alpha 1e-6, 5 restarts, sklearn < 0.23's
    normalize_y: centred targets), then ``acq_max``: the best of 10,000 uniform tries and of L-BFGS-B runs
    from 10 fresh uniform seeds, clipped to the bounds."""
    from scipy.optimize import minimize
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import Matern

    gp = GaussianProcessRegressor(
        kernel=Matern(nu=2.5), alpha=1e-6, normalize_y=False, n_restarts_optimizer=5, random_state=rng
    )
    gp.fit(x, y - y.mean())

    def ucb(points: np.ndarray) -> np.ndarray:
        mean, std = gp.predict(points, return_std=True)
        return mean + kappa * std

    tries = rng.uniform(bounds[:, 0], bounds[:, 1], size=(10_000, bounds.shape[0]))
    values = ucb(tries)
    x_max, best = tries[values.argmax()], float(values.max())
    for seed in rng.uniform(bounds[:, 0], bounds[:, 1], size=(10, bounds.shape[0])):
        res = minimize(lambda z: -ucb(z.reshape(1, -1))[0], seed, bounds=bounds, method="L-BFGS-B")
        if res.success and -float(np.ravel(res.fun)[0]) >= best:
            x_max, best = res.x, -float(np.ravel(res.fun)[0])
    return np.clip(x_max, bounds[:, 0], bounds[:, 1])


def guided_proposals(
    published: list[BayesIteration],
    bounds: dict[str, tuple[float, float]],
    random_state: int,
    init_points: int,
    setting: str = PRIMARY_SETTING,
) -> list[dict[str, float]]:
    """The points proposed for iterations ``init_points``.. of Fig 4.12, each after registering the printed
    probes and targets before it, under one of GUIDED_SETTINGS. Deterministic: one
    ``RandomState(random_state)`` serves every suggestion in turn, as in one optimisation run."""

    if setting not in GUIDED_SETTINGS:
        raise ValueError(f"unknown setting {setting!r}; known: {', '.join(GUIDED_SETTINGS)}")
    rng = np.random.RandomState(random_state)
    xs = np.array([[float(getattr(p, k)) for k in KEYS] for p in published])
    ys = np.array([float(p.target) for p in published])
    box = np.array([bounds[k] for k in KEYS])
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(init_points, len(published)):
            if setting == "bayes_opt1_emulated":
                point = _emulated_1x_suggest(xs[:i], ys[:i], box, rng, UCB_KAPPA)
                out.append({k: float(v) for k, v in zip(KEYS, point, strict=True)})
                continue
            # bayes_opt3_ucb_centred is the engine's own proposal; bayes_opt3_default the same without centring
            points = [dict(zip(KEYS, (float(v) for v in xrow), strict=True)) for xrow in xs[:i]]
            centred = setting == "bayes_opt3_ucb_centred"
            out.append(bayesian.suggest(points, list(ys[:i]), dict(bounds), rng, centred=centred))
    return out


def target_counts(published: list[BayesIteration], n: int) -> list[int | None]:
    """For each printed target, the k for which the float32 k/n is that target digit for digit (the probes'
    targets are fastai validation accuracies, float32 tensors turned into Python floats), or None."""
    out: list[int | None] = []
    for p in published:
        k = round(float(p.target) * n)
        hits = [c for c in (k - 1, k, k + 1) if 0 <= c <= n and repr(float(np.float32(c) / np.float32(n))) == p.target]
        out.append(hits[0] if hits else None)
    return out


def audit_bayesian(spec: Spec, valid_size: int | None = None) -> dict[str, Any]:
    """Bounds, random_state and init_points of Fig 4.12's search, and which of its probes bayes_opt 3.4
    proposes again digit for digit (random probes, and guided ones under each of GUIDED_SETTINGS)."""
    published = list(spec.published.bayesian)
    bounds = infer_bounds(published)
    sitting = on_bounds(published, bounds)
    seeds = search_random_state(published, bounds)
    basis = [
        "bounds: the smallest and largest printed value of each parameter; they are printed by the guided probes "
        + "; ".join(f"{k} {bounds[k][0]!r}..{bounds[k][1]!r} at iterations {sitting[k]}" for k in KEYS),
        f"random_state: searched {SEED_RANGE[0]}..{SEED_RANGE[1]} for RandomState(seed).uniform(low, high) draws "
        f"in bayes_opt's key order {list(KEYS)} equal to iteration 0 digit for digit: {seeds}",
    ]
    doc: dict[str, Any] = {
        "bounds": {k: list(bounds[k]) for k in KEYS},
        "bounds_printed_at": sitting,
        "random_state_candidates": seeds,
        "random_state": seeds[0] if len(seeds) == 1 else None,
        "init_points": None,
        "n_iter": None,
        "iterations": [],
        "settings": {},
        "exact": [],
        "basis": basis,
    }
    if len(seeds) != 1:
        basis.append("the random_state is not unique: no probes are proposed again")
        return doc
    seed = seeds[0]
    random_probes = bayes_opt_random_probes(bounds, seed, len(published))
    init_points = 0
    for p, q in zip(published, random_probes, strict=True):
        if _reprs(q) != _probe_values(p):
            break
        init_points += 1
    doc["init_points"] = init_points
    doc["n_iter"] = len(published) - init_points
    basis.append(
        f"init_points: bayes_opt 3.4 (BayesianOptimization(pbounds, random_state={seed}).random_sample) proposes "
        f"iterations 0..{init_points - 1} digit for digit and its next draw is not iteration {init_points}: "
        f"{init_points} random probes, then {len(published) - init_points} guided ones"
    )
    settings: dict[str, Any] = {}
    for name, text in GUIDED_SETTINGS.items():
        proposals = guided_proposals(published, bounds, seed, init_points, name)
        exact = [
            p.index
            for p, q in zip(published[init_points:], proposals, strict=True)
            if all(repr(q[k]) == getattr(p, k) for k in KEYS)
        ]
        settings[name] = {"description": text, "exact": exact, "proposed": [_reprs(q) for q in proposals]}
    doc["settings"] = settings
    primary = settings[PRIMARY_SETTING]
    iterations = []
    for p in published:
        if p.index < init_points:
            proposed, source = random_probes[p.index], "random draw"
            proposed_text = _reprs(proposed)
        else:
            proposed_text = primary["proposed"][p.index - init_points]
            source = PRIMARY_SETTING
        exact = all(proposed_text[k] == getattr(p, k) for k in KEYS)
        iterations.append(
            {
                "index": p.index,
                "published": {"target": p.target, **_probe_values(p)},
                "proposed": proposed_text,
                "source": source,
                "exact": exact,
                "max_abs_diff": max(abs(float(proposed_text[k]) - float(getattr(p, k))) for k in KEYS),
            }
        )
    doc["iterations"] = iterations
    doc["exact"] = [it["index"] for it in iterations if it["exact"]]
    basis.append(
        "guided probes: bayes_opt 3.4 asked to suggest each of them after registering the printed probes and "
        f"targets before it (optimizer.register), under {len(settings)} settings; exact under each: "
        + "; ".join(f"{name} {s['exact']}" for name, s in settings.items())
    )
    if valid_size:
        counts = target_counts(published, valid_size)
        doc["target_counts"] = counts
        doc["target_valid_size"] = valid_size
        basis.append(
            f"targets: {sum(c is not None for c in counts)} of {len(counts)} printed targets are the float32 "
            f"k/{valid_size} digit for digit (Table 4.14's validation size)"
        )
    return doc


def _reprs(point: dict[str, float]) -> dict[str, str]:
    return {k: repr(float(point[k])) for k in KEYS}
