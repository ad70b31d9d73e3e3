"""Tests of SQLite on vino (a package, so that its conftest has its own module name)."""
