/*
 * A cheap wall clock in milliseconds for stamping records appended one at a time.
 *
 * clock_gettime(CLOCK_REALTIME) costs about 43 ns on this project's VMs (a paravirtual clock
 * page is read every call), a tenth of a per-record append. On x86-64 this clock reads the
 * time-stamp counter instead (a few ns) and converts it with a rate measured against
 * CLOCK_REALTIME over at least 10 ms, re-anchoring on the real clock every millisecond, so
 * it never drifts from it by more than a few microseconds. If the counter misbehaves (jumps
 * back, or disagrees with the real clock by over a millisecond at a re-anchor), it falls back
 * to clock_gettime for good. Elsewhere it is clock_gettime.
 *
 * Threading: one edp_clock_t per writer; not shared between threads without a lock.
 */
#ifndef EDPLOG_CLOCK_H
#define EDPLOG_CLOCK_H

#include <stdint.h>

typedef struct edp_clock {
    uint64_t tsc0;        /**< counter at the last anchor */
    int64_t ns0;          /**< wall time at the last anchor, ns */
    uint64_t tsc_start;   /**< counter when calibration began */
    int64_t ns_start;     /**< wall time when calibration began, ns */
    double ns_per_tick;   /**< 0 until calibrated */
    uint64_t anchor_ticks;/**< re-anchor after this many ticks (about 1 ms) */
    int mode;             /**< 0 calibrating, 1 counter, -1 clock_gettime only */
} edp_clock_t;

/** Start a clock (cheap; calibration happens during the first ~10 ms of use). */
void edp_clock_init(edp_clock_t *c);

/** Milliseconds since the Unix epoch. */
int64_t edp_clock_now_ms(edp_clock_t *c);

#endif
