"""stages.options: the one table of options by mode, and the docs' copy of it."""

from __future__ import annotations

import pytest

from stages import options
from stages.errors import UsageError
from stages.settings import JobConfig, LiveConfig

START = "<!-- options-by-mode: made by stages.options.markdown_table() -->\n"
END = "\n<!-- end options-by-mode -->"


def test_the_docs_options_reference_holds_the_table():
    from docs.hooks import options_page  # the docs site makes the page at each build

    text = options_page.page()
    table = text[text.index(START) + len(START):text.index(END)]
    assert table == options.markdown_table()


def test_the_table_has_a_row_per_option_and_says_where_each_is_honoured():
    rows = options.markdown_table().splitlines()[2:]
    assert len(rows) == len(options.OPTION_MODES)
    frame_step = next(r for r in rows if r.startswith("| `--frame-step`"))
    assert frame_step.split(" | ")[1:5] == ["yes", "no", "yes", "no"]


def test_every_setting_is_an_option_of_the_table():
    assert set(options.SETTINGS) <= set(options.OPTION_MODES)


@pytest.mark.parametrize("mode, config, live, message", [
    (options.LIVE, JobConfig(frame_step=2), None, "--frame-step is for video files and batches"),
    (options.FILE, JobConfig(), LiveConfig(max_fps=2), "--max-fps is for live sources, not a video"),
    (options.IMAGE, JobConfig(preset="slow"), None, "--preset is for video files, batches and"),
    (options.FILE, JobConfig(video=False, preset="slow"), None, "--preset sets the video's encoder"),
    (options.LIVE, JobConfig(), LiveConfig(mirror=True, record="raw"), "--mirror flips"),
])
def test_settings_made_in_python_are_checked_against_the_same_table(mode, config, live, message):
    with pytest.raises(UsageError, match=message):
        options.check_settings(mode, config, live)


def test_defaults_mean_something_everywhere():
    for mode in options.MODES:
        options.check_settings(mode, JobConfig(), LiveConfig())


def test_results_refuses_what_a_live_run_writes():
    with pytest.raises(UsageError, match=r"--retain \(LiveConfig.retain\) .* results\(\) writes nothing"):
        options.check_settings(options.LIVE, JobConfig(), LiveConfig(retain="7d"), writes=False)
    options.check_settings(options.LIVE, JobConfig(), LiveConfig(retain="7d"))  # a live job writes
