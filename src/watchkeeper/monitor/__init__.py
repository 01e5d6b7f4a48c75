"""Monitors: turn each closed window of a deployment into signals (latency percentiles, drift against the
reference, prediction distribution, performance once labels arrive, cost, staleness)."""
