#!/usr/bin/env bash
# The demo: builds the namespace lab, starts a home agent, two foreign-link agents and a
# mobile node, and moves the node home -> foreign 1 (foreign agent) -> foreign 2
# (co-located care-of address) -> home while a correspondent streams UDP (1,000 packets
# per second) and TCP to its home address. Prints what happened, per move.
# Needs root (network namespaces); touches only namespaces it creates and removes.
# Extra arguments go to `sid-lab run move` (e.g. --json, --duration 5).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "lab-demo: needs root (network namespaces); try: sudo $0" >&2
    exit 2
fi
cargo build --quiet --release -p mip-ha -p mip-fa -p tools --bins
exec target/release/sid-lab run move "$@"
