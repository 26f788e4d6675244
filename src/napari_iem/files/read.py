"""Reading files without trusting them: regular files only, bounded, header first.

Every file napari-iem reads (images, label images, settings, an earlier report, the
output manifest) comes from a user or from a folder anyone may have written to, so:

* Only regular files are opened.  A FIFO would block the reader forever, a device such
  as ``/dev/zero`` never ends, and a symlink to either looks like a file by its name;
  :func:`open_regular` refuses them from ``stat`` before opening and checks again on
  the opened descriptor (which is opened non-blocking, so even a FIFO swapped in
  between cannot hang it).
* Every read has a byte limit (:func:`read_bounded`), and ``st_size`` is not what
  enforces it: the bytes actually read are counted.
* An image's header is read before any pixel (:func:`image_info`), and *every* axis of
  what would be decoded counts against the pixel limit: pages, Z, T and channels alike,
  except a colour axis of at most 4 samples (RGB(A): the pixels of a photo are counted
  as pixels, not as three times as many).  A 1 MB TIFF claiming 1024 samples per pixel
  is refused before it decodes a gigabyte.
* An OME-TIFF's OME-XML is checked before tifffile builds anything from it (bounded,
  no entities, no references to other files: :mod:`napari_iem.files.ome`).
* Pillow's own bomb limit is a process-wide setting; ours replaces it for the duration
  of one read (under a lock) and it is restored after, so reading one large image does
  not disable Pillow's guard for the rest of the process.
"""
from __future__ import annotations

import dataclasses
import math
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

if TYPE_CHECKING:
    from .ome import OmeMetadata

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "MAX_PIXELS_ENV",
    "FileReadError",
    "ImageInfo",
    "ImageReadError",
    "ImageTooLargeError",
    "find_images",
    "image_info",
    "open_regular",
    "pixel_limit",
    "read_bounded",
    "read_image",
    "read_labels",  # noqa: F822 - from labels, by __getattr__
]

#: Largest image accepted by default, in pixels (see :func:`pixel_limit`).
DEFAULT_MAX_PIXELS = 2**28
#: Environment variable that changes :data:`DEFAULT_MAX_PIXELS` for a session.
MAX_PIXELS_ENV = "NAPARI_IEM_MAX_PIXELS"
#: Bytes per pixel an image file may hold at most (float64 RGBA, uncompressed), so that
#: a file's size is bounded by the pixel limit too.
_BYTES_PER_PIXEL = 32
#: What the message of an image refused for its size tells the user to do.
_REMEDY = (f"raise it with max_pixels or {MAX_PIXELS_ENV} if the file is genuine and fits "
           "in memory; an image larger than memory is segmented as OME-Zarr with --blocks")

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),  # BigTIFF
    (b"MM\x00+", "tiff"),
)


class FileReadError(ValueError):
    """A file could not be read safely; the message names the file and the reason."""


class ImageReadError(FileReadError):
    """A file could not be read as an image; the message names the file and the reason."""


class ImageTooLargeError(ImageReadError):
    """The file's header claims more pixels than allowed, or the file is larger than
    such an image can be (a decompression bomb guard)."""


@dataclass(frozen=True)
class ImageInfo:
    """What a file's header says, read without decoding pixels.

    Attributes
    ----------
    path : Path
    format : str
        ``"png"``, ``"jpeg"``, ``"tiff"`` or ``"ome-zarr"``.
    shape : tuple of int
        Shape of the array :func:`read_image` returns.
    dtype : str
        Its numpy dtype name.
    pixels : int
        What counts against the pixel limit: the product of every axis except a colour
        axis of at most 4 samples.
    ome : OmeMetadata or None
        For an OME-TIFF, its axes and physical pixel sizes
        (:class:`napari_iem.files.ome.OmeMetadata`).
    colour_axis : int or None
        For a TIFF whose pixels are RGB(A) colours (its photometric tag says so), the
        axis of ``shape`` that holds them; the other formats say it by their shape.
    pil_mode : str or None
        For a PNG or JPEG, Pillow's mode (``"L"``, ``"RGB"``, ``"P"``, ``"CMYK"``, ...).
    """

    path: Path
    format: str
    shape: tuple
    dtype: str
    pixels: int
    ome: OmeMetadata | None = None
    colour_axis: int | None = None
    pil_mode: str | None = None


def pixel_limit(max_pixels: int | None = None) -> int:
    """The pixel limit in force: ``max_pixels``, else ``$NAPARI_IEM_MAX_PIXELS``, else
    :data:`DEFAULT_MAX_PIXELS`.

    The variable is read when a limit is needed, not at import, so a bad value is an
    error that names the variable instead of a module that cannot be imported.
    """
    if max_pixels is not None:
        return max_pixels
    text = os.environ.get(MAX_PIXELS_ENV)
    if text is None or not text.strip():
        return DEFAULT_MAX_PIXELS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise FileReadError(f"{MAX_PIXELS_ENV} must be a whole number of pixels of at "
                            f"least 1, got {text!r}")
    return value


def _refuse_kind(path: Path, mode: int) -> None:
    if stat.S_ISDIR(mode):
        raise FileReadError(f"{path}: is a folder, not a file")
    if not stat.S_ISREG(mode):
        raise FileReadError(f"{path}: not a regular file (a FIFO, device or socket); "
                            "refusing to read it")


def open_regular(path: str | os.PathLike, max_bytes: int) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file of at most ``max_bytes``.

    Raises
    ------
    FileReadError
        Missing, a folder, a FIFO, device or socket (also behind a symlink), larger
        than ``max_bytes``, or not readable.
    """
    path = Path(path)
    try:
        _refuse_kind(path, os.stat(path).st_mode)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise FileReadError(f"{path}: file not found") from None
    except OSError as exc:
        raise FileReadError(f"{path}: cannot open: {exc.strerror or exc}") from None
    fh = os.fdopen(fd, "rb")
    try:
        info = os.fstat(fd)
        _refuse_kind(path, info.st_mode)  # swapped between stat and open
        if info.st_size > max_bytes:
            raise FileReadError(f"{path}: {info.st_size:,} bytes, more than the limit "
                                f"of {max_bytes:,} for this kind of file")
    except BaseException:
        fh.close()
        raise
    return fh


def read_bounded(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The contents of a regular file, refusing more than ``max_bytes`` (counted as read,
    not taken from ``st_size``).  Raises :class:`FileReadError` as :func:`open_regular`."""
    with open_regular(path, max_bytes) as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileReadError(f"{path}: more than the limit of {max_bytes:,} bytes")
    return data


@contextmanager
def _open_image(path: Path, max_pixels: int | None) -> Iterator[tuple[BinaryIO, str]]:
    """The opened image file and its format, recognised from its first bytes."""
    limit = pixel_limit(max_pixels)
    try:
        fh = open_regular(path, math.inf)  # its size is the pixel limit's, below
    except FileReadError as exc:
        raise ImageReadError(str(exc)) from None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        if size > limit * _BYTES_PER_PIXEL + 2**20:
            raise ImageTooLargeError(f"{path}: {size:,} bytes, more than an image within "
                                     f"the limit of {limit:,} pixels takes ({_REMEDY})")
        head = fh.read(8)
        if not head:
            raise ImageReadError(f"{path}: empty file")
        fmt = next((f for magic, f in _MAGIC if head.startswith(magic)), None)
        if fmt is None:
            raise ImageReadError(f"{path}: not a PNG, JPEG or TIFF image")
        fh.seek(0)
        yield fh, fmt


def _counted(shape, colour_axis: int | None) -> int:
    """Pixels that count against the limit: every axis, a small colour axis excepted."""
    shape = [int(s) for s in shape]
    if colour_axis is not None and shape[colour_axis] <= 4:
        del shape[colour_axis]
    return math.prod(shape)


def _check_size(path: Path, pixels: int, shape, max_pixels: int | None,
                remedy: str = _REMEDY) -> None:
    limit = pixel_limit(max_pixels)
    if pixels > limit:
        raise ImageTooLargeError(
            f"{path}: header claims {'x'.join(map(str, shape))} = {pixels:,} pixels, more "
            f"than the limit of {limit:,} (a decompression-bomb guard; {remedy})"
        )


_PIL_LOCK = threading.Lock()


@contextmanager
def _our_limit_not_pillows() -> Iterator[None]:
    """Pillow's bomb guard off for one read, and back to what it was after.

    Ours (:func:`_check_size`, from the header, before any pixel is decoded) is the
    one that holds, with its own limit and message; Pillow's is a process-wide
    setting that other code in the process (napari's own readers) keeps relying on.
    """
    from PIL import Image

    with _PIL_LOCK:
        old = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = old


#: Pillow modes whose numbers are not red, green and blue (a CMYK JPEG's are inks, the
#: fourth black, not alpha): read as the RGB colours they stand for.
_AS_RGB = frozenset({"CMYK", "YCbCr", "LAB", "HSV", "RGBX"})
_PIL_CHANNELS = {"1": 0, "L": 0, "P": 3, "I": 0, "I;16": 0, "I;16B": 0, "I;16L": 0,
                 "F": 0, "LA": 0, "PA": 4, "RGB": 3, "RGBA": 4, "CMYK": 3, "YCbCr": 3,
                 "LAB": 3, "HSV": 3, "RGBX": 3}


def _tiff_info(path: Path, fh: BinaryIO, max_pixels: int | None) -> ImageInfo:
    import tifffile

    try:
        with tifffile.TiffFile(fh, name=path.name) as tif:
            ome = _ome(tif, path)  # checked before tifffile builds series from it
            if not tif.series:
                raise ImageReadError(f"{path}: TIFF without image data")
            series = tif.series[0]
            shape = tuple(int(s) for s in series.shape)
            axes = series.axes
            dtype = np.dtype(series.dtype).name
            rgb = series.keyframe.photometric == tifffile.PHOTOMETRIC.RGB
            if ome is not None and series.kind.lower() != "ome":
                raise ImageReadError(f"{path}: its OME-XML does not describe the "
                                     "file's pixels (tifffile could not use it)")
    except ImageReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - the libraries raise many kinds
        raise ImageReadError(f"{path}: cannot read TIFF header: {exc}") from None
    pixels = _counted(shape, axes.index("S") if "S" in axes else None)
    _check_size(path, pixels, shape, max_pixels)
    if ome is not None:
        ome = dataclasses.replace(ome, axes=axes)
    colour = axes.index("S") if rgb and "S" in axes else None
    return ImageInfo(path, "tiff", shape, dtype, pixels, ome, colour)


def _ome(tif, path: Path):
    """The checked OME-XML of an OME-TIFF (:mod:`napari_iem.files.ome`), else None."""
    if not tif.is_ome:
        return None
    from .ome import parse_ome_xml

    return parse_ome_xml(tif.ome_metadata, path)


def _pil_info(path: Path, fh: BinaryIO, fmt: str, max_pixels: int | None) -> ImageInfo:
    from PIL import Image

    try:
        with _our_limit_not_pillows(), Image.open(fh) as im:
            w, h = im.size
            mode = im.mode
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds on a bad header
        raise ImageReadError(f"{path}: cannot read image header: {exc}") from None
    channels = _PIL_CHANNELS.get(mode, 3)
    shape = (h, w, channels) if channels else (h, w)
    _check_size(path, int(w) * int(h), (h, w), max_pixels)
    dtype = "uint16" if mode.startswith("I;16") else (
        "int32" if mode == "I" else "float32" if mode == "F" else
        "bool" if mode == "1" else "uint8")
    return ImageInfo(path, fmt, shape, dtype, int(w) * int(h), pil_mode=mode)


def _info(path: Path, fh: BinaryIO, fmt: str, max_pixels: int | None) -> ImageInfo:
    info = (_tiff_info(path, fh, max_pixels) if fmt == "tiff"
            else _pil_info(path, fh, fmt, max_pixels))
    fh.seek(0)
    return info


def _zarr(path: Path):
    """:mod:`napari_iem.files.ome_zarr` when ``path`` is named as an OME-Zarr (which
    then says whether it is one), else None."""
    if path.suffix.lower() != ".zarr":
        return None
    from . import ome_zarr

    return ome_zarr


def image_info(path: str | os.PathLike, max_pixels: int | None = None) -> ImageInfo:
    """Shape and dtype of an image from its header, refusing oversized images.

    Parameters
    ----------
    path : path-like
        An image file, or an OME-Zarr folder (:mod:`napari_iem.files.ome_zarr`).
    max_pixels : int, optional
        Largest accepted number of pixels (default :func:`pixel_limit`).

    Raises
    ------
    ImageTooLargeError
        When the header claims more than ``max_pixels`` pixels.
    ImageReadError
        When the file is missing, empty, not a regular file, of another format, or its
        header is broken.
    """
    path = Path(path)
    if path.is_dir() and _zarr(path):
        return _zarr(path).info(path, max_pixels)
    with _open_image(path, max_pixels) as (fh, fmt):
        return _info(path, fh, fmt, max_pixels)


def read_image(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file into a numpy array, checking its size first.

    An OME-Zarr (a folder) gives its full-resolution level, as stored.
    PNG and JPEG come back as (H, W), (H, W, 3) or (H, W, 4) (palette images as RGB,
    grey+alpha as grey, CMYK as RGB, the first frame of an animation); 16-bit PNG as
    uint16.  TIFF comes back as stored (any dtype, any number of dimensions; the first
    series of a multi-series file).

    Raises
    ------
    ImageTooLargeError, ImageReadError
        See :func:`image_info`; also for truncated or corrupt pixel data.
    """
    path = Path(path)
    if path.is_dir() and _zarr(path):
        return _zarr(path).read_ome_zarr(path, 0, max_pixels)[0]
    with _open_image(path, max_pixels) as (fh, fmt):
        info = _info(path, fh, fmt, max_pixels)
        try:
            if fmt == "tiff":
                import tifffile

                with tifffile.TiffFile(fh, name=path.name) as tif:
                    data = tif.series[0].asarray()
            else:
                import imageio.v3 as iio

                with _our_limit_not_pillows():
                    data = iio.imread(fh, extension=f".{fmt}", index=0,
                                      mode="RGB" if info.pil_mode in _AS_RGB else None)
                if fmt == "png" and data.ndim == 3 and data.shape[-1] == 2:
                    data = data[..., 0]  # grey + alpha -> grey
        except Exception as exc:  # noqa: BLE001 - the libraries raise many kinds
            raise ImageReadError(f"{path}: cannot read pixel data: {exc}") from None
    if data.size == 0:
        raise ImageReadError(f"{path}: image has no pixels (shape {data.shape})")
    return np.asarray(data)


# Moved to their own modules; still importable from here.
from .find import IMAGE_SUFFIXES, find_images  # noqa: E402


def __getattr__(name: str):
    if name == "read_labels":  # by name, on use: labels imports this module, and one
        from .labels import read_labels  # imported first (a Dask worker unpickling
        return read_labels  # read_labels) failed in the cycle
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
