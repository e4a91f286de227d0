/*
 * index_reach.c
 *	  Which nodes a walk from the entry point can reach at level 0, and the
 *	  repair that links every unreachable live node back in.
 *
 * HNSW pruning can leave a node with no incoming link (every neighbour
 * preferred others), and then no scan finds it.  Inserts guard against it
 * at the time they link a node; the build and VACUUM run a full check:
 * a breadth-first walk over level 0 from the entry, then, for each live
 * node it missed, a link from its nearest reached node (one of its own
 * neighbours when possible, else the best node a search for its code finds).
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/memutils.h"

#include "index.h"

#define REPAIR_ROUNDS	5

/* Reads the level and flags of every node. */
void
QdbNodeMapRead(Relation index, const QdbMetaPageData *meta, QdbNodeMap *map)
{
	Size		nslots;
	QdbNodeShape shape;
	QdbNodeScan scan;

	QdbNodeShapeFromMeta(meta, &shape);
	map->first = meta->first_node_page;
	map->nblocks = RelationGetNumberOfBlocks(index);
	nslots = QdbNodeMapSlots(map->first, map->nblocks);
	map->maxoff = palloc0(nslots / QDB_MAP_SLOTS_PER_PAGE);
	map->level = palloc_extended(nslots, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	map->flags = palloc_extended(nslots, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	map->reached = palloc_extended(sizeof(bool) * nslots, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	map->indegree = palloc_extended(sizeof(uint16) * nslots,
									MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	map->code_size = meta->code_size;
	map->codes = meta->inline_codes ?
		palloc_extended(nslots * meta->code_size, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO) : NULL;
	QdbNodeScanBegin(&scan, index, &shape, map->first, map->nblocks, NULL,
					 BUFFER_LOCK_SHARE, QDB_PACE_INTERRUPTS);
	while (QdbNodeScanNextPage(&scan))
	{
		QdbNode		node;
		QdbNodeRef	ref;

		while ((node = QdbNodeScanNext(&scan, &ref)) != NULL)
		{
			Size		slot = QdbNodeSlot(map, ref);

			map->maxoff[scan.blkno - map->first] = QdbRefOffset(ref);
			map->level[slot] = node->level;
			map->flags[slot] = node->flags;
			if (map->codes)
				memcpy(map->codes + slot * map->code_size, node->code, map->code_size);
		}
	}
	QdbNodeScanEnd(&scan);
}

/* Keeps in-degrees right after a level-0 list changed from before to after. */
void
QdbNodeMapNoteListChange(QdbNodeMap *map, const QdbNodeRef *before, const QdbNodeRef *after,
						 int n)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		if (QdbNodeMapHas(map, before[i]) && map->indegree[QdbNodeSlot(map, before[i])] > 0)
			map->indegree[QdbNodeSlot(map, before[i])]--;
		if (QdbNodeMapHas(map, after[i]))
			map->indegree[QdbNodeSlot(map, after[i])]++;
	}
}

bool
QdbNodeMapHas(const QdbNodeMap *map, QdbNodeRef ref)
{
	BlockNumber blk = QdbRefBlock(ref);

	return ref != QDB_NO_NODE && blk >= map->first && blk < map->nblocks &&
		QdbRefOffset(ref) >= FirstOffsetNumber &&
		QdbRefOffset(ref) <= map->maxoff[blk - map->first];
}

/*
 * Marks every node reachable at level 0 from start (and start itself), and
 * counts the links from reached nodes into indegree.
 */
static void
reach_from(Relation index, QdbIndexCache *c, QdbNodeMap *map, QdbNodeRef start)
{
	Size		total = QdbNodeMapSlotAt(map, map->nblocks, 0);
	QdbNodeRef *queue;
	Size		qhead = 0,
				qtail = 0;

	if (!QdbNodeMapHas(map, start) || map->reached[QdbNodeSlot(map, start)])
		return;
	queue = palloc_extended(sizeof(QdbNodeRef) * Max(total, 1), MCXT_ALLOC_HUGE);
	queue[qtail++] = start;
	map->reached[QdbNodeSlot(map, start)] = true;
	while (qhead < qtail)
	{
		QdbNodeRef	ref = queue[qhead++];
		Buffer		buf = ReadBuffer(index, QdbRefBlock(ref));
		QdbNode		node;
		QdbNodeRef *list;
		int			j;

		CHECK_FOR_INTERRUPTS();
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		node = QdbPageGetNode(index, &c->shape, BufferGetPage(buf), QdbRefBlock(ref),
							  QdbRefOffset(ref));
		list = QdbNodeLists(node, c->shape.code_size);
		for (j = 0; j < 2 * c->shape.m; j++)
		{
			if (!QdbNodeMapHas(map, list[j]))
				continue;
			map->indegree[QdbNodeSlot(map, list[j])]++;
			if (map->reached[QdbNodeSlot(map, list[j])])
				continue;
			map->reached[QdbNodeSlot(map, list[j])] = true;
			queue[qtail++] = list[j];
		}
		UnlockReleaseBuffer(buf);
	}
	pfree(queue);
}

static bool
is_live(const QdbNodeMap *map, Size slot)
{
	return QdbNodeMapSlotHolds(map, slot) && !(map->flags[slot] & QDB_NODE_DELETED);
}

/* Walks from the entry; returns how many live nodes it misses (-1: no entry). */
int64
QdbNodeMapCountUnreached(Relation index, QdbIndexCache *c, const QdbMetaPageData *meta,
						 QdbNodeMap *map)
{
	Size		total = QdbNodeMapSlotAt(map, map->nblocks, 0);
	int64		missed = 0;
	Size		i;

	if (!QdbNodeMapHas(map, meta->entry))
		return -1;
	reach_from(index, c, map, meta->entry);
	for (i = 0; i < total; i++)
		if (is_live(map, i) && !map->reached[i])
			missed++;
	return missed;
}

/* Appends the live reached nodes of cand[0 .. n) but u to out, up to max in all. */
static int
add_reached(QdbNodeMap *map, QdbNodeRef u, const QdbCandidate *cand, int n,
			QdbCandidate *out, int nout, int max)
{
	for (int i = 0; i < n && nout < max; i++)
	{
		Size		slot;

		if (cand[i].id == u || !QdbNodeMapHas(map, cand[i].id))
			continue;
		slot = QdbNodeSlot(map, cand[i].id);
		if (map->reached[slot] && is_live(map, slot))
			out[nout++] = cand[i];
	}
	return nout;
}

/*
 * Live reached nodes to link unreached node u from, nearest first: u's own
 * neighbours, then what a search of the graph for u's code finds; when
 * there are none, the nodes that search measured.
 */
static int
reached_candidates(QdbDiskGraph *g, QdbIndexCache *c, const QdbMetaPageData *meta,
				   QdbNodeMap *map, QdbNodeRef u, QdbCandidate *out)
{
	uint32	   *nb = palloc(sizeof(uint32) * 2 * c->shape.m);
	QdbCandidate cur;
	QdbCandidate *found = palloc(sizeof(QdbCandidate) * c->ef_construction);
	int			nout = 0,
				max = 2 * c->shape.m + c->ef_construction,
				n,
				i;

	QdbDiskGraphNewLayer(g, 0);
	QdbDiskGraphSetQueryCode(g, QdbDiskGraphCode(g, u, NULL, NULL));
	n = qdb_disk_graph_ops.neighbors(g, u, 0, nb);
	for (i = 0; i < n; i++)
	{
		if (!QdbNodeMapHas(map, nb[i]) || !map->reached[QdbNodeSlot(map, nb[i])] ||
			!is_live(map, QdbNodeSlot(map, nb[i])))
			continue;
		out[nout].id = nb[i];
		out[nout].dist = qdb_disk_graph_ops.distance(g, nb[i]);
		nout++;
	}
	QdbSortCandidates(out, nout);

	if (QdbDiskDescend(g, meta, 0, &cur))
	{
		QdbDiskGraphNewLayer(g, 0);
		n = QdbDiskSearch(g, &cur, 1, c->ef_construction, 0, found, false);
		nout = add_reached(map, u, found, n, out, nout, max);
	}
	if (nout == 0)
	{
		/*
		 * The search found only unreached nodes: u among copies of its own
		 * vector, all unreached, which fill the beam (100 copies each of 3
		 * vectors left one group out after 5 builds of 6).  The nodes its
		 * descent measured on the way, outside them, are the nearest to
		 * link from.
		 */
		QdbCandidate *seen;

		n = QdbDiskGraphMeasured(g, &seen);
		nout = add_reached(map, u, seen, n, out, nout, max);
	}
	return nout;
}

/*
 * Links every live node that a walk from the entry cannot reach back into
 * the graph.  Returns how many links it added.
 */
int64
QdbRepairReachability(Relation index)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "quantumdb reachability",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext rcxt = AllocSetContextCreate(cxt, "quantumdb reachability round",
											   ALLOCSET_DEFAULT_SIZES);
	MemoryContext percall = AllocSetContextCreate(cxt, "quantumdb reachability link",
												  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	QdbIndexCache *c = QdbPinIndexCache(index, true);	/* until cxt goes */
	QdbMetaPageData meta;
	QdbNodeMap	map;
	Size		total,
				i;
	int64		linked = 0;
	int			round;

	MemoryContextSwitchTo(rcxt);
	/* a link can cut another node off: walk again until none is missed */
	for (round = 0; round < REPAIR_ROUNDS; round++)
	{
		int64		linked_now = 0;

		MemoryContextReset(rcxt);
		QdbReadMeta(index, &meta);
		QdbNodeMapRead(index, &meta, &map);
		total = QdbNodeMapSlotAt(&map, map.nblocks, 0);
		if (QdbNodeMapCountUnreached(index, c, &meta, &map) <= 0)
			break;
		for (i = 0; i < total; i++)
		{
			QdbNodeRef	u;
			QdbDiskGraph *g;
			QdbCandidate *from;
			int			nfrom,
						j;
			bool		done = false;

			if (!is_live(&map, i) || map.reached[i])
				continue;
			u = QdbMakeRef(map.first + QdbNodeMapSlotPage(i), QdbNodeMapSlotOffset(i));
			MemoryContextSwitchTo(percall);
			g = QdbDiskGraphCreate(index, c);
			from = palloc(sizeof(QdbCandidate) * (2 * c->shape.m + c->ef_construction));
			nfrom = reached_candidates(g, c, &meta, &map, u, from);
			for (j = 0; j < nfrom && !done; j++)
				done = QdbLinkOnDisk(index, c, g, from[j].id, 0, u, true, &map, NULL, NULL, NULL);
			MemoryContextSwitchTo(rcxt);
			MemoryContextReset(percall);
			if (done)
			{
				linked_now++;
				reach_from(index, c, &map, u);
			}
		}
		linked += linked_now;
		if (linked_now == 0)
			break;
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return linked;
}
