"""Memory: estimate a run's needs before it starts, refuse clearly, fall back from a GPU.

IEM's working memory grows with the number of pixels (voxels) it optimises at once:
every iteration filters a few float32 maps per channel and region.  A run that cannot fit
should say so before it starts, with what to change, rather than swap the machine to a
halt or die half way.  :func:`check_memory` does that from :func:`estimate_bytes` and the
free memory of the device (``psutil`` for RAM, ``torch.cuda.mem_get_info`` on a GPU).

On a GPU the estimate can still be wrong (another process, fragmentation): an
out-of-memory error there does not fail the run, :func:`with_cpu_fallback` reruns it on
the CPU with a warning and records it in ``result.metadata["device_fallback"]``.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Generator

import torch

from .caller import warn_at_caller

__all__ = [
    "NotEnoughMemoryError", "estimate_bytes", "output_bytes", "available_bytes", "check_memory",
    "is_out_of_memory", "with_cpu_fallback",
]

#: Share of the free memory a run may plan to use (the rest is headroom: Python,
#: napari, the estimate's error).
USABLE_FRACTION = 0.8


class NotEnoughMemoryError(MemoryError, ValueError):
    """A run would not fit in memory; the message says what to change.

    A :class:`MemoryError` (so generic handlers treat it as one) and a
    :class:`ValueError` (the request, not the machine, has to change).
    """


def _engine_floats_per_pixel(channels: int, regions: int) -> int:
    """float32 maps alive at once per working pixel during one iteration (measured
    peak RSS of the K = 2 and K = 3 paths, rounded up)."""
    if regions == 2:
        return 12 * channels + 28
    return regions * (6 * channels + 10) + 4 * channels + 16


def estimate_bytes(full_shape, channels: int, regions: int, work_shape=None, *,
                   batch: int = 1, maps: bool = True, input_itemsize: int = 8,
                   problems: int = 1) -> dict[str, int]:
    """Bytes a run needs, split into ``engine`` (where the optimiser runs) and ``host``.

    Parameters
    ----------
    full_shape : tuple of int
        Spatial shape of one problem at full size (2-D image or 3-D volume).
    channels, regions : int
        C and K.
    work_shape : tuple of int, optional
        Working (optimisation) shape; default ``full_shape``.
    batch : int
        Problems optimised together.
    maps : bool
        Whether the per-region inpaintings and error map are returned at full size.
    input_itemsize : int
        Bytes per input value (the input itself is not counted, it exists already).
    problems : int
        Problems (slices, volumes) in the whole input: the outputs hold all of them.
    """
    work_shape = full_shape if work_shape is None else work_shape
    n_full, n_work = math.prod(full_shape), math.prod(work_shape)
    engine = batch * n_work * 4 * _engine_floats_per_pixel(channels, regions)
    engine += sum(min(n, 512) * n * 4 * 2 for n in work_shape)  # filter matrices
    # preparing one problem: float32 copy, float64 chunk temporaries, resize buffers
    prep = n_full * channels * 4 * 2 + batch * n_work * channels * 4
    if tuple(work_shape) != tuple(full_shape):
        prep += n_full * channels * 8 * 2  # skimage's float64 anti-aliasing
    outputs = output_bytes(full_shape, channels, regions, maps=maps, problems=problems)
    return {"engine": int(engine), "host": int(prep + outputs)}


def output_bytes(full_shape, channels: int, regions: int, *, maps: bool = True,
                 problems: int = 1) -> int:
    """Bytes of a run's outputs (labels, masks, and the maps when asked for): what a
    result keeps once its run is over, so what the runs of one batch hold together."""
    per_output = 1 + regions + (4 * regions * channels + 4 if maps else 0)
    return problems * math.prod(full_shape) * per_output


def available_bytes(device) -> int:
    """Free memory of ``device`` now: RAM for the CPU (and MPS), the GPU's for CUDA."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def _gb(n: int) -> str:
    return f"{n / 2**30:.1f} GB"


def input_words(layout) -> str:
    """The input a refusal is about: its shape, and its mode when it is not one 2-D
    image (there the mode says nothing, and the widget has no mode control)."""
    shape = "x".join(map(str, layout.shape))
    mode = "" if layout.mode == "2d" else f" (mode={layout.mode!r})"
    return f"an input of shape {shape}{mode}"


def _advice(asked: dict | None, gpu: bool) -> str:
    """What lowers a run's memory, in the API's words (the command line and the widget
    word them as theirs), and only what the run has not done yet or can use: a working
    resolution, slices instead of a volume and no maps, of those the run ``asked`` for
    (its ``max_size``, ``mode`` and ``maps``; None: all of them), then cropping, and
    the CPU when the run is on a GPU."""
    asked = asked or {}
    steps = []
    if asked.get("max_size") is None or asked["max_size"] > 512:
        steps.append("lower the working resolution (max_size=512) and recover "
                     "full-resolution edges with refine=True")
    if asked.get("mode", "volume") == "volume":
        steps.append("segment a stack with mode='slices' instead of mode='volume'")
    if asked.get("maps", True):
        steps.append("skip the inpainting maps (maps=False)")
    steps.append("crop the image (or, grey, segment it block by block with "
                 "napari_iem.segment_blocks)")
    if gpu:
        steps.append("run on the CPU (device='cpu')")
    return ", ".join(steps[:-1]) + ", or " + steps[-1] if len(steps) > 1 else steps[0]


def check_memory(need: dict[str, int], device, *, what: str = "this image",
                 asked: dict | None = None) -> None:
    """Raise :class:`NotEnoughMemoryError` when ``need`` cannot fit on ``device``.

    ``need`` is :func:`estimate_bytes`'s answer.  On a CUDA device the engine part is
    compared with the GPU's free memory and the host part with RAM; elsewhere their
    sum is compared with RAM.  ``asked``: the run's ``max_size``, ``mode`` and ``maps``,
    so that the message advises only what is left to change (:func:`_advice`).
    """
    device = torch.device(device)
    ram = available_bytes("cpu")
    if device.type == "cuda" and torch.cuda.is_available():
        gpu = available_bytes(device)
        if need["engine"] > USABLE_FRACTION * gpu:
            raise NotEnoughMemoryError(
                f"IEM on {what} needs about {_gb(need['engine'])} of GPU memory but "
                f"{device} has {_gb(gpu)} free: {_advice(asked, gpu=True)}"
            )
        host = need["host"]
    else:
        host = need["engine"] + need["host"]
    if host > USABLE_FRACTION * ram:
        raise NotEnoughMemoryError(
            f"IEM on {what} needs about {_gb(host)} of memory but only {_gb(ram)} is "
            f"available: {_advice(asked, gpu=False)}"
        )


def is_out_of_memory(exc: BaseException) -> bool:
    """True for torch's CUDA out-of-memory error and RuntimeErrors that say so."""
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def with_cpu_fallback(attempt: Callable[[torch.device], Generator], device
                      ) -> Generator:
    """Run the generator ``attempt(device)``; on a GPU out-of-memory error, warn and
    run ``attempt(cpu)`` instead.  Returns the attempt's result (an IEMResult or a
    list of them), whose ``metadata["device_fallback"]`` then says what happened."""
    device = torch.device(device)
    try:
        return (yield from attempt(device))
    except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled
        if device.type == "cpu" or not is_out_of_memory(exc):
            raise
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
    message = (
        f"IEM ran out of memory on {device}; running on the CPU instead (slower). "
        "A smaller working resolution (max_size) keeps it on the GPU."
    )
    warn_at_caller(message, RuntimeWarning)
    result = yield from attempt(torch.device("cpu"))
    for one in result if isinstance(result, list) else [result]:
        one.metadata["device_fallback"] = {
            "from": str(device), "to": "cpu", "reason": reason, "message": message,
        }
    return result
