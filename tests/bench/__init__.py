"""Tests of the benchmarks (a package, so that its helpers get module names of their own)."""
