from __future__ import annotations

import json

import pytest

from devstack.livekit_server import LiveKitServerConfig
from devstack.loopback import _is_loopback

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
    assert _is_loopback(host) is expected
