"""The experiments of chapter 4, one function per kind of spec.

- ``run_train``: sections 4.1.1-4.1.4 and 4.2.3 (AlexNet, SqueezeNet, VGG19, ResNet50, loss penalisation):
  stages of ``fit_one_cycle``, frozen then unfrozen, optionally after the learning-rate finder.
- ``run_progressive``: section 4.2.2, one learner trained through growing image sizes (Table 4.5).
- ``run_kfold``: section 4.2.4, Fig 4.9's stratified 5-fold loop, weights carried or fresh per fold.
- ``run_bayesian``: section 4.2.5, bayes_opt over dp, lr and wd, then the best probe trained again.
- ``run_ensemble``: section 4.2.1, averaged class probabilities of stored member runs.

Each returns the run's result (plain numbers) and reports every epoch through ``Context.on_epoch``. The
runs made of several parts (folds, probes, image sizes) keep each finished part in ``writer.parts``; run
again after an interruption, they replay the finished parts' epochs and go on from the first unfinished one,
with the weights and random generators the finished ones left, so that the figures are those of an
uninterrupted run.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from cnmc_repro.analysis import metrics as M
from cnmc_repro.data.dataset import PRELIM_TEST, TRAIN, Cell, Dataset, relative_path
from cnmc_repro.data.prepare import Preparation, PreparedCache
from cnmc_repro.data.splits import random_split, stratified_kfold, subject_kfold, subject_split
from cnmc_repro.errors import UserError
from cnmc_repro.run import bayesian
from cnmc_repro.run.batches import Augment, DeviceBatches
from cnmc_repro.run.trainer import EpochLog, Interrupt, Trainer
from cnmc_repro.spec.profiles import Profile
from cnmc_repro.spec.schema import Recipe, Spec, Stage

PUBLISHED_TRAIN_CELLS = 10_661  # section 3.1: an integer valid_size is a count out of these


@dataclass
class Context:
    """What every experiment needs: data, profile, seed, device, and where epochs go."""

    dataset: Dataset
    profile: Profile
    seed: int
    device: torch.device
    workdir: str
    on_epoch: Callable[..., None]  # (record, replayed=False): replayed epochs were trained by an earlier run
    skip_bad: bool = False
    interrupt_after_epochs: int | None = None  # tests: stand-in for Ctrl-C
    cache: PreparedCache = field(default_factory=PreparedCache)
    prepare_seconds: float = 0.0  # spent reading or preparing cells, over the runs of this invocation
    current: dict = field(default_factory=dict)  # tags of the stage in hand: stage, fold, probe, size
    recorded: list[dict] = field(default_factory=list)  # the epochs of the latest _fit_stages
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
        prep = Preparation(size, recipe.prepare.crop_threshold, recipe.prepare.equalise, recipe.prepare.resize)
        key = (prep, tuple(c.sha256 for c in cells))
        if key not in self._images:
            t0 = time.perf_counter()
            prepared = self.cache.load(cells, prep, skip_bad=self.skip_bad)
            self._images[key] = (prepared.images, prepared.cells)
            self.prepare_seconds += time.perf_counter() - t0
        return self._images[key]

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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _augment(recipe: Recipe) -> Augment:
    a = recipe.augment
    return Augment(a.flip_horizontal, a.flip_vertical, a.max_rotate, a.p_rotate)


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
            augment=_augment(self.recipe) if train else None,
            seed=seed,
            device=self.ctx.device,
        )
        return dl, kept


def _valid_size(recipe: Recipe, n: int) -> int | float:
    """An integer valid_size counts cells of the full training set; on another set it scales with it."""
    if isinstance(recipe.valid_size, float):
        return recipe.valid_size
    if n == PUBLISHED_TRAIN_CELLS:
        return recipe.valid_size
    return max(1, round(recipe.valid_size * n / PUBLISHED_TRAIN_CELLS))


def split_cells(recipe: Recipe, pool: list[Cell], seed: int) -> tuple[list[Cell], list[Cell]]:
    """The recipe's train/validation split of the training pool."""
    if recipe.split == "subject":
        size = _valid_size(recipe, len(pool))
        frac = size if isinstance(size, float) else size / len(pool)
        tr, va = subject_split(pool, frac, seed)
    else:
        tr, va = random_split(len(pool), _valid_size(recipe, len(pool)), seed)
    return [pool[i] for i in tr], [pool[i] for i in va]


def _predictions(cells: list[Cell], probs: np.ndarray, root) -> dict:
    return {
        "cells": [relative_path(c, root) for c in cells],
        "targets": [c.target for c in cells],
        "prob_all": [round(float(p), 7) for p in probs[:, 0]],
    }


def _test_loader(batches: Batches, spec: Spec, test: list[Cell], seed: int) -> tuple[DeviceBatches, list[Cell]] | None:
    """The labelled test cells' batches, where the recipe evaluates on them."""
    return batches.make(test, train=False, seed=seed) if spec.recipe.test and test else None


def evaluate(
    trainer: Trainer, ctx: Context, spec: Spec, valid: list[Cell], test: tuple[DeviceBatches, list[Cell]] | None
) -> dict:
    """Validation figures (on the learner's own validation batches of ``valid``) and test figures, and every
    cell's class probabilities."""
    fb = spec.recipe.f_beta
    out: dict = {"validation": None, "test": None, "predictions": {}}
    for name, loader in (("validation", (trainer.learn.dls.valid, valid) if valid else None), ("test", test)):
        if loader is None:
            continue
        dl, kept = loader
        probs = trainer.predict(dl)
        out[name] = M.summary([c.target for c in kept], probs[:, 0], fb.beta, fb.positive)
        out["predictions"][name] = _predictions(kept, probs, ctx.dataset.root)
    return out


def _new_trainer(
    ctx: Context,
    recipe: Recipe,
    train_dl,
    valid_dl,
    train_cells: list[Cell],
    dropout: float | None = None,
    wd: float | None = None,
) -> Trainer:
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
    )


def _fit_stages(trainer: Trainer, ctx: Context, stages: list[Stage], tags: dict, lr=None) -> list[dict]:
    """Fits ``stages`` in turn; returns the epochs they recorded."""
    ctx.recorded = []
    for stage in stages:
        ctx.current = {**tags, "stage": stage.name, "epochs": stage.epochs, "size": stage.size}
        trainer.fit(stage, lr)
    return ctx.recorded


def _first_unfinished(parts, names: list[str]) -> int:
    """How many of the parts ``names`` an interrupted run finished, in order. Going on after them needs the
    state the last one left; without it the run starts again."""
    k = 0
    while k < len(names) and parts.done(names[k]) is not None:
        k += 1
    if k and not parts.has_state(names[k - 1]):
        parts.clear()
        return 0
    return k


def run_train(spec: Spec, ctx: Context, writer) -> dict:
    """Sections 4.1.1-4.1.4, 4.2.3: stages of fit_one_cycle on one random split."""
    recipe = spec.recipe
    pool, test = ctx.cells()
    train_cells, valid_cells = split_cells(recipe, pool, ctx.seed)
    seed_everything(ctx.seed)
    batches = Batches(ctx, recipe, recipe.size)
    train_dl, train_cells = batches.make(train_cells, train=True, seed=ctx.seed)
    valid_dl, valid_cells = batches.make(valid_cells, train=False, seed=ctx.seed)
    trainer = _new_trainer(ctx, recipe, train_dl, valid_dl, train_cells)
    result: dict = {"train_cells": len(train_cells), "valid_cells": len(valid_cells)}
    if recipe.lr_find:
        curve = trainer.lr_find(ctx.profile.lr_find_iterations)
        writer.json("lr_find.json", curve)
        result["lr_find"] = {"suggestion": curve["suggestion"], "iterations": len(curve["lrs"])}
    _fit_stages(trainer, ctx, recipe.stages, {})
    result.update(evaluate(trainer, ctx, spec, valid_cells, _test_loader(batches, spec, test, ctx.seed)))
    writer.checkpoint(trainer.state_dict())
    return result


def run_progressive(spec: Spec, ctx: Context, writer) -> dict:
    """Section 4.2.2, Table 4.5: one learner trained at 8, 16, 24, 32, 64, 128 and 224 px in turn."""
    recipe, parts = spec.recipe, writer.parts
    pool, test = ctx.cells()
    train_cells, valid_cells = split_cells(recipe, pool, ctx.seed)
    names = [f"stage-{stage.name}" for stage in recipe.stages]
    start = _first_unfinished(parts, names)
    for name in names[:start]:
        ctx.replay(parts.done(name)["epochs"])
    seed_everything(ctx.seed)
    trainer = None
    # from the first unfinished size; when every size is finished, the last one again, for the evaluation
    for i in range(min(start, len(names) - 1), len(names)):
        stage = recipe.stages[i]
        batches = Batches(ctx, recipe, stage.size)
        train_dl, kept_train = batches.make(train_cells, train=True, seed=ctx.seed)
        valid_dl, kept_valid = batches.make(valid_cells, train=False, seed=ctx.seed)
        if trainer is None:
            trainer = _new_trainer(ctx, recipe, train_dl, valid_dl, kept_train)
            if start:
                trainer.restore(parts.state(names[start - 1]))
        else:
            trainer.set_data(train_dl, valid_dl)  # the same weights carry on at the next size
        if i < start:
            continue
        epochs = _fit_stages(trainer, ctx, [stage], {})
        parts.save(names[i], {"epochs": epochs}, trainer.snapshot())
    result = {"train_cells": len(kept_train), "valid_cells": len(kept_valid)}
    result.update(evaluate(trainer, ctx, spec, kept_valid, _test_loader(batches, spec, test, ctx.seed)))
    writer.checkpoint(trainer.state_dict())
    return result


def run_kfold(spec: Spec, ctx: Context, writer) -> dict:
    """Section 4.2.4, Fig 4.9: for each of k folds, fit_one_cycle(5) twice and validate on the fold.

    With ``carry_weights`` the learner is created once and trained on fold after fold, as Fig 4.9's loop
    does; otherwise every fold starts from the initial weights.
    """
    recipe, kf, parts = spec.recipe, spec.kfold, writer.parts
    pool, test = ctx.cells()
    batches = Batches(ctx, recipe, recipe.size)
    if kf.grouping == "subjects":
        folds = subject_kfold(pool, kf.folds, kf.random_state)
    else:
        folds = stratified_kfold([c.target for c in pool], kf.folds, kf.random_state)
    folds = folds[: kf.trained_folds or kf.folds]
    names = [f"fold-{k}" for k in range(len(folds))]
    start = _first_unfinished(parts, names)
    per_fold = []
    for name in names[:start]:
        done = parts.done(name)
        ctx.replay(done["epochs"])
        per_fold.append(done["fold"])
    test_dl = _test_loader(batches, spec, test, ctx.seed) if start < len(folds) else None  # one for every fold
    seed_everything(ctx.seed)
    trainer = None
    for k in range(start, len(folds)):
        tr, va = folds[k]
        train_dl, kept_train = batches.make([pool[i] for i in tr], train=True, seed=ctx.seed + k)
        valid_dl, kept_valid = batches.make([pool[i] for i in va], train=False, seed=ctx.seed)
        if trainer is None or not kf.carry_weights:
            seed_everything(ctx.seed)  # independent folds: the same initial weights for every fold
            trainer = _new_trainer(ctx, recipe, train_dl, valid_dl, kept_train)
            if k and kf.carry_weights:
                trainer.restore(parts.state(names[k - 1]))
        else:
            trainer.set_data(train_dl, valid_dl)
        epochs = _fit_stages(trainer, ctx, recipe.stages, {"fold": k})
        ev = evaluate(trainer, ctx, spec, kept_valid, test_dl)
        per_fold.append({"fold": k, "train_cells": len(kept_train), "valid_cells": len(kept_valid), **ev})
        parts.save(names[k], {"fold": per_fold[-1], "epochs": epochs}, trainer.snapshot())
    summary = {}
    for metric in ("accuracy", "f_beta", "sensitivity", "specificity", "weighted_f1", "balanced_accuracy"):
        vals = [f["validation"][metric] for f in per_fold if f["validation"].get(metric) is not None]
        if vals:
            summary[metric] = M.mean_std(vals)
    # the last fold's weights; from the state it left when an interrupted run had finished every fold
    writer.checkpoint(trainer.state_dict() if trainer else parts.state(names[-1])["model"])
    return {
        "folds": per_fold,
        "kfold_summary": summary,
        "validation": None,
        "test": per_fold[-1]["test"],
        "predictions": per_fold[-1]["predictions"],
    }


def run_bayesian(spec: Spec, ctx: Context, writer) -> dict:
    """Section 4.2.5, Fig 4.12: a Bayesian search (bayes_opt, configured as in 2019) maximises validation
    accuracy over dp, lr and wd; the best probe is then trained again (Table 4.14)."""
    recipe, bo = spec.recipe, spec.bayesian
    pool, test = ctx.cells()
    train_cells, valid_cells = split_cells(recipe, pool, ctx.seed)
    batches = Batches(ctx, recipe, recipe.size)
    train_dl, train_cells = batches.make(train_cells, train=True, seed=ctx.seed)
    valid_dl, valid_cells = batches.make(valid_cells, train=False, seed=ctx.seed)
    probe_stage = Stage("probe", bo.probe_epochs, recipe.stages[0].lr, recipe.stages[0].frozen)
    probed: list[float] = []

    def objective(params: dict[str, float]) -> float:
        """One probe: the last epoch's validation accuracy. Every probe starts from the seed, so a probe an
        interrupted run finished with the same parameters is taken as it was."""
        part = f"probe-{len(probed)}"
        done = writer.parts.done(part)
        if done is not None and done["params"] == params:
            ctx.replay(done["epochs"])
            probed.append(done["target"])
            return done["target"]
        seed_everything(ctx.seed)
        trainer = _new_trainer(
            ctx, recipe, train_dl.new(shuffle=True), valid_dl, train_cells, dropout=params["dp"], wd=params["wd"]
        )
        epochs = _fit_stages(trainer, ctx, [probe_stage], {"probe": len(probed)}, lr=params["lr"])
        probed.append(float(trainer.learn.recorder.values[-1][2]))
        writer.parts.save(part, {"params": params, "target": probed[-1], "epochs": epochs})
        return probed[-1]

    bounds = {k: (b.low, b.high) for k, b in bo.bounds.items()}
    probes = bayesian.search(objective, bounds, bo.random_state, bo.init_points, bo.n_iter)
    best = max(probes, key=lambda p: p["target"])
    p = best["params"]
    seed_everything(ctx.seed)
    trainer = _new_trainer(ctx, recipe, train_dl, valid_dl, train_cells, dropout=p["dp"], wd=p["wd"])
    _fit_stages(trainer, ctx, bo.retrain, {}, lr=p["lr"])
    result = {"probes": probes, "best": best, "train_cells": len(train_cells), "valid_cells": len(valid_cells)}
    result.update(evaluate(trainer, ctx, spec, valid_cells, _test_loader(batches, spec, test, ctx.seed)))
    writer.checkpoint(trainer.state_dict())
    return result


def run_ensemble(spec: Spec, members: dict[str, dict]) -> dict:
    """Section 4.2.1: each combination's prediction is the mean of its members' stored class probabilities,
    on the test set (and on the validation cells the members share, where they share any)."""
    out = []
    for combo in spec.ensemble.combinations:
        entry: dict = {"members": combo, "member_runs": [members[m]["run_id"] for m in combo]}
        for split in ("test", "validation"):
            preds = [members[m].get("predictions", {}).get(split) for m in combo]
            if any(p is None for p in preds):
                entry[split] = None
                continue
            common = set(preds[0]["cells"]).intersection(*(p["cells"] for p in preds[1:]))
            if not common:
                entry[split] = None
                continue
            order = [c for c in preds[0]["cells"] if c in common]
            index = [{c: i for i, c in enumerate(p["cells"])} for p in preds]
            targets = [preds[0]["targets"][index[0][c]] for c in order]
            prob = np.mean([[p["prob_all"][ix[c]] for c in order] for p, ix in zip(preds, index, strict=True)], axis=0)
            entry[split] = M.summary(targets, prob)
            entry[f"{split}_cells"] = len(order)
        out.append(entry)
    scored = [e for e in out if e.get("test")]
    best = max(scored, key=lambda e: e["test"]["accuracy"]) if scored else None
    return {"ensembles": out, "best": best, "test": best["test"] if best else None, "validation": None}


RUNNERS = {
    "train": run_train,
    "progressive_resizing": run_progressive,
    "kfold": run_kfold,
    "bayesian_search": run_bayesian,
}
