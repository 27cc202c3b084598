"""Free loopback ports for servers started by tests and benchmarks."""

from __future__ import annotations

import socket

__all__ = ["free_tcp_port", "free_udp_port"]


def _free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_tcp_port() -> int:
    return _free_port(socket.SOCK_STREAM)


def free_udp_port() -> int:
    return _free_port(socket.SOCK_DGRAM)
