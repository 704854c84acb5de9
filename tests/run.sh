#!/usr/bin/env bash
# The one test command: formatting, lints and every test, the namespace lab
# included. As root it first installs what the lab needs (Debian packages);
# as another user the lab tests skip and say why.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ]; then
    tests/lab/install-deps.sh
    # The real tailscaled/tailscale and headscale (go install, cached outside
    # the clone); the tests that need them skip with a reason without them.
    tests/lab/install-go-tools.sh >/dev/null ||
        echo "run.sh: the Go tools could not be installed; the tests that need them will skip"
else
    echo "run.sh: not root: lab tests will skip (run as root for the full suite)"
fi

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings
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
