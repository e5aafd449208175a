"""Training batches from prepared uint8 cells held on the training device.

The report fed fastai with images decoded and augmented by the CPU every epoch. Here the prepared
cells are copied to the device once, as uint8 (N x H x W x 3); each batch is gathered there, augmented
batch-wise there (section 3.2.3, ``Augmentation``: by default fastai v1's ``get_transforms(flip_vert=True)``)
and normalised with the ImageNet statistics the pretrained models expect. The same code runs on CPU and GPU.

Random draws (order, flips, angles, warps, zooms, lighting) come from a CPU generator seeded per epoch, so
the same seed gives the same batches on any device. Batches come out as NCHW views of NHWC storage:
channels_last for free where nothing resamples them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from cnmc_repro.spec.schema import Augmentation

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# fastai v1's corners of the image, (x, y) in [-1, 1], that a symmetric warp moves (fastai/vision/transform.py)
CORNERS = ((-1.0, -1.0), (-1.0, 1.0), (1.0, -1.0), (1.0, 1.0))


def augment_params(n: int, aug: Augmentation, gen: torch.Generator) -> torch.Tensor:
    """One row of draws per image, drawn on the CPU: ``fastai_v1``'s (:func:`fastai_v1_params`) or the
    flips-and-rotation affine matrices of ``flips_rotate`` (:func:`flips_rotate_params`), flattened."""
    if aug.transforms == "fastai_v1":
        return fastai_v1_params(n, aug, gen)
    return flips_rotate_params(n, aug, gen).view(n, 6)


def apply_augmentation(x: torch.Tensor, params: torch.Tensor, aug: Augmentation) -> torch.Tensor:
    """Augment a float batch (N x C x H x W, 0..255) by its rows of :func:`augment_params`, on its device."""
    if aug.transforms == "fastai_v1":
        return apply_fastai_v1(x, params)
    return apply_affine(x, params.view(-1, 2, 3))


def flips_rotate_params(n: int, aug: Augmentation, gen: torch.Generator) -> torch.Tensor:
    """One 2x3 affine matrix per image (horizontal and vertical flips, each p 0.5, and rotation)."""
    sx = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    sy = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(aug.max_rotate)
    angle = torch.where(torch.rand(n, generator=gen) < aug.p_affine, angle, torch.zeros(n))
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


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen, dtype=torch.float64)


def _applied(n: int, p: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=gen, dtype=torch.float64) < p


def _warp_homography(m: torch.Tensor) -> torch.Tensor:
    """fastai v1's ``symmetric_warp`` of magnitudes ``m`` (N x 4): the 3x3 projective map taking the moved
    corners back to the image's corners, solved from the four point pairs (``_find_coeffs``)."""
    n = len(m)
    moved = torch.stack(
        [
            torch.stack([-1 - m[:, 3], -1 - m[:, 1]], 1),
            torch.stack([-1 - m[:, 2], 1 + m[:, 1]], 1),
            torch.stack([1 + m[:, 3], -1 - m[:, 0]], 1),
            torch.stack([1 + m[:, 2], 1 + m[:, 0]], 1),
        ],
        1,
    )  # N x 4 x 2
    a = torch.zeros(n, 8, 8, dtype=torch.float64)
    b = torch.zeros(n, 8, dtype=torch.float64)
    for i, (cx, cy) in enumerate(CORNERS):  # (x, y) = H(moved corner): two linear equations per corner
        x, y = moved[:, i, 0], moved[:, i, 1]
        a[:, 2 * i, 0], a[:, 2 * i, 1], a[:, 2 * i, 2], a[:, 2 * i, 6], a[:, 2 * i, 7] = x, y, 1, -cx * x, -cx * y
        a[:, 2 * i + 1, 3], a[:, 2 * i + 1, 4], a[:, 2 * i + 1, 5] = x, y, 1
        a[:, 2 * i + 1, 6], a[:, 2 * i + 1, 7] = -cy * x, -cy * y
        b[:, 2 * i], b[:, 2 * i + 1] = cx, cy
    coeffs = torch.linalg.solve(a, b)
    return torch.cat([coeffs, torch.ones(n, 1, dtype=torch.float64)], 1).view(n, 3, 3)


def fastai_v1_draws(n: int, aug: Augmentation, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """fastai v1's ``get_transforms(flip_vert=True)`` drawn for ``n`` images (float64, on the CPU): the 3x3
    matrices of the dihedral flip, the symmetric warp, the rotation and the zoom, and the lighting's
    brightness shift and contrast scale in logit space. Each transform is applied with its probability (the
    dihedral always: its identity is one of its 8 draws); one not applied is the identity. fastai v1's
    ``rand_crop`` leaves the square cells as they are and draws nothing here."""
    eye = torch.eye(3, dtype=torch.float64).expand(n, 3, 3)
    k = torch.randint(0, 8, (n,), generator=gen)
    sx = torch.where(k & 1 > 0, -1.0, 1.0).double()
    sy = torch.where(k & 2 > 0, -1.0, 1.0).double()
    transpose = k & 4 > 0
    dihedral = eye.clone()
    dihedral[:, 0, 0] = torch.where(transpose, 0.0, sx)
    dihedral[:, 0, 1] = torch.where(transpose, sx, 0.0)
    dihedral[:, 1, 0] = torch.where(transpose, sy, 0.0)
    dihedral[:, 1, 1] = torch.where(transpose, 0.0, sy)

    magnitude = _uniform(4 * n, -aug.max_warp, aug.max_warp, gen).view(n, 4)
    warp = torch.where(_applied(n, aug.p_affine, gen).view(n, 1, 1), _warp_homography(magnitude), eye)

    angle = _uniform(n, -aug.max_rotate, aug.max_rotate, gen) * math.pi / 180
    angle = torch.where(_applied(n, aug.p_affine, gen), angle, 0.0)
    rotate = eye.clone()
    rotate[:, 0, 0], rotate[:, 0, 1] = torch.cos(angle), -torch.sin(angle)
    rotate[:, 1, 0], rotate[:, 1, 1] = torch.sin(angle), torch.cos(angle)

    scale = _uniform(n, 1.0, aug.max_zoom, gen)
    row, col = _uniform(n, 0, 1, gen), _uniform(n, 0, 1, gen)
    scale = torch.where(_applied(n, aug.p_affine, gen), scale, 1.0)
    zoom = eye.clone()
    zoom[:, 0, 0] = zoom[:, 1, 1] = 1 / scale
    zoom[:, 0, 2] = (1 - 1 / scale) * (2 * col - 1)  # the zoom's centre: a random point of the image
    zoom[:, 1, 2] = (1 - 1 / scale) * (2 * row - 1)

    lighting = aug.max_lighting
    change = _uniform(n, 0.5 * (1 - lighting), 0.5 * (1 + lighting), gen)
    shift = torch.where(_applied(n, aug.p_lighting, gen), torch.logit(change), 0.0)
    contrast = torch.exp(_uniform(n, math.log(1 - lighting), -math.log(1 - lighting), gen))
    contrast = torch.where(_applied(n, aug.p_lighting, gen), contrast, 1.0)
    return {"dihedral": dihedral, "warp": warp, "rotate": rotate, "zoom": zoom, "shift": shift, "contrast": contrast}


def fastai_v1_params(n: int, aug: Augmentation, gen: torch.Generator) -> torch.Tensor:
    """:func:`fastai_v1_draws` as rows of 11 values: the 3x3 projective sampling matrix, the brightness shift
    and the contrast scale.

    v1 moves the output grid by the symmetric warp first and then by the affine matrix ``dihedral @ rotate @
    zoom`` (``Image.coord`` before ``Image.affine``, composed when ``Image.flow`` is read), which is the one
    projective matrix ``dihedral @ rotate @ zoom @ warp``.
    """
    d = fastai_v1_draws(n, aug, gen)
    sampling = d["dihedral"] @ d["rotate"] @ d["zoom"] @ d["warp"]
    return torch.cat([sampling.view(n, 9), d["shift"].view(n, 1), d["contrast"].view(n, 1)], 1).float()


def apply_fastai_v1(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Resample a float batch (N x C x H x W, 0..255) by its rows of :func:`fastai_v1_params` in one grid
    (bilinear, reflection padding, corners aligned as v1's grid of ``torch.linspace(-1, 1)``), then apply the
    lighting as v1 does: ``sigmoid((logit(x) + shift) * contrast)`` on values in [0, 1]."""
    n, _, h, w = x.shape
    sampling = params[:, :9].view(n, 3, 3).clone()
    sampling[:, 0, 1] *= h / w  # v1's correction of the affine part for a rectangular image (_affine_mult)
    sampling[:, 1, 0] *= w / h
    ys, xs = torch.meshgrid(
        torch.linspace(-1, 1, h, device=x.device), torch.linspace(-1, 1, w, device=x.device), indexing="ij"
    )
    points = torch.stack([xs, ys, torch.ones_like(xs)], -1).view(1, h * w, 3)
    mapped = points @ sampling.transpose(1, 2)  # N x HW x 3
    grid = (mapped[..., :2] / mapped[..., 2:]).view(n, h, w, 2)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=True)
    shift, contrast = params[:, 9].view(n, 1, 1, 1), params[:, 10].view(n, 1, 1, 1)
    unit = (x / 255).clamp(1e-7, 1 - 1e-7)  # v1's logit_ clamps so
    lit = torch.sigmoid((torch.logit(unit) + shift) * contrast) * 255
    return torch.where((shift != 0) | (contrast != 1), lit, x)  # v1 leaves an image without lighting as it is


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
        draws = None
        if self.augment is not None and spans:  # every batch's draws, in the order the batches are made
            draws = torch.cat([augment_params(end - start, self.augment, gen) for start, end in spans])
        # the epoch's order and augmentation draws go to the device in one copy each, before the first batch:
        # a copy from the host per batch would make the host wait for the device at every step
        order = order.to(self.device, non_blocking=True)
        if draws is not None:
            draws = draws.to(self.device, non_blocking=True)
        for start, end in spans:
            idx = order[start:end]
            # NHWC uint8 -> NCHW float view (channels_last); augment before normalising, in 0..255
            x = self.images.index_select(0, idx).permute(0, 3, 1, 2).float()
            if draws is not None:
                x = apply_augmentation(x, draws[start:end], self.augment)
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
