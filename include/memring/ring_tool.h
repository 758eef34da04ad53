/*
 * ring_tool: `memring ring locate` and `memring ring diff`, the placement
 * preview an operator runs before a reload. Socket-free: both read configs
 * and keys and write text; the admin endpoint's POST /ring/diff writes the
 * same report as the command line.
 */
#ifndef MEMRING_RING_TOOL_H
#define MEMRING_RING_TOOL_H

#include <stdint.h>
#include <stdio.h>

struct conf;

#define RING_TOOL_SAMPLE_DEFAULT 1000000  /* keys ring diff samples */

/* `memring ring ...`: argv[0] is "ring". Returns the exit status. */
int ring_tool_main(int argc, char **argv);

/*
 * Writes ring diff's report of old -> new to out: per pool (only `pool`
 * when not NULL), the share of keys that move, from which server to which,
 * and the hit ratio expected right after the change. Keys: one per line
 * from keys when not NULL, else `sample` generated keys. 0, or -1 with a
 * reason in err (out of memory, no such pool, a read error).
 */
int ring_tool_diff(FILE *out, const struct conf *old, const struct conf *new,
                   const char *pool, FILE *keys, uint64_t sample, char *err,
                   size_t errlen);

#endif /* MEMRING_RING_TOOL_H */
