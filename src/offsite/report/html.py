"""A self-contained HTML report: text, tables and images embedded as base64, so one file opens anywhere."""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import Sequence

from ..paths import atomic_path

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.note { color: #555; font-size: 0.9em; } code { background: #f4f4f4; padding: 0 3px; }
"""


def image_tag(path: str | os.PathLike, alt: str) -> str:
    """An ``<img>`` with the PNG at ``path`` embedded as a data URI."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def table_html(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def markdown_table_html(markdown: str) -> str:
    """The first Markdown table in ``markdown`` as HTML (the lines after it become a list of notes)."""
    lines = [line for line in markdown.splitlines() if line.strip()]
    table = [line for line in lines if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table]
    notes = [line.removeprefix("- ") for line in lines if line.startswith("- ")]
    listing = "<ul class='note'>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>" if notes else ""
    return table_html(cells[0], cells[2:]) + listing


def write_report(path: str | os.PathLike, title: str, sections: Sequence[tuple[str, str]]) -> Path:
    """Write ``sections`` (heading, HTML body) under ``title`` to ``path`` atomically."""
    body = "".join(f"<h2>{html.escape(heading)}</h2>\n{content}\n" for heading, content in sections)
    page = (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n{body}</body></html>\n")
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return Path(path)
