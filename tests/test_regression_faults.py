"""The regression check tells a working pipeline from a broken one: seed 0's smoke runs on the built-in data pass
against the committed baseline, and each of four faults put into the pipeline makes them fail.

The faults: the labels swapped (ALL read as normal and back), the images blanked in preparation, the class
weights of section 4.2.3 dropped from the loss, and the training targets shuffled against their images.
"""

import numpy as np
import pytest

from cnmc_repro.analysis import metrics, regression
from cnmc_repro.data import dataset, prepare
from cnmc_repro.run import context

pytestmark = pytest.mark.slow


def _swap_labels(monkeypatch):
    monkeypatch.setattr(dataset.Cell, "target", property(lambda c: 1 - dataset.CLASSES.index(c.label)))


def _blank_images(monkeypatch):
    blank = prepare.prepare_image
    monkeypatch.setattr(prepare, "prepare_image", lambda img, prep, path="": np.zeros_like(blank(img, prep, path)))
    key = prepare.Preparation.key
    monkeypatch.setattr(prepare.Preparation, "key", lambda self: "blank-" + key(self))  # not the healthy cache


def _drop_class_weights(monkeypatch):
    monkeypatch.setattr(metrics, "class_weights", lambda targets, n_classes=2: None)


def _shuffle_targets(monkeypatch):
    make = context.Batches.make

    def shuffled(self, cells, train, seed):
        dl, kept = make(self, cells, train, seed)
        if train:
            dl.targets = dl.targets[np.random.default_rng(0).permutation(len(dl.targets))]
        return dl, kept

    monkeypatch.setattr(context.Batches, "make", shuffled)


FAULTS = {
    "labels swapped": ("alexnet", _swap_labels),
    "images blanked in preparation": ("alexnet", _blank_images),
    "class weights dropped": ("loss_penalisation", _drop_class_weights),
    "training targets shuffled against their images": ("alexnet", _shuffle_targets),
}


def _run(cli, results, spec_id):
    code, out, err = cli(
        "run", spec_id, "--device", "cpu", "--no-pretrained", "--threads", "1", "--results", results
    )  # one thread a run, as the regression command trains
    assert code == 0, err
    return regression.check(results)


@pytest.mark.parametrize("spec_id", ["alexnet", "loss_penalisation"])
def test_the_healthy_pipeline_passes_on_any_machine(tmp_path, cli, spec_id):
    c = _run(cli, tmp_path, spec_id)
    assert c.specs == [spec_id] and c.failures == [], c.failures


@pytest.mark.parametrize("fault", list(FAULTS))
def test_each_fault_fails_the_regression(tmp_path, cli, monkeypatch, fault):
    spec_id, put = FAULTS[fault]
    put(monkeypatch)
    c = _run(cli, tmp_path, spec_id)
    print(f"{fault}: {len(c.failures)} failure(s): {c.failures}")
    assert c.failures, f"the regression check did not see: {fault}"
