"""napari's "Open" for the labels napari-iem wrote: OME-TIFF and OME-Zarr, calibrated.

napari's own TIFF reader opens a label OME-TIFF as an Image layer of unit scale, so
labels saved from the widget (:mod:`napari_iem._napari.writer`) or written by the
command line came back uncalibrated and as an image.  This reader (the npe2 command
``napari-iem.get_reader``) takes only files that carry napari-iem's provenance and
opens them as a Labels layer: the physical pixel sizes as ``scale``, their units, and
the provenance in ``metadata["iem_provenance"]``.  Any other file is left to other
readers (``get_reader`` returns None), so the plugin never claims a user's images.
An OME-Zarr opens lazily, as the pyramid it holds.  No Qt here.
"""
from __future__ import annotations

from pathlib import Path

from ..files.read import FileReadError

__all__ = ["get_reader"]

#: NGFF and OME unit names -> what napari's ``units`` (pint) reads.
_UNITS = {"µm": "micrometer", "um": "micrometer", "nm": "nanometer", "mm": "millimeter",
          "s": "second", "ms": "millisecond"}


def _is_tiff(path: Path) -> bool:
    return path.name.lower().endswith((".ome.tif", ".ome.tiff"))


def get_reader(path):
    """The reader of ``path`` when it is labels napari-iem wrote, else None."""
    if not isinstance(path, str | Path):
        return None  # a list of files: other readers' business
    path = Path(path)
    try:
        if _is_tiff(path) and path.is_file():
            from ..files.ome import read_provenance

            read_provenance(path)
        elif path.name.lower().endswith(".zarr") and path.is_dir():
            from ..files.ome_zarr import read_ome_zarr_provenance

            # the label image's own: an image napari-iem wrote labels into is no labels
            read_ome_zarr_provenance(path, name=None)
        else:
            return None
    except (FileReadError, OSError, ValueError):
        return None
    return read_labels_layer


def _stem(name: str, suffixes: tuple[str, ...]) -> str:
    """``name`` without its file suffix and the ``.ome`` before it (the layer's name)."""
    for suffix in suffixes:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name[:-4] if name.lower().endswith(".ome") else name


def _unit(name) -> str | None:
    return None if name is None else _UNITS.get(str(name), str(name))


def read_labels_layer(path) -> list[tuple]:
    """One Labels layer data tuple for labels napari-iem wrote (see the module)."""
    path = Path(path)
    if _is_tiff(path):
        from ..files.ome import read_ome, read_provenance

        data, ome = read_ome(path)
        axes = ome.axes.upper() if ome is not None else ""
        scale = [float((ome.sizes.get(a) if ome else None) or 1.0) for a in axes] \
            if len(axes) == data.ndim else [1.0] * data.ndim
        units = [_unit(ome.units.get(a)) if ome else None for a in axes] \
            if len(axes) == data.ndim else [None] * data.ndim
        record, name = read_provenance(path), _stem(path.name, (".tiff", ".tif"))
    else:
        from ..files.ome_zarr import open_ome_zarr, read_ome_zarr_provenance

        image = open_ome_zarr(path)
        data = image.levels if len(image.levels) > 1 else image.levels[0]
        scale = [float(s) for s in image.scale[0]]
        units = [_unit(image.units.get(a)) for a in image.axes]
        record, name = read_ome_zarr_provenance(path, None), _stem(path.name, (".zarr",))
    meta = {"name": name, "scale": scale, "metadata": {"iem_provenance": record}}
    if all(u is not None for u in units):
        meta["units"] = units
    return [(data, meta, "labels")]
