/*
 * ticker.c — vino's native epoch ticker: one pthread that advances a wasmtime
 * engine's epoch every period_ns, without ever touching Python.
 *
 * Why native: a Python ticker thread needs the GIL once per tick, and takes it
 * while the host is busy in Python, so a graft call that follows pays for the
 * hand-over (tens of µs). This thread never needs the GIL.
 *
 * Contract: `inc` is wasmtime_engine_increment_epoch and `engine` its engine;
 * the engine must outlive the thread (vino_ticker_stop joins it). `ticks`
 * counts the increments; readers may see it a tick late, never torn.
 */
#include <pthread.h>
#include <stdint.h>
#include <time.h>

typedef void (*vino_inc_fn)(void *);

struct vino_ticker {
    vino_inc_fn inc;
    void *engine;
    int64_t period_ns;
    volatile int32_t stop;
    volatile uint64_t ticks;
    pthread_t thread;
};

static void *vino_ticker_loop(void *arg) {
    struct vino_ticker *t = arg;
    struct timespec ts = { (time_t)(t->period_ns / 1000000000), (long)(t->period_ns % 1000000000) };
    while (!t->stop) {
        nanosleep(&ts, 0);
        if (t->stop) break;
        t->inc(t->engine);
        __atomic_add_fetch(&t->ticks, 1, __ATOMIC_RELAXED);
    }
    return 0;
}

int vino_ticker_start(struct vino_ticker *t) {
    return pthread_create(&t->thread, 0, vino_ticker_loop, t);
}

int vino_ticker_stop(struct vino_ticker *t) {
    t->stop = 1;
    return pthread_join(t->thread, 0);
}
