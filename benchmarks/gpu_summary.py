"""The short table the GPU check prints last.

Per spec: the seconds of an epoch at each image size in a ``--profile timing`` run (one epoch per stage, one
fold, two Bayesian probes), the run's peak GPU memory, and the full run (``reproduce all --profile full``)
projected from them:

- every planned epoch at its size's fastest measured epoch;
- plus, once per size, what the first epoch at that size took beyond it (cuDNN autotuning, warm-up);
- plus the time the run spent reading or preparing cells, once;
- plus the rest of its time outside epochs (model set-up, evaluation), scaled by its folds or probes.

A spec with no timing run is estimated from a measured spec of the same architecture and size, and says
so; sizes that spec did not measure are taken at its largest measured size. A run from before runs recorded
their preparation time has it in the time outside epochs, scaled by folds or probes. Either makes the
projection an upper bound, marked "at most".

    python benchmarks/gpu_summary.py TIMING_RESULTS [--deterministic TIMING_RESULTS] [--bench BENCH_JSON...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cnmc_repro.spec.dataset import published_dataset
from cnmc_repro.spec.load import load_all, planned_epochs
from cnmc_repro.spec.schema import Spec
from cnmc_repro.store.folders import Store, load_epochs, load_json

PUBLISHED_TRAIN_CELLS = published_dataset().cells("train")  # section 3.1


def units(spec: Spec) -> int:
    """Models a run builds, trains and evaluates: folds, probes and the retrained best, or one."""
    if spec.kind == "kfold":
        return spec.kfold.trained_folds or spec.kfold.folds
    if spec.kind == "bayesian_search":
        return spec.bayesian.init_points + spec.bayesian.n_iter + 1
    return 1


def trained_units(result: dict) -> int:
    """Models a finished run built, trained and evaluated: its folds, its probes and the retrained best, or one."""
    if result.get("folds"):
        return len(result["folds"])
    if result.get("probes"):
        return len(result["probes"]) + 1
    return 1


def measure(spec: Spec, run_dir: Path) -> dict:
    """What a timing run of ``spec`` measured."""
    by_size: dict[int, list[float]] = {}
    epochs = load_epochs(run_dir)
    for e in epochs:
        by_size.setdefault(e.get("size") or spec.recipe.size, []).append(e["seconds"])
    fastest = {size: min(v) for size, v in by_size.items()}
    result = load_json(run_dir / "result.json") or {}
    prepare = result.get("prepare_seconds", 0.0)  # not recorded by runs before it was
    outside = max(0.0, result.get("seconds", 0.0) - sum(e["seconds"] for e in epochs) - prepare)
    return {
        "fastest": fastest,
        "first_extra": sum(v[0] - fastest[size] for size, v in by_size.items()),
        "prepare": prepare,
        "prepare_recorded": "prepare_seconds" in result,
        "outside_per_unit": outside / trained_units(result),
        "peak": result.get("peak_gpu_memory_bytes") or 0,
        "train_cells": (result.get("folds") or [result])[0].get("train_cells"),
    }


def project(spec: Spec, m: dict) -> tuple[float, list[int]]:
    """Seconds of a full run of ``spec`` from the measurements ``m``, and the sizes it has that ``m`` lacks
    (taken at the largest measured size, so that the projection is an upper bound for them)."""
    largest = m["fastest"][max(m["fastest"])]
    in_epochs = sum(n * m["fastest"].get(size, largest) for n, size in planned_epochs(spec))
    missing = sorted({size for _, size in planned_epochs(spec)} - set(m["fastest"]))
    return in_epochs + m["first_extra"] + m["prepare"] + m["outside_per_unit"] * units(spec), missing


def donor(spec: Spec, measured: dict[str, tuple[Spec, dict]]) -> str | None:
    """A measured spec training the same architecture at the same size."""
    r = spec.recipe
    for spec_id, (other, _) in measured.items():
        if other.recipe.arch == r.arch and other.recipe.size == r.size:
            return spec_id
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--bench", type=Path, nargs="*", default=[], help="pytest-benchmark JSON files")
    ap.add_argument("--deterministic", type=Path, help="results of the same timing runs with --deterministic")
    args = ap.parse_args()
    specs, store = load_all(), Store(args.results)
    measured = {}
    for spec_id, spec in specs.items():
        if spec.recipe is not None and (run_dir := store.latest(spec_id, "timing")):
            measured[spec_id] = (spec, measure(spec, run_dir))
    total, unmeasured, bound = {"measured": 0.0, "estimated": 0.0}, [], False
    print(f"{'spec':<22} {'s/epoch by size':<28} {'peak GiB':>8} {'epochs':>6} {'projected':>9}  basis")
    for spec_id, spec in specs.items():
        if spec.recipe is None:
            print(f"{spec_id:<22} {'no training':<28} {'':>8} {0:>6} {0:>8}s  combines stored runs")
            continue
        source = spec_id if spec_id in measured else donor(spec, measured)
        epochs = sum(n for n, _ in planned_epochs(spec))
        if source is None:
            print(f"{spec_id:<22} {'not measured':<28} {'':>8} {epochs:>6} {'?':>9}")
            unmeasured.append(spec_id)
            continue
        m = measured[source][1]
        seconds, missing = project(spec, m)
        total["measured" if source == spec_id else "estimated"] += seconds
        sizes = ", ".join(f"{size}px {v:.2f}" for size, v in sorted(m["fastest"].items()))
        basis = "this spec's timing run" if source == spec_id else f"estimated from {source}'s timing run"
        over = []  # what makes the projection an upper bound
        if missing:
            over.append(f"{', '.join(map(str, missing))} px taken at {max(m['fastest'])} px")
        if not m["prepare_recorded"] and units(spec) > 1:  # runs from before prepare_seconds was recorded
            over.append(f"preparing cells, not recorded apart, counted {units(spec)} times")
        basis += "".join(f"; at most: {o}" for o in over)
        bound = bound or bool(over)
        peak = f"{m['peak'] / 2**30:.1f}" if source == spec_id else ""
        print(f"{spec_id:<22} {sizes:<28.28} {peak:>8} {epochs:>6} {seconds:>8.0f}s  {basis}")
    what = "whole study" if not unmeasured else f"study without {', '.join(unmeasured)} (no estimate)"
    if not measured:
        print("no timing runs: nothing to project")
    else:
        print(
            f"{what}, reproduce all --profile full, projected: {'at most ' if bound else ''}"
            f"{sum(total.values()) / 60:.1f} min "
            f"({total['measured'] / 60:.1f} min from the specs' own timing runs, {total['estimated'] / 60:.1f} "
            "min estimated from another spec's)"
        )
    if "kfold" in measured and (m := measured["kfold"][1])["train_cells"]:
        per = min(m["fastest"].values())
        print(
            f"ResNet34 at 300 px (k-fold): {per:.2f} s per epoch of {m['train_cells']:,} training cells and a "
            f"validation fold, {per * PUBLISHED_TRAIN_CELLS / m['train_cells']:.2f} s scaled to "
            f"{PUBLISHED_TRAIN_CELLS:,} cells"
        )
        if args.deterministic and (det := Store(args.deterministic).latest("kfold", "timing")):
            d = min(measure(specs["kfold"], det)["fastest"].values())
            print(f"the same with --deterministic: {d:.2f} s ({d / per:.2f}x)")
    for bench in (b for b in args.bench if b.is_file()):
        for b in json.loads(bench.read_text())["benchmarks"]:
            info = b["extra_info"]
            if "eval_saved_s" in info:
                print(
                    f"evaluation {info['arch']}@{info['size']} of {info['sets']} cells: last batch as it is "
                    f"{sum(info['eval_plain_s']):.2f} s, padded {sum(info['eval_padded_s']):.2f} s, "
                    f"saved {info['eval_saved_s']} s"
                )
            elif "compile_s" in info:
                print(
                    f"torch.compile {info['arch']}@{info['size']}: compiling {info['compile_s']} s, saves "
                    f"{info['saved_per_epoch_s']} s per epoch of {info['images']} images, "
                    f"break-even after {info['break_even_epochs']} epochs"
                )
            elif "suite_graphed_images_per_s" in info:
                print(
                    f"suite + CUDA graphs {info['arch']}@{info['size']}: eager {info['suite_images_per_s']} img/s, "
                    f"graphed {info['suite_graphed_images_per_s']} img/s"
                )
            elif "graph_speedup" in info:
                print(
                    f"CUDA graph {info['arch']}@{info['size']}: bare eager loop {info['bare_torch_images_per_s']} "
                    f"img/s, replayed graph {info['graphed_images_per_s']} img/s, {info['graph_speedup']}x"
                )
            elif "ops_per_batch" in info:
                line = (
                    f"profile {info['arch']}@{info['size']}: {info['ms_per_batch']} ms per batch of "
                    f"{info['batch_size']}, {info['ops_per_batch']:.0f} operators dispatched per batch"
                )
                if info.get("gpu_busy") is not None:
                    line += (
                        f", {info['kernels_per_batch']:.0f} kernels taking {info['kernel_ms_per_batch']} ms: "
                        f"GPU busy {info['gpu_busy']:.0%}"
                    )
                print(line)
            elif "fastai_overhead" in info:
                print(
                    f"fastai's loop {info['arch']}@{info['size']}: suite {info['suite_images_per_s']} img/s, bare "
                    f"PyTorch loop {info['bare_torch_images_per_s']} img/s, overhead {info['fastai_overhead']:.0%}"
                )
            elif "arch" in info:
                print(
                    f"{info['arch'] + '@' + str(info['size']):<22} suite {info['suite_images_per_s']:>8} img/s, "
                    f"plain fastai {info['plain_fastai_images_per_s']:>8} img/s, {info['ratio']}x, "
                    f"peak {info.get('suite_peak_gpu_gib')} GiB"
                )
            elif "ratio" in info:
                print(
                    f"data feeding {info['cells']} cells@{info['size']}: suite {info['suite_cells_per_s']} cells/s, "
                    f"report pipeline {info['report_pipeline_cells_per_s']} cells/s, {info['ratio']}x"
                )


if __name__ == "__main__":
    main()
