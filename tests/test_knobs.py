"""One table of knobs: the API, the CLI, the settings files and the presets accept
exactly the same names and ranges (the widget's half is in the GUI tests)."""
import argparse
import inspect
from dataclasses import asdict, fields

import pytest

from napari_iem import iter_segment, segment, segment_batch
from napari_iem.cli import build_parser
from napari_iem.engine.knobs import KNOBS, PARAM_KNOBS, KnobError, check_params, knob
from napari_iem.engine.presets import PRESET_ALIASES, PRESETS, IEMParams
from napari_iem.engine.request import DATA_KEYWORDS
from napari_iem.files.settings import SettingsError, validate_settings


def _segment_parser():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["segment"]


def _edges(k):
    """Values just inside and just outside a knob's range."""
    if k.choices is not None:
        return list(k.choices), ["no-such-" + k.name]
    if k.type is bool:
        return [True, False], [1, "yes"]
    if k.type is str:  # a device name: checked against this machine's devices
        return ["cpu", "auto"], []
    step = 1 if k.type is int else 1e-6 * max(1.0, abs(k.high or 1))
    inside = [v for v in (k.low, k.high) if v is not None]
    outside = [k.low - step] + ([k.high + step] if k.high is not None else [])
    if k.type is int:
        inside = [int(v) if not k.odd or int(v) % 2 else int(v) + 1 for v in inside]
        outside.append(k.low + 0.5)
    return inside, outside + [float("nan")]


def test_iemparams_fields_are_the_param_knobs():
    assert [f.name for f in fields(IEMParams)] == [k.name for k in PARAM_KNOBS]
    assert IEMParams() == IEMParams(**{k.name: k.default for k in PARAM_KNOBS})


def test_every_preset_is_valid_and_named_in_the_table():
    for name, params in PRESETS.items():
        check_params(asdict(params), source=name)
    assert set(knob("preset").choices) == set(PRESETS) | set(PRESET_ALIASES)


@pytest.mark.parametrize("func", [segment, iter_segment, segment_batch],
                         ids=lambda f: f.__name__)
def test_the_api_takes_every_knob_by_its_name(func):
    signature = inspect.signature(func).parameters
    for k in KNOBS:
        assert k.name in signature and k.name in func.__doc__
        if k.name != "init":  # init is also the labels to start from (a data keyword)
            assert signature[k.name].default == k.default, k.name
    for name in DATA_KEYWORDS:  # what segment_batch takes too, for every image alike
        assert name in signature and f"{name} :" in func.__doc__


@pytest.mark.parametrize("k", [k for k in KNOBS if k.cli], ids=lambda k: k.name)
def test_the_cli_has_a_flag_per_knob_with_the_same_range(k):
    parser = _segment_parser()
    action = next(a for a in parser._actions if a.dest == k.name)
    assert k.flag in action.option_strings
    assert set(k.aliases) <= set(action.option_strings)
    if k.type is bool:
        assert getattr(parser.parse_args(["x", "--out", "o", k.flag]), k.name) is True
        return
    inside, outside = _edges(k)
    for value in inside:
        assert action.type(str(value)) == value
    for value in outside:
        with pytest.raises(argparse.ArgumentTypeError, match="must be"):
            action.type(str(value))


@pytest.mark.parametrize("k", PARAM_KNOBS, ids=lambda k: k.name)
def test_settings_files_accept_the_same_range(k):
    inside, outside = _edges(k)
    for value in inside:
        assert validate_settings({"params": {k.name: value}})["params"][k.name] == value
    for value in outside:
        with pytest.raises(SettingsError, match=k.name):
            validate_settings({"params": {k.name: value}})


@pytest.mark.parametrize("k", PARAM_KNOBS, ids=lambda k: k.name)
def test_the_parameters_refuse_the_same_values(k):
    _, outside = _edges(k)
    for value in outside:
        with pytest.raises(KnobError, match=k.name):
            IEMParams().replace(**{k.name: value})


def test_a_switch_a_preset_turns_on_can_be_turned_off():
    """--check-structure was the only way to say it, and the photo and microscopy
    presets have it on already."""
    parse = _segment_parser().parse_args
    assert parse(["x", "--out", "o", "--no-check-structure"]).check_structure is False
    assert parse(["x", "--out", "o"]).check_structure is None  # the preset's
    with pytest.raises(SystemExit):  # a run switch, off unless given, has no --no-
        parse(["x", "--out", "o", "--no-flip"])


def test_old_flags_still_work():
    args = _segment_parser().parse_args(
        ["x", "--out", "o", "--size", "256", "--iterations", "40", "--min-size", "9"])
    assert (args.max_size, args.max_iter, args.min_piece_size) == (256, 40, 9)
    args = _segment_parser().parse_args(["x", "--out", "o", "--max-size", "none"])
    assert args.max_size is None


@pytest.mark.parametrize("k", [k for k in KNOBS if k.type in (int, float)],
                         ids=lambda k: k.name)
def test_a_number_too_large_for_a_float_is_refused_naming_the_knob(k):
    with pytest.raises(KnobError, match=k.name):  # not float()'s OverflowError
        k.check(10**400)


def test_any_real_number_is_a_number():
    from decimal import Decimal
    from fractions import Fraction

    assert knob("sigma").check(Fraction(1, 2)) == 0.5
    assert knob("sigma").check(Decimal("2.5")) == 2.5  # json's parse_float=Decimal
    assert knob("max_iter").check(Fraction(4, 2)) == 2


def test_a_0d_numpy_array_of_a_number_is_that_number():
    import numpy as np

    assert knob("regions").check(np.array(3)) == 3
    assert knob("regions").check(np.int64(2)) == 2
    assert knob("sigma").check(np.array(2.5, np.float32)) == 2.5
    for bad in (np.array(True), np.array([2]), np.array("2"), np.array(2.5)):
        with pytest.raises(KnobError, match="regions must be"):
            knob("regions").check(bad)
