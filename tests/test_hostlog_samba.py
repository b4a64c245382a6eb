"""Samba AD DC JSON audit log, as written by the installed Samba (fixture made by make_samba_audit.sh)."""

from __future__ import annotations

from smbtrail.hostlog import read_hostlogs, recognize_host


def _records(fixtures, **kw):
    return list(read_hostlogs([str(fixtures / "hostlog" / "samba_addc")], **kw))


def test_logons_carry_client_socket_and_server(fixtures):
    records = _records(fixtures)
    assert not [r for r in records if r.kind == "error"]
    assert {r.channel for r in records} == {"Samba"}
    smb = [r for r in records if r.event_id == 4624 and r.args.get("service") == "SMB2"]
    assert {r.user for r in smb} == {"Administrator", "eve"}
    assert all(r.src_ip == "10.77.0.2" and r.src_port and (r.dest_ip, r.dest_port) == ("10.77.0.1", 445)
               for r in smb)
    failed = [r for r in records if r.event_id == 4625]
    assert [(r.user, r.args["status"]) for r in failed] == [("Administrator", "NT_STATUS_WRONG_PASSWORD")]
    kerberos = [r for r in records if r.args.get("service") == "Kerberos KDC"]
    assert kerberos and all(r.logon_id and r.logon_id.startswith("0x") for r in kerberos)
    assert all(r.logon_id is None for r in smb)  # Samba logs logonId "0" for NTLM


def test_account_and_group_changes(fixtures):
    records = _records(fixtures)
    created = [r for r in records if r.event_id == 4720]
    assert [(r.args["account"], r.inferred) for r in created] == [("eve", True)]
    groups = {(r.event_id, r.args["group"], r.args["member"]) for r in records if r.event_id in (4728, 4732)}
    assert {(4728, "Domain Admins", "eve"), (4732, "Administrators", "eve")} <= groups
    assert {r.args["account"] for r in records if r.event_id == 4724} == {"eve"}


def test_commands_name_the_ldap_client(fixtures):
    commands = [r for r in recognize_host(iter(_records(fixtures))) if r.kind == "command"]
    by_name = {(c.command, c.operation, c.args.get("group")) for c in commands}
    assert {("net user", "add", None), ("net group", "add", "Domain Admins"),
            ("net localgroup", "add", "Administrators"), ("net user", "set_password", None)} <= by_name
    assert all(c.user == "Administrator" and c.src_ip == "10.77.0.2" for c in commands)


def test_no_secret_reaches_the_output(fixtures):
    text = "\n".join(r.to_json() for r in _records(fixtures, all_events=True))
    for secret in ("Passw0rd!", "Ev3Passw0rd!x", "N3wPassw0rd!y", "WrongPass1"):
        assert secret not in text
    assert '\\"redacted\\": true' in text  # unicodePwd changes are there, their values are not


def test_all_events_keeps_unnumbered_samba_records(fixtures):
    default = _records(fixtures)
    everything = _records(fixtures, all_events=True)
    extra = [r for r in everything if r.event_id is None]
    assert len(everything) == len(default) + len(extra) and extra
    assert {r.provider for r in extra} <= {"samba:dsdbChange", "samba:groupChange"}
