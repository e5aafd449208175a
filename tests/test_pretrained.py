"""The pretrained path, on a CPU without a network: stand-in ImageNet weights in a temporary ``TORCH_HOME``.

A stand-in file holds the state dict of the torchvision architecture with values drawn from a fixed seed,
saved under the file name torchvision downloads the real weights to. Its BatchNorm weights and statistics are
drawn too, so that no tensor of it equals what a freshly built network holds (weights 1, means 0, ...).

What fastai v1 did, checked in its source (fastai v1, ``fastai/``):

- ``basic_train.py``: ``Learner.train_bn = True``; ``freeze_to`` leaves the BatchNorm layers of the frozen
  groups trainable (``if not self.train_bn or not isinstance(l, bn_types): requires_grad(l, False)``), and
  ``fit`` puts the whole model in training mode, so frozen BatchNorm layers also update their running
  statistics. ``lr_range(slice(lo, hi))`` is ``even_mults(lo, hi, len(self.layer_groups))`` (``torch_core.py``).
- ``vision/learner.py``: ``cnn_learner`` splits the model with ``model_meta[arch]['split']`` through
  ``split_model`` (``torch_core.py``): ResNet at ``m[0][6]`` and the head, SqueezeNet at ``m[0][0][5]``,
  ``m[0][0][8]`` and the head, DenseNet at ``m[0][0][7]``, VGG at ``m[0][0][22]``, AlexNet at ``m[0][0][6]``.
- ``callbacks/lr_finder.py``: ``LRFinder`` saves the model before and loads it back after.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from urllib.parse import urlparse

import numpy as np
import pytest
import torch
import torchvision
from fastai.callback.core import Callback, CancelFitException

from cnmc_repro.paths import specs_dir
from cnmc_repro.run.batches import DeviceBatches
from cnmc_repro.run.models import weights_file
from cnmc_repro.run.trainer import Trainer
from cnmc_repro.spec.schema import Augmentation, FBeta, Stage, min_size

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPORT_ARCHS = ("alexnet", "squeezenet1_0", "squeezenet1_1", "vgg19_bn", "resnet34", "resnet50", "densenet121")

# where fastai v1's model_meta split each family (vision/learner.py), as functions of the learner's model
V1_SPLITS = {
    "resnet": lambda m: (m[0][6], m[1]),
    "squeezenet": lambda m: (m[0][0][5], m[0][0][8], m[1]),
    "densenet": lambda m: (m[0][0][7], m[1]),
    "vgg": lambda m: (m[0][0][22], m[1]),
    "alexnet": lambda m: (m[0][0][6], m[1]),
}


def v1_layer_groups(model: torch.nn.Module, arch: str) -> list[list[torch.nn.Parameter]]:
    """The parameters of each layer group fastai v1 made: ``split_model`` flattens the model into its leaf
    layers and cuts that list at the first leaf of each split module."""

    def leaves(m):
        children = list(m.children())
        return [leaf for c in children for leaf in leaves(c)] if children else [m]

    flat = leaves(model)
    family = next(f for f in V1_SPLITS if arch.startswith(f))
    cuts = [next(i for i, leaf in enumerate(flat) if leaf is leaves(s)[0]) for s in V1_SPLITS[family](model)]
    bounds = [0, *cuts, len(flat)]
    return [[p for leaf in flat[a:b] for p in leaf.parameters(recurse=False)] for a, b in itertools.pairwise(bounds)]


def v1_even_mults(lo: float, hi: float, n: int) -> list[float]:
    """fastai v1 ``torch_core.even_mults``: n rates from lo to hi, evenly spaced on a log scale."""
    step = (hi / lo) ** (1 / (n - 1))
    return [lo * step**i for i in range(n)]


def standin_state(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """torchvision's state dict of ``arch`` with values from ``seed`` (convolutions at He scale)."""
    with torch.device("meta"):
        model = getattr(torchvision.models, arch)(weights=None)
    shapes = {k: (v.shape, v.dtype) for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, (shape, dtype) in shapes.items():
        name = key.rsplit(".", 1)[-1]
        if name == "num_batches_tracked":
            state[key] = torch.tensor(1000, dtype=dtype)
        elif name in ("running_var",) or (name == "weight" and len(shape) == 1):  # variances, BN scales
            state[key] = torch.rand(shape, generator=gen) + 0.5
        elif len(shape) == 1:  # biases, running means
            state[key] = torch.randn(shape, generator=gen) * 0.1
        else:
            state[key] = torch.randn(shape, generator=gen) * (2 / shape[1:].numel()) ** 0.5
    return state


@pytest.fixture(scope="session")
def weights_home(tmp_path_factory):
    """A TORCH_HOME shared by the tests, where stand-in files are made when first asked for."""
    return tmp_path_factory.mktemp("torch_home")


@pytest.fixture
def standin(weights_home, monkeypatch):
    """``standin(arch)``: makes (once) the stand-in weights file of ``arch`` and returns its tensors."""
    monkeypatch.setenv("TORCH_HOME", str(weights_home))

    def make(arch: str) -> dict[str, torch.Tensor]:
        path = weights_file(arch)
        assert path.parent == weights_home / "hub" / "checkpoints"  # torch.hub reads TORCH_HOME at each call
        if path.is_file():
            return torch.load(path, weights_only=True)
        state = standin_state(arch)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path)
        return state

    return make


def _batches(n: int, bs: int, train: bool, size: int) -> DeviceBatches:
    rng = np.random.default_rng(n)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return DeviceBatches(images, np.arange(n) % 2, bs, train, Augmentation() if train else None, 0, "cpu")


def _trainer(arch: str, tmp_path, pretrained: bool = True, n_train: int = 8, bs: int = 4, size: int = 0) -> Trainer:
    """A learner on random images, by default of the smallest size from 16 px the architecture runs on: a CPU
    step stays short."""
    size = size or max(16, min_size(arch))
    torch.manual_seed(0)
    return Trainer.create(
        arch,
        pretrained,
        0.5,
        0.01,
        FBeta(2.0, "normal"),
        _batches(n_train, bs, True, size),
        _batches(4, bs, False, size),
        torch.device("cpu"),
        path=str(tmp_path),  # where fastai's learning-rate finder keeps its copy of the weights
    )


def assert_v1_groups(trainer: Trainer, arch: str) -> None:
    """The optimizer's parameter groups are fastai v1's layer groups, parameter for parameter."""
    groups = v1_layer_groups(trainer.learn.model, arch)
    param_groups = trainer.learn.opt.param_groups
    assert [len(g["params"]) for g in param_groups] == [len(g) for g in groups]
    assert [[id(p) for p in g["params"]] for g in param_groups] == [[id(p) for p in g] for g in groups]


def _clone(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_body_holds_the_file(model: torch.nn.Module, file: dict[str, torch.Tensor]) -> None:
    """The body's tensors are the file's, in order and by name; the file's other tensors are the classifier
    that fastai cuts off."""
    body = list(model[0].state_dict().items())
    pairs = list(zip(list(file.items())[: len(body)], body, strict=True))
    for (fk, fv), (bk, bv) in pairs:
        assert fk.split(".", 1)[-1] == bk.split(".", 1)[-1], (fk, bk)  # the same layer, under fastai's index
        assert torch.equal(fv, bv), fk
    assert all(k.startswith(("fc.", "classifier.")) for k in list(file)[len(body) :])


def _layers(module: torch.nn.Module, kinds) -> list[torch.nn.Module]:
    return [m for m in module.modules() if isinstance(m, kinds)]


def _keys(model: torch.nn.Module, kinds, names) -> set[str]:
    """The state-dict keys of the tensors ``names`` of the layers of ``kinds``."""
    return {f"{n}.{t}" for n, m in model.named_modules() if isinstance(m, kinds) for t in names}


CONV_LINEAR = (torch.nn.Conv2d, torch.nn.Linear)
BATCHNORM = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)
BN_TENSORS = ("weight", "bias", "running_mean", "running_var")


class GroupRates(Callback):
    """Every training step's learning rate of each of the optimizer's parameter groups."""

    def __init__(self):
        self.rates: list[list[float]] = []

    def before_step(self):
        self.rates.append([g["lr"] for g in self.learn.opt.param_groups])


class BodyState(Callback):
    """At every training step: whether the body's convolutions and linear layers, its BatchNorm layers and the
    head require gradients; and whether the head's last weights moved from where the fit started."""

    def __init__(self):
        self.steps: list[tuple[bool, bool, bool]] = []
        self.head_moved = False

    def before_fit(self):
        self.head_start = self.learn.model[1][-1].weight.detach().clone()

    def after_step(self):
        body, head = self.learn.model[0], self.learn.model[1]
        conv = any(p.requires_grad for m in _layers(body, CONV_LINEAR) for p in m.parameters())
        bn = all(p.requires_grad for m in _layers(body, BATCHNORM) for p in m.parameters())
        self.steps.append((conv, bn, all(p.requires_grad for p in head.parameters())))
        self.head_moved = not torch.equal(self.head_start, head[-1].weight)


@pytest.mark.parametrize("arch", REPORT_ARCHS)
@pytest.mark.filterwarnings("ignore::UserWarning")  # torchvision: pretrained=True is deprecated
def test_the_weights_are_those_fastai_v1_loaded(arch, monkeypatch):
    """fastai v1's ``create_body`` called ``arch(pretrained=True)``; torchvision still maps that call to the
    weights it published then. The suite's file is the one that call reads (for ResNet50 not torchvision's
    DEFAULT, its 2021 IMAGENET1K_V2 weights)."""

    class Asked(Exception):
        pass

    def asked(url, *args, **kwargs):
        raise Asked(url)

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", asked)
    with torch.device("meta"), pytest.raises(Asked) as call:
        getattr(torchvision.models, arch)(pretrained=True)
    assert weights_file(arch).name == os.path.basename(urlparse(str(call.value)).path)


def test_reproduce_weights_lists_the_cache(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    published = round(torchvision.models.SqueezeNet1_0_Weights.IMAGENET1K_V1.meta["_file_size"] * 2**20)
    (folder / weights_file("squeezenet1_0").name).write_bytes(b"\0" * published)  # the listing reads sizes only
    (folder / weights_file("alexnet").name).write_bytes(b"\0" * 1000)  # a partial copy
    code, out, _ = cli("weights")
    assert code == 0 and f"torchvision's weights cache: {folder}" in out
    rows = {line.split()[0]: line for line in out.splitlines()[3:] if line and not line.startswith(" ")}
    assert rows["squeezenet1_0"].split()[1:4] == ["cached", "4.8", "MiB"] and "squeezenet1_0-b66bff10.pth" in out
    assert "size differs" in rows["alexnet"] and "missing" in rows["vgg19_bn"] and "vgg19" in rows["vgg19_bn"]
    assert set(rows) >= {"alexnet", "squeezenet1_0", "vgg19_bn", "resnet34", "resnet50", "densenet121"}
    assert "1 of 6 cached" in out and weights_file("alexnet").name in out.split("cached\n", 1)[-1]
    code, out, _ = cli("weights", "--all")
    assert code == 0 and "squeezenet1_1" in out and "of 15 cached" in out


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_weights_file_is_one_sentence_naming_it(damage, standin, tmp_path):
    from cnmc_repro.errors import UserError
    from cnmc_repro.run.models import create_model

    standin("squeezenet1_1")
    path = weights_file("squeezenet1_1")
    good = path.read_bytes()
    try:
        path.write_bytes(good[: len(good) // 2] if damage == "truncated" else b"not a weights file")
        with pytest.raises(UserError) as err:
            create_model("squeezenet1_1", True, 0.5)
    finally:
        path.write_bytes(good)
    assert str(path) in str(err.value) and "--no-pretrained" in str(err.value) and "\n" not in str(err.value)


def test_the_body_holds_the_weights_file_after_the_learner_is_built(standin, tmp_path):
    file = standin("resnet34")
    trainer = _trainer("resnet34", tmp_path)
    assert_body_holds_the_file(trainer.learn.model, file)


def test_a_frozen_stage_trains_the_head_and_the_body_batchnorm_only(standin, tmp_path):
    """fastai v1 (basic_train.py, ``Learner.train_bn=True`` and ``freeze_to``): a frozen body keeps its
    convolutions and trains its BatchNorm layers, whose running statistics move with training mode."""
    standin("resnet34")
    trainer = _trainer("resnet34", tmp_path)
    model = trainer.learn.model
    before = _clone(model)
    spy = BodyState()
    trainer.learn.add_cb(spy)
    trainer.fit(Stage("frozen", 1, 1e-3, frozen=True))
    assert spy.steps and all(s == (False, True, True) for s in spy.steps)
    after = model.state_dict()
    body = {f"0.{k}" for k in model[0].state_dict()}
    conv_linear = _keys(model, CONV_LINEAR, ("weight", "bias"))
    bn = _keys(model, BATCHNORM, BN_TENSORS)
    frozen = sorted(body & conv_linear)
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    body_bn = sorted(body & bn)
    assert body_bn and all(not torch.equal(before[k], after[k]) for k in body_bn)  # weights, biases, statistics
    head = [k for k in after if k.startswith("1.") and after[k].is_floating_point()]
    assert head and all(not torch.equal(before[k], after[k]) for k in head)


@pytest.mark.parametrize("arch", ["resnet34", "squeezenet1_1"])
def test_an_unfrozen_stage_spreads_the_rates_as_fastai_v1_slice_did(arch, standin, tmp_path):
    """``lr: [lo, hi]``: at the peak of the one-cycle each layer group runs at fastai v1's ``lr_range`` rate,
    ``even_mults(lo, hi, n)`` over v1's layer groups (three for ResNet, four for SqueezeNet)."""
    standin(arch)
    trainer = _trainer(arch, tmp_path, n_train=40, bs=2)  # 20 steps: the peak falls on a step for pct 0.25 or 0.3
    model = trainer.learn.model
    groups = v1_layer_groups(model, arch)
    assert len(groups) == {"resnet34": 3, "squeezenet1_1": 4}[arch]
    spy = GroupRates()
    trainer.learn.add_cb(spy)
    lo, hi = 1e-6, 1e-4
    trainer.fit(Stage("unfrozen", 1, (lo, hi), frozen=False))
    assert_v1_groups(trainer, arch)
    assert len(spy.rates) == 20
    peak = max(spy.rates, key=lambda r: r[-1])
    assert peak == pytest.approx(v1_even_mults(lo, hi, len(groups)), rel=1e-9)
    assert all(p.requires_grad for p in model.parameters())


class StopAfter(Callback):
    """Ends a fit after ``n`` training steps, as fastai's finder ends when the loss diverges."""

    def __init__(self, n: int):
        self.n = n

    def after_batch(self):
        if self.training and self.train_iter >= self.n:
            raise CancelFitException()


def test_the_lr_finder_runs_with_the_body_frozen_and_puts_the_weights_back(standin, tmp_path):
    """Stopped after at most three rates (before fastai's suggestion has a point to read, so there is none)."""
    standin("resnet34")
    trainer = _trainer("resnet34", tmp_path)
    before = _clone(trainer.learn.model)
    spy = BodyState()
    trainer.learn.add_cb(spy)
    trainer.learn.add_cb(StopAfter(3))
    curve = trainer.lr_find(num_it=20)
    assert curve["suggestion"] is None
    # it trained the head for up to three steps (a step the finder stops after, as the loss diverged, is not in
    # its curve)
    assert 1 < len(spy.steps) <= 3 and 0 < len(curve["lrs"]) <= len(spy.steps) and spy.head_moved
    assert all(s == (False, True, True) for s in spy.steps)  # with the body frozen, its BatchNorm trained
    after = trainer.learn.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # every weight and BatchNorm statistic back


def test_without_pretrained_weights_neither_a_stage_nor_the_finder_freezes_the_body(tmp_path):
    """fastai v1's ``cnn_learner`` froze the body only when pretrained (``if pretrained: learn.freeze()``)."""
    trainer = _trainer("resnet34", tmp_path, pretrained=False)
    spy = BodyState()
    trainer.learn.add_cb(spy)
    with trainer.learn.added_cbs(StopAfter(2)):
        trainer.lr_find(num_it=20)
    trainer.fit(Stage("frozen", 1, 1e-3, frozen=True))
    assert spy.steps and all(s == (True, True, True) for s in spy.steps)


@pytest.mark.slow
@pytest.mark.parametrize("arch", REPORT_ARCHS)
def test_every_architecture_of_the_report_loads_its_weights_and_trains_frozen_then_unfrozen(arch, standin, tmp_path):
    file = standin(arch)
    trainer = _trainer(arch, tmp_path, n_train=4, bs=2, size=64)  # the smoke profile's size
    model = trainer.learn.model
    assert_body_holds_the_file(model, file)
    body_convs = [m.weight for m in _layers(model[0], CONV_LINEAR)]
    start = [w.detach().clone() for w in body_convs]
    trainer.fit(Stage("frozen", 1, 1e-3, frozen=True))
    assert_v1_groups(trainer, arch)
    assert all(torch.equal(a, w) for a, w in zip(start, body_convs, strict=True))
    trainer.fit(Stage("unfrozen", 1, (1e-6, 1e-4), frozen=False))
    assert all(not torch.equal(a, w) for a, w in zip(start, body_convs, strict=True))
    assert np.isfinite(trainer.predict(trainer.learn.dls.valid)).all()


@pytest.mark.slow
def test_reproduce_run_uses_the_cached_weights_and_records_it(standin, tiny_data_ro, tmp_path, monkeypatch, cli):
    """Through the command line: a smoke run finds the cached weights, records ``pretrained``, and its frozen
    stage leaves the body's convolutions as the file holds them while its BatchNorm statistics move."""
    file = standin("densenet121")
    specs = tmp_path / "specs"
    specs.mkdir()
    shutil.copy(specs_dir() / "dataset.yaml", specs)
    text = (specs_dir() / "densenet121.yaml").read_text()
    unfrozen = "    - {name: unfrozen, epochs: 3, lr: [1.0e-6, 1.0e-4], frozen: false}\n"
    assert unfrozen in text
    (specs / "densenet121.yaml").write_text(text.replace(unfrozen, ""))  # the frozen stage alone
    monkeypatch.setenv("CNMC_REPRO_SPECS", str(specs))
    args = ("--data", tiny_data_ro, "--profile", "smoke", "--device", "cpu", "--results", tmp_path / "r")
    code, out, err = cli("run", "densenet121", *args)
    assert code == 0, err
    run_dir = next((tmp_path / "r").glob("densenet121-smoke-*"))
    assert json.loads((run_dir / "result.json").read_text())["pretrained"] is True
    assert json.loads((run_dir / "spec.json").read_text())["spec"]["recipe"]["pretrained"] is True
    checkpoint = torch.load(run_dir / "checkpoint.pth", weights_only=True)
    body = {k.removeprefix("0."): v for k, v in checkpoint.items() if k.startswith("0.")}
    by_name = dict(zip((k.split(".", 1)[1] for k in file), file.values(), strict=True))
    convs = [k for k in body if ".conv" in k]
    stats = [k for k in body if k.endswith(("running_mean", "running_var"))]
    assert convs and all(torch.equal(body[k], by_name[k.split(".", 1)[1]]) for k in convs)
    assert stats and all(not torch.equal(body[k], by_name[k.split(".", 1)[1]]) for k in stats)
