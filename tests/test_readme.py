"""The README's example spec is a working spec, and its commands are the ones CI and users run."""

import re
import shutil
from pathlib import Path

import pytest

from cnmc_repro.run.engine import Options, run
from cnmc_repro.spec.load import load_all, spec_files
from cnmc_repro.store.folders import load_json

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(marker: str) -> str:
    text = README.read_text()
    m = re.search(re.escape(f"<!-- {marker} -->") + r"\s*```\w*\n(.*?)```", text, re.S)
    assert m, f"README.md has no block after <!-- {marker} -->"
    return m.group(1)


def test_the_two_commands():
    assert _block("main-command").strip().endswith("python -m reproduce all")
    assert _block("test-command").strip().endswith("python -m pytest")
    regression = _block("regression-command")
    assert "reproduce all --profile smoke" in regression and "reproduce regression" in regression


@pytest.mark.slow
def test_the_example_spec_runs(tmp_path, tiny_data_ro, monkeypatch):
    specs = tmp_path / "specs"
    specs.mkdir()
    for p in [*spec_files(), spec_files()[0].parent / "dataset.yaml"]:  # the specs and section 3.1's counts
        shutil.copy(p, specs / p.name)
    (specs / "resnet18_weighted.yaml").write_text(_block("example-spec"))
    monkeypatch.setenv("CNMC_REPRO_SPECS", str(specs))
    assert load_all()["resnet18_weighted"].recipe.arch == "resnet18"
    (out,) = run(
        ["resnet18_weighted"],
        Options(data=str(tiny_data_ro), profile="smoke", device="cpu", results=tmp_path / "results", quiet=True),
    )
    result = load_json(out.run_dir / "result.json")
    assert result["kind"] == "train" and result["validation"]["cells"] > 0
