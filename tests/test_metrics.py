"""The metrics of section 2.3.5 and the class weights of section 4.2.3, on hand-computed numbers (no torch)."""

import pytest

from cnmc_repro.analysis import metrics as M


def test_confusion_rows_are_true_classes_columns_predictions():
    # targets: 0 = ALL, 1 = normal; three ALL (one called normal), two normal (one called ALL)
    assert M.confusion([0, 0, 0, 1, 1], [0, 0, 1, 0, 1]) == [[2, 1], [1, 1]]


def test_accuracy_and_f_beta_from_a_confusion_matrix():
    cm = [[50, 10], [5, 35]]  # ALL: TP 50, FN 10; normal called ALL: FP 5; TN 35
    assert M.accuracy_from_confusion(cm) == pytest.approx(85 / 100)
    assert M.f_beta_from_confusion(cm, 1.0, M.ALL_INDEX) == pytest.approx(2 * 50 / (2 * 50 + 10 + 5))
    # fastai v1's default FBeta(beta=2) on class index 1 (normal): TP 35, FN 5, FP 10
    assert M.f_beta_from_confusion(cm, 2.0, M.NORMAL_INDEX) == pytest.approx(5 * 35 / (5 * 35 + 4 * 5 + 10))
    assert M.f_beta_from_confusion([[0, 0], [0, 3]], 1.0, M.ALL_INDEX) == 0.0  # no ALL at all: defined as 0


def test_summary_of_a_small_set():
    targets = [0, 0, 0, 0, 1, 1]
    prob_all = [0.9, 0.8, 0.4, 0.5, 0.3, 0.6]  # 0.5 counts as ALL (the argmax of two outputs ties to ALL)
    s = M.summary(targets, prob_all, beta=2.0, positive="normal")
    assert s.confusion == [[3, 1], [1, 1]] and s.cells == 6
    assert s.accuracy == pytest.approx(4 / 6) and s.error_rate == pytest.approx(2 / 6)
    assert s.sensitivity == pytest.approx(3 / 4) and s.specificity == pytest.approx(1 / 2)
    assert s.precision == pytest.approx(3 / 4)
    assert s.f1 == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
    assert s.f_beta == pytest.approx(5 * 1 / (5 * 1 + 4 * 1 + 1))  # normal positive: TP 1, FN 1, FP 1
    f1_all, f1_normal = 6 / 8, 2 / 4  # per-class F1, weighted by support 4 and 2
    assert s.weighted_f1 == pytest.approx((4 * f1_all + 2 * f1_normal) / 6)
    assert s.balanced_accuracy == pytest.approx((3 / 4 + 1 / 2) / 2)
    # ROC AUC of P(ALL): of the 8 (ALL, normal) pairs the ALL cell scores higher in 6 (0.4 and 0.5 lose to 0.6)
    assert s.roc_auc == pytest.approx(6 / 8)
    assert set(M.SUMMARY_FIGURES) == set(vars(s))


def test_one_class_only_leaves_undefined_rates_empty():
    s = M.summary([0, 0], [0.9, 0.2])
    assert s.specificity is None and s.roc_auc is None and s.balanced_accuracy == pytest.approx(0.5)


def test_class_weights_are_the_inverse_class_shares_of_section_4_2_3():
    """Section 4.2.3: 'the cost equal to the inverse of the proportion of the dataset that the class makes up':
    N / n_c, here for the 7,272 ALL and 3,389 normal training cells of section 3.1."""
    weights = M.class_weights([0] * 7272 + [1] * 3389)
    assert weights == pytest.approx([10661 / 7272, 10661 / 3389])
    assert weights[1] / weights[0] == pytest.approx(7272 / 3389)  # the minority class weighs 2.15x as much
    assert M.class_weights([0, 1, 1, 1]) == pytest.approx([4.0, 4 / 3])


def test_mean_and_sample_standard_deviation():
    mean, sd = M.mean_std([0.9, 0.8, 1.0])
    assert mean == pytest.approx(0.9) and sd == pytest.approx(0.1)
    assert M.mean_std([0.5]) == (0.5, 0.0)
