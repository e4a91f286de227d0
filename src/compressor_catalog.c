/*
 * compressor_catalog.c
 *	  Compressors in the catalog table quantumdb.compressors: load, store,
 *	  export, import and drop.
 *
 * Rows are read and written through SPI with the caller's privileges, so
 * the table's GRANTs decide who may train, import or drop.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "quantumdb.h"

PG_FUNCTION_INFO_V1(quantumdb_export);
PG_FUNCTION_INFO_V1(quantumdb_import);
PG_FUNCTION_INFO_V1(quantumdb_drop_compressor);

static void
check_name(const char *name)
{
	if (name[0] == '\0' || strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid compressor name \"%s\"", name),
				 errdetail("A compressor name has 1 to %d bytes.", NAMEDATALEN - 1)));
}

/* The serialized model of compressor name, copied into cxt; NULL if absent. */
static bytea *
fetch_model_bytes(const char *name, MemoryContext cxt)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	bytea	   *result = NULL;
	int			rc;

	values[0] = CStringGetTextDatum(name);
	SPI_connect();
	rc = SPI_execute_with_args("SELECT model FROM quantumdb.compressors WHERE name = $1",
							   1, argtypes, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
		{
			MemoryContext old = MemoryContextSwitchTo(cxt);

			result = DatumGetByteaPCopy(d);
			MemoryContextSwitchTo(old);
		}
	}
	SPI_finish();
	return result;
}

/* Parses a serialized model into m, with arrays in cxt; ERROR if malformed. */
static void
parse_model(const bytea *blob, QdbModel *m, MemoryContext cxt, const char *what)
{
	char		err[256];
	int			rc;

	err[0] = '\0';
	rc = qdb_model_parse((const uint8_t *) VARDATA_ANY(blob), VARSIZE_ANY_EXHDR(blob),
						 QdbContextAlloc(cxt), m, err, sizeof(err));
	if (rc != QDB_OK)
		ereport(ERROR,
				(errcode(rc == QDB_ERR_NOMEM ? ERRCODE_OUT_OF_MEMORY : ERRCODE_DATA_CORRUPTED),
				 errmsg("%s is not a valid quantumdb model: %s", what, qdb_status_string(rc)),
				 err[0] ? errdetail_internal("%s", err) : 0,
				 errhint("Export the model again, or train a new compressor.")));
}

/*
 * Loads compressor name into a new child context of cxt.  ERROR when it does
 * not exist or its stored model does not parse.
 */
QdbLoadedModel *
QdbLoadCompressor(const char *name, MemoryContext cxt)
{
	MemoryContext mcxt = AllocSetContextCreate(cxt, "quantumdb compressor",
											   ALLOCSET_DEFAULT_SIZES);
	QdbLoadedModel *lm = MemoryContextAllocZero(mcxt, sizeof(QdbLoadedModel));
	bytea	   *blob;
	char		what[NAMEDATALEN + 32];

	check_name(name);
	blob = fetch_model_bytes(name, mcxt);
	if (blob == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("compressor \"%s\" does not exist", name),
				 errhint("Train one with quantumdb.train() or load one with quantumdb.import().")));
	snprintf(what, sizeof(what), "the model of compressor \"%s\"", name);
	parse_model(blob, &lm->model, mcxt, what);
	pfree(blob);
	strlcpy(lm->name, name, NAMEDATALEN);
	lm->cxt = mcxt;
	return lm;
}

/* Settings of a model as a jsonb text, for the catalog row. */
static char *
settings_json(const QdbModel *m, const char *extra)
{
	const QdbTrainConfig *c = &m->config;

	return psprintf("{\"subvectors\": %d, \"target_dim\": %d, \"dim_pq\": %d, "
					"\"kmeans_iters\": %d, \"opq_iters\": %d, \"opq_pq_iters\": %d, "
					"\"max_points_per_centroid\": %d, \"seed\": %llu%s%s}",
					m->M, c->target_dim, m->dim_pq, c->kmeans_iters, c->opq_iters,
					c->opq_pq_iters, c->max_points_per_centroid,
					(unsigned long long) c->seed, extra ? ", " : "", extra ? extra : "");
}

/*
 * Inserts a catalog row.  training_seconds and validation_recall may be
 * negative for "unknown" (an imported model).
 */
void
QdbStoreCompressor(const char *name, const QdbModel *m, const char *extra_settings,
				   double training_seconds, double validation_recall)
{
	uint8_t    *blob;
	size_t		len;
	bytea	   *b;
	int			rc;
	Oid			argtypes[8] = {TEXTOID, TEXTOID, INT4OID, TEXTOID, TEXTOID, BYTEAOID,
	FLOAT8OID, FLOAT8OID};
	Datum		values[8];
	char		nulls[8] = "        ";

	check_name(name);
	rc = qdb_model_serialize(m, QdbContextAlloc(CurrentMemoryContext), &blob, &len);
	QdbReportStatus(rc, "could not serialize the model", NULL);
	b = palloc(VARHDRSZ + len);
	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), blob, len);
	pfree(blob);

	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(qdb_kind_name(m->kind));
	values[2] = Int32GetDatum(m->dim);
	values[3] = CStringGetTextDatum(qdb_metric_name(m->metric));
	values[4] = CStringGetTextDatum(settings_json(m, extra_settings));
	values[5] = PointerGetDatum(b);
	values[6] = Float8GetDatum(training_seconds);
	values[7] = Float8GetDatum(validation_recall);
	if (training_seconds < 0)
		nulls[6] = 'n';
	if (validation_recall < 0)
		nulls[7] = 'n';

	SPI_connect();
	rc = SPI_execute_with_args("SELECT 1 FROM quantumdb.compressors WHERE name = $1",
							   1, argtypes, values, NULL, false, 1);
	if (rc == SPI_OK_SELECT && SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("compressor \"%s\" already exists", name),
				 errhint("Drop it first with quantumdb.drop_compressor('%s'), or choose another name.", name)));
	rc = SPI_execute_with_args("INSERT INTO quantumdb.compressors "
							   "(name, kind, dimensions, metric, settings, model, "
							   " training_seconds, validation_recall) "
							   "VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8)",
							   8, argtypes, values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not store compressor \"%s\": %s", name, SPI_result_code_string(rc));
	SPI_finish();
}

/* quantumdb.export(name) -> bytea: the safetensors blob as stored. */
Datum
quantumdb_export(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	bytea	   *blob;

	check_name(name);
	blob = fetch_model_bytes(name, CurrentMemoryContext);
	if (blob == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("compressor \"%s\" does not exist", name)));
	PG_RETURN_BYTEA_P(blob);
}

/* quantumdb.import(name, bytea): validates the blob fully, then stores it. */
Datum
quantumdb_import(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	bytea	   *blob = PG_GETARG_BYTEA_PP(1);
	QdbModel	m;

	check_name(name);
	parse_model(blob, &m, CurrentMemoryContext, "the imported blob");
	QdbStoreCompressor(name, &m, "\"imported\": true", -1, -1);
	PG_RETURN_VOID();
}

/* quantumdb.drop_compressor(name, if_exists) */
Datum
quantumdb_drop_compressor(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	bool		if_exists = PG_GETARG_BOOL(1);
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	int			rc;
	uint64		n;

	values[0] = CStringGetTextDatum(name);
	SPI_connect();
	rc = SPI_execute_with_args("DELETE FROM quantumdb.compressors WHERE name = $1",
							   1, argtypes, values, NULL, false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "could not delete compressor \"%s\": %s", name, SPI_result_code_string(rc));
	n = SPI_processed;
	SPI_finish();
	if (n == 0 && !if_exists)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("compressor \"%s\" does not exist", name)));
	if (n == 0)
		ereport(NOTICE,
				(errmsg("compressor \"%s\" does not exist, skipping", name)));
	PG_RETURN_BOOL(n > 0);
}
