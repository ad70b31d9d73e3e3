"""Tests of the reference kernel (a package, so that its conftest.py and helpers get module
names of their own beside tests/conftest.py)."""
