#!/usr/bin/env bash
# Installs the real tailscaled and tailscale CLI at pinned versions with
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
if [[ ! -f $stamp || ! -x $bin/tailscaled || ! -x $bin/tailscale ]]; then
    command -v go >/dev/null || { echo "install-go-tools: no Go toolchain" >&2; exit 1; }
    export GOBIN="$bin" GOFLAGS=-trimpath GOPATH="$dir/gopath" GOCACHE="$dir/gocache"
    echo "install-go-tools: go install tailscale.com/cmd/{tailscaled,tailscale}@$TAILSCALE_VERSION" >&2
    go install "tailscale.com/cmd/tailscaled@$TAILSCALE_VERSION" "tailscale.com/cmd/tailscale@$TAILSCALE_VERSION" >&2
    touch "$stamp"
fi
hs_stamp="$bin/.headscale-$HEADSCALE_VERSION"
if [[ ! -f $hs_stamp || ! -x $bin/headscale ]]; then
    export GOBIN="$bin" GOFLAGS=-trimpath GOPATH="$dir/gopath" GOCACHE="$dir/gocache"
    echo "install-go-tools: go install github.com/juanfont/headscale/cmd/headscale@$HEADSCALE_VERSION" >&2
    go install "github.com/juanfont/headscale/cmd/headscale@$HEADSCALE_VERSION" >&2
    touch "$hs_stamp"
fi
echo "$bin"
