/*
 * index_vacuum.c
 *	  VACUUM: remove dead heap TIDs and repair the graph around them.
 *
 * Pass 1 marks every node whose heap row is dead as deleted (its lists are
 * kept, so scans in flight still find their way through it).  Then the
 * update lock is taken in exclusive mode and released at once: inserts that
 * began before the marks, and could still link to a dead node, are done.
 * Pass 2 rewrites every list that holds a deleted node: the candidates are
 * the live neighbours plus the live neighbours of the deleted ones (and,
 * when those are few, the live nodes two hops through deleted ones), ranked
 * by code-to-code distance, the nearest 4 ef_construction of them chosen
 * from by the HNSW heuristic.  A deleted entry point is replaced by the live node
 * of the highest level.  Afterwards no live node links to a deleted one, so
 * scans do not spend ef_search on tombstones.
 *
 * amvacuumcleanup then links back any node no walk reaches (index_reach.c)
 * and frees the deleted nodes no live node links to any more: their lists
 * are cleared, they are flagged free, and their pages go to the free space
 * map, where inserts find slots of their size to reuse.  The node and list
 * changes themselves are index_write.c's.  When the index holds a quarter
 * fewer or more live nodes than when its calibration was taken, cleanup
 * starts a worker that measures it again (calibrate_worker.c).  A scan
 * that still holds the
 * reference of a freed slot may read the node that reuses it: a wrong turn
 * in its walk, never a wrong row, since rows come from the heap TID of the
 * node actually read.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "commands/vacuum.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "postmaster/autovacuum.h"
#include "storage/indexfsm.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "calibration.h"
#include "index.h"
#include "worker_place.h"

/* What plan_repair is given */
typedef struct RepairArg
{
	HTAB	   *deleted;
	int			ef_construction;
} RepairArg;

static bool
is_deleted(HTAB *h, QdbNodeRef ref)
{
	return hash_search(h, &ref, HASH_FIND, NULL) != NULL;
}

/* Pass 1: mark the nodes of dead rows; returns the set of deleted nodes. */
static HTAB *
mark_dead(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
		  IndexBulkDeleteCallback callback, void *callback_state,
		  const QdbMetaPageData *meta)
{
	Relation	index = info->index;
	HASHCTL		hctl;
	HTAB	   *deleted;
	QdbNodeShape shape;
	QdbNodeScan scan;

	QdbNodeShapeFromMeta(meta, &shape);
	memset(&hctl, 0, sizeof(hctl));
	hctl.keysize = sizeof(QdbNodeRef);
	hctl.entrysize = sizeof(QdbNodeRef);
	hctl.hcxt = CurrentMemoryContext;
	deleted = hash_create("quantumdb deleted nodes", 1024, &hctl,
						  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	QdbNodeScanBegin(&scan, index, &shape, meta->first_node_page,
					 RelationGetNumberOfBlocks(index), info->strategy,
					 BUFFER_LOCK_EXCLUSIVE, QDB_PACE_VACUUM);
	while (QdbNodeScanNextPage(&scan))
	{
		QdbXLog *state = QdbXLogStart(index);
		QdbNode		node;
		QdbNodeRef	ref;
		bool		changed = false;

		scan.page = QdbXLogRegister(state, scan.buf, 0);
		while ((node = QdbNodeScanNext(&scan, &ref)) != NULL)
		{
			/*
			 * A free slot is not "deleted" here: nothing links to it, and an
			 * insert may reuse it for a live node while pass 2 runs.
			 */
			if (node->flags & QDB_NODE_FREE)
				continue;
			if (node->flags & QDB_NODE_DELETED)
			{
				hash_search(deleted, &ref, HASH_ENTER, NULL);
				continue;
			}
			if (callback(&node->heaptid, callback_state))
			{
				QdbMarkNodeDeleted(node);
				hash_search(deleted, &ref, HASH_ENTER, NULL);
				stats->tuples_removed++;
				changed = true;
			}
			else
				stats->num_index_tuples++;
		}
		if (changed)
			QdbXLogFinish(state);
		else
			QdbXLogAbort(state);
	}
	QdbNodeScanEnd(&scan);
	return deleted;
}

static bool
list_has_deleted(HTAB *deleted, const QdbNodeRef *list, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (list[i] != QDB_NO_NODE && is_deleted(deleted, list[i]))
			return true;
	return false;
}

/*
 * QdbChangeList's plan for node self's list cur at level, when it holds
 * deleted nodes: graph_link.c's QdbPlanList over the nearest of the live
 * neighbours and the live neighbours of the deleted ones (FreshDiskANN's
 * consolidation), and, while those are fewer than enough, the live nodes
 * two hops away through deleted ones.  enough, four times an insert's
 * candidates (ef_construction), bounds both: taken always, the two hops
 * read (2m)^2 lists and scored (2m)^3 entries a node, and the heuristic
 * over all of them measured pairs by the hundred thousand, so that at m 48
 * a VACUUM after deleting 3 rows in 4 took 10 times the index's build.
 * test/bench/vacuum_repair.py measured the bound against one and against
 * none (test/bench/RESULTS.md, "VACUUM's repair after a mass delete").
 */
static bool
plan_repair(void *arg, QdbDiskGraph *g, QdbNodeRef self, int level, const QdbNodeRef *cur,
			int nslots, QdbNodeRef *want)
{
	RepairArg  *r = arg;
	const QdbGraphOps *ops = &qdb_disk_graph_ops;
	int			enough = 4 * Max(r->ef_construction, nslots);
	QdbCandidate *cand = NULL;
	int			ncand = 0,
				maxcand = 0;
	QdbNodeRef *far = NULL;
	int			nfar = 0;
	uint32		nb[2 * QDB_MAX_M];
	int			i,
				j;

	if (!list_has_deleted(r->deleted, cur, nslots))
		return false;
	ops->new_layer(g, level);
	ops->visit(g, self);

#define ADD_CANDIDATE(x) \
	do { \
		if (!is_deleted(r->deleted, (x)) && ops->visit(g, (x))) \
		{ \
			if (ncand == maxcand) \
			{ \
				maxcand = Max(4 * nslots, 2 * maxcand); \
				cand = ncand ? repalloc(cand, sizeof(QdbCandidate) * maxcand) \
					: palloc(sizeof(QdbCandidate) * maxcand); \
			} \
			cand[ncand].id = (x); \
			cand[ncand].dist = ops->pair(g, self, (x)); \
			ncand++; \
		} \
	} while (0)

	/* one hop: the live neighbours, and the deleted ones' live neighbours */
	for (i = 0; i < nslots; i++)
	{
		int			n1;

		if (cur[i] == QDB_NO_NODE)
			continue;
		if (!is_deleted(r->deleted, cur[i]))
		{
			ADD_CANDIDATE(cur[i]);
			continue;
		}
		n1 = ops->neighbors(g, cur[i], level, nb);
		for (j = 0; j < n1; j++)
		{
			if (!is_deleted(r->deleted, nb[j]))
				ADD_CANDIDATE(nb[j]);
			else
			{
				if (far == NULL)
					far = palloc(sizeof(QdbNodeRef) * nslots * 2 * QDB_MAX_M);
				far[nfar++] = nb[j];
			}
		}
	}
	/* two hops, while the live nodes found are fewer than enough */
	for (i = 0; i < nfar && ncand < enough; i++)
	{
		int			n2 = ops->neighbors(g, far[i], level, nb);

		for (j = 0; j < n2; j++)
			ADD_CANDIDATE(nb[j]);
	}
#undef ADD_CANDIDATE

	QdbSortCandidates(cand, ncand);
	(void) QdbPlanList(ops, g, cand, Min(ncand, enough), nslots, want);
	return true;
}

/* Repairs the lists of one live node, each level in a memory context of its own. */
static void
repair_node(Relation index, QdbIndexCache *c, HTAB *deleted, QdbNodeRef ref,
			int level, BufferAccessStrategy strategy)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "quantumdb repair",
											  ALLOCSET_DEFAULT_SIZES);
	QdbNodeRef	cur[2 * QDB_MAX_M];
	QdbNodeRef	want[2 * QDB_MAX_M];
	RepairArg	arg = {deleted, c->ef_construction};
	int			l;

	for (l = 0; l <= level; l++)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		(void) QdbChangeList(index, c, QdbDiskGraphCreate(index, c), ref, l, strategy,
							 plan_repair, &arg, cur, want);
		MemoryContextSwitchTo(old);
		MemoryContextReset(cxt);
	}
	MemoryContextDelete(cxt);
}

/* The live node of the highest level, or QDB_NO_NODE; its level in *level. */
static QdbNodeRef
highest_live_node(Relation index, QdbIndexCache *c, const QdbMetaPageData *meta,
				  BufferAccessStrategy strategy, int *level)
{
	QdbNodeRef	best = QDB_NO_NODE;
	QdbNodeScan scan;
	QdbNode		node;
	QdbNodeRef	ref;

	*level = -1;
	/* no cost-based sleep: the caller holds off every insert */
	QdbNodeScanBegin(&scan, index, &c->shape, meta->first_node_page,
					 RelationGetNumberOfBlocks(index), strategy, BUFFER_LOCK_SHARE,
					 QDB_PACE_INTERRUPTS);
	while (QdbNodeScanNextPage(&scan))
		while ((node = QdbNodeScanNext(&scan, &ref)) != NULL)
		{
			if (!(node->flags & QDB_NODE_DELETED) && node->level > *level)
			{
				*level = node->level;
				best = ref;
			}
		}
	QdbNodeScanEnd(&scan);
	return best;
}

/*
 * Whether node has a level-0 list.  A live node without one is an insert's,
 * still searching before it writes its lists (or one left alone in the
 * graph): as the entry point it would end every walk at itself.
 */
static bool
has_level0_list(const QdbIndexCache *c, QdbNode node)
{
	const QdbNodeRef *list = QdbNodeLists(node, c->shape.code_size) + QdbLevelStart(c->shape.m, 0);

	for (int i = 0; i < QdbLevelSlots(c->shape.m, 0); i++)
		if (list[i] != QDB_NO_NODE)
			return true;
	return false;
}

/* Pass 2: repair every live node's lists that hold deleted nodes; fix the entry. */
static void
repair_graph(IndexVacuumInfo *info, QdbIndexCache *c, HTAB *deleted,
			 const QdbMetaPageData *meta)
{
	Relation	index = info->index;
	QdbNodeRef	best = QDB_NO_NODE,
				best_unlinked = QDB_NO_NODE;
	int			best_level = -1,
				best_unlinked_level = -1;
	QdbNodeRef *todo = palloc(sizeof(QdbNodeRef) * QDB_MAX_NODES_PER_PAGE);
	uint8	   *todo_level = palloc(QDB_MAX_NODES_PER_PAGE);
	QdbNodeScan scan;

	QdbNodeScanBegin(&scan, index, &c->shape, meta->first_node_page,
					 RelationGetNumberOfBlocks(index), info->strategy, BUFFER_LOCK_SHARE,
					 QDB_PACE_VACUUM);
	while (QdbNodeScanNextPage(&scan))
	{
		QdbNode		node;
		QdbNodeRef	ref;
		int			ntodo = 0,
					i;

		while ((node = QdbNodeScanNext(&scan, &ref)) != NULL)
		{
			if (node->flags & QDB_NODE_DELETED)
				continue;
			/* the new entry point: the highest linked node, else unlinked */
			if (!has_level0_list(c, node))
			{
				if (node->level > best_unlinked_level)
				{
					best_unlinked_level = node->level;
					best_unlinked = ref;
				}
			}
			else if (node->level > best_level)
			{
				best_level = node->level;
				best = ref;
			}
			if (list_has_deleted(deleted, QdbNodeLists(node, c->shape.code_size),
								 QdbNodeSlots(c->shape.m, node->level)))
			{
				todo_level[ntodo] = node->level;
				todo[ntodo++] = ref;
			}
		}
		/* repair_node locks pages of its own */
		QdbNodeScanReleasePage(&scan);
		for (i = 0; i < ntodo; i++)
			repair_node(index, c, deleted, todo[i], todo_level[i], info->strategy);
	}
	QdbNodeScanEnd(&scan);
	if (best == QDB_NO_NODE)
	{
		best = best_unlinked;
		best_level = best_unlinked_level;
	}

	if (meta->entry != QDB_NO_NODE && is_deleted(deleted, meta->entry))
	{
		if (best == QDB_NO_NODE)
		{
			/*
			 * No live node was seen, but an insert may have added one behind
			 * the scan: look again with inserts held off, so the entry point
			 * never goes to none while a live node exists.
			 */
			LockPage(index, QDB_UPDATE_LOCK, ExclusiveLock);
			best = highest_live_node(index, c, meta, info->strategy, &best_level);
			QdbSetEntry(index, best, best_level, QDB_ENTRY_IF_EXPECTED, meta->entry);
			UnlockPage(index, QDB_UPDATE_LOCK, ExclusiveLock);
		}
		else
			QdbSetEntry(index, best, best_level, QDB_ENTRY_IF_EXPECTED, meta->entry);
	}
}

/*
 * What a VACUUM says of an index without a compressor: suffix ends the
 * message; the hint, when NULL, names the way to train it now.
 */
static void
untrained_report(IndexVacuumInfo *info, int elevel, const char *suffix, const char *detail,
				 const char *hint)
{
	ereport(elevel,
			(errmsg("index \"%s\" has no compressor yet, and its table now has about %.0f rows%s",
					RelationGetRelationName(info->index), info->num_heap_tuples, suffix),
			 errdetail_internal("%s", detail),
			 hint ? errhint("%s", hint) :
			 RelationGetIndexPredicate(info->index) != NIL ?
			 errhint("REINDEX INDEX CONCURRENTLY %s; trains it once 256 of the rows it covers have a vector.",
					 QdbRelationSqlName(info->index)) :
			 errhint("REINDEX INDEX CONCURRENTLY %s; trains it.",
					 QdbRelationSqlName(info->index))));
}

/*
 * VACUUM of an index without a compressor: nothing to clean.  When the
 * table has rows enough (the index's train_after_rows), a background
 * worker trains one (train_worker.c), and a NOTICE says so; with fewer, or
 * none started, a NOTICE when the table has rows enough to train one
 * (REINDEX does).  False for other indexes.
 */
static bool
untrained_cleanup(IndexVacuumInfo *info, IndexBulkDeleteResult **stats)
{
	QdbMetaPageData meta;
	double		train_after;
	bool		due;
	Oid			leftover = InvalidOid;
	TimestampTz until;
	int			failures;
	/* autovacuum's NOTICEs reach no one: a WARNING reaches the server log */
	int			level = IsAutoVacuumWorkerProcess() ? WARNING : NOTICE;

	QdbReadMeta(info->index, &meta);
	if (!QdbMetaUntrained(&meta))
		return false;
	if (*stats == NULL)
		*stats = palloc0(sizeof(IndexBulkDeleteResult));
	(*stats)->num_index_tuples = 0;
	(*stats)->num_pages = RelationGetNumberOfBlocks(info->index);
	/*
	 * Nor for an index that is not valid (a REINDEX CONCURRENTLY's copy or
	 * old index left by a failure): no worker trains it, and only DROP INDEX
	 * is the way on
	 */
	if (info->num_heap_tuples < QDB_KSUB || !info->index->rd_index->indisvalid)
		return true;
	train_after = QdbTrainAfterRows(info->index);
	due = train_after > 0 && info->num_heap_tuples >= train_after;
	if (due)
	{
		/* VACUUM holds the table's lock */
		Relation	heap = table_open(info->index->rd_index->indrelid, NoLock);

		leftover = QdbTrainLeftover(heap, info->index);
		table_close(heap, NoLock);
	}
	if (due && OidIsValid(leftover))
		untrained_report(info, level, "",
						 psprintf("A REINDEX CONCURRENTLY of it that did not finish left index \"%s\", not valid (%s): no background worker trains this index while it is there.",
								  get_rel_name(leftover), QdbLeftoverCost(leftover)),
						 psprintf("DROP INDEX CONCURRENTLY %s;",
								  quote_qualified_identifier(get_namespace_name(get_rel_namespace(leftover)),
															 get_rel_name(leftover))));
	else if (due && !QdbTrainRetryNow(info->index, &until, &failures))
		untrained_report(info, IsAutoVacuumWorkerProcess() ? DEBUG1 : NOTICE, "",
						 psprintf("A background worker's training of it failed %d time%s in a row: no VACUUM starts another before %s (quantumdb.train_retry_delay). A worker that found it covering fewer than 256 rows with a vector counts as failed.",
								  failures, failures == 1 ? "" : "s", timestamptz_to_str(until)),
						 NULL);
	else if (due && QdbLaunchTrainWorker(info->index))
		untrained_report(info, IsAutoVacuumWorkerProcess() ? LOG : NOTICE,
						 ": a background worker trains one",
						 psprintf("The worker runs REINDEX INDEX CONCURRENTLY %s once this VACUUM ends; the index's scans read every row of the table until it is done.",
								  QdbRelationSqlName(info->index)),
						 psprintf("The index option train_after_rows (%d rows here; 0 turns the worker off) says when.",
								  QdbGetTrainAfterRows(info->index)));
	else if (due)
		untrained_report(info, level, "",
						 "No background worker could start to train one (max_worker_processes); the next VACUUM tries again. Its scans read every row of the table until it has one.",
						 NULL);
	else
		/*
		 * the worker trains it once the table reaches its threshold: under
		 * autovacuum nothing to tell at each round (a WARNING per partition
		 * per round flooded the log, some 3,300 lines a minute; session 66's
		 * hunt, /work/runs/hunt-s66e.md F3); with the worker off it stays
		 */
		untrained_report(info, IsAutoVacuumWorkerProcess() && train_after > 0 ? DEBUG1 : level, "",
						 psprintf("Its scans read every row of the table until it has one; a REINDEX trains one once 256 of the rows it covers have a vector.%s",
								  train_after > 0 ? psprintf(" A background worker trains it after a VACUUM that finds %.0f rows (the index option train_after_rows).", train_after) : ""),
						 NULL);
	return true;
}

/*
 * VACUUM of an index whose build trained its compressor on all the rows it
 * covered, fewer than its train_after_rows (QDB_BUILT_SMALL_SAMPLE), or
 * whose compressor a calibration found fitting the rows much worse than at
 * the build (QDB_BUILT_FIT_STALE, calibrate_worker.c): once the table and
 * the rows the index covers (nodes, its live nodes) reach train_after_rows,
 * a background worker trains it again by REINDEX INDEX CONCURRENTLY,
 * as for an index without one (untrained_cleanup); meanwhile the index
 * answers with the compressor it has.  A leftover of a REINDEX
 * CONCURRENTLY or a recent failure holds the worker back, as there.  True
 * when a worker started: no calibration worker then (the REINDEX
 * calibrates the new index, and the calibration's hold on the index made
 * the train worker give up).
 */
static bool
retrain_cleanup(IndexVacuumInfo *info, double nodes)
{
	Relation	index = info->index;
	QdbMetaPageData meta;
	double		train_after = QdbTrainAfterRows(index);
	Oid			leftover;
	TimestampTz until;
	int			failures;
	Relation	heap;

	QdbReadMeta(index, &meta);
	/*
	 * the rows the index covers (its live nodes), not the table's: a
	 * partial index, or a table of rows mostly without a vector, was rebuilt
	 * and marked again at every retry (session 63's second review,
	 * /work/runs/review-s63c.md F1)
	 */
	if (!(meta.build_flags & QDB_BUILT_RETRAIN) || !index->rd_index->indisvalid ||
		train_after <= 0 || info->num_heap_tuples < train_after || nodes < train_after)
		return false;
	/* VACUUM holds the table's lock */
	heap = table_open(index->rd_index->indrelid, NoLock);
	leftover = QdbTrainLeftover(heap, index);
	table_close(heap, NoLock);
	/* a leftover is named by qdbvacuumcleanup (leftover_report) */
	if (OidIsValid(leftover))
		return false;
	if (!QdbTrainRetryNow(index, &until, &failures))
	{
		/* said, as for an index without a compressor (session 66's hunt F1) */
		ereport(IsAutoVacuumWorkerProcess() ? DEBUG1 : NOTICE,
				(errmsg("index \"%s\" is to have its compressor trained again, but not yet",
						RelationGetRelationName(index)),
				 errdetail("A background worker's training of it failed %d time%s in a row: no VACUUM starts another before %s (quantumdb.train_retry_delay).",
						   failures, failures == 1 ? "" : "s", timestamptz_to_str(until)),
				 errhint("REINDEX INDEX CONCURRENTLY %s; trains it now.",
						 QdbRelationSqlName(index))));
		return false;
	}
	if (!QdbLaunchTrainWorker(index))
		return false;
	ereport(IsAutoVacuumWorkerProcess() ? LOG : NOTICE,
			((meta.build_flags & QDB_BUILT_SMALL_SAMPLE) ?
			 errmsg("index \"%s\" has a compressor its build trained on fewer rows than its train_after_rows (%d), and its table now has about %.0f rows: a background worker trains another",
					RelationGetRelationName(index), QdbGetTrainAfterRows(index),
					info->num_heap_tuples) :
			 errmsg("index \"%s\" has a compressor that fits its rows worse than at its build: a background worker trains another",
					RelationGetRelationName(index)),
			 errdetail("The worker runs REINDEX INDEX CONCURRENTLY %s once this VACUUM ends; the index answers with the compressor it has until then.",
					   QdbRelationSqlName(index)),
			 errhint("The index option train_after_rows (0 turns the worker off) says when.")));
	return true;
}

IndexBulkDeleteResult *
qdbbulkdelete(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
			  IndexBulkDeleteCallback callback, void *callback_state)
{
	Relation	index = info->index;
	QdbMetaPageData meta;
	QdbIndexCache *c;
	HTAB	   *deleted;
	double		removed_before;

	if (stats == NULL)
		stats = palloc0(sizeof(IndexBulkDeleteResult));
	removed_before = stats->tuples_removed;
	stats->num_index_tuples = 0;
	QdbReadMeta(index, &meta);
	if (QdbMetaUntrained(&meta))
	{
		/* no compressor, nothing stored (QDB_BUILT_UNTRAINED) */
		stats->num_pages = RelationGetNumberOfBlocks(index);
		return stats;
	}
	c = QdbPinIndexCache(index, true);
	/* the repairs below read codes from this backend's cache too */
	QdbCodeCacheSync(c, meta.free_generation);
	deleted = mark_dead(info, stats, callback, callback_state, &meta);

	if (stats->tuples_removed > removed_before || hash_get_num_entries(deleted) > 0)
	{
		/* wait out inserts that may have chosen a node marked above */
		LockPage(index, QDB_UPDATE_LOCK, ExclusiveLock);
		UnlockPage(index, QDB_UPDATE_LOCK, ExclusiveLock);
		QdbReadMeta(index, &meta);
		repair_graph(info, c, deleted, &meta);
	}
	hash_destroy(deleted);
	stats->num_pages = RelationGetNumberOfBlocks(index);
	return stats;
}

/* Marks every node that a live node (or the meta page) links to. */
static void
mark_linked(Relation index, const QdbMetaPageData *meta, QdbNodeMap *map,
			BufferAccessStrategy strategy)
{
	QdbNodeShape shape;
	QdbNodeScan scan;
	QdbNode		node;
	QdbNodeRef	ref;

	QdbNodeShapeFromMeta(meta, &shape);
	if (QdbNodeMapHas(map, meta->entry))
		map->reached[QdbNodeSlot(map, meta->entry)] = true;
	/* the nodes of the map only */
	QdbNodeScanBegin(&scan, index, &shape, map->first, map->nblocks, strategy,
					 BUFFER_LOCK_SHARE, QDB_PACE_VACUUM);
	scan.maxoff = map->maxoff;
	while (QdbNodeScanNextPage(&scan))
		while ((node = QdbNodeScanNext(&scan, &ref)) != NULL)
		{
			QdbNodeRef *list = QdbNodeLists(node, meta->code_size);
			int			j;

			if (node->flags & QDB_NODE_DELETED)
				continue;
			for (j = 0; j < QdbNodeSlots(meta->m, node->level); j++)
				if (QdbNodeMapHas(map, list[j]))
					map->reached[QdbNodeSlot(map, list[j])] = true;
		}
	QdbNodeScanEnd(&scan);
}

/* Whether map has a deleted node, not free yet, that nothing links to. */
static bool
any_to_free(const QdbNodeMap *map)
{
	Size		total = QdbNodeMapSlotAt(map, map->nblocks, 0);

	for (Size i = 0; i < total; i++)
		if (QdbNodeMapSlotHolds(map, i) &&
			(map->flags[i] & (QDB_NODE_DELETED | QDB_NODE_FREE)) == QDB_NODE_DELETED &&
			!map->reached[i])
			return true;
	return false;
}

/*
 * Frees the deleted nodes that nothing links to and offers their pages to
 * the free space map.  No insert links to a deleted node (they skip them),
 * so a node found unlinked stays unlinked.  Returns how many it freed.
 */
int64
QdbFreeUnlinkedNodes(Relation index, BufferAccessStrategy strategy)
{
	QdbMetaPageData meta;
	QdbNodeMap	map;
	int64		freed = 0;
	QdbNodeShape shape;
	QdbNodeScan scan;
	BlockNumber *free_pages;
	int			nfree_pages = 0,
				i;
	bool		bumped = false;

	QdbReadMeta(index, &meta);
	QdbNodeShapeFromMeta(&meta, &shape);
	QdbNodeMapRead(index, &meta, &map);
	free_pages = palloc_extended(sizeof(BlockNumber) * Max(map.nblocks - map.first, 1),
								 MCXT_ALLOC_HUGE);
	memset(map.reached, 0, sizeof(bool) * QdbNodeMapSlots(map.first, map.nblocks));

	/*
	 * Deleted nodes to free (any_to_free: none is marked reached yet): wait
	 * out the inserts that may have chosen one before it was marked and not
	 * linked it yet, as qdbbulkdelete does.  A VACUUM cancelled between its
	 * marks and that wait, then one that frees without a bulkdelete of its
	 * own (PostgreSQL skips index vacuuming when few pages have dead rows)
	 * or whose bulkdelete marked nothing new, would otherwise free a node an
	 * insert still links to.  Inserts that start after the wait skip them.
	 */
	if (any_to_free(&map))
	{
		LockPage(index, QDB_UPDATE_LOCK, ExclusiveLock);
		UnlockPage(index, QDB_UPDATE_LOCK, ExclusiveLock);
	}
	mark_linked(index, &meta, &map, strategy);

	/*
	 * A reused slot holds another node and code: every backend's walks
	 * forget the codes they keep of this index (index_code_cache.c) once
	 * they see a new generation.  Moved on before the first node is freed,
	 * so that a VACUUM cancelled after that (while it frees, or while it
	 * waits to truncate the heap) has moved it too: the relcache
	 * invalidation at the end goes only with a commit, and the next VACUUM
	 * finds the slots free already.  A walk that forgets its codes now
	 * cannot cache these nodes' again: nothing links to them.
	 */
	if (any_to_free(&map))
	{
		QdbNextFreeGeneration(index);
		bumped = true;
	}

	/* the nodes of the map only: a node added since is live */
	QdbNodeScanBegin(&scan, index, &shape, map.first, map.nblocks, strategy,
					 BUFFER_LOCK_EXCLUSIVE, QDB_PACE_VACUUM);
	scan.maxoff = map.maxoff;
	while (QdbNodeScanNextPage(&scan))
	{
		QdbXLog *state = QdbXLogStart(index);
		QdbNode		node;
		QdbNodeRef	ref;
		int			nfree = 0,
					nnew = 0;
		bool		changed = false;
		/* a page left all zeros by a crash (index_nodes.c) is free too */
		bool		zero_page = PageIsNew(scan.page) && scan.blkno < QDB_MAX_BLOCKS;

		scan.page = QdbXLogRegister(state, scan.buf, 0);
		while ((node = QdbNodeScanNext(&scan, &ref)) != NULL)
		{
			Size		slot = QdbNodeSlot(&map, ref);

			if (node->flags & QDB_NODE_FREE)
				nfree++;
			else if ((node->flags & QDB_NODE_DELETED) && map.reached[slot])
			{
				/*
				 * A deleted node that stays (live nodes still link to it)
				 * lets go of the nodes freed now or before: their slots may
				 * be reused, and a link (or inline code) kept to a reused
				 * slot would describe another row.
				 */
				if (QdbDropLinksToFree(&map, &meta, node))
					changed = true;
			}
			else if ((node->flags & QDB_NODE_DELETED) && !map.reached[slot])
			{
				QdbFreeNode(&meta, node);
				nnew++;
			}
		}
		if (nnew > 0 || changed)
			QdbXLogFinish(state);
		else
			QdbXLogAbort(state);
		if (nfree + nnew > 0 || zero_page)
			free_pages[nfree_pages++] = scan.blkno;
		freed += nnew;
	}
	QdbNodeScanEnd(&scan);

	/* a node freed that the map did not show (none should be) */
	if (freed > 0 && !bumped)
		QdbNextFreeGeneration(index);
	/* offered for reuse only now that no node links to a freed slot */
	for (i = 0; i < nfree_pages; i++)
		RecordFreeIndexPage(index, free_pages[i]);
	IndexFreeSpaceMapVacuum(index);

	/* and every backend drops them at once when this commits */
	if (freed > 0)
		CacheInvalidateRelcache(index);
	return freed;
}

static double
count_live_nodes(Relation index, BufferAccessStrategy strategy)
{
	QdbMetaPageData meta;
	QdbNodeShape shape;
	QdbNodeScan scan;
	QdbNode		node;
	QdbNodeRef	ref;
	double		n = 0;

	QdbReadMeta(index, &meta);
	QdbNodeShapeFromMeta(&meta, &shape);
	QdbNodeScanBegin(&scan, index, &shape, meta.first_node_page,
					 RelationGetNumberOfBlocks(index), strategy, BUFFER_LOCK_SHARE,
					 QDB_PACE_NONE);
	while (QdbNodeScanNextPage(&scan))
		while ((node = QdbNodeScanNext(&scan, &ref)) != NULL)
			if (!(node->flags & QDB_NODE_DELETED))
				n++;
	QdbNodeScanEnd(&scan);
	return n;
}

/*
 * VACUUM of a valid index with a compressor: names an index a REINDEX
 * CONCURRENTLY of it left (its copy, or the old index after the swap; not
 * valid), which takes every insert once it got that far and keeps the
 * train worker from training the index again.  Before, only an index
 * without a compressor was told: one marked to be trained again kept its
 * compressor for good, its VACUUMs silent, and a copy left beside an index
 * trained since by hand, or an old index left after the swap, was never
 * named (session 66's hunt, /work/runs/hunt-s66d.md F1, F4).
 */
static void
leftover_report(IndexVacuumInfo *info)
{
	Relation	index = info->index;
	Relation	heap;
	Oid			leftover;
	QdbMetaPageData meta;

	if (!index->rd_index->indisvalid)
		return;
	/* VACUUM holds the table's lock */
	heap = table_open(index->rd_index->indrelid, NoLock);
	leftover = QdbTrainLeftover(heap, index);
	table_close(heap, NoLock);
	if (!OidIsValid(leftover))
		return;
	QdbReadMeta(index, &meta);
	ereport(IsAutoVacuumWorkerProcess() ? WARNING : NOTICE,
			(errmsg("a REINDEX CONCURRENTLY of index \"%s\" that did not finish left index \"%s\"",
					RelationGetRelationName(index), get_rel_name(leftover)),
			 (meta.build_flags & QDB_BUILT_RETRAIN) && QdbTrainAfterRows(index) > 0 ?
			 errdetail("It is not valid: %s; no background worker trains index \"%s\" again while it is there.",
					   QdbLeftoverCost(leftover), RelationGetRelationName(index)) :
			 errdetail("It is not valid: %s.", QdbLeftoverCost(leftover)),
			 errhint("DROP INDEX CONCURRENTLY %s;",
					 quote_qualified_identifier(get_namespace_name(get_rel_namespace(leftover)),
												get_rel_name(leftover)))));
}

IndexBulkDeleteResult *
qdbvacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats)
{
	Relation	index = info->index;

	if (info->analyze_only)
		return stats;
	/* indexes noted for a worker that none serves now (a restart) */
	QdbWorkerServeNotes();
	if (untrained_cleanup(info, &stats))
		return stats;

	if (stats == NULL)
	{
		/* no bulkdelete ran: count the live nodes */
		stats = palloc0(sizeof(IndexBulkDeleteResult));
		stats->num_index_tuples = count_live_nodes(index, info->strategy);
	}
	/*
	 * An index that changed much since its calibration: a worker measures it
	 * again (calibrate_worker.c), not this VACUUM, unless a train worker
	 * is to build it anew; decided before the nodes are freed below, so
	 * that nothing after them can fail.  The entries removed count
	 * towards it (rows replaced by others keep the count of nodes).
	 */
	QdbAddCalibrationRemoved(index, stats->tuples_removed);
	leftover_report(info);
	{
		QdbCalibration cal;

		if (!retrain_cleanup(info, stats->num_index_tuples) &&
			QdbReadCalibrationQuiet(index, &cal) &&
			QdbCalibrationStale(&cal, stats->num_index_tuples) &&
			!QdbLaunchCalibrationWorker(index))
		{
			/*
			 * noted for the database's next calibration worker: a table
			 * nobody writes to again gets no later VACUUM (session 66's
			 * hunt, /work/runs/hunt-s66e.md F1)
			 */
			QdbNoteIndex(QDB_NOTE_CALIBRATE_WAITING, RelationGetRelid(index));
			ereport(DEBUG1,
					(errmsg("index \"%s\": no background worker free to calibrate it again; noted for the next calibration worker of the database",
							RelationGetRelationName(index))));
		}
	}
	/* inserts and repairs can leave a node nobody links to: link it back */
	{
		int64		rewalks = 0;
		int64		linked = QdbRepairReachability(index, &rewalks);

		if (linked > 0)
			ereport(info->message_level,
					(errmsg("index \"%s\": linked back %lld nodes no walk from the entry point reached",
							RelationGetRelationName(index), (long long) linked),
					 rewalks > 0 ?
					 errdetail("The walk was made again %lld times, after links that let a deleted node go.",
							   (long long) rewalks) : 0));
	}
	QdbFreeUnlinkedNodes(index, info->strategy);
	QdbInitForkCheck(index);
	stats->num_pages = RelationGetNumberOfBlocks(index);
	return stats;
}

/* The index's live (not deleted) nodes, by a walk over its node pages. */
double
QdbCountLiveNodes(Relation index)
{
	return count_live_nodes(index, NULL);
}
