"""Precision is a recorded choice: ``--precision bf16|fp32`` is part of the run key, the run record and the
report's provenance; bf16 autocast needs a GPU."""

import numpy as np
import pytest

from cnmc_repro.run import engine, executors
from cnmc_repro.run.engine import Engine, Options
from cnmc_repro.store.augmentation import read_draws
from cnmc_repro.store.folders import Store


def _engine(data, results, device: str, precision: str | None, monkeypatch) -> Engine:
    monkeypatch.setattr(engine, "resolve_device", lambda name: name)  # keys need no GPU
    monkeypatch.setattr(executors, "resolve_device", lambda name: name)
    return Engine(Options(data=str(data), profile="smoke", device=device, precision=precision, results=results))


def test_the_precision_is_part_of_the_run_key(tiny_data_ro, tmp_path, monkeypatch):
    bf16 = _engine(tiny_data_ro, tmp_path, "cuda", None, monkeypatch)
    fp32 = _engine(tiny_data_ro, tmp_path, "cuda", "fp32", monkeypatch)
    assert (bf16.precision, fp32.precision) == ("bf16", "fp32")  # bf16 by default on a GPU
    assert bf16.key("alexnet", 0) != fp32.key("alexnet", 0)
    assert bf16.series_key("alexnet") != fp32.series_key("alexnet")
    cpu = _engine(tiny_data_ro, tmp_path, "cpu", None, monkeypatch)
    assert cpu.precision == "fp32" and cpu.key("alexnet", 0) == _engine(
        tiny_data_ro, tmp_path, "cpu", "fp32", monkeypatch
    ).key("alexnet", 0)


def test_bf16_on_a_cpu_is_one_sentence(tmp_path, cli):
    """Said before any data is read."""
    code, _, err = cli("run", "alexnet", "--device", "cpu", "--precision", "bf16", "--data", tmp_path / "none")
    assert code == 2 and "--precision bf16 trains in bf16 autocast on a GPU only" in err and "Traceback" not in err


@pytest.mark.slow
def test_the_run_records_its_precision_and_the_report_shows_it_with_the_augmentation(tiny_data_ro, tmp_path, cli):
    results = tmp_path / "results"
    args = ("--data", tiny_data_ro, "--profile", "smoke", "--device", "cpu", "--no-pretrained", "--results", results)
    code, out, err = cli("run", "alexnet", "--precision", "fp32", *args)
    assert code == 0, err
    (run_dir,) = Store(results).runs()
    assert Store(results).record(run_dir).precision == "fp32"

    draws = read_draws(results)  # one training cell and 8 draws of it under each augmentation set
    assert set(draws) == {"cell", "fastai_v1", "flips_rotate"}
    assert draws["cell"].shape == (128, 128, 3) and draws["fastai_v1"].shape == (8, 128, 128, 3)
    assert draws["fastai_v1"].dtype == np.uint8
    assert not any(np.array_equal(d, draws["cell"]) for d in draws["fastai_v1"][1:])

    code, out, err = cli("report", "--results", results)
    assert code == 0, err
    markdown = (results / "report.md").read_text()
    assert "| precision | float32 |" in markdown and "device cpu, fp32," in markdown
    assert "![one training cell under each augmentation set](report_files/augmentation.png)" in markdown
    assert (results / "report_files" / "augmentation.png").is_file()
    assert 'alt="one training cell under each augmentation set"' in (results / "report.html").read_text()
