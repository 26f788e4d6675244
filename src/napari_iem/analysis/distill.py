"""The paper's optional second stage: a small network trained on IEM's own masks.

IEM segments each image on its own, so its masks carry per-image mistakes (a leg cut
off here, a shadow taken in there).  Savarese et al. (CVPR 2021, "IEM+SegNet") train a
segmentation network on the masks of a *whole data set* (pseudo-labels, per-pixel
cross-entropy) and then predict with it: a network that has to fit all images with one
set of weights cannot reproduce every individual mistake, so it keeps what the masks
agree on and smooths out some of the rest.  The paper gains about 2 IoU points with it.

This module is that stage, small enough to train on a CPU in minutes:

* :class:`StudentNet`: a U-Net-like CNN (up to four poolings, ``width`` channels at
  full resolution) from a 1- or 3-channel image to one logit map; any height and
  width (the input is padded to a multiple of ``2**depth`` and the output cropped
  back).
* :func:`train_student`: images and masks (any sizes) are resized to one square working
  size, then trained with binary cross-entropy, AdamW and a cosine learning-rate
  schedule, with random horizontal (optionally vertical) flips.  Deterministic for a
  given ``seed`` on the CPU.
* :func:`predict_student`: each image at the working size, the foreground probability
  resized back to the image's size and thresholded: uint8 labels, 0 background,
  1 foreground.
* :func:`save_student` / :func:`load_student`: weights and configuration in one file
  (:mod:`napari_iem.analysis.student`, with the network).

The student is binary: any mask label > 0 is foreground (K-region IEM labels are learned
as "not background").  Plain torch and numpy (scikit-image for resizing); no Qt, no
napari, and only operations that run on CUDA and Apple MPS as well as on the CPU.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..engine.devices import resolve_device
from .student import DEFAULT_DEPTH, DEFAULT_WIDTH, StudentNet, load_student, save_student

__all__ = [
    "DEFAULT_DEPTH",
    "DEFAULT_EPOCHS",
    "DEFAULT_SIZE",
    "DEFAULT_WIDTH",
    "MAX_EPOCHS",
    "StudentNet",
    "image_to_input",
    "train_student",
    "student_probabilities",
    "predict_student",
    "save_student",
    "load_student",
]

#: Epochs (passes over all images) by default; see :func:`train_student`.
DEFAULT_EPOCHS = 30
#: Side of the square working resolution the student sees (the paper's protocol size).
DEFAULT_SIZE = 128
#: More epochs than this is refused as a typo (days of CPU time on a modest set).
MAX_EPOCHS = 10_000
_PERCENTILES = (1.0, 99.8)


def image_to_input(image, index: int | None = None) -> np.ndarray:
    """An image as the student's input: ``(C, H, W)`` float32 in [-1, 1], C = 1 or 3.

    8-bit images are scaled as ``x / 127.5 - 1`` (an 8-bit photo's full range is
    meaningful, and a fixed rule keeps colour balance); any other dtype per channel from
    its 1st to 99.8th percentile and clipped (16-bit micrographs use a few hundred of
    their levels).  Grey+alpha keeps grey, RGBA drops alpha.

    Parameters
    ----------
    image : array_like
        ``(H, W)``, ``(H, W, 1|2)`` or ``(H, W, 3|4)``.
    index : int, optional
        Position in a list, only for error messages.
    """
    where = "" if index is None else f"image {index}: "
    img = np.asarray(image)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if not (np.issubdtype(img.dtype, np.integer) or np.issubdtype(img.dtype, np.floating)):
        raise ValueError(f"{where}must hold real numbers, got dtype {img.dtype}")
    if img.ndim == 3 and img.shape[-1] in (1, 2):
        img = img[..., 0]
    if img.ndim == 2:
        img = img[..., None]
    elif not (img.ndim == 3 and img.shape[-1] in (3, 4)):
        raise ValueError(
            f"{where}expected a 2-D grey (H, W) or colour (H, W, 3|4) image, got shape "
            f"{img.shape}; the student segments 2-D images (split stacks into planes)"
        )
    img = img[..., :3]
    if img.size == 0 or min(img.shape[:2]) < 1:
        raise ValueError(f"{where}is empty (shape {img.shape})")
    if np.issubdtype(img.dtype, np.floating) and not np.isfinite(img).all():
        raise ValueError(f"{where}has NaN or infinite pixels; replace them first")
    if img.dtype == np.uint8:
        out = img.astype(np.float32) / 127.5 - 1.0
    else:
        flat = img.reshape(-1, img.shape[-1]).astype(np.float64)
        low, high = np.percentile(flat, _PERCENTILES, axis=0)
        flat_span = high <= low
        low = np.where(flat_span, flat.min(0), low)
        high = np.where(flat_span, flat.max(0), high)
        span = np.where(high > low, high - low, 1.0)
        out = np.clip((img - low) / span * 2 - 1, -1, 1).astype(np.float32)
    return np.ascontiguousarray(np.moveaxis(out, -1, 0))


def _match_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """Grey repeated to 3 channels, or colour averaged to 1, to fit the network."""
    if x.shape[0] == channels:
        return x
    if channels == 3:
        return np.repeat(x, 3, axis=0)
    return x.mean(axis=0, keepdims=True)


def _to_working(x: np.ndarray, size: int, order: int = 1) -> np.ndarray:
    """``(C, H, W)`` float resized to ``(C, size, size)``; smoothed when shrinking so
    that fine texture does not alias."""
    from skimage.transform import resize

    if x.shape[-2:] == (size, size):
        return x.astype(np.float32, copy=False)
    shrink = max(x.shape[-2:]) > size
    return resize(x, (x.shape[0], size, size), order=order, preserve_range=True,
                  anti_aliasing=shrink, mode="edge").astype(np.float32)


def _check_int(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if not low <= int(value) <= high:
        raise ValueError(f"{name} must be from {low} to {high}, got {value}")
    return int(value)


# --------------------------------------------------------------------------- training

def train_student(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    *,
    epochs: int = DEFAULT_EPOCHS,
    device: str | torch.device = "auto",
    seed: int = 0,
    size: int = DEFAULT_SIZE,
    width: int = DEFAULT_WIDTH,
    depth: int | None = None,
    batch_size: int = 8,
    lr: float = 3e-3,
    vflip: bool = False,
    progress: Callable[[int, int, float], None] | None = None,
) -> StudentNet:
    """Train a :class:`StudentNet` on images and their IEM masks (pseudo-labels).

    Parameters
    ----------
    images : sequence of ndarray
        2-D grey or colour images, any sizes (see :func:`image_to_input`).
    masks : sequence of ndarray
        One label image per image, of the image's height and width; > 0 is foreground.
        These are IEM's outputs: the method stays unsupervised.
    epochs : int
        Passes over all images (1 to :data:`MAX_EPOCHS`).  The step count is
        ``epochs * ceil(len(images) / batch_size)``, so a handful of images needs more
        epochs than a data set of hundreds.  Long training lets the network memorise
        the masks' individual mistakes, which is what the stage is meant to smooth out.
    device : str or torch.device
        ``"auto"`` (CUDA, then MPS, then CPU), or a device name.
    seed : int
        Seeds the weights, the image order and the flips: the same seed gives the same
        weights on the CPU (GPU kernels may differ in the last bits).
    size : int
        Side of the square working resolution every image and mask is resized to
        (16 to 1024).  One size lets images of any size share a batch; 128 is the
        paper's protocol.  Non-square images are stretched; predictions are resized back.
    width : int
        Channels of the first block (2 to 128); cost grows with its square.
    depth : int, optional
        Poolings of the U-Net (1 to 5), see :class:`StudentNet`.  By default as many
        as leave the coarsest level at least 8 pixels wide, at most
        :data:`DEFAULT_DEPTH` (4 at size 128, 2 at size 32).
    batch_size : int
        Images per optimisation step.
    lr : float
        Peak learning rate of AdamW, decayed to 0 along a cosine.
    vflip : bool
        Also flip vertically at random (micrographs have no "up"; photos do).
    progress : callable, optional
        Called after each epoch as ``progress(epoch, epochs, mean_loss)``.

    Returns
    -------
    StudentNet
        In evaluation mode, on ``device``; ``model.config`` records the settings and the
        loss of each epoch.

    Raises
    ------
    ValueError
        No images, counts or shapes that do not match, masks without any foreground
        or background at all, or settings out of range.
    """
    images, masks = list(images), list(masks)
    if not images:
        raise ValueError("no images to train on: give at least one image and its mask")
    if len(images) != len(masks):
        raise ValueError(f"{len(images)} images but {len(masks)} masks: give one mask "
                         "per image, in the same order")
    epochs = _check_int("epochs", epochs, 1, MAX_EPOCHS)
    size = _check_int("size", size, 16, 1024)
    width = _check_int("width", width, 2, 128)
    if depth is None:
        depth = max(1, min(DEFAULT_DEPTH, int(math.log2(size / 8))))
    depth = _check_int("depth", depth, 1, 5)
    batch_size = _check_int("batch_size", batch_size, 1, 4096)
    seed = _check_int("seed", seed, 0, 2**63 - 1)
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    dev = resolve_device(device)

    inputs = [image_to_input(im, i) for i, im in enumerate(images)]
    targets = []
    for i, (x, m) in enumerate(zip(inputs, masks)):
        m = np.asarray(m)
        if m.shape != x.shape[1:]:
            raise ValueError(
                f"image {i}: mask shape {m.shape} but the image is "
                f"{'x'.join(map(str, x.shape[1:]))} pixels; masks must match their images"
            )
        targets.append((m > 0).astype(np.float32)[None])
    fg = sum(float(t.sum()) for t in targets)
    if fg == 0 or fg == sum(t.size for t in targets):
        raise ValueError("every mask is all " + ("background" if fg == 0 else "foreground")
                         + ": there is nothing to learn (were these IEM labels?)")
    channels = 3 if any(x.shape[0] == 3 for x in inputs) else 1
    x_all = np.stack([_to_working(_match_channels(x, channels), size) for x in inputs])
    y_all = np.stack([_to_working(t, size) for t in targets]).clip(0, 1)  # soft edges
    del inputs, targets

    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG alone
        torch.manual_seed(seed)
        model = StudentNet(channels, width, depth)
    model.to(dev).train()
    rng = np.random.default_rng(seed)
    n = len(x_all)
    steps_per_epoch = -(-n // batch_size)
    total = epochs * steps_per_epoch
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    losses = []
    for epoch in range(epochs):
        order = rng.permutation(n)
        epoch_loss = 0.0
        for b in range(steps_per_epoch):
            idx = order[b * batch_size:(b + 1) * batch_size]
            xb, yb = x_all[idx], y_all[idx]
            flip = rng.random(len(idx)) < 0.5
            xb = np.where(flip[:, None, None, None], xb[..., ::-1], xb)
            yb = np.where(flip[:, None, None, None], yb[..., ::-1], yb)
            if vflip:
                flip = rng.random(len(idx)) < 0.5
                xb = np.where(flip[:, None, None, None], xb[..., ::-1, :], xb)
                yb = np.where(flip[:, None, None, None], yb[..., ::-1, :], yb)
            xt = torch.from_numpy(np.ascontiguousarray(xb)).to(dev)
            yt = torch.from_numpy(np.ascontiguousarray(yb)).to(dev)
            loss = F.binary_cross_entropy_with_logits(model(xt), yt)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            epoch_loss += float(loss.detach()) * len(idx)
        losses.append(epoch_loss / n)
        if progress is not None:
            progress(epoch + 1, epochs, losses[-1])
    model.eval()
    model.config.update({"size": size, "epochs": epochs, "seed": seed,
                         "batch_size": batch_size, "lr": float(lr), "vflip": bool(vflip),
                         "n_images": n, "losses": losses})
    return model


# --------------------------------------------------------------------------- prediction

def student_probabilities(model: StudentNet, images: Sequence[np.ndarray],
                          device: str | torch.device = "auto",
                          batch_size: int = 16) -> list[np.ndarray]:
    """Foreground probability of every pixel, ``(H, W)`` float32 per image.

    Each image is resized to the model's working size, passed through the network, and
    its probability map resized back (linearly, so boundaries are smooth rather than
    blocky when the image is larger than the working size).  ``model`` is moved to
    ``device``.
    """
    from ..engine.preprocess import resize_maps

    images = list(images)
    if not images:
        return []
    batch_size = _check_int("batch_size", batch_size, 1, 4096)
    dev = resolve_device(device)
    size = int(model.config.get("size", DEFAULT_SIZE))
    channels = model.in_channels
    inputs = [image_to_input(im, i) for i, im in enumerate(images)]
    shapes = [x.shape[1:] for x in inputs]
    work = np.stack([_to_working(_match_channels(x, channels), size) for x in inputs])
    del inputs
    model.to(dev).eval()
    probs = []
    with torch.no_grad():
        for b in range(0, len(work), batch_size):
            xt = torch.from_numpy(work[b:b + batch_size]).to(dev)
            probs.append(torch.sigmoid(model(xt))[:, 0].float().cpu().numpy())
    probs = np.concatenate(probs)
    return [np.clip(resize_maps(p, shape), 0, 1) for p, shape in zip(probs, shapes)]


def predict_student(model: StudentNet, images: Sequence[np.ndarray],
                    device: str | torch.device = "auto", *,
                    threshold: float = 0.5, batch_size: int = 16) -> list[np.ndarray]:
    """The student's labels for each image: uint8 ``(H, W)``, 0 background, 1 foreground.

    Parameters
    ----------
    model : StudentNet
        From :func:`train_student` or :func:`load_student`.
    images : sequence of ndarray
        2-D grey or colour images of any sizes; labels come back at each image's size.
    device : str or torch.device
        Where to run the network (the model is moved there).
    threshold : float
        Foreground where the probability exceeds it (0.5: the likelier class).
    batch_size : int
        Images per forward pass (memory, not results).
    """
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must lie strictly between 0 and 1, got {threshold}")
    return [(p > threshold).astype(np.uint8)
            for p in student_probabilities(model, images, device, batch_size)]
