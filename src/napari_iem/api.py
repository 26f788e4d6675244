"""The public API: :func:`segment`, :func:`iter_segment`, :func:`segment_batch`.

These functions take numpy arrays and return numpy arrays; torch stays inside.  The
work itself is a generator (:func:`iter_segment`) so that a GUI can show progress and
cancel: closing the generator stops the computation at the next iteration.
"""
from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .engine.autopreset import group_by_preset, resolve_preset
from .analysis.cleanup import drop_small_pieces
from .engine.devices import resolve_device
from .engine.memory import check_memory, estimate_bytes, with_cpu_fallback
from .engine.objective import region_maps
from .engine.optimize import optimize
from .engine.preprocess import (
    PreparedImage, check_init, prepare_image, resize_labels, resize_maps, settle_intensity,
)
from .engine.foreground import region_order
from .engine.presets import DEFAULT_PRESET, IEMParams, get_preset, preset_name

__all__ = ["IEMProgress", "IEMResult", "segment", "iter_segment", "segment_batch"]


class IEMProgress:
    """A snapshot yielded by :func:`iter_segment` after every iteration.

    ``labels`` (at full input size, the final labels' dtype) is built only when read:
    a GUI that previews every few iterations does not pay for the others.
    """

    def __init__(self, iteration: int, max_iterations: int, objective: float, labels):
        self.iteration = iteration
        self.max_iterations = max_iterations
        self.objective = objective
        self._labels = labels  # an array, or a function that makes it

    @property
    def labels(self) -> np.ndarray:
        if callable(self._labels):
            self._labels = self._labels()
        return self._labels

    def __repr__(self) -> str:
        return (f"IEMProgress(iteration={self.iteration}/{self.max_iterations}, "
                f"objective={self.objective:.4g})")


@dataclass
class IEMResult:
    """Everything a run produced, as numpy arrays at the input's spatial size.

    Attributes
    ----------
    labels : ndarray of uint8 (uint16 for more than 255 regions), shape (H, W)
        0 is background, 1..K-1 the other regions.
    masks : ndarray of bool, shape (K, H, W)
        ``masks[k] == (labels == k)``.
    inpainted : ndarray of float32, shape (K, H, W) or (K, H, W, C)
        ``inpainted[k]`` is the image predicted for region k from all the other regions,
        in the input's intensity units (channels last, as the input).
    error : ndarray of float32, shape (H, W)
        Per-pixel inpainting error of each pixel's own region (mean absolute difference
        over channels, on the [-1, 1] working scale).
    objective : list of float
        The IEM objective J before each iteration (it is maximised).
    iterations : int
        Iterations run.
    converged : bool
        True when the labels reached a fixed point before ``max_iter``.
    params : dict
        The parameters used (preset plus overrides), with ``preset`` and ``regions``.
    device : str
        The torch device the work ran on.
    seconds : float
        Wall-clock seconds of the whole call.
    metadata : dict
        Extra facts: for n-D calls (see :mod:`napari_iem.engine.axes`) the layout, sigma per
        axis, refinement; ``device_fallback`` when a GPU ran out of memory and the run
        was repeated on the CPU.
    instances : ndarray of int32 or None
        With ``instances=True``: one label per object of the foreground (0 background),
        see :func:`napari_iem.analysis.instances.split_instances`.

    For stacks (``mode="slices"`` or ``"volume"`` with leading axes) every array has the
    input's shape minus the channel axis (``masks`` and ``inpainted`` with K first),
    ``objective`` holds the final J of each slice or volume, ``iterations`` the largest
    count and ``converged`` is True when all converged.  With ``maps=False``,
    ``inpainted`` and ``error`` are None.
    """

    labels: np.ndarray
    masks: np.ndarray
    inpainted: np.ndarray
    error: np.ndarray
    objective: list[float]
    iterations: int
    converged: bool
    params: dict
    device: str
    seconds: float
    metadata: dict = field(default_factory=dict)
    instances: np.ndarray | None = None

    @property
    def regions(self) -> int:
        return self.masks.shape[0]

    def flipped(self) -> "IEMResult":
        """The same result with foreground and background swapped (K=2 only)."""
        if self.regions != 2:
            raise ValueError("flip swaps foreground and background; it needs regions=2")
        return replace(
            self,
            labels=(1 - self.labels).astype(self.labels.dtype),
            masks=self.masks[::-1].copy(),
            inpainted=None if self.inpainted is None else self.inpainted[::-1].copy(),
        )


def _params_for(preset: str, overrides: dict) -> IEMParams:
    return get_preset(preset).replace(**overrides)


def _check_regions(regions) -> int:
    if isinstance(regions, bool) or not isinstance(regions, (int, np.integer)):
        raise ValueError(f"regions must be a whole number from 2 to 64, got {regions!r}")
    if not 2 <= int(regions) <= 64:
        raise ValueError(
            f"regions must be from 2 to 64 (the number of partitions), got {regions}"
        )
    return int(regions)


def iter_segment(
    image: np.ndarray,
    regions: int = 2,
    *,
    preset: str = DEFAULT_PRESET,
    device: str = "auto",
    channel_axis: int | None = None,
    init: np.ndarray | None = None,
    locked: np.ndarray | None = None,
    flip: bool = False,
    mode: str = "2d",
    scale=None,
    sigma_units: str = "pixels",
    instances: bool = False,
    instance_options: dict | None = None,
    refine: bool = False,
    maps: bool = True,
    **overrides,
) -> Generator[IEMProgress, None, IEMResult]:
    """Segment ``image`` into ``regions`` parts, yielding progress after each iteration.

    The generator's return value (``StopIteration.value``, or the ``returned`` signal of
    a napari ``thread_worker``) is the :class:`IEMResult`.  Closing the generator stops
    the computation.

    Parameters
    ----------
    image : ndarray, shape (H, W), (H, W, 3|4) or with a ``channel_axis``
        Any numeric dtype.  RGBA loses its alpha channel.
    regions : int
        Number of partitions K (2 to 64).
    preset : str
        ``"default"`` (``"photo"`` for a photo or ``"microscopy"`` for a micrograph,
        chosen from the image and recorded in ``result.params["preset"]``, see
        :mod:`napari_iem.engine.autopreset`), ``"photo"`` (one object near the middle),
        ``"microscopy"`` (many small objects anywhere) or ``"paper"`` (the authors'
        algorithm, exactly); see :mod:`napari_iem.engine.presets`.
    device : str
        ``"auto"`` (cuda, then mps, then cpu) or a torch device string.
    channel_axis : int, optional
        Axis of ``image`` that holds channels, when not a trailing RGB(A) axis.
    init : ndarray of int, shape (H, W), or str, optional
        Start from these labels (0..K-1) instead of the preset's initialization; used to
        refine a user's correction.  The labels keep their numbers in the result (the
        ``foreground`` rule is not applied: what the user called 1 stays 1).  A string
        names an initialization instead (``"square"`` or ``"kmeans"``, the ``init``
        field of the parameters).
    locked : ndarray of bool, shape (H, W), optional
        Pixels whose label in ``init`` the optimiser may not change.
    flip : bool
        For K=2, swap foreground and background of the result.
    mode : str
        ``"2d"`` (one image), ``"slices"`` (every 2-D plane of a stack or time series)
        or ``"volume"`` (the last three axes as one 3-D problem); leading axes are
        iterated.  See :mod:`napari_iem.engine.axes`.
    scale : sequence of float, optional
        Pixel spacing of the spatial axes (a napari layer's ``scale``); makes the
        Gaussian anisotropic.
    sigma_units : str
        ``"pixels"`` (of the finest axis) or ``"physical"`` (the units of ``scale``).
    instances : bool
        Also split the foreground into objects (``result.instances``);
        ``instance_options`` go to :func:`napari_iem.analysis.instances.split_instances`.
    refine : bool
        With a working resolution (``max_size``) smaller than the input, refine the
        carried-up boundary at full resolution (:mod:`napari_iem.engine.multiscale`).
    maps : bool
        Return the inpaintings and error map (False saves memory on large inputs).
    **overrides
        Any field of :class:`napari_iem.engine.presets.IEMParams` (``sigma``, ``max_iter``,
        ``max_size``, ``percentile_low`` ...).

    Raises
    ------
    napari_iem.engine.memory.NotEnoughMemoryError
        Before any work, when the run cannot fit in the device's free memory.  On a GPU
        that runs out of memory anyway, the run is repeated on the CPU with a warning
        (``result.metadata["device_fallback"]``).
    """
    regions = _check_regions(regions)
    if isinstance(init, str):  # a named start, not labels
        overrides["init"], init = init, None
    preset = resolve_preset(preset, image, channel_axis)  # "default": photo or micrograph
    # intensity "auto" settled once for the whole input (a stack's slices alike) and
    # recorded in result.params
    params = settle_intensity(_params_for(preset, overrides), image)
    if init is not None:  # the user's labels keep their numbers (no foreground rule)
        params = params.replace(foreground="init")
    dev = resolve_device(device)
    nd_options = dict(
        mode=mode, channel_axis=channel_axis, scale=scale, sigma_units=sigma_units,
        instances=instances, instance_options=instance_options, refine=refine,
        maps=maps, init=init, locked=locked, flip=flip,
    )
    if (mode != "2d" or scale is not None or instances or refine or not maps
            or sigma_units != "pixels"):
        from .engine.axes import iter_segment_nd

        def attempt_nd(on):
            return iter_segment_nd(image, regions, params, preset, on, **nd_options)

        return (yield from with_cpu_fallback(attempt_nd, dev))

    def attempt(on):
        return _iter_2d(image, regions, params, preset, on, channel_axis, init, locked,
                        flip)

    return (yield from with_cpu_fallback(attempt, dev))


def _to_device(array: np.ndarray, dev) -> torch.Tensor:
    """``array`` as a tensor on ``dev`` (one place, so tests can fake a device)."""
    return torch.from_numpy(array).to(dev)


def _iter_2d(image, regions, params, preset, dev, channel_axis, init, locked, flip):
    """One 2-D image on one device: the body of :func:`iter_segment`."""
    start = time.perf_counter()
    prepared = prepare_image(image, params, channel_axis=channel_axis)
    init_t, locked_t = _prepare_init(init, locked, prepared, regions)
    channels, work = prepared.data.shape[0], prepared.data.shape[1:]
    check_memory(
        estimate_bytes(prepared.shape, channels, regions, work, input_itemsize=0),
        dev, what=f"an image of {'x'.join(map(str, prepared.shape))} pixels",
    )
    x = _to_device(prepared.data[None], dev)
    labels_dtype = np.uint8 if regions <= 255 else np.uint16
    gen = optimize(
        x, regions, params,
        init=None if init_t is None else init_t[None].to(dev),
        locked=None if locked_t is None else locked_t[None].to(dev),
    )
    state = None
    try:
        while True:
            state = next(gen)
            work = state.labels[0].clone()
            yield IEMProgress(
                state.iteration, params.max_iter, float(state.objective[0]),
                lambda work=work: resize_labels(
                    work.cpu().numpy().astype(labels_dtype), prepared.shape),
            )
    except StopIteration as stop:
        state = stop.value
    finally:
        gen.close()
    return _finish(state, 0, x, prepared, params, preset, regions, dev, flip, start)


def segment(image: np.ndarray, regions: int = 2, **kwargs) -> IEMResult:
    """Segment ``image`` into ``regions`` parts by Inpainting Error Maximization.

    Takes the same arguments as :func:`iter_segment` and returns its
    :class:`IEMResult` without the progress reports.

    Examples
    --------
    >>> from skimage import data
    >>> from napari_iem import segment
    >>> result = segment(data.coffee(), regions=2)
    >>> result.labels.shape
    (400, 600)
    """
    gen = iter_segment(image, regions, **kwargs)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def segment_batch(
    images: Sequence[np.ndarray],
    regions: int = 2,
    *,
    preset: str = DEFAULT_PRESET,
    device: str = "auto",
    channel_axis: int | None = None,
    flip: bool = False,
    **overrides,
) -> list[IEMResult]:
    """Segment many images, batching those of one working size into one tensor.

    Gives the same labels as calling :func:`segment` on each image, faster: the engine
    runs all images of one size together and drops each from the batch at its own fixed
    point.
    """
    if preset_name(preset) == DEFAULT_PRESET:  # each image picks; batch those that agree
        out: list = [None] * len(images)
        for name, idx in group_by_preset(images, channel_axis).items():
            batch = segment_batch([images[i] for i in idx], regions, preset=name,
                                  device=device, channel_axis=channel_axis, flip=flip,
                                  **overrides)
            for i, r in zip(idx, batch):
                out[i] = r
        return out
    start = time.perf_counter()
    regions = _check_regions(regions)
    params = _params_for(preset, overrides)
    dev = resolve_device(device)
    settled = [settle_intensity(params, im) for im in images]  # each image's own rule
    prepared = [prepare_image(im, p, channel_axis=channel_axis)
                for im, p in zip(images, settled)]
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(prepared):
        groups.setdefault(p.data.shape, []).append(i)
    results: list[IEMResult | None] = [None] * len(prepared)
    for idx in groups.values():
        x = torch.from_numpy(np.stack([prepared[i].data for i in idx])).to(dev)
        gen = optimize(x, regions, params)
        try:
            while True:
                next(gen)
        except StopIteration as stop:
            state = stop.value
        for b, i in enumerate(idx):
            results[i] = _finish(
                state, b, x, prepared[i], settled[i], preset, regions, dev, flip, start
            )
    return results  # type: ignore[return-value]


def _prepare_init(init, locked, prepared: PreparedImage, regions: int):
    """Bring a user's labels (and locked pixels) to the working resolution."""
    init, locked = check_init(init, locked, prepared.shape, regions)
    if init is None:
        return None, None
    work = prepared.data.shape[1:]
    init_w = resize_labels(init.astype(np.int64), work)
    init_t = torch.from_numpy(init_w.astype(np.int64))
    locked_t = None
    if locked is not None:
        locked_t = torch.from_numpy(resize_labels(locked.astype(np.uint8), work) > 0)
    return init_t, locked_t


def _finish(state, b, x, prepared, params, preset, regions, dev, flip, start) -> IEMResult:
    """Turn the optimiser's final state for image ``b`` into an :class:`IEMResult`."""
    labels_w = state.labels[b : b + 1]
    fg_rule = params.foreground
    inpainted_w, error_w = region_maps(x[b : b + 1], labels_w, regions, params)
    labels_np = labels_w[0].cpu().numpy()
    order = region_order(labels_np, regions, fg_rule)
    relabel = np.empty(regions, dtype=np.int64)
    relabel[order] = np.arange(regions)
    labels_np = relabel[labels_np]
    inpainted_np = inpainted_w[0].cpu().numpy()[order]  # (K, C, h, w)
    error_np = error_w[0].cpu().numpy()
    dtype = np.uint8 if regions <= 255 else np.uint16
    labels = drop_small_pieces(resize_labels(labels_np, prepared.shape).astype(dtype),
                               params.min_piece_size)
    inpainted = prepared.to_input_units(resize_maps(inpainted_np, prepared.shape))
    error = resize_maps(error_np[None], prepared.shape)[0]
    result = IEMResult(
        labels=labels,
        masks=np.stack([labels == k for k in range(regions)]),
        inpainted=inpainted.astype(np.float32),
        error=error.astype(np.float32),
        objective=list(state.history[b]),
        iterations=int(state.iterations[b]),
        converged=bool(state.converged[b]),
        params={"preset": preset, "regions": regions, **params.to_dict()},
        device=str(dev),
        seconds=time.perf_counter() - start,
    )
    return result.flipped() if flip else result
