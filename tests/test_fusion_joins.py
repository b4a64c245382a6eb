"""Fusion is honest about gaps and doubts: single-sided records stay, ambiguous joins are marked,
another account on the same connection is another trail, two sensors of one connection are one."""

from __future__ import annotations

import glob
from datetime import timedelta
from typing import List

from smbtrail.engine import host_records, network_records
from smbtrail.fusion import fuse_records
from smbtrail.records import Record

OTRF = "otrf-security-datasets/windows"


def _half(shared, name: str, half: str) -> str:
    return glob.glob(str(shared / OTRF / "*" / half / f"{name}.zip"))[0]


def _inputs(shared, network: str, host: str) -> List[Record]:
    return list(network_records([_half(shared, network, "network")])) + list(
        host_records([_half(shared, host, "host")]))


def test_single_sided_records_stay_in_the_output(shared_data):
    # a capture and a host log of different days: nothing joins, nothing is lost
    given = _inputs(shared_data, "covenant_copy_smb_CreateRequest", "covenant_sharpsc_create_dcerpc_smb_svcctl")
    out = list(fuse_records(given))
    ids = {id(r) for r in out}
    folded = {uid for r in out for uid in r.args.get("merged_records", [])}
    assert all(id(r) in ids or r.uid() in folded for r in given), "every input record comes out or is folded in"
    assert all(r.kind == "command" and r.evidence == ["host"] for r in given if id(r) not in ids)
    linked = [r for r in out if r.kind == "host_event" and r.trail_id]
    assert linked and all(r.trail_id.startswith("host-") for r in linked), "no host event joined a capture"
    mirrored = [r for r in linked if r.event_id == 7045]  # 7045 joins its 4697 by name and time: one service,
    assert mirrored and mirrored[0].join == ["service_name_time", "host_logon"]  # on the trail of its logon
    trails = [r for r in out if r.kind == "trail"]
    assert {tuple(t.evidence) for t in trails} == {("network",), ("host",)}
    service = [r for r in out if r.kind == "command" and r.command == "sc"]
    assert len(service) == 1 and service[0].evidence == ["host"]
    assert service[0].join == ["service_name_time", "host_logon", "logon_id"]  # 7045 by name, 4697 by its logon
    assert service[0].args["service_name"] == "Cyb3rWard0g" and service[0].trail_id.startswith("host-")
    assert service[0].args["host_events"] == [4697, 7045]
    written = [r for r in out if r.kind == "command" and r.command == "write file"]
    assert written and all(r.evidence == ["network"] for r in written)


def test_ambiguous_join_is_marked_not_guessed(shared_data):
    name = "covenant_sc_query_dcerpc_smb_svcctl"
    network = list(network_records([_half(shared_data, name, "network")]))
    # a second connection of the same account from the same host to the same server, 5 s later:
    # the source host's 4688 `sc.exe \\MORDORDC query` could belong to either
    twin = [r.model_copy(update={"src_port": r.src_port + 1000, "time": r.time + timedelta(seconds=5),
                                 "trail_id": "twin-" + r.trail_id}, deep=True)
            for r in network if r.src_port and r.trail_id]
    out = list(fuse_records(network + twin + list(host_records([_half(shared_data, name, "host")]))))
    process = [r for r in out if r.kind == "host_event" and r.event_id == 4688 and "sc.exe" in
               str(r.args.get("command_line"))]
    assert process and all(r.join == ["ambiguous:account_host_time"] and r.trail_id is None for r in process)
    assert len(set(process[0].args["join_candidates"])) == 2
    host_only = [r for r in out if r.kind == "command" and r.command == "sc" and r.evidence == ["host"]]
    assert host_only and host_only[0].join == ["ambiguous:account_host_time"]
    assert host_only[0].args["join_candidates"] == process[0].args["join_candidates"]
    assert all(r.evidence == ["network"] for r in out if r.kind == "command" and "network" in r.evidence
               and r.command == "sc"), "no network command took the host's arguments on a guess"


def test_another_account_on_the_same_connection_is_another_trail(shared_data):
    name = "covenant_sc_query_dcerpc_smb_svcctl"
    out = list(fuse_records(_inputs(shared_data, name, name)))
    logons = {r.user: r for r in out if r.kind == "host_event" and r.event_id == 4624 and r.src_port == 60338}
    assert set(logons) == {"pgustavo", "WORKSTATION5$"}
    assert logons["pgustavo"].trail_id != logons["WORKSTATION5$"].trail_id
    assert logons["WORKSTATION5$"].join == ["ip_port"]
    assert logons["WORKSTATION5$"].args["conflicts"]["user"][1] == "workstation5$"


def test_a_connection_seen_by_two_sensors_is_one_trail(shared_data):
    name = "empire_psexec_dcerpc_tcp_svcctl"  # the same traffic captured on WORKSTATION5 and WORKSTATION6
    out = list(fuse_records(_inputs(shared_data, name, name)))
    created = [r for r in out if r.kind == "command" and r.command == "sc" and r.operation == "create"]
    assert len(created) == 1
    files = {p.file.rsplit("!", 1)[-1] for p in created[0].provenance}
    assert any("WORKSTATION5" in f for f in files) and any("WORKSTATION6" in f for f in files)
    assert any(f.endswith(".json") for f in files), "and the host log that confirmed it"
    assert created[0].args["service_name"] == "Updater" and created[0].evidence == ["network", "host"]


def test_attack_timeline_chains_a_to_b_then_b_to_c(shared_data):
    names = ["empire_psexec_dcerpc_tcp_svcctl", "empire_shell_rpc_samr_smb_group_domain_admins_standard_user"]
    given: List[Record] = []
    for name in names:
        given += list(network_records([_half(shared_data, name, "network")]))
    for name in names:
        given += list(host_records([_half(shared_data, name, "host")]))
    trails = [r for r in fuse_records(given) if r.kind == "trail" and r.args.get("commands")]
    first = next(t for t in trails if t.command == "sc create")
    second = next(t for t in trails if t.command == "net group query")
    assert first.args["dest_node"] == second.args["src_node"] == "workstation6"
    assert second.args["previous_trail_id"] == first.trail_id and second.args["hop"] == 1
    assert second.args["chain_id"] == first.args["chain_id"]
    assert "started from a host that was itself a target earlier" in second.args["reasons"]
    assert first.args["score"] > second.args["score"] > 0 and first.args["stage"] == "execution"


def test_asset_table_names_hosts_the_capture_does_not(shared_data, tmp_path):
    assets = tmp_path / "assets.csv"
    assets.write_text("ip,name,role,note\n# 10.0.0.1,# ignored,,\n172.18.39.5,ATTACKER-PC.lab,workstation,\n")
    network = list(network_records([_half(shared_data, "schtask_create", "network")]))
    plain = [t for t in fuse_records(network) if t.kind == "trail" and t.args.get("commands")]
    assert plain and not plain[0].src_host
    named = [t for t in fuse_records(network, assets=str(assets)) if t.kind == "trail" and t.args.get("commands")]
    assert named[0].src_host == "ATTACKER-PC.lab" and named[0].args["src_node"] == "attacker-pc"


def test_one_failing_record_does_not_stop_the_run(shared_data, monkeypatch):
    from smbtrail.fusion import joins

    name = "covenant_sharpsc_create_dcerpc_smb_svcctl"
    given = _inputs(shared_data, name, name)
    real = joins.Joiner.register

    def flaky(self, rec):
        if rec.event_id == 4672:
            raise ValueError("odd record")
        return real(self, rec)

    monkeypatch.setattr(joins.Joiner, "register", flaky)
    out = list(fuse_records(given))
    errors = [r for r in out if r.kind == "error" and "fusion left one host_event record unjoined" in r.message]
    assert errors and all(r.partial and ".json" in r.message for r in errors)
    assert sum(r.kind == "host_event" for r in out) == sum(r.kind == "host_event" for r in given)
    assert [r for r in out if r.kind == "command" and r.args.get("service_name") == "Cyb3rWard0g"]


def test_rpc_logon_without_address_joins_the_pipe_open_by_account_and_time(shared_data):
    # An RPC-authenticated call over a named pipe logs its 4624 with IpAddress "-": here the real
    # sharpsc logons with their client socket taken away, so only join 3 (account + target + time
    # to the captured \PIPE\svcctl open) can tie them to the capture.
    name = "covenant_sharpsc_create_dcerpc_smb_svcctl"
    given = _inputs(shared_data, name, name)
    for rec in given:
        if rec.kind == "host_event" and rec.src_port:
            rec.src_ip, rec.src_port = None, None
    out = list(fuse_records(given))
    logons = [r for r in out if r.kind == "host_event" and r.event_id == 4624 and r.user == "pgustavo"]
    assert logons and all(r.join == ["pipe_account_time"] for r in logons)
    pipe_trails = {r.trail_id for r in out if r.kind == "file" and r.path == "svcctl"}
    assert {r.trail_id for r in logons} <= pipe_trails
    installed = [r for r in out if r.kind == "host_event" and r.event_id == 4697]
    assert installed[0].join == ["logon_id", "pipe_account_time"] and installed[0].confidence == 0.75
    created = [r for r in out if r.kind == "command" and r.command == "sc" and r.operation == "create"]
    assert created and created[0].evidence == ["network", "host"] and "pipe_account_time" in created[0].join


def test_records_in_memory_in_any_order_fuse_as_the_stream_does(shared_data):
    name = "covenant_sharpsc_create_dcerpc_smb_svcctl"
    given = _inputs(shared_data, name, name)
    host_first = [r for r in given if "host" in r.evidence] + [r for r in given if "host" not in r.evidence]
    fused = [r for r in fuse_records(host_first) if r.kind == "command" and r.command == "sc"]
    assert len(fused) == 1 and fused[0].evidence == ["network", "host"] and "ip_port" in fused[0].join
