"""The command line's words for the engine's messages.

The engine words its messages for the Python API (``use mode='slices'``), as the API
and the widget share them.  A batch run is ``napari-iem segment``'s (the widget's "Run
on a folder..." writes the same files), so what it records, the report's ``error``
column included, and what the command prints name the command's flags instead
(``use --mode slices``): one translation, from the knob table, not a second copy of
every message.
"""
from __future__ import annotations

import re

__all__ = ["cli_wording"]

#: Keywords of the API that are flags but not knobs (those come from the table).
_FLAG_KEYWORDS = ("channel_axis", "scale", "block_size", "max_pixels", "task_images")
#: Python's None as a word (not inside a name or a quoted text).
_NONE = re.compile(r"(?<![\w'\"])None(?![\w'\"])")


def _flag_patterns() -> list[tuple[re.Pattern, str, bool]]:
    """``(pattern, flag, is_bool)`` for every keyword with a flag: ``name=value``,
    a bare ``name=``, and a bare ``name`` when it holds an underscore (no English word
    does; ``regions`` or ``flip`` alone are words, not keywords)."""
    from ..engine.knobs import KNOBS

    names = {k.name: k.type is bool for k in KNOBS if k.cli}
    names.update(dict.fromkeys(_FLAG_KEYWORDS, False))
    out = []
    for name in sorted(names, key=len, reverse=True):
        flag, edge = "--" + name.replace("_", "-"), r"(?<![\w\-/.])"
        out.append((re.compile(edge + name + r"""=(?:'([^']*)'|"([^"]*)"|([^\s,;)'"]+))?"""),
                    flag, names[name]))
        if "_" in name:
            out.append((re.compile(edge + name + r"(?![\w=./\-])"), flag, False))
    return out


def cli_wording(text: str) -> str:
    """``text`` (an engine or batch message, a knob's help) with the API's keywords as
    the command's flags: ``mode='slices'`` as ``--mode slices``, ``channel_axis=`` as
    ``--channel-axis``, ``max_size`` as ``--max-size``, and ``None`` as the ``none``
    a flag takes.

    Examples
    --------
    >>> cli_wording("use mode='slices', or pass channel_axis= the axis")
    'use --mode slices, or pass --channel-axis the axis'
    >>> cli_wording("None: the image's own size")
    "none: the image's own size"
    """
    def flag(match: re.Match, name: str, is_bool: bool) -> str:
        value = next((g for g in match.groups() if g is not None), None)
        if value is None or (is_bool and value == "True"):
            return name
        return f"no {name}" if is_bool and value == "False" else f"{name} {value}"

    for pattern, name, is_bool in _flag_patterns():
        text = pattern.sub(lambda m, n=name, b=is_bool: flag(m, n, b), text)
    return _NONE.sub("none", text)  # what --max-size none takes
