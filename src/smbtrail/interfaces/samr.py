"""samr (MS-SAMR): net user/group/localgroup, user creation and deletion, membership changes.

Password-bearing calls (SetInformationUser(2), ChangePasswordUser*) report only the level or the
account, never the (encrypted) password buffers.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from .decoding import MAX_ITEMS, Operations, counted_sids, decode_call, handle_and_string, handle_only, handle_response
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


REQUESTS = Operations(INTERFACES, {
    "SamrConnect": _connect, "SamrCloseHandle": handle_only, "SamrQuerySecurityObject": handle_only,
    "SamrLookupDomainInSamServer": handle_and_string("domain"), "SamrEnumerateDomainsInSamServer": _enumerate,
    "SamrOpenDomain": _open_domain, "SamrQueryInformationDomain": _info_level, "SamrSetInformationDomain": _info_level,
    "SamrCreateGroupInDomain": _create_named, "SamrEnumerateGroupsInDomain": _enumerate,
    "SamrCreateUserInDomain": _create_named, "SamrEnumerateUsersInDomain": _enumerate,
    "SamrCreateAliasInDomain": _create_named, "SamrEnumerateAliasesInDomain": _enumerate,
    "SamrGetAliasMembership": _multiple_sids, "SamrLookupNamesInDomain": _lookup_names, "SamrLookupIdsInDomain": _lookup_ids,
    "SamrOpenGroup": _open_by_rid, "SamrQueryInformationGroup": _info_level, "SamrSetInformationGroup": _info_level,
    "SamrAddMemberToGroup": _handle_rid, "SamrDeleteGroup": handle_only, "SamrRemoveMemberFromGroup": _handle_rid,
    "SamrGetMembersInGroup": handle_only, "SamrOpenAlias": _open_by_rid, "SamrQueryInformationAlias": _info_level,
    "SamrSetInformationAlias": _info_level, "SamrDeleteAlias": handle_only, "SamrAddMemberToAlias": _handle_sid,
    "SamrRemoveMemberFromAlias": _handle_sid, "SamrGetMembersInAlias": handle_only, "SamrOpenUser": _open_by_rid,
    "SamrDeleteUser": handle_only, "SamrQueryInformationUser": _info_level, "SamrSetInformationUser": _info_level,
    "SamrGetGroupsForUser": handle_only, "SamrRemoveMemberFromForeignDomain": _handle_sid,
    "SamrQueryInformationDomain2": _info_level, "SamrQueryInformationUser2": _info_level,
    "SamrCreateUser2InDomain": _create_user2, "SamrAddMultipleMembersToAlias": _multiple_sids,
    "SamrRemoveMultipleMembersFromAlias": _multiple_sids, "SamrUnicodeChangePasswordUser2": _change_password2,
    "SamrConnect2": _connect_unique_server, "SamrSetInformationUser2": _info_level, "SamrConnect4": _connect_unique_server,
    "SamrConnect5": _connect_unique_server, "SamrRidToSid": _handle_rid,
})
RESPONSES = Operations(INTERFACES, {
    "SamrConnect": handle_response, "SamrLookupDomainInSamServer": _lookup_domain_response,
    "SamrEnumerateDomainsInSamServer": _enumeration_response, "SamrOpenDomain": handle_response,
    "SamrCreateGroupInDomain": _create_response, "SamrEnumerateGroupsInDomain": _enumeration_response,
    "SamrCreateUserInDomain": _create_response, "SamrEnumerateUsersInDomain": _enumeration_response,
    "SamrCreateAliasInDomain": _create_response, "SamrEnumerateAliasesInDomain": _enumeration_response,
    "SamrLookupNamesInDomain": _lookup_names_response, "SamrLookupIdsInDomain": _lookup_ids_response,
    "SamrOpenGroup": handle_response, "SamrGetMembersInGroup": _group_members_response, "SamrOpenAlias": handle_response,
    "SamrGetMembersInAlias": _members_response, "SamrOpenUser": handle_response,
    "SamrCreateUser2InDomain": _create_user2_response, "SamrConnect2": handle_response, "SamrConnect4": handle_response,
})


def decode(opnum: int, request: bool, fields: Mapping[str, str], stub: Optional[bytes]) -> Dict[str, Any]:
    return decode_call(REQUESTS, RESPONSES, FIELD_ARGS, opnum, request, fields, stub)
