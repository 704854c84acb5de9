#!/usr/bin/env bash
# Builds the Debian packages (packaging/deb.sh) and checks them without
# touching this machine: each .deb is unpacked with `dpkg --root` into a
# throwaway root with its own dpkg database (unpack only: the postinst would
# enable and start the unit), then the files, modes, conffile registration
# and the sysusers account (systemd-sysusers --root) are checked there.
#   packaging/check-deb.sh              # amd64
#   packaging/check-deb.sh amd64 arm64  # CI: arm64 reuses the cross build
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "packaging/check-deb.sh: needs root (dpkg --root)"; exit 1; }

fails=0
passes=0
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@" >/dev/null 2>&1; then
        passes=$((passes + 1))
    else
        echo "deb: FAIL: $what" >&2
        fails=$((fails + 1))
    fi
}
mode_is() { [[ $(stat -c %a "$2") == "$1" ]]; }
same() { cmp -s "$1" "$2"; }

check_deb() {
    local deb=$1 arch=$2 root
    root=$(mktemp -d)
    trap 'rm -rf "$root"' RETURN
    mkdir -p "$root"/var/lib/dpkg/{info,updates,triggers}
    touch "$root/var/lib/dpkg/status"
    dpkg --root="$root" --force-depends --force-architecture --unpack "$deb" >/dev/null 2>&1 ||
        { echo "deb: dpkg --root --unpack $deb failed" >&2; fails=$((fails + 1)); return; }
    local status
    status=$(dpkg --root="$root" -s edgereach)
    check "$arch: package registered as unpacked" grep -q '^Status: install ok unpacked' <<<"$status"
    check "$arch: Architecture $arch" grep -qx "Architecture: $arch" <<<"$status"
    check "$arch: depends on libc6" grep -q '^Depends: .*libc6' <<<"$status"
    check "$arch: the config is a conffile" grep -q '^ /etc/edgereach/edgereach.toml' <<<"$status"
    check "$arch: binary 0755" mode_is 755 "$root/usr/bin/edgereach"
    check "$arch: binary is stripped" bash -c "file -b '$root/usr/bin/edgereach' | grep -q ', stripped'"
    # Unpacked, not configured: the conffile waits as .dpkg-new.
    check "$arch: config 0644" mode_is 644 "$root/etc/edgereach/edgereach.toml.dpkg-new"
    check "$arch: config is the example" same config/edgereach.toml "$root/etc/edgereach/edgereach.toml.dpkg-new"
    check "$arch: unit 0644" mode_is 644 "$root/usr/lib/systemd/system/edgereach.service"
    check "$arch: unit is ours" same config/edgereach.service "$root/usr/lib/systemd/system/edgereach.service"
    check "$arch: ExecStart names the packaged binary" \
        grep -qx 'ExecStart=/usr/bin/edgereach run --config /etc/edgereach/edgereach.toml' \
        "$root/usr/lib/systemd/system/edgereach.service"
    check "$arch: sysusers 0644" mode_is 644 "$root/usr/lib/sysusers.d/edgereach.conf"
    check "$arch: copyright" test -s "$root/usr/share/doc/edgereach/copyright"
    local postinst=$root/var/lib/dpkg/info/edgereach.postinst
    check "$arch: postinst creates the account before starting the unit" \
        awk '/systemd-sysusers/ && !u {u = NR} /deb-systemd-invoke/ && !s {s = NR} END {exit !(u && s && u < s)}' "$postinst"
    check "$arch: postinst enables the unit" grep -q 'deb-systemd-helper enable edgereach.service' "$postinst"
    check "$arch: prerm stops the unit" grep -q 'deb-systemd-invoke stop edgereach.service' \
        "$root/var/lib/dpkg/info/edgereach.prerm"
    check "$arch: sysusers creates the edgereach account" \
        systemd-sysusers --root="$root" "$root/usr/lib/sysusers.d/edgereach.conf"
    check "$arch: account has no login shell" \
        grep -q '^edgereach:x:[0-9]*:[0-9]*:[^:]*:/var/lib/edgereach:/usr/sbin/nologin$' "$root/etc/passwd"
    local bin=$root/usr/bin/edgereach
    case $arch in
        amd64) ;;
        arm64) bin=(qemu-aarch64-static -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH=/usr/aarch64-linux-gnu/lib "$bin") ;;
    esac
    check "$arch: packaged binary runs" bash -c "$(printf '%q ' "${bin[@]}") --version | grep -q '^edgereach '"
    check "$arch: packaged binary accepts the packaged config" \
        "${bin[@]}" check-config --config "$root/etc/edgereach/edgereach.toml.dpkg-new"
    echo "deb: $arch: $(basename "$deb") $(stat -c %s "$deb") bytes, binary $(stat -c %s "$root/usr/bin/edgereach") bytes"
}

for arch in "${@:-amd64}"; do
    deb=$(packaging/deb.sh "$arch" 2>/dev/null | tail -1)
    check_deb "$deb" "$arch"
done
echo "deb: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
