"""Training speed per architecture of the specs: the suite's fast path against a plain fastai set-up.

Both train the same fastai model (``create_vision_model``, body unfrozen) for one epoch over the same
``BENCH_TRAIN_IMAGES`` random cells at ``BENCH_TRAIN_SIZE`` px, in the same run:

- plain: ``vision_learner`` on fastai ``DataLoaders`` with ``IntToFloatTensor``, ``aug_transforms`` and
  ``Normalize`` as batch transforms, fastai's Adam, float32, contiguous memory;
- suite: ``Trainer`` on device-resident uint8 batches augmented on the device; on a GPU with bf16
  autocast and channels_last.

``extra_info`` holds images/s of each and their ratio. On a CPU the sizes are small (64 px, 128 images).
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

from cnmc_repro.batches import Augment, DeviceBatches
from cnmc_repro.spec import FBeta, Stage
from cnmc_repro.train import Trainer

GPU = torch.cuda.is_available()
DEVICE = torch.device("cuda" if GPU else "cpu")
SIZE = int(os.environ.get("BENCH_TRAIN_SIZE", "224" if GPU else "64"))
N = int(os.environ.get("BENCH_TRAIN_IMAGES", "4096" if GPU else "128"))
BS = int(os.environ.get("BENCH_BS", "64"))
ARCHS = os.environ.get("BENCH_ARCHS", "alexnet,squeezenet1_0,vgg19_bn,resnet34,resnet50,densenet121").split(",")


def _data():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N, SIZE, SIZE, 3), dtype=np.uint8)
    return images, rng.integers(0, 2, N)


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


def suite_epoch(arch: str, images: np.ndarray, targets: np.ndarray) -> float:
    """Seconds for one epoch of the suite's Trainer on device-resident batches."""
    train = DeviceBatches(images, targets, BS, True, Augment(), 0, DEVICE)
    valid = DeviceBatches(images[:BS], targets[:BS], BS, False, None, 0, DEVICE)
    trainer = Trainer.create(arch, False, 0.5, 0.01, FBeta(1.0, "normal"), train, valid, DEVICE)
    stage = Stage("bench", 1, 1e-3, frozen=False)
    trainer.fit(stage)  # warm-up epoch
    _sync()
    t0 = time.perf_counter()
    trainer.fit(stage)
    _sync()
    return time.perf_counter() - t0


@pytest.mark.parametrize("arch", ARCHS)
def test_training_images_per_second(benchmark, arch):
    images, targets = _data()
    plain = plain_fastai_epoch(arch, images, targets)
    suite = benchmark.pedantic(suite_epoch, args=(arch, images, targets), rounds=1, iterations=1)
    trained = N - N % BS  # both drop the last partial batch
    benchmark.extra_info.update(
        arch=arch,
        size=SIZE,
        images=trained,
        batch_size=BS,
        device=str(DEVICE),
        plain_fastai_images_per_s=round(trained / plain, 1),
        suite_images_per_s=round(trained / suite, 1),
        ratio=round(plain / suite, 2),
    )
    print(
        f"\n{arch} at {SIZE}px on {DEVICE}: plain fastai {trained / plain:.0f} img/s, "
        f"suite {trained / suite:.0f} img/s, ratio {plain / suite:.2f}x"
    )
    assert suite > 0 and plain > 0
