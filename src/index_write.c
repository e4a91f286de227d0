/*
 * index_write.c
 *	  Every write of a node: whole new nodes, neighbour lists and flags.
 *
 * The one place where nodes are written, so "where does a list change" has
 * one answer.  Every change goes through QdbXLog (index_pages.c), which
 * logs nothing while this backend builds the index:
 *
 *	QdbFormNode, QdbAddNode	a new node with empty lists (an insert), on the
 *							insert page, a new page or a free slot to reuse
 *	QdbWriteBuildGraph		the build's graph in memory, written whole to
 *							new pages (no WAL: the build logs them at its end)
 *	QdbWriteOwnLists		a new node's own lists, all levels, one WAL record
 *	QdbChangeList			one level's list of a node: copy, plan (the
 *							caller's planner), compare and write
 *	QdbLinkOnDisk			QdbChangeList with graph_link.c's QdbPlanLink:
 *							inserts' back-links, the reachability repair
 *							(vacuum's repairs call QdbChangeList with theirs)
 *	QdbMarkNodeDeleted		vacuum pass 1's deleted flag
 *	QdbDropLinksToFree		a deleted node lets go of freed nodes
 *	QdbFreeNode				the free flag and empty lists
 *
 * QdbAddNode, QdbWriteOwnLists, QdbChangeList and QdbLinkOnDisk lock and log
 * the page themselves, one buffer lock at a time.  The last three change a
 * node of a page that the caller's walk holds exclusively locked and has
 * registered with QdbXLog (index_nodes.c); the caller finishes the record.
 *
 * With inline codes a list slot carries its neighbour's code.  Those come
 * from the walk's read cache (index_graph.c's QdbDiskGraphKnownCode), filled
 * before the page is locked (QdbDiskGraphLoadCodes), so that no other page
 * is read under the exclusive lock.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/indexfsm.h"
#include "storage/lmgr.h"

#include "graph_memory.h"
#include "index.h"

#define CHANGE_TRIES	10

/*
 * Sets node's list at level to refs (n of them, then empty slots), with
 * their codes when the index keeps them inline: those must be known to g
 * (see QdbDiskGraphLoadCodes), since the caller holds the page locked.
 */
static void
set_list(const QdbIndexCache *c, QdbDiskGraph *g, QdbNode node, int level,
		 const QdbNodeRef *refs, int n)
{
	QdbNodeRef *list = QdbNodeLists(node, c->shape.code_size) + QdbLevelStart(c->shape.m, level);
	int			i;

	for (i = 0; i < QdbLevelSlots(c->shape.m, level); i++)
	{
		list[i] = i < n ? refs[i] : QDB_NO_NODE;
		if (c->shape.inline_codes)
		{
			uint8	   *dst = QdbSlotCode(c, node, level, i);

			if (list[i] == QDB_NO_NODE)
				memset(dst, 0, c->shape.code_size);
			else
			{
				const uint8 *code = QdbDiskGraphKnownCode(g, list[i]);

				if (code == NULL)
					elog(ERROR, "code of node (%u,%u) is not known",
						 QdbRefBlock(list[i]), QdbRefOffset(list[i]));
				memcpy(dst, code, c->shape.code_size);
			}
		}
	}
}

/*
 * Writes the lists of the new node ref, levels 0..level, in one WAL record:
 * lists laid out as on the node (QdbLevelStart), level l holding nlist[l]
 * refs.  Their codes are loaded through g first.
 */
void
QdbWriteOwnLists(Relation index, const QdbIndexCache *c, QdbDiskGraph *g, QdbNodeRef ref,
				 int level, const QdbNodeRef *lists, const int *nlist)
{
	Buffer		buf;
	QdbXLog    *state;
	Page		page;
	QdbNode		node;
	int			l;

	for (l = 0; l <= level; l++)
		QdbDiskGraphLoadCodes(g, lists + QdbLevelStart(c->shape.m, l), nlist[l]);
	buf = ReadBuffer(index, QdbRefBlock(ref));
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	state = QdbXLogStart(index);
	page = QdbXLogRegister(state, buf, 0);
	node = QdbPageGetNode(index, &c->shape, page, QdbRefBlock(ref), QdbRefOffset(ref));
	for (l = 0; l <= level; l++)
		set_list(c, g, node, l, lists + QdbLevelStart(c->shape.m, l), nlist[l]);
	QdbXLogFinish(state);
	UnlockReleaseBuffer(buf);
}

/*
 * The write half of every list change: loads the codes of want through g
 * (no lock held), then, with buf (pinned, unlocked) holding node ref, sets
 * its list at level to want (the level's slots) if the list is still expect
 * and the node is not deleted; one WAL record.  Releases buf.  Returns
 * whether it wrote.
 */
static bool
write_list_if_unchanged(Relation index, const QdbIndexCache *c, QdbDiskGraph *g,
						Buffer buf, QdbNodeRef ref, int level,
						const QdbNodeRef *expect, const QdbNodeRef *want)
{
	int			nslots = QdbLevelSlots(c->shape.m, level);
	QdbXLog    *state;
	QdbNode		node;
	bool		write;

	QdbDiskGraphLoadCodes(g, want, nslots);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	state = QdbXLogStart(index);
	node = QdbPageGetNode(index, &c->shape, QdbXLogRegister(state, buf, 0),
						  QdbRefBlock(ref), QdbRefOffset(ref));
	/*
	 * the level again too: a slot VACUUM freed meanwhile may hold a node of
	 * a lower level now (reuse_slot resizes slots), whose tuple ends before
	 * this level's list would
	 */
	write = !(node->flags & QDB_NODE_DELETED) && node->level >= level &&
		memcmp(QdbNodeLists(node, c->shape.code_size) + QdbLevelStart(c->shape.m, level), expect,
			   sizeof(QdbNodeRef) * nslots) == 0;
	if (write)
	{
		set_list(c, g, node, level, want, nslots);
		QdbXLogFinish(state);
	}
	else
		QdbXLogAbort(state);
	UnlockReleaseBuffer(buf);
	return write;
}

/*
 * Changes the list of live node ref at level as plan decides, by copy, plan,
 * compare and write: the list is copied under a share lock (the node's code
 * and inline codes noted in g), planned with no lock held, and written under
 * an exclusive lock only if it is still the copy; else all again, up to
 * CHANGE_TRIES times, pages read with strategy.  cur and want (room for the level's slots) hold the
 * last copy and plan.  A deleted node, or one below level, is left alone.
 */
QdbListChange
QdbChangeList(Relation index, const QdbIndexCache *c, QdbDiskGraph *g, QdbNodeRef ref,
			  int level, BufferAccessStrategy strategy, QdbListPlanner plan, void *arg,
			  QdbNodeRef *cur, QdbNodeRef *want)
{
	int			nslots = QdbLevelSlots(c->shape.m, level);
	BlockNumber blkno = QdbRefBlock(ref);
	int			try;

	for (try = 0; try < CHANGE_TRIES; try++)
	{
		Buffer		buf = ReadBufferExtended(index, MAIN_FORKNUM, blkno, RBM_NORMAL, strategy);
		QdbNode		node;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		node = QdbPageGetNode(index, &c->shape, BufferGetPage(buf), blkno, QdbRefOffset(ref));
		if ((node->flags & QDB_NODE_DELETED) || node->level < level)
		{
			UnlockReleaseBuffer(buf);
			return QDB_LIST_LEFT;
		}
		memcpy(cur, QdbNodeLists(node, c->shape.code_size) + QdbLevelStart(c->shape.m, level),
			   sizeof(QdbNodeRef) * nslots);
		QdbDiskGraphNoteCode(g, ref, node->code);
		QdbDiskGraphNoteList(g, node, level);
		LockBuffer(buf, BUFFER_LOCK_UNLOCK);

		if (!plan(arg, g, ref, level, cur, nslots, want))
		{
			ReleaseBuffer(buf);
			return QDB_LIST_LEFT;
		}
		if (write_list_if_unchanged(index, c, g, buf, ref, level, cur, want))
			return QDB_LIST_WRITTEN;
	}
	return QDB_LIST_RACED;
}

/* QdbLinkOnDisk's plan: QdbPlanLink's, remembered. */
typedef struct LinkRequest
{
	QdbNodeRef	n;				/* whose list */
	QdbNodeRef	add;
	bool		force;
	QdbNodeMap *map;
	QdbMayDrop	may_drop;		/* without a map: the caller's rule, or NULL */
	void	   *drop_arg;
	QdbLinkPlan result;
	QdbNodeRef	tied;			/* of the last plan */
} LinkRequest;

/* A member that this link alone keeps reached must stay (QdbNodeMapMayDrop). */
static bool
may_drop(void *arg, uint32 id)
{
	LinkRequest *r = arg;

	return QdbNodeMapMayDrop(r->map, r->n, id);
}

static bool
plan_link(void *arg, QdbDiskGraph *g, QdbNodeRef ref, int level, const QdbNodeRef *cur,
		  int nslots, QdbNodeRef *want)
{
	LinkRequest *r = arg;

	r->result = QdbPlanLink(&qdb_disk_graph_ops, g, ref, cur, nslots, r->add, r->force,
							r->map ? may_drop : r->may_drop, r->map ? (void *) r : r->drop_arg,
							want, &r->tied);
	return r->result == QDB_LINK_WRITE;
}

/*
 * Links node n at level to add as QdbPlanLink plans (force: add must get
 * in; given a map, only at the cost of a member that stays reached without
 * this link (QdbNodeMapMayDrop), and the map follows the change; else
 * may_drop, NULL for any, says which members may go).
 * Returns whether n links to add afterwards.  If n's list changed under
 * every try, n does not; the new node keeps its own links.  tied (NULL: not
 * wanted) gets the member n let go for add at add's distance
 * (QdbPlanLink), else QDB_NO_NODE.
 */
bool
QdbLinkOnDisk(Relation index, const QdbIndexCache *c, QdbDiskGraph *g, QdbNodeRef n,
			  int level, QdbNodeRef add, bool force, QdbNodeMap *map, QdbMayDrop may_drop,
			  void *drop_arg, QdbNodeRef *tied)
{
	int			nslots = QdbLevelSlots(c->shape.m, level);
	QdbNodeRef	cur[2 * QDB_MAX_M];
	QdbNodeRef	want[2 * QDB_MAX_M];
	LinkRequest r = {n, add, force, map, may_drop, drop_arg, QDB_LINK_REFUSED, QDB_NO_NODE};

	if (tied)
		*tied = QDB_NO_NODE;
	switch (QdbChangeList(index, c, g, n, level, NULL, plan_link, &r, cur, want))
	{
		case QDB_LIST_WRITTEN:
			if (map && level == 0)
				QdbNodeMapNoteListChange(map, n, cur, want, nslots);
			if (tied)
				*tied = r.tied;
			return true;
		case QDB_LIST_LEFT:
			return r.result == QDB_LINK_PRESENT;
		default:
			return false;
	}
}

/* Fills a node with no neighbours yet. */
void
QdbFormNode(const QdbIndexCache *c, QdbNode node, int level, ItemPointer heaptid,
			const uint8 *code)
{
	QdbNodeRef *lists = QdbNodeLists(node, c->shape.code_size);
	int			nslots = QdbNodeSlots(c->shape.m, level);
	int			i;

	memset(node, 0, QdbNodeSizeOf(c, level));
	node->flags = 0;
	node->level = level;
	node->heaptid = *heaptid;
	memcpy(node->code, code, c->shape.code_size);
	for (i = 0; i < nslots; i++)
		lists[i] = QDB_NO_NODE;
}

static bool
page_has_room(Page page, Size size)
{
	return PageGetFreeSpace(page) >= MAXALIGN(size) &&
		PageGetMaxOffsetNumber(page) < QDB_MAX_NODES_PER_PAGE;
}

static OffsetNumber
add_item(Relation index, Page page, QdbNode node, Size size)
{
	OffsetNumber off = PageAddItem(page, (Item) node, size, InvalidOffsetNumber, false, false);

	if (off == InvalidOffsetNumber)
		elog(ERROR, "failed to add a node to index \"%s\"", RelationGetRelationName(index));
	return off;
}

/* The ERROR of an index that has no block number left for a node page. */
static void block_limit_reached(Relation index) pg_attribute_noreturn();

static void
block_limit_reached(Relation index)
{
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("index \"%s\" has reached its limit of %u blocks",
					RelationGetRelationName(index), QDB_MAX_BLOCKS)));
}

/*
 * Makes the all-zero page of buf (exclusively locked) a node page holding
 * node, WAL-logged as a full image, and releases buf; the node's offset.
 */
static OffsetNumber
first_node_on_page(Relation index, Buffer buf, QdbNode node, Size size)
{
	QdbXLog    *state = QdbXLogStart(index);
	Page		page = QdbXLogRegister(state, buf, GENERIC_XLOG_FULL_IMAGE);
	OffsetNumber off;

	QdbInitPage(page, QDB_PAGE_NODES);
	off = add_item(index, page, node, size);
	QdbXLogFinish(state);
	UnlockReleaseBuffer(buf);
	return off;
}

/*
 * Puts the node in a free slot (a deleted node that VACUUM unlinked) on a
 * page the free space map offers, one of its size if there is one, else
 * another resized; InvalidOffsetNumber if the page has none that fits.  A page with more such slots goes back to the map.
 * An all-zero page (an extension a crash cut short, which VACUUM offers
 * too) becomes a node page with this node as its first.
 */
static OffsetNumber
reuse_slot(Relation index, const QdbIndexCache *c, BlockNumber blkno, QdbNode node,
		   Size size)
{
	Buffer		buf;
	Page		page;
	QdbXLog *state;
	OffsetNumber off,
				found = InvalidOffsetNumber,
				other = InvalidOffsetNumber;
	int			more = 0;

	/* a page past the limit has no node reference (a stray one is never used) */
	if (blkno >= RelationGetNumberOfBlocks(index) || blkno >= QDB_MAX_BLOCKS)
		return InvalidOffsetNumber;
	buf = ReadBuffer(index, blkno);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	page = BufferGetPage(buf);
	if (PageIsNew(page))
		return first_node_on_page(index, buf, node, size);
	if (QdbPageProblem(page) != NULL || QdbPageGetOpaque(page)->flags != QDB_PAGE_NODES)
	{
		UnlockReleaseBuffer(buf);
		return InvalidOffsetNumber;
	}
	state = QdbXLogStart(index);
	page = QdbXLogRegister(state, buf, 0);
	for (off = FirstOffsetNumber; off <= PageGetMaxOffsetNumber(page); off++)
	{
		ItemId		iid = PageGetItemId(page, off);
		QdbNode		old = QdbPageGetNode(index, &c->shape, page, blkno, off);

		if (!(old->flags & QDB_NODE_FREE))
			continue;
		if (found == InvalidOffsetNumber && ItemIdGetLength(iid) == size)
		{
			memcpy(old, node, size);
			found = off;
			continue;
		}
		more++;
		/* a larger slot first: shrinking it always fits */
		if (other == InvalidOffsetNumber ||
			(ItemIdGetLength(PageGetItemId(page, other)) < size && ItemIdGetLength(iid) > size))
			other = off;
	}

	/*
	 * None of its size: the slot of a node of another level, resized.  Only
	 * slots of the same size were taken before, so the free slots of upper
	 * levels, whose nodes are few and seldom find a page with one, piled
	 * up while the index grew: 3,000 rows replaced 30 times grew it from
	 * 145 to 187 pages, 86 for a fresh build (session 63's hunt,
	 * /work/runs/hunt-s63a.md F3).  The other items keep their offsets, so
	 * every reference to them holds.
	 */
	if (found == InvalidOffsetNumber && other != InvalidOffsetNumber &&
		PageIndexTupleOverwrite(page, other, (Item) node, size))
	{
		found = other;
		more--;
	}
	if (found != InvalidOffsetNumber)
		QdbXLogFinish(state);
	else
		QdbXLogAbort(state);
	UnlockReleaseBuffer(buf);
	if (more > 0)
		RecordFreeIndexPage(index, blkno);
	return found;
}

/*
 * Adds a node tuple on the insert page, or on a new page at the end of the
 * relation when it is full; WAL-logged.  Holds one buffer lock at a time
 * (the relation extension lock is taken only with no buffer locked).
 */
QdbNodeRef
QdbAddNode(Relation index, const QdbIndexCache *c, QdbNode node, Size size)
{
	QdbMetaPageData meta;
	Buffer		buf;
	Page		page;
	QdbXLog *state;
	OffsetNumber off;
	BlockNumber blkno;
	int			tries;

	/* a slot VACUUM freed, if the free space map knows one */
	for (tries = 0; tries < 4; tries++)
	{
		blkno = GetFreeIndexPage(index);
		if (blkno == InvalidBlockNumber)
			break;
		off = reuse_slot(index, c, blkno, node, size);
		if (off != InvalidOffsetNumber)
			return QdbMakeRef(blkno, off);
	}

	QdbReadMeta(index, &meta);
	blkno = meta.insert_page;
	buf = ReadBuffer(index, blkno);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	state = QdbXLogStart(index);
	page = QdbXLogRegister(state, buf, 0);
	QdbCheckPage(index, page, blkno, QDB_PAGE_NODES);
	if (page_has_room(page, size))
	{
		off = add_item(index, page, node, size);
		QdbXLogFinish(state);
		UnlockReleaseBuffer(buf);
		return QdbMakeRef(blkno, off);
	}
	QdbXLogAbort(state);
	UnlockReleaseBuffer(buf);

	/* the insert page is full: start a new one, if the limit allows */
	for (;;)
	{
		if (RelationGetNumberOfBlocks(index) >= QDB_MAX_BLOCKS)
			block_limit_reached(index);
		LockRelationForExtension(index, ExclusiveLock);
		buf = ReadBuffer(index, P_NEW);
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		UnlockRelationForExtension(index, ExclusiveLock);
		/* VACUUM saw it still all zeros and reuse_slot took it: extend again */
		if (PageIsNew(BufferGetPage(buf)))
			break;
		UnlockReleaseBuffer(buf);
	}
	blkno = BufferGetBlockNumber(buf);
	/* another backend extended past the limit between the check and the lock */
	if (blkno >= QDB_MAX_BLOCKS)
		block_limit_reached(index);
	off = first_node_on_page(index, buf, node, size);
	QdbNoteInsertPage(index, blkno);
	return QdbMakeRef(blkno, off);
}

/*
 * Writes the build's graph in memory to new node pages at the end of the
 * index, in insertion order, lists and inline codes included; refs (room
 * for g->n) gets each node's reference.  No WAL: the build logs every page
 * at its end.  An index always has a node page, where inserts start: with
 * no node, an empty one.
 */
void
QdbWriteBuildGraph(Relation index, const QdbIndexCache *c, const QdbMemGraph *g,
				   QdbNodeRef *refs)
{
	BlockNumber blkno = RelationGetNumberOfBlocks(index);
	Size		free_space = 0;
	int			on_page = QDB_MAX_NODES_PER_PAGE;
	Size		page_capacity = QDB_PAGE_CAPACITY;
	QdbNode		tuple = palloc(QdbNodeSizeOf(c, c->shape.max_level));
	Buffer		buf = InvalidBuffer;
	Page		page = NULL;
	int			i,
				j;

	for (i = 0; i < g->n; i++)
	{
		Size		need = MAXALIGN(QdbNodeSizeOf(c, g->nodes[i].level)) + sizeof(ItemIdData);

		if (need > free_space || on_page >= QDB_MAX_NODES_PER_PAGE)
		{
			if (i > 0)
				blkno++;
			free_space = page_capacity;
			on_page = 0;
		}
		if (blkno >= QDB_MAX_BLOCKS)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("index \"%s\" would need more than %u blocks",
							RelationGetRelationName(index), QDB_MAX_BLOCKS)));
		refs[i] = QdbMakeRef(blkno, on_page + 1);
		free_space -= need;
		on_page++;
	}

	for (i = 0; i <= g->n; i++)
	{
		bool		new_page = i == g->n ? false : QdbRefOffset(refs[i]) == FirstOffsetNumber;

		if ((new_page || i == g->n) && BufferIsValid(buf))
		{
			MarkBufferDirty(buf);
			UnlockReleaseBuffer(buf);
			buf = InvalidBuffer;
		}
		if (i == g->n)
			break;
		if (new_page)
		{
			CHECK_FOR_INTERRUPTS();
			buf = ReadBuffer(index, P_NEW);
			LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
			Assert(BufferGetBlockNumber(buf) == QdbRefBlock(refs[i]));
			page = BufferGetPage(buf);
			QdbInitPage(page, QDB_PAGE_NODES);
		}
		QdbFormNode(c, tuple, g->nodes[i].level, &g->nodes[i].tid,
					g->codes + (Size) i * c->shape.code_size);
		{
			QdbNodeRef *lists = QdbNodeLists(tuple, c->shape.code_size);
			int			level = g->nodes[i].level;

			for (j = 0; j < QdbNodeSlots(c->shape.m, level); j++)
			{
				int32		nb = g->nodes[i].nb[j];

				lists[j] = nb >= 0 ? refs[nb] : QDB_NO_NODE;
				if (c->shape.inline_codes && nb >= 0)
					memcpy(QdbNodeSlotCodes(tuple, c->shape.code_size, c->shape.m, level) +
						   (Size) j * c->shape.code_size,
						   g->codes + (Size) nb * c->shape.code_size, c->shape.code_size);
			}
		}
		if (PageAddItem(page, (Item) tuple, QdbNodeSizeOf(c, g->nodes[i].level),
						QdbRefOffset(refs[i]), false, false) != QdbRefOffset(refs[i]))
			elog(ERROR, "failed to add node to index \"%s\"", RelationGetRelationName(index));
	}

	/* an index always has a node page, where inserts start */
	if (g->n == 0)
	{
		buf = ReadBuffer(index, P_NEW);
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		QdbInitPage(BufferGetPage(buf), QDB_PAGE_NODES);
		MarkBufferDirty(buf);
		UnlockReleaseBuffer(buf);
	}

	pfree(tuple);
}

/* Flags node (of a registered page) deleted; its lists stay. */
void
QdbMarkNodeDeleted(QdbNode node)
{
	node->flags |= QDB_NODE_DELETED;
}

/* Whether the map's node ref is free, or deleted and about to be freed. */
static bool
freed_by_map(const QdbNodeMap *map, QdbNodeRef ref)
{
	Size		slot;

	if (!QdbNodeMapHas(map, ref))
		return false;
	slot = QdbNodeSlot(map, ref);
	return (map->flags[slot] & QDB_NODE_FREE) ||
		((map->flags[slot] & QDB_NODE_DELETED) && !map->reached[slot]);
}

/*
 * Empties the slots of node (of a registered page) that hold nodes the map
 * says are freed, with their inline codes; whether it changed any.
 */
bool
QdbDropLinksToFree(const QdbNodeMap *map, const QdbMetaPageData *meta, QdbNode node)
{
	int			nslots = QdbNodeSlots(meta->m, node->level);
	QdbNodeRef *list = QdbNodeLists(node, meta->code_size);
	bool		changed = false;
	int			j;

	for (j = 0; j < nslots; j++)
	{
		if (list[j] == QDB_NO_NODE || !freed_by_map(map, list[j]))
			continue;
		list[j] = QDB_NO_NODE;
		if (meta->inline_codes)
			memset(QdbNodeSlotCodes(node, meta->code_size, meta->m, node->level) +
				   (Size) j * meta->code_size, 0, meta->code_size);
		changed = true;
	}
	return changed;
}

/* Flags node (of a registered page) free and empties its lists and codes. */
void
QdbFreeNode(const QdbMetaPageData *meta, QdbNode node)
{
	int			nslots = QdbNodeSlots(meta->m, node->level);
	QdbNodeRef *list = QdbNodeLists(node, meta->code_size);
	int			j;

	node->flags |= QDB_NODE_FREE;
	for (j = 0; j < nslots; j++)
		list[j] = QDB_NO_NODE;
	if (meta->inline_codes)
		memset(QdbNodeSlotCodes(node, meta->code_size, meta->m, node->level), 0,
			   (Size) nslots * meta->code_size);
}
