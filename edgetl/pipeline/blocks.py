"""The report's blocks as markdown and as one self-contained HTML page (images inlined).

A block is a tuple: ("h1" | "h2" | "p", text), ("ul", items), ("table", headers, rows),
("img", png path, alt text) or ("pre", text).
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path


def _md(text) -> str:
    """A table cell or list item as literal markdown text (labels may hold | < > or backticks)."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("`", "\\`").replace("\n", " ")


def blocks_to_md(blocks: list[tuple], base: Path) -> str:
    """Markdown, image paths relative to ``base`` (the folder the .md file is in)."""
    out = []
    for b in blocks:
        kind = b[0]
        if kind == "h1":
            out.append(f"# {b[1]}\n")
        elif kind == "h2":
            out.append(f"\n## {b[1]}\n")
        elif kind == "p":
            out.append(f"{_md(b[1])}\n")
        elif kind == "ul":
            out += [f"- {_md(item)}" for item in b[1]] + [""]
        elif kind == "table":
            headers, rows = b[1], b[2]
            out.append("| " + " | ".join(_md(h) for h in headers) + " |")
            out.append("|" + "|".join("---" for _ in headers) + "|")
            out += ["| " + " | ".join(_md(c) for c in r) + " |" for r in rows]
            out.append("")
        elif kind == "img":
            rel = Path(os.path.relpath(Path(b[1]).resolve(), base.resolve()))
            out.append(f"![{b[2]}]({rel.as_posix()})\n")
        elif kind == "pre":
            out.append("```\n" + b[1] + "\n```\n")
    return "\n".join(out)


def blocks_to_html(blocks: list[tuple], title: str) -> str:
    """One HTML page, every image inlined as a data URL."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:3px 7px;text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}"
        "img{max-width:100%}pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}</style>"
        "</head><body>",
    ]
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "p"):
            parts.append(f"<{kind}>{html.escape(str(b[1]))}</{kind}>")
        elif kind == "ul":
            parts.append("<ul>" + "".join(f"<li>{html.escape(str(i))}</li>" for i in b[1]) + "</ul>")
        elif kind == "table":
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in b[1]) + "</tr>")
            for r in b[2]:
                parts.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>")
            parts.append("</table>")
        elif kind == "img":
            data = base64.b64encode(Path(b[1]).read_bytes()).decode()
            parts.append(f"<p><img alt='{html.escape(b[2])}' src='data:image/png;base64,{data}'></p>")
        elif kind == "pre":
            parts.append(f"<pre>{html.escape(b[1])}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
