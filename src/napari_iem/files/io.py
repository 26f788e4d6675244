"""Reading images and writing labels, safely.

* :func:`read_image` reads PNG and JPEG (imageio/Pillow) and TIFF (tifffile, any bit depth
  and dimensionality).  The format is recognised from the file's first bytes, not its
  name, and the image's size is checked from the header *before* any pixel is decoded:
  a file claiming more than ``max_pixels`` pixels (default 2**28, set
  ``NAPARI_IEM_MAX_PIXELS`` to change it) raises :class:`ImageTooLargeError`.
* :func:`write_labels` writes 2-D 8-bit labels as PNG and anything else (16-bit, n-D) as
  zlib-compressed TIFF, atomically: a hidden temporary file in the output folder is
  written completely and then renamed over the target with :func:`os.replace`, so a
  reader (or a resumed run) never sees half a file.
* Output names come from :func:`safe_stem`, which cannot leave the output folder.
"""
from __future__ import annotations

import os
import re
import secrets
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "IMAGE_SUFFIXES",
    "LABEL_SUFFIXES",
    "TEMP_SUFFIX",
    "DEFAULT_MAX_PIXELS",
    "ImageReadError",
    "ImageTooLargeError",
    "ImageInfo",
    "image_info",
    "read_image",
    "read_labels",
    "find_images",
    "safe_stem",
    "unique_stems",
    "output_path",
    "atomic_output",
    "labels_suffix",
    "existing_labels",
    "write_labels",
    "overlay_rgb",
    "write_overlay",
]

#: Suffixes picked up when a folder is given as input (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
#: Suffixes of label files written by :func:`write_labels`.
LABEL_SUFFIXES = (".png", ".tif")
#: Suffix of temporary files of unfinished atomic writes (hidden, start with a dot).
TEMP_SUFFIX = ".iem-part"
#: Largest image accepted by default, in pixels (channels not counted).
DEFAULT_MAX_PIXELS = int(os.environ.get("NAPARI_IEM_MAX_PIXELS", 2**28))

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),  # BigTIFF
    (b"MM\x00+", "tiff"),
)


class ImageReadError(ValueError):
    """A file could not be read as an image; the message names the file and the reason."""


class ImageTooLargeError(ImageReadError):
    """The file's header claims more pixels than allowed (a decompression bomb guard)."""


@dataclass(frozen=True)
class ImageInfo:
    """What a file's header says, read without decoding pixels.

    Attributes
    ----------
    path : Path
    format : str
        ``"png"``, ``"jpeg"`` or ``"tiff"``.
    shape : tuple of int
        Shape of the array :func:`read_image` returns.
    dtype : str
        Its numpy dtype name.
    pixels : int
        Number of pixels (the product of the spatial axes, channels not counted).
    """

    path: Path
    format: str
    shape: tuple
    dtype: str
    pixels: int


def _sniff(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except IsADirectoryError:
        raise ImageReadError(f"{path}: is a folder, not an image") from None
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found") from None
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot open: {exc.strerror or exc}") from None
    if not head:
        raise ImageReadError(f"{path}: empty file")
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    raise ImageReadError(f"{path}: not a PNG, JPEG or TIFF image")


def _check_size(path: Path, pixels: int, shape, max_pixels: int | None) -> None:
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    if pixels > limit:
        raise ImageTooLargeError(
            f"{path}: header claims {'x'.join(map(str, shape))} = {pixels:,} pixels, more "
            f"than the limit of {limit:,} (a decompression-bomb guard; raise it with "
            "max_pixels or NAPARI_IEM_MAX_PIXELS if the file is genuine)"
        )


def _pil_open(path: Path, max_pixels: int | None):
    from PIL import Image

    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    # Pillow has its own, lower, bomb guard (a process-wide setting).  Raise it to our
    # limit when ours is higher; we check the size ourselves right after opening.
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limit:
        Image.MAX_IMAGE_PIXELS = limit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{path}: {exc}") from None
    except Exception as exc:  # Pillow raises many kinds on a bad header
        raise ImageReadError(f"{path}: cannot read image header: {exc}") from None


_PIL_CHANNELS = {"1": 0, "L": 0, "P": 3, "I": 0, "I;16": 0, "I;16B": 0, "I;16L": 0,
                 "F": 0, "LA": 0, "PA": 4, "RGB": 3, "RGBA": 4, "CMYK": 3, "YCbCr": 3,
                 "LAB": 3, "HSV": 3, "RGBX": 3}


def image_info(path: str | os.PathLike, max_pixels: int | None = None) -> ImageInfo:
    """Shape and dtype of an image from its header, refusing oversized images.

    Parameters
    ----------
    path : path-like
    max_pixels : int, optional
        Largest accepted number of pixels (default :data:`DEFAULT_MAX_PIXELS`).

    Raises
    ------
    ImageTooLargeError
        When the header claims more than ``max_pixels`` pixels.
    ImageReadError
        When the file is missing, empty, of another format, or its header is broken.
    """
    path = Path(path)
    fmt = _sniff(path)
    if fmt == "tiff":
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                if not tif.series:
                    raise ImageReadError(f"{path}: TIFF without image data")
                series = tif.series[0]
                shape = tuple(int(s) for s in series.shape)
                axes = series.axes
                dtype = np.dtype(series.dtype).name
        except ImageReadError:
            raise
        except Exception as exc:
            raise ImageReadError(f"{path}: cannot read TIFF header: {exc}") from None
        spatial = [s for s, a in zip(shape, axes) if a != "S"]
        pixels = int(np.prod(spatial, dtype=object)) if spatial else 0
        _check_size(path, pixels, shape, max_pixels)
        return ImageInfo(path, fmt, shape, dtype, pixels)
    with _pil_open(path, max_pixels) as im:
        w, h = im.size
        mode = im.mode
    pixels = int(w) * int(h)
    _check_size(path, pixels, (h, w), max_pixels)
    channels = _PIL_CHANNELS.get(mode, 3)
    shape = (h, w, channels) if channels else (h, w)
    dtype = "uint16" if mode.startswith("I;16") else (
        "int32" if mode == "I" else "float32" if mode == "F" else
        "bool" if mode == "1" else "uint8")
    return ImageInfo(path, fmt, shape, dtype, pixels)


def read_image(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file into a numpy array, checking its size first.

    PNG and JPEG come back as (H, W), (H, W, 3) or (H, W, 4) (palette images as RGB,
    grey+alpha as grey); 16-bit PNG as uint16.  TIFF comes back as stored (any dtype,
    any number of dimensions; the first series of a multi-series file).

    Raises
    ------
    ImageTooLargeError, ImageReadError
        See :func:`image_info`; also for truncated or corrupt pixel data.
    """
    path = Path(path)
    info = image_info(path, max_pixels)
    try:
        if info.format == "tiff":
            import tifffile

            with tifffile.TiffFile(path) as tif:
                data = tif.series[0].asarray()
        else:
            import imageio.v3 as iio

            data = iio.imread(path, extension=f".{info.format}")
            if info.format == "png" and data.ndim == 3 and data.shape[-1] == 2:
                data = data[..., 0]  # grey + alpha -> grey
    except Exception as exc:
        raise ImageReadError(f"{path}: cannot read pixel data: {exc}") from None
    if data.size == 0:
        raise ImageReadError(f"{path}: image has no pixels (shape {data.shape})")
    return np.asarray(data)


def read_labels(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Read a label or mask image as integers, one value per pixel.

    Palette PNGs give their indices, grey images their values.  A colour image whose
    channels are all equal gives one channel; other colour images get one label per
    distinct colour (black = 0).
    """
    path = Path(path)
    info = image_info(path, max_pixels)
    try:
        if info.format == "tiff":
            data = read_image(path, max_pixels)
        else:
            with _pil_open(path, max_pixels) as im:
                data = np.asarray(im)
    except ImageReadError:
        raise
    except Exception as exc:
        raise ImageReadError(f"{path}: cannot read pixel data: {exc}") from None
    if info.format != "tiff" and data.ndim == 3:  # colour PNG/JPEG; TIFF stays as stored
        colour = data[..., : 3 if data.shape[-1] >= 3 else 1]
        if (colour == colour[..., :1]).all():
            data = colour[..., 0]
        else:
            flat = colour.reshape(-1, colour.shape[-1])
            uniq, inv = np.unique(flat, axis=0, return_inverse=True)
            black = np.flatnonzero((uniq == 0).all(axis=1))
            ids = np.arange(1, len(uniq) + 1)
            if black.size:
                ids[black[0]:] -= 1
                ids[black[0]] = 0
            data = ids[inv.ravel()].reshape(colour.shape[:-1]).astype(np.min_scalar_type(len(uniq)))
    if data.dtype == bool:
        data = data.astype(np.uint8)
    return data


# --------------------------------------------------------------------------- names

def find_images(inputs: Iterable[str | os.PathLike], recursive: bool = False) -> list[Path]:
    """Expand files and folders into a sorted, duplicate-free list of image files.

    A folder contributes its files with an image suffix (:data:`IMAGE_SUFFIXES`,
    case-insensitive), hidden files excluded; a file named directly is taken whatever
    its suffix (so that a wrong file is reported, not silently dropped).

    Raises
    ------
    FileNotFoundError
        When an input does not exist.
    """
    out: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            it = p.rglob("*") if recursive else p.iterdir()
            found = sorted(
                f for f in it
                if f.is_file() and not f.name.startswith(".")
                and f.suffix.lower() in IMAGE_SUFFIXES
            )
        elif p.exists():
            found = [p]
        else:
            raise FileNotFoundError(f"input not found: {p}")
        for f in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.append(f)
    return out


_UNSAFE = re.compile(r"[^\w.\-]+")
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
             *(f"LPT{i}" for i in range(1, 10))}


def safe_stem(name: str | os.PathLike, max_length: int = 150) -> str:
    """A file-name stem that stays inside any folder it is joined to.

    Folders are dropped (only the last path component counts), the image suffix is
    removed, characters other than letters, digits, ``_``, ``-`` and ``.`` become ``_``,
    leading dots are removed (no hidden files, no ``..``), and the length is capped.

    Examples
    --------
    >>> safe_stem("../../etc/passwd")
    'passwd'
    >>> safe_stem("a b/c?.d.tif")
    'c_.d'
    """
    base = re.split(r"[\\/]", str(name))[-1]
    if Path(base).suffix.lower() in IMAGE_SUFFIXES:
        base = base[: -len(Path(base).suffix)]
    stem = _UNSAFE.sub("_", base).lstrip(".").strip()[:max_length].rstrip(".")
    if not stem:
        stem = "image"
    if stem.split(".")[0].upper() in _RESERVED:
        stem = "_" + stem
    return stem


def unique_stems(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Safe, distinct output stems for ``paths``, in order.

    Clashes (``a.png`` and ``a.tif``, or one name in two folders) are resolved by adding
    the suffix (``a_tif``), then a counter (``a-2``).
    """
    paths = [Path(p) for p in paths]
    stems = [safe_stem(p.name) for p in paths]
    counts: dict[str, int] = {}
    for s in stems:
        counts[s.lower()] = counts.get(s.lower(), 0) + 1
    used: set[str] = set()
    out = []
    for p, s in zip(paths, stems):
        cand = s
        if counts[s.lower()] > 1 and cand.lower() in used and p.suffix:
            cand = safe_stem(f"{s}_{p.suffix.lstrip('.').lower()}")
        n = 2
        base = cand
        while cand.lower() in used:
            cand = f"{base}-{n}"
            n += 1
        used.add(cand.lower())
        out.append(cand)
    return out


def output_path(out_dir: str | os.PathLike, stem: str, suffix: str) -> Path:
    """``out_dir / (safe_stem(stem) + suffix)``, checked to lie directly in ``out_dir``."""
    out_dir = Path(out_dir)
    path = out_dir / (safe_stem(stem) + suffix)
    if path.resolve().parent != out_dir.resolve():
        raise ValueError(f"output name {stem!r} would leave the output folder {out_dir}")
    return path


# --------------------------------------------------------------------------- writing

@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Write a file atomically: yields a temporary path in the same folder.

    Write the complete file to the yielded path; when the ``with`` block ends without an
    exception the file is flushed to disk and renamed to ``path`` (:func:`os.replace`,
    atomic on POSIX and Windows).  On any exception, ``KeyboardInterrupt`` included, the
    temporary file is removed and ``path`` is left as it was.

    Examples
    --------
    >>> with atomic_output("out/a.png") as tmp:          # doctest: +SKIP
    ...     imageio.v3.imwrite(tmp, labels, extension=".png")
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    # open(..., "x") creates the file with the usual 0666 & ~umask permissions
    with open(tmp, "xb"):
        pass
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def labels_suffix(labels: np.ndarray) -> str:
    """``".png"`` for 2-D labels that fit in 8 bits, ``".tif"`` otherwise."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and (labels.dtype in (np.uint8, np.bool_) or (
            np.issubdtype(labels.dtype, np.integer) and labels.size
            and labels.min() >= 0 and labels.max() <= 255)):
        return ".png"
    return ".tif"


def existing_labels(out_dir: str | os.PathLike, stem: str) -> Path | None:
    """The finished labels file for ``stem`` in ``out_dir``, if there is one."""
    for suffix in LABEL_SUFFIXES:
        p = Path(out_dir) / (stem + suffix)
        if p.is_file() and p.stat().st_size > 0:
            return p
    return None


def write_labels(labels: np.ndarray, out_dir: str | os.PathLike, stem: str) -> Path:
    """Write labels as ``out_dir/<stem>.png`` (2-D, 8-bit) or ``<stem>.tif``, atomically.

    Parameters
    ----------
    labels : ndarray of int
        0 background, 1..K-1 regions.
    out_dir : path-like
        Existing output folder.
    stem : str
        Output name without suffix; sanitised with :func:`safe_stem`.

    Returns
    -------
    Path
        The file written.  A stale file of the other suffix for the same stem is removed,
        so that each stem has one labels file.
    """
    labels = np.asarray(labels)
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    suffix = labels_suffix(labels)
    path = output_path(out_dir, stem, suffix)
    with atomic_output(path) as tmp:
        if suffix == ".png":
            import imageio.v3 as iio

            iio.imwrite(tmp, labels.astype(np.uint8), extension=".png")
        else:
            import tifffile

            data = labels
            if labels.size and labels.min() >= 0 and labels.max() <= 65535:
                data = labels.astype(np.uint16)
            tifffile.imwrite(tmp, data, compression="zlib", photometric="minisblack")
    other = path.with_suffix(".tif" if suffix == ".png" else ".png")
    if other.exists():
        other.unlink()
    return path


def _display_rgb(image: np.ndarray) -> np.ndarray:
    """An image as float RGB in [0, 1] for display (robust contrast for non-8-bit)."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] in (3, 4):
        img = img[..., :3]
    elif img.ndim == 3:
        img = img[..., 0]
    elif img.ndim != 2:
        raise ValueError(f"an overlay needs a 2-D image, got shape {img.shape}")
    if img.dtype == np.uint8:
        f = img.astype(np.float32) / 255.0
    else:
        f = img.astype(np.float32)
        lo, hi = np.percentile(f, [0.5, 99.5]) if f.size else (0.0, 1.0)
        f = np.clip((f - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(f)
    if f.ndim == 2:
        f = np.repeat(f[..., None], 3, axis=-1)
    return f


def overlay_rgb(image: np.ndarray, labels: np.ndarray, alpha: float = 0.35) -> np.ndarray:
    """The image with regions tinted and their boundaries drawn, as uint8 RGB.

    Label 0 (background) is not tinted; every other region gets a colour, and all
    region boundaries are drawn in yellow.
    """
    from skimage.color import label2rgb
    from skimage.segmentation import mark_boundaries

    labels = np.asarray(labels)
    rgb = _display_rgb(image)
    if rgb.shape[:2] != labels.shape:
        raise ValueError(f"image shape {rgb.shape[:2]} and labels shape {labels.shape} differ")
    tinted = label2rgb(labels, image=rgb, bg_label=0, bg_color=None, alpha=alpha,
                       image_alpha=1.0, kind="overlay", saturation=1.0)
    if labels.max() == 0:
        tinted = rgb
    marked = mark_boundaries(tinted, labels, color=(1.0, 1.0, 0.0), mode="inner")
    return np.clip(marked * 255 + 0.5, 0, 255).astype(np.uint8)


def write_overlay(image: np.ndarray, labels: np.ndarray, path: str | os.PathLike) -> Path:
    """Write :func:`overlay_rgb` of ``image`` and ``labels`` as a PNG, atomically."""
    import imageio.v3 as iio

    path = Path(path)
    rgb = overlay_rgb(image, labels)
    with atomic_output(path) as tmp:
        iio.imwrite(tmp, rgb, extension=".png")
    return path
