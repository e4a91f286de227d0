/*
 * rename_follow.c
 *	  quantumdb.follow_renamed_columns(): the event trigger (ddl_command_end)
 *	  that makes a compressor's source_column follow a rename of its column.
 *
 * The rule of use reads the source column by name, so a row keeping the
 * old name would deny the column's readers, and a column added later under
 * that name would give its readers a model of the renamed column's rows.
 * The trigger matches rows on the old name the statement gives (a trigger
 * in SQL sees only the new one, and moved rows whose name no longer
 * existed onto whatever column was renamed next), in the renamed relation
 * and every relation the rename reaches: its inheritors and partitions,
 * and for ALTER TYPE ... RENAME ATTRIBUTE ... CASCADE the tables of that
 * type and theirs.  It writes as the catalog's owner (QdbCatalogBegin), as
 * train and drop_compressor do, so the rows of every owner follow.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"

#include "compressor.h"

PG_FUNCTION_INFO_V1(quantumdb_follow_renamed_columns);

Datum
quantumdb_follow_renamed_columns(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	RenameStmt *stmt;
	Oid			relid;
	Oid			argtypes[3] = {OIDOID, NAMEOID, NAMEOID};
	Datum		values[3];
	NameData	oldname,
				newname;
	QdbCatalogAccess a;
	int			rc;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("quantumdb.follow_renamed_columns() can only be called as an event trigger")));
	trigdata = (EventTriggerData *) fcinfo->context;
	if (trigdata->parsetree == NULL || !IsA(trigdata->parsetree, RenameStmt))
		PG_RETURN_NULL();
	stmt = (RenameStmt *) trigdata->parsetree;
	if ((stmt->renameType != OBJECT_COLUMN && stmt->renameType != OBJECT_ATTRIBUTE) ||
		stmt->relation == NULL || stmt->subname == NULL || stmt->newname == NULL)
		PG_RETURN_NULL();
	namestrcpy(&oldname, stmt->subname);
	namestrcpy(&newname, stmt->newname);
	QdbCatalogBegin(&a);

	/*
	 * The renamed relation as the command recorded it (the column's
	 * address), not its name looked up again: by now another relation of
	 * that name may come first on the search path.
	 */
	rc = SPI_execute("SELECT objid FROM pg_catalog.pg_event_trigger_ddl_commands() "
					 "WHERE classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass "
					 "AND objsubid OPERATOR(pg_catalog.>) 0", true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read the renamed relation: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
	{
		QdbCatalogEnd(&a);
		PG_RETURN_NULL();
	}
	{
		bool		isnull;

		relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
											   1, &isnull));
	}
	values[0] = ObjectIdGetDatum(relid);
	values[1] = NameGetDatum(&oldname);
	values[2] = NameGetDatum(&newname);
	rc = SPI_execute_with_args(
		"WITH RECURSIVE tree(relid) AS ("
		"  SELECT $1"
		"  UNION"
		"  SELECT c.oid FROM pg_catalog.pg_class c, pg_catalog.pg_class t"
		"  WHERE t.oid OPERATOR(pg_catalog.=) $1"
		"    AND t.relkind OPERATOR(pg_catalog.=) 'c'"
		"    AND c.reloftype OPERATOR(pg_catalog.=) t.reltype"
		"  UNION"
		"  SELECT i.inhrelid FROM pg_catalog.pg_inherits i, tree"
		"  WHERE i.inhparent OPERATOR(pg_catalog.=) tree.relid) "
		"UPDATE quantumdb.compressors c SET source_column = $3 "
		"WHERE c.source::pg_catalog.oid IN (SELECT relid FROM tree) "
		"  AND c.source_column OPERATOR(pg_catalog.=) $2",
		3, argtypes, values, NULL, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "could not follow the renamed column: %s", SPI_result_code_string(rc));
	QdbCatalogEnd(&a);
	PG_RETURN_NULL();
}
