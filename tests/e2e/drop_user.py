"""A simulated user in its own process, for the fault tests: SIGKILL it to drop a connection.

Killing the process is the realistic drop: no leave message reaches livekit-server, its
sockets just die (a crashed tab, a laptop lid, a lost network), so the server and the agent see
an abrupt disconnect, never a client-initiated one.

Protocol: reads one JSON line `{"url": ..., "token": ...}` on stdin (the token never goes on the
command line), connects, waits for the agent's greeting to end, then prints one JSON line
`{"ready": true, "agent": <identity>, "last_seq": <int>}` and waits until it is killed.
Failures print `{"ready": false, "error": ...}` and exit with status 1.
"""

from __future__ import annotations

import asyncio
import json
import sys

from simuser import SimulatedUser

__all__ = ["main"]

# Hang guard while waiting for the agent and its greeting.
_TIMEOUT = 90.0


def _emit(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _run(url: str, token: str) -> None:
    user = SimulatedUser(url, token)
    async with user:
        agent = await user.wait_for_agent(_TIMEOUT)
        speaking = await user.wait_for_state("speaking", timeout=_TIMEOUT)
        await user.wait_for_state("listening", after_seq=speaking.event.seq, timeout=_TIMEOUT)
        _emit({"ready": True, "agent": agent, "last_seq": user.last_seq})
        await asyncio.Event().wait()  # until SIGKILL


def main() -> int:
    grant = json.loads(sys.stdin.readline())
    try:
        asyncio.run(_run(str(grant["url"]), str(grant["token"])))
    except (TimeoutError, OSError, RuntimeError) as exc:
        _emit({"ready": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
