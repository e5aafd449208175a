"""The GPU check's summary: the committed H100 table is what the script prints from the committed runs."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
H100 = ROOT / "benchmarks" / "timings" / "h100"


def summary(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_summary.py"), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_the_committed_h100_summary_is_regenerated_from_its_runs():
    bench = sorted(str(p) for p in H100.glob("bench_*.json"))
    assert summary(str(H100 / "runs"), "--bench", *bench) == (H100 / "summary.txt").read_text()


def test_sizes_a_donor_did_not_measure_make_an_upper_bound():
    table = summary(str(H100 / "runs"))
    row = next(line for line in table.splitlines() if line.startswith("progressive_resizing"))
    assert "estimated from loss_penalisation's timing run; at most: 8, 16, 24, 32, 64, 128 px taken at 224 px" in row


def test_no_timing_runs_project_nothing(tmp_path):
    assert summary(str(tmp_path)).splitlines()[-1] == "no timing runs: nothing to project"
