#!/usr/bin/env python3
"""smbtrail lab stand-in: a DCE/RPC responder for what Samba does not implement, so the real clients'
requests are complete on the wire.

Samba 4.17's smbd forwards an SMB2 CREATE of IPC$\\<pipe> to the unix socket <ncalrpc dir>/np/<pipe>.
This program listens there for `svcctl` (replacing Samba's, which lacks CreateServiceW/DeleteService) and
`atsvc` (Task Scheduler: ITaskSchedulerService and the legacy ATSVC interface), and on one TCP port for the
same interfaces over ncacn_ip_tcp. It answers binds (NTLM at any level, PKT_PRIVACY included), and the
operations that sc/services.py, psexec, smbexec, atexec and `at` use, with minimal well-formed replies built
from impacket's NDR classes. It "runs" services and tasks only by writing the output file the client then
reads back. Everything else on the wire (SMB2/3, signing, encryption, file I/O) is Samba's.

    fake_np.py --np-dir DIR --admin-dir DIR --c-dir DIR --user U --password P [--tcp IP:PORT] [--log FILE]
"""
from __future__ import annotations

import argparse
import calendar
import json
import os
import pwd
import re
import socket
import struct
import sys
import threading
import time
import uuid
from typing import Callable, Dict, Optional, Tuple

from Cryptodome.Cipher import ARC4
from impacket import ntlm
from impacket.dcerpc.v5 import atsvc, scmr, tsch
from impacket.dcerpc.v5.dtypes import NULL
from impacket.uuid import bin_to_uuidtup, uuidtup_to_bin

NDR32 = uuidtup_to_bin(("8a885d04-1ceb-11c9-9fe8-08002b104860", "2.0"))
PTYPE_REQUEST, PTYPE_RESPONSE, PTYPE_FAULT = 0, 2, 3
PTYPE_BIND, PTYPE_BIND_ACK, PTYPE_ALTER, PTYPE_ALTER_RESP, PTYPE_AUTH3 = 11, 12, 14, 15, 16
AUTHN_WINNT, LEVEL_INTEGRITY, LEVEL_PRIVACY = 10, 5, 6
NCA_S_OP_RNG_ERROR, NCA_S_UNK_IF = 0x1C010002, 0x1C010003
ERROR_SERVICE_DOES_NOT_EXIST = 1060
SERVICE_RUNNING, SERVICE_STOPPED = 4, 1

LOCK = threading.Lock()
LOG_FILE: Optional[str] = None


def event(**fields) -> None:
    fields["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with LOCK:
        if LOG_FILE:
            with open(LOG_FILE, "a") as f:
                f.write(json.dumps(fields, default=str) + "\n")


def new_handle() -> bytes:
    return b"\x00" * 4 + uuid.uuid4().bytes


class Host:
    """The pretend host: its services, tasks, jobs and the share directories output files go to."""

    def __init__(self, admin_dir: str, c_dir: str, owner: str) -> None:
        self.admin_dir, self.c_dir = admin_dir, c_dir
        pw = pwd.getpwnam(owner)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.services: Dict[str, Dict[str, str]] = {}
        self.handles: Dict[bytes, str] = {}
        self.tasks: Dict[str, str] = {}
        self.jobs: Dict[int, str] = {}

    def write_output(self, directory: str, name: str, text: str) -> None:
        path = os.path.join(directory, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", newline="") as f:
            f.write(text)
        os.chown(path, self.uid, self.gid)

    def run_command_line(self, cmdline: str) -> None:
        """smbexec-style `... ^> \\\\HOST\\C$\\__output_x` (or ADMIN$): leave the output where it asked."""
        m = re.search(r"\\\\[^\\]+\\(C|ADMIN)\$\\([\w.]+)", cmdline)
        if m:
            directory = self.c_dir if m.group(1) == "C" else self.admin_dir
            text = "C:\\Windows\\system32\r\n" if " cd " in cmdline else "smbtlab\\smbtadmin\r\n"
            self.write_output(directory, m.group(2), text)

    def run_task(self, xml: str) -> None:
        """atexec-style `cmd.exe /C x > %windir%\\Temp\\y.tmp`: write y.tmp into ADMIN$\\Temp."""
        m = re.search(r"%windir%\\Temp\\([\w.]+)", xml)
        if m:
            self.write_output(self.admin_dir, os.path.join("Temp", m.group(1)),
                              "smbtlab\\smbtadmin\r\n")


# ---------------------------------------------------------------- interfaces


class Interface:
    """One RPC interface: request classes parsed with impacket, replies built with its response classes."""

    uuid: Tuple[str, str]
    opnums: Dict[int, tuple]
    name = ""

    def __init__(self, host: Host) -> None:
        self.host = host

    def call(self, opnum: int, stub: bytes) -> Optional[bytes]:
        handler: Optional[Callable] = getattr(self, f"op{opnum}", None)
        if handler is None or opnum not in self.opnums:
            event(interface=self.name, opnum=opnum, result="op_rng_error")
            return None
        request = self.opnums[opnum][0]()
        request.fromString(stub)
        response = self.opnums[opnum][1]()
        response["ErrorCode"] = 0
        handler(request, response)
        event(interface=self.name, opnum=opnum, op=type(request).__name__, request=_fields(request),
              error=response["ErrorCode"])
        return response.getData()


def _fields(request) -> Dict[str, str]:
    out = {}
    for name in request.fields:
        value = request[name]
        if isinstance(value, (str, int)):
            out[name] = value
        elif hasattr(value, "fields") and "Data" in getattr(value, "fields", {}):
            out[name] = str(value["Data"])
    return out


def _wstr(value) -> str:
    return "" if value in (None, NULL) else str(value).rstrip("\x00")


class Svcctl(Interface):
    uuid = ("367ABB81-9844-35F1-AD32-98F038001003", "2.0")
    opnums = scmr.OPNUMS
    name = "svcctl"

    def _status(self, response, state: int) -> None:
        st = response["lpServiceStatus"]
        st["dwServiceType"] = scmr.SERVICE_WIN32_OWN_PROCESS
        st["dwCurrentState"] = state
        st["dwControlsAccepted"] = 1
        st["dwWin32ExitCode"] = 0
        st["dwServiceSpecificExitCode"] = 0
        st["dwCheckPoint"] = 0
        st["dwWaitHint"] = 0

    def _service(self, handle) -> str:
        return self.host.handles.get(bytes(handle), "")

    def op0(self, req, resp) -> None:  # CloseServiceHandle
        self.host.handles.pop(bytes(req["hSCObject"]), None)
        resp["hSCObject"] = b"\x00" * 20

    def op1(self, req, resp) -> None:  # ControlService
        self._status(resp, SERVICE_STOPPED)

    def op2(self, req, resp) -> None:  # DeleteService
        self.host.services.pop(self._service(req["hService"]), None)

    def op6(self, req, resp) -> None:  # QueryServiceStatus
        self._status(resp, SERVICE_STOPPED)

    def op12(self, req, resp) -> None:  # CreateServiceW
        name = _wstr(req["lpServiceName"])
        self.host.services[name.lower()] = {"name": name, "path": _wstr(req["lpBinaryPathName"])}
        handle = new_handle()
        self.host.handles[handle] = name.lower()
        resp["lpdwTagId"] = NULL
        resp["lpServiceHandle"] = handle

    def op15(self, req, resp) -> None:  # OpenSCManagerW
        handle = new_handle()
        self.host.handles[handle] = ""
        resp["lpScHandle"] = handle

    def op16(self, req, resp) -> None:  # OpenServiceW
        name = _wstr(req["lpServiceName"]).lower()
        if name not in self.host.services:
            resp["lpServiceHandle"] = b"\x00" * 20
            resp["ErrorCode"] = ERROR_SERVICE_DOES_NOT_EXIST
            return
        handle = new_handle()
        self.host.handles[handle] = name
        resp["lpServiceHandle"] = handle

    def op19(self, req, resp) -> None:  # StartServiceW
        service = self.host.services.get(self._service(req["hService"]))
        if service:
            self.host.run_command_line(service["path"])


class TaskScheduler(Interface):
    uuid = ("86D35949-83C9-4044-B424-DB363231FD0C", "1.0")
    opnums = tsch.OPNUMS
    name = "tsch"

    def op0(self, req, resp) -> None:  # SchRpcHighestVersion
        resp["pVersion"] = 0x00010003

    def op1(self, req, resp) -> None:  # SchRpcRegisterTask
        path = _wstr(req["path"])
        self.host.tasks[path.lower()] = _wstr(req["xml"])
        resp["pActualPath"] = path + "\x00"
        resp["pErrorInfo"] = NULL

    def op12(self, req, resp) -> None:  # SchRpcRun
        self.host.run_task(self.host.tasks.get(_wstr(req["path"]).lower(), ""))
        resp["pGuid"] = uuid.uuid4().bytes_le

    def op13(self, req, resp) -> None:  # SchRpcDelete
        self.host.tasks.pop(_wstr(req["path"]).lower(), None)

    def op16(self, req, resp) -> None:  # SchRpcGetLastRunInfo
        t = time.gmtime()
        when = resp["pLastRuntime"]
        for key, value in (("wYear", t.tm_year), ("wMonth", t.tm_mon), ("wDayOfWeek", (t.tm_wday + 1) % 7),
                           ("wDay", t.tm_mday), ("wHour", t.tm_hour), ("wMinute", t.tm_min),
                           ("wSecond", t.tm_sec), ("wMilliseconds", 0)):
            when[key] = value
        resp["pLastReturnCode"] = 0


class AtSvc(Interface):
    uuid = ("1FF70682-0A51-30E8-076D-740BE8CEE98B", "1.0")
    opnums = atsvc.OPNUMS
    name = "atsvc"

    def op0(self, req, resp) -> None:  # NetrJobAdd
        job_id = len(self.host.jobs) + 1
        self.host.jobs[job_id] = _wstr(req["pAtInfo"]["Command"])
        resp["pJobId"] = job_id

    def op1(self, req, resp) -> None:  # NetrJobDel
        for job_id in range(req["MinJobId"], req["MaxJobId"] + 1):
            self.host.jobs.pop(job_id, None)


INTERFACES = (Svcctl, TaskScheduler, AtSvc)


# ---------------------------------------------------------------- NTLM (server side)


class NtlmServer:
    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user, password
        self.flags = 0
        self.challenge_bytes = os.urandom(8)
        self.c_sign = self.s_sign = self.c_seal = self.s_seal = b""
        self.c_handle: Optional[Callable] = None
        self.s_handle: Optional[Callable] = None
        self.s_seq = 0

    def challenge(self, negotiate: bytes) -> bytes:
        neg = ntlm.NTLMAuthNegotiate()
        neg.fromString(negotiate)
        wanted = (ntlm.NTLMSSP_NEGOTIATE_56 | ntlm.NTLMSSP_NEGOTIATE_128 | ntlm.NTLMSSP_NEGOTIATE_KEY_EXCH
                  | ntlm.NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY | ntlm.NTLMSSP_NEGOTIATE_UNICODE
                  | ntlm.NTLMSSP_NEGOTIATE_SIGN | ntlm.NTLMSSP_NEGOTIATE_SEAL | ntlm.NTLMSSP_NEGOTIATE_ALWAYS_SIGN)
        flags = (neg["flags"] & wanted) | ntlm.NTLMSSP_NEGOTIATE_VERSION | ntlm.NTLMSSP_NEGOTIATE_TARGET_INFO \
            | ntlm.NTLMSSP_TARGET_TYPE_SERVER | ntlm.NTLMSSP_NEGOTIATE_NTLM | ntlm.NTLMSSP_REQUEST_TARGET
        av = ntlm.AV_PAIRS()
        av[ntlm.NTLMSSP_AV_DOMAINNAME] = av[ntlm.NTLMSSP_AV_DNS_DOMAINNAME] = "SMBTLAB".encode("utf-16le")
        av[ntlm.NTLMSSP_AV_HOSTNAME] = av[ntlm.NTLMSSP_AV_DNS_HOSTNAME] = "FILESRV01".encode("utf-16le")
        av[ntlm.NTLMSSP_AV_TIME] = struct.pack("<q", 116444736000000000 + calendar.timegm(time.gmtime()) * 10000000)
        msg = ntlm.NTLMAuthChallenge()
        msg["flags"] = flags
        domain = "SMBTLAB".encode("utf-16le")
        msg["domain_len"] = msg["domain_max_len"] = len(domain)
        msg["domain_offset"] = 40 + 16
        msg["domain_name"] = domain
        msg["challenge"] = self.challenge_bytes
        msg["TargetInfoFields"] = av.getData()
        msg["TargetInfoFields_len"] = msg["TargetInfoFields_max_len"] = len(msg["TargetInfoFields"])
        msg["TargetInfoFields_offset"] = 40 + 16 + len(domain)
        msg["Version"] = b"\xff" * 8
        msg["VersionLen"] = 8
        return msg.getData()

    def authenticate(self, data: bytes) -> str:
        auth = ntlm.NTLMAuthChallengeResponse()
        auth.fromString(data)
        user = auth["user_name"].decode("utf-16le")
        domain = auth["domain_name"].decode("utf-16le")
        nt_response = auth["ntlm"]
        key = ntlm.NTOWFv2(user, self.password, domain)
        proof = ntlm.hmac_md5(key, self.challenge_bytes + nt_response[16:])
        verdict = "ok" if proof == nt_response[:16] else "bad-password"
        base = ntlm.hmac_md5(key, nt_response[:16])
        self.flags = auth["flags"]
        session = base
        if self.flags & ntlm.NTLMSSP_NEGOTIATE_KEY_EXCH and auth["session_key"]:
            session = ARC4.new(base).decrypt(auth["session_key"])
        self.c_sign = ntlm.SIGNKEY(self.flags, session)
        self.s_sign = ntlm.SIGNKEY(self.flags, session, b"Server")
        self.c_seal = ntlm.SEALKEY(self.flags, session)
        self.s_seal = ntlm.SEALKEY(self.flags, session, b"Server")
        self.c_handle = ARC4.new(self.c_seal).encrypt
        self.s_handle = ARC4.new(self.s_seal).encrypt
        return f"{domain}\\{user}: {verdict}"

    def unseal(self, stub: bytes, privacy: bool) -> bytes:
        """Decrypt a client stub (privacy) and keep the RC4 state in step with the client's signature."""
        plain = self.c_handle(stub) if privacy else stub
        if self.flags & ntlm.NTLMSSP_NEGOTIATE_KEY_EXCH:
            self.c_handle(b"\x00" * 8)
        return plain

    def protect(self, to_sign: bytes, stub: bytes, privacy: bool) -> Tuple[bytes, bytes]:
        if privacy:
            stub, sig = ntlm.SEAL(self.flags, self.s_sign, self.s_seal, to_sign, stub, self.s_seq, self.s_handle)
        else:
            sig = ntlm.SIGN(self.flags, self.s_sign, to_sign, self.s_seq, self.s_handle)
        self.s_seq += 1
        return stub, sig.getData()


# ---------------------------------------------------------------- connection-oriented DCE/RPC


class Connection:
    def __init__(self, sock: socket.socket, host: Host, creds: Tuple[str, str], framed: bool, where: str):
        self.sock, self.host, self.framed, self.where = sock, host, framed, where
        self.creds = creds
        self.contexts: Dict[int, Interface] = {}
        self.ntlm: Optional[NtlmServer] = None
        self.auth_level = 0
        self.auth_ctx_id = 0
        self.buffer = b""
        self.pending: Dict[int, bytes] = {}

    # transport
    def read_more(self) -> bool:
        if self.framed:
            head = _recv_exact(self.sock, 2)
            if head is None:
                return False
            data = _recv_exact(self.sock, struct.unpack("<H", head)[0])
        else:
            data = self.sock.recv(65536) or None
        if data is None:
            return False
        self.buffer += data
        return True

    def send(self, pdu: bytes) -> None:
        if self.framed:
            pdu = struct.pack("<H", len(pdu)) + pdu
        self.sock.sendall(pdu)

    def next_pdu(self) -> Optional[bytes]:
        while len(self.buffer) < 16 or len(self.buffer) < struct.unpack_from("<H", self.buffer, 8)[0]:
            if not self.read_more():
                return None
        size = struct.unpack_from("<H", self.buffer, 8)[0]
        pdu, self.buffer = self.buffer[:size], self.buffer[size:]
        return pdu

    def serve(self) -> None:
        try:
            while True:
                pdu = self.next_pdu()
                if pdu is None:
                    return
                self.dispatch(pdu)
        except (OSError, struct.error) as exc:
            event(where=self.where, error=f"connection ended: {exc}")
        finally:
            self.sock.close()

    # PDUs
    def dispatch(self, pdu: bytes) -> None:
        ptype, flags = pdu[2], pdu[3]
        frag_len, auth_len, call_id = struct.unpack_from("<HHI", pdu, 8)
        auth_value = pdu[frag_len - auth_len:frag_len] if auth_len else b""
        trailer = pdu[frag_len - auth_len - 8:frag_len - auth_len] if auth_len else b""
        if ptype in (PTYPE_BIND, PTYPE_ALTER):
            self.bind(pdu, ptype, call_id, trailer, auth_value)
        elif ptype == PTYPE_AUTH3:
            if self.ntlm:
                event(where=self.where, auth=self.ntlm.authenticate(auth_value))
        elif ptype == PTYPE_REQUEST:
            self.request(pdu, flags, call_id, auth_len, trailer)

    def bind(self, pdu: bytes, ptype: int, call_id: int, trailer: bytes, auth_value: bytes) -> None:
        max_xmit, max_recv, assoc = struct.unpack_from("<HHI", pdu, 16)
        n_items = pdu[24]
        results = b""
        offset = 28
        for _ in range(n_items):
            ctx_id, n_syntaxes = struct.unpack_from("<HB", pdu, offset)
            abstract = pdu[offset + 4:offset + 24]
            syntaxes = [pdu[offset + 24 + 20 * i:offset + 44 + 20 * i] for i in range(n_syntaxes)]
            offset += 24 + 20 * n_syntaxes
            iface = next((cls for cls in INTERFACES if uuidtup_to_bin(cls.uuid) == abstract), None)
            if iface is not None and NDR32 in syntaxes:
                self.contexts[ctx_id] = iface(self.host)
                results += struct.pack("<HH", 0, 0) + NDR32
                event(where=self.where, bind=iface.name, ctx_id=ctx_id)
            else:
                reason = 2 if iface is not None else 1
                results += struct.pack("<HH", 2, reason) + b"\x00" * 20
                event(where=self.where, bind=str(bin_to_uuidtup(abstract)), result="rejected")
        auth = b""
        if trailer:
            auth_type, level, _, _, ctx = struct.unpack("<BBBBI", trailer)
            if auth_type == AUTHN_WINNT and auth_value[8:12] == b"\x01\x00\x00\x00":
                self.ntlm = NtlmServer(*self.creds)
                self.auth_level, self.auth_ctx_id = level, ctx
                auth = self.ntlm.challenge(auth_value)
        secondary = (b"\\PIPE\\" + self.where.encode() if self.framed else self.where.split(":")[-1].encode()) + b"\x00"
        body = struct.pack("<HHIH", max_xmit, max_recv, assoc or 0x53B7, len(secondary)) + secondary
        body += b"\x00" * ((4 - (16 + len(body)) % 4) % 4)
        body += struct.pack("<BBH", n_items, 0, 0) + results
        reply_type = PTYPE_BIND_ACK if ptype == PTYPE_BIND else PTYPE_ALTER_RESP
        if auth:
            body += b"\x00" * ((4 - (16 + len(body)) % 4) % 4)
            body += struct.pack("<BBBBI", AUTHN_WINNT, self.auth_level, 0, 0, self.auth_ctx_id) + auth
        self.send(_header(reply_type, 3, 16 + len(body), len(auth), call_id) + body)

    def request(self, pdu: bytes, flags: int, call_id: int, auth_len: int, trailer: bytes) -> None:
        alloc_hint, ctx_id, opnum = struct.unpack_from("<IHH", pdu, 16)
        start = 24 + (16 if flags & 0x80 else 0)
        end = len(pdu) - (auth_len + 8 if auth_len else 0)
        stub = pdu[start:end]
        if auth_len and self.ntlm and self.ntlm.c_handle:
            level = trailer[1]
            stub = self.ntlm.unseal(stub, level == LEVEL_PRIVACY)
            stub = stub[:len(stub) - trailer[2]]
        self.pending[call_id] = self.pending.get(call_id, b"") + stub
        if not flags & 0x02:  # not the last fragment
            return
        stub = self.pending.pop(call_id)
        iface = self.contexts.get(ctx_id)
        reply = iface.call(opnum, stub) if iface else None
        if reply is None:
            status = NCA_S_OP_RNG_ERROR if iface else NCA_S_UNK_IF
            body = struct.pack("<IHBBII", 0, ctx_id, 0, 0, status, 0)
            self.send(_header(PTYPE_FAULT, 3, 16 + len(body), 0, call_id) + body)
            return
        self.respond(reply, ctx_id, call_id)

    def respond(self, stub: bytes, ctx_id: int, call_id: int) -> None:
        head = struct.pack("<IHBB", len(stub), ctx_id, 0, 0)
        if not (self.ntlm and self.ntlm.c_handle and self.auth_level >= LEVEL_INTEGRITY):
            self.send(_header(PTYPE_RESPONSE, 3, 24 + len(stub), 0, call_id) + head + stub)
            return
        pad = (4 - (24 + len(stub)) % 4) % 4
        stub += b"\x00" * pad
        trailer = struct.pack("<BBBBI", AUTHN_WINNT, self.auth_level, pad, 0, self.auth_ctx_id)
        header = _header(PTYPE_RESPONSE, 3, 24 + len(stub) + 8 + 16, 16, call_id) + head
        body, sig = self.ntlm.protect(header + stub + trailer, stub, self.auth_level == LEVEL_PRIVACY)
        self.send(header + body + trailer + sig)


def _header(ptype: int, flags: int, frag_len: int, auth_len: int, call_id: int) -> bytes:
    return struct.pack("<BBBBIHHI", 5, 0, ptype, flags, 0x10, frag_len, auth_len, call_id)


def _recv_exact(sock: socket.socket, size: int) -> Optional[bytes]:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


# ---------------------------------------------------------------- listeners


NPA_REPLY = struct.pack(">I", 32) + b"NPAM" + struct.pack("<IIHH4xQI", 7, 7, 2, 0x05FF, 4096, 0)


def np_handshake(sock: socket.socket) -> bool:
    """Samba's named_pipe_auth_req (we ignore its content) -> a message-mode pipe reply."""
    head = _recv_exact(sock, 4)
    if head is None or _recv_exact(sock, struct.unpack(">I", head)[0]) is None:
        return False
    sock.sendall(NPA_REPLY)
    return True


def serve_pipe(path: str, name: str, host: Host, creds: Tuple[str, str]) -> None:
    if os.path.lexists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o666)
    listener.listen(16)
    while True:
        sock, _ = listener.accept()
        if np_handshake(sock):
            conn = Connection(sock, host, creds, True, name)
            threading.Thread(target=conn.serve, daemon=True).start()
        else:
            sock.close()


def serve_tcp(address: str, host: Host, creds: Tuple[str, str]) -> None:
    ip, port = address.rsplit(":", 1)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((ip, int(port)))
    listener.listen(16)
    while True:
        sock, _ = listener.accept()
        conn = Connection(sock, host, creds, False, address)
        threading.Thread(target=conn.serve, daemon=True).start()


def main() -> int:
    global LOG_FILE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--np-dir", required=True)
    ap.add_argument("--admin-dir", required=True)
    ap.add_argument("--c-dir", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--tcp", default="")
    ap.add_argument("--log", default="")
    args = ap.parse_args()
    LOG_FILE = args.log or None
    host = Host(args.admin_dir, args.c_dir, args.user)
    creds = (args.user, args.password)
    threads = [threading.Thread(target=serve_pipe, args=(os.path.join(args.np_dir, n), n, host, creds), daemon=True)
               for n in ("svcctl", "atsvc")]
    if args.tcp:
        threads.append(threading.Thread(target=serve_tcp, args=(args.tcp, host, creds), daemon=True))
    for t in threads:
        t.start()
    event(where="main", started=True, pid=os.getpid())
    while all(t.is_alive() for t in threads):
        time.sleep(0.5)
    return 1


if __name__ == "__main__":
    sys.exit(main())
