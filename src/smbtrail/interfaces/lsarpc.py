"""lsarpc (MS-LSAT/MS-LSAD): policy opens, name <-> SID translation (psgetsid, net localgroup), and the LSA
secrets a client creates, opens, reads or writes by name (`secret`: G$BCKUPKEY_PREFERRED, $MACHINE.ACC,
_SC_<service>, DefaultPassword ...; a QuerySecret/SetSecret names it through the handle its OpenSecret got)."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

from .decoding import MAX_ITEMS, Operations, counted_sids, decode_call, handle_and_string, handle_only, handle_response
from .ndr import NdrError, Reader

INTERFACES = ("lsarpc",)
DISSECTORS = ("lsarpc",)
FIELD_ARGS = {
    "lsarpc.lsa_OpenPolicy2.system_name": "server",
    "lsarpc.lsa.string": ("names", "list"),
    "lsarpc.lsa_LookupSids2.sids": ("sids", "list"),
    "nt.sid": ("sids", "list"),
    "lsarpc.lsa_OpenPolicy2.handle": ("_handle", "handle"),
    "lsarpc.status": ("return_code", "int"),
}
FIELDS = tuple(FIELD_ARGS)


def _open_policy2(r: Reader, out: Dict[str, Any]) -> None:
    name = r.unique_wstring()
    if name:
        out["server"] = name


def _open_policy(r: Reader, out: Dict[str, Any]) -> None:
    r.wchar_pointer()


def _names(r: Reader, out: Dict[str, Any]) -> None:
    """Count, [size_is(Count)] PRPC_UNICODE_STRING Names: a conformant array of RPC_UNICODE_STRING."""
    count = r.u32()
    if r.count() != count or count > MAX_ITEMS:
        raise NdrError("name array size does not match Count")
    out["names"] = [name for name in r.unicode_string_array(count) if name is not None]


def _lookup_names(r: Reader, out: Dict[str, Any]) -> None:
    out["_handle_in"] = r.handle()
    _names(r, out)


def _lookup_names4(r: Reader, out: Dict[str, Any]) -> None:
    _names(r, out)


def _lookup_sids(r: Reader, out: Dict[str, Any]) -> None:
    out["_handle_in"] = r.handle()
    out["sids"] = counted_sids(r)


def _lookup_sids3(r: Reader, out: Dict[str, Any]) -> None:
    out["sids"] = counted_sids(r)


def _account_rights(r: Reader, out: Dict[str, Any]) -> None:
    """LsarEnumerate/Add/RemoveAccountRights: handle, account SID (, rights)."""
    out["_handle_in"] = r.handle()
    out["sids"] = [r.sid()]


def _referenced_domains(r: Reader) -> List[Tuple[Optional[str], Optional[str]]]:
    """PLSAPR_REFERENCED_DOMAIN_LIST {Entries, LSAPR_TRUST_INFORMATION* Domains, MaxEntries}: (name, SID)."""
    if not r.pointer():
        return []
    r.struct_start()
    entries = r.u32()
    ref = r.pointer()
    r.u32()  # MaxEntries
    if not ref or not entries:
        return []
    if r.count() != entries or entries > MAX_ITEMS:
        raise NdrError("domain array size does not match Entries")
    headers = []
    for _ in range(entries):
        r.struct_start()
        headers.append((r.unicode_string_header()[1], r.pointer()))
    return [(r.unicode_string_body(name_ref), r.sid() if sid_ref else None) for name_ref, sid_ref in headers]


def _put_domains(out: Dict[str, Any], domains: List[Tuple[Optional[str], Optional[str]]]) -> None:
    names = [name for name, _ in domains if name]
    if names:
        out["domains"] = names


def _translated_sids(layout: str):
    """LookupNames answers: ReferencedDomains, then the translated SIDs. layout "rid" (LSA_TRANSLATED_SID),
    "rid_ex" (..._EX with Flags) or "sid" (..._EX2, a full SID per name)."""

    def parse(r: Reader, out: Dict[str, Any]) -> None:
        domains = _referenced_domains(r)
        _put_domains(out, domains)
        r.struct_start()
        entries = r.u32()
        if not r.pointer() or not entries:
            return
        if r.count() != entries or entries > MAX_ITEMS:
            raise NdrError("translated SID array size does not match Entries")
        rows = []
        for _ in range(entries):
            r.struct_start()
            use = r.enum()
            value = r.pointer() if layout == "sid" else r.u32()
            index = r.i32()
            if layout != "rid":
                r.u32()  # Flags
            rows.append((use, value, index))
        out["sids"] = [_sid_of(r, layout, value, index, domains) for use, value, index in rows]
        out["sids"] = [sid for sid in out["sids"] if sid]

    return parse


def _sid_of(r: Reader, layout: str, value: int, index: int, domains) -> Optional[str]:
    if layout == "sid":
        return r.sid() if value else None
    if 0 <= index < len(domains) and domains[index][1]:
        return f"{domains[index][1]}-{value}"
    return None


def _translated_names(extended: bool):
    def parse(r: Reader, out: Dict[str, Any]) -> None:
        """ReferencedDomains, then LSAPR_TRANSLATED_NAMES(_EX) {Entries, Names*}: the resolved names."""
        _put_domains(out, _referenced_domains(r))
        r.struct_start()
        entries = r.u32()
        if not r.pointer() or not entries:
            return
        if r.count() != entries or entries > MAX_ITEMS:
            raise NdrError("translated name array size does not match Entries")
        refs = []
        for _ in range(entries):
            r.struct_start()
            r.enum()  # SID_NAME_USE
            refs.append(r.unicode_string_header()[1])
            r.u32()  # DomainIndex
            if extended:
                r.u32()  # Flags
        out["names"] = [name for name in (r.unicode_string_body(ref) for ref in refs) if name is not None]

    return parse


SECRET = handle_and_string("secret")  # PolicyHandle, then the secret's (or private data key's) name
REQUESTS = Operations(INTERFACES, {
    "LsarClose": handle_only, "LsarOpenPolicy": _open_policy, "LsarQueryInformationPolicy": handle_only,
    "LsarLookupNames": _lookup_names, "LsarLookupSids": _lookup_sids, "LsarCreateSecret": SECRET, "LsarOpenSecret": SECRET,
    "LsarSetSecret": handle_only, "LsarQuerySecret": handle_only, "LsarEnumerateAccountRights": _account_rights,
    "LsarAddAccountRights": _account_rights, "LsarRemoveAccountRights": _account_rights, "LsarStorePrivateData": SECRET,
    "LsarRetrievePrivateData": SECRET, "LsarOpenPolicy2": _open_policy2, "LsarQueryInformationPolicy2": handle_only,
    "LsarLookupSids2": _lookup_sids, "LsarLookupNames2": _lookup_names, "LsarLookupNames3": _lookup_names,
    "LsarLookupSids3": _lookup_sids3, "LsarLookupNames4": _lookup_names4,
})
RESPONSES = Operations(INTERFACES, {
    "LsarOpenPolicy": handle_response, "LsarLookupNames": _translated_sids("rid"),
    "LsarLookupSids": _translated_names(False), "LsarCreateSecret": handle_response, "LsarOpenSecret": handle_response,
    "LsarOpenPolicy2": handle_response, "LsarLookupSids2": _translated_names(True),
    "LsarLookupNames2": _translated_sids("rid_ex"), "LsarLookupNames3": _translated_sids("sid"),
    "LsarLookupSids3": _translated_names(True), "LsarLookupNames4": _translated_sids("sid"),
})


def decode(opnum: int, request: bool, fields: Mapping[str, str], stub: Optional[bytes]) -> Dict[str, Any]:
    return decode_call(REQUESTS, RESPONSES, FIELD_ARGS, opnum, request, fields, stub)
