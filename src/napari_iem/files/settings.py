"""Settings files: a preset name, parameter overrides and the number of regions.

One small, validated mapping describes how a segmentation was (or will be) made::

    {"preset": "default", "regions": 2, "params": {"max_iter": 100, "sigma": 4.0}}

``params`` holds only the :class:`~napari_iem.engine.presets.IEMParams` fields that differ from
the preset.  The same mapping is what the CLI reads with ``--config``, what the widget
saves and loads, and what goes into a Labels layer's ``metadata["iem"]["settings"]``.

Files are TOML (read with :mod:`tomllib`) or JSON, chosen by suffix; they are parsed as
data only (nothing is evaluated) and unknown keys are rejected with a clear message.
A settings file is small, so it is read as an untrusted one: only a regular file (a
FIFO would hang the reader, ``/dev/zero`` behind a symlink would never end), at most
1 MiB counted as read, and at most :data:`MAX_NESTING` brackets deep (100,000 nested
brackets would exhaust the parser's recursion), each refused with a
:class:`SettingsError` that names the file.
TOML has no null: an optional field set to ``None`` (``max_size``) is written as the
string ``"none"``, which is read back as ``None``.

Example ``settings.toml``::

    # napari-iem settings
    preset = "default"
    regions = 2

    [params]
    max_iter = 100
    max_size = 512
"""
from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

from ..engine.knobs import PARAM_KNOBS, check_params, knob
from ..engine.presets import DEFAULT_PRESET, IEMParams, get_preset, preset_name
from .read import FileReadError, read_bounded
from .write import atomic_output

__all__ = [
    "METADATA_KEY",
    "SETTINGS_KEYS",
    "SettingsError",
    "load_settings",
    "make_settings",
    "save_settings",
    "segment_kwargs",
    "settings_from_params",
    "settings_to_params",
    "settings_to_toml",
    "validate_settings",
]

#: Top-level keys a settings mapping may hold.
SETTINGS_KEYS = ("preset", "regions", "params", "version")
#: Key under which the settings mapping is stored in a napari layer's metadata.
METADATA_KEY = "napari_iem"
#: Version of the settings format written by :func:`save_settings`.
FORMAT_VERSION = 1

_MAX_FILE_BYTES = 1 << 20  # a settings file is a few hundred bytes; refuse anything huge
#: Deepest bracket nesting accepted in a settings file (a valid one needs 2).
MAX_NESTING = 32


class SettingsError(ValueError):
    """A settings mapping or file is invalid; the message says what and where."""


def validate_settings(data: Mapping, source: str = "settings") -> dict:
    """Check a settings mapping and return a clean copy.

    Parameters
    ----------
    data : mapping
        ``{"preset": str, "regions": int, "params": {field: value}}``; every key is
        optional (defaults: ``"default"``, 2, no overrides).  ``version`` is accepted
        and must be 1.
    source : str
        Where the mapping came from (a file name), used in error messages.

    Returns
    -------
    dict
        ``{"preset", "regions", "params"}`` with values of the right types.

    Raises
    ------
    SettingsError
        On an unknown key, a wrong type, an unknown preset or parameter, or a value the
        engine refuses.
    """
    if not isinstance(data, Mapping):
        raise SettingsError(f"{source}: settings must be a table/object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(SETTINGS_KEYS))
    if unknown:
        raise SettingsError(
            f"{source}: unknown key(s) {unknown}; allowed top-level keys are "
            f"{list(SETTINGS_KEYS[:3])} (parameters go in the [params] table)"
        )
    version = data.get("version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise SettingsError(f"{source}: unsupported settings version {version!r}")
    params = data.get("params")
    params = {} if params is None else params  # JSON's null; false, 0 or "" are no table
    if not isinstance(params, Mapping):
        raise SettingsError(f"{source}: params must be a table/object of IEM parameters")
    try:
        preset = preset_name(data.get("preset", DEFAULT_PRESET))
        regions = knob("regions").check(data.get("regions", 2))
        clean = check_params(dict(params))
    except ValueError as exc:
        raise SettingsError(f"{source}: {exc}") from None
    return {"preset": preset, "regions": regions, "params": clean}


def make_settings(preset: str = DEFAULT_PRESET, regions: int = 2, **params) -> dict:
    """Build a validated settings mapping from keyword arguments.

    Examples
    --------
    >>> make_settings("paper", 2, max_iter=50)
    {'preset': 'paper', 'regions': 2, 'params': {'max_iter': 50}}
    """
    return validate_settings({"preset": preset, "regions": regions, "params": params})


def settings_from_params(params: Mapping, preset: str | None = None,
                         regions: int | None = None) -> dict:
    """Settings that reproduce a full parameter dict, such as ``IEMResult.params``.

    Only the fields that differ from the preset are kept as overrides.  ``preset`` and
    ``regions`` default to the entries of the same name in ``params``.
    """
    params = dict(params)
    preset = preset if preset is not None else params.pop("preset", DEFAULT_PRESET)
    regions = regions if regions is not None else params.pop("regions", 2)
    params.pop("preset", None)
    params.pop("regions", None)
    try:
        base = get_preset(preset).to_dict()
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    known = {k.name for k in PARAM_KNOBS}
    diff = {k: v for k, v in params.items() if k in known and base.get(k) != v}
    return validate_settings({"preset": preset, "regions": regions, "params": diff})


def settings_to_params(settings: Mapping) -> IEMParams:
    """The full :class:`IEMParams` a settings mapping stands for."""
    s = validate_settings(settings)
    return get_preset(s["preset"]).replace(**s["params"])


def segment_kwargs(settings: Mapping) -> dict:
    """Keyword arguments for :func:`napari_iem.api.segment` (``regions``, ``preset``
    and the overrides)."""
    s = validate_settings(settings)
    return {"regions": s["regions"], "preset": s["preset"], **s["params"]}


# --------------------------------------------------------------------------- files

def _toml_value(value) -> str:
    if value is None:
        return '"none"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # repr of a finite float is valid TOML ("1e-03" -> "0.001")
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic strings
    raise SettingsError(f"cannot write {value!r} ({type(value).__name__}) to TOML")


def settings_to_toml(settings: Mapping) -> str:
    """Render a settings mapping as TOML text (readable back by :func:`load_settings`)."""
    s = validate_settings(settings)
    lines = [
        "# napari-iem settings",
        f"version = {FORMAT_VERSION}",
        f"preset = {_toml_value(s['preset'])}",
        f"regions = {s['regions']}",
        "",
        "[params]",
    ]
    lines += [f"{k} = {_toml_value(v)}" for k, v in sorted(s["params"].items())]
    return "\n".join(lines) + "\n"


def _format_for(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".toml":
        return "toml"
    if suffix == ".json":
        return "json"
    raise SettingsError(f"{path}: settings files must end in .toml or .json")


def _check_nesting(path: Path, text: str) -> None:
    """Refuse text nested deeper than :data:`MAX_NESTING` before a parser recurses
    into it (brackets inside strings count too: no valid settings file has many)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    if deepest > MAX_NESTING:
        raise SettingsError(f"{path}: brackets nested {deepest} deep, more than the "
                            f"{MAX_NESTING} a settings file may use")


def load_settings(path: str | os.PathLike) -> dict:
    """Read and validate a settings file (``.toml`` or ``.json``).

    Raises
    ------
    SettingsError
        When the file is missing, not a regular file, unreadable, too large or too
        deeply nested, not valid TOML/JSON, or holds invalid settings; the whole file
        is checked before anything is returned, so a caller that applies the result
        (the widget's Load settings) never applies half of it.
    """
    path = Path(path)
    fmt = _format_for(path)
    if not path.exists() and not path.is_symlink():
        raise SettingsError(f"settings file not found: {path}")
    try:
        raw = read_bounded(path, _MAX_FILE_BYTES)
    except FileReadError as exc:
        raise SettingsError(f"cannot read settings file {exc}") from None
    try:
        text = raw.decode("utf-8-sig")  # the byte order mark of Windows editors
        _check_nesting(path, text)
        data = tomllib.loads(text) if fmt == "toml" else json.loads(text)
    except SettingsError:
        raise
    except ValueError as exc:  # the decoders', and an integer too long for int()
        raise SettingsError(f"{path}: not valid {fmt.upper()}: {exc}") from None
    return validate_settings(data, source=str(path))


def save_settings(path: str | os.PathLike, settings: Mapping) -> Path:
    """Validate ``settings`` and write them to ``path`` (``.toml`` or ``.json``) atomically.

    The file is written to a temporary file in the same folder and moved into place, so
    a reader never sees half a file.
    """
    path = Path(path)
    fmt = _format_for(path)
    s = validate_settings(settings)
    if fmt == "toml":
        text = settings_to_toml(s)
    else:
        text = json.dumps({"version": FORMAT_VERSION, **s}, indent=2) + "\n"
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
