"""samr (MS-SAMR): net user/group/localgroup, user creation and deletion, membership changes.

Password-bearing calls (SetInformationUser(2), ChangePasswordUser*) report only the level or the
account, never the (encrypted) password buffers.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from .decoding import MAX_ITEMS, counted_sids, decode_call, handle_and_string, handle_only, handle_response
from .ndr import NdrError, Reader

INTERFACES = ("samr",)
DISSECTORS = ("samr",)
FIELD_ARGS = {
    "samr.samr_Connect5.system_name": "server",
    "samr.samr_LookupDomain.domain_name": "domain",
    "samr.samr_LookupNames.names": ("names", "list"),
    "samr.samr_CreateUser2.account_name": "account",
    "samr.samr_CreateUser.account_name": "account",
    "samr.samr_CreateUser2.acct_flags": ("account_flags", "int"),
    "samr.samr_AddAliasMember.sid": "member_sid",
    "samr.samr_ChangePasswordUser2.account": "account",
    "samr.samr_SetUserInfo2.level": ("info_level", "int"),
    "samr.rid": ("rid", "int"),
    "samr.handle": ("_handle", "handle"),
    "samr.status": ("return_code", "int"),
}
FIELDS = tuple(FIELD_ARGS)


def _connect_unique_server(r: Reader, out: Dict[str, Any]) -> None:
    """SamrConnect2/4/5: [unique, string] server name, then access and revision data."""
    name = r.unique_wstring()
    if name:
        out["server"] = name


def _connect(r: Reader, out: Dict[str, Any]) -> None:
    r.wchar_pointer()


def _open_domain(r: Reader, out: Dict[str, Any]) -> None:
    out["_handle_in"] = r.handle()
    out["access_mask"] = r.u32()
    out["sids"] = [r.sid()]


def _open_by_rid(r: Reader, out: Dict[str, Any]) -> None:
    """SamrOpenGroup/OpenAlias/OpenUser: handle, access, RID."""
    out["_handle_in"] = r.handle()
    out["access_mask"] = r.u32()
    out["rid"] = r.u32()


def _handle_rid(r: Reader, out: Dict[str, Any]) -> None:
    """SamrAddMemberToGroup/RemoveMemberFromGroup: handle, member RID (, attributes)."""
    out["_handle_in"] = r.handle()
    out["rid"] = r.u32()


def _handle_sid(r: Reader, out: Dict[str, Any]) -> None:
    """SamrAddMemberToAlias/RemoveMemberFromAlias/RemoveMemberFromForeignDomain: handle, member SID."""
    out["_handle_in"] = r.handle()
    out["member_sid"] = r.sid()


def _multiple_sids(r: Reader, out: Dict[str, Any]) -> None:
    """SamrAddMultipleMembersToAlias: handle, SAMPR_PSID_ARRAY {Count, [size_is(Count)] PSID*}."""
    out["_handle_in"] = r.handle()
    out["sids"] = counted_sids(r)


def _lookup_names(r: Reader, out: Dict[str, Any]) -> None:
    """SamrLookupNamesInDomain: handle, Count, [size_is(1000), length_is(Count)] names."""
    out["_handle_in"] = r.handle()
    count = r.u32()
    r.count()  # maximum (1000)
    r.count()  # offset
    actual = r.count()
    if actual != count or count > MAX_ITEMS:
        raise NdrError("name array length does not match Count")
    out["names"] = [name for name in r.unicode_string_array(count) if name is not None]


def _lookup_ids(r: Reader, out: Dict[str, Any]) -> None:
    out["_handle_in"] = r.handle()
    count = r.u32()
    r.count()
    r.count()
    if r.count() != count or count > MAX_ITEMS:
        raise NdrError("RID array length does not match Count")
    out["rids"] = [r.u32() for _ in range(count)]


def _create_user2(r: Reader, out: Dict[str, Any]) -> None:
    handle_and_string("account")(r, out)
    out["account_flags"] = r.u32()
    out["access_mask"] = r.u32()


def _create_named(r: Reader, out: Dict[str, Any]) -> None:
    """SamrCreateUserInDomain/CreateGroupInDomain/CreateAliasInDomain: handle, name, access."""
    handle_and_string("account")(r, out)
    out["access_mask"] = r.u32()


def _info_level(r: Reader, out: Dict[str, Any]) -> None:
    """Query/SetInformation*: handle and level only; the buffer may hold password material."""
    out["_handle_in"] = r.handle()
    out["info_level"] = r.u32()


def _change_password2(r: Reader, out: Dict[str, Any]) -> None:
    """SamrUnicodeChangePasswordUser2: [unique] server, [ref] user name, then encrypted blobs."""
    server = r.unique_unicode_string()
    if server:
        out["server"] = server
    account = r.unicode_string()
    if account:
        out["account"] = account


def _enumerate(r: Reader, out: Dict[str, Any]) -> None:
    out["_handle_in"] = r.handle()


def _enumeration_response(r: Reader, out: Dict[str, Any]) -> None:
    """Enumerate{Domains,Groups,Users,Aliases}: resume handle, PSAMPR_ENUMERATION_BUFFER, count."""
    r.u32()  # resume handle
    if not r.pointer():
        return
    r.struct_start()
    entries = r.u32()
    if not r.pointer() or not entries:
        out["names"] = []
        return
    count = r.count()
    if count > MAX_ITEMS:
        raise NdrError(f"enumeration of {count} entries")
    refs = []
    rids = []
    for _ in range(count):
        r.struct_start()
        rids.append(r.u32())
        refs.append(r.unicode_string_header()[1])
    out["names"] = [name for name in (r.unicode_string_body(ref) for ref in refs) if name is not None]
    out["rids"] = rids


def _ulong_array(r: Reader) -> List[int]:
    r.struct_start()
    count = r.u32()
    if not r.pointer() or not count:
        return []
    if r.count() != count or count > MAX_ITEMS:
        raise NdrError("ULONG array size does not match its count")
    return [r.u32() for _ in range(count)]


def _lookup_names_response(r: Reader, out: Dict[str, Any]) -> None:
    out["rids"] = _ulong_array(r)


def _lookup_ids_response(r: Reader, out: Dict[str, Any]) -> None:
    """SAMPR_RETURNED_USTRING_ARRAY {Count, [size_is(Count)] PRPC_UNICODE_STRING Element}."""
    r.struct_start()
    count = r.u32()
    if not r.pointer() or not count:
        return
    if r.count() != count or count > MAX_ITEMS:
        raise NdrError("name array size does not match its count")
    out["names"] = [name for name in r.unicode_string_array(count) if name is not None]


def _create_user2_response(r: Reader, out: Dict[str, Any]) -> None:
    out["_handle_out"] = r.handle()
    r.u32()  # granted access
    out["rid"] = r.u32()


def _create_response(r: Reader, out: Dict[str, Any]) -> None:
    out["_handle_out"] = r.handle()
    out["rid"] = r.u32()


def _members_response(r: Reader, out: Dict[str, Any]) -> None:
    """SamrGetMembersInAlias: SAMPR_PSID_ARRAY_OUT."""
    out["sids"] = counted_sids(r)


def _group_members_response(r: Reader, out: Dict[str, Any]) -> None:
    """SamrGetMembersInGroup: PSAMPR_GET_MEMBERS_BUFFER {MemberCount, Members*, Attributes*}."""
    if not r.pointer():
        return
    r.struct_start()
    count = r.u32()
    members_ref = r.pointer()
    r.pointer()
    if members_ref and count:
        if r.count() != count or count > MAX_ITEMS:
            raise NdrError("member array size does not match its count")
        out["rids"] = [r.u32() for _ in range(count)]


def _lookup_domain_response(r: Reader, out: Dict[str, Any]) -> None:
    sid = r.unique_sid()
    if sid:
        out["sids"] = [sid]


REQUESTS = {
    0: _connect, 1: handle_only, 3: handle_only, 5: handle_and_string("domain"), 6: _enumerate,
    7: _open_domain, 8: _info_level, 9: _info_level, 10: _create_named, 11: _enumerate,
    12: _create_named, 13: _enumerate, 14: _create_named, 15: _enumerate, 16: _multiple_sids,
    17: _lookup_names, 18: _lookup_ids, 19: _open_by_rid, 20: _info_level, 21: _info_level,
    22: _handle_rid, 23: handle_only, 24: _handle_rid, 25: handle_only, 27: _open_by_rid,
    28: _info_level, 29: _info_level, 30: handle_only, 31: _handle_sid, 32: _handle_sid,
    33: handle_only, 34: _open_by_rid, 35: handle_only, 36: _info_level, 37: _info_level,
    39: handle_only, 45: _handle_sid, 46: _info_level, 47: _info_level, 50: _create_user2,
    52: _multiple_sids, 53: _multiple_sids, 55: _change_password2, 57: _connect_unique_server,
    58: _info_level, 62: _connect_unique_server, 64: _connect_unique_server, 65: _handle_rid,
}
RESPONSES = {
    0: handle_response, 5: _lookup_domain_response, 6: _enumeration_response, 7: handle_response,
    10: _create_response, 11: _enumeration_response, 12: _create_response, 13: _enumeration_response,
    14: _create_response, 15: _enumeration_response, 17: _lookup_names_response,
    18: _lookup_ids_response, 19: handle_response, 25: _group_members_response, 27: handle_response,
    33: _members_response, 34: handle_response, 50: _create_user2_response, 57: handle_response,
    62: handle_response,
}


def decode(opnum: int, request: bool, fields: Mapping[str, str], stub: Optional[bytes]) -> Dict[str, Any]:
    return decode_call(REQUESTS, RESPONSES, FIELD_ARGS, opnum, request, fields, stub)
