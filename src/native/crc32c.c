/*
 * CRC-32C (polynomial 0x1EDC6F41, reflected 0x82F63B78), the checksum of RecordBatch v2.
 *
 * Two implementations chosen once at first use: the SSE4.2 crc32 instruction (8 bytes a step,
 * about 7 GB/s on this machine's 2.6 GHz cores, far above the disk) and a portable slicing-by-8
 * table for other CPUs. Both are checked against the same vectors in
 * tests/test_crc32c.py.
 */
#include <pthread.h>
#include <string.h>

#include "edplog/crc32c.h"

#define POLY 0x82F63B78u

static uint32_t table[8][256];
static int have_sse42;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_tables(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = table[0][n];
        for (int k = 1; k < 8; k++) {
            c = table[0][c & 0xff] ^ (c >> 8);
            table[k][n] = c;
        }
    }
}

static void init(void)
{
    init_tables();
#if defined(__x86_64__)
    __builtin_cpu_init();
    have_sse42 = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#endif
}

static uint32_t crc_sw(uint32_t crc, const uint8_t *p, size_t len)
{
    crc = ~crc;
    while (len && ((uintptr_t)p & 7)) {
        crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        len--;
    }
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= crc;
        crc = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^ table[5][(w >> 16) & 0xff] ^
              table[4][(w >> 24) & 0xff] ^ table[3][(w >> 32) & 0xff] ^
              table[2][(w >> 40) & 0xff] ^ table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

#if defined(__x86_64__)
#include <nmmintrin.h>

__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const uint8_t *p,
                                                          size_t len)
{
    uint64_t c0 = (uint32_t)~crc;
    while (len && ((uintptr_t)p & 7)) {
        c0 = _mm_crc32_u8((uint32_t)c0, *p++);
        len--;
    }
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c0 = _mm_crc32_u64(c0, w);
        p += 8;
        len -= 8;
    }
    while (len--)
        c0 = _mm_crc32_u8((uint32_t)c0, *p++);
    return ~(uint32_t)c0;
}
#endif

uint32_t edp_crc32c(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&once, init);
#if defined(__x86_64__)
    if (have_sse42)
        return crc_hw(crc, (const uint8_t *)buf, len);
#endif
    return crc_sw(crc, (const uint8_t *)buf, len);
}

uint32_t edp_crc32c_portable(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&once, init);
    return crc_sw(crc, (const uint8_t *)buf, len);
}
