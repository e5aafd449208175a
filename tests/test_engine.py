"""The engine end to end on tiny generated data (smoke profile, CPU): runs, resumes, repeats exactly."""

import json
from pathlib import Path

import numpy as np
import pytest

from cnmc_repro.run import bayesian
from cnmc_repro.run.engine import Options, run
from cnmc_repro.store.folders import Store, load_epochs, load_json

pytestmark = pytest.mark.slow  # every test here trains


def _opts(data: Path, results: Path, **kw) -> Options:
    return Options(data=str(data), profile="smoke", device="cpu", results=results, **{"quiet": True, **kw})


def _figures(run_dir: Path) -> list[dict]:
    """Per-epoch figures without the wall-clock time."""
    return [{k: v for k, v in e.items() if k != "seconds"} for e in load_epochs(run_dir)]


def _result(run_dir: Path) -> dict:
    r = load_json(run_dir / "result.json")
    return {k: r[k] for k in ("validation", "test", "predictions")}


@pytest.fixture(scope="module")
def reference(tiny_data_ro, tmp_path_factory):
    """The uninterrupted run of a spec, made when a test first asks for it."""
    runs = {}

    def get(spec_id: str):
        if spec_id not in runs:
            (runs[spec_id],) = run([spec_id], _opts(tiny_data_ro, tmp_path_factory.mktemp(spec_id)))
        return runs[spec_id]

    return get


@pytest.fixture(scope="module")
def squeezenet_run(reference):
    return reference("squeezenet")


def test_a_run_writes_its_folder(squeezenet_run):
    d = squeezenet_run.run_dir
    assert {p.name for p in d.iterdir()} >= {
        "spec.json",
        "environment.json",
        "epochs.jsonl",
        "result.json",
        "checkpoint.pth",
        "lr_find.json",
    }
    record = Store(d.parent).record(d)  # the typed record, read back as the report reads it
    assert record.profile == "smoke" and record.seed == 0 and record.pretrained is False
    assert (
        record.schema_version == 5
        and record.precision == "fp32"
        and record.run_id == d.name
        and record.run_key == load_json(d / "spec.json")["run_key"]
    )
    assert record.validation.cells > 0 and record.test.cells == 10 and record.synthetic is True
    epochs = load_epochs(d)
    # where the run's time went: epochs, and reading or preparing cells (projections of a full run use both)
    assert 0 < record.prepare_seconds < record.seconds - sum(e["seconds"] for e in epochs)
    assert [e["stage"] for e in epochs] == ["frozen"] * 4 + ["unfrozen"] * 4  # smoke: four epochs a stage
    assert {"train_loss", "valid_loss", "accuracy", "error_rate", "f_beta", "seconds"} <= set(epochs[0])
    assert d.name.startswith("squeezenet-smoke-seed0-")


def test_two_cpu_runs_with_one_seed_give_identical_figures(squeezenet_run, tiny_data_ro, tmp_path):
    (again,) = run(["squeezenet"], _opts(tiny_data_ro, tmp_path))
    assert again.ran
    assert _figures(again.run_dir) == _figures(squeezenet_run.run_dir)
    assert _result(again.run_dir) == _result(squeezenet_run.run_dir)
    (other,) = run(["squeezenet"], _opts(tiny_data_ro, tmp_path / "other", seeds=(1,)))
    assert _figures(other.run_dir) != _figures(squeezenet_run.run_dir)


def test_an_unchanged_run_is_not_redone_unless_forced(squeezenet_run, tiny_data_ro):
    results = squeezenet_run.run_dir.parent
    (same,) = run(["4.2"], _opts(tiny_data_ro, results))
    assert not same.ran and same.run_dir == squeezenet_run.run_dir
    (forced,) = run(["squeezenet"], _opts(tiny_data_ro, results, force=True))
    assert forced.ran and forced.run_dir != squeezenet_run.run_dir


def test_an_interrupted_run_restarts_and_ends_with_the_same_figures(squeezenet_run, tiny_data_ro, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run(["alexnet", "squeezenet"], _opts(tiny_data_ro, tmp_path, interrupt_after_epochs=9))  # alexnet has 8
    finished = [p for p in tmp_path.iterdir() if (p / "result.json").is_file()]
    assert [p.name.split("-")[0] for p in finished] == ["alexnet"]  # the run before the interrupted one is kept
    assert not list((tmp_path / ".partial").iterdir())  # the interrupted writer removed its unfinished folder
    outcomes = run(["alexnet", "squeezenet"], _opts(tiny_data_ro, tmp_path))
    assert [o.ran for o in outcomes] == [False, True]  # continues where it stopped
    assert _figures(outcomes[1].run_dir) == _figures(squeezenet_run.run_dir)
    assert _result(outcomes[1].run_dir) == _result(squeezenet_run.run_dir)
    assert not list((tmp_path / ".partial").iterdir())


def test_the_ensemble_is_the_mean_of_its_members_stored_probabilities(tiny_data_ro, tmp_path):
    outcomes = run(["ensembles"], _opts(tiny_data_ro, tmp_path))
    assert [o.spec_id for o in outcomes] == ["resnet50", "vgg19", "squeezenet", "densenet121", "ensembles"]
    members = {o.spec_id: load_json(o.run_dir / "result.json") for o in outcomes[:-1]}
    ens = load_json(outcomes[-1].run_dir / "result.json")
    assert len(ens["ensembles"]) == 3
    for entry in ens["ensembles"]:
        preds = [members[m]["predictions"]["test"] for m in entry["members"]]
        mean = np.mean([p["prob_all"] for p in preds], axis=0)
        targets = np.array(preds[0]["targets"])
        accuracy = np.mean((mean >= 0.5) == (targets == 0))
        assert entry["test"]["accuracy"] == pytest.approx(accuracy)
        assert entry["member_runs"] == [members[m]["run_id"] for m in entry["members"]]
    assert ens["test"]["accuracy"] == max(e["test"]["accuracy"] for e in ens["ensembles"])


def test_the_bayesian_search_probes_its_points_and_retrains_the_best(reference):
    """The smoke profile's search: 2 random and 2 guided probes of 3 epochs (the spec's 6 and 5 in full)."""
    out = reference("bayesian_search")
    result = load_json(out.run_dir / "result.json")
    probes = result["probes"]
    assert len(probes) == 4 and [p["index"] for p in probes] == list(range(4))
    bounds = {"dp": (0.1, 0.7), "lr": (1e-6, 1e-2), "wd": (0.01, 0.8)}
    assert [p["params"] for p in probes[:2]] == bayesian.random_probes(bounds, 1, 2)
    assert result["best_probe"] == max(probes, key=lambda p: p["target"])
    epochs = load_epochs(out.run_dir)
    assert [e["probe"] for e in epochs if "probe" in e] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    retrain = [e for e in epochs if e.get("stage") == "best"]
    assert len(retrain) == 3 and all("probe" not in e for e in retrain)


def test_the_search_proposes_the_published_probes_where_the_audit_says_it_does():
    """Fed the printed targets, the engine's search proposes Fig 4.12's iterations 0-7 and 9 digit for digit."""
    from cnmc_repro.spec.load import load_all

    published = load_all()["bayesian_search"].published.bayesian
    targets = iter(float(p.target) for p in published)
    bounds = {"dp": (0.1, 0.7), "lr": (1e-6, 1e-2), "wd": (0.01, 0.8)}
    probes = bayesian.search(lambda params: next(targets), bounds, 1, 6, 5)
    exact = [
        all(repr(pr["params"][k]) == getattr(pub, k) for k in ("dp", "lr", "wd"))
        for pr, pub in zip(probes, published, strict=True)
    ]
    assert [i for i, e in enumerate(exact) if e] == [0, 1, 2, 3, 4, 5, 6, 7, 9]


def test_kfold_carries_weights_and_records_every_fold(reference):
    """The smoke profile trains the first 2 folds of the spec's 5-fold split, 4 epochs a stage."""
    out = reference("kfold")
    result = load_json(out.run_dir / "result.json")
    assert [f["fold"] for f in result["folds"]] == [0, 1]
    assert [f["valid_cells"] for f in result["folds"]] == [8, 7]  # 5 folds of the 36 cells: 8, 7, 7, 7, 7
    epochs = load_epochs(out.run_dir)
    stages = ("cycle1",) * 4 + ("cycle2",) * 4
    assert [(e["fold"], e["stage"]) for e in epochs] == [(k, s) for k in range(2) for s in stages]
    mean, std = result["kfold_summary"]["accuracy"]
    accs = [f["validation"]["accuracy"] for f in result["folds"]]
    assert mean == pytest.approx(np.mean(accs)) and std == pytest.approx(np.std(accs, ddof=1))


def test_cli_run_says_when_there_is_nothing_to_do(tiny_data_ro, tmp_path, cli):
    code, out, _ = cli("run", "alexnet", "--data", tiny_data_ro, "--profile", "smoke", "--results", tmp_path)
    assert code == 0 and "1 run(s) trained" in out
    code, out, err = cli("run", "alexnet", "--data", tiny_data_ro, "--profile", "smoke", "--results", tmp_path)
    assert code == 0 and "nothing to do" in out and "up to date" in err
    code, out, _ = cli("show", "alexnet", "--results", tmp_path)
    assert code == 0 and "Table 4.1. Alexnet Training" in out and "0.398766" in out
    code, out, _ = cli("list", "--results", tmp_path)
    assert code == 0 and "alexnet" in out and "not run" in out
    assert json.loads((next(tmp_path.glob("alexnet-*")) / "spec.json").read_text())["profile"] == "smoke"


def test_missing_pretrained_weights_offline_is_one_sentence(tiny_data_ro, tmp_path, monkeypatch, cli):
    import torch

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    code, _, err = cli("run", "alexnet", "--data", tiny_data_ro, "--profile", "full", "--results", tmp_path / "r")
    assert code == 2 and "Traceback" not in err
    assert "pretrained ImageNet weights of alexnet are not in torchvision's cache" in err
    assert "alexnet-owt-7be5be79.pth" in err and "--no-pretrained" in err
    assert not [p for p in (tmp_path / "r").iterdir() if not p.name.startswith(".")]  # no run folder was left


def _counting_fits(monkeypatch) -> list:
    """Records every stage the trainer fits from now on."""
    from cnmc_repro.run.trainer import Trainer

    fits, fit = [], Trainer.fit

    def counting(self, stage, lr=None):
        fits.append(stage.name)
        return fit(self, stage, lr)

    monkeypatch.setattr(Trainer, "fit", counting)
    return fits


def _same_checkpoint(a: Path, b: Path) -> bool:
    import torch

    x, y = torch.load(a / "checkpoint.pth"), torch.load(b / "checkpoint.pth")
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


# spec: (epochs before the interruption, parts kept, stages fitted again); smoke runs train four epochs a stage
PARTS = {
    # 2 folds of 2 stages; stopped in fold 1's first stage, fold 0 is kept
    "kfold": (10, 1, 1 * 2),
    # 4 probes of 3 epochs (the spec's), then the best again; stopped in probe 2, probes 0 and 1 are kept
    "bayesian_search": (7, 2, 2 + 1),
    # 7 image sizes; stopped in the third, 8 and 16 px are kept
    "progressive_resizing": (9, 2, 5),
}


@pytest.mark.parametrize("spec_id", list(PARTS))
def test_an_interrupted_run_goes_on_from_its_last_finished_part(
    spec_id, reference, tiny_data_ro, tmp_path, monkeypatch, capsys
):
    uninterrupted = reference(spec_id)
    after, kept, again = PARTS[spec_id]
    with pytest.raises(KeyboardInterrupt):
        run([spec_id], _opts(tiny_data_ro, tmp_path, interrupt_after_epochs=after))
    assert len(list((tmp_path / ".resume").iterdir())) == 1  # the finished parts, under the run key
    fits = _counting_fits(monkeypatch)
    capsys.readouterr()
    (out,) = run([spec_id], _opts(tiny_data_ro, tmp_path, quiet=False))
    assert len(fits) == again  # the finished parts were not trained again
    assert f"going on from an interrupted run: {kept} finished part(s) kept" in capsys.readouterr().err
    assert _figures(out.run_dir) == _figures(uninterrupted.run_dir)  # every epoch's figures, the kept ones too
    assert _result(out.run_dir) == _result(uninterrupted.run_dir)
    assert _same_checkpoint(out.run_dir, uninterrupted.run_dir)
    assert not list((tmp_path / ".resume").iterdir())  # a finished run keeps no parts


@pytest.mark.parametrize("spec_id", ["kfold", "progressive_resizing"])
def test_a_run_interrupted_after_its_last_part_only_evaluates_and_stores(
    spec_id, reference, tiny_data_ro, tmp_path, monkeypatch
):
    """The weights the last part left are restored for the evaluation: the figures match an uninterrupted run."""
    from cnmc_repro.store.folders import RunWriter

    uninterrupted = reference(spec_id)

    def interrupted(self, result):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(RunWriter, "finish", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run([spec_id], _opts(tiny_data_ro, tmp_path))
    fits = _counting_fits(monkeypatch)
    (out,) = run([spec_id], _opts(tiny_data_ro, tmp_path))
    assert fits == []
    assert _figures(out.run_dir) == _figures(uninterrupted.run_dir)
    assert _result(out.run_dir) == _result(uninterrupted.run_dir)
    assert _same_checkpoint(out.run_dir, uninterrupted.run_dir)


def test_force_starts_an_interrupted_run_afresh(tiny_data_ro, tmp_path, monkeypatch):
    with pytest.raises(KeyboardInterrupt):
        run(["progressive_resizing"], _opts(tiny_data_ro, tmp_path, interrupt_after_epochs=3))
    fits = _counting_fits(monkeypatch)
    run(["progressive_resizing"], _opts(tiny_data_ro, tmp_path, force=True))
    assert len(fits) == 7  # every image size again


def test_parts_keep_the_latest_state_and_need_it_to_go_on(tmp_path):
    import torch

    from cnmc_repro.run.context import first_unfinished
    from cnmc_repro.store.folders import Parts

    parts = Parts(tmp_path / "key")
    assert parts.count() == 0 and first_unfinished(parts, ["a", "b"]) == 0
    parts.save("a", {"epochs": []}, {"model": {"w": torch.ones(2)}})
    parts.save("b", {"epochs": []}, {"model": {"w": torch.zeros(2)}})
    assert parts.state("a") is None and torch.equal(parts.state("b")["model"]["w"], torch.zeros(2))
    assert first_unfinished(parts, ["a", "b", "c"]) == 2
    (tmp_path / "key" / "state-b.pt").unlink()  # finished parts without the state they left: start again
    assert first_unfinished(parts, ["a", "b", "c"]) == 0 and parts.count() == 0


# ------------------------------------------------------------------------------------------------ several seeds


def test_seeds_are_a_count_or_a_list():
    from cnmc_repro.errors import UserError
    from cnmc_repro.run.engine import parse_seeds

    assert parse_seeds("5") == (0, 1, 2, 3, 4) and parse_seeds("0,3,7") == (0, 3, 7)
    assert parse_seeds("7,") == (7,) and parse_seeds("3, 3,1") == (3, 1)
    for bad in ("0", "x", "-1,2", ",", "2.5"):
        with pytest.raises(UserError, match="is neither a count of seeds"):
            parse_seeds(bad)


def test_a_bad_seeds_option_is_one_sentence(tmp_path, cli):
    code, _, err = cli("run", "alexnet", "--seeds", "three", "--results", tmp_path)
    assert code == 2 and "--seeds 'three' is neither a count of seeds" in err and "Traceback" not in err
    with pytest.raises(SystemExit):  # argparse: one or the other
        cli("run", "alexnet", "--seed", "1", "--seeds", "3")


@pytest.fixture(scope="module")
def two_seeds(tiny_data_ro, tmp_path_factory):
    """alexnet under seeds 0 and 1 in one invocation."""
    return run(["alexnet"], _opts(tiny_data_ro, tmp_path_factory.mktemp("two-seeds"), seeds=(0, 1)))


def test_each_seed_is_a_run_of_its_own_in_one_series(two_seeds, tiny_data_ro, capsys):
    assert [(o.spec_id, o.seed, o.ran) for o in two_seeds] == [("alexnet", 0, True), ("alexnet", 1, True)]
    store = Store(two_seeds[0].run_dir.parent)
    records = [store.record(o.run_dir) for o in two_seeds]
    assert [r.seed for r in records] == [0, 1] and records[1].run_id.startswith("alexnet-smoke-seed1-")
    assert records[0].run_key != records[1].run_key and records[0].series_key == records[1].series_key
    assert store.series(two_seeds[1].run_dir) == [o.run_dir for o in two_seeds]
    meta = load_json(two_seeds[1].run_dir / "spec.json")
    assert meta["seed"] == 1 and meta["series_key"] == records[1].series_key
    again = run(["alexnet"], _opts(tiny_data_ro, store.root, seeds=(0, 1, 2), quiet=False))
    assert [o.ran for o in again] == [False, False, True]  # only the new seed trains
    err = capsys.readouterr().err
    assert "seeds 0, 1, 2" in err and "[2/3] alexnet seed 1: up to date" in err and "[3/3] alexnet seed 2: " in err


def test_a_seed_gives_the_same_run_alone_or_among_others(two_seeds, tiny_data_ro, tmp_path):
    (alone,) = run(["alexnet"], _opts(tiny_data_ro, tmp_path, seeds=(1,)))
    assert _figures(alone.run_dir) == _figures(two_seeds[1].run_dir)
    assert _result(alone.run_dir) == _result(two_seeds[1].run_dir)
    assert _figures(two_seeds[0].run_dir) != _figures(two_seeds[1].run_dir)


def test_an_interrupted_multi_seed_invocation_goes_on_where_it_stopped(two_seeds, tiny_data_ro, tmp_path):
    with pytest.raises(KeyboardInterrupt):  # smoke alexnet: six epochs a run; stopped in seed 1's fourth
        run(["alexnet"], _opts(tiny_data_ro, tmp_path, seeds=(0, 1), interrupt_after_epochs=9))
    finished = [p.name for p in tmp_path.iterdir() if (p / "result.json").is_file()]
    assert [name.split("-")[2] for name in finished] == ["seed0"]
    outcomes = run(["alexnet"], _opts(tiny_data_ro, tmp_path, seeds=(0, 1)))
    assert [o.ran for o in outcomes] == [False, True]
    assert _figures(outcomes[1].run_dir) == _figures(two_seeds[1].run_dir)


def test_the_ensemble_of_a_seed_combines_the_members_runs_of_that_seed(tiny_data_ro, tmp_path, monkeypatch):
    """With a stand-in for training (members' test probabilities made up from the seed), the ensemble of seed
    s averages the runs of seed s: its member runs are theirs, and its figures follow from theirs."""
    from cnmc_repro.run import experiments
    from cnmc_repro.store.record import Outcome, Predictions

    def made_up(spec, ctx, writer) -> Outcome:
        targets = [0, 0, 1, 1]
        probs = [0.9, 0.4 + 0.1 * ctx.seed, 0.2, 0.6 - 0.1 * ctx.seed]
        preds = Predictions(cells=["a", "b", "c", "d"], targets=targets, prob_all=probs)
        return Outcome(test=experiments.M.summary(targets, probs), predictions={"test": preds})

    monkeypatch.setitem(experiments.RUNNERS, "train", made_up)
    outcomes = run(["ensembles"], _opts(tiny_data_ro, tmp_path, seeds=(0, 2)))
    assert [(o.spec_id, o.seed) for o in outcomes][-1] == ("ensembles", 2)
    store = Store(tmp_path)
    by = {(o.spec_id, o.seed): store.record(o.run_dir) for o in outcomes}
    for seed in (0, 2):
        ensemble = by[("ensembles", seed)]
        for entry in ensemble.ensembles:
            assert entry.member_runs == [by[(m, seed)].run_id for m in entry.members]
        # every member predicts the same here: the mean of equal probabilities is theirs
        assert ensemble.test.accuracy == by[("resnet50", seed)].test.accuracy
    assert by[("ensembles", 0)].series_key == by[("ensembles", 2)].series_key != by[("resnet50", 0)].series_key
    assert by[("ensembles", 0)].test.accuracy == 0.5 and by[("ensembles", 2)].test.accuracy == 1.0
