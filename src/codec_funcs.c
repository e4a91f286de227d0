/*
 * codec_funcs.c
 *	  quantumdb.encode, quantumdb.decode and quantumdb.adc_distance.
 *
 * Each call site caches the loaded compressor in fn_extra, and adc_distance
 * also caches the query's lookup table, so "ORDER BY
 * quantumdb.adc_distance(name, $1, code)" over a table of codes is an
 * exhaustive ADC search at table-lookup cost per row.  A call site can
 * outlive its statement (a PL/pgSQL expression keeps its own for the
 * transaction), so in another statement or command than the one it was
 * checked in the compressor's catalog row is read again (without its
 * model): dropped, replaced by another of the same name or no longer
 * usable, the old one is not used.  Not per snapshot: a volatile function
 * takes a new one per expression, and on a busy server each would be a
 * catalog query.
 */
#include "postgres.h"

#include "miscadmin.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "compressor.h"

PG_FUNCTION_INFO_V1(quantumdb_encode);
PG_FUNCTION_INFO_V1(quantumdb_decode);
PG_FUNCTION_INFO_V1(quantumdb_adc_distance);

typedef struct CodecCache
{
	QdbLoadedModel *lm;
	Oid			userid;			/* who loaded it: the use rule was checked for them */
	/* the statement and command it was last checked in (checked_here) */
	LocalTransactionId lxid;
	TimestampTz statement;
	CommandId	cid;
	QdbVecType	argtype;		/* of the vector argument; QDB_VEC_NONE until known */
	/* adc_distance: the last query (its value's bytes) and its table */
	bool		has_query;
	Size		qlen;
	char	   *query;			/* (qlen) the value's data as given */
	float	   *table;			/* (qdb_table_floats) */
	float		bias;
} CodecCache;

/*
 * Whether c was checked against the catalog in this transaction's current
 * top-level statement and command: the catalog rows it may see are those
 * it saw (another transaction's change, committed since, shows in the next
 * statement; this one's, after the command counter moved on).
 */
static bool
checked_here(const CodecCache *c)
{
	return c->lxid == MyProc->lxid && c->statement == GetCurrentStatementStartTimestamp() &&
		c->cid == GetCurrentCommandId(false);
}

/* Notes c as checked now (after the check: an ERROR in it leaves it unchecked). */
static void
note_checked(CodecCache *c)
{
	c->lxid = MyProc->lxid;
	c->statement = GetCurrentStatementStartTimestamp();
	c->cid = GetCurrentCommandId(false);
}

/* The compressor named by argument 0, cached across the call site's calls. */
static CodecCache *
codec_cache(FunctionCallInfo fcinfo)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	CodecCache *c = fcinfo->flinfo->fn_extra;
	int			len = VARSIZE_ANY_EXHDR(t);

	/* the same compressor for the same user (a SECURITY DEFINER caller, SET ROLE) */
	if (c && c->lm && c->userid == GetUserId() && (int) strlen(c->lm->name) == len &&
		memcmp(c->lm->name, VARDATA_ANY(t), len) == 0)
	{
		if (checked_here(c))
			return c;
		if (QdbCompressorUnchanged(c->lm))
		{
			note_checked(c);
			return c;
		}
	}
	if (c == NULL)
	{
		c = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(CodecCache));
		fcinfo->flinfo->fn_extra = c;
	}
	if (c->lm)
		MemoryContextDelete(c->lm->cxt);
	if (c->query)
		pfree(c->query);
	if (c->table)
		pfree(c->table);
	memset(c, 0, sizeof(*c));
	c->lm = QdbLoadCompressor(text_to_cstring(t), fcinfo->flinfo->fn_mcxt, NULL);
	c->userid = GetUserId();
	note_checked(c);
	return c;
}

static void
check_model_dims(const QdbLoadedModel *lm, int dim, const char *what)
{
	if (dim != lm->model.dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("%s has %d dimensions, but compressor \"%s\" has %d",
						what, dim, lm->name, lm->model.dim),
				 errhint("Train a compressor on vectors of %d dimensions.", dim)));
}

static const uint8_t *
code_arg(const QdbLoadedModel *lm, bytea *code)
{
	int			len = VARSIZE_ANY_EXHDR(code);

	if (len != (int) qdb_code_size(&lm->model))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("code has %d bytes, but compressor \"%s\" makes codes of %d bytes",
						len, lm->name, (int) qdb_code_size(&lm->model))));
	return (const uint8_t *) VARDATA_ANY(code);
}

/* quantumdb.encode(name, real[] | vector | halfvec) -> bytea */
Datum
quantumdb_encode(PG_FUNCTION_ARGS)
{
	CodecCache *c = codec_cache(fcinfo);
	const QdbModel *m = &c->lm->model;
	int			dim;
	float	   *x = QdbArgGetFloats(fcinfo, 1, &c->argtype, &dim, "vector");
	bytea	   *out;
	int			rc;

	check_model_dims(c->lm, dim, "vector");
	QdbCheckForMetric(x, dim, m->metric, "vector");
	out = palloc(VARHDRSZ + qdb_code_size(m));
	SET_VARSIZE(out, VARHDRSZ + qdb_code_size(m));
	rc = qdb_compute_codes(m, x, 1, (uint8_t *) VARDATA(out));
	QdbReportStatus(rc, "could not encode the vector", NULL);
	PG_RETURN_BYTEA_P(out);
}

/* quantumdb.decode(name, bytea) -> real[] */
Datum
quantumdb_decode(PG_FUNCTION_ARGS)
{
	CodecCache *c = codec_cache(fcinfo);
	const QdbModel *m = &c->lm->model;
	const uint8_t *code = code_arg(c->lm, PG_GETARG_BYTEA_PP(1));
	float	   *x = palloc(sizeof(float) * m->dim);
	int			rc;

	rc = qdb_decode(m, code, 1, x);
	QdbReportStatus(rc, "could not decode the code", NULL);
	PG_RETURN_ARRAYTYPE_P(QdbFloatsToArray(x, m->dim));
}

/* True if q is, byte for byte, the cached query (so already checked). */
static bool
same_query(const CodecCache *c, struct varlena *q)
{
	return c->has_query && VARSIZE_ANY_EXHDR(q) == c->qlen &&
		memcmp(VARDATA_ANY(q), c->query, c->qlen) == 0;
}

/*
 * quantumdb.adc_distance(name, query real[] | vector | halfvec, code bytea) -> float8: the
 * distance an index scan computes, from the query's lookup table.
 */
Datum
quantumdb_adc_distance(PG_FUNCTION_ARGS)
{
	CodecCache *c = codec_cache(fcinfo);
	const QdbModel *m = &c->lm->model;
	struct varlena *q = PG_GETARG_VARLENA_PP(1);
	const uint8_t *code = code_arg(c->lm, PG_GETARG_BYTEA_PP(2));

	/* the same query as the last call's: its table, with no check again */
	if (!same_query(c, q))
	{
		int			dim;
		float	   *x = QdbArgGetFloats(fcinfo, 1, &c->argtype, &dim, "query");
		MemoryContext old;
		int			rc;

		check_model_dims(c->lm, dim, "query");
		QdbCheckForMetric(x, dim, m->metric, "query");
		old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
		if (c->table == NULL)
			c->table = palloc(sizeof(float) * qdb_table_floats(m));
		/* no query kept until the new one is (an ERROR on the way leaves none) */
		c->has_query = false;
		if (c->query)
			pfree(c->query);
		c->query = NULL;
		c->query = palloc(VARSIZE_ANY_EXHDR(q));
		MemoryContextSwitchTo(old);
		rc = qdb_compute_distance_table(m, x, c->table, &c->bias);
		QdbReportStatus(rc, "could not compute the distance table", NULL);
		c->qlen = VARSIZE_ANY_EXHDR(q);
		memcpy(c->query, VARDATA_ANY(q), c->qlen);
		c->has_query = true;
	}
	PG_RETURN_FLOAT8((double) qdb_adc_distance(m, c->table, c->bias, code));
}
