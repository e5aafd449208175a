"""The Bayesian search's set-up (Fig 4.12): its bounds, random_state and init_points, and which of its probes
bayes_opt proposes again digit for digit.

bayes_opt draws its first probes uniformly from the bounds with ``RandomState(random_state)``; the bounds are
the extremes of the probes that sit on them (Fig 4.12, iterations 6-10) and the seed is found by search
(:func:`search_random_state`). The guided probes are asked of bayes_opt 3.4 again (:func:`guided_proposals`),
under the engine's own configuration (``cnmc_repro.run.bayesian``) and two others.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from cnmc_repro.run import bayesian
from cnmc_repro.run.bayesian import KEYS, UCB_KAPPA
from cnmc_repro.spec.schema import BayesIteration, Spec

SEED_RANGE = (0, 10_000)  # random_state values searched

GUIDED_SETTINGS = {
    "bayes_opt3_ucb_centred": (
        f"bayes_opt 3.4, UCB kappa={UCB_KAPPA} (bayes_opt 1.x's default), the GP fitted on targets centred but not "
        "scaled (scikit-learn < 0.23's normalize_y, as in 2019), one RandomState(random_state) shared by the "
        "GP fits and the acquisition search (bayes_opt 1.x kept the random probes' generator apart)"
    ),
    "bayes_opt3_default": (
        f"bayes_opt 3.4 defaults: UCB kappa={UCB_KAPPA}, the GP with normalize_y=True (scikit-learn >= 0.23 also "
        "divides the targets by their standard deviation), one RandomState(random_state) as above"
    ),
    "bayes_opt1_emulated": (
        "bayes_opt 1.x's acq_max written out here (10,000 random tries, then L-BFGS-B from 10 fresh random "
        f"seeds, UCB kappa={UCB_KAPPA}) on the centred GP, one RandomState(random_state) as above"
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


# ------------------------------------------------------------------------------------------------ findings


@dataclass(frozen=True)
class ProbeFinding:
    """One iteration of Fig 4.12: the printed probe (``published``: target, dp, lr, wd as printed) beside the
    one bayes_opt proposes (``proposed``, as reprs) and where that comes from (``source``)."""

    index: int
    published: dict[str, str]
    proposed: dict[str, str]
    source: str

    @property
    def exact(self) -> bool:
        """Digit for digit: the repr of every proposed value is the printed string."""
        return all(self.proposed[k] == self.published[k] for k in KEYS)

    @property
    def max_abs_diff(self) -> float:
        return max(abs(float(self.proposed[k]) - float(self.published[k])) for k in KEYS)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "published": self.published,
            "proposed": self.proposed,
            "source": self.source,
            "exact": self.exact,
            "max_abs_diff": self.max_abs_diff,
        }


@dataclass(frozen=True)
class SettingFinding:
    """The guided probes proposed under one of GUIDED_SETTINGS, and the iterations they give exactly."""

    description: str
    exact: list[int]
    proposed: list[dict[str, str]]

    def to_json(self) -> dict[str, Any]:
        return {"description": self.description, "exact": self.exact, "proposed": self.proposed}


@dataclass(frozen=True)
class BayesFinding:
    """Bounds, random_state and init_points of Fig 4.12's search (:func:`audit_bayesian`). Without a unique
    random_state (``seed_unique`` false) nothing is proposed again: no init_points, iterations nor settings."""

    bounds: dict[str, tuple[float, float]]
    bounds_printed_at: dict[str, list[int]]
    random_state_candidates: list[int]
    probes: int  # how many iterations Fig 4.12 prints
    init_points: int | None = None
    iterations: list[ProbeFinding] = field(default_factory=list)
    settings: dict[str, SettingFinding] = field(default_factory=dict)
    target_counts: list[int | None] | None = None  # each printed target as a float32 k/target_valid_size
    target_valid_size: int | None = None
    seed_range: tuple[int, int] = SEED_RANGE

    @property
    def seed_unique(self) -> bool:
        return len(self.random_state_candidates) == 1

    @property
    def random_state(self) -> int | None:
        return self.random_state_candidates[0] if self.seed_unique else None

    @property
    def n_iter(self) -> int | None:
        return None if self.init_points is None else self.probes - self.init_points

    @property
    def exact(self) -> list[int]:
        return [it.index for it in self.iterations if it.exact]

    @property
    def basis(self) -> list[str]:
        """What the finding rests on, one sentence per step."""
        (lo, hi), seeds = self.seed_range, self.random_state_candidates
        basis = [
            "bounds: the smallest and largest printed value of each parameter; they are printed by the guided "
            "probes "
            + "; ".join(
                f"{k} {self.bounds[k][0]!r}..{self.bounds[k][1]!r} at iterations {self.bounds_printed_at[k]}"
                for k in KEYS
            ),
            f"random_state: searched {lo}..{hi} for RandomState(seed).uniform(low, high) draws in bayes_opt's key "
            f"order {list(KEYS)} equal to iteration 0 digit for digit: {seeds}",
        ]
        if not self.seed_unique or self.init_points is None:
            basis.append("the random_state is not unique: no probes are proposed again")
            return basis
        init = self.init_points
        basis.append(
            f"init_points: bayes_opt 3.4 (BayesianOptimization(pbounds, random_state={self.random_state})"
            f".random_sample) proposes iterations 0..{init - 1} digit for digit and its next draw is not iteration "
            f"{init}: {init} random probes, then {self.n_iter} guided ones"
        )
        basis.append(
            "guided probes: bayes_opt 3.4 asked to suggest each of them after registering the printed probes and "
            f"targets before it (optimizer.register), under {len(self.settings)} settings; exact under each: "
            + "; ".join(f"{name} {s.exact}" for name, s in self.settings.items())
        )
        if self.target_counts is not None:
            counts = self.target_counts
            basis.append(
                f"targets: {sum(c is not None for c in counts)} of {len(counts)} printed targets are the float32 "
                f"k/{self.target_valid_size} digit for digit (Table 4.14's validation size)"
            )
        return basis

    def to_json(self) -> dict[str, Any]:
        doc = {
            "bounds": {k: list(self.bounds[k]) for k in KEYS},
            "bounds_printed_at": self.bounds_printed_at,
            "random_state_candidates": self.random_state_candidates,
            "random_state": self.random_state,
            "init_points": self.init_points,
            "n_iter": self.n_iter,
            "iterations": [it.to_json() for it in self.iterations],
            "settings": {name: s.to_json() for name, s in self.settings.items()},
            "exact": self.exact,
            "basis": self.basis,
        }
        if self.target_counts is not None:
            doc.update(target_counts=self.target_counts, target_valid_size=self.target_valid_size)
        return doc


# ------------------------------------------------------------------------------------------------ the audit


def audit_bayesian(spec: Spec, valid_size: int | None = None) -> BayesFinding:
    """Bounds, random_state and init_points of Fig 4.12's search, and which of its probes bayes_opt 3.4
    proposes again digit for digit (random probes, and guided ones under each of GUIDED_SETTINGS); with the
    validation size of Table 4.14, which k/N each printed target is."""
    published = list(spec.published.bayesian)
    bounds = infer_bounds(published)
    finding = BayesFinding(
        bounds=bounds,
        bounds_printed_at=on_bounds(published, bounds),
        random_state_candidates=search_random_state(published, bounds),
        probes=len(published),
    )
    seed = finding.random_state
    if seed is None:
        return finding
    random_probes = bayes_opt_random_probes(bounds, seed, len(published))
    init_points = 0
    for p, q in zip(published, random_probes, strict=True):
        if _reprs(q) != _probe_values(p):
            break
        init_points += 1
    settings: dict[str, SettingFinding] = {}
    for name, text in GUIDED_SETTINGS.items():
        proposals = guided_proposals(published, bounds, seed, init_points, name)
        exact = [
            p.index
            for p, q in zip(published[init_points:], proposals, strict=True)
            if all(repr(q[k]) == getattr(p, k) for k in KEYS)
        ]
        settings[name] = SettingFinding(description=text, exact=exact, proposed=[_reprs(q) for q in proposals])
    iterations = []
    for p in published:
        if p.index < init_points:
            proposed, source = _reprs(random_probes[p.index]), "random draw"
        else:
            proposed, source = settings[PRIMARY_SETTING].proposed[p.index - init_points], PRIMARY_SETTING
        printed = {"target": p.target, **_probe_values(p)}
        iterations.append(ProbeFinding(index=p.index, published=printed, proposed=proposed, source=source))
    return replace(
        finding,
        init_points=init_points,
        iterations=iterations,
        settings=settings,
        target_counts=target_counts(published, valid_size) if valid_size else None,
        target_valid_size=valid_size or None,
    )


def _reprs(point: dict[str, float]) -> dict[str, str]:
    return {k: repr(float(point[k])) for k in KEYS}
