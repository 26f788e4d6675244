"""Output names: safe, inside the output folder, distinct, and independent of order.

An output's name is its input's name made safe (:func:`safe_stem`).  Inputs whose safe
names clash (``a.png`` and ``a.tif``; ``x.png`` in two folders) all get longer names
made from what tells them apart: the suffix, then as many parent folders as needed.
The name of a file depends only on the set of inputs, never on the order they were
given in, so swapping two folders on the command line cannot make one input's labels
land under the other's name (the output manifest would catch it, but the user would
still have to redo the work).
"""
from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

from .read import IMAGE_SUFFIXES, find_images

__all__ = ["files_by_stem", "output_path", "safe_stem", "unique_stems"]

_UNSAFE = re.compile(r"[^\w.\-]+")
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
             *(f"LPT{i}" for i in range(1, 10))}
#: Longest stem, in bytes of UTF-8 (see :func:`_clean`).
_MAX_BYTES = 150


def safe_stem(name: str | os.PathLike, max_length: int = _MAX_BYTES) -> str:
    """A file-name stem that stays inside any folder it is joined to.

    Folders are dropped (only the last path component counts), the image suffix is
    removed, and the rest is made safe by :func:`_clean`.

    Examples
    --------
    >>> safe_stem("../../etc/passwd")
    'passwd'
    >>> safe_stem("a b/c?.d.tif")
    'c_.d'
    """
    base = re.split(r"[\\/]", str(name))[-1]
    if base.lower().endswith(".ome.zarr"):  # an OME-Zarr folder: its name, without both
        base = base[: -len(".ome.zarr")]
    elif Path(base).suffix.lower() in (*IMAGE_SUFFIXES, ".zarr"):
        base = base[: -len(Path(base).suffix)]
    return _clean(base, max_length)


def _clean(text: str, max_length: int = _MAX_BYTES) -> str:
    """``text`` as a safe stem: characters other than letters, digits, ``_``, ``-``
    and ``.`` become ``_``, leading dots are removed (no hidden files, no ``..``), a
    device name of Windows gets a ``_``, and the length is capped at ``max_length``
    bytes of UTF-8, which file systems count (255 at most): 80 CJK characters are 240
    bytes, too many once a suffix and the temporary name of an atomic write
    (:func:`~napari_iem.files.write.atomic_output`) are added.

    A clean stem is its own clean stem, and keeps its dots (``a.png``, the stem of
    ``a.png.tif``, stays ``a.png``): :func:`output_path` cleans the stems
    :func:`unique_stems` made without changing one, so that two of them never become
    one name.
    """
    stem = _UNSAFE.sub("_", text).lstrip(".").strip()
    if stem.split(".")[0].upper() in _RESERVED:
        stem = "_" + stem
    stem = stem.encode()[:max_length].decode(errors="ignore").rstrip(".")
    return stem or "image"


def _tagged(stem: str, path: Path) -> str:
    """``stem`` with the tag of ``path``, within the length cap (cut, the tag kept)."""
    tag = _tag(path)
    return f"{_clean(stem, _MAX_BYTES - len(tag) - 1)}_{tag}"


def _tag(path: Path) -> str:
    """A short, stable tag of a file's full path: the last resort between clashes."""
    return hashlib.sha1(str(path).encode("utf-8", "surrogateescape")).hexdigest()[:8]


def _disambiguate(group: list[Path]) -> list[str]:
    """Distinct names for inputs whose stems clash: the stem, the suffix where the
    suffixes differ, and the fewest parent folders that tell them apart."""
    suffixes = [p.suffix.lstrip(".").lower() for p in group]
    use_suffix = len(set(suffixes)) > 1
    parents = [p.parent.parts[::-1] for p in group]
    for k in range(max(len(x) for x in parents) + 1):
        keys = [(s if use_suffix else "", x[:k]) for s, x in zip(suffixes, parents)]
        if len(set(keys)) == len(keys):
            break
    else:  # one folder, one suffix: names that differ only in case
        return [_tagged(safe_stem(p.name), p) for p in group]
    names = []
    for p, s, x in zip(group, suffixes, parents):
        parts = [safe_stem(p.name), *(safe_stem(d) for d in reversed(x[:k]))]
        names.append(_clean("_".join(parts + ([s] if use_suffix else []))))
    return names


def unique_stems(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Safe, distinct output stems for ``paths``, in order, independent of that order.

    Examples
    --------
    >>> unique_stems(["d1/a.png", "d2/a.png", "b.png"])
    ['a_d1', 'a_d2', 'b']
    >>> unique_stems(["a.tif", "a.png"])
    ['a_tif', 'a_png']
    """
    paths = [Path(os.path.abspath(p)) for p in paths]
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        groups.setdefault(safe_stem(p.name).lower(), []).append(i)
    out = [""] * len(paths)
    for members in groups.values():
        names = ([safe_stem(paths[members[0]].name)] if len(members) == 1
                 else _disambiguate([paths[i] for i in members]))
        for i, name in zip(members, names):
            out[i] = name
    # A longer name may equal another input's own name (a_png.png next to a.png and
    # a.tif): those take their path's tag, which no order can change.
    taken: dict[str, list[int]] = {}
    for i, name in enumerate(out):
        taken.setdefault(name.lower(), []).append(i)
    for members in taken.values():
        if len(members) > 1:
            for i in members:
                out[i] = _tagged(out[i], paths[i])
    return out


def output_path(out_dir: str | os.PathLike, stem: str, suffix: str) -> Path:
    """``out_dir / (stem + suffix)``, the stem made safe (:func:`_clean`: a stem from
    :func:`unique_stems` or :func:`safe_stem` stays as it is), checked to lie directly
    in ``out_dir``."""
    out_dir = Path(out_dir)
    path = out_dir / (_clean(str(stem)) + suffix)
    if path.resolve().parent != out_dir.resolve():
        raise ValueError(f"output name {stem!r} would leave the output folder {out_dir}")
    return path


def files_by_stem(folder: str | os.PathLike) -> tuple[dict[str, Path], dict[str, str]]:
    """The image files of ``folder`` by their safe stem, to match labels with images
    and predictions with ground truth.

    Two files of one stem (``a.png`` and ``a.tif``) cannot both be the match, and
    taking either would score or train on a file the user may not mean; so such a
    stem has no file but a message that names the files and says what to do.

    Returns
    -------
    (dict, dict)
        Stem -> file, for the stems of one file; stem -> message, for the others.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    found: dict[str, list[Path]] = {}
    for p in find_images([folder]):
        found.setdefault(safe_stem(p.name), []).append(p)
    files = {stem: ps[0] for stem, ps in found.items() if len(ps) == 1}
    clashes = {stem: (" and ".join(str(p) for p in ps) + f" have one name {stem!r}: "
                      "keep one of them, or rename the other")
               for stem, ps in found.items() if len(ps) > 1}
    return files, clashes
