"""One spec from YAML to its row in the report: ``reproduce all`` on the built-in data (smoke profile) for
Tables 4.1-4.3, then ``report.html``, ``report.md`` and ``report.json``; a second ``all`` trains nothing."""

import json
import shutil

import pytest

from cnmc_repro.paths import specs_dir
from cnmc_repro.store.folders import Store

pytestmark = pytest.mark.slow


def test_reproduce_all_on_the_built_in_data_ends_in_the_report(tmp_path, monkeypatch, cli):
    specs = tmp_path / "specs"
    specs.mkdir()
    for name in ("alexnet.yaml", "squeezenet.yaml", "dataset.yaml"):  # a reduced spec set: Tables 4.1-4.3
        shutil.copy(specs_dir() / name, specs / name)
    monkeypatch.setenv("CNMC_REPRO_SPECS", str(specs))
    results = tmp_path / "results"

    code, out, err = cli("all", "--device", "cpu", "--no-pretrained", "--results", results)
    assert code == 0, err
    assert "SYNTHETIC DATA" in err and "2 run(s) trained" in out
    store = Store(results)
    record = store.record(store.latest("alexnet"))
    assert record.profile == "smoke" and record.synthetic and record.spec == "alexnet"
    last = store.load(store.latest("alexnet")).epochs[-1]  # Table 4.1 shows the unfrozen stage's epochs

    html, md = (results / "report.html").read_text(), (results / "report.md").read_text()
    for text in (html, md):
        assert "Table 4.1. Alexnet Training" in text and "Table 4.3: Squeezenet Training" in text
        assert "0.911207" in text  # Table 4.1's last printed accuracy
        assert f"{last['accuracy']:.4f}" in text  # beside the reproduced one
        assert f"{record.test.accuracy:.4f}" in text  # and the test accuracy against the published 75.46%
        assert "SYNTHETIC DATA" in text

    doc = json.loads((results / "report.json").read_text())  # the same comparison, machine-readable
    table = next(f for f in doc["figures"] if f["table"] == "4.1" and f["figure"] == "final validation accuracy")
    assert table["n"] == 1 and table["mean"] == pytest.approx(last["accuracy"]) and table["verdict"] == "not_comparable"

    code, out, err = cli("all", "--device", "cpu", "--no-pretrained", "--results", results)
    assert code == 0 and "nothing to do" in out and "report up to date" in out
