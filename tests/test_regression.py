"""The regression check sees a moved figure and accepts the baseline's own figures."""

import json

from cnmc_repro.analysis import regression
from cnmc_repro.analysis.metrics import Summary
from cnmc_repro.store.record import RunRecord


def _fake_run(results, accuracy: float) -> None:
    run = results / "alexnet-smoke-seed0-20260101-000000"
    run.mkdir(parents=True)
    (run / "epochs.jsonl").write_text(
        json.dumps({"stage": "frozen", "epoch": 0, "accuracy": accuracy, "seconds": 1.0}) + "\n"
    )
    summary = Summary(2, [[1, 0], [0, 1]], accuracy, 1 - accuracy, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    header = dict(run_id=run.name, run_key="k", series_key="s", spec="alexnet", kind="train", profile="smoke", seed=0)
    header |= dict(device="cpu", precision="fp32")
    header |= dict(pretrained=False, synthetic=True, data_root="/data", data_fingerprint="f", seconds=1.0)
    (run / "result.json").write_text(json.dumps(RunRecord(validation=summary, **header).to_json()))


def test_a_moved_figure_is_seen(tmp_path):
    baseline = tmp_path / "baseline.json"
    _fake_run(tmp_path / "a", 0.75)
    regression.update(tmp_path / "a", baseline)
    assert regression.check(tmp_path / "a", baseline)[0] == []
    _fake_run(tmp_path / "b", 0.7500001)
    diffs, _ = regression.check(tmp_path / "b", baseline)
    assert diffs == [
        "alexnet.epochs[0].accuracy: 0.75 in the baseline, 0.7500001 now",
        "alexnet.validation.accuracy: 0.75 in the baseline, 0.7500001 now",
    ]


def test_wall_clock_times_are_not_figures(tmp_path):
    _fake_run(tmp_path, 0.5)
    assert "seconds" not in regression.figures(tmp_path)["alexnet"]["epochs"][0]


def test_the_committed_baseline_says_how_it_was_made():
    base = json.loads(regression.BASELINE.read_text())
    assert base["tolerance"] == 0.0 and "reproduce regression --update" in base["made_by"]
    assert set(base["figures"]) >= {"alexnet", "kfold", "bayesian_search", "ensembles"}
