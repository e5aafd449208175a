"""The architectures of the report (section 2.3.3), built as fastai v1's ``cnn_learner`` built them.

fastai cuts the torchvision network before its pooling and adds its head (concat pooling, batch norm,
dropout ``ps``, a 512-unit layer, two outputs). The layer groups are those of fastai v1: ``freeze`` leaves
only the last (the head) trainable, and ``slice(lo, hi)`` spreads the learning rates over them.

The ImageNet weights are read from torchvision's cache, ``$TORCH_HOME/hub/checkpoints`` (by default
``~/.cache/torch/hub/checkpoints``), under the file names torchvision gives them.
"""

from __future__ import annotations

import os
import pickle
import socket
import typing
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision

from cnmc_repro.errors import UserError
from cnmc_repro.spec.schema import Arch

ARCHS = typing.get_args(Arch)


def arch_fn(name: str):
    if name not in ARCHS:
        raise UserError(f"unknown architecture {name!r}; known: {', '.join(ARCHS)}")
    return getattr(torchvision.models, name)


def imagenet_weights(name: str):
    """The ImageNet weights fastai v1 loaded in 2019: torchvision's first published set, ``IMAGENET1K_V1``.

    fastai v1's ``create_body`` called ``arch(pretrained=True)`` (fastai v1 ``vision/learner.py``), which
    torchvision still maps to ``IMAGENET1K_V1`` (``handle_legacy_interface`` in ``torchvision/models``).
    fastai 2.8 asks for ``DEFAULT`` instead, which for ResNet50 is ``IMAGENET1K_V2``, weights of torchvision's
    2021 training recipe that the report cannot have used.
    """
    arch_fn(name)
    return torchvision.models.get_model_weights(name).IMAGENET1K_V1


def weights_file(name: str) -> Path:
    """Where torchvision keeps the ImageNet weights of ``name``: ``torch.hub.get_dir()/checkpoints`` (it reads
    ``$TORCH_HOME`` at each call), under the file name of the download address, as torch.hub saves it."""
    url = imagenet_weights(name).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


@dataclass(frozen=True)
class CachedWeights:
    """One architecture's ImageNet weights in torchvision's cache (``reproduce weights``)."""

    arch: str
    path: Path
    url: str
    published_bytes: int  # torchvision's stated file size, to the kB it gives
    bytes: int | None  # None when the file is absent

    @property
    def state(self) -> str:
        """cached; missing; or size differs (from torchvision's: a partial copy, or another file of the name)."""
        if self.bytes is None:
            return "missing"
        return "size differs" if abs(self.bytes - self.published_bytes) > 2**10 else "cached"


def cached_weights(name: str) -> CachedWeights:
    weights = imagenet_weights(name)
    path = weights_file(name)
    size = path.stat().st_size if path.is_file() else None
    return CachedWeights(name, path, weights.url, round(weights.meta["_file_size"] * 2**20), size)


def ensure_weights(name: str) -> Path:
    """The cached ImageNet weights of ``name``; fetched once if a network answers, else a clear error."""
    path = weights_file(name)
    if path.is_file():
        return path
    url = imagenet_weights(name).url
    old = socket.getdefaulttimeout()
    try:
        socket.setdefaulttimeout(15)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(path), progress=False)
    except Exception:
        path.unlink(missing_ok=True)
        raise UserError(
            f"the pretrained ImageNet weights of {name} are not in torchvision's cache ({path}) and cannot be "
            f"downloaded from here; fetch {url} on a machine with a network into {path.parent} (or point "
            "TORCH_HOME at a folder whose hub/checkpoints holds it), or run with --no-pretrained"
        ) from None
    finally:
        socket.setdefaulttimeout(old)
    return path


def create_model(name: str, pretrained: bool, dropout: float, n_out: int = 2) -> torch.nn.Module:
    """fastai's body + head on a torchvision architecture; ImageNet weights in the body when ``pretrained``."""
    from fastai.vision.learner import create_vision_model

    fn = arch_fn(name)
    if not pretrained:
        return create_vision_model(fn, n_out=n_out, pretrained=False, ps=dropout)
    path = ensure_weights(name)
    try:
        return create_vision_model(fn, n_out=n_out, pretrained=True, weights=imagenet_weights(name), ps=dropout)
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, pickle.UnpicklingError) as e:
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"the ImageNet weights file {path} does not hold the weights of {name} ({why[:200]}); delete it and "
            f"fetch {imagenet_weights(name).url} again, or run with --no-pretrained"
        ) from None


def _squeezenet_v1_split(model: torch.nn.Module) -> list[list[torch.nn.Parameter]]:
    """fastai v1 split SqueezeNet at ``features[5]`` and ``features[8]`` (and the head): four layer groups,
    where fastai 2.8's ``_squeezenet_split`` makes three (``features[:5]``, ``features[5:]``, the head)."""
    features = model[0][0]
    parts = (features[:5], features[5:8], features[8:], model[1:])
    return [list(part.parameters()) for part in parts]


def splitter(name: str):
    """The layer groups of fastai v1's ``cnn_learner`` for ``name`` (fastai v1 ``vision/learner.py``
    ``model_meta``): fastai 2.8's splitter, which cuts ResNet, DenseNet, VGG and AlexNet where v1 did, into
    three groups; SqueezeNet as v1 cut it, into four."""
    from fastai.vision.learner import model_meta

    if name.startswith("squeezenet"):
        return _squeezenet_v1_split
    return model_meta[arch_fn(name)]["split"]


def format_weights(uses: dict[str, list[str]]) -> str:
    """``reproduce weights``: for each architecture (with the specs that use it), whether its ImageNet weights
    are in torchvision's cache, the file's name and size, and where the cache is."""
    rows = [cached_weights(arch) for arch in uses]
    folder = weights_file(next(iter(uses))).parent if uses else Path(torch.hub.get_dir()) / "checkpoints"
    home = os.environ.get("TORCH_HOME")
    lines = [
        f"torchvision's weights cache: {folder}",
        f"  (TORCH_HOME={home})" if home else "  (TORCH_HOME is not set: set it to use another hub/checkpoints)",
        "",
        f"{'arch':<14} {'state':<13} {'size':>10} {'torchvision':>11}  {'file':<30} specs",
    ]
    for w in rows:
        size = "-" if w.bytes is None else f"{w.bytes / 2**20:.1f} MiB"
        row = f"{w.arch:<14} {w.state:<13} {size:>10} {w.published_bytes / 2**20:>7.1f} MiB  {w.path.name:<30} "
        lines.append((row + ", ".join(uses[w.arch])).rstrip())
    missing = [w for w in rows if w.state != "cached"]
    lines += ["", f"{len(rows) - len(missing)} of {len(rows)} cached"]
    if missing:
        lines.append(
            "the full profile downloads a missing file where there is a network; offline, fetch each on a machine "
            f"with a network into {folder} (a file whose size differs from torchvision's: fetch it again):"
        )
        lines += [f"  {w.url}" for w in missing]
    return "\n".join(lines)
