"""drsuapi (MS-DRSR): directory replication (DCSync). What a DsGetNCChanges asks to replicate: the naming
context or the one object (by DN or objectGUID), the extended operation (EXOP_REPL_OBJ: one object,
EXOP_REPL_SECRETS: its secrets) and the flags; which names a DsCrackNames translated, and into what
(secretsdump -just-dc-user cracks the account name into the objectGUID it then replicates)."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from .decoding import MAX_ITEMS, Operations, decode_call
from .ndr import NdrError, Reader

INTERFACES = ("drsuapi",)
DISSECTORS = ("drsuapi",)  # its stubs are ours to read: tshark keeps them as stub_data
FIELDS: tuple = ()
NULL_GUID = "00000000-0000-0000-0000-000000000000"
EXTENDED_OPS = {0: "none", 1: "EXOP_FSMO_REQ_ROLE", 2: "EXOP_FSMO_REQ_RID_ALLOC", 3: "EXOP_FSMO_RID_REQ_ROLE",
                4: "EXOP_FSMO_REQ_PDC", 5: "EXOP_FSMO_ABANDON_ROLE", 6: "EXOP_REPL_OBJ", 7: "EXOP_REPL_SECRETS"}
REQUEST_VERSIONS = (5, 8, 10, 11)  # V5 (no partial attribute sets), V8, V10 (+ ulMoreFlags), V11 (+ more)


def _ds_name(r: Reader, out: Dict[str, Any]) -> None:
    """DSNAME: a conformant structure (its StringName count first), then structLen, SidLen, Guid, Sid, NameLen."""
    chars = r.count()
    r.struct_start()
    r.u32()  # structLen
    r.u32()  # SidLen
    guid = r.guid()
    r.raw(28)  # NT4SID
    r.u32()  # NameLen (without the terminator)
    if chars > 1 << 16:
        raise NdrError(f"DSNAME of {chars} characters")
    name = r.raw(chars * 2).decode("utf-16-le", errors="replace").split("\x00", 1)[0]
    if name:
        out["nc"] = name
    if guid != NULL_GUID:
        out["object_guid"] = guid


def _get_nc_changes(r: Reader, out: Dict[str, Any]) -> None:
    out["_handle_in"] = r.handle()
    version = r.u32()
    if r.union_tag() != version:
        raise NdrError("DRS_MSG_GETCHGREQ discriminant differs from dwInVersion")
    out["request_version"] = version
    if version not in REQUEST_VERSIONS:
        return
    r.align(8)  # the arm holds 64-bit USNs
    r.guid()  # uuidDsaObjDest: the DSA asking (secretsdump sends the DC's own)
    r.guid()  # uuidInvocIdSrc
    nc = r.pointer()
    r.u64(), r.u64(), r.u64()  # usnvecFrom
    r.pointer()  # pUpToDateVecDest
    out["replication_flags"] = hex(r.u32())
    out["max_objects"] = r.u32()
    r.u32()  # cMaxBytes
    out["extended_op"] = EXTENDED_OPS.get(r.u32(), "unknown")
    r.u64()  # liFsmoInfo
    if version >= 8:
        r.pointer(), r.pointer()  # pPartialAttrSet, pPartialAttrSetEx
        r.struct_start()
        r.u32()  # PrefixTableDest.PrefixCount
        r.pointer()
        if version >= 10:
            r.u32()  # ulMoreFlags
        if version >= 11:  # V11 adds ulResourceLimit... no pointers before the DSNAME we read
            r.u32()
    if nc:
        _ds_name(r, out)


def _strings(r: Reader, count: int) -> List[str]:
    refs = [r.pointer() for _ in range(count)]
    return [r.wstring() for ref in refs if ref]


def _crack_names(r: Reader, out: Dict[str, Any]) -> None:
    """DRS_MSG_CRACKREQ_V1: CodePage, LocaleId, dwFlags, formatOffered, formatDesired, cNames, rpNames."""
    out["_handle_in"] = r.handle()
    version = r.u32()
    if r.union_tag() != version or version != 1:
        return
    r.u32(), r.u32(), r.u32()
    out["format_offered"], out["format_desired"] = r.i32(), r.i32()
    count = r.u32()
    if not r.pointer() or not count:
        return
    if r.count() != count or count > MAX_ITEMS:
        raise NdrError("name array size does not match cNames")
    names = _strings(r, count)
    out["names"] = names
    if len(names) == 1:
        out["account"] = names[0]  # one name cracked at a time: the account the caller is after


def _cracked(r: Reader, out: Dict[str, Any]) -> None:
    """DRS_MSG_CRACKREPLY_V1 -> DS_NAME_RESULTW {cItems, rItems: {status, pDomain, pName}}: the results."""
    if r.u32() != 1 or r.union_tag() != 1 or not r.pointer():
        return
    r.struct_start()
    count = r.u32()
    if not r.pointer() or not count:
        return
    if r.count() != count or count > MAX_ITEMS:
        raise NdrError("result array size does not match cItems")
    items = []
    for _ in range(count):
        r.struct_start()
        items.append((r.u32(), r.pointer(), r.pointer()))
    cracked: List[Optional[str]] = []
    for status, domain, name in items:
        if domain:
            r.wstring()
        cracked.append(r.wstring() if name else None)
        if status:
            out.setdefault("crack_status", []).append(status)
    out["cracked"] = [name for name in cracked if name]


REQUESTS = Operations(INTERFACES, {"DRSGetNCChanges": _get_nc_changes, "DRSCrackNames": _crack_names})
RESPONSES = Operations(INTERFACES, {"DRSCrackNames": _cracked})


def decode(opnum: int, request: bool, fields: Mapping[str, str], stub: Optional[bytes]) -> Dict[str, Any]:
    return decode_call(REQUESTS, RESPONSES, {}, opnum, request, fields, stub)
