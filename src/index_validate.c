/*
 * index_validate.c
 *	  amvalidate: checks an operator class of the quantumdb access method.
 *
 * A valid class has one ordering operator (strategy 1, t x t -> float8
 * for t real[] or pgvector's vector or halfvec, sorted by float8's btree
 * family), the exact distance function (support 1) and the metric function
 * (support 2), and nothing else.
 */
#include "postgres.h"

#include "access/amvalidate.h"
#include "access/htup_details.h"
#include "catalog/pg_amop.h"
#include "catalog/pg_amproc.h"
#include "catalog/pg_opclass.h"
#include "catalog/pg_opfamily.h"
#include "catalog/pg_type.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "index.h"

static bool
report(const char *opfamilyname, const char *what)
{
	ereport(INFO,
			(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
			 errmsg("quantumdb operator family \"%s\" %s", opfamilyname, what)));
	return false;
}

static char *
opfamily_name(Oid opfamilyoid)
{
	HeapTuple	tup = SearchSysCache1(OPFAMILYOID, ObjectIdGetDatum(opfamilyoid));
	char	   *name;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for operator family %u", opfamilyoid);
	name = pstrdup(NameStr(((Form_pg_opfamily) GETSTRUCT(tup))->opfname));
	ReleaseSysCache(tup);
	return name;
}

bool
qdbvalidate(Oid opclassoid)
{
	bool		result = true;
	HeapTuple	classtup;
	Form_pg_opclass classform;
	Oid			opfamilyoid;
	Oid			opcintype;
	char	   *opfamilyname;
	CatCList   *proclist,
			   *oprlist;
	bool		have_proc[QDB_NPROC + 1] = {0};
	int			nordering = 0;
	int			i;

	classtup = SearchSysCache1(CLAOID, ObjectIdGetDatum(opclassoid));
	if (!HeapTupleIsValid(classtup))
		elog(ERROR, "cache lookup failed for operator class %u", opclassoid);
	classform = (Form_pg_opclass) GETSTRUCT(classtup);
	opfamilyoid = classform->opcfamily;
	opcintype = classform->opcintype;
	opfamilyname = opfamily_name(opfamilyoid);

	if (QdbVecTypeOf(opcintype) == QDB_VEC_NONE)
		result = report(opfamilyname, "indexes a type other than real[], vector or halfvec");

	proclist = SearchSysCacheList1(AMPROCNUM, ObjectIdGetDatum(opfamilyoid));
	for (i = 0; i < proclist->n_members; i++)
	{
		Form_pg_amproc procform = (Form_pg_amproc) GETSTRUCT(&proclist->members[i]->tuple);
		bool		ok = true;

		if (procform->amproclefttype != opcintype || procform->amprocrighttype != opcintype)
		{
			result = report(opfamilyname, "has a support function for other types");
			continue;
		}
		switch (procform->amprocnum)
		{
			case QDB_DISTANCE_PROC:
				ok = check_amproc_signature(procform->amproc, FLOAT8OID, true,
											2, 2, opcintype, opcintype);
				break;
			case QDB_METRIC_PROC:
				ok = check_amproc_signature(procform->amproc, INTERNALOID, true,
											1, 1, INTERNALOID);
				break;
			default:
				result = report(opfamilyname, "has a support function with an invalid number");
				continue;
		}
		if (!ok)
			result = report(opfamilyname,
							psprintf("has support function %s with a wrong signature",
									 format_procedure(procform->amproc)));
		have_proc[procform->amprocnum] = true;
	}

	oprlist = SearchSysCacheList1(AMOPSTRATEGY, ObjectIdGetDatum(opfamilyoid));
	for (i = 0; i < oprlist->n_members; i++)
	{
		Form_pg_amop oprform = (Form_pg_amop) GETSTRUCT(&oprlist->members[i]->tuple);

		if (oprform->amopstrategy != 1)
			result = report(opfamilyname,
							psprintf("has operator %s with an invalid strategy number %d",
									 format_operator(oprform->amopopr),
									 oprform->amopstrategy));
		else if (oprform->amoppurpose != AMOP_ORDER)
			result = report(opfamilyname,
							psprintf("has operator %s as a search operator; only ordering is supported",
									 format_operator(oprform->amopopr)));
		else if (!opfamily_can_sort_type(oprform->amopsortfamily, FLOAT8OID))
			result = report(opfamilyname,
							psprintf("has ordering operator %s with a sort family that cannot sort float8",
									 format_operator(oprform->amopopr)));
		else if (!check_amop_signature(oprform->amopopr, FLOAT8OID,
									   oprform->amoplefttype, oprform->amoprighttype) ||
				 oprform->amoplefttype != opcintype || oprform->amoprighttype != opcintype)
			result = report(opfamilyname,
							psprintf("has operator %s with a wrong signature",
									 format_operator(oprform->amopopr)));
		else
			nordering++;
	}

	for (i = 1; i <= QDB_NPROC; i++)
		if (!have_proc[i])
			result = report(opfamilyname, psprintf("lacks support function %d", i));
	if (nordering != 1)
		result = report(opfamilyname, "needs exactly one ordering operator");

	ReleaseCatCacheList(proclist);
	ReleaseCatCacheList(oprlist);
	ReleaseSysCache(classtup);
	return result;
}
