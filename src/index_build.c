/*
 * index_build.c
 *	  CREATE INDEX ... USING quantumdb.
 *
 * The build
 *	1. takes its compressor from the catalog (option "compressor") or, with
 *	   none named, trains an opq compressor on a sample of the column
 *	   (build_model.c);
 *	2. writes the meta page and the compressor's own pages, so the index
 *	   never depends on the catalog row again;
 *	3. scans the heap, encodes rows in batches and inserts them into an HNSW
 *	   graph held in memory: with distances between vectors while they fit
 *	   in maintenance_work_mem (a better graph), then with code distances
 *	   (ADC for the new row, code-to-code between nodes).  The vectors are
 *	   the full rows (normalised under cosine), or, when the compressor
 *	   first projects the rows on fewer orthonormal directions (PCA, OPQ's
 *	   rotation; see projected_build), those projections: the codes cannot
 *	   tell apart what the projection drops, and the distances cost
 *	   dim_pq / dim as much (fashion-mnist-784: 256 of 784 dims).  The
 *	   graph keeps them as 16-bit integers (graph_vec16.c);
 *	4. writes the graph to pages in insertion order.  If even the codes-only
 *	   graph outgrows maintenance_work_mem, it is written out early and the
 *	   remaining rows are inserted page by page, as INSERT does.
 *	5. WAL-logs every page at the end (log_all_pages).
 * Levels are drawn from a generator seeded the same way in every build, so
 * a build over the same rows in the same order gives the same index.
 */
#include "postgres.h"

#include <math.h>
#include <sched.h>

#include "access/detoast.h"
#include "access/tableam.h"
#include "access/toast_compression.h"
#include "access/xloginsert.h"
#include "access/xlogrecord.h"
#include "catalog/index.h"
#include "commands/progress.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/rel.h"

#include "crc32c.h"
#include "qdb_distance.h"
#include "robust_mean.h"
#include "graph_memory.h"
#include "blas_load.h"
#include "calibration.h"
#include "index.h"
#include "task_pool.h"

#define BUILD_BATCH		1024

/*
 * fashion-mnist-784's rows stored three ways in one cluster, each with its
 * own index, queried side by side with test/bench/scan_ab.py --a-table
 * --b-table at ef_search 40 / rerank 40 (the index scan:
 * test/bench/RESULTS.md, "Rows stored plainly or by lz4"); the exact scan
 * from test/bench/index.sh --emb-storage plain against the default storage
 * (test/bench/RESULTS.md, "The index against pgvector")
 */
#define QDB_PLAIN_STORAGE_GAIN	"1.5 times the index scan's queries per second at 0.97 recall and 5.6 times the exact scan's"
#define QDB_LZ4_STORAGE_GAIN	"; rows compressed by lz4 instead of pglz, 1.1 to 1.2 times the index scan's"

#define BUILD_SEED		UINT64CONST(0x5144424255494c44)

typedef struct BuildState
{
	Relation	heap;
	Relation	index;
	IndexInfo  *indexInfo;		/* ii_BrokenHotChain: a version left out */
	QdbIndexCache *c;
	pg_prng_state rng;
	MemoryContext graph_cxt;
	MemoryContext tmp_cxt;
	Size		lists_bytes;	/* neighbour lists of the nodes in memory */
	Size		mem_limit;
	bool		exact;			/* vectors kept: distances between them */
	bool		projected;		/* the vectors are the model's projections */
	float	   *proj;			/* (BUILD_BATCH, dim_pq): a batch's projections */
	uint32		flags;			/* QDB_BUILT_* */
	int			from_codes_at;	/* rows in the graph when codes took over */
	int			nthreads;
	QdbMemGraph g;				/* the graph in memory */
	char	   *vec16_raw;		/* the allocation g.vec16 is aligned in */
	float	   *vec16_origin;	/* under L2: the first batch's mean, taken
								 * from each row before it is quantized
								 * (vec16_row) */
	float	   *vec16_moved;	/* (vec_dim) a row so moved */
	bool		on_disk;		/* written out: the rest go through QdbInsertVector */

	/* rows waiting to be encoded, and what encodes them */
	QdbEncoder *enc;
	const QdbAlloc *enc_alloc;	/* the build's context */
	Size		enc_bytes;		/* its tables, taken from mem_limit */
	float	   *batch;
	ItemPointerData batch_tid[BUILD_BATCH];
	int			nbatch;
	double		indtuples;
	double		reltuples;
	double		compressed;		/* rows whose vector the heap stores compressed */
	double		compressed_pglz;	/* the same, by pglz */
	double		alive;			/* rows indexed that are live, the NOTICE's whole */
} BuildState;

/* Bytes the graph takes with room for cap nodes. */
static Size
graph_bytes(const BuildState *bs, Size cap)
{
	return cap * (sizeof(QdbMemNode) + bs->c->shape.code_size + 1 +
				  sizeof(uint32) * (1 + bs->nthreads) +
				  (bs->exact ? sizeof(int16) * bs->g.vec16_stride + sizeof(QdbVec16Info) : 0)) + bs->lists_bytes;
}

/*
 * Whether count more nodes still fit, each with lists for levels 0 and 1
 * (a level above 0 is drawn for one node in m).
 */
static bool
graph_fits(const BuildState *bs, int count)
{
	Size		cap = bs->g.cap;

	while (cap < (Size) bs->g.n + count)
		cap = Max(cap * 2, 1024);
	return graph_bytes(bs, cap) + sizeof(int32) * 3 * bs->c->shape.m * count <= bs->mem_limit;
}

/*
 * The graph's 16-bit vectors with room for cap rows, their first row on a
 * cache line (rows are whole lines: QDB_VEC16_ALIGN values), the rows so
 * far copied over.  Called in the graph's context.
 */
static void
grow_vec16(BuildState *bs, int cap)
{
	QdbMemGraph *g = &bs->g;
	Size		align = sizeof(int16) * QDB_VEC16_ALIGN;
	char	   *raw = palloc_extended(sizeof(int16) * (Size) cap * g->vec16_stride + align,
									  MCXT_ALLOC_HUGE);
	int16	   *v = (int16 *) TYPEALIGN(align, raw);

	if (g->vec16)
	{
		memcpy(v, g->vec16, sizeof(int16) * (Size) g->n * g->vec16_stride);
		pfree(bs->vec16_raw);
	}
	bs->vec16_raw = raw;
	g->vec16 = v;
}

/* Room in the graph's arrays for count more nodes. */
static void
grow_graph(BuildState *bs, int count)
{
	QdbMemGraph *g = &bs->g;
	int			newcap = g->cap;
	MemoryContext old;

	if (g->n + count <= g->cap)
		return;
	while (newcap < g->n + count)
		newcap = Max(newcap * 2, 1024);
	old = MemoryContextSwitchTo(bs->graph_cxt);
	if (g->cap == 0)
	{
		g->nodes = palloc_extended(sizeof(QdbMemNode) * newcap, MCXT_ALLOC_HUGE);
		g->codes = palloc_extended((Size) newcap * g->code_size, MCXT_ALLOC_HUGE);
		g->locks = palloc_extended(newcap, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
		if (bs->exact)
		{
			grow_vec16(bs, newcap);
			g->vec16_info = palloc_extended(sizeof(QdbVec16Info) * newcap, MCXT_ALLOC_HUGE);
		}
	}
	else
	{
		g->nodes = repalloc_huge(g->nodes, sizeof(QdbMemNode) * newcap);
		g->codes = repalloc_huge(g->codes, (Size) newcap * g->code_size);
		g->locks = repalloc_huge(g->locks, newcap);
		memset(g->locks + g->cap, 0, newcap - g->cap);
		if (bs->exact)
		{
			grow_vec16(bs, newcap);
			g->vec16_info = repalloc_huge(g->vec16_info, sizeof(QdbVec16Info) * newcap);
		}
	}
	g->cap = newcap;
	MemoryContextSwitchTo(old);
}

/*
 * The row the graph's 16-bit vectors quantize for vector v: under L2, v less
 * the mean of the build's first batch of rows (set_vec16_origin).
 * QdbVec16Quantize scales a row by its largest value, so rows that differ
 * little beside a large common part (all near 100,000 +- 2, or one column
 * far from 0) all came out alike, and the build linked them blindly:
 * 10-recall@10 0.14 on 3,000 such rows, 1.0 once centred (session 62's
 * hunt, /work/runs/hunt-s62c.md F1).  L2 distances do not change with the
 * move; the distances under cosine are between unit rows, and under ip they
 * would change.
 */
static const float *
vec16_row(BuildState *bs, const float *v)
{
	QdbMemGraph *g = &bs->g;
	int			j;

	if (bs->vec16_origin == NULL)
		return v;
	for (j = 0; j < g->vec_dim; j++)
		bs->vec16_moved[j] = v[j] - bs->vec16_origin[j];
	return bs->vec16_moved;
}

/* Under L2, the mean of the first batch's count vectors vecs: vec16_row's origin. */
static void
set_vec16_origin(BuildState *bs, const float *vecs, int count)
{
	QdbMemGraph *g = &bs->g;
	unsigned char *kept;
	size_t		nkept;

	if (g->metric != QDB_METRIC_L2 || count <= 0)
		return;
	bs->vec16_origin = MemoryContextAlloc(bs->graph_cxt, sizeof(float) * g->vec_dim);
	bs->vec16_moved = MemoryContextAlloc(bs->graph_cxt, sizeof(float) * g->vec_dim);
	/* rows far out of scale would drag it away from the rest (robust_mean.h) */
	kept = palloc(count);
	QdbReportStatus(qdb_robust_mean(&qdb_palloc_alloc, vecs, count, g->vec_dim,
									bs->vec16_origin, kept, &nkept, NULL),
					"could not centre the build's vectors", NULL);
	pfree(kept);
}

/*
 * Adds a batch of encoded rows to the graph in memory, on several threads:
 * x their input rows, vecs their graph vectors (x itself unless projected).
 */
static void
graph_insert_batch(BuildState *bs, const float *x, const float *vecs,
				   const uint8 *codes, int count)
{
	QdbMemGraph *g = &bs->g;
	int			first = g->n,
				i,
				j;

	grow_graph(bs, count);
	if (g->vec16 && first == 0 && bs->vec16_origin == NULL)
		set_vec16_origin(bs, vecs, count);
	for (i = 0; i < count; i++)
	{
		QdbMemNode *node = &g->nodes[first + i];
		int			level = QdbDrawLevel(bs->c, &bs->rng);
		int			nslots = 2 * g->m + level * g->m;

		node->tid = bs->batch_tid[i];
		node->level = level;
		node->nb = MemoryContextAlloc(bs->graph_cxt, sizeof(int32) * nslots);
		for (j = 0; j < nslots; j++)
			node->nb[j] = -1;
		bs->lists_bytes += sizeof(int32) * nslots;
		memcpy(g->codes + (Size) (first + i) * g->code_size, codes + (Size) i * g->code_size,
			   g->code_size);
		if (g->vec16)
			QdbVec16Quantize(vec16_row(bs, vecs + (Size) i * g->vec_dim), g->vec_dim,
							 g->vec16_stride,
							 g->vec16 + (Size) (first + i) * g->vec16_stride,
							 &g->vec16_info[first + i]);
	}
	g->n += count;
	g->batch_x = x;
	QdbReportStatus(QdbMemGraphInsert(g, &bs->c->model, first, count, bs->nthreads),
					"could not build the graph", NULL);
}

/* Node pages from the in-memory graph (index_write.c), then the meta page. */
static void
write_graph(BuildState *bs)
{
	QdbNodeRef *refs = palloc_extended(sizeof(QdbNodeRef) * Max(bs->g.n, 1), MCXT_ALLOC_HUGE);
	BlockNumber first = RelationGetNumberOfBlocks(bs->index);
	QdbMetaPageData meta;
	int			entry,
				entry_level;

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, QDB_PHASE_WRITE);
	QdbWriteBuildGraph(bs->index, bs->c, &bs->g, refs);

	QdbReadMeta(bs->index, &meta);
	meta.first_node_page = first;
	meta.insert_page = RelationGetNumberOfBlocks(bs->index) - 1;
	entry = QdbMemGraphEntry(&bs->g, &entry_level);
	meta.entry = entry >= 0 ? refs[entry] : QDB_NO_NODE;
	meta.entry_level = entry >= 0 ? entry_level : -1;
	meta.build_flags = bs->flags;
	QdbWriteMetaPage(bs->index, MAIN_FORKNUM, &meta);
	pfree(refs);
}

/* The in-memory graph has no room for count more rows: drop vectors, or write it out. */
static void
make_room(BuildState *bs, int count)
{
	if (bs->exact)
	{
		ereport(NOTICE,
				(errmsg("quantumdb graph with vectors no longer fits in maintenance_work_mem after %d rows",
						bs->g.n),
				 errdetail("The rest of the graph is built from code distances, which gives lower recall."),
				 errhint("Increase maintenance_work_mem to build from vector distances.")));
		if (bs->g.vec16)
		{
			pfree(bs->vec16_raw);
			pfree(bs->g.vec16_info);
		}
		bs->vec16_raw = NULL;
		bs->g.vec16 = NULL;
		bs->g.vec16_info = NULL;
		bs->exact = false;
		/* index_info's built_from names only the phases that built rows */
		if (bs->g.n == 0)
			bs->flags &= ~(QDB_BUILT_FROM_VECTORS | QDB_BUILT_PROJECTED);
		bs->from_codes_at = bs->g.n;
		bs->flags |= QDB_BUILT_FROM_CODES;
		if (graph_fits(bs, count))
			return;
	}
	if (bs->g.n == 0)
		bs->flags &= ~(QDB_BUILT_FROM_VECTORS | QDB_BUILT_PROJECTED);
	if ((bs->flags & QDB_BUILT_FROM_CODES) && bs->g.n == bs->from_codes_at)
		bs->flags &= ~QDB_BUILT_FROM_CODES;
	ereport(NOTICE,
			(errmsg("quantumdb graph no longer fits in maintenance_work_mem after %d rows",
					bs->g.n),
			 errdetail("The rest of the rows are inserted page by page, which is much slower."),
			 errhint("Increase maintenance_work_mem to build the whole graph in memory.")));
	bs->on_disk = true;
	bs->flags |= QDB_BUILT_ON_DISK;
	write_graph(bs);
	MemoryContextReset(bs->graph_cxt);
	bs->vec16_origin = bs->vec16_moved = NULL;
	bs->g.nodes = NULL;
	bs->g.codes = NULL;
	bs->g.locks = NULL;
	bs->g.cap = bs->g.n = 0;
	bs->lists_bytes = 0;
}

/*
 * Whether the graph's vectors are the model's projections y = A (x - mean)
 * (of the unit x under cosine): when A has orthonormal rows (the PCA of pq
 * and rq, opq's rotation after it) and fewer of them than x has dims.  The
 * L2 distance between projections then orders pairs as the metric would
 * within the projected space (under cosine 1 - x.x' = |x - x'|^2 / 2 for
 * unit rows).  Not under ip: centring changes inner products.
 */
static bool
projected_build(const QdbModel *model)
{
	return model->linear != NULL && model->dim_pq < model->dim &&
		model->metric != QDB_METRIC_IP &&
		(model->kind == QDB_KIND_PQ || model->kind == QDB_KIND_OPQ ||
		 model->kind == QDB_KIND_RQ);
}

/* Under cosine the in-memory graph keeps unit vectors: 1 - dot is the distance. */
static void
normalise_batch(BuildState *bs)
{
	if (bs->c->metric != QDB_METRIC_COSINE || !bs->exact || bs->projected)
		return;
	for (int i = 0; i < bs->nbatch; i++)
		QdbNormalize(bs->batch + (Size) i * bs->c->dim, bs->c->dim);
}

/*
 * The rows' encoder: kind rq's keeps its tables of codeword products when
 * they take at most a quarter of maintenance_work_mem (27.5 MB for 16
 * bytes with a norm byte), which the graph does without until the rows are
 * in or it needs them; else it builds them for every batch
 * (trainer/encoder.c).
 */
static void
start_encoder(BuildState *bs, MemoryContext cxt)
{
	Size		bytes = qdb_encoder_table_bytes(&bs->c->model);

	if (bytes > bs->mem_limit / 4)
		bytes = 0;
	bs->enc_alloc = QdbContextAlloc(cxt);
	QdbReportStatus(qdb_encoder_create(&bs->c->model, bs->enc_alloc, bytes, &bs->enc),
					"could not start encoding the rows", NULL);
	bs->enc_bytes = bytes;
	bs->mem_limit -= bytes;
}

static void
stop_encoder(BuildState *bs)
{
	qdb_encoder_free(bs->enc);
	bs->enc = NULL;
	bs->mem_limit += bs->enc_bytes;
	bs->enc_bytes = 0;
}

/* The graph needs the tables' memory: the rest of the rows build them per batch. */
static void
encoder_without_tables(BuildState *bs)
{
	stop_encoder(bs);
	QdbReportStatus(qdb_encoder_create(&bs->c->model, bs->enc_alloc, 0, &bs->enc),
					"could not start encoding the rows", NULL);
}

/* Encodes the waiting rows and inserts them. */
static void
flush_batch(BuildState *bs)
{
	QdbIndexCache *c = bs->c;
	uint8	   *codes;
	int			i;

	if (bs->nbatch == 0)
		return;
	CHECK_FOR_INTERRUPTS();
	if (QdbTrainWorkerShouldYield(bs->heap))
		QdbTrainWorkerYield(bs->heap, false);
	normalise_batch(bs);
	codes = palloc((Size) bs->nbatch * c->shape.code_size);
	QdbReportStatus(qdb_encoder_codes(bs->enc, bs->batch, bs->nbatch, codes),
					"could not encode the rows", NULL);
	if (!bs->on_disk && !graph_fits(bs, bs->nbatch) && bs->enc_bytes > 0)
		encoder_without_tables(bs);
	if (!bs->on_disk && !graph_fits(bs, bs->nbatch))
		make_room(bs, bs->nbatch);
	if (!bs->on_disk && bs->exact && bs->projected)
		QdbReportStatus(qdb_model_transform(&c->model, bs->batch, bs->nbatch, bs->proj),
						"could not project the rows", NULL);
	if (!bs->on_disk)
		graph_insert_batch(bs, bs->batch, bs->projected ? bs->proj : bs->batch, codes,
						   bs->nbatch);
	else
	{
		for (i = 0; i < bs->nbatch; i++)
		{
			/* each insert's walk, tables and lists go with its row */
			MemoryContext old = MemoryContextSwitchTo(bs->tmp_cxt);

			CHECK_FOR_INTERRUPTS();
			QdbInsertVector(bs->index, c, bs->batch + (Size) i * c->dim,
							codes + (Size) i * c->shape.code_size, &bs->batch_tid[i]);
			MemoryContextSwitchTo(old);
			MemoryContextReset(bs->tmp_cxt);
		}
	}
	bs->indtuples += bs->nbatch;
	pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, (int64) bs->indtuples);
	pfree(codes);
	bs->nbatch = 0;
}

/*
 * How a heap datum is stored compressed, inline or out of line:
 * TOAST_PGLZ_COMPRESSION_ID, TOAST_LZ4_COMPRESSION_ID, or -1 when it is not.
 */
static int
datum_compression(Datum d)
{
	struct varlena *v = (struct varlena *) DatumGetPointer(d);

	if (VARATT_IS_COMPRESSED(v))
		return (int) VARDATA_COMPRESSED_GET_COMPRESS_METHOD(v);
	if (VARATT_IS_EXTERNAL_ONDISK(v))
	{
		struct varatt_external ext;

		VARATT_EXTERNAL_GET_POINTER(ext, v);
		if (VARATT_EXTERNAL_IS_COMPRESSED(ext))
			return (int) VARATT_EXTERNAL_GET_COMPRESS_METHOD(ext);
	}
	return -1;
}

/*
 * A NOTICE when the heap stores the indexed vectors compressed (real[] is
 * STORAGE EXTENDED: values past about 2 kB, 500 dims, are compressed):
 * every row a scan reranks or returns is decompressed first.
 */
static void
storage_notice(Relation heap, IndexInfo *indexInfo, QdbIndexCache *c, double compressed,
			   double compressed_pglz, double rows)
{
	const char *rel;
	const char *col;
	const char *rewrite;
	const char *lz4 = "";
	/* a row must fit in a page under PLAIN: past that, EXTERNAL (out of line) */
	Size		elem = c->vectype == QDB_VEC_HALFVEC ? 2 : sizeof(float);
	const char *storage = (Size) c->dim * elem <= BLCKSZ / 2 + BLCKSZ / 4 ?
		"PLAIN" : "EXTERNAL";
	Oid			atttype = TupleDescAttr(RelationGetDescr(heap),
										indexInfo->ii_IndexAttrNumbers[0] - 1)->atttypid;

	if (compressed == 0)
		return;
#ifdef USE_LZ4
	/* lz4 as the alternative where the server has it and pglz is in use */
	if (compressed_pglz > 0)
		lz4 = " (SET COMPRESSION lz4 instead keeps them compressed, by a method "
			"faster to decompress)";
#endif
	rel = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(heap)),
									 RelationGetRelationName(heap));
	col = quote_identifier(get_attname(RelationGetRelid(heap),
									   indexInfo->ii_IndexAttrNumbers[0], false));
	/* an expression that makes a new value (the same one would stay compressed) */
	rewrite = c->vectype == QDB_VEC_REAL_ARRAY ? psprintf("%s[:]", col) :
		psprintf("%s::real[]::%s", col, format_type_be(atttype));
	ereport(NOTICE,
			(errmsg("%.0f of the %.0f rows indexed store column %s compressed",
					compressed, rows, col),
			 errdetail("Every row a scan reranks or returns is decompressed first: on "
					   "fashion-mnist-784 (30,000 rows, 784 dims) rows stored "
					   "uncompressed instead of by pglz gave %s%s.", QDB_PLAIN_STORAGE_GAIN,
					   *lz4 ? QDB_LZ4_STORAGE_GAIN : ""),
			 errhint("ALTER TABLE %s ALTER COLUMN %s SET STORAGE %s keeps rows written "
					 "afterwards uncompressed%s; UPDATE %s SET %s = %s rewrites the others.",
					 rel, col, storage, lz4, rel, col, rewrite)));
}

/*
 * Whether a row version that only snapshots older than the build may still
 * see (recently dead) is one no distance takes: of other dimensions than
 * the index's (the rows were re-embedded by another model, or deleted and
 * inserted anew), or with a NaN, an infinity or a null element.  The build
 * leaves it out: it failed on such a version while any older snapshot
 * lived, on any table of the database, though an exact distance between
 * it and a query of the index's dimensions is an ERROR too.  A version
 * the index refuses only for its length (too long for l2 and ip) stays the
 * build's ERROR: an older transaction's sequential scan ranks it.
 */
static bool
dead_version_unusable(const QdbIndexCache *c, Datum value)
{
	return !QdbDatumHoldsFloats(value, c->vectype, c->dim);
}

static void
build_callback(Relation index, ItemPointer tid, Datum *values, bool *isnull,
			   bool tupleIsAlive, void *state)
{
	BuildState *bs = state;
	QdbIndexCache *c = bs->c;
	float	   *x;
	float	   *dst;
	bool		skip;
	MemoryContext old;

	/* Skip nulls */
	if (isnull[0])
		return;
	old = MemoryContextSwitchTo(bs->tmp_cxt);
	if (!tupleIsAlive && dead_version_unusable(c, values[0]))
	{
		/*
		 * as for a broken HOT chain: CREATE INDEX (and REINDEX of an index
		 * not valid) then sets indcheckxmin, and transactions older than
		 * the build do not use the index; REINDEX of a valid one, VACUUM
		 * FULL and CLUSTER do not, PostgreSQL taking the index they
		 * rebuild as usable by those transactions already
		 */
		bs->indexInfo->ii_BrokenHotChain = true;
		MemoryContextSwitchTo(old);
		MemoryContextReset(bs->tmp_cxt);
		return;
	}
	x = QdbIndexVector(index, NULL, c, values[0], &skip);
	MemoryContextSwitchTo(old);
	if (!skip)
	{
		/*
		 * The NOTICE counts live rows only: a REINDEX after an UPDATE also
		 * indexes the dead versions some snapshot (autovacuum's, say) may
		 * still see, stored as they were before the UPDATE.
		 */
		if (tupleIsAlive)
		{
			int			method = datum_compression(values[0]);

			bs->alive++;
			if (method >= 0)
				bs->compressed++;
			if (method == TOAST_PGLZ_COMPRESSION_ID)
				bs->compressed_pglz++;
		}
		dst = bs->batch + (Size) bs->nbatch * c->dim;
		memcpy(dst, x, sizeof(float) * c->dim);
		bs->batch_tid[bs->nbatch++] = *tid;
	}
	MemoryContextReset(bs->tmp_cxt);
	if (bs->nbatch == BUILD_BATCH)
		flush_batch(bs);
}

/*
 * Threads for the graph: max_parallel_maintenance_workers helpers besides
 * the backend, no more than the CPUs this process may use.
 */
static int
build_threads(void)
{
	int			cpus = 1;
	cpu_set_t	set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		cpus = CPU_COUNT(&set);
	return Max(1, Min(max_parallel_maintenance_workers + 1, cpus));
}

/* The only page of an index without a compressor (QDB_BUILT_UNTRAINED). */
static void
write_untrained_meta(Relation index, ForkNumber fork, QdbMetric metric, int dim, int m,
					 int ef_construction, bool inline_codes)
{
	QdbMetaPageData meta;

	memset(&meta, 0, sizeof(meta));
	meta.magic = QDB_INDEX_MAGIC;
	meta.version = QDB_INDEX_VERSION;
	meta.dim = dim;
	meta.metric = metric;
	meta.m = m;
	meta.ef_construction = ef_construction;
	meta.entry = QDB_NO_NODE;
	meta.entry_level = -1;
	meta.compressor_format = QDB_FORMAT_VERSION;
	meta.build_flags = QDB_BUILT_UNTRAINED;
	meta.inline_codes = inline_codes;
	meta.first_node_page = QDB_FIRST_COMPRESSOR_BLKNO;
	meta.insert_page = QDB_FIRST_COMPRESSOR_BLKNO;
	QdbWriteMetaPage(index, fork, &meta);
}

/* Meta page and compressor pages of a new index on fork. */
static void
write_header_pages(Relation index, ForkNumber fork, const QdbModel *model,
				   const char *name, int m, int ef_construction, bool inline_codes,
				   uint32 flags, bool meta_last)
{
	QdbMetaPageData meta;
	uint8	   *blob;
	size_t		len;

	QdbBuildCheckNodeFits(index, (int) qdb_code_size(model), m, inline_codes);
	QdbReportStatus(qdb_model_serialize(model, &qdb_palloc_alloc, &blob, &len),
					"could not serialize the compressor", NULL);
	memset(&meta, 0, sizeof(meta));
	meta.magic = QDB_INDEX_MAGIC;
	meta.version = QDB_INDEX_VERSION;
	meta.dim = model->dim;
	meta.metric = model->metric;
	meta.code_size = (int32) qdb_code_size(model);
	meta.m = m;
	meta.ef_construction = ef_construction;
	meta.entry = QDB_NO_NODE;
	meta.entry_level = -1;
	meta.compressor_len = (uint32) len;
	meta.compressor_crc = qdb_crc32c(blob, len);
	meta.compressor_format = QDB_FORMAT_VERSION;
	meta.build_flags = flags;
	meta.inline_codes = inline_codes;
	strlcpy(meta.compressor_name, name, NAMEDATALEN);
	/*
	 * block 0 first, where there is none yet; with meta_last the fork's
	 * block 0 (a meta page without a compressor) is written only after the
	 * pages it will name, and the empty node pages after them, so that a
	 * crash meanwhile leaves it as it was (QdbInitForkCheck)
	 */
	if (!meta_last)
		QdbWriteMetaPage(index, fork, &meta);
	meta.compressor_pages = QdbWriteCompressorPages(index, fork, blob, len);
	meta.first_node_page = QDB_FIRST_COMPRESSOR_BLKNO + meta.compressor_pages;
	meta.insert_page = meta.first_node_page;
	if (meta_last)
		QdbPadInitFork(index, meta.first_node_page, true);
	QdbWriteMetaPage(index, fork, &meta);
	pfree(blob);
}

/*
 * log_newpage_range over every page of the index, in runs no longer than
 * an eighth of shared_buffers: it pins a whole run at once (32 pages), more
 * than a server at shared_buffers 16 has, where every build that had
 * written its pages failed at its very end ("no unpinned buffers
 * available").
 */
static void
log_all_pages(Relation index)
{
	BlockNumber n = RelationGetNumberOfBlocks(index);
	BlockNumber run = Max(1, Min(XLR_MAX_BLOCK_ID, NBuffers / 8));
	BlockNumber b;

	for (b = 0; b < n; b += run)
		log_newpage_range(index, MAIN_FORKNUM, b, Min(n, b + run), true);
}

/*
 * An unlogged index rebuilt in place (TRUNCATE of a table created in the
 * same transaction) has the init fork of its first build, which index.c
 * writes only when there is none: with that build's compressor, or none.
 * A crash or a promotion would reset the index to it.  Written again here
 * from the pages just built.
 */
static void
init_fork_again(Relation index)
{
	if (index->rd_rel->relpersistence == RELPERSISTENCE_UNLOGGED &&
		smgrexists(RelationGetSmgr(index), INIT_FORKNUM))
		qdbbuildempty(index);
}

static void build_empty(Relation index, bool meta_last);

/*
 * VACUUM of a trained unlogged index: when its init fork has no compressor,
 * written again from the pages it has.  pg_upgrade moves an index's main
 * fork but not its init fork, which the new cluster's build of the schema
 * wrote without a compressor (QdbBuildObtainModel): a crash then reset the index
 * to one that never trained again below quantumdb.train_after_rows rows
 * (session 63's hunt, /work/runs/hunt-s63b.md F4).
 */
void
QdbInitForkCheck(Relation index)
{
	Buffer		buf;
	Page		page;
	bool		untrained;

	if (index->rd_rel->relpersistence != RELPERSISTENCE_UNLOGGED ||
		!smgrexists(RelationGetSmgr(index), INIT_FORKNUM) ||
		smgrnblocks(RelationGetSmgr(index), INIT_FORKNUM) == 0)
		return;
	buf = ReadBufferExtended(index, INIT_FORKNUM, QDB_META_BLKNO, RBM_NORMAL, NULL);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	untrained = QdbPageProblem(page) == NULL && (QdbPageGetOpaque(page)->flags & QDB_PAGE_META) &&
		QdbPageGetMeta(page)->magic == QDB_INDEX_MAGIC &&
		QdbMetaUntrained(QdbPageGetMeta(page));
	UnlockReleaseBuffer(buf);
	if (untrained)
	{
		ereport(LOG,
				(errmsg("index \"%s\": its init fork had no compressor (as pg_upgrade leaves it); written again",
						RelationGetRelationName(index))));
		build_empty(index, true);
	}
}

IndexBuildResult *
qdbbuild(Relation heap, Relation index, IndexInfo *indexInfo)
{
	IndexBuildResult *result;
	BuildState	bs;
	QdbModel	model;
	char		name[NAMEDATALEN];
	int			m = QdbGetM(index);
	int			efc = QdbGetEfConstruction(index);
	QdbMetric	metric = QdbIndexMetric(index);
	int			dim = 0;
	double		trained_rows = 0;	/* a named compressor: not known */
	int			blas_threads;
	MemoryContext build_cxt,
				old;

	/* an index emptied in place keeps its OID: its old cache must not serve */
	QdbForgetIndexCache(index);
	if (RelationGetNumberOfBlocks(index) != 0)
		elog(ERROR, "index \"%s\" already contains data", RelationGetRelationName(index));
	QdbCheckEfConstruction(m, efc);

	build_cxt = AllocSetContextCreate(CurrentMemoryContext, "quantumdb build",
									  ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(build_cxt);
	memset(&bs, 0, sizeof(bs));
	bs.flags = QDB_BUILT_FROM_VECTORS;
	if (!QdbBuildObtainModel(heap, index, indexInfo, metric, &model, name, &bs.flags,
					  &bs.reltuples, &dim, &trained_rows))
	{
		write_untrained_meta(index, MAIN_FORKNUM, metric, dim, m, efc,
							 QdbGetInlineCodes(index));
		if (RelationNeedsWAL(index))
			log_all_pages(index);
		init_fork_again(index);
		MemoryContextSwitchTo(old);
		result = palloc0(sizeof(IndexBuildResult));
		result->heap_tuples = bs.reltuples;
		MemoryContextDelete(build_cxt);
		return result;
	}
	write_header_pages(index, MAIN_FORKNUM, &model, name, m, efc, QdbGetInlineCodes(index),
					   bs.flags, false);

	bs.heap = heap;
	bs.index = index;
	bs.indexInfo = indexInfo;
	bs.c = QdbPinIndexCache(index, true);
	pg_prng_seed(&bs.rng, BUILD_SEED);
	bs.graph_cxt = AllocSetContextCreate(build_cxt, "quantumdb build graph",
										 ALLOCSET_DEFAULT_SIZES);
	bs.tmp_cxt = AllocSetContextCreate(build_cxt, "quantumdb build row",
									   ALLOCSET_DEFAULT_SIZES);
	bs.mem_limit = (Size) maintenance_work_mem * 1024;
	bs.exact = true;
	bs.nthreads = build_threads();
	bs.projected = projected_build(&bs.c->model);
	if (bs.projected)
	{
		bs.flags |= QDB_BUILT_PROJECTED;
		bs.proj = palloc(sizeof(float) * BUILD_BATCH * bs.c->model.dim_pq);
	}
	QdbMemGraphInit(&bs.g, bs.projected ? QDB_METRIC_L2 : bs.c->metric, bs.c->dim,
					bs.projected ? bs.c->model.dim_pq : bs.c->dim,
					bs.c->shape.code_size, bs.c->shape.m,
					bs.c->ef_construction, bs.c->shape.max_level, bs.c->pair);
	bs.g.vec16_stride = QdbVec16Stride(bs.g.vec_dim);
	bs.g.vec16_dot = QdbVec16Kernel();
	bs.g.vec16_dot4 = QdbVec16Kernel4(bs.g.vec16_dot);
	bs.batch = palloc(sizeof(float) * BUILD_BATCH * bs.c->dim);
	start_encoder(&bs, build_cxt);

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, QDB_PHASE_LOAD);
	pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_TOTAL,
								 (int64) Max(heap->rd_rel->reltuples, 0));
	/* the training's steps counted here before */
	pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, 0);
	/*
	 * OpenBLAS held to one thread while the rows are loaded: the batches'
	 * projections (qdb_model_transform) woke its second thread, which then
	 * spun in sched_yield through the graph's inserts on the build's own
	 * threads, on the same cores: a third of the samples of `perf record`
	 * of CREATE INDEX on fashion-mnist-784 (a projected build).  Before
	 * the index is marked as building: the hold opens OpenBLAS, which can
	 * fail with an ERROR (blas_load.c), and outside the PG_TRY below that
	 * left the mark set, the index's later changes in the session unlogged
	 * (session 58's review, /work/runs/review-s58a.md).
	 */
	QdbBlasPrepare();
	blas_threads = qdb_blas_hold();
	/* pages change unlogged until log_newpage_range below */
	QdbXLogBuilding(RelationGetRelid(index));
	PG_TRY();
	{
		bs.reltuples = table_index_build_scan(heap, index, indexInfo, true, true,
											  build_callback, &bs, NULL);
		flush_batch(&bs);
		stop_encoder(&bs);
		storage_notice(heap, indexInfo, bs.c, bs.compressed, bs.compressed_pglz, bs.alive);
		if (!bs.on_disk)
			write_graph(&bs);
		QdbRepairReachability(index, NULL);
	}
	PG_FINALLY();
	{
		QdbXLogBuilding(InvalidOid);
		qdb_blas_release(blas_threads);
	}
	PG_END_TRY();

	/* the train worker's build gives way to DDL here too (see flush_batch) */
	if (QdbTrainWorkerShouldYield(heap))
		QdbTrainWorkerYield(heap, false);
	if (RelationNeedsWAL(index))
		log_all_pages(index);

	/*
	 * What recall which settings give, for quantumdb.target_recall (in a
	 * concurrent build, rows inserted since the build's snapshot count as
	 * misses: a calibration on the safe side)
	 */
	/* a named compressor: the table's rows stand in for its training rows */
	QdbCalibrateAtBuild(heap, index, QdbGetCalibrationQueries(index),
						trained_rows > 0 ? trained_rows : bs.reltuples);
	init_fork_again(index);
	if (QdbTrainWorkerShouldYield(heap))
		QdbTrainWorkerYield(heap, false);

	MemoryContextSwitchTo(old);
	result = palloc(sizeof(IndexBuildResult));
	result->heap_tuples = bs.reltuples;
	result->index_tuples = bs.indtuples;
	MemoryContextDelete(build_cxt);
	return result;
}

/*
 * The init fork of an unlogged index: a copy of the main fork's meta and
 * compressor pages with an empty graph, so a crash leaves an empty index
 * that still has its compressor.
 */
void
qdbbuildempty(Relation index)
{
	build_empty(index, false);
}

/*
 * qdbbuildempty; with meta_last, over an init fork whose block 0 is a meta
 * page without a compressor, written last (write_header_pages).
 */
static void
build_empty(Relation index, bool meta_last)
{
	QdbMetaPageData meta;
	bytea	   *blob;
	QdbModel	model;
	char		err[256];

	QdbReadMeta(index, &meta);
	if (QdbMetaUntrained(&meta))
	{
		/* an empty index: its dimensions come with the first row again */
		write_untrained_meta(index, INIT_FORKNUM, (QdbMetric) meta.metric, 0, meta.m,
							 meta.ef_construction, meta.inline_codes);
		QdbPadInitFork(index, QDB_FIRST_COMPRESSOR_BLKNO, false);
		return;
	}
	blob = QdbReadCompressor(index, &meta);
	memset(&model, 0, sizeof(model));
	QdbReportStatus(qdb_model_parse((const uint8 *) VARDATA(blob), VARSIZE(blob) - VARHDRSZ,
									&qdb_palloc_alloc, &model, err, sizeof(err)),
					"could not read the index's compressor", NULL);
	write_header_pages(index, INIT_FORKNUM, &model, meta.compressor_name, meta.m,
					   meta.ef_construction, meta.inline_codes, meta.build_flags, meta_last);
	if (!meta_last)
		QdbPadInitFork(index, meta.first_node_page, true);
	qdb_model_free(&model);
}
