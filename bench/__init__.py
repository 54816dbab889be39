"""Benchmarks (not tests): `make bench` measures syncs side by side with the machine's limits."""
