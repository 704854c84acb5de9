#!/usr/bin/env bash
# Installs the real tailscaled, tailscale CLI, derper and headscale at pinned versions with
# `go install` (Go module proxy), into a cache outside the clone so CI builds
# them once per machine. Prints the directory holding the binaries.
#   tests/lab/install-go-tools.sh            -> /var/cache/edgereach-tools/bin
set -euo pipefail
TAILSCALE_VERSION=v1.98.10   # headscale v0.29.x supports clients v1.80-v1.98
HEADSCALE_VERSION=v0.29.2
dir="${EDGEREACH_TOOLS:-/var/cache/edgereach-tools}"
bin="$dir/bin"
stamp="$bin/.tailscale-$TAILSCALE_VERSION"
mkdir -p "$bin"
if [[ ! -f $stamp || ! -x $bin/tailscaled || ! -x $bin/tailscale || ! -x $bin/derper ]]; then
    command -v go >/dev/null || { echo "install-go-tools: no Go toolchain" >&2; exit 1; }
    export GOBIN="$bin" GOPATH="$dir/gopath" GOCACHE="$dir/gocache"
    echo "install-go-tools: go install tailscale.com/cmd/{tailscaled,tailscale,derper}@$TAILSCALE_VERSION" >&2
    go install "tailscale.com/cmd/tailscaled@$TAILSCALE_VERSION" "tailscale.com/cmd/tailscale@$TAILSCALE_VERSION" \
        "tailscale.com/cmd/derper@$TAILSCALE_VERSION" >&2
    touch "$stamp"
fi
hs_stamp="$bin/.headscale-$HEADSCALE_VERSION"
if [[ ! -f $hs_stamp || ! -x $bin/headscale ]]; then
    export GOBIN="$bin" GOPATH="$dir/gopath" GOCACHE="$dir/gocache"
    # `go install pkg@version` first asks the proxy for headscale's version
    # list (a deprecation check), which the proxy here refuses with 403; the
    # exact version itself is served. So download that version and build it
    # as the main module from the module cache.
    echo "install-go-tools: headscale $HEADSCALE_VERSION from the module cache" >&2
    src=$(go mod download -json "github.com/juanfont/headscale@$HEADSCALE_VERSION" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [[ -d $src ]] || { echo "install-go-tools: headscale source not found" >&2; exit 1; }
    (cd "$src" && go install ./cmd/headscale) >&2
    touch "$hs_stamp"
fi
echo "$bin"
