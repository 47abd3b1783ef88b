"""The Xvfb fixture: two test sessions starting displays at once get one each."""

from __future__ import annotations

import threading

from tests.support.display_fixtures import PACKAGES, _start_display, _stop


def test_displays_started_at_the_same_moment_are_different_and_all_running():
    started, errors = [], []
    go = threading.Barrier(3)

    def start() -> None:
        go.wait()
        try:
            started.append(_start_display(PACKAGES))
        except BaseException as exc:  # pytest.skip too: reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert not errors, errors
        numbers = [display.name for display, _ in started]
        assert len(set(numbers)) == 3, numbers
        assert all(proc.poll() is None for _, proc in started)  # each its own live server
    finally:
        for _, proc in started:
            _stop(proc)
