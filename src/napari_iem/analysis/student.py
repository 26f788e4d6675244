"""The student network of the distillation stage, and its file format.

:class:`StudentNet` is a U-Net-like CNN (up to four poolings, ``width`` channels at full
resolution) from a 1- or 3-channel image to one logit map, for any height and width (the
input is padded to a multiple of ``2**depth`` and the output cropped back).
:func:`save_student` / :func:`load_student` keep weights and configuration in one file
that loads without running code (``torch.load(weights_only=True)``).  Training and
prediction are in :mod:`napari_iem.analysis.distill`.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..engine.devices import resolve_device

__all__ = ["DEFAULT_DEPTH", "DEFAULT_WIDTH", "StudentNet", "save_student", "load_student"]

#: Channels of the first block; deeper blocks have 2x, 4x and 8x as many.
DEFAULT_WIDTH = 16
#: Most 2x poolings chosen automatically: at 128 pixels the coarsest level is 8x8, so
#: the network's receptive field spans the object.
DEFAULT_DEPTH = 4
_FORMAT = "napari-iem-student"


# --------------------------------------------------------------------------- network

def _block(cin: int, cout: int) -> nn.Sequential:
    """Two 3x3 convolutions with GroupNorm and ReLU.

    GroupNorm rather than BatchNorm: it behaves the same in training and prediction, so
    a student trained for a few steps on a handful of images predicts as it trained.
    """
    groups = 4 if cout % 4 == 0 else 1
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(groups, cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.GroupNorm(groups, cout),
        nn.ReLU(inplace=True),
    )


class StudentNet(nn.Module):
    """A small U-Net: ``depth`` poolings, skip connections, one logit map out.

    Parameters
    ----------
    in_channels : int
        1 (grey) or 3 (colour).
    width : int
        Channels at full resolution, doubled at each coarser level up to 8x.  Small
        on purpose: enough to learn one data set's figure/ground cues, few enough to
        train on a CPU and not to memorise every pseudo-label's mistakes.
    depth : int
        Number of 2x poolings (1 to 5).  Each one doubles the receptive field, which
        has to span the object for the network to learn shapes, not just textures;
        the coarse levels cost little because they have few pixels.

    Notes
    -----
    Any height and width is accepted: the input is padded (edge values repeated) to a
    multiple of ``2**depth`` and the logits are cropped back.  Upsampling is bilinear
    interpolation, available on every torch device.
    """

    def __init__(self, in_channels: int = 3, width: int = DEFAULT_WIDTH,
                 depth: int = DEFAULT_DEPTH):
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
        w, depth = int(width), int(depth)
        if not 1 <= depth <= 5:
            raise ValueError(f"depth must be from 1 to 5, got {depth}")
        self.in_channels = in_channels
        self.width = w
        self.depth = depth
        chans = [w * min(2**i, 8) for i in range(depth + 1)]
        self.down = nn.ModuleList(
            [_block(in_channels, chans[0])]
            + [_block(chans[i - 1], chans[i]) for i in range(1, depth + 1)])
        self.up = nn.ModuleList(
            [_block(chans[i + 1] + chans[i], chans[i]) for i in range(depth)])
        self.head = nn.Conv2d(chans[0], 1, 1)
        self.config: dict = {"in_channels": in_channels, "width": w, "depth": depth}

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N, 1, H, W)
        h, w = x.shape[-2:]
        m = 2**self.depth
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for i in reversed(range(self.depth)):
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = self.up[i](torch.cat([x, skip], 1))
        return self.head(x)[..., :h, :w]


# --------------------------------------------------------------------------- data

# --------------------------------------------------------------------------- files

def save_student(model: StudentNet, path: str | os.PathLike) -> Path:
    """Write the weights and configuration to ``path`` (a torch file), atomically.

    The file holds only tensors and plain values, so :func:`load_student` reads it with
    ``torch.load(weights_only=True)``: loading a student never runs code from the file.
    """
    from ..files.io import atomic_output

    path = Path(path)
    if path.parent and not path.parent.is_dir():
        raise FileNotFoundError(f"folder for the model file does not exist: {path.parent}")
    config = {k: v for k, v in model.config.items()}
    payload = {
        "format": _FORMAT,
        "version": 1,
        "config": config,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_student(path: str | os.PathLike,
                 device: str | torch.device = "auto") -> StudentNet:
    """Read a model written by :func:`save_student`, in evaluation mode on ``device``.

    Raises
    ------
    ValueError
        When the file is not a napari-iem student (or is damaged).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable torch file: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ValueError(f"{path}: not a napari-iem student model")
    config = dict(payload["config"])
    model = StudentNet(int(config["in_channels"]), int(config["width"]),
                       int(config.get("depth", DEFAULT_DEPTH)))
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise ValueError(
            f"{path}: weights do not fit the recorded network: {exc}") from None
    model.config.update(config)
    return model.to(resolve_device(device)).eval()
