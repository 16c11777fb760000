/* Internal helpers shared by the C core: big-endian loads and stores, branch hints. */
#ifndef EDPLOG_COMMON_H
#define EDPLOG_COMMON_H

#include <stdint.h>
#include <string.h>

#define EDP_LIKELY(x) __builtin_expect(!!(x), 1)
#define EDP_UNLIKELY(x) __builtin_expect(!!(x), 0)

static inline uint16_t be16_load(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return __builtin_bswap16(v); }
static inline uint32_t be32_load(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return __builtin_bswap32(v); }
static inline uint64_t be64_load(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return __builtin_bswap64(v); }
static inline void be16_store(uint8_t *p, uint16_t v) { v = __builtin_bswap16(v); memcpy(p, &v, 2); }
static inline void be32_store(uint8_t *p, uint32_t v) { v = __builtin_bswap32(v); memcpy(p, &v, 4); }
static inline void be64_store(uint8_t *p, uint64_t v) { v = __builtin_bswap64(v); memcpy(p, &v, 8); }

#endif
