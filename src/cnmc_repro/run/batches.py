"""Training batches from prepared uint8 cells held on the training device.

The report fed fastai with images decoded and augmented by the CPU every epoch. Here the prepared
cells are copied to the device once, as uint8 (N x H x W x 3); each batch is gathered there, augmented
batch-wise there (section 3.2.3: horizontal and vertical flips, rotation) and normalised with the
ImageNet statistics the pretrained models expect. The same code runs on CPU and GPU.

Random draws (order, flips, angles) come from a CPU generator seeded per epoch, so the same seed gives
the same batches on any device. Batches come out as NCHW views of NHWC storage: channels_last for free.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from cnmc_repro.spec.schema import Augmentation

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def augment_params(n: int, aug: Augmentation, gen: torch.Generator) -> torch.Tensor:
    """One 2x3 affine matrix per image (flips and rotation composed), drawn on the CPU."""
    sx = torch.ones(n)
    sy = torch.ones(n)
    if aug.flip_horizontal:
        sx = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    if aug.flip_vertical:
        sy = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(aug.max_rotate)
    angle = torch.where(torch.rand(n, generator=gen) < aug.p_rotate, angle, torch.zeros(n))
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * sx, -sin * sy
    theta[:, 1, 0], theta[:, 1, 1] = sin * sx, cos * sy
    return theta


def apply_affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Warp a float batch (N x C x H x W) by per-image affine matrices of its device and dtype; outside the
    image is black."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class Normalise:
    """Float NCHW in 0..255 -> ImageNet statistics, as one multiply-add per channel."""

    def __init__(self, device: torch.device):
        std = torch.tensor(IMAGENET_STD)
        self.scale = (1 / (255 * std)).view(1, 3, 1, 1).to(device)
        self.shift = (-torch.tensor(IMAGENET_MEAN) / std).view(1, 3, 1, 1).to(device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift, x, self.scale)


class DeviceBatches:
    """A fastai-compatible data loader over cells held on the device.

    ``len()``, iteration, ``.new()``, ``.to()`` and ``.device`` are what fastai's ``Learner`` uses.
    """

    def __init__(
        self,
        images: np.ndarray | torch.Tensor,
        targets: np.ndarray | torch.Tensor,
        bs: int,
        shuffle: bool,
        augment: Augmentation | None,
        seed: int,
        device: torch.device | str = "cpu",
        drop_last: bool | None = None,
    ):
        self.device = torch.device(device)
        self.images = torch.as_tensor(images).to(self.device)
        self.targets = torch.as_tensor(np.asarray(targets), dtype=torch.long).to(self.device)
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != torch.uint8:
            raise ValueError("images must be uint8 N x H x W x 3")
        self.bs, self.shuffle, self.augment, self.seed = bs, shuffle, augment, seed
        self.drop_last = shuffle if drop_last is None else drop_last  # fastai: the training loader drops
        self.epoch = 0
        self.normalise = Normalise(self.device)

    @property
    def n(self) -> int:
        return len(self.targets)

    def __len__(self) -> int:
        if self.drop_last and self.n >= self.bs:
            return self.n // self.bs
        return math.ceil(self.n / self.bs)

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        order = torch.randperm(self.n, generator=gen) if self.shuffle else torch.arange(self.n)
        spans = [(b * self.bs, min((b + 1) * self.bs, self.n)) for b in range(len(self))]
        theta = None
        if self.augment is not None and spans:  # every batch's draws, in the order the batches are made
            theta = torch.cat([augment_params(end - start, self.augment, gen) for start, end in spans])
        # the epoch's order and affine matrices go to the device in one copy each, before the first batch:
        # a copy from the host per batch would make the host wait for the device at every step
        order = order.to(self.device, non_blocking=True)
        if theta is not None:
            theta = theta.to(self.device, non_blocking=True)
        for start, end in spans:
            idx = order[start:end]
            # NHWC uint8 -> NCHW float view (channels_last); augment before normalising so that the
            # corners a rotation uncovers are black, like the segmented background
            x = self.images.index_select(0, idx).permute(0, 3, 1, 2).float()
            if theta is not None:
                x = apply_affine(x, theta[start:end])
            yield self.normalise(x), self.targets.index_select(0, idx)

    def new(self, shuffle: bool | None = None, drop_last: bool | None = None, **kwargs) -> DeviceBatches:
        """fastai's ``dl.new``: the same cells, another order or drop rule (no augmentation unless shuffled)."""
        shuffle = self.shuffle if shuffle is None else shuffle
        out = DeviceBatches.__new__(DeviceBatches)
        out.__dict__.update(self.__dict__)
        out.shuffle = shuffle
        out.drop_last = shuffle if drop_last is None else drop_last
        out.augment = self.augment if shuffle else None
        out.epoch = 0
        return out

    def to(self, device: torch.device | str) -> DeviceBatches:
        device = torch.device(device)
        if device != self.device:
            self.device = device
            self.images, self.targets = self.images.to(device), self.targets.to(device)
            self.normalise = Normalise(device)
        return self

    def one_batch(self):
        return next(iter(self.new(shuffle=False)))
