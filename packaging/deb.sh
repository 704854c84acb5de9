#!/usr/bin/env bash
# Debian packages with cargo-deb ([package.metadata.deb] in Cargo.toml).
#   packaging/deb.sh               # amd64
#   packaging/deb.sh amd64 arm64   # arm64 from cross/build.sh (Debian's rustc and ARM std)
# Prints the path of each .deb made. cargo-deb is installed once, pinned, into
# a cache outside the clone (CROSS_CACHE, default /var/cache/edgereach-ci).
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_DEB_VERSION=3.8.0
cache="${CROSS_CACHE:-/var/cache/edgereach-ci}/tools"
cargo_deb="$cache/bin/cargo-deb"
log() { printf 'packaging/deb.sh: %s\n' "$*" >&2; }

if [[ $("$cargo_deb" --version 2>/dev/null) != "cargo-deb $CARGO_DEB_VERSION" ]]; then
    log "installing cargo-deb $CARGO_DEB_VERSION into $cache"
    CARGO_TARGET_DIR="$cache/build" cargo install --quiet --locked --force --root "$cache" \
        "cargo-deb@$CARGO_DEB_VERSION" >&2
    rm -rf "$cache/build"
fi

target_root=${CARGO_TARGET_DIR:-target}
out="$target_root/debian"
mkdir -p "$out"
for arch in "${@:-amd64}"; do
    case $arch in
        amd64)
            [[ $(dpkg --print-architecture) == amd64 ]] || { log "amd64 packages are built on amd64 only"; exit 2; }
            # The release profile strips already.
            "$cargo_deb" --locked --no-strip --output "$out" >&2
            ls -t "$out"/edgereach_*_amd64.deb | head -1
            ;;
        arm64)
            cross/build.sh aarch64 >&2
            CARGO_TARGET_DIR="${CROSS_TARGET_DIR:-$target_root/cross}" "$cargo_deb" --locked --no-build --no-strip \
                --target aarch64-unknown-linux-gnu --output "$out" >&2
            ls -t "$out"/edgereach_*_arm64.deb | head -1
            ;;
        *) log "unknown architecture $arch (amd64, arm64)"; exit 2 ;;
    esac
done
