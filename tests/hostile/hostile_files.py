"""Crafted hostile files, small and made on the spot (nothing from the network), and
the helpers the hostile tests share."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np

ITER = 5  # iterations per run: the tests are about files, not about segmentation


def disc(size=24, cy=None, cx=None, r=7, seed=0) -> np.ndarray:
    """A bright noisy disc on a dark noisy background (uint8)."""
    rng = np.random.default_rng(seed)
    cy = size // 2 if cy is None else cy
    cx = size // 2 if cx is None else cx
    yy, xx = np.mgrid[:size, :size]
    inside = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
    return (np.where(inside, 170.0, 70.0) + rng.normal(0, 12, (size, size))
            ).clip(0, 255).astype(np.uint8)


def write_disc(path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(path, disc(**kw))
    else:
        iio.imwrite(path, disc(**kw), extension=path.suffix.lower())
    return path


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny valid PNG whose header is patched to claim ``width`` x ``height``."""
    iio.imwrite(path, np.zeros((2, 2), np.uint8), extension=".png")
    raw = bytearray(path.read_bytes())
    raw[16:24] = struct.pack(">II", width, height)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(raw))
    return path


def tiff_with_samples(path: Path, samples: int, side: int = 16) -> Path:
    """A small zlib TIFF of ``side`` x ``side`` pixels with ``samples`` values each."""
    import tifffile

    tifffile.imwrite(path, np.zeros((side, side, samples), np.uint8), compression="zlib",
                     photometric="minisblack", planarconfig="contig")
    return path


def cli(argv, capsys) -> tuple[int, str, str]:
    """``napari-iem ARGV`` in this process: exit status, stdout, stderr."""
    from napari_iem.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def segment_args(*inputs, out, extra=()) -> list:
    return ["segment", *inputs, "--out", out, "--iterations", ITER, "--workers", 0, "-q",
            *extra]


def one_clear_line(err: str) -> bool:
    """An error as the CLI must give it: one line, no traceback."""
    return "Traceback" not in err and len(err.strip().splitlines()) == 1


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path, with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def report_rows(out: Path) -> list[dict]:
    """The report's rows as any CSV reader sees them (text cells that a spreadsheet
    would take for a formula start with a quote)."""
    import csv
    import io

    return list(csv.DictReader(io.StringIO((out / "iem-report.csv").read_text())))
