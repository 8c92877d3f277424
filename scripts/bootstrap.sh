#!/usr/bin/env bash
# Create (or refresh) the project-local Python venv `.venv` with the pinned development tools:
# moto_server (local DynamoDB/KMS/SQS), cargo-lambda (+ ziglang for `cargo lambda build`),
# cfn-lint, the AWS SAM CLI, and the config API's contract checkers (openapi-spec-validator,
# schemathesis). Idempotent: when the venv already matches the pins it returns
# at once without touching the network.
#
# Usage: scripts/bootstrap.sh            (from anywhere; works on the repository root)
# Env:   PYTHON=/path/to/python3         interpreter to build the venv with (default: python3.11 or python3)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

venv="$root/.venv"
req="$root/scripts/requirements-dev.txt"
con="$root/scripts/constraints-dev.txt"
stamp="$venv/.wagate-bootstrap.sha256"

log() { printf 'bootstrap: %s\n' "$*" >&2; }

pick_python() {
    if [[ -n "${PYTHON:-}" ]]; then
        echo "$PYTHON"
        return
    fi
    local candidate
    for candidate in python3.11 python3.12 python3.13 python3; do
        if command -v "$candidate" >/dev/null 2>&1; then
            command -v "$candidate"
            return
        fi
    done
    log "no python3 found; install Python 3.11 (with venv and pip) first"
    exit 1
}

python="$(pick_python)"
want="$(cat "$req" "$con" | sha256sum | cut -d' ' -f1) $("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

tools_present() {
    local tool
    for tool in moto_server cargo-lambda cfn-lint sam python-zig openapi-spec-validator schemathesis; do
        [[ -x "$venv/bin/$tool" ]] || return 1
    done
}

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && tools_present; then
    exit 0
fi

# One installer at a time (several scripts may bootstrap at once in one checkout).
mkdir -p "$root/.local"
exec 9>"$root/.local/bootstrap.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
fi
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && tools_present; then
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    log "creating $venv with $python"
    if ! "$python" -m venv "$venv"; then
        # Debian's own python3 lacks ensurepip without python3-venv: fall back to virtualenv.
        log "'$python -m venv' failed; trying virtualenv"
        rm -rf "$venv"
        "$python" -m pip install --quiet --disable-pip-version-check --user virtualenv ||
            "$python" -m pip install --quiet --disable-pip-version-check --user --break-system-packages virtualenv
        "$python" -m virtualenv --quiet "$venv"
    fi
fi

log "installing pinned tools from scripts/requirements-dev.txt (first run takes about a minute)"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" -c "$con"

if ! tools_present; then
    log "install finished but a tool is missing from $venv/bin"
    exit 1
fi
echo "$want" >"$stamp"
log "ready: $("$venv/bin/cfn-lint" --version), $("$venv/bin/sam" --version), moto $("$venv/bin/python" -c 'import moto; print(moto.__version__)')"
