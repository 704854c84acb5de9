#!/usr/bin/env bash
# Checks meta-edgereach without a BitBake build:
# - edgereach-crates.inc matches Cargo.lock (yocto/gen-crates-inc.py --check),
#   and the recipe's version is Cargo.toml's;
# - oelint-adv (pinned, from PyPI, in a venv cached outside the clone) reports
#   the recipe clean, every rule on, against the layer's newest release.
# Suppressed, with reasons:
# - oelint.vars.homepageping: it fetches HOMEPAGE over the network; tests send
#   nothing off this machine.
# - oelint.var.bbclassextend: a daemon shipped with a systemd unit has no
#   use as -native or nativesdk.
set -euo pipefail
cd "$(dirname "$0")/.."
OELINT_VERSION=9.11.2
venv="${OELINT_VENV:-${CROSS_CACHE:-/var/cache/edgereach-ci}/oelint-venv-$OELINT_VERSION}"
fails=0

if python3 yocto/gen-crates-inc.py --check; then
    echo "yocto: edgereach-crates.inc matches Cargo.lock"
else
    fails=$((fails + 1))
fi

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
if [[ -f yocto/meta-edgereach/recipes-connectivity/edgereach/edgereach_$version.bb ]]; then
    echo "yocto: recipe version $version matches Cargo.toml"
else
    echo "yocto: no edgereach_$version.bb: rename the recipe to Cargo.toml's version"
    fails=$((fails + 1))
fi

if [[ ! -x $venv/bin/oelint-adv ]]; then
    echo "yocto: installing oelint-adv $OELINT_VERSION into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "oelint-adv==$OELINT_VERSION"
fi
release=$(sed -n 's/^LAYERSERIES_COMPAT_edgereach = "\(.*\)"/\1/p' yocto/meta-edgereach/conf/layer.conf | awk '{print $NF}')
recipes=(yocto/meta-edgereach/recipes-*/*/*.bb)
if out=$("$venv/bin/oelint-adv" --quiet --mode all --release "$release" --relpaths \
    --suppress oelint.vars.homepageping --suppress oelint.var.bbclassextend "${recipes[@]}" 2>&1) && [[ -z $out ]]; then
    echo "yocto: oelint-adv $OELINT_VERSION (release $release): ${#recipes[@]} recipe(s) clean"
else
    echo "yocto: oelint-adv findings:"
    echo "$out"
    fails=$((fails + 1))
fi
[[ $fails -eq 0 ]]
