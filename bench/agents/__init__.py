"""Bench-only agent workers: ours with timing capture, and the framework's plain baseline."""
