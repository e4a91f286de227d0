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

/*
 * Node reads that one repair may spend walking again from the entry after
 * a forced link let go of a deleted member (possible only where a VACUUM's
 * bulkdelete did not finish): past them, the rest of the round is left to
 * the next round, and to the next VACUUM after the last.
 */
#define REPAIR_REWALK_READS	((double) 20 * 1000 * 1000)

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
	map->depth = NULL;			/* the repair's alone (QdbRepairReachability) */
	map->safe_in = NULL;
	map->list_dropped = false;
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

static bool
is_live(const QdbNodeMap *map, Size slot)
{
	return QdbNodeMapSlotHolds(map, slot) && !(map->flags[slot] & QDB_NODE_DELETED);
}

/*
 * Whether the link from node from to reached node member is one of
 * member's safe links (safe_in): from is live, reached, and labelled
 * strictly below member (QdbRepairReachability's invariant).
 */
static bool
safe_link(const QdbNodeMap *map, QdbNodeRef from, QdbNodeRef member)
{
	Size		fs,
				ms;

	if (map->depth == NULL || !QdbNodeMapHas(map, from) || !QdbNodeMapHas(map, member))
		return false;
	fs = QdbNodeSlot(map, from);
	ms = QdbNodeSlot(map, member);
	return map->reached[fs] && map->reached[ms] && is_live(map, fs) &&
		map->depth[fs] < map->depth[ms];
}

/*
 * Whether node from may let member go from its level-0 list for a forced
 * link: member keeps a safe link besides from's, so that it, and every
 * node reached through it, stays reached (QdbRepairReachability says why).
 * A count of links in was not enough: the other link could come from a
 * node reached only through member (two copies of one vector that list
 * each other), or from a deleted node; each VACUUM then linked some such
 * islands back and cut others off (session 57's concurrency hunt,
 * /work/runs/hunt-s57b.md F1: 9 rows left unreachable by every VACUUM).
 */
bool
QdbNodeMapMayDrop(const QdbNodeMap *map, QdbNodeRef from, QdbNodeRef member)
{
	Size		ms;

	if (map->depth == NULL)
		return false;
	if (!QdbNodeMapHas(map, member))
		return true;
	ms = QdbNodeSlot(map, member);
	if (!map->reached[ms])
		return true;
	return map->safe_in[ms] > (safe_link(map, from, member) ? 1 : 0);
}

/*
 * Keeps the safe links right after node from's level-0 list changed from
 * before to after, and notes whether the change let go of a reached member
 * that QdbNodeMapMayDrop was not asked about: a deleted one, which
 * QdbPlanLink leaves out of a list it rewrites (map->list_dropped).  A
 * member the map does not hold or did not reach (a concurrent insert's
 * node, a freed slot) holds up no reached node.
 */
void
QdbNodeMapNoteListChange(QdbNodeMap *map, QdbNodeRef from, const QdbNodeRef *before,
						 const QdbNodeRef *after, int n)
{
	int			i,
				j;

	for (i = 0; i < n; i++)
	{
		if (safe_link(map, from, before[i]) && map->safe_in[QdbNodeSlot(map, before[i])] > 0)
			map->safe_in[QdbNodeSlot(map, before[i])]--;
		if (safe_link(map, from, after[i]) &&
			map->safe_in[QdbNodeSlot(map, after[i])] < PG_UINT16_MAX)
			map->safe_in[QdbNodeSlot(map, after[i])]++;
	}
	map->list_dropped = false;
	for (i = 0; i < n && !map->list_dropped; i++)
	{
		bool		kept = false;

		if (before[i] == QDB_NO_NODE)
			continue;
		for (j = 0; j < n && !kept; j++)
			kept = after[j] == before[i];
		map->list_dropped = !kept && QdbNodeMapHas(map, before[i]) &&
			map->reached[QdbNodeSlot(map, before[i])] &&
			!is_live(map, QdbNodeSlot(map, before[i]));
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
 * Marks every node reachable at level 0 from start (and start itself),
 * breadth first; in the repair (map->depth set) labels each with its
 * parent's label + 1 (start: start_depth) and counts the safe links
 * (safe_link) into safe_in.
 */
static void
reach_from(Relation index, QdbIndexCache *c, QdbNodeMap *map, QdbNodeRef start,
		   uint16 start_depth)
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
	if (map->depth)
		map->depth[QdbNodeSlot(map, start)] = start_depth;
	while (qhead < qtail)
	{
		QdbNodeRef	ref = queue[qhead++];
		Size		rs = QdbNodeSlot(map, ref);
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
			Size		ls;

			if (!QdbNodeMapHas(map, list[j]))
				continue;
			ls = QdbNodeSlot(map, list[j]);
			if (!map->reached[ls])
			{
				map->reached[ls] = true;
				/* saturated, no label is below another: no drop */
				if (map->depth)
					map->depth[ls] = Min(map->depth[rs] + 1, PG_UINT16_MAX);
				queue[qtail++] = list[j];
			}
			/* saturated, a count is low, never high: a drop is refused */
			if (safe_link(map, ref, list[j]) && map->safe_in[ls] < PG_UINT16_MAX)
				map->safe_in[ls]++;
		}
		UnlockReleaseBuffer(buf);
	}
	pfree(queue);
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
	reach_from(index, c, map, meta->entry, 0);
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
 * the graph.  Returns how many links it added, and in *rewalks_out (when
 * not NULL) how many times the walk was made again (below).
 *
 * The walk labels each node it reaches with its parent's label + 1 (the
 * entry 0; saturating at 65535, where a child's label is its parent's and
 * none of its links in counts as safe), so every reached node but the
 * entry has a link in from its parent, reached before it and labelled
 * lower or (saturated) alike.  A link goes only where its target is the
 * member a list lets go.  A forced link into a full list drops a
 * member only when the member keeps a link in from another live reached
 * node labelled lower (QdbNodeMapMayDrop); a new link only adds, and the
 * part of the graph it reaches is labelled on from its new parent.  So the
 * property holds after every link, and following links labelled lower
 * leads from any reached node to the entry: no link the repair makes cuts
 * a reached node off (the parent chain, reached in order, leads back to
 * the entry), and no walk is needed between links.  The one
 * exception is a deleted member, which QdbPlanLink leaves out of a list it
 * rewrites without asking (only where a bulkdelete did not finish): after
 * such a link the walk is made again, within REPAIR_REWALK_READS.  (A
 * first version labelled a link safe from a node no deeper than the
 * member and walked again after every drop: after churn every link
 * dropped one, and a fixed bound of walks left hundreds of nodes unlinked;
 * session 57's review, /work/runs/review-s57b.md.)
 */
int64
QdbRepairReachability(Relation index, int64 *rewalks_out)
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
	int64		rewalks = 0,
				nodes = 0;
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
		nodes = 0;
		for (i = 0; i < total; i++)
			nodes += QdbNodeMapSlotHolds(&map, i);
		map.depth = palloc_extended(sizeof(uint16) * Max(total, 1),
									MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
		map.safe_in = palloc_extended(sizeof(uint16) * Max(total, 1),
									  MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
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
			{
				map.list_dropped = false;
				done = QdbLinkOnDisk(index, c, g, from[j].id, 0, u, true, &map, NULL, NULL, NULL);
			}
			if (done)
			{
				Size		fs = QdbNodeSlot(&map, from[j - 1].id);

				linked_now++;
				/* u's part of the graph hangs off from, which links to it safely */
				reach_from(index, c, &map, u, Min(map.depth[fs] + 1, PG_UINT16_MAX));
				if (map.depth[fs] < map.depth[i] && map.safe_in[i] < PG_UINT16_MAX)
					map.safe_in[i]++;
				if (map.list_dropped)
				{
					/* a deleted member went unasked: walk again, or wait */
					if ((double) (rewalks + 1) * Max(nodes, 1) > REPAIR_REWALK_READS)
					{
						MemoryContextSwitchTo(rcxt);
						MemoryContextReset(percall);
						break;
					}
					memset(map.reached, 0, sizeof(bool) * total);
					memset(map.depth, 0, sizeof(uint16) * total);
					memset(map.safe_in, 0, sizeof(uint16) * total);
					reach_from(index, c, &map, meta.entry, 0);
					rewalks++;
				}
			}
			MemoryContextSwitchTo(rcxt);
			MemoryContextReset(percall);
		}
		linked += linked_now;
		if (linked_now == 0)
			break;
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	if (rewalks_out)
		*rewalks_out = rewalks;
	return linked;
}
