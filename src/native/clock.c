/* The record-stamping clock; the reasoning is in include/edplog/clock.h. */
#include <time.h>

#include "edplog/clock.h"

#define CALIBRATE_NS 10000000 /* measure the counter's rate over at least 10 ms */
#define ANCHOR_NS 1000000     /* and re-anchor on the real clock every 1 ms */
#define MAX_SKEW_NS 1000000   /* give up on the counter if it is off by more than 1 ms */

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#if defined(__x86_64__)
#include <x86intrin.h>
static inline uint64_t ticks(void) { return __rdtsc(); }
#define HAVE_COUNTER 1
#else
static inline uint64_t ticks(void) { return 0; }
#define HAVE_COUNTER 0
#endif

void edp_clock_init(edp_clock_t *c)
{
    c->ns_per_tick = 0;
    c->anchor_ticks = 0;
    c->mode = HAVE_COUNTER ? 0 : -1;
    c->ns_start = c->ns0 = wall_ns();
    c->tsc_start = c->tsc0 = ticks();
}

int64_t edp_clock_now_ms(edp_clock_t *c)
{
    if (c->mode < 0)
        return wall_ns() / 1000000;
    uint64_t t = ticks();
    if (c->mode == 1 && t >= c->tsc0 && t - c->tsc0 < c->anchor_ticks)
        return (c->ns0 + (int64_t)((double)(t - c->tsc0) * c->ns_per_tick)) / 1000000;
    /* Calibrating, or time to re-anchor. */
    int64_t ns = wall_ns();
    if (t < c->tsc0) {
        c->mode = -1; /* the counter went backwards: never trust it again */
        return ns / 1000000;
    }
    if (c->mode == 1) {
        int64_t predicted = c->ns0 + (int64_t)((double)(t - c->tsc0) * c->ns_per_tick);
        int64_t skew = predicted - ns;
        if (skew > MAX_SKEW_NS || skew < -MAX_SKEW_NS) {
            c->mode = -1;
            return ns / 1000000;
        }
    }
    if (ns - c->ns_start >= CALIBRATE_NS && t > c->tsc_start) {
        c->ns_per_tick = (double)(ns - c->ns_start) / (double)(t - c->tsc_start);
        c->anchor_ticks = (uint64_t)(ANCHOR_NS / c->ns_per_tick);
        c->mode = 1;
    }
    c->tsc0 = t;
    c->ns0 = ns;
    return ns / 1000000;
}
