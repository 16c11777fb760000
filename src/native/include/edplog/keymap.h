/*
 * The key map of log compaction: record key -> the latest offset written with that key, in a
 * fixed amount of memory, as the "offset map" of Kafka's log cleaner (sized there by
 * log.cleaner.dedupe.buffer.size).
 *
 * Memory layout: one array of slots, allocated once by edp_keymap_init and never grown.
 *
 *   slot (24 bytes)   field    notes
 *     0     8         fp_lo    the key's 128-bit fingerprint, low half
 *     8     8         fp_hi    high half
 *    16     8         next     1 + the largest offset put for the key; 0 marks a free slot,
 *                               so calloc'd memory is an empty map and costs no RSS until used
 *
 * Keys are not stored: a key is known by its 128-bit fingerprint, two independent 64-bit
 * hashes of the key bytes (multiply / xor-shift mixing, seeded per map). Two distinct keys
 * that share a fingerprint would make compaction drop the older key's latest record, so the
 * fingerprint is wide enough that this never happens in practice: treating it as uniformly
 * random, the chance that any two of n keys in one map collide is about n^2 / 2^129. A full
 * 1 GiB map (about 36 million keys) gives 2 * 10^-24; at 64 bits it would be 3 * 10^-5 per
 * cleaning pass, which over years of passes is a real chance of silently losing data. Kafka's
 * cleaner uses a 128-bit digest (MD5) for the same reason. The per-map seed keeps
 * fingerprints from being predictable across maps, so colliding keys cannot be prepared in
 * advance from the code alone.
 *
 * Open addressing with linear probing from a slot picked by the fingerprint. The map holds at
 * most 80 % of its slots (probes then average about 3 for a key present and 13 for a key
 * absent); a put of a new key beyond that returns ENOSPC and changes nothing: the cleaner then
 * cleans only the prefix of the log the map covered, as Kafka's does.
 *
 * Threading: a map is owned by one thread at a time. No I/O; no allocation after init.
 */
#ifndef EDPLOG_KEYMAP_H
#define EDPLOG_KEYMAP_H

#include <stddef.h>
#include <stdint.h>

#include "edplog/edp.h"

#define EDP_KEYMAP_SLOT_BYTES 24

typedef struct edp_keymap_slot {
    uint64_t fp_lo;
    uint64_t fp_hi;
    uint64_t next;
} edp_keymap_slot_t;

typedef struct edp_keymap {
    edp_keymap_slot_t *slots;
    size_t capacity;     /**< slots */
    size_t limit;        /**< keys the map accepts: 80 % of capacity */
    size_t size;         /**< keys held */
    uint64_t seed;
    int64_t max_offset;  /**< the largest offset put, or -1 */
} edp_keymap_t;

/**
 * Allocate a map of capacity_bytes (rounded down to whole slots) with the hash seed seed.
 * @return EDP_OK; EDP_EINVAL when capacity_bytes holds fewer than 2 slots; ENOMEM.
 */
int edp_keymap_init(edp_keymap_t *m, size_t capacity_bytes, uint64_t seed);

/** Free the slots (the map is then empty with capacity 0; freeing twice is harmless). */
void edp_keymap_free(edp_keymap_t *m);

/** Forget every key, keeping the memory. */
void edp_keymap_clear(edp_keymap_t *m);

/**
 * Record that key (len bytes) was written at offset (>= 0); the map keeps the larger of this
 * and any offset it holds for the key already.
 * @return EDP_OK; ENOSPC when the key is new and the map is at its limit (map unchanged);
 *         EDP_EINVAL for a negative offset.
 */
int edp_keymap_put(edp_keymap_t *m, const uint8_t *key, size_t len, int64_t offset);

/** The latest offset put for key, or -1 when the map does not hold it. */
int64_t edp_keymap_get(const edp_keymap_t *m, const uint8_t *key, size_t len);

/** The 128-bit fingerprint of key under seed (out[0] low, out[1] high), as the map uses it. */
void edp_keymap_fingerprint(const uint8_t *key, size_t len, uint64_t seed, uint64_t out[2]);

#endif
