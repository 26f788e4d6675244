"""Settings files: round trips, validation and clear errors."""
import json

import pytest

from napari_iem.engine.presets import get_preset
from napari_iem.files.settings import (
    SettingsError,
    load_settings,
    make_settings,
    save_settings,
    segment_kwargs,
    settings_from_params,
    settings_to_params,
    settings_to_toml,
    validate_settings,
)


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_round_trip(tmp_path, suffix):
    s = make_settings("paper", 3, max_iter=40, sigma=4.5, lam=1e-8, max_size=None,
                      init="kmeans")
    path = save_settings(tmp_path / f"s{suffix}", s)
    assert load_settings(path) == s
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_toml_text_is_readable():
    text = settings_to_toml(make_settings("default", 2, max_iter=10))
    assert 'preset = "default"' in text and "max_iter = 10" in text and "[params]" in text


def test_defaults_and_types():
    s = validate_settings({})
    assert s == {"preset": "default", "regions": 2, "params": {}}
    assert validate_settings({"preset": "auto"})["preset"] == "default"  # the old name
    with pytest.raises(SettingsError, match="unknown preset"):
        validate_settings({"preset": ["photo"]})
    s = validate_settings({"params": {"sigma": 3, "max_iter": 20.0, "max_size": "none"}})
    assert s["params"] == {"sigma": 3.0, "max_iter": 20, "max_size": None}
    assert isinstance(s["params"]["sigma"], float)


@pytest.mark.parametrize(
    "data, words",
    [
        ({"colour": "red"}, "unknown key"),
        ({"max_iter": 5}, "[params]"),
        ({"params": {"sigmaa": 1}}, "unknown parameter"),
        ({"preset": "fast"}, "unknown preset"),
        ({"regions": 1}, "regions"),
        ({"regions": True}, "regions"),
        ({"params": {"max_iter": "ten"}}, "max_iter must be a whole number from 1"),
        ({"params": {"max_iter": 1.5}}, "max_iter must be a whole number from 1"),
        ({"params": {"max_iter": 0}}, "max_iter must be a whole number from 1"),
        ({"params": {"max_iter": -5}}, "max_iter must be a whole number from 1"),
        ({"params": {"smooth_threshold": 0}}, "smooth_threshold must be a whole number from 1"),
        ({"params": {"smooth_threshold": 10}}, "smooth_threshold must be a whole number from 1"),
        ({"params": {"lam": float("inf")}}, "lam must be a finite number"),
        ({"params": {"sigma": float("nan")}}, "finite"),
        ({"params": {"init": 3}}, "init must be one of 'square', 'kmeans'"),
        ({"params": {"sigma": None}}, "cannot be none"),
        ({"params": [1, 2]}, "params must be"),
        ({"version": 7}, "version"),
        ([1, 2], "table"),
    ],
)
def test_rejects(data, words):
    with pytest.raises(SettingsError, match=None) as info:
        validate_settings(data, source="my.toml")
    assert words in str(info.value)
    if isinstance(data, dict):
        assert str(info.value).startswith("my.toml")


def test_file_errors(tmp_path):
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("preset = \n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(bad)
    badj = tmp_path / "bad.json"
    badj.write_text("{")
    with pytest.raises(SettingsError, match="not valid JSON"):
        load_settings(badj)
    with pytest.raises(SettingsError, match=".toml or .json"):
        load_settings(tmp_path / "s.yaml")
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SettingsError, match="not valid"):
        load_settings(binary)


def test_toml_is_data_only(tmp_path):
    """A TOML file cannot run code; strings stay strings and are then validated."""
    p = tmp_path / "evil.toml"
    p.write_text('preset = "__import__(\'os\').system(\'true\')"\n')
    with pytest.raises(SettingsError, match="unknown preset"):
        load_settings(p)


def test_json_file(tmp_path):
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"preset": "default", "regions": 4, "params": {"max_iter": 7}}))
    assert segment_kwargs(load_settings(p)) == {"regions": 4, "preset": "default",
                                                "max_iter": 7}


def test_from_full_params_keeps_only_changes():
    full = {"preset": "paper", "regions": 2, **get_preset("paper").replace(max_iter=9).to_dict()}
    s = settings_from_params(full)
    assert s == {"preset": "paper", "regions": 2, "params": {"max_iter": 9}}
    assert settings_to_params(s) == get_preset("paper").replace(max_iter=9)


def test_files_are_read_as_untrusted(tmp_path):
    """Only a regular file, bounded in size and in nesting, each a SettingsError."""
    import os

    zero = tmp_path / "zero.toml"
    zero.symlink_to("/dev/zero")
    with pytest.raises(SettingsError, match="not a regular file"):
        load_settings(zero)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(SettingsError, match="not a regular file"):
        load_settings(fifo)
    deep = tmp_path / "deep.json"
    deep.write_text('{"params": ' + "[" * 40 + "]" * 40 + "}")
    with pytest.raises(SettingsError, match="nested 41 deep"):
        load_settings(deep)
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * (1 << 20))
    with pytest.raises(SettingsError, match="more than the limit"):
        load_settings(big)


@pytest.mark.parametrize("suffix, text", [
    (".json", '{"regions": ' + "9" * 5000 + "}"),
    (".toml", "regions = " + "9" * 5000 + "\n"),
])
def test_a_number_too_long_to_read_is_a_settings_error(tmp_path, suffix, text):
    """Python refuses to read an integer of more than 4,300 digits with a plain
    ValueError that names no file; the widget's remembered settings, which catch
    SettingsError, then kept the widget from opening."""
    path = tmp_path / f"s{suffix}"
    path.write_text(text)
    with pytest.raises(SettingsError, match=f"{path}: not valid"):
        load_settings(path)


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_a_byte_order_mark_is_read_past(tmp_path, suffix):
    """Windows editors begin UTF-8 files with a byte order mark; the file was refused
    as 'Invalid statement (at line 1, column 1)'."""
    path = tmp_path / f"s{suffix}"
    save_settings(path, make_settings("photo", 3))
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_settings(path) == make_settings("photo", 3)


@pytest.mark.parametrize("params", [False, 0, "", []])
def test_params_of_another_type_are_refused_even_when_empty(params):
    """``"params": false`` (or 0, "", []) was taken for no overrides, silently."""
    with pytest.raises(SettingsError, match="params must be a table"):
        validate_settings({"params": params})
