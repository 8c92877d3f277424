#!/usr/bin/env bash
# wagate's test command: everything CI runs, on a local stack of its own.
#
#   scripts/test.sh [extra arguments for the test runner]
#
# 1. bootstrap the pinned Python tools into .venv (moto, cargo-lambda, cfn-lint, SAM CLI,
#    openapi-spec-validator, schemathesis);
#    and what the dashboard's browser test drives (Debian's Chromium, Node.js, playwright-core);
# 2. start moto_server on 127.0.0.1:4567 (not the dev stack's 4566) and stop it on exit;
# 3. lint template.yaml with cfn-lint and `sam validate --lint`; validate the config API's
#    OpenAPI document with openapi-spec-validator;
# 4. cargo fmt --check, clippy -D warnings, then the workspace's tests (cargo-nextest when
#    installed, else cargo test) against that moto_server (tests/tests/schemathesis.rs runs
#    schemathesis against the config API among them);
# 5. the fuzz targets of fuzz/ for WAGATE_TEST_FUZZ_SECONDS each (default 60; 0 skips them):
#    scripts/fuzz.sh, which installs the nightly toolchain and cargo-fuzz when they are missing.
#
# Tests find moto through AWS_ENDPOINT_URL and may spawn `cargo lambda` (on PATH from .venv).
# Exits non-zero at the first failing step.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

moto_port="${WAGATE_TEST_MOTO_PORT:-4567}"

step() { printf '\n==> %s\n' "$*" >&2; }

step "bootstrap (.venv)"
bash scripts/bootstrap.sh

step "browser test prerequisites (chromium, node, playwright-core)"
bash scripts/browser-setup.sh

step "moto_server on 127.0.0.1:$moto_port"
# Tests isolate themselves by stack name, so a moto_server that already runs on the port (another
# test run in this checkout) is shared rather than replaced; only one started here is stopped.
own_moto=false
cleanup() {
    local status=$?
    if $own_moto; then
        bash scripts/moto.sh stop "$moto_port" || true
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if bash scripts/moto.sh status "$moto_port"; then
    printf 'moto_server already answers on 127.0.0.1:%s: sharing it (not stopped at exit)\n' "$moto_port" >&2
else
    own_moto=true
    bash scripts/moto.sh start "$moto_port"
fi

export PATH="$root/.venv/bin:$PATH"
export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port"
export AWS_REGION="us-east-1"
export AWS_DEFAULT_REGION="us-east-1"
export AWS_ACCESS_KEY_ID="test"
export AWS_SECRET_ACCESS_KEY="test"
unset AWS_SESSION_TOKEN AWS_PROFILE
# No instance-metadata lookups, ever (there is no AWS here).
export AWS_EC2_METADATA_DISABLED="true"
export WAGATE_TEST_MOTO=1
export SAM_CLI_TELEMETRY=0
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-$([[ -n "${CI:-}" ]] && echo never || echo auto)}"

step "cfn-lint template.yaml"
cfn-lint template.yaml

step "sam validate --lint"
sam validate --lint --region us-east-1 --template-file template.yaml

step "openapi-spec-validator functions/config-api/openapi.yaml"
openapi-spec-validator functions/config-api/openapi.yaml

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

if cargo nextest --version >/dev/null 2>&1; then
    # Doc tests first (nextest does not run them), so nextest's summary follows them.
    step "doc tests"
    cargo test --workspace --doc
    step "cargo nextest run --workspace"
    cargo nextest run --workspace "$@"
else
    step "cargo test --workspace (cargo-nextest not installed)"
    cargo test --workspace "$@"
fi

fuzz_seconds="${WAGATE_TEST_FUZZ_SECONDS:-60}"
if [[ "$fuzz_seconds" != 0 ]]; then
    step "fuzz targets, ${fuzz_seconds}s each (scripts/fuzz.sh)"
    bash scripts/fuzz.sh "$fuzz_seconds"
fi

step "all checks passed"
