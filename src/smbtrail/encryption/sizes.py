"""Plaintext sizes of SMB2 messages, and a labeller that turns an encrypted size sequence back into operations.

Every encrypted SMB3 message carries its exact plaintext length (OriginalMessageSize). The sizes below are
the 64-byte SMB2 header plus each command's fixed body (MS-SMB2 StructureSize), checked on decrypted lab
captures (protocol.md section G). The labeller pairs each request with the next response (the clients this
targets wait for each answer), names the pair by its sizes, then groups pairs into tree connects, opens
(CREATE .. CLOSE) and, on pipes, DCE/RPC exchanges (request PDU size, response PDU size).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

HEADER = 64
TREE_CONNECT_REQ = HEADER + 8  # + 2 * len(UNC path)
TREE_CONNECT_RESP = HEADER + 16
CREATE_REQ = HEADER + 56  # + 2 * len(name), + create contexts
CREATE_RESP = HEADER + 88  # + create contexts
CLOSE_REQ = HEADER + 24
CLOSE_RESP = HEADER + 60
READ_REQ = HEADER + 49
READ_RESP = HEADER + 16  # + data
WRITE_REQ = HEADER + 48  # + data
WRITE_RESP = HEADER + 16
IOCTL_REQ = HEADER + 56  # + input (on a pipe: one DCE/RPC PDU)
IOCTL_RESP = HEADER + 48  # + output
QUERY_INFO_REQ = HEADER + 41
SET_INFO_REQ = HEADER + 32  # + info (97 = delete disposition)
QUERY_DIRECTORY_REQ = HEADER + 32  # + 2 * len(pattern)
QUERY_DIRECTORY_RESP = HEADER + 8  # + entries
ERROR_RESP = HEADER + 9
SMALL = HEADER + 4  # ECHO, LOGOFF, TREE_DISCONNECT, FLUSH response: request and response alike
BIND_MIN = 72  # DCE/RPC bind with one presentation context
BIND_ACK_MIN = 56  # bind_ack with one result and no secondary address
MAX_CONTEXTS = 512  # create contexts a client or server may add to CREATE


def tree_connect_request(unc: str) -> int:
    return TREE_CONNECT_REQ + 2 * len(unc)


def create_request(name: str, contexts: int = 0) -> int:
    return CREATE_REQ + 2 * len(name) + contexts


@dataclass
class Pair:
    """One request and its response, named by their sizes."""

    op: str  # tree_connect create close read write ioctl query_info set_info query_directory small unknown
    request: int
    response: int  # 0 when none was seen
    index: List[int]  # positions in the size list
    value: int = 0  # UNC length, name length, bytes written/read, request PDU size
    value2: int = 0  # response PDU size (ioctl)
    failed: bool = False


@dataclass
class Exchange:
    """One DCE/RPC request and response PDU on a pipe (sizes of the PDUs, 0 when not seen)."""

    request: int
    response: int
    index: List[int]


@dataclass
class Tree:
    unc_len: int
    index: List[int]
    share: str = ""  # best guess from the UNC length, "" when unknown


@dataclass
class Open:
    name_len: int
    tree: Optional[Tree]
    index: List[int]
    writes: List[int] = field(default_factory=list)
    reads: List[int] = field(default_factory=list)
    exchanges: List[Exchange] = field(default_factory=list)
    closed: bool = False
    listed: bool = False  # a directory listing preceded it on the same tree
    other: int = 0  # query/set info and similar pairs
    disposition: bool = False  # SET_INFO of the size of FileDispositionInformation (delete)
    transceive: bool = False  # RPC through IOCTL: an answer of CREATE size is then more likely an IOCTL's

    @property
    def is_pipe(self) -> bool:
        return bool(self.exchanges)

    @property
    def bytes_written(self) -> int:
        return sum(self.writes)

    @property
    def bytes_read(self) -> int:
        return sum(self.reads)


@dataclass
class Activity:
    pairs: List[Pair]
    trees: List[Tree]
    opens: List[Open]


def pair_up(sizes: Sequence[int]) -> List[Pair]:
    """Pair requests (+) with responses (-) in order; an interim 73-byte answer followed by another answer
    (STATUS_PENDING) is skipped. Sizes of server-initiated messages (oplock breaks) pair with nothing."""
    pairs: List[Pair] = []
    pending: List[int] = []
    for pos, size in enumerate(sizes):
        if size > 0:
            pending.append(pos)
            continue
        if -size == ERROR_RESP and pos + 1 < len(sizes) and sizes[pos + 1] < 0:
            continue  # interim response
        if not pending:
            continue
        req = pending.pop(0)
        pairs.append(_name(sizes[req], -size, [req, pos], _next_request(sizes, pos)))
    pairs.extend(_name(sizes[p], 0, [p], 0) for p in pending)
    pairs.sort(key=lambda p: p.index[0])
    return pairs


def _next_request(sizes: Sequence[int], pos: int) -> int:
    return next((s for s in sizes[pos + 1:] if s > 0), 0)


def _name(req: int, resp: int, index: List[int], next_req: int) -> Pair:
    failed = resp == ERROR_RESP
    if req == SMALL and resp in (SMALL, 0):
        return Pair("small", req, resp, index)
    if req == CLOSE_REQ and resp in (CLOSE_RESP, ERROR_RESP, 0):
        return Pair("close", req, resp, index, failed=failed)
    if req == READ_REQ:
        return Pair("read", req, resp, index, value=max(resp - READ_RESP, 0), failed=failed)
    if req in (QUERY_INFO_REQ, QUERY_INFO_REQ - 1):  # Windows leaves out the empty buffer's byte
        return Pair("query_info", req, resp, index, failed=failed)
    if resp == TREE_CONNECT_RESP or (failed and req < WRITE_REQ):
        if req < WRITE_REQ or (next_req != READ_REQ and req % 2 == 0 and req < 2 * WRITE_REQ):
            return Pair("tree_connect", req, resp, index, value=(req - TREE_CONNECT_REQ) // 2, failed=failed)
        return Pair("write", req, resp, index, value=req - WRITE_REQ, failed=failed)
    if req >= CREATE_REQ and CREATE_RESP <= resp <= CREATE_RESP + MAX_CONTEXTS and (resp - CREATE_RESP) % 8 == 0:
        return Pair("create", req, resp, index, value=(req - CREATE_REQ) // 2)
    if req >= IOCTL_REQ and resp > IOCTL_RESP:
        return Pair("ioctl", req, resp, index, value=req - IOCTL_REQ, value2=resp - IOCTL_RESP)
    if QUERY_DIRECTORY_REQ <= req < CREATE_REQ and (resp > QUERY_DIRECTORY_RESP or failed):
        return Pair("query_directory", req, resp, index, failed=failed)
    if req >= CREATE_REQ and failed:
        return Pair("create", req, resp, index, value=(req - CREATE_REQ) // 2, failed=True)
    if req >= SET_INFO_REQ and resp in (HEADER + 2, ERROR_RESP):
        return Pair("set_info", req, resp, index, failed=failed)
    return Pair("unknown", req, resp, index, failed=failed)


def structure(sizes: Sequence[int], host_lengths: Sequence[int] = ()) -> Activity:
    """Trees, opens and RPC exchanges from one burst's signed size sequence."""
    pairs = pair_up(sizes)
    trees: List[Tree] = []
    tree_stack: List[Tree] = []
    opens: List[Open] = []
    stack: List[Open] = []
    listed = False
    for pair in pairs:
        if pair.op == "create" and stack and pair.response != CREATE_RESP:
            _rename(pair, stack[-1])
        if pair.op == "tree_connect" and not pair.failed:
            tree = Tree(pair.value, pair.index)
            trees.append(tree)
            tree_stack.append(tree)
        elif pair.op == "small" and tree_stack:
            tree_stack.pop()  # most likely the TREE_DISCONNECT of the last tree
        elif pair.op == "query_directory":
            listed = True
        elif pair.op == "create" and not pair.failed:
            current = Open(pair.value, tree_stack[-1] if tree_stack else None, list(pair.index), listed=listed)
            listed = False
            opens.append(current)
            stack.append(current)
        elif pair.op == "close" and stack:
            done = stack.pop()
            done.closed = True
            done.index += pair.index
        elif stack:
            _add_io(stack[-1], pair)
    _name_shares(trees, host_lengths)
    for opened in opens:
        _exchanges(opened)
        if opened.exchanges and opened.tree is not None and not opened.tree.share:
            opened.tree.share = "IPC$"  # an RPC bind answered: a named pipe, and pipes live on IPC$
    return Activity(pairs, trees, opens)


def _rename(pair: Pair, top: Open) -> None:
    """A CREATE-sized pair inside an open pipe (bind answered) is an IOCTL transceive; inside an open share root
    (smbclient, impacket) it is a directory listing with a long search pattern."""
    if top.transceive or (top.exchanges and top.exchanges[0].response):
        pair.op, pair.value, pair.value2 = "ioctl", pair.request - IOCTL_REQ, pair.response - IOCTL_RESP
    elif top.name_len == 0 and not top.writes and not top.reads:
        pair.op, pair.value = "query_directory", 0


def _add_io(target: Open, pair: Pair) -> None:
    target.index += pair.index
    if pair.op == "write":
        target.writes.append(pair.value)
        target.exchanges.append(Exchange(pair.value, 0, list(pair.index)))
    elif pair.op == "read":
        target.reads.append(pair.value)
        if target.exchanges and not target.exchanges[-1].response and pair.value:
            target.exchanges[-1].response = pair.value
            target.exchanges[-1].index += pair.index
    elif pair.op == "ioctl":
        target.transceive = True
        target.exchanges.append(Exchange(pair.value, pair.value2, list(pair.index)))
    elif pair.op == "set_info" and pair.request == SET_INFO_REQ + 1:
        target.disposition = True
    else:
        target.other += 1


def _exchanges(opened: Open) -> None:
    """A file upload is writes without answers; a pipe is request/response PDUs (or IOCTL transceives)."""
    answered = sum(1 for e in opened.exchanges if e.response)
    first = opened.exchanges[0] if opened.exchanges else None
    if first is None or first.request < BIND_MIN or first.response < BIND_ACK_MIN:
        opened.exchanges = []  # no bind: an upload, or an FSCTL on a file
    elif answered * 2 < len(opened.exchanges) - 1:
        opened.exchanges = []


SHARE_GUESSES = {4: "IPC$", 6: "ADMIN$", 2: "C$"}


def _name_shares(trees: List[Tree], host_lengths: Sequence[int]) -> None:
    """UNC = \\\\host\\share: with the length of the name the client typed, the share length follows. A client
    may type the address for one share and the name for another: each tree takes the share that one of the
    server's name lengths gives it (the one most trees fit first, else the only one that fits)."""
    host = _host_length(trees, host_lengths)
    for tree in trees:
        tree.share = SHARE_GUESSES.get(tree.unc_len - 3 - host, "") if host is not None else ""
        fits = {SHARE_GUESSES[tree.unc_len - 3 - h] for h in host_lengths if tree.unc_len - 3 - h in SHARE_GUESSES}
        if not tree.share and len(fits) == 1:
            tree.share = fits.pop()


def _host_length(trees: List[Tree], host_lengths: Sequence[int]) -> Optional[int]:
    if not trees:
        return None
    best, best_hits = None, 0
    for host in host_lengths:
        hits = sum(1 for t in trees if t.unc_len - 3 - host in SHARE_GUESSES)
        if hits > best_hits:
            best, best_hits = host, hits
    if best is None:  # the name typed is unknown: the host length that explains two or more tree connects
        guesses = {t.unc_len - 3 - len(share) for t in trees for share in SHARE_GUESSES.values()}
        scored = [(sum(1 for t in trees if t.unc_len - 3 - h in SHARE_GUESSES), h) for h in guesses if h > 0]
        hits, host = max(scored, default=(0, 0))
        best = host if hits >= 2 and [n for n, _ in scored].count(hits) == 1 else None
    return best
