"""One task, on a worker or in this process: check, read, segment, write.

For each image the header is read first and the memory the run will need is checked
against the device's free memory *before* any pixel is decoded; only then is the
file read.  Outputs are written atomically, and only over files the client said this
tool may replace (its manifest's verdict, passed in with the item).  A single bad file
is recorded with its reason and never stops the others.

An OME-TIFF brings its own axes and pixel sizes (:mod:`napari_iem.files.ome`): its
``C`` axis is the channel axis unless one is given, its physical sizes are the
``scale`` of the spatial axes unless ``--scale`` is given, and its labels are written
as OME-TIFF with the source's axes and sizes and the run's provenance (as are n-D
labels of any input).  An OME-Zarr input (a folder, read whole at full resolution:
:mod:`napari_iem.files.ome_zarr`) is treated alike, and its labels are written as an
OME-Zarr label image ``<stem>.ome.zarr``.  ``--format`` (``cfg["format"]``) asks for
one format whatever the input: ``png``, ``tiff``, ``ome-tiff`` or ``ome-zarr``.
"""
from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import numpy as np

from ..engine.layout import plan_layout
from ..files.fingerprint import output_fingerprint
from ..files.journal import journalled
from ..files.ome import label_metadata, provenance
from ..files.names import output_path
from ..files.overlay import write_overlay
from ..files.read import image_info, read_image
from ..files.write import label_paths, labels_suffix, write_labels, write_ome_labels
from .guard import OVERLAY_DIR, BatchError

__all__ = ["check_fits", "check_spacing", "segment_task"]


def _shape_str(shape) -> str:
    return "x".join(str(int(s)) for s in shape)


def _apply_protocol(image, protocol):
    if protocol == "paper":
        from ..analysis.metrics import paper_protocol

        return paper_protocol(image)
    return image


def check_fits(info, cfg: dict, device, held: int) -> int:
    """Raise :class:`~napari_iem.engine.memory.NotEnoughMemoryError` when segmenting the
    image of header ``info`` would not fit, counting the ``held`` bytes of images this
    task already read; returns the bytes the decoded image itself will take."""
    from ..engine.layout import plan_layout
    from ..engine.memory import check_memory, estimate_bytes
    from ..engine.preprocess import working_shape
    from ..engine.presets import get_preset

    shape = tuple(info.shape)
    channel_axis = cfg.get("channel_axis")
    if channel_axis is not None and -len(shape) <= channel_axis < len(shape):
        ax = channel_axis % len(shape)
        shape = shape[:ax] + shape[ax + 1:] + (shape[ax],)
    if cfg.get("protocol") == "paper":
        shape = (128, 128) + shape[2:]
    nd = cfg.get("nd_options") or {}
    layout = plan_layout(shape, nd.get("mode", "2d"),
                         -1 if channel_axis is not None else None)
    overrides = cfg["overrides"]
    max_size = overrides["max_size"] if "max_size" in overrides \
        else get_preset(cfg["preset"]).max_size
    work = working_shape(layout.spatial, max_size)
    itemsize = np.dtype(info.dtype).itemsize
    need = estimate_bytes(layout.spatial, layout.channels, cfg["regions"], work,
                          maps=False, input_itemsize=itemsize,
                          problems=layout.problems)
    decoded = math.prod(info.shape) * itemsize
    need["host"] += decoded + held
    check_memory(need, device, what=f"{info.path} ({_shape_str(info.shape)})",
                 asked={"max_size": max_size, "mode": layout.mode, "maps": False})
    return decoded


def _channel_axis(info, cfg: dict) -> int | None:
    """The axis of a file's stored array that holds channels: ``--channel-axis``, else
    an OME file's C axis, else none (grey, or RGB(A) last)."""
    channel_axis = cfg.get("channel_axis")
    if channel_axis is None and info.ome is not None:
        channel_axis = info.ome.channel_axis
    return channel_axis


def _how(info, cfg: dict) -> dict:
    """How to read one file: its channel axis and spacing (``--scale``, else the
    OME-TIFF's physical sizes), and where the spacing came from."""
    ome = info.ome
    nd = cfg.get("nd_options") or {}
    scale, source = cfg.get("scale"), "--scale"
    if scale is None and ome is not None:
        scale, source = ome.scale(3 if nd.get("mode") == "volume" else 2), "ome"
    return {"channel_axis": _channel_axis(info, cfg), "scale": None if scale is None
            else tuple(scale), "scale_from": None if scale is None else source,
            "format": info.format}


def check_spacing(infos: list, cfg: dict) -> None:
    """Refuse once, before any work, a spacing that every image to do would refuse
    alike (each file's error would say the same): a ``scale`` that fits none of their
    layouts, or ``sigma_units="physical"`` with no ``scale`` and no pixel sizes in
    any of their headers.  Where one image fits or has sizes, the others keep their
    own errors, which depend on each file; so do the images whose layout cannot be
    read from their header."""
    from ..engine.layout import spatial_scale

    nd = cfg.get("nd_options") or {}
    if cfg.get("scale") is not None:
        errors = []
        for layout in filter(None, (_stored_layout(i, cfg) for i in infos)):
            try:
                spatial_scale(cfg["scale"], layout)
            except ValueError as exc:
                errors.append(exc)
            else:
                return
        if errors:
            raise BatchError(f"scale= fits none of the {len(errors)} images: {errors[0]}")
    elif nd.get("sigma_units") == "physical" and infos and not any(
            _may_have_spacing(i, cfg) for i in infos):
        raise BatchError("sigma_units='physical' needs the pixel spacing, and none of "
                         f"the {len(infos)} images' headers has pixel sizes: give it with "
                         "scale= (one value per spatial axis), or use "
                         "sigma_units='pixels'")


def _stored_layout(info, cfg: dict):
    """The layout of a file's stored shape, or None where it has none (its own error
    says why)."""
    mode = (cfg.get("nd_options") or {}).get("mode", "2d")
    try:
        return plan_layout(info.shape, mode, _channel_axis(info, cfg))
    except ValueError:
        return None


def _may_have_spacing(info, cfg: dict) -> bool:
    """Whether a file's header gives its pixel spacing, or sizes that are wrong (which
    its own error names)."""
    try:
        return _how(info, cfg)["scale"] is not None
    except ValueError:
        return True


def _read(path: str, cfg: dict, device, held: int) -> tuple[np.ndarray, dict, str, int]:
    """The image at ``path`` ready to segment, how to read it (:func:`_how`, with
    ``ome``), its stored shape and its bytes."""
    info = image_info(path, cfg.get("max_pixels"))
    how = _how(info, cfg)
    # the layout of the stored shape, before any axis is moved: an axis that is not
    # there, or a shape the mode cannot take, is said in the file's own axis order
    plan_layout(info.shape, (cfg.get("nd_options") or {}).get("mode", "2d"),
                how["channel_axis"])
    size = check_fits(info, {**cfg, "channel_axis": how["channel_axis"]}, device, held)
    img = read_image(path, cfg.get("max_pixels"))
    if how["channel_axis"] is not None:
        img = np.moveaxis(img, how["channel_axis"], -1)
    how["ome"] = info.ome
    return (_apply_protocol(img, cfg.get("protocol")), how, _shape_str(info.shape),
            size)


def _options(how: dict) -> dict:
    """The keywords of ``segment`` for one file read as ``how`` says."""
    out = {} if how["channel_axis"] is None else {"channel_axis": -1}  # moved last
    if how["scale"] is not None:
        out["scale"] = how["scale"]
    return out


def _segment_all(images: list, hows: list, cfg: dict, records: dict, ok: list) -> list:
    """Results per image (None where it failed, with the reason in its record)."""
    from ..api import segment, segment_batch

    kwargs = dict(preset=cfg["preset"], device=cfg["device"], **cfg["overrides"])
    options = [_options(h) for h in hows]
    nd = cfg.get("nd_options") or {}
    one = dict(nd, maps=False)  # files get labels only
    try:
        if nd or any(o != options[0] for o in options):  # one image at a time
            return [segment(img, cfg["regions"], **kwargs, **one, **o)
                    for img, o in zip(images, options)]
        return segment_batch(images, cfg["regions"], **kwargs, maps=False, **options[0])
    except Exception:  # noqa: BLE001, S110 - whatever it was, the loop below finds it
        pass
    # Find the culprit: run the images one by one, recording each error.
    results = []
    for img, o, (index, _, _) in zip(images, options, ok):
        try:
            results.append(segment(img, cfg["regions"], **kwargs, **one, **o))
        except Exception as exc:  # noqa: BLE001 - recorded, the others go on
            records[index]["error"] = f"segmentation failed: {exc}"
            results.append(None)
    return results


def _record(res, how: dict, cfg: dict) -> dict:
    """The provenance of one result (what an OME-TIFF output carries)."""
    nd = cfg.get("nd_options") or {}
    return provenance(res, {
        "preset": cfg["preset"], "regions": cfg["regions"],
        "params": cfg["overrides"], "mode": nd.get("mode", "2d"),
        "instances": bool(nd.get("instances")), "protocol": cfg.get("protocol") or "full",
        "channel_axis": how["channel_axis"], "scale_from": how["scale_from"],
    })


def _format(labels, how: dict, cfg: dict) -> str:
    """The format of an image's labels: ``--format``, or for ``auto`` OME-Zarr for an
    OME-Zarr input, OME-TIFF for an OME-TIFF input or n-D labels, else PNG or TIFF."""
    fmt = cfg.get("format") or "auto"
    if fmt != "auto":
        return fmt
    if how.get("format") == "ome-zarr":
        return "ome-zarr"
    return "ome-tiff" if how["ome"] is not None or labels.ndim > 2 else "plain"


def _labels_out(out_dir: Path, stem: str, labels, res, how: dict, cfg: dict):
    """Where an image's labels go and the function that writes them there."""
    from ..files.ome_zarr_write import label_axes, write_ome_zarr_labels

    fmt = _format(labels, how, cfg)
    if fmt in ("plain", "png", "tiff"):
        suffix = {"png": ".png", "tiff": ".tif"}.get(fmt)
        return (out_dir / (stem + (suffix or labels_suffix(labels))),
                lambda: write_labels(labels, out_dir, stem, suffix))
    meta = label_metadata(labels.ndim, how["ome"], how["scale"], _record(res, how, cfg))
    if meta is None and cfg.get("format") in ("ome-tiff", "ome-zarr"):
        raise ValueError(f"{labels.ndim}-D labels of axes unknown to OME; use --format "
                         "tiff")
    if meta is None:  # auto: more than 4 axes, not the source's
        return out_dir / (stem + ".tif"), lambda: write_labels(labels, out_dir, stem)
    if fmt == "ome-tiff":
        return (out_dir / (stem + ".tif"),
                lambda: write_ome_labels(labels, out_dir, stem, meta))
    axes, scale, units = label_axes(meta)
    target = output_path(out_dir, stem, ".ome.zarr")
    return target, lambda: write_ome_zarr_labels(
        labels, target, axes=axes, scale=scale, units=units,
        provenance=_record(res, how, cfg))


def _write(out_dir: Path, stem: str, labels, image, res, how: dict, cfg: dict,
           may_replace: set[str]) -> dict:
    """Write an image's outputs over nothing but what ``may_replace`` names, each
    recorded before it is renamed into place (:mod:`napari_iem.files.journal`: a run
    killed before it hears of them still knows them as its own); returns the
    record's fields for what was written."""
    with journalled(out_dir):
        return _write_outputs(out_dir, stem, labels, image, res, how, cfg, may_replace)


def _write_outputs(out_dir: Path, stem: str, labels, image, res, how: dict, cfg: dict,
                   may_replace: set[str]) -> dict:
    """:func:`_write`'s work (:func:`_format` says in what format)."""
    target, write = _labels_out(out_dir, stem, labels, res, how, cfg)
    if (target.exists() or target.is_symlink()) and target.name not in may_replace:
        return {"status": "refused", "error": f"{target} exists and was not written by "
                                              "napari-iem; it is left alone"}
    path = write()
    written = {path.name: list(output_fingerprint(path))}
    for other in label_paths(out_dir, stem):
        if other != path and other.name in may_replace and other.exists():
            if other.is_dir():  # this tool's labels of another suffix
                shutil.rmtree(other)
            else:
                other.unlink()
    if cfg.get("overlay") and res.labels.ndim == 2:
        odir = out_dir / OVERLAY_DIR
        odir.mkdir(exist_ok=True)
        opath = odir / f"{stem}.png"
        name = f"{OVERLAY_DIR}/{opath.name}"
        if (opath.exists() or opath.is_symlink()) and name not in may_replace:
            return {"status": "done", "output": path.name, "written": written,
                    "error": f"overlay not written: {opath} exists and was not written "
                             "by napari-iem"}
        write_overlay(image, res.labels, opath)
        written[name] = list(output_fingerprint(opath))
    return {"status": "done", "output": path.name, "written": written}


def segment_task(items: list[tuple[int, str, str, list[str]]], cfg: dict) -> list[dict]:
    """Read, segment and write one task's images; runs on a worker or in-process.

    ``items`` are ``(index, input path, output stem, names this tool may replace)``.
    Returns one record dict per item (with ``index``, and ``written``: output name ->
    [size, sha256] for the manifest); never raises for a single bad file.
    """
    from ..engine.devices import resolve_device

    if cfg.get("torch_threads"):
        import torch

        torch.set_num_threads(cfg["torch_threads"])
    start = time.perf_counter()
    out_dir = Path(cfg["out_dir"])
    device = resolve_device(cfg["device"])
    records: dict[int, dict] = {}
    images, hows, ok, held = [], [], [], 0
    for index, path, stem, may_replace in items:
        rec = records[index] = {"index": index, "status": "failed"}
        try:
            img, how, rec["shape"], size = _read(path, cfg, device, held)
        except Exception as exc:  # noqa: BLE001 - one file's failure, whatever raised
            # the read errors and NotEnoughMemoryError name the file (and what to
            # lower); a library's own error is said as it is, the others go on
            rec["error"] = str(exc) or type(exc).__name__
            continue
        held += size
        images.append(img)
        hows.append(how)
        ok.append((index, stem, set(may_replace)))

    results = _segment_all(images, hows, cfg, records, ok) if images else []
    instances = (cfg.get("nd_options") or {}).get("instances")
    for img, how, (index, stem, may_replace), res in zip(images, hows, ok, results):
        if res is None:
            continue
        rec = records[index]
        try:
            rec.update(_write(out_dir, stem, res.instances if instances else res.labels,
                              img, res, how, cfg, may_replace))
        except Exception as exc:  # noqa: BLE001 - FileExistsError (not ours), a full
            rec["error"] = f"cannot write output: {exc}"  # disk, a writer's own error
            continue
        if rec["status"] == "done":
            rec.update(
                regions=res.regions, preset=res.params.get("preset", ""),
                iterations=res.iterations, converged=res.converged,
                stopped_at_cap=res.stopped_at_cap, no_structure=len(res.empty_problems),
                objective=float(res.objective[-1]) if res.objective else None,
                device=res.device,
                napari_iem_version=res.metadata.get("versions", {}).get("napari-iem", ""),
                torch_version=res.metadata.get("versions", {}).get("torch", ""),
            )
    per_image = (time.perf_counter() - start) / max(1, len(items))
    for rec in records.values():
        rec["seconds"] = round(per_image, 4)
    return list(records.values())
