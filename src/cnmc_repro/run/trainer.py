"""Training with a fastai ``Learner`` fed by device-resident batches, on fastai v1's recipe.

One ``Trainer`` holds the learner of a run: it fits stages (fastai v1's ``fit_one_cycle`` with the body
frozen or not), runs the learning-rate finder, records the report's per-epoch columns (train_loss,
valid_loss, accuracy, error_rate, f_beta, time) and predicts class probabilities.

The update and the schedule are fastai v1's on either device (``run.fastai_v1``). Training runs in float32,
or in bf16 autocast when asked (the default on a GPU, for speed).

Per-epoch metrics accumulate a confusion matrix on the device, and the losses fastai records are kept
on the device too: they are read once per epoch, so the loops do not wait for the host after every batch.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from fastai.callback.core import Callback
from fastai.callback.progress import ProgressCallback
from fastai.learner import AvgLoss, AvgSmoothLoss, Learner, Metric
from fastai.losses import CrossEntropyLossFlat
from fastai.torch_core import find_bs
from fastai.vision.all import DataLoaders

from cnmc_repro.analysis import metrics as M
from cnmc_repro.run.batches import DeviceBatches
from cnmc_repro.run.fastai_v1 import fit_one_cycle_v1, optimiser
from cnmc_repro.run.models import create_model, splitter
from cnmc_repro.run.precision import PRECISIONS, default_precision
from cnmc_repro.spec.schema import FBeta, Stage


class ConfusionMetric(Metric):
    """A per-epoch figure computed from a confusion matrix accumulated on the device."""

    def __init__(self, name: str, fn: Callable[[list[list[int]]], float]):
        self._name, self.fn, self.cm = name, fn, None

    def reset(self):
        self.cm = None

    def accumulate(self, learn):
        cell = learn.y.view(-1) * 2 + learn.pred.argmax(dim=-1).view(-1)  # 0..3: (target, prediction)
        # counted by comparison, not torch.bincount, which reads the largest value back to the host
        counts = (cell.unsqueeze(1) == torch.arange(4, device=cell.device)).sum(dim=0)
        self.cm = counts if self.cm is None else self.cm + counts

    @property
    def value(self):
        if self.cm is None:
            return None
        return self.fn(self.cm.view(2, 2).tolist())

    @property
    def name(self):
        return self._name


def epoch_metrics(f_beta: FBeta) -> list[ConfusionMetric]:
    positive = M.CLASS_INDEX[f_beta.positive]
    return [
        ConfusionMetric("accuracy", M.accuracy_from_confusion),
        ConfusionMetric("error_rate", lambda cm: 1 - M.accuracy_from_confusion(cm)),
        ConfusionMetric("f_beta", lambda cm: M.f_beta_from_confusion(cm, f_beta.beta, positive)),
    ]


class DeviceAvgLoss(AvgLoss):
    """fastai's validation-loss mean, accumulated on the device (fastai copies every batch's loss to the host)."""

    def accumulate(self, learn):
        bs = find_bs(learn.yb)
        self.total += learn.loss.detach().mean().float() * bs
        self.count += bs


class DeviceAvgSmoothLoss(AvgSmoothLoss):
    """fastai's smoothed training loss (the printed train_loss), kept on the device between batches."""

    def accumulate(self, learn):
        self.count += 1
        loss = learn.loss.detach().mean().float()
        self.val = torch.lerp(loss, self.val.to(loss.device), self.beta)


def _set_meters(recorder, loss: AvgLoss, smooth_loss: AvgSmoothLoss) -> None:
    # plain attribute writes: fastai's Callback.__setattr__ would warn that the learner has these names too
    object.__setattr__(recorder, "loss", loss)
    object.__setattr__(recorder, "smooth_loss", smooth_loss)


class EpochLog(Callback):
    """Hands every finished epoch's figures to ``on_epoch`` (after fastai's Recorder has logged them)."""

    order = 60  # after Recorder (50)

    def __init__(self, on_epoch: Callable[[dict], None]):
        self.on_epoch = on_epoch

    def before_epoch(self):
        self.t0 = time.perf_counter()

    def after_epoch(self):
        names = self.recorder.metric_names  # epoch, train_loss, valid_loss, metrics..., time
        values = self.recorder.log
        row = {n: v for n, v in zip(names, values, strict=False) if n not in ("epoch", "time")}
        row = {k: (float(v) if v is not None else None) for k, v in row.items()}
        row["epoch"] = int(self.epoch)
        row["seconds"] = time.perf_counter() - self.t0
        self.on_epoch(row)


class CudaGraphs(Callback):
    """Replays the model's training forward and backward as CUDA graphs (``make_graphed_callables``).

    At the start of every fit (the body's frozen state and the image size are fixed within one) the model is
    captured on a batch of the training shape, in bf16 autocast where the learner trains in bf16; each
    training batch then costs two graph launches instead of a launch per layer. The loss, the optimizer step
    and validation run eagerly (the graphs serve the training mode only). BatchNorm statistics moved by the
    capture's warm-up passes are put back. The training loader drops its last partial batch, so every
    training batch has the captured shape.
    """

    def __init__(self, bf16: bool):
        self.bf16 = bf16

    def before_fit(self):
        model = self.learn.model
        x, _ = self.learn.dls.train.one_batch()
        saved = [b.detach().clone() for b in model.buffers()]
        training = model.training
        model.train()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16, cache_enabled=False):
            torch.cuda.make_graphed_callables(model, (x,))
        with torch.no_grad():
            for buffer, value in zip(model.buffers(), saved, strict=True):
                buffer.copy_(value)
        model.train(training)

    def after_fit(self):
        self.learn.model.__dict__.pop("forward", None)  # the eager forward again, for predictions and a new fit


class Interrupt(Callback):
    """Raises KeyboardInterrupt after a given number of epochs: the tests' stand-in for Ctrl-C."""

    order = 70

    def __init__(self, after_epochs: int):
        self.left = after_epochs

    def after_epoch(self):
        self.left -= 1
        if self.left <= 0:
            raise KeyboardInterrupt


@dataclass
class Trainer:
    learn: Learner
    device: torch.device
    pretrained: bool
    precision: str = "fp32"  # fp32, or bf16: autocast in training and prediction (PRECISIONS)

    @classmethod
    def create(
        cls,
        arch: str,
        pretrained: bool,
        dropout: float,
        wd: float,
        f_beta: FBeta,
        train: DeviceBatches,
        valid: DeviceBatches,
        device: torch.device,
        class_weights: list[float] | None = None,
        path: str = ".",
        callbacks: list[Callback] | None = None,
        compile: bool = False,
        cuda_graphs: bool = False,
        precision: str | None = None,
        opt_func: Callable | None = None,
    ) -> Trainer:
        """``precision`` is fp32 or bf16 (autocast; the default: :func:`default_precision`); ``opt_func`` replaces
        the device's :func:`optimiser` (the tests run the GPU's update on a CPU). ``compile=True`` runs the model
        through ``torch.compile``; ``cuda_graphs=True`` (CUDA only) replays its training passes as CUDA graphs.
        Both are weighed in ``benchmarks/bench_train.py`` and are off in runs.

        BatchNorm and bias parameters are weight-decayed like the others (``wd_bn_bias``: fastai v1's
        ``bn_wd=True``) and BatchNorm layers of a frozen body still train (``train_bn``, as in v1)."""
        precision = precision or default_precision(device.type)
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r} is not one of {PRECISIONS}")
        model = create_model(arch, pretrained, dropout).to(device)
        weight = torch.tensor(class_weights, dtype=torch.float32, device=device) if class_weights else None
        learn = Learner(
            DataLoaders(train, valid, device=device),
            model,
            loss_func=CrossEntropyLossFlat(weight=weight),
            opt_func=opt_func or optimiser(device),
            splitter=lambda m: splitter(arch)(getattr(m, "_orig_mod", m)),
            metrics=epoch_metrics(f_beta),
            wd=wd,
            wd_bn_bias=True,
            train_bn=True,
            path=path,
            cbs=callbacks or [],
        )
        learn.remove_cb(ProgressCallback)
        _set_meters(learn.recorder, DeviceAvgLoss(), DeviceAvgSmoothLoss())
        learn.logger = _quiet  # epochs are reported through EpochLog, not printed by fastai
        if device.type == "cuda":
            learn.model.to(memory_format=torch.channels_last)
        if precision == "bf16":
            learn.to_bf16()
        if compile:
            learn.model = torch.compile(learn.model)
        if cuda_graphs:
            if device.type != "cuda":
                raise ValueError("CUDA graphs need a CUDA device")
            learn.add_cb(CudaGraphs(precision == "bf16"))
        return cls(learn, device, pretrained, precision)

    @property
    def loss_weights(self) -> list[float] | None:
        """The class weights the loss applies (section 4.2.3), read from the loss itself; None when unweighted."""
        weight = self.learn.loss_func.func.weight
        return None if weight is None else [round(float(w), 7) for w in weight]

    def set_data(self, train: DeviceBatches, valid: DeviceBatches) -> None:
        """New batches for the same learner (a new fold, a new image size)."""
        self.learn.dls = DataLoaders(train, valid, device=self.device)

    def freeze_body(self, frozen: bool) -> None:
        """fastai v1's ``freeze`` (every layer group but the head) or ``unfreeze``.

        Frozen, the body's BatchNorm layers still train, as in v1 (``Learner.train_bn=True`` in fastai v1's
        ``basic_train.py``; fastai 2.8's ``Learner(train_bn=True)`` does the same), and in training mode they go
        on updating their running statistics. A body without pretrained weights is never frozen: random
        features are nothing to keep, and v1's ``cnn_learner`` froze only pretrained bodies.
        """
        if frozen and self.pretrained:
            self.learn.freeze()
        else:
            self.learn.unfreeze()
        for p in self.learn.model.parameters():
            if not p.requires_grad:  # fastai's Adam would step (and decay) a frozen weight's stale zero gradient
                p.grad = None

    def fit(self, stage: Stage, lr: float | tuple[float, float] | None = None) -> None:
        """One fastai v1 ``fit_one_cycle`` (:func:`fit_one_cycle_v1`) with the body frozen or not (v1's
        ``freeze``/``unfreeze``); ``lr`` as a pair is v1's ``slice(lo, hi)``."""
        self.freeze_body(stage.frozen)
        lr = stage.lr if lr is None else lr
        max_lr = slice(*lr) if isinstance(lr, tuple | list) else lr
        fit_one_cycle_v1(self.learn, stage.epochs, max_lr)

    def lr_find(self, num_it: int) -> dict:
        """fastai's learning-rate finder: the loss per rate and fastai's suggestion (valley; None where the finder
        stopped too early for one).

        It runs on the learner as ``cnn_learner`` left it, the body frozen when pretrained, as the report ran it
        before the first stage; fastai's ``LRFinder`` puts the weights (and BatchNorm statistics) back after.
        """
        self.freeze_body(True)
        rec = self.learn.recorder
        fast = rec.loss, rec.smooth_loss
        _set_meters(rec, AvgLoss(), AvgSmoothLoss())  # fastai's finder reads host-side losses
        try:
            with self.learn.removed_cbs([c for c in self.learn.cbs if isinstance(c, EpochLog | Interrupt)]):
                suggestion = float(self.learn.lr_find(num_it=num_it, show_plot=False).valley)
        except IndexError:
            # fastai's valley reads the losses past the first tenth and before the last five: none are there when
            # the loss diverged (and the finder stopped) within the first few rates
            points = rec.losses[num_it // 10 : -5]
            if points and not math.isnan(float(points[0])):
                raise
            suggestion = None
        finally:
            _set_meters(rec, *fast)
        return {"lrs": [float(x) for x in rec.lrs], "losses": [float(x) for x in rec.losses], "suggestion": suggestion}

    @torch.no_grad()
    def predict(self, batches: DeviceBatches, pad: bool | None = None) -> np.ndarray:
        """Softmax class probabilities (N x 2, columns ALL, normal) in the cells' order.

        With ``pad`` (the default on a GPU) a last partial batch is padded to the batch size with copies of its
        last image and the predictions trimmed: every batch has one shape, so cuDNN's autotuner meets one
        evaluation shape per image size rather than one per split and fold. In eval mode each image's
        prediction does not depend on the others of its batch.
        """
        pad = self.device.type == "cuda" if pad is None else pad
        model = self.learn.model
        model.eval()
        out = []
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            for x, _ in batches.new(shuffle=False, drop_last=False):
                n = len(x)
                if pad and n < batches.bs:
                    x = torch.cat([x, x[-1:].expand(batches.bs - n, *x.shape[1:])])
                out.append(torch.softmax(model(x)[:n].float(), dim=-1))
        return torch.cat(out).cpu().numpy()

    def state_dict(self) -> dict:
        model = getattr(self.learn.model, "_orig_mod", self.learn.model)  # the same keys, compiled or not
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}

    def snapshot(self) -> dict:
        """What training needs to go on exactly from here in a new process: the weights (with BatchNorm's
        statistics) and the random generators. The optimizer's state is not needed: every ``fit`` starts it
        afresh (fastai's freeze and unfreeze clear it)."""
        return {"model": self.state_dict(), "rng": rng_state()}

    def restore(self, snapshot: dict) -> None:
        """Back to a ``snapshot`` of a learner built the same way."""
        getattr(self.learn.model, "_orig_mod", self.learn.model).load_state_dict(snapshot["model"])
        set_rng_state(snapshot["rng"])


def rng_state() -> dict:
    """The state of every random generator training may draw from, in types ``torch.load`` reads safely."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _quiet(*args, **kwargs) -> None:
    return None
