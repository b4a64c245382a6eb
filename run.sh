#!/usr/bin/env bash
# smbtrail set-up and entry points (Debian/Ubuntu). Installs what is missing, then:
#   ./run.sh demo   analyse the lab recordings shipped in tests/fixtures and print the trail
#   ./run.sh test   lint, Python 3.9 compatibility check, and the test suite
set -euo pipefail
cd "$(dirname "$0")"
VENV=${SMBTRAIL_VENV:-.venv}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_packages() {
  local missing=()
  command -v tshark >/dev/null || missing+=(tshark)
  command -v tcpdump >/dev/null || [ -x /usr/sbin/tcpdump ] || missing+=(tcpdump)
  python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "smbtrail: installing ${missing[*]} with apt" >&2
    as_root apt-get update -qq
    echo "wireshark-common wireshark-common/install-setuid boolean false" | as_root debconf-set-selections
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

ensure_venv() {
  if [ ! -x "$VENV/bin/smbtrail" ] || [ pyproject.toml -nt "$VENV/.installed" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' >&2 || true
    "$VENV/bin/pip" install -q -e ".[dev,splunk]" 2>&1 | grep -v '^WARNING: Location' >&2 || true
    "$VENV/bin/smbtrail" --version >/dev/null
    touch "$VENV/.installed"
  fi
}

demo() {
  local lab=tests/fixtures/lab keys="${TMPDIR:-/tmp}/smbtrail-demo.keys" picks=() enc=()
  for name in psexec_impacket smbexec_impacket sc_create_start_stop_delete schtasks_atexec reg_add_impacket \
              net_localgroup_impacket file_write_smbclient; do
    picks+=("$lab/plain/$name.pcapng"); enc+=("$lab/enc-global/$name.pcapng")
  done
  run() { "$VENV/bin/smbtrail" analyze "$@" || [ $? -eq 1 ]; echo; }
  echo "== 1. lab recordings (real Samba + impacket), cleartext =="
  run "${picks[@]}"
  echo "== 2. the same commands under server-wide SMB3 encryption, no keys: what is left, and what the sizes suggest =="
  run "${enc[@]}"
  echo "== 3. the same, with the session keys Samba logged (and the lab password, which unseals atexec's task) =="
  cat "${enc[@]/%.pcapng/.keys}" > "$keys"
  SMBTRAIL_DEMO_PW='Lab-Passw0rd!' run "${enc[@]}" --keys "$keys" --password-env SMBTRAIL_DEMO_PW
  echo "== 4. fused: Kerberos session to an AD DC (encrypted) + the DC's own audit log =="
  run "$lab/addc/krb_kinit_kvno.pcapng" "$lab/addc/krb_net_user_add.pcapng" \
      --hostlog "$lab/addc/krb_net_user_add.audit.jsonl"
  rm -f "$keys"
}

tests() {
  "$VENV/bin/ruff" check src tests bench
  "$VENV/bin/vermin" -q -t=3.9- --no-tips --violations --eval-annotations src/smbtrail
  "$VENV/bin/python" -m pytest "$@"
}

ensure_packages
ensure_venv
case "${1:-demo}" in
  demo) demo ;;
  test) shift; tests "$@" ;;
  *) echo "usage: $0 demo|test" >&2; exit 2 ;;
esac
