#!/usr/bin/env bash
# Build dist/smbtrail-<version>.tgz: the Splunk app with the engine and its dependencies vendored
# under bin/lib, all pure Python (pydantic 1.10's wheel without pydantic-core; the engine reaches it
# through smbtrail.pydantic_api): it runs wherever Splunk's Python 3.9 or 3.13 runs, on any CPU.
# Needs only a package registry (PyPI) besides this checkout. Build tools go to their own venv.
#   SMBTRAIL_BUILD_DIR  work dir (default: build/), reused between runs (venvs, downloads)
#   SMBTRAIL_DIST_DIR   output dir (default: dist/)
# With --inspect, also run splunk-appinspect (own venv) on the package: JSON reports in the build dir.
# With --partition, also cut the forwarder and search-head packages (slim, own venv) into build/partitions.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD="${SMBTRAIL_BUILD_DIR:-$ROOT/build}"
DIST="${SMBTRAIL_DIST_DIR:-$ROOT/dist}"
PY="${PYTHON:-python3}"
APP=smbtrail
PYDANTIC=1.10.27       # its py3-none-any wheel; tests/test_pydantic_v1.py checks the engine against it
SPLUNK_SDK=2.1.1
SIGMA_PKGS="sigma-cli==3.1.0 pysigma-backend-splunk==2.1.0"
APPINSPECT_PKG="splunk-appinspect==4.3.1"
SLIM_PKG="splunk-packaging-toolkit==1.2.8"
# pinned to releases that still import on Python 3.9 (newer ones declare >=3.10, not always honored)
PURE_PINS=(typing-extensions==4.15.0 packaging==24.2 deprecation==2.1.0)
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
    cp -R "$ROOT/app/appserver" "$STAGE/appserver"  # the setup page's scripts
    cp "$ROOT"/bin/*.py "$STAGE/bin/"
    if compgen -G "$ROOT/lookups/*.csv" >/dev/null; then cp "$ROOT"/lookups/*.csv "$STAGE/lookups/"; fi
    PYTHONPATH="$ROOT/src" "$PY" -m smbtrail.splunk.appbuild "$STAGE" "$VERSION"
}

# tool_venv NAME EXECUTABLE PACKAGE...: a build tool in its own venv under the build dir (reused)
tool_venv() {
    local venv="$BUILD/venv-$1" exe="$2"
    shift 2
    if [ ! -x "$venv/bin/$exe" ]; then
        say "creating $venv"
        # the builder's pip installs into it (a pip of its own costs seconds), and compiles only what runs
        "$PY" -m venv --without-pip "$venv"
        "$PY" -m pip --python "$venv/bin/python" install "${PIP_QUIET[@]}" --no-compile "$@"
    fi
}

sigma_alerts() {
    local venv="$BUILD/venv-sigma"
    # shellcheck disable=SC2086
    tool_venv sigma sigma $SIGMA_PKGS
    "$venv/bin/sigma" check -x attacktag -x d3_fendtag "$ROOT/sigma/rules" >&2
    "$venv/bin/python" "$ROOT/sigma/build_savedsearches.py" "$ROOT/sigma/rules" \
        "$ROOT/sigma/pipelines/smbtrail_splunk.yml" "$STAGE/default/savedsearches.conf" "$STAGE/default/macros.conf"
}

vendor() {
    mkdir -p "$LIB"
    # pure-Python sdists (no wheels on PyPI), then pure-Python wheels only (py3-none-any: pydantic
    # 1.10 also has compiled wheels, which these tags exclude), resolved for the oldest Python we support
    "$PY" -m pip install "${PIP_QUIET[@]}" --root-user-action=ignore --no-compile --target "$LIB" \
        --no-deps "splunk-sdk==$SPLUNK_SDK" python-evtx hexdump
    "$PY" -m pip install "${PIP_QUIET[@]}" --root-user-action=ignore --no-compile --target "$LIB" \
        --only-binary=:all: --python-version 3.9 --implementation py --abi none --platform any --no-warn-conflicts \
        --upgrade "pydantic==$PYDANTIC" "${PURE_PINS[@]}"
    if [ -n "$(find "$LIB" -name '*.so' -o -name '*.pyd' -o -name '*.dylib')" ]; then
        say "compiled code in $LIB: the app must stay pure Python" && return 1
    fi
    # the engine itself (tests and build helpers stay out), with a copy of its lookups: a forwarder
    # package cut from this one (slim partition) keeps bin/ but drops lookups/
    cp -R "$ROOT/src/$APP" "$LIB/$APP"
    mkdir -p "$LIB/$APP/packaged_lookups" && cp "$ROOT"/lookups/*.csv "$LIB/$APP/packaged_lookups/"
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
    tool_venv appinspect splunk-appinspect "$APPINSPECT_PKG"
    # every default check (app/README.md: AppInspect)
    local code=0
    "$venv/bin/splunk-appinspect" inspect "$out" --mode test --ci --skip-trusted-libraries-update \
        --data-format json --output-file "$BUILD/appinspect.json" >"$BUILD/appinspect.log" 2>&1 || code=$?
    say "appinspect: exit $code, report $BUILD/appinspect.json"
    [ "$code" = 0 ] || [ "$code" = 103 ]  # 103: warnings only
}

partition() {
    # the deployment packages Splunk's packaging toolkit cuts from the app (forwarders, search heads)
    local venv="$BUILD/venv-slim" out="$1"
    tool_venv slim slim "$SLIM_PKG"
    rm -rf "$BUILD/partitions" && mkdir -p "$BUILD/partitions"
    "$venv/bin/slim" --quiet partition "$out" -o "$BUILD/partitions" >&2
    say "partitions in $BUILD/partitions"
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
    for option in "$@"; do
        case "$option" in
            --inspect) inspect "$out" ;;
            --partition) partition "$out" ;;
            *) say "unknown option $option" && return 2 ;;
        esac
    done
    echo "$out"
}

main "$@"
