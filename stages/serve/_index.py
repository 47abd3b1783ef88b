"""The status server's index at ``/``: its endpoints, each with a link and a line.

The form follows the request's ``Accept`` header: HTML for a browser, JSON
for a client that asks for ``application/json``, plain text otherwise
(``curl``, which accepts ``*/*``, reads one endpoint a line). Only exact
media types count; among them the highest ``q`` wins, HTML first on a tie.
"""

from __future__ import annotations

import html
import json

HTML = "text/html; charset=utf-8"
JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
TITLE = "posestream status"
_FORMS = {"text/html": HTML, "application/json": JSON, "text/plain": TEXT}  # in tie order


def render(endpoints: list[tuple[str, str]], accept: str | None) -> tuple[str, bytes]:
    """(content type, body) of the index of ``endpoints`` ((address, what it serves) pairs)."""
    form = choose(accept)
    if form == HTML:
        return form, _html(endpoints).encode()
    if form == JSON:
        rows = [{"href": href, "description": about} for href, about in endpoints]
        return form, json.dumps({"endpoints": rows}).encode() + b"\n"
    width = max(len(href) for href, _ in endpoints)
    lines = [TITLE, *(f"{href:<{width}}  {about}" for href, about in endpoints)]
    return form, ("\n".join(lines) + "\n").encode()


def choose(accept: str | None) -> str:
    """The content type of the index for an ``Accept`` header (see the module docstring)."""
    qualities = {}
    for item in (accept or "").split(","):
        kind, *params = (part.strip() for part in item.split(";"))
        qualities[kind.lower()] = _quality(params)
    best = max(_FORMS, key=lambda kind: qualities.get(kind, 0.0))  # the first of equals
    return _FORMS[best] if qualities.get(best, 0.0) > 0 else TEXT


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def _html(endpoints: list[tuple[str, str]]) -> str:
    items = "\n".join(f'<li><a href="{html.escape(href)}"><code>{html.escape(href)}</code></a>'
                      f" &mdash; {html.escape(about)}</li>" for href, about in endpoints)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{TITLE}</title>
<style>
  body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
         max-width: 48em; padding: 0 1em; line-height: 1.5; }}
  li {{ margin: .3em 0; }}
</style>
</head>
<body>
<h1>{TITLE}</h1>
<ul>
{items}
</ul>
</body>
</html>
"""
