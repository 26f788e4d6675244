"""Distilling a folder: pair images with their IEM labels, train, write predictions.

The files half of the paper's second stage (:mod:`napari_iem.analysis.distill` is the
network): images and label files are matched by stem, and the predictions are written
as ``OUT/<stem>.png``, named as ``napari-iem segment`` names its labels.

Everything that could destroy a user's file is checked before training starts: no
prediction may land on an input (an image, a label file, compared by resolved path and
by inode, so a link or another spelling of the path is caught too), and a file already
at a prediction's name is replaced only when the folder's manifest
(:mod:`napari_iem.files.manifest`) says an earlier distill wrote it; a folder holding
``segment``'s outputs is refused as a whole (its labels have the same names).  Like
``segment``, a distill holds the folder's lock (:func:`napari_iem.batch.guard.out_dir_lock`)
from its last checks to its last write, so no other run writes there meanwhile.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DistillOutcome", "distill_folder"]


@dataclass
class DistillOutcome:
    """What :func:`distill_folder` did: images trained on, predictions written, the
    files it could not use (one line each) and the training time."""

    trained: int
    written: int
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _student_input(path: Path, protocol: str):
    """An image for the student, checked to be 2-D grey or colour."""
    from ..files.read import read_image
    from .distill import image_to_input

    img = read_image(path)
    if protocol == "paper":
        from .metrics import paper_protocol

        img = paper_protocol(img)
    image_to_input(img)  # raises ValueError for stacks and other layouts
    return img


def _check_targets(out_dir: Path, stems: list[str], inputs, save_model) -> None:
    """Refuse, before any work, every prediction or model path that would replace an
    input or a file this tool did not write."""
    from ..files.manifest import Manifest

    manifest = Manifest.load(out_dir, command="distill")  # refuses segment's folder
    for stem in stems:
        target = out_dir / f"{stem}.png"
        if inputs.holds(target):
            raise ValueError(f"{target} is an input: the student's labels would be "
                             "written over it; choose another --out")
        if not manifest.owns(target):
            raise ValueError(f"{target} exists and was not written by napari-iem; it is "
                             "left alone: move it or choose another --out")
    if save_model:
        _check_model_path(Path(save_model), out_dir, stems, inputs)


#: A student model is a few MB; a larger file at ``--save-model`` is not one.
_MAX_MODEL_BYTES = 2**28


def _check_model_path(path: Path, out_dir: Path, stems: list[str], inputs) -> None:
    """Refuse, before training, a ``--save-model`` path the model could not be written
    to, or where it would replace an input, one of the predictions, the manifest, or a
    file that is not a napari-iem model (a model an earlier distill saved is replaced)."""
    from ..files.manifest import MANIFEST_NAME
    from .student import load_student

    if inputs.holds(path):
        raise ValueError(f"--save-model {path} is an input; choose another path")
    ours = {(out_dir / name).resolve() for name in (MANIFEST_NAME, *(f"{s}.png"
                                                                     for s in stems))}
    if path.resolve() in ours:
        raise ValueError(f"--save-model {path} is where distill writes its labels or "
                         "manifest; choose another path")
    if path.is_dir():
        raise ValueError(f"--save-model {path} is a folder; give a file name such as "
                         f"{path / 'student.pt'}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"folder for the model file does not exist: {path.parent}")
    if path.exists() or path.is_symlink():
        try:
            model = (not path.is_symlink() and path.is_file()
                     and path.stat().st_size <= _MAX_MODEL_BYTES
                     and load_student(path, "cpu") is not None)
        except (ValueError, OSError, KeyError, TypeError):  # not a student file
            model = False
        if not model:
            raise ValueError(f"--save-model {path} exists and is not a napari-iem model; "
                             "it is left alone: move it or choose another path")


def _pairs(files, stems, labels: dict[str, Path], clashes: dict[str, str],
           protocol: str, say):
    """Images to predict (with their stems) and the (image, labels) pairs to train on;
    an image whose stem has two label files is predicted but not trained on."""
    from ..files.read import ImageReadError, read_labels

    images, names, train_x, train_y, problems = [], [], [], [], []
    for path, stem in zip(files, stems):
        try:
            img = _student_input(path, protocol)
        except (ImageReadError, ValueError) as exc:
            problems.append(str(exc) if str(path) in str(exc) else f"{path}: {exc}")
            continue
        images.append(img)
        names.append(stem)
        if stem in clashes:
            problems.append(f"{path}: not trained on: {clashes[stem]}")
        if stem not in labels:
            continue
        try:
            lab = read_labels(labels[stem])
        except ImageReadError as exc:
            problems.append(str(exc))
            continue
        if lab.shape != img.shape[:2]:
            hint = ""
            if protocol == "full" and lab.shape == (128, 128):
                hint = " (labels made with --protocol paper? add --protocol paper)"
            problems.append(
                f"{labels[stem]}: labels {'x'.join(map(str, lab.shape))} but image "
                f"{'x'.join(map(str, img.shape[:2]))}{hint}; not trained on")
            continue
        train_x.append(img)
        train_y.append(lab)
    for line in problems:
        say(line)
    return images, names, train_x, train_y, problems


def _write(out_dir: Path, files, stems, names, preds, settings: dict) -> None:
    """The predictions, each claimed in the manifest before it is written and
    recorded with its hash after."""
    from ..files.journal import journalled
    from ..files.manifest import Manifest, Source, file_sha256, settings_hash
    from ..files.write import write_labels

    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest.load(out_dir, command="distill")
    source = dict(zip(stems, files))
    shash = settings_hash(settings)
    for stem in names:
        manifest.claim(f"{stem}.png", Source.of(source[stem]), shash)
    manifest.save()
    try:
        for stem, pred in zip(names, preds):
            with journalled(out_dir):  # a kill before the save still knows it as ours
                path = write_labels(pred, out_dir, stem)
            manifest.finish(path.name, path.stat().st_size, file_sha256(path))
    finally:
        manifest.save()


def distill_folder(images: str | os.PathLike, labels: str | os.PathLike,
                   out: str | os.PathLike, *, epochs: int | None = None,
                   device: str = "auto", seed: int = 0, size: int | None = None,
                   protocol: str = "full", vflip: bool = False, recursive: bool = False,
                   save_model: str | os.PathLike | None = None,
                   progress: Callable | None = None,
                   say: Callable[[str], None] = print) -> DistillOutcome:
    """Train a student on the IEM labels of a folder and write its predictions.

    Parameters
    ----------
    images : path
        A folder (or one file) of images.
    labels : path
        The folder of IEM labels, matched to the images by stem.
    out : path
        Where the predictions go (created); not ``labels``, not ``images``.
    epochs, device, seed, size, vflip, progress
        As for :func:`napari_iem.analysis.distill.train_student`.
    protocol : {"full", "paper"}
        ``"paper"``: each image brought to the paper's 128x128 protocol first.
    recursive : bool
        Search ``images`` recursively.
    save_model : path, optional
        Also write the trained network there.
    say : callable
        Called with one line per file that could not be used, before training.

    Raises
    ------
    ValueError, FileNotFoundError
        Before any training: missing folders, nothing to pair, an output that would
        land on an input or on a file this tool did not write.
    """
    from ..batch.guard import check_out_dir, no_images, out_dir_lock
    from ..files.manifest import Inputs
    from ..files.names import files_by_stem, unique_stems
    from ..files.read import find_images
    from .distill import (
        DEFAULT_EPOCHS,
        DEFAULT_SIZE,
        predict_student,
        save_student,
        train_student,
    )

    images_in, labels_dir, out_dir = Path(images), Path(labels), Path(out)
    if not labels_dir.is_dir():
        raise FileNotFoundError(f"LABELS is not a folder: {labels_dir}")
    if out_dir.resolve() == labels_dir.resolve():
        raise ValueError(f"--out {out_dir} is the LABELS folder: the student's labels "
                         "would replace the IEM labels it learns from; choose another")
    if images_in.is_dir() and out_dir.resolve() == images_in.resolve():
        raise ValueError(f"--out {out_dir} is the IMAGES folder; choose another")
    files = find_images([images_in], recursive=recursive, exclude=out_dir)
    if not files:
        raise no_images([images_in], out_dir, " (PNG, JPEG, TIFF)")
    stems = unique_stems(files)
    pairs, clashes = files_by_stem(labels_dir)
    if not set(stems) & {*pairs, *clashes}:
        raise ValueError(f"no image in {images_in} has a label file of the same name in "
                         f"{labels_dir}")
    every_label = find_images([labels_dir])  # those of clashing stems too
    _check_targets(out_dir, stems, Inputs([*files, *every_label]), save_model)

    imgs, names, train_x, train_y, problems = _pairs(files, stems, pairs, clashes,
                                                     protocol, say)
    if not train_x:
        raise ValueError("no image could be paired with its labels"
                         + (" (see the messages above)" if problems else ""))
    check_out_dir(out_dir, overlay=False)  # made before training, not after
    epochs = epochs or DEFAULT_EPOCHS
    size = size or DEFAULT_SIZE
    with out_dir_lock(out_dir):  # one run at a time in a folder, segment's included
        # checked again under the lock: a run that held it may have written there
        _check_targets(out_dir, stems, Inputs([*files, *every_label]), save_model)
        start = time.perf_counter()
        model = train_student(train_x, train_y, epochs=epochs, device=device, seed=seed,
                              size=size, vflip=vflip, progress=progress)
        seconds = time.perf_counter() - start
        if save_model:
            save_student(model, save_model)
        preds = predict_student(model, imgs, device)
        _write(out_dir, files, stems, names, preds,
               {"epochs": epochs, "seed": seed, "size": size, "protocol": protocol,
                "vflip": vflip, "labels": str(labels_dir.resolve())})
    return DistillOutcome(len(train_x), len(preds), problems, seconds)
