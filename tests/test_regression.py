"""The regression check of the suite's own figures: bands from several seeds (any machine), what does not depend
on floating point (exactly, any machine), the health of every trained spec, and every bit (one machine)."""

import json
import math

import pytest
from fake_runs import summary, write_alexnet

from cnmc_repro.analysis import regression
from cnmc_repro.spec.load import load_all


@pytest.fixture(scope="module")
def specs():
    return load_all()


def _alexnet(results, specs, balanced: float, seed: int = 0, confusion=((40, 6), (5, 12)), **kw):
    """An alexnet smoke run whose validation balanced accuracy is ``balanced`` (the rest as fake_runs writes)."""
    run = write_alexnet(results, specs, seed=seed, stamp=f"20240101-00000{seed}", **kw)
    record = json.loads((run / "result.json").read_text())
    record["validation"] = summary([list(r) for r in confusion], balanced_accuracy=balanced)
    (run / "result.json").write_text(json.dumps(record))
    return run


def _baseline(tmp_path, specs, values=(0.80, 0.82, 0.84, 0.86, 0.88)):
    results = tmp_path / "baseline-runs"
    for seed, v in enumerate(values):
        _alexnet(results, specs, v, seed)
    return regression.update(results, tmp_path / "baseline.json")


def test_bands_are_the_prediction_interval_of_the_seeds(tmp_path, specs):
    base = json.loads(_baseline(tmp_path, specs).read_text())
    band = base["bands"]["alexnet"]["validation.balanced_accuracy"]
    # mean 0.84, s = sqrt(0.001) = 0.0316228, t(0.9995, 4) = 8.610302, sqrt(1 + 1/5) = 1.0954451
    half = 8.610302 * math.sqrt(0.001) * math.sqrt(1.2)
    assert band["n"] == 5 and band["mean"] == pytest.approx(0.84)
    assert band["low"] == pytest.approx(0.84 - half, abs=1e-5) and band["high"] == pytest.approx(0.84 + half, abs=1e-5)
    assert base["seeds"]["alexnet"] == [0, 1, 2, 3, 4] and "--seeds 5" in base["made_by"]


def test_seeds_that_agree_still_give_a_band_of_the_least_width(tmp_path, specs):
    base = json.loads(_baseline(tmp_path, specs, values=(0.9,) * 5).read_text())
    band = base["bands"]["alexnet"]["validation.balanced_accuracy"]
    assert (band["low"], band["high"]) == pytest.approx((0.9 - regression.MIN_HALF_WIDTH, 0.9 + 0.05))


def test_a_run_of_another_machine_within_the_bands_passes(tmp_path, specs):
    baseline = _baseline(tmp_path, specs)
    _alexnet(tmp_path / "now", specs, 0.8321)  # not one of the seeds' values: as another processor gives
    c = regression.check(tmp_path / "now", baseline)
    assert c.failures == [] and c.specs == ["alexnet"]
    assert c.exact == ["alexnet.validation.balanced_accuracy: 0.8 in the baseline, 0.8321 now"]  # only with --exact


def test_a_figure_outside_its_band_fails(tmp_path, specs):
    baseline = _baseline(tmp_path, specs, values=(0.90, 0.91, 0.92, 0.91, 0.90))
    _alexnet(tmp_path / "now", specs, 0.66)
    c = regression.check(tmp_path / "now", baseline)
    assert [f.split(":")[0] for f in c.outside_bands] == ["alexnet.validation.balanced_accuracy"]
    assert c.unhealthy == [] and c.structure == []


def test_swapped_classes_show_in_the_structure_on_any_machine(tmp_path, specs):
    baseline = _baseline(tmp_path, specs)
    _alexnet(tmp_path / "now", specs, 0.84, confusion=((5, 12), (40, 6)))  # 17 ALL and 46 normal cells, not 46/17
    c = regression.check(tmp_path / "now", baseline)
    assert c.structure == [
        "alexnet.validation_classes[0]: 46 in the baseline, 17 now",
        "alexnet.validation_classes[1]: 17 in the baseline, 46 now",
    ]


def test_a_spec_that_did_not_learn_fails_the_health_check(tmp_path, specs):
    baseline = _baseline(tmp_path, specs, values=(0.70, 0.95, 0.66, 0.9, 0.75))  # wide bands that admit chance
    _alexnet(tmp_path / "now", specs, 0.5)
    c = regression.check(tmp_path / "now", baseline)
    assert c.outside_bands == [] and len(c.unhealthy) == 1 and "below 0.65" in c.unhealthy[0]


def test_against_compares_two_results_folders_to_the_last_bit(tmp_path, specs):
    _alexnet(tmp_path / "a", specs, 0.84)
    _alexnet(tmp_path / "b", specs, 0.84)
    assert regression.against(tmp_path / "a", tmp_path / "b") == []
    _alexnet(tmp_path / "c", specs, 0.8400000000000001)
    assert regression.against(tmp_path / "c", tmp_path / "a") == [
        "alexnet.validation.balanced_accuracy: 0.84 in the baseline, 0.8400000000000001 now"
    ]


def test_wall_clock_times_are_not_figures(tmp_path, specs):
    run = _alexnet(tmp_path, specs, 0.8)
    store = regression.Store(tmp_path)
    assert all("seconds" not in e for e in regression.exact_figures(store, run)["epochs"])


def test_the_cli_fails_on_a_regression_and_passes_without_one(tmp_path, specs, cli, monkeypatch):
    monkeypatch.setattr(regression, "BASELINE", _baseline(tmp_path, specs))
    _alexnet(tmp_path / "good", specs, 0.85)
    code, out, _ = cli("regression", "--results", tmp_path / "good")
    assert code == 0 and "regression: passed" in out and "differ from the baseline's in some bit" in out
    code, out, _ = cli("regression", "--results", tmp_path / "good", "--exact")
    assert code == 1 and "FAILED (1)" in out
    _alexnet(tmp_path / "bad", specs, 0.2)
    code, out, _ = cli("regression", "--results", tmp_path / "bad")
    assert code == 1 and "outside the baseline's seed bands" in out and "did not learn" in out


def test_the_committed_baseline_says_how_it_was_made():
    base = regression.read_baseline()
    assert base["made_by"] == regression.UPDATE and base["band_level"] == regression.BAND_LEVEL
    trained = {s for s, spec in load_all().items() if spec.kind != "ensemble"}
    assert set(base["bands"]) == trained | {"ensembles"} and set(base["learned"]) == trained | {"ensembles"}
    assert all(base["seeds"][s][:2] == [0, 1] for s in base["seeds"])  # at least two seeds: a spread


def test_the_committed_baseline_holds_five_seeds_of_every_spec():
    base = regression.read_baseline()
    assert base["seeds"] == {s: list(range(regression.SEEDS)) for s in load_all()}
    assert base["made_by"] == regression.UPDATE


def test_every_trained_spec_learned_in_each_seed_of_the_committed_baseline():
    base = regression.read_baseline()
    trained = {s for s, spec in load_all().items() if spec.kind != "ensemble"}
    for spec_id in trained:
        assert all(v >= regression.HEALTHY for v in base["learned"][spec_id].values()), spec_id
        figures = base["figures"][spec_id]
        folds = [f["validation"] for f in figures["folds"]]
        shown = folds or [figures["validation"]]
        # the majority class scores 0.5; every trained spec's seed-0 smoke run is well above it
        balanced = sum((v["sensitivity"] + v["specificity"]) / 2 for v in shown) / len(shown)
        assert balanced >= regression.HEALTHY, spec_id


def test_one_seed_gives_no_band_but_the_structure_and_health_still_hold(tmp_path, specs):
    """A seed alone says nothing of the spread: its figures bound nothing (not a band of the least width)."""
    base = json.loads(_baseline(tmp_path, specs, values=(0.9,)).read_text())
    band = base["bands"]["alexnet"]["validation.balanced_accuracy"]
    assert band["n"] == 1 and band["low"] is None and band["high"] is None
    _alexnet(tmp_path / "far", specs, 0.7)
    assert regression.check(tmp_path / "far", tmp_path / "baseline.json").failures == []
    _alexnet(tmp_path / "chance", specs, 0.5)
    assert len(regression.check(tmp_path / "chance", tmp_path / "baseline.json").unhealthy) == 1


def test_a_spec_below_the_floor_in_a_baseline_seed_is_named_not_judged(tmp_path, specs):
    """The floor holds only where every seed of the baseline reached it."""
    baseline = _baseline(tmp_path, specs, values=(0.9, 0.6, 0.9))
    _alexnet(tmp_path / "now", specs, 0.55)
    c = regression.check(tmp_path / "now", baseline)
    assert c.unhealthy == [] and len(c.unreliable) == 1 and "seed 1 0.6000" in c.unreliable[0]
