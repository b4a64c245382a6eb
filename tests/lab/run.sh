#!/bin/bash
# smbtrail lab: regenerate tests/fixtures/lab (root, Debian 12). One command:
#   sudo tests/lab/run.sh                 # install what is missing, then every mode and scenario
#   sudo tests/lab/run.sh --modes plain --only file_   # a subset (other manifest rows are kept)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
[ "$(id -u)" = 0 ] || { echo "run.sh: needs root" >&2; exit 1; }
"$HERE/install.sh"
trap '"$HERE/cleanup.sh"' EXIT
python3 "$HERE/lab.py" "$@"
