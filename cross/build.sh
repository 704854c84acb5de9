#!/usr/bin/env bash
# Release builds for ARM gateways on a Debian machine without rustup targets
# or Docker: Debian's rustc-web ships the ARM std as packages, and the GNU
# cross linkers come from Debian too.
#   cross/build.sh                 # aarch64 (default)
#   cross/build.sh aarch64 armv7   # both
# Binaries land in ${CARGO_TARGET_DIR:-target}/cross/<triple>/release/edgereach
# (stripped by the release profile). Run as root the first time: it installs
# packages and fills the download cache (CROSS_CACHE, default
# /var/cache/edgereach-ci), which later runs reuse.
set -euo pipefail
cd "$(dirname "$0")/.."
CROSS_CACHE="${CROSS_CACHE:-/var/cache/edgereach-ci}"

# The armhf std of rustc-web's exact version, with its SHA256 from Debian's
# armhf index. That index is sometimes served truncated (apt then refuses it
# and sees only an older armhf std), so known versions are pinned here; an
# unknown version falls back to reading the stanza from whatever part of the
# index arrives.
declare -A ARMHF_STD_SHA256=(
    ["1.96.0+dfsg1-1~deb12u2"]=b9f9dd1d03a903680f918cb2bba00a2a3d76558545d5e6a8061072ab461bb989
)

log() { printf 'cross/build.sh: %s\n' "$*" >&2; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

install_packages() {
    local want=(rustc-web cargo-web libstd-rust-web-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross
        qemu-user-static libstd-rust-web-dev:arm64)
    for arch in "$@"; do
        [[ $arch == armv7 ]] && want+=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross)
    done
    local missing=()
    for p in "${want[@]}"; do
        installed "$p" || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    [[ $(id -u) -eq 0 ]] || { log "missing ${missing[*]}; run as root once"; exit 1; }
    dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
}

# Prints the sysroot holding the armv7 std that matches Debian's rustc, making
# it once per rustc-web version: the one armhf libstd-rust-web-dev .deb,
# unpacked with dpkg-deb into a private directory. armhf is never registered
# as a dpkg architecture (with nothing armhf installed it would only make
# every `apt-get update` fail on the truncated index).
armhf_sysroot() {
    local ver dir deb uri sum
    ver=$(dpkg-query -W -f='${Version}' rustc-web)
    dir="$CROSS_CACHE/armhf-std/$ver"
    if [[ -f $dir/.complete ]]; then
        echo "$dir/usr"
        return 0
    fi
    mkdir -p "$CROSS_CACHE/armhf-std"
    # The native package's URI tells where the armhf one lies in the pool.
    local native
    native=$(dpkg --print-architecture)
    uri=$(apt-get download --print-uris "libstd-rust-web-dev:$native=$ver" 2>/dev/null | awk -F"'" 'NR==1 {print $2}')
    [[ -n $uri ]] || { log "apt does not know libstd-rust-web-dev=$ver (apt-get update?)"; exit 1; }
    uri=${uri/_$native.deb/_armhf.deb}
    sum=${ARMHF_STD_SHA256[$ver]:-}
    if [[ -z $sum ]]; then
        sum=$(armhf_sum_from_index "$uri" "$ver" "$native")
        [[ $sum =~ ^[0-9a-f]{64}$ ]] || { log "no SHA256 for the armhf std $ver in the armhf index"; exit 1; }
        log "armhf std $ver is not pinned; SHA256 $sum read from the armhf index"
    fi
    deb="$CROSS_CACHE/armhf-std/libstd-rust-web-dev_${ver}_armhf.deb"
    if [[ ! -f $deb ]] || ! echo "$sum  $deb" | sha256sum -c --status; then
        log "downloading the armhf std $ver"
        rm -f "$deb.part"
        /usr/lib/apt/apt-helper download-file "$uri" "$deb.part" "SHA256:$sum" >/dev/null 2>&1 ||
            { log "download of $uri failed"; exit 1; }
        mv "$deb.part" "$deb"
    fi
    rm -rf "$dir.tmp"
    dpkg-deb -x "$deb" "$dir.tmp"
    touch "$dir.tmp/.complete"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
    echo "$dir/usr"
}

# SHA256 of the armhf .deb from the armhf Packages index of the repository
# serving $1; a truncated index still holds the stanzas before the cut.
armhf_sum_from_index() {
    local uri=$1 ver=$2 native=$3 base index tmp
    base=${uri%%/pool/*}/
    index=$(apt-get indextargets --format '$(URI)' 'Identifier: Packages' "Architecture: $native" |
        grep -F "$base" | head -1)
    [[ -n $index ]] || { log "no Packages index for $base"; exit 1; }
    index=${index/binary-$native/binary-armhf}.xz
    tmp=$(mktemp)
    /usr/lib/apt/apt-helper download-file "$index" "$tmp" >/dev/null 2>&1 || true
    xz -dc "$tmp" 2>/dev/null | awk -v v="$ver" '
        /^Package: / { p = ($2 == "libstd-rust-web-dev") }
        /^Version: / { ok = p && ($2 == v) }
        ok && /^SHA256: / { print $2; exit }' || true
    rm -f "$tmp"
}

build() {
    local triple=$1
    # rustup's toolchain comes first on PATH; the ARM std matches Debian's rustc.
    RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc /usr/bin/cargo build --locked --release --target "$triple"
}

arches=("${@:-aarch64}")
for arch in "${arches[@]}"; do
    case $arch in
        aarch64 | armv7) ;;
        *) log "unknown architecture $arch (aarch64, armv7)"; exit 2 ;;
    esac
done
install_packages "${arches[@]}"
# Debian's rustc differs from rustup's: keep its artefacts apart so the two
# toolchains never invalidate each other's builds.
export CARGO_TARGET_DIR="${CROSS_TARGET_DIR:-${CARGO_TARGET_DIR:-target}/cross}"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER=arm-linux-gnueabihf-gcc
export CC_armv7_unknown_linux_gnueabihf=arm-linux-gnueabihf-gcc
export AR_armv7_unknown_linux_gnueabihf=arm-linux-gnueabihf-ar
for arch in "${arches[@]}"; do
    case $arch in
        aarch64) build aarch64-unknown-linux-gnu ;;
        armv7)
            sysroot=$(armhf_sysroot)
            CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUSTFLAGS="--sysroot=$sysroot" \
                build armv7-unknown-linux-gnueabihf
            ;;
    esac
done
