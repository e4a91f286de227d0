/*
 * sample.c
 *	  A seeded sample of a real[] column: for quantumdb.train() read through
 *	  SPI with the caller's privileges, for an index build read by the
 *	  build's own heap scan (no query is planned on a table whose indexes
 *	  may be being rebuilt).  NULL vectors are skipped; a bad vector is an
 *	  ERROR whose context names its row.
 *
 * The sample is the "want" vectors with the smallest seeded 64-bit hash of
 * their bytes (bottom-k sampling), ordered by that hash: it depends on the
 * rows and the seed only, not on the order rows arrive in, so that a table
 * after VACUUM FULL, CLUSTER or a dump and restore, or read through a
 * distributed query whose shards answer in any order, gives the same
 * compressor for the same seed.
 *
 * It is uniform over distinct vectors, not over rows: every copy of a
 * vector hashes alike, so a vector stored in many rows is kept once (a set
 * of the kept keys, a simplehash, turns later copies away) or not at all.
 * Sampling rows uniformly in any order would need each row's copy number
 * among equal vectors, i.e. a count per distinct vector seen, memory in
 * proportion to the table; the codebooks lose the duplicates' weight
 * instead (a placeholder vector in a tenth of the rows no longer takes a
 * tenth of the sample).  The hash is of the float bytes as this machine
 * stores them: another byte order gives another sample.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/tableam.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "lib/binaryheap.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/itemptr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "compressor.h"
#include "index.h"
#include "qdb_internal.h"

#define FETCH_ROWS 1000

typedef struct SampleErrorContext
{
	const char *relname;
	ItemPointerData tid;
	bool		has_tid;
	int64		ordinal;
} SampleErrorContext;

static void
sample_error_callback(void *arg)
{
	SampleErrorContext *c = arg;

	if (c->ordinal == 0)
		return;
	if (c->has_tid)
		errcontext("row (%u,%u) of relation \"%s\"",
				   ItemPointerGetBlockNumberNoCheck(&c->tid),
				   ItemPointerGetOffsetNumberNoCheck(&c->tid), c->relname);
	else
		errcontext("row " INT64_FORMAT " of relation \"%s\"", c->ordinal, c->relname);
}

/* The column's attribute must exist and be of a vector type; returns it. */
static QdbVecType
check_column(Oid relid, const char *column)
{
	AttrNumber	attnum = get_attnum(relid, column);
	Oid			type;

	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						column, get_rel_name(relid))));
	type = get_atttype(relid, attnum);
	/* a domain over a vector type holds the same values */
	if (QdbVecTypeOf(getBaseType(type)) == QDB_VEC_NONE)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of relation \"%s\" is of type %s, not a vector type",
						column, get_rel_name(relid), format_type_be(type)),
				 errdetail("Compressors train on real[] columns, or on pgvector's vector and halfvec.")));
	return QdbVecTypeOf(getBaseType(type));
}

/* The set of kept keys: keys are hashes already, their low bits suffice */
typedef struct KeptKey
{
	uint64		key;
	char		status;
} KeptKey;

#define SH_PREFIX		kept
#define SH_ELEMENT_TYPE	KeptKey
#define SH_KEY_TYPE		uint64
#define SH_KEY			key
#define SH_HASH_KEY(tb, k)	((uint32) ((k) ^ ((k) >> 32)))
#define SH_EQUAL(tb, a, b)	((a) == (b))
#define SH_SCOPE		static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/* Up to want vectors of smallest seeded hash, in out->x. */
typedef struct Reservoir
{
	QdbSample  *out;
	QdbVecType	vectype;		/* the column's */
	int			want;
	bool		cosine;
	bool		skip_zero;		/* with cosine: skip zero vectors, not an ERROR */
	uint64		seed;
	uint64	   *keys;			/* per slot of out->x: its vector's hash */
	binaryheap *heap;			/* slots of out->x, the largest key first */
	kept_hash  *set;			/* the keys in out->x */
	const QdbTrainConfig *fit;	/* the training(s) the sample must fit beside */
	int			nfit;			/* how many: > 1 for the auto-tuner's kinds */
	int			min_rows;		/* with nfit > 1: a kind fitting fewer is left out */
	bool	   *left_out;		/* with nfit > 1: per kind */
	int			asked;			/* want before the fit */
	const QdbTrainConfig *short_cfg;	/* the training whose fit lowered want, or NULL */
	bool		overflow;		/* a distinct vector was left out for want */
	MemoryContext caller;		/* where out->x lives */
	MemoryContext batch;		/* reset after each row */
	SampleErrorContext ectx;
	ErrorContextCallback errcb;
	const char *what;			/* the training, for the fit's messages */
} Reservoir;

static void
reservoir_init(Reservoir *r, Oid relid, bool has_tid, int want, uint64 seed, bool cosine,
			   QdbSample *out)
{
	memset(out, 0, sizeof(*out));
	memset(r, 0, sizeof(*r));
	r->out = out;
	r->want = want;
	r->asked = want;
	r->nfit = 1;
	r->cosine = cosine;
	r->seed = seed;
	r->caller = CurrentMemoryContext;
	r->batch = AllocSetContextCreate(r->caller, "quantumdb sample batch",
									 ALLOCSET_DEFAULT_SIZES);
	r->ectx.relname = get_rel_name(relid);
	r->ectx.has_tid = has_tid;
	r->errcb.callback = sample_error_callback;
	r->errcb.arg = &r->ectx;
}

/* binaryheap order of slots: the larger key first */
static int
slot_key_cmp(Datum a, Datum b, void *arg)
{
	const uint64 *keys = arg;
	uint64		x = keys[DatumGetInt32(a)],
				y = keys[DatumGetInt32(b)];

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * The slot of out->x for a vector of hash key, or -1 when it is not among
 * the want smallest distinct keys so far, or is a copy of a kept vector.
 */
static int64
keep_slot(Reservoir *r, uint64 key)
{
	QdbSample  *out = r->out;
	bool		found;
	int			slot;

	if (r->want == 0 || kept_lookup(r->set, key) != NULL)
		return -1;				/* nothing to keep, or that vector again */
	if (out->n < r->want)
	{
		slot = out->n++;
		r->keys[slot] = key;
		kept_insert(r->set, key, &found);
		binaryheap_add(r->heap, Int32GetDatum(slot));
		return slot;
	}
	/* full: a distinct vector is left out, this one or the one it evicts */
	r->overflow = true;
	slot = DatumGetInt32(binaryheap_first(r->heap));
	if (key >= r->keys[slot])
		return -1;
	kept_delete(r->set, r->keys[slot]);
	r->keys[slot] = key;
	kept_insert(r->set, key, &found);
	binaryheap_replace_first(r->heap, Int32GetDatum(slot));
	return slot;
}

static int
slot_cmp(const void *a, const void *b, void *arg)
{
	const uint64 *keys = arg;
	uint64		x = keys[*(const int *) a],
				y = keys[*(const int *) b];

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * Puts the kept vectors in the order of their keys, in place (one spare
 * row), and frees the keys: the training sees the same rows in the same
 * order whatever order they arrived in.
 */
static void
reservoir_finish(Reservoir *r)
{
	QdbSample  *out = r->out;
	int			n = out->n,
				dim = out->dim;
	int		   *perm;
	bool	   *done;
	float	   *spare;

	if (r->keys == NULL)
		return;
	/*
	 * the fit kept fewer rows than asked, and the table had more: all of
	 * them is what was asked or the table's rows, the fewer
	 */
	if (r->short_cfg != NULL && r->overflow)
		QdbSampleShortNotice(r->what, r->want, (int) Min((int64) r->asked, out->rows_seen),
							 r->short_cfg, dim);
	if (n > 1)
	{
		perm = palloc_extended((Size) n * sizeof(int), MCXT_ALLOC_HUGE);
		done = palloc_extended((Size) n, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
		spare = palloc(dim * sizeof(float));
		for (int i = 0; i < n; i++)
			perm[i] = i;
		qsort_arg(perm, n, sizeof(int), slot_cmp, r->keys);
		/* row i of the result is row perm[i] of the sample: follow each cycle */
		for (int i = 0; i < n; i++)
		{
			int			j = i;

			if (done[i])
				continue;
			memcpy(spare, out->x + (Size) i * dim, dim * sizeof(float));
			for (;;)
			{
				int			k = perm[j];

				done[j] = true;
				if (k == i)
				{
					memcpy(out->x + (Size) j * dim, spare, dim * sizeof(float));
					break;
				}
				memcpy(out->x + (Size) j * dim, out->x + (Size) k * dim, dim * sizeof(float));
				j = k;
			}
		}
		pfree(perm);
		pfree(done);
		pfree(spare);
	}
	pfree(r->keys);
	binaryheap_free(r->heap);
	kept_destroy(r->set);
	r->keys = NULL;
	r->heap = NULL;
	r->set = NULL;
}

/* Offers one non-NULL vector (a datum of r->vectype) to the sample. */
static void
reservoir_add(Reservoir *r, Datum d)
{
	QdbSample  *out = r->out;
	int64		seen = out->rows_seen + 1;
	float	   *v;
	int			dim;
	int64		slot;
	MemoryContext old;

	r->ectx.ordinal = seen;
	old = MemoryContextSwitchTo(r->batch);
	v = QdbDatumGetFloats(d, r->vectype, &dim, "vector");
	if (r->cosine && r->skip_zero)
	{
		if (QdbVectorIsZero(v, dim))
		{
			/* an index does not hold zero vectors under cosine */
			MemoryContextSwitchTo(old);
			MemoryContextReset(r->batch);
			return;
		}
	}
	else if (r->cosine)
		QdbCheckNonZero(v, dim, "vector");
	else
		QdbCheckLength(v, dim, "vector");
	out->rows_seen = seen;
	if (out->dim == 0)
	{
		out->dim = dim;
		if (r->fit)
		{
			/* not about this row: no "row (b,o)" context on its ERROR */
			ErrorContextCallback *saved = error_context_stack;

			if (error_context_stack == &r->errcb)
				error_context_stack = r->errcb.previous;
			r->want = r->left_out ?
				QdbSampleRowsForKinds(r->fit, r->nfit, dim, r->want, r->min_rows,
									  r->left_out, r->what, &r->short_cfg) :
				QdbSampleRowsThatFit(r->fit, dim, r->want, r->what, &r->short_cfg);
			error_context_stack = saved;
		}
		out->x = MemoryContextAllocExtended(r->caller,
											(Size) r->want * dim * sizeof(float),
											MCXT_ALLOC_HUGE);
		r->keys = MemoryContextAllocExtended(r->caller, (Size) r->want * sizeof(uint64),
											 MCXT_ALLOC_HUGE);
		MemoryContextSwitchTo(r->caller);
		r->heap = binaryheap_allocate(Max(r->want, 1), slot_key_cmp, r->keys);
		MemoryContextSwitchTo(r->batch);
		r->set = kept_create(r->caller, (uint32) r->want, NULL);
	}
	else if (dim != out->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("vector has %d dimensions, but earlier rows have %d", dim,
						out->dim),
				 errhint("Every vector of a training column must have the same number of dimensions.")));
	slot = keep_slot(r, hash_bytes_extended((const unsigned char *) v,
											(int) (dim * sizeof(float)), r->seed));
	if (slot >= 0)
		memcpy(out->x + slot * dim, v, dim * sizeof(float));
	MemoryContextSwitchTo(old);
	MemoryContextReset(r->batch);
}

/*
 * Fills out with up to want vectors drawn uniformly (smallest seeded hash,
 * see the top) from the non-NULL values of relid.column.  With cosine, a zero
 * vector is an error.  out->x is allocated in the current context.
 */
static void sample_column(Oid relid, const char *column, int want, uint64 seed, bool cosine,
						  const QdbTrainConfig *fit, int nfit, int min_rows, bool *left_out,
						  QdbSample *out);

void
QdbSampleColumn(Oid relid, const char *column, int want, uint64 seed, bool cosine,
				const QdbTrainConfig *fit, QdbSample *out)
{
	sample_column(relid, column, want, seed, cosine, fit, 1, 0, NULL, out);
}

/* The same for the auto-tuner's kinds (compressor.h). */
void
QdbSampleColumnKinds(Oid relid, const char *column, int want, uint64 seed, bool cosine,
					 const QdbTrainConfig *fits, int nfits, int min_rows, bool *left_out,
					 QdbSample *out)
{
	for (int i = 0; i < nfits; i++)
		left_out[i] = false;
	sample_column(relid, column, want, seed, cosine, fits, nfits, min_rows, left_out, out);
}

static void
sample_column(Oid relid, const char *column, int want, uint64 seed, bool cosine,
			  const QdbTrainConfig *fit, int nfit, int min_rows, bool *left_out,
			  QdbSample *out)
{
	char		relkind = get_rel_relkind(relid);
	bool		has_tid = relkind == RELKIND_RELATION || relkind == RELKIND_MATVIEW ||
		relkind == RELKIND_PARTITIONED_TABLE;
	char	   *relname;
	char	   *sql;
	Portal		portal;
	Reservoir	r;
	QdbVecType	vectype;

	if (get_rel_name(relid) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	vectype = check_column(relid, column);
	relname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
										 get_rel_name(relid));
	sql = psprintf("SELECT %s, %s FROM %s WHERE %s IS NOT NULL",
				   has_tid ? "ctid" : "NULL::pg_catalog.tid", quote_identifier(column),
				   relname, quote_identifier(column));
	reservoir_init(&r, relid, has_tid, want, seed, cosine, out);
	r.vectype = vectype;
	r.fit = fit;
	r.nfit = nfit;
	r.min_rows = min_rows;
	r.left_out = left_out;
	r.what = psprintf("training from %s", relname);

	SPI_connect();
	portal = SPI_cursor_open_with_args(NULL, sql, 0, NULL, NULL, NULL, true, 0);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, FETCH_ROWS);
		if (SPI_processed == 0)
			break;
		r.errcb.previous = error_context_stack;
		error_context_stack = &r.errcb;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			Datum		d;

			r.ectx.ordinal = out->rows_seen + 1;
			d = SPI_getbinval(tup, desc, 1, &isnull);
			if (has_tid && !isnull)
				r.ectx.tid = *(ItemPointer) DatumGetPointer(d);
			d = SPI_getbinval(tup, desc, 2, &isnull);
			if (!isnull)
				reservoir_add(&r, d);
		}
		error_context_stack = r.errcb.previous;
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	SPI_finish();
	reservoir_finish(&r);
	MemoryContextDelete(r.batch);
}

static void
build_sample_callback(Relation index, ItemPointer tid, Datum *values, bool *isnull,
					  bool tupleIsAlive, void *state)
{
	Reservoir  *r = state;

	/* Skip nulls, and rows only a build must index (recently dead) */
	if (isnull[0] || !tupleIsAlive)
		return;
	r->ectx.tid = *tid;
	reservoir_add(r, values[0]);
}

/*
 * The same sample for an index build: a first pass of the build's own heap
 * scan (its snapshot, its partial-index predicate) instead of a query, so
 * REINDEX, VACUUM FULL, CLUSTER and table rewrites, whose planning could
 * not open the index being rebuilt, work.  Under cosine a zero vector is
 * skipped, as the index skips it.  Returns the heap tuples the scan saw.
 */
double
QdbSampleIndexBuild(Relation heap, Relation index, IndexInfo *indexInfo, int want,
					uint64 seed, bool cosine, const QdbTrainConfig *fit, QdbSample *out)
{
	Reservoir	r;
	double		heap_tuples;

	reservoir_init(&r, RelationGetRelid(heap), true, want, seed, cosine, out);
	r.vectype = QdbVecTypeOf(index->rd_opcintype[0]);
	r.fit = fit;
	r.what = psprintf("the compressor of index \"%s\"", RelationGetRelationName(index));
	r.skip_zero = true;
	r.errcb.previous = error_context_stack;
	error_context_stack = &r.errcb;
	/* no synchronized scan (the sample does not depend on the order, see the top) */
	/* its blocks in pg_stat_progress_create_index (phase training compressor) */
	heap_tuples = table_index_build_scan(heap, index, indexInfo, false, true,
										 build_sample_callback, &r, NULL);
	error_context_stack = r.errcb.previous;
	reservoir_finish(&r);
	MemoryContextDelete(r.batch);
	return heap_tuples;
}

void
QdbSplitSample(int n, int sample, int validation, int *n_train, int *n_val)
{
	int			held = Min(validation, n / 10);

	*n_train = Min(n - held, sample);
	*n_val = Min(validation, n - *n_train);
}
