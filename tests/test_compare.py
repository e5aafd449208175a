"""The comparison with the published figures (``analysis.compare``): which figures, read how from a run, and
the per-epoch rows over several runs."""

from pathlib import Path

import pytest
from fake_runs import write_bayesian, write_ensembles, write_kfold

from cnmc_repro.analysis import compare
from cnmc_repro.analysis.metrics import summary
from cnmc_repro.analysis.seeds import Verdict
from cnmc_repro.spec.load import load_all
from cnmc_repro.store.folders import Store, StoredRun
from cnmc_repro.store.record import RunRecord


@pytest.fixture(scope="module")
def specs():
    return load_all()


def test_published_value_reads_printed_figures():
    assert compare.published_value("75.46%") == pytest.approx(0.7546)
    assert compare.published_value("87%") == pytest.approx(0.87)
    assert compare.published_value("0.911207") == pytest.approx(0.911207)


def _run(seed: int, epochs: list[dict], test_right: int = 76, synthetic: bool = False) -> StoredRun:
    test = summary([0] * 100, [0.9] * test_right + [0.1] * (100 - test_right))
    header = dict(run_id=f"r{seed}", run_key=f"k{seed}", series_key="s", spec="x", kind="train", profile="full")
    record = RunRecord(
        test=test, **header, seed=seed, device="cpu", precision="fp32", pretrained=True, synthetic=synthetic,
        data_root="/d", data_fingerprint="f", seconds=1.0,
    )  # fmt: skip
    return StoredRun(dir=Path(f"x-full-seed{seed}"), record=record, env={}, epochs=epochs, lr_find=None)


def test_table_rows_keep_a_row_printed_twice_and_add_extra_epochs(specs):
    table = specs["kfold"].published.tables["4.10"]  # prints its epoch-4 row twice
    epochs = [{"stage": "cycle1", "fold": 1, "epoch": i, "accuracy": 0.9, "f_beta": 0.8} for i in range(6)]
    rows = compare.table_rows(table, [_run(0, epochs)])
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3, 4, 4, 5]
    assert rows[-1]["published"] is None and rows[-1]["reproduced"]["accuracy"].mean == 0.9
    assert rows[0]["difference"]["accuracy"] == pytest.approx(0.9 - 0.859571)
    other_fold = compare.table_rows(table, [_run(0, [{**epochs[0], "fold": 0}])])
    assert other_fold[0]["reproduced"] is None


def test_table_rows_give_the_spread_of_every_column_over_the_runs(specs):
    table = specs["alexnet"].published.tables["4.1"]
    runs = [
        _run(s, [{"stage": "unfrozen", "epoch": 9, "accuracy": a, "f_beta": 0.8, "seconds": 2.0}])
        for s, a in enumerate((0.90, 0.91, 0.92))
    ]
    last = compare.table_rows(table, runs)[9]
    acc = last["reproduced"]["accuracy"]
    assert (acc.n, acc.seeds) == (3, (0, 1, 2)) and acc.mean == pytest.approx(0.91) and acc.sd == pytest.approx(0.01)
    assert last["difference"]["accuracy"] == pytest.approx(0.91 - 0.911207)
    assert last["reproduced"]["train_loss"] is None and last["reproduced"]["seconds"].mean == 2.0
    assert compare.table_rows(table, runs)[0]["reproduced"] is None  # no run has epoch 0


def test_the_published_figures_of_each_kind_of_spec(specs):
    def whats(spec_id):
        return [f.what for f in compare.published_figures(specs[spec_id]) if f.published is not None]

    assert whats("alexnet") == [
        "Table 4.1 final validation accuracy",
        "Table 4.1 final validation f_beta",
        "test accuracy",
    ]
    assert whats("progressive_resizing") == ["Table 4.6 final validation accuracy"]  # no f_beta column
    assert whats("ensembles") == ["test accuracy"]
    assert whats("bayesian_search")[-1] == "best probe's validation accuracy (Fig 4.12, iteration 3)"
    kfold = [f for f in compare.published_figures(specs["kfold"]) if f.measure is compare.Measure.KFOLD_MEAN]
    assert [f.what for f in kfold] == [
        "Tables 4.9-4.13 mean final validation accuracy of the folds (from the printed tables)",
        "Tables 4.9-4.13 mean final validation f_beta of the folds (from the printed tables)",
    ]
    # the mean of the printed last rows: 0.928891, 0.970483, 0.974944, and Tables 4.12 and 4.13
    tables = specs["kfold"].published.tables
    rows = [tables[k].values()[-1]["accuracy"] for k in ("4.9", "4.10", "4.11", "4.12", "4.13")]
    assert kfold[0].published == pytest.approx(sum(rows) / 5)
    assert kfold[0].printed[:3] == ("0.928891", "0.970483", "0.974944")
    assert whats("resnet50") == [] and whats("kfold_independent") == []


def test_the_kfold_mean_best_probe_and_ensemble_are_read_from_the_runs(tmp_path, specs):
    store = Store(tmp_path)
    kfold = store.load(write_kfold(tmp_path, specs["kfold"], offset=0.01))
    found = {c.figure.what: c for c in compare.compare(specs["kfold"], [kfold])}
    # write_kfold's cycle1 ends every fold at 0.85 + 0.04 + offset
    mean = "Tables 4.9-4.13 mean final validation accuracy of the folds (from the printed tables)"
    assert found[mean].spread.mean == pytest.approx(0.90)
    assert found["Table 4.12 final validation accuracy"].spread.mean == pytest.approx(0.90)
    bayes = store.load(write_bayesian(tmp_path, specs["bayesian_search"]))
    bayes_found = compare.compare(specs["bayesian_search"], [bayes])
    best = [c for c in bayes_found if c.figure.measure is compare.Measure.BEST_PROBE]
    assert best[0].spread.mean == 0.96 and best[0].figure.printed == ("0.9541547298431396",)  # iteration 3 of Fig 4.12
    ens = store.load(write_ensembles(tmp_path, specs["ensembles"]))
    (test, *_) = compare.compare(specs["ensembles"], [ens])
    assert test.figure.what == "test accuracy" and test.spread.mean == 0.861 and test.half_unit == 0.005


def test_a_spec_not_run_has_its_published_figures_only(specs):
    found = compare.compare(specs["alexnet"], [])
    assert [c.figure.what for c in found] == [
        "Table 4.1 final validation accuracy",
        "Table 4.1 final validation f_beta",
        "test accuracy",
    ]
    assert {c.verdict for c in found} == {Verdict.NOT_RUN} and {c.within_tolerance for c in found} == {None}


def test_a_figure_a_run_lacks_leaves_the_run_out(specs):
    epochs = [{"stage": "unfrozen", "epoch": 9, "accuracy": 0.9, "f_beta": 0.8}]
    runs = [_run(0, epochs), _run(1, []), _run(2, epochs)]
    acc = compare.compare(specs["alexnet"], runs)[0]
    assert acc.spread.n == 2 and acc.spread.seeds == (0, 2) and acc.runs == ("x-full-seed0", "x-full-seed2")


def test_the_json_record_holds_the_interval_before_its_widening(specs):
    epochs = [[{"stage": "unfrozen", "epoch": 9, "accuracy": a, "f_beta": 0.8}] for a in (0.90, 0.91, 0.92)]
    acc = compare.compare(specs["alexnet"], [_run(s, e) for s, e in enumerate(epochs)])[0].to_json()
    assert {k: acc[k] for k in ("spec", "table", "figure", "n", "seeds", "verdict", "within_tolerance")} == {
        "spec": "alexnet",
        "table": "4.1",
        "figure": "final validation accuracy",
        "n": 3,
        "seeds": [0, 1, 2],
        "verdict": "reproduced",
        "within_tolerance": True,
    }
    assert acc["pi_high"] == pytest.approx(0.9596828, abs=1e-7) and acc["half_unit"] == pytest.approx(5e-7)
    assert (acc["min"], acc["max"]) == (0.90, 0.92) and acc["published"] == 0.911207 and acc["printed"] == ["0.911207"]
