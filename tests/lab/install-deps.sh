#!/usr/bin/env bash
# Install the Debian packages the namespace lab needs (idempotent).
#
# - Runs `apt-get update` only when a wanted package has no install candidate.
# - Never lets the packages start their services in the host namespace: while
#   installing, /usr/sbin/policy-rc.d must answer 101 ("action forbidden").
#   An existing policy-rc.d that already denies is left alone; otherwise ours
#   is put in place for the duration and the original restored on exit.
set -euo pipefail

# miniupnpd is a transitional "all" package; name the nftables backend so apt
# never picks miniupnpd-iptables. prometheus is only here for its promtool
# (tests/monitoring_rules.rs checks docs/monitoring/ with it); its server is
# never started (see policy-rc.d below). faketime runs a lab daemon with a
# skewed clock for the clock-skew alert.
PKGS=(miniupnpd miniupnpd-nftables miniupnpc natpmpc coturn mosquitto
      mosquitto-clients nftables iproute2 conntrack tcpdump python3 python3-venv procps jq file
      chromium slowhttptest wrk python3-prometheus-client openssl curl dnsmasq-base
      prometheus faketime)

POLICY=/usr/sbin/policy-rc.d
POLICY_SAVE=/usr/sbin/policy-rc.d.edgereach-save
POLICY_OURS=0

log() { printf 'install-deps: %s\n' "$*"; }

need_root() {
    if [[ $(id -u) -ne 0 ]]; then
        log "must run as root"; exit 1
    fi
}

is_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]
}

missing_pkgs() {
    local p
    for p in "${PKGS[@]}"; do
        is_installed "$p" || printf '%s\n' "$p"
    done
}

# True when apt knows an install candidate for every package given.
have_candidates() {
    local p cand
    for p in "$@"; do
        cand=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')
        [[ -n $cand && $cand != "(none)" ]] || return 1
    done
}

# Does the current policy-rc.d already forbid starting services?
policy_denies() {
    [[ -x $POLICY ]] || return 1
    local rc=0
    "$POLICY" miniupnpd start >/dev/null 2>&1 || rc=$?
    [[ $rc -eq 101 ]]
}

restore_policy() {
    [[ $POLICY_OURS -eq 1 ]] || return 0
    POLICY_OURS=0
    if [[ -e $POLICY_SAVE ]]; then
        mv -f "$POLICY_SAVE" "$POLICY"
        log "restored the original $POLICY"
    else
        rm -f "$POLICY"
        log "removed the temporary $POLICY"
    fi
}

install_policy() {
    if policy_denies; then
        log "existing $POLICY already denies service starts; left as is"
        return 0
    fi
    [[ -e $POLICY ]] && cp -p "$POLICY" "$POLICY_SAVE"
    POLICY_OURS=1
    trap restore_policy EXIT
    printf '#!/bin/sh\n# temporary, from edgereach tests/lab/install-deps.sh\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"
    log "installed a temporary $POLICY (exit 101) so no service starts"
}

# Report (never kill) host-namespace daemons of these packages: if one runs,
# it was not started by us and the operator should know.
report_host_daemons() {
    local name pids
    for name in miniupnpd turnserver mosquitto prometheus; do
        pids=$(pgrep -x "$name" 2>/dev/null | tr '\n' ' ' || true)
        [[ -z $pids ]] || log "note: $name already running (pids: $pids); not ours, left alone"
    done
}

main() {
    need_root
    local missing
    mapfile -t missing < <(missing_pkgs)
    if [[ ${#missing[@]} -eq 0 ]]; then
        log "all packages already installed: ${PKGS[*]}"
        report_host_daemons
        return 0
    fi
    log "missing: ${missing[*]}"
    if have_candidates "${missing[@]}"; then
        log "package lists already know them; skipping apt-get update"
    else
        log "running apt-get update"
        apt-get update -q
    fi
    install_policy
    log "installing: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        --no-install-recommends "${missing[@]}"
    restore_policy
    mapfile -t missing < <(missing_pkgs)
    if [[ ${#missing[@]} -ne 0 ]]; then
        log "still missing after install: ${missing[*]}"; exit 1
    fi
    log "done; all installed"
    report_host_daemons
}

main "$@"
