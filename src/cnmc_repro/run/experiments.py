"""The experiments of chapter 4, one function per kind of spec.

- ``run_train``: sections 4.1.1-4.1.4 and 4.2.3 (AlexNet, SqueezeNet, VGG19, ResNet50, loss penalisation):
  stages of ``fit_one_cycle``, frozen then unfrozen, optionally after the learning-rate finder.
- ``run_progressive``: section 4.2.2, one learner trained through growing image sizes (Table 4.5).
- ``run_kfold``: section 4.2.4, Fig 4.9's stratified 5-fold loop, weights carried or fresh per fold.
- ``run_bayesian``: section 4.2.5, bayes_opt over dp, lr and wd, then the best probe trained again.
- ``run_ensemble``: section 4.2.1, averaged class probabilities of stored member runs.

Each returns the run's :class:`~cnmc_repro.store.record.Outcome` and reports every epoch through
``Context.on_epoch``. The runs made of several parts (folds, probes, image sizes) keep each finished part in
``writer.parts``; run again after an interruption, they replay the finished parts' epochs and go on from the
first unfinished one, with the weights and random generators the finished ones left, so that the figures are
those of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from fastai.torch_core import set_seed

from cnmc_repro.analysis import metrics as M
from cnmc_repro.data.splits import stratified_kfold, subject_kfold
from cnmc_repro.run import bayesian
from cnmc_repro.run.context import Batches, Context, evaluate, first_unfinished, fit_stages, new_trainer, split_cells
from cnmc_repro.spec.schema import Spec, Stage
from cnmc_repro.store.record import EnsembleResult, Fold, LrFind, Outcome, Probe, RunRecord, from_json


def run_train(spec: Spec, ctx: Context, writer) -> Outcome:
    """Sections 4.1.1-4.1.4, 4.2.3: stages of fit_one_cycle on one random split."""
    recipe = spec.recipe
    pool, test = ctx.cells()
    train_cells, valid_cells = split_cells(recipe, pool, ctx.seed)
    set_seed(ctx.seed)
    batches = Batches(ctx, recipe, recipe.size)
    train_dl, train_cells = batches.make(train_cells, train=True, seed=ctx.seed)
    valid_dl, valid_cells = batches.make(valid_cells, train=False, seed=ctx.seed)
    trainer = new_trainer(ctx, recipe, train_dl, valid_dl, train_cells)
    lr_find = None
    if recipe.lr_find:
        curve = trainer.lr_find(ctx.profile.lr_find_iterations)
        writer.json("lr_find.json", curve)
        lr_find = LrFind(suggestion=curve["suggestion"], iterations=len(curve["lrs"]))
    fit_stages(trainer, ctx, recipe.stages, {})
    figures = evaluate(trainer, ctx, spec, valid_cells, batches.test(spec, test, ctx.seed))
    writer.checkpoint(trainer.state_dict())
    return dataclasses.replace(figures, train_cells=len(train_cells), valid_cells=len(valid_cells), lr_find=lr_find)


def run_progressive(spec: Spec, ctx: Context, writer) -> Outcome:
    """Section 4.2.2, Table 4.5: one learner trained at 8, 16, 24, 32, 64, 128 and 224 px in turn."""
    recipe, parts = spec.recipe, writer.parts
    pool, test = ctx.cells()
    train_cells, valid_cells = split_cells(recipe, pool, ctx.seed)
    names = [f"stage-{stage.name}" for stage in recipe.stages]
    start = first_unfinished(parts, names)
    for name in names[:start]:
        ctx.replay(parts.done(name)["epochs"])
    set_seed(ctx.seed)
    trainer = None
    # from the first unfinished size; when every size is finished, the last one again, for the evaluation
    for i in range(min(start, len(names) - 1), len(names)):
        stage = recipe.stages[i]
        batches = Batches(ctx, recipe, stage.size)
        train_dl, kept_train = batches.make(train_cells, train=True, seed=ctx.seed)
        valid_dl, kept_valid = batches.make(valid_cells, train=False, seed=ctx.seed)
        if trainer is None:
            trainer = new_trainer(ctx, recipe, train_dl, valid_dl, kept_train)
            if start:
                trainer.restore(parts.state(names[start - 1]))
        else:
            trainer.set_data(train_dl, valid_dl)  # the same weights carry on at the next size
        if i < start:
            continue
        epochs = fit_stages(trainer, ctx, [stage], {})
        parts.save(names[i], {"epochs": epochs}, trainer.snapshot())
    figures = evaluate(trainer, ctx, spec, kept_valid, batches.test(spec, test, ctx.seed))
    writer.checkpoint(trainer.state_dict())
    return dataclasses.replace(figures, train_cells=len(kept_train), valid_cells=len(kept_valid))


def run_kfold(spec: Spec, ctx: Context, writer) -> Outcome:
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
    start = first_unfinished(parts, names)
    per_fold: list[Fold] = []
    for name in names[:start]:
        done = parts.done(name)
        ctx.replay(done["epochs"])
        per_fold.append(from_json(Fold, done["fold"], name))
    test_dl = batches.test(spec, test, ctx.seed) if start < len(folds) else None  # one for every fold
    set_seed(ctx.seed)
    trainer = None
    for k in range(start, len(folds)):
        tr, va = folds[k]
        train_dl, kept_train = batches.make([pool[i] for i in tr], train=True, seed=ctx.seed + k)
        valid_dl, kept_valid = batches.make([pool[i] for i in va], train=False, seed=ctx.seed)
        if trainer is None or not kf.carry_weights:
            set_seed(ctx.seed)  # independent folds: the same initial weights for every fold
            trainer = new_trainer(ctx, recipe, train_dl, valid_dl, kept_train)
            if k and kf.carry_weights:
                trainer.restore(parts.state(names[k - 1]))
        else:
            trainer.set_data(train_dl, valid_dl)
        epochs = fit_stages(trainer, ctx, recipe.stages, {"fold": k})
        ev = evaluate(trainer, ctx, spec, kept_valid, test_dl)
        fold = Fold(k, len(kept_train), len(kept_valid), ev.validation, ev.test, ev.predictions, ev.loss_weights)
        per_fold.append(fold)
        parts.save(names[k], {"fold": dataclasses.asdict(fold), "epochs": epochs}, trainer.snapshot())
    summary = {}
    for metric in ("accuracy", "f_beta", "sensitivity", "specificity", "weighted_f1", "balanced_accuracy"):
        vals = [getattr(f.validation, metric) for f in per_fold if getattr(f.validation, metric) is not None]
        if vals:
            summary[metric] = M.mean_std(vals)
    # the last fold's weights; from the state it left when an interrupted run had finished every fold
    writer.checkpoint(trainer.state_dict() if trainer else parts.state(names[-1])["model"])
    last = per_fold[-1]
    return Outcome(
        folds=per_fold,
        kfold_summary=summary,
        test=last.test,
        predictions=last.predictions,
        loss_weights=last.loss_weights,
    )


def run_bayesian(spec: Spec, ctx: Context, writer) -> Outcome:
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
        set_seed(ctx.seed)
        trainer = new_trainer(
            ctx, recipe, train_dl.new(shuffle=True), valid_dl, train_cells, dropout=params["dp"], wd=params["wd"]
        )
        epochs = fit_stages(trainer, ctx, [probe_stage], {"probe": len(probed)}, lr=params["lr"])
        probed.append(float(trainer.learn.recorder.values[-1][2]))
        writer.parts.save(part, {"params": params, "target": probed[-1], "epochs": epochs})
        return probed[-1]

    bounds = {k: (b.low, b.high) for k, b in bo.bounds.items()}
    probes = [Probe(**p) for p in bayesian.search(objective, bounds, bo.random_state, bo.init_points, bo.n_iter)]
    best = max(probes, key=lambda p: p.target)
    p = best.params
    set_seed(ctx.seed)
    trainer = new_trainer(ctx, recipe, train_dl, valid_dl, train_cells, dropout=p["dp"], wd=p["wd"])
    fit_stages(trainer, ctx, bo.retrain, {}, lr=p["lr"])
    figures = evaluate(trainer, ctx, spec, valid_cells, batches.test(spec, test, ctx.seed))
    writer.checkpoint(trainer.state_dict())
    return dataclasses.replace(
        figures, probes=probes, best_probe=best, train_cells=len(train_cells), valid_cells=len(valid_cells)
    )


def run_ensemble(spec: Spec, members: dict[str, RunRecord]) -> Outcome:
    """Section 4.2.1: each combination's prediction is the mean of its members' stored class probabilities,
    on the test set (and on the validation cells the members share, where they share any)."""
    out = []
    for combo in spec.ensemble.combinations:
        figures: dict = {}
        for split in ("test", "validation"):
            figures[split], figures[f"{split}_cells"] = None, None
            preds = [members[m].predictions.get(split) for m in combo]
            if any(p is None for p in preds):
                continue
            common = set(preds[0].cells).intersection(*(p.cells for p in preds[1:]))
            if not common:
                continue
            order = [c for c in preds[0].cells if c in common]
            index = [{c: i for i, c in enumerate(p.cells)} for p in preds]
            targets = [preds[0].targets[index[0][c]] for c in order]
            prob = np.mean([[p.prob_all[ix[c]] for c in order] for p, ix in zip(preds, index, strict=True)], axis=0)
            figures[split], figures[f"{split}_cells"] = M.summary(targets, prob), len(order)
        out.append(EnsembleResult(members=combo, member_runs=[members[m].run_id for m in combo], **figures))
    scored = [e for e in out if e.test is not None]
    best = max(scored, key=lambda e: e.test.accuracy) if scored else None
    return Outcome(ensembles=out, best_ensemble=best.members if best else None, test=best.test if best else None)


RUNNERS = {
    "train": run_train,
    "progressive_resizing": run_progressive,
    "kfold": run_kfold,
    "bayesian_search": run_bayesian,
}
