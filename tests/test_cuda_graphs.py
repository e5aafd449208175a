"""The training passes replayed as CUDA graphs train as the eager loop does (GPU only)."""

import numpy as np
import pytest
import torch
from fastai.callback.core import Callback

from cnmc_repro.run.batches import DeviceBatches
from cnmc_repro.run.trainer import Trainer
from cnmc_repro.spec.schema import Augmentation, FBeta, Stage

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


class GraphedForward(Callback):
    """Records, for every training batch, whether the model's forward is the graphed one."""

    def __init__(self):
        self.seen = []

    def before_batch(self):
        if self.training:
            self.seen.append("forward" in self.learn.model.__dict__)


def _trainer(images, targets, cuda_graphs: bool) -> Trainer:
    torch.manual_seed(0)  # the same initial weights for both
    cuda = torch.device("cuda")
    train = DeviceBatches(images, targets, 16, True, Augmentation(), 0, cuda)
    valid = DeviceBatches(images[:32], targets[:32], 16, False, None, 0, cuda)
    # no dropout: with it the graphs draw other masks than the eager loop
    f1 = FBeta(1.0, "normal")
    return Trainer.create("resnet18", False, 0.0, 0.01, f1, train, valid, cuda, cuda_graphs=cuda_graphs)


def test_cuda_graphs_train_as_the_eager_loop_does():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (96, 32, 32, 3), dtype=np.uint8)
    targets = (images[..., 0].mean((1, 2)) > 127.5).astype(int)
    eager, graphed = _trainer(images, targets, False), _trainer(images, targets, True)
    spy = GraphedForward()
    graphed.learn.add_cb(spy)
    for trainer in (eager, graphed):
        trainer.fit(Stage("s", 2, 1e-3, frozen=False))
    assert len(spy.seen) == 2 * (96 // 16) and all(spy.seen)  # every training batch ran the graphs
    assert "forward" not in graphed.learn.model.__dict__  # and the eager forward is back after the fit
    e, g = np.array(eager.learn.recorder.values), np.array(graphed.learn.recorder.values)
    assert np.allclose(e, g, rtol=0.02, atol=0.02), (e, g)  # train loss, valid loss, metrics per epoch
    valid = eager.learn.dls.valid
    assert np.allclose(eager.predict(valid), graphed.predict(valid), atol=0.02)
