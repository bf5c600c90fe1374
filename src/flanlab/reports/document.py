"""A tiny report document model (headings, text, tables, images) rendered to markdown and to one
self-contained HTML file (CSS inline, images as base64 PNG data URIs, no external assets)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field

__all__ = ["Document", "Heading", "Image", "Pre", "Table", "Text"]


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Text:
    text: str


@dataclass
class Pre:
    """Preformatted text (a prompt): kept verbatim, line breaks included."""

    text: str


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Image:
    """A PNG; ``name`` is the file name the markdown links to (written beside ``report.md``)."""

    name: str
    png: bytes
    alt: str


@dataclass
class Document:
    title: str
    blocks: list[Heading | Text | Table | Image | Pre] = field(default_factory=list)

    def add(self, block: Heading | Text | Table | Image | Pre) -> None:
        self.blocks.append(block)

    def images(self) -> list[Image]:
        return [b for b in self.blocks if isinstance(b, Image)]

    def to_markdown(self, image_dir: str = "plots") -> str:
        """Markdown with images linked as ``image_dir/<name>``."""
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            if isinstance(b, Heading):
                out += ["#" * b.level + " " + b.text, ""]
            elif isinstance(b, Text):
                out += [b.text, ""]
            elif isinstance(b, Table):
                if b.caption:
                    out += [f"*{b.caption}*", ""]
                out.append("| " + " | ".join(_md_cell(c) for c in b.columns) + " |")
                out.append("|" + "|".join(" --- " for _ in b.columns) + "|")
                out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
                out.append("")
            elif isinstance(b, Image):
                out += [f"![{b.alt}]({image_dir}/{b.name})", ""]
            elif isinstance(b, Pre):
                fence = "````" if "```" in b.text else "```"
                out += [fence, b.text, fence, ""]
        return "\n".join(out).rstrip() + "\n"

    def to_html(self) -> str:
        """One HTML page that needs nothing else: styles inline, images embedded."""
        body = []
        for b in self.blocks:
            if isinstance(b, Heading):
                level = min(6, max(2, b.level))
                body.append(f"<h{level}>{html.escape(b.text)}</h{level}>")
            elif isinstance(b, Text):
                body.append(f"<p>{html.escape(b.text)}</p>")
            elif isinstance(b, Table):
                cap = f"<caption>{html.escape(b.caption)}</caption>" if b.caption else ""
                head = "".join(f"<th>{html.escape(c)}</th>" for c in b.columns)
                rows = "".join(
                    "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in b.rows
                )
                body.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif isinstance(b, Pre):
                body.append(f"<pre>{html.escape(b.text)}</pre>")
            elif isinstance(b, Image):
                data = base64.b64encode(b.png).decode("ascii")
                body.append(
                    f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(b.alt)}">'
                    f"<figcaption>{html.escape(b.alt)}</figcaption></figure>"
                )
        return _PAGE.format(title=html.escape(self.title), body="\n".join(body))


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1000px; margin: 2em auto;
       padding: 0 1em; color: #222; }}
h1 {{ border-bottom: 2px solid #ddd; padding-bottom: .3em; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 14px; }}
caption {{ text-align: left; font-style: italic; padding-bottom: .3em; }}
th, td {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
thead th {{ background: #f2f2f2; }}
tbody tr:nth-child(even) {{ background: #fafafa; }}
figure {{ margin: 1em 0; }}
img {{ max-width: 100%; height: auto; }}
figcaption {{ font-size: 13px; color: #555; }}
pre {{ background: #f6f6f6; border: 1px solid #ddd; padding: .6em; white-space: pre-wrap; font-size: 13px; }}
</style>
</head>
<body>
<h1>{title}</h1>
{body}
</body>
</html>
"""
