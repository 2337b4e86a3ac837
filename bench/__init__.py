"""Benchmark scripts (not tests): run them as modules from the repo root, e.g. ``python -m bench.gateway_overhead``."""
