"""OME-Zarr in: an NGFF image read lazily, its metadata checked as untrusted input.

Why plain ``zarr`` and not ome-zarr-py or bioio-ome-zarr
--------------------------------------------------------
``zarr`` (3.x, which reads and writes both zarr v2 and v3 stores) adds 39 MB to the
environment (zarr, numcodecs, donfig, google-crc32c); ome-zarr-py adds 49 MB more on
top of it (s3fs, aiobotocore, botocore, aiohttp, pydantic-zarr, ome-zarr-models) and
bioio-ome-zarr more again (xarray, ome-types, xsdata).  What they add over zarr is the
NGFF metadata, a few JSON keys, and they read it without bounds and hand paths from it
to the store as they are.  Here the metadata is ours to check: every JSON document is
read with :func:`~napari_iem.files.read.read_bounded`, and zarr is only asked to open
an array after its own metadata was checked (below), so it never decodes a chunk of a
shape, dtype or codec we did not accept.

What is checked, before any pixel is read
-----------------------------------------
* the NGFF ``multiscales`` (NGFF 0.4 in ``.zattrs``, 0.5 under ``"ome"`` in
  ``zarr.json``): at most 5 axes named ``t``, ``c``, ``z``, ``y``, ``x``, each once;
  dataset paths relative, without ``..``, inside the store;
* each level's ``scale`` (its own times the multiscale's): finite positive numbers, one
  per axis (a NaN or negative spacing is refused, naming the level and the axis);
* each level's array metadata: a shape of one whole number per axis, counted against
  the pixel limit as :mod:`~napari_iem.files.read` counts a TIFF's; chunks no larger
  than that limit either; a numeric dtype; only the usual compressors (no ``pickle``
  or other object codecs, which would run code from the file);
* each chunk, as it is read: a regular file (not a FIFO or a link to a device), of no
  more bytes than its chunk's pixels need.

The checks of one zarr array (its metadata, its codecs, the bounded store its chunks
are read through) are :mod:`napari_iem.files.zarr_array`'s, which also reads a plain
zarr (no NGFF) for block mode.

:class:`OmeZarrImage` keeps the levels as dask arrays; :meth:`OmeZarrImage.metadata`
gives the :class:`~napari_iem.files.ome.OmeMetadata` of a level, so that the batch
and the writers treat an OME-Zarr's axes and physical sizes as an OME-TIFF's.
Writing is :mod:`napari_iem.files.ome_zarr_write`.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .read import FileReadError, ImageReadError, _counted
from .zarr_array import _json, array_header, bounded_store, chunk_file_bytes

__all__ = [
    "PROVENANCE_KEY",
    "OmeZarrImage",
    "is_ome_zarr",
    "ngff_attributes",
    "open_ome_zarr",
    "read_ome_zarr",
    "read_ome_zarr_provenance",
    "write_ome_zarr_labels",  # noqa: F822 - from ome_zarr_write, by __getattr__
]

#: Key of the napari-iem provenance in the attributes of a label image it wrote.
PROVENANCE_KEY = "napari-iem"
_AXES = "tczyx"
_PATH = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")
#: NGFF unit names -> the symbols of OME-XML (:mod:`napari_iem.files.ome`).
UNIT_SYMBOLS = {"meter": "m", "decimeter": "dm", "centimeter": "cm", "millimeter": "mm",
                "micrometer": "µm", "nanometer": "nm", "picometer": "pm",
                "angstrom": "Å", "femtometer": "fm"}


def _meta_file(node: Path) -> Path | None:
    """The metadata document of a zarr node: ``zarr.json`` (v3) or ``.zattrs`` (v2)."""
    for name in ("zarr.json", ".zattrs"):
        if (node / name).is_file():
            return node / name
    return None


def ngff_attributes(node: str | os.PathLike) -> tuple[dict, int]:
    """The NGFF attributes of a zarr group and its zarr format (2 or 3).

    NGFF 0.5 keeps them under ``"ome"`` in ``zarr.json``'s ``attributes``; 0.4 at the
    top of ``.zattrs``.  ``{}`` for a group without attributes.
    """
    node = Path(node)
    meta = _meta_file(node)
    if meta is None:
        return {}, 3 if (node / "zarr.json").exists() else 2
    data = _json(meta)
    if meta.name == ".zattrs":
        return data, 2
    attrs = data.get("attributes") or {}
    if not isinstance(attrs, dict):
        raise ImageReadError(f"{meta}: its attributes are not a JSON object")
    ome = attrs.get("ome")
    return ({**attrs, **ome} if isinstance(ome, dict) else attrs), 3


def is_ome_zarr(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder ``*.zarr`` whose root has NGFF ``multiscales``.

    Never raises: an unreadable or malformed one is not an OME-Zarr here, and
    :func:`open_ome_zarr` says why when it is asked to open it.
    """
    path = Path(path)
    if not path.name.lower().endswith(".zarr") or not path.is_dir():
        return False
    try:
        return isinstance(ngff_attributes(path)[0].get("multiscales"), list)
    except (ImageReadError, OSError):
        return False


@dataclass(frozen=True)
class OmeZarrImage:
    """An OME-Zarr image, opened lazily.

    Attributes
    ----------
    path : Path
    levels : list of dask.array.Array
        The pyramid, level 0 (full resolution) first.
    axes : str
        NGFF axis names, lower case, one per array axis (``"czyx"``, ``"tczyx"``).
    scale : list of tuple of float
        Per level, the physical spacing of every axis (1.0 on axes without one).
    units : dict
        Axis name -> its NGFF unit (``"micrometer"``) or None.
    zarr_format : int
        2 (NGFF 0.4) or 3 (NGFF 0.5).
    attributes : dict
        The root's NGFF attributes (``labels``, ``omero``, ...), as read.
    """

    path: Path
    levels: list
    axes: str
    scale: list
    units: dict = field(default_factory=dict)
    zarr_format: int = 2
    attributes: dict = field(default_factory=dict)

    @property
    def channel_axis(self) -> int | None:
        """Index of the ``c`` axis, or None."""
        return self.axes.index("c") if "c" in self.axes else None

    def spatial_axes(self, count: int) -> str:
        """The last ``count`` axes that are not channels (as ``OmeMetadata``'s)."""
        return self.metadata().spatial_axes(count).lower()

    def metadata(self, level: int = 0):
        """Level ``level`` as :class:`~napari_iem.files.ome.OmeMetadata`: upper-case
        axes, the physical sizes of ``z``, ``y``, ``x`` and their units as OME-XML
        symbols (``"µm"``), so that its ``scale`` converts them as an OME-TIFF's."""
        from .ome import OmeMetadata

        sizes, units = {}, {}
        for axis, value in zip(self.axes, self.scale[level]):
            if axis in "zyx":
                unit = self.units.get(axis)
                sizes[axis.upper()] = value
                units[axis.upper()] = UNIT_SYMBOLS.get(unit, unit) if unit else "pixel"
        return OmeMetadata(self.axes.upper(), sizes, units, {})

    def scale_for(self, level: int, count: int) -> tuple[float, ...] | None:
        """The spacing of the last ``count`` spatial axes of ``level`` for the engine
        (micrometres when the units are lengths; see ``OmeMetadata.scale``)."""
        return self.metadata(level).scale(count)


def _axes(raw, where: Path) -> tuple[str, dict]:
    if not isinstance(raw, list) or not 2 <= len(raw) <= 5:
        raise ImageReadError(f"{where}: multiscales axes must be a list of 2 to 5 axes")
    names, units = "", {}
    for axis in raw:
        name = axis.get("name") if isinstance(axis, dict) else axis
        unit = axis.get("unit") if isinstance(axis, dict) else None
        if not isinstance(name, str) or name.lower() not in _AXES or name.lower() in names:
            raise ImageReadError(f"{where}: axis {str(name)[:40]!r} is not one of t, c, "
                                 "z, y, x (each once); other axes are not read")
        names += name.lower()
        units[name.lower()] = unit[:40] if isinstance(unit, str) else None
    if not names.endswith("yx"):
        raise ImageReadError(f"{where}: the last two axes are {names[-2:]!r}, not 'yx'")
    return names, units


def _scale(transforms, n: int, what: str) -> list[float]:
    """The product of the ``scale`` transformations of one list, checked."""
    out = [1.0] * n
    for t in transforms or []:
        if not isinstance(t, dict) or t.get("type") != "scale":
            continue
        values = t.get("scale")
        if not isinstance(values, list) or len(values) != n:
            raise ImageReadError(f"{what}: a scale of {n} numbers expected, got "
                                 f"{str(values)[:80]}")
        for i, v in enumerate(values):
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
            if not (ok and math.isfinite(v) and v > 0):
                raise ImageReadError(f"{what}: scale {str(v)[:40]} on axis {i} is not a "
                                     "finite positive number")
            out[i] *= float(v)
    return out


def _dataset_path(root: Path, raw) -> Path:
    if not isinstance(raw, str) or not _PATH.match(raw) or ".." in raw.split("/"):
        raise ImageReadError(f"{root}: dataset path {str(raw)[:80]!r} is not a relative "
                             "path inside the store")
    path = root / raw
    if root.resolve() not in path.resolve().parents:
        raise ImageReadError(f"{root}: dataset {raw!r} leads outside the store")
    return path


def __getattr__(name: str):
    if name == "write_ome_zarr_labels":  # importable from here, without an import
        from .ome_zarr_write import write_ome_zarr_labels  # cycle (it uses this module)

        return write_ome_zarr_labels
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_ome_zarr(path: str | os.PathLike, max_pixels: int | None = None, *,
                  whole: bool = True) -> OmeZarrImage:
    """Open the OME-Zarr at ``path`` lazily (its first multiscale), metadata checked.

    Parameters
    ----------
    path : path-like
        The root folder of an NGFF image (or of a label image in its ``labels/``).
    max_pixels : int, optional
        The pixel limit every level's shape and chunks are checked against (see
        :func:`~napari_iem.files.read.pixel_limit`).
    whole : bool
        False when the image is never read whole (block mode reads it chunk by
        chunk): then only its chunks count against the limit, not its shape.

    Raises
    ------
    ImageReadError
        Not an OME-Zarr, or metadata that fails a check (the module docstring).
    """
    import dask.array as da
    import zarr

    path = Path(path)
    if not path.is_dir():
        raise ImageReadError(f"{path}: not a folder, so not an OME-Zarr")
    attrs, fmt = ngff_attributes(path)
    multiscales = attrs.get("multiscales")
    if not isinstance(multiscales, list) or not multiscales \
            or not isinstance(multiscales[0], dict):
        raise ImageReadError(f"{path}: no NGFF multiscales in its attributes (not an "
                             "OME-Zarr image)")
    ms = multiscales[0]
    axes, units = _axes(ms.get("axes"), path)
    datasets = ms.get("datasets")
    if not isinstance(datasets, list) or not 1 <= len(datasets) <= 64:
        raise ImageReadError(f"{path}: multiscales datasets must list 1 to 64 levels")
    outer = _scale(ms.get("coordinateTransformations"), len(axes), f"{path}: multiscales")
    colour = axes.index("c") if "c" in axes else None
    levels, scales, chunk_bytes = [], [], []
    for i, ds in enumerate(datasets):
        if not isinstance(ds, dict):
            raise ImageReadError(f"{path}: dataset {i} is not a JSON object")
        node = _dataset_path(path, ds.get("path"))
        _scale(ds.get("coordinateTransformations"), len(axes), f"{path}: level {i}")
        chunk_bytes.append(chunk_file_bytes(
            array_header(node, len(axes), colour, max_pixels, whole)[1]))
    store = bounded_store()(path, max_bytes=max(chunk_bytes))
    for i, ds in enumerate(datasets):
        node = path / ds["path"]
        own = _scale(ds.get("coordinateTransformations"), len(axes), f"{path}: level {i}")
        try:
            array = zarr.open_array(store=store, path=ds["path"], mode="r")
        except Exception as exc:  # noqa: BLE001 - zarr raises many kinds
            raise ImageReadError(f"{node}: cannot open the zarr array: {exc}") from None
        levels.append(da.from_array(array, chunks=array.chunks))
        scales.append(tuple(a * b for a, b in zip(own, outer)))
    return OmeZarrImage(path, levels, axes, scales, units, fmt, attrs)


def info(path: str | os.PathLike, max_pixels: int | None = None):
    """The :class:`~napari_iem.files.read.ImageInfo` of an OME-Zarr's full-resolution
    level, its ``ome`` the level's :meth:`OmeZarrImage.metadata`: what
    :func:`~napari_iem.files.read.image_info` gives for it."""
    from .read import ImageInfo

    image = open_ome_zarr(path, max_pixels)
    level = image.levels[0]
    shape = tuple(int(s) for s in level.shape)
    return ImageInfo(Path(path), "ome-zarr", shape, np.dtype(level.dtype).name,
                     _counted(shape, image.channel_axis), image.metadata(0))


def read_ome_zarr(path: str | os.PathLike, level: int = 0,
                  max_pixels: int | None = None) -> tuple[np.ndarray, OmeZarrImage]:
    """The pixels of one level of an OME-Zarr, and the opened image.

    Raises
    ------
    ImageReadError
        As :func:`open_ome_zarr`; also for a level that does not exist, or chunks that
        cannot be decoded.
    """
    image = open_ome_zarr(path, max_pixels)
    if not 0 <= level < len(image.levels):
        raise ImageReadError(f"{path}: no level {level} (it has {len(image.levels)})")
    try:
        data = np.asarray(image.levels[level].compute(scheduler="threads"))
    except Exception as exc:  # noqa: BLE001 - zarr and the codecs raise many kinds
        raise ImageReadError(f"{path}: cannot read pixel data: {exc}") from None
    if data.size == 0:
        raise ImageReadError(f"{path}: image has no pixels (shape {data.shape})")
    return data, image


def read_ome_zarr_provenance(path: str | os.PathLike, name: str | None = "iem") -> dict:
    """The napari-iem provenance of an OME-Zarr label image it wrote.

    ``path`` is the label image itself (a ``--format ome-zarr`` output, or
    ``image.zarr/labels/iem``), or an image whose ``labels/<name>`` napari-iem wrote;
    ``name`` None: the label image itself only (an image is never taken for its labels).

    Raises
    ------
    FileReadError
        No napari-iem provenance there, or unreadable metadata.
    """
    path = Path(path)
    for node in (path,) if name is None else (path, path / "labels" / name):
        if _meta_file(node) is not None:
            record = ngff_attributes(node)[0].get(PROVENANCE_KEY)
            if isinstance(record, dict):
                return record
    raise FileReadError(f"{path}: no napari-iem provenance in its attributes")

