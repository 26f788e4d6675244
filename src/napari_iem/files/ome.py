"""OME-TIFF in and out: axes, physical pixel sizes and the provenance of a result.

Reading
-------
:func:`napari_iem.files.read.image_info` calls :func:`parse_ome_xml` on the OME-XML of
an OME-TIFF *before* tifffile builds its series from it, so that the XML is checked
first, as untrusted input:

* at most :data:`MAX_OME_XML` characters, and no document type (``<!DOCTYPE``,
  ``<!ENTITY``: an entity bomb needs one, and OME-XML never does);
* a single file: an OME-XML that points at other files (``TiffData/UUID FileName``) or
  holds metadata only (``BinaryOnly``) is refused, since tifffile would open those
  files by name, without the checks of :mod:`napari_iem.files.read`;
* ``PhysicalSizeX/Y/Z`` must be finite positive numbers; a bad one is not used, and
  asking for the scale of that axis says why (``--scale`` sets it instead).

:class:`OmeMetadata` is what comes back: the axes of the pixel array as read
(``"ZYX"``, ``"CZYX"``, ``"TCZYX"``), the physical size and unit of each spatial axis
(None where absent), and :meth:`OmeMetadata.scale`, the spacing for the engine;
:func:`read_ome` gives the pixels with it.

Writing
-------
:func:`label_metadata` is the ``metadata=`` of ``tifffile.imwrite(..., ome=True)`` for
a label image: its axes, physical sizes, and the IEM provenance (:func:`provenance`) as
JSON in a ``CommentAnnotation`` of namespace :data:`PROVENANCE_NS`, which
:func:`read_provenance` reads back.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from .read import (
    FileReadError,
    ImageReadError,
    image_info,
    open_regular,
    pixel_limit,
    read_image,
)

__all__ = [
    "MAX_OME_XML",
    "PROVENANCE_NS",
    "OmeMetadata",
    "label_metadata",
    "parse_ome_xml",
    "provenance",
    "read_ome",
    "read_provenance",
]

#: Longest OME-XML parsed, in characters (the metadata of thousands of planes).
MAX_OME_XML = 2**24
#: Namespace of the ``CommentAnnotation`` holding the IEM provenance as JSON.
PROVENANCE_NS = "napari-iem/provenance"
SPATIAL = "ZYX"
#: Micrometres per unit, for the OME length units met in microscopy.
_MICROMETRES = {"m": 1e6, "dm": 1e5, "cm": 1e4, "mm": 1e3, "µm": 1.0, "μm": 1.0,
                "um": 1.0, "nm": 1e-3, "pm": 1e-6, "Å": 1e-4, "fm": 1e-9}
_MAX_UNIT = 40
#: Axes tifffile writes into OME-XML for labels (no channel, no sample axis).
_LABEL_AXES = re.compile(r"^T?Z?YX$")


@dataclass(frozen=True)
class OmeMetadata:
    """What the OME-XML of an image says about its axes and pixel sizes.

    Attributes
    ----------
    axes : str
        One letter per axis of the array read (tifffile's series axes, e.g. ``"ZYX"``,
        ``"CZYX"``, ``"TCZYX"``; axes of length 1 are dropped).
    sizes : dict
        ``"Z"``, ``"Y"``, ``"X"`` -> physical size of a pixel along it, or None.
    units : dict
        The same keys -> the unit of that size (OME's default ``"µm"``), or None.
    invalid : dict
        Axes whose size was given but is not a finite positive number -> why.
    """

    axes: str = ""
    sizes: dict = field(default_factory=dict)
    units: dict = field(default_factory=dict)
    invalid: dict = field(default_factory=dict)

    @property
    def channel_axis(self) -> int | None:
        """Index of the ``C`` axis in the array, or None."""
        return self.axes.index("C") if "C" in self.axes else None

    def spatial_axes(self, count: int) -> str:
        """The last ``count`` axes that are neither channels nor samples."""
        rest = "".join(a for a in self.axes if a not in "CS")
        return rest[-count:] if len(rest) >= count else ""

    def scale(self, count: int) -> tuple[float, ...] | None:
        """The spacing of the last ``count`` spatial axes, in micrometres when the units
        are lengths (else in their common unit); None when one is absent or those
        axes are not Z, Y, X.

        Raises
        ------
        ValueError
            When a size of those axes is not a positive number, or the units cannot be
            compared (``pixel`` against ``µm``).
        """
        axes = self.spatial_axes(count)
        if not axes or any(a not in SPATIAL for a in axes):
            return None
        bad = [self.invalid[a] for a in axes if a in self.invalid]
        if bad:
            raise ValueError("; ".join(bad) + " (give the spacing with --scale Z,Y,X)")
        if any(self.sizes.get(a) is None for a in axes):
            return None
        units = [self.units[a] for a in axes]
        if all(u in _MICROMETRES for u in units):
            return tuple(self.sizes[a] * _MICROMETRES[u] for a, u in zip(axes, units))
        if len(set(units)) == 1:
            return tuple(self.sizes[a] for a in axes)
        raise ValueError(f"physical sizes in units that cannot be compared ({units}); "
                         "give the spacing with --scale Z,Y,X")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element, name: str) -> list:
    return [e for e in element if _local(e.tag) == name]


def parse_ome_xml(xml: str, path: str | os.PathLike) -> OmeMetadata:
    """Check the OME-XML of the TIFF at ``path`` and read its first image's pixel sizes.

    Returns an :class:`OmeMetadata` without axes (tifffile's series gives them).

    Raises
    ------
    ImageReadError
        Too long, with a document type, not well-formed, not OME, without an
        ``Image/Pixels`` element, or pointing at other files (see the module docstring).
    """
    path = Path(path)
    if not isinstance(xml, str) or len(xml) > MAX_OME_XML:
        raise ImageReadError(f"{path}: OME-XML longer than {MAX_OME_XML:,} characters; "
                             "refusing to parse it")
    if "<!DOCTYPE" in xml or "<!ENTITY" in xml:
        raise ImageReadError(f"{path}: OME-XML with a document type or entities; "
                             "refusing to parse it")
    try:
        root = ElementTree.fromstring(xml)
    except (ElementTree.ParseError, ValueError) as exc:
        raise ImageReadError(f"{path}: malformed OME-XML ({exc})") from None
    if _local(root.tag) != "OME":
        raise ImageReadError(f"{path}: the OME-XML's root is <{_local(root.tag)}>, "
                             "not <OME>")
    if _children(root, "BinaryOnly"):
        raise ImageReadError(f"{path}: OME-XML without pixels (BinaryOnly: the metadata "
                             "of another file); open the file that holds the pixels")
    for uuid in root.iter():
        name = uuid.attrib.get("FileName") if _local(uuid.tag) == "UUID" else None
        if name is not None and name.lower() != path.name.lower():
            raise ImageReadError(f"{path}: a multi-file OME-TIFF (its OME-XML refers "
                                 f"to {name[:100]!r}); only single-file OME-TIFF is read")
    images = _children(root, "Image")
    pixels = _children(images[0], "Pixels") if images else []
    if not pixels:
        raise ImageReadError(f"{path}: OME-XML without an Image/Pixels element")
    attrib = pixels[0].attrib
    sizes, units, invalid = {}, {}, {}
    for axis in SPATIAL:
        text = attrib.get(f"PhysicalSize{axis}")
        sizes[axis] = units[axis] = None
        if text is None:
            continue
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            invalid[axis] = f"PhysicalSize{axis}={text[:40]!r} is not a positive number"
            continue
        sizes[axis] = value
        units[axis] = attrib.get(f"PhysicalSize{axis}Unit", "µm")[:_MAX_UNIT]
    return OmeMetadata("", sizes, units, invalid)


def provenance(res, settings: dict) -> dict:
    """The record of how labels were made: settings, preset picked, versions, run.

    Parameters
    ----------
    res : IEMResult
        The result the labels come from.
    settings : dict
        What was asked for: ``preset``, ``regions``, ``params`` (the overrides),
        ``mode`` and ``scale`` (None, ``"ome"`` or ``"--scale"`` for ``scale_from``).
    """
    from ..engine.finish import versions

    meta = res.metadata
    return {
        "versions": meta.get("versions") or versions(),
        "settings": settings,
        "preset": res.params.get("preset", ""),
        "params": res.params,
        "iterations": res.iterations,
        "converged": res.converged,
        "stopped_at_cap": res.stopped_at_cap,
        "structure_found": res.structure_found,
        "empty_planes": [list(i) for i in res.empty_problems if i],
        "seconds": round(float(res.seconds), 4),
        "device": res.device,
        "mode": meta.get("mode"),
        "scale": meta.get("scale"),
        "sigma_units": meta.get("sigma_units"),
        "sigma_working_pixels": meta.get("sigma_working_pixels"),
    }


def label_metadata(ndim: int, ome: OmeMetadata | None, scale,
                   record: dict) -> dict | None:
    """``metadata=`` for ``tifffile.imwrite(..., ome=True)`` of ``ndim``-D labels.

    The axes are the source's without channels (``"TZYX"``'s last ``ndim`` letters when
    the source is no OME-TIFF or has other axes); the physical sizes are the source's,
    else ``scale`` (the spacing used, last axes); ``record`` is stored as JSON.  None
    for labels of more than 4 axes that are not the source's.
    """
    axes = ome.axes.replace("C", "").replace("S", "") if ome is not None else ""
    if len(axes) != ndim or not _LABEL_AXES.match(axes):
        axes = "TZYX"[-ndim:]
    if len(axes) != ndim:
        return None
    version = record.get("versions", {}).get("napari-iem")
    meta = {"axes": axes, "Creator": f"napari-iem {version}",
            "CommentAnnotation": {"Namespace": PROVENANCE_NS,
                                  "Value": json.dumps(record, default=str)}}
    spatial = [a for a in axes if a in SPATIAL]
    given = dict(zip(spatial[::-1], (scale or ())[::-1]))
    for axis in spatial:
        if ome is not None and ome.sizes.get(axis) is not None:
            meta[f"PhysicalSize{axis}"] = ome.sizes[axis]
            meta[f"PhysicalSize{axis}Unit"] = ome.units[axis]
        elif axis in given:
            meta[f"PhysicalSize{axis}"] = float(given[axis])
    return meta


def read_ome(path: str | os.PathLike,
             max_pixels: int | None = None) -> tuple[np.ndarray, OmeMetadata | None]:
    """The pixels of a TIFF (any image :func:`~napari_iem.files.read.read_image` reads)
    and, for an OME-TIFF, its :class:`OmeMetadata` (None otherwise).

    Raises
    ------
    ImageReadError
        As :func:`~napari_iem.files.read.read_image`; also for OME-XML that fails the
        checks of :func:`parse_ome_xml`.
    """
    info = image_info(path, max_pixels)
    return read_image(path, max_pixels), info.ome


def read_provenance(path: str | os.PathLike, max_pixels: int | None = None) -> dict:
    """The IEM provenance stored in a label OME-TIFF written by napari-iem.

    Raises
    ------
    FileReadError
        When the file cannot be read, is not OME-TIFF, or holds no IEM provenance.
    """
    import tifffile

    info = image_info(path, max_pixels)  # regular file, bounded, OME-XML checked
    if info.ome is None:
        raise FileReadError(f"{path}: not an OME-TIFF")
    with open_regular(path, pixel_limit(max_pixels) * 32 + 2**20) as fh, \
            tifffile.TiffFile(fh, name=Path(path).name) as tif:
        root = ElementTree.fromstring(tif.ome_metadata)
    for element in root.iter():
        if (_local(element.tag) == "CommentAnnotation"
                and element.attrib.get("Namespace") == PROVENANCE_NS):
            value = _children(element, "Value")
            try:
                return json.loads(value[0].text or "") if value else {}
            except ValueError as exc:
                raise FileReadError(f"{path}: unreadable IEM provenance ({exc})") from None
    raise FileReadError(f"{path}: no napari-iem provenance in its OME-XML")
