"""Tests of the reliability campaigns (vino.testing), as a package like every test directory."""
