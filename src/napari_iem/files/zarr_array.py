"""One zarr array read as untrusted input: its metadata checked before zarr reads it,
every chunk through a store that reads only bounded regular files.

zarr decodes whatever a store's metadata names, and reads whatever file a key leads
to.  So, before an array is opened, :func:`array_header` checks its own metadata (a
shape and chunks of whole numbers, one per axis, counted against the pixel limit as
:mod:`~napari_iem.files.read` counts a TIFF's; a numeric dtype; only the usual
compressors and filters, no ``pickle`` or other object codecs, which would run code
from the file), and its chunks are read through :func:`bounded_store`: a chunk that is
a FIFO (or a link to one, or to ``/dev/zero``) would hang the reader or never end, and
no chunk file needs more bytes than its chunk's pixels.  :mod:`~napari_iem.files.ome_zarr`
reads an NGFF image's levels this way, and :func:`open_zarr_array` a plain zarr.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from .read import (
    MAX_PIXELS_ENV,
    FileReadError,
    ImageReadError,
    _check_size,
    _counted,
    read_bounded,
)

__all__ = ["MAX_AXES", "MAX_ZARR_JSON", "array_header", "bounded_store", "chunk_file_bytes",
           "is_zarr", "open_zarr_array"]

#: Largest zarr metadata document read, in bytes (a multiscale of thousands of levels).
MAX_ZARR_JSON = 2**24
#: Most axes of an array read (t, c, z, y, x).
MAX_AXES = 5
_COMPRESSORS = {"blosc", "zlib", "gzip", "zstd", "lz4", "bz2", "lzma", "crc32c"}
_FILTERS = {"delta", "shuffle", "fixedscaleoffset", "quantize", "bitround", "astype"}
_CODECS = {"bytes", "transpose", "sharding_indexed", *_COMPRESSORS}


def _json(path: Path) -> dict:
    """A zarr metadata document: bounded, well-formed, an object."""
    try:
        data = json.loads(read_bounded(path, MAX_ZARR_JSON).decode("utf-8"))
    except FileReadError as exc:
        raise ImageReadError(str(exc)) from None
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ImageReadError(f"{path}: malformed zarr metadata ({str(exc)[:200]})") from None
    if not isinstance(data, dict):
        raise ImageReadError(f"{path}: zarr metadata is not a JSON object")
    return data


def _check_codecs(codecs, where: Path) -> None:
    for codec in codecs or []:
        name = codec.get("name") if isinstance(codec, dict) else None
        name = name.removeprefix("numcodecs.") if isinstance(name, str) else name
        if name not in _CODECS:
            raise ImageReadError(f"{where}: codec {str(name)[:40]!r} is not read "
                                 f"(accepted: {', '.join(sorted(_CODECS))})")
        config = codec.get("configuration") or {}
        if name == "sharding_indexed" and isinstance(config, dict):
            _check_codecs(config.get("codecs"), where)
            _check_codecs(config.get("index_codecs"), where)


def array_header(node: Path, ndim: int | None, colour: int | None, limit: int | None,
                  whole: bool = True) -> tuple:
    """The shape of the array at ``node`` from its own metadata, checked (see the
    module docstring) before zarr reads it; the shape counts against the pixel limit
    only when the array is to be read ``whole`` (its chunks always do).  ``ndim``
    None (a plain zarr, no axes to go by): as many axes as its shape, 1 to 5."""
    if (node / "zarr.json").is_file():
        meta = _json(node / "zarr.json")
        dtype, grid = meta.get("data_type"), meta.get("chunk_grid")
        chunks = (grid.get("configuration") or {}).get("chunk_shape") \
            if isinstance(grid, dict) else None
        if meta.get("node_type") != "array":
            raise ImageReadError(f"{node}: not a zarr array")
        _check_codecs(meta.get("codecs"), node)
    elif (node / ".zarray").is_file():
        meta = _json(node / ".zarray")
        dtype, chunks = meta.get("dtype"), meta.get("chunks")
        compressor = meta.get("compressor")
        filters = meta.get("filters") or []
        if compressor is not None and (not isinstance(compressor, dict)
                                       or compressor.get("id") not in _COMPRESSORS):
            raise ImageReadError(f"{node}: compressor {str(compressor)[:60]} is not read")
        if not isinstance(filters, list) or any(
                not isinstance(f, dict) or f.get("id") not in _FILTERS for f in filters):
            raise ImageReadError(f"{node}: filters {str(filters)[:60]} are not read")
    else:
        raise ImageReadError(f"{node}: no zarr array there")
    shape = meta.get("shape")
    if ndim is None:
        ndim = len(shape) if isinstance(shape, list) and 0 < len(shape) <= MAX_AXES \
            else MAX_AXES + 1  # refused below
    # an axis of 0 is an empty image, said so when read; a chunk of 0 zarr divides by
    for what, value, least in (("shape", shape, 0), ("chunks", chunks, 1)):
        if not isinstance(value, list) or len(value) != ndim or not all(
                isinstance(s, int) and not isinstance(s, bool) and s >= least
                for s in value):
            raise ImageReadError(f"{node}: {what} {str(value)[:80]} is not {ndim} whole "
                                 f"numbers of at least {least}, one per axis")
    try:
        kind = np.dtype(dtype).kind if isinstance(dtype, str) else "O"
    except TypeError:
        kind = "O"
    if kind not in "biuf":
        raise ImageReadError(f"{node}: dtype {str(dtype)[:40]!r} is not numeric")
    if whole:
        _check_size(node, _counted(shape, colour), shape, limit)
    _check_size(node, math.prod(chunks), chunks, limit, "its chunks are read whole: "
                "rechunk it smaller, or raise the limit with max_pixels or "
                f"{MAX_PIXELS_ENV} if they fit in memory")
    return tuple(shape), math.prod(chunks) * np.dtype(dtype).itemsize


def chunk_file_bytes(chunk_bytes: int) -> int:
    """The largest file a chunk (or shard) of ``chunk_bytes`` decoded bytes may take:
    twice its bytes (no compressor doubles them), a shard's index of 16 bytes per
    value at most, and the codecs' headers."""
    return 2 * chunk_bytes + 16 * chunk_bytes + 2**16


_STORE_TYPE = None
_META_NAMES = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}


def bounded_store():
    """:class:`zarr.storage.LocalStore` that reads nothing but regular files of at most
    ``max_bytes`` (:data:`MAX_ZARR_JSON` for a metadata document), checked from
    ``stat`` before each read: a chunk that is a FIFO (or a link to one, or to
    ``/dev/zero``) would hang the reader or never end, and a chunk file needs no more
    bytes than its chunk's pixels.  Made on first use (zarr is imported lazily);
    pickled by name, for Dask workers."""
    global _STORE_TYPE
    if _STORE_TYPE is not None:
        return _STORE_TYPE
    import stat

    from zarr.storage import LocalStore

    class _BoundedStore(LocalStore):
        def __init__(self, root, *, read_only: bool = True, max_bytes: int = 0):
            super().__init__(root, read_only=True)
            self.max_bytes = max_bytes

        def with_read_only(self, read_only: bool = False):
            return type(self)(self.root, max_bytes=self.max_bytes)

        def _check(self, key: str) -> None:
            path = self.root / key
            try:
                st = os.stat(path)
            except (FileNotFoundError, NotADirectoryError):
                return  # a chunk left out: its fill value, as zarr reads it
            mode, size = st.st_mode, st.st_size
            if stat.S_ISDIR(mode):
                return
            if not stat.S_ISREG(mode):
                raise FileReadError(f"{path}: not a regular file (a FIFO, device or "
                                    "socket); refusing to read it")
            limit = MAX_ZARR_JSON if path.name in _META_NAMES else self.max_bytes
            if size > limit:
                raise FileReadError(f"{path}: {size:,} bytes, more than the limit of "
                                    f"{limit:,} for this kind of file")

        async def get(self, key, prototype=None, byte_range=None):
            self._check(key)
            return await super().get(key, prototype, byte_range)

        async def get_partial_values(self, prototype, key_ranges):
            key_ranges = list(key_ranges)
            for key, _ in key_ranges:
                self._check(key)
            return await super().get_partial_values(prototype, key_ranges)

    _BoundedStore.__module__, _BoundedStore.__qualname__ = __name__, "_BoundedStore"
    _STORE_TYPE = _BoundedStore
    return _STORE_TYPE


def __getattr__(name: str):
    if name == "_BoundedStore":  # for pickle: the class is made on first use
        return bounded_store()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def is_zarr(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder with zarr metadata at its root (an array or a
    group, zarr v2 or v3); never raises."""
    path = Path(path)
    return path.is_dir() and any((path / name).is_file()
                                 for name in ("zarr.json", ".zarray", ".zgroup"))


def open_zarr_array(path: str | os.PathLike, max_pixels: int | None = None):
    """A plain zarr (not an OME-Zarr) as a dask array, read as an OME-Zarr's levels are:
    its metadata checked first, every chunk through the bounded store.

    ``path`` is an array, or a group whose array ``0`` is taken (the full resolution of
    a multiscale without NGFF attributes).  Its chunks count against the pixel limit,
    its shape does not: it is read chunk by chunk (block mode).

    Returns
    -------
    dask.array.Array

    Raises
    ------
    ImageReadError
        Not a zarr, or metadata that fails a check (the module docstring).
    """
    import dask.array as da
    import zarr

    path = Path(path)
    if not is_zarr(path):
        raise ImageReadError(f"{path}: not a zarr (no zarr.json, .zarray or .zgroup)")
    v3 = _json(path / "zarr.json") if (path / "zarr.json").is_file() else {}
    rel = "" if (path / ".zarray").is_file() or v3.get("node_type") == "array" else "0"
    node = path / rel if rel else path
    chunk_bytes = array_header(node, None, None, max_pixels, whole=False)[1]
    store = bounded_store()(path, max_bytes=chunk_file_bytes(chunk_bytes))
    try:
        array = zarr.open_array(store=store, path=rel, mode="r")
    except Exception as exc:  # noqa: BLE001 - zarr raises many kinds
        raise ImageReadError(f"{node}: cannot open the zarr array: {exc}") from None
    return da.from_array(array, chunks=array.chunks)
