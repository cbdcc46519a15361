#!/usr/bin/env bash
# Make the release tarball the cloud-init user-data downloads (BENCHOP_RELEASE_URL):
#
#   deploy/package.sh [--bin-dir DIR] [--out FILE]
#
# benchop/bin/{baas,worker,monitor,benchop} from DIR (default ${CARGO_TARGET_DIR:-target}/release: build
# them first with `cargo build --release --locked --workspace --bins`), plus benchop/deploy and
# benchop/broker-config. Writes FILE (default benchop-<version>-<arch>-linux.tar.gz) and FILE.sha256.
# Build on the oldest distribution you deploy to (binaries link glibc dynamically): e.g. Debian 12.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
bin_dir="${CARGO_TARGET_DIR:-$repo/target}/release"
out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --bin-dir) bin_dir="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        -h|--help) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "package.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n 1)"
[ -n "$out" ] || out="benchop-${version:-0}-$(uname -m)-linux.tar.gz"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/benchop/bin"
for b in baas worker monitor benchop; do
    [ -x "$bin_dir/$b" ] || { echo "package.sh: $bin_dir/$b missing: cargo build --release --locked --workspace --bins" >&2; exit 1; }
    install -m 0755 "$bin_dir/$b" "$stage/benchop/bin/$b"
done
cp -r "$repo/deploy" "$repo/broker-config" "$stage/benchop/"
tar -czf "$out" -C "$stage" --owner=0 --group=0 benchop
(cd "$(dirname "$out")" && sha256sum "$(basename "$out")" >"$(basename "$out").sha256")
echo "$out"
