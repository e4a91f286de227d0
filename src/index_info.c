/*
 * index_info.c
 *	  quantumdb.index_info(regclass): what an index holds;
 *	  quantumdb.verify(regclass): every invariant of its pages and graph.
 *
 * Both read every page under a share lock, one page at a time, so they run
 * beside inserts and scans; what they report is a snapshot per page.
 */
#include "postgres.h"

#include "access/relation.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "crc32c.h"
#include "index.h"

PG_FUNCTION_INFO_V1(quantumdb_index_info);
PG_FUNCTION_INFO_V1(quantumdb_verify);

/*
 * The quantumdb index relid names, opened with AccessShareLock: ERROR 42P01
 * when no relation has that OID (dropped since the caller read it, say),
 * 42809 when it is not a quantumdb index.
 */
Relation
QdbOpenIndexByOid(Oid relid)
{
	Relation	index = try_relation_open(relid, AccessShareLock);

	if (index == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	if (index->rd_rel->relkind == RELKIND_PARTITIONED_INDEX &&
		index->rd_indam != NULL && index->rd_indam->ambuild == qdbbuild)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("index \"%s\" is a partitioned index", RelationGetRelationName(index)),
				 errdetail("A partitioned index has no pages of its own; each partition has its index."),
				 errhint("Name the index of each partition: pg_partition_tree(%s) lists them.",
						 quote_literal_cstr(QdbRelationSqlName(index)))));
	if (index->rd_rel->relkind != RELKIND_INDEX || index->rd_indam == NULL ||
		index->rd_indam->ambuild != qdbbuild)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a quantumdb index", RelationGetRelationName(index))));
	/*
	 * an unlogged table's index on a standby has no main fork: say what a
	 * query on its table says, not that a file is missing (session 60's
	 * hunt, /work/runs/hunt-s60a.md F2)
	 */
	if (!RelationIsPermanent(index) && RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot access temporary or unlogged relations during recovery")));
	return index;
}

/* Opens a quantumdb index the caller may read (SELECT on its table). */
static Relation
open_index(Oid relid)
{
	Relation	index = QdbOpenIndexByOid(relid);
	AclResult	acl;

	acl = pg_class_aclcheck(index->rd_index->indrelid, GetUserId(), ACL_SELECT);
	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_TABLE, get_rel_name(index->rd_index->indrelid));
	return index;
}

/* index_info of an index without a compressor: settings, no graph */
static Datum
untrained_info(FunctionCallInfo fcinfo, const QdbMetaPageData *meta, BlockNumber nblocks)
{
	TupleDesc	tupdesc;
	Datum		values[18] = {0};
	bool		nulls[18] = {0};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	nulls[2] = nulls[7] = nulls[11] = nulls[12] = nulls[13] = nulls[14] = true;
	/* known once the build or an insert saw a row */
	if (meta->dim > 0)
		values[0] = Int32GetDatum(meta->dim);
	else
		nulls[0] = true;
	values[1] = CStringGetTextDatum(qdb_metric_name(meta->metric));
	values[3] = Int32GetDatum(meta->m);
	values[4] = Int32GetDatum(meta->ef_construction);
	values[5] = values[6] = values[8] = values[16] = Int64GetDatum(0);
	values[9] = Int64GetDatum(nblocks);
	values[10] = Int32GetDatum(0);
	values[15] = CStringGetTextDatum("no compressor yet: scans read the heap");
	values[17] = BoolGetDatum(meta->inline_codes != 0);
	return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
}

/*
 * index_info of an index whose build has not finished (CREATE INDEX
 * CONCURRENTLY's, or one killed midway): its pages are not an index yet.
 * It said "contains an unexpected page" (XX002) as if corrupt (session 62's
 * hunt, /work/runs/hunt-s62b.md F2).
 */
static void
check_ready(Relation index)
{
	if (!index->rd_index->indisready)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("index \"%s\" is not ready: its build has not finished",
						RelationGetRelationName(index)),
				 errhint("Wait for its CREATE INDEX CONCURRENTLY or REINDEX CONCURRENTLY to finish; one that failed is removed with DROP INDEX CONCURRENTLY %s.",
						 QdbRelationSqlName(index))));
}

Datum
quantumdb_index_info(PG_FUNCTION_ARGS)
{
	Relation	index = open_index(PG_GETARG_OID(0));
	QdbIndexCache *c;
	QdbMetaPageData meta;
	QdbNodeMap	map;
	int64		live = 0,
				deleted = 0,
				reusable = 0;
	int			max_level = -1;
	Size		i,
				total;
	TupleDesc	tupdesc;
	Datum		values[18];
	bool		nulls[18] = {0};
	StringInfoData built;
	int64		nblocks;

	check_ready(index);
	c = QdbPinIndexCache(index, false);
	QdbReadMeta(index, &meta);
	if (c->untrained)
	{
		BlockNumber nblocks = RelationGetNumberOfBlocks(index);

		relation_close(index, AccessShareLock);
		PG_RETURN_DATUM(untrained_info(fcinfo, &meta, nblocks));
	}
	QdbNodeMapRead(index, &meta, &map);
	total = QdbNodeMapSlotAt(&map, map.nblocks, 0);
	for (i = 0; i < total; i++)
	{
		if (!QdbNodeMapSlotHolds(&map, i))
			continue;
		if (map.flags[i] & QDB_NODE_FREE)
			reusable++;
		if (map.flags[i] & QDB_NODE_DELETED)
			deleted++;
		else
		{
			live++;
			max_level = Max(max_level, map.level[i]);
		}
	}
	nblocks = map.nblocks;

	initStringInfo(&built);
	/* the phases that built rows, in their order */
	if (meta.build_flags & QDB_BUILT_FROM_VECTORS)
		appendStringInfoString(&built, (meta.build_flags & QDB_BUILT_PROJECTED) ?
							   "projected vectors" : "vectors");
	if (meta.build_flags & QDB_BUILT_FROM_CODES)
		appendStringInfo(&built, "%scodes", built.len > 0 ? ", then " : "");
	if (meta.build_flags & QDB_BUILT_ON_DISK)
		appendStringInfo(&built, "%spage by page", built.len > 0 ? ", then " : "");

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	values[0] = Int32GetDatum(meta.dim);
	values[1] = CStringGetTextDatum(qdb_metric_name(meta.metric));
	values[2] = Int32GetDatum(meta.code_size);
	values[3] = Int32GetDatum(meta.m);
	values[4] = Int32GetDatum(meta.ef_construction);
	values[5] = Int64GetDatum(live);
	values[6] = Int64GetDatum(deleted);
	values[7] = Int32GetDatum(max_level);
	values[8] = Int64GetDatum(QdbNodeMapCountUnreached(index, c, &meta, &map));
	values[9] = Int64GetDatum(nblocks);
	values[10] = Int32GetDatum(meta.compressor_pages);
	values[11] = Float8GetDatum(live > 0 ? (double) nblocks * BLCKSZ / live : 0);
	if (meta.compressor_name[0])
		values[12] = CStringGetTextDatum(meta.compressor_name);
	else
		nulls[12] = true;
	values[13] = CStringGetTextDatum(qdb_kind_name(c->model.kind));
	values[14] = CStringGetTextDatum(psprintf("%08x", meta.compressor_crc));
	values[15] = CStringGetTextDatum(built.data);
	values[16] = Int64GetDatum(reusable);
	values[17] = BoolGetDatum(meta.inline_codes != 0);
	relation_close(index, AccessShareLock);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * verify's rows: one per problem, at most MAX_PROBLEM_ROWS of them and then
 * one row counting the rest (a damaged index of millions of nodes would
 * otherwise return millions of rows).
 */
#define MAX_PROBLEM_ROWS 1000

/*
 * A link that looked wrong against the map of all nodes (read first) when
 * its node was read: the target missing, free, of a lower level, or of
 * another code than the link keeps.  Inserts and VACUUM running beside
 * verify add nodes, reuse free ones and mark others deleted after the map
 * was read, so each is checked again against the target as it is once the
 * walk over the pages is done (not during it: a walk holds one page lock at
 * a time), and is a problem only if it still looks wrong then.
 */
typedef enum SuspectKind
{
	SUSPECT_MISSING,
	SUSPECT_LEVEL,
	SUSPECT_FREE,
	SUSPECT_CODE
} SuspectKind;

typedef struct Suspect
{
	QdbNodeRef	from;
	QdbNodeRef	to;
	int16		level;
	int16		kind;			/* SuspectKind */
	bool		from_counted;	/* in pending_nodes already */
} Suspect;

/*
 * Suspects kept for the second look (with inline codes, the code each link
 * keeps, in Problems.codes); past it, each is a problem at once: about 8 MB
 * at most with 16-byte codes
 */
#define MAX_SUSPECTS	(1 << 18)

typedef struct Problems
{
	ReturnSetInfo *rsinfo;
	int64		n;
	/* links from live nodes to deleted (not free) ones, and from how many */
	int64		pending_links;
	int64		pending_nodes;
	bool		entry_deleted;	/* with live nodes left */
	Suspect    *suspects;
	uint8	   *codes;			/* code_size bytes per suspect, with inline codes */
	int			nsuspects;
	int			suspects_size;
} Problems;

/* Adds a row to verify's result. */
static void
put_row(Problems *p, const char *text)
{
	Datum		value = CStringGetTextDatum(text);
	bool		isnull = false;

	tuplestore_putvalues(p->rsinfo->setResult, p->rsinfo->setDesc, &value, &isnull);
}

static void
problem(Problems *p, const char *fmt,...) pg_attribute_printf(2, 3);

/* A problem: a row, while fewer than MAX_PROBLEM_ROWS were written. */
static void
problem(Problems *p, const char *fmt,...)
{
	va_list		ap;
	StringInfoData s;

	if (++p->n > MAX_PROBLEM_ROWS)
		return;
	initStringInfo(&s);
	for (;;)
	{
		int			needed;

		va_start(ap, fmt);
		needed = appendStringInfoVA(&s, fmt, ap);
		va_end(ap);
		if (needed == 0)
			break;
		enlargeStringInfo(&s, needed);
	}
	put_row(p, s.data);
}

/* verify's last rows, past the cap: what it counted rather than listed */
static void
problems_end(Problems *p)
{
	if (p->n > MAX_PROBLEM_ROWS)
		put_row(p, psprintf("and " INT64_FORMAT " more problems", p->n - MAX_PROBLEM_ROWS));

	/*
	 * VACUUM marks the dead rows' nodes deleted (pass 1), then relinks their
	 * neighbours (pass 2), then frees them: a VACUUM that stopped between
	 * (a crash, a cancel) leaves live nodes linking to deleted ones, which
	 * scans step over and the next VACUUM that removes dead rows from the
	 * index relinks.  A lasting state, not damage: one row says so (a link
	 * to a free node is damage, listed).
	 */
	if (p->pending_links > 0)
		put_row(p, psprintf(INT64_FORMAT " links from " INT64_FORMAT " live nodes lead to deleted nodes: "
							"a VACUUM under way, or one that stopped before relinking them, leaves this, "
							"and the next VACUUM that removes dead rows from the index repairs it",
							p->pending_links, p->pending_nodes));
	/* the same state, as long as VACUUM has not chosen another entry point */
	if (p->entry_deleted)
		put_row(p, "the entry point is deleted while live nodes remain: a VACUUM under way, or "
				"one that stopped before choosing another, leaves this (scans start from it all "
				"the same), and the next VACUUM that removes dead rows from the index repairs it");
}

/*
 * Whether the pages after the meta page of an index without a compressor
 * are empty node pages or compressor pages: an unlogged index reset from
 * an init fork written again in place over a longer one (QdbPadInitFork),
 * or from one that a crash stopped VACUUM from giving a compressor
 * (QdbInitForkCheck writes its meta page last).
 */
static bool
untrained_tail_empty(Relation index)
{
	BlockNumber n = RelationGetNumberOfBlocks(index);

	for (BlockNumber b = QDB_FIRST_COMPRESSOR_BLKNO; b < n; b++)
	{
		Buffer		buf = ReadBuffer(index, b);
		Page		page;
		bool		empty;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		empty = QdbPageProblem(page) == NULL &&
			(((QdbPageGetOpaque(page)->flags & QDB_PAGE_NODES) != 0 &&
			  PageGetMaxOffsetNumber(page) == 0) ||
			 (QdbPageGetOpaque(page)->flags & QDB_PAGE_COMPRESSOR) != 0);
		UnlockReleaseBuffer(buf);
		if (!empty)
			return false;
	}
	return true;
}

/* Checks the meta page and the compressor pages; false if the rest cannot be read. */
static bool
verify_header(Relation index, Problems *p, QdbMetaPageData *meta)
{
	Buffer		buf;
	Page		page;
	bool		ok = true;

	if (RelationGetNumberOfBlocks(index) == 0)
	{
		problem(p, "the index has no pages: its last build did not finish");
		return false;
	}
	buf = QdbMetaBuffer(index);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	if (PageIsNew(page))
	{
		/*
		 * A build extends the file before it logs the pages: one a crash
		 * cut short leaves zeros here, where a standby has no page at all
		 */
		problem(p, "block 0 is all zeros: the index's last build did not finish");
		ok = false;
	}
	else if (QdbPageProblem(page) != NULL ||
			 !(QdbPageGetOpaque(page)->flags & QDB_PAGE_META))
	{
		problem(p, "block 0 is not a quantumdb meta page");
		ok = false;
	}
	else
	{
		memcpy(meta, QdbPageGetMeta(page), sizeof(QdbMetaPageData));
		if (meta->magic != QDB_INDEX_MAGIC)
			problem(p, "meta page magic is %08x, expected %08x", meta->magic, QDB_INDEX_MAGIC);
		if (meta->version != QDB_INDEX_VERSION)
			problem(p, "meta page format %u, expected %u", meta->version, QDB_INDEX_VERSION);
		if (!QdbCompressorFormatRead(meta->compressor_format))
			problem(p, "compressor format %u, expected 1 to %u", meta->compressor_format,
					QDB_FORMAT_VERSION);
		if (meta->m < QDB_MIN_M || meta->m > QDB_MAX_M)
			problem(p, "meta page m %d is out of range", meta->m);
		if (QdbMetaUntrained(meta))
		{
			/* a meta page alone (QDB_BUILT_UNTRAINED) */
			const char *wrong = QdbUntrainedMetaProblem(meta);

			if (wrong)
				problem(p, "the meta page of an index without a compressor is damaged: %s", wrong);
			if (RelationGetNumberOfBlocks(index) != 1 &&
				(index->rd_rel->relpersistence != RELPERSISTENCE_UNLOGGED ||
				 !untrained_tail_empty(index)))
				problem(p, "an index without a compressor has %u blocks, not 1, and not only empty node pages after it",
						RelationGetNumberOfBlocks(index));
			UnlockReleaseBuffer(buf);
			return false;
		}
		if (meta->first_node_page != QDB_FIRST_COMPRESSOR_BLKNO + meta->compressor_pages)
			problem(p, "first node page %u does not follow the %u compressor pages",
					meta->first_node_page, meta->compressor_pages);
		ok = p->n == 0;
	}
	UnlockReleaseBuffer(buf);
	if (ok && meta->first_node_page > RelationGetNumberOfBlocks(index))
	{
		problem(p, "the index has %u blocks, fewer than its meta page says",
				RelationGetNumberOfBlocks(index));
		ok = false;
	}
	if (ok)
	{
		/* the compressor: pages, length and checksum */
		uint8	   *blob = palloc(meta->compressor_len);
		Size		done = 0;
		uint32		i;

		for (i = 0; i < meta->compressor_pages; i++)
		{
			Size		n = Min(meta->compressor_len - done, QDB_PAGE_CAPACITY);

			buf = ReadBuffer(index, QDB_FIRST_COMPRESSOR_BLKNO + i);
			LockBuffer(buf, BUFFER_LOCK_SHARE);
			page = BufferGetPage(buf);
			if (QdbPageProblem(page) != NULL ||
				!(QdbPageGetOpaque(page)->flags & QDB_PAGE_COMPRESSOR))
			{
				problem(p, "block %u is not a compressor page", QDB_FIRST_COMPRESSOR_BLKNO + i);
				ok = false;
			}
			else
				memcpy(blob + done, PageGetContents(page), n);
			UnlockReleaseBuffer(buf);
			done += n;
		}
		if (ok && qdb_crc32c(blob, meta->compressor_len) != meta->compressor_crc)
		{
			problem(p, "the compressor fails its checksum");
			ok = false;
		}
		pfree(blob);
	}
	return ok;
}

/* The walk's report of a page or node it cannot read. */
static void
report_unreadable(void *arg, BlockNumber blkno, OffsetNumber off, const char *what)
{
	if (off == InvalidOffsetNumber)
		problem((Problems *) arg, "block %u: %s", blkno, what);
	else
		problem((Problems *) arg, "node (%u,%u): %s", blkno, off, what);
}

/* The problem a suspect link is, as verify words it. */
static void
suspect_problem(Problems *p, const Suspect *sp)
{
	BlockNumber blkno = QdbRefBlock(sp->from);
	OffsetNumber off = QdbRefOffset(sp->from);
	BlockNumber tblk = QdbRefBlock(sp->to);
	OffsetNumber toff = QdbRefOffset(sp->to);

	switch ((SuspectKind) sp->kind)
	{
		case SUSPECT_MISSING:
			problem(p, "node (%u,%u) links to missing node (%u,%u) at level %d", blkno, off,
					tblk, toff, sp->level);
			break;
		case SUSPECT_LEVEL:
			problem(p, "node (%u,%u) links to node (%u,%u) at level %d, above that node's level",
					blkno, off, tblk, toff, sp->level);
			break;
		case SUSPECT_FREE:
			problem(p, "live node (%u,%u) links to free node (%u,%u) at level %d",
					blkno, off, tblk, toff, sp->level);
			break;
		case SUSPECT_CODE:
			problem(p, "node (%u,%u) keeps a wrong code for node (%u,%u) at level %d",
					blkno, off, tblk, toff, sp->level);
			break;
	}
}

/*
 * Keeps a link that looks wrong against the map for a second look (see
 * Suspect); code: with inline codes, the code the link keeps (else NULL).
 */
static void
suspect(Problems *p, const QdbMetaPageData *meta, QdbNodeRef from, QdbNodeRef to,
		int level, SuspectKind kind, const uint8 *code)
{
	Suspect		sp;

	sp.from = from;
	sp.to = to;
	sp.level = level;
	sp.kind = kind;
	sp.from_counted = false;
	if (p->nsuspects >= MAX_SUSPECTS)
	{
		suspect_problem(p, &sp);
		return;
	}
	if (p->nsuspects == p->suspects_size)
	{
		p->suspects_size = Max(64, p->suspects_size * 2);
		p->suspects = p->suspects ?
			repalloc(p->suspects, sizeof(Suspect) * p->suspects_size) :
			palloc(sizeof(Suspect) * p->suspects_size);
		if (code != NULL)
			p->codes = p->codes ?
				repalloc(p->codes, (Size) meta->code_size * p->suspects_size) :
				palloc((Size) meta->code_size * p->suspects_size);
	}
	if (code != NULL)
		memcpy(p->codes + (Size) meta->code_size * p->nsuspects, code, meta->code_size);
	p->suspects[p->nsuspects++] = sp;
}

/*
 * Reads the node at ref under a share lock, copying what verify's second
 * look needs: flags, level, code, and whether its list at level holds
 * target (and the code kept for it there, with inline codes).  False when
 * there is no such node now.
 */
typedef struct NodeNow
{
	uint8		flags;
	int			level;
	bool		links;			/* lists target at the level asked */
	uint8	   *code;			/* its own code (code_size bytes, the caller's) */
	uint8	   *kept;			/* with inline codes, the code it keeps for target */
} NodeNow;

static bool
read_node_now(Relation index, const QdbMetaPageData *meta, const QdbNodeShape *shape,
			  BlockNumber nblocks, QdbNodeRef ref, QdbNodeRef target, int level,
			  bool inline_codes, NodeNow *out)
{
	BlockNumber blkno = QdbRefBlock(ref);
	OffsetNumber off = QdbRefOffset(ref);
	Buffer		buf;
	Page		page;
	bool		found = false;

	if (blkno < meta->first_node_page || blkno >= nblocks)
		return false;
	buf = ReadBuffer(index, blkno);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	if (QdbNodePageProblem(page) == NULL && QdbNodeItemProblem(shape, page, off) == NULL)
	{
		QdbNode		node = (QdbNode) PageGetItem(page, PageGetItemId(page, off));

		found = true;
		out->flags = node->flags;
		out->level = node->level;
		memcpy(out->code, node->code, meta->code_size);
		out->links = false;
		if (target != QDB_NO_NODE && level <= node->level)
		{
			QdbNodeRef *list = QdbNodeLists(node, meta->code_size) + QdbLevelStart(meta->m, level);

			for (int i = 0; i < QdbLevelSlots(meta->m, level); i++)
				if (list[i] == target)
				{
					out->links = true;
					if (inline_codes)
						memcpy(out->kept,
							   QdbNodeSlotCodes(node, meta->code_size, meta->m, node->level) +
							   (Size) (QdbLevelStart(meta->m, level) + i) * meta->code_size,
							   meta->code_size);
					break;
				}
		}
	}
	UnlockReleaseBuffer(buf);
	return found;
}

/*
 * The second look at each suspect link, against its node and its target
 * as they are now, each read under its own share lock, one at a time: a
 * link VACUUM has since removed is none; a target added, reused or given
 * another level or code after the map was read is what inserts and VACUUM
 * beside verify do, not damage; a target deleted since (not free) is the
 * state a running VACUUM passes through, counted with the links to
 * deleted nodes.  What looks wrong still is reported as the first look
 * worded it.
 */
static void
recheck_suspects(Problems *p, Relation index, const QdbMetaPageData *meta,
				 const QdbNodeShape *shape)
{
	BlockNumber nblocks = RelationGetNumberOfBlocks(index);
	QdbNodeRef	last_pending = QDB_NO_NODE;
	NodeNow		from,
				to;

	bool		inline_codes = p->codes != NULL;

	from.code = palloc(meta->code_size);
	from.kept = palloc(meta->code_size);
	to.code = palloc(meta->code_size);
	to.kept = NULL;
	for (int k = 0; k < p->nsuspects; k++)
	{
		Suspect    *sp = &p->suspects[k];
		bool		from_live;
		bool		bad;
		bool		pending = false;

		CHECK_FOR_INTERRUPTS();
		if (!read_node_now(index, meta, shape, nblocks, sp->from, sp->to, sp->level,
						   inline_codes, &from) ||
			(from.flags & QDB_NODE_FREE) || !from.links)
			continue;			/* the link is gone */
		from_live = !(from.flags & QDB_NODE_DELETED);
		if (!read_node_now(index, meta, shape, nblocks, sp->to, QDB_NO_NODE, 0, false, &to))
			bad = true;
		else if (!from_live)
			bad = false;		/* a deleted node's links may lead to slots freed and reused since */
		else if (to.flags & QDB_NODE_FREE)
			bad = true;
		else if (to.level < sp->level)
			bad = true;
		else if (inline_codes && memcmp(to.code, from.kept, meta->code_size) != 0)
			bad = true;
		else
		{
			bad = false;
			pending = from_live && (to.flags & QDB_NODE_DELETED);
		}
		if (bad)
			suspect_problem(p, sp);
		else if (pending)
		{
			p->pending_links++;
			/* suspects come in the walk's order, a node's links together */
			if (sp->from != last_pending && !sp->from_counted)
				p->pending_nodes++;
			last_pending = sp->from;
		}
	}
}

/*
 * The entry point, read as it is now (meta page, then its node), not from
 * the map: VACUUM beside verify may have chosen another one since.
 * max_level: the highest level of a live node the walk read (-1: none).
 */
static void
check_entry(Problems *p, Relation index, const QdbNodeShape *shape, int max_level)
{
	QdbMetaPageData meta;
	BlockNumber blkno;
	OffsetNumber off;
	Buffer		buf;
	Page		page;

	QdbReadMeta(index, &meta);
	if (meta.entry == QDB_NO_NODE)
	{
		if (max_level >= 0)
			problem(p, "the index has live nodes but no entry point");
		return;
	}
	blkno = QdbRefBlock(meta.entry);
	off = QdbRefOffset(meta.entry);
	if (blkno < meta.first_node_page || blkno >= RelationGetNumberOfBlocks(index))
	{
		problem(p, "the entry point (%u,%u) is not a node", blkno, off);
		return;
	}
	buf = ReadBuffer(index, blkno);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	if (QdbNodePageProblem(page) != NULL || QdbNodeItemProblem(shape, page, off) != NULL)
		problem(p, "the entry point (%u,%u) is not a node", blkno, off);
	else
	{
		QdbNode		node = (QdbNode) PageGetItem(page, PageGetItemId(page, off));

		if (node->level != meta.entry_level)
			problem(p, "the entry point has level %d, but the meta page says %d",
					node->level, meta.entry_level);
		if ((node->flags & QDB_NODE_FREE) && max_level >= 0)
			problem(p, "the entry point is free but live nodes remain");
		else if ((node->flags & QDB_NODE_DELETED) && max_level >= 0)
			p->entry_deleted = true;
	}
	UnlockReleaseBuffer(buf);
}

/* With inline codes, the code node keeps for the neighbour in slot i of level's list; else NULL. */
static const uint8 *
slot_code(const QdbNodeMap *map, const QdbMetaPageData *meta, QdbNode node, int level, int i)
{
	if (map->codes == NULL)
		return NULL;
	return QdbNodeSlotCodes(node, meta->code_size, meta->m, node->level) +
		(Size) (QdbLevelStart(meta->m, level) + i) * meta->code_size;
}

/* Checks one node (that the walk could read) and its lists against the map of all nodes. */
static void
verify_node(Problems *p, const QdbMetaPageData *meta, const QdbNodeMap *map,
			QdbNodeRef self, QdbNode node)
{
	BlockNumber blkno = QdbRefBlock(self);
	OffsetNumber off = QdbRefOffset(self);
	QdbNodeRef *lists;
	int64		pending = p->pending_links;
	int			nsuspects = p->nsuspects;
	int			level,
				i,
				j;

	if (node->flags & ~(QDB_NODE_DELETED | QDB_NODE_FREE))
		problem(p, "node (%u,%u) has unknown flags %02x", blkno, off, node->flags);
	if ((node->flags & QDB_NODE_FREE) && !(node->flags & QDB_NODE_DELETED))
		problem(p, "node (%u,%u) is free but not deleted", blkno, off);
	if (!(node->flags & QDB_NODE_DELETED) && !ItemPointerIsValid(&node->heaptid))
		problem(p, "node (%u,%u) has an invalid heap TID", blkno, off);

	lists = QdbNodeLists(node, meta->code_size);
	for (level = 0; level <= node->level; level++)
	{
		QdbNodeRef *list = lists + QdbLevelStart(meta->m, level);
		int			nslots = QdbLevelSlots(meta->m, level);

		for (i = 0; i < nslots; i++)
		{
			if (list[i] == QDB_NO_NODE)
				continue;
			if (node->flags & QDB_NODE_FREE)
				problem(p, "free node (%u,%u) still has links", blkno, off);
			else if (list[i] == self)
				problem(p, "node (%u,%u) links to itself at level %d", blkno, off, level);
			else if (!QdbNodeMapHas(map, list[i]))
				suspect(p, meta, self, list[i], level, SUSPECT_MISSING, slot_code(map, meta, node, level, i));
			else if (map->level[QdbNodeSlot(map, list[i])] < level)
				suspect(p, meta, self, list[i], level, SUSPECT_LEVEL, slot_code(map, meta, node, level, i));
			else if (!(node->flags & QDB_NODE_DELETED) &&
					 (map->flags[QdbNodeSlot(map, list[i])] & QDB_NODE_FREE))
				suspect(p, meta, self, list[i], level, SUSPECT_FREE, slot_code(map, meta, node, level, i));
			else if (!(node->flags & QDB_NODE_DELETED) &&
					 (map->flags[QdbNodeSlot(map, list[i])] & QDB_NODE_DELETED))
				p->pending_links++;
			else if (map->codes &&
					 memcmp(slot_code(map, meta, node, level, i),
							map->codes + QdbNodeSlot(map, list[i]) * meta->code_size,
							meta->code_size) != 0)
				suspect(p, meta, self, list[i], level, SUSPECT_CODE, slot_code(map, meta, node, level, i));
			for (j = 0; j < i; j++)
				if (list[j] == list[i])
					problem(p, "node (%u,%u) lists node (%u,%u) twice at level %d", blkno, off,
							QdbRefBlock(list[i]), QdbRefOffset(list[i]), level);
		}
	}
	if (p->pending_links > pending)
	{
		p->pending_nodes++;
		for (i = nsuspects; i < p->nsuspects; i++)
			p->suspects[i].from_counted = true;
	}
}

Datum
quantumdb_verify(PG_FUNCTION_ARGS)
{
	Relation	index = open_index(PG_GETARG_OID(0));
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Problems	p;
	QdbMetaPageData meta;
	QdbNodeMap	map;
	QdbNodeScan scan;
	int			max_level = -1;
	QdbNodeShape shape;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	memset(&p, 0, sizeof(p));
	p.rsinfo = rsinfo;
	/* its pages may be sound, but no query uses it */
	if (!index->rd_index->indisvalid)
		problem(&p, "the index is not valid: a CREATE INDEX CONCURRENTLY or REINDEX CONCURRENTLY "
				"that failed, was cancelled or is still running left it, and no query uses it; "
				"DROP INDEX or REINDEX INDEX it");
	if (!verify_header(index, &p, &meta))
	{
		problems_end(&p);
		relation_close(index, AccessShareLock);
		return (Datum) 0;
	}
	QdbNodeShapeFromMeta(&meta, &shape);

	QdbNodeMapRead(index, &meta, &map);
	QdbNodeScanBegin(&scan, index, &shape, map.first, map.nblocks, NULL,
					 BUFFER_LOCK_SHARE, QDB_PACE_INTERRUPTS);
	scan.report = report_unreadable;
	scan.report_arg = &p;
	while (QdbNodeScanNextPage(&scan))
	{
		QdbNode		node;
		QdbNodeRef	ref;

		while ((node = QdbNodeScanNext(&scan, &ref)) != NULL)
		{
			verify_node(&p, &meta, &map, ref, node);
			if (!(node->flags & QDB_NODE_DELETED))
				max_level = Max(max_level, node->level);
		}
	}
	QdbNodeScanEnd(&scan);
	recheck_suspects(&p, index, &meta, &shape);
	check_entry(&p, index, &shape, max_level);
	problems_end(&p);
	relation_close(index, AccessShareLock);
	return (Datum) 0;
}
