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
    buf, line, number = "", 1, 0
    while True:
        block = stream.read(BLOCK)
        buf += block
        while True:
            match = START.search(buf)
            if match is None:
                line += buf.count("\n")
                buf = buf[-8:]  # a start tag may straddle two blocks
                line -= buf.count("\n")
                break
            line += buf.count("\n", 0, match.start())
            buf = buf[match.start():]
            end = buf.find(END)
            if end < 0:
                if len(buf) > MAX_EVENT:
                    yield error(source, f"line {line}: <Event> without </Event>", partial=True)
                    buf = buf[1:]
                    continue
                break
            number += 1
            yield from _one(buf[:end + len(END)], source, number, line)
            line += buf.count("\n", 0, end)
            buf = buf[end + len(END):]
        if not block:
            if START.search(buf):
                yield error(source, f"line {line}: file ends inside an <Event> (truncated)", partial=True)
            return


def _one(text: str, source: str, number: int, line: int) -> Iterator[Any]:
    try:
        yield from_xml(text)
    except Exception as exc:  # ParseError, ValueError: one bad event, the rest is read
        yield error(source, f"event {number} at line {line}: bad event XML ({exc})", partial=True)
