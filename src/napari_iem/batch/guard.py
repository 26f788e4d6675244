"""What must hold before a run writes anything: a writable folder, one run at a time,
and no input that any output could land on.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["LOCK_NAME", "OVERLAY_DIR", "BatchError", "check_inputs_outside",
           "check_out_dir", "no_images", "out_dir_lock", "output_lock"]

#: Lock file of a running job in its output folder (removed when it ends).
LOCK_NAME = ".iem-lock"
OVERLAY_DIR = "overlays"


class BatchError(ValueError):
    """The job cannot start (bad input, output folder, scheduler); the message says why."""


def check_out_dir(out_dir: Path, overlay: bool) -> None:
    """Create ``out_dir`` and check that files can be created in it.

    ``overlays/`` must be a real folder (or absent): one that is a symlink would send
    the overlays wherever it points.  A file at the path, or at one of the folders
    above it, is named as a file, and a link to nowhere as a link: "File exists"
    would not say what to do.
    """
    file = next((p for p in (out_dir, *out_dir.parents) if p.exists() and not p.is_dir()),
                None)
    if file is not None:
        what = "is a file" if file == out_dir else f"cannot be made: {file} is a file"
        raise BatchError(f"the output folder {out_dir} {what}; choose a folder (one that "
                         "does not exist yet is created)")
    if out_dir.is_symlink() and not out_dir.exists():
        raise BatchError(f"the output folder {out_dir} is a link to "
                         f"{os.readlink(out_dir)}, which does not exist; create that "
                         "folder, or choose another --out")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BatchError(
            f"cannot create output folder {out_dir}: {exc.strerror or exc}") from None
    if not out_dir.is_dir():
        raise BatchError(f"output path {out_dir} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=out_dir, prefix=".iem-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BatchError(
            f"output folder {out_dir} is not writable: {exc.strerror or exc}") from None
    odir = out_dir / OVERLAY_DIR
    if overlay and (odir.is_symlink() or odir.exists() and not odir.is_dir()):
        raise BatchError(f"{odir} is a link or a file, not a folder: overlays are not "
                         "written through it; move it away")


def check_inputs_outside(files, out_dir: Path) -> None:
    """Refuse a run whose output folder holds one of its input files (``segment
    photo.jpg --out .``): its labels would be written among the user's images, where
    a ``.png`` output lands on an input of that name and the next run over the folder
    reads the labels as images.  Folders given as inputs never contribute the output
    folder's files (:func:`~napari_iem.files.find.find_images`); this is for files
    named one by one."""
    out = out_dir.resolve()
    for f in files:
        if out in (f.absolute().parent.resolve(), f.resolve().parent):
            raise BatchError(f"the input {f} lies in the output folder {out_dir}: the "
                             "labels would be written among the images; pick a different "
                             "output folder (--out)")


def no_images(inputs, out_dir: Path, kinds: str = "") -> BatchError:
    """The error for inputs without an image, saying when that is because an input
    folder is the output folder or inside it (whose files are never read as inputs)."""
    out = out_dir.resolve()
    inside = [str(i) for i in inputs if Path(i).is_dir()
              and (Path(i).resolve() == out or out in Path(i).resolve().parents)]
    if inside:
        return BatchError(f"the input folder {inside[0]} is the output folder {out_dir} "
                          "(or inside it), whose files are never read as inputs; pick a "
                          "different output folder (--out)")
    return BatchError(f"no images{kinds} found in " + ", ".join(str(i) for i in inputs)
                      + f" (outside the output folder {out_dir})")


def _lock(fd: int) -> bool:
    """Take an exclusive, non-blocking lock on ``fd``; False when another holds it.
    The operating system drops it when the process dies, even by SIGKILL."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


@contextmanager
def _hold(path: Path, what: str) -> Iterator[None]:
    """Hold the lock file ``path`` while this run writes ``what``: a second run that
    would write it is refused at once.

    The lock file is removed at the end; a run that finds the file but can take the
    lock (the previous holder was killed) goes ahead.  After locking, the file is
    checked to be the one at the path still, so two runs that race with a third's
    clean-up cannot both hold it.
    """
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as exc:
            raise BatchError(f"cannot create the lock file {path}: "
                             f"{exc.strerror or exc}") from None
        if not _lock(fd):
            os.close(fd)
            raise BatchError(
                f"another napari-iem run is writing {what} (it holds {path}); "
                "wait for it to finish, or choose another --out")
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
        os.close(fd)


@contextmanager
def out_dir_lock(out_dir: Path) -> Iterator[None]:
    """Hold the output folder for one run (its :data:`LOCK_NAME`): a second run into
    it is refused at once.  The unfinished writes a killed run left are removed."""
    with _hold(out_dir / LOCK_NAME, f"into {out_dir}"):
        _remove_stale_parts(out_dir)
        yield


@contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold one output that is not a folder of outputs (block mode's ``OUT``, whose
    ``OUT.partial`` a second run would take for an interrupted run's and remove) by
    the lock file ``.<name>.iem-lock`` beside it; its folder is made if need be."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _hold(out.with_name(f".{out.name}.iem-lock"), str(out)):
        yield


def _remove_stale_parts(out_dir: Path) -> None:
    """Remove the unfinished atomic writes an interrupted run left (``kill -9``, or a
    Ctrl-C that came while one was being cleaned up), in the folders only the lock
    holder writes into: hidden files ``.<output>.<8 hex>.iem-part`` in ``OUT``, in
    ``OUT/overlays/`` and among the write records (``OUT/.iem-written/``), and in
    ``OUT`` the hidden folders of an OME-Zarr write, ``.<name>.ome.zarr.<8 hex>``
    ending ``.iem-part`` (being written) or ``.iem-old`` (the one it replaced).  Only
    this tool makes these names; a folder that is a link is not looked into."""
    from ..files.journal import JOURNAL_DIR
    from ..files.ome_zarr_write import OLD_SUFFIX
    from ..files.write import TEMP_SUFFIX

    part = re.compile(r"\..+\.[0-9a-f]{8}" + re.escape(TEMP_SUFFIX) + "$")
    zarr = re.compile(r"\..+\.ome\.zarr\.[0-9a-f]{8}(" + re.escape(TEMP_SUFFIX) + "|"
                      + re.escape(OLD_SUFFIX) + ")$")
    for folder in (out_dir, out_dir / OVERLAY_DIR, out_dir / JOURNAL_DIR):
        for entry in _entries(folder):
            if part.match(entry.name) and entry.is_file(follow_symlinks=False):
                _quietly(os.unlink, entry.path)
            elif (folder == out_dir and zarr.match(entry.name)
                  and entry.is_dir(follow_symlinks=False)):
                _quietly(shutil.rmtree, entry.path)


def _entries(folder: Path) -> list[os.DirEntry]:
    """The entries of ``folder``; none when it is missing, not a folder or a link."""
    if folder.is_symlink():
        return []
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError:
        return []


def _quietly(remove, path: str) -> None:
    """``remove(path)``, an error aside: a leftover that cannot go stays harmless."""
    try:
        remove(path)
    except OSError:
        pass
