"""Profiles: ``full`` runs a spec as published; ``smoke`` shrinks it in code so that every spec runs on a CPU.

``smoke`` caps every stage at four epochs, images at 32 px (AlexNet at its smallest input, 64 px), batches at 16
(8 for a body without BatchNorm) and the cells at a stratified sample; a k-fold run trains two of its folds and
a Bayesian search four probes. It uses a spec's ImageNet weights only when they are already in torchvision's
cache and never downloads them (a CPU machine may have no network); otherwise it trains from random weights at
a peak learning rate of 1.5e-3, and the run records which. Sized so that every trained spec learns the built-in
cells' class signal (a balanced accuracy well above the majority class's 0.5; ``reproduce regression`` checks
it) while the whole study takes minutes on two cores. The specs themselves are unchanged: a smoke run is the
same recipe, small.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from cnmc_repro.errors import UserError
from cnmc_repro.spec.schema import Spec, Stage

# the smallest image an architecture takes (AlexNet's pooling leaves nothing of less than 63 px)
SMALLEST_INPUT = {"alexnet": 64}
# the report's architectures whose body has no BatchNorm layer
WITHOUT_BATCHNORM = {"alexnet", "squeezenet1_0", "squeezenet1_1"}


@dataclass(frozen=True)
class Profile:
    name: str
    max_epochs: int | None  # per stage
    max_size: int | None  # raised to an architecture's smallest input
    max_train_cells: int | None
    max_test_cells: int | None
    download_weights: bool  # full: fetch missing ImageNet weights; smoke: use them only when cached
    lr_find_iterations: int
    max_bs: int | None
    max_folds: int | None = None  # k-fold: folds trained out of the spec's k
    max_probes: tuple[int, int] | None = None  # Bayesian search: (random, guided) probes
    lr_random: float | None = None  # every stage's peak rate when the weights are random
    max_bs_without_batchnorm: int | None = None  # the batch cap of a body without BatchNorm, if not ``max_bs``


FULL = Profile("full", None, None, None, None, True, 100, None)
# smoke, measured on two cores over seeds 0-3 (validation balanced accuracy from random weights):
# - batches of 16: a one-thread CPU step of ResNet50 at 32 px costs 43 ms an image in batches of 8, 22 in 16, 14 in
#   32; with 32 (four epochs a stage) AlexNet and VGG19 predicted one class (0.50): too few steps to learn;
# - 8 for a body without BatchNorm (AlexNet, SqueezeNet; cheap anyway): its features' scale drifts with every
#   step and the head's BatchNorm statistics follow it only over many steps; in batches of 16 AlexNet's
#   validation loss stayed in the tens and it scored 0.50-0.61 in two seeds of three (0.82-0.95 in 8);
# - four epochs a stage: at a peak of 2e-3 every run of AlexNet, SqueezeNet, VGG19, ResNet50 and DenseNet121 in
#   0.78-1.00 and at 1e-3 in 0.72-1.00 (three epochs at 1e-3: VGG19 0.67); at 2e-3 progressive_resizing's seed 1
#   ended at 0.61, its fourth one-cycle at 32 px unstable at the peak; at 1.5e-3 its seeds 0-4 in 0.88-0.98.
SMOKE = Profile(
    "smoke", 4, 32, 240, 64, False, 8, 16, max_folds=2, max_probes=(2, 2), lr_random=1.5e-3, max_bs_without_batchnorm=8
)
# timing: the published sizes and data, one epoch per stage, one fold of each k-fold and one random and one
# guided Bayesian probe; the seconds per epoch it measures project a full run's duration
TIMING = Profile("timing", 1, None, None, None, False, 20, None, max_folds=1, max_probes=(1, 1))
PROFILES = {"full": FULL, "smoke": SMOKE, "timing": TIMING}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise UserError(f"unknown profile {name!r}; choose full, smoke or timing")
    return PROFILES[name]


def _peak_lr(lr: float | tuple[float, float], peak: float | None) -> float | tuple[float, float]:
    """``lr`` scaled so that its peak is ``peak`` (a slice keeps its spread). The report's rates are for ImageNet
    weights: 1e-5 (Table 4.1) moves random weights too little to learn anything in a smoke run, and 5e-2 for
    VGG19's head (Table 4.4), with no frozen body to hold it, makes a random network diverge."""
    if peak is None:
        return lr
    if isinstance(lr, tuple | list):
        return tuple(x * peak / max(lr) for x in lr)
    return peak


def _batch_size(bs: int, arch: str, profile: Profile) -> int:
    cap = profile.max_bs
    if arch in WITHOUT_BATCHNORM and profile.max_bs_without_batchnorm:
        cap = profile.max_bs_without_batchnorm
    return min(bs, cap) if cap else bs


def _stage(stage: Stage, profile: Profile, max_size: int | None, peak: float | None) -> Stage:
    epochs = min(stage.epochs, profile.max_epochs) if profile.max_epochs else stage.epochs
    size = min(stage.size, max_size) if (stage.size and max_size) else stage.size
    return replace(stage, epochs=epochs, size=size, lr=_peak_lr(stage.lr, peak))


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
    weights = r.pretrained and pretrained and (profile.download_weights or cached(r.arch))
    max_size = max(profile.max_size, SMALLEST_INPUT.get(r.arch, 0)) if profile.max_size else None
    peak = None if weights else profile.lr_random
    recipe = replace(
        r,
        pretrained=weights,
        size=min(r.size, max_size) if max_size else r.size,
        bs=_batch_size(r.bs, r.arch, profile),
        stages=[_stage(s, profile, max_size, peak) for s in r.stages],
    )
    out = replace(spec, recipe=recipe)
    if spec.kfold is not None and profile.max_folds:
        out = replace(out, kfold=replace(spec.kfold, trained_folds=min(spec.kfold.folds, profile.max_folds)))
    if spec.bayesian is not None:
        b = spec.bayesian
        epochs = min(b.probe_epochs, profile.max_epochs) if profile.max_epochs else b.probe_epochs
        b = replace(b, probe_epochs=epochs, retrain=[_stage(s, profile, max_size, peak) for s in b.retrain])
        if profile.max_probes:
            random, guided = profile.max_probes
            b = replace(b, init_points=min(b.init_points, random), n_iter=min(b.n_iter, guided))
        out = replace(out, bayesian=b)
    return out
