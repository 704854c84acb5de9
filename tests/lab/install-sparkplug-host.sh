#!/usr/bin/env bash
# Installs the independent Sparkplug B host the lab tests use (pysparkplug,
# pinned, from PyPI) into a venv cached outside the clone, so CI installs it
# once per machine. Prints the venv's python.
#   tests/lab/install-sparkplug-host.sh   -> /var/cache/edgereach-tools/venv-sparkplug/bin/python
set -euo pipefail
PYSPARKPLUG_VERSION=0.6.1
PAHO_VERSION=1.6.1
dir="${EDGEREACH_TOOLS:-/var/cache/edgereach-tools}"
venv="$dir/venv-sparkplug"
stamp="$venv/.pysparkplug-$PYSPARKPLUG_VERSION"
if [[ ! -f $stamp || ! -x $venv/bin/python ]]; then
    mkdir -p "$dir"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "pysparkplug==$PYSPARKPLUG_VERSION" "paho-mqtt==$PAHO_VERSION" >&2
    touch "$stamp"
fi
echo "$venv/bin/python"
