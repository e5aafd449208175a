"""Reproduced figures beside the published ones: per table, per epoch, and in a summary with a verdict.

Works on plain numbers from stored runs (``store``) and specs; no torch.
"""

from __future__ import annotations

import re
from pathlib import Path

from cnmc_repro.spec.load import load_all, resolve_ids
from cnmc_repro.spec.schema import PublishedTable, Spec
from cnmc_repro.store.folders import Store, load_epochs, load_json

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


def summary_rows(spec: Spec, result: dict | None, epochs: list[dict], synthetic: bool) -> list[dict]:
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
    test = (result or {}).get("test") or {}
    if spec.published.test_accuracy:
        pub = percent(spec.published.test_accuracy)
        value = test.get("accuracy")
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
        if test.get(metric) is not None:
            rows.append(
                {
                    "what": label,
                    "published": None,
                    "reproduced": test[metric],
                    "difference": None,
                    "tolerance": None,
                    "verdict": "not published",
                }
            )
    return rows


def _fmt(v, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def format_show(spec_id: str, results: Path, profile: str | None = None) -> str:
    """``reproduce show``: the latest run of a spec beside the published figures, as text."""
    specs = load_all()
    sid = resolve_ids([spec_id], specs)[0]
    spec = specs[sid]
    store = Store(results)
    run_dir = store.latest(sid, profile)
    lines = [f"{spec.id}: {spec.title} (report section {spec.report.section})"]
    if run_dir is None:
        lines.append("not run yet: python -m reproduce run " + spec.id)
        result, epochs, meta = None, [], {}
    else:
        result, epochs = load_json(run_dir / "result.json") or {}, load_epochs(run_dir)
        meta = load_json(run_dir / "spec.json") or {"data": {"synthetic": False}, "profile": "?", "seed": "?"}
        synthetic = meta["data"]["synthetic"]
        lines.append(
            f"run {run_dir.name}: profile {meta['profile']}, seed {meta['seed']}, device {result.get('device')}, "
            f"{'pretrained' if meta.get('pretrained') else 'random'} weights, {result.get('seconds', 0):.1f}s"
        )
        if synthetic:
            lines.append("SYNTHETIC DATA: these figures cannot be compared with the report.")
    for table in spec.published.tables.values():
        lines.append("")
        lines.append(f"{table.caption} (p. {table.page})" + (f"  [{table.command}]" if table.command else ""))
        cols = [c for c in COLUMNS if c in table.columns]
        head = f"{'epoch':>5} " + " ".join(f"{c + ' pub':>15} {c + ' new':>15}" for c in cols)
        lines.append(head)
        for row in table_rows(table, epochs):
            pub, rep = row["published"] or {}, row["reproduced"] or {}
            lines.append(
                f"{row['epoch']:>5} " + " ".join(f"{_fmt(pub.get(c), 6):>15} {_fmt(rep.get(c)):>15}" for c in cols)
            )
        for note in table.notes:
            lines.append(f"  note: {note}")
    if result:
        lines.append("")
        lines.append(f"{'summary':<40} {'published':>10} {'reproduced':>11} {'diff':>8}  verdict")
        for r in summary_rows(spec, result, epochs, meta["data"]["synthetic"]):
            lines.append(
                f"{r['what']:<40} {_fmt(r['published']):>10} {_fmt(r['reproduced']):>11} "
                f"{_fmt(r['difference']):>8}  {r['verdict']}"
            )
        for split in ("validation", "test"):
            s = result.get(split)
            if s:
                lines.append(
                    f"{split}: {s['cells']} cells, confusion (rows true ALL/normal, cols predicted) "
                    f"{s['confusion']}, accuracy {_fmt(s['accuracy'])}, ALL recall {_fmt(s['sensitivity'])}, "
                    f"specificity {_fmt(s['specificity'])}, weighted F1 {_fmt(s['weighted_f1'])}, "
                    f"ROC AUC {_fmt(s['roc_auc'])}"
                )
        if result.get("kfold_summary"):
            lines.append(
                "k-fold validation, mean ± std over folds: "
                + ", ".join(f"{k} {m:.4f} ± {sd:.4f}" for k, (m, sd) in result["kfold_summary"].items())
            )
        if result.get("probes"):
            lines.append("Bayesian probes (reproduced):")
            for p in result["probes"]:
                pr = p["params"]
                lines.append(
                    f"  {p['index']:>2} target {p['target']:.4f}  dp {pr['dp']:.4f}  lr {pr['lr']:.6g}  "
                    f"wd {pr['wd']:.4f}"
                )
        if result.get("ensembles"):
            for e in result["ensembles"]:
                t = e.get("test")
                lines.append(
                    f"  ensemble {' + '.join(e['members'])}: test accuracy {_fmt(t['accuracy'] if t else None)}"
                )
    for note in spec.published.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)
