"""Tests of the code's own shape: its import graph and its modules' size and contract."""
