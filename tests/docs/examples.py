"""The code blocks and command lines of the project's docs, read the way a reader copies them:
continuation lines joined, trailing comments dropped, a heredoc kept with its command."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "docs/extending.md", "deploy/README.md")
_FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass(frozen=True)
class Block:
    doc: str
    line: int  # of the opening fence
    lang: str
    text: str


@dataclass(frozen=True)
class Command:
    doc: str
    line: int
    text: str


def blocks(doc: str) -> list[Block]:
    """Every fenced block of ``doc`` (a path relative to the repository root)."""
    out, lang, start, body = [], None, 0, []
    for n, line in enumerate((ROOT / doc).read_text().splitlines(), 1):
        m = _FENCE.match(line)
        if lang is None and m:
            lang, start, body = m.group(1), n, []
        elif lang is not None and line.strip() == "```":
            out.append(Block(doc, start, lang, "\n".join(body)))
            lang = None
        elif lang is not None:
            body.append(line)
    return out


def _strip_comment(line: str) -> str:
    """Shell text before an unquoted `#` that starts a word."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def commands(block: Block) -> list[Command]:
    """The command lines of a bash block, in order."""
    out: list[Command] = []
    lines = block.text.splitlines()
    i = 0
    while i < len(lines):
        n, line = block.line + 1 + i, _strip_comment(lines[i])
        i += 1
        if not line.strip():
            continue
        while line.endswith("\\") and i < len(lines):
            line = line[:-1].rstrip() + " " + _strip_comment(lines[i]).strip()
            i += 1
        heredoc = re.search(r"<<-?'?(\w+)'?", line)
        if heredoc:  # the document up to its terminator belongs to this command
            body = []
            while i < len(lines) and lines[i].strip() != heredoc.group(1):
                body.append(lines[i])
                i += 1
            i += 1
            line = "\n".join([line, *body, heredoc.group(1)])
        out.append(Command(block.doc, n, line.strip()))
    return out


def all_commands() -> list[Command]:
    return [c for doc in DOCS for b in blocks(doc) if b.lang == "bash" for c in commands(b)]
