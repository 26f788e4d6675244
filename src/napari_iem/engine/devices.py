"""Choosing a torch device: cuda, then mps, then cpu."""
from __future__ import annotations

import torch


def available_devices() -> list[str]:
    """Device names usable here, best first, always ending with ``"cpu"``."""
    names = [f"cuda:{i}" if i else "cuda" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    return names + ["cpu"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"`` or a device name into a usable :class:`torch.device`.

    Raises a ValueError that lists the usable devices when ``device`` is not one
    (``"cuda:1"`` on a machine with one GPU too: torch would fail only when the run
    first touches it).
    """
    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        return torch.device(available_devices()[0])
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"unknown device {device!r}; use 'auto' or one of {available_devices()}"
        ) from None
    usable = [torch.device(n) for n in available_devices()]  # cuda is cuda:0
    if dev.type not in {u.type for u in usable} or (
            dev.index and torch.device(dev.type, dev.index) not in usable):
        raise ValueError(
            f"device {device!r} is not available here; use 'auto' or one of "
            f"{available_devices()}"
        )
    return dev


def wide_dtype(device: torch.device) -> torch.dtype:
    """The precision for sums that must keep their digits (running sums, moments):
    float64, except on Apple's MPS, which has none (float32 there)."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64
