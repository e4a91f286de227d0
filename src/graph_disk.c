/*
 * graph_disk.c
 *	  The graph as read from index pages, for scans, inserts and vacuum.
 *
 * Each node is read under a share lock on its page, copied (flags, heap
 * TID, code and one level's neighbour list) and the lock released at once,
 * so a walk never holds more than one buffer lock.  Copies live in a hash
 * table keyed by node reference for the rest of the walk; a node is read
 * again only for another level's list.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "utils/memutils.h"

#include "index.h"

typedef struct DiskNode
{
	QdbNodeRef	ref;			/* QDB_NO_NODE: empty slot */
	uint32		visit_epoch;
	uint32		dist_epoch;
	float		dist;
	bool		loaded;
	uint8		flags;
	uint8		level;
	ItemPointerData heaptid;
	int			nb_level;		/* level of the list in nb, -1 if none */
	int			nnb;
	QdbNodeRef *nb;				/* room for 2m */
	uint8	   *code;
} DiskNode;

struct QdbDiskGraph
{
	Relation	index;
	QdbIndexCache *c;
	MemoryContext cxt;
	/* the query: an ADC table, or a code (code-to-code distances) */
	const float *table;
	float		bias;
	const uint8 *query_code;
	uint32		dist_epoch;
	int			level;
	uint32		epoch;
	DiskNode   *slots;
	uint32		cap;			/* a power of 2 */
	uint32		used;
	int			reads;
};

QdbDiskGraph *
QdbDiskGraphCreate(Relation index, QdbIndexCache *c)
{
	QdbDiskGraph *g = palloc0(sizeof(QdbDiskGraph));
	uint32		i;

	g->index = index;
	g->c = c;
	g->cxt = CurrentMemoryContext;
	g->cap = 1024;
	g->slots = palloc(sizeof(DiskNode) * g->cap);
	for (i = 0; i < g->cap; i++)
		g->slots[i].ref = QDB_NO_NODE;
	g->epoch = 1;
	g->dist_epoch = 1;
	return g;
}

void
QdbDiskGraphSetQuery(QdbDiskGraph *g, const float *table, float bias)
{
	g->table = table;
	g->bias = bias;
	g->query_code = NULL;
	g->dist_epoch++;
}

/* Distances from now on are from the node with this code. */
void
QdbDiskGraphSetQueryCode(QdbDiskGraph *g, const uint8 *code)
{
	g->table = NULL;
	g->query_code = code;
	g->dist_epoch++;
}

/* A new layer search: nothing is visited yet; lists are read at level. */
void
QdbDiskGraphNewLayer(QdbDiskGraph *g, int level)
{
	g->level = level;
	g->epoch++;
}

int
QdbDiskGraphVisited(QdbDiskGraph *g)
{
	return g->reads;
}

static void
grow(QdbDiskGraph *g)
{
	DiskNode   *old = g->slots;
	uint32		oldcap = g->cap;
	uint32		i;

	g->cap *= 2;
	g->slots = MemoryContextAlloc(g->cxt, sizeof(DiskNode) * g->cap);
	for (i = 0; i < g->cap; i++)
		g->slots[i].ref = QDB_NO_NODE;
	for (i = 0; i < oldcap; i++)
	{
		uint32		h;

		if (old[i].ref == QDB_NO_NODE)
			continue;
		h = murmurhash32(old[i].ref) & (g->cap - 1);
		while (g->slots[h].ref != QDB_NO_NODE)
			h = (h + 1) & (g->cap - 1);
		g->slots[h] = old[i];
	}
	pfree(old);
}

/* The entry of ref, created empty when absent; valid until the next call. */
static DiskNode *
lookup(QdbDiskGraph *g, QdbNodeRef ref)
{
	uint32		h;
	DiskNode   *e;

	if (g->used * 2 >= g->cap)
		grow(g);
	h = murmurhash32(ref) & (g->cap - 1);
	while (g->slots[h].ref != QDB_NO_NODE)
	{
		if (g->slots[h].ref == ref)
			return &g->slots[h];
		h = (h + 1) & (g->cap - 1);
	}
	e = &g->slots[h];
	memset(e, 0, sizeof(DiskNode));
	e->ref = ref;
	e->nb_level = -1;
	g->used++;
	return e;
}

/* Reads node e from its page: header and code, and its list at level. */
static void
read_node(QdbDiskGraph *g, DiskNode *e, int level)
{
	QdbIndexCache *c = g->c;
	BlockNumber blkno = QdbRefBlock(e->ref);
	Buffer		buf;
	Page		page;
	QdbNode		node;
	int			i,
				n = 0;

	if (e->nb == NULL)
	{
		e->nb = MemoryContextAlloc(g->cxt, sizeof(QdbNodeRef) * 2 * c->m);
		e->code = MemoryContextAlloc(g->cxt, c->code_size);
	}
	buf = ReadBuffer(g->index, blkno);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	node = QdbPageGetNode(g->index, page, blkno, QdbRefOffset(e->ref));
	e->flags = node->flags;
	e->level = node->level;
	e->heaptid = node->heaptid;
	memcpy(e->code, node->code, c->code_size);
	if (level <= node->level)
	{
		QdbNodeRef *list = QdbNodeLists(node, c->code_size) + QdbLevelStart(c->m, level);

		for (i = 0; i < QdbLevelSlots(c->m, level); i++)
			if (list[i] != QDB_NO_NODE)
				e->nb[n++] = list[i];
	}
	UnlockReleaseBuffer(buf);
	e->nnb = n;
	e->nb_level = level;
	e->loaded = true;
	g->reads++;
}

static float
disk_distance(void *arg, uint32 id)
{
	QdbDiskGraph *g = arg;
	DiskNode   *e = lookup(g, id);

	if (!e->loaded)
		read_node(g, e, g->level);
	if (e->dist_epoch != g->dist_epoch)
	{
		if (g->table)
			e->dist = qdb_adc_distance(&g->c->model, g->table, g->bias, e->code);
		else
			e->dist = QdbPairDistance(g->c, g->query_code, e->code);
		e->dist_epoch = g->dist_epoch;
	}
	return e->dist;
}

static int
disk_neighbors(void *arg, uint32 id, int level, uint32 *out)
{
	QdbDiskGraph *g = arg;
	DiskNode   *e = lookup(g, id);

	if (!e->loaded || e->nb_level != level)
		read_node(g, e, level);
	memcpy(out, e->nb, sizeof(QdbNodeRef) * e->nnb);
	return e->nnb;
}

static bool
disk_visit(void *arg, uint32 id)
{
	QdbDiskGraph *g = arg;
	DiskNode   *e = lookup(g, id);

	if (e->visit_epoch == g->epoch)
		return false;
	e->visit_epoch = g->epoch;
	return true;
}

static float
disk_pair(void *arg, uint32 a, uint32 b)
{
	QdbDiskGraph *g = arg;
	const uint8 *ca = QdbDiskGraphCode(g, a, NULL, NULL);
	const uint8 *cb = QdbDiskGraphCode(g, b, NULL, NULL);

	return QdbPairDistance(g->c, ca, cb);
}

const QdbGraphOps qdb_disk_graph_ops = {
	disk_distance, disk_neighbors, disk_visit, disk_pair
};

/* The code of a node (stable for the walk), its deleted flag and heap TID. */
const uint8 *
QdbDiskGraphCode(QdbDiskGraph *g, QdbNodeRef ref, bool *deleted, ItemPointer heaptid)
{
	DiskNode   *e = lookup(g, ref);

	if (!e->loaded)
		read_node(g, e, g->level);
	if (deleted)
		*deleted = (e->flags & QDB_NODE_DELETED) != 0;
	if (heaptid)
		*heaptid = e->heaptid;
	return e->code;
}

/*
 * Greedy descent from the entry point through the levels above to_level;
 * *cur gets the nearest node found.  False when the graph is empty.
 */
bool
QdbDiskDescend(QdbDiskGraph *g, const QdbMetaPageData *meta, int to_level,
			   QdbCandidate *cur)
{
	int			level;

	if (meta->entry == QDB_NO_NODE)
		return false;
	QdbDiskGraphNewLayer(g, meta->entry_level);
	cur->id = meta->entry;
	cur->dist = disk_distance(g, meta->entry);
	for (level = meta->entry_level; level > to_level; level--)
	{
		QdbCandidate best;

		QdbDiskGraphNewLayer(g, level);
		if (QdbSearchLayer(&qdb_disk_graph_ops, g, cur, 1, 1, level, 2 * g->c->m, &best,
						   NULL) > 0)
			*cur = best;
	}
	return true;
}
