"""Finds sockets of given processes whose peer is outside 127.0.0.0/8 (must be none, ever)."""

from __future__ import annotations

import ipaddress

import psutil

__all__ = ["non_loopback_connections"]


def _is_loopback(host: str) -> bool:
    try:
        addr = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def non_loopback_connections(pids: list[int]) -> list[str]:
    """Each connected socket of `pids` (and their children) whose peer is off loopback."""
    procs: list[psutil.Process] = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs.append(root)
            procs.extend(root.children(recursive=True))
        except psutil.NoSuchProcess:
            continue
    found = []
    for proc in procs:
        try:
            conns = proc.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for conn in conns:
            if conn.raddr and not _is_loopback(conn.raddr.ip):
                found.append(f"pid {proc.pid} ({proc.name()}): {conn.laddr} -> {conn.raddr}")
    return found
