"""The cipher benchmark in quick mode: every contender timed and rendered, the ratios
taken against the pluggy hook (structure only: no figure is asserted, the machine is
shared), after each contender's ciphertext was checked against ``cryptography``."""

from __future__ import annotations

from pathlib import Path

import pytest

from vino.bench import cipher, setups


def test_quick_cipher_run_times_every_contender_against_the_pluggy_hook(
        tmp_path: Path) -> None:
    r = cipher.run(cipher.QUICK_ROUNDS, cipher.QUICK_BATCH_S, workdir=tmp_path)
    assert set(r["per_call_us"]) == set(cipher.WHAT)
    assert all(f["median_us"] > 0 for f in r["per_call_us"].values())
    assert r["vs_pluggy"]["pluggy"] == 1.0
    text = cipher.render(r)
    assert all(what in text for what in cipher.WHAT.values())


def test_a_scalar_graft_that_disagrees_stops_the_run_before_anything_is_timed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The scalar reference keyed with another key: its ciphertext differs.
    build = setups.build

    def rekeyed(key: str, workdir: Path, sandbox: object = None) -> setups.Setup:
        s = build(key, workdir)
        s.grafts["scalar"].send(bytes(32) + setups.CHACHA_NONCE)
        return s

    monkeypatch.setattr(setups, "build", rekeyed)
    with pytest.raises(AssertionError, match="scalar disagrees"):
        cipher.run(cipher.QUICK_ROUNDS, cipher.QUICK_BATCH_S, workdir=tmp_path)
