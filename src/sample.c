/*
 * sample.c
 *	  A seeded reservoir sample of a real[] column: for quantumdb.train()
 *	  read through SPI with the caller's privileges, for an index build read
 *	  by the build's own heap scan (no query is planned on a table whose
 *	  indexes may be being rebuilt).  NULL vectors are skipped; a bad vector
 *	  is an ERROR whose context names its row.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/tableam.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
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
	if (QdbVecTypeOf(type) == QDB_VEC_NONE)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of relation \"%s\" is of type %s, not a vector type",
						column, get_rel_name(relid), format_type_be(type)),
				 errdetail("Compressors train on real[] columns, or on pgvector's vector and halfvec.")));
	return QdbVecTypeOf(type);
}

/* A seeded reservoir of up to want vectors, in out->x. */
typedef struct Reservoir
{
	QdbSample  *out;
	QdbVecType	vectype;		/* the column's */
	int			want;
	bool		cosine;
	bool		skip_zero;		/* with cosine: skip zero vectors, not an ERROR */
	QdbRng		rng;
	const QdbTrainConfig *fit;	/* the training the sample must fit beside */
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
	r->cosine = cosine;
	qdb_rng_seed(&r->rng, seed);
	r->caller = CurrentMemoryContext;
	r->batch = AllocSetContextCreate(r->caller, "quantumdb sample batch",
									 ALLOCSET_DEFAULT_SIZES);
	r->ectx.relname = get_rel_name(relid);
	r->ectx.has_tid = has_tid;
	r->errcb.callback = sample_error_callback;
	r->errcb.arg = &r->ectx;
}

/* Offers one non-NULL vector (a datum of r->vectype) to the reservoir. */
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
			r->want = QdbSampleRowsThatFit(r->fit, dim, r->want, r->what);
			error_context_stack = saved;
		}
		out->x = MemoryContextAllocExtended(r->caller,
											(Size) r->want * dim * sizeof(float),
											MCXT_ALLOC_HUGE);
	}
	else if (dim != out->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("vector has %d dimensions, but earlier rows have %d", dim,
						out->dim),
				 errhint("Every vector of a training column must have the same number of dimensions.")));
	/* reservoir: keep the first want, then replace with falling odds */
	if (seen <= r->want)
		slot = out->n++;
	else
	{
		slot = (int64) qdb_rng_below(&r->rng, (uint64) seen);
		if (slot >= r->want)
			slot = -1;
	}
	if (slot >= 0)
		memcpy(out->x + slot * dim, v, dim * sizeof(float));
	MemoryContextSwitchTo(old);
	MemoryContextReset(r->batch);
}

/*
 * Fills out with up to want vectors drawn uniformly (reservoir sampling,
 * seeded) from the non-NULL values of relid.column.  With cosine, a zero
 * vector is an error.  out->x is allocated in the current context.
 */
void
QdbSampleColumn(Oid relid, const char *column, int want, uint64 seed, bool cosine,
				const QdbTrainConfig *fit, QdbSample *out)
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
	/* no synchronized scan: the same rows in the same order give the same sample */
	heap_tuples = table_index_build_scan(heap, index, indexInfo, false, false,
										 build_sample_callback, &r, NULL);
	error_context_stack = r.errcb.previous;
	MemoryContextDelete(r.batch);
	return heap_tuples;
}
