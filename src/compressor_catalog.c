/*
 * compressor_catalog.c
 *	  Compressors in the catalog table quantumdb.compressors: load, store,
 *	  export, import and drop, and who may use them.
 *
 * A model is derived data of its source table, so using one follows who may
 * read that table (QdbMayUseCompressor).  Rows are read and written through
 * SPI as the catalog's owner, so that a caller the catalog's row-level
 * security hides a row from gets "permission denied", not "does not exist";
 * every function that reads a model checks the rule here, in C, whatever
 * the policies (superuser wrappers and BYPASSRLS roles see every row).
 * Who may train or import is decided by INSERT on the catalog, checked
 * before the row is written.  The SPI text names every table, operator and
 * type with its schema: it runs with the caller's search_path.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "storage/itemptr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "compressor.h"
#include "rq.h"

PG_FUNCTION_INFO_V1(quantumdb_export);
PG_FUNCTION_INFO_V1(quantumdb_import);
PG_FUNCTION_INFO_V1(quantumdb_drop_compressor);
PG_FUNCTION_INFO_V1(quantumdb_may_use_compressor);
PG_FUNCTION_INFO_V1(quantumdb_check_compressor_row);

/* What the catalog says about a compressor besides its model. */
typedef struct CatalogRow
{
	Oid			owner;
	Oid			source;			/* InvalidOid: imported */
	bool		has_column;
	NameData	column;
	bytea	   *model;			/* NULL unless asked for */
	TransactionId xmin;			/* the row version read: a new one is */
	ItemPointerData tid;		/* another model, or other rules */
} CatalogRow;

void
QdbCheckCompressorName(const char *name)
{
	if (name[0] == '\0' || strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid compressor name \"%s\"", name),
				 errdetail("A compressor name has 1 to %d bytes.", NAMEDATALEN - 1)));
}

/* The owner of quantumdb.compressors, as whom its rows are read and written. */
static Oid
catalog_owner(void)
{
	Oid			nsp = get_namespace_oid("quantumdb", false);
	Oid			relid = get_relname_relid("compressors", nsp);
	HeapTuple	tup;
	Oid			owner;

	if (!OidIsValid(relid))
		elog(ERROR, "catalog table quantumdb.compressors is missing");
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * Connects SPI as the catalog's owner, in a security-restricted operation
 * with search_path pinned to pg_catalog (the text is qualified as well).
 * An ERROR before QdbCatalogEnd() is fine: (sub)transaction abort restores
 * the user, the setting and the snapshot stack.
 *
 * Without an active snapshot (an index rebuilt at COMMIT, when a temporary
 * table ON COMMIT DELETE ROWS is emptied: SPI refuses to run there) the
 * transaction's own is pushed for the catalog's queries.
 */
void
QdbCatalogBegin(QdbCatalogAccess *a)
{
	Oid			owner = catalog_owner();

	a->pushed_snapshot = !ActiveSnapshotSet();
	if (a->pushed_snapshot)
		PushActiveSnapshot(GetTransactionSnapshot());
	QdbAsRoleBegin(&a->as, owner, SECURITY_LOCAL_USERID_CHANGE);
	SPI_connect();
}

/*
 * Runs what follows as role, in a security-restricted operation (plus
 * sec_flags), with search_path pinned (QdbPinSearchPath) at a GUC nest
 * level of its own, until QdbAsRoleEnd; an ERROR before it is fine: the
 * (sub)transaction's abort restores the user and the settings.  How an
 * index build runs its predicate and expressions as the table's owner.
 */
void
QdbAsRoleBegin(QdbAsRole *s, Oid role, int sec_flags)
{
	GetUserIdAndSecContext(&s->save_userid, &s->save_sec_context);
	SetUserIdAndSecContext(role, s->save_sec_context | sec_flags |
						   SECURITY_RESTRICTED_OPERATION);
	s->save_nestlevel = NewGUCNestLevel();
	QdbPinSearchPath();
}

void
QdbAsRoleEnd(QdbAsRole *s)
{
	AtEOXact_GUC(false, s->save_nestlevel);
	SetUserIdAndSecContext(s->save_userid, s->save_sec_context);
}

/*
 * search_path pg_catalog, pg_temp until the current GUC nest level ends:
 * for code that runs as another role than the one whose search_path it
 * would otherwise take (a table's owner evaluating its index's predicate,
 * the catalog's owner), so that no schema the caller may create in
 * chooses a function, operator or type for it.
 */
void
QdbPinSearchPath(void)
{
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
}

/*
 * Whether rows read through relid depend on who reads them: a relation
 * other than a table or materialized view (a view, a foreign table), or,
 * with descendants, a table with such a partition or inheritance child, at
 * any depth, read by a scan of it.
 */
static bool
rows_depend_on_reader(Oid relid, bool descendants)
{
	ListCell   *lc;
	List	   *tree;

	switch (get_rel_relkind(relid))
	{
		case RELKIND_RELATION:
		case RELKIND_PARTITIONED_TABLE:
		case RELKIND_MATVIEW:
			break;
		default:
			return true;
	}
	if (!descendants || !has_subclass(relid))
		return false;
	tree = find_all_inheritors(relid, NoLock, NULL);
	foreach(lc, tree)
	{
		char		kind = get_rel_relkind(lfirst_oid(lc));

		if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE &&
			kind != RELKIND_MATVIEW && kind != '\0')
			return true;
	}
	return false;
}

void
QdbCatalogEnd(QdbCatalogAccess *a)
{
	SPI_finish();
	QdbAsRoleEnd(&a->as);
	if (a->pushed_snapshot)
		PopActiveSnapshot();
}

/* Fills row from columns owner, source, source_column of an SPI tuple. */
static void
read_row(HeapTuple tup, TupleDesc desc, CatalogRow *row)
{
	bool		isnull;
	Datum		d;

	memset(row, 0, sizeof(*row));
	d = SPI_getbinval(tup, desc, 1, &isnull);
	row->owner = isnull ? InvalidOid : DatumGetObjectId(d);
	d = SPI_getbinval(tup, desc, 2, &isnull);
	row->source = isnull ? InvalidOid : DatumGetObjectId(d);
	d = SPI_getbinval(tup, desc, 3, &isnull);
	row->has_column = !isnull;
	if (!isnull)
		namestrcpy(&row->column, NameStr(*DatumGetName(d)));
}

/*
 * Reads the row of compressor name, whoever the caller is, with its model
 * copied into cxt (cxt NULL: without it); false if there is none.
 */
static bool
fetch_row(const char *name, MemoryContext cxt, CatalogRow *row)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	QdbCatalogAccess a;
	bool		found = false;
	int			rc;

	values[0] = CStringGetTextDatum(name);
	QdbCatalogBegin(&a);
	/* not read-only: a row made earlier in this command (a Citus worker's
	 * copy from the coordinator, citus.c) is seen */
	rc = SPI_execute_with_args(cxt ?
							   "SELECT owner, source, source_column, xmin, ctid, model "
							   "FROM quantumdb.compressors "
							   "WHERE name OPERATOR(pg_catalog.=) $1" :
							   "SELECT owner, source, source_column, xmin, ctid "
							   "FROM quantumdb.compressors "
							   "WHERE name OPERATOR(pg_catalog.=) $1",
							   1, argtypes, values, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		d;

		read_row(tup, desc, row);
		row->xmin = DatumGetTransactionId(SPI_getbinval(tup, desc, 4, &isnull));
		row->tid = *(ItemPointer) DatumGetPointer(SPI_getbinval(tup, desc, 5, &isnull));
		found = cxt == NULL;
		d = cxt ? SPI_getbinval(tup, desc, 6, &isnull) : (Datum) 0;
		if (cxt && !isnull)
		{
			MemoryContext old = MemoryContextSwitchTo(cxt);

			row->model = DatumGetByteaPCopy(d);
			MemoryContextSwitchTo(old);
			found = true;
		}
	}
	QdbCatalogEnd(&a);
	return found;
}

/*
 * May roleid use a compressor of this owner, trained on source.column?  A
 * superuser or a role with the owner's privileges may; otherwise, while
 * the source table exists, a role that may read the column (SELECT on the
 * table or the column, USAGE on its schema) and is not subject to
 * row-level security on the table: a model trained on every row would show
 * the rows its policies hide.  An imported model (no source) and one whose
 * source is gone: the owner only; so is one trained from a view or a
 * foreign table, whose rows depend on who reads them (a security_invoker
 * view over a table with policies, a view that filters on current_user, a
 * user mapping), so that reading it proves nothing about the rows trained on;
 * and so is one trained from a table with a foreign partition or child (as
 * its tree is now; training records no source where it had one then).
 */
static bool
may_use(Oid roleid, Oid owner, Oid source, const char *column, bool descendants)
{
	Oid			nsp;
	AttrNumber	attnum;
	bool		missing = false;

	/* true for superusers too */
	if (OidIsValid(owner) && has_privs_of_role(roleid, owner))
		return true;
	if (superuser_arg(roleid))
		return true;
	if (!OidIsValid(source))
		return false;
	nsp = get_rel_namespace(source);
	if (!OidIsValid(nsp))
		return false;			/* dropped */
	if (rows_depend_on_reader(source, descendants))
		return false;
	if (check_enable_rls(source, roleid, true) == RLS_ENABLED)
		return false;
	if (pg_namespace_aclcheck(nsp, roleid, ACL_USAGE) != ACLCHECK_OK)
		return false;
	if (pg_class_aclcheck_ext(source, roleid, ACL_SELECT, &missing) == ACLCHECK_OK)
		return true;
	if (missing || column == NULL)
		return false;
	attnum = get_attnum(source, column);
	return attnum != InvalidAttrNumber &&
		pg_attribute_aclcheck_ext(source, attnum, roleid, ACL_SELECT, &missing) == ACLCHECK_OK;
}

bool
QdbMayUseCompressor(Oid roleid, Oid owner, Oid source, const char *column)
{
	return may_use(roleid, owner, source, column, true);
}

/* A role's name for a message; a dropped one by its OID. */
static char *
role_name(Oid roleid)
{
	char	   *n = GetUserNameFromId(roleid, true);

	return n ? pstrdup(quote_identifier(n)) : psprintf("with OID %u", roleid);
}

/*
 * The hint of a refusal that membership in owner (or SELECT on table, when
 * not NULL) would lift.  An index is built and rebuilt as its table's
 * owner, in a security-restricted operation: the role checked there is not
 * always the one that ran the statement, and is named, or a superuser
 * restoring a table handed to another role was told to ask for membership
 * in its own role (session 63's hunt, /work/runs/hunt-s63b.md F5).
 */
static int
membership_hint(const char *owner, const char *table)
{
	if (InSecurityRestrictedOperation())
		return table ?
			errhint("The check is made as role %s, the table's owner, as an index is built and rebuilt (CREATE INDEX, REINDEX, VACUUM FULL, CLUSTER, a restore): grant it SELECT on table %s, or membership in role %s.",
					role_name(GetUserId()), table, owner) :
			errhint("The check is made as role %s, the table's owner, as an index is built and rebuilt (CREATE INDEX, REINDEX, VACUUM FULL, CLUSTER, a restore): grant it membership in role %s.",
					role_name(GetUserId()), owner);
	return table ?
		errhint("Ask for SELECT on table %s, or for membership in role %s.", table, owner) :
		errhint("Ask for membership in role %s.", owner);
}

/* ERROR unless the current user may use the compressor of row. */
static void
check_may_use(const char *name, const CatalogRow *row)
{
	Oid			roleid = GetUserId();
	char	   *owner;
	char	   *table;
	char	   *relname;

	if (QdbMayUseCompressor(roleid, row->owner, row->source,
							row->has_column ? NameStr(row->column) : NULL))
		return;
	owner = role_name(row->owner);
	relname = OidIsValid(row->source) ? get_rel_name(row->source) : NULL;
	if (relname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for compressor \"%s\"", name),
				 OidIsValid(row->source) ?
				 errdetail("Its source table no longer exists, so only its owner may use it.") :
				 errdetail("It has no source table (it was imported, or its source table was dropped), so only its owner may use it."),
				 membership_hint(owner, NULL)));
	table = quote_qualified_identifier(get_namespace_name(get_rel_namespace(row->source)),
									   relname);
	if (rows_depend_on_reader(row->source, true))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for compressor \"%s\"", name),
				 errdetail("Its source %s is a view or a foreign table, or has a foreign partition or child: what a scan of it returns depends on who reads it, so only the compressor's owner may use it.",
						   table),
				 membership_hint(owner, NULL)));
	if (check_enable_rls(row->source, roleid, true) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for compressor \"%s\"", name),
				 errdetail("Row-level security on its source table %s applies to you, and the compressor was trained on rows the policies may hide.",
						   table),
				 membership_hint(owner, NULL)));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for compressor \"%s\"", name),
			 errdetail("A compressor is derived from its source table %s; using it needs the right to read that table.",
					   table),
			 membership_hint(owner, table)));
}

/*
 * The row of compressor name with its model in cxt; ERROR when it does not
 * exist or the current user may not use it.
 */
static void
fetch_usable(const char *name, MemoryContext cxt, CatalogRow *row, const char *missing_hint)
{
	QdbCheckCompressorName(name);
	if (!fetch_row(name, cxt, row))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("compressor \"%s\" does not exist", name),
				 errhint("%s", missing_hint ? missing_hint :
						 "Train one with quantumdb.train() or load one with quantumdb.import().")));
	check_may_use(name, row);
}

/* Parses a serialized model into m, with arrays in cxt; ERROR if malformed. */
void
QdbParseModel(const bytea *blob, QdbModel *m, MemoryContext cxt, const char *what)
{
	char		err[256];
	int			rc;

	err[0] = '\0';
	rc = qdb_model_parse((const uint8_t *) VARDATA_ANY(blob), VARSIZE_ANY_EXHDR(blob),
						 QdbContextAlloc(cxt), m, err, sizeof(err));
	/*
	 * a model of an older format that this one reads differently (kind rq
	 * of format 1): exporting it again gives the same bytes (session 56's
	 * hunt, /work/runs/hunt-s56b.md F2)
	 */
	if (rc != QDB_OK && strstr(err, "needs format version") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s is not a valid quantumdb model: %s", what, qdb_status_string(rc)),
				 errdetail_internal("%s", err),
				 errhint("A model of this kind written by an older quantumdb cannot be read: train it again (quantumdb.drop_compressor, then quantumdb.train with the same name), then REINDEX the indexes that use it.")));
	if (rc != QDB_OK)
		ereport(ERROR,
				(errcode(QdbStatusErrcode(rc)),
				 errmsg("%s is not a valid quantumdb model: %s", what, qdb_status_string(rc)),
				 err[0] ? errdetail_internal("%s", err) : 0,
				 errhint("Export the model again, or train a new compressor.")));
}

/* The rest of a loaded model: its name, context and catalog row version. */
static void
loaded_from(QdbLoadedModel *lm, const char *name, MemoryContext mcxt, const CatalogRow *row)
{
	strlcpy(lm->name, name, NAMEDATALEN);
	lm->cxt = mcxt;
	lm->row_xmin = row->xmin;
	lm->row_tid = row->tid;
}

/*
 * Loads compressor name into a new child context of cxt.  ERROR when it does
 * not exist, the current user may not use it (CREATE INDEX: the table's
 * owner) or its stored model does not parse; missing_hint, when not NULL,
 * is the HINT of the first.
 */
QdbLoadedModel *
QdbLoadCompressor(const char *name, MemoryContext cxt, const char *missing_hint)
{
	MemoryContext mcxt = AllocSetContextCreate(cxt, "quantumdb compressor",
											   ALLOCSET_DEFAULT_SIZES);
	QdbLoadedModel *lm = MemoryContextAllocZero(mcxt, sizeof(QdbLoadedModel));
	CatalogRow	row;
	char		what[NAMEDATALEN + 32];

	fetch_usable(name, mcxt, &row, missing_hint);
	snprintf(what, sizeof(what), "the model of compressor \"%s\"", name);
	QdbParseModel(row.model, &lm->model, mcxt, what);
	pfree(row.model);
	/* loaded to encode and search with, never changed: its query-free tables */
	QdbReportStatus(qdb_model_prepare(&lm->model), "could not prepare the compressor", NULL);
	loaded_from(lm, name, mcxt, &row);
	return lm;
}

/*
 * QdbLoadCompressor without an ERROR for the compressor itself: NULL and
 * *why, the reason as an error would say it, when it does not exist, the
 * current user may not use it, or its model does not parse.  Reads the
 * catalog row once.  For a caller that must go on without it
 * (index_build.c).
 */
QdbLoadedModel *
QdbTryLoadCompressor(const char *name, MemoryContext cxt, char **why)
{
	MemoryContext mcxt = AllocSetContextCreate(cxt, "quantumdb compressor",
											   ALLOCSET_DEFAULT_SIZES);
	QdbLoadedModel *lm = MemoryContextAllocZero(mcxt, sizeof(QdbLoadedModel));
	CatalogRow	row;
	char		err[256];
	int			rc = QDB_OK;

	*why = NULL;
	QdbCheckCompressorName(name);
	if (!fetch_row(name, mcxt, &row))
		*why = psprintf("compressor \"%s\" does not exist", name);
	else if (!QdbMayUseCompressor(GetUserId(), row.owner, row.source,
								  row.has_column ? NameStr(row.column) : NULL))
		*why = psprintf("permission denied for compressor \"%s\"", name);
	else if ((rc = qdb_model_parse((const uint8_t *) VARDATA_ANY(row.model),
								   VARSIZE_ANY_EXHDR(row.model), QdbContextAlloc(mcxt),
								   &lm->model, err, sizeof(err))) != QDB_OK ||
			 (rc = qdb_model_prepare(&lm->model)) != QDB_OK)
		*why = psprintf("the model of compressor \"%s\" cannot be used: %s",
						name, qdb_status_string(rc));
	if (*why)
	{
		MemoryContextDelete(mcxt);
		return NULL;
	}
	pfree(row.model);
	loaded_from(lm, name, mcxt, &row);
	return lm;
}

/*
 * Whether lm is still what its name loads for the current user: its
 * catalog row the same version (not dropped, replaced or changed since),
 * and the user still allowed to use it.  ERROR as QdbLoadCompressor when
 * the row is gone or the user may not use it; false when another version
 * of it is there (load it again).  Reads the row without its model.
 */
bool
QdbCompressorUnchanged(const QdbLoadedModel *lm)
{
	CatalogRow	row;

	fetch_usable(lm->name, NULL, &row, NULL);
	return TransactionIdEquals(row.xmin, lm->row_xmin) &&
		ItemPointerEquals(&row.tid, (ItemPointer) &lm->row_tid);
}

/* Settings of a model as a jsonb text, for the catalog row. */
static char *
settings_json(const QdbModel *m, const char *extra)
{
	const QdbTrainConfig *c = &m->config;
	char		rq[96] = "";
	char		opq[48] = "";

	/* kind rq's beam, eta and refits, where not the defaults (as the model file keeps them) */
	if (m->kind == QDB_KIND_RQ && !qdb_rq_settings_default(c))
		snprintf(rq, sizeof(rq), ", \"beam\": %d, \"eta\": %g, \"refits\": %d",
				 qdb_rq_beam(c), c->rq_eta > 1.0f ? c->rq_eta : 1.0, qdb_rq_refits(c));
	/*
	 * kind opq's alternations run, where the stall stopped them before
	 * opq_iters (trainer/opq.c); unknown for an imported model
	 */
	if (m->kind == QDB_KIND_OPQ && m->opq_alternations >= 0)
		snprintf(opq, sizeof(opq), ", \"opq_alternations\": %d", m->opq_alternations);
	/* kind opq's error byte (trainer/opq_error.c): the last of the subvectors */
	return psprintf("{\"subvectors\": %d, \"target_dim\": %d, \"dim_pq\": %d, "
					"\"kmeans_iters\": %d, \"opq_iters\": %d%s, \"opq_pq_iters\": %d, "
					"\"max_points_per_centroid\": %d, \"seed\": %llu%s%s%s%s}",
					m->M, c->dim_pq, m->dim_pq, c->kmeans_iters, c->opq_iters, opq,
					c->opq_pq_iters, c->max_points_per_centroid,
					(unsigned long long) c->seed, rq,
					m->err_byte ? ", \"error_byte\": true" : "",
					extra ? ", " : "", extra ? extra : "");
}

/* Whether a compressor is named name (a text Datum); within QdbCatalogBegin. */
static bool
name_taken(Datum name)
{
	Oid			type = TEXTOID;
	int			rc;

	rc = SPI_execute_with_args("SELECT 1 FROM quantumdb.compressors "
							   "WHERE name OPERATOR(pg_catalog.=) $1",
							   1, &type, &name, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
	return SPI_processed > 0;
}

void
QdbCompressorNameTaken(const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_DUPLICATE_OBJECT),
			 errmsg("compressor \"%s\" already exists", name),
			 errhint("Drop it first with quantumdb.drop_compressor(%s), or choose another name.",
					 quote_literal_cstr(name))));
}

/*
 * Inserts row r as the catalog's owner unless its name is taken; false if
 * it is.  The caller has checked the name and the right to insert.
 */
bool
QdbInsertCompressorRow(const QdbCompressorRow *r)
{
	Oid			argtypes[12] = {TEXTOID, TEXTOID, INT4OID, TEXTOID, TEXTOID, BYTEAOID,
	FLOAT8OID, FLOAT8OID, REGROLEOID, REGCLASSOID, NAMEOID, TIMESTAMPTZOID};
	Datum		values[12];
	char		nulls[12] = "            ";
	NameData	colname;
	QdbCatalogAccess a;
	bool		exists;
	int			rc;

	values[0] = CStringGetTextDatum(r->name);
	values[1] = CStringGetTextDatum(qdb_kind_name(r->model->kind));
	values[2] = Int32GetDatum(r->model->dim);
	values[3] = CStringGetTextDatum(qdb_metric_name(r->model->metric));
	values[4] = CStringGetTextDatum(r->settings);
	values[5] = PointerGetDatum(r->blob);
	values[6] = Float8GetDatum(r->training_seconds);
	values[7] = Float8GetDatum(r->validation_recall);
	values[8] = ObjectIdGetDatum(r->owner);
	values[9] = ObjectIdGetDatum(r->source);
	if (r->column)
		namestrcpy(&colname, r->column);
	values[10] = NameGetDatum(&colname);
	values[11] = TimestampTzGetDatum(r->created_at);
	if (r->training_seconds < 0)
		nulls[6] = 'n';
	if (r->validation_recall < 0)
		nulls[7] = 'n';
	if (!OidIsValid(r->source))
		nulls[9] = 'n';
	if (r->column == NULL)
		nulls[10] = 'n';
	if (!r->has_created_at)
		nulls[11] = 'n';

	QdbCatalogBegin(&a);
	exists = name_taken(values[0]);
	if (!exists)
	{
		rc = SPI_execute_with_args("INSERT INTO quantumdb.compressors "
								   "(name, kind, dimensions, metric, settings, model, "
								   " training_seconds, validation_recall, owner, source, "
								   " source_column, created_at) "
								   "VALUES ($1, $2, $3, $4, $5::pg_catalog.jsonb, $6, $7, $8, "
								   " $9, $10, $11, COALESCE($12, pg_catalog.now()))",
								   12, argtypes, values, nulls, false, 0);
		if (rc != SPI_OK_INSERT)
			elog(ERROR, "could not store compressor \"%s\": %s", r->name,
				 SPI_result_code_string(rc));
	}
	QdbCatalogEnd(&a);
	return !exists;
}

/*
 * Inserts a catalog row owned by the current user, trained on source.column
 * (InvalidOid and NULL for an imported model, and for a temporary table).  training_seconds and
 * validation_recall may be negative for "unknown" (an imported model).
 * The user needs INSERT on the catalog.  On a Citus coordinator the row
 * goes to every worker too, in the same transaction (citus.c).
 */
void
QdbStoreCompressor(const char *name, const QdbModel *m, const char *extra_settings,
				   double training_seconds, double validation_recall,
				   Oid source, const char *column)
{
	uint8_t    *blob;
	size_t		len;
	int			rc;
	QdbCompressorRow r;

	QdbCheckCompressorName(name);
	QdbCheckTableInsert("compressors", "Training and importing store the compressor there.");
	rc = qdb_model_serialize(m, QdbContextAlloc(CurrentMemoryContext), &blob, &len);
	QdbReportStatus(rc, "could not serialize the model", NULL);
	memset(&r, 0, sizeof(r));
	r.blob = palloc(VARHDRSZ + len);
	SET_VARSIZE(r.blob, VARHDRSZ + len);
	memcpy(VARDATA(r.blob), blob, len);
	pfree(blob);
	r.name = name;
	r.model = m;
	r.settings = settings_json(m, extra_settings);
	r.training_seconds = training_seconds;
	r.validation_recall = validation_recall;
	r.owner = GetUserId();
	/*
	 * A temporary table is dropped at the session's end without the event
	 * trigger that makes the row forget a dropped source: no source (the
	 * owner's alone, as its rows were), not an OID another relation may get.
	 * Nor for a table with a foreign partition or child: another reader
	 * reads those rows through another user mapping, and a partition
	 * detached later leaves its rows in the model all the same.
	 */
	if (OidIsValid(source) && get_rel_persistence(source) != RELPERSISTENCE_TEMP &&
		!rows_depend_on_reader(source, true))
	{
		r.source = source;
		r.column = column;
	}
	if (!QdbInsertCompressorRow(&r))
		QdbCompressorNameTaken(name);
	QdbCitusReplicateCompressor(name);
}

/*
 * ERROR unless name is a valid compressor name no compressor has: for work
 * that stores one at its end (quantumdb.autotune) to fail before the work.
 */
void
QdbCheckNewCompressorName(const char *name)
{
	QdbCatalogAccess a;
	bool		exists;

	QdbCheckCompressorName(name);
	QdbCatalogBegin(&a);
	exists = name_taken(CStringGetTextDatum(name));
	QdbCatalogEnd(&a);
	if (exists)
		QdbCompressorNameTaken(name);
}

/* ERROR unless compressor name exists and the current user may use it. */
void
QdbCheckMayUseCompressor(const char *name)
{
	CatalogRow	row;

	fetch_usable(name, CurrentMemoryContext, &row, NULL);
	pfree(row.model);
}

/* Whether a compressor is named name, whoever may use it. */
bool
QdbCompressorExists(const char *name)
{
	QdbCatalogAccess a;
	bool		exists;

	QdbCatalogBegin(&a);
	exists = name_taken(CStringGetTextDatum(name));
	QdbCatalogEnd(&a);
	return exists;
}

/* quantumdb.export(name) -> bytea: the safetensors blob as stored. */
Datum
quantumdb_export(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	CatalogRow	row;

	fetch_usable(name, CurrentMemoryContext, &row, NULL);
	PG_RETURN_BYTEA_P(row.model);
}

/* quantumdb.import(name, bytea): validates the blob fully, then stores it. */
Datum
quantumdb_import(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	bytea	   *blob = PG_GETARG_BYTEA_PP(1);
	QdbModel	m;

	QdbCheckCompressorName(name);
	QdbParseModel(blob, &m, CurrentMemoryContext, "the imported blob");
	QdbStoreCompressor(name, &m, "\"imported\": true", -1, -1, InvalidOid, NULL);
	PG_RETURN_VOID();
}

/*
 * After a drop: a WARNING naming the indexes whose options still name the
 * compressor.  They keep working on the copy in their pages, but pg_dump
 * writes them with that option, and their restore needs the row.
 */
static void
warn_named_by_indexes(const char *name)
{
	QdbCatalogAccess a;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	StringInfoData list;
	uint64		n = 0;
	int			rc;
	bool		partitioned = false;

	values[0] = CStringGetTextDatum(psprintf("compressor=%s", name));
	initStringInfo(&list);
	QdbCatalogBegin(&a);
	rc = SPI_execute_with_args("SELECT c.oid::pg_catalog.regclass::pg_catalog.text, "
							   "c.relkind OPERATOR(pg_catalog.=) 'I' FROM pg_catalog.pg_class c "
							   "JOIN pg_catalog.pg_am am ON am.oid OPERATOR(pg_catalog.=) c.relam "
							   "WHERE am.amname OPERATOR(pg_catalog.=) 'quantumdb' "
							   "AND $1 OPERATOR(pg_catalog.=) ANY (c.reloptions) ORDER BY 1",
							   1, argtypes, values, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_class: %s", SPI_result_code_string(rc));
	n = SPI_processed;
	for (uint64 i = 0; i < n && i < 10; i++)
		appendStringInfo(&list, "%s%s", i ? ", " : "",
						 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	for (uint64 i = 0; i < n; i++)
		if (strcmp(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2), "t") == 0)
			partitioned = true;
	QdbCatalogEnd(&a);
	if (n == 0)
		return;
	ereport(WARNING,
			(errmsg("compressor \"%s\" is still named by " UINT64_FORMAT " index%s: %s%s",
					name, n, n == 1 ? "" : "es", list.data, n > 10 ? ", ..." : ""),
			 errdetail("They keep working on their own copy of it, but what rebuilds them (REINDEX, VACUUM FULL, CLUSTER, a table rewrite, the restore of a dump, which writes WITH (compressor = %s)) takes it from the catalog by name, and fails without it.",
					   quote_literal_cstr(name)),
			 partitioned ?
			 errhint("ALTER INDEX ... RESET (compressor) on each (a rebuild then trains a new compressor from the table), or SET (compressor = ...) another. A partitioned index's option cannot be changed: every new partition of its table fails to build its index until a compressor of this name is back (train one again, or import an export of this one, under this name).") :
			 errhint("ALTER INDEX ... RESET (compressor) on each (a rebuild then trains a new compressor from the table), or SET (compressor = ...) another.")));
}

/*
 * quantumdb.drop_compressor(name, if_exists): for the compressor's owner
 * (and members of its role) and superusers.  A compressor the caller may
 * not even use is one that does not exist, as the catalog's row-level
 * security shows it; one it may use but does not own is an ERROR.  The
 * DELETE repeats the owner it checked, so a concurrent drop and re-create
 * by another owner cannot slip between the check and the delete, and a
 * caller who may not drop takes no row lock.
 */
Datum
quantumdb_drop_compressor(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	bool		if_exists = PG_GETARG_BOOL(1);
	Oid			argtypes[2] = {TEXTOID, OIDOID};
	Datum		values[2];
	QdbCatalogAccess a;
	CatalogRow	row;
	int			rc;
	bool		found,
				owns = false;
	uint64		deleted = 0;

	values[0] = CStringGetTextDatum(name);
	QdbCatalogBegin(&a);
	rc = SPI_execute_with_args("SELECT owner, source, source_column FROM quantumdb.compressors "
							   "WHERE name OPERATOR(pg_catalog.=) $1",
							   1, argtypes, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read compressor \"%s\": %s", name, SPI_result_code_string(rc));
	found = SPI_processed > 0;
	if (found)
	{
		read_row(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, &row);
		owns = has_privs_of_role(a.as.save_userid, row.owner);
	}
	if (owns)
	{
		values[1] = ObjectIdGetDatum(row.owner);
		rc = SPI_execute_with_args("DELETE FROM quantumdb.compressors "
								   "WHERE name OPERATOR(pg_catalog.=) $1 "
								   "AND owner::pg_catalog.oid OPERATOR(pg_catalog.=) $2",
								   2, argtypes, values, NULL, false, 0);
		if (rc != SPI_OK_DELETE)
			elog(ERROR, "could not delete compressor \"%s\": %s", name,
				 SPI_result_code_string(rc));
		deleted = SPI_processed;
	}
	QdbCatalogEnd(&a);
	if (found && !owns &&
		QdbMayUseCompressor(GetUserId(), row.owner, row.source,
							row.has_column ? NameStr(row.column) : NULL))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of compressor \"%s\"", name),
				 errdetail("Only its owner, members of its owner's role and superusers may drop a compressor."),
				 errhint("Ask a member of role %s to drop it.", role_name(row.owner))));
	if (deleted == 0 && !if_exists)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("compressor \"%s\" does not exist", name)));
	if (deleted == 0)
		ereport(NOTICE,
				(errmsg("compressor \"%s\" does not exist, skipping", name)));
	else
	{
		QdbCitusDropCompressor(name);
		warn_named_by_indexes(name);
	}
	PG_RETURN_BOOL(deleted > 0);
}

/* ERROR unless the current user may read source (column: its column, or NULL). */
static void
source_must_be_readable(Oid source, const char *column)
{
	if (!may_use(GetUserId(), InvalidOid, source, column, false))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("a compressor's source must be a table its writer may read"),
				 errdetail("Readers of the source table may use the compressors derived from it.")));
}

/*
 * quantumdb.check_compressor_row(model, kind, dimensions, metric, source,
 * source_column): for the catalog's INSERT and UPDATE policies, so that a
 * row written directly (not by train, import or autotune, which write as
 * the catalog's owner after their own checks) holds a model that parses,
 * says what that model is, and names as its source only a table the
 * writing role may read: else readers of that table would see, and could
 * use, a compressor that claims to come from it.  True, or an ERROR.
 */
Datum
quantumdb_check_compressor_row(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "quantumdb row check",
											  ALLOCSET_DEFAULT_SIZES);
	QdbModel	m;
	const char *kind;
	const char *metric;

	/* the NOT NULL constraints, checked after the policies, name the column */
	for (int i = 0; i < 4; i++)
		if (PG_ARGISNULL(i))
			PG_RETURN_BOOL(true);
	QdbParseModel(PG_GETARG_BYTEA_PP(0), &m, cxt, "the row's model");
	kind = text_to_cstring(PG_GETARG_TEXT_PP(1));
	metric = text_to_cstring(PG_GETARG_TEXT_PP(3));
	if (strcmp(kind, qdb_kind_name(m.kind)) != 0 || PG_GETARG_INT32(2) != m.dim ||
		strcmp(metric, qdb_metric_name(m.metric)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the row says kind %s, %d dimensions and metric %s, but its model is kind %s, %d dimensions and metric %s",
						kind, PG_GETARG_INT32(2), metric, qdb_kind_name(m.kind), m.dim,
						qdb_metric_name(m.metric)),
				 errhint("Load a model with quantumdb.import(), which fills these columns from it.")));
	/*
	 * The writer's right to read the source, as before session 54: a table
	 * with a foreign partition passes (a row trained from one before its
	 * release names it; a restore by a non-superuser must not fail the
	 * whole catalog's COPY on it), since no other role may use such a row.
	 *
	 * The source is locked first, until the writer's transaction ends, as
	 * train's read of it locks it: a DROP under way either has committed,
	 * and the source is found gone here, or waits for this row, which its
	 * sql_drop trigger then sees and clears.  Unlocked, a row written while
	 * a DROP's transaction was open kept the dropped table's OID (session
	 * 57's hunt, /work/runs/hunt-s57a.md F2), which pg_dump writes as a bare
	 * number for a restore to bind to whatever relation has it.
	 */
	if (!PG_ARGISNULL(4))
	{
		Oid			source = PG_GETARG_OID(4);
		const char *column = PG_ARGISNULL(5) ? NULL : NameStr(*PG_GETARG_NAME(5));

		/*
		 * The right first, then the lock, then both again: a writer that
		 * may not read the table must not queue on its lock (session 57's
		 * review R3)
		 */
		source_must_be_readable(source, column);
		LockRelationOid(source, AccessShareLock);
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(source)))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("a compressor's source table (OID %u) does not exist", source),
					 errhint("Write the row with source NULL, or name a table that exists.")));
		source_must_be_readable(source, column);
		/*
		 * and the column, which the lock keeps as it is now: a DROP COLUMN
		 * or RENAME waits for the row, and the event triggers then follow
		 * it (session 57's review R4: a column that never existed was kept,
		 * for the readers of a column of that name added later)
		 */
		if (column != NULL && get_attnum(source, column) == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of a compressor's source table %s does not exist",
							column, get_rel_name(source)),
					 errhint("Write the row with source_column NULL, or name a column of the table.")));
	}
	MemoryContextDelete(cxt);
	PG_RETURN_BOOL(true);
}

/*
 * quantumdb.may_use_compressor(owner, source, source_column): the rule, for
 * the catalog's row-level security policy.
 */
Datum
quantumdb_may_use_compressor(PG_FUNCTION_ARGS)
{
	Oid			owner = PG_ARGISNULL(0) ? InvalidOid : PG_GETARG_OID(0);
	Oid			source = PG_ARGISNULL(1) ? InvalidOid : PG_GETARG_OID(1);
	const char *column = PG_ARGISNULL(2) ? NULL : NameStr(*PG_GETARG_NAME(2));

	PG_RETURN_BOOL(QdbMayUseCompressor(GetUserId(), owner, source, column));
}
