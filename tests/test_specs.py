"""Schema tests: every spec in benchmarks/ loads, and a bad spec stops with the file and the key."""

from pathlib import Path

import pytest

from cnmc_repro.spec.load import load_all, load_spec, resolve_ids, spec_files
from cnmc_repro.spec.strict import SpecError

SPECS = spec_files()


def test_there_is_a_spec_for_every_table_of_chapter_4():
    specs = load_all()
    tables = {t for s in specs.values() for t in s.published.tables}
    assert tables == {"4.1", "4.2", "4.3", "4.4", "4.6", "4.7", "4.8", "4.9", "4.10", "4.11", "4.12", "4.13", "4.14"}
    assert resolve_ids(["4.5"], specs) == ["progressive_resizing"]
    assert specs["progressive_resizing"].published.schedule == {8: 8, 16: 16, 24: 24, 32: 28, 64: 40, 128: 36, 224: 14}
    assert len(specs["bayesian_search"].published.bayesian) == 11


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_spec_loads_and_its_tables_parse(path):
    spec = load_spec(path)
    for table in spec.published.tables.values():
        rows = table.values()
        assert rows and all(isinstance(r["epoch"], float) for r in rows)
    if spec.recipe:
        # each published table is tied to a stage the recipe runs
        stages = {s.name for s in spec.recipe.stages} | {
            s.name for s in (spec.bayesian.retrain if spec.bayesian else [])
        }
        assert all(t.stage in stages for t in spec.published.tables.values())


def _write(tmp_path: Path, text: str) -> Path:
    base = Path(SPECS[0]).read_text()
    p = tmp_path / f"{SPECS[0].stem}.yaml"
    p.write_text(text(base))
    return p


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.replace("  bs: 64\n", "  bs: 64\n  batch: 32\n"), "has an unknown key 'recipe.batch'"),
        (lambda s: s.replace("  bs: 64\n", ""), "the required key 'recipe.bs' is missing"),
        (lambda s: s.replace("  bs: 64\n", "  bs: sixty-four\n"), "recipe.bs must be a whole number"),
        (lambda s: s.replace("  arch: alexnet\n", "  arch: lenet\n"), "recipe.arch is 'lenet'; it must be one of"),
        (lambda s: s.replace("kind: train", "kind: training"), "kind is 'training'"),
        (lambda s: s + "  : :\n", "is not valid YAML"),
        (lambda s: s.replace("  bs: 64\n", "  bs: 0\n"), "recipe.bs is 0; it must be at least 2"),
        (
            lambda s: s.replace("epochs: 10, lr: 1.0e-5, frozen: true", "epochs: -1, lr: 1.0e-5, frozen: true"),
            "recipe.stages[0].epochs is -1; it must be at least 1",
        ),
        (
            lambda s: s.replace("  dropout: 0.5\n", "  dropout: 1.5\n"),
            "recipe.dropout is 1.5; it must be at least 0 and below 1",
        ),
        (
            lambda s: s.replace("  size: 224\n", "  size: 32\n"),
            "recipe.size is 32; alexnet needs images of at least 63 px",
        ),
        (
            lambda s: s.replace("lr: 1.0e-5, frozen: false", "lr: [1.0e-4, 1.0e-6], frozen: false"),
            "recipe.stages[1].lr is [0.0001, 1e-06]; the first rate must be below the second",
        ),
    ],
    ids=[
        "unknown-key",
        "missing-field",
        "wrong-type",
        "bad-arch",
        "bad-kind",
        "bad-yaml",
        "bs-0",
        "epochs-negative",
        "dropout-above-1",
        "size-below-the-arch",
        "lr-pair-reversed",
    ],
)
def test_a_bad_spec_names_the_file_and_the_key(tmp_path, edit, message):
    path = _write(tmp_path, edit)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_a_bad_spec_in_the_specs_folder_stops_the_command_line(tmp_path, monkeypatch, cli):
    for p in SPECS:
        (tmp_path / p.name).write_text(p.read_text())
    (tmp_path / "alexnet.yaml").write_text(
        (tmp_path / "alexnet.yaml").read_text().replace("  wd: 0.01\n", "  wd: lots\n")
    )
    monkeypatch.setenv("CNMC_REPRO_SPECS", str(tmp_path))
    code, _, err = cli("list")
    assert code == 2 and "alexnet.yaml: recipe.wd must be a number" in err and "Traceback" not in err


def test_an_unknown_table_is_one_sentence(cli, tmp_path):
    code, _, err = cli("run", "4.99", "--results", tmp_path)
    assert code == 2 and "unknown table or spec '4.99'" in err
    code, _, err = cli("show", "nosuch", "--results", tmp_path)
    assert code == 2 and "unknown table or spec 'nosuch'" in err


def test_profiles_shrink_a_spec_without_changing_its_recipe_choices():
    from cnmc_repro.spec.load import planned_epochs
    from cnmc_repro.spec.profiles import FULL, SMOKE, TIMING, resolve

    specs = load_all()
    kfold, search, prog = specs["kfold"], specs["bayesian_search"], specs["progressive_resizing"]
    assert resolve(kfold, FULL) == kfold
    assert sum(n for n, _ in planned_epochs(kfold)) == 50  # 5 folds x (5 + 5), Tables 4.9-4.13

    timed = resolve(kfold, TIMING)  # one fold of the same 5-fold split, one epoch per stage, at 300 px
    assert (timed.kfold.folds, timed.kfold.trained_folds) == (5, 1)
    assert planned_epochs(timed) == [(1, 300), (1, 300)]
    timed = resolve(search, TIMING)  # one random and one guided probe, then the best retrained
    assert (timed.bayesian.init_points, timed.bayesian.n_iter, timed.bayesian.probe_epochs) == (1, 1, 1)
    assert timed.bayesian.bounds == search.bayesian.bounds
    assert planned_epochs(timed) == [(1, 224), (1, 224), (1, 224)]
    assert [size for _, size in planned_epochs(resolve(prog, TIMING))] == [8, 16, 24, 32, 64, 128, 224]

    smoke = resolve(kfold, SMOKE)  # two folds of the same 5-fold split, four epochs a stage, at 32 px
    assert (smoke.kfold.folds, smoke.kfold.trained_folds) == (5, 2)
    assert planned_epochs(smoke) == [(4, 32)] * 4
    # batches of 16, and of 8 for a body without BatchNorm; AlexNet at its smallest input
    assert [resolve(specs[s], SMOKE).recipe.bs for s in ("kfold", "vgg19", "alexnet", "squeezenet")] == [16, 16, 8, 8]
    assert resolve(specs["alexnet"], SMOKE).recipe.size == 64


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["alexnet", "squeezenet1_0", "squeezenet1_1", "vgg19_bn", "resnet34", "densenet121"])
def test_the_smallest_size_a_spec_may_ask_is_the_smallest_its_architecture_runs_on(arch):
    """``schema.MIN_SIZE``: body and head run on a batch of that size, and stop one pixel below (shapes only)."""
    import torch

    from cnmc_repro.run.models import create_model
    from cnmc_repro.spec.schema import min_size

    with torch.device("meta"):
        model = create_model(arch, False, 0.5).eval()
    n = min_size(arch)
    assert model(torch.empty(2, 3, n, n, device="meta")).shape == (2, 2)
    if n > 1:
        with pytest.raises(RuntimeError):
            model(torch.empty(2, 3, n - 1, n - 1, device="meta"))
