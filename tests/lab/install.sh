#!/bin/bash
# smbtrail lab: install what the lab needs on Debian 12 (root). Idempotent: a second run changes nothing.
# Writes run/env with LAB_PY (a python with impacket 0.13.1) and LAB_BIN (impacket's example scripts).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
IMPACKET_VERSION=0.13.1
PKGS="samba smbclient winbind samba-ad-dc samba-dsdb-modules samba-vfs-modules krb5-user tshark tcpdump
      iproute2 ldb-tools python3-venv"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "lab install: apt packages:$missing"
    apt-get update -q
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
fi
mkdir -p "$HERE/run"
has_impacket() {  # $1 python: true when it imports impacket $IMPACKET_VERSION
    "$1" -c "import impacket.version as v, sys; sys.exit(v.version != '$IMPACKET_VERSION')" 2>/dev/null
}
PY="$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || true)"
if [ -n "$PY" ] && has_impacket "$PY" && [ -f "$(dirname "$PY")/services.py" ]; then
    LAB_PY="$PY"
    LAB_BIN="$(dirname "$PY")"
else
    VENV="$HERE/run/venv"
    [ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv "$VENV"
    has_impacket "$VENV/bin/python" || "$VENV/bin/pip" install -q "impacket==$IMPACKET_VERSION"
    LAB_PY="$VENV/bin/python"
    LAB_BIN="$VENV/bin"
fi
printf 'LAB_PY=%s\nLAB_BIN=%s\n' "$LAB_PY" "$LAB_BIN" > "$HERE/run/env"
echo "lab install: ok (python $LAB_PY, impacket scripts in $LAB_BIN)"
