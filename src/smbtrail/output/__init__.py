"""Record writers: jsonl for machines, table for people (html lives in output/html.py).

Captured strings and file names are attacker-controlled and need not be valid text: every writer shows
control characters escaped and the undecodable bytes of a file name (lone surrogates) as `\\xNN`, so no
name can end a writer, forge an output line, or reach a terminal as an escape sequence.
"""

from __future__ import annotations

import re
from typing import Optional

# DEL and C1 controls (json escapes C0), the Unicode line separators (a reader splitting lines on them would cut
# a record in two), lone surrogates
UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def surrogate_text(ch: str) -> str:
    """`\\xNN` for a byte that a file name's decoding could not read (surrogateescape), else `\\uNNNN`."""
    code = ord(ch)
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def printable(value: object, limit: Optional[int] = None) -> str:
    """The text with every non-printable character (controls, escapes, lone surrogates) shown escaped."""
    text = str(value)
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else
                       surrogate_text(ch) if "\ud800" <= ch <= "\udfff" else repr(ch)[1:-1] for ch in text)
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def json_text(line: str) -> str:
    """A JSON text (dumped with ensure_ascii=False) made valid UTF-8 and inert on a terminal: lone surrogates
    become the text `\\xNN`, DEL, C1 controls and U+2028/U+2029 JSON escapes."""
    if (line.isascii() and "\x7f" not in line) or UNSAFE_IN_JSON.search(line) is None:
        return line  # (isascii costs nothing: the string knows; DEL is the one unsafe ASCII character)
    return UNSAFE_IN_JSON.sub(_json_escape, line)


def _json_escape(match: re.Match[str]) -> str:
    ch = match.group()
    return "\\" + surrogate_text(ch) if "\ud800" <= ch <= "\udfff" else f"\\u{ord(ch):04x}"
