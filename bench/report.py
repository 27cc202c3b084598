"""`python -m bench.report`: the latest results of every benchmark as one markdown file.

Reads `bench/results/*.json` (or `--results-dir`), writes `SUMMARY.md` next to them and prints it:
per benchmark its date, machine, versions, load average, runtime and the summary rows each
benchmark chose, with a link to its plot.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from .common import DEFAULT_RESULTS_DIR

__all__ = ["load_results", "main", "render"]

logger = logging.getLogger(__name__)

ORDER = ("join_ready", "state_rpc", "voice_turn", "capacity", "token_throughput")
COMMANDS = {name: f"python -m bench.{name}" for name in ORDER}


def load_results(results_dir: Path) -> list[dict[str, Any]]:
    """Every readable `<name>.json`, in the benchmarks' order (unknown names last)."""
    found = []
    for path in sorted(results_dir.glob("*.json")):
        try:
            body = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            logger.warning("skipping %s: %s", path, exc)
            continue
        if isinstance(body, dict) and "benchmark" in body and "summary" in body:
            found.append(body)
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(found, key=lambda b: (rank.get(b["benchmark"], len(ORDER)), b["benchmark"]))


def _cell(value: Any) -> str:
    return str(value if value is not None else "").replace("|", "\\|").replace("\n", " ")


def _machine_line(m: dict[str, Any]) -> str:
    return (
        f"{m.get('date', '?')} · {m.get('nproc', '?')} CPU ({m.get('cpu_model', '?')}), "
        f"{m.get('ram_gib', '?')} GiB · Python {m.get('python', '?')} · "
        f"livekit-agents {m.get('livekit_agents', '?')} · livekit-server "
        f"{m.get('livekit_server', '?')} · load avg at start {m.get('load_avg_start', '?')}"
    )


def render(results: list[dict[str, Any]]) -> str:
    lines = ["# Benchmark results", ""]
    if not results:
        return "\n".join([*lines, "No results yet: run `python -m bench.<name>`.", ""])
    lines += [
        "| Benchmark | Metric | Ours | Baseline | Notes |",
        "|---|---|---|---|---|",
    ]
    for body in results:
        name = body["benchmark"]
        for i, row in enumerate(body["summary"]):
            lines.append(
                "| "
                + " | ".join(
                    _cell(x)
                    for x in (
                        name if i == 0 else "",
                        row.get("metric"),
                        row.get("value"),
                        row.get("baseline"),
                        row.get("note"),
                    )
                )
                + " |"
            )
    lines += ["", "## Runs", ""]
    for body in results:
        name = body["benchmark"]
        command = COMMANDS.get(name, f"python -m bench.{name}")
        lines.append(
            f"- **{name}** (`{command}`, {body.get('runtime_s', '?')} s): "
            f"{_machine_line(body.get('machine', {}))}"
        )
        if body.get("plot"):
            lines.append(f"  ![{name}]({body['plot']})")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    args = parser.parse_args()
    text = render(load_results(args.results_dir))
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "SUMMARY.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
