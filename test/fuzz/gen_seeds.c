/*
 * gen_seeds.c
 *	  Writes the fuzzer's seed corpus: small valid blobs from
 *	  qdb_model_serialize (every kind and metric, with and without mean and
 *	  linear) and pattern.st, whose every tensor element i is i/4 - 3, for
 *	  check_interop.py.  Usage: gen_seeds DIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qdb_trainer.h"

static int
write_model_coded(const char *dir, const char *name, int kind, int metric, int dim,
				  int dim_pq, int M, int err_byte, int with_mean, int with_linear, int pattern)
{
	QdbModel	m;
	uint8_t    *blob;
	size_t		len;
	char		path[1024];
	FILE	   *f;
	float	   *arrays[9];
	size_t		counts[9];
	uint32_t	x = 12345;
	int			h = 4;			/* a neural kind's hidden width */

	/* the neural kind has an encoder and a decoder instead of a linear map */
	if ((kind == QDB_KIND_NEURAL ?
		 qdb_model_alloc_neural(&m, NULL, metric, dim, dim_pq, M, h) :
		 qdb_model_alloc_coded(&m, NULL, kind, metric, dim, dim_pq, M, err_byte, with_mean,
							   with_linear)) != QDB_OK)
	{
		fprintf(stderr, "gen_seeds: %s: the model cannot be made\n", name);
		return -1;
	}
	arrays[0] = m.codebooks;
	counts[0] = (size_t) M * QDB_KSUB * m.dsub;
	arrays[1] = m.mean;
	counts[1] = dim;
	arrays[2] = m.linear;
	counts[2] = (size_t) dim * dim_pq;
	arrays[3] = m.enc_w1;
	counts[3] = (size_t) h * dim;
	arrays[4] = m.enc_b1;
	counts[4] = h;
	arrays[5] = m.enc_w2;
	counts[5] = (size_t) dim_pq * h;
	arrays[6] = m.enc_b2;
	counts[6] = dim_pq;
	arrays[7] = m.dec_w;
	counts[7] = (size_t) dim * dim_pq;
	arrays[8] = m.dec_b;
	counts[8] = dim;
	for (int t = 0; t < 9; t++)
		for (size_t i = 0; arrays[t] && i < counts[t]; i++)
		{
			x = x * 1103515245u + 12345u;
			arrays[t][i] = pattern ? (float) i / 4.0f - 3.0f : (float) (x >> 8) / 16777216.0f - 0.5f;
		}
	m.config.kind = kind;
	m.config.metric = metric;
	m.config.dim = dim;
	m.config.M = M;
	m.config.dim_pq = with_linear || kind == QDB_KIND_NEURAL ? dim_pq : 0;
	m.config.hidden = kind == QDB_KIND_NEURAL ? h : 0;
	m.config.kmeans_iters = 25;
	m.config.opq_iters = 20;
	m.config.opq_pq_iters = 4;
	m.config.max_points_per_centroid = 256;
	m.config.seed = 42;
	m.config.opq_error = err_byte;
	if (qdb_model_serialize(&m, NULL, &blob, &len) != QDB_OK)
	{
		fprintf(stderr, "gen_seeds: %s: the model does not serialize\n", name);
		qdb_model_free(&m);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s.st", dir, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(blob, 1, len, f) != len || fclose(f) != 0)
	{
		perror(path);
		return -1;
	}
	qdb_default_alloc.free(blob, qdb_default_alloc.st);
	qdb_model_free(&m);
	return 0;
}

static int
write_model(const char *dir, const char *name, int kind, int metric, int dim, int dim_pq,
			int M, int with_mean, int with_linear, int pattern)
{
	return write_model_coded(dir, name, kind, metric, dim, dim_pq, M, 0, with_mean,
							 with_linear, pattern);
}

int
main(int argc, char **argv)
{
	static const char *kinds[] = {"", "pq", "opq", "neural", "rq"};
	static const char *metrics[] = {"", "l2", "ip", "cosine"};
	int			rc = 0;

	if (argc != 2)
	{
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	for (int k = 1; k <= QDB_KIND_LAST; k++)
		for (int me = 1; me <= 3; me++)
		{
			char		name[64];
			/* rq always has its mean */
			int			mean = k == QDB_KIND_RQ || (k + me) % 2,
						linear = k != 1;

			/* the neural kind has no inner-product form */
			if (k == QDB_KIND_NEURAL && me == QDB_METRIC_IP)
				continue;
			snprintf(name, sizeof(name), "seed-%s-%s%s%s", kinds[k], metrics[me],
					 mean ? "-mean" : "", linear ? "-linear" : "");
			rc |= write_model(argv[1], name, k, me, 3, linear ? 2 : 4, 2, mean, linear, 0);
		}
	rc |= write_model(argv[1], "seed-tiny", 1, 1, 1, 1, 1, 0, 0, 0);
	/* kind opq under l2 with an error byte: 2 sub-quantizers of 1 dim, then the byte */
	rc |= write_model_coded(argv[1], "seed-opq-l2-error", 2, 1, 3, 2, 3, 1, 1, 1, 0);
	rc |= write_model(argv[1], "pattern", 2, 3, 5, 4, 2, 1, 1, 1);
	if (rc != 0)
		fprintf(stderr, "gen_seeds: could not write every seed\n");
	return rc != 0;
}
