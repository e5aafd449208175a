"""Finished run folders written by hand, as the engine writes them, with made-up figures: the report's and the
comparison's tests read them without training anything."""

from __future__ import annotations

import json
from pathlib import Path

from cnmc_repro.spec.strict import to_plain


def summary(confusion: list[list[int]], **extra) -> dict:
    """A validation/test summary as metrics.summary writes it, from a confusion matrix (rows true ALL/normal)."""
    (tp, fn), (fp, tn) = confusion
    n = tp + fn + fp + tn
    out = {
        "cells": n,
        "confusion": confusion,
        "accuracy": (tp + tn) / n,
        "error_rate": (fn + fp) / n,
        "sensitivity": tp / (tp + fn),
        "specificity": tn / (tn + fp),
        "precision": tp / (tp + fp),
        "f1": 2 * tp / (2 * tp + fn + fp),
        "f_beta": 0.8,
        "weighted_f1": 0.81,
        "balanced_accuracy": 0.8,
        "roc_auc": 0.9,
    }
    return out | extra


def write_run(
    root: Path,
    spec,
    result: dict,
    epochs: list[dict] = (),
    *,
    profile: str = "smoke",
    seed: int = 0,
    synthetic: bool = True,
    lr_find: dict | None = None,
    stamp: str = "20240101-000000",
    seconds: float = 12.5,
    series: str | None = None,
) -> Path:
    """A finished run folder as the engine writes it (made-up numbers in a record of schema 3). The runs of
    one spec and profile are one series unless ``series`` says otherwise."""
    run_dir = root / f"{spec.id}-{profile}-seed{seed}-{stamp}"
    run_dir.mkdir(parents=True)
    key, series = f"k{stamp}-{seed}", series or f"series-{spec.id}-{profile}"
    meta = {"run_key": key, "series_key": series, "profile": profile, "seed": seed, "spec": to_plain(spec)}
    (run_dir / "spec.json").write_text(json.dumps(meta))
    env = {
        "git_commit": "0123abcd",
        "git_dirty": False,
        "code_version": "c0dec0dec0de",
        "python": "3.11.9",
        "platform": "Linux-test",
        "libraries": {"torch": "2.14.1", "fastai": "2.8.12", "numpy": "2.4.6"},
        "device": "cpu",
    }
    (run_dir / "environment.json").write_text(json.dumps(env))
    (run_dir / "epochs.jsonl").write_text("".join(json.dumps({"spec": spec.id, **e}) + "\n" for e in epochs))
    if lr_find is not None:
        (run_dir / "lr_find.json").write_text(json.dumps(lr_find))
    base = {"schema_version": 5, "run_id": run_dir.name, "run_key": key, "series_key": series}
    base |= {"spec": spec.id, "kind": spec.kind}
    base |= {"profile": profile, "seed": seed, "device": "cpu", "seconds": seconds, "synthetic": synthetic}
    base |= {"precision": "fp32"}
    base |= {"pretrained": False, "data_root": "/data/synthetic" if synthetic else "/data/C-NMC_Leukemia"}
    base |= {"data_fingerprint": "f1ngerpr1nt"}
    (run_dir / "result.json").write_text(json.dumps(base | {"predictions": {}} | result))
    return run_dir


def epoch(stage: str, i: int, accuracy: float, f_beta: float, **tags) -> dict:
    return {
        "stage": stage,
        "epochs": 10,
        "size": 64,
        "epoch": i,
        "train_loss": 0.5 - 0.01 * i,
        "valid_loss": 0.45 - 0.01 * i,
        "accuracy": accuracy,
        "error_rate": 1 - accuracy,
        "f_beta": f_beta,
        "seconds": 1.5,
        **tags,
    }


ALEXNET_FINAL = (0.876543, 0.812345)  # Table 4.1's last epoch, reproduced (published 0.911207, 0.869598)


def write_alexnet(
    root: Path, specs, final: tuple[float, float] = ALEXNET_FINAL, test_accuracy: float = 0.7321, **kw
) -> Path:
    """An alexnet run whose Table 4.1 ends at ``final`` (accuracy, f_beta) and whose test accuracy is given."""
    epochs = [epoch("frozen", i, 0.7 + 0.01 * i, 0.6) for i in range(2)]
    epochs += [epoch("unfrozen", i, 0.8 + 0.005 * i, 0.75) for i in range(9)]
    epochs += [epoch("unfrozen", 9, *final)]
    lrs = [10 ** (-7 + 0.1 * i) for i in range(60)]
    curve = {"lrs": lrs, "losses": [1.0 - 0.005 * i + 0.0004 * max(0, i - 40) ** 2 for i in range(60)]}
    result = {
        "validation": summary([[1300, 100], [120, 1273]]),
        "test": summary([[1000, 219], [250, 398]], accuracy=test_accuracy),
        "train_cells": 7868,
        "valid_cells": 2793,
        "lr_find": {"suggestion": 2.1e-5, "iterations": 60},
    }
    return write_run(root, specs["alexnet"], result, epochs, lr_find=curve | {"suggestion": 2.1e-5}, **kw)


def write_alexnet_seeds(root: Path, specs, finals: list[tuple[float, float]], tests: list[float], **kw) -> list[Path]:
    """One alexnet run per seed 0, 1, ...: seed i ends Table 4.1 at ``finals[i]`` with test accuracy ``tests[i]``."""
    return [
        write_alexnet(root, specs, final, test, seed=i, stamp=f"20240101-00000{i}", **kw)
        for i, (final, test) in enumerate(zip(finals, tests, strict=True))
    ]


def write_kfold(root: Path, spec, offset: float = 0.0, **kw) -> Path:
    epochs, folds = [], []
    for k in range(5):
        for stage in ("cycle1", "cycle2"):
            epochs += [epoch(stage, i, 0.85 + 0.01 * i + offset, 0.8, fold=k) for i in range(5)]
        folds.append(
            {"fold": k, "train_cells": 8529, "valid_cells": 2132, "validation": summary([[1400, 50], [60, 622]])}
        )
    result = {
        "folds": folds,
        "kfold_summary": {"accuracy": [0.9484 + offset, 0.0123], "f_beta": [0.91, 0.02]},
        "validation": None,
        "test": summary([[1100, 119], [100, 548]]),
    }
    return write_run(root, spec, result, epochs, **kw)


def write_bayesian(root: Path, spec, **kw) -> Path:
    probes = [
        {"index": i, "params": {"dp": 0.1 + 0.05 * i, "lr": 10 ** (-5 + 0.3 * i), "wd": 0.02 * (i + 1)}, "target": t}
        for i, t in enumerate([0.91, 0.93, 0.92, 0.95, 0.90, 0.94, 0.96, 0.89, 0.93, 0.62, 0.94])
    ]
    epochs = [epoch("probe", 0, p["target"], 0.9, probe=p["index"]) for p in probes]
    epochs += [epoch("best", i, 0.94 + 0.005 * i, 0.93) for i in range(3)]
    result = {
        "probes": probes,
        "best_probe": probes[6],
        "validation": summary([[900, 40], [45, 411]]),
        "test": summary([[1050, 169], [120, 528]]),
    }
    return write_run(root, spec, result, epochs, **kw)


def write_ensembles(root: Path, spec, **kw) -> Path:
    entries = []
    for combo, acc in zip(spec.ensemble.combinations, (0.861, 0.8534, 0.7012), strict=True):
        entries.append(
            {
                "members": combo,
                "member_runs": [f"{m}-smoke-seed0-20240101-000000" for m in combo],
                "test": summary([[1100, 119], [150, 498]], accuracy=acc),
                "test_cells": 1867,
                "validation": None,
            }
        )
    result = {"ensembles": entries, "best_ensemble": entries[0]["members"], "test": entries[0]["test"]}
    return write_run(root, spec, result, **kw)


def write_all(root: Path, specs) -> Path:
    """Runs of alexnet, the k-fold spec and its independent-fold variant, the Bayesian search and the ensembles."""
    write_alexnet(root, specs)
    write_kfold(root, specs["kfold"])
    write_kfold(root, specs["kfold_independent"], offset=-0.02)
    write_bayesian(root, specs["bayesian_search"])
    write_ensembles(root, specs["ensembles"])
    return root
