#!/usr/bin/env bash
# Build dist/smbtrail-<version>.tgz: the Splunk app with the engine and its dependencies vendored
# under bin/lib for CPython 3.9 and 3.13 on Linux x86_64 and aarch64 (pydantic-core: one .so per
# ABI and CPU, side by side; Python loads the one whose suffix matches).
# Needs only a package registry (PyPI) besides this checkout. Build tools go to their own venv.
#   SMBTRAIL_BUILD_DIR  work dir (default: build/), reused between runs (venvs, downloads)
#   SMBTRAIL_DIST_DIR   output dir (default: dist/)
# With --inspect, also run splunk-appinspect (own venv) on the package: JSON reports in the build dir.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD="${SMBTRAIL_BUILD_DIR:-$ROOT/build}"
DIST="${SMBTRAIL_DIST_DIR:-$ROOT/dist}"
PY="${PYTHON:-python3}"
APP=smbtrail
PYDANTIC=2.13.4        # the last pydantic line that imports on Python 3.9
PYDANTIC_CORE=2.46.4   # must equal pydantic's pin
SPLUNK_SDK=2.1.1
SIGMA_PKGS="sigma-cli==3.1.0 pysigma-backend-splunk==2.1.0"
APPINSPECT_PKG="splunk-appinspect==4.3.1"
# pinned to releases that still import on Python 3.9 (newer ones declare >=3.10, not always honored)
PURE_PINS=(typing-inspection==0.4.2 annotated-types==0.7.0 typing-extensions==4.15.0 packaging==24.2 deprecation==2.1.0)
PIP_QUIET=(--quiet --disable-pip-version-check --no-input)

VERSION="$("$PY" -c 'import re,sys;print(re.search(r"(?m)^version\s*=\s*\"([^\"]+)\"", open(sys.argv[1]).read()).group(1))' "$ROOT/pyproject.toml")"
STAGE="$BUILD/pkg/$APP"
LIB="$STAGE/bin/lib"

say() { echo "package.sh: $*" >&2; }

stage_files() {
    rm -rf "$BUILD/pkg" && mkdir -p "$STAGE/bin" "$STAGE/lookups"
    cp -R "$ROOT/default" "$STAGE/default"
    cp -R "$ROOT/app/metadata" "$ROOT/app/README" "$STAGE/"
    cp "$ROOT/app/README.md" "$ROOT/app/app.manifest" "$STAGE/"
    [ -d "$ROOT/app/static" ] && cp -R "$ROOT/app/static" "$STAGE/static"
    cp "$ROOT"/bin/*.py "$STAGE/bin/"
    if compgen -G "$ROOT/lookups/*.csv" >/dev/null; then cp "$ROOT"/lookups/*.csv "$STAGE/lookups/"; fi
    PYTHONPATH="$ROOT/src" "$PY" -m smbtrail.splunk.appbuild "$STAGE" "$VERSION"
}

sigma_alerts() {
    local venv="$BUILD/venv-sigma"
    if [ ! -x "$venv/bin/sigma" ]; then
        say "creating $venv"
        "$PY" -m venv "$venv"
        # shellcheck disable=SC2086
        "$venv/bin/pip" install "${PIP_QUIET[@]}" $SIGMA_PKGS
    fi
    "$venv/bin/sigma" check -x attacktag -x d3_fendtag "$ROOT/sigma/rules" >&2
    "$venv/bin/python" "$ROOT/sigma/build_savedsearches.py" "$ROOT/sigma/rules" \
        "$ROOT/sigma/pipelines/smbtrail_splunk.yml" "$STAGE/default/savedsearches.conf" "$STAGE/default/macros.conf"
}

vendor() {
    mkdir -p "$LIB"
    local wheels="$BUILD/wheels"
    mkdir -p "$wheels"
    # pure-Python sdists (no wheels on PyPI), then wheels resolved for the oldest Python we support
    "$PY" -m pip install "${PIP_QUIET[@]}" --root-user-action=ignore --no-compile --target "$LIB" \
        --no-deps "splunk-sdk==$SPLUNK_SDK" python-evtx hexdump
    "$PY" -m pip install "${PIP_QUIET[@]}" --root-user-action=ignore --no-compile --target "$LIB" \
        --only-binary=:all: --python-version 3.9 --implementation cp --abi cp39 \
        --platform manylinux2014_x86_64 --upgrade "pydantic==$PYDANTIC" "${PURE_PINS[@]}"
    # pydantic-core: one compiled module per CPython ABI and CPU, side by side in one package
    for arch in x86_64 aarch64; do
        for abi in 39 313; do
            "$PY" -m pip download "${PIP_QUIET[@]}" --no-deps --only-binary=:all: --dest "$wheels" \
                --platform "manylinux2014_$arch" --implementation cp --python-version "${abi:0:1}.${abi:1}" \
                --abi "cp$abi" "pydantic-core==$PYDANTIC_CORE"
        done
    done
    for whl in "$wheels"/pydantic_core-"$PYDANTIC_CORE"-cp*-manylinux*.whl; do
        "$PY" -m zipfile -e "$whl" "$LIB"
    done
    # the engine itself (tests and build helpers stay out)
    cp -R "$ROOT/src/$APP" "$LIB/$APP"
}

clean_tree() {
    find "$STAGE" \( -name __pycache__ -o -name '*.pyc' -o -name '*.pyo' \) -prune -exec rm -rf {} +
    rm -rf "$LIB/bin" "$LIB/data" "$STAGE/local"
    find "$STAGE" -name '*.dist-info' -type d -exec sh -c 'rm -f "$1"/RECORD "$1"/INSTALLER "$1"/REQUESTED "$1"/direct_url.json' _ {} \;
    find "$STAGE" -type d -exec chmod 755 {} +
    find "$STAGE" -type f -exec chmod 644 {} +
}

inspect() {
    local venv="$BUILD/venv-appinspect" out="$1"
    if [ ! -x "$venv/bin/splunk-appinspect" ]; then
        say "creating $venv"
        "$PY" -m venv "$venv"
        "$venv/bin/pip" install "${PIP_QUIET[@]}" "$APPINSPECT_PKG"
    fi
    # all default checks, then the same without the aarch64 binary check (see README: AppInspect)
    local code=0
    "$venv/bin/splunk-appinspect" inspect "$out" --mode test --ci --skip-trusted-libraries-update \
        --data-format json --output-file "$BUILD/appinspect.json" >"$BUILD/appinspect.log" 2>&1 || code=$?
    say "appinspect (all checks): exit $code, report $BUILD/appinspect.json"
    code=0
    "$venv/bin/splunk-appinspect" inspect "$out" --mode test --ci --skip-trusted-libraries-update \
        --excluded-tags aarch64_compatibility --data-format json \
        --output-file "$BUILD/appinspect-no-aarch64.json" >"$BUILD/appinspect-no-aarch64.log" 2>&1 || code=$?
    say "appinspect (without aarch64_compatibility): exit $code, report $BUILD/appinspect-no-aarch64.json"
    [ "$code" = 0 ] || [ "$code" = 103 ]  # 103: warnings only
}

main() {
    say "building $APP $VERSION"
    stage_files
    sigma_alerts
    vendor
    clean_tree
    mkdir -p "$DIST"
    local out="$DIST/$APP-$VERSION.tgz"
    tar -C "$BUILD/pkg" --owner=0 --group=0 --numeric-owner --sort=name -czf "$out" "$APP"
    say "wrote $out"
    if [ "${1:-}" = "--inspect" ]; then inspect "$out"; fi
    echo "$out"
}

main "$@"
