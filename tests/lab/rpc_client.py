#!/usr/bin/env python3
"""smbtrail lab client for what no impacket example script sends: single MS-RPC operations through impacket's
library, over a named pipe (ncacn_np) or TCP (ncacn_ip_tcp, port from the endpoint mapper or given), NTLM.

    rpc_client.py --target IP --user U --password P [--tcp [--port N]] [--level integrity|privacy] ACTION [ARG...]

Actions: at CMD | sc NAME PATH | schtasks NAME CMD | net_user | net_view | reg_query KEY VALUE | wkssvc | tod
"""
from __future__ import annotations

import argparse
import sys
import time

from impacket.dcerpc.v5 import atsvc, epm, rrp, samr, scmr, srvs, transport, tsch, wkst
from impacket.dcerpc.v5.dtypes import NULL
from impacket.dcerpc.v5.rpcrt import RPC_C_AUTHN_LEVEL_PKT_INTEGRITY, RPC_C_AUTHN_LEVEL_PKT_PRIVACY

PIPES = {
    atsvc.MSRPC_UUID_ATSVC: r"\pipe\atsvc", tsch.MSRPC_UUID_TSCHS: r"\pipe\atsvc", scmr.MSRPC_UUID_SCMR: r"\pipe\svcctl",
    samr.MSRPC_UUID_SAMR: r"\pipe\samr", srvs.MSRPC_UUID_SRVS: r"\pipe\srvsvc", rrp.MSRPC_UUID_RRP: r"\pipe\winreg",
    wkst.MSRPC_UUID_WKST: r"\pipe\wkssvc",
}
LEVELS = {"integrity": RPC_C_AUTHN_LEVEL_PKT_INTEGRITY, "privacy": RPC_C_AUTHN_LEVEL_PKT_PRIVACY}


def connect(args, iface: bytes):
    if args.tcp:
        binding = (f"ncacn_ip_tcp:{args.target}[{args.port}]" if args.port
                   else epm.hept_map(args.target, iface, protocol="ncacn_ip_tcp"))
    else:
        binding = f"ncacn_np:{args.target}[{PIPES[iface]}]"
    rpctransport = transport.DCERPCTransportFactory(binding)
    rpctransport.set_credentials(args.user, args.password, args.domain)
    dce = rpctransport.get_dce_rpc()
    if args.tcp or args.level:
        dce.set_credentials(args.user, args.password, args.domain)
        dce.set_auth_level(LEVELS[args.level or "privacy"])
    dce.connect()
    dce.bind(iface)
    print(f"bound {binding}")
    return dce


def at(args, command: str) -> None:
    dce = connect(args, atsvc.MSRPC_UUID_ATSVC)
    info = atsvc.AT_INFO()
    info["JobTime"] = (23 * 3600 + 30 * 60) * 1000  # 23:30 (ms after midnight)
    info["DaysOfMonth"] = 0
    info["DaysOfWeek"] = 0
    info["Flags"] = 0
    info["Command"] = command + "\x00"
    resp = atsvc.hNetrJobAdd(dce, NULL, info)
    print(f"at job id {resp['pJobId']}")


def sc(args, name: str, path: str) -> None:
    dce = connect(args, scmr.MSRPC_UUID_SCMR)
    manager = scmr.hROpenSCManagerW(dce)["lpScHandle"]
    service = scmr.hRCreateServiceW(dce, manager, name + "\x00", name + "\x00",
                                    lpBinaryPathName=path + "\x00")["lpServiceHandle"]
    scmr.hRStartServiceW(dce, service)
    scmr.hRControlService(dce, service, scmr.SERVICE_CONTROL_STOP)
    scmr.hRDeleteService(dce, service)
    scmr.hRCloseServiceHandle(dce, service)
    scmr.hRCloseServiceHandle(dce, manager)
    print(f"service {name} created, started, stopped, deleted")


TASK_XML = """<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <Triggers><TimeTrigger><StartBoundary>2030-01-01T00:00:00</StartBoundary></TimeTrigger></Triggers>
  <Principals><Principal id="LocalSystem"><UserId>S-1-5-18</UserId></Principal></Principals>
  <Actions Context="LocalSystem"><Exec><Command>{command}</Command><Arguments>{arguments}</Arguments></Exec></Actions>
</Task>
"""


def schtasks(args, name: str, command: str, arguments: str = "") -> None:
    dce = connect(args, tsch.MSRPC_UUID_TSCHS)
    path = "\\" + name
    xml = TASK_XML.format(command=command, arguments=arguments)
    tsch.hSchRpcRegisterTask(dce, path, xml, tsch.TASK_CREATE, NULL, tsch.TASK_LOGON_NONE)
    tsch.hSchRpcRun(dce, path)
    tsch.hSchRpcGetLastRunInfo(dce, path)
    tsch.hSchRpcDelete(dce, path)
    print(f"task {path} registered, run, deleted")


def net_user(args) -> None:
    dce = connect(args, samr.MSRPC_UUID_SAMR)
    server = samr.hSamrConnect(dce)["ServerHandle"]
    domains = samr.hSamrEnumerateDomainsInSamServer(dce, server)["Buffer"]["Buffer"]
    name = domains[0]["Name"]
    sid = samr.hSamrLookupDomainInSamServer(dce, server, name)["DomainId"]
    domain = samr.hSamrOpenDomain(dce, server, domainId=sid)["DomainHandle"]
    users = samr.hSamrEnumerateUsersInDomain(dce, domain)["Buffer"]["Buffer"] or []
    print("users:", ", ".join(u["Name"] for u in users))
    samr.hSamrCloseHandle(dce, domain)
    samr.hSamrCloseHandle(dce, server)


def net_view(args) -> None:
    dce = connect(args, srvs.MSRPC_UUID_SRVS)
    shares = srvs.hNetrShareEnum(dce, 1)["InfoStruct"]["ShareInfo"]["Level1"]["Buffer"]
    print("shares:", ", ".join(s["shi1_netname"][:-1] for s in shares))


def reg_query(args, key: str, value: str) -> None:
    dce = connect(args, rrp.MSRPC_UUID_RRP)
    hklm = rrp.hOpenLocalMachine(dce)["phKey"]
    handle = rrp.hBaseRegOpenKey(dce, hklm, key + "\x00")["phkResult"]
    try:
        print("value:", rrp.hBaseRegQueryValue(dce, handle, value + "\x00"))
    except rrp.DCERPCSessionError as exc:
        print("query:", exc)
    rrp.hBaseRegCloseKey(dce, handle)
    rrp.hBaseRegCloseKey(dce, hklm)


def wkssvc(args) -> None:
    dce = connect(args, wkst.MSRPC_UUID_WKST)
    info = wkst.hNetrWkstaGetInfo(dce, 100)["WkstaInfo"]["WkstaInfo100"]
    print("workstation:", info["wki100_computername"], info["wki100_langroup"])


def tod(args) -> None:
    dce = connect(args, srvs.MSRPC_UUID_SRVS)
    resp = srvs.hNetrRemoteTOD(dce)["BufferPtr"]
    print("time of day:", resp["tod_year"], resp["tod_month"], resp["tod_day"], resp["tod_hours"])


ACTIONS = {"at": at, "sc": sc, "schtasks": schtasks, "net_user": net_user, "net_view": net_view,
           "reg_query": reg_query, "wkssvc": wkssvc, "tod": tod}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--domain", default="")
    ap.add_argument("--tcp", action="store_true")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--level", choices=sorted(LEVELS), default="")
    ap.add_argument("action", choices=sorted(ACTIONS))
    ap.add_argument("params", nargs="*")
    args = ap.parse_args()
    t0 = time.time()
    ACTIONS[args.action](args, *args.params)
    print(f"done in {time.time() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
