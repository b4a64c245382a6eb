#!/bin/bash
# smbtrail lab: remove what a crashed run may have left behind (idempotent). Processes are not matched by
# name: lab.py stops its own by PID; what is left here are the namespaces, /etc/netns entries and accounts.
HERE="$(cd "$(dirname "$0")" && pwd)"
"$HERE/netns.sh" down || true
userdel smbtadmin 2>/dev/null || true
groupdel smbtadmins 2>/dev/null || true
exit 0
