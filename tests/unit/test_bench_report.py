"""`bench.report` renders a synthetic results directory as a markdown table (no timings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import load_results, render

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def _result(name: str, rows: list[dict[str, str]]) -> dict[str, object]:
    return {
        "benchmark": name,
        "machine": {"date": "2026-01-01T00:00:00+00:00", "nproc": 2, "load_avg_start": [0.1]},
        "runtime_s": 12.5,
        "parameters": {},
        "summary": rows,
        "plot": f"{name}.png",
        "data": {},
    }


def _write(tmp_path: Path) -> None:
    (tmp_path / "token_throughput.json").write_text(
        json.dumps(_result("token_throughput", [{"metric": "peak", "value": "10 req/s"}]))
    )
    (tmp_path / "join_ready.json").write_text(
        json.dumps(
            _result(
                "join_ready",
                [{"metric": "join | ready", "value": "p50 1 ms", "baseline": "", "note": "n=2"}],
            )
        )
    )
    (tmp_path / "broken.json").write_text("{not json")


def test_bench_report_renders_rows_in_benchmark_order(tmp_path: Path) -> None:
    _write(tmp_path)
    results = load_results(tmp_path)
    assert [r["benchmark"] for r in results] == ["join_ready", "token_throughput"]
    text = render(results)
    assert "| Benchmark | Metric | Ours | Baseline | Notes |" in text
    assert "join \\| ready" in text  # pipes escaped, table intact
    assert text.index("join_ready") < text.index("token_throughput")
    assert "![join_ready](join_ready.png)" in text
    assert "python -m bench.token_throughput" in text


def test_bench_report_without_results_says_so(tmp_path: Path) -> None:
    assert "No results yet" in render(load_results(tmp_path))


def test_bench_report_cli_writes_summary(tmp_path: Path) -> None:
    _write(tmp_path)
    subprocess.run(
        [sys.executable, "-m", "bench.report", "--results-dir", str(tmp_path)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    summary = (tmp_path / "SUMMARY.md").read_text()
    assert summary.startswith("# Benchmark results")
    assert "token_throughput" in summary
