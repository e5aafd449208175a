"""The short table the GPU check prints last: per spec, seconds per epoch at each size, peak GPU memory, and
the whole study (``reproduce all --profile full``) projected from those seconds.

    python benchmarks/gpu_summary.py RESULTS_OF_A_TIMING_RUN [BENCH_JSON]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cnmc_repro.profiles import FULL, resolve
from cnmc_repro.spec import load_all, planned_epochs
from cnmc_repro.store import Store, load_epochs, load_json


def main(results: Path, bench: Path | None) -> None:
    specs, store = load_all(), Store(results)
    total = 0.0
    print(f"{'spec':<22} {'s/epoch by size':<34} {'peak GPU GiB':>12} {'full epochs':>11} {'projected':>10}")
    for spec_id, spec in specs.items():
        run_dir = store.latest(spec_id)
        if run_dir is None or spec.recipe is None:
            continue
        per_size: dict[int, list[float]] = {}
        for e in load_epochs(run_dir):
            per_size.setdefault(e.get("size") or spec.recipe.size, []).append(e["seconds"])
        # the first epoch of a run includes cuDNN autotuning: take the fastest epoch of each size
        seconds = {size: min(v) for size, v in per_size.items()}
        plan = planned_epochs(resolve(spec, FULL))
        projected = sum(epochs * seconds.get(size, max(seconds.values())) for epochs, size in plan)
        total += projected
        peak = (load_json(run_dir / "result.json") or {}).get("peak_gpu_memory_bytes") or 0
        sizes = ", ".join(f"{s}px {v:.2f}" for s, v in sorted(seconds.items()))
        print(f"{spec_id:<22} {sizes:<34} {peak / 2**30:>12.1f} {sum(e for e, _ in plan):>11} {projected:>9.0f}s")
    print(f"whole study, reproduce all --profile full, projected from the measured epochs: {total / 60:.1f} min")
    if bench and bench.is_file():
        for b in json.loads(bench.read_text())["benchmarks"]:
            info = b["extra_info"]
            if "ratio" in info:
                what = info.get("arch", "data feeding")
                rate = info.get("suite_images_per_s") or info.get("suite_cells_per_s")
                print(f"{what:<22} suite {rate:>10} /s   {info['ratio']:>6}x the plain/report pipeline")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None)
