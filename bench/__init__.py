"""Benchmarks (not tests). ``make bench`` (``python -m bench``) runs every section and prints one table;
single scripts run as modules from the repo root too, e.g. ``python -m bench.gateway_overhead``."""
