"""Sampling profile of a running process tree with py-spy, and a summary: ours vs the framework.

`Recording` runs `py-spy record --subprocesses --full-filenames -f raw` against a pid (py-spy
needs ptrace: root, or `kernel.yama.ptrace_scope` 0) until stopped, writing collapsed stacks (one
line per distinct stack: `process PID:"cmd";frame;frame;...;leaf count`). It pauses the
processes for each sample (`--nonblocking` would not, but then py-spy cannot tell idle threads
from busy ones and waits swamp the profile). `summarize` reads them back:

- samples whose leaf is a wait (selector, condition, queue) are idle threads py-spy could not
  tell apart: dropped and counted as `idle_dropped`;

- each sample is put in the first bucket, from the leaf up, whose file it belongs to: `ours`
  (the repository's `agent/`, `common/`), then the libraries by name (livekit-agents, the rtc
  SDK, plugins, onnxruntime via silero, numpy, httpx/aiohttp/openai, asyncio...), so a sample
  spent inside a library called by our code is the library's; `ours_inclusive` separately counts
  the samples with any of our frames on the stack (what our code causes, whoever runs it);
- the top leaf functions (self time) and top functions by inclusive time.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["BUCKETS", "Recording", "summarize"]

logger = logging.getLogger(__name__)

# (bucket, pattern on the frame's file path), tried in order for each frame.
BUCKETS: tuple[tuple[str, str], ...] = (
    ("ours: agent/", r"(^|/)agent/[a-z_]+\.py"),
    ("ours: common/", r"(^|/)common/[a-z_]+\.py"),
    ("framework: silero VAD", r"livekit/plugins/silero/"),
    ("framework: openai plugin", r"livekit/plugins/openai/"),
    ("framework: voice pipeline", r"livekit/agents/voice/"),
    ("framework: ipc/job process", r"livekit/agents/(ipc|cli|worker|job)"),
    ("framework: other livekit-agents", r"livekit/agents/"),
    ("rtc SDK (livekit)", r"livekit/rtc/"),
    ("onnxruntime", r"onnxruntime"),
    ("numpy", r"numpy/"),
    ("http/websocket clients", r"(httpx|httpcore|aiohttp|openai|websockets|yarl|h11)/"),
    ("pydantic", r"pydantic"),
    ("logging", r"/logging/"),
    ("asyncio event loop", r"/asyncio/|uvloop"),
    (
        "threads/executors (stdlib)",
        r"/(threading|concurrent/futures|queue|selectors)\.py|/concurrent/",
    ),
    ("psutil (framework: job memory monitor)", r"psutil/"),
    ("other python", r"\.py"),
)
_PROCESS = re.compile(r'^process (?P<pid>\d+):".*?";')
# Process nesting under `--subprocesses`: worker; forkserver; job process (or inference process).
_LEVELS = {1: "worker", 2: "forkserver", 3: "job processes"}
# Leaf frames that mean "this thread is waiting", not working.
_IDLE_LEAVES = re.compile(
    r"^(_PollLikeSelector\.select|EpollSelector\.select|PollSelector\.select|"
    r"SelectSelector\.select|Condition\.wait|Event\.wait|Queue\.get|SimpleQueue\.get|_worker|"
    r"select|poll|epoll|accept|recv|"
    # livekit-agents threads blocked reading their IPC socket / log queue (a C-level wait)
    r"_read_exactly|LogQueueHandler\._forward_logs)$"
)
# Whole files whose frames only wait (multiprocessing's resource tracker reads its pipe).
_IDLE_FILES = re.compile(r"multiprocessing/resource_tracker\.py$")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_OURS = re.compile(r"(^|/)(agent|common)/(?!__main__)[a-z_]+\.py")


class Recording:
    """`py-spy record` against `pid` and its subprocesses, writing raw collapsed stacks."""

    def __init__(self, pid: int, out: Path, *, rate: int = 50) -> None:
        self.pid = pid
        self.out = out
        self.rate = rate
        self._proc: asyncio.subprocess.Process | None = None

    @staticmethod
    def executable() -> str:
        here = Path(sys.executable).parent / "py-spy"
        found = str(here) if here.exists() else shutil.which("py-spy")
        if found is None:
            raise RuntimeError("py-spy is not installed (it is in the dev group: make bootstrap)")
        return found

    async def start(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._proc = await asyncio.create_subprocess_exec(
            self.executable(), "record", "--pid", str(self.pid), "--subprocesses",
            "--full-filenames", "--rate", str(self.rate), "--format", "raw",
            "--output", str(self.out),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        logger.info("py-spy recording pid %d (and subprocesses) to %s", self.pid, self.out)

    async def stop(self) -> None:
        """Stop (SIGINT: py-spy writes its file on the way out)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        try:
            _, err = await asyncio.wait_for(proc.communicate(), 60)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            err = b""
        if not self.out.exists():
            raise RuntimeError(f"py-spy wrote no profile: {err.decode(errors='replace')[-500:]}")


def _frames(stack: str) -> list[tuple[str, str]]:
    """(function, file) pairs, root first; the process line py-spy puts first is kept as is."""
    out: list[tuple[str, str]] = []
    for part in stack.split(";"):
        m = _FRAME.match(part.strip())
        out.append((m["func"], m["file"]) if m else (part.strip(), ""))
    return out


def _bucket(frames: list[tuple[str, str]]) -> str:
    for _, file in reversed(frames):
        if not file:
            continue
        for name, pattern in BUCKETS:
            if re.search(pattern, file):
                return name
    return "native/unknown"


def _short(func: str, file: str) -> str:
    marker = "site-packages/"
    where = file.split(marker, 1)[1] if marker in file else file
    for root in ("/agent/", "/common/", "/bench/"):
        if root in where:
            where = root.strip("/") + "/" + where.split(root, 1)[1]
    return f"{func} ({where})"


def summarize(path: Path, top: int = 15) -> dict[str, Any]:
    """Buckets, ours-inclusive share and top functions of a raw py-spy file."""
    buckets: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    by_process: Counter[str] = Counter()
    total = ours = idle = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        # `process PID:"cmd";` once per level from the root down to the sampled process (a
        # command line may hold ';', so these are cut off before splitting frames).
        depth = 0
        while (head := _PROCESS.match(stack)) is not None:
            depth += 1
            stack = stack[head.end() :]
        process = _LEVELS.get(depth, "?")
        code = [(f, file) for f, file in _frames(stack) if file]
        if not code or _IDLE_LEAVES.match(code[-1][0]) or _IDLE_FILES.search(code[-1][1]):
            idle += count
            continue
        total += count
        by_process[process] += count
        buckets[_bucket(code)] += count
        self_time[_short(*code[-1])] += count
        for name in {_short(f, file) for f, file in code}:
            inclusive[name] += count
        if any(_OURS.search(file) for _, file in code):
            ours += count

    def share(n: int) -> float:
        return round(100.0 * n / total, 1) if total else 0.0

    return {
        "samples": total,
        "idle_dropped": idle,
        "ours_inclusive_pct": share(ours),
        "buckets_pct": {k: share(v) for k, v in buckets.most_common()},
        "by_process_pct": {k: share(v) for k, v in by_process.most_common()},
        "top_self_pct": [[k, share(v)] for k, v in self_time.most_common(top)],
        "top_inclusive_pct": [[k, share(v)] for k, v in inclusive.most_common(top)],
    }
