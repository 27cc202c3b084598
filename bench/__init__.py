"""Benchmarks of the talking-avatar backend: one module per benchmark, `python -m bench.<name>`.

Each writes `bench/results/<name>.json` and `bench/results/<name>.png`; `python -m bench.report`
renders the latest results as `bench/results/SUMMARY.md`. See `bench/README.md`.
"""
