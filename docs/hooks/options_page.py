"""The options reference: every command-line option and TOML key, made from the parser.

Each option's flag, placeholder, default and help come from the argument
parser (``stages.cli.parser``), which takes them from the settings' field
metadata (``stages.settings``: also the ``bounds`` shown here); the modes
and the Python API form come from ``stages.options``; the TOML keys are
the long options, as ``stages.cli.config_file`` reads them.
"""

from __future__ import annotations

import argparse
import re

# Options that are not settings: their bounds, in words (the parser or run_stream checks them)
OTHER_BOUNDS = {
    "input": "files, folders, globs; or rtsp://, rtsps://, http(s)://, /dev/videoN, a camera "
             "index, lavfi:GRAPH",
    "sources": "a text file, one SPEC [NAME] a line; NAME: letters, digits, . - _",
    "outdir": "a folder, or a path where one can be made",
    "files_in_flight": "1 to {MAX_FILES_IN_FLIGHT}",
    "preview": "PORT 1 to 65535, with an optional HOST (loopback unless given)",
    "http": "PORT 1 to 65535, with an optional HOST (loopback unless given)",
    "summary_json": "a new file or a regular file in a folder that takes files, a link to "
                    "one, a FIFO or a device",
    "cluster": "a Dask scheduler address, tcp://HOST:PORT",
    "list": "a text file, one path a line",
    "config": "a UTF-8 TOML file",
}
NOT_TOML = ("help", "version", "config")
_GROUPS = (("General", None), ("Part of a file", "part of a file (files and batches)"),
           ("Batches", "batches (several files, directories, globs)"),
           ("Live sources", "live sources"))


def page() -> str:
    """The Markdown of ``reference/options.md``."""
    from stages import options
    from stages.cli.parser import build_parser

    parser = build_parser()
    out = [_INTRO]
    for title, group_title in _GROUPS:
        out.append(f"## {title}\n")
        for action in _group_actions(parser, group_title):
            out.append(option_section(parser, action))
    out.append("## Options by mode\n")
    out.append(_MODES_INTRO)
    out.append("<!-- options-by-mode: made by stages.options.markdown_table() -->\n"
               + options.markdown_table() + "\n<!-- end options-by-mode -->\n")
    out.append("Also refused, with one line and exit code 2 (`stages.options.CONFLICTS`):\n")
    out.extend(f"- {line}" for line in conflict_lines())
    out.append("\n## Value forms\n")
    out.append(value_forms())
    out.append("\n## A TOML file with every key at its default\n")
    out.append("Keys are the long options; the command line overrides the file. Keys left "
               "unset here have no default (`max-retries`: never give up).\n")
    out.append("```toml\n" + toml_example(parser) + "```\n")
    return "\n".join(out)


_INTRO = """# Options and TOML keys

Made from the program's own argument parser and settings when the site is
built, so it cannot drift from `posestream --help`. Every option is also a
key of a `--config FILE.toml` file, named as the long option without its
dashes (`workers = 2`, `stall-timeout = 5`; `_` for `-` works too): the
command line overrides the file. A bad value is refused before any model
loads, with one line naming the option (exit code 1); an option that means
nothing in the run's mode is refused with exit code 2 (see
[Options by mode](#options-by-mode)). In a TOML file a switch is `true` or
`false` (`no-track = true`), a number is a number (`workers = 2`, not
`"2"`), and everything else is a string (`resolution = "656x368"`), or an
array of strings where several are allowed (`format = ["jsonl", "csv"]`).
"""

_MODES_INTRO = """Modes: **file** (one video file), **image** (one still image), **batch**
(several files, a folder, a glob, `--list` or `--cluster`), **live** (streams
and cameras). Keys of a `--config` file are defaults for every mode: a live
key in a file shared with file runs is not an error there.
"""


def _group_actions(parser: argparse.ArgumentParser, title: str | None) -> list[argparse.Action]:
    if title is not None:
        group = next(g for g in parser._action_groups if g.title == title)
        return list(group._group_actions)
    named = {t for _, t in _GROUPS if t is not None}
    return [a for g in parser._action_groups if g.title not in named
            for a in g._group_actions if a.dest != "help"]


def option_name(action: argparse.Action) -> str:
    """How the option is written: ``-o/--outdir``, ``--resolution``, ``INPUT``."""
    return "/".join(action.option_strings) if action.option_strings else action.dest.upper()


def anchor(action: argparse.Action) -> str:
    """The section's id: the long option without dashes (``resolution``, ``no-track``)."""
    longs = [o for o in action.option_strings if o.startswith("--")]
    return longs[0][2:] if longs else action.dest


def toml_key(action: argparse.Action) -> str | None:
    """The TOML key of an option (None: not a key)."""
    if action.dest in NOT_TOML:
        return None
    return anchor(action)


def value_type(action: argparse.Action) -> str:
    """The kind of value, in the TOML file's terms."""
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return "switch (TOML: true or false)"
    if isinstance(action, argparse._VersionAction):
        return "switch"
    if action.nargs in ("*", "+"):
        return "one or more texts (TOML: a string or an array of strings)"
    if action.type is int:
        return "whole number (TOML: an integer)"
    if action.type is float:
        return "number (TOML: an integer or a float)"
    if action.nargs == "?":
        return "optional word (TOML: a string)"
    return "path (TOML: a string)" if action.type is not None else "text (TOML: a string)"


def default_text(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The default as ``--help`` shows it, or what happens without the option."""
    from stages.options import SETTINGS
    from stages.settings import shown_default

    if isinstance(action, argparse._StoreFalseAction):
        return "off (the option turns it off: " + action.dest.replace("_", " ") + " is on)"
    if isinstance(action, (argparse._StoreTrueAction, argparse._VersionAction)):
        return "off"
    if action.dest in SETTINGS:
        shown = shown_default(*SETTINGS[action.dest])
        if shown is not None:
            return f"`{shown}`"
    value = parser.get_default(action.dest)
    if value in (None, [], ""):
        if action.dest == "input":
            return "none: a sample clip with people"
        said = re.search(r"\(default: ([^()]*)\)$", action.help or "")  # the help's own words
        return _escape(said.group(1)) if said else "none (unset)"
    return f"`{value}`"


def bounds_text(action: argparse.Action) -> str | None:
    """The values accepted, from the settings' ``bounds``, the parser's choices, or
    ``OTHER_BOUNDS``."""
    from stages import settings
    from stages.options import SETTINGS

    if action.dest in SETTINGS:
        owner, name = SETTINGS[action.dest]
        meta = owner.__dataclass_fields__[name].metadata
        if meta.get("bounds"):
            return meta["bounds"]
        if meta.get("choices"):
            return "one of " + ", ".join(f"`{c}`" for c in meta["choices"])
    if action.choices:
        return "one of " + ", ".join(f"`{c}`" for c in action.choices)
    text = OTHER_BOUNDS.get(action.dest)
    return text.format(MAX_FILES_IN_FLIGHT=settings.MAX_FILES_IN_FLIGHT) if text else None


def modes_text(dest: str) -> str:
    """The modes that honour the option (``stages.options.OPTION_MODES``)."""
    from stages.options import MODES, OPTION_MODES

    if dest == "version":
        return "any: it prints and exits"
    if dest not in OPTION_MODES:
        raise KeyError(f"--{dest.replace('_', '-')} is not in stages.options.OPTION_MODES")
    modes = OPTION_MODES[dest]
    return "all" if set(modes) == set(MODES) else ", ".join(m for m in MODES if m in modes)


def option_section(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """One option's section: heading, help, then its facts as a table."""
    from stages.options import API

    metavar = action.metavar if isinstance(action.metavar, str) else None
    if metavar is None and action.choices and action.option_strings:
        metavar = "{" + ",".join(action.choices) + "}"
    elif metavar is None and action.nargs != 0:  # as --help writes it
        metavar = action.dest.upper()
    if action.nargs == "?" and metavar:
        metavar = f"[{metavar}]"
    head = option_name(action) + (f" {metavar}" if metavar and action.option_strings else "")
    help_text = _help(action)
    rows = [("type", value_type(action)), ("default", default_text(parser, action))]
    if (bounds := bounds_text(action)) is not None:
        rows.append(("values", _escape(bounds)))
    rows.append(("modes", modes_text(action.dest)))
    key = toml_key(action)
    rows.append(("TOML key", f"`{key}`" if key else "none"))
    if (api := API.get(action.dest)) is not None:
        rows.append(("Python API", f"`{api}`"))
    lines = [f"| {name} | {value} |" for name, value in rows]
    table = "\n".join([lines[0], "|---|---|", *lines[1:]])  # the type heads the table
    return f"### `{head}` {{#{anchor(action)}}}\n\n{help_text}\n\n{table}\n"


def _help(action: argparse.Action) -> str:
    if action.help == argparse.SUPPRESS:
        return ("Not shown by `--help`: the width of the heatmaps' Gaussian in the kernel, "
                "as tf-pose-estimation's `gauss_kernel(kernlen, nsig)` takes it.")
    text = (action.help or "").replace("%%", "%")
    text = re.sub(r" \(default: [^()]*\)$", "", text)
    return _escape(text) + ("" if text.endswith(".") else ".")


def _escape(text: str) -> str:
    """Text safe in a Markdown table cell: no pipes, no HTML-looking brackets."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def conflict_lines() -> list[str]:
    """Each conflict's message, with example values that trigger it."""
    from stages.options import CONFLICTS, SETTINGS, _default

    values = {dest: _default(*where) for dest, where in SETTINGS.items()}
    values.update(video=False, track=False, cluster="tcp://10.0.0.1:8786")
    lines = []
    for conflict in CONFLICTS:
        example = dict(values, record="raw" if conflict.option == "mirror" else "annotated")
        lines.append(_escape(conflict.message(example)))
    return lines


def value_forms() -> str:
    """The forms of durations, sizes and times (``stages.values``' docstring)."""
    from stages import values

    text = values.__doc__.split("\n\n", 1)[1]
    return text.replace("``", "`")


def toml_example(parser: argparse.ArgumentParser) -> str:
    """Every TOML key at its default, commented out where it has none."""
    lines = []
    for action in parser._actions:
        key = toml_key(action)
        if key is None:
            continue
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            lines.append(f"{key} = false")
            continue
        value = parser.get_default(action.dest)  # as the command line holds it (stages.cli.parser)
        if value in (None, [], "") or action.dest == "input":
            lines.append(f"# {key} = ...")
        elif isinstance(value, list):
            lines.append(f"{key} = [{', '.join(_toml_string(v) for v in value)}]")
        elif isinstance(value, (int, float)) and action.type in (int, float):
            lines.append(f"{key} = {value}")
        else:
            lines.append(f"{key} = {_toml_string(str(value))}")
    return "\n".join(lines) + "\n"


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
