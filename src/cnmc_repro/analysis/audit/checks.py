"""The specs' fields checked against the audit, the k-fold folds (Fig 4.9, Tables 4.9-4.13) and the test
accuracies (sections 4.1.1-4.2.1) against the 1,867 test cells of section 3.1."""

from __future__ import annotations

from typing import Any

from cnmc_repro.analysis.audit.printed import printed_value, ratio_fits, truncation_fits
from cnmc_repro.analysis.audit.tables import class_shares, table_key_order
from cnmc_repro.run.bayesian import KEYS
from cnmc_repro.spec.dataset import published_dataset
from cnmc_repro.spec.schema import Spec


def audit_test_accuracy(printed: str, n: int | None = None) -> dict[str, Any]:
    """Which k/n print as a published test accuracy (sections 4.1.1-4.2.1 against the 1,867 test cells of
    section 3.1): rounded to the printed digits (``fits``) and, failing that, cut off (``fits_truncated``)."""
    n = n if n is not None else published_dataset().cells("prelim_test")
    fits = ratio_fits(printed, n)
    truncated = truncation_fits(printed, n)
    value, digits = printed_value(printed)
    nearest = round(float(value) * n)
    pct_digits = max(0, digits - 2)
    nearest_text = f"{100 * nearest / n:.{pct_digits}f}%"
    window = n * 10.0**-digits  # the expected number of k/n in a window one printed unit wide
    if fits:
        text = f"{printed} is k/{n} for {_k_text(fits)}"
    else:
        text = f"{printed} is no k/{n}: the nearest, {nearest}/{n} = {100 * nearest / n:.6f}%, prints as {nearest_text}"
        if truncated:
            text += (
                f"; cut off rather than rounded, {_k_text(truncated)} gives {printed} (a window of one printed "
                f"unit holds {window:.2f} values k/{n} on average, so this is suggestive, not proof)"
            )
    return {
        "printed": printed,
        "test_cells": n,
        "fits": fits,
        "is_ratio": bool(fits),
        "fits_truncated": truncated,
        "nearest": {"k": nearest, "printed": nearest_text},
        "basis": [f"k/{n} rounded to the printed {pct_digits} decimal(s) of a percentage: {text}"],
    }


def _k_text(ks: list[int]) -> str:
    if len(ks) == 1:
        return f"k = {ks[0]}"
    if ks == list(range(ks[0], ks[-1] + 1)):
        return f"k in {ks[0]}..{ks[-1]}"
    return f"k in {ks}"


def _check(spec: str, fld: str, spec_value: Any, audit_value: Any, agrees: bool | None, **extra: Any) -> dict[str, Any]:
    return {"spec": spec, "field": fld, "spec_value": spec_value, "audit_value": audit_value, "agrees": agrees, **extra}


def _kfold_checks(spec: Spec, tables: dict[str, dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """K-fold (Fig 4.9, Tables 4.9-4.13): the folds have no valid_size; their audited sizes N_i are folds of
    a split of M cells (floor/ceil(M/folds)), so M is their sum when every fold is printed."""
    folds = spec.kfold.folds if spec.kfold else 5
    train_cells = published_dataset().cells("train")
    keys = sorted((k for k in spec.published.tables if k in tables), key=table_key_order)
    sizes = [tables[k]["valid_size"] for k in keys]
    checks: list[dict[str, Any]] = []
    info: dict[str, Any] = {"tables": keys, "fold_sizes": sizes, "folds": folds}
    if not sizes or any(s is None for s in sizes):
        return checks, info
    complete = len(sizes) == folds
    candidates = [
        m
        for m in range(folds * min(sizes) - folds, folds * max(sizes) + folds + 1)
        if all(s in (m // folds, -(-m // folds)) for s in sizes)
    ]
    cells = sum(sizes) if complete else None
    info.update({"cells": cells, "cells_candidates": candidates, "dataset_cells": train_cells})
    ranges = [tables[k]["positives_range"] for k in keys]
    if all(r is not None for r in ranges):
        # every fold holds q or q+1 positives: q in [max lo - 1, min hi], so every fold's P in [max lo - 1, min hi + 1]
        lo, hi = max(r[0] for r in ranges) - 1, min(r[1] for r in ranges) + 1
        info["positives_per_fold"] = [lo, hi] if lo < hi else None
        info["positives_basis"] = (
            "StratifiedKFold (Fig 4.9) gives every fold q or q+1 positives; the folds' F1 ranges of P "
            + ", ".join(f"{k}: {r[0]}..{r[1]}" for k, r in zip(keys, ranges, strict=True))
            + (
                f" leave every fold {lo}..{hi} positives ({lo / max(sizes):.3f}..{hi / min(sizes):.3f} of a fold; "
                + ", ".join(f"{c} {v:.3f}" for c, v in class_shares().items())
                + " of the training cells)"
                if lo < hi
                else " are incompatible"
            )
        )
    expected = sorted({train_cells // folds, -(-train_cells // folds)})
    info["dataset_fold_sizes"] = expected
    valid_size = spec.recipe.valid_size if spec.recipe else None
    checks.append(
        _check(
            spec.id,
            "recipe.valid_size",
            valid_size,
            f"folds of {', '.join(map(str, sizes))} cells (Tables {', '.join(keys)})"
            + (f" = 1/{folds} of {cells} cells" if cells else ""),
            all(s in expected for s in sizes),
            note=(
                f"k-fold folds have no valid_size; a {folds}-fold split of the {train_cells} training cells "
                f"(section 3.1) has folds of {'/'.join(map(str, expected))}"
                + (f", the printed folds add up to {cells}" if cells else "")
            ),
        )
    )
    checks.append(
        _check(
            spec.id,
            "kfold.folds",
            folds,
            f"fold sizes {sizes} are floor/ceil(M/{folds}) for M in {candidates}" if candidates else "no M fits",
            bool(candidates) and (cells is None or cells in candidates),
        )
    )
    return checks, info


def spec_checks(
    specs: dict[str, Spec], tables: dict[str, dict[str, Any]], bayes: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The specs' recipe fields against the audit: valid_size, f_beta.beta and f_beta.positive per table,
    and the Bayesian search's bounds, random_state, init_points and n_iter."""
    checks: list[dict[str, Any]] = []
    for spec in specs.values():
        keys = sorted((k for k in spec.published.tables if k in tables), key=table_key_order)
        if spec.recipe is None or not keys:
            continue
        if spec.kind == "kfold":
            checks.extend(_kfold_checks(spec, tables)[0])
        for key in keys:
            t = tables[key]
            if spec.kind != "kfold":
                vs = spec.recipe.valid_size
                checks.append(
                    _check(spec.id, "recipe.valid_size", vs, t["valid_size"], vs == t["valid_size"], table=key)
                )
            if t["beta_note"] == "no f_beta column":
                continue
            fb = spec.recipe.f_beta
            checks.append(
                _check(
                    spec.id,
                    "recipe.f_beta.beta",
                    fb.beta,
                    t["beta"],
                    None if t["beta"] is None else fb.beta == t["beta"],
                    table=key,
                )
            )
            cls = t["positive_class"]
            checks.append(
                _check(
                    spec.id,
                    "recipe.f_beta.positive",
                    fb.positive,
                    cls if cls else _positive_text(t),
                    None if cls is None else fb.positive == cls,
                    table=key,
                )
            )
    if bayes is not None:
        spec = next((s for s in specs.values() if s.bayesian is not None and s.published.bayesian), None)
        if spec is not None and spec.bayesian is not None:
            for k in KEYS:
                b = spec.bayesian.bounds.get(k)
                sv = [b.low, b.high] if b else None
                av = bayes["bounds"][k]
                checks.append(_check(spec.id, f"bayesian.bounds.{k}", sv, av, sv == av))
            for fld in ("random_state", "init_points", "n_iter"):
                sv = getattr(spec.bayesian, fld)
                av = bayes.get(fld)
                checks.append(_check(spec.id, f"bayesian.{fld}", sv, av, None if av is None else sv == av))
    return checks


def _positive_text(t: dict[str, Any]) -> str | None:
    shares = "/".join(f"{v:.3f}" for v in class_shares().values())
    if t.get("positive_fraction_range"):
        lo, hi = t["positive_fraction_range"]
        return f"P/N in {lo:.3f}..{hi:.3f}: no single class share (normal/ALL {shares}) fits"
    if t.get("positive_fraction") is not None:
        return f"P/N = {t['positive_fraction']:.3f} matches neither class share (normal/ALL {shares})"
    return None
