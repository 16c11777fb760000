/* CRC-32C (Castagnoli), as RecordBatch v2 uses it. Pure function; any thread; no GIL needed. */
#ifndef EDPLOG_CRC32C_H
#define EDPLOG_CRC32C_H
#include <stddef.h>
#include <stdint.h>

/** Extend crc (0 to start) over len bytes. Uses the SSE4.2 instruction when the CPU has it. */
uint32_t edp_crc32c(uint32_t crc, const void *buf, size_t len);


/** The portable table implementation, exposed so tests can check both paths agree. */
uint32_t edp_crc32c_portable(uint32_t crc, const void *buf, size_t len);

#endif
