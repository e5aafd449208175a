"""Reproduced figures beside the published ones: per table, per epoch, and in a summary with a verdict.

Works on plain numbers from stored run records and specs; no torch.
"""

from __future__ import annotations

import re

from cnmc_repro.spec.schema import PublishedTable, Spec
from cnmc_repro.store.record import RunRecord

COLUMNS = ("train_loss", "valid_loss", "accuracy", "error_rate", "f_beta")


def percent(text: str | None) -> float | None:
    """``"75.46%"`` -> 0.7546."""
    if not text:
        return None
    m = re.fullmatch(r"\s*([\d.]+)\s*%\s*", text)
    return float(m.group(1)) / 100 if m else float(text)


def stage_epochs(table: PublishedTable, epochs: list[dict]) -> list[dict]:
    """The reproduced epochs a published table shows: its stage (and fold), in order."""
    return [
        e
        for e in epochs
        if e.get("stage") == table.stage and (table.fold is None or e.get("fold") == table.fold) and "probe" not in e
    ]


def table_rows(table: PublishedTable, epochs: list[dict]) -> list[dict]:
    """One row per published epoch (a row printed twice is kept twice), with the reproduced epoch beside it."""
    mine = {e["epoch"]: e for e in stage_epochs(table, epochs)}
    rows = []
    for pub in table.values():
        ep = int(pub["epoch"])
        rep = mine.get(ep)
        row = {"epoch": ep, "published": pub, "reproduced": None, "difference": {}}
        if rep is not None:
            row["reproduced"] = {k: rep.get(k) for k in (*COLUMNS, "seconds")}
            row["difference"] = {k: rep[k] - pub[k] for k in COLUMNS if k in pub and rep.get(k) is not None}
        rows.append(row)
    extra = sorted(set(mine) - {int(p["epoch"]) for p in table.values()})
    for ep in extra:  # epochs the reproduction ran beyond the printed ones
        rows.append(
            {
                "epoch": ep,
                "published": None,
                "reproduced": {k: mine[ep].get(k) for k in (*COLUMNS, "seconds")},
                "difference": {},
            }
        )
    return rows


def verdict(difference: float | None, tolerance: float, synthetic: bool) -> str:
    """How a reproduced figure stands against a published one: "reproduced" within ``tolerance``, "differs"
    beyond it, "not run" without a reproduced figure, "not comparable (synthetic data)" on synthetic data."""
    if difference is None:
        return "not run"
    if synthetic:
        return "not comparable (synthetic data)"
    return "reproduced" if abs(difference) <= tolerance else "differs"


def summary_rows(spec: Spec, record: RunRecord | None, epochs: list[dict], synthetic: bool) -> list[dict]:
    """Every published result of a spec beside the reproduced one, the difference and a verdict."""
    rows = []
    tol = spec.tolerance
    for tid, table in spec.published.tables.items():
        pub_last = table.values()[-1]
        rep = stage_epochs(table, epochs)
        rep_last = rep[-1] if rep else None
        for metric, t in (("accuracy", tol.accuracy), ("f_beta", tol.f_beta)):
            if metric not in pub_last:
                continue
            value = rep_last.get(metric) if rep_last else None
            diff = value - pub_last[metric] if value is not None else None
            rows.append(
                {
                    "what": f"Table {tid} final validation {metric}",
                    "published": pub_last[metric],
                    "reproduced": value,
                    "difference": diff,
                    "tolerance": t,
                    "verdict": verdict(diff, t, synthetic),
                }
            )
    test = record.test if record else None
    if spec.published.test_accuracy:
        pub = percent(spec.published.test_accuracy)
        value = test.accuracy if test else None
        diff = value - pub if value is not None else None
        rows.append(
            {
                "what": "test accuracy",
                "published": pub,
                "reproduced": value,
                "difference": diff,
                "tolerance": tol.test_accuracy,
                "verdict": verdict(diff, tol.test_accuracy, synthetic),
            }
        )
    for metric, label in (("sensitivity", "test ALL recall"), ("weighted_f1", "test weighted F1")):
        if test is not None and getattr(test, metric) is not None:
            rows.append(
                {
                    "what": label,
                    "published": None,
                    "reproduced": getattr(test, metric),
                    "difference": None,
                    "tolerance": None,
                    "verdict": "not published",
                }
            )
    return rows
