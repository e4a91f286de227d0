/*
 * cli_main.c
 *	  qdb-train: the standalone trainer.  Trains pq/opq compressors from
 *	  .fvecs files into safetensors models, evaluates a model by exhaustive
 *	  ADC against exact ground truth, and dumps vector files as COPY text.
 *
 *	  qdb-train train --input F [--rows N] [--kind opq] [--metric l2]
 *	                  [--subvectors 16] [--target-dim D] [--seed 42]
 *	                  [--kmeans-iters N] [--opq-iters N] [--opq-error -1|0|1] [neural settings]
 *	                  [--rq-beam B] [--rq-refits R] [--rq-eta E]
 *	                  [--device cpu|cuda --cuda-lib SO] --out MODEL
 *	  qdb-train eval  --model MODEL --base F --query F --gt F [--queries N]
 *	  qdb-train dump  --input F [--count N]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_vecs.h"
#include "neural.h"
#include "qdb_internal.h"

typedef struct CliArgs
{
	const char *input,
			   *out,
			   *model,
			   *base,
			   *query,
			   *gt,
			   *device,
			   *cuda_lib;
	long		rows,
				count,
				queries;
	QdbTrainConfig cfg;
	int			quiet;
} CliArgs;

static int
usage(void)
{
	fprintf(stderr,
			"usage: qdb-train train --input F [--rows N] [--kind pq|opq|rq|neural] [--metric l2|ip|cosine]\n"
			"                       [--subvectors M] [--target-dim D] [--seed S]\n"
			"                       [--kmeans-iters N] [--opq-iters N] [--quiet] --out MODEL\n"
			"       opq, l2: [--opq-error -1|0|1 (the last code byte holds the row's error: 1 yes, 0 no,\n"
			"                -1 (default) where a pilot finds it pays, with the default target dim)]\n"
			"       rq:     [--rq-beam B (1-32, default 8)] [--rq-refits R (0-64, default 16)]\n"
			"               [--rq-eta E (cosine/ip: 1-16, default 1)]\n"
			"       neural: [--epochs N] [--batch-size B] [--lr F] [--hidden H] [--k-neighbors K]\n"
			"               [--patience N] [--neural-rows N] [--w-recon F] [--w-cluster F]\n"
			"               [--w-diversity F] [--w-commit F] [--w-triplet F]\n"
			"               [--device cpu|cuda] [--cuda-lib quantumdb_cuda.so]\n"
			"       qdb-train eval  --model MODEL --base F --query F --gt F [--queries N]\n"
			"       qdb-train dump  --input F [--count N]\n");
	return 2;
}

static int
parse_args(int argc, char **argv, CliArgs *a)
{
	memset(a, 0, sizeof(*a));
	qdb_train_config_init(&a->cfg);
	for (int i = 2; i < argc; i++)
	{
		const char *k = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(k, "--quiet") == 0)
		{
			a->quiet = 1;
			continue;
		}
		if (!v)
		{
			fprintf(stderr, "qdb-train: option %s needs a value\n", k);
			return -1;
		}
		i++;
		if (strcmp(k, "--input") == 0)
			a->input = v;
		else if (strcmp(k, "--out") == 0)
			a->out = v;
		else if (strcmp(k, "--model") == 0)
			a->model = v;
		else if (strcmp(k, "--base") == 0)
			a->base = v;
		else if (strcmp(k, "--query") == 0)
			a->query = v;
		else if (strcmp(k, "--gt") == 0)
			a->gt = v;
		else if (strcmp(k, "--rows") == 0)
			a->rows = atol(v);
		else if (strcmp(k, "--count") == 0)
			a->count = atol(v);
		else if (strcmp(k, "--queries") == 0)
			a->queries = atol(v);
		else if (strcmp(k, "--kind") == 0)
		{
			if (qdb_kind_parse(v, &a->cfg.kind) != QDB_OK)
			{
				fprintf(stderr, "qdb-train: unknown kind \"%s\"\n", v);
				return -1;
			}
		}
		else if (strcmp(k, "--metric") == 0)
		{
			if (qdb_metric_parse(v, &a->cfg.metric) != QDB_OK)
			{
				fprintf(stderr, "qdb-train: unknown metric \"%s\"\n", v);
				return -1;
			}
		}
		else if (strcmp(k, "--subvectors") == 0)
			a->cfg.M = atoi(v);
		else if (strcmp(k, "--target-dim") == 0)
			a->cfg.dim_pq = atoi(v);
		else if (strcmp(k, "--seed") == 0)
			a->cfg.seed = strtoull(v, NULL, 10);
		else if (strcmp(k, "--kmeans-iters") == 0)
			a->cfg.kmeans_iters = atoi(v);
		else if (strcmp(k, "--opq-iters") == 0)
			a->cfg.opq_iters = atoi(v);
		else if (strcmp(k, "--opq-error") == 0)
			a->cfg.opq_error = atoi(v);
		else if (strcmp(k, "--epochs") == 0)
			a->cfg.epochs = atoi(v);
		else if (strcmp(k, "--batch-size") == 0)
			a->cfg.batch_size = atoi(v);
		else if (strcmp(k, "--lr") == 0)
			a->cfg.lr = strtof(v, NULL);
		else if (strcmp(k, "--hidden") == 0)
			a->cfg.hidden = atoi(v);
		else if (strcmp(k, "--k-neighbors") == 0)
			a->cfg.k_neighbors = atoi(v);
		else if (strcmp(k, "--patience") == 0)
			a->cfg.patience = atoi(v);
		else if (strcmp(k, "--neural-rows") == 0)
			a->cfg.neural_rows = atoi(v);
		/* also under the SQL names with dashes (session 66's hunt F3) */
		else if (strcmp(k, "--w-recon") == 0 || strcmp(k, "--w-reconstruction") == 0)
			a->cfg.w_recon = strtof(v, NULL);
		else if (strcmp(k, "--w-cluster") == 0)
			a->cfg.w_cluster = strtof(v, NULL);
		else if (strcmp(k, "--w-diversity") == 0)
			a->cfg.w_diversity = strtof(v, NULL);
		else if (strcmp(k, "--w-commit") == 0 || strcmp(k, "--w-commitment") == 0)
			a->cfg.w_commit = strtof(v, NULL);
		else if (strcmp(k, "--w-triplet") == 0)
			a->cfg.w_triplet = strtof(v, NULL);
		else if (strcmp(k, "--rq-beam") == 0 || strcmp(k, "--beam") == 0)
			a->cfg.rq_beam = atoi(v);
		else if (strcmp(k, "--rq-refits") == 0 || strcmp(k, "--refits") == 0)
			a->cfg.rq_refits = atoi(v);
		else if (strcmp(k, "--rq-eta") == 0 || strcmp(k, "--eta") == 0)
			a->cfg.rq_eta = strtof(v, NULL);
		else if (strcmp(k, "--device") == 0)
			a->device = v;
		else if (strcmp(k, "--cuda-lib") == 0)
			a->cuda_lib = v;
		else
		{
			fprintf(stderr, "qdb-train: unknown option %s\n", k);
			return -1;
		}
	}
	return 0;
}

static int
print_progress(const QdbEpochStats *s, void *arg)
{
	const QdbNeuralEpoch *e = s->neural;

	if (*(int *) arg || s->heartbeat)
		return 0;
	if (e)
		fprintf(stderr, "neural epoch %d/%d on %s: loss %.5g (recon %.4g cluster %.4g "
				"diversity %.4g commit %.4g triplet %.4g) entropy %.2f bits, "
				"validation recall %.4f%s, %.0f samples/s, tau %.3f (%.1f s)\n",
				s->iter, s->iters, e->device, e->total, e->recon, e->cluster, e->diversity,
				e->commit, e->triplet, e->code_entropy, e->val_recall,
				e->best ? " (best)" : "", e->samples_per_sec, e->tau, s->seconds);
	else
		fprintf(stderr, "%s %d/%d: %s %.6g (%.2f s)\n", s->stage, s->iter, s->iters,
				s->measure ? s->measure : "mse", s->loss, s->seconds);
	return 0;
}

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int
cmd_train(CliArgs *a)
{
	char		err[256];
	size_t		n;
	int			dim,
				rc;
	float	   *x;
	const QdbNeuralOps *ops = qdb_neural_cpu_ops();
	QdbBackend *b = NULL;
	QdbModel	model;
	uint8_t    *blob;
	size_t		bloblen;
	double		t0;
	FILE	   *f;

	if (!a->input || !a->out)
		return usage();
	x = cli_read_vecs(a->input, a->rows, &n, &dim, err, sizeof(err));
	if (!x)
	{
		fprintf(stderr, "qdb-train: %s\n", err);
		return 1;
	}
	a->cfg.dim = dim;
	memset(&model, 0, sizeof(model));
	if (a->device && strcmp(a->device, "cuda") == 0 &&
		qdb_cuda_backend(a->cuda_lib ? a->cuda_lib : "./quantumdb_cuda.so", &ops, err,
						 sizeof(err)) != QDB_OK)
	{
		fprintf(stderr, "qdb-train: %s\n", err);
		free(x);
		return 1;
	}
	rc = qdb_backend_open(&b, ops, NULL, err, sizeof(err));
	if (rc != QDB_OK)
	{
		fprintf(stderr, "qdb-train: backend %s: %s\n", ops->name, err);
		free(x);
		return 1;
	}
	t0 = now_seconds();
	rc = qdb_backend_train(b, x, n, &a->cfg, &model, print_progress, &a->quiet);
	t0 = now_seconds() - t0;
	free(x);
	if (rc != QDB_OK)
	{
		fprintf(stderr, "qdb-train: training failed: %s%s%s\n", qdb_status_string(rc),
				qdb_backend_last_error(b)[0] ? ": " : "", qdb_backend_last_error(b));
		qdb_backend_close(b);
		return 1;
	}
	qdb_backend_close(b);
	rc = qdb_model_serialize(&model, NULL, &blob, &bloblen);
	qdb_model_free(&model);
	if (rc != QDB_OK)
	{
		fprintf(stderr, "qdb-train: serialize: %s\n", qdb_status_string(rc));
		return 1;
	}
	f = fopen(a->out, "wb");
	if (!f || fwrite(blob, 1, bloblen, f) != bloblen || fclose(f) != 0)
	{
		fprintf(stderr, "qdb-train: cannot write %s\n", a->out);
		free(blob);
		return 1;
	}
	free(blob);
	printf("trained kind=%s metric=%s rows=%zu dim=%d seconds=%.3f bytes=%zu\n",
		   qdb_kind_name(a->cfg.kind), qdb_metric_name(a->cfg.metric), n, dim, t0, bloblen);
	return 0;
}

static uint8_t *
read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	long		size;
	uint8_t    *buf;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(size > 0 ? size : 1);
	if (!buf || fread(buf, 1, size, f) != (size_t) size)
	{
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	*len = size;
	return buf;
}

/*
 * Mean microseconds to build a query's ADC table, over the queries (every
 * one 10 times, at most 1,000 queries); -1 when one fails.
 */
static double
table_microseconds(const QdbModel *m, const float *query, size_t nq, int dq, float *table)
{
	size_t		n = nq < 1000 ? nq : 1000,
				q;
	double		t0 = now_seconds();
	float		bias;
	int			rep;

	for (rep = 0; rep < 10; rep++)
		for (q = 0; q < n; q++)
			if (qdb_compute_distance_table(m, query + q * dq, table, &bias) != QDB_OK)
				return -1;
	return n ? (now_seconds() - t0) * 1e6 / (10.0 * n) : 0;
}

static int
cmd_eval(CliArgs *a)
{
	QdbEncoder *enc = NULL;
	char		err[256];
	size_t		bloblen,
				nb,
				nq,
				ngt;
	int			db,
				dq,
				kgt,
				rc;
	uint8_t    *blob,
			   *codes;
	float	   *base,
			   *query,
			   *table;
	int32_t    *gt;
	QdbModel	m;
	double		t_enc,
				t_search,
				table_us,
				table_us_raw,
				r10 = 0,
				r1_10 = 0,
				r1_100 = 0;
	enum
	{
	K = 100};
	float		dist[K];
	int			ids[K];

	if (!a->model || !a->base || !a->query || !a->gt)
		return usage();
	blob = read_file(a->model, &bloblen);
	if (!blob)
	{
		fprintf(stderr, "qdb-train: cannot read %s\n", a->model);
		return 1;
	}
	rc = qdb_model_parse(blob, bloblen, NULL, &m, err, sizeof(err));
	free(blob);
	if (rc != QDB_OK)
	{
		fprintf(stderr, "qdb-train: %s: %s\n", a->model, err);
		return 1;
	}
	base = cli_read_vecs(a->base, 0, &nb, &db, err, sizeof(err));
	query = base ? cli_read_vecs(a->query, a->queries, &nq, &dq, err, sizeof(err)) : NULL;
	gt = query ? cli_read_vecs(a->gt, a->queries, &ngt, &kgt, err, sizeof(err)) : NULL;
	if (!gt)
	{
		fprintf(stderr, "qdb-train: %s\n", err);
		return 1;
	}
	/* each mismatch said as it is (session 66's hunt F4) */
	if (db != m.dim || dq != m.dim)
	{
		fprintf(stderr, "qdb-train: the model has %d dimensions, the base %d and the queries %d\n",
				m.dim, db, dq);
		return 1;
	}
	if (ngt != nq || kgt < 10)
	{
		fprintf(stderr, "qdb-train: the ground truth has %zu rows of %d neighbours for %zu queries: "
				"it needs a row of at least 10 per query (--queries N takes the first N of both)\n",
				ngt, kgt, nq);
		return 1;
	}
	/* the 10 neighbours recall reads; a negative id is none (padding) */
	for (size_t q = 0; q < nq; q++)
		for (int j = 0; j < 10; j++)
			if (gt[q * kgt + j] >= 0 && (size_t) gt[q * kgt + j] >= nb)
			{
				fprintf(stderr, "qdb-train: the ground truth names row %d, but the base has %zu rows: "
						"it was computed on another base\n", gt[q * kgt + j], nb);
				return 1;
			}
	codes = malloc(nb * qdb_code_size(&m));
	table = malloc(qdb_table_floats(&m) * sizeof(float));
	/* a query's table, as built before and after qdb_model_prepare */
	table_us_raw = table_microseconds(&m, query, nq, dq, table);
	if ((rc = qdb_model_prepare(&m)) != QDB_OK)
	{
		fprintf(stderr, "qdb-train: %s\n", qdb_status_string(rc));
		return 1;
	}
	table_us = table_microseconds(&m, query, nq, dq, table);
	/* the base encoded as CREATE INDEX encodes a table's rows */
	t_enc = now_seconds();
	rc = qdb_encoder_create(&m, NULL, qdb_encoder_table_bytes(&m), &enc);
	if (rc == QDB_ERR_NOMEM)	/* a wide code's tables: build them per batch */
		rc = qdb_encoder_create(&m, NULL, 0, &enc);
	if (rc == QDB_OK)
		rc = qdb_encoder_codes(enc, base, nb, codes);
	qdb_encoder_free(enc);
	t_enc = now_seconds() - t_enc;
	if (rc != QDB_OK)
	{
		fprintf(stderr, "qdb-train: encode: %s\n", qdb_status_string(rc));
		return 1;
	}
	t_search = now_seconds();
	for (size_t q = 0; q < nq; q++)
	{
		float		bias;
		int			len = 0,
					hits = 0;
		const int32_t *g = gt + q * kgt;

		rc = qdb_compute_distance_table(&m, query + q * dq, table, &bias);
		if (rc != QDB_OK)
		{
			fprintf(stderr, "qdb-train: query %zu: %s\n", q, qdb_status_string(rc));
			return 1;
		}
		for (size_t i = 0; i < nb; i++)
			qdb_topk_insert(dist, ids, &len, K,
					  qdb_adc_distance(&m, table, bias, codes + i * m.M), (int) i);
		/* a base of fewer than 10 rows fills fewer (session 64's hunt F4) */
		for (int i = 0; i < 10 && i < len; i++)
			for (int j = 0; j < 10; j++)
				hits += ids[i] == g[j];
		r10 += hits / 10.0;
		for (int i = 0; i < 10 && i < len; i++)
			r1_10 += ids[i] == g[0];
		for (int i = 0; i < K && i < len; i++)
			r1_100 += ids[i] == g[0];
	}
	t_search = now_seconds() - t_search;
	printf("recall10@10=%.4f recall1@10=%.4f recall1@100=%.4f queries=%zu base=%zu "
		   "encode_seconds=%.3f search_seconds=%.3f table_us=%.1f table_us_unprepared=%.1f\n",
		   r10 / nq, r1_10 / nq, r1_100 / nq, nq, nb, t_enc, t_search, table_us,
		   table_us_raw);
	qdb_model_free(&m);
	free(codes);
	free(table);
	free(base);
	free(query);
	free(gt);
	return 0;
}

static int
cmd_dump(CliArgs *a)
{
	char		err[256];
	size_t		n;
	int			dim;
	int		   *x;
	int			is_int;

	if (!a->input)
		return usage();
	x = cli_read_vecs(a->input, a->count, &n, &dim, err, sizeof(err));
	if (!x)
	{
		fprintf(stderr, "qdb-train: %s\n", err);
		return 1;
	}
	is_int = strlen(a->input) > 6 && strcmp(a->input + strlen(a->input) - 6, ".ivecs") == 0;
	for (size_t i = 0; i < n; i++)
	{
		printf("%zu\t{", i);
		for (int j = 0; j < dim; j++)
		{
			if (is_int)
				printf(j ? ",%d" : "%d", x[i * dim + j]);
			else
				printf(j ? ",%.9g" : "%.9g", ((float *) x)[i * dim + j]);
		}
		printf("}\n");
	}
	free(x);
	return 0;
}

int
main(int argc, char **argv)
{
	CliArgs		a;

	if (argc < 2 || parse_args(argc, argv, &a) != 0)
		return usage();
	if (strcmp(argv[1], "train") == 0)
		return cmd_train(&a);
	if (strcmp(argv[1], "eval") == 0)
		return cmd_eval(&a);
	if (strcmp(argv[1], "dump") == 0)
		return cmd_dump(&a);
	return usage();
}
