from __future__ import annotations

import ipaddress
import json
import os
import socket

import pytest

from devstack.livekit_server import LiveKitServerConfig
from devstack.loopback import is_allowed, off_loopback_sockets

pytestmark = pytest.mark.unit


def test_livekit_config_keeps_every_packet_on_loopback() -> None:
    config = json.loads(LiveKitServerConfig(port=1, rtc_udp_port=3).to_yaml())
    rtc = config["rtc"]
    assert config["bind_addresses"] == ["127.0.0.1"]
    assert rtc["node_ip"] == "127.0.0.1"
    assert rtc["tcp_port"] == 0
    assert rtc["use_external_ip"] is False
    assert rtc["enable_loopback_candidate"] is True
    assert rtc["ips"]["includes"] == ["127.0.0.1/32"]
    assert all(s.startswith("127.") for s in rtc["stun_servers"])


def test_generated_secret_is_long_enough_for_livekit() -> None:
    assert len(LiveKitServerConfig().api_secret) >= 32


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("8.8.8.8", False),
        ("::ffff:8.8.8.8", False),
    ],
)
def test_loopback_detection(host: str, expected: bool) -> None:
    assert is_allowed(host) is expected


def test_sealed_namespace_address_is_allowed_only_when_named() -> None:
    sealed = ipaddress.ip_address("198.18.0.1")
    assert not is_allowed("198.18.0.1")
    assert is_allowed("198.18.0.1", [sealed])


def test_socket_check_sees_unconnected_udp_bound_off_loopback() -> None:
    """The case a peer-only check misses: WebRTC's UDP sockets are bound, never connected."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as wildcard,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as loopback,
    ):
        wildcard.bind(("0.0.0.0", 0))
        loopback.bind(("127.0.0.1", 0))
        problems = off_loopback_sockets([os.getpid()], extra=())
        port = wildcard.getsockname()[1]
        assert any("UDP bound to" in p and f"port={port}" in p for p in problems), problems
        assert not any(f"port={loopback.getsockname()[1]}" in p for p in problems)


def test_cluster_nodes_share_keys_and_redis_on_their_own_ports() -> None:
    first = LiveKitServerConfig.on_free_ports()
    a = first.node("127.0.0.1:6390", "pw")
    b = a.node("127.0.0.1:6390", "pw")
    assert (
        (a.api_key, a.api_secret) == (b.api_key, b.api_secret) == (first.api_key, first.api_secret)
    )
    assert len({a.port, b.port}) == 2
    assert len({a.rtc_udp_port, b.rtc_udp_port}) == 2
    for node in (a, b):
        config = json.loads(node.to_yaml())
        assert config["redis"] == {"address": "127.0.0.1:6390", "password": "pw"}
        assert config["bind_addresses"] == ["127.0.0.1"]
    assert "redis" not in json.loads(first.to_yaml())
