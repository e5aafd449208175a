"""Profiles: ``full`` runs a spec as published; ``smoke`` shrinks it in code so that every spec runs on a CPU.

``smoke`` caps every stage at one epoch, images at 64 px (AlexNet's smallest input is 63 px) and the cells
at a stratified sample. It uses a spec's ImageNet weights only when they are already in torchvision's
cache and never downloads them (a CPU machine may have no network); otherwise it trains from random
weights, and the run records which. The specs themselves are unchanged: a smoke run is the same recipe, small.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from cnmc_repro.errors import UserError
from cnmc_repro.spec.schema import Spec, Stage


@dataclass(frozen=True)
class Profile:
    name: str
    max_epochs: int | None  # per stage
    max_size: int | None
    max_train_cells: int | None
    max_test_cells: int | None
    download_weights: bool  # full: fetch missing ImageNet weights; smoke: use them only when cached
    lr_find_iterations: int
    max_bs: int | None
    max_folds: int | None = None  # k-fold: folds trained out of the spec's k
    max_probes: tuple[int, int] | None = None  # Bayesian search: (random, guided) probes


FULL = Profile("full", None, None, None, None, True, 100, None)
SMOKE = Profile("smoke", 1, 64, 240, 64, False, 8, 32)
# timing: the published sizes and data, one epoch per stage, one fold of each k-fold and one random and one
# guided Bayesian probe; the seconds per epoch it measures project a full run's duration
TIMING = Profile("timing", 1, None, None, None, False, 20, None, max_folds=1, max_probes=(1, 1))
PROFILES = {"full": FULL, "smoke": SMOKE, "timing": TIMING}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise UserError(f"unknown profile {name!r}; choose full, smoke or timing")
    return PROFILES[name]


def _stage(stage: Stage, profile: Profile) -> Stage:
    epochs = min(stage.epochs, profile.max_epochs) if profile.max_epochs else stage.epochs
    size = min(stage.size, profile.max_size) if (stage.size and profile.max_size) else stage.size
    return replace(stage, epochs=epochs, size=size)


def resolve(
    spec: Spec, profile: Profile, pretrained: bool = True, cached: Callable[[str], bool] = lambda a: True
) -> Spec:
    """The spec as this profile runs it (the stored, resolved spec of a run).

    ``pretrained=False`` (``--no-pretrained``) trains from random weights; ``cached(arch)`` says whether the
    ImageNet weights of ``arch`` are in torchvision's cache.
    """
    if spec.recipe is None:
        return spec
    r = spec.recipe
    recipe = replace(
        r,
        pretrained=r.pretrained and pretrained and (profile.download_weights or cached(r.arch)),
        size=min(r.size, profile.max_size) if profile.max_size else r.size,
        bs=min(r.bs, profile.max_bs) if profile.max_bs else r.bs,
        stages=[_stage(s, profile) for s in r.stages],
    )
    out = replace(spec, recipe=recipe)
    if spec.kfold is not None and profile.max_folds:
        out = replace(out, kfold=replace(spec.kfold, trained_folds=min(spec.kfold.folds, profile.max_folds)))
    if spec.bayesian is not None:
        b = spec.bayesian
        epochs = min(b.probe_epochs, profile.max_epochs) if profile.max_epochs else b.probe_epochs
        b = replace(b, probe_epochs=epochs, retrain=[_stage(s, profile) for s in b.retrain])
        if profile.max_probes:
            random, guided = profile.max_probes
            b = replace(b, init_points=min(b.init_points, random), n_iter=min(b.n_iter, guided))
        out = replace(out, bayesian=b)
    return out
