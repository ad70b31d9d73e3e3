"""sched_interactive.py -- sched.pick graft: favour the group's interactive threads
(the Python twin of sched_interactive.c).

Policy: among the runnable threads the application marked interactive (flags &
THREAD_INTERACTIVE), run the one that has waited longest; if none is interactive,
run the thread that has waited longest of all, which keeps the rest of the group
fair. Ties go to the lowest index. No message, no imports; with no runnable
thread it answers -1 and the validator hands the decision to the default.
"""

from vino.pygraft import Row

POINT = "sched.pick"
THREAD_INTERACTIVE = 1


def pick(thread: list[Row]) -> int:
    if len(thread) == 0:
        return -1
    best_any = 0
    best_interactive = -1
    for i in range(len(thread)):
        waited = thread[i].waited_ns
        if waited > thread[best_any].waited_ns:
            best_any = i
        if thread[i].flags & THREAD_INTERACTIVE and (
                best_interactive < 0 or waited > thread[best_interactive].waited_ns):
            best_interactive = i
    return best_interactive if best_interactive >= 0 else best_any
