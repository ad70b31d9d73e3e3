/*
 * null.c — the smallest fs.readahead graft: never prefetches anything.
 *
 * Used by the benchmarks to measure the fixed cost of invoking a graft
 * (transaction, copy-in, call, validation) with no policy work at all.
 */
#include "vino.h"

VINO_BUFFER(VINO_RA_BUFFER);

VINO_EXPORT("vino_readahead") int32_t vino_readahead(void) { return 0; }
