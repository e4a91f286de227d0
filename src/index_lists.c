/*
 * index_lists.c
 *	  Writes neighbour lists and node flags; every change through QdbXLog.
 *
 * The one place where a node's lists or flags change, so "where does a list
 * change" has one answer (a new node, written whole, is index_pages.c's
 * QdbAddNode):
 *
 *	QdbWriteOwnLists		a new node's own lists, all levels, one WAL record
 *	QdbWriteListIfUnchanged	one level's list of a node, if it is still the
 *							copy it was planned from (inserts' back-links,
 *							vacuum's repairs, the reachability repair)
 *	QdbMarkNodeDeleted		vacuum pass 1's deleted flag
 *	QdbDropLinksToFree		a deleted node lets go of freed nodes
 *	QdbFreeNode				the free flag and empty lists
 *
 * The first two lock and log the page themselves.  The last three change a
 * node of a page that the caller's walk holds exclusively locked and has
 * registered with QdbXLog (index_nodes.c); the caller finishes the record.
 *
 * With inline codes a list slot carries its neighbour's code.  Those come
 * from the walk's read cache (graph_disk.c's QdbDiskGraphKnownCode), filled
 * before the page is locked (QdbDiskGraphLoadCodes), so that no other page
 * is read under the exclusive lock.
 */
#include "postgres.h"

#include "index.h"

/*
 * Sets node's list at level to refs (n of them, then empty slots), with
 * their codes when the index keeps them inline: those must be known to g
 * (see QdbDiskGraphLoadCodes), since the caller holds the page locked.
 */
static void
set_list(const QdbIndexCache *c, QdbDiskGraph *g, QdbNode node, int level,
		 const QdbNodeRef *refs, int n)
{
	QdbNodeRef *list = QdbNodeLists(node, c->code_size) + QdbLevelStart(c->m, level);
	int			i;

	for (i = 0; i < QdbLevelSlots(c->m, level); i++)
	{
		list[i] = i < n ? refs[i] : QDB_NO_NODE;
		if (c->inline_codes)
		{
			uint8	   *dst = QdbSlotCode(c, node, level, i);

			if (list[i] == QDB_NO_NODE)
				memset(dst, 0, c->code_size);
			else
			{
				const uint8 *code = QdbDiskGraphKnownCode(g, list[i]);

				if (code == NULL)
					elog(ERROR, "code of node (%u,%u) is not known",
						 QdbRefBlock(list[i]), QdbRefOffset(list[i]));
				memcpy(dst, code, c->code_size);
			}
		}
	}
}

/*
 * Writes the lists of the new node ref (lists[l] of nlist[l] refs, levels
 * 0..level) in one WAL record.  Their codes are loaded through g first.
 */
void
QdbWriteOwnLists(Relation index, const QdbIndexCache *c, QdbDiskGraph *g, QdbNodeRef ref,
				 int level, QdbNodeRef **lists, const int *nlist)
{
	Buffer		buf;
	QdbXLog    *state;
	Page		page;
	QdbNode		node;
	int			l;

	for (l = 0; l <= level; l++)
		QdbDiskGraphLoadCodes(g, lists[l], nlist[l]);
	buf = ReadBuffer(index, QdbRefBlock(ref));
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	state = QdbXLogStart(index);
	page = QdbXLogRegister(state, buf, 0);
	node = QdbPageGetNode(index, &c->shape, page, QdbRefBlock(ref), QdbRefOffset(ref));
	for (l = 0; l <= level; l++)
		set_list(c, g, node, l, lists[l], nlist[l]);
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
bool
QdbWriteListIfUnchanged(Relation index, const QdbIndexCache *c, QdbDiskGraph *g,
						Buffer buf, QdbNodeRef ref, int level,
						const QdbNodeRef *expect, const QdbNodeRef *want)
{
	int			nslots = QdbLevelSlots(c->m, level);
	QdbXLog    *state;
	QdbNode		node;
	bool		write;

	QdbDiskGraphLoadCodes(g, want, nslots);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	state = QdbXLogStart(index);
	node = QdbPageGetNode(index, &c->shape, QdbXLogRegister(state, buf, 0),
						  QdbRefBlock(ref), QdbRefOffset(ref));
	write = !(node->flags & QDB_NODE_DELETED) &&
		memcmp(QdbNodeLists(node, c->code_size) + QdbLevelStart(c->m, level), expect,
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
