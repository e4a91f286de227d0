/*
 * index_insert.c
 *	  aminsert: encode a row with the index's own compressor and link it
 *	  into the graph on disk.
 *
 * The node is added first, with empty lists, then linked: its own lists are
 * written, then each chosen neighbour gets a link back (pruned by the HNSW
 * heuristic when its list is full).  A back-link is computed from a copy of
 * the neighbour's list taken under a share lock and written under an
 * exclusive lock only if the list has not changed meanwhile (index_lists.c
 * writes every list); otherwise it is computed again.  So an insert holds
 * at most one buffer lock at a time, and concurrent inserts and scans
 * proceed page by page.  The update lock is held in share mode for the
 * whole insert (see vacuum).
 */
#include "postgres.h"

#include "storage/lmgr.h"
#include "utils/memutils.h"

#include "index.h"

#define BACKLINK_TRIES	10

/*
 * The vector of an index column value, checked against the index; *skip
 * is set for a vector the index does not hold (a zero vector under cosine).
 */
float *
QdbIndexVector(Relation index, QdbIndexCache *c, Datum value, bool *skip)
{
	ArrayType  *a = DatumGetArrayTypeP(value);
	int			dim;
	float	   *x = QdbArrayGetFloats(a, &dim, "vector");
	float	   *copy;
	int			i;

	if (dim != c->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("vector has %d dimensions, but index \"%s\" has %d",
						dim, RelationGetRelationName(index), c->dim),
				 errdetail("The index's compressor encodes vectors of %d dimensions.", c->dim)));
	*skip = false;
	if (c->metric == QDB_METRIC_COSINE)
	{
		for (i = 0; i < dim && x[i] == 0; i++)
			;
		*skip = (i == dim);
	}
	copy = palloc(sizeof(float) * dim);
	memcpy(copy, x, sizeof(float) * dim);
	return copy;
}

/*
 * The list node n (code ncode) should have at level after linking to
 * newref, into out; false if n keeps its list (newref is there already, or
 * loses to the present neighbours).  With force, newref always gets in, in
 * place of the farthest neighbour; given a map, the farthest one that other
 * nodes also link to, so that it keeps a way in (false if there is none).
 */
static bool
plan_backlink(QdbDiskGraph *g, QdbIndexCache *c, const uint8 *ncode,
			  const QdbNodeRef *cur, int nslots, QdbNodeRef newref, bool force,
			  const QdbNodeMap *map, QdbNodeRef *out)
{
	QdbCandidate *cand = palloc(sizeof(QdbCandidate) * (nslots + 1));
	QdbCandidate *sel = palloc(sizeof(QdbCandidate) * nslots);
	int			ncand = 0,
				nsel,
				i;
	bool		have_free = false;

	for (i = 0; i < nslots; i++)
	{
		if (cur[i] == newref)
			return false;
		if (cur[i] == QDB_NO_NODE)
			have_free = true;
	}
	if (have_free)
	{
		/* room: keep the list and fill the first free slot */
		memcpy(out, cur, sizeof(QdbNodeRef) * nslots);
		for (i = 0; i < nslots; i++)
			if (out[i] == QDB_NO_NODE)
			{
				out[i] = newref;
				break;
			}
		return true;
	}

	/* full: choose among the present neighbours and the new node */
	QdbDiskGraphSetQueryCode(g, ncode);
	for (i = 0; i < nslots; i++)
	{
		bool		deleted;

		(void) QdbDiskGraphCode(g, cur[i], &deleted, NULL);
		if (deleted)
			continue;			/* vacuum drops it anyway */
		cand[ncand].id = cur[i];
		cand[ncand].dist = qdb_disk_graph_ops.distance(g, cur[i]);
		ncand++;
	}
	cand[ncand].id = newref;
	cand[ncand].dist = qdb_disk_graph_ops.distance(g, newref);
	ncand++;
	QdbSortCandidates(cand, ncand);
	nsel = QdbSelectNeighbors(&qdb_disk_graph_ops, g, cand, ncand, nslots, sel);
	for (i = 0; i < nsel && sel[i].id != newref; i++)
		;
	if (i == nsel && !force)
		return false;
	if (i == nsel)
	{
		/* drop the farthest neighbour that can spare this link */
		int			victim = -1;

		for (i = ncand - 1; i >= 0 && victim < 0; i--)
			if (cand[i].id != newref &&
				(map == NULL || !QdbNodeMapHas(map, cand[i].id) ||
				 map->indegree[QdbNodeSlot(map, cand[i].id)] > 1))
				victim = i;
		if (victim < 0)
			return false;
		nsel = 0;
		for (i = 0; i < ncand; i++)
			if (cand[i].id != newref && i != victim)
				sel[nsel++] = cand[i];
		sel[nsel].id = newref;
		nsel++;
	}
	for (i = 0; i < nslots; i++)
		out[i] = i < nsel ? sel[i].id : QDB_NO_NODE;
	return true;
}

/*
 * Links node n at level to newref (see plan_backlink), retrying if n's list
 * changes under us; returns whether n now links to newref.  A map, if
 * given, has its level-0 in-degrees kept up to date.
 */
bool
QdbLinkTo(Relation index, QdbDiskGraph *g, QdbIndexCache *c, QdbNodeRef n, int level,
		  QdbNodeRef newref, bool force, QdbNodeMap *map)
{
	int			nslots = QdbLevelSlots(c->m, level);
	QdbNodeRef *cur = palloc(sizeof(QdbNodeRef) * nslots);
	QdbNodeRef *want = palloc(sizeof(QdbNodeRef) * nslots);
	uint8	   *ncode = palloc(c->code_size);
	BlockNumber blkno = QdbRefBlock(n);
	int			try;

	for (try = 0; try < BACKLINK_TRIES; try++)
	{
		Buffer		buf = ReadBuffer(index, blkno);
		QdbNode		node;

		/* copy the list under a share lock, and plan without a lock */
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		node = QdbPageGetNode(index, &c->shape, BufferGetPage(buf), blkno, QdbRefOffset(n));
		if ((node->flags & QDB_NODE_DELETED) || node->level < level)
		{
			UnlockReleaseBuffer(buf);
			return false;
		}
		memcpy(cur, QdbNodeLists(node, c->code_size) + QdbLevelStart(c->m, level),
			   sizeof(QdbNodeRef) * nslots);
		memcpy(ncode, node->code, c->code_size);
		QdbDiskGraphNoteList(g, node, level);
		LockBuffer(buf, BUFFER_LOCK_UNLOCK);

		if (!plan_backlink(g, c, ncode, cur, nslots, newref, force, map, want))
		{
			ReleaseBuffer(buf);
			for (try = 0; try < nslots; try++)
				if (cur[try] == newref)
					return true;
			return false;
		}

		/* write it if the list is still the one planned from */
		if (QdbWriteListIfUnchanged(index, c, g, buf, n, level, cur, want))
		{
			if (map && level == 0)
				QdbNodeMapNoteListChange(map, cur, want, nslots);
			return true;
		}
	}
	/* XXX: lost the race every time; the new node keeps its own links */
	return false;
}

/* Finds the new node's neighbours from the graph's entry point, and links. */
static void
link_node(Relation index, QdbIndexCache *c, QdbNodeRef ref, int level, const float *x,
		  const uint8 *code, const QdbMetaPageData *meta)
{
	QdbDiskGraph *g = QdbDiskGraphCreate(index, c);
	float	   *table = palloc(sizeof(float) * qdb_table_floats(&c->model));
	float		bias;
	int			ef = c->ef_construction;
	int			top = Min(level, meta->entry_level);
	QdbCandidate *entries = palloc(sizeof(QdbCandidate) * ef);
	QdbCandidate *found = palloc(sizeof(QdbCandidate) * ef);
	QdbCandidate *usable = palloc(sizeof(QdbCandidate) * ef);
	QdbCandidate *sel = palloc(sizeof(QdbCandidate) * 2 * c->m);
	QdbNodeRef **lists = palloc0(sizeof(QdbNodeRef *) * (level + 1));
	int		   *nlist = palloc0(sizeof(int) * (level + 1));
	int			nentries = 1,
				l,
				i;

	QdbReportStatus(qdb_compute_distance_table(&c->model, x, table, &bias),
					"could not compute the lookup table", NULL);
	QdbDiskGraphSetQuery(g, table, bias);
	if (!QdbDiskDescend(g, meta, top, &entries[0]))
		return;

	for (l = top; l >= 0; l--)
	{
		int			nfound,
					nusable = 0,
					nsel;

		QdbDiskGraphNewLayer(g, l);
		QdbDiskGraphSetQuery(g, table, bias);
		nfound = QdbSearchLayer(&qdb_disk_graph_ops, g, entries, nentries, ef, l,
								2 * c->m, found, NULL);
		for (i = 0; i < nfound; i++)
		{
			bool		deleted;

			if (found[i].id == ref)
				continue;
			(void) QdbDiskGraphCode(g, found[i].id, &deleted, NULL);
			if (!deleted)
				usable[nusable++] = found[i];
		}
		/* pairs among candidates are code-to-code distances */
		nsel = QdbSelectNeighbors(&qdb_disk_graph_ops, g, usable, nusable,
								  QdbLevelSlots(c->m, l), sel);
		lists[l] = palloc(sizeof(QdbNodeRef) * Max(nsel, 1));
		for (i = 0; i < nsel; i++)
			lists[l][i] = sel[i].id;
		nlist[l] = nsel;
		memcpy(entries, found, sizeof(QdbCandidate) * nfound);
		nentries = nfound;
	}

	QdbWriteOwnLists(index, c, g, ref, level, lists, nlist);
	for (l = top; l >= 0; l--)
	{
		bool		linked = false;

		for (i = 0; i < nlist[l]; i++)
			linked |= QdbLinkTo(index, g, c, lists[l][i], l, ref, false, NULL);

		/* every node keeps a way in: else the nearest neighbour must link to it */
		for (i = 0; !linked && i < nlist[l]; i++)
			linked = QdbLinkTo(index, g, c, lists[l][i], l, ref, true, NULL);
	}
}

/*
 * Adds one vector (its code already computed) to the index on disk.  Also
 * used by a build whose graph outgrew maintenance_work_mem.
 */
void
QdbInsertVector(Relation index, QdbIndexCache *c, const float *x, const uint8 *code,
				ItemPointer heaptid)
{
	int			level = QdbDrawLevel(c, &pg_global_prng_state);
	Size		size = QdbNodeSizeOf(c, level);
	QdbNode		node = palloc(size);
	QdbNodeRef	ref;
	QdbMetaPageData meta;

	QdbFormNode(c, node, level, heaptid, code);
	LockPage(index, QDB_UPDATE_LOCK, ShareLock);
	ref = QdbAddNode(index, c, node, size);
	QdbReadMeta(index, &meta);
	if (meta.entry == QDB_NO_NODE)
	{
		if (QdbSetEntry(index, ref, level, QDB_ENTRY_IF_EMPTY, QDB_NO_NODE))
		{
			UnlockPage(index, QDB_UPDATE_LOCK, ShareLock);
			return;
		}
		/* another insert became the entry first: link to it */
		QdbReadMeta(index, &meta);
	}
	link_node(index, c, ref, level, x, code, &meta);
	if (level > meta.entry_level)
		QdbSetEntry(index, ref, level, QDB_ENTRY_IF_HIGHER, QDB_NO_NODE);
	UnlockPage(index, QDB_UPDATE_LOCK, ShareLock);
}

bool
qdbinsert(Relation index, Datum *values, bool *isnull, ItemPointer heap_tid,
		  Relation heap, IndexUniqueCheck checkUnique, bool indexUnchanged,
		  IndexInfo *indexInfo)
{
	MemoryContext cxt,
				old;
	QdbIndexCache *c;
	float	   *x;
	uint8	   *code;
	bool		skip;

	/* Skip nulls */
	if (isnull[0])
		return false;

	cxt = AllocSetContextCreate(CurrentMemoryContext, "quantumdb insert",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	c = QdbPinIndexCache(index, true);
	x = QdbIndexVector(index, c, values[0], &skip);
	if (!skip)
	{
		code = palloc(c->code_size);
		QdbReportStatus(qdb_compute_codes(&c->model, x, 1, code),
						"could not encode the vector", NULL);
		QdbInsertVector(index, c, x, code, heap_tid);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return false;
}
