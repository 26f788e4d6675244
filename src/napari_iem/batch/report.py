"""The report of a batch run: one row per input, merged across runs, safe in a sheet.

``iem-report.csv`` (or ``.json``) is the record of what happened to every input ever
run into the folder.  A resumed run *merges* into it: each input keeps one row with its
latest result, rows of inputs not in this run stay as they were, and nothing is lost
because a later run was given fewer files.  The old report is read as untrusted input
(a regular file, bounded), and a file of that name that is not a napari-iem report is
refused rather than overwritten.

CSV cells that begin with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return are
read as formulas by spreadsheets (``=HYPERLINK(...)`` in a file name would become a
live link); such text cells are written with a leading ``'`` and read back without
it.  Numbers are written as they are.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..files.read import FileReadError, read_bounded
from ..files.write import atomic_output

__all__ = [
    "REPORT_FIELDS",
    "REPORT_NAME",
    "BatchReport",
    "FileRecord",
    "ReportError",
    "read_rows",
]

#: Report file name in the output folder (``.csv`` or ``.json``).
REPORT_NAME = "iem-report"
#: Largest old report read back (about a million rows).
_MAX_REPORT_BYTES = 2**30
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ReportError(ValueError):
    """A file at the report's name cannot be merged into; the message says why."""


@dataclass
class FileRecord:
    """What happened to one input file; one row of the report.

    ``status`` is ``done``, ``skipped`` (finished labels already there), ``refused``
    (an output of another source or other settings, or a file this tool did not write,
    is in the way: see ``error``), ``failed`` or ``cancelled`` (not run because the job
    was interrupted).  ``seconds`` is the task's time divided by the images in it
    (reading, segmenting and writing).  ``preset`` is the one that ran (what
    ``"default"`` picked for this image).  ``no_structure`` counts its planes (1 for a
    2-D image) called "no structure found", whose labels are all background.
    ``napari_iem_version`` and ``torch_version``
    are the versions that made the output (the rest of its provenance, numpy's version
    included, is in the output itself when it is an OME-TIFF).
    """

    file: str
    output: str = ""
    status: str = "pending"
    shape: str = ""
    regions: int | None = None
    preset: str = ""
    iterations: int | None = None
    converged: bool | None = None
    stopped_at_cap: bool | None = None
    no_structure: int | None = None
    objective: float | None = None
    seconds: float | None = None
    device: str = ""
    napari_iem_version: str = ""
    torch_version: str = ""
    error: str = ""


REPORT_FIELDS = [f.name for f in fields(FileRecord)]
#: Columns of the reports of earlier versions (before ``no_structure``, before
#: ``stopped_at_cap`` too, and before the versions too), still merged into.
_EARLIER_FIELDS = ([f for f in REPORT_FIELDS if f != "no_structure"],
                   [f for f in REPORT_FIELDS if f not in ("no_structure", "stopped_at_cap")],
                   [f for f in REPORT_FIELDS if f not in ("no_structure", "stopped_at_cap")
                    and not f.endswith("_version")])


def _flag(value) -> bool:
    """A bool column's value: a JSON report's bool, or a CSV report's text."""
    return value if isinstance(value, bool) else str(value) == "True"


_CONVERT = {"regions": int, "iterations": int, "no_structure": int, "objective": float,
            "seconds": float,
            "converged": _flag, "stopped_at_cap": _flag}


def _escaped(text: str) -> bool:
    """Whether ``text`` reads as an escaped cell: quotes, then a formula's start."""
    rest = text.lstrip("'")
    return rest != text and rest[:1] in _FORMULA_START


def _escape(value) -> str:
    """A CSV cell that no spreadsheet reads as a formula, and that :func:`_unescape`
    gives back as it was (text that reads as escaped already gets a quote too)."""
    if value is None:
        return ""
    if isinstance(value, str) and _escaped(value):
        return "'" + value
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


def _unescape(value: str) -> str:
    return value[1:] if _escaped(value) else value


def read_rows(path: Path) -> list[dict]:
    """The rows of an earlier report, in order ([] when there is none).

    Raises
    ------
    ReportError
        When the file is not a regular file, too large, or not a napari-iem report.
    """
    if not path.exists() and not path.is_symlink():
        return []
    try:
        text = read_bounded(path, _MAX_REPORT_BYTES).decode("utf-8")
        if path.suffix.lower() == ".json":
            rows = json.loads(text)["files"]
        else:
            reader = csv.DictReader(io.StringIO(text))
            if reader.fieldnames not in (REPORT_FIELDS, *_EARLIER_FIELDS):
                raise ValueError("other columns")
            rows = [{k: _unescape(v or "") for k, v in r.items() if k is not None}
                    for r in reader]  # None: the cells beyond the header's
        if not all(isinstance(r, dict) and isinstance(r.get("file"), str) for r in rows):
            raise ValueError("rows without a file")
    except (FileReadError, ValueError, KeyError, TypeError, RecursionError,
            csv.Error) as exc:  # csv.Error: a cell over the csv module's field limit
        raise ReportError(f"{path} exists and is not a napari-iem report that can be "
                          f"merged into ({exc}); move it away") from None
    return rows


def record_from_row(row: dict) -> FileRecord:
    """A report row as a :class:`FileRecord` (values of the wrong type or out of range
    are dropped: the old report is untrusted input)."""
    rec = FileRecord(file=row["file"])
    for key in REPORT_FIELDS[1:]:
        value = row.get(key)
        if value in (None, ""):
            continue
        try:
            setattr(rec, key, _CONVERT[key](value) if key in _CONVERT else str(value))
        except (TypeError, ValueError, OverflowError):  # OverflowError: JSON's 1e999
            pass
    return rec


@dataclass
class BatchReport:
    """The outcome of :func:`napari_iem.batch.run_batch`.

    Attributes
    ----------
    records : list of FileRecord
        One per input file of this run, in input order.
    out_dir : Path
    report_path : Path or None
        The report file written into ``out_dir``.
    seconds : float
        Wall-clock time of the whole run.
    mode : str
        Where the work ran (``"in-process"``, ``"local Dask, 2 workers"``, ...).
    interrupted : bool
        True when the run was stopped by Ctrl-C.
    settings : dict
        The settings of the run.
    earlier : list of FileRecord
        Rows of the previous report for inputs not in this run, kept in the file.
    """

    records: list[FileRecord]
    out_dir: Path
    report_path: Path | None = None
    seconds: float = 0.0
    mode: str = ""
    interrupted: bool = False
    settings: dict = field(default_factory=dict)
    earlier: list[FileRecord] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.records)

    @property
    def done(self) -> int:
        return self.count("done")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def refused(self) -> int:
        return self.count("refused")

    @property
    def not_converged(self) -> int:
        """Images segmented that reached no fixed point (at the cap, or in a cycle)."""
        return sum(r.status == "done" and r.converged is False for r in self.records)

    @property
    def stopped_at_cap(self) -> int:
        """Images segmented that stopped at the iteration cap without converging: more
        iterations might still move them (a cycle would not)."""
        return sum(r.status == "done" and r.stopped_at_cap is True for r in self.records)

    @property
    def no_structure(self) -> int:
        """Images segmented with at least one plane called "no structure found"."""
        return sum(r.status == "done" and bool(r.no_structure) for r in self.records)

    @property
    def ok(self) -> bool:
        """True when every input is done or skipped and the run was not interrupted."""
        return not self.interrupted and all(r.status in ("done", "skipped")
                                            for r in self.records)

    def summary(self, max_failures: int = 20) -> str:
        """A few lines for a terminal: counts, time, report path, what went wrong."""
        n = len(self.records)
        parts = [f"{self.done} segmented", f"{self.skipped} skipped (labels exist)",
                 f"{self.failed} failed"]
        if self.refused:
            parts.append(f"{self.refused} refused (see below)")
        if self.count("cancelled"):
            parts.append(f"{self.count('cancelled')} not run (interrupted)")
        rate = ""
        if self.done and self.seconds > 0:
            rate = f", {self.done / self.seconds:.2f} images/s"
        lines = [(f"{n} image{'s' * (n != 1)}: {', '.join(parts)} in {self.seconds:.1f} s"
                  f"{rate} ({self.mode})")]
        if self.stopped_at_cap:
            lines.append(f"{self.stopped_at_cap} stopped at the iteration cap without "
                         "converging (the report's stopped_at_cap column): raise "
                         "--max-iter or lower --max-size")
        cycles = self.not_converged - self.stopped_at_cap
        if cycles:
            lines.append(f"{cycles} ended in a cycle of a few boundary pixels (more "
                         "iterations would not change their labels)")
        if self.no_structure:
            lines.append(f"{self.no_structure} with no structure found (nothing differs "
                         "from what IEM finds in noise; the report's no_structure column "
                         "counts the planes): their labels are all background")
        if self.report_path is not None:
            lines.append(f"report: {self.report_path}")
        bad = [r for r in self.records if r.status in ("failed", "refused")]
        for r in bad[:max_failures]:
            what = "failed" if r.status == "failed" else "refused"
            lines.append(f"{what}: {r.error}" if r.error.startswith(r.file)
                         else f"{what}: {r.file}: {r.error}")
        if len(bad) > max_failures:
            lines.append(f"... and {len(bad) - max_failures} more, see the report")
        if self.refused:
            lines.append("refused outputs are left as they are: --overwrite replaces "
                         "those napari-iem wrote; other files are never replaced")
        return "\n".join(lines)

    def rows(self) -> list[FileRecord]:
        """What the report file holds: this run's records, then the earlier ones."""
        return self.records + self.earlier

    def to_json(self) -> dict:
        return {
            "summary": {
                "images": len(self.records), "done": self.done, "skipped": self.skipped,
                "failed": self.failed, "refused": self.refused,
                "cancelled": self.count("cancelled"),
                "not_converged": self.not_converged,
                "stopped_at_cap": self.stopped_at_cap, "no_structure": self.no_structure,
                "seconds": round(self.seconds, 3), "mode": self.mode,
                "interrupted": self.interrupted, "settings": self.settings,
            },
            "files": [asdict(r) for r in self.rows()],
        }

    def write(self, path: str | os.PathLike) -> Path:
        """Write the report as CSV or JSON (by suffix), atomically."""
        path = Path(path)
        if path.suffix.lower() == ".json":
            text = json.dumps(self.to_json(), indent=2) + "\n"
        else:
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=REPORT_FIELDS, lineterminator="\n")
            writer.writeheader()
            for r in self.rows():
                writer.writerow({k: _escape(v) for k, v in asdict(r).items()})
            text = buf.getvalue()
        with atomic_output(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
        return path
