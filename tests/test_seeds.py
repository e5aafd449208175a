"""Seeds and verdicts (``analysis.seeds``, ``analysis.compare``): the spread of N stored runs and the verdict of
each published figure, checked against values computed by hand from run folders written without training.

The t quantiles are those of a Student-t table (NIST/SEMATECH e-Handbook of Statistical Methods, 1.3.6.7.2,
upper critical values at 0.975): t(0.975, 1) = 12.706205, t(0.975, 2) = 4.302653.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from fake_runs import write_alexnet, write_alexnet_seeds

from cnmc_repro.analysis import seeds
from cnmc_repro.analysis.compare import compare
from cnmc_repro.analysis.seeds import Verdict
from cnmc_repro.report.runs import latest_series
from cnmc_repro.spec.load import load_all
from cnmc_repro.store.folders import Store

T_2 = 4.302653  # t(0.975, 2)
T_1 = 12.706205  # t(0.975, 1)


@pytest.fixture(scope="module")
def specs():
    return load_all()


def _with_test_accuracy(spec, printed: str):
    """The spec with another printed test accuracy (to test how its digits count)."""
    return replace(spec, published=replace(spec.published, test_accuracy=printed))


def _by_figure(spec, root) -> dict:
    series = latest_series(Store(root), spec.id, None)
    return {c.figure.what: c for c in compare(spec, series.runs)}


# --------------------------------------------------------------------------------------------- the numbers


def test_the_t_quantiles_are_those_of_the_table():
    assert seeds.t_quantile(2) == pytest.approx(T_1, abs=1e-6)
    assert seeds.t_quantile(3) == pytest.approx(T_2, abs=1e-6)


def test_three_runs_give_mean_sd_range_and_the_prediction_interval():
    s = seeds.spread([0.90, 0.92, 0.91], [0, 1, 2])
    # m = 0.91, s = 0.01; half width 4.302653 * 0.01 * sqrt(1 + 1/3) = 0.0496828
    assert (s.n, s.seeds) == (3, (0, 1, 2))
    assert s.mean == pytest.approx(0.91) and s.sd == pytest.approx(0.01)
    assert (s.min, s.max) == (0.90, 0.92)
    assert s.pi_low == pytest.approx(0.91 - 0.0496828, abs=1e-7)
    assert s.pi_high == pytest.approx(0.91 + 0.0496828, abs=1e-7)


def test_one_run_has_no_sd_and_no_interval_and_two_runs_an_interval_of_t_1():
    one = seeds.spread([0.8765], [4])
    assert (one.n, one.mean, one.sd, one.pi_low, one.pi_high) == (1, 0.8765, None, None, None)
    two = seeds.spread([0.6, 0.7], [0, 1])
    # s = sqrt(0.005) = 0.0707107; half width 12.706205 * 0.0707107 * sqrt(1.5) = 1.1003897
    assert two.sd == pytest.approx(0.0707107, abs=1e-7)
    assert two.pi_high - two.mean == pytest.approx(1.1003897, abs=1e-6)
    assert seeds.spread([], []) is None


@pytest.mark.parametrize(
    "printed, half",
    [("0.911207", 5e-7), ("75.46%", 5e-5), ("79.8%", 5e-4), ("87%", 0.005), ("0.9462750554084778", 5e-17)],
)
def test_half_the_unit_of_the_last_printed_digit(printed, half):
    assert seeds.half_unit(printed) == pytest.approx(half)


def test_the_half_unit_of_a_figure_computed_from_printed_ones_is_the_coarsest():
    assert seeds.half_unit(["0.928891", "0.9705", "0.97"]) == pytest.approx(0.005)


# ----------------------------------------------------------------------------------- verdicts from stored runs


def test_three_runs_reproduce_above_and_below(tmp_path, specs):
    """Table 4.1 ends at accuracy 0.911207 and f_beta 0.869598; the test accuracy is printed "75.46%"."""
    write_alexnet_seeds(
        tmp_path, specs, [(0.90, 0.80), (0.91, 0.81), (0.92, 0.82)], [0.90, 0.91, 0.92], synthetic=False
    )
    found = _by_figure(specs["alexnet"], tmp_path)
    acc = found["Table 4.1 final validation accuracy"]
    assert acc.spread.n == 3 and acc.spread.seeds == (0, 1, 2)
    assert acc.spread.mean == pytest.approx(0.91) and acc.spread.sd == pytest.approx(0.01)
    assert acc.spread.pi_high == pytest.approx(0.9596828, abs=1e-7)
    assert acc.verdict is Verdict.REPRODUCED  # 0.911207 inside [0.8603172, 0.9596828]
    assert acc.difference == pytest.approx(0.91 - 0.911207)
    assert acc.within_tolerance is True  # |0.91 - 0.911207| <= 0.03
    fbeta = found["Table 4.1 final validation f_beta"]
    assert fbeta.verdict is Verdict.ABOVE  # 0.869598 above 0.81 + 0.0496828 = 0.8596828
    assert fbeta.within_tolerance is False  # 0.0596 > 0.05
    assert fbeta.outside == pytest.approx(0.869598 - 0.8596828 - 5e-7, abs=1e-7)
    test = found["test accuracy"]
    assert test.verdict is Verdict.BELOW  # 0.7546 below 0.8603172
    assert test.figure.published == pytest.approx(0.7546) and test.half_unit == pytest.approx(5e-5)
    assert found["test ALL recall"].verdict is Verdict.NOT_PUBLISHED


@pytest.mark.parametrize(
    "printed, expected",
    [
        # the upper edge m + t s sqrt(1 + 1/N) = 0.9596828: printed to 4 digits, 0.9597 stands for 0.95965-0.95975
        ("0.9597", Verdict.REPRODUCED),
        ("0.959700", Verdict.ABOVE),  # the same value printed to 6 digits: 0.9596995-0.9597005, above the edge
        ("0.9598", Verdict.ABOVE),  # 0.95975 at the least: above 0.9596828
        # the lower edge 0.8603172
        ("0.8603", Verdict.REPRODUCED),
        ("0.860300", Verdict.BELOW),
        ("86.03%", Verdict.REPRODUCED),  # a percentage counts its digits as a fraction: half unit 5e-5
    ],
)
def test_three_runs_at_the_edge_of_the_interval(tmp_path, specs, printed, expected):
    write_alexnet_seeds(tmp_path, specs, [(0.9, 0.8)] * 3, [0.90, 0.91, 0.92], synthetic=False)
    found = _by_figure(_with_test_accuracy(specs["alexnet"], printed), tmp_path)
    assert found["test accuracy"].verdict is expected


@pytest.mark.parametrize("printed, expected", [("92%", Verdict.REPRODUCED), ("0.920000", Verdict.ABOVE)])
def test_six_printed_digits_against_a_whole_percentage(tmp_path, specs, printed, expected):
    """Runs 0.80, 0.82, 0.84: the interval ends at 0.82 + 0.0993655 = 0.9193655. "92%" stands for 0.915-0.925
    and reaches into it; "0.920000" stands for 0.9199995-0.9200005 and lies above it."""
    write_alexnet_seeds(tmp_path, specs, [(0.9, 0.8)] * 3, [0.80, 0.82, 0.84], synthetic=False)
    test = _by_figure(_with_test_accuracy(specs["alexnet"], printed), tmp_path)["test accuracy"]
    assert test.spread.pi_high == pytest.approx(0.82 + 0.0993655, abs=1e-7)
    assert test.verdict is expected


def test_one_run_is_inconclusive_and_still_shows_its_figure_and_the_difference(tmp_path, specs):
    write_alexnet(tmp_path, specs, final=(0.80, 0.75), synthetic=False)
    acc = _by_figure(specs["alexnet"], tmp_path)["Table 4.1 final validation accuracy"]
    assert acc.verdict is Verdict.INCONCLUSIVE
    assert acc.spread.n == 1 and acc.spread.mean == 0.80 and acc.spread.pi_low is None
    assert acc.difference == pytest.approx(0.80 - 0.911207)
    assert acc.within_tolerance is False


def test_two_runs_are_inconclusive_although_far_off(tmp_path, specs):
    write_alexnet_seeds(tmp_path, specs, [(0.50, 0.5), (0.51, 0.5)], [0.5, 0.5], synthetic=False)
    acc = _by_figure(specs["alexnet"], tmp_path)["Table 4.1 final validation accuracy"]
    assert acc.spread.n == 2 and acc.spread.pi_high is not None  # the interval is there, but N < 3
    assert acc.verdict is Verdict.INCONCLUSIVE


def test_synthetic_runs_are_not_comparable_but_show_their_spread(tmp_path, specs):
    write_alexnet_seeds(tmp_path, specs, [(0.90, 0.8), (0.91, 0.8), (0.92, 0.8)], [0.7] * 3)
    acc = _by_figure(specs["alexnet"], tmp_path)["Table 4.1 final validation accuracy"]
    assert acc.verdict is Verdict.NOT_COMPARABLE and acc.within_tolerance is None
    assert acc.spread.sd == pytest.approx(0.01)


# ----------------------------------------------------------------------------------------- which runs count


def test_the_runs_of_the_latest_series_count_one_per_seed(tmp_path, specs):
    """Runs of older code (another series) are left out; a seed run twice counts with its newer run."""
    old = [((0.10, 0.1), 0.1, f"20230101-00000{i}") for i in range(3)]
    for i, (final, test, stamp) in enumerate(old):
        write_alexnet(tmp_path, specs, final, test, seed=i, stamp=stamp, series="older-code", synthetic=False)
    write_alexnet(tmp_path, specs, (0.5, 0.5), 0.5, seed=1, stamp="20240101-000000", synthetic=False)
    write_alexnet_seeds(tmp_path, specs, [(0.90, 0.8), (0.91, 0.8), (0.92, 0.8)], [0.7] * 3, synthetic=False)
    series = latest_series(Store(tmp_path), "alexnet", None)
    assert series.seeds == [0, 1, 2] and series.latest.dir.name == "alexnet-smoke-seed2-20240101-000002"
    assert [r.dir.name for r in series.runs][1] == "alexnet-smoke-seed1-20240101-000001"  # not the earlier seed 1
    acc = compare(specs["alexnet"], series.runs)[0]
    assert acc.spread.mean == pytest.approx(0.91) and acc.spread.n == 3


def test_an_upgraded_schema_2_record_is_a_series_of_its_own(tmp_path, specs):
    write_alexnet_seeds(tmp_path, specs, [(0.90, 0.8), (0.91, 0.8)], [0.7] * 2, synthetic=False)
    newest = write_alexnet(tmp_path, specs, (0.3, 0.3), 0.3, seed=2, stamp="20240101-000009", synthetic=False)
    data = json.loads((newest / "result.json").read_text())
    del data["series_key"]
    (newest / "result.json").write_text(json.dumps(data | {"schema_version": 2}))
    store = Store(tmp_path)
    assert store.record(newest).series_key == f"run-{data['run_key']}"
    assert store.series(newest) == [newest]
