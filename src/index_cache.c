/*
 * index_cache.c
 *	  What an open index keeps in rd_amcache: its settings and its own copy
 *	  of the compressor, read from its pages and checked once.
 *
 * The cache is a single chunk in the relcache entry's context, since a
 * relcache flush frees rd_amcache with one pfree.  The code-to-code table
 * (4 MB at 16 sub-quantizers) is only built for callers that link nodes.
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "index.h"

static void *
palloc_alloc(size_t size, void *st)
{
	return palloc_extended(size, MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
}

static void
palloc_free(void *p, void *st)
{
	pfree(p);
}

const QdbAlloc qdb_palloc_alloc = {palloc_alloc, palloc_free, NULL};

/* The metric of the index's operator class (support function 2). */
QdbMetric
QdbIndexMetric(Relation index)
{
	FmgrInfo   *proc = index_getprocinfo(index, 1, QDB_METRIC_PROC);
	int32		metric = DatumGetInt32(FunctionCall1(proc, (Datum) 0));

	if (metric != QDB_METRIC_L2 && metric != QDB_METRIC_IP && metric != QDB_METRIC_COSINE)
		elog(ERROR, "operator class of index \"%s\" gives unknown metric %d",
			 RelationGetRelationName(index), metric);
	return (QdbMetric) metric;
}

/* The highest level whose node tuple still fits on a page (at most QDB_MAX_LEVEL). */
int
QdbHighestLevel(int code_size, int m, bool inline_codes)
{
	Size		max_item = BLCKSZ - MAXALIGN(SizeOfPageHeaderData) - sizeof(ItemIdData) -
		MAXALIGN(sizeof(QdbPageOpaqueData));
	int			level = QDB_MAX_LEVEL;

	while (level > 0 && MAXALIGN(QdbNodeSize(code_size, m, level, inline_codes)) > max_item)
		level--;
	return level;
}

static Size
copy_floats(char **dst, float **field, const float *src, Size n)
{
	Size		bytes = MAXALIGN(sizeof(float) * n);

	if (src == NULL)
	{
		*field = NULL;
		return 0;
	}
	if (dst)
	{
		*field = (float *) *dst;
		memcpy(*field, src, sizeof(float) * n);
		*dst += bytes;
	}
	return bytes;
}

static QdbIndexCache *
load_cache(Relation index, bool want_pair)
{
	QdbMetaPageData meta;
	bytea	   *blob;
	QdbModel	model;
	char		err[256];
	int			rc;
	Size		nmean,
				nlinear,
				ncodebooks,
				npair,
				total;
	QdbIndexCache *c;
	char	   *p;

	QdbReadMeta(index, &meta);
	blob = QdbReadCompressor(index, &meta);
	memset(&model, 0, sizeof(model));
	err[0] = '\0';
	rc = qdb_model_parse((const uint8 *) VARDATA(blob), VARSIZE(blob) - VARHDRSZ,
						 &qdb_palloc_alloc, &model, err, sizeof(err));
	if (rc != QDB_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("the compressor stored in index \"%s\" cannot be read: %s",
						RelationGetRelationName(index), qdb_status_string(rc)),
				 err[0] ? errdetail_internal("%s", err) : 0,
				 errhint("REINDEX INDEX %s;", RelationGetRelationName(index))));
	if (model.dim != meta.dim || (int) model.metric != meta.metric ||
		(int) qdb_code_size(&model) != meta.code_size)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("the compressor stored in index \"%s\" does not match the index",
						RelationGetRelationName(index)),
				 errdetail("The index has %d dimensions and %d-byte codes; its compressor %d and %d.",
						   meta.dim, meta.code_size, model.dim, (int) qdb_code_size(&model)),
				 errhint("REINDEX INDEX %s;", RelationGetRelationName(index))));

	nmean = copy_floats(NULL, &model.mean, model.mean, model.dim);
	nlinear = copy_floats(NULL, &model.linear, model.linear, (Size) model.dim_pq * model.dim);
	ncodebooks = copy_floats(NULL, &model.codebooks, model.codebooks,
							 (Size) model.M * model.ksub * model.dsub);
	npair = want_pair ? MAXALIGN(sizeof(float) * qdb_pair_table_floats(&model)) : 0;
	total = MAXALIGN(sizeof(QdbIndexCache)) + nmean + nlinear + ncodebooks + npair;

	c = MemoryContextAllocHuge(index->rd_indexcxt, total);
	memset(c, 0, sizeof(QdbIndexCache));
	c->dim = meta.dim;
	c->metric = (QdbMetric) meta.metric;
	c->code_size = meta.code_size;
	c->m = meta.m;
	c->ef_construction = meta.ef_construction;
	c->inline_codes = meta.inline_codes != 0;
	c->max_level = QdbHighestLevel(c->code_size, c->m, c->inline_codes);
	c->level_mult = 1.0 / log((double) c->m);
	c->compressor_crc = meta.compressor_crc;
	c->model = model;
	c->model.alloc = &qdb_palloc_alloc;
	p = (char *) c + MAXALIGN(sizeof(QdbIndexCache));
	copy_floats(&p, &c->model.mean, model.mean, model.dim);
	copy_floats(&p, &c->model.linear, model.linear, (Size) model.dim_pq * model.dim);
	copy_floats(&p, &c->model.codebooks, model.codebooks,
				(Size) model.M * model.ksub * model.dsub);
	if (want_pair)
	{
		c->pair = (float *) p;
		rc = qdb_compute_pair_table(&c->model, c->pair);
		if (rc != QDB_OK)
		{
			pfree(c);
			QdbReportStatus(rc, "could not prepare the index's code distances", NULL);
		}
	}
	qdb_model_free(&model);
	pfree(blob);
	return c;
}

/*
 * The open index's cache, loaded on first use.  want_pair asks for the
 * code-to-code table too (inserts and vacuum).
 */
QdbIndexCache *
QdbGetIndexCache(Relation index, bool want_pair)
{
	QdbIndexCache *c = (QdbIndexCache *) index->rd_amcache;

	if (c != NULL && (!want_pair || c->pair != NULL))
		return c;
	c = load_cache(index, want_pair);
	if (index->rd_amcache)
		pfree(index->rd_amcache);
	index->rd_amcache = c;
	return c;
}

/* A level drawn as in the HNSW paper: floor(-ln(U) / ln(m)), capped. */
int
QdbDrawLevel(const QdbIndexCache *c, pg_prng_state *rng)
{
	double		u = pg_prng_double(rng);
	int			level;

	if (u <= 0)
		u = 1e-12;
	level = (int) floor(-log(u) * c->level_mult);
	return Min(level, c->max_level);
}

float
QdbPairDistance(const QdbIndexCache *c, const uint8 *a, const uint8 *b)
{
	return qdb_pair_distance(&c->model, c->pair, a, b);
}
