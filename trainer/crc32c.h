/*
 * crc32c.h
 *	  CRC-32C (Castagnoli), in software: the checksum of serialized models.
 */
#ifndef QDB_CRC32C_H
#define QDB_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * Continues a CRC over more bytes.  Start with crc = 0; the value passed in
 * and returned is the finished CRC of everything so far, so the pieces of a
 * message may be fed in any split.  qdb_crc32c("123456789") = 0xe3069283.
 */
uint32_t	qdb_crc32c_update(uint32_t crc, const void *data, size_t len);

/* the portable path alone (tests compare the two) */
uint32_t	qdb_crc32c_table(uint32_t crc, const void *data, size_t len);

static inline uint32_t
qdb_crc32c(const void *data, size_t len)
{
	return qdb_crc32c_update(0, data, len);
}

#endif							/* QDB_CRC32C_H */
