"""OME-Zarr out: labels as an NGFF label image, with a pyramid and the provenance.

:func:`write_ome_zarr_labels` writes labels (numpy, or dask written chunk by chunk and
never computed whole) as an NGFF label image: ``multiscales`` with a pyramid made by
nearest-neighbour downsampling of ``y`` and ``x`` (each level read back from the one
just written, so a dask graph is computed once), ``image-label`` with a colour per
label (the palette of the label PNGs), and the run's provenance under
:data:`~napari_iem.files.ome_zarr.PROVENANCE_KEY`.

* With ``source`` (an OME-Zarr image) the labels go to ``source/labels/<name>`` and
  ``<name>`` is appended to the ``labels`` list, every other entry and group left as
  it was; a group of that name that napari-iem did not write is never replaced.
* Without, a new OME-Zarr is made at ``target`` whose root is the label image (what
  napari-ome-zarr opens as a Labels layer); an existing ``target`` is replaced only
  when napari-iem wrote it.

A folder cannot be renamed over another atomically, so the labels are written to a
hidden temporary folder beside the target and renamed into place; an earlier version
of ours is renamed aside first and deleted after.  A reader thus sees the old labels or
the new ones, never half of either; a crash between the two renames leaves the old ones
under a hidden ``*.iem-old`` name.  The format follows the source's (zarr v2 with
NGFF 0.4, or v3 with 0.5); a new one is NGFF 0.4, which every OME-Zarr reader opens.
"""
from __future__ import annotations

import json
import math
import os
import secrets
import shutil
from pathlib import Path

import numpy as np

from .journal import before_rename
from .ome_zarr import PROVENANCE_KEY, UNIT_SYMBOLS, _json, ngff_attributes, open_ome_zarr
from .read import FileReadError
from .write import TEMP_SUFFIX, atomic_output, label_palette

__all__ = ["OLD_SUFFIX", "label_axes", "write_ome_zarr_labels"]

#: Suffix of an earlier OME-Zarr set aside while its replacement is renamed into place
#: (hidden, ``.<name>.<8 hex>.iem-old``; deleted right after).
OLD_SUFFIX = ".iem-old"

_NAMES = {v: k for k, v in UNIT_SYMBOLS.items()} | {"μm": "micrometer", "um": "micrometer"}
#: Colours listed in ``image-label`` at most (instance labels may number millions).
MAX_COLOURS = 4096
#: Pyramid levels are made until y and x are at most this long.
SMALLEST = 256


def label_axes(meta: dict) -> tuple[str, list[float], dict]:
    """NGFF axes, scale and units from the ``metadata=`` of
    :func:`napari_iem.files.ome.label_metadata` (OME-XML's axes, physical sizes and
    unit symbols), so that an OME-Zarr output says what an OME-TIFF one would."""
    axes = meta["axes"].lower()
    scale, units = [], {}
    for axis in meta["axes"]:
        scale.append(float(meta.get(f"PhysicalSize{axis}", 1.0)))
        unit = meta.get(f"PhysicalSize{axis}Unit")
        units[axis.lower()] = _NAMES.get(unit, unit) if unit else None
    return axes, scale, units


def _check_ours(node: Path, what: str) -> None:
    """Refuse ``node`` (an existing path) unless napari-iem wrote it."""
    try:
        ours = node.is_dir() and not node.is_symlink() and \
            PROVENANCE_KEY in ngff_attributes(node)[0]
    except (FileReadError, OSError):
        ours = False
    if not ours:
        raise FileExistsError(f"{node} exists and was not written by napari-iem; it is "
                              f"left alone ({what})")


def _ngff_axes(axes: str, units: dict) -> list[dict]:
    out = []
    for a in axes:
        kind = "space" if a in "zyx" else "time" if a == "t" else "channel"
        entry = {"name": a, "type": kind}
        if units.get(a):
            entry["unit"] = units[a]
        out.append(entry)
    return out


def _colours(top: int) -> list[dict]:
    palette = label_palette()
    return [{"label-value": k, "rgba": [*palette[3 * (1 + (k - 1) % 255):][:3], 255]}
            for k in range(1, min(int(top), MAX_COLOURS) + 1)]


def _attributes(fmt: int, axes: str, scales: list, units: dict, top: int,
                record: dict, name: str, in_source: bool) -> dict:
    """The label image's attributes: multiscales, image-label (with the image it
    labels when it lies in one's ``labels/``), provenance."""
    ms = {"name": name, "axes": _ngff_axes(axes, units),
          "datasets": [{"path": str(i), "coordinateTransformations": [
              {"type": "scale", "scale": [float(v) for v in s]}]}
              for i, s in enumerate(scales)]}
    label = {"colors": _colours(top)}
    if in_source:
        label["source"] = {"image": "../../"}
    if fmt == 2:
        ms["version"] = label["version"] = "0.4"
        return {"multiscales": [ms], "image-label": label, PROVENANCE_KEY: record}
    return {"ome": {"version": "0.5", "multiscales": [ms], "image-label": label},
            PROVENANCE_KEY: record}


def _group_meta(node: Path, fmt: int, attrs: dict) -> None:
    """A zarr group's own metadata files, written atomically."""
    node.mkdir(exist_ok=True)
    if fmt == 2:
        files = {".zgroup": {"zarr_format": 2}, ".zattrs": attrs}
    else:
        files = {"zarr.json": {"zarr_format": 3, "node_type": "group",
                               "attributes": attrs}}
    for fname, data in files.items():
        with atomic_output(node / fname) as tmp:
            tmp.write_text(json.dumps(data, indent=1, default=str) + "\n",
                           encoding="utf-8")


def _chunks(shape: tuple, axes: str, chunks) -> tuple:
    if chunks is not None:
        if len(chunks) != len(shape) or not all(int(c) >= 1 for c in chunks):
            raise ValueError(f"chunks {tuple(chunks)} must be {len(shape)} numbers >= 1")
        return tuple(min(int(c), max(1, s)) for c, s in zip(chunks, shape))
    want = {"z": 16, "y": 256, "x": 256}
    return tuple(max(1, min(s, want.get(a, 1))) for a, s in zip(axes, shape))


def _write_pyramid(labels, tmp: Path, fmt: int, axes: str, scale: list,
                   chunks: tuple) -> tuple[list, int]:
    """Every level into ``tmp``, chunk by chunk; returns the levels' scales and the
    largest label."""
    import dask.array as da
    import numcodecs
    import zarr

    group = zarr.open_group(tmp, mode="w", zarr_format=fmt)
    extra = ({"compressors": numcodecs.Zlib(level=5),
              "chunk_key_encoding": {"name": "v2", "separator": "/"}} if fmt == 2 else {})
    yx = [i for i, a in enumerate(axes) if a in "yx"]
    level = labels if isinstance(labels, da.Array) else da.from_array(labels, chunks)
    scales, top = [], 0
    for i in range(16):
        array = group.create_array(str(i), shape=level.shape, chunks=chunks,
                                   dtype=level.dtype, fill_value=0, **extra)
        da.store(level.rechunk(chunks), array, lock=False, scheduler="threads")
        scales.append([v * 2**i if k in yx else v for k, v in enumerate(scale)])
        written = da.from_array(array, chunks=chunks)
        if i == 0:
            top = int(written.max().compute(scheduler="threads")) if written.size else 0
        if max(level.shape[k] for k in yx) <= SMALLEST:
            break
        level = written[tuple(slice(None, None, 2) if k in yx else slice(None)
                              for k in range(len(axes)))]
    return scales, top


def _swap_in(tmp: Path, target: Path) -> None:
    """``tmp`` renamed to ``target``; our old ``target`` aside first, deleted after."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.{secrets.token_hex(4)}{OLD_SUFFIX}")
        os.replace(target, old)
    try:
        before_rename(tmp, target)
        os.replace(tmp, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _append_label(labels_dir: Path, fmt: int, name: str) -> None:
    """``name`` into the ``labels`` list of ``labels_dir``, nothing else changed."""
    attrs = {}
    meta = labels_dir / ("zarr.json" if fmt == 3 else ".zattrs")
    if meta.is_file():
        attrs = _json(meta) if fmt == 2 else _json(meta).get("attributes") or {}
    where = attrs.setdefault("ome", {"version": "0.5"}) if fmt == 3 else attrs
    names = where.get("labels")
    if not isinstance(names, list):
        names = where["labels"] = []
    if name not in names:
        names.append(name)
    _group_meta(labels_dir, fmt, attrs)


def write_ome_zarr_labels(labels, target: str | os.PathLike | None = None, *,
                          name: str = "iem", axes: str, scale, provenance: dict,
                          source: str | os.PathLike | None = None, chunks=None,
                          units: dict | None = None) -> Path:
    """Write labels as an NGFF label image (see the module docstring).

    Parameters
    ----------
    labels : ndarray or dask.array.Array of int
        0 background, 1.. the regions or objects; one axis per letter of ``axes``.
    target : path-like, optional
        The new OME-Zarr (``*.ome.zarr``); ignored with ``source``.
    name : str
        The label image's name in ``source/labels/``.
    axes : str
        NGFF axis names of ``labels`` (``"yx"``, ``"zyx"``, ``"tzyx"``).
    scale : sequence of float
        The physical spacing of every axis, or of the last ones (the rest get 1).
    provenance : dict
        :func:`napari_iem.files.ome.provenance`, stored under ``"napari-iem"``.
    source : path-like, optional
        An OME-Zarr image to add the labels to, in its ``labels/`` group.
    chunks : sequence of int, optional
        Chunk shape (default 256 along y and x, 16 along z, 1 elsewhere).
    units : dict, optional
        Axis -> NGFF unit (``"micrometer"``).

    Returns
    -------
    Path
        The label image written (``target``, or ``source/labels/<name>``).

    Raises
    ------
    FileExistsError
        The target exists and napari-iem did not write it.
    ValueError
        Labels that are not integers, or axes, scale or chunks that do not fit them.
    ImageReadError
        ``source`` is not an OME-Zarr.
    """
    import dask.array as da

    if not isinstance(labels, da.Array):
        labels = np.asarray(labels)
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    axes = str(axes).lower()
    if len(axes) != labels.ndim or not axes.endswith("yx") or set(axes) - set("tczyx") \
            or len(set(axes)) != len(axes):
        raise ValueError(f"axes {axes!r} do not name the {labels.ndim} axes of labels "
                         "(t, c, z, y, x, each once, ending in yx)")
    scale = [float(v) for v in (scale or ())]
    if len(scale) > len(axes) or not all(math.isfinite(v) and v > 0 for v in scale):
        raise ValueError(f"scale {scale} must be up to {len(axes)} positive numbers")
    scale = [1.0] * (len(axes) - len(scale)) + scale
    if not _safe_name(name):
        raise ValueError(f"label name {name!r} must be letters, digits, _, - or .")
    if source is not None:
        source = Path(source)
        fmt = open_ome_zarr(source).zarr_format  # checked: an OME-Zarr image
        labels_dir = source / "labels"
        if labels_dir.exists() and not labels_dir.is_dir() or labels_dir.is_symlink():
            raise FileExistsError(f"{labels_dir} is not a folder; it is left alone")
        final = labels_dir / name
        how = f"choose another name, e.g. name='{name}-2', or remove it yourself"
    else:
        if target is None:
            raise ValueError("give a target path or a source image")
        final, fmt = Path(target), 2
        how = "choose another output path, or move it"
    if final.exists() or final.is_symlink():
        _check_ours(final, how)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    try:
        shape = tuple(int(s) for s in labels.shape)
        scales, top = _write_pyramid(labels, tmp, fmt, axes, scale,
                                     _chunks(shape, axes, chunks))
        _group_meta(tmp, fmt, _attributes(fmt, axes, scales, units or {}, top,
                                          provenance, name, source is not None))
        if source is not None:
            if not (labels_dir / ("zarr.json" if fmt == 3 else ".zgroup")).exists():
                _group_meta(labels_dir, fmt, {"ome": {"version": "0.5", "labels": []}}
                            if fmt == 3 else {"labels": []})
        _swap_in(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if source is not None:
        _append_label(labels_dir, fmt, name)
    return final


def _safe_name(name) -> bool:
    return isinstance(name, str) and bool(name) and not name.startswith(".") and \
        all(c.isalnum() or c in "_-." for c in name) and len(name) <= 100
