"""The decisions of the policy samples: read-ahead stride, eviction, scheduling.

Each sample is driven with hand-built buffers (docs/ABI.md layouts) and its
answer is checked against the point's validator and against the policy its
file header promises.
"""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from .sdk_harness import load

# ---- fs.readahead: readahead_stride -----------------------------------------------


def assert_valid_readahead(out: list[int], file_blocks: int, max_out: int) -> None:
    """The fs.readahead validator."""
    assert len(out) <= max_out
    assert all(0 <= b < file_blocks for b in out)
    assert len(set(out)) == len(out)


def test_strided_history_predicts_the_next_strides() -> None:
    graft = load("readahead_stride")
    # hist[0] repeating the block just read, and not repeating it: same answer.
    assert graft.readahead(1000, 30, 4, [30, 20, 10]) == [40, 50, 60, 70]
    assert graft.readahead(1000, 30, 4, [20, 10]) == [40, 50, 60, 70]


def test_prediction_stops_at_the_end_of_the_file() -> None:
    graft = load("readahead_stride")
    assert graft.readahead(75, 45, 8, [45, 30, 15]) == [60]
    assert graft.readahead(60, 45, 8, [45, 30, 15]) == []


def test_backward_scan_prefetches_backwards_and_stops_at_block_0() -> None:
    graft = load("readahead_stride")
    assert graft.readahead(100, 20, 8, [20, 27, 34]) == [13, 6]


def test_inconsistent_or_short_history_prefetches_nothing() -> None:
    graft = load("readahead_stride")
    assert graft.readahead(1000, 30, 4, [30, 20, 5]) == []  # differences 10, 15
    assert graft.readahead(1000, 30, 4, [30, 20]) == []  # one difference is a guess
    assert graft.readahead(1000, 30, 4, []) == []
    assert graft.readahead(1000, 30, 4, [30, 30, 30]) == []  # re-reading one block


def test_out_of_range_counts_from_the_host_do_not_overrun_the_arrays() -> None:
    graft = load("readahead_stride")
    # Block 96 starts a window (96 % 32 == 0), so a long sequential history still asks.
    graft.write(
        struct.pack("<4I", 10_000, 96, 1000, 1000) + struct.pack("<16I", *range(95, 79, -1))
    )
    count = graft.call("vino_readahead")
    assert count == 32
    assert list(struct.unpack("<32I", graft.read(128, at=80))) == list(range(97, 129))


def test_a_long_pattern_asks_once_per_window_not_after_every_block() -> None:
    graft = load("readahead_stride")
    # Backward scan: fresh at 97 (asks), silent mid-window, asks again at 88 (88 % 8 == 0).
    assert graft.readahead(100, 97, 8, [98, 99]) == list(range(96, 88, -1))
    assert graft.readahead(100, 93, 8, [94, 95, 96, 97, 98, 99]) == []
    assert graft.readahead(100, 88, 8, list(range(89, 100))) == list(range(87, 79, -1))


def test_explicit_stride_message_overrides_history_until_reset() -> None:
    graft = load("readahead_stride")
    assert graft.message(struct.pack("<I", 7)) == 0
    assert graft.readahead(100, 3, 3, []) == [10, 17, 24]
    assert graft.readahead(100, 3, 3, [3, 2, 1]) == [10, 17, 24]  # history ignored
    assert graft.message(b"\x05\x00\x00") == -1  # wrong length: refused, setting kept
    assert graft.readahead(100, 3, 3, []) == [10, 17, 24]
    assert graft.message(struct.pack("<I", 0)) == 0  # back to learning
    assert graft.readahead(100, 3, 3, [3, 2, 1]) == [4, 5, 6]
    assert graft.readahead(100, 3, 3, []) == []


@settings(max_examples=150, deadline=None)
@given(
    stride=st.integers(min_value=-50, max_value=50).filter(lambda s: s != 0),
    n_hist=st.integers(min_value=2, max_value=16),
    slack=st.integers(min_value=0, max_value=2000),
    max_out=st.integers(min_value=0, max_value=32),
    data=st.data(),
)
def test_any_learned_stride_gives_a_valid_progression(
    stride: int, n_hist: int, slack: int, max_out: int, data: st.DataObject
) -> None:
    # A history a real file can have: n_hist + 1 evenly spaced accesses inside it.
    span = n_hist * abs(stride)
    file_blocks = span + 1 + slack
    lowest = data.draw(st.integers(min_value=0, max_value=slack))
    start = lowest + span if stride > 0 else lowest
    accesses = [start - k * stride for k in range(n_hist + 1)]  # most recent first
    block, hist = accesses[0], accesses[1:]
    out = load("readahead_stride").readahead(file_blocks, block, max_out, hist)
    assert_valid_readahead(out, file_blocks, max_out)
    # Once per window: a pattern just recognised (three accesses) or a window boundary.
    if n_hist > 2 and max_out and (block // abs(stride)) % max_out:
        assert out == []
        return
    expected = []
    for k in range(1, max_out + 1):
        b = block + k * stride
        if not 0 <= b < file_blocks:
            break
        expected.append(b)
    assert out == expected


@settings(max_examples=100, deadline=None)
@given(
    file_blocks=st.integers(min_value=1, max_value=300),
    data=st.data(),
    max_out=st.integers(min_value=0, max_value=32),
)
def test_any_history_gives_a_valid_answer(
    file_blocks: int, data: st.DataObject, max_out: int
) -> None:
    blocks = st.integers(min_value=0, max_value=file_blocks - 1)
    block = data.draw(blocks)
    hist = data.draw(st.lists(blocks, max_size=16))
    out = load("readahead_stride").readahead(file_blocks, block, max_out, hist)
    assert_valid_readahead(out, file_blocks, max_out)


# ---- vm.evict: evict_keep ----------------------------------------------------------


def important(vpns: list[int]) -> bytes:
    return struct.pack(f"<I{len(vpns)}I", len(vpns), *vpns)


def test_important_pages_survive_while_others_exist() -> None:
    graft = load("evict_keep")
    assert graft.message(important([0x10, 0x11])) == 0
    cands = [(1, 0x10, 1, 5), (2, 0x11, 0, 1), (3, 0x12, 1, 9), (4, 0x13, 0, 7)]
    assert graft.evict(cands) == [3, 2]  # vpn 0x13 is the oldest unimportant page, then 0x12


def test_without_a_message_it_is_plain_lru() -> None:
    graft = load("evict_keep")
    assert graft.evict([(1, 1, 0, 30), (2, 2, 0, 10), (3, 3, 0, 20)]) == [1, 2, 0]
    assert graft.evict([(1, 1, 0, 10), (2, 2, 0, 10)]) == [0, 1]  # tie: lowest index first


def test_when_everything_is_important_the_lru_page_goes() -> None:
    graft = load("evict_keep")
    assert graft.message(important([1, 2, 3])) == 0
    assert graft.evict([(1, 1, 0, 30), (2, 2, 0, 10), (3, 3, 0, 20)]) == [1]  # no batch


def test_malformed_messages_are_refused_and_the_set_stays() -> None:
    graft = load("evict_keep")
    assert graft.message(important([5])) == 0
    assert graft.message(b"\x01\x00") == -1  # shorter than the count
    assert graft.message(struct.pack("<II", 2, 9)) == -1  # count says 2, one vpn sent
    assert graft.message(important(list(range(257)))) == -1  # over 256
    assert graft.evict([(1, 5, 0, 1), (2, 6, 0, 2)]) == [1]  # vpn 5 still important
    assert graft.message(important([])) == 0  # empties the set
    assert graft.evict([(1, 5, 0, 1), (2, 6, 0, 2)]) == [0, 1]


def test_no_candidates_has_no_answer() -> None:
    assert load("evict_keep").evict([])[0] < 0


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_never_evicts_or_batches_an_important_page_while_an_unimportant_one_exists(
    data: st.DataObject,
) -> None:
    vpn = st.integers(min_value=0, max_value=600)
    keep = data.draw(st.lists(vpn, max_size=256, unique=True))
    cands = data.draw(
        st.lists(
            st.tuples(st.integers(0, 2**32 - 1), vpn, st.integers(0, 3), st.integers(0, 2**64 - 1)),
            min_size=1,
            max_size=256,
        )
    )
    graft = load("evict_keep")
    assert graft.message(important(keep)) == 0
    victims = graft.evict(cands)
    assert all(0 <= v < len(cands) for v in victims)  # the vm.evict validator
    assert len(set(victims)) == len(victims) <= 32
    kept = set(keep)
    free = sorted((i for i, c in enumerate(cands) if c[1] not in kept),
                  key=lambda i: (cands[i][3], i))
    if free:  # the oldest unimportant pages, oldest first; never an important one
        assert victims == free[:32]
    else:  # only important pages: the oldest of all, alone
        assert victims == [min(range(len(cands)), key=lambda i: (cands[i][3], i))]


# ---- sched.pick: sched_interactive --------------------------------------------------

INTERACTIVE = 1


def test_interactive_thread_runs_even_if_others_waited_longer() -> None:
    graft = load("sched_interactive")
    threads = [(10, 0, 0, 9_000, 0), (11, 0, 0, 100, INTERACTIVE), (12, 0, 0, 5_000, 0)]
    assert graft.pick(threads) == 1


def test_longest_waiting_interactive_thread_wins() -> None:
    graft = load("sched_interactive")
    threads = [
        (10, 0, 0, 300, INTERACTIVE),
        (11, 0, 0, 900, 0),
        (12, 0, 0, 700, INTERACTIVE),
        (13, 0, 0, 200, INTERACTIVE),
    ]
    assert graft.pick(threads) == 2


def test_without_interactive_threads_the_longest_waiter_runs() -> None:
    graft = load("sched_interactive")
    threads = [(10, 5, 0, 300, 0), (11, -3, 0, 900, 2), (12, 0, 0, 900, 0)]
    assert graft.pick(threads) == 1  # tie on waited_ns: lowest index


def test_no_runnable_thread_has_no_answer() -> None:
    assert load("sched_interactive").pick([]) < 0


@settings(max_examples=100, deadline=None)
@given(
    threads=st.lists(
        st.tuples(
            st.integers(0, 2**32 - 1),
            st.integers(-(2**31), 2**31 - 1),
            st.integers(0, 2**64 - 1),
            st.integers(0, 2**64 - 1),
            st.integers(0, 3),
        ),
        min_size=1,
        max_size=64,
    )
)
def test_pick_is_the_documented_policy(threads: list[tuple[int, int, int, int, int]]) -> None:
    chosen = load("sched_interactive").pick(threads)
    assert 0 <= chosen < len(threads)  # the sched.pick validator
    interactive = [i for i, t in enumerate(threads) if t[4] & INTERACTIVE]
    pool = interactive or list(range(len(threads)))
    assert chosen == min(pool, key=lambda i: (-threads[i][3], i))


# ---- null -----------------------------------------------------------------------


def test_null_graft_prefetches_nothing() -> None:
    assert load("null").readahead(100, 1, 8, [1, 0]) == []
