"""What a worker wrote into an output folder, recorded before it is renamed into place.

The manifest (:mod:`napari_iem.files.manifest`) claims an output's name before it is
written and records its hash once the run hears from the worker that wrote it; the run
saves it every few seconds.  A run killed in between (``kill -9``, a lost machine)
would leave outputs that the manifest only claims: files whose origin nothing on disk
proves.  The next run could then neither trust them as finished nor replace them
safely, since a user may have put a file of their own at such a name since.

So every atomic write of a worker records the finished file's size and hash here, in
``OUT/.iem-written/``, one small file per output (no two writers share one), just
before the file is renamed into place: whatever moment a run is killed at, a file at
a claimed name is this tool's exactly when it matches its record.  Loading the
manifest takes the fingerprints of the outputs that still match their records;
saving it removes the records it no longer needs.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from .fingerprint import output_fingerprint
from .read import FileReadError, read_bounded

__all__ = ["JOURNAL_DIR", "before_rename", "journalled", "read_records", "remove_records"]

#: Hidden folder of an output folder holding the records.
JOURNAL_DIR = ".iem-written"
#: A record is about 150 bytes; a larger file there is not one.
_MAX_BYTES = 4096
#: The output folder whose writes are being recorded (None: none), set by
#: :func:`journalled` around a worker's writes.
_RECORDING: ContextVar[Path | None] = ContextVar("napari_iem_recording", default=None)


def _record_path(out_dir: Path, key: str) -> Path:
    """Where the record of output ``key`` (relative to ``out_dir``, posix) lives."""
    return out_dir / JOURNAL_DIR / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


@contextmanager
def journalled(out_dir: str | os.PathLike) -> Iterator[None]:
    """Within the block, record every atomic write into ``out_dir`` (or a folder in
    it) before it is renamed into place (:func:`before_rename`)."""
    token = _RECORDING.set(Path(os.path.abspath(out_dir)))
    try:
        yield
    finally:
        _RECORDING.reset(token)


def before_rename(tmp: Path, target: Path) -> None:
    """Record ``tmp``'s size and hash as ``target``'s, when inside :func:`journalled`
    and ``target`` lies in its folder; called by the atomic writers just before the
    rename (:func:`napari_iem.files.write.atomic_output`)."""
    out_dir = _RECORDING.get()
    if out_dir is None:
        return
    try:
        key = Path(os.path.abspath(target)).relative_to(out_dir).as_posix()
    except ValueError:
        return
    from .write import TEMP_SUFFIX, atomic_output  # write.py calls this module

    folders = key.split("/")[:-1]
    if key.split("/")[0] == JOURNAL_DIR or any(f.endswith(TEMP_SUFFIX) for f in folders):
        return  # a record itself, or a file of a folder not yet in place (OME-Zarr)

    size, sha256 = output_fingerprint(tmp)
    path = _record_path(out_dir, key)
    path.parent.mkdir(exist_ok=True)
    with atomic_output(path) as part:
        part.write_text(json.dumps({"output": key, "output_size": size,
                                    "output_sha256": sha256}), encoding="utf-8")


def read_records(out_dir: str | os.PathLike) -> dict[str, tuple[Path, int, str]]:
    """Output key -> (record file, size, sha256) of the folder's readable records.

    A record that cannot be read, or that is not at its own key's name (a copy), is
    left out: it proves nothing.
    """
    out_dir = Path(os.path.abspath(out_dir))
    folder = out_dir / JOURNAL_DIR
    if folder.is_symlink() or not folder.is_dir():
        return {}
    records = {}
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(read_bounded(path, _MAX_BYTES).decode("utf-8"))
            key, size, sha256 = (str(data["output"]), int(data["output_size"]),
                                 str(data["output_sha256"]))
        except (FileReadError, OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        if path.name == _record_path(out_dir, key).name:
            records[key] = (path, size, sha256)
    return records


def remove_records(out_dir: str | os.PathLike, paths) -> None:
    """Delete record files (one already gone is no error), and the records' folder
    when that leaves it empty: a finished folder holds only the outputs."""
    for path in paths:
        try:
            os.unlink(path)
        except OSError:
            pass
    try:
        os.rmdir(Path(out_dir) / JOURNAL_DIR)
    except OSError:  # not empty (a worker still writing), or not there
        pass
