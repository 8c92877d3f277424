#!/usr/bin/env bash
# Builds the deployment packages: one bootstrap.zip per function, exactly what `sam build`
# (BuildMethod rust-cargolambda) produces, with cargo-lambda (release, arm64 by default).
#
#   scripts/package.sh            # arm64 (the template's default Architecture)
#   WAGATE_ARCH=x86_64 scripts/package.sh
#
# Zips land in target/lambda/<function>/bootstrap.zip; their sizes are printed at the end.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

functions=(config-api webhook-ingress outbound-sender health-check)
arch="${WAGATE_ARCH:-arm64}"

bash scripts/bootstrap.sh
export PATH="$root/.venv/bin:$PATH"

case "$arch" in
arm64)
    target=aarch64-unknown-linux-gnu
    flag=--arm64
    ;;
x86_64)
    target=x86_64-unknown-linux-gnu
    flag=--x86-64
    ;;
*)
    echo "package.sh: WAGATE_ARCH must be arm64 or x86_64, not $arch" >&2
    exit 2
    ;;
esac

if ! rustup target list --installed | grep -qx "$target"; then
    echo "package.sh: adding the Rust target $target" >&2
    rustup target add "$target"
fi

args=()
for f in "${functions[@]}"; do args+=(-p "$f"); done
start=$(date +%s)
cargo lambda build --release "$flag" --output-format zip "${args[@]}"
echo "package.sh: built in $(($(date +%s) - start)) s" >&2

target_dir="${CARGO_TARGET_DIR:-$root/target}"
status=0
printf '%-18s %12s\n' function "zip bytes"
for f in "${functions[@]}"; do
    zip="$target_dir/lambda/$f/bootstrap.zip"
    if [[ -s "$zip" ]]; then
        printf '%-18s %12s\n' "$f" "$(stat -c %s "$zip")"
    else
        echo "package.sh: $zip is missing" >&2
        status=1
    fi
done
exit "$status"
