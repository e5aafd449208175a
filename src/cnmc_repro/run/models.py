"""The architectures of the report (section 2.3.3), built as fastai's ``cnn_learner`` built them.

fastai cuts the torchvision network before its pooling and adds its head (concat pooling, batch norm,
dropout ``ps``, a 512-unit layer, two outputs); the body and head are the parameter groups that
``freeze``/``unfreeze`` and discriminative learning rates act on.
"""

from __future__ import annotations

import socket
import typing
from pathlib import Path

import torch
import torchvision

from cnmc_repro.errors import UserError
from cnmc_repro.spec.schema import Arch

ARCHS = typing.get_args(Arch)


def arch_fn(name: str):
    if name not in ARCHS:
        raise UserError(f"unknown architecture {name!r}; known: {', '.join(ARCHS)}")
    return getattr(torchvision.models, name)


def weights_file(name: str) -> Path:
    """Where torchvision keeps the ImageNet weights of ``name`` (``$TORCH_HOME/hub/checkpoints``)."""
    url = torchvision.models.get_model_weights(name).DEFAULT.url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def ensure_weights(name: str) -> Path:
    """The cached ImageNet weights of ``name``; fetched once if a network answers, else a clear error."""
    path = weights_file(name)
    if path.is_file():
        return path
    url = torchvision.models.get_model_weights(name).DEFAULT.url
    old = socket.getdefaulttimeout()
    try:
        socket.setdefaulttimeout(15)
        torch.hub.download_url_to_file(url, str(path), progress=False)
    except Exception:
        path.unlink(missing_ok=True)
        raise UserError(
            f"the pretrained ImageNet weights of {name} are not in torchvision's cache ({path}) and cannot be "
            f"downloaded from here; fetch {url} on a machine with a network into {path.parent}, "
            "or run with --no-pretrained"
        ) from None
    finally:
        socket.setdefaulttimeout(old)
    return path


def create_model(name: str, pretrained: bool, dropout: float, n_out: int = 2) -> torch.nn.Module:
    """fastai's body + head on a torchvision architecture; ImageNet weights in the body when ``pretrained``."""
    from fastai.vision.learner import create_vision_model

    fn = arch_fn(name)
    if pretrained:
        ensure_weights(name)
    return create_vision_model(fn, n_out=n_out, pretrained=pretrained, ps=dropout)


def splitter(name: str):
    """fastai's body/head parameter groups for ``name``."""
    from fastai.vision.learner import model_meta

    return model_meta[arch_fn(name)]["split"]
