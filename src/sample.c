/*
 * sample.c
 *	  A seeded reservoir sample of a real[] column, read through SPI with the
 *	  caller's privileges.  NULL vectors are skipped; a bad vector is an
 *	  ERROR whose context names its row.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/itemptr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "qdb_internal.h"
#include "quantumdb.h"

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

	if (c->has_tid)
		errcontext("row (%u,%u) of relation \"%s\"",
				   ItemPointerGetBlockNumberNoCheck(&c->tid),
				   ItemPointerGetOffsetNumberNoCheck(&c->tid), c->relname);
	else
		errcontext("row " INT64_FORMAT " of relation \"%s\"", c->ordinal, c->relname);
}

/* The column's attribute must exist and be real[]. */
static void
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
	if (type != FLOAT4ARRAYOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of relation \"%s\" is of type %s, not real[]",
						column, get_rel_name(relid), format_type_be(type))));
}

/*
 * Fills out with up to want vectors drawn uniformly (reservoir sampling,
 * seeded) from the non-NULL values of relid.column.  With cosine, a zero
 * vector is an error.  out->x is allocated in the current context.
 */
void
QdbSampleColumn(Oid relid, const char *column, int want, uint64 seed, bool cosine,
				QdbSample *out)
{
	char		relkind = get_rel_relkind(relid);
	bool		has_tid = relkind == RELKIND_RELATION || relkind == RELKIND_MATVIEW ||
		relkind == RELKIND_PARTITIONED_TABLE;
	char	   *relname;
	char	   *sql;
	Portal		portal;
	QdbRng		rng;
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext batch;
	SampleErrorContext ectx;
	ErrorContextCallback errcb;
	int64		seen = 0;

	if (get_rel_name(relid) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	check_column(relid, column);
	relname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
										 get_rel_name(relid));
	sql = psprintf("SELECT %s, %s FROM %s WHERE %s IS NOT NULL",
				   has_tid ? "ctid" : "NULL::tid", quote_identifier(column), relname,
				   quote_identifier(column));

	memset(out, 0, sizeof(*out));
	qdb_rng_seed(&rng, seed);
	batch = AllocSetContextCreate(caller, "quantumdb sample batch", ALLOCSET_DEFAULT_SIZES);

	ectx.relname = get_rel_name(relid);
	ectx.has_tid = has_tid;
	errcb.callback = sample_error_callback;
	errcb.arg = &ectx;
	errcb.previous = error_context_stack;

	SPI_connect();
	portal = SPI_cursor_open_with_args(NULL, sql, 0, NULL, NULL, NULL, true, 0);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, FETCH_ROWS);
		if (SPI_processed == 0)
			break;
		error_context_stack = &errcb;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			Datum		d;
			ArrayType  *a;
			float	   *v;
			int			dim;
			int64		slot;
			MemoryContext old;

			seen++;
			ectx.ordinal = seen;
			d = SPI_getbinval(tup, desc, 1, &isnull);
			if (has_tid && !isnull)
				ectx.tid = *(ItemPointer) DatumGetPointer(d);
			d = SPI_getbinval(tup, desc, 2, &isnull);
			if (isnull)
				continue;
			old = MemoryContextSwitchTo(batch);
			a = DatumGetArrayTypeP(d);
			v = QdbArrayGetFloats(a, &dim, "vector");
			if (cosine)
				QdbCheckNonZero(v, dim, "vector");
			if (out->dim == 0)
			{
				out->dim = dim;
				out->x = MemoryContextAllocExtended(caller,
													(Size) want * dim * sizeof(float),
													MCXT_ALLOC_HUGE);
			}
			else if (dim != out->dim)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_EXCEPTION),
						 errmsg("vector has %d dimensions, but earlier rows have %d", dim,
								out->dim),
						 errhint("Every vector of a training column must have the same number of dimensions.")));
			/* reservoir: keep the first want, then replace with falling odds */
			if (seen <= want)
				slot = out->n++;
			else
			{
				slot = (int64) qdb_rng_below(&rng, (uint64) seen);
				if (slot >= want)
					slot = -1;
			}
			if (slot >= 0)
				memcpy(out->x + slot * dim, v, dim * sizeof(float));
			MemoryContextSwitchTo(old);
			MemoryContextReset(batch);
		}
		error_context_stack = errcb.previous;
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	SPI_finish();
	MemoryContextDelete(batch);
	out->rows_seen = seen;
}
