"""Windows event XML: Splunk's XmlWinEventLog (one <Event> per line) and `wevtutil qe /f:xml` exports
(events concatenated, optionally inside <Events>). Read in blocks; each <Event> parsed on its own."""

from __future__ import annotations

import re
from typing import Any, Iterator, TextIO

from .errors import error
from .flatten import from_xml

BLOCK = 1 << 20
MAX_EVENT = 16 << 20  # an <Event> without its end tag within this many characters is abandoned
START = re.compile(r"<Event[\s>]")
END = "</Event>"


def read_xml_events(stream: TextIO, source: str) -> Iterator[Any]:
    """Each <Event>...</Event> in turn. Linear in the input: the end tag is searched once over each character,
    and an <Event> left open for MAX_EVENT characters is reported once and skipped to the next end tag."""
    buf, line, number = "", 1, 0
    searched = 0  # buf[:searched] holds no end tag (buf starts at an open <Event>)
    opened = skipping = False
    while True:
        block = stream.read(BLOCK)
        buf += block
        while True:
            if not opened:
                match = START.search(buf)
                if match is None:
                    keep = buf[-8:]  # a start tag may straddle two blocks
                    line += buf.count("\n") - keep.count("\n")
                    buf = keep
                    break
                line += buf.count("\n", 0, match.start())
                buf, opened, searched = buf[match.start():], True, 0
            end = buf.find(END, searched)
            if end < 0:
                searched = max(0, len(buf) - len(END) + 1)
                if not skipping and len(buf) > MAX_EVENT:
                    yield error(source, f"line {line}: <Event> without </Event> within {MAX_EVENT >> 20} MiB of text: "
                                        "skipped to the next </Event>", partial=True)
                    skipping = True
                if skipping:  # drop what was searched, keep counting lines
                    line += buf.count("\n", 0, searched)
                    buf, searched = buf[searched:], 0
                break
            if skipping:
                skipping = False
            else:
                number += 1
                yield from _one(buf[:end + len(END)], source, number, line)
            line += buf.count("\n", 0, end)
            buf, opened = buf[end + len(END):], False
        if not block:
            if opened and not skipping:
                yield error(source, f"line {line}: file ends inside an <Event> (truncated)", partial=True)
            return


def _one(text: str, source: str, number: int, line: int) -> Iterator[Any]:
    try:
        yield from_xml(text)
    except Exception as exc:  # ParseError, ValueError: one bad event, the rest is read
        yield error(source, f"event {number} at line {line}: bad event XML ({exc})", partial=True)
