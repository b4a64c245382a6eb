"""The lab's scenarios: which real client runs, what Windows command it stands for, what its trail must hold.

Strings are formatted with the lab's values ({PY}, {BIN}, {SRV}, {USER}, {PW}, {SMBCONF}, ...) at run time.
`operations` are `<interface>.<operation>` as tshark 4.0 names them; `args` are the facts the trail must show.
`command` uses the names of ../shared/seed/paper-matrix.csv (plus `at`, which the paper does not test).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

STAND_IN_TCP_PORT = 49300  # fake_np.py's ncacn_ip_tcp endpoint (svcctl, tsch, atsvc)


@dataclass
class Step:
    argv: List[str]
    stdin: str = ""
    timeout: float = 60


@dataclass
class Scenario:
    id: str
    command: str
    tool: str
    steps: List[Step]
    operations: List[str] = field(default_factory=list)
    args: Dict[str, str] = field(default_factory=dict)
    description: str = ""
    transport: str = "NCACN_NP"
    auth: str = "ntlm"
    stand_in: bool = False
    scope_override: str = ""  # e.g. "server" for impacket, which encrypts whatever the share says
    krb5ccname: str = ""

    def env(self, values: Dict[str, str]) -> Dict[str, str]:
        env = {"PYTHONUNBUFFERED": "1"}
        if self.krb5ccname:
            env["KRB5CCNAME"] = self.krb5ccname.format(**values)
            env["KRB5_CONFIG"] = values["KRB5_CONFIG"]
        return env

    def args_for(self, values: Dict[str, str]) -> Dict[str, str]:
        return {k: v.format(**values) for k, v in self.args.items()}


TARGET = "{USER}:{PW}@{SRV}"


def impacket(script: str, *args: str, target: str = TARGET) -> List[str]:
    return ["{PY}", "{BIN}/" + script, target, *args]


def smbclient(share: str, commands: str, *extra: str) -> List[str]:
    return ["smbclient", "-s", "{SMBCONF}", "//{SRV}/" + share, "-U", "{USER}%{PW}", "-m", "SMB3", *extra,
            "-c", commands]


def rpc(action: str, *args: str) -> List[str]:
    """tests/lab/rpc_client.py: single RPC operations through impacket's library, NTLM."""
    return ["{PY}", "{HERE}/rpc_client.py", "--target", "{SRV}", "--user", "{USER}", "--password", "{PW}",
            action, *args]


SVC = "SmbtLabSvc"
SVC_PATH = r"C:\Windows\Temp\smbt_svc.exe"

STANDALONE: List[Scenario] = [
    Scenario(
        "file_write_smbclient", "write file", "smbclient", [Step(smbclient("C$", "put smbt_payload.exe smbt_payload.exe"))],
        args={"share": "C$", "file": "smbt_payload.exe"},
        description="Samba smbclient uploads a file to C$ (copy x \\\\host\\C$)"),
    Scenario(
        "file_read_smbclient", "read file", "smbclient", [Step(smbclient("C$", "get smbt_payload.exe smbt_back.exe"))],
        args={"share": "C$", "file": "smbt_payload.exe"},
        description="Samba smbclient downloads the file from C$"),
    Scenario(
        "file_delete_smbclient", "delete file", "smbclient", [Step(smbclient("C$", "del smbt_payload.exe"))],
        args={"share": "C$", "file": "smbt_payload.exe"},
        description="Samba smbclient deletes the file on C$ (del \\\\host\\C$\\x)"),
    Scenario(
        "sc_query_services", "sc", "impacket services.py", [Step(impacket("services.py", "list"))],
        operations=["svcctl.OpenSCManagerW", "svcctl.EnumServicesStatusW", "svcctl.CloseServiceHandle"],
        description="sc query: Samba's own svcctl enumerates its services"),
]
