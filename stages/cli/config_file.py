"""Run settings from a TOML file (``--config``): its keys are the command's long
options, its values of the option's own type, as parser defaults."""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path

from stages.sources.credentials import mask_credentials


def config_defaults(parser: argparse.ArgumentParser, path: Path) -> dict:
    """Parser defaults from a TOML file; every key must be a long option of the parser.

    Raises:
        ValueError: Unreadable file, bad TOML, an unknown key or a bad value (one line).
    """
    try:
        # TOML forbids a BOM (tomllib rejects one), but editors on Windows write it: dropped
        data = tomllib.loads(path.read_bytes().decode("utf-8-sig"))
    except OSError as exc:
        raise ValueError(f"--config {path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"--config {path}: not UTF-8 text (byte {exc.start}); "
                         "TOML files are UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"--config {path}: not valid TOML ({exc})") from None
    actions = {"input": next(a for a in parser._actions if a.dest == "input")}
    for action in parser._actions:  # keys are the long options, with - or _
        for opt in action.option_strings:
            if opt.startswith("--") and action.dest not in ("config", "help", "version"):
                actions[opt[2:]] = actions[opt[2:].replace("-", "_")] = action
    defaults = {}
    for key, value in data.items():
        action = actions.get(key)
        if action is None:
            raise ValueError(f"--config {path}: unknown key {key!r}")
        defaults[action.dest] = _config_value(path, key, action, value)
    return defaults


def _config_value(path: Path, key: str, action: argparse.Action, value):
    if action.nargs in ("*", "+"):
        value = [value] if isinstance(value, str) else value
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ValueError(f"--config {path}: {key!r} must be a string or a list of strings")
        return value
    if action.dest in ("start", "end") and isinstance(value, (int, float)) \
            and not isinstance(value, bool):
        value = str(value)  # start = 12.5 as well as start = "0:12.5"
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise ValueError(f"--config {path}: {key!r} must be true or false")
        return value if isinstance(action, argparse._StoreTrueAction) else not value  # no-track = true
    _check_config_type(path, key, action, value)
    try:
        converted = action.type(value) if action.type is not None else value
    except (TypeError, ValueError):
        raise ValueError(f"--config {path}: {key!r} = {value!r} is not valid") from None
    if action.choices is not None and converted not in action.choices:
        raise ValueError(f"--config {path}: {key!r} must be one of {', '.join(action.choices)}")
    return converted


def _check_config_type(path: Path, key: str, action: argparse.Action, value) -> None:
    """A TOML value of the option's own type: no silent 2.7 -> 2 or true -> 1.0."""
    kind = {int: "a whole number", float: "a number"}.get(action.type, "a string")
    if action.type is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif action.type is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:  # strings and paths, as on the command line
        ok = isinstance(value, str)
        kind += f" ({action.metavar})" if isinstance(action.metavar, str) else ""
    if not ok:
        raise ValueError(f"--config {path}: {key!r} must be {kind}, not {_toml_type(value)} "
                         f"{_toml_text(value)}")


def _toml_type(value) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
             list: "an array", dict: "a table"}
    return next((name for t, name in names.items() if isinstance(value, t)), "a date or time")


def _toml_text(value) -> str:
    try:
        text = json.dumps(value)  # TOML's own spelling for arrays, booleans and numbers
    except TypeError:
        text = str(value)
    return mask_credentials(text)  # a URL given where a list or number belongs
