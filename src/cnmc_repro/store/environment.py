"""What a run ran on: git commit, library versions, processor, host, device, GPU and driver (``environment.json``)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from cnmc_repro.run.keys import code_version


def environment(device: str) -> dict[str, Any]:
    import cv2
    import fastai
    import numpy
    import sklearn
    import torch
    import torchvision

    env: dict[str, Any] = {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain")),
        "code_version": code_version(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": processor(),
        "cpu_count": os.cpu_count(),
        "libraries": {
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "fastai": fastai.__version__,
            "numpy": numpy.__version__,
            "scikit-learn": sklearn.__version__,
            "opencv": cv2.__version__,
        },
        "device": device,
        # where it ran: the node and, under Ray, the GPU Ray gave it; and the CPU threads its sums were split among
        "host": platform.node(),
        "pid": os.getpid(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "torch_threads": torch.get_num_threads(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
        env["driver"] = nvidia_driver()
    return env


def processor() -> str:
    """The processor's name with its family and model ("AMD EPYC (family 25, model 17, AVX-512)"): CPU kernels, and
    so the last bits of trained figures, differ between processors that share a name."""
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().splitlines()[:40] if ":" in line)
    except OSError:
        return platform.processor() or platform.machine()
    info = {k.strip(): v.strip() for k, v in info.items()}
    parts = [f"family {info.get('cpu family', '?')}", f"model {info.get('model', '?')}"]
    if "avx512f" in info.get("flags", "").split():
        parts.append("AVX-512")
    return f"{info.get('model name', platform.machine())} ({', '.join(parts)})"


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def nvidia_driver() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None
