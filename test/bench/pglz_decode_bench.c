/*
 * pglz_decode_bench.c
 *	  The server's pglz decoder (libpgcommon) against src/pglz_decode.c on
 *	  the rows of an .fvecs file, each compressed as the server's TOAST
 *	  compresses a real[] value over about 2 kB (PGLZ_strategy_default):
 *	  microseconds per row for each, the two in alternating rounds.
 *	  Built and run by pglz_decode.sh.
 *
 * usage: pglz_decode_bench FILE.fvecs [ROWS] [ROUNDS]
 */
#include "postgres_fe.h"

#include <time.h>

#include "common/pg_lzcompress.h"
#include "pglz_decode.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int
main(int argc, char **argv)
{
	FILE	   *f;
	int			rows = argc > 2 ? atoi(argv[2]) : 3000,
				rounds = argc > 3 ? atoi(argv[3]) : 5,
				n = 0,
				d = 0;
	char	  **comp;
	int32	   *clen;
	char	   *out;
	uint8	   *got;
	float	   *row = NULL;
	double		t_server = 0,
				t_ours = 0,
				bytes = 0;

	if (argc < 2 || (f = fopen(argv[1], "rb")) == NULL)
	{
		fprintf(stderr, "usage: %s FILE.fvecs [ROWS] [ROUNDS]\n", argv[0]);
		return 2;
	}
	comp = malloc(sizeof(char *) * rows);
	clen = malloc(sizeof(int32) * rows);
	while (n < rows && fread(&d, 4, 1, f) == 1 && d > 0 && d <= 65536)
	{
		row = row ? row : malloc(sizeof(float) * d);
		if (fread(row, sizeof(float), d, f) != (size_t) d)
			break;
		comp[n] = malloc(PGLZ_MAX_OUTPUT(d * 4));
		clen[n] = pglz_compress((const char *) row, d * 4, comp[n], PGLZ_strategy_default);
		if (clen[n] < 0)
		{
			free(comp[n]);
			continue;			/* the server stores it uncompressed */
		}
		bytes += clen[n];
		n++;
	}
	if (n == 0)
	{
		fprintf(stderr, "no row of %s compresses\n", argv[1]);
		return 1;
	}
	out = malloc(d * 4);
	got = malloc(d * 4 + QDB_PGLZ_SLACK);
	/* the same bytes first */
	for (int i = 0; i < n; i++)
		if (pglz_decompress(comp[i], clen[i], out, d * 4, true) != d * 4 ||
			!QdbPglzDecode((const uint8 *) comp[i], (const uint8 *) comp[i] + clen[i],
						   got, d * 4) || memcmp(got, out, d * 4) != 0)
		{
			fprintf(stderr, "row %d decodes differently\n", i);
			return 1;
		}
	for (int r = 0; r < rounds; r++)
	{
		double		t0 = now();

		for (int i = 0; i < n; i++)
			pglz_decompress(comp[i], clen[i], out, d * 4, true);
		t_server += now() - t0;
		t0 = now();
		for (int i = 0; i < n; i++)
			QdbPglzDecode((const uint8 *) comp[i], (const uint8 *) comp[i] + clen[i], got, d * 4);
		t_ours += now() - t0;
	}
	printf("%d rows of %d floats, %.0f of %d bytes compressed; server %.2f us, "
		   "quantumdb %.2f us per row (%.2fx)\n", n, d, bytes / n, d * 4,
		   t_server / rounds / n * 1e6, t_ours / rounds / n * 1e6, t_server / t_ours);
	return 0;
}
