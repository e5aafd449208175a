"""The audit's solvers on constructed cases (printed figures, validation sizes, confusion matrices, the random
probes) and the findings' explicit states: a table without an f_beta column, with no validation size, with no
beta that fits; spec checks that agree, disagree or cannot be decided; test accuracies that round, cut off or
neither; the published counts the audit reads from dataset.yaml."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest

from cnmc_repro.analysis.audit import Agreement, BetaState, bayes, checks, printed, tables
from cnmc_repro.analysis.audit.findings import Confusion, SpecCheck
from cnmc_repro.run.bayesian import KEYS, random_probes
from cnmc_repro.spec.dataset import published_dataset
from cnmc_repro.spec.load import load_all
from cnmc_repro.spec.schema import BayesIteration, PublishedTable


def _table(accuracies: list[str], f_betas: list[str] | None = None) -> PublishedTable:
    """A printed training table of these accuracies (and f_betas, when given)."""
    columns = ["epoch", "train_loss", "valid_loss", "accuracy"] + (["f_beta"] if f_betas is not None else [])
    cells = zip(accuracies, f_betas, strict=True) if f_betas is not None else ((a,) for a in accuracies)
    rows = [f"{i} 0.1 0.1 " + " ".join(c) for i, c in enumerate(cells)]
    return PublishedTable(caption="made up", columns=columns, rows=rows)


def test_printed_value_and_rendering():
    assert printed.printed_value("0.847118") == (Fraction(847118, 10**6), 6)
    assert printed.printed_value("75.46%") == (Fraction(7546, 10**4), 4)
    assert printed.printed_value("87%") == (Fraction(87, 100), 2)
    assert printed.renders(Fraction(1, 3), "0.333333") and not printed.renders(Fraction(1, 3), "0.333334")
    assert printed.ratio_rendering(2180, 2235, "0.975391") == "exact"
    assert printed.ratio_rendering(2180, 2235, "0.975392") == "float32"
    assert printed.ratio_rendering(2180, 2235, "0.975393") is None


def test_ratio_and_truncation_fits():
    assert printed.ratio_fits("50%", 4) == [2]
    assert printed.ratio_fits("66.67%", 3) == [2]
    assert printed.ratio_fits("66.66%", 3) == []
    assert printed.truncation_fits("66.66%", 3) == [2]


def test_fbeta_helpers_agree():
    for tp, fp, fn in [(645, 30, 37), (1048, 99, 328), (1, 0, 0), (5, 7, 11)]:
        for beta in (1, 2):
            assert abs(float(printed.fbeta_exact(tp, fp, fn, beta)) - printed.fbeta_fastai(tp, fp, fn, beta)) < 1e-6
    assert printed.fbeta_exact(0, 0, 0, 2) == 0 and printed.fbeta_fastai(0, 0, 0, 2) == 0.0


def _made_up(n: int, positives: int, beta: int, seed: int, epochs: int = 6):
    """A table of epochs with known confusion matrices, printed as fastai would (6 digits)."""
    rng = np.random.default_rng(seed)
    matrices, accs, fbs = [], [], []
    for _ in range(epochs):
        fn = int(rng.integers(5, positives // 4))
        fp = int(rng.integers(5, (n - positives) // 4))
        tp, tn = positives - fn, n - positives - fp
        matrices.append(Confusion(tp=tp, fp=fp, fn=fn, tn=tn))
        accs.append(f"{(tp + tn) / n:.6f}")
        fbs.append(f"{float(printed.fbeta_exact(tp, fp, fn, beta)):.6f}")
    return matrices, accs, fbs


def test_fit_valid_size_recovers_a_made_up_n():
    n = 1789  # prime: no smaller N shares its ratios
    matrices, accs, _ = _made_up(n, 600, 2, seed=3, epochs=8)
    fit = tables.fit_valid_size(accs, n_range=(100, 4000))
    assert fit.valid_size == n
    assert fit.multiples == [2 * n]
    assert fit.non_multiples == [] and fit.float32_rows == []


def test_fit_valid_size_reports_the_best_partial_fit():
    accs = [f"{k / 997:.6f}" for k in (800, 850, 900)] + ["0.123457"]  # the last row fits no k/997
    fit = tables.fit_valid_size(accs, n_range=(900, 1100))
    assert fit.valid_size is None
    assert fit.best.n == 997 and fit.best.failing_rows == [3]


def test_solve_confusion_recovers_beta2_positives_and_matrices():
    n, positives = 1500, 480
    matrices, accs, fbs = _made_up(n, positives, 2, seed=7)
    correct = [m.tp + m.tn for m in matrices]
    solutions = tables.solve_confusion(n, correct, fbs, 2)
    assert list(solutions) == [positives]
    assert solutions[positives] == matrices
    assert tables.solve_confusion(n, correct, fbs, 1) == {}


def test_solve_confusion_beta1_gives_tp_and_a_range_of_p():
    n, positives = 1500, 480
    matrices, accs, fbs = _made_up(n, positives, 1, seed=11)
    correct = [m.tp + m.tn for m in matrices]
    solutions = tables.solve_confusion(n, correct, fbs, 1)
    assert positives in solutions and len(solutions) > 1
    for sol in solutions.values():
        assert [m.tp for m in sol] == [m.tp for m in matrices]


def test_audit_table_on_a_made_up_table():
    n, positives = 1789, 560
    matrices, accs, fbs = _made_up(n, positives, 2, seed=5, epochs=7)
    table = _table(accs, fbs)
    t = tables.audit_table("9.9", "made_up", table, n_range=(100, 4000))
    assert t.valid_size == n and t.beta == 2 and t.positives == positives
    assert t.epochs == matrices
    assert t.positive_fraction == round(positives / n, 6)
    assert t.positive_class == "normal"  # 0.313 of N, as the normal share 0.318
    assert t.beta_state is BetaState.ONE_FITS and t.betas_fitting == [2]
    assert t.beta_note == f"only beta=2 gives whole TP/FP/FN/TN for every epoch at N={n}"
    assert BetaState.of(t.to_json()) is BetaState.ONE_FITS


def test_random_state_search_on_made_up_probes():
    bounds = {"dp": (0.2, 0.6), "lr": (1e-5, 0.1), "wd": (0.0, 0.5)}
    draws = random_probes(bounds, 1234, 4)
    published = [BayesIteration(index=i, target="0.5", **{k: repr(d[k]) for k in KEYS}) for i, d in enumerate(draws)]
    published.append(BayesIteration(index=4, target="0.5", dp="0.2", lr="0.1", wd="0.5"))
    published.append(BayesIteration(index=5, target="0.5", dp="0.6", lr="1e-05", wd="0.0"))
    assert bayes.infer_bounds(published) == bounds
    assert bayes.on_bounds(published, bounds) == {"dp": [4, 5], "lr": [4, 5], "wd": [4, 5]}
    assert bayes.search_random_state(published, bounds, states=(1200, 1300)) == [1234]
    via_bayes_opt = bayes.bayes_opt_random_probes(bounds, 1234, 6)
    printed_probes = [{k: getattr(p, k) for k in KEYS} for p in published]
    proposed = [{k: repr(d[k]) for k in KEYS} for d in via_bayes_opt]
    assert proposed[:4] == printed_probes[:4]  # bayes_opt itself draws the four random probes
    assert proposed[4] != printed_probes[4]  # and not the guided one that follows: init_points is 4


def test_suggest_class():
    assert tables.suggest_class(0.32) == "normal"
    assert tables.suggest_class(0.68) == "ALL"
    assert tables.suggest_class(0.49) is None


# ---------------------------------------------------------------- the findings' states


def test_a_table_without_f_beta_has_the_no_column_state():
    n = 1789
    accs = [f"{k / n:.6f}" for k in (1500, 1550, 1600, 1650)]
    t = tables.audit_table("9.1", "made_up", _table(accs))
    assert t.valid_size == n and t.beta_state is BetaState.NO_F_BETA_COLUMN
    assert t.beta is None and t.positives is None and t.positives_by_beta == {} and t.epochs == [None] * 4
    doc = t.to_json()
    assert doc["beta_note"] == "no f_beta column" and BetaState.of(doc) is BetaState.NO_F_BETA_COLUMN
    assert doc["basis"][-1] == "Table 9.1 prints no f_beta: beta, positives and confusion matrices cannot be inferred"


def test_a_table_whose_accuracies_fit_no_n_has_the_unknown_size_state():
    accs = ["0.123457", "0.802407"]  # 0.123457: no k/N for N in 900..1100
    t = tables.audit_table("9.2", "made_up", _table(accs, ["0.5", "0.6"]), n_range=(900, 1100))
    assert t.valid_size is None and t.correct is None and t.errors is None
    assert t.beta_state is BetaState.VALID_SIZE_UNKNOWN and t.betas_fitting == []
    doc = t.to_json()
    assert doc["beta_note"] == "validation size unknown" and BetaState.of(doc) is BetaState.VALID_SIZE_UNKNOWN
    assert doc["valid_size_note"].startswith("no N in 900..1100 makes every printed accuracy of Table 9.2 a k/N")


def test_f_betas_no_confusion_matrix_prints_have_the_none_fits_state():
    n = 1789
    accs = [f"{k / n:.6f}" for k in (1500, 1550, 1600, 1650, 1700, 1720)]
    fbs = ["0.512345", "0.623456", "0.734567", "0.845678", "0.956789", "0.967891"]  # made up, not of any matrix
    t = tables.audit_table("9.3", "made_up", _table(accs, fbs))
    assert t.valid_size == n and t.beta_state is BetaState.NONE_FITS
    assert t.positives_by_beta == {1: [], 2: []} and t.beta is None and t.positives_range is None
    doc = t.to_json()
    assert BetaState.of(doc) is BetaState.NONE_FITS
    assert doc["beta_note"] == "neither beta=1 nor beta=2 gives whole confusion matrices for every epoch"
    assert [b.split(":")[-1] for b in doc["basis"][1:]] == [" no P", " no P"]


def test_several_betas_fitting_is_its_own_state():
    n, positives = 1500, 480
    matrices, accs, fbs = _made_up(n, positives, 2, seed=7)
    t = tables.audit_table("9.4", "made_up", _table(accs, fbs))
    several = replace(t, beta_state=BetaState.SEVERAL_FIT, beta=None, positives_by_beta={1: [470], 2: [480]})
    assert several.beta_note == "undetermined: beta [1, 2] all give whole confusion matrices"
    assert BetaState.of(several.to_json()) is BetaState.SEVERAL_FIT


def test_spec_checks_have_explicit_agreement():
    assert [Agreement(v) for v in (True, False, None)] == [Agreement.AGREES, Agreement.DISAGREES, Agreement.UNDECIDABLE]
    assert Agreement.of(True) is Agreement.AGREES and Agreement.of(False) is Agreement.DISAGREES
    assert Agreement.of(True, decidable=False) is Agreement.UNDECIDABLE
    wrong = SpecCheck("s", "recipe.valid_size", 2792, 2793, Agreement.of(2792 == 2793), table="4.1")
    assert wrong.agreement is Agreement.DISAGREES and wrong.to_json()["agrees"] is False
    assert "note" not in wrong.to_json() and list(wrong.to_json())[-1] == "table"
    groups = Agreement.group([wrong.to_json(), {"agrees": None}, {"agrees": True}])
    assert [len(groups[a]) for a in Agreement] == [1, 1, 1]


def test_a_table_without_f_beta_gets_only_a_valid_size_check():
    specs = load_all()
    spec = specs["progressive_resizing"]  # Table 4.6: accuracy and error_rate only
    found = {"4.6": tables.audit_table("4.6", spec.id, spec.published.tables["4.6"])}
    spec_checks = checks.spec_checks({spec.id: spec}, found, None)
    assert [(c.field, c.agreement) for c in spec_checks] == [("recipe.valid_size", Agreement.AGREES)]


def test_test_accuracy_states():
    assert checks.audit_test_accuracy("50%", 4).state is checks.RatioState.ROUNDED
    truncated = checks.audit_test_accuracy("66.66%", 3)
    assert truncated.state is checks.RatioState.TRUNCATED and truncated.to_json()["is_ratio"] is False
    assert "cut off rather than rounded, k = 2 gives 66.66%" in truncated.basis[0]
    neither = checks.audit_test_accuracy("10%", 3)
    assert neither.state is checks.RatioState.NEITHER and "cut off" not in neither.basis[0]
    assert checks.audit_test_accuracy("75.46%").test_cells == 1867  # section 3.1's test cells by default


def test_kfold_with_an_unknown_fold_size_is_not_checked():
    specs = load_all()
    unknown = checks.KFoldFinding(
        tables=["4.9", "4.10"], fold_sizes=[2236, None], folds=5, dataset_cells=10661, class_shares={}
    )
    assert not unknown.sizes_known
    assert unknown.to_json() == {"tables": ["4.9", "4.10"], "fold_sizes": [2236, None], "folds": 5}
    assert checks.kfold_checks(specs["kfold"], unknown) == []


def test_a_random_state_that_is_not_unique_proposes_nothing():
    bounds, printed_at = {k: (0.0, 1.0) for k in KEYS}, {k: [] for k in KEYS}
    finding = bayes.BayesFinding(bounds=bounds, bounds_printed_at=printed_at, random_state_candidates=[3, 7], probes=6)
    doc = finding.to_json()
    assert doc["random_state"] is None and doc["init_points"] is None and doc["n_iter"] is None
    assert doc["iterations"] == [] and doc["exact"] == [] and "target_counts" not in doc
    assert doc["basis"][-1] == "the random_state is not unique: no probes are proposed again"


def test_published_counts_come_from_dataset_yaml():
    published = published_dataset()
    assert published.cells("train") == 10_661
    assert published.cells("train", label="ALL") == 7_272 and published.cells("train", label="normal") == 3_389
    assert published.cells("prelim_test") == 1_867
    assert published.cells("train", fold=0, label="ALL", source="challenge") == 2397
    with pytest.raises(LookupError, match="fold=3"):
        published.cells("train", fold=3)
    assert tables.class_shares() == {"normal": 3389 / 10661, "ALL": 7272 / 10661}


def test_the_report_reads_the_no_column_state():
    from cnmc_repro.report import views

    spec = load_all()["progressive_resizing"]
    finding = tables.audit_table("4.6", spec.id, spec.published.tables["4.6"]).to_json()
    assert views.published_confusion("4.6", spec, finding) == {
        "matrix": None,
        "why": "the table prints no f_beta, so the errors cannot be split into FP and FN",
    }
