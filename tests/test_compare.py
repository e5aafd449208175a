"""The comparison with the published figures (``analysis.compare``): rows per epoch, summary and verdicts."""

import pytest

from cnmc_repro.analysis import compare
from cnmc_repro.analysis.metrics import summary
from cnmc_repro.spec.load import load_all
from cnmc_repro.store.record import RunRecord


@pytest.fixture(scope="module")
def specs():
    return load_all()


def test_percent_reads_printed_percentages():
    assert compare.percent("75.46%") == pytest.approx(0.7546)
    assert compare.percent("87%") == pytest.approx(0.87)
    assert compare.percent(None) is None


@pytest.mark.parametrize(
    "difference, tolerance, synthetic, expected",
    [
        (None, 0.03, False, "not run"),
        (0.01, 0.03, True, "not comparable (synthetic data)"),
        (0.03, 0.03, False, "reproduced"),  # at the tolerance
        (-0.0299, 0.03, False, "reproduced"),
        (0.0301, 0.03, False, "differs"),
        (-0.2, 0.05, False, "differs"),
    ],
)
def test_verdict(difference, tolerance, synthetic, expected):
    assert compare.verdict(difference, tolerance, synthetic) == expected


def test_table_rows_keep_a_row_printed_twice_and_add_extra_epochs(specs):
    table = specs["kfold"].published.tables["4.10"]  # prints its epoch-4 row twice
    epochs = [{"stage": "cycle1", "fold": 1, "epoch": i, "accuracy": 0.9, "f_beta": 0.8} for i in range(6)]
    rows = compare.table_rows(table, epochs)
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3, 4, 4, 5]
    assert rows[-1]["published"] is None and rows[-1]["reproduced"]["accuracy"] == 0.9
    assert rows[0]["difference"]["accuracy"] == pytest.approx(0.9 - 0.859571)
    assert compare.table_rows(table, [{**epochs[0], "fold": 0}])[0]["reproduced"] is None  # another fold's epoch


def _record(spec_id: str, test_accuracy_cells: tuple[int, int]) -> RunRecord:
    right, n = test_accuracy_cells
    targets = [0] * n
    test = summary(targets, [0.9] * right + [0.1] * (n - right))
    header = dict(run_id="r", run_key="k", spec=spec_id, kind="train", profile="full", seed=0, device="cpu")
    return RunRecord(
        test=test, **header, pretrained=True, synthetic=False, data_root="/d", data_fingerprint="f", seconds=1.0
    )


def test_summary_rows_compare_the_last_epoch_of_each_table_and_the_test_accuracy(specs):
    spec = specs["alexnet"]  # Table 4.1 ends at accuracy 0.911207, f_beta 0.869598; test 75.46%
    epochs = [{"stage": "unfrozen", "epoch": 9, "accuracy": 0.93, "f_beta": 0.80}]
    rows = {r["what"]: r for r in compare.summary_rows(spec, _record("alexnet", (76, 100)), epochs, synthetic=False)}
    acc = rows["Table 4.1 final validation accuracy"]
    assert acc["published"] == pytest.approx(0.911207) and acc["difference"] == pytest.approx(0.93 - 0.911207)
    assert acc["verdict"] == "reproduced"  # within the spec's 0.03
    assert rows["Table 4.1 final validation f_beta"]["verdict"] == "differs"  # 0.0696 off, tolerance 0.05
    test = rows["test accuracy"]
    assert test["reproduced"] == pytest.approx(0.76) and test["verdict"] == "reproduced"
    assert rows["test ALL recall"]["verdict"] == "not published"


def test_summary_rows_of_a_spec_not_run(specs):
    rows = compare.summary_rows(specs["alexnet"], None, [], synthetic=False)
    assert {r["verdict"] for r in rows} == {"not run"}
