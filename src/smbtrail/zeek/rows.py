"""One Zeek log row -> the network records a capture gives for the same traffic, minus what Zeek does
not log.

A row is a dict by Zeek's own field names (`ts`, `uid`, `id.orig_h`, `endpoint`, ...) with values as
text (TSV) or typed (JSON, Splunk); the file reader and the Splunk adapter both give that. Records
carry evidence `zeek` beside `network`, what only Zeek has in `args.zeek` (the connection's `uid`, to
pivot back to the logs; `rtt`, `named_pipe`, `share_type`, ...) and `args.absent`: what a capture
would have given and Zeek's log does not (the arguments of every RPC call above all). What a row
alone cannot say (the account of its connection, the share of a pipe open) is filled in later, per
connection (`zeek.connections`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Mapping, Optional

from ..records import FILE, OPERATION, SESSION, TREE, Provenance, Record, from_epoch
from . import names

SMB_PORTS = (139, 445)
RPC_PORTS = (135,) + SMB_PORTS
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
UNSET = ("", "-", "(empty)", None)
# what a capture of the same traffic would add, per log
ABSENT = {
    "dce_rpc": ["arguments", "status"],
    "smb_files": ["access", "status"],
    "smb_mapping": ["share_flags"],
    "ntlm": ["dialect"],
    "kerberos": [],
    "conn": [],
    "files": ["access", "status"],
}
FILE_ACTIONS = {"FILE_OPEN": "open", "FILE_READ": "read", "FILE_WRITE": "write", "FILE_DELETE": "delete",
                "FILE_RENAME": "rename", "FILE_CLOSE": "close", "PIPE_OPEN": "pipe_open", "PIPE_READ": "pipe_open",
                "PIPE_WRITE": "pipe_open", "PIPE_CLOSE": "pipe_open", "PRINT_OPEN": "print", "PRINT_WRITE": "print",
                "PRINT_READ": "print", "PRINT_CLOSE": "print"}
PREAUTH_REQUIRED = "KDC_ERR_PREAUTH_REQUIRED"
SHARE_ROOT = "<share_root>"  # smb_files' name for an open of the share's root directory


class RowError(ValueError):
    """A row that cannot be read (no connection, bad number): the reader reports it, named."""


def row_records(log: str, row: Mapping[str, Any], source: str, line: Optional[int] = None) -> List[Record]:
    """The records of one row of log `log` (dce_rpc, smb_mapping, smb_files, ntlm, kerberos, conn, files)."""
    convert = CONVERTERS.get(log)
    if convert is None:
        return []
    return convert(row, _base(log, row, source, line))


def _base(log: str, row: Mapping[str, Any], source: str, line: Optional[int]) -> Dict[str, Any]:
    when, known = row_time(row.get("ts"))
    args: Dict[str, Any] = {"zeek": {"uid": text(row.get("uid")), "log": log}, "absent": list(ABSENT[log])}
    if not known:
        args["time_unknown"] = True
    return dict(
        time=when, src_ip=text(row.get("id.orig_h")), src_port=number(row.get("id.orig_p")),
        dest_ip=text(row.get("id.resp_h")), dest_port=number(row.get("id.resp_p")), evidence=["network", "zeek"],
        provenance=[Provenance(file=source, record_ids=[line] if line else [])], args=args, partial=not known,
    )


def _zeek_fields(base: Dict[str, Any], row: Mapping[str, Any], texts: tuple = (), decimals: tuple = (),
                 numbers: tuple = ()) -> Dict[str, Any]:
    """Fields only Zeek has (rtt, named_pipe, share_type, ...), kept apart from the command's arguments."""
    zeek = base["args"]["zeek"]
    for fields, read in ((texts, text), (decimals, decimal), (numbers, number)):
        for name in fields:
            value = read(row.get(name))
            if value not in (None, ""):
                zeek[name] = value
    return zeek


def _connection(base: Dict[str, Any]) -> Dict[str, Any]:
    if not (base["src_ip"] and base["dest_ip"]):
        raise RowError("no connection (id.orig_h / id.resp_h)")
    return base


def _smb(base: Dict[str, Any]) -> bool:
    return base["dest_port"] in SMB_PORTS


def _session_id(base: Dict[str, Any]) -> Optional[str]:
    """On SMB the connection stands for the SMB session (Zeek logs no session id): commands are matched
    within it, as within a capture's session."""
    return base["args"]["zeek"]["uid"] if _smb(base) else None


def dce_rpc(row: Mapping[str, Any], base: Dict[str, Any]) -> List[Record]:
    _connection(base)
    endpoint, operation = text(row.get("endpoint")), text(row.get("operation"))
    uuid = names.interface_uuid(endpoint)
    num = names.opnum(uuid, operation)
    pipe = text(row.get("named_pipe"))
    zeek = _zeek_fields(base, row, ("named_pipe", "endpoint", "operation"), ("rtt",))
    if uuid is None or num is None:
        zeek["unresolved"] = True  # a name neither Zeek's table nor ours gives a number for
    from ..interfaces import interface_name, operation_name

    smb = _smb(base)
    base.update(
        kind=OPERATION, protocol="dcerpc", transport="ncacn_np" if smb else "ncacn_ip_tcp",
        share="IPC$" if smb else None, path=pipe_name(pipe) if smb else None, rpc_uuid=uuid, opnum=num,
        rpc_interface=(interface_name(uuid) if uuid else None) or endpoint,
        operation=(operation_name(uuid, num) if uuid and num is not None else None) or operation,
        session_id=_session_id(base),
    )
    return [Record(**base)]


def smb_mapping(row: Mapping[str, Any], base: Dict[str, Any]) -> List[Record]:
    _connection(base)
    unc = text(row.get("path"))
    base["args"]["unc"] = unc
    zeek = _zeek_fields(base, row, ("share_type", "service", "native_file_system"))
    share = share_of(unc) or ("IPC$" if zeek.get("share_type") == "PIPE" else None)
    base.update(kind=TREE, protocol="smb", transport="smb", share=share, operation="tree_connect",
                status="ok", session_id=_session_id(base))
    return [Record(**base)]


def smb_files(row: Mapping[str, Any], base: Dict[str, Any]) -> List[Record]:
    _connection(base)
    name = text(row.get("name"))
    if not name or name == SHARE_ROOT:
        return []  # a directory open (the capture path drops those too)
    action = (text(row.get("action")) or "").rsplit("::", 1)[-1]
    unc = text(row.get("path"))
    args = base["args"]
    if unc:
        args["unc"] = unc
    _zeek_fields(base, row, ("fuid", "action"), (), ("size",))
    previous = text(row.get("prev_name"))
    if previous:
        args["previous_name"] = previous.lstrip("\\")
    share = share_of(unc)
    operation = FILE_ACTIONS.get(action, action.lower() or "open")
    if operation == "open" and (share or "").upper() == "IPC$":
        operation = "pipe_open"
    base.update(kind=FILE, protocol="smb", transport="smb", share=share, path=name.lstrip("\\"),
                operation=operation, session_id=_session_id(base))
    return [Record(**base)]


def files(row: Mapping[str, Any], base: Dict[str, Any]) -> List[Record]:
    """files.log: a transfer over SMB, in the direction Zeek saw it (is_orig: sent by the client = a write).
    Older Zeek names the connection in `conn_uids` and the hosts in `tx_hosts`/`rx_hosts` only."""
    if (text(row.get("source")) or "").upper() != "SMB":
        return []
    name = text(row.get("filename"))
    if not name:
        return []
    args = base["args"]
    zeek = _zeek_fields(base, row, ("fuid", "mime_type", "md5", "sha1", "sha256"))
    zeek["uid"] = zeek["uid"] or first(row.get("conn_uids"))
    sent_by_client = flag(row.get("is_orig"))
    if sent_by_client is None:
        tx_host = first(row.get("tx_hosts"))
        if tx_host:
            args["tx_host"] = tx_host  # the direction is told once the connection's client is known
    size = number(row.get("seen_bytes")) or number(row.get("total_bytes"))
    write = sent_by_client is not False
    if size:
        args["bytes_written" if write else "bytes_read"] = size
    base.update(kind=FILE, protocol="smb", transport="smb", path=name.lstrip("\\"),
                operation="write" if write else "read", session_id=_session_id(base))
    return [Record(**base)]


def ntlm(row: Mapping[str, Any], base: Dict[str, Any]) -> List[Record]:
    """An NTLM authentication, as the capture's SESSION_SETUP record: the account, the client's workstation,
    and for a refused one (`success` F) a failed status, which makes it a failed logon (recognize.failures)."""
    _connection(base)
    args = base["args"]
    args["auth"] = "ntlm"
    _zeek_fields(base, row, ("server_nb_computer_name", "server_dns_computer_name", "server_tree_name"))
    ok = flag(row.get("success"))
    status = nt_status(text(row.get("status")))  # Bro 2.5 and older: the NT status, e.g. LOGON_FAILURE
    failed = ok is False or bool(status and status != "STATUS_SUCCESS")
    workstation = account(row.get("hostname"))
    if workstation:
        args["workstation"] = workstation
    if failed and status:
        args["status_name"] = status
    elif failed:
        args["absent"].append("status")  # which refusal (wrong password, no such user ...): the wire says
    smb = _smb(base)
    base.update(
        kind=SESSION, protocol="smb" if smb else "dcerpc", transport="smb" if smb else "ncacn_ip_tcp",
        operation="session_setup", user=account(row.get("username")), domain=account(row.get("domainname")),
        src_host=workstation,
        dest_host=account(row.get("server_dns_computer_name")) or account(row.get("server_nb_computer_name")),
        status=(status or "failed") if failed else "ok", session_id=_session_id(base),
    )
    return [Record(**base)]


def kerberos(row: Mapping[str, Any], base: Dict[str, Any]) -> List[Record]:
    """A KDC exchange (AS/TGS), the client `name/REALM`: as the capture's KDC-reply session record; a
    refused one as its KRB-ERROR record, the status the error's name (KDC_ERR_PREAUTH_REQUIRED, the first
    answer to every client, is no failure: no record, as from a capture)."""
    _connection(base)
    error_msg = text(row.get("error_msg"))
    if error_msg == PREAUTH_REQUIRED:
        return []
    client = text(row.get("client")) or ""
    cname, _, realm = client.rpartition("/") if "/" in client else (client, "", "")
    kind = (text(row.get("request_type")) or "krb").lower()
    ok = flag(row.get("success"))
    service = text(row.get("service"))
    if service:
        base["args"]["service"] = service
    _zeek_fields(base, row, ("request_type", "error_msg", "cipher"))
    base.update(kind=SESSION, protocol="kerberos", operation=f"{kind}_rep" if ok else f"{kind}_req",
                user=account(cname), domain=account(realm),
                status=(error_msg or "failed") if ok is False else "ok")
    return [Record(**base)]


def conn(row: Mapping[str, Any], base: Dict[str, Any]) -> List[Record]:
    """A connection to SMB or MS-RPC: kept where no other log names it (encrypted SMB3, say), so
    fusion can still join a 4624's client ip:port to it."""
    _connection(base)
    service = text(row.get("service")) or ""
    if base["dest_port"] not in RPC_PORTS and not any(s in service for s in ("smb", "dce_rpc")):
        return []
    base["args"]["connection"] = True
    _zeek_fields(base, row, ("service", "conn_state", "history"), ("duration",), ("orig_bytes", "resp_bytes"))
    base.update(kind=SESSION, protocol="tcp", transport="smb" if _smb(base) else "ncacn_ip_tcp",
                operation="connection", status="ok")
    return [Record(**base)]


CONVERTERS: Dict[str, Callable[[Mapping[str, Any], Dict[str, Any]], List[Record]]] = {
    "dce_rpc": dce_rpc, "smb_mapping": smb_mapping, "smb_files": smb_files, "files": files, "ntlm": ntlm,
    "kerberos": kerberos, "conn": conn,
}


# -- values as Zeek writes them ---------------------------------------------------------------------
def row_time(value: Any):
    """(time, known): epoch seconds or ISO 8601; a masked or unreadable time is kept as the epoch."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return from_epoch(float(value)), True
    value = text(value)
    if value:
        try:
            return from_epoch(float(value)), True
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)), True
        except ValueError:
            pass
    return EPOCH, False


def text(value: Any) -> Optional[str]:
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    if value in UNSET:
        return None
    return str(value)


def first(value: Any) -> Optional[str]:
    if isinstance(value, (list, tuple)):
        return text(value[0]) if value else None
    value = text(value)
    return value.split(",", 1)[0] if value else None


def number(value: Any) -> Optional[int]:
    value = text(value)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        raise RowError(f"not a number: {value[:40]!r}") from None


def decimal(value: Any) -> Optional[float]:
    value = text(value)
    try:
        return round(float(value), 6) if value is not None else None
    except ValueError:
        return None


def flag(value: Any) -> Optional[bool]:
    if isinstance(value, bool):
        return value
    value = text(value)
    if value is None:
        return None
    return value.upper() in ("T", "TRUE", "1")


def account(value: Any) -> Optional[str]:
    value = text(value)
    return None if value is None or value.upper() == "NULL" else value


def nt_status(value: Optional[str]) -> Optional[str]:
    """Bro's NT status id (`LOGON_FAILURE`, SMB::statuses) as Windows names it (`STATUS_LOGON_FAILURE`)."""
    if not value:
        return None
    value = value.upper()
    return value if value.startswith("STATUS_") else "STATUS_" + value


def share_of(unc: Optional[str]) -> Optional[str]:
    return unc.rstrip("\\").rsplit("\\", 1)[-1] if unc and "\\" in unc else None


def pipe_name(pipe: Optional[str]) -> Optional[str]:
    """`\\pipe\\ntsvcs` -> `ntsvcs` (Zeek's named_pipe is the bind's secondary address; over TCP, a port)."""
    if not pipe:
        return None
    lowered = pipe.replace("/", "\\")
    for prefix in ("\\pipe\\", "pipe\\"):
        if lowered.lower().startswith(prefix):
            return lowered[len(prefix):].lower()
    return lowered.lower()
