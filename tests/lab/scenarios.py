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
    account: str = ""  # the account the client logs on as, when not the lab default

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


def rpc(action: str, *params: str, opts: List[str] = ()) -> List[str]:
    """tests/lab/rpc_client.py: single RPC operations through impacket's library, NTLM."""
    return ["{PY}", "{HERE}/rpc_client.py", "--target", "{SRV}", "--user", "{USER}", "--password", "{PW}",
            *opts, action, *params]


def samba_net(*args: str) -> List[str]:
    """Samba's `net rpc ...` client, NTLM."""
    return ["net", "-s", "{SMBCONF}", "rpc", *args, "-S", "{SRV}", "-U", "{USER}%{PW}"]


def rpcclient(commands: str) -> List[str]:
    return ["rpcclient", "-s", "{SMBCONF}", "-U", "{USER}%{PW}", "-c", commands, "{SRV}"]


SVC = "SmbtLabSvc"
TSCH_OPS = [f"taskschedulerservice.SchRpc{op}" for op in ("RegisterTask", "Run", "GetLastRunInfo", "Delete")]
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

STANDALONE += [
    Scenario(
        "sc_create_start_stop_delete", "sc", "impacket services.py", [
            Step(impacket("services.py", "create", "-name", SVC, "-display", "Smbt Lab Service", "-path", SVC_PATH)),
            Step(impacket("services.py", "start", "-name", SVC)),
            Step(impacket("services.py", "stop", "-name", SVC)),
            Step(impacket("services.py", "delete", "-name", SVC)),
        ],
        operations=["svcctl.OpenSCManagerW", "svcctl.CreateServiceW", "svcctl.OpenServiceW", "svcctl.StartServiceW",
                    "svcctl.ControlService", "svcctl.DeleteService", "svcctl.CloseServiceHandle"],
        args={"service": SVC, "binary_path": SVC_PATH},
        stand_in=True,
        description="sc create/start/stop/delete; svcctl answered by the stand-in (Samba lacks CreateServiceW)"),
    Scenario(
        "schtasks_atexec", "schtasks", "impacket atexec.py", [Step(impacket("atexec.py", "whoami"))],
        operations=TSCH_OPS,
        args={"task_command": "cmd.exe", "task_arguments": "/C whoami > %windir%\\Temp\\"},
        stand_in=True,
        description="schtasks /create /run /delete (atexec: ITaskSchedulerService over \\pipe\\atsvc at PKT_PRIVACY),"
                    " answered by the stand-in; then the output file is read from ADMIN$\\Temp and deleted"),
]

REG_KEY = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run"  # created by lab.py
REG_VALUE, REG_DATA = "SmbtRun", r"C:\Windows\Temp\smbt_reg.exe"
CURRENT_VERSION = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion"


def subkey(path: str) -> str:
    """The key path as the client sends it after OpenHKLM/OpenHKU (the hive is the operation, not a string)."""
    return path.split("\\", 1)[1]


AT_COMMAND = r"C:\Windows\Temp\smbt_at.exe"
TCP_SVC, TCP_TASK = "SmbtTcpSvc", "SmbtTcpTask"
TCP_TASK_CMD = r"C:\Windows\Temp\smbt_task.exe"

STANDALONE += [
    Scenario(
        "file_write_impacket", "write file", "impacket smbclient.py",
        [Step(impacket("smbclient.py", "-inputfile", "{CLI_DIR}/imp_write.txt"))],
        args={"share": "C$", "file": "smbt_notes.txt"},
        description="impacket smbclient.py: use C$, put smbt_notes.txt"),
    Scenario(
        "file_read_impacket", "read file", "impacket smbclient.py",
        [Step(impacket("smbclient.py", "-inputfile", "{CLI_DIR}/imp_read.txt"))],
        args={"share": "C$", "file": "smbt_notes.txt"},
        description="impacket smbclient.py: use C$, get smbt_notes.txt"),
    Scenario(
        "file_delete_impacket", "delete file", "impacket smbclient.py",
        [Step(impacket("smbclient.py", "-inputfile", "{CLI_DIR}/imp_delete.txt"))],
        args={"share": "C$", "file": "smbt_notes.txt"},
        description="impacket smbclient.py: use C$, rm smbt_notes.txt"),
    Scenario(
        "net_use_smbclient", "net use", "smbclient", [Step(smbclient("C$", "ls"))],
        args={"share": "C$"},
        description="net use \\\\host\\C$: tree connect to C$ and list it"),
    Scenario(
        "net_view_smbclient", "net view", "smbclient",
        [Step(["smbclient", "-s", "{SMBCONF}", "-L", "//{SRV}", "-U", "{USER}%{PW}", "-m", "SMB3"])],
        operations=["srvsvc.NetShareEnumAll"],
        description="net view \\\\host: srvsvc NetShareEnumAll"),
    Scenario(
        "net_user_impacket", "net user", "impacket net.py", [Step(impacket("net.py", "user"))],
        operations=["samr.Connect", "samr.EnumDomains", "samr.LookupDomain", "samr.OpenDomain",
                    "samr.EnumDomainUsers"],
        description="net user: SAMR user enumeration"),
    Scenario(
        "net_user_samba", "net user", "samba net rpc", [Step(samba_net("user"))],
        operations=["samr.Connect5", "samr.OpenDomain", "samr.QueryDisplayInfo2"],
        description="net user through Samba's own client (net rpc user)"),
    Scenario(
        "net_group_impacket", "net group", "impacket net.py", [Step(impacket("net.py", "group"))],
        operations=["samr.EnumDomainGroups"],
        description="net group: SAMR group enumeration"),
    Scenario(
        "net_localgroup_impacket", "net localgroup", "impacket net.py",
        [Step(impacket("net.py", "localgroup", "-name", "Administrators"))],
        operations=["samr.OpenAlias", "samr.GetMembersInAlias"], args={"group": "Administrators"},
        description="net localgroup Administrators: SAMR alias members"),
    Scenario(
        "psgetsid_rpcclient", "psgetsid", "rpcclient",
        [Step(rpcclient("lookupnames {USER}; lookupsids S-1-5-32-544"))],
        operations=["lsarpc.lsa_OpenPolicy", "lsarpc.lsa_LookupNames", "lsarpc.lsa_LookupSids"],
        args={"account": "{USER}", "sid": "S-1-5-32-544"},
        description="psgetsid \\\\host user: LSA name->SID and SID->name lookups (impacket lookupsid.py stops at"
                    " Samba's missing lsa_QueryInfoPolicy2, so Samba's rpcclient is used)"),
    Scenario(
        "psservice_status", "psservice", "impacket services.py",
        [Step(impacket("services.py", "status", "-name", "RemoteRegistry"))],
        operations=["svcctl.OpenSCManagerW", "svcctl.OpenServiceW", "svcctl.QueryServiceStatus"],
        args={"service": "RemoteRegistry"},
        description="psservice query stand-in: status of one service through Samba's svcctl"),
    Scenario(
        "reg_query_impacket", "reg", "impacket reg.py",
        [Step(impacket("reg.py", "query", "-keyName", CURRENT_VERSION))],
        operations=["winreg.OpenHKLM", "winreg.OpenKey", "winreg.EnumValue"],
        args={"key": subkey(CURRENT_VERSION)},
        description="reg query \\\\host\\HKLM\\...\\CurrentVersion"),
    Scenario(
        "reg_add_impacket", "reg", "impacket reg.py",
        [Step(impacket("reg.py", "add", "-keyName", REG_KEY, "-v", REG_VALUE, "-vt", "REG_SZ", "-vd", REG_DATA))],
        operations=["winreg.OpenHKLM", "winreg.OpenKey", "winreg.SetValue"],
        args={"key": subkey(REG_KEY), "value": REG_VALUE, "data": REG_DATA},
        description="reg add \\\\host\\HKLM\\...\\CurrentVersion\\Run /v SmbtRun /d C:\\...\\smbt_reg.exe"),
    Scenario(
        "reg_delete_impacket", "reg", "impacket reg.py",
        [Step(impacket("reg.py", "delete", "-keyName", REG_KEY, "-v", REG_VALUE))],
        operations=["winreg.OpenHKLM", "winreg.OpenKey", "winreg.DeleteValue"],
        args={"key": subkey(REG_KEY), "value": REG_VALUE},
        description="reg delete \\\\host\\HKLM\\...\\CurrentVersion\\Run /v SmbtRun"),
    Scenario(
        "reg_save_impacket", "reg", "impacket reg.py",
        [Step(impacket("reg.py", "save", "-keyName", r"HKLM\SYSTEM", "-o", r"\\{SRV}\C$"))],
        operations=["winreg.OpenHKLM", "winreg.OpenKey", "winreg.SaveKey"], args={"key": "SYSTEM"},
        description="reg save HKLM\\SYSTEM \\\\host\\C$ (Samba refuses the save; the request is on the wire)"),
    Scenario(
        "psfile_net_rpc", "psfile", "samba net rpc", [Step(samba_net("file"))],
        operations=["srvsvc.NetFileEnum"],
        description="psfile stand-in: srvsvc NetFileEnum (open files) through Samba's net rpc file"),
    Scenario(
        "psinfo_rpcclient_reg", "psinfo", "rpcclient + impacket reg.py", [
            Step(rpcclient("srvinfo")),
            Step(impacket("reg.py", "query", "-keyName", CURRENT_VERSION, "-v", "CurrentVersion")),
        ],
        operations=["srvsvc.NetSrvGetInfo", "winreg.OpenHKLM", "winreg.OpenKey", "winreg.QueryValue"],
        args={"key": subkey(CURRENT_VERSION)},
        description="psinfo stand-in: server info (srvsvc) and the CurrentVersion key (winreg)"),
    Scenario(
        "psloggedon_rpcclient_reg", "psloggedon", "rpcclient + impacket reg.py", [
            Step(rpcclient("netsessenum")),
            Step(impacket("reg.py", "query", "-keyName", "HKU")),
        ],
        operations=["srvsvc.NetSessEnum", "winreg.OpenHKU", "winreg.EnumKey"],
        description="psloggedon stand-in: srvsvc NetSessionEnum and the HKU subkeys (winreg)"),
    Scenario(
        "psloglist_rpcclient", "psloglist", "rpcclient",
        [Step(rpcclient("eventlog_numrecord System; eventlog_readlog System"))],
        operations=["eventlog.OpenEventLogW"],
        args={"log": "System"},
        description="psloglist stand-in: eventlog pipe, open System log and read records"),
    Scenario(
        "psshutdown_net_rpc", "psshutdown", "samba net rpc", [
            Step(samba_net("shutdown", "-t", "600", "-C", "smbtrail lab shutdown")),
            Step(samba_net("abortshutdown")),
        ],
        operations=["initshutdown.Init"], args={"message": "smbtrail lab shutdown"},
        description="psshutdown stand-in: InitShutdown (then abort) through Samba's net rpc shutdown"),
    Scenario(
        "pspasswd_changepasswd", "pspasswd", "impacket changepasswd.py",
        [Step(impacket("changepasswd.py", "-newpass", "{PW}"))],
        operations=["samr.ChangePasswordUser2"], args={"account": "{USER}"},
        description="pspasswd stand-in: the account sets its password (to the same lab password) over SAMR"),
    Scenario(
        "net_time_tod", "net time", "rpc_client.py (impacket)", [Step(rpc("tod"))],
        operations=["srvsvc.NetRemoteTOD"],
        description="net time \\\\host: srvsvc NetrRemoteTOD"),
    Scenario(
        "psexec_impacket", "psexec", "impacket psexec.py",
        [Step(impacket("psexec.py", "whoami"), timeout=12)],
        operations=["srvsvc.NetShareEnumAll", "svcctl.OpenSCManagerW", "svcctl.CreateServiceW",
                    "svcctl.StartServiceW"],
        stand_in=True,
        description="PsExec-style: share enum, upload of a random .exe to ADMIN$, create+start a service "
                    "(stand-in svcctl); RemCom pipes are not emulated, so the lab stops it after 12 s"),
    Scenario(
        "smbexec_impacket", "smbexec", "impacket smbexec.py",
        [Step(impacket("smbexec.py"), stdin="whoami\nexit\n", timeout=30)],
        operations=["svcctl.OpenSCManagerW", "svcctl.CreateServiceW", "svcctl.StartServiceW",
                    "svcctl.DeleteService"],
        args={"binary_path": "%COMSPEC% /Q /c echo whoami ^>"},
        stand_in=True,
        description="smbexec: one service per command (stand-in svcctl), output read from C$\\__output_*"),
    Scenario(
        "at_netrjobadd", "at", "rpc_client.py (impacket)", [Step(rpc("at", AT_COMMAND))],
        operations=["atsvc.JobAdd"], args={"task_command": AT_COMMAND},
        stand_in=True,
        description="at \\\\host 23:30 C:\\...\\smbt_at.exe: legacy ATSVC NetrJobAdd (stand-in)"),
    Scenario(
        "sc_tcp_privacy", "sc", "rpc_client.py (impacket)",
        [Step(rpc("sc", TCP_SVC, SVC_PATH, opts=["--tcp", "--port", str(STAND_IN_TCP_PORT), "--level", "privacy"]))],
        operations=["svcctl.OpenSCManagerW", "svcctl.CreateServiceW", "svcctl.StartServiceW",
                    "svcctl.ControlService", "svcctl.DeleteService"],
        args={"service": TCP_SVC, "binary_path": SVC_PATH}, transport="NCACN_IP_TCP", stand_in=True,
        description="sc over ncacn_ip_tcp, NTLM PKT_PRIVACY (stand-in endpoint, no endpoint mapper)"),
    Scenario(
        "schtasks_tcp_privacy", "schtasks", "rpc_client.py (impacket)",
        [Step(rpc("schtasks", TCP_TASK, TCP_TASK_CMD,
                  opts=["--tcp", "--port", str(STAND_IN_TCP_PORT), "--level", "privacy"]))],
        operations=TSCH_OPS,
        args={"task": TCP_TASK, "task_command": TCP_TASK_CMD}, transport="NCACN_IP_TCP", stand_in=True,
        description="schtasks over ncacn_ip_tcp, NTLM PKT_PRIVACY (stand-in endpoint)"),
]

WRONG_PW = "Winter2026!"  # the password a spray tries: no lab account has it


def smb_logon(account: str, password: str, share: str = "IPC$", domain: str = "SMBTLAB") -> Step:
    """One NTLM logon by Samba's smbclient (Kerberos off): refused when the password is wrong."""
    return Step(["smbclient", "-s", "{SMBCONF}", "//{SRV}/" + share, "-U", f"{domain}\\{account}%{password}",
                 "--use-kerberos=off", "-m", "SMB3", "-c", "ls"], timeout=15)


STANDALONE_SPRAYED = ["{USER}", "administrator", "guest", "smbtnobody"]
STANDALONE += [
    Scenario(
        "failed_logon_ntlm_spray", "logon", "smbclient", [smb_logon(a, WRONG_PW) for a in STANDALONE_SPRAYED],
        args={"account": "smbtnobody"},
        description="password spray over NTLM: one wrong password tried for 4 accounts (2 unknown), each refused "
                    "with STATUS_LOGON_FAILURE; the trail lists every account tried"),
]

for _level in ("integrity", "privacy"):
    _tcp = ["--tcp", "--level", _level]
    STANDALONE += [
        Scenario(
            f"net_user_tcp_{_level}", "net user", "rpc_client.py (impacket)", [Step(rpc("net_user", opts=_tcp))],
            operations=["epm.Map", "samr.Connect", "samr.EnumDomains", "samr.LookupDomain", "samr.OpenDomain",
                        "samr.EnumDomainUsers"],
            transport="NCACN_IP_TCP", description=f"SAMR over TCP via the endpoint mapper, NTLM {_level}"),
        Scenario(
            f"net_view_tcp_{_level}", "net view", "rpc_client.py (impacket)", [Step(rpc("net_view", opts=_tcp))],
            operations=["epm.Map", "srvsvc.NetShareEnumAll"],
            transport="NCACN_IP_TCP", description=f"srvsvc over TCP via the endpoint mapper, NTLM {_level}"),
        Scenario(
            f"reg_query_tcp_{_level}", "reg", "rpc_client.py (impacket)",
            [Step(rpc("reg_query", CURRENT_VERSION.split("\\", 1)[1], "CurrentVersion", opts=_tcp))],
            operations=["epm.Map", "winreg.OpenHKLM", "winreg.OpenKey", "winreg.QueryValue"],
            args={"key": subkey(CURRENT_VERSION)},
            transport="NCACN_IP_TCP", description=f"winreg over TCP via the endpoint mapper, NTLM {_level}"),
        Scenario(
            f"wkssvc_tcp_{_level}", "psinfo", "rpc_client.py (impacket)", [Step(rpc("wkssvc", opts=_tcp))],
            operations=["epm.Map", "wkssvc.NetWkstaGetInfo"],
            transport="NCACN_IP_TCP", description=f"wkssvc over TCP via the endpoint mapper, NTLM {_level}"),
    ]

# ---------------------------------------------------------------- AD DC (Kerberos)

KTARGET = "SMBTLAB.TEST/Administrator@DC01.smbtlab.test"
KRB = ["-k", "-no-pass", "-dc-ip", "{SRV}", "-target-ip", "{SRV}"]
NTARGET = "SMBTLAB/Administrator:{PW}@{SRV}"
NEW_USER, NEW_USER_PW = "smbtuser1", "Lab-User1-Passw0rd!"
KINIT_STEPS = [
    Step(["kinit", "Administrator@SMBTLAB.TEST"], stdin="{PW}\n"),
    Step(["kvno", "cifs/DC01.smbtlab.test@SMBTLAB.TEST"]),
]


def kimpacket(script: str, *args: str) -> List[str]:
    return impacket(script, *KRB, *args, target=KTARGET)


def addc(id: str, command: str, tool: str, steps: List[Step], **kw) -> Scenario:
    kw.setdefault("auth", "kerberos")
    return Scenario(id, command, tool, steps, krb5ccname="{KRB5CCNAME}", account="Administrator", **kw)


ADDC: List[Scenario] = [
    addc("krb_kinit_kvno", "logon", "MIT kinit + kvno", KINIT_STEPS,
         args={"account": "Administrator", "realm": "SMBTLAB.TEST", "service": "cifs"},
         description="Kerberos AS-REQ and TGS-REQ for cifs/DC01 (the DC audits both with the client address)"),
    addc("krb_net_use_smbclient", "net use", "smbclient (Kerberos)",
         [Step(["smbclient", "-s", "{SMBCONF}", "//DC01.smbtlab.test/C$", "--use-kerberos=required",
                "--use-krb5-ccache=FILE:{KRB5CCNAME}", "-m", "SMB3", "-c", "ls"])],
         args={"share": "C$"},
         description="net use \\\\DC01\\C$ with Kerberos by Samba's smbclient (AES-128-GCM)"),
    addc("krb_file_write_impacket", "write file", "impacket smbclient.py -k",
         [Step(kimpacket("smbclient.py", "-inputfile", "{CLI_DIR}/imp_write.txt"))],
         args={"share": "C$", "file": "smbt_notes.txt"}, description="Kerberos session: put C$\\smbt_notes.txt"),
    addc("krb_file_read_impacket", "read file", "impacket smbclient.py -k",
         [Step(kimpacket("smbclient.py", "-inputfile", "{CLI_DIR}/imp_read.txt"))],
         args={"share": "C$", "file": "smbt_notes.txt"}, description="Kerberos session: get C$\\smbt_notes.txt"),
    addc("krb_file_delete_impacket", "delete file", "impacket smbclient.py -k",
         [Step(kimpacket("smbclient.py", "-inputfile", "{CLI_DIR}/imp_delete.txt"))],
         args={"share": "C$", "file": "smbt_notes.txt"}, description="Kerberos session: rm C$\\smbt_notes.txt"),
    addc("krb_sc_query", "sc", "impacket services.py -k", [Step(kimpacket("services.py", "list"))],
         operations=["svcctl.OpenSCManagerW", "svcctl.EnumServicesStatusW"],
         description="sc query over a Kerberos session (DC's svcctl)"),
    addc("krb_reg_query", "reg", "impacket reg.py -k",
         [Step(kimpacket("reg.py", "query", "-keyName", CURRENT_VERSION))],
         operations=["winreg.OpenHKLM", "winreg.OpenKey", "winreg.EnumValue"],
         args={"key": subkey(CURRENT_VERSION)},
         description="reg query over a Kerberos session"),
    addc("krb_net_user", "net user", "impacket net.py -k", [Step(kimpacket("net.py", "user"))],
         operations=["samr.Connect", "samr.EnumDomainUsers"], description="net user /domain over Kerberos"),
    addc("krb_net_user_add", "net user", "impacket net.py -k",
         [Step(kimpacket("net.py", "user", "-create", NEW_USER, "-newPasswd", NEW_USER_PW))],
         operations=["samr.Connect", "samr.OpenDomain", "samr.CreateUser2", "samr.SetUserInfo2"],
         args={"account": NEW_USER},
         description="net user smbtuser1 * /add /domain: SAMR CreateUser2 + password; the DC audits the add"),
    addc("krb_net_group_addmem", "net group", "impacket net.py -k",
         [Step(kimpacket("net.py", "group", "-name", "Domain Admins", "-join", NEW_USER))],
         operations=["samr.OpenGroup", "samr.AddGroupMember"], args={"group": "Domain Admins", "account": NEW_USER},
         description="net group \"Domain Admins\" smbtuser1 /add /domain; the DC audits the membership change"),
    addc("krb_net_localgroup_addmem", "net localgroup", "impacket net.py -k",
         [Step(kimpacket("net.py", "localgroup", "-name", "Administrators", "-join", NEW_USER))],
         operations=["samr.OpenAlias", "samr.AddAliasMember"], args={"group": "Administrators", "account": NEW_USER},
         description="net localgroup Administrators smbtuser1 /add (builtin alias on the DC)"),
    addc("ntlm_net_user", "net user", "impacket net.py", [Step(impacket("net.py", "user", target=NTARGET))],
         operations=["samr.Connect", "samr.EnumDomainUsers"], auth="ntlm",
         description="net user over an NTLM session: the DC audits the NTLM logon with client address/port"),
    addc("ntlm_net_user_tcp_privacy", "net user", "rpc_client.py (impacket)",
         [Step(["{PY}", "{HERE}/rpc_client.py", "--target", "{SRV}", "--user", "Administrator", "--domain", "SMBTLAB",
                "--password", "{PW}", "--tcp", "--level", "privacy", "net_user"])],
         operations=["epm.Map", "samr.Connect", "samr.EnumDomainUsers"], auth="ntlm", transport="NCACN_IP_TCP",
         description="SAMR over TCP at NTLM PKT_PRIVACY against the DC"),
    addc("krb_net_user_delete", "net user", "impacket net.py -k",
         [Step(kimpacket("net.py", "user", "-remove", NEW_USER))],
         operations=["samr.OpenUser", "samr.DeleteUser"], args={"account": NEW_USER},
         description="net user smbtuser1 /delete /domain; the DC audits the delete"),
]

DC_SPRAYED = ["Administrator", "Guest", "smbtnobody", "smbtsvc"]  # Guest is disabled; the last two do not exist
KRB_SPRAY_CC = "{MODE_RUN}/krb5cc_spray"  # kinit's failures must not touch the Administrator ccache


def kinit(account: str, password: str) -> Step:
    return Step(["kinit", f"{account}@SMBTLAB.TEST"], stdin=password + "\n", timeout=15)


ADDC += [
    Scenario(
        "failed_logon_ntlm_spray", "logon", "smbclient", [smb_logon(a, WRONG_PW, "C$") for a in DC_SPRAYED],
        args={"account": "smbtnobody"}, account="Administrator",
        description="password spray over NTLM against the DC: one wrong password for 4 accounts; the DC audits "
                    "each failure with its cause (wrong password, disabled, no such user) and the client port"),
    Scenario(
        "failed_logon_ntlm_brute", "logon", "smbclient",
        [smb_logon("Administrator", f"{WRONG_PW[:-1]}{n}") for n in range(5)] + [smb_logon("Administrator", "{PW}")],
        args={"account": "Administrator"}, account="Administrator",
        description="brute force over NTLM: 5 wrong passwords for Administrator, then the right one (the guess "
                    "that worked logs on)"),
    Scenario(
        "failed_logon_krb_spray", "logon", "MIT kinit", [kinit(a, WRONG_PW) for a in DC_SPRAYED],
        args={"account": "smbtnobody"}, auth="kerberos", krb5ccname=KRB_SPRAY_CC, account="Administrator",
        description="password spray over Kerberos: AS-REQ with a wrong password for 4 accounts; the KDC answers "
                    "KDC_ERR_PREAUTH_FAILED or KDC_ERR_C_PRINCIPAL_UNKNOWN and audits each failure"),
]

ADDC += [
    Scenario(
        "creds_dcsync_secretsdump", "dcsync", "impacket secretsdump.py",
        [Step(impacket("secretsdump.py", "-just-dc-user", "SMBTLAB/Administrator", target=NTARGET), timeout=60)],
        operations=["drsuapi.DsBind", "drsuapi.DsGetNCChanges"], args={"account": "Administrator"}, auth="ntlm",
        transport="NCACN_IP_TCP", account="Administrator",
        description="DCSync: DRSUAPI DsGetNCChanges for one account (secretsdump -just-dc-user) over TCP, "
                    "NTLM PKT_PRIVACY (the password unseals it)"),
    Scenario(
        "creds_lsa_secrets_rpcclient", "lsa secret", "rpcclient",
        [Step(["rpcclient", "-s", "{SMBCONF}", "-U", "SMBTLAB\\Administrator%{PW}", "-c",
               "querysecret G$BCKUPKEY_PREFERRED; retrieveprivatedata G$BCKUPKEY_P", "{SRV}"])],
        operations=["lsarpc.lsa_OpenSecret", "lsarpc.lsa_RetrievePrivateData"],  # Samba: no such secret, no opnum 43
        args={"secret": "G$BCKUPKEY_PREFERRED"}, auth="ntlm", account="Administrator",
        description="LSA secrets read remotely: the DPAPI domain backup key's secrets (lsadump::backupkeys, "
                    "LsarOpenSecret + LsarQuerySecret, LsarRetrievePrivateData)"),
]

# ---------------------------------------------------------------- the paper's 22 commands and what the lab lacks

PAPER_COMMANDS = [
    "net view", "net user", "net group", "net localgroup", "net use", "sc", "schtasks", "reg", "psfile", "psgetsid",
    "psinfo", "pskill", "pslist", "psloggedon", "psloglist", "pspasswd", "psservice", "psshutdown", "pssuspend",
    "read file", "write file", "delete file",
]
SYSINTERNALS = ("Sysinternals-only: {0} talks to its own remote service (PSEXESVC-style), which has no open-source "
                "client or server; no Samba or impacket tool sends the same operations")
UNREPRODUCIBLE = {
    "pskill": SYSINTERNALS.format("pskill"),
    "pslist": SYSINTERNALS.format("pslist") + " (its performance-counter registry reads are not served by Samba)",
    "pssuspend": SYSINTERNALS.format("pssuspend"),
}
NO_TCP = ("not reproduced over ncacn_ip_tcp: the lab's clients for this command use named pipes or plain SMB "
          "(Samba serves svcctl, lsarpc, eventlog and InitShutdown over named pipes only; see tests/lab/README.md)")
# encryption scope of a paper cell -> the lab mode that reproduces it
SCOPE_MODES = {"server": ("enc-global", "addc"), "share": ("enc-share",)}
