#!/usr/bin/env bash
# Release builds for ARM gateways on a Debian machine without rustup targets
# or Docker: Debian's rustc-web ships the ARM std as packages, and the GNU
# cross linkers come from Debian too.
#   cross/build.sh                 # aarch64 (default)
#   cross/build.sh aarch64 armv7   # both
# Binaries land in ${CARGO_TARGET_DIR:-target}/cross/<triple>/release/edgereach
# (stripped by the release profile). Run as root the first time: it installs packages.
set -euo pipefail
cd "$(dirname "$0")/.."

install_packages() {
    local want=(rustc-web cargo-web libstd-rust-web-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross
        qemu-user-static libstd-rust-web-dev:arm64)
    local missing=()
    for p in "${want[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    [[ $(id -u) -eq 0 ]] || { echo "cross/build.sh: missing ${missing[*]}; run as root once" >&2; exit 1; }
    dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
}

build() {
    local triple=$1
    # rustup's toolchain comes first on PATH; the ARM std matches Debian's rustc.
    RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc /usr/bin/cargo build --locked --release --target "$triple"
}

install_packages
# Debian's rustc differs from rustup's: keep its artefacts apart so the two
# toolchains never invalidate each other's builds.
export CARGO_TARGET_DIR="${CROSS_TARGET_DIR:-${CARGO_TARGET_DIR:-target}/cross}"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
for arch in "${@:-aarch64}"; do
    case $arch in
        aarch64) build aarch64-unknown-linux-gnu ;;
        armv7) echo "cross/build.sh: armv7 needs the private sysroot described in cross/README.md; not automated yet" >&2; exit 2 ;;
        *) echo "cross/build.sh: unknown architecture $arch" >&2; exit 2 ;;
    esac
done
