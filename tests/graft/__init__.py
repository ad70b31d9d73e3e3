"""Tests of the graft mechanism (layer 1). A package only so that its conftest.py and
helpers get module names of their own (tests/kernel has a conftest.py too)."""
