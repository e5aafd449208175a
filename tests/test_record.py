"""The run record (``store.record``) and the run key's code version (``run.keys``), without training."""

import json
import shutil

import pytest

from cnmc_repro.analysis.metrics import summary
from cnmc_repro.errors import UserError
from cnmc_repro.run import keys
from cnmc_repro.store.folders import Store
from cnmc_repro.store.record import SCHEMA_VERSION, Fold, Predictions, Probe, RunRecord, parse

HEADER = dict(run_id="x-smoke-seed0-20260101-000000", run_key="k", series_key="s", spec="x", kind="kfold")
HEADER |= dict(profile="smoke", seed=0)
HEADER |= dict(device="cpu", precision="fp32", pretrained=False, synthetic=True, data_root="/d", data_fingerprint="f")
HEADER |= dict(seconds=2.0)


def _record() -> RunRecord:
    fold = Fold(0, 8, 4, summary([0, 1, 0, 1], [0.9, 0.2, 0.4, 0.7]))
    preds = {"test": Predictions(cells=["a.bmp", "b.bmp"], targets=[0, 1], prob_all=[0.75, 0.5])}
    probes = [Probe(0, {"dp": 0.3, "lr": 1e-3, "wd": 0.1}, 0.5), Probe(1, {"dp": 0.2, "lr": 1e-2, "wd": 0.4}, 0.75)]
    return RunRecord(
        folds=[fold],
        kfold_summary={"accuracy": (0.5, 0.0)},
        probes=probes,
        best_probe=probes[1],
        predictions=preds,
        test=summary([0, 1], [0.75, 0.5]),
        **HEADER,
    )


def test_a_record_survives_json():
    record = _record()
    assert parse(json.loads(json.dumps(record.to_json())), "result.json") == record
    assert record.to_json()["schema_version"] == SCHEMA_VERSION


def test_a_record_of_a_newer_schema_or_with_a_wrong_type_is_one_sentence():
    data = json.loads(json.dumps(_record().to_json()))
    with pytest.raises(UserError, match="r.json was written by a newer version of the suite"):
        parse(data | {"schema_version": SCHEMA_VERSION + 1}, "r.json")
    with pytest.raises(UserError, match="r.json: seed must be a whole number"):
        parse(data | {"seed": "zero"}, "r.json")
    with pytest.raises(UserError, match="r.json: top level has an unknown key 'accuracy'"):
        parse(data | {"accuracy": 0.5}, "r.json")


def test_a_record_of_schema_1_is_read_as_this_schema(tmp_path):
    """Schema 1 kept the run key and data in spec.json and named the best probe or ensemble "best"; schema 2
    had no series key, so an upgraded run is a series of its own; schema 3 had no precision; schema 4 no loss
    weights."""
    run = tmp_path / "bayesian_search-smoke-seed0-20260101-000000"
    run.mkdir()
    drop = ("run_key", "series_key", "data_root", "data_fingerprint", "precision")
    v1 = {k: v for k, v in _record().to_json().items() if k not in drop}
    v1 |= {"schema_version": 1, "kind": "bayesian_search", "best": v1.pop("best_probe")}
    del v1["best_ensemble"]
    (run / "result.json").write_text(json.dumps(v1))
    meta = {"run_key": "abc", "data": {"root": "/cnmc", "fingerprint": "ff", "synthetic": True}}
    (run / "spec.json").write_text(json.dumps(meta))
    record = Store(tmp_path).record(run)
    assert record.run_key == "abc" and record.data_root == "/cnmc" and record.best_probe.index == 1
    assert record.schema_version == SCHEMA_VERSION and record.series_key == "run-abc" and record.precision == "fp32"
    assert record.loss_weights is None


@pytest.mark.parametrize("device, precision", [("cpu", "fp32"), ("cuda", "bf16"), ("cuda:1", "bf16")])
def test_a_record_of_schema_3_gets_the_precision_the_suite_trained_in_then(tmp_path, device, precision):
    run = tmp_path / "alexnet-smoke-seed0-20260101-000000"
    run.mkdir()
    v3 = {k: v for k, v in _record().to_json().items() if k != "precision"} | {"schema_version": 3, "device": device}
    (run / "result.json").write_text(json.dumps(v3))
    record = Store(tmp_path).record(run)
    assert record.schema_version == SCHEMA_VERSION == 5 and record.precision == precision


def test_the_code_version_follows_the_imports_of_the_experiments():
    modules = keys.figure_modules()
    for figure_module in (
        "run.experiments",
        "run.trainer",
        "run.batches",
        "run.models",
        "run.bayesian",
        "data.prepare",
        "data.splits",
        "data.dataset",
        "analysis.metrics",
        "spec.profiles",
    ):
        assert f"cnmc_repro.{figure_module}" in modules
    for other in ("report.render", "report.views", "analysis.audit", "analysis.compare", "analysis.regression"):
        assert f"cnmc_repro.{other}" not in modules


def test_a_change_to_any_module_a_run_executes_is_a_new_code_version(tmp_path, monkeypatch):
    copy = tmp_path / "cnmc_repro"
    shutil.copytree(keys.ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(keys, "ROOT", copy)
    before = keys.code_version()
    (copy / "report" / "views.py").write_text("# the report does not decide a figure\n")
    assert keys.code_version() == before
    trainer = copy / "run" / "trainer.py"  # reached only through run.context's import of it
    trainer.write_text(trainer.read_text() + "\n# a change\n")
    assert keys.code_version() != before


def test_analysis_and_the_store_read_records_without_torch():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import cnmc_repro.analysis.compare, cnmc_repro.analysis.metrics, cnmc_repro.analysis.regression\n"
        "import cnmc_repro.store.folders, cnmc_repro.store.record\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'fastai'))\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
