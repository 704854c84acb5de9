#!/usr/bin/env bash
# The one test command: formatting, lints and every test, the namespace lab
# included. As root it first installs what the lab needs (Debian packages);
# as another user the lab tests skip and say why. Under CI (CI=true or 1;
# .ci/run sets it) nothing may skip: a test that would skip fails, and so
# does this script when it is not root or the Go tools cannot be installed.
set -euo pipefail
cd "$(dirname "$0")/.."

ci=false
case "${CI:-}" in [Tt][Rr][Uu][Ee] | 1) ci=true ;; esac

if [ "$(id -u)" = 0 ]; then
    tests/lab/install-deps.sh
    # The real tailscaled/tailscale and headscale (go install, cached outside
    # the clone); without them the tests that need them skip with a reason
    # (outside CI).
    if ! tests/lab/install-go-tools.sh >/dev/null; then
        if $ci; then
            echo "run.sh: the Go tools could not be installed (tests/lab/install-go-tools.sh failed above); under CI the tests that need them may not skip: failing" >&2
            exit 1
        fi
        echo "run.sh: the Go tools could not be installed; the tests that need them will skip"
    fi
elif $ci; then
    echo "run.sh: not root: under CI the lab tests may not skip: run CI as root" >&2
    exit 1
else
    echo "run.sh: not root: lab tests will skip (run as root for the full suite)"
fi

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings
# The reference admission service is a feature-gated binary: lint it too.
cargo clippy --locked --features acs --bin edgereach-acs -- -D warnings
echo "== reference admission service (tests/admission_lab.rs, bench)"
cargo build --locked --features acs --bin edgereach-acs
echo "== cargo test"
# One test binary at a time: lab tests build namespaces and daemons, and the
# machine has two cores. --no-fail-fast: one run shows every failing binary.
cargo test --locked --all-targets --no-fail-fast -- --test-threads=2
echo "== fuzz smoke"
tests/fuzz.sh
echo "== yocto layer (crates.inc in sync, oelint-adv)"
yocto/check.sh
if [ "$(id -u)" = 0 ]; then
    echo "== aarch64 and armv7 builds, run under qemu"
    cross/check.sh
    echo "== Debian packages (amd64, arm64), unpacked into a throwaway root"
    packaging/check-deb.sh amd64 arm64
    # The numbers come from the 10-minute run by hand; CI proves the bench
    # works (every task on, tailscaled beside it) in a short window.
    echo "== footprint (sizes; RSS, CPU, wakeups beside tailscaled, ${FOOTPRINT_IDLE:-20} s idle)"
    FOOTPRINT_IDLE=${FOOTPRINT_IDLE:-20} bench/footprint.sh
fi
