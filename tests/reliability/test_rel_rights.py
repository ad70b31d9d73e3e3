"""Rights: who may install what, exhaustively, and what each graft may touch.

What if each kind of principal -- root, the owner of an object, a reader of the
owner's world-readable file, another user who may not read it -- tries to graft each
point, on its own object, on the owner's object, and globally? The table below is the
rule (points.py, proc.py), written out case by case; the test installs a well-behaved
graft in every case that exists and compares, exhaustively. Every refusal must be a
``GraftRejected`` that changed nothing. Then, per principal kind, what an installed
graft can touch: its own group's threads but not another user's, only its own
address space's pages, only its own file's access events.

Target kinds (``RightsWorld``): ``own`` -- the principal's own file / its open of its
own file / its address space / its process group; ``owner's`` -- the owner's object
(for fs.readahead: the principal's *own open* of the owner's file); ``owner's open`` --
an open file someone else opened; ``GLOBAL``. The other user cannot open the owner's
private file at all, so has no open of it.
"""

from __future__ import annotations

from pathlib import Path

from vino.testing.rig import POINT_ABI
from vino.testing.rights import PRINCIPAL_KINDS, rights_cases, rights_matrix, touch_matrix

Y, N = True, False

# (principal kind, point) -> installed? for targets (own, owner's, owner's open, GLOBAL);
# None: no such case.
RULE: dict[tuple[str, str], tuple[bool | None, bool | None, bool | None, bool]] = {
    ("root", "fs.readahead"): (Y, Y, Y, Y),
    ("root", "vm.evict"): (Y, Y, None, Y),
    ("root", "sched.pick"): (Y, Y, None, Y),
    ("root", "fs.filter"): (Y, Y, None, Y),
    ("root", "fs.access"): (Y, Y, None, Y),
    # The owner grafts her own objects only; on another user's world-readable file she
    # is a reader (her own open of it: yes).
    ("owner", "fs.readahead"): (Y, Y, N, N),
    ("owner", "vm.evict"): (Y, N, None, N),
    ("owner", "sched.pick"): (Y, N, None, N),
    ("owner", "fs.filter"): (Y, N, None, N),
    ("owner", "fs.access"): (Y, N, None, N),
    # A reader: read-ahead on his own open of the owner's file, not on hers; no filter;
    # no access handler on her file either (it would hear her and run in her reads).
    ("reader", "fs.readahead"): (Y, Y, N, N),
    ("reader", "vm.evict"): (Y, N, None, N),
    ("reader", "sched.pick"): (Y, N, None, N),
    ("reader", "fs.filter"): (Y, N, None, N),
    ("reader", "fs.access"): (Y, N, None, N),
    ("other", "fs.readahead"): (Y, None, N, N),
    ("other", "vm.evict"): (Y, N, None, N),
    ("other", "sched.pick"): (Y, N, None, N),
    ("other", "fs.filter"): (Y, N, None, N),
    ("other", "fs.access"): (Y, N, None, N),
}
TARGETS = ("own", "owner's", "owner's open", "GLOBAL")


def test_the_rule_covers_every_principal_kind_and_point() -> None:
    assert set(RULE) == {(k, p) for k in PRINCIPAL_KINDS for p in POINT_ABI}


def test_every_principal_kind_on_every_point_and_target_installs_exactly_per_the_rule(
        tmp_path: Path) -> None:
    expected = {(k, p, t): ok for (k, p), row in RULE.items()
                for t, ok in zip(TARGETS, row, strict=True) if ok is not None}
    assert set(expected) == set(rights_cases())  # the table and the cases tried agree
    got = {(c.principal, c.point, c.target): c for c in rights_matrix(tmp_path)}
    assert set(got) == set(expected)
    wrong = {case: (want, got[case].installed, got[case].reason)
             for case, want in expected.items() if got[case].installed != want}
    assert wrong == {}
    for c in got.values():  # every refusal names who, what and where, and changed nothing
        assert c.installed or ("may not graft" in c.reason and "CHANGED" not in c.reason), c
    assert len(got) == 63


def test_an_installed_graft_touches_only_what_its_target_owns(tmp_path: Path) -> None:
    got = {(c.principal, c.point, c.action): c.outcome for c in touch_matrix(tmp_path)}
    for kind in PRINCIPAL_KINDS:
        assert got[(kind, "sched.pick", "sched_set_priority(own group's thread)")] == "done"
        # Even root's graft acts for its target group only.
        assert got[(kind, "sched.pick",
                    "sched_set_priority(another user's thread)")] == "forbidden_call"
        assert got[(kind, "vm.evict", "vm_hint(a candidate's vpn)")] == "done"
        assert got[(kind, "fs.access", "hear only its own file's accesses")] == "done"
    assert len(got) == 4 * len(PRINCIPAL_KINDS)
