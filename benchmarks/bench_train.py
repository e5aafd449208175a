"""Training speed per architecture of the specs: the suite's fast path against a plain fastai set-up.

Both train the same fastai model (``create_vision_model``, body unfrozen) for one epoch over the same
``BENCH_TRAIN_IMAGES`` random cells, in the same run, at the size each spec uses (``BENCH_ARCHS``, entries
``arch@px``: on a GPU ResNet34 at 300 px as in the k-fold tables, the others at 224 px):

- plain: ``vision_learner`` on fastai ``DataLoaders`` with ``IntToFloatTensor``, ``aug_transforms`` and
  ``Normalize`` as batch transforms, fastai's Adam, float32, contiguous memory;
- suite: ``Trainer`` on device-resident uint8 batches augmented on the device; on a GPU with bf16
  autocast and channels_last.

``extra_info`` holds images/s of each, their ratio and the suite's peak GPU memory. On a CPU the sizes are
small (64 px, 128 images).

The other benchmarks look into the suite's step:

- ``test_fastai_overhead``: the same step in a bare PyTorch loop, to measure what fastai's loop costs;
- ``test_step_profile``: an epoch under torch.profiler, to measure how busy the GPU is and what the host
  dispatches per batch;
- ``test_cuda_graph_ceiling`` (GPU only): the bare step captured as one CUDA graph and replayed, to measure
  how much of a step is spent launching kernels;
- ``test_suite_cuda_graphs`` (GPU only): the suite with ``Trainer.create(cuda_graphs=True)``;
- ``test_compile`` (GPU only): ``torch.compile`` weighed by the suite's first and second epochs of ResNet50
  compiled against the same epochs eager, so that the compile time and the time it saves per epoch are
  both measured;
- ``test_evaluation_padding``: predicting validation and test sets of the specs' sizes with the last partial
  batch as it is, and padded to the batch size (``Trainer.predict(pad=...)``): with cuDNN's autotuner on,
  every new last-batch shape is tuned once.
"""

from __future__ import annotations

import os
import time
from functools import partial

import numpy as np
import pytest
import torch

from cnmc_repro.run.batches import DeviceBatches
from cnmc_repro.run.fastai_v1 import ADAM_BETAS, ADAM_EPS
from cnmc_repro.run.models import create_model
from cnmc_repro.run.trainer import Trainer
from cnmc_repro.spec.schema import Augmentation, FBeta, Stage

GPU = torch.cuda.is_available()
DEVICE = torch.device("cuda" if GPU else "cpu")
N = int(os.environ.get("BENCH_TRAIN_IMAGES", "4096" if GPU else "128"))
BS = int(os.environ.get("BENCH_BS", "64"))
_DEFAULT_ARCHS = (
    "alexnet@224,squeezenet1_0@224,vgg19_bn@224,resnet34@300,resnet50@224,densenet121@224"
    if GPU
    else "alexnet@64,squeezenet1_0@64,vgg19_bn@64,resnet34@64,resnet50@64,densenet121@64"
)
ARCHS = [tuple(a.split("@")) for a in os.environ.get("BENCH_ARCHS", _DEFAULT_ARCHS).split(",")]


def _data(size: int, n: int = N):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return images, rng.integers(0, 2, n)


def _sync():
    if GPU:
        torch.cuda.synchronize()


def plain_fastai_epoch(arch: str, images: np.ndarray, targets: np.ndarray) -> float:
    """Seconds for one epoch of a plain fastai vision_learner set-up."""
    import torchvision
    from fastai.vision.all import (
        CrossEntropyLossFlat,
        DataLoaders,
        IntToFloatTensor,
        Normalize,
        TensorCategory,
        TensorImage,
        aug_transforms,
        imagenet_stats,
        vision_learner,
    )

    items = [
        (TensorImage(torch.from_numpy(im).permute(2, 0, 1)), TensorCategory(int(t)))
        for im, t in zip(images, targets, strict=True)
    ]
    dls = DataLoaders.from_dsets(
        items,
        items[:BS],
        bs=BS,
        device=DEVICE,
        after_batch=[
            IntToFloatTensor(),
            *aug_transforms(do_flip=True, flip_vert=True, max_rotate=10.0),
            Normalize.from_stats(*imagenet_stats),
        ],
    )
    learn = vision_learner(
        dls, getattr(torchvision.models, arch), pretrained=False, n_out=2, loss_func=CrossEntropyLossFlat()
    )
    learn.unfreeze()
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1, 1e-3)  # warm-up epoch: cuDNN, allocator
        _sync()
        t0 = time.perf_counter()
        learn.fit_one_cycle(1, 1e-3)
        _sync()
    return time.perf_counter() - t0


STAGE = Stage("bench", 1, 1e-3, frozen=False)


def suite_trainer(arch: str, images: np.ndarray, targets: np.ndarray, **fast) -> Trainer:
    """The suite's Trainer on device-resident batches of ``images`` (validation: the first batch of them)."""
    train = DeviceBatches(images, targets, BS, True, Augmentation(), 0, DEVICE)
    valid = DeviceBatches(images[:BS], targets[:BS], BS, False, None, 0, DEVICE)
    return Trainer.create(arch, False, 0.5, 0.01, FBeta(1.0, "normal"), train, valid, DEVICE, **fast)


def timed_epoch(trainer: Trainer) -> float:
    t0 = time.perf_counter()
    trainer.fit(STAGE)
    _sync()
    return time.perf_counter() - t0


def suite_epochs(arch: str, images: np.ndarray, targets: np.ndarray, **fast) -> tuple[float, float]:
    """Seconds of the first and the second epoch of the suite's Trainer on device-resident batches
    (``fast``: ``compile=True`` or ``cuda_graphs=True``); the first pays for cuDNN autotuning (and compiling)."""
    trainer = suite_trainer(arch, images, targets, **fast)
    return timed_epoch(trainer), timed_epoch(trainer)


@pytest.mark.parametrize("arch,size", ARCHS, ids=[f"{a}@{s}" for a, s in ARCHS])
def test_training_images_per_second(benchmark, arch, size):
    images, targets = _data(int(size))
    plain = plain_fastai_epoch(arch, images, targets)
    if GPU:
        torch.cuda.reset_peak_memory_stats()
    suite = benchmark.pedantic(lambda: suite_epochs(arch, images, targets)[1], rounds=1, iterations=1)
    trained = N - N % BS  # both drop the last partial batch
    benchmark.extra_info.update(
        arch=arch,
        size=int(size),
        images=trained,
        batch_size=BS,
        device=str(DEVICE),
        plain_fastai_images_per_s=round(trained / plain, 1),
        suite_images_per_s=round(trained / suite, 1),
        ratio=round(plain / suite, 2),
        suite_peak_gpu_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2) if GPU else None,
    )
    print(
        f"\n{arch} at {size}px on {DEVICE}: plain fastai {trained / plain:.0f} img/s, "
        f"suite {trained / suite:.0f} img/s, ratio {plain / suite:.2f}x"
    )
    assert suite > 0 and plain > 0


def torch_loop_epochs(arch: str, images: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """The suite's training step without fastai: the same model, batches, bf16/channels_last and fused AdamW
    (fastai v1's betas and eps) in a bare PyTorch loop (no callbacks, no one-cycle schedule, no metrics). The
    gap to the suite is what fastai's loop costs."""
    model = create_model(arch, False, 0.5).to(DEVICE)
    fused = {"fused": True} if GPU else {}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01, betas=ADAM_BETAS, eps=ADAM_EPS, **fused)
    if GPU:
        model.to(memory_format=torch.channels_last)
    model.train()

    def step(x, y):
        with torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=GPU):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return _two_epochs(DeviceBatches(images, targets, BS, True, Augmentation(), 0, DEVICE), step)


def _two_epochs(train: DeviceBatches, step) -> tuple[float, float]:
    """Seconds of two epochs of ``step(x, y)`` over ``train`` (the first pays for warm-up)."""
    seconds = []
    for _ in range(2):
        t0 = time.perf_counter()
        for x, y in train:
            step(x, y)
        _sync()
        seconds.append(time.perf_counter() - t0)
    return seconds[0], seconds[1]


def _compare(benchmark, env: str, default: str, baseline, variant) -> tuple[str, str, int, tuple, tuple]:
    """Two epochs of ``baseline`` and two of ``variant`` (the benchmark's timing) on the same images, each a
    function ``(arch, images, targets) -> (first epoch s, second epoch s)``; ``env`` may name ``arch@px``."""
    arch, size = os.environ.get(env, default).split("@")
    images, targets = _data(int(size))
    base = baseline(arch, images, targets)
    other = benchmark.pedantic(lambda: variant(arch, images, targets), rounds=1, iterations=1)
    trained = N - N % BS
    benchmark.extra_info.update(arch=arch, size=int(size), images=trained, device=str(DEVICE))
    assert base[1] > 0 and other[1] > 0
    return arch, size, trained, base, other


def test_fastai_overhead(benchmark):
    """Seconds per epoch of the suite (fastai's loop) against the same step in a bare PyTorch loop."""
    default = "resnet50@224" if GPU else "resnet18@64"
    arch, size, trained, suite, bare = _compare(benchmark, "BENCH_OVERHEAD", default, suite_epochs, torch_loop_epochs)
    benchmark.extra_info.update(
        suite_images_per_s=round(trained / suite[1], 1),
        bare_torch_images_per_s=round(trained / bare[1], 1),
        fastai_overhead=round(suite[1] / bare[1] - 1, 3),
    )
    print(
        f"\nfastai's loop, {arch} at {size}px on {DEVICE}: suite {trained / suite[1]:.0f} img/s, "
        f"bare PyTorch loop {trained / bare[1]:.0f} img/s, overhead {100 * (suite[1] / bare[1] - 1):.0f}%"
    )


_DEFAULT_PROFILE = "resnet50@224,resnet34@300" if GPU else "resnet18@64"
PROFILED = [tuple(a.split("@")) for a in os.environ.get("BENCH_PROFILE", _DEFAULT_PROFILE).split(",")]
PROFILED_BATCHES = 20  # the profiler's record of an epoch grows with it, and so does the time to read it


def profile_epoch(trainer: Trainer) -> dict:
    """One epoch of ``trainer`` under torch.profiler: the operators the host dispatched and, on a GPU, the
    kernels the GPU ran (count, summed time, the costliest)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if GPU else [])
    with profile(activities=activities) as prof:
        trainer.fit(STAGE)
        _sync()

    def outermost_op(e) -> bool:  # aten::conv2d counts once, not with the aten calls it makes
        return e.name.startswith("aten::") and not (e.cpu_parent and e.cpu_parent.name.startswith("aten::"))

    ops = sum(1 for e in prof.events() if outermost_op(e))
    kernels = sorted(
        (k for k in prof.key_averages() if k.device_type == DeviceType.CUDA),
        key=lambda k: k.self_device_time_total,
        reverse=True,
    )
    return {
        "ops": ops,
        "kernels": sum(k.count for k in kernels),
        "kernel_s": sum(k.self_device_time_total for k in kernels) / 1e6,
        "top": [(k.key, k.self_device_time_total / 1e6) for k in kernels[:8]],
    }


# the k-fold's validation folds (2,133 and 2,132 cells), Table 4.1's and 4.7's validation sets, the test set
EVAL_SETS = os.environ.get("BENCH_EVAL_SETS", "2133,2132,2134,2793,1867" if GPU else "70,69,66")


def test_evaluation_padding(benchmark):
    """Seconds to predict sets of the specs' sizes, the last partial batch as it is and padded to the batch size.

    The full batch's shape is tuned first (in runs, training has tuned it); then each set is predicted once
    without padding, each of its last-batch shapes new to cuDNN's autotuner, and once padded.
    """
    arch, size = os.environ.get("BENCH_EVAL", "resnet34@300" if GPU else "resnet18@64").split("@")
    sets = [int(n) for n in EVAL_SETS.split(",")]
    images, targets = _data(int(size), max(sets))
    trainer = suite_trainer(arch, images, targets)
    benchmark_mode = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True  # as runs set it
    try:

        def predict_all(pad: bool) -> list[float]:
            seconds = []
            for n in sets:
                batches = DeviceBatches(images[:n], targets[:n], BS, False, None, 0, DEVICE)
                t0 = time.perf_counter()
                trainer.predict(batches, pad=pad)
                _sync()
                seconds.append(time.perf_counter() - t0)
            return seconds

        trainer.predict(DeviceBatches(images[:BS], targets[:BS], BS, False, None, 0, DEVICE))
        _sync()
        plain = predict_all(pad=False)
        padded = benchmark.pedantic(lambda: predict_all(pad=True), rounds=1, iterations=1)
    finally:
        torch.backends.cudnn.benchmark = benchmark_mode
    benchmark.extra_info.update(
        arch=arch,
        size=int(size),
        sets=sets,
        batch_size=BS,
        device=str(DEVICE),
        eval_plain_s=[round(s, 3) for s in plain],
        eval_padded_s=[round(s, 3) for s in padded],
        eval_saved_s=round(sum(plain) - sum(padded), 3),
    )
    print(f"\nevaluation {arch}@{size} of {sets} cells: plain {sum(plain):.2f} s, padded {sum(padded):.2f} s")
    assert all(s > 0 for s in plain + padded)


@pytest.mark.parametrize("arch,size", PROFILED, ids=[f"{a}@{s}" for a, s in PROFILED])
def test_step_profile(benchmark, arch, size):
    """Where a training step's time goes. An epoch is timed without the profiler (the benchmark), then run
    again under it: on a GPU, the kernels' summed time over the epoch's wall time is how busy the GPU was, and
    the rest is time it waited for the host. Operators per batch are what the host dispatches. The epoch is
    short (``PROFILED_BATCHES`` batches and one validation batch), so its fixed costs weigh a little."""
    images, targets = _data(int(size), PROFILED_BATCHES * BS)
    trainer = suite_trainer(arch, images, targets)
    timed_epoch(trainer)  # cuDNN autotuning, allocator warm-up
    wall = benchmark.pedantic(lambda: timed_epoch(trainer), rounds=1, iterations=1)
    prof = profile_epoch(trainer)
    batches = len(trainer.learn.dls.train) + len(trainer.learn.dls.valid)
    benchmark.extra_info.update(
        arch=arch,
        size=int(size),
        device=str(DEVICE),
        batch_size=BS,
        batches=batches,
        epoch_s=round(wall, 3),
        ms_per_batch=round(1000 * wall / batches, 2),
        ops_per_batch=round(prof["ops"] / batches, 1),
    )
    line = f"\nprofile, {arch} at {size}px on {DEVICE}: {1000 * wall / batches:.1f} ms per batch of {BS}, "
    line += f"{prof['ops'] / batches:.0f} operators dispatched per batch"
    if GPU:
        busy = prof["kernel_s"] / wall
        benchmark.extra_info.update(
            kernels_per_batch=round(prof["kernels"] / batches, 1),
            kernel_ms_per_batch=round(1000 * prof["kernel_s"] / batches, 2),
            gpu_busy=round(busy, 3),
            top_kernels=[[name[:80], round(1000 * s / batches, 3)] for name, s in prof["top"]],
        )
        line += (
            f", {prof['kernels'] / batches:.0f} kernels taking {1000 * prof['kernel_s'] / batches:.1f} ms: "
            f"the GPU was busy {busy:.0%} of the time"
        )
        line += "".join(f"\n    {1000 * s / batches:7.3f} ms  {name[:100]}" for name, s in prof["top"])
    print(line)
    assert prof["ops"] > 0 and (prof["kernels"] > 0 or not GPU)


def graphed_loop_epochs(arch: str, images: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """The bare loop's step (forward, backward, fused AdamW) captured once as a CUDA graph and replayed per
    batch: what the step costs on the GPU when no kernel is launched from Python."""
    model = create_model(arch, False, 0.5).to(DEVICE).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01, eps=1e-5, fused=True, capturable=True)
    train = DeviceBatches(images, targets, BS, True, Augmentation(), 0, DEVICE)
    x0, y0 = next(iter(train))
    static_x, static_y = x0.clone(), y0.clone()

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            loss = torch.nn.functional.cross_entropy(model(static_x), static_y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=False)

    model.train()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on a side stream, as capture requires
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()

    def replay(x, y):
        static_x.copy_(x)
        static_y.copy_(y)
        graph.replay()

    return _two_epochs(train, replay)


@pytest.mark.skipif(not GPU, reason="CUDA graphs need a GPU")
def test_cuda_graph_ceiling(benchmark):
    """How fast the same step runs as a replayed CUDA graph, against the bare eager loop."""
    arch, size, trained, bare, graphed = _compare(
        benchmark, "BENCH_OVERHEAD", "resnet50@224", torch_loop_epochs, graphed_loop_epochs
    )
    benchmark.extra_info.update(
        bare_torch_images_per_s=round(trained / bare[1], 1),
        graphed_images_per_s=round(trained / graphed[1], 1),
        graph_speedup=round(bare[1] / graphed[1], 2),
    )
    print(
        f"\nCUDA graph, {arch} at {size}px: bare eager loop {trained / bare[1]:.0f} img/s, "
        f"the same step replayed as one graph {trained / graphed[1]:.0f} img/s ({bare[1] / graphed[1]:.2f}x)"
    )


@pytest.mark.skipif(not GPU, reason="CUDA graphs need a GPU")
def test_suite_cuda_graphs(benchmark):
    """The suite's Trainer with the model's training passes replayed as CUDA graphs, against it eager."""
    graphs = partial(suite_epochs, cuda_graphs=True)
    arch, size, trained, eager, graphed = _compare(benchmark, "BENCH_OVERHEAD", "resnet50@224", suite_epochs, graphs)
    benchmark.extra_info.update(
        eager_epochs_s=[round(s, 3) for s in eager],
        graphed_epochs_s=[round(s, 3) for s in graphed],
        suite_images_per_s=round(trained / eager[1], 1),
        suite_graphed_images_per_s=round(trained / graphed[1], 1),
    )
    print(
        f"\nsuite with CUDA graphs, {arch} at {size}px: eager {trained / eager[1]:.0f} img/s, "
        f"graphed {trained / graphed[1]:.0f} img/s ({eager[1] / graphed[1]:.2f}x; first epochs "
        f"{eager[0]:.2f}s and {graphed[0]:.2f}s)"
    )


@pytest.mark.skipif(not GPU, reason="torch.compile is weighed on a GPU only")
def test_compile(benchmark):
    compiling = partial(suite_epochs, compile=True)
    arch, size, trained, eager, compiled = _compare(benchmark, "BENCH_COMPILE", "resnet50@224", suite_epochs, compiling)
    saved = eager[1] - compiled[1]
    cost = (compiled[0] - compiled[1]) - (eager[0] - eager[1])  # the first epoch's extra, beyond autotuning
    benchmark.extra_info.update(
        eager_epochs_s=[round(s, 3) for s in eager],
        compiled_epochs_s=[round(s, 3) for s in compiled],
        compile_s=round(cost, 2),
        saved_per_epoch_s=round(saved, 3),
        break_even_epochs=round(cost / saved, 1) if saved > 0 else None,
    )
    print(
        f"\ntorch.compile, {arch} at {size}px, {trained} images/epoch: eager {eager[0]:.2f}s then {eager[1]:.2f}s, "
        f"compiled {compiled[0]:.2f}s then {compiled[1]:.2f}s; compiling costs {cost:.1f}s, saves {saved:.3f}s/epoch"
    )
