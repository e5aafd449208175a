"""The audit of the printed figures (cnmc_repro.audit): validation sizes, F-beta, confusion matrices, the
Bayesian search's set-up and the test accuracies, on the report's tables and on constructed cases."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest

from cnmc_repro.analysis import audit as A
from cnmc_repro.analysis.audit import bayes, checks, printed, tables
from cnmc_repro.run.bayesian import KEYS, random_probes
from cnmc_repro.spec.load import load_all
from cnmc_repro.spec.schema import BayesIteration, PublishedTable

VALID_SIZES = {
    "4.1": 2793,
    "4.2": 2134,
    "4.3": 2134,
    "4.4": 2793,
    "4.6": 3406,
    "4.7": 2134,
    "4.8": 2134,
    "4.9": 2236,
    "4.10": 2236,
    "4.11": 2235,
    "4.12": 2235,
    "4.13": 2235,
    "4.14": 1396,
}
BETAS = {
    "4.1": 2,
    "4.2": 2,
    "4.3": 2,
    "4.4": 1,
    "4.6": None,
    "4.7": 2,
    "4.8": 2,
    "4.9": 1,
    "4.10": 1,
    "4.11": 1,
    "4.12": 1,
    "4.13": 1,
    "4.14": 1,
}
POSITIVES = {"4.1": 1376, "4.2": 701, "4.3": 701, "4.7": 701, "4.8": 701}


@pytest.fixture(scope="module")
def specs():
    return load_all()


@pytest.fixture(scope="module")
def doc(specs):
    return A.audit(specs)


def _rows(specs, key):
    for spec in specs.values():
        if key in spec.published.tables:
            return spec.published.tables[key].values()
    raise KeyError(key)


# ---------------------------------------------------------------- independent recomputation (not the module's)


def _prints(value: float, printed: str) -> bool:
    return f"{value:.6f}" == printed


def _prints_ratio(k: int, n: int, printed: str) -> bool:
    return _prints(k / n, printed) or _prints(float(np.float32(k) / np.float32(n)), printed)


def _prints_fbeta(tp: int, fp: int, fn: int, beta: int, printed: str) -> bool:
    b2 = beta * beta
    exact = (1 + b2) * tp / ((1 + b2) * tp + b2 * fn + fp)
    f32 = np.float32
    prec, rec = f32(tp) / f32(tp + fp), f32(tp) / f32(tp + fn)
    fastai = (f32(1 + b2) * prec * rec) / (prec * f32(b2) + rec + f32(1e-9))
    return _prints(exact, printed) or _prints(float(fastai), printed)


# ---------------------------------------------------------------- the report's tables


def test_no_torch():
    code = (
        "import sys; from cnmc_repro.analysis import audit; "
        "from cnmc_repro.analysis.audit.bayes import bayes_opt_random_probes; "
        "bayes_opt_random_probes({'dp': (0.1, 0.7), 'lr': (1e-6, 0.01), 'wd': (0.01, 0.8)}, 1, 1); "
        "assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_table_4_14_n_and_first_true_positives(doc):
    t = doc["tables"]["4.14"]
    assert t["valid_size"] == 1396
    assert t["correct"][0] == 1329
    assert t["true_positives"][0] == 645
    assert t["beta"] == 1


def test_table_4_1_n(doc):
    assert doc["tables"]["4.1"]["valid_size"] == 2793


def test_valid_sizes_unique_up_to_multiples(doc):
    assert {k: t["valid_size"] for k, t in doc["tables"].items()} == VALID_SIZES
    for key, t in doc["tables"].items():
        n = t["valid_size"]
        assert t["valid_size_unique"], key
        assert all(c % n == 0 for c in t["valid_size_candidates"]), key
        assert t["valid_size_candidates"][0] == n


def test_table_4_12_fits_only_as_float32(doc):
    t = doc["tables"]["4.12"]
    assert t["valid_size"] == 2235
    assert t["float32_rows"] == [4]  # 2180/2235 = 0.9753914989... rounds to 0.975391; float32 gives 0.975392
    assert t["valid_size_exact"] is None
    assert t["best_exact_fit"] == {"n": 2235, "rows_fit": 4, "rows": 5, "failing_rows": [4]}
    assert "float32" in t["valid_size_note"]


def test_error_rate_consistent_in_table_4_6(doc, specs):
    n = doc["tables"]["4.6"]["valid_size"]
    for row, k in zip(_rows(specs, "4.6"), doc["tables"]["4.6"]["correct"], strict=True):
        assert _prints_ratio(n - k, n, f"{row['error_rate']:.6f}")


def test_beta_and_positives_per_table(doc):
    assert {k: t["beta"] for k, t in doc["tables"].items()} == BETAS
    assert {k: t["positives"] for k, t in doc["tables"].items() if t["positives"] is not None} == POSITIVES
    assert doc["tables"]["4.2"]["positive_class"] == "normal"
    assert doc["tables"]["4.1"]["positive_class"] is None  # 1376/2793 = 0.493: neither class share
    for key in ("4.4", "4.9", "4.10", "4.11", "4.12", "4.13", "4.14"):  # F1: TP known, P only bounded
        t = doc["tables"][key]
        assert t["positives"] is None and t["positives_range"][0] < t["positives_range"][1]
        assert all(e is None for e in t["epochs"])


def test_confusion_matrices_recompute_the_printed_figures(doc, specs):
    checked = 0
    for key, t in doc["tables"].items():
        rows = _rows(specs, key)
        n, beta = t["valid_size"], t["beta"]
        sets = [t["epochs"]] + ([t["epochs_if_shared"]["epochs"]] if t.get("epochs_if_shared") else [])
        for epochs in sets:
            for row, cm in zip(rows, epochs, strict=True):
                if cm is None:
                    continue
                assert cm["tp"] + cm["fp"] + cm["fn"] + cm["tn"] == n
                assert min(cm.values()) >= 0
                assert _prints_ratio(cm["tp"] + cm["tn"], n, f"{row['accuracy']:.6f}"), (key, cm)
                assert _prints_fbeta(cm["tp"], cm["fp"], cm["fn"], beta, f"{row['f_beta']:.6f}"), (key, cm)
                checked += 1
    assert checked >= 32 + 7  # Tables 4.1-4.3, 4.7, 4.8 and Table 4.4 under Table 4.1's split


def test_f1_true_positives_recompute_the_printed_f1(doc, specs):
    for key, t in doc["tables"].items():
        if t["beta"] != 1:
            continue
        for row, tp, e in zip(_rows(specs, key), t["true_positives"], t["errors"], strict=True):
            printed = f"{row['f_beta']:.6f}"
            # F1 = 2TP/(2TP+E) whatever the split of E into FN and FP; fastai's float32 arithmetic depends on it
            assert any(_prints_fbeta(tp, e - fn, fn, 1, printed) for fn in range(e + 1)), (key, tp)


def test_kfold_folds_add_up(doc):
    info = doc["kfold"]["kfold"]
    assert info["fold_sizes"] == [2236, 2236, 2235, 2235, 2235]
    assert info["cells"] == 11177
    assert 11177 in info["cells_candidates"]
    assert info["dataset_fold_sizes"] == [2132, 2133]


# ---------------------------------------------------------------- Bayesian search (Fig 4.12)


def test_bayesian_setup(doc):
    b = doc["bayesian"]
    assert b["bounds"] == {"dp": [0.1, 0.7], "lr": [1e-06, 0.01], "wd": [0.01, 0.8]}
    assert b["random_state_candidates"] == [1]
    assert b["random_state"] == 1
    assert b["init_points"] == 6
    assert b["n_iter"] == 5
    assert b["target_counts"] == [1321, 1316, 1328, 1332, 1321, 1315, 1330, 1324, 1321, 860, 1318]


def test_bayesian_exact_iterations(doc):
    b = doc["bayesian"]
    assert [it["index"] for it in b["iterations"]] == list(range(11))
    assert b["exact"] == [0, 1, 2, 3, 4, 5, 6, 7, 9]
    assert b["settings"]["bayes_opt3_ucb_centred"]["exact"] == [6, 7, 9]
    assert b["settings"]["bayes_opt1_emulated"]["exact"] == [6, 7, 9]
    assert b["settings"]["bayes_opt3_default"]["exact"] == []
    near = {it["index"]: it["max_abs_diff"] for it in b["iterations"] if not it["exact"]}
    assert set(near) == {8, 10} and all(d < 1e-3 for d in near.values())
    for it in b["iterations"]:
        same = all(it["proposed"][k] == it["published"][k] for k in KEYS)
        assert same == it["exact"]


def test_bayes_opt_itself_draws_the_random_probes(specs):
    published = specs["bayesian_search"].published.bayesian
    bounds = {"dp": (0.1, 0.7), "lr": (1e-6, 0.01), "wd": (0.01, 0.8)}
    draws = bayes.bayes_opt_random_probes(bounds, 1, 6)
    for p, d in zip(published[:6], draws, strict=True):
        assert {k: repr(d[k]) for k in KEYS} == {"dp": p.dp, "lr": p.lr, "wd": p.wd}


# ---------------------------------------------------------------- test accuracies


def test_test_accuracy_fits(doc):
    ta = doc["test_accuracy"]
    assert ta["alexnet"]["fits"] == [] and ta["alexnet"]["fits_truncated"] == [1409]
    assert ta["squeezenet"]["fits"] == [] and ta["squeezenet"]["fits_truncated"] == [1498]
    assert ta["vgg19"]["fits"] == [1489, 1490]
    assert ta["ensembles"]["fits"] == list(range(1615, 1634))
    assert ta["alexnet"]["nearest"] == {"k": 1409, "printed": "75.47%"}


# ---------------------------------------------------------------- spec checks and rendering


def test_spec_checks_are_consistent(doc):
    checks = doc["spec_checks"]
    assert checks
    for c in checks:
        assert c["agrees"] in (True, False, None)
        if c["field"] == "recipe.valid_size" and c["spec"] != "kfold":
            assert c["agrees"] == (c["spec_value"] == c["audit_value"])
        if c["field"] == "recipe.f_beta.beta" and c["audit_value"] is not None:
            assert c["agrees"] == (c["spec_value"] == c["audit_value"])
    vgg = [c for c in checks if c["spec"] == "vgg19" and c["field"] == "recipe.f_beta.beta"]
    assert [c["audit_value"] for c in vgg] == [1]
    kfold = [c for c in checks if c["spec"] == "kfold" and c["field"] == "recipe.valid_size"]
    assert len(kfold) == 1 and "11177" in kfold[0]["audit_value"]


def test_spec_check_reports_a_wrong_value(specs, doc):
    alex = specs["alexnet"]
    wrong = {"alexnet": replace(alex, recipe=replace(alex.recipe, valid_size=2792))}
    found = checks.spec_checks(wrong, doc["tables"], None)
    vs = [c for c in found if c["field"] == "recipe.valid_size"]
    assert vs == [
        {
            "spec": "alexnet",
            "field": "recipe.valid_size",
            "spec_value": 2792,
            "audit_value": 2793,
            "agrees": False,
            "table": "4.1",
        }
    ]


def test_document_is_json_and_renders(doc):
    json.loads(json.dumps(doc))
    text = A.format_audit(doc)
    assert "Table 4.14 (bayesian_search): N = 1396" in text
    assert " 9 exact yes" in text and " 8 exact no" in text
    assert "75.46%" in text and "disagree" in text


# ---------------------------------------------------------------- helpers on constructed cases


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
        matrices.append({"tp": tp, "fp": fp, "fn": fn, "tn": tn})
        accs.append(f"{(tp + tn) / n:.6f}")
        fbs.append(f"{float(printed.fbeta_exact(tp, fp, fn, beta)):.6f}")
    return matrices, accs, fbs


def test_fit_valid_size_recovers_a_made_up_n():
    n = 1789  # prime: no smaller N shares its ratios
    matrices, accs, _ = _made_up(n, 600, 2, seed=3, epochs=8)
    fit = tables.fit_valid_size(accs, n_range=(100, 4000))
    assert fit["valid_size"] == n
    assert fit["multiples"] == [2 * n]
    assert fit["non_multiples"] == [] and fit["float32_rows"] == []


def test_fit_valid_size_reports_the_best_partial_fit():
    accs = [f"{k / 997:.6f}" for k in (800, 850, 900)] + ["0.123457"]  # the last row fits no k/997
    fit = tables.fit_valid_size(accs, n_range=(900, 1100))
    assert fit["valid_size"] is None
    assert fit["best"]["n"] == 997 and fit["best"]["failing_rows"] == [3]


def test_solve_confusion_recovers_beta2_positives_and_matrices():
    n, positives = 1500, 480
    matrices, accs, fbs = _made_up(n, positives, 2, seed=7)
    correct = [m["tp"] + m["tn"] for m in matrices]
    solutions = tables.solve_confusion(n, correct, fbs, 2)
    assert list(solutions) == [positives]
    assert solutions[positives] == matrices
    assert tables.solve_confusion(n, correct, fbs, 1) == {}


def test_solve_confusion_beta1_gives_tp_and_a_range_of_p():
    n, positives = 1500, 480
    matrices, accs, fbs = _made_up(n, positives, 1, seed=11)
    correct = [m["tp"] + m["tn"] for m in matrices]
    solutions = tables.solve_confusion(n, correct, fbs, 1)
    assert positives in solutions and len(solutions) > 1
    for sol in solutions.values():
        assert [m["tp"] for m in sol] == [m["tp"] for m in matrices]


def test_audit_table_on_a_made_up_table():
    n, positives = 1789, 560
    matrices, accs, fbs = _made_up(n, positives, 2, seed=5, epochs=7)
    table = PublishedTable(
        caption="made up",
        columns=["epoch", "train_loss", "valid_loss", "accuracy", "f_beta"],
        rows=[f"{i} 0.1 0.1 {a} {f}" for i, (a, f) in enumerate(zip(accs, fbs, strict=True))],
    )
    t = tables.audit_table("9.9", "made_up", table, n_range=(100, 4000))
    assert t["valid_size"] == n and t["beta"] == 2 and t["positives"] == positives
    assert t["epochs"] == matrices
    assert t["positive_fraction"] == round(positives / n, 6)
    assert t["positive_class"] == "normal"  # 0.313 of N, as the normal share 0.318


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
