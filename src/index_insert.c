/*
 * index_insert.c
 *	  aminsert: encode a row with the index's own compressor and link it
 *	  into the graph on disk.
 *
 * The node is added first, with empty lists, then linked by graph_link.c's
 * QdbLinkNode, the same loop as the build's in memory: its own lists are
 * written, then each chosen neighbour gets a link back (pruned by the HNSW
 * heuristic when its list is full).  A back-link is computed from a copy of
 * the neighbour's list taken under a share lock and written under an
 * exclusive lock only if the list has not changed meanwhile (index_write.c
 * writes every list); otherwise it is computed again.  So an insert holds
 * at most one buffer lock at a time, and concurrent inserts and scans
 * proceed page by page.  The update lock is held in share mode for the
 * whole insert (see vacuum).
 */
#include "postgres.h"

#include "replication/logicalworker.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "index.h"

/*
 * The dimensions of an index without a compressor, into c->dim, for a row
 * of dim inserted into heap: from the meta page, which has those of the
 * first row the index was given.  Where they differ from dim and no row of
 * them is left in the heap (that first row's insert was rolled back, or
 * its rows were deleted), the index takes dim: a transaction that failed
 * or never committed does not decide the dimensions for good.
 *
 * The meta page is read under the update lock in share mode and changed
 * under it in exclusive mode, after the heap was searched: an insert whose
 * row the search missed (inserted into the heap after it) reads the new
 * dimensions; one that read the old ones had its row in the heap before the
 * search, which finds it (still being inserted counts) and keeps them.
 */
static void
untrained_dim(Relation index, Relation heap, QdbIndexCache *c, int dim)
{
	QdbMetaPageData meta;
	int			cur;

	LockPage(index, QDB_UPDATE_LOCK, ShareLock);
	QdbReadMeta(index, &meta);
	cur = meta.dim == 0 ? QdbSetUntrainedDim(index, 0, dim) : (int) meta.dim;
	UnlockPage(index, QDB_UPDATE_LOCK, ShareLock);
	/*
	 * A row of the index's dimensions found without the lock keeps them
	 * while the meta page still says them (refusing is then safe whatever
	 * happens after: read again, as another insert may have changed them
	 * meanwhile, session 62's review F3); the search that may change them
	 * runs under the lock, which holds off the index's inserts, only when
	 * none was found: a role that sends wrong-dimension rows no longer
	 * stalls the table's other inserters while the heap is read (session
	 * 61's second review, F1.2)
	 */
	if (cur != dim && heap != NULL && QdbHeapHasDim(heap, index, c, cur))
	{
		LockPage(index, QDB_UPDATE_LOCK, ShareLock);
		QdbReadMeta(index, &meta);
		UnlockPage(index, QDB_UPDATE_LOCK, ShareLock);
		if ((int) meta.dim == cur)
		{
			c->dim = cur;
			return;
		}
	}
	if (cur != dim && heap != NULL)
	{
		LockPage(index, QDB_UPDATE_LOCK, ExclusiveLock);
		QdbReadMeta(index, &meta);
		cur = (int) meta.dim;
		if (cur != dim && !QdbHeapHasDim(heap, index, c, cur))
			cur = QdbSetUntrainedDim(index, cur, dim);
		UnlockPage(index, QDB_UPDATE_LOCK, ExclusiveLock);
	}
	c->dim = cur;
}

/*
 * The vector of an index column value, checked against the index; *skip
 * is set for a vector the index does not hold (a zero vector under cosine).
 * An index without a compressor takes its dimensions from the rows of heap
 * (untrained_dim; heap NULL: the meta page's as they are).
 */
float *
QdbIndexVector(Relation index, Relation heap, QdbIndexCache *c, Datum value, bool *skip)
{
	int			dim;
	float	   *x = QdbDatumGetFloats(value, c->vectype, &dim, "vector");
	float	   *copy;

	if (c->untrained)
		untrained_dim(index, heap, c, dim);
	if (dim != c->dim)
	{
		const char *named = c->untrained ? NULL : QdbGetCompressorName(index);

		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("vector has %d dimensions, but index \"%s\" has %d",
						dim, RelationGetRelationName(index), c->dim),
				 c->untrained ?
				 errdetail("The index has no compressor yet and took its dimensions from the first row it was given, and the table still has rows of them (or rows whose delete has not committed).") :
				 errdetail("The index's compressor encodes vectors of %d dimensions.", c->dim),
				 !index->rd_index->indisvalid ?
				 errhint("Index %s is not valid: a CREATE INDEX CONCURRENTLY or REINDEX CONCURRENTLY is building it, or failed and left it. One that failed takes every insert until it is dropped (DROP INDEX).",
						 QdbRelationSqlName(index)) :
				 c->untrained && IsLogicalWorker() ?
				 errhint("A replicated transaction that deletes the rows of the index's dimensions and inserts rows of others is refused here each time it is applied: DROP INDEX %s and create it again once the subscription has caught up (or ALTER SUBSCRIPTION ... SKIP, which loses the transaction).",
						 QdbRelationSqlName(index)) :
				 c->untrained ?
				 errhint("REINDEX INDEX %s takes them from the table's rows again.",
						 QdbRelationSqlName(index)) :
				 named != NULL ?
				 errhint("The index option compressor names \"%s\": rows of other dimensions need another compressor, or no such option (ALTER INDEX %s RESET (compressor) and REINDEX, for an index that exists) so that the build trains one on the table's rows.",
						 named, QdbRelationSqlName(index)) : 0));
	}
	/* an index without a compressor computes no distance of its own */
	if (!c->untrained && c->metric != QDB_METRIC_COSINE)
		QdbCheckLength(x, dim, "vector");
	*skip = c->metric == QDB_METRIC_COSINE && QdbVectorIsZero(x, dim);
	copy = palloc(sizeof(float) * dim);
	memcpy(copy, x, sizeof(float) * dim);
	return copy;
}

/* Searches of one insert, the first included, when the ones before met a dead end */
#define LINK_TRIES	4

/* What the linking loop needs of an insert on pages (QdbLinkOps). */
typedef struct DiskLink
{
	Relation	index;
	QdbIndexCache *c;
	QdbDiskGraph *g;
	bool		may_restart;	/* a search through a dead end starts again */
	bool		restart;		/* it did: nothing was written */
} DiskLink;

static int
disk_set_own_lists(void *arg, uint32 id, int level, const uint32 *lists, const int *nlist)
{
	DiskLink   *d = arg;

	/*
	 * The searches ran into a dead end a concurrent VACUUM made (a node freed
	 * under them, or an entry point still being linked) and found less than
	 * half a level-0 list: a node with few or no neighbours is badly placed,
	 * or without a way out.  This is the first write: stop here (QdbLinkNode
	 * returns this status at once) and let the caller search again.  A
	 * small graph, or a node left alone for good, costs at most LINK_TRIES
	 * searches.
	 */
	if (d->may_restart && QdbDiskGraphMetUnlinked(d->g) &&
		nlist[0] < QdbLevelSlots(d->c->shape.m, 0) / 2)
	{
		d->restart = true;
		return QDB_ERR_DATA;
	}
	QdbWriteOwnLists(d->index, d->c, d->g, id, level, lists, nlist);
	return QDB_OK;
}

static bool
disk_link_back(void *arg, uint32 b, uint32 a, int level, bool force, QdbMayDrop may_drop,
			   void *drop_arg, uint32 *tied)
{
	DiskLink   *d = arg;

	return QdbLinkOnDisk(d->index, d->c, d->g, b, level, a, force, NULL, may_drop, drop_arg,
						 tied);
}

static const QdbLinkOps disk_link_ops = {disk_set_own_lists, disk_link_back};

/*
 * Links the new node into the graph on disk (graph_link.c's QdbLinkNode).
 * False when its searches met a dead end (may_restart) and it wrote
 * nothing: the caller reads the meta page again and calls it again.
 */
static bool
link_node(Relation index, QdbIndexCache *c, QdbNodeRef ref, int level, const float *x,
		  const QdbMetaPageData *meta, bool may_restart)
{
	DiskLink	d;
	float	   *table = palloc(sizeof(float) * qdb_table_floats(&c->model));
	float		bias;
	QdbLinkScratch s;
	int			status;

	d.index = index;
	d.c = c;
	d.may_restart = may_restart;
	d.restart = false;
	d.g = QdbDiskGraphCreate(index, c);
	/* the walk from meta's entry reads codes from this backend's cache */
	QdbCodeCacheSync(c, meta->free_generation);
	QdbReportStatus(qdb_compute_distance_table(&c->model, x, table, &bias),
					"could not compute the lookup table", NULL);
	QdbDiskGraphSetQuery(d.g, table, bias);
	if (!QdbLinkScratchInit(&s, QdbContextAlloc(CurrentMemoryContext), c->shape.m,
							c->ef_construction, c->shape.max_level))
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	status = QdbLinkNode(&qdb_disk_graph_ops, d.g, &disk_link_ops, &d, ref, level,
						 meta->entry, meta->entry_level, &s);
	if (d.restart)
		return false;
	QdbReportStatus(status, "could not link the new node", NULL);
	return true;
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
	for (int tries = 1;; tries++)
	{
		MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "quantumdb link",
												  ALLOCSET_DEFAULT_SIZES);
		MemoryContext old;
		bool		linked;

		QdbReadMeta(index, &meta);
		if (meta.entry == QDB_NO_NODE)
		{
			if (QdbSetEntry(index, ref, level, QDB_ENTRY_IF_EMPTY, QDB_NO_NODE))
			{
				MemoryContextDelete(cxt);
				UnlockPage(index, QDB_UPDATE_LOCK, ShareLock);
				return;
			}
			/* another insert became the entry first: link to it */
			QdbReadMeta(index, &meta);
		}
		/* each try's graph and scratch go with its context */
		old = MemoryContextSwitchTo(cxt);
		linked = link_node(index, c, ref, level, x, &meta, tries < LINK_TRIES);
		MemoryContextSwitchTo(old);
		MemoryContextDelete(cxt);
		if (linked)
			break;
	}
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
	x = QdbIndexVector(index, heap, c, values[0], &skip);
	/* without a compressor the vector is only checked: nothing is stored */
	if (!skip && !c->untrained)
	{
		code = palloc(c->shape.code_size);
		QdbReportStatus(qdb_compute_codes(&c->model, x, 1, code),
						"could not encode the vector", NULL);
		QdbInsertVector(index, c, x, code, heap_tid);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return false;
}
