#!/usr/bin/env bash
# Release-profile sweep: stripped binary size for each profile variant, one
# setting changed at a time from the profile in Cargo.toml (overridden with
# CARGO_PROFILE_RELEASE_* variables, so Cargo.toml is not touched).
#   bench/release-profile.sh                     # aarch64 and x86_64
#   PROFILE_TARGETS=aarch64 bench/release-profile.sh
#   PROFILE_VARIANTS="chosen opt-z" bench/release-profile.sh   # a subset
# Each target builds in its own directory (${CARGO_TARGET_DIR}/profile-sweep)
# so variants and reruns reuse what they can. Slow: one full release build
# per variant and target (about 2-6 min each on two cores).
set -euo pipefail
cd "$(dirname "$0")/.."
targets=${PROFILE_TARGETS:-aarch64 x86_64}
sweep="${PROFILE_SWEEP_DIR:-${CARGO_TARGET_DIR:-target}/profile-sweep}"
only=" ${PROFILE_VARIANTS:-} "
# name opt-level lto codegen-units panic
variants=(
    "chosen s fat 1 abort"
    "opt-z z fat 1 abort"
    "opt-3 3 fat 1 abort"
    "lto-thin s thin 1 abort"
    "lto-off s off 1 abort"
    "cgu-16 s fat 16 abort"
    "unwind s fat 1 unwind"
)
printf '%-8s %-9s %-5s %-5s %-4s %-7s %10s %8s %7s\n' target variant opt lto cgu panic bytes MiB build_s
for t in $targets; do
    for v in "${variants[@]}"; do
        read -r name opt lto cgu panic <<<"$v"
        [[ $only == "  " || $only == *" $name "* ]] || continue
        export CARGO_PROFILE_RELEASE_OPT_LEVEL=$opt CARGO_PROFILE_RELEASE_LTO=$lto \
            CARGO_PROFILE_RELEASE_CODEGEN_UNITS=$cgu CARGO_PROFILE_RELEASE_PANIC=$panic \
            CARGO_PROFILE_RELEASE_STRIP=true
        start=$(date +%s)
        case $t in
            x86_64)
                CARGO_TARGET_DIR="$sweep/x86_64" cargo build --release --locked --quiet 2>/dev/null
                bin="$sweep/x86_64/release/edgereach"
                ;;
            aarch64 | armv7)
                CROSS_TARGET_DIR="$sweep/$t" cross/build.sh "$t" >/dev/null 2>&1
                bin=$(ls "$sweep/$t"/*/release/edgereach)
                ;;
            *) echo "release-profile.sh: unknown target $t"; exit 2 ;;
        esac
        size=$(stat -c %s "$bin")
        printf '%-8s %-9s %-5s %-5s %-4s %-7s %10d %8.2f %7d\n' "$t" "$name" "$opt" "$lto" "$cgu" "$panic" \
            "$size" "$(awk -v s="$size" 'BEGIN {print s / 1048576}')" "$(($(date +%s) - start))"
    done
done
