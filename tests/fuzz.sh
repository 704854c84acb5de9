#!/usr/bin/env bash
# Short cargo-fuzz runs of every target in fuzz/ (a smoke test that each
# parser of network input holds up; long campaigns are run by hand with a
# larger EDGEREACH_FUZZ_SECONDS). Stable Rust + RUSTC_BOOTSTRAP for -Z flags.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${EDGEREACH_FUZZ_SECONDS:-10}"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz"
    cargo install --locked cargo-fuzz@0.13.2
fi
export RUSTC_BOOTSTRAP=1
# Keep fuzz builds apart from the main target dir (different flags).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-../target}/fuzz"
for target in $(cargo fuzz list); do
    echo "== fuzz $target for ${secs}s"
    log=$(mktemp)
    # Bounded memory and time; a crash fails the run and leaves an artifact.
    # fuzz/corpus/ is local and grows; fuzz/seeds/ is committed: the cases a
    # sloppy peer sends (null and "" for optional fields, Go's nil maps).
    corpora=("corpus/$target")
    mkdir -p "corpus/$target"
    [[ -d "seeds/$target" ]] && corpora+=("seeds/$target")
    if ! cargo fuzz run "$target" "${corpora[@]}" -- -max_total_time="$secs" -rss_limit_mb=1024 -max_len=4096 >"$log" 2>&1; then
        tail -n 60 "$log"
        rm -f "$log"
        echo "fuzz.sh: $target FAILED (artifact under fuzz/artifacts/$target)"
        exit 1
    fi
    grep -E "^(#[0-9]+[[:space:]]+DONE|Done [0-9]+ runs)" "$log" || true
    rm -f "$log"
done
