"""Re-entry through another principal: a graft's call comes back to it by way of someone
else's graft.

Alice's graft, mid-call, fires an event whose handler is Bob's; Bob's handler sends
Alice's graft a message and calls her point again, both while her call is still on the
thread. Her store is in use by that very call: neither may run her code again inside
it (her memory and transaction are half-way), and neither may wait for it (the wait
would be for itself). Held: the message is refused (-1 to Bob's handler) and the
nested call answers the point's default, at once; both calls commit what they did,
and nobody is blamed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .harness import DEFAULT_ANSWER, Tenancy, handler, pick, with_message


def test_graft_called_back_through_another_principals_handler_is_refused_not_deadlocked(
        new_tenancy: Callable[..., Tenancy]) -> None:
    t = new_tenancy(alice_quota={"cpu_call_s": 1.0}, bob_quota={"cpu_call_s": 1.0})
    alice = t.install(pick("(drop (call $fire (i32.const 2) (i32.const 9))) (i32.const 50)",
                           ["fire", "put"],
                           with_message("(drop (call $put (i32.const 5) (i32.const 42)))"
                                        " i32.const 0")), t.alice, "t1")
    bob = t.handle(handler("(drop (call $put (i32.const 6) (call $tell (i32.const 1)"
                           " (i32.const 3))))"
                           " (drop (call $put (i32.const 7) (call $pick_for (i32.const 1)"
                           " (i32.const 3)))) i32.const 0", ["tell", "put", "pick_for"]),
                   t.bob, "t2")
    t0 = time.monotonic()
    assert t.pick("t1", 0) == 50
    assert time.monotonic() - t0 < 1.0  # no wait for itself (that would be its budget+)
    # The message was refused (-1, and key 5 never written); the nested call got the
    # default; Bob's handler committed both answers inside Alice's committed call.
    assert t.host.state()["d"] == {6: -1, 7: DEFAULT_ANSWER}
    assert not alice.aborts and not bob.aborts
    assert alice.state == bob.state == "live"
    t.assert_no_live_work()
