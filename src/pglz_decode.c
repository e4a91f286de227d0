/*
 * pglz_decode.c
 *	  Vectors stored pglz-compressed in their row, decompressed for the
 *	  exact distance functions faster than the server's detoasting does.
 *
 * Postgres compresses a value over about 2 kB that compresses by a quarter
 * or more (784 floats of an image, with runs of zero pixels) and keeps it
 * in the row.  Every exact distance on such a row decompresses it first:
 * an index scan's rerank, the executor's own evaluation of the ORDER BY
 * distance, an exact scan.  In `perf record` of a backend answering
 * fashion-mnist-784 queries through the index (ef_search 30, rerank 35),
 * pglz_decompress and the memcpy calls it makes for each back-reference
 * took 41% of the samples.
 *
 * The format (src/common/pg_lzcompress.c in Postgres) is a control byte
 * whose 8 bits, lowest first, say what the next 8 items are: a literal
 * byte (bit 0), or a back-reference (bit 1) of 2 bytes, with length
 * 3 + the first byte's low nibble and offset (high nibble << 8) | second
 * byte, where a low nibble of 15 adds a third byte to the length.  The
 * output of a back-reference is what a byte-by-byte copy from offset bytes
 * back gives, overlapping or not.
 *
 * Here a run of literals (the control bits' trailing zeros) is one 8-byte
 * copy, and a reference is copied 8 bytes at a time, into a buffer with
 * QDB_PGLZ_SLACK (16) bytes of room past the value's end: a copy may write
 * up to 7 bytes past what it decodes, and what follows overwrites them.  A
 * reference under 8 bytes back that overlaps its own output is first
 * widened: the output repeats with the offset's period, so after copying
 * `off` bytes the same bytes lie 2 * off back.  The output is the server's
 * byte for byte; malformed input (a reference before the start, input or
 * output ending early or late) is the same "compressed ... data is corrupt"
 * ERROR the server raises.  Values compressed otherwise (lz4), stored out
 * of line, or not compressed take the server's own path.
 */
#include "c.h"

#include "port/pg_bitutils.h"

#include "pglz_decode.h"

/*
 * 8 bytes from src to dst, one load and one store; the two may overlap
 * (a reference with an offset under 8 whose length is at most the offset:
 * only the bytes before dst are kept).
 */
static inline void
copy8(uint8 *dst, const uint8 *src)
{
	uint64		v;

	memcpy(&v, src, 8);
	memcpy(dst, &v, 8);
}

bool
QdbPglzDecode(const uint8 *sp, const uint8 *srcend, uint8 *dest, int32 rawsize)
{
	uint8	   *dp = dest;
	uint8	   *destend = dest + rawsize;

	while (sp < srcend && dp < destend)
	{
		uint32		ctrl = *sp++;
		int			items = 8;

		while (items > 0 && sp < srcend && dp < destend)
		{
			/* the literals before the next reference, in one copy */
			int			lits = ctrl ? pg_rightmost_one_pos32(ctrl) : 8;
			int32		len,
						off;
			const uint8 *from;
			uint8	   *end;

			if (lits > 0)
			{
				lits = Min(lits, items);
				if (srcend - sp >= 8)
				{
					lits = (int) Min((ptrdiff_t) lits, destend - dp);
					copy8(dp, sp);
				}
				else
				{
					lits = (int) Min((ptrdiff_t) lits, Min(srcend - sp, destend - dp));
					for (int i = 0; i < lits; i++)
						dp[i] = sp[i];
				}
				dp += lits;
				sp += lits;
				items -= lits;
				ctrl >>= lits;
				continue;
			}
			/* a reference */
			items--;
			ctrl >>= 1;
			if (srcend - sp < 2)
				return false;
			len = (sp[0] & 0x0f) + 3;
			off = ((sp[0] & 0xf0) << 4) | sp[1];
			sp += 2;
			if (len == 18)
			{
				if (sp >= srcend)
					return false;
				len += *sp++;
			}
			if (off == 0 || off > dp - dest)
				return false;
			if (len > destend - dp)
				len = (int32) (destend - dp);
			end = dp + len;
			from = dp - off;
			if (len <= 8 && off >= len)
			{
				/* no overlap: one copy (most references are 4 to 8 bytes) */
				copy8(dp, from);
				dp = end;
				continue;
			}
			/* a short period: widen it to 8 or more, a period at a time */
			while (off < 8 && dp < end)
			{
				int32		n = Min(off, (int32) (end - dp));

				for (int32 i = 0; i < n; i++)
					dp[i] = from[i];
				dp += n;
				off *= 2;
				from = dp - off;
			}
			while (dp < end)
			{
				copy8(dp, from);
				dp += 8;
				from += 8;
			}
			dp = end;
		}
	}
	return dp == destend && sp == srcend;
}
