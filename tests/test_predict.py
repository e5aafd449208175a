"""Evaluation on a GPU pads the last partial batch to the batch size and trims the predictions: one batch shape
per image size for cuDNN's autotuner. The padding path, forced on the CPU, predicts what the plain one does (to
float32's last bit, where the kernels for another batch size round differently)."""

import numpy as np
import torch

from cnmc_repro.run.batches import DeviceBatches
from cnmc_repro.run.trainer import Trainer
from cnmc_repro.spec.schema import FBeta


def test_padding_the_last_batch_changes_no_prediction():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    train = DeviceBatches(images, np.arange(10) % 2, 4, shuffle=True, augment=None, seed=0)
    valid = DeviceBatches(images, np.arange(10) % 2, 4, shuffle=False, augment=None, seed=0)
    trainer = Trainer.create("squeezenet1_1", False, 0.5, 0.01, FBeta(2.0, "normal"), train, valid, torch.device("cpu"))
    sizes = []
    hook = trainer.learn.model.register_forward_pre_hook(lambda module, args: sizes.append(len(args[0])))

    plain = trainer.predict(valid, pad=False)
    assert sizes == [4, 4, 2]
    sizes.clear()
    padded = trainer.predict(valid, pad=True)
    assert sizes == [4, 4, 4]  # the last two cells padded with copies of the last one
    sizes.clear()
    trainer.predict(valid)
    assert sizes == [4, 4, 2]  # on a CPU the default does not pad
    hook.remove()
    assert padded.shape == plain.shape == (10, 2)
    np.testing.assert_array_equal(padded[:8], plain[:8])  # the full batches: the very same computation
    # the padded batch runs the CPU's kernels for 4 images instead of 2, which round differently in the last bit
    np.testing.assert_allclose(padded[8:], plain[8:], rtol=0, atol=1e-6)
    assert (padded.argmax(1) == plain.argmax(1)).all()
