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


def test_flips_are_exact_and_rotation_keeps_black_corners():
    x = np.zeros((1, 6, 6, 3), np.uint8)
    x[0, 1, 4] = 200
    flips = DeviceBatches(x, [0], bs=1, shuffle=True, augment=Augmentation(max_rotate=0), seed=0, drop_last=False)
    seen = set()
    for _ in range(20):
        ((img, _),) = list(flips)
        raw = img * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        pos = tuple(np.argwhere(raw[0, 0].numpy() > 0.5)[0])
        seen.add(pos)
    assert seen == {(1, 4), (1, 1), (4, 4), (4, 1)}  # the four flips, each exact

    ones = np.full((1, 16, 16, 3), 255, np.uint8)
    rot = DeviceBatches(
        ones, [0], bs=1, shuffle=True, augment=Augmentation(max_rotate=45, p_rotate=1.0), seed=3, drop_last=False
    )
    ((img, _),) = list(rot)
    black = (torch.zeros(3) - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(img[0, :, 0, 0], black, atol=1e-4)  # a corner uncovered by the rotation is black


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
