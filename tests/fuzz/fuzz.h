/*
 * fuzz: what the fuzz targets share (header only: each target is one file):
 * CHECK() for invariants, and feeding an input to a parser as a connection
 * would, in one read or in two cut anywhere, to check that the cut changes
 * nothing.
 */
#ifndef MEMRING_FUZZ_H
#define MEMRING_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Aborts (a crash for libFuzzer) with where and what. */
#define CHECK(cond) ((cond) ? (void)0 : fuzz_fail(#cond, __FILE__, __LINE__))
#define FAIL(what)  fuzz_fail((what), __FILE__, __LINE__)

static inline void
fuzz_fail(const char *what, const char *file, int line)
{
    fprintf(stderr, "%s:%d: invariant failed: %s\n", file, line, what);
    abort();
}

#define SPLIT_ALL_MAX   128  /* inputs up to this: cut at every byte */
#define SPLIT_EVEN      8    /* longer ones: this many evenly spaced cuts, */
#define SPLIT_LINES     24   /* around this many newlines (limits live at
                              * line ends), */
#define SPLIT_POINTS    (SPLIT_EVEN + 2 * SPLIT_LINES + 1)  /* and one the
                              * input picks, so the fuzzer can steer it */
#define SPLIT_AT_MAX    (SPLIT_ALL_MAX > SPLIT_POINTS ? SPLIT_ALL_MAX \
                                                      : SPLIT_POINTS)
#define SPLIT_STOP      ((size_t)-1)

/*
 * Where to cut data[0..size): fills at[SPLIT_AT_MAX] with cuts in
 * [0, size), possibly repeated; returns how many.
 */
static inline size_t
split_points(const uint8_t *data, size_t size, size_t *at)
{
    size_t n = 0, i, lines = 0;
    uint32_t h = 2166136261u;

    if (size <= SPLIT_ALL_MAX) {
        for (i = 0; i < size; i++) {
            at[n++] = i;
        }
        return n;
    }
    for (i = 0; i < SPLIT_EVEN; i++) {
        at[n++] = i * (size / SPLIT_EVEN);
    }
    for (i = 0; i < size && lines < SPLIT_LINES; i++) {
        if (data[i] == '\n') {
            at[n++] = i;            /* the line without its \n */
            if (i + 1 < size) {
                at[n++] = i + 1;    /* the line, not the next byte */
            }
            lines++;
        }
    }
    for (i = 0; i < size; i++) {
        h = (h ^ data[i]) * 16777619u;
    }
    at[n++] = h % size;
    return n;
}

/*
 * One parser step over the unread bytes buf[0..avail): returns how many it
 * consumed (> 0), 0 to wait for more, or SPLIT_STOP to end the stream (a
 * close). It appends what it saw to its own record in ctx.
 */
typedef size_t (*split_step_fn)(const char *buf, size_t avail, void *ctx);

/*
 * Runs step over data[0..len) as a connection reads it: the first cut
 * bytes, then the rest once step waits for more. Each read is held in an
 * exact-size copy of what has arrived, so that ASan sees any read past it.
 */
static inline void
split_feed(const uint8_t *data, size_t len, size_t cut, split_step_fn step,
           void *ctx)
{
    size_t pos = 0, have = cut, used;
    char *buf = NULL;

    for (;;) {
        if (buf == NULL) {
            buf = malloc(have > 0 ? have : 1);
            if (buf == NULL) {
                abort();
            }
            memcpy(buf, data, have);
        }
        used = pos < have ? step(buf + pos, have - pos, ctx) : 0;
        if (used == SPLIT_STOP) {
            break;
        }
        if (used == 0) {
            if (have == len) {
                break;
            }
            have = len;             /* the second read */
            free(buf);
            buf = NULL;
            continue;
        }
        if (used > have - pos) {
            fprintf(stderr, "split: step consumed %zu of %zu bytes\n", used,
                    have - pos);
            FAIL("a step consumes what it was given, at most");
        }
        pos += used;
    }
    free(buf);
}

/*
 * Records what a stream produced: run fills ev (room for len + 1 records
 * of evsize bytes) and returns how many; same compares two records.
 */
typedef size_t (*split_run_fn)(const uint8_t *data, size_t len, size_t cut,
                               void *ev);
typedef bool (*split_same_fn)(const void *a, const void *b);

/* Aborts unless every cut of data gives what one read gives. */
static inline void
split_check(const uint8_t *data, size_t size, size_t evsize, split_run_fn run,
            split_same_fn same)
{
    size_t at[SPLIT_AT_MAX];
    size_t nat, nwhole, npart, j, i;
    char *whole = malloc((size + 1) * evsize);
    char *part = malloc((size + 1) * evsize);

    if (whole == NULL || part == NULL) {
        abort();
    }
    nwhole = run(data, size, size, whole);
    nat = split_points(data, size, at);
    for (j = 0; j < nat; j++) {
        npart = run(data, size, at[j], part);
        for (i = 0; i < nwhole || i < npart; i++) {
            if (i >= nwhole || i >= npart ||
                !same(part + i * evsize, whole + i * evsize)) {
                fprintf(stderr, "split at %zu: record %zu differs (%zu "
                        "records, whole: %zu)\n", at[j], i, npart, nwhole);
                FAIL("the same records at every cut");
            }
        }
    }
    free(whole);
    free(part);
}

#endif /* MEMRING_FUZZ_H */
