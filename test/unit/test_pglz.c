/*
 * test_pglz.c
 *	  Unit tests of QdbPglzDecode (src/pglz_decode.c) against the server's
 *	  own pglz (libpgcommon): for inputs the server's compressor made (runs,
 *	  repeated floats, 784-float images with zero borders, text-like bytes,
 *	  every length from 0 to 300, references of every period from 1 to 20),
 *	  the same bytes and nothing written past the slack; for malformed
 *	  inputs (truncated, bytes changed, a wrong raw size), false exactly
 *	  where pglz_decompress(..., true) returns -1, and the same bytes where
 *	  it does not.  TAP output (the two decoders' speed:
 *	  test/bench/pglz_decode.sh).
 */
#include "postgres_fe.h"

#include <stdlib.h>

#include "common/pg_lzcompress.h"
#include "pglz_decode.h"
#include "../../trainer/tests/tap.h"

#define MAXRAW	8192
#define GUARD	64

static uint8 raw[MAXRAW];
static char comp[MAXRAW + 64];
static char want[MAXRAW];
static uint8 got[MAXRAW + GUARD];

static int	bad_bytes;			/* inputs decoded to other bytes */
static int	bad_verdict;		/* malformed inputs judged otherwise */
static int	overrun;			/* writes past rawsize + slack */

/*
 * Decodes comp[0 .. clen) with both decoders to rawsize bytes; counts
 * disagreements.  Returns whether the server's decoder accepted it.
 */
static bool
compare(int32 clen, int32 rawsize)
{
	int32		r = pglz_decompress(comp, clen, want, rawsize, true);
	bool		ok;

	memset(got, 0xa5, sizeof(got));
	ok = QdbPglzDecode((const uint8 *) comp, (const uint8 *) comp + clen, got, rawsize);
	if (ok != (r == rawsize))
		bad_verdict++;
	else if (ok && memcmp(got, want, rawsize) != 0)
		bad_bytes++;
	for (int i = rawsize + QDB_PGLZ_SLACK; i < rawsize + GUARD; i++)
		if (got[i] != 0xa5)
		{
			overrun++;
			break;
		}
	return r == rawsize;
}

/* Compresses raw[0 .. n) (always, whatever the gain); -1 if pglz will not. */
static int32
compress(int32 n)
{
	return pglz_compress((const char *) raw, n, comp, PGLZ_strategy_always);
}

/* A 28 x 28 image of floats 0..255: zero borders, a blob in the middle. */
static void
make_image(int seed)
{
	float		px[784];

	srand(seed);
	for (int y = 0; y < 28; y++)
		for (int x = 0; x < 28; x++)
		{
			int			dx = x - 14,
						dy = y - 14;
			float		v = 0;

			if (dx * dx + dy * dy < 80 + rand() % 40)
				v = (float) (rand() % 4 == 0 ? 255 : rand() % 256);
			px[y * 28 + x] = v;
		}
	memcpy(raw, px, sizeof(px));
}

int
main(void)
{
	int			cases = 0,
				malformed = 0,
				accepted = 0;

	/* every length, runs and short periods */
	for (int32 n = 0; n <= 300; n++)
		for (int period = 1; period <= 20; period++)
		{
			int32		clen;

			for (int i = 0; i < n; i++)
				raw[i] = (uint8) ((i % period) * 37 + period);
			/* a few changed bytes break the runs into several references */
			if (n > 10)
				raw[n / 3] ^= 0x5a;
			if ((clen = compress(n)) < 0)
				continue;
			compare(clen, n);
			cases++;
		}
	/* random text-like bytes and repeated floats */
	srand(7);
	for (int c = 0; c < 2000; c++)
	{
		int32		n = 1 + rand() % 4000,
					clen;
		int			alphabet = 2 + rand() % 30;

		for (int i = 0; i < n; i++)
			raw[i] = (uint8) ('a' + rand() % alphabet);
		if (c % 2)
			for (int i = 0; i + 4 <= n; i += 4)
			{
				float		f = (float) (rand() % 8) * 0.5f;

				memcpy(raw + i, &f, 4);
			}
		if ((clen = compress(n)) < 0)
			continue;
		compare(clen, n);
		cases++;
	}
	/* images */
	for (int c = 0; c < 300; c++)
	{
		int32		clen;

		make_image(c);
		if ((clen = compress(3136)) < 0)
			continue;
		compare(clen, 3136);
		cases++;
	}
	tap_ok(cases > 5000 && bad_bytes == 0 && bad_verdict == 0,
		   "%d inputs pglz compressed decode to the server's bytes (%d differ, %d refused)",
		   cases, bad_bytes, bad_verdict);
	tap_ok(overrun == 0, "no write past the slack (%d overruns)", overrun);

	/* malformed: truncated, changed bytes, wrong raw sizes */
	bad_bytes = bad_verdict = overrun = 0;
	srand(11);
	for (int c = 0; c < 3000; c++)
	{
		int32		n,
					clen;

		make_image(c);
		n = 3136;
		if (c % 3 == 1)
		{
			n = 1 + rand() % 2000;
			for (int i = 0; i < n; i++)
				raw[i] = (uint8) (rand() % 3);
		}
		if ((clen = compress(n)) < 2)
			continue;
		switch (c % 4)
		{
			case 0:				/* truncated */
				clen = rand() % clen;
				break;
			case 1:				/* one to three bytes changed */
				for (int k = 0; k <= rand() % 3; k++)
					comp[rand() % clen] = (char) rand();
				break;
			case 2:				/* the raw size off by a little */
				n = Max(0, Min(MAXRAW - 1, n + (rand() % 17) - 8));
				break;
			case 3:				/* a reference made to reach before the start */
				comp[1 + rand() % Min(clen - 1, 8)] = (char) 0xff;
				break;
		}
		malformed++;
		if (compare(clen, n))
			accepted++;
	}
	tap_ok(bad_verdict == 0 && bad_bytes == 0,
		   "%d damaged inputs: refused where the server refuses (%d of them), the same "
		   "bytes where it accepts (%d verdicts differ, %d outputs)",
		   malformed, malformed - accepted, bad_verdict, bad_bytes);
	tap_ok(overrun == 0 && malformed - accepted > 1000,
		   "and none writes past the slack (%d overruns)", overrun);
	printf("1..%d\n", tap_count);
	return tap_failed ? 1 : 0;
}
