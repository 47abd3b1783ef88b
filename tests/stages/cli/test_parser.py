"""The parser takes every setting's default, choices and help from stages.settings."""

from __future__ import annotations

import dataclasses

import pytest

from stages.cli.parser import build_parser
from stages.settings import (DEFAULT_OUTDIR, FILES_IN_FLIGHT, FORMAT_HELP, FORMATS, SHOW_MODES,
                             JobConfig, LiveConfig, PostprocessConfig, flag_of, shown_default)

SETTINGS = [(cls, f.name) for cls in (JobConfig, PostprocessConfig, LiveConfig)
            for f in dataclasses.fields(cls) if f.metadata.get("help") is not None]


def _action(parser, flag):
    return next(a for a in parser._actions if flag in a.option_strings)


def _help_text() -> str:
    return " ".join(build_parser().format_help().split())  # argparse wraps lines


def _option_help(flag: str) -> str:
    """What ``--help`` shows for one option (its line and help), unwrapped."""
    parser = build_parser()
    formatter = parser._get_formatter()
    return " ".join(formatter._format_action(_action(parser, flag)).split())


@pytest.mark.parametrize("owner, name", SETTINGS, ids=[f"{c.__name__}.{n}" for c, n in SETTINGS])
def test_every_setting_has_its_option_with_the_settings_default_and_choices(owner, name):
    parser = build_parser()
    action = _action(parser, flag_of(owner, name))
    field = owner.__dataclass_fields__[name]
    if isinstance(field.default, bool):
        assert action.default is field.default  # the switch flips it: --refine, --no-track
        assert action.const is (not field.default)
        return
    # the parser's default, read back by the settings, is the settings' default
    value = action.default
    made = owner(**{name: tuple(value) if isinstance(value, list) else value})
    assert getattr(made, name) == field.default
    assert list(action.choices or ()) == list(field.metadata["choices"] or ()) or \
        action.metavar is not None


@pytest.mark.parametrize("owner, name", SETTINGS, ids=[f"{c.__name__}.{n}" for c, n in SETTINGS])
def test_help_shows_the_settings_default_and_every_choice(owner, name):
    field = owner.__dataclass_fields__[name]
    if name == "smooth_sigma":  # hidden on purpose
        assert "--smooth-sigma" not in _help_text()
        return
    block = _option_help(flag_of(owner, name))
    shown = shown_default(owner, name)
    if shown is not None and not isinstance(field.default, bool):
        assert f"(default: {shown})" in block, block
    for choice in field.metadata["choices"] or ():
        assert choice in block, (choice, block)


def test_help_lists_every_keypoint_format_the_code_writes():
    assert set(FORMAT_HELP) == set(FORMATS)
    text = _help_text()
    for name in FORMATS:  # csv included
        assert f"{name} ({FORMAT_HELP[name]})" in text


def test_run_options_take_their_defaults_from_the_settings():
    parser = build_parser()
    assert parser.get_default("outdir") == DEFAULT_OUTDIR
    assert parser.get_default("files_in_flight") == FILES_IN_FLIGHT
    assert tuple(_action(parser, "--show").choices) == SHOW_MODES
