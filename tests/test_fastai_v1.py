"""The learner trains fastai v1's recipe on either device path: the one-cycle schedule and the update.

fastai v1 is the fastai the report trained with (2019). Its source, which the expected values below are
written from: ``fastai/callbacks/one_cycle.py`` (``OneCycleScheduler``), ``fastai/callback.py``
(``Scheduler``, ``annealing_cos``, ``OptimWrapper.step``), ``fastai/train.py`` (``fit_one_cycle``),
``fastai/basic_train.py`` (``Learner``: ``true_wd=True``, ``bn_wd=True``, ``train_bn=True``) and
``fastai/torch_core.py`` (``AdamW = partial(optim.Adam, betas=(0.9, 0.99))``).

Both device paths run on the CPU here: fastai's Adam (the CPU's) and the GPU's torch AdamW, unfused.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fastai.callback.core import Callback

from cnmc_repro.run.batches import DeviceBatches
from cnmc_repro.run.fastai_v1 import optimiser
from cnmc_repro.run.models import splitter
from cnmc_repro.run.trainer import Trainer
from cnmc_repro.spec.schema import FBeta, Stage

pytestmark = pytest.mark.slow  # every test here trains a few steps

PATHS = {"cpu": lambda: optimiser(torch.device("cpu")), "gpu": lambda: optimiser(torch.device("cuda"), fused=False)}


def v1_one_cycle(n: int, lr_max: np.ndarray, moms=(0.95, 0.85), div_factor=25.0, pct_start=0.3) -> list[tuple]:
    """(per-group learning rates, momentum) of each of the ``n`` training iterations of fastai v1's
    ``fit_one_cycle``, stepped the way v1 steps them.

    ``OneCycleScheduler.on_train_begin``: ``a1 = int(n * pct_start)``, phases ``(a1, annealing_cos)`` and
    ``(n - a1, annealing_cos)``, ``final_div = div_factor * 1e4``; the optimizer starts at the first phase's
    start values. ``on_batch_end`` (after the optimizer step): the current phase's ``Scheduler.step()``
    (``n += 1``, value at ``n / n_iter`` with ``n_iter = max(1, n_iter)``), then the next phase once
    ``is_done`` (``n >= n_iter``). ``annealing_cos(start, end, pct) = end + (start - end) / 2 *
    (cos(pi * pct) + 1)``.
    """
    final_div = div_factor * 1e4
    a1 = int(n * pct_start)
    phases = [max(1, a1), max(1, n - a1)]
    lr_phases = [(lr_max / div_factor, lr_max), (lr_max, lr_max / final_div)]
    mom_phases = [(moms[0], moms[1]), (moms[1], moms[0])]

    def cos(start, end, pct):
        return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)

    phase, steps = 0, 0
    lr, mom = lr_phases[0][0], mom_phases[0][0]
    used = []
    for _ in range(n):
        used.append((lr, mom))
        assert phase < 2  # v1 stops training once both phases are done: never before n iterations
        steps += 1
        lr = cos(*lr_phases[phase], steps / phases[phase])
        mom = cos(*mom_phases[phase], steps / phases[phase])
        if steps >= phases[phase]:
            phase, steps = phase + 1, 0
    return used


def _batches(n_batches: int, bs: int, size: int, seed: int = 0) -> tuple[DeviceBatches, DeviceBatches]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n_batches * bs, size, size, 3), dtype=np.uint8)
    targets = np.arange(n_batches * bs) % 2
    train = DeviceBatches(images, targets, bs, shuffle=True, augment=None, seed=seed)
    valid = DeviceBatches(images[:bs], targets[:bs], bs, shuffle=False, augment=None, seed=seed)
    return train, valid


def _trainer(arch: str, path: str, n_batches: int, bs: int, size: int, wd: float = 0.01) -> Trainer:
    train, valid = _batches(n_batches, bs, size)
    trainer = Trainer.create(
        arch, False, 0.0, wd, FBeta(2.0, "normal"), train, valid, torch.device("cpu"), opt_func=PATHS[path]()
    )
    trainer.pretrained = True  # random weights, frozen like a pretrained body
    return trainer


class UsedHypers(Callback):
    """The learning rate of every parameter group and the momentum the optimizer holds as it steps."""

    def before_fit(self):
        self.used = []

    def before_step(self):
        hypers = self.learn.opt.hypers
        self.used.append(([h["lr"] for h in hypers], hypers[-1]["mom"]))


# (batches per epoch, epochs): n = 1-3 have a1 = int(0.3 n) = 0, n = 4, 5 and 6 have a1 = 1, n = 7 has a1 = 2;
# (3, 2) crosses an epoch. The GPU path's optimizer differs only in how fastai names its hyper-parameters.
CYCLES = {"cpu": [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (7, 1), (3, 2)], "gpu": [(3, 1), (5, 1), (7, 1)]}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("frozen, lr", [(True, 1e-3), (False, (1e-6, 1e-4))], ids=["frozen", "unfrozen-slice"])
def test_the_schedule_is_fastai_v1s_one_cycle(path, frozen, lr):
    """Every iteration's learning rates and momentum, as the optimizer held them when it stepped, against v1's
    stepping, for cycles of n = 1 to 7 iterations."""
    trainer = _trainer("squeezenet1_1", path, 1, bs=2, size=32)
    record = UsedHypers()
    trainer.learn.add_cb(record)
    for n_batches, epochs in CYCLES[path]:
        trainer.set_data(*_batches(n_batches, bs=2, size=32))
        trainer.fit(Stage("stage", epochs, lr, frozen))

        groups = len(trainer.learn.opt.hypers)
        assert groups == 4  # v1's squeezenet split, the body in three and the head (fastai/vision/learner.py)
        body = list(trainer.learn.model[0].parameters())  # squeezenet's body has no BatchNorm to keep training
        assert sum(p.requires_grad for p in body) == (0 if frozen else len(body))
        lr_max = np.array([lr] * groups) if frozen else 1e-6 * 100 ** (np.arange(4) / 3)  # v1's even_mults(lo, hi, 4)
        expected = v1_one_cycle(n_batches * epochs, lr_max)
        n = f"n = {n_batches} x {epochs}"
        assert len(record.used) == len(expected) == n_batches * epochs, n
        for i, ((lrs, mom), (lrs_v1, mom_v1)) in enumerate(zip(record.used, expected, strict=True)):
            assert lrs == pytest.approx(list(lrs_v1), rel=1e-12, abs=0), f"{n}: learning rates of iteration {i}"
            assert mom == pytest.approx(mom_v1, rel=1e-12, abs=0), f"{n}: momentum of iteration {i}"


class Steps(Callback):
    """Each training step's batch, hyper-parameters and the weights before and after it; the model as the fit
    starts, frozen or not."""

    def before_fit(self):
        self.start = copy.deepcopy(self.learn.model)
        self.taken = []

    def before_step(self):
        self.taken.append(
            {
                "x": self.learn.xb[0].clone(),
                "y": self.learn.yb[0].clone(),
                "hypers": [(h["lr"], h["mom"], h["wd"]) for h in self.learn.opt.hypers],
                "before": [p.detach().clone() for p in self.learn.model.parameters()],
            }
        )

    def after_step(self):
        self.taken[-1]["after"] = [p.detach().clone() for p in self.learn.model.parameters()]


def v1_update(model: torch.nn.Module, arch: str, taken: list[dict]) -> list[list[torch.Tensor]]:
    """fastai v1's training steps with a plain torch Adam, each from the weights the learner stepped from:
    the weights after every step.

    v1 makes its optimizer anew at every freeze and unfreeze, of the trainable parameters of each layer group
    (``split_no_wd_params``: ``trainable_params``, BatchNorm of a frozen body included with ``train_bn``);
    ``OptimWrapper.step`` with ``true_wd`` and ``bn_wd`` does ``p <- p * (1 - wd * lr)`` on both halves of
    every layer group, then ``torch.optim.Adam(betas=(0.9, 0.99))`` with torch's eps 1e-8 and no weight decay
    of its own steps. Each step starts from the learner's weights before it, so that both compute
    the very same gradient: a gradient that is rounding noise (a bias before the head's BatchNorm gets the sum
    of gradients that BatchNorm makes cancel over the batch) would otherwise tell the two apart, since Adam
    scales every gradient, noise or not, to a step of about lr.
    """
    groups = [[p for p in group if p.requires_grad] for group in splitter(arch)(model)]
    adam = torch.optim.Adam([{"params": g} for g in groups], lr=0.0, betas=(0.9, 0.99), eps=1e-8)
    model.train()
    out = []
    for step in taken:
        with torch.no_grad():
            for p, before in zip(model.parameters(), step["before"], strict=True):
                p.copy_(before)
        loss = F.cross_entropy(model(step["x"]), step["y"])
        loss.backward()
        with torch.no_grad():
            for group, (lr, mom, wd) in zip(adam.param_groups, step["hypers"], strict=True):
                group["lr"], group["betas"] = lr, (mom, 0.99)
                for p in group["params"]:
                    p.mul_(1 - wd * lr)
        adam.step()
        adam.zero_grad()
        out.append([p.detach().clone() for p in model.parameters()])
    return out


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "stages", [("frozen",), ("unfrozen",), ("unfrozen", "frozen")], ids=["frozen", "unfrozen", "unfrozen-then-frozen"]
)
def test_the_update_is_fastai_v1s_adam_with_decoupled_weight_decay(path, stages):
    """Each path's weights after every step equal a plain torch Adam loop with v1's decay done by hand, from
    the same weights and batches. ResNet18 has BatchNorm in its body (trained while the body is frozen) and
    biases in its head; after an unfrozen stage, the frozen body's weights, trained before, are left alone.

    The tolerance (1e-4 of the learning rate, plus 2e-6 of the weight) is far below one step's move (about lr
    per weight) and its decay (lr * wd of the weight), and above float32's rounding: fastai's Adam computes
    sqrt(v / (1 - beta2^t)) where torch divides after the square root.
    """
    arch = "resnet18"
    trainer = _trainer(arch, path, n_batches=2, bs=4, size=16, wd=0.1)
    record = Steps()
    trainer.learn.add_cb(record)
    for name in stages:
        lr = 3e-3 if name == "frozen" else (1e-4, 3e-3)
        trainer.fit(Stage(name, 1, lr, name == "frozen"))
        expected = v1_update(record.start, arch, record.taken)
        assert len(record.taken) == 2
        for i, (step, weights) in enumerate(zip(record.taken, expected, strict=True)):
            got, want = torch.cat([w.flatten() for w in step["after"]]), torch.cat([w.flatten() for w in weights])
            excess = float(((got - want).abs() / (2e-6 * want.abs() + 1e-4 * 3e-3)).max())
            assert excess <= 1, f"{name}, step {i}: a weight lies {excess:.3g} tolerances from v1's"


@pytest.mark.parametrize("weights", [None, [10661 / 7272, 10661 / 3389]], ids=["unweighted", "section-4.2.3"])
def test_the_loss_applies_the_class_weights_it_reports(weights):
    """What a run records as its loss's class weights is what the loss applies: its value on a batch is the
    weighted mean of the cells' cross-entropies (section 4.2.3), or their plain mean."""
    train, valid = _batches(1, 8, 32)
    trainer = Trainer.create(
        "alexnet", False, 0.0, 0.01, FBeta(2.0, "normal"), train, valid, torch.device("cpu"), class_weights=weights
    )
    assert trainer.loss_weights == (None if weights is None else pytest.approx(weights, rel=1e-6))
    logits = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1])
    per_cell = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    w = torch.ones(2) if weights is None else torch.tensor(weights)
    expected = (w[targets] * per_cell).sum() / w[targets].sum()
    assert float(trainer.learn.loss_func(logits, targets)) == pytest.approx(float(expected), rel=1e-6)
