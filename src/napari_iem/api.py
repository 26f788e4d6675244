"""The Python face: :func:`segment`, :func:`iter_segment`, :func:`segment_batch`.

Numpy arrays in, numpy arrays out; torch stays inside.  Each function builds one
checked :class:`~napari_iem.engine.request.SegmentRequest` per image and hands it to the
one pipeline (:mod:`napari_iem.engine.pipeline`), as the CLI, the batch runner and the
widget do.  Their keywords are the knobs of :mod:`napari_iem.engine.knobs` (the
signatures and the parameter lists below are made from that table) plus the few that
describe the data itself.
"""
from __future__ import annotations

import inspect
from collections.abc import Generator, Iterable, Sequence

import numpy as np

from .engine import pipeline
from .engine.knobs import BY_NAME, KNOBS
from .engine.request import DATA_KEYWORDS, build_request, check_keywords
from .engine.result import IEMProgress, IEMResult

__all__ = ["IEMProgress", "IEMResult", "segment", "iter_segment", "segment_batch"]

REFERENCES = """
    References
    ----------
    .. [1] P. Savarese, S. S. Y. Kim, M. Maire, G. Shakhnarovich, D. McAllester,
       "Information-Theoretic Segmentation by Inpainting Error Maximization",
       CVPR 2021, arXiv:2012.07287."""

IMAGE_DOCS = """
    image : ndarray
        Any real dtype: (H, W), (H, W, 3|4) RGB(A), or with a ``channel_axis``; for
        ``mode="slices"`` or ``"volume"`` leading axes (Z, T, ...) too.  RGBA loses
        its alpha channel (with a warning when it varies: ``channel_axis=-1`` keeps
        four channels).  NaN and constant images are refused."""

DATA_DOCS = """
    channel_axis : int, optional
        Axis of ``image`` that holds channels, when not a trailing RGB(A) axis.
    init : ndarray of int, or str, optional
        Start from these labels (0..regions-1, the image's shape without channels)
        instead of the preset's start; used to refine a user's correction.  They keep
        their numbers in the result (no foreground rule).  A string names a start
        instead (the ``init`` knob: ``"square"`` or ``"kmeans"``).
    locked : ndarray of bool, optional
        Pixels whose ``init`` label must not change; they never do, whatever the
        other options (clean-up, refinement).
    scale : sequence of float, optional
        Pixel spacing of the spatial axes (or of every non-channel axis, as a napari
        layer's ``scale``); makes the Gaussian anisotropic.
    instance_options : dict, optional
        Keywords of :func:`napari_iem.analysis.instances.split_instances`."""


def _knob_docs(names) -> str:
    lines = []
    for k in KNOBS:
        if k.name in names:
            kind = k.type.__name__ + (" or None" if k.optional else "")
            lines += [f"    {k.name} : {kind}, default {k.default!r}",
                      f"        {k.help} Allowed: {k.allowed()}."]
    return "\n".join(lines)


def _derive(func, first="image"):
    """Give ``func`` the signature and parameter list of the knob table: ``first``
    (the image, or the images of a batch), the data keywords, the knobs."""
    P = inspect.Parameter
    params = [P(first, P.POSITIONAL_OR_KEYWORD),
              P("regions", P.POSITIONAL_OR_KEYWORD, default=2)]
    names = [k.name for k in KNOBS if k.name not in ("regions", *DATA_KEYWORDS)]
    params += [P(n, P.KEYWORD_ONLY, default=None) for n in DATA_KEYWORDS]
    params += [P(n, P.KEYWORD_ONLY, default=BY_NAME[n].default) for n in names]
    func.__signature__ = inspect.Signature(params)
    func.__doc__ = func.__doc__.replace("    {image}", IMAGE_DOCS.strip("\n"))
    func.__doc__ = func.__doc__.replace("    {data}", DATA_DOCS.strip("\n"))
    func.__doc__ = func.__doc__.replace("    {knobs}", _knob_docs(["regions", *names]))
    func.__doc__ = func.__doc__.replace("    {references}", REFERENCES.strip("\n"))
    return func


def iter_segment(image, regions=2, **options) -> Generator[IEMProgress, None, IEMResult]:
    """Segment ``image`` into ``regions`` parts, yielding progress after each iteration.

    The generator's return value (``StopIteration.value``, or the ``returned`` signal
    of a napari ``thread_worker``) is the :class:`IEMResult`.  Closing the generator
    stops the computation at the next iteration.  Everything is checked before any
    work starts.

    Parameters
    ----------
    {image}
    {data}
    {knobs}

    Yields
    ------
    IEMProgress
        Iteration, the iteration limit, the objective, and the labels so far (built
        only when read).

    Returns
    -------
    IEMResult

    Raises
    ------
    ValueError
        A knob outside its range (:class:`~napari_iem.engine.knobs.KnobError`, naming
        it), an image that cannot be segmented (NaN, constant, too small), labels or
        locks that do not fit the image.
    napari_iem.engine.memory.NotEnoughMemoryError
        Before any work, when the run cannot fit in the device's free memory.  On a
        GPU that runs out anyway, the run is repeated on the CPU with a warning
        (``result.metadata["device_fallback"]``).

    {references}
    """
    request = build_request(image, regions, **options)
    return (yield from pipeline.run_one(request))


def segment(image, regions=2, **options) -> IEMResult:
    """Segment ``image`` into ``regions`` parts by Inpainting Error Maximization [1]_.

    :func:`iter_segment` without the progress reports.

    Parameters
    ----------
    {image}
    {data}
    {knobs}

    Returns
    -------
    IEMResult
        Labels at the input's size (0 background), masks, each region's inpainting
        and the error map, the objective per iteration, ``converged``, the parameters
        used and the preset picked.

    Raises
    ------
    ValueError
        See :func:`iter_segment`.
    napari_iem.engine.memory.NotEnoughMemoryError
        See :func:`iter_segment`.

    Examples
    --------
    >>> from skimage import data
    >>> from napari_iem import segment
    >>> result = segment(data.coffee(), regions=2)
    >>> result.labels.shape
    (400, 600)

    {references}
    """
    gen = iter_segment(image, regions, **options)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def segment_batch(images: Sequence[np.ndarray], regions=2, **options) -> list[IEMResult]:
    """Segment many images, batching those of one working size into one tensor.

    Gives the same labels as :func:`segment` on each image, faster: images of one
    working size and one preset run together and each leaves the batch at its own
    fixed point.  With ``preset="default"`` each image gets its own pick.

    Parameters
    ----------
    images : sequence of ndarray
        Images as :func:`segment` takes them (2-D images, or stacks with ``mode``).
        The keywords apply to every image alike (one ``init`` for all of them).
    {data}
    {knobs}

    Returns
    -------
    list of IEMResult
        One per image, in order.

    Raises
    ------
    ValueError
        See :func:`iter_segment`; the first image that cannot be segmented is named.

    {references}
    """
    images = _each_image(images)
    knobs = {k: v for k, v in options.items() if k not in DATA_KEYWORDS}
    check_keywords(regions, options.get("init"), knobs)  # once: they are every image's
    requests = []
    for i, image in enumerate(images):
        try:
            requests.append(build_request(image, regions, **options))
        except ValueError as exc:
            raise type(exc)(f"image {i}: {exc}") from None
    if not requests:
        return []
    gen = pipeline.run(requests)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def _each_image(images) -> Iterable:
    """``images`` when it is a sequence of images; a ValueError saying so when it is
    one image (a 2-D array would be read as rows, each a 1-D image) or no sequence."""
    ndim = getattr(images, "ndim", None)
    if (isinstance(images, (str, bytes)) or not isinstance(images, Iterable)
            or (ndim is not None and ndim < 3)):
        what = type(images).__name__ + ("" if ndim is None else f" of {ndim} axes")
        raise ValueError(f"images must be a sequence of images (a list, or an array "
                         f"with one image per first index), got a {what}; for one "
                         "image, call segment(image)")
    return images


_derive(iter_segment)
_derive(segment)
_derive(segment_batch, first="images")
