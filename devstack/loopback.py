"""Finds sockets of given process trees that could reach beyond loopback (must be none, ever).

A socket passes when it is bound to an allowed address (loopback, or the sealed namespace's own
address, see `scripts/sealed.sh`), or when it is connected to one. That covers unconnected UDP,
which is all of WebRTC's media and ICE: a check of peers alone never sees those sockets.
`SocketWatch` samples while a conversation runs, since sockets come and go within a call.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from collections.abc import Callable, Iterable

import psutil

from .lifecycle import Lifecycle

__all__ = [
    "SEALED_ADDRESS_VAR",
    "SocketWatch",
    "allowed_addresses",
    "is_allowed",
    "off_loopback_sockets",
]

# Set by scripts/sealed.sh inside the sealed namespace: the one non-loopback address there.
SEALED_ADDRESS_VAR = "SEALED_NETWORK_ADDRESS"

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _parse(host: str) -> _Address | None:
    try:
        addr = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def allowed_addresses() -> frozenset[_Address]:
    """Non-loopback addresses a socket may use: the sealed namespace's own, when inside it."""
    sealed = os.environ.get(SEALED_ADDRESS_VAR)
    parsed = _parse(sealed) if sealed else None
    return frozenset({parsed}) if parsed is not None else frozenset()


def is_allowed(host: str, extra: Iterable[_Address] = ()) -> bool:
    addr = _parse(host)
    return addr is not None and (addr.is_loopback or addr in set(extra))


def _process_tree(pids: Iterable[int]) -> list[psutil.Process]:
    procs: list[psutil.Process] = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs.append(root)
            procs.extend(root.children(recursive=True))
        except psutil.NoSuchProcess:
            continue
    return procs


def off_loopback_sockets(
    pids: Iterable[int], extra: Iterable[_Address] | None = None, *, bound: bool = True
) -> list[str]:
    """Each TCP or UDP socket of `pids` (and descendants) neither bound nor connected to an
    allowed address: loopback, plus `extra` (default: `allowed_addresses()`). `bound=False`
    checks connected peers only (on a host network, where libwebrtc binds host addresses)."""
    allowed = frozenset(allowed_addresses() if extra is None else extra)
    found = []
    for proc in _process_tree(pids):
        try:
            conns = proc.net_connections(kind="inet")
            name = proc.name()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for conn in conns:
            local = conn.laddr.ip if conn.laddr else None
            remote = conn.raddr.ip if conn.raddr else None
            if remote is not None and not is_allowed(remote, allowed):
                found.append(
                    f"pid {proc.pid} ({name}): connected to {conn.raddr} from {conn.laddr}"
                )
            elif bound and remote is None and local and not is_allowed(local, allowed):
                kind = "UDP" if conn.type == 2 else "TCP"  # socket.SOCK_DGRAM == 2
                found.append(f"pid {proc.pid} ({name}): {kind} bound to {conn.laddr}")
    return found


class SocketWatch(Lifecycle):
    """Samples `off_loopback_sockets` in a thread every `interval` seconds while in its block.

    `pids` is called at every sample, so processes started during the block are covered.
    """

    def __init__(
        self, pids: Callable[[], Iterable[int]], *, bound: bool = True, interval: float = 0.25
    ) -> None:
        self._pids = pids
        self._bound = bound
        self._interval = interval
        self._stop = threading.Event()
        self._active = threading.Event()
        self._active.set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="socket-watch", daemon=True)
        self.samples = 0
        self.problems: set[str] = set()

    def _sample(self) -> None:
        found = off_loopback_sockets(self._pids(), bound=self._bound)
        with self._lock:
            self.problems.update(found)
            self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._active.is_set():
                self._sample()
            self._stop.wait(self._interval)

    def pause(self) -> None:
        """Take a last look, then stop sampling until `resume` (between the watched tests)."""
        if self._active.is_set():
            self._sample()
            self._active.clear()

    def resume(self) -> None:
        self._active.set()

    def start(self) -> SocketWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        if self._active.is_set():
            self._sample()  # and one last look at what is left
