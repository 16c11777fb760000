/*
 * The compaction key map: 128-bit key fingerprints -> latest offset, open addressing in a
 * fixed array. Layout, collision odds and limits are in include/edplog/keymap.h.
 */
#include <errno.h>
#include <stdlib.h>

#include "common.h"
#include "edplog/keymap.h"

/* Odd 64-bit constants with no structure to exploit: the fractional parts of the square
 * roots of the primes 2 .. 17, the last bit set. */
#define K1 0x6a09e667f3bcc909ULL
#define K2 0xbb67ae8584caa73bULL
#define K3 0x3c6ef372fe94f82bULL
#define K4 0xa54ff53a5f1d36f1ULL
#define K5 0x510e527fade682d1ULL
#define K6 0x9b05688c2b3e6c1fULL
#define K7 0x1f83d9abfb41bd6bULL

static inline uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

/*
 * Two lanes over the key's 8-byte words, each with its own constants, shifts and way of
 * taking the word in (xor in one, add of a rotated copy in the other), so that a pair of
 * keys that collides in one lane by some structure of the mixing has no reason to collide in
 * the other. Every step is a bijection of the lane's state for a given word, and a bijection
 * of the word for a given state: two keys of the same length that differ in one word never
 * collide in either lane, and the length is mixed in first, so keys of different lengths
 * start apart. The finishing rounds spread every state bit over the whole output.
 */
void edp_keymap_fingerprint(const uint8_t *key, size_t len, uint64_t seed, uint64_t out[2])
{
    uint64_t a = (seed ^ K1) + (uint64_t)len * K3;
    uint64_t b = (rotl64(seed, 32) ^ K2) + (uint64_t)len * K4;
    const uint8_t *p = key;
    size_t n = len;
    while (n) {
        uint64_t w = 0;
        size_t take = n < 8 ? n : 8;
        memcpy(&w, p, take); /* the last word is zero-padded; the length tells them apart */
        p += take;
        n -= take;
        a = (a ^ w) * K1;
        a ^= a >> 32;
        a *= K5;
        a ^= a >> 29;
        b = (b + rotl64(w, 23)) * K2;
        b ^= b >> 31;
        b *= K6;
        b ^= b >> 27;
    }
    a ^= a >> 33;
    a *= K3;
    a ^= a >> 30;
    a *= K7;
    a ^= a >> 32;
    b ^= b >> 29;
    b *= K4;
    b ^= b >> 32;
    b *= K5;
    b ^= b >> 31;
    out[0] = a;
    out[1] = b;
}

/* The first slot to probe: the low half scaled onto [0, capacity) by a 64x64 -> 128-bit
 * multiply, which unlike a modulo needs no power-of-two capacity, so all the memory given is
 * used. */
static inline size_t home_slot(const edp_keymap_t *m, uint64_t fp_lo)
{
    return (size_t)(((unsigned __int128)fp_lo * m->capacity) >> 64);
}

int edp_keymap_init(edp_keymap_t *m, size_t capacity_bytes, uint64_t seed)
{
    int rc = EDP_OK;
    memset(m, 0, sizeof *m);
    m->max_offset = -1;
    m->seed = seed;
    size_t capacity = capacity_bytes / sizeof(edp_keymap_slot_t);
    if (capacity < 2) {
        rc = EDP_EINVAL;
    } else {
        /* calloc: pages the map never reaches stay unmapped zero pages (no RSS). */
        m->slots = calloc(capacity, sizeof(edp_keymap_slot_t));
        if (!m->slots) {
            rc = ENOMEM;
        } else {
            m->capacity = capacity;
            m->limit = capacity / 5 * 4 + (capacity % 5) * 4 / 5;
        }
    }
    return rc;
}

void edp_keymap_free(edp_keymap_t *m)
{
    free(m->slots);
    m->slots = NULL;
    m->capacity = m->limit = m->size = 0;
    m->max_offset = -1;
}

void edp_keymap_clear(edp_keymap_t *m)
{
    if (m->slots)
        memset(m->slots, 0, m->capacity * sizeof(edp_keymap_slot_t));
    m->size = 0;
    m->max_offset = -1;
}

int edp_keymap_put(edp_keymap_t *m, const uint8_t *key, size_t len, int64_t offset)
{
    int rc = EDP_OK;
    uint64_t fp[2];
    if (offset < 0 || m->capacity == 0) {
        rc = EDP_EINVAL;
    } else {
        edp_keymap_fingerprint(key, len, m->seed, fp);
        /* limit < capacity: a free slot always ends the probe. */
        for (size_t i = home_slot(m, fp[0]);; i = i + 1 == m->capacity ? 0 : i + 1) {
            edp_keymap_slot_t *s = &m->slots[i];
            if (s->next == 0) {
                if (m->size >= m->limit) {
                    rc = ENOSPC;
                } else {
                    s->fp_lo = fp[0];
                    s->fp_hi = fp[1];
                    s->next = (uint64_t)offset + 1;
                    m->size++;
                }
                break;
            }
            if (s->fp_lo == fp[0] && s->fp_hi == fp[1]) {
                if ((uint64_t)offset + 1 > s->next)
                    s->next = (uint64_t)offset + 1;
                break;
            }
        }
    }
    if (rc == EDP_OK && offset > m->max_offset)
        m->max_offset = offset;
    return rc;
}

int64_t edp_keymap_get(const edp_keymap_t *m, const uint8_t *key, size_t len)
{
    int64_t found = -1;
    uint64_t fp[2];
    if (m->capacity) {
        edp_keymap_fingerprint(key, len, m->seed, fp);
        for (size_t i = home_slot(m, fp[0]);; i = i + 1 == m->capacity ? 0 : i + 1) {
            const edp_keymap_slot_t *s = &m->slots[i];
            if (s->next == 0)
                break;
            if (s->fp_lo == fp[0] && s->fp_hi == fp[1]) {
                found = (int64_t)(s->next - 1);
                break;
            }
        }
    }
    return found;
}
