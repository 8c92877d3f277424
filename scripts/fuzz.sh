#!/usr/bin/env bash
# wagate's fuzz run: builds the cargo-fuzz targets of fuzz/ (libFuzzer, nightly toolchain) and
# runs each for N seconds from its checked-in seed corpus. Exits non-zero when a target finds a
# crash (a panic: every property the targets assert is a panic), leaving the input in
# fuzz/artifacts/<target>/ with the command that replays it.
#
#   scripts/fuzz.sh [seconds]      # default 60 per target; scripts/test.sh runs it (CI)
#
# Settings (environment):
#   WAGATE_FUZZ_TARGETS   targets to run, space separated (default: every target of fuzz/)
#   WAGATE_FUZZ_JOBS      targets run at once (default: the number of CPUs, at most 4)
#   WAGATE_FUZZ_CORPUS    directory that keeps the inputs a run adds, per target (default: a
#                         temporary directory removed at exit; the seeds in fuzz/seeds/ are only
#                         read, never written)
#
# Installs what it lacks: the nightly toolchain (rustup) and cargo-fuzz (crates.io, pinned).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

seconds="${1:-60}"
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]] || {
    echo "usage: scripts/fuzz.sh [seconds > 0]" >&2
    exit 2
}
cargo_fuzz_version="0.13.2"

log() { printf 'fuzz: %s\n' "$*" >&2; }

if ! rustup toolchain list | grep -q '^nightly'; then
    log "installing the nightly toolchain (cargo-fuzz needs it for -Zsanitizer and coverage flags)"
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version 2>/dev/null | grep -q "$cargo_fuzz_version"; then
    log "installing cargo-fuzz $cargo_fuzz_version"
    cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
fi

targets="${WAGATE_FUZZ_TARGETS:-$(cargo +nightly fuzz list --fuzz-dir fuzz | tr '\n' ' ')}"
cpus="$(nproc 2>/dev/null || echo 2)"
jobs="${WAGATE_FUZZ_JOBS:-$((cpus < 4 ? cpus : 4))}"

# -a: debug assertions and overflow checks on, so an arithmetic overflow is a finding too.
build_flags=(--fuzz-dir fuzz --debug-assertions)
log "building the targets ($(cargo +nightly --version))"
cargo +nightly fuzz build "${build_flags[@]}"

# Logs (and, unless WAGATE_FUZZ_CORPUS is set, the corpora) live in a temporary directory.
work="$(mktemp -d "${TMPDIR:-/tmp}/wagate-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT
corpus_root="${WAGATE_FUZZ_CORPUS:-$work/corpus}"

# One target: its corpus (new inputs) first, the seeds after it (read only); libFuzzer's
# final statistics in its log, its exit status in `<target>.rc`.
run_one() {
    local t="$1" status=0
    mkdir -p "$corpus_root/$t" "fuzz/artifacts/$t"
    cargo +nightly fuzz run "${build_flags[@]}" "$t" "$corpus_root/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$t/" >"$work/$t.log" 2>&1 || status=$?
    echo "$status" >"$work/$t.rc"
}

log "running ${targets% } for ${seconds}s each, $jobs at a time"
for t in $targets; do
    while [[ "$(jobs -rp | wc -l)" -ge "$jobs" ]]; do
        wait -n || true
    done
    run_one "$t" &
done
wait

failed=()
printf '\n%-18s %12s %10s %8s %8s %10s\n' target execs "exec/s" cov corpus "rss (MB)" >&2
for t in $targets; do
    f="$work/$t.log"
    final() { sed -n "s/^stat::$1: *//p" "$f" | tail -n1; }
    cov="$(grep -oE 'cov: [0-9]+' "$f" | tail -n1 | cut -d' ' -f2)"
    corp="$(grep -oE 'corp: [0-9]+' "$f" | tail -n1 | cut -d' ' -f2)"
    printf '%-18s %12s %10s %8s %8s %10s\n' "$t" "$(final number_of_executed_units)" \
        "$(final average_exec_per_sec)" "${cov:-?}" "${corp:-?}" "$(final peak_rss_mb)" >&2
    [[ "$(cat "$work/$t.rc" 2>/dev/null || echo missing)" == 0 ]] || failed+=("$t")
done

if [[ ${#failed[@]} -gt 0 ]]; then
    for t in "${failed[@]}"; do
        printf '\n==> %s failed; the end of its log:\n' "$t" >&2
        tail -n 40 "$work/$t.log" >&2
        printf 'replay: cargo +nightly fuzz run %s %s fuzz/artifacts/%s/<file>\n' \
            "${build_flags[*]}" "$t" "$t" >&2
    done
    exit 1
fi
log "no crash in ${seconds}s per target"
