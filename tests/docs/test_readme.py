"""README.md: short, undated, every link and picture there; scripts/test.sh builds the site."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def test_the_readme_is_at_most_150_lines():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert 20 < len(lines) <= 150


def test_the_readme_holds_no_dated_measurement_or_history():
    text = README.read_text(encoding="utf-8")
    assert not re.search(r"\b(19|20)\d\d-\d\d-\d\d\b", text), "a date"
    assert not re.search(r"\d\s*FPS\b", text, re.IGNORECASE), "an FPS figure"
    assert not re.search(r"\b\d+(\.\d+)?x (faster|slower|against)\b", text), "a speed ratio"
    assert not re.search(r"\b(until|since) this release\b|\bchanged in\b", text, re.IGNORECASE)


def test_every_link_and_picture_of_the_readme_is_there():
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t]
    assert "docs/img/annotated-frame.png" in local and "docs/install.md" in local
    for target in local:
        assert (ROOT / target).is_file(), target


def test_the_test_command_builds_the_docs_strictly_before_the_tests():
    script = (ROOT / "scripts" / "test.sh").read_text(encoding="utf-8")
    build = script.index("mkdocs build --strict")
    assert build < script.index("-m pytest")
    assert "mkdocs" in (ROOT / "setup.cfg").read_text(encoding="utf-8").split("test =")[1]
