#!/usr/bin/env bash
# The demo: a home agent and a mobile node registering over loopback with the shipped
# configuration (config/ha.toml), shown through ha-admin, then a deregistration.
# Needs no privileges; touches nothing outside loopback and /tmp.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet -p mip-ha -p tools
bin=target/debug
cfg=config/ha.toml
sock=/tmp/mip-ha.sock
# The lab key of mobile node 198.18.0.10 in config/ha.toml.
key=6d69702d68612d6c61622d6b65792d31

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
