"""The live tiers run in a network namespace that has no way out (scripts/sealed.sh).

What is proven here is the premise of every other live test's loopback claim: the namespace has
only loopback and the sealed veth pair, only the sealed address besides loopback, no route to
anything else, and the socket watch that samples the run is running.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import time

import psutil
import pytest

from devstack.loopback import SEALED_ADDRESS_VAR, SocketWatch

pytestmark = pytest.mark.e2e

SEALED = os.environ.get(SEALED_ADDRESS_VAR)
needs_seal = pytest.mark.skipif(SEALED is None, reason="SEALED_NETWORK=off: host network")
# Documentation addresses (RFC 5737 / RFC 3849): nothing answers there, and no packet is sent
# in any case, since a connect() with no route fails before anything is written.
OUTSIDE = [(socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")]


@needs_seal
def test_namespace_has_only_loopback_and_the_sealed_pair() -> None:
    assert set(psutil.net_if_addrs()) == {"lo", "seal0", "seal1"}
    addresses = {
        ipaddress.ip_address(a.address.split("%")[0])
        for links in psutil.net_if_addrs().values()
        for a in links
        if a.family in (socket.AF_INET, socket.AF_INET6)
    }
    assert {a for a in addresses if not a.is_loopback} == {ipaddress.ip_address(SEALED)}


@needs_seal
@pytest.mark.parametrize(("family", "address"), OUTSIDE)
def test_no_route_leaves_the_namespace(family: socket.AddressFamily, address: str) -> None:
    unreachable = pytest.raises(OSError, match="unreachable")
    with socket.socket(family, socket.SOCK_DGRAM) as sock, unreachable as info:
        sock.connect((address, 9))
    assert info.value.errno == errno.ENETUNREACH


def test_every_live_test_runs_under_the_socket_watch(
    sockets_stay_on_loopback: SocketWatch,
) -> None:
    watch = sockets_stay_on_loopback
    deadline = time.monotonic() + 10
    while watch.samples < 2 and time.monotonic() < deadline:  # a hang guard, not a timing
        time.sleep(0.05)
    assert watch.samples >= 2
    assert not watch.problems
