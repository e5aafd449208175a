"""fastai v1's training recipe on fastai 2.8: the update and the one-cycle schedule the report trained with.

The report trained with fastai v1 (2019); fastai 2.8's defaults differ from v1's in ways that move every
figure (Adam's eps, weight decay on BatchNorm and biases, the warm-up's length, the final learning rate).
The suite keeps fastai 2.8 as the engine and gives it v1's choices, the same on a CPU and a GPU:

- the update (:func:`optimiser`): Adam with betas (0.9, 0.99) and eps 1e-8, v1's
  ``AdamW = partial(optim.Adam, betas=(0.9, 0.99))`` (``fastai/torch_core.py``); decoupled weight decay
  ``p <- p * (1 - lr*wd)`` on every parameter that has a gradient, BatchNorm and biases included, before
  the Adam step: v1's ``Learner(true_wd=True, bn_wd=True)`` (``fastai/basic_train.py``), applied to both
  halves of every layer group in ``OptimWrapper.step`` (``fastai/callback.py``);
- the schedule (:func:`fit_one_cycle_v1`): v1's ``fit_one_cycle`` (``fastai/train.py``,
  ``fastai/callbacks/one_cycle.py``, ``Scheduler`` and ``annealing_cos`` in ``fastai/callback.py``):
  pct_start 0.3, div 25, final_div 25e4, momentum 0.95 -> 0.85 -> 0.95, in v1's integer phases.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from fastai.callback.schedule import ParamScheduler
from fastai.learner import Learner
from fastai.optimizer import Adam, OptimWrapper

# fastai v1's update: ``AdamW = partial(optim.Adam, betas=(0.9, 0.99))`` with torch's eps (fastai/torch_core.py)
ADAM_BETAS = (0.9, 0.99)
ADAM_EPS = 1e-8
# fastai v1's fit_one_cycle defaults (fastai/train.py, fastai/callbacks/one_cycle.py): final_div = div * 1e4
PCT_START, DIV, FINAL_DIV, MOMS = 0.3, 25.0, 25.0 * 1e4, (0.95, 0.85)


def optimiser(device: torch.device, fused: bool = True):
    """fastai v1's update on either device: Adam, betas (0.9, 0.99), eps 1e-8, and ``p <- p * (1 - lr*wd)``
    on every parameter that has a gradient, BatchNorm and biases included, before the Adam step.

    On a CPU fastai's own Adam (``decouple_wd``; the learner's ``wd_bn_bias=True`` keeps the decay on
    BatchNorm and biases); on a GPU the same update as torch's AdamW kernel, ``fused`` (the tests run it
    unfused on a CPU). fastai's schedule sets lr and the first moment (``mom`` is betas[0]) either way.
    Frozen parameters hold no gradient (``Trainer.fit``), so that neither path decays them: v1 builds its
    optimizer of the trainable parameters alone at every freeze and unfreeze (``split_no_wd_params``).
    """
    if device.type == "cuda":
        return partial(OptimWrapper, opt=partial(torch.optim.AdamW, fused=fused, betas=ADAM_BETAS, eps=ADAM_EPS))
    return partial(Adam, mom=ADAM_BETAS[0], sqr_mom=ADAM_BETAS[1], eps=ADAM_EPS, decouple_wd=True)


def annealing_cos(start, end, pct: float):
    """fastai v1's cosine from ``start`` (pct 0) to ``end`` (pct 1) (``fastai/callback.py``)."""
    return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)


def one_cycle_v1(n: int, start, middle, end, pct_start: float = PCT_START) -> Callable[[int], object]:
    """The value fastai v1's one-cycle sets for training iteration ``i`` (0-based) of a cycle of ``n``.

    v1 (``OneCycleScheduler``, ``Scheduler``) splits the cycle into ``a1 = int(n * pct_start)`` and ``n - a1``
    iterations, each phase a cosine over ``max(1, length)`` steps; it sets the start value before the first
    batch and steps to the next value at the end of every batch, moving to the second phase once the first
    is done. So iteration 0 uses ``start``, iteration ``i <= n1`` the first cosine at ``i / n1``, and later
    ones the second at ``(i - n1) / n2``. With ``a1 = 0`` (n <= 3) the first phase still takes one step:
    iteration 1 is at ``middle`` and the second phase starts at iteration 2, where fastai 2.8's
    ``combined_cos`` would start at ``middle`` at once.
    """
    a1 = int(n * pct_start)
    n1, n2 = max(1, a1), max(1, n - a1)

    def at(i: int):
        if i == 0:
            return start
        if i <= n1:
            return annealing_cos(start, middle, i / n1)
        return annealing_cos(middle, end, (i - n1) / n2)

    return at


class OneCycleV1(ParamScheduler):
    """fastai's ``ParamScheduler`` with schedules of the training iteration (``train_iter``) instead of the
    fraction of training done, so that v1's integer phases hold exactly."""

    def before_batch(self):
        self._update_val(self.train_iter)


def fit_one_cycle_v1(learn: Learner, n_epoch: int, lr_max: float | slice) -> None:
    """fastai v1's ``fit_one_cycle(n_epoch, lr_max)`` on a fastai 2.8 learner: the learning rate from
    lr_max/25 up to lr_max and down to lr_max/(25*1e4), the momentum 0.95 -> 0.85 -> 0.95 on the same phases
    (:func:`one_cycle_v1`), each layer group with its own lr_max when ``lr_max`` is a slice (v1 and fastai 2.8
    spread ``slice(lo, hi)`` alike: ``even_mults``, or hi/10 below the last group for ``slice(hi)``)."""
    if learn.opt is None:
        learn.create_opt()
    learn.opt.set_hyper("lr", lr_max)
    lr = np.array([h["lr"] for h in learn.opt.hypers])
    n = len(learn.dls.train) * n_epoch
    scheds = {
        "lr": one_cycle_v1(n, lr / DIV, lr, lr / FINAL_DIV),
        "mom": one_cycle_v1(n, MOMS[0], MOMS[1], MOMS[0]),
    }
    learn.fit(n_epoch, cbs=OneCycleV1(scheds))
