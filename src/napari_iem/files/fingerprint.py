"""The size and content hash of an output: what tells this tool's files from others'.

The manifest (:mod:`napari_iem.files.manifest`) and the write records
(:mod:`napari_iem.files.journal`) keep them; a file is this tool's only while it still
has them.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .read import open_regular

__all__ = ["file_sha256", "output_fingerprint"]

_CHUNK = 2**20


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a regular file's contents, read in chunks."""
    digest = hashlib.sha256()
    with open_regular(path, 2**62) as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def output_fingerprint(path: str | os.PathLike) -> tuple[int, str]:
    """``(size, sha256)`` of a file, or of a folder (an OME-Zarr): the bytes of all its
    files, and a SHA-256 of their relative names and contents in name order (a
    symlink inside counts by its target's name, never followed)."""
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        return os.stat(path).st_size, file_sha256(path)
    digest, size = hashlib.sha256(), 0
    for folder, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            f = Path(folder) / name
            rel = f.relative_to(path).as_posix()
            if f.is_symlink():
                digest.update(f"L {rel} -> {os.readlink(f)}\n".encode())
                continue
            size += f.stat().st_size
            digest.update(f"F {rel} {file_sha256(f)}\n".encode())
    return size, digest.hexdigest()

