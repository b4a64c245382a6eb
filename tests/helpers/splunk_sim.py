"""What the tests need of Splunk, done the way Splunk does it (no Splunk server can run here):

- `.conf` files read as Splunk reads them (stanzas, `key = value`, `\\` line continuations, comments);
- search macros expanded (with arguments), recursively, as the search parser does before running;
- a search split into its pipeline at the top-level `|` (not inside quotes or subsearches);
- the base-search language the app's searches use, evaluated on events: `field=value` (case-insensitive,
  `*` wildcards, any value of a multivalue field), `!=`, `IN (...)`, `NOT`, `OR`, implicit and
  explicit `AND`, parentheses; time modifiers and subsearches are noted and taken as true (the tests
  give every event the same index-time window);
- search-time JSON extraction as `KV_MODE = json` does it (`a.b`, arrays as `a{}` multivalue fields);
- the modular-input event stream (XML) read back into events, the chunked protocol's CSV rows;
- a reporting command run as splunkd runs it: getinfo, its streaming preop on each search peer (the
  rows cut to the preop's required fields, as selected-fields mode extracts only those), the peers'
  output merged into the reduce on the search head, in chunks.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

TIME_MODIFIERS = {"earliest", "latest", "_index_earliest", "_index_latest"}


# --- .conf ----------------------------------------------------------------------------------------

def read_conf(path: Path) -> Dict[str, Dict[str, str]]:
    stanzas: Dict[str, Dict[str, str]] = {"default": {}}
    current = stanzas["default"]
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        while line.endswith("\\") and index + 1 < len(lines):  # continuation: the newline is kept out
            index += 1
            line = line[:-1] + "\n" + lines[index]
        index += 1
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            current = stanzas.setdefault(stripped[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        if sep:
            current[key.strip()] = value.strip()
    return stanzas


# --- macros ---------------------------------------------------------------------------------------

MACRO = re.compile(r"`([A-Za-z0-9_]+)(?:\(([^`]*)\))?`")


class Macros:
    def __init__(self, conf: Dict[str, Dict[str, str]]):
        self.defs: Dict[Tuple[str, int], Tuple[List[str], str]] = {}
        for stanza, settings in conf.items():
            if "definition" not in settings:
                continue
            name, _, rest = stanza.partition("(")
            count = int(rest.rstrip(")")) if rest else 0
            args = [a.strip() for a in settings.get("args", "").split(",") if a.strip()]
            self.defs[(name, count)] = (args, settings["definition"])

    def names(self) -> List[str]:
        return sorted({name for name, _ in self.defs})

    def expand(self, search: str, depth: int = 0) -> str:
        if depth > 20:
            raise ValueError(f"macro recursion: {search[:200]}")
        expanded = MACRO.sub(self._replace, search)
        return expanded if expanded == search else self.expand(expanded, depth + 1)

    def _replace(self, match: re.Match[str]) -> str:
        name, args_text = match.group(1), match.group(2)
        args = split_args(args_text) if args_text is not None else []
        key = (name, len(args))
        if key not in self.defs:
            raise KeyError(f"macro `{match.group(0)}` is not defined")
        params, body = self.defs[key]
        for param, value in zip(params, args):
            body = body.replace(f"${param}$", value)
        return body


def split_args(text: str) -> List[str]:
    """Macro arguments: commas outside quotes and parentheses separate them."""
    return split_top_level(text, ",", "(", ")")


def split_top_level(text: str, sep: str, opens: str, closes: str) -> List[str]:
    """`text` split at `sep` outside double quotes (backslash escapes) and brackets (`opens`/`closes`)."""
    parts, depth, quote, current, escaped = [], 0, False, "", False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quote = not quote
        elif not quote and char in opens:
            depth += 1
        elif not quote and char in closes:
            depth -= 1
        elif not quote and depth == 0 and char == sep:
            parts.append(current.strip())
            current = ""
            continue
        current += char
    parts.append(current.strip())
    return parts


# --- pipeline -------------------------------------------------------------------------------------

def split_pipeline(search: str) -> List[str]:
    """The commands of a search, split at `|` outside quotes and subsearch brackets."""
    return split_top_level(search, "|", "[", "]")


# --- the base-search language ---------------------------------------------------------------------

@dataclass
class Cmp:
    field: str
    op: str  # "=", "!=", "in"
    values: List[str]


@dataclass
class Term:
    text: str  # a bare word or phrase: matched against _raw


@dataclass
class Bool:
    op: str  # "and", "or", "not"
    items: List[Expr] = field(default_factory=list)


@dataclass
class Always:
    why: str  # a time modifier or a subsearch: true for the test's single window


Expr = Union[Cmp, Term, Bool, Always]
TOKEN = re.compile(r'\s*(?:(?P<q>"(?:[^"\\]|\\.)*")|(?P<op>!=|<=|>=|=|<|>)|(?P<p>[()])|(?P<sub>\[)|(?P<w>[^\s()=!<>"\[]+))')


def tokenize(text: str) -> List[Tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = TOKEN.match(text, pos)
        if not match:
            raise ValueError(f"cannot read search at: {text[pos:pos + 60]!r}")
        if match.group("sub"):
            end = _closing_bracket(text, match.start("sub"))
            tokens.append(("sub", text[match.start("sub") + 1:end]))
            pos = end + 1
            continue
        kind = next(k for k in ("q", "op", "p", "w") if match.group(k) is not None)
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def _closing_bracket(text: str, start: int) -> int:
    depth, quote = 0, False
    for index in range(start, len(text)):
        char = text[index]
        if char == '"' and text[index - 1] != "\\":
            quote = not quote
        elif not quote and char == "[":
            depth += 1
        elif not quote and char == "]":
            depth -= 1
            if depth == 0:
                return index
    raise ValueError("unbalanced [ in search")


class Parser:
    def __init__(self, text: str):
        self.tokens = tokenize(text)
        self.pos = 0
        self.subsearches: List[str] = []

    def parse(self) -> Expr:
        expr = self._and()
        if self.pos != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.pos]}")
        return expr

    def _peek(self, offset: int = 0) -> Optional[Tuple[str, str]]:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def _and(self) -> Expr:
        items = [self._or()]
        while self._peek() and self._peek() != ("p", ")"):
            if self._peek() == ("w", "AND"):
                self.pos += 1
            items.append(self._or())
        return items[0] if len(items) == 1 else Bool("and", items)

    def _or(self) -> Expr:
        items = [self._not()]
        while self._peek() == ("w", "OR"):
            self.pos += 1
            items.append(self._not())
        return items[0] if len(items) == 1 else Bool("or", items)

    def _not(self) -> Expr:
        if self._peek() == ("w", "NOT"):
            self.pos += 1
            return Bool("not", [self._not()])
        return self._atom()

    def _atom(self) -> Expr:
        kind, value = self.tokens[self.pos]
        self.pos += 1
        if (kind, value) == ("p", "("):
            inner = self._and()
            if self._peek() != ("p", ")"):
                raise ValueError("missing )")
            self.pos += 1
            return inner
        if kind == "sub":
            self.subsearches.append(value.strip())
            return Always("subsearch")
        nxt = self._peek()
        if kind == "w" and nxt and nxt[0] == "op":
            self.pos += 1
            _, raw = self.tokens[self.pos]
            self.pos += 1
            if value in TIME_MODIFIERS:
                return Always(value)
            return Cmp(value, "=" if nxt[1] == "=" else nxt[1], [_unquote(raw)])
        if kind == "w" and nxt == ("w", "IN") and self._peek(1) == ("p", "("):
            self.pos += 2
            values = []
            while self._peek() != ("p", ")"):
                _, raw = self.tokens[self.pos]
                self.pos += 1
                values.extend(v for v in (x.strip() for x in _unquote(raw).split(",")) if v)
            self.pos += 1
            return Cmp(value, "in", values)
        return Term(_unquote(value))


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return re.sub(r"\\(.)", r"\1", raw[1:-1])
    return raw.rstrip(",")


def _like(pattern: str, value: str) -> bool:
    regex = "^" + ".*".join(re.escape(p) for p in pattern.lower().split("*")) + "$"
    return re.match(regex, value.lower(), re.S) is not None


def evaluate(expr: Expr, event: Event) -> bool:
    if isinstance(expr, Always):
        return True
    if isinstance(expr, Term):
        return expr.text == "*" or expr.text.lower().strip("*") in event.raw.lower()
    if isinstance(expr, Bool):
        if expr.op == "not":
            return not evaluate(expr.items[0], event)
        results = (evaluate(item, event) for item in expr.items)
        return all(results) if expr.op == "and" else any(results)
    values = event.values(expr.field)
    if expr.op in ("=", "in"):
        return any(_like(p, v) for p in expr.values for v in values)
    if expr.op == "!=":
        return bool(values) and not any(_like(p, v) for p in expr.values for v in values)
    raise ValueError(f"operator {expr.op} not supported here")


def fields_of(expr: Expr) -> List[str]:
    if isinstance(expr, Cmp):
        return [expr.field]
    if isinstance(expr, Bool):
        return [f for item in expr.items for f in fields_of(item)]
    return []


# --- events ---------------------------------------------------------------------------------------

@dataclass
class Event:
    raw: str
    meta: Dict[str, str]  # index, sourcetype, source, host, _time
    fields: Dict[str, List[str]] = field(default_factory=dict)

    def values(self, name: str) -> List[str]:
        if name in self.meta:
            return [self.meta[name]]
        return self.fields.get(name, [])

    def row(self, extra: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
        """The event as a result row handed to a search command."""
        row: Dict[str, Any] = {"_raw": self.raw, **self.meta}
        for name, values in self.fields.items():
            row.setdefault(name, values if len(values) > 1 else values[0])
        row.update(extra or {})
        return row


def json_fields(raw: str) -> Dict[str, List[str]]:
    """Search-time fields of a JSON event as KV_MODE = json extracts them."""
    out: Dict[str, List[str]] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}" if path else key)
        elif isinstance(value, list):
            for item in value:
                walk(item, f"{path}{{}}")
        else:  # JSON null is extracted as the text "null"
            text = {None: "null", True: "true", False: "false"}.get(value, str(value)) \
                if value is None or isinstance(value, bool) else str(value)
            out.setdefault(path, []).append(text)

    try:
        walk(json.loads(raw), "")
    except ValueError:
        pass
    return out


def events_from_stream(xml_text: bytes) -> List[Event]:
    """Events of a modular input's XML stream, with search-time JSON fields extracted."""
    root = ET.fromstring(xml_text)
    found = []
    for node in root.iter("event"):
        meta = {name: (node.findtext(name) or "") for name in ("index", "sourcetype", "source", "host")}
        meta["_time"] = node.findtext("time") or ""
        raw = node.findtext("data") or ""
        found.append(Event(raw, {k: v for k, v in meta.items() if v}, json_fields(raw)))
    return found


def run_input(stage: Path, scheme: str, pattern: str, workdir: Path, python: str = sys.executable) -> List[Event]:
    """One run of a packaged modular input, as splunkd starts it: the input definition on stdin, only
    the package's own libraries (-S), events read back from its XML stream."""
    definition = (
        "<input><server_host>ci</server_host><server_uri>https://127.0.0.1:8089</server_uri>"
        f"<session_key>none</session_key><checkpoint_dir>{workdir / 'ckpt' / scheme}</checkpoint_dir>"
        f'<configuration><stanza name="{scheme}://test" app="smbtrail"><param name="path">{pattern}</param>'
        '<param name="settle_seconds">0</param><param name="index">main</param>'
        "</stanza></configuration></input>")
    done = subprocess.run([python, "-S", str(stage / "bin" / f"{scheme}.py")], input=definition.encode(),
                          capture_output=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return events_from_stream(done.stdout)


def search_events(base: str, events: List[Event]) -> Iterator[Event]:
    expr = Parser(base).parse()
    return (e for e in events if evaluate(expr, e))


# --- chunked protocol -----------------------------------------------------------------------------

def frame(meta: Dict[str, Any], body: str = "") -> bytes:
    meta_bytes, body_bytes = json.dumps(meta).encode(), body.encode()
    return b"chunked 1.0,%d,%d\n" % (len(meta_bytes), len(body_bytes)) + meta_bytes + body_bytes


def to_csv(rows: List[Dict[str, Any]]) -> str:
    """Rows as splunkd sends them: a value column plus __mv_<field> for multivalue fields."""
    names: List[str] = []
    for row in rows:
        names.extend(k for k in row if k not in names)
    header = []
    for name in names:
        header += [name, f"__mv_{name}"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        line = []
        for name in names:
            value = row.get(name)
            if isinstance(value, list):
                line += ["\n".join(value), ";".join("$" + v.replace("$", "$$") + "$" for v in value)]
            else:
                line += ["" if value is None else str(value), ""]
        writer.writerow(line)
    return out.getvalue()


def read_frames(data: bytes) -> Iterator[Tuple[Dict[str, Any], str]]:
    stream = io.BytesIO(data)
    while True:
        header = stream.readline()
        if not header:
            return
        _, meta_len, body_len = header.decode().strip().split(",")
        meta = json.loads(stream.read(int(meta_len)))
        yield meta, stream.read(int(body_len)).decode()


def getinfo(dispatch_dir: Path, args: List[str]) -> bytes:
    info = {"args": args, "raw_args": args, "dispatch_dir": str(dispatch_dir), "sid": "1700000000.1",
            "app": "smbtrail", "owner": "admin", "username": "admin", "session_key": "none",
            "splunkd_uri": "https://127.0.0.1:8089", "splunk_version": "9.1.2", "search": "%7C%20smbtrailfuse",
            "command": "smbtrailfuse", "maxresultrows": 50000, "earliest_time": "0", "latest_time": "0"}
    return frame({"action": "getinfo", "preview": False, "streaming_command_will_restart": False, "searchinfo": info})


def run_chunked(command: List[str], workdir: Path, args: List[str], chunks: List[List[Dict[str, Any]]],
                timeout: int = 900) -> Tuple[int, List[Tuple[Dict[str, Any], str]], str]:
    """One process of a chunked command: getinfo, one execute frame per chunk (the last finished)."""
    data = getinfo(workdir, args)
    for number, rows in enumerate(chunks):
        data += frame({"action": "execute", "finished": number == len(chunks) - 1}, to_csv(rows) if rows else "")
    done = subprocess.run(command, input=data, capture_output=True, timeout=timeout)
    return done.returncode, list(read_frames(done.stdout)), done.stderr.decode(errors="replace")


@dataclass
class Dispatch:
    """A reporting command's run: the reduce's reply frames, the preop's getinfo and its output rows."""
    code: int
    frames: List[Tuple[Dict[str, Any], str]]
    preop: Dict[str, Any]
    mapped: List[Dict[str, Any]]
    stderr: str


def dispatch_reporting(command: List[str], workdir: Path, args: List[str], rows: List[Dict[str, Any]],
                       chunk: int = 10000, peers: int = 2) -> Dispatch:
    """A reporting command as splunkd runs it: getinfo names its streaming preop; the preop runs on each
    search peer over that peer's events (round robin by chunk), given only the fields it requires;
    the reduce gets what the peers wrote, a chunk from each in turn, the last one finished."""
    code, frames, err = run_chunked(command, workdir, args, [])
    info = frames[0][0] if frames else {}
    preop = info.get("streaming_preop")
    if code != 0 or not preop:
        return Dispatch(code, frames, {}, [], err)
    _, *map_args = shlex.split(preop)
    code, frames, err = run_chunked(command, workdir, map_args, [])
    map_info = frames[0][0] if frames else {}
    if code != 0:
        return Dispatch(code, frames, map_info, [], err)
    cut = [rows[i:i + chunk] for i in range(0, len(rows), chunk)]
    outputs = []
    for peer in range(peers):
        mine = [_selected(r, map_info.get("required_fields")) for c in cut[peer::peers] for r in c]
        pieces = [mine[i:i + chunk] for i in range(0, len(mine), chunk)] or [[]]
        code, frames, err = run_chunked(command, workdir, map_args, pieces)
        if code != 0:
            return Dispatch(code, frames, map_info, [], err)
        outputs.append([_row(r) for r in result_rows(frames)])
    mapped = [r for piece in _interleaved(outputs, chunk) for r in piece]
    pieces = [mapped[i:i + chunk] for i in range(0, len(mapped), chunk)] or [[]]
    code, frames, err = run_chunked(command, workdir, args, pieces)
    return Dispatch(code, frames, map_info, mapped, err)


def _selected(row: Dict[str, Any], required: Optional[List[str]]) -> Dict[str, Any]:
    return row if not required else {k: v for k, v in row.items() if k in required}


def _row(csv_row: Dict[str, str]) -> Dict[str, Any]:
    """A reply row as the next command gets it: multivalue columns folded, empty values absent."""
    return {k: v for k, v in csv_row.items() if not k.startswith("__mv_") and v != ""}


def _interleaved(outputs: List[List[Dict[str, Any]]], chunk: int) -> Iterator[List[Dict[str, Any]]]:
    pieces = [[rows[i:i + chunk] for i in range(0, len(rows), chunk)] for rows in outputs]
    for turn in range(max((len(p) for p in pieces), default=0)):
        for peer in pieces:
            if turn < len(peer):
                yield peer[turn]


def result_rows(frames: List[Tuple[Dict[str, Any], str]]) -> List[Dict[str, str]]:
    rows = []
    for _, body in frames[1:]:
        if body:
            rows.extend(dict(r) for r in csv.DictReader(io.StringIO(body)))
    return rows


# --- what a search reads: the fields, sourcetypes and sources it names ----------------------------

FUNCTION_WORDS = {"AND", "OR", "NOT", "XOR", "LIKE", "IN", "true", "false", "null", "by", "BY", "AS", "as"}
AGGREGATING = {"stats", "timechart", "chart", "eventstats", "streamstats"}
IDENT = re.compile(r"'([^']+)'|([A-Za-z_][A-Za-z0-9_{}]*)(\s*\()?")  # in eval, "." concatenates


@dataclass
class Reads:
    fields: List[Tuple[str, str]] = field(default_factory=list)  # (field, the command that reads it)
    sourcetypes: List[str] = field(default_factory=list)
    sources: List[str] = field(default_factory=list)


def _strip_strings(text: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)


def expression_fields(expr: str) -> List[str]:
    """Field names an eval/where expression reads (functions, keywords and string literals left out)."""
    names = []
    for match in IDENT.finditer(_strip_strings(expr)):
        quoted, bare, call = match.groups()
        if quoted:
            names.append(quoted)
        elif bare and not call and bare not in FUNCTION_WORDS and not re.fullmatch(r"\d[\w.]*", bare):
            names.append(bare)
    return names


def _top_level(text: str) -> List[str]:
    return [p for p in split_top_level(text, ",", "([", ")]") if p]


def _aggregation(args: str) -> Tuple[List[str], List[str]]:
    """(fields read, fields made) of a stats-like command's arguments."""
    split = re.search(r"\s(?:by|BY)\s", args)
    body, by = (args[:split.start()], args[split.end():]) if split else (args, "")
    reads, made = [], []
    for function, inner, alias in _calls(body):
        if "=" in function or function in ("time_window", "limit", "span") or (not inner and not alias
                                                                               and function != "count"):
            continue
        content = inner[1:-1] if inner else ""
        reads.extend(expression_fields(content[5:-1]) if content.startswith("eval(") else
                     ([content] if content else []))
        made.append(alias or (f"{function}({content})" if content else function))
    by_fields = [f for f in re.split(r"[\s,]+", by.strip()) if f and "=" not in f]
    return reads + by_fields, made + by_fields


def _calls(body: str) -> List[Tuple[str, str, str]]:
    """(name, "(arguments)" or "", alias) of each `name[(...)] [AS alias]` of an aggregation."""
    found, pos = [], 0
    while True:
        match = re.compile(r"\s*([\w=]+)").match(body, pos)
        if not match:
            return found
        name, pos, inner = match.group(1), match.end(), ""
        if pos < len(body) and body[pos] == "(":
            depth, end = 0, pos
            for end in range(pos, len(body)):
                depth += {"(": 1, ")": -1}.get(body[end], 0)
                if depth == 0:
                    break
            inner, pos = body[pos:end + 1], end + 1
        alias = re.compile(r"\s+(?:AS|as)\s+(\w+)").match(body, pos)
        if alias:
            pos = alias.end()
        found.append((name, inner, alias.group(1) if alias else ""))


def _options_removed(args: str) -> str:
    return re.sub(r'\b\w+=("(?:[^"\\]|\\.)*"|\S+)', "", args)


def search_reads(search: str, known: Optional[set] = None) -> Reads:
    """What a whole (macro-expanded) search reads, command by command: a field counts as read unless an
    earlier command of the same search made it."""
    reads, made = Reads(), set(known or ())
    for index, part in enumerate(split_pipeline(search)):
        if not part:
            continue
        name, _, args = part.partition(" ")
        if index == 0 or name == "search":
            expr_text = args if name == "search" and index else part
            parser = Parser(expr_text)
            expr = parser.parse()
            for sub in parser.subsearches:
                _merge(reads, search_reads(re.sub(r"^search\s+", "", sub)))
            _base_reads(expr, reads, made, part)
            continue
        _command_reads(name, args, reads, made, part)
    return reads


def _merge(into: Reads, other: Reads) -> None:
    into.fields += other.fields
    into.sourcetypes += other.sourcetypes
    into.sources += other.sources


def _base_reads(expr: Expr, reads: Reads, made: set, where: str) -> None:
    if isinstance(expr, Cmp):
        if expr.field == "sourcetype":
            reads.sourcetypes += expr.values
        elif expr.field == "source":
            reads.sources += expr.values
        if expr.field not in made:
            reads.fields.append((expr.field, where))
    elif isinstance(expr, Bool):
        for item in expr.items:
            _base_reads(item, reads, made, where)


def _read(reads: Reads, made: set, names: List[str], where: str) -> None:
    reads.fields += [(n, where) for n in names if n not in made and n != "*"]


def _command_reads(name: str, args: str, reads: Reads, made: set, where: str) -> None:
    if name == "eval":
        for assignment in _top_level(args):
            target, _, expr = assignment.partition("=")
            _read(reads, made, expression_fields(expr), where)
            made.add(target.strip())
    elif name == "where":
        _read(reads, made, expression_fields(args), where)
    elif name in AGGREGATING:
        used, produced = _aggregation(args)
        _read(reads, made, used, where)
        if name in ("stats", "timechart", "chart"):
            made.clear()
            made.update(["_time"] if name == "timechart" else [])
        made.update(produced)
    elif name in ("table", "fields", "dedup", "sort", "mvexpand", "fillnull", "reverse", "head", "bin"):
        names = [n for n in re.split(r"[\s,]+", _options_removed(args).replace("sortby", " "))
                 if n and n not in ("-", "+", "0") and not n.isdigit()]
        names = [n.lstrip("-+") for n in names]
        if name == "fillnull":
            made.update(names)
        else:
            _read(reads, made, names if not args.strip().startswith("-") or name != "fields" else [], where)
    elif name == "rename":
        for old, new in re.findall(r"(\S+)\s+(?:AS|as)\s+(\S+)", args):
            _read(reads, made, [old.strip("'\"")], where)
            made.add(new.strip("'\","))
    elif name == "spath":
        options = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', args))
        if "input" in options:
            _read(reads, made, [options["input"]], where)
        made.add(options.get("output", options.get("path", "")))
    elif name == "convert":
        _read(reads, made, re.findall(r"\w+\((\w+)\)", args), where)
    elif name == "multisearch":
        for sub in re.findall(r"\[\s*search (.*?)\s*\](?=\s*\[|\s*$)", args):
            _merge(reads, search_reads(sub))
            made.update(re.findall(r"\|\s*eval\s+(\w+)=", sub))
    elif name == "makeresults":
        made.add("_time")
    elif name == "tstats":  # what it reads is the data model's (datamodel_reads): checked against the model
        use = tstats_use(args)
        if not use.prestats:
            made.clear()
        made.update(use.made + (use.fields + ["_time"] if use.prestats else []))
    # return, collect, smbtrailfuse and other commands read what they need themselves: see the tests


# --- tstats over a data model -------------------------------------------------------------------------

@dataclass
class TstatsUse:
    datamodel: str  # "<model>.<root dataset>"
    fields: List[str]  # "<dataset>.<field>" the search names (functions, where, by)
    nodes: List[str]  # nodename= values: the dataset lineages it restricts to
    made: List[str]  # the result's columns
    prestats: bool


def tstats_use(args: str) -> TstatsUse:
    """What `| tstats <functions> from datamodel=<model>.<dataset> [where ...] [by ...]` reads and makes."""
    options = dict(re.findall(r"^\s*(\w+)=(\S+)", args))
    body = re.sub(r"^(\s*\w+=\S+\s+)+", "", args)
    match = re.search(r"\s+from\s+datamodel=(\S+)", body)
    if not match:
        raise ValueError(f"tstats without a data model: {args[:120]}")
    functions, rest = body[:match.start()], body[match.end():]
    split = re.search(r"\s(?:by|BY)\s", rest)
    where, by = (rest[:split.start()], rest[split.end():]) if split else (rest, "")
    by = re.sub(r"\bspan=\S+", "", by)
    reads, made = _aggregation(functions + (" by " + by if by.strip() else ""))
    named = [f for f in reads if "." in f] + re.findall(r"(\w+\.\w+)\s*=", where)
    nodes = re.findall(r"nodename=([\w.]+)", where)
    return TstatsUse(match.group(1), sorted(set(named)), nodes, made,
                     options.get("prestats", "f").lower() in ("t", "true", "1"))
