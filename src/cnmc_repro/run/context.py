"""What every experiment of chapter 4 shares: the cells of a run, its batches, its learners and its figures.

``Context`` holds the data, profile, seed and device of an invocation and memoises the prepared cells;
``Batches`` turns cells into device-resident batches of one recipe at one size; ``split_cells`` is the
recipe's validation split; ``new_trainer`` builds a learner as ``cnn_learner`` did; ``fit_stages`` fits
stages and collects their epochs; ``evaluate`` gives a run's validation and test figures.
"""

from __future__ import annotations

import time
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from cnmc_repro.analysis import metrics as M
from cnmc_repro.data.dataset import PRELIM_TEST, TRAIN, Cell, Dataset, relative_path
from cnmc_repro.data.prepare import Preparation, PreparedCache
from cnmc_repro.data.splits import random_split, subject_split
from cnmc_repro.errors import UserError
from cnmc_repro.run.batches import IMAGENET_MEAN, IMAGENET_STD, DeviceBatches
from cnmc_repro.run.trainer import EpochLog, Interrupt, Trainer
from cnmc_repro.spec.dataset import published_dataset
from cnmc_repro.spec.profiles import Profile
from cnmc_repro.spec.schema import Augmentation, Recipe, Spec, Stage
from cnmc_repro.store.record import Outcome, Predictions


@dataclass
class Context:
    """What every experiment needs: data, profile, seed, device and precision, and where epochs go."""

    dataset: Dataset
    profile: Profile
    seed: int
    device: torch.device
    workdir: str
    on_epoch: Callable[..., None]  # (record, replayed=False): replayed epochs were trained by an earlier run
    skip_bad: bool = False
    interrupt_after_epochs: int | None = None  # tests: stand-in for Ctrl-C
    precision: str = "fp32"  # fp32 or bf16 (autocast on a GPU)
    cache: PreparedCache = field(default_factory=PreparedCache)
    prepare_seconds: float = 0.0  # spent reading or preparing cells, over the runs of this invocation
    current: dict = field(default_factory=dict)  # tags of the stage in hand: stage, fold, probe, size
    recorded: list[dict] = field(default_factory=list)  # the epochs of the latest fit_stages
    _images: dict = field(default_factory=dict)
    _pool: tuple[list[Cell], list[Cell]] | None = None
    _interrupt: Interrupt | None = None

    def cells(self) -> tuple[list[Cell], list[Cell]]:
        """(training pool, labelled test cells), capped by the profile with a seeded stratified sample."""
        if self._pool is None:
            train = [c for c in self.dataset.cells if c.split == TRAIN]
            test = [c for c in self.dataset.cells if c.split == PRELIM_TEST]
            if not train:
                raise UserError(f"{self.dataset.root} holds no training cells; training needs training_data/")
            self._pool = (
                _sample(train, self.profile.max_train_cells, self.seed),
                _sample(test, self.profile.max_test_cells, self.seed),
            )
        return self._pool

    def images(self, cells: list[Cell], recipe: Recipe, size: int) -> tuple[np.ndarray, list[Cell]]:
        """Prepared uint8 arrays (from the cache when there), memoised for the runs of one invocation."""
        prep = Preparation(size, recipe.prepare)
        key = (prep, tuple(c.sha256 for c in cells))
        if key not in self._images:
            t0 = time.perf_counter()
            prepared = self.cache.load(cells, prep, skip_bad=self.skip_bad)
            self._images[key] = (prepared.images, prepared.cells)
            self.prepare_seconds += time.perf_counter() - t0
        return self._images[key]

    def for_seed(self, seed: int) -> Context:
        """The context of the same invocation for the runs of another seed: cells sampled and memoised anew
        (so that a seed's runs are those a single-seed invocation makes), the same cache of prepared cells,
        and one count of epochs for ``interrupt_after_epochs`` across the seeds."""
        if self.interrupt_after_epochs and self._interrupt is None:
            self._interrupt = Interrupt(self.interrupt_after_epochs)
        return replace(self, seed=seed, current={}, recorded=[], _images={}, _pool=None)

    def record_epoch(self, record: dict) -> None:
        record = {**self.current, **record}
        self.recorded.append(record)
        self.on_epoch(record)

    def replay(self, records: list[dict]) -> None:
        """Reports the epochs of a part an interrupted run finished."""
        for record in records:
            self.on_epoch(record, replayed=True)

    def callbacks(self):
        cbs = [EpochLog(self.record_epoch)]
        if self.interrupt_after_epochs:
            if self._interrupt is None:  # one count across the learners of this invocation
                self._interrupt = Interrupt(self.interrupt_after_epochs)
            cbs.append(self._interrupt)
        return cbs


def _sample(cells: list[Cell], limit: int | None, seed: int) -> list[Cell]:
    if limit is None or len(cells) <= limit:
        return cells
    rng = np.random.RandomState(seed)
    out = []
    for label in sorted({c.label for c in cells}):
        group = [c for c in cells if c.label == label]
        k = max(1, round(limit * len(group) / len(cells)))
        out += [group[i] for i in sorted(rng.choice(len(group), k, replace=False))]
    return out


class Batches:
    """Builds train/valid/test batches of one recipe at one size."""

    def __init__(self, ctx: Context, recipe: Recipe, size: int):
        self.ctx, self.recipe, self.size = ctx, recipe, size

    def make(self, cells: list[Cell], train: bool, seed: int) -> tuple[DeviceBatches, list[Cell]]:
        images, kept = self.ctx.images(cells, self.recipe, self.size)
        targets = [c.target for c in kept]
        dl = DeviceBatches(
            images,
            targets,
            self.recipe.bs,
            shuffle=train,
            augment=self.recipe.augment if train else None,
            seed=seed,
            device=self.ctx.device,
        )
        return dl, kept

    def test(self, spec: Spec, test: list[Cell], seed: int) -> tuple[DeviceBatches, list[Cell]] | None:
        """The labelled test cells' batches, where the recipe evaluates on them."""
        return self.make(test, train=False, seed=seed) if spec.recipe.test and test else None


def _valid_size(recipe: Recipe, n: int) -> int | float:
    """An integer valid_size counts cells of the full training set (section 3.1); on another set it scales."""
    published = published_dataset().cells("train")
    if isinstance(recipe.valid_size, float) or n == published:
        return recipe.valid_size
    return max(1, round(recipe.valid_size * n / published))


def split_cells(recipe: Recipe, pool: list[Cell], seed: int) -> tuple[list[Cell], list[Cell]]:
    """The recipe's train/validation split of the training pool."""
    if recipe.split == "subject":
        size = _valid_size(recipe, len(pool))
        frac = size if isinstance(size, float) else size / len(pool)
        tr, va = subject_split(pool, frac, seed)
    else:
        tr, va = random_split(len(pool), _valid_size(recipe, len(pool)), seed)
    return [pool[i] for i in tr], [pool[i] for i in va]


def evaluate(
    trainer: Trainer, ctx: Context, spec: Spec, valid: list[Cell], test: tuple[DeviceBatches, list[Cell]] | None
) -> Outcome:
    """Validation figures (on the learner's own validation batches of ``valid``) and test figures, and every
    cell's class probabilities."""
    fb = spec.recipe.f_beta
    figures: dict[str, M.Summary | None] = {"validation": None, "test": None}
    predictions: dict[str, Predictions] = {}
    for name, loader in (("validation", (trainer.learn.dls.valid, valid) if valid else None), ("test", test)):
        if loader is None:
            continue
        dl, kept = loader
        probs = trainer.predict(dl)
        figures[name] = M.summary([c.target for c in kept], probs[:, 0], fb.beta, fb.positive)
        predictions[name] = Predictions(
            cells=[relative_path(c, ctx.dataset.root) for c in kept],
            targets=[c.target for c in kept],
            prob_all=[round(float(p), 7) for p in probs[:, 0]],
        )
    return Outcome(**figures, predictions=predictions, loss_weights=trainer.loss_weights)


def new_trainer(
    ctx: Context,
    recipe: Recipe,
    train_dl: DeviceBatches,
    valid_dl: DeviceBatches,
    train_cells: list[Cell],
    dropout: float | None = None,
    wd: float | None = None,
) -> Trainer:
    """A learner of the recipe; section 4.2.3's class weights come from the training cells."""
    weights = None
    if recipe.loss == "weighted_cross_entropy":
        weights = M.class_weights([c.target for c in train_cells])
    return Trainer.create(
        recipe.arch,
        recipe.pretrained,
        recipe.dropout if dropout is None else dropout,
        recipe.wd if wd is None else wd,
        recipe.f_beta,
        train_dl,
        valid_dl,
        ctx.device,
        class_weights=weights,
        path=ctx.workdir,
        callbacks=ctx.callbacks(),
        precision=ctx.precision,
    )


def fit_stages(trainer: Trainer, ctx: Context, stages: list[Stage], tags: dict, lr=None) -> list[dict]:
    """Fits ``stages`` in turn; returns the epochs they recorded."""
    ctx.recorded = []
    for stage in stages:
        ctx.current = {**tags, "stage": stage.name, "epochs": stage.epochs, "size": stage.size}
        trainer.fit(stage, lr)
    return ctx.recorded


def first_unfinished(parts, names: list[str]) -> int:
    """How many of the parts ``names`` an interrupted run finished, in order. Going on after them needs the
    state the last one left; without it the run starts again."""
    k = 0
    while k < len(names) and parts.done(names[k]) is not None:
        k += 1
    if k and not parts.has_state(names[k - 1]):
        parts.clear()
        return 0
    return k


def augmentation_draws(dataset: Dataset, size: int = 128, draws: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """One training cell (the first readable one by path) prepared at ``size`` px and ``draws`` draws of it
    through the training batches of each augmentation set (``Augmentation.transforms`` with its default
    magnitudes), on the CPU: ``cell`` and one array per set, uint8 N x H x W x 3 (``store.augmentation``);
    nothing where no training cell can be read."""
    cells = sorted((c for c in dataset.cells if c.split == TRAIN), key=lambda c: relative_path(c, dataset.root))
    if not cells:
        return {}
    prepared = PreparedCache().load(cells[:8], Preparation(size), skip_bad=True, progress=False)
    if not len(prepared.cells):
        return {}
    image = prepared.images[0]
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    out = {"cell": image}
    for transforms in typing.get_args(typing.get_type_hints(Augmentation)["transforms"]):
        copies = np.repeat(image[None], draws, axis=0)
        aug = Augmentation(transforms=transforms)
        ((x, _),) = list(DeviceBatches(copies, np.zeros(draws), draws, shuffle=True, augment=aug, seed=seed))
        pixels = ((x * std + mean) * 255).round().clamp(0, 255).to(torch.uint8)
        out[transforms] = pixels.permute(0, 2, 3, 1).numpy()
    return out
