import numpy as np
import pytest
import torch

from cnmc_repro.run.batches import IMAGENET_MEAN, IMAGENET_STD, DeviceBatches
from cnmc_repro.spec.schema import Augmentation


def _data(n=10, size=8):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), np.arange(n) % 2


def test_same_seed_same_batches_other_seed_other_batches():
    x, y = _data()
    a = [b for b in DeviceBatches(x, y, bs=4, shuffle=True, augment=Augmentation(), seed=1)]
    b = [b for b in DeviceBatches(x, y, bs=4, shuffle=True, augment=Augmentation(), seed=1)]
    c = [b for b in DeviceBatches(x, y, bs=4, shuffle=True, augment=Augmentation(), seed=2)]
    assert len(a) == 2  # the training loader drops the last partial batch, as fastai's does
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b, strict=True))
    assert not all(torch.equal(p[0], q[0]) for p, q in zip(a, c, strict=True))


def test_epochs_differ_and_validation_is_plain_and_ordered():
    x, y = _data()
    dl = DeviceBatches(x, y, bs=4, shuffle=True, augment=Augmentation(), seed=1)
    e1, e2 = list(dl), list(dl)
    assert not torch.equal(e1[0][0], e2[0][0])
    valid = dl.new(shuffle=False)
    batches = list(valid)
    assert len(batches) == 3 and torch.equal(torch.cat([b[1] for b in batches]), torch.as_tensor(y))
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    expected = (torch.as_tensor(x[:4]).permute(0, 3, 1, 2).float() / 255 - mean) / std
    assert torch.allclose(batches[0][0], expected, atol=1e-5)


def _raw(img: torch.Tensor) -> torch.Tensor:
    """A normalised batch back in 0..1."""
    return img * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)


def _draws(image: np.ndarray, aug: Augmentation, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` augmented draws of one image (n x 3 x H x W, 0..1): one batch of n copies."""
    x = np.repeat(image[None], n, axis=0)
    ((img, _),) = list(DeviceBatches(x, np.zeros(n), bs=n, shuffle=True, augment=aug, seed=seed))
    return _raw(img)


def _positions(draws: torch.Tensor) -> set[tuple[int, int]]:
    return {tuple(int(v) for v in np.argwhere(d[0].numpy() > 0.5)[0]) for d in draws}


@pytest.mark.parametrize("transforms", ["fastai_v1", "flips_rotate"])
def test_flips_are_exact(transforms):
    """fastai v1's dihedral group moves a pixel to each of its 8 images under flips and transposition; the
    flips-and-rotation set to the 4 of the flips. Each lands whole on a pixel."""
    x = np.zeros((6, 6, 3), np.uint8)
    x[1, 3] = 200
    draws = _draws(x, Augmentation(transforms=transforms, p_affine=0.0, p_lighting=0.0), 64)
    assert all(int((d[0] > 0.05).sum()) == 1 for d in draws)
    flips = {(1, 3), (1, 2), (4, 3), (4, 2)}
    transposed = {(c, r) for r, c in flips}
    assert _positions(draws) == (flips | transposed if transforms == "fastai_v1" else flips)


def test_rotation_pads_by_reflection_in_fastai_v1_and_leaves_black_corners_in_flips_rotate():
    ones = np.full((16, 16, 3), 255, np.uint8)
    v1 = _draws(ones, Augmentation(max_rotate=45, p_affine=1.0, max_warp=0.0, max_zoom=1.0, p_lighting=0.0), 8)
    assert torch.allclose(v1, torch.ones_like(v1), atol=1e-4)  # reflection: white all over
    old = _draws(ones, Augmentation(transforms="flips_rotate", max_rotate=45, p_affine=1.0), 8)
    corners = old[:, :, [0, 0, -1, -1], [0, -1, 0, -1]].amin(dim=(1, 2))  # each draw's darkest corner
    assert float(corners.max()) < 0.5 and int((corners < 1e-4).sum()) >= 4  # a corner uncovered is black


def test_batches_are_channels_last():
    x, y = _data(size=16)
    img, _ = next(iter(DeviceBatches(x, y, bs=4, shuffle=False, augment=None, seed=0)))
    assert img.shape == (4, 3, 16, 16) and img.is_contiguous(memory_format=torch.channels_last)


def test_the_host_sends_an_epoch_its_draws_in_one_copy_not_one_per_batch(monkeypatch):
    """A copy from the host for every batch would make the host wait for the device at every step."""
    copies = []
    to = torch.Tensor.to

    def counting_to(self, *args, **kwargs):
        copies.append(args)
        return to(self, *args, **kwargs)

    def copies_per_epoch(n_batches: int) -> int:
        x, y = _data(n=4 * n_batches)
        dl = DeviceBatches(x, y, bs=4, shuffle=True, augment=Augmentation(), seed=0)
        monkeypatch.setattr(torch.Tensor, "to", counting_to)
        copies.clear()
        assert len(list(dl)) == n_batches
        monkeypatch.undo()
        return len(copies)

    assert copies_per_epoch(2) == copies_per_epoch(12) == 2  # the order and the affine matrices


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batches_and_epoch_metrics_never_make_the_host_wait_for_the_device():
    from types import SimpleNamespace

    from cnmc_repro.run.trainer import epoch_metrics
    from cnmc_repro.spec.schema import FBeta

    x, y = _data(n=64, size=32)
    dl = DeviceBatches(x, y, bs=8, shuffle=True, augment=Augmentation(), seed=0, device="cuda")
    metrics = epoch_metrics(FBeta(2.0, "normal"))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any synchronising call raises
    try:
        for img, target in dl:
            learn = SimpleNamespace(y=target, pred=torch.stack([img.mean((1, 2, 3)), -img.mean((1, 2, 3))], 1))
            for m in metrics:
                m.accumulate(learn)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    cm = metrics[0].cm.view(2, 2).tolist()
    assert sum(map(sum, cm)) == 64 and metrics[0].value == (cm[0][0] + cm[1][1]) / 64


def test_the_symmetric_warp_takes_its_moved_corners_back_to_the_image_corners():
    from cnmc_repro.run.batches import CORNERS, _warp_homography

    m = torch.tensor([[0.2, -0.1, 0.05, -0.2], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    h = _warp_homography(m)
    torch.testing.assert_close(h[1], torch.eye(3, dtype=torch.float64))
    # fastai v1's moved corners: (-1-m3, -1-m1), (-1-m2, 1+m1), (1+m3, -1-m0), (1+m2, 1+m0)
    moved = [(-0.8, -0.9), (-1.05, 0.9), (0.8, -1.2), (1.05, 1.2)]
    for (x, y), corner in zip(moved, CORNERS, strict=True):
        u, v, w = (h[0] @ torch.tensor([x, y, 1.0], dtype=torch.float64)).tolist()
        assert (u / w, v / w) == pytest.approx(corner, abs=1e-12)


def test_one_grid_samples_what_fastai_v1s_warp_then_affine_sample():
    """fastai v1 moves the output grid by the warp first and by dihedral @ rotate @ zoom after (Image.coord,
    then Image.affine when Image.flow is read: _apply_perspective, then _affine_mult); the suite samples once
    through one projective matrix."""
    from cnmc_repro.run.batches import apply_fastai_v1, fastai_v1_draws, fastai_v1_params

    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.integers(0, 256, (6, 3, 12, 12)), dtype=torch.float32)
    aug = Augmentation(p_affine=1.0, p_lighting=0.0)
    got = apply_fastai_v1(x, fastai_v1_params(6, aug, torch.Generator().manual_seed(3)))

    d = fastai_v1_draws(6, aug, torch.Generator().manual_seed(3))
    assert not torch.allclose(d["warp"], torch.eye(3, dtype=torch.float64).expand(6, 3, 3))
    affine = d["dihedral"] @ d["rotate"] @ d["zoom"]
    lin = torch.linspace(-1, 1, 12, dtype=torch.float64)
    ys, xs = torch.meshgrid(lin, lin, indexing="ij")
    points = torch.stack([xs, ys, torch.ones_like(xs)], -1).view(1, 144, 3)
    warped = points @ d["warp"].transpose(1, 2)
    flow = warped[..., :2] / warped[..., 2:]
    flow = flow @ affine[:, :2, :2].transpose(1, 2) + affine[:, None, :2, 2]
    want = torch.nn.functional.grid_sample(
        x, flow.view(6, 12, 12, 2).float(), mode="bilinear", padding_mode="reflection", align_corners=True
    )
    torch.testing.assert_close(got, want, rtol=0, atol=1e-3)


def test_lighting_is_fastai_v1s_brightness_and_contrast_in_logit_space():
    grey = np.full((4, 4, 3), 128, np.uint8)
    aug = Augmentation(p_affine=0.0, p_lighting=1.0)
    draws = _draws(grey, aug, 256)
    values = draws[:, 0, 0, 0]
    assert torch.allclose(draws, values.view(-1, 1, 1, 1).expand_as(draws), atol=1e-5)  # uniform stays uniform
    # sigmoid((logit(p) + logit(change)) * scale), change in [0.4, 0.6], scale in [0.8, 1.25]
    p = 128 / 255
    lo = torch.sigmoid((torch.logit(torch.tensor(p)) + torch.logit(torch.tensor(0.4))) * 1.25)
    hi = torch.sigmoid((torch.logit(torch.tensor(p)) + torch.logit(torch.tensor(0.6))) * 1.25)
    assert lo - 1e-5 <= values.min() < p - 0.05 and p + 0.05 < values.max() <= hi + 1e-5
    black = _draws(np.zeros((4, 4, 3), np.uint8), aug, 64)
    assert float(black.abs().max()) < 1e-4  # the segmented background stays black
    none = _draws(grey, Augmentation(p_affine=0.0, p_lighting=0.0), 8)
    assert torch.allclose(none, torch.full_like(none, p), atol=1e-6)
