#!/usr/bin/env bash
# The demo: Session Inter-Device mobility on real packets (issue 4, FIG. 1a). Builds the
# release binaries and runs `sid-lab run call-transfer`: in a lab of network namespaces, a
# two-way call (1,000 packets per second each way) runs while its session moves from the
# Transferring Node (home) to Target 1 (foreign 1), on to Target 2 (foreign 2, a further
# transfer, return traffic reverse-tunnelled through the Agent) and back to the TN when
# Target 2 ends it; a second correspondent's TCP connection with the TN survives. Prints
# the timeline (which device got the call when), per phase and direction the packets sent,
# received, lost and the longest gap, the silence at each switch-over, the counters, and
# whether the goal (zero loss, no gap over two packet intervals) was met.
#
# Needs root (network namespaces); touches only namespaces it creates and removes.
# Extra arguments go to `sid-lab run call-transfer` (e.g. --json, --duration 5).
#
#   sudo ./scripts/demo.sh
#   ./scripts/demo.sh --loopback    # no privileges: a home agent and a mobile node
#                                   # registering over loopback (config/ha.toml)
set -euo pipefail
cd "$(dirname "$0")/.."

loopback_demo() {
    cargo build --quiet -p mip-ha -p tools
    local bin=target/debug cfg=config/ha.toml sock=/tmp/mip-ha.sock
    # The lab key of mobile node 198.18.0.10 in config/ha.toml.
    local key=6d69702d68612d6c61622d6b65792d31
    "$bin/mip-ha" --config "$cfg" --validate
    RUST_LOG=${RUST_LOG:-info} "$bin/mip-ha" --config "$cfg" 2> /tmp/mip-ha-demo.log &
    ha=$!
    trap 'kill $ha 2>/dev/null || true; wait $ha 2>/dev/null || true' EXIT
    for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
    mn() { "$bin/mip-mn" "$@" --home-agent 198.18.0.1 --via 127.0.0.1:43434 \
            --home-address 198.18.0.10 --nai mn1@sidmip.example --spi 256; }
    echo; echo "== mip-mn registers care-of address 198.19.1.10 (HMAC-MD5, timestamps)"
    mn register --once --care-of 198.19.1.10 --lifetime 120 --key "$key"
    echo; echo "== ha-admin binding list"
    "$bin/ha-admin" --socket "$sock" binding list
    echo; echo "== a node with the wrong key is refused with 131"
    mn register --once --care-of 198.19.1.10 --key 00112233445566778899aabbccddeeff --max-attempts 1 || echo "(exit $?)"
    echo; echo "== mip-mn deregisters"
    mn deregister --care-of 198.19.1.10 --key "$key"
    echo; echo "== ha-admin binding list"
    "$bin/ha-admin" --socket "$sock" binding list
    echo; echo "== ha-admin stats"
    "$bin/ha-admin" --socket "$sock" stats
    echo; echo "(home agent log: /tmp/mip-ha-demo.log)"
}

if [ "${1:-}" = "--loopback" ]; then
    loopback_demo
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "demo: needs root (network namespaces); try: sudo $0" >&2
    echo "      (without privileges: $0 --loopback)" >&2
    exit 2
fi
cargo build --quiet --release -p mip-ha -p tools --bins
exec target/release/sid-lab run call-transfer "$@"
