"""ITaskSchedulerService (MS-TSCH): schtasks and impacket atexec.

tshark 4.0 names the opnums but dissects no arguments, so every call is parsed from the stub
(dcerpc.stub_data, or dcerpc.decrypted_stub_data once the packet-privacy stub is unsealed).
"""

from __future__ import annotations

import html
import re
from typing import Any, Dict, List, Mapping, Optional

from .decoding import Operations, decode_call
from .ndr import NdrError, Reader

INTERFACES = ("ITaskSchedulerService",)
DISSECTORS = ("taskschedulerservice",)
FIELDS: tuple = ()

_EXEC = re.compile(r"<(?:\w+:)?Exec\b[^>]*>(.*?)(?:</(?:\w+:)?Exec\s*>|\Z)", re.S)
_CDATA = re.compile(r"<!\[CDATA\[(.*?)\]\]>", re.S)


def _element(xml: str, name: str) -> Optional[str]:
    tag = r"<(?:\w+:)?" + name
    match = re.search(tag + r"\b[^>]*>(.*?)</(?:\w+:)?" + name + r"\s*>", xml, re.S)
    if not match:
        return None
    value = _CDATA.sub(lambda m: m.group(1), match.group(1))
    return html.unescape(value).strip()


def task_xml_args(xml: str) -> Dict[str, Any]:
    """What the task runs and as whom, from task XML (regex, not an XML parser: the text is
    attacker-controlled and may be cut short)."""
    out: Dict[str, Any] = {"task_xml_size": len(xml)}
    commands: List[str] = []
    for block in _EXEC.findall(xml):
        command = _element(block, "Command")
        if command is None:
            continue
        arguments = _element(block, "Arguments")
        commands.append(f"{command} {arguments}" if arguments else command)
    if commands:
        out["task_command"] = commands[0]
        if len(commands) > 1:
            out["task_commands"] = commands
    for element, key in (("UserId", "account"), ("RunLevel", "run_level"), ("Hidden", "task_hidden")):
        value = _element(xml, element)
        if value:
            out[key] = value
    return out


def _path(r: Reader, out: Dict[str, Any]) -> None:
    out["task_name"] = r.wstring()


def _unique_path(r: Reader, out: Dict[str, Any]) -> None:
    path = r.unique_wstring()
    if path is not None:
        out["task_name"] = path


def _path_flags(r: Reader, out: Dict[str, Any]) -> None:
    _path(r, out)
    out["task_flags"] = r.u32()


def _register_task(r: Reader, out: Dict[str, Any]) -> None:
    """SchRpcRegisterTask: path, XML, flags, sddl, logonType, cCreds, pCreds (passwords skipped)."""
    _unique_path(r, out)
    out.update(task_xml_args(r.wstring()))
    out["task_flags"] = r.u32()
    sddl = r.unique_wstring()
    if sddl:
        out["sddl"] = sddl
    out["logon_type"] = r.u32()
    creds = r.u32()
    if r.pointer() and creds:
        if r.count() != creds:
            raise NdrError("credential array size does not match cCreds")
        refs = []
        for _ in range(creds):
            r.struct_start()
            refs.append((r.pointer(), r.pointer()))
            r.u32()  # flags
        for user_ref, password_ref in refs:
            user = r.wstring() if user_ref else None
            if password_ref:
                r.wstring()  # a secret: consumed, never returned
            if user:
                out["account"] = user
    r.end()


def _retrieve_task(r: Reader, out: Dict[str, Any]) -> None:
    _path(r, out)


def _run(r: Reader, out: Dict[str, Any]) -> None:
    """SchRpcRun: path, cArgs, pArgs, flags, sessionId, user."""
    _path(r, out)
    count = r.u32()
    if r.pointer() and count:
        if r.count() != count or count > 1024:
            raise NdrError("argument array size does not match cArgs")
        refs = [r.pointer() for _ in range(count)]
        out["arguments"] = [r.wstring() for ref in refs if ref]
    out["task_flags"] = r.u32()
    out["session_id"] = r.u32()
    user = r.unique_wstring()
    if user:
        out["account"] = user
    r.end()


def _rename(r: Reader, out: Dict[str, Any]) -> None:
    _path(r, out)
    out["new_name"] = r.wstring()
    out["task_flags"] = r.u32()


def _enable(r: Reader, out: Dict[str, Any]) -> None:
    _path(r, out)
    out["enabled"] = bool(r.u32())


def _instance(r: Reader, out: Dict[str, Any]) -> None:
    out["instance_guid"] = r.guid()


def _register_response(r: Reader, out: Dict[str, Any]) -> None:
    _unique_path(r, out)


def _retrieve_response(r: Reader, out: Dict[str, Any]) -> None:
    xml = r.unique_wstring()
    if xml is not None:
        out.update(task_xml_args(xml))


def _enum_response(r: Reader, out: Dict[str, Any]) -> None:
    """SchRpcEnumFolders/EnumTasks: startIndex, pcNames, pNames (array of string pointers)."""
    r.u32()
    count = r.u32()
    if not r.pointer() or not count:
        out["names"] = []
        return
    if r.count() != count or count > 65536:
        raise NdrError("name array size does not match pcNames")
    refs = [r.pointer() for _ in range(count)]
    out["names"] = [r.wstring() for ref in refs if ref]


def _run_response(r: Reader, out: Dict[str, Any]) -> None:
    out["instance_guid"] = r.guid()


def _version_response(r: Reader, out: Dict[str, Any]) -> None:
    out["version"] = r.u32()


REQUESTS = Operations(INTERFACES, {
    "SchRpcRegisterTask": _register_task, "SchRpcRetrieveTask": _retrieve_task, "SchRpcCreateFolder": _unique_path,
    "SchRpcSetSecurity": _path, "SchRpcGetSecurity": _path, "SchRpcEnumFolders": _path_flags, "SchRpcEnumTasks": _path_flags,
    "SchRpcEnumInstances": _unique_path, "SchRpcGetInstanceInfo": _instance, "SchRpcStopInstance": _instance,
    "SchRpcStop": _unique_path, "SchRpcRun": _run, "SchRpcDelete": _path_flags, "SchRpcRename": _rename,
    "SchRpcScheduledRuntimes": _path, "SchRpcGetLastRunInfo": _path, "SchRpcGetTaskInfo": _path_flags,
    "SchRpcGetNumberOfMissedRuns": _path, "SchRpcEnableTask": _enable,
})
RESPONSES = Operations(INTERFACES, {
    "SchRpcHighestVersion": _version_response, "SchRpcRegisterTask": _register_response,
    "SchRpcRetrieveTask": _retrieve_response, "SchRpcEnumFolders": _enum_response, "SchRpcEnumTasks": _enum_response,
    "SchRpcRun": _run_response,
})


def decode(opnum: int, request: bool, fields: Mapping[str, str], stub: Optional[bytes]) -> Dict[str, Any]:
    return decode_call(REQUESTS, RESPONSES, {}, opnum, request, fields, stub)
