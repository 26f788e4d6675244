"""Resuming: what is finished, what is redone, what is refused, and the manifest kept.

An input's outputs are judged by the folder's manifest
(:class:`napari_iem.files.manifest.Manifest`), never by their names:

* *finished* (all of source path, size, time, content, settings and version match):
  skipped, unless ``overwrite``;
* this tool's, but from another source, other contents, other settings or another
  version: redone with ``overwrite``, otherwise refused with a message naming the
  output and the source;
* a file this tool did not write (or that changed since) at one of the names, or an
  input at one of them (by path or inode): refused, with or without ``overwrite``;
* nothing there, or left by an interrupted run: done.

Finished labels whose overlay is asked for but missing are done again (an overlay is
drawn from the image and the labels).
"""
from __future__ import annotations

import os
from pathlib import Path

from ..files.manifest import Inputs, Manifest, Source
from ..files.read import FileReadError, image_info
from ..files.write import label_paths
from .guard import OVERLAY_DIR

__all__ = ["claim", "decide", "output_names", "settle"]


def output_names(stem: str, overlay: bool) -> list[str]:
    """Every name, relative to the output folder, that the outputs of ``stem`` may take."""
    names = [p.name for p in label_paths(".", stem)]
    return names + ([f"{OVERLAY_DIR}/{stem}.png"] if overlay else [])


def _overlay_missing(manifest: Manifest, stem: str, labels: str, source: Source,
                     settings: str) -> bool:
    """Whether finished labels lack the overlay this run asks for: it is not finished,
    nor a file this tool may not replace, and the labels have the two axes an overlay
    is drawn for (a stack's never gets one: it would be redone on every run)."""
    state, _ = manifest.verdict(f"{OVERLAY_DIR}/{stem}.png", source, settings)
    if state in ("finished", "foreign"):
        return False
    try:
        info = image_info(manifest.out_dir / labels)  # a palette PNG reads as colour
    except FileReadError:  # not readable as it was written: make it again
        return True
    return info.format == "png" or len(info.shape) == 2


def decide(manifest: Manifest, stem: str, source: Source, settings: str,
           overwrite: bool, inputs: Inputs, overlay: bool) -> tuple[str, str, list[str]]:
    """What to do with one input.

    Returns
    -------
    (str, str, list of str)
        ``("skip", output name, [])``, ``("refuse", why, [])`` or
        ``("run", "", names this tool may replace)``.
    """
    out_dir = manifest.out_dir
    names = output_names(stem, overlay)
    present = [n for n in names if (out_dir / n).exists() or (out_dir / n).is_symlink()]
    for name in present:
        if inputs.holds(out_dir / name):
            return "refuse", (f"{manifest.shown / name} is an input of this run; its outputs "
                              "would be written over it"), []
    labels = [n for n in present if "/" not in n]
    verdicts = {n: manifest.verdict(n, source, settings) for n in labels}
    for name, (state, why) in verdicts.items():
        if state == "foreign":
            return "refuse", why + "; move it or choose another output folder", []
    finished = [n for n, (state, _) in verdicts.items() if state == "finished"]
    if finished and not overwrite and not (
            overlay and _overlay_missing(manifest, stem, finished[0], source, settings)):
        return "skip", finished[0], []
    stale = [why for state, why in verdicts.values() if state == "stale"]
    if stale and not overwrite:
        return "refuse", stale[0] + "; --overwrite replaces it", []
    overlays = [n for n in present if "/" in n and not manifest.owns(n)]
    return "run", "", [n for n in present if n not in overlays]


def _identity(path: Path) -> tuple | None:
    """What is at ``path`` (not following a link): device, inode, size and time, or
    None when nothing is."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def claim(manifest: Manifest, names: list[str], source: Source,
          settings: str) -> dict[str, tuple | None]:
    """Claim ``names`` in the manifest for ``source`` and ``settings``; returns what
    was at each name then (:func:`_identity`), for :func:`settle`."""
    before = {}
    for name in names:
        before[name] = _identity(manifest.out_dir / name)
        manifest.claim(name, source, settings)
    return before


def settle(manifest: Manifest, claimed: dict[str, tuple | None], written: dict[str, list],
           since_ns: int | None) -> list[str]:
    """Bring the manifest up to date for names claimed by this run (``claimed``: name
    -> what was there, from :func:`claim`); returns the names of labels that were
    written.

    A name in ``written`` (name -> [size, sha256], from the task) is recorded as
    finished; a claimed name with no file is forgotten; with ``since_ns`` (the run's
    start; None when the task answered), a file written during this run whose task's
    answer was lost (a Ctrl-C after a worker wrote it) is hashed here and recorded as
    finished too, unless it is the file that was there at the claim: an output is a
    new file renamed into place, and the earlier labels it was to replace, however
    recent their time (the run's start has a second of slack, a copy may be dated in
    the future), are never recorded as made with this run's settings.  Anything else
    keeps its claim and is redone next time.
    """
    from ..files.fingerprint import output_fingerprint

    made = []
    for name, before in claimed.items():
        path = manifest.out_dir / name
        if name in written:
            manifest.finish(name, *written[name])
        elif not path.is_file() and not path.is_dir():
            manifest.forget(name)
            continue
        elif (since_ns is not None and path.stat().st_mtime_ns >= since_ns
              and _identity(path) != before):
            manifest.finish(name, *output_fingerprint(path))
        else:
            continue
        if "/" not in name:
            made.append(name)
    return made
