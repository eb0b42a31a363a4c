"""Which torch device to run on: CUDA, then Apple's MPS, then CPU, unless ATTN_DEVICE says otherwise."""

import os

import torch

ENV_VAR = "ATTN_DEVICE"


def available_devices() -> list[str]:
    devices = ["cpu"]
    if torch.backends.mps.is_available():
        devices.insert(0, "mps")
    if torch.cuda.is_available():
        devices.insert(0, "cuda")
    return devices


def default_device() -> str:
    """The device named by ATTN_DEVICE if it is available, else the fastest one present."""
    wanted = os.environ.get(ENV_VAR, "").strip().lower()
    devices = available_devices()
    if wanted:
        if wanted not in devices:
            raise ValueError(f"{ENV_VAR}={wanted!r} is not available here; choose one of {devices}")
        return wanted
    return devices[0]
