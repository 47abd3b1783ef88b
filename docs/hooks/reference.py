"""MkDocs hook: the reference pages, made from the code at every build.

``mkdocs.yml`` names this file under ``hooks``. ``on_files`` adds the pages
of ``pages()`` to the site as generated files, so they exist only in the
built site and cannot drift from the code; a field the code writes but
the generators do not describe stops the build. To read them without
MkDocs: ``python docs/hooks/reference.py OUTDIR`` writes them as files.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the project's packages, also when run as a script
    sys.path.insert(0, str(ROOT))

from docs.hooks import options_page, outputs_page, service_page  # noqa: E402


def pages() -> dict[str, str]:
    """The generated pages: path under ``docs/`` -> Markdown."""
    return {"reference/options.md": options_page.page(),
            "reference/outputs.md": outputs_page.page(),
            "reference/http.md": service_page.http_page(),
            "reference/exit-codes.md": service_page.exit_codes_page()}


def on_files(files, config):
    """Add the generated pages to the site (MkDocs event)."""
    from mkdocs.structure.files import File

    for path, text in pages().items():
        files.append(File.generated(config, path, content=text))
    return files


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "site-reference")
    for name, text in pages().items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text, encoding="utf-8")
        print(out / name)
