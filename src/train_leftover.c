/*-------------------------------------------------------------------------
 *
 * train_leftover.c
 *	  What a REINDEX CONCURRENTLY of a quantumdb index leaves when it does
 *	  not finish: its copy (index_name_ccnew, not valid) or, after its swap,
 *	  the old index (index_name_ccold, not valid).  Such an index takes
 *	  every insert (or none, when its build stopped early) and serves no
 *	  query; while one is there no train worker trains the index
 *	  (train_worker.c), and VACUUM names it (index_vacuum.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "index.h"

/* Whether name ends with suffix, then digits or nothing. */
static bool
has_suffix(const char *name, const char *suffix)
{
	const char *at = NULL;
	const char *p;

	for (p = strstr(name, suffix); p != NULL; p = strstr(p + 1, suffix))
		at = p;
	if (at == NULL)
		return false;
	for (p = at + strlen(suffix); *p >= '0' && *p <= '9'; p++)
		;
	return *p == '\0';
}

/*
 * Whether name is what REINDEX CONCURRENTLY names index_name's copy:
 * index_name_ccnew, then digits when that was taken, index_name cut short
 * when the whole would pass NAMEDATALEN - 1 bytes (ChooseRelationName).
 */
static bool
is_copy_name(const char *name, const char *index_name)
{
	const char *suffix = NULL;
	const char *p;
	size_t		n;

	for (p = strstr(name, "_ccnew"); p != NULL; p = strstr(p + 1, "_ccnew"))
		suffix = p;
	if (suffix == NULL)
		return false;
	for (p = suffix + 6; *p >= '0' && *p <= '9'; p++)
		;
	if (*p != '\0')
		return false;
	n = suffix - name;
	if (strncmp(name, index_name, n) != 0 || n > strlen(index_name))
		return false;
	return n == strlen(index_name) || strlen(name) > NAMEDATALEN - 1 - MAX_MULTIBYTE_CHAR_LEN;
}

/* A pg_index column that may be null (indexprs, indpred) as text, or "". */
static char *
index_text_attr(HeapTuple tup, AttrNumber att)
{
	bool		isnull;
	Datum		d = SysCacheGetAttr(INDEXRELID, tup, att, &isnull);

	return isnull ? "" : TextDatumGetCString(d);
}

/* The access method of relation oid, InvalidOid if it is gone. */
static Oid
rel_am(Oid oid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(oid));
	Oid			am = InvalidOid;

	if (HeapTupleIsValid(tup))
	{
		am = ((Form_pg_class) GETSTRUCT(tup))->relam;
		ReleaseSysCache(tup);
	}
	return am;
}

/*
 * Whether indexes a and b index the same thing as a REINDEX CONCURRENTLY
 * copy does its index: access method, columns, operator classes,
 * collations, options per column, expressions and predicate (not the
 * storage options or tablespace, which ALTER INDEX changes for the index
 * but not for a copy left before).
 */
static bool
same_definition(Oid a, Oid b)
{
	HeapTuple	ta = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(a));
	HeapTuple	tb = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(b));
	bool		same = false;

	if (HeapTupleIsValid(ta) && HeapTupleIsValid(tb))
	{
		Form_pg_index fa = (Form_pg_index) GETSTRUCT(ta);
		Form_pg_index fb = (Form_pg_index) GETSTRUCT(tb);
		bool		isnull;
		oidvector  *ca = (oidvector *) DatumGetPointer(SysCacheGetAttr(INDEXRELID, ta, Anum_pg_index_indclass, &isnull));
		oidvector  *cb = (oidvector *) DatumGetPointer(SysCacheGetAttr(INDEXRELID, tb, Anum_pg_index_indclass, &isnull));
		oidvector  *la = (oidvector *) DatumGetPointer(SysCacheGetAttr(INDEXRELID, ta, Anum_pg_index_indcollation, &isnull));
		oidvector  *lb = (oidvector *) DatumGetPointer(SysCacheGetAttr(INDEXRELID, tb, Anum_pg_index_indcollation, &isnull));
		int2vector *oa = (int2vector *) DatumGetPointer(SysCacheGetAttr(INDEXRELID, ta, Anum_pg_index_indoption, &isnull));
		int2vector *ob = (int2vector *) DatumGetPointer(SysCacheGetAttr(INDEXRELID, tb, Anum_pg_index_indoption, &isnull));
		int			n = fa->indnatts;

		same = rel_am(a) == rel_am(b) &&
			n == fb->indnatts && fa->indnkeyatts == fb->indnkeyatts &&
			memcmp(fa->indkey.values, fb->indkey.values, n * sizeof(int16)) == 0 &&
			memcmp(ca->values, cb->values, fa->indnkeyatts * sizeof(Oid)) == 0 &&
			memcmp(la->values, lb->values, fa->indnkeyatts * sizeof(Oid)) == 0 &&
			memcmp(oa->values, ob->values, fa->indnkeyatts * sizeof(int16)) == 0 &&
			strcmp(index_text_attr(ta, Anum_pg_index_indexprs),
				   index_text_attr(tb, Anum_pg_index_indexprs)) == 0 &&
			strcmp(index_text_attr(ta, Anum_pg_index_indpred),
				   index_text_attr(tb, Anum_pg_index_indpred)) == 0;
	}
	if (HeapTupleIsValid(ta))
		ReleaseSysCache(ta);
	if (HeapTupleIsValid(tb))
		ReleaseSysCache(tb);
	return same;
}

/*
 * The indexes of heap named as a REINDEX CONCURRENTLY copy of the index
 * named name, leaving out those in skip (OIDs): only those not valid, or,
 * with any_state, valid ones too (a table rewrite, TRUNCATE or ALTER
 * COLUMN TYPE, rebuilds a copy left not valid and makes it valid); name
 * NULL: every index of heap, dead ones too.  With
 * like valid (that index's OID), a copy whose name was cut short (so it
 * could be another long name's) must also index what like does, as a copy
 * does.
 */
List *
QdbIndexCopiesOf(Relation heap, const char *name, Oid like, List *skip, bool any_state)
{
	List	   *found = NIL;
	Relation	pg_index = table_open(IndexRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	/*
	 * pg_index itself, not the relcache's list, which leaves out an index
	 * that a DROP INDEX CONCURRENTLY cut short left dead (not live)
	 */
	ScanKeyInit(&key, Anum_pg_index_indrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(RelationGetRelid(heap)));
	scan = systable_beginscan(pg_index, IndexIndrelidIndexId, true, NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_index f = (Form_pg_index) GETSTRUCT(tup);
		char	   *relname;

		if (list_member_oid(skip, f->indexrelid))
			continue;
		if (name == NULL)
		{
			found = lappend_oid(found, f->indexrelid);
			continue;
		}
		relname = get_rel_name(f->indexrelid);
		if (relname == NULL || !is_copy_name(relname, name))
			continue;
		if (OidIsValid(like) && strncmp(relname, name, strlen(name)) != 0 &&
			!same_definition(f->indexrelid, like))
			continue;
		if (any_state || !f->indisvalid)
			found = lappend_oid(found, f->indexrelid);
	}
	systable_endscan(scan);
	table_close(pg_index, AccessShareLock);
	return found;
}

/*
 * An index of index's table that a REINDEX CONCURRENTLY of it left after
 * its swap (the old index, named index_name_ccold, then digits when that
 * was taken), not valid: a kill, a server stop or a promotion between the
 * swap and its drop leaves it, taking every insert until it goes (session
 * 66's hunt, /work/runs/hunt-s66d.md F4).  InvalidOid if none.  Only a
 * name not cut short is matched (an index name of 57 bytes or more gets
 * a shortened one), and only an index defined as index is.
 */
static Oid
old_leftover(Relation heap, Relation index)
{
	List	   *all = QdbIndexCopiesOf(heap, NULL, InvalidOid, list_make1_oid(RelationGetRelid(index)), true);
	const char *name = RelationGetRelationName(index);
	size_t		n = strlen(name);
	ListCell   *lc;

	foreach(lc, all)
	{
		Oid			oid = lfirst_oid(lc);
		char	   *relname = get_rel_name(oid);
		HeapTuple	tup;
		bool		valid = true;

		if (relname == NULL || strncmp(relname, name, n) != 0 ||
			strncmp(relname + n, "_ccold", 6) != 0 ||
			strspn(relname + n + 6, "0123456789") != strlen(relname + n + 6))
			continue;
		tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(oid));
		if (HeapTupleIsValid(tup))
		{
			valid = ((Form_pg_index) GETSTRUCT(tup))->indisvalid;
			ReleaseSysCache(tup);
		}
		/* and indexing what index does: not a user's index named so (session 66's review S2) */
		if (!valid && same_definition(oid, RelationGetRelid(index)))
			return oid;
	}
	return InvalidOid;
}

/*
 * The OID of an index of index's table left by a REINDEX CONCURRENTLY of it
 * that did not finish (named as its copy, or as the old index after the
 * swap; not valid), InvalidOid if none:
 * no worker trains index while one is there (see the top).
 */
Oid
QdbTrainLeftover(Relation heap, Relation index)
{
	List	   *left = QdbIndexCopiesOf(heap, RelationGetRelationName(index), RelationGetRelid(index),
								 list_make1_oid(RelationGetRelid(index)), false);

	return left != NIL ? linitial_oid(left) : old_leftover(heap, index);
}

/*
 * What such a leftover costs, for a message: an index whose build got as
 * far as ready takes every insert; one stopped before (indisready off, a
 * worker killed while it built) takes none (session 62's hunt,
 * /work/runs/hunt-s62b.md F3: the message said it took every insert).
 */
const char *
QdbLeftoverCost(Oid leftover)
{
	HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(leftover));
	bool		ready = true;

	if (HeapTupleIsValid(tup))
	{
		ready = ((Form_pg_index) GETSTRUCT(tup))->indisready;
		ReleaseSysCache(tup);
	}
	/* a copy whose build stopped early, or an old index marked dead (session 66's review S1) */
	return ready ? "it serves no query and takes every insert" :
		"it serves no query and takes no insert";
}

/*
 * Whether name is what REINDEX CONCURRENTLY renames the index it replaced
 * to: a name ending in _ccold, then digits or nothing.
 */
bool
QdbOldIndexName(const char *name)
{
	return has_suffix(name, "_ccold");
}
