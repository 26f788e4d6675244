"""The widget's settings, remembered between napari sessions.

Stored as an ordinary settings file (:mod:`napari_iem.files.settings`: the preset, the
number of partitions and the parameters that differ from it) in the user's config
folder, so it is validated like any settings file when it is read back, and a user can
open it, or pass it to ``napari-iem segment --config``.  ``NAPARI_IEM_WIDGET_SETTINGS``
names another file (the tests use it to stay out of the user's folder).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from ..files.settings import SettingsError, load_settings, save_settings

ENV = "NAPARI_IEM_WIDGET_SETTINGS"
log = logging.getLogger(__name__)


def path() -> Path:
    """Where the widget's settings are kept."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    from platformdirs import user_config_dir

    return Path(user_config_dir("napari-iem")) / "widget-settings.toml"


def recall() -> dict | None:
    """The remembered settings, or None (none yet, or a file that is no longer valid:
    the widget then starts from its defaults rather than refusing to open)."""
    where = path()
    if not where.is_file():
        return None
    try:
        return load_settings(where)
    except SettingsError as exc:
        log.warning("napari-iem: ignoring the remembered widget settings: %s", exc)
        return None


def remember(settings: dict) -> None:
    """Keep ``settings`` for the next session (a failure to write is only logged)."""
    where = path()
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        save_settings(where, settings)
    except (OSError, SettingsError) as exc:
        log.warning("napari-iem: could not remember the widget settings: %s", exc)
