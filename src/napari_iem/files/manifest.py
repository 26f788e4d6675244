"""The output manifest: which files in an output folder this tool wrote, and from what.

A file name is no proof of anything: ``labels/a.png`` may be the labels of ``a.png``,
of ``a.tif`` that was segmented before ``a.png`` was added, of the same image under other
settings, or a user's own picture that happens to sit there.  So every output folder
keeps ``iem-manifest.json`` (written atomically, next to the report) with, per output:
the source's resolved path, size, modification time and SHA-256, a hash of the
settings, the tool's version, and the output's own size and SHA-256.

Two rules follow, and every command keeps them:

* An output is *finished* only when all of these still match (:meth:`Manifest.verdict`;
  the time excepted: the same bytes written again are the same source); otherwise it
  is redone, or refused with a message that names both files.
* A file may be replaced or deleted only when the manifest says this tool wrote it and
  it has not changed since (:meth:`Manifest.owns`): a user's file is never touched.

Each entry names the command that wrote it (``segment`` or ``distill``; an entry of an
older version without one counts as ``segment``'s), and a folder holds the outputs of
one command: a command refuses a folder holding another's (:meth:`Manifest.load`), so
that neither replaces the other's labels by their shared names, nor mixes its own in
among them where ``evaluate`` would score both as one.

An entry is recorded before its output is written (an *intent*: the name is claimed),
and completed with the output's hash after.  A file at a name that an interrupted run
claimed is this tool's only when it can be shown to be: it matches the record its
writer made just before renaming it into place (:mod:`napari_iem.files.journal`, read
when the manifest is loaded), or it is still the earlier output of ours that the run
was to replace.  Anything else there (a file a user put at that name since) is not
ours, so nothing of the user's is ever replaced or mistaken for finished work.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from .fingerprint import file_sha256, output_fingerprint
from .journal import read_records, remove_records
from .read import FileReadError, read_bounded
from .write import atomic_output

__all__ = [
    "MANIFEST_NAME",
    "Inputs",
    "Manifest",
    "ManifestError",
    "Source",
    "file_sha256",
    "output_fingerprint",
    "settings_hash",
]

#: File name of the manifest in an output folder.
MANIFEST_NAME = "iem-manifest.json"
_FORMAT = "napari-iem manifest"
#: A manifest is a few hundred bytes per output; a million outputs fit.
_MAX_BYTES = 2**29
#: The command of an entry that names none (manifests written before entries did).
_LEGACY_COMMAND = "segment"


class ManifestError(ValueError):
    """The manifest cannot be read or written, or a file is not this tool's to
    replace."""


def settings_hash(settings: Mapping) -> str:
    """A short hash of everything that decides an output's contents (canonical JSON)."""
    text = json.dumps(settings, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Source:
    """What an output was made from: a file, by resolved path, size, time and content."""

    path: str
    size: int
    mtime_ns: int
    sha256: str

    @classmethod
    def of(cls, path: str | os.PathLike) -> Source:
        """The fingerprint of ``path`` now (raises :class:`FileReadError` when it is
        not a readable regular file)."""
        real = Path(path).resolve()
        try:
            st = os.stat(real)
            size, sha256 = output_fingerprint(real)  # a folder for an OME-Zarr
        except OSError as exc:
            raise FileReadError(f"{path}: cannot open: {exc.strerror or exc}") from None
        return cls(str(real), size, st.st_mtime_ns, sha256)


def _version() -> str:
    from .. import __version__

    return __version__


class Inputs:
    """The inputs of a run, by resolved path and by file identity (device, inode), so
    that no output can land on one: not by its own name, a hard link, a symlink or a
    path spelled another way."""

    def __init__(self, paths: Iterable[Path]):
        self.real: set[Path] = set()
        self.ids: set[tuple[int, int]] = set()
        for p in paths:
            self.real.add(Path(p).resolve())
            try:
                st = os.stat(p)
            except OSError:
                continue
            self.ids.add((st.st_dev, st.st_ino))

    def holds(self, path: Path) -> bool:
        """Whether writing ``path`` could change an input."""
        if Path(path).resolve() in self.real:
            return True
        try:
            st = os.stat(path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) in self.ids


class Manifest:
    """The manifest of one output folder (see the module docstring).

    Parameters
    ----------
    out_dir : path-like
        The output folder; entries are keyed by paths relative to it (``a.png``,
        ``overlays/a.png``); methods take outputs relative to it, or absolute.
    entries : dict, optional
        Entries read from an existing manifest.
    command : str
        The command writing into the folder (``"segment"``, ``"distill"``): recorded
        with each claim; only the outputs it wrote are its to replace.
    """

    def __init__(self, out_dir: str | os.PathLike, entries: dict | None = None,
                 command: str = "segment"):
        self.out_dir = Path(os.path.abspath(out_dir))
        self.shown = Path(out_dir)  # as the user gave it, for messages
        self.entries: dict[str, dict] = dict(entries or {})
        self.command = command

    @property
    def path(self) -> Path:
        return self.out_dir / MANIFEST_NAME

    @classmethod
    def load(cls, out_dir: str | os.PathLike, command: str = "segment") -> Manifest:
        """The folder's manifest for ``command`` (empty when there is none yet).

        Raises
        ------
        ManifestError
            When a file of that name exists but is not a readable manifest: it is then
            not ours, and nothing in the folder can be trusted as ours either; or when
            the folder holds outputs another command wrote (see the module docstring).
        """
        path = Path(out_dir) / MANIFEST_NAME
        if not path.exists() and not path.is_symlink():
            return cls(out_dir, command=command)
        try:
            data = json.loads(read_bounded(path, _MAX_BYTES).decode("utf-8"))
            if data.get("format") != _FORMAT or not isinstance(data.get("outputs"), dict):
                raise ValueError("not a napari-iem manifest")
            entries = {str(k): v for k, v in data["outputs"].items() if isinstance(v, dict)}
        except (ValueError, AttributeError, RecursionError) as exc:
            raise ManifestError(f"{path} cannot be read ({exc}); move it away (the files "
                                "it listed will then count as not written by napari-iem)"
                                ) from None
        manifest = cls(out_dir, entries, command)
        manifest._refuse_other_commands()
        manifest._take_records()
        return manifest

    def _take_records(self) -> None:
        """Complete the claimed entries whose output matches its writer's record (a
        run killed after writing it, before it heard of it)."""
        for key, (_, size, sha256) in read_records(self.out_dir).items():
            entry, path = self.entries.get(key), self.out_dir / key
            if (entry is None or "output_sha256" in entry or path.is_symlink()
                    or not (path.is_file() or path.is_dir())):
                continue
            try:
                if output_fingerprint(path) == (size, sha256):
                    entry.update(output_size=size, output_sha256=sha256)
            except OSError:
                continue

    def writer(self, output: str | os.PathLike) -> str | None:
        """The command that wrote (or claimed) ``output``; None when no entry has it."""
        entry = self.entries.get(self._key(output))
        return None if entry is None else str(entry.get("command", _LEGACY_COMMAND))

    def _refuse_other_commands(self) -> None:
        """Raise :class:`ManifestError` when outputs another command wrote are still in
        the folder, naming them and a fresh folder to use instead."""
        others = sorted(k for k in self.entries if self.writer(k) != self.command
                        and ((self.out_dir / k).exists() or (self.out_dir / k).is_symlink()))
        if not others:
            return
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        base = self.shown if self.shown.name else self.out_dir  # "." has no name
        fresh = base.with_name(f"{base.name or 'out'}-{self.command}")
        raise ManifestError(
            f"{self.shown} holds the outputs of 'napari-iem {self.writer(others[0])}' "
            f"({shown}); {self.command} does not write among them: choose a fresh "
            f"--out, such as {fresh}")

    def save(self) -> Path:
        """Write the manifest atomically, then remove the write records it holds now
        (and those of names it no longer lists).

        Raises
        ------
        ManifestError
            When it cannot be written (a full disk, a folder made read-only), naming
            it and what to do; the file keeps what it held, and what it does not list
            as finished is made again by the next run.
        """
        text = json.dumps({"format": _FORMAT, "outputs": self.entries}, indent=1,
                          sort_keys=True)
        try:
            with atomic_output(self.path) as tmp:
                tmp.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise ManifestError(
                f"cannot write the manifest {self.path}: {exc.strerror or exc}; make "
                "room (or make the folder writable) and run the same command again: "
                "what it does not list as finished is made again") from None
        remove_records(self.out_dir, [
            path for key, (path, _, _) in read_records(self.out_dir).items()
            if "output_sha256" in self.entries.get(key, {"output_sha256": 0})])
        return self.path

    def _key(self, output: str | os.PathLike) -> str:
        """``output`` (relative to the folder, or absolute) as an entry's key."""
        return Path(os.path.abspath(self.out_dir / output)).relative_to(self.out_dir).as_posix()

    def claim(self, output: str | os.PathLike, source: Source | None,
              settings: str) -> None:
        """Record that this tool is about to write ``output`` from ``source``; the
        fingerprint of our earlier output there, which it replaces, is kept (until it is
        replaced that file is still ours)."""
        old = self.entries.get(self._key(output), {})
        replaces = ([old["output_size"], old["output_sha256"]]
                    if "output_sha256" in old and "output_size" in old
                    else old.get("replaces"))
        self.entries[self._key(output)] = {
            **(asdict(source) if source else {}), "settings": settings,
            "version": _version(), "command": self.command,
            **({"replaces": replaces} if replaces else {}),
        }

    def finish(self, output: str | os.PathLike, size: int, sha256: str) -> None:
        """Record the output as written: its size and content hash."""
        entry = self.entries.setdefault(self._key(output), {"version": _version(),
                                                            "command": self.command})
        entry.update(output_size=int(size), output_sha256=sha256)

    def forget(self, output: str | os.PathLike) -> None:
        self.entries.pop(self._key(output), None)

    def owns(self, output: str | os.PathLike) -> bool:
        """Whether ``output`` may be replaced or deleted: it is absent, or this command
        wrote it and nobody changed it since (for a name an interrupted run claimed: the
        file is still the earlier output of ours that the run was to replace)."""
        path = self.out_dir / self._key(output)
        if not path.exists() and not path.is_symlink():
            return True
        entry = self.entries.get(self._key(output))
        if (entry is None or self.writer(output) != self.command or path.is_symlink()
                or not (path.is_file() or path.is_dir())):
            return False
        if "output_sha256" not in entry:  # its writer's record was read at load
            return list(output_fingerprint(path)) == entry.get("replaces")
        # .get: a hand-edited entry that cannot be checked is not ours
        return output_fingerprint(path) == (entry.get("output_size"),
                                            entry["output_sha256"])

    def verdict(self, output: str | os.PathLike, source: Source,
                settings: str) -> tuple[str, str]:
        """Whether ``output`` is ``finished`` from ``source`` with ``settings``.

        Returns
        -------
        (str, str)
            ``("finished", "")``, ``("missing", "")`` when there is no such file,
            ``("foreign", why)`` when a file is there that this tool did not write (or
            that changed since), ``("stale", why)`` when it is this tool's but from
            another source, other contents, other settings or another version, and
            ``("unfinished", "")`` when a run claimed it and was stopped.
        """
        path = self.shown / self._key(output)
        if not path.exists() and not path.is_symlink():
            return "missing", ""
        entry = self.entries.get(self._key(output), {})
        if not self.owns(output):
            if self.writer(output) == self.command and "output_sha256" not in entry:
                return "foreign", (f"{path} is not what the stopped run that claimed "
                                   "this name wrote (a file put there since?); it is "
                                   "left alone")
            return "foreign", (f"{path} exists and was not written by napari-iem (or was "
                               "changed since); it is left alone")
        if "output_sha256" not in entry:
            return "unfinished", ""
        if entry.get("path") != source.path:
            return "stale", (f"{path} holds the labels of {entry.get('path')}, not of "
                             f"{source.path}")
        # The time is recorded but not compared: a file rewritten with the same bytes
        # (make demo writes its samples again) is the same source.
        if (entry.get("size"), entry.get("sha256")) != (source.size, source.sha256):
            return "stale", f"{source.path} changed since {path} was made from it"
        if entry.get("settings") != settings:
            return "stale", f"{path} was made from {source.path} with other settings"
        if entry.get("version") != _version():
            return "stale", (f"{path} was made by napari-iem {entry.get('version')}, "
                             f"this is {_version()}")
        return "finished", ""
