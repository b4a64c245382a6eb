"""smbtrail lab, AD DC mode: provision a Samba AD DC in the server namespace, take Kerberos tickets with MIT
kinit/kvno in the client namespace, run the scenarios with impacket -k (and a few NTLM ones), and keep for each
scenario the DC's JSON audit records (logons with client address and port, account and group changes)."""
from __future__ import annotations

import shutil
import time

import scenarios

import lab

MODE = "addc"
REALM = "SMBTLAB.TEST"


def provision(base) -> None:
    shutil.rmtree(base, ignore_errors=True)
    (base / "etc").mkdir(parents=True)
    (base / "etc/smb.conf").touch()  # provision from an empty file, not from the host's /etc/samba/smb.conf
    t0 = time.time()
    lab.run(lab.in_ns(lab.SRV_NS, [
        "samba-tool", "domain", "provision", f"--configfile={base}/etc/smb.conf", f"--realm={REALM}",
        "--domain=SMBTLAB", "--server-role=dc",
        "--dns-backend=SAMBA_INTERNAL", f"--adminpass={lab.PASSWORD}", f"--targetdir={base}",
        "--host-name=DC01", f"--host-ip={lab.SRV_IP}", f"--option=interfaces=lo {lab.SRV_IF}",
        "--option=bind interfaces only=yes"]))
    lab.log(f"provisioned {REALM} in {time.time() - t0:.0f}s")
    for sub in ("logs", "audit", "pid", "ncalrpc", "share/admin/Temp", "share/c"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "share/c/boot.ini").write_text("[boot loader]\r\n")
    (base / "etc/smb.conf").unlink()
    lab.render(lab.HERE / "conf" / "smb-addc.conf.in", base / "smb.conf",
               {"RUN": str(base), "SRV_IF": lab.SRV_IF})
    lab.render(lab.HERE / "conf" / "krb5.conf.in", base / "krb5.conf", {"SRV_IP": lab.SRV_IP})


def tickets(the_lab: lab.Lab, values) -> None:
    """TGT and cifs ticket into the ccache impacket -k reads (impacket's own TGS-REQ is refused by Samba)."""
    env = {"KRB5_CONFIG": values["KRB5_CONFIG"], "KRB5CCNAME": values["KRB5CCNAME"]}
    for step in scenarios.KINIT_STEPS:
        argv = [a.format(**values) for a in step.argv]
        rc = the_lab.run_client(argv, step.stdin.format(**values), step.timeout, env)
        if rc != 0:
            raise RuntimeError(f"Kerberos setup failed: {' '.join(argv[:2])} rc {rc} (see run/clients.log)")


def run_mode(the_lab: lab.Lab, only: str) -> None:
    chosen = [s for s in scenarios.ADDC if only in s.id]
    if not chosen:
        return
    base = lab.RUN / MODE
    provision(base)
    conf = base / "smb.conf"
    the_lab.procs.start("samba", lab.in_ns(lab.SRV_NS, [
        "samba", "--foreground", "--no-process-group", "-s", str(conf)]), base / "samba.out")
    try:
        for port in (88, 445, 135):
            lab.wait_listening(port, timeout=60)
        time.sleep(2)
        values = the_lab.values(MODE, {
            "KRB5_CONFIG": str(base / "krb5.conf"), "KRB5CCNAME": f"{base}/krb5cc_admin",
            "ACCOUNT": "Administrator", "DC": "DC01.smbtlab.test", "REALM": REALM,
        })
        tickets(the_lab, values)
        logs = lab.LogTail(base / "logs")
        audit = lab.AuditTail(base / "audit" / "audit.json")
        for sc in chosen:
            values["ACCOUNT"] = sc.account or "Administrator"
            the_lab.scenario(sc, MODE, "server", logs, values, audit)
    finally:
        the_lab.procs.stop_all()
