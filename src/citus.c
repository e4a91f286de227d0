/*
 * citus.c
 *	  Compressors on every node of a Citus cluster, without linking Citus.
 *
 * A shard's index is built on the worker that holds the shard, from the
 * CREATE INDEX text the coordinator sends, so a compressor it names must be
 * in that worker's quantumdb.compressors.  On a Citus coordinator (the
 * citus extension present and loaded, this node's group 0, active primary
 * workers), every change of the catalog is therefore sent to the workers
 * in the same transaction, which Citus commits on every node with
 * two-phase commit: a stored compressor (training, import, autotune's
 * kept trial) as a call of quantumdb.replicate_compressor with its row, a
 * drop as quantumdb.drop_compressor.  A node that lacks a compressor (one
 * added since it was trained) gets it three ways: CREATE INDEX on a Citus
 * table copies the compressor it names to the workers that lack it; an
 * index Citus builds on a worker (citus_add_node's shell tables, a shard
 * moved or distributed there) copies it from the coordinator first
 * (QdbCitusBuildEmpty); quantumdb.citus_sync_compressors() copies every
 * one.  An index of a shell table that still cannot have it builds empty;
 * a shard's index never builds without it.
 *
 * The transactional commands go through Citus's own
 * SendCommandToWorkersWithMetadata, found by name in its library when it
 * is needed, so quantumdb neither links against Citus nor needs it
 * installed.  They run on each worker as the current user, and the worker
 * checks them as it checks a local call.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "parser/parser.h"
#include "utils/resowner.h"
#include "postmaster/postmaster.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/varlena.h"
#include "lib/stringinfo.h"
#include "storage/bufmgr.h"

#include "compressor.h"

PG_FUNCTION_INFO_V1(quantumdb_replicate_compressor);
PG_FUNCTION_INFO_V1(quantumdb_citus_sync_compressors);
PG_FUNCTION_INFO_V1(quantumdb_citus_replica_command);

typedef void (*SendToWorkersFn) (const char *command);

/* One SQL query's first column of its first row as an int8; -1 if none. */
static int64
spi_int8(const char *query)
{
	int64		v = -1;
	bool		isnull;

	SPI_connect();
	if (SPI_execute(query, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", query);
	if (SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
									  &isnull);

		if (!isnull)
			v = DatumGetInt64(d);
	}
	SPI_finish();
	return v;
}

/*
 * Whether this node is a Citus coordinator with workers: the citus
 * extension is created in this database and its library is loaded (its
 * settings exist), this node's group is 0 and an active primary worker is
 * in pg_dist_node.
 */
static bool
QdbCitusCoordinator(void)
{
	if (!OidIsValid(get_extension_oid("citus", true)))
		return false;
	if (GetConfigOption("citus.node_conninfo", true, false) == NULL)
		return false;
	if (spi_int8("SELECT groupid::pg_catalog.int8 FROM pg_catalog.pg_dist_local_group") != 0)
		return false;
	return spi_int8("SELECT pg_catalog.count(*) FROM pg_catalog.pg_dist_node "
					"WHERE groupid OPERATOR(pg_catalog.<>) 0 AND isactive "
					"AND noderole OPERATOR(pg_catalog.=) 'primary'") > 0;
}

/* Sends command to every worker, in this transaction, as the current user. */
static void
send_to_workers(const char *command)
{
	static SendToWorkersFn send_fn = NULL;

	if (send_fn == NULL)
		send_fn = (SendToWorkersFn)
			load_external_function("citus", "SendCommandToWorkersWithMetadata", true, NULL);
	send_fn(command);
}

/*
 * Names of the compressors this transaction sent to the workers (their
 * copies there are uncommitted, on the session's own connections).
 */
static List *sent_names = NIL;
static LocalTransactionId sent_lxid = InvalidLocalTransactionId;

static void
remember_sent(const char *name)
{
	MemoryContext old;

	if (sent_lxid != MyProc->lxid)
	{
		sent_names = NIL;		/* the last transaction's, freed with it */
		sent_lxid = MyProc->lxid;
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	sent_names = lappend(sent_names, pstrdup(name));
	MemoryContextSwitchTo(old);
}

static bool
sent_before(const char *name)
{
	ListCell   *lc;

	if (sent_lxid != MyProc->lxid)
		return false;
	foreach(lc, sent_names)
		if (strcmp(lfirst(lc), name) == 0)
			return true;
	return false;
}

/*
 * The command that makes compressor name's row on a worker, or NULL when
 * there is no such row; in the caller's memory context.  With check_user,
 * an ERROR unless that role may use the row read.  The source table
 * travels as its qualified name (a distributed table has the same name on
 * every node), the creation time in UTC.
 */
static char *
replica_command(const char *name, bool *ours, Oid check_user)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	QdbCatalogAccess a;
	char	   *command = NULL;
	bool		denied = false;

	/* the source only for a Citus table (none where Citus is not) */
	const char *source = OidIsValid(get_extension_oid("citus", true)) ?
		"CASE WHEN NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p "
		"WHERE p.logicalrelid::pg_catalog.oid OPERATOR(pg_catalog.=) r.oid) THEN NULL "
		"ELSE pg_catalog.format('%I.%I', n.nspname, r.relname) END" : "NULL";
	StringInfoData q;

	initStringInfo(&q);
	appendStringInfoString(&q,
						   "SELECT pg_catalog.format('SELECT quantumdb.replicate_compressor(%L, "
						   "%L::pg_catalog.bytea, %L::pg_catalog.jsonb, %L::pg_catalog.timestamptz, "
						   "%L::pg_catalog.float8, %L::pg_catalog.float8, %L::pg_catalog.regrole, "
						   "%L, %L::pg_catalog.name)', c.name, c.model, c.settings, "
						   "pg_catalog.to_char(c.created_at AT TIME ZONE 'UTC', "
						   "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
						   "c.training_seconds, c.validation_recall, c.owner, ");
	appendStringInfoString(&q, source);
	appendStringInfoString(&q,
						   ", c.source_column), c.xmin, c.owner::pg_catalog.oid, "
						   "c.source::pg_catalog.oid, c.source_column "
						   "FROM quantumdb.compressors c "
						   "LEFT JOIN pg_catalog.pg_class r "
						   "ON r.oid OPERATOR(pg_catalog.=) c.source::pg_catalog.oid "
						   "LEFT JOIN pg_catalog.pg_namespace n "
						   "ON n.oid OPERATOR(pg_catalog.=) r.relnamespace "
						   "WHERE c.name OPERATOR(pg_catalog.=) $1 AND EXISTS (SELECT 1 "
						   "FROM pg_catalog.pg_roles o "
						   "WHERE o.oid OPERATOR(pg_catalog.=) c.owner::pg_catalog.oid)");
	values[0] = CStringGetTextDatum(name);
	QdbCatalogBegin(&a);
	if (SPI_execute_with_args(q.data, 1, argtypes, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read compressor \"%s\"", name);
	if (SPI_processed == 1)
	{
		HeapTuple	t = SPI_tuptable->vals[0];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		xmin = SPI_getbinval(t, d, 2, &isnull);
		Datum		owner = SPI_getbinval(t, d, 3, &isnull);
		Datum		source = SPI_getbinval(t, d, 4, &isnull);
		char	   *column = SPI_getvalue(t, d, 5);

		if (source == (Datum) 0 || isnull)
			source = ObjectIdGetDatum(InvalidOid);
		/* checked on the row the command is made of, as the caller */
		if (OidIsValid(check_user) &&
			!QdbMayUseCompressor(check_user, DatumGetObjectId(owner),
								 DatumGetObjectId(source), column))
			denied = true;
		else
			command = MemoryContextStrdup(cxt, SPI_getvalue(t, d, 1));
		if (ours)
			*ours = TransactionIdIsCurrentTransactionId(DatumGetTransactionId(xmin));
	}
	QdbCatalogEnd(&a);
	if (denied)
	{
		QdbCheckMayUseCompressor(name);	/* the usual ERROR */
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for compressor \"%s\"", name)));
	}
	return command;
}

/*
 * On a Citus coordinator, makes compressor name's row on every worker that
 * lacks it, in this transaction; elsewhere nothing.
 */
void
QdbCitusReplicateCompressor(const char *name)
{
	char	   *command;

	if (!QdbCitusCoordinator())
		return;
	command = replica_command(name, NULL, InvalidOid);
	if (command != NULL)
	{
		send_to_workers(command);
		remember_sent(name);
	}
}

/* On a Citus coordinator, drops compressor name on every worker too. */
void
QdbCitusDropCompressor(const char *name)
{
	if (!QdbCitusCoordinator())
		return;
	send_to_workers(psprintf("SELECT quantumdb.drop_compressor(%s, true)",
							 quote_literal_cstr(name)));
}

/* Whether relid is a table Citus manages on this node (pg_dist_partition). */
static bool
citus_table(Oid relid)
{
	if (!OidIsValid(get_extension_oid("citus", true)))
		return false;
	return spi_int8(psprintf("SELECT pg_catalog.count(*) FROM pg_catalog.pg_dist_partition "
							 "WHERE logicalrelid::pg_catalog.oid OPERATOR(pg_catalog.=) %u",
							 relid)) > 0;
}

/*
 * Whether heap is a table Citus distributes from this coordinator (a
 * distributed or reference table's shell): its shards' indexes are built
 * on the workers, each from its own rows.
 */
bool
QdbCitusTable(Relation heap)
{
	return QdbCitusCoordinator() && citus_table(RelationGetRelid(heap));
}

/*
 * Runs command on every worker in its own transaction, committed at once
 * (Citus's run_command_on_workers); ERROR with a worker's message if it
 * failed there.
 */
static void
run_on_workers_now(const char *command)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];

	values[0] = CStringGetTextDatum(command);
	SPI_connect();
	if (SPI_execute_with_args("SELECT nodename OPERATOR(pg_catalog.||) ':' "
							  "OPERATOR(pg_catalog.||) nodeport, result "
							  "FROM pg_catalog.run_command_on_workers($1) WHERE NOT success",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "run_command_on_workers failed");
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not copy a compressor to worker %s",
						SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1)),
				 errdetail("%s", SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2))));
	SPI_finish();
}

/*
 * CREATE INDEX naming compressor; nothing unless heap is a Citus table and
 * this its coordinator (before Citus sends the shards' CREATE INDEX to the workers): makes sure
 * every worker has the compressor, which a node added since it was trained
 * lacks.  The shards' indexes are built by the session's user over several
 * connections per worker (Citus's parallel mode), which see only what is
 * committed there, while this runs as the table's owner (PostgreSQL's
 * index build switches to it) and a GUC set here does not outlive the
 * build.  So:
 * - a compressor committed here, and not sent by this transaction, is
 *   copied to the workers that lack it at once, each in its own committed
 *   transaction (a copy of a committed row; kept if the CREATE INDEX then
 *   fails); a worker that has it does nothing;
 * - one created or sent by this transaction is on the workers already, but
 *   uncommitted, on the session's connection to each: in sequential mode
 *   (SET LOCAL citus.multi_shard_modify_mode = 'sequential' before
 *   anything else in the transaction) the shards' commands use that
 *   connection; in parallel mode they cannot see it, which is an ERROR
 *   here, with that hint, rather than on the workers.
 */
void
QdbCitusBeforeShardIndexes(Relation heap, const char *compressor)
{
	bool		ours = false;
	char	   *command;
	const char *mode;

	if (!QdbCitusTable(heap))
		return;
	command = replica_command(compressor, &ours, InvalidOid);
	if (command == NULL)
		return;
	if (!ours && !sent_before(compressor))
	{
		run_on_workers_now(command);
		return;
	}
	mode = GetConfigOption("citus.multi_shard_modify_mode", true, false);
	if (mode == NULL || strcmp(mode, "sequential") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("compressor \"%s\" was created or copied to the workers in this transaction, and the shards' indexes are built on other connections, which cannot see it",
						compressor),
				 errhint("Commit the training, import or sync first, or begin the transaction with SET LOCAL citus.multi_shard_modify_mode = 'sequential'.")));
}

/*
 * Runs command on the node named host:port over a connection of its own
 * (Citus's master_run_on_worker), in its own transaction; its one result,
 * or NULL when it failed or returned NULL or nothing.
 */
static char *
run_on_node(Datum host, Datum port, const char *command)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			argtypes[3] = {TEXTOID, INT4OID, TEXTOID};
	Datum		values[3];
	char	   *result = NULL;

	values[0] = host;
	values[1] = port;
	values[2] = CStringGetTextDatum(command);
	SPI_connect();
	if (SPI_execute_with_args("SELECT result FROM pg_catalog.master_run_on_worker("
							  "ARRAY[$1], ARRAY[$2], ARRAY[$3], false) WHERE success",
							  3, argtypes, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "master_run_on_worker failed");
	if (SPI_processed == 1)
	{
		char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (v != NULL && v[0] != '\0')
			result = MemoryContextStrdup(cxt, v);
	}
	SPI_finish();
	return result;
}

/* Whether command is one statement calling quantumdb.replicate_compressor. */
static bool
one_replicate_call(const char *command)
{
	const char *prefix = "SELECT quantumdb.replicate_compressor(";

	return strncmp(command, prefix, strlen(prefix)) == 0 &&
		list_length(raw_parser(command, RAW_PARSE_DEFAULT)) == 1;
}

/* Whether this transaction created the quantumdb extension on this node. */
static bool
extension_is_ours(void)
{
	bool		ours = false;
	bool		isnull;

	SPI_connect();
	if (SPI_execute("SELECT xmin FROM pg_catalog.pg_extension "
					"WHERE extname OPERATOR(pg_catalog.=) 'quantumdb'", false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_extension");
	if (SPI_processed == 1)
		ours = TransactionIdIsCurrentTransactionId(
			DatumGetTransactionId(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 1, &isnull)));
	SPI_finish();
	return ours;
}

/* Runs command in a subtransaction; an ERROR in it becomes a DEBUG1 line. */
static void
copy_in_subtransaction(const char *command)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	PG_TRY();
	{
		SPI_connect();
		if (SPI_execute(command, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "SPI_execute failed");
		SPI_finish();
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(cxt);
		e = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		ereport(DEBUG1,
				(errmsg("could not copy a compressor from the coordinator: %s", e->message)));
		FreeErrorData(e);
	}
	PG_END_TRY();
}

/*
 * On a worker, copies compressor name from the coordinator into this node's
 * catalog: asks the coordinator (pg_dist_node's group 0) for the row as a
 * replicate_compressor call (citus_replica_command; the row there is
 * committed) and runs that call on this node over a connection of its own
 * (citus.local_hostname and this server's port, as Citus reaches itself),
 * committed at once: Citus builds several shard indexes of one node in
 * parallel, in one distributed transaction, and copies made in it would
 * wait on each other.  A copy of a committed row, it stays if the build
 * fails.  The coordinator's answer must be one replicate_compressor call.
 * True when the compressor is then here.
 */
static bool
pull_from_coordinator(const char *name)
{
	MemoryContext cxt = CurrentMemoryContext;
	const char *guc = GetConfigOption("citus.local_hostname", true, false);
	char	   *self = guc ? pstrdup(guc) : NULL;
	char	   *command = NULL;
	bool		isnull;
	Datum		host = (Datum) 0,
				port = (Datum) 0;

	SPI_connect();
	if (SPI_execute("SELECT nodename, nodeport FROM pg_catalog.pg_dist_node "
					"WHERE groupid OPERATOR(pg_catalog.=) 0 AND isactive "
					"AND noderole OPERATOR(pg_catalog.=) 'primary'", true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_dist_node");
	if (SPI_processed == 1)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		host = CStringGetTextDatum(SPI_getvalue(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 1));
		port = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	if (host == (Datum) 0)
		return false;
	command = run_on_node(host, port,
						  psprintf("SELECT quantumdb.citus_replica_command(%s)",
								   quote_literal_cstr(name)));
	if (command == NULL || !one_replicate_call(command))
		return false;

	/*
	 * Over a connection of its own, which waits at most lock_timeout on a
	 * copy another connection has not committed; not where this
	 * transaction's snapshot would not see what it commits.
	 */
	if (self != NULL && !IsolationUsesXactSnapshot())
		(void) run_on_node(CStringGetTextDatum(self), Int32GetDatum(PostPortNumber),
						   psprintf("SET lock_timeout = '10s'; %s", command));
	if (QdbCompressorExists(name))
		return true;

	/*
	 * In this transaction: while this node's quantumdb is not committed
	 * (citus_add_node replays CREATE EXTENSION and the shell tables in one
	 * transaction, on one connection, where nothing else copies), or under
	 * a transaction snapshot.  In a subtransaction: a copy that fails
	 * (privileges) is a copy not made, not the end of the build.
	 */
	if (extension_is_ours() || IsolationUsesXactSnapshot())
		copy_in_subtransaction(command);
	return QdbCompressorExists(name);
}

/* Whether a table's name is a Citus shard's: its table's name, "_", digits. */
static bool
shard_like_name(Relation heap)
{
	const char *n = RelationGetRelationName(heap);
	const char *u = strrchr(n, '_');

	if (u == NULL || u[1] == '\0')
		return false;
	for (const char *c = u + 1; *c; c++)
		if (*c < '0' || *c > '9')
			return false;
	return true;
}

/*
 * An index naming compressor, built by Citus on this node (its own
 * connections name themselves "citus_internal ..."), where the compressor
 * is missing: a shard moved or distributed to a node added since the
 * compressor was trained, or the shell tables that citus_add_node replays
 * on a new node.  The compressor is copied from the coordinator first, and
 * the build goes on with it (false).  Where that fails (no coordinator in
 * this node's metadata yet, as during parts of citus_add_node), an index
 * on an empty table whose name is not a shard's, a shell table's, builds
 * empty, without a compressor (true; no query reads a shell table's index
 * on a worker), and a shard's index (a shard-like name, or rows) is an
 * ERROR that says how to copy the compressor there, never an index built
 * without it.  False as well when this is not Citus's build or the
 * compressor is here.
 */
bool
QdbCitusBuildEmpty(Relation heap, const char *compressor)
{
	const char *app = GetConfigOption("application_name", true, false);

	/*
	 * Any user may set application_name: without the citus extension it
	 * names no Citus build (session 57's security hunt, F3: it let an
	 * index on an empty table name a compressor that does not exist)
	 */
	if (app == NULL || strncmp(app, "citus_internal", strlen("citus_internal")) != 0 ||
		!OidIsValid(get_extension_oid("citus", true)))
		return false;
	if (QdbCompressorExists(compressor))
		return false;
	if (pull_from_coordinator(compressor))
		return false;
	if (shard_like_name(heap) || RelationGetNumberOfBlocks(heap) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("compressor \"%s\" does not exist on this node", compressor),
				 errdetail("Citus is building the index of %s here, and the compressor could not be copied from the coordinator.",
						   RelationGetRelationName(heap)),
				 errhint("Run SELECT quantumdb.citus_sync_compressors() on the coordinator, then try again.")));
	return true;
}

/*
 * The model bytes (and owner, and source: InvalidOid for none) of
 * compressor name on this node, or NULL.
 */
static bytea *
local_model(const char *name, Oid *owner, Oid *source)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	QdbCatalogAccess a;
	bytea	   *model = NULL;
	bool		isnull;

	values[0] = CStringGetTextDatum(name);
	QdbCatalogBegin(&a);
	if (SPI_execute_with_args("SELECT model, owner::pg_catalog.oid, source::pg_catalog.oid "
							  "FROM quantumdb.compressors "
							  "WHERE name OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read compressor \"%s\"", name);
	if (SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
									  &isnull);

		if (!isnull)
		{
			MemoryContext old = MemoryContextSwitchTo(cxt);

			model = DatumGetByteaPCopy(d);
			MemoryContextSwitchTo(old);
		}
		*owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 2, &isnull));
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
		*source = isnull ? InvalidOid : DatumGetObjectId(d);
	}
	QdbCatalogEnd(&a);
	return model;
}

/*
 * Sets the source of compressor name, which has none, to relid and column
 * (NULL: none), the two together: a row keeps no column without its
 * table (replicate_compressor; session 66's review,
 * /work/runs/review-s66.md R3).
 */
static void
set_source(const char *name, Oid relid, const char *column)
{
	Oid			argtypes[3] = {TEXTOID, OIDOID, NAMEOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', column ? ' ' : 'n'};
	QdbCatalogAccess a;

	values[0] = CStringGetTextDatum(name);
	values[1] = ObjectIdGetDatum(relid);
	values[2] = column ? DirectFunctionCall1(namein, CStringGetDatum(column)) : (Datum) 0;
	QdbCatalogBegin(&a);
	if (SPI_execute_with_args("UPDATE quantumdb.compressors "
							  "SET source = $2::pg_catalog.regclass, source_column = $3 "
							  "WHERE name OPERATOR(pg_catalog.=) $1 AND source IS NULL",
							  3, argtypes, values, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not set the source of compressor \"%s\"", name);
	QdbCatalogEnd(&a);
}

static bool
same_bytes(const bytea *a, const bytea *b)
{
	return VARSIZE_ANY_EXHDR(a) == VARSIZE_ANY_EXHDR(b) &&
		memcmp(VARDATA_ANY(a), VARDATA_ANY(b), VARSIZE_ANY_EXHDR(a)) == 0;
}

/*
 * The source table a copied row names, as a source on this node: only a
 * table Citus manages here (the distributed table the coordinator trained
 * on, whose shell has the same name on every node), and only one the caller
 * may read (USAGE on its schema, SELECT on it or the column) and is not
 * subject to row-level security on; else none,
 * so that its owner alone may use the copy.  A same-named local table of
 * this node is never taken for it.
 */
static Oid
source_here(text *qualified, const char *column)
{
	Oid			relid;
	Oid			nsp;
	AttrNumber	attnum;

	relid = RangeVarGetRelid(makeRangeVarFromNameList(textToQualifiedNameList(qualified)),
							 NoLock, true);
	if (!OidIsValid(relid) || !citus_table(relid))
		return InvalidOid;
	nsp = get_rel_namespace(relid);
	if (pg_namespace_aclcheck(nsp, GetUserId(), ACL_USAGE) != ACLCHECK_OK)
		return InvalidOid;
	/*
	 * Nor for a caller that row-level security applies to: as for a row
	 * written into the catalog directly, its model may come from rows the
	 * policies hide from it, or from anywhere (session 54's hunt)
	 */
	if (check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED)
		return InvalidOid;
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) == ACLCHECK_OK)
		return relid;
	if (column == NULL)
		return InvalidOid;
	attnum = get_attnum(relid, column);
	if (attnum != InvalidAttrNumber &&
		pg_attribute_aclcheck(relid, attnum, GetUserId(), ACL_SELECT) == ACLCHECK_OK)
		return relid;
	return InvalidOid;
}

/*
 * quantumdb.replicate_compressor(name, model, settings, created_at,
 * training_seconds, validation_recall, owner, source, source_column):
 * what a Citus coordinator sends a worker so that the worker's catalog
 * holds the coordinator's row.  False when the same model of the same
 * owner is already there under that name (nothing to check: the caller
 * holds the bytes); otherwise the caller needs the privileges of the owner
 * (as the trainer on the coordinator has) and INSERT on the catalog, and
 * then another row under the name is an ERROR, and the row is made (true).
 * Its source is kept only as source_here() allows.
 */
Datum
quantumdb_replicate_compressor(PG_FUNCTION_ARGS)
{
	char	   *name;
	bytea	   *blob;
	bytea	   *have;
	Oid			owner;
	Oid			have_owner = InvalidOid;
	Oid			have_source = InvalidOid;
	QdbCompressorRow r;
	QdbModel	m;

	for (int i = 0; i < 4; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("name, model, settings and created_at must not be NULL")));
	if (PG_ARGISNULL(6))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("owner must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	blob = PG_GETARG_BYTEA_P(1);
	owner = PG_GETARG_OID(6);
	QdbCheckCompressorName(name);

	/* the same row is here already (its bytes are the caller's): done */
	have = local_model(name, &have_owner, &have_source);
	if (have != NULL && have_owner == owner && same_bytes(have, blob))
	{
		/*
		 * A copy made while citus_add_node ran has no source (its shell was
		 * not a Citus table yet): the owner's later copy gives it one.
		 */
		if (!OidIsValid(have_source) && !PG_ARGISNULL(7) &&
			has_privs_of_role(GetUserId(), owner))
		{
			const char *column = PG_ARGISNULL(8) ? NULL : NameStr(*PG_GETARG_NAME(8));
			Oid			source = source_here(PG_GETARG_TEXT_PP(7), column);

			if (OidIsValid(source))
				set_source(name, source, column);
		}
		PG_RETURN_BOOL(false);
	}

	if (!has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to copy compressor \"%s\"", name),
				 errdetail("Only its owner, members of its owner's role and superusers may copy it to another node."),
				 errhint("Run quantumdb.citus_sync_compressors() on the coordinator as a member of role %s.",
						 quote_identifier(GetUserNameFromId(owner, false)))));
	QdbCheckTableInsert("compressors", "Copying a compressor to this node stores it there.");
	if (have != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("compressor \"%s\" already exists on this node with another model or owner", name),
				 errhint("Drop it on this node with quantumdb.drop_compressor(), then copy the coordinator's again with quantumdb.citus_sync_compressors() there.")));

	memset(&r, 0, sizeof(r));
	r.name = name;
	r.blob = blob;
	r.owner = owner;
	QdbParseModel(blob, &m, CurrentMemoryContext, "the copied model");
	r.model = &m;
	r.settings = DatumGetCString(DirectFunctionCall1(jsonb_out, PG_GETARG_DATUM(2)));
	r.has_created_at = true;
	r.created_at = PG_GETARG_TIMESTAMPTZ(3);
	r.training_seconds = PG_ARGISNULL(4) ? -1 : PG_GETARG_FLOAT8(4);
	r.validation_recall = PG_ARGISNULL(5) ? -1 : PG_GETARG_FLOAT8(5);
	r.column = PG_ARGISNULL(8) ? NULL : pstrdup(NameStr(*PG_GETARG_NAME(8)));
	if (!PG_ARGISNULL(7))
		r.source = source_here(PG_GETARG_TEXT_PP(7), r.column);
	/* a column without its table is a row no trigger leaves (session 66's hunt F7) */
	if (!OidIsValid(r.source))
		r.column = NULL;
	if (!QdbInsertCompressorRow(&r))
		QdbCompressorNameTaken(name);
	PG_RETURN_BOOL(true);
}

/*
 * quantumdb.citus_sync_compressors() -> integer: on a Citus coordinator,
 * sends every compressor the caller owns (every one, for a superuser) to
 * every worker that lacks it; the number sent.  For a node added after
 * the compressors were trained, before shards move to it.
 */
Datum
quantumdb_citus_sync_compressors(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = CurrentMemoryContext;
	List	   *names = NIL;
	ListCell   *lc;
	QdbCatalogAccess a;
	Oid			user = GetUserId();
	int			sent = 0;

	if (!QdbCitusCoordinator())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("this node is not a Citus coordinator with workers"),
				 errhint("Run it on the coordinator, in a database with the citus extension and at least one worker.")));
	QdbCatalogBegin(&a);
	if (SPI_execute("SELECT name, owner::pg_catalog.oid FROM quantumdb.compressors ORDER BY name",
					false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read quantumdb.compressors");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Oid			owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
														   SPI_tuptable->tupdesc, 2,
														   &isnull));

		if (has_privs_of_role(user, owner))
		{
			MemoryContext old = MemoryContextSwitchTo(cxt);

			names = lappend(names, pstrdup(SPI_getvalue(SPI_tuptable->vals[i],
														SPI_tuptable->tupdesc, 1)));
			MemoryContextSwitchTo(old);
		}
	}
	QdbCatalogEnd(&a);
	foreach(lc, names)
	{
		char	   *command = replica_command(lfirst(lc), NULL, InvalidOid);

		if (command != NULL)
		{
			send_to_workers(command);
			remember_sent(lfirst(lc));
			sent++;
		}
	}
	PG_RETURN_INT32(sent);
}

/*
 * quantumdb.citus_replica_command(name) -> text: the replicate_compressor
 * call that makes compressor name's row on another node (NULL if it has
 * none to send: no such compressor, or its owner was dropped), for a worker
 * that pulls it (pull_from_coordinator).  It holds the model, so it needs
 * what quantumdb.export needs: the right to use the compressor.
 */
Datum
quantumdb_citus_replica_command(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *command;

	command = replica_command(name, NULL, GetUserId());
	if (command == NULL)
	{
		QdbCheckMayUseCompressor(name);	/* the usual ERROR when missing */
		PG_RETURN_NULL();		/* its owner was dropped */
	}
	PG_RETURN_TEXT_P(cstring_to_text(command));
}
