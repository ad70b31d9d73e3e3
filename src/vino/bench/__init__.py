"""Benchmarks: the overhead table, peers, savings and scale (`vino bench`)."""
