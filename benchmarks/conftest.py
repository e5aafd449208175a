"""Timing benchmarks: the machine's description goes into every saved JSON."""

from __future__ import annotations

import platform


def pytest_benchmark_update_machine_info(config, machine_info):
    import cv2
    import fastai
    import numpy
    import torch
    import torchvision

    machine_info["libraries"] = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "fastai": fastai.__version__,
        "numpy": numpy.__version__,
        "opencv": cv2.__version__,
    }
    machine_info["cpu_count"] = __import__("os").cpu_count()
    machine_info["platform"] = platform.platform()
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        from cnmc_repro.store.environment import nvidia_driver

        machine_info["gpu"] = {
            "name": props.name,
            "memory_gib": round(props.total_memory / 2**30, 1),
            "driver": nvidia_driver(),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
        }
    else:
        machine_info["gpu"] = None
