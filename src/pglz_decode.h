/*
 * pglz_decode.h
 *	  A decoder of Postgres's pglz format (pglz_decode.c), for vectors
 *	  stored compressed in their row.  Needs c.h only: the unit test links
 *	  it beside the server's own pglz in libpgcommon.
 */
#ifndef QDB_PGLZ_DECODE_H
#define QDB_PGLZ_DECODE_H

/* writable bytes past rawsize that QdbPglzDecode may overrun into */
#define QDB_PGLZ_SLACK	16

/*
 * Decodes pglz input [sp, srcend) into dest: exactly rawsize bytes of
 * output (dest has QDB_PGLZ_SLACK more writable bytes, left undefined), as
 * pglz_decompress(..., check_complete = true) gives them; false where that
 * returns -1 (malformed input).
 */
extern bool QdbPglzDecode(const uint8 *sp, const uint8 *srcend, uint8 *dest, int32 rawsize);

#endif							/* QDB_PGLZ_DECODE_H */
