/*
 * sched_interactive.c — sched.pick graft: favour the group's interactive threads.
 *
 * Policy: among the runnable threads the application marked interactive
 * (flags & VINO_THREAD_INTERACTIVE), run the one that has waited longest; if
 * none is interactive, run the thread that has waited longest of all, which
 * keeps the rest of the group fair (nobody waits forever behind a busy
 * neighbour). Ties go to the lowest index.
 *
 * No message, no imports. n == 0 has no valid answer: it returns -1 and the
 * validator hands the decision to the default.
 */
#include "vino.h"

VINO_BUFFER(VINO_SCHED_BUFFER);

VINO_EXPORT("vino_pick") int32_t vino_pick(void) {
    const vino_sched_buf *b = VINO_BUF(vino_sched_buf);
    uint32_t n = b->n < VINO_SCHED_MAX ? b->n : VINO_SCHED_MAX;
    if (n == 0) return -1;

    int32_t best_any = 0;
    int32_t best_interactive = -1;
    for (uint32_t i = 0; i < n; i++) {
        const vino_thread *t = &b->thread[i];
        if (t->waited_ns > b->thread[best_any].waited_ns) best_any = (int32_t)i;
        if ((t->flags & VINO_THREAD_INTERACTIVE) &&
            (best_interactive < 0 || t->waited_ns > b->thread[best_interactive].waited_ns))
            best_interactive = (int32_t)i;
    }
    return best_interactive >= 0 ? best_interactive : best_any;
}
