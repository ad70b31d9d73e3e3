"""Tests of the graft SDK (a package, so that its helpers get module names of their own)."""
