#!/usr/bin/env bash
# Run a command in a sealed network: a fresh network namespace whose only links are loopback and
# one veth pair with both ends inside it. No interface leads out, so no packet of the command can
# leave the machine, whatever a library does.
#
# Why the veth pair: libwebrtc (the Python rtc SDK, Chromium) never gathers ICE candidates on a
# loopback-only host. Both ends of the pair live in the namespace and it has no route beyond them;
# its address comes from 198.18.0.0/15, the range RFC 2544 reserves for benchmark networks.
#
# SEALED_NETWORK=off runs the command on the host network instead (say so loudly): for machines
# where no network namespace can be made (no root, no user namespaces).
set -euo pipefail

SEAL_ADDRESS=198.18.0.1
say() { printf '\033[1m[sealed]\033[0m %s\n' "$*" >&2; }

if [ "$#" -eq 0 ]; then
  echo "usage: scripts/sealed.sh COMMAND [ARG...]" >&2
  exit 2
fi

if [ "${SEALED_NETWORK:-on}" = "off" ]; then
  say "SEALED_NETWORK=off: running on the host network (nothing proves that no packet leaves)"
  exec "$@"
fi

if [ "${SEALED_NETWORK_INSIDE:-}" != "1" ]; then
  # As root a plain network namespace; otherwise a user namespace that owns one (root inside it).
  flags=(-n)
  [ "$(id -u)" -eq 0 ] || flags=(-r -n)
  if ! unshare "${flags[@]}" true 2>/dev/null; then
    say "cannot create a network namespace here (needs root or unprivileged user namespaces);"
    say "run as root, or set SEALED_NETWORK=off to run the live tests on the host network"
    exit 1
  fi
  exec unshare "${flags[@]}" env SEALED_NETWORK_INSIDE=1 bash "$0" "$@"
fi

# --- inside the new namespace ----------------------------------------------------------------
ip link set lo up
ip link add seal0 type veth peer name seal1
# No IPv6 on the pair: no router or neighbour solicitations, nothing but what the tests send.
for link in seal0 seal1; do
  sysctl -qw "net.ipv6.conf.$link.disable_ipv6=1" 2>/dev/null || true
done
ip addr add "$SEAL_ADDRESS/32" dev seal0
ip link set seal1 up
ip link set seal0 up
export SEALED_NETWORK_ADDRESS="$SEAL_ADDRESS"
say "network namespace with lo and seal0 ($SEAL_ADDRESS) only; no route leaves it"
exec "$@"
