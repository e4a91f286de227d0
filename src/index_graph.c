/*
 * index_graph.c
 *	  The graph as read from index pages, for scans, inserts and vacuum: the
 *	  QdbGraphOps through which graph.h's algorithm walks the pages.  It
 *	  only reads: every page write is index_write.c's or index_pages.c's.
 *
 * Each node is read under a share lock on its page, copied (flags, heap
 * TID, code and one level's neighbour list) and the lock released at once,
 * so a walk never holds more than one buffer lock.  Copies live as long as
 * the graph (a walk, or all of a scan's walks: index_scan.c), found by node
 * reference through a hash table; a node is read again only for another
 * level's list.
 *
 * Calling rules of what it exports:
 *	- QdbDiskGraphCreate allocates in CurrentMemoryContext and takes the
 *	  backend's arena (hash table and node chunks, kept for the backend's
 *	  life under TopMemoryContext) until that context is reset or deleted;
 *	  a second graph alive at the same time gets an arena of its own in its
 *	  context, unless the first is kept between walks and marked idle
 *	  (QdbDiskGraphIdle, a scan's): then the new graph takes the backend's
 *	  arena, the kept one is lost, and QdbDiskGraphResume tells its owner
 *	  so.  QdbDiskGraphCreateOwn's graph always has an arena of its own,
 *	  which nothing takes (a scan's, once its kept graph was lost).  Node
 *	  copies (and the pointers QdbDiskGraphCode and QdbDiskGraphKnownCode
 *	  return) last as long as the graph.
 *	- What qdb_disk_graph_ops.distance means is set by the last of
 *	  QdbDiskGraphSetQuery (ADC from a vector's lookup table and bias: a
 *	  search for a vector) and QdbDiskGraphSetQueryCode (code-to-code from a
 *	  node's code, copied: the reachability repair's search for a node that
 *	  has no vector at hand).  Each call drops the cached distances; set one
 *	  before any distance is asked.  pair is always code-to-code, and is what
 *	  graph_link.c's planners rank a list's members by.
 *	- QdbDiskGraphNewLayer(g, level) (ops->new_layer) starts a layer
 *	  search: nothing counts as visited, and a node first read for its code
 *	  (a distance, QdbDiskGraphCode) copies its list at level.  Call it
 *	  before each QdbDiskSearch; QdbDiskDescend and QdbLinkNode do, per
 *	  level.
 *	- ops->linkable is "not deleted": deleted nodes are walked through but
 *	  never linked to.
 *	- QdbDiskSearch and QdbDiskDescend search with the graph's own scratch
 *	  (graph.h), grown in the graph's memory context; they ERROR on out of
 *	  memory, where graph.h's functions return -1.  QdbDiskSearch with keep
 *	  leaves its search in the scratch for QdbDiskWiden, which goes on from
 *	  it with a wider beam; another search or layer, or another query,
 *	  drops it (QdbDiskCanWiden says whether it is still there).
 *	- With inline codes, a list that index_write.c writes takes each
 *	  neighbour's code from here (QdbDiskGraphKnownCode), since its page is
 *	  then locked: the codes must be known first, through QdbDiskGraphCode,
 *	  QdbDiskGraphNoteList/NoteCode or QdbDiskGraphLoadCodes (which
 *	  index_write.c calls itself before it locks the page).
 *	- QdbDiskGraphNoteList (the inline codes of a node whose page the caller
 *	  holds locked), QdbDiskGraphNoteCode and QdbDiskGraphKnownCode read no
 *	  page; every other call may read one, so none with a page locked.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "index.h"

/*
 * Node copies live in chunks of CHUNK_BYTES (they never move), each a
 * power of 2 of copies (the most that fit), so that any node size uses any
 * chunk: a backend walking two indexes by turns (other m, other code size)
 * keeps its chunks instead of freeing and mapping them again at every
 * switch (session 56's review measured 19 to 94 page faults a query that
 * way).  A chunk stays under glibc's mmap threshold (128 kB): kept chunks
 * that were mappings of their own (1,024 copies, 176 kB at m 16) cost a
 * glove-100-angular scan at ef_search 160 4% to 12% more CPU
 * (test/bench/RESULTS.md, "The walk's node chunks kept").
 */
#define CHUNK_BYTES		((Size) 120 * 1024)
#define MAX_WALK_NODES	(64 * 1024 * 1024)	/* node copies one graph may hold */
#define KEPT_KEYS		16384	/* a larger hash table is not kept for the next walk */

/*
 * Nor node chunks past this many bytes (34 chunks: 17,408 nodes at m 16,
 * 4,352 at m 100).  Chunks given back at the end of a walk were mapped
 * afresh by the next (glibc trims the top of its heap), a page fault for
 * every page touched: when only 2,048 nodes' chunks were kept, a
 * glove-100-angular scan at ef_search 200 (about 4,000 nodes read) took 34
 * page faults and twice the CPU time it takes with its chunks kept
 * (test/bench/RESULTS.md, "The walk's node chunks kept").  A filtered
 * scan's wide walk still leaves no more than this.
 */
#define KEPT_CHUNK_BYTES	((Size) 4 * 1024 * 1024)

typedef struct DiskNode
{
	QdbNodeRef	ref;
	uint32		visit_epoch;
	uint32		dist_epoch;
	float		dist;
	bool		loaded;			/* read from its page: flags, TID, a list */
	bool		code_known;		/* code filled: from its page or a neighbour's */
	uint8		flags;
	uint8		level;
	ItemPointerData heaptid;
	int16		nb_level;		/* level of the list in nb, -1 if none */
	int16		nnb;
	/* then nb[2m] (QdbNodeRef) and code[code_size] */
} DiskNode;

#define NODE_NB(e)			((QdbNodeRef *) ((char *) (e) + MAXALIGN(sizeof(DiskNode))))
#define NODE_CODE(g, e)		((uint8 *) (NODE_NB(e) + 2 * (g)->c->shape.m))

/*
 * The hash table (keys and node numbers, small and dense, so probes stay in
 * cache) and the chunks of node copies.  One set is kept for the backend's
 * life and reused by every walk: allocating them afresh for each index scan
 * cost a page fault per touched page, more than the walk itself.  A walk
 * that starts while another is alive and walking gets its own set; one kept
 * idle between a scan's walks gives its set up (arena_for).
 */
typedef struct DiskArena
{
	MemoryContext cxt;
	uint32	   *keys;			/* QDB_NO_NODE: empty */
	uint32	   *slot;			/* node number of each key */
	uint32		cap;			/* a power of 2 */
	char	  **chunks;			/* chunks_cap pointers, nchunks of them set */
	int			nchunks;
	int			chunks_cap;
	Size		node_bytes;
	int			chunk_shift;	/* log2 of the copies a chunk holds */
	bool		in_use;
	QdbDiskGraph *owner;		/* the graph using it */
	bool		idle;			/* the owner is between walks: another may take it */
} DiskArena;

struct QdbDiskGraph
{
	Relation	index;
	QdbIndexCache *c;
	DiskArena  *a;
	/* the query: an ADC table, or a code (code-to-code distances) */
	const float *table;
	float		bias;
	uint8	   *query_code;		/* a copy */
	uint32		dist_epoch;
	int			level;
	uint32		epoch;
	uint32		used;			/* nodes */
	int64		visits;			/* nodes visited, over all its walks */
	uint32		kept_epoch;		/* the layer search its scratch keeps, */
	uint32		kept_dist_epoch;	/* and the query it searched for */
	bool		lost;			/* its arena was taken while idle: unusable */
	bool		met_unlinked;	/* read a freed node or an empty level-0 list */
	QdbNodeRef	hidden;			/* a node no walk visits, or QDB_NO_NODE */
	BlockNumber nblocks;		/* the index's size when last looked at */
	QdbSearchScratch scratch;	/* of QdbDiskSearch, in the graph's context */
};

static DiskArena backend_arena;

static DiskNode *lookup(QdbDiskGraph *g, QdbNodeRef ref);

/*
 * The graph is gone: the arena is free for the next one, keeping what an
 * ordinary walk needs (KEPT_CHUNK_BYTES of node chunks, KEPT_KEYS slots of
 * hash table) and no more (one filtered scan's wide walk must not hold on to
 * tens of megabytes for the rest of the backend's life).
 */
static void
arena_release(void *arg)
{
	QdbDiskGraph *g = (QdbDiskGraph *) arg;
	DiskArena  *a = g->a;

	/* a graph whose arena another walk took has nothing to give back */
	if (a == NULL || a->owner != g)
		return;
	a->owner = NULL;
	a->idle = false;
	while (a->nchunks > 0 && (Size) a->nchunks * CHUNK_BYTES > KEPT_CHUNK_BYTES)
		pfree(a->chunks[--a->nchunks]);
	if (a->cap > KEPT_KEYS)
	{
		pfree(a->keys);
		pfree(a->slot);
		a->keys = a->slot = NULL;
		a->cap = 0;
	}
	a->in_use = false;
}

/* Empty hash table of cap slots in the arena. */
static void
arena_reset_keys(DiskArena *a, uint32 cap)
{
	/* one huge walk must not make every later walk clear a huge table */
	if (a->cap > KEPT_KEYS && a->cap > cap)
	{
		pfree(a->keys);
		pfree(a->slot);
		a->keys = a->slot = NULL;
		a->cap = 0;
	}
	if (a->cap < cap)
	{
		/* both first: out of memory leaves the arena as it was */
		uint32	   *keys = MemoryContextAllocHuge(a->cxt, sizeof(uint32) * cap);
		uint32	   *slot = MemoryContextAllocHuge(a->cxt, sizeof(uint32) * cap);

		if (a->keys)
		{
			pfree(a->keys);
			pfree(a->slot);
		}
		a->keys = keys;
		a->slot = slot;
		a->cap = cap;
	}
	memset(a->keys, 0xFF, sizeof(uint32) * a->cap);
}

static DiskArena *
arena_for(QdbIndexCache *c, QdbDiskGraph *g, bool own)
{
	Size		node_bytes = MAXALIGN(MAXALIGN(sizeof(DiskNode)) +
									  sizeof(QdbNodeRef) * 2 * c->shape.m + c->shape.code_size);
	DiskArena  *a;
	/* first: an ERROR here leaves no arena claimed by a graph that is gone */
	MemoryContextCallback *cb = MemoryContextAlloc(CurrentMemoryContext,
												   sizeof(MemoryContextCallback));

	if (!own && backend_arena.in_use && backend_arena.idle && backend_arena.owner != NULL)
	{
		/*
		 * A scan kept its graph between walks (QdbDiskGraphIdle): take the
		 * arena over rather than allocate a new one; that scan finds its
		 * graph lost at its next walk and starts another.
		 */
		backend_arena.owner->lost = true;
		backend_arena.owner->a = NULL;
		backend_arena.in_use = false;
	}
	if (!own && !backend_arena.in_use)
	{
		a = &backend_arena;
		if (a->cxt == NULL)
			a->cxt = AllocSetContextCreate(TopMemoryContext, "quantumdb walk arena",
										   ALLOCSET_DEFAULT_SIZES);
	}
	else
	{
		a = MemoryContextAllocZero(CurrentMemoryContext, sizeof(DiskArena));
		a->cxt = CurrentMemoryContext;
	}
	if (a->node_bytes != node_bytes)
	{
		/* another index's node size: as many copies a chunk as fit, a power of 2 */
		a->node_bytes = node_bytes;
		a->chunk_shift = 0;
		while (((Size) 2 << a->chunk_shift) * node_bytes <= CHUNK_BYTES)
			a->chunk_shift++;
	}
	arena_reset_keys(a, Min(Max(a->cap, 4096), KEPT_KEYS));
	a->in_use = true;
	a->owner = g;
	a->idle = false;
	/* the graph's memory context going away frees the arena for the next */
	cb->func = arena_release;
	cb->arg = g;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	return a;
}

static QdbDiskGraph *
graph_create(Relation index, QdbIndexCache *c, bool own)
{
	QdbDiskGraph *g = palloc0(sizeof(QdbDiskGraph));

	g->index = index;
	g->c = c;
	g->a = arena_for(c, g, own);
	g->query_code = palloc(c->shape.code_size);
	g->epoch = 1;
	g->dist_epoch = 1;
	g->hidden = QDB_NO_NODE;
	QdbSearchScratchInit(&g->scratch, QdbContextAlloc(CurrentMemoryContext));
	return g;
}

QdbDiskGraph *
QdbDiskGraphCreate(Relation index, QdbIndexCache *c)
{
	return graph_create(index, c, false);
}

/*
 * A graph with an arena of its own, which no other walk takes: for a scan
 * whose kept graph was taken (QdbDiskGraphResume said false), so that two
 * scans of one backend walking by turns (a MergeAppend over partitions,
 * a nested loop's inner scan beside an outer one) do not take the arena from
 * each other at every walk, each starting its walk again from the entry.
 */
QdbDiskGraph *
QdbDiskGraphCreateOwn(Relation index, QdbIndexCache *c)
{
	return graph_create(index, c, true);
}

/*
 * A graph kept between walks (a scan's): while idle, nothing may use it, and
 * another walk of the backend may take its arena; QdbDiskGraphResume says
 * whether it is still whole (false: free it and create another).
 */
void
QdbDiskGraphIdle(QdbDiskGraph *g)
{
	if (g->a != NULL)
		g->a->idle = true;
}

bool
QdbDiskGraphResume(QdbDiskGraph *g)
{
	if (g->lost)
		return false;
	g->a->idle = false;
	return true;
}

void
QdbDiskGraphSetQuery(QdbDiskGraph *g, const float *table, float bias)
{
	g->table = table;
	g->bias = bias;
	g->dist_epoch++;
}

/* Distances from now on are from the node with this code. */
void
QdbDiskGraphSetQueryCode(QdbDiskGraph *g, const uint8 *code)
{
	g->table = NULL;
	memcpy(g->query_code, code, g->c->shape.code_size);
	g->dist_epoch++;
}

/* A new layer search: nothing is visited yet; lists are read at level. */
void
QdbDiskGraphNewLayer(QdbDiskGraph *g, int level)
{
	g->level = level;
	g->epoch++;
	/* seen already, so never a candidate (it is not read either) */
	if (g->hidden != QDB_NO_NODE)
		lookup(g, g->hidden)->visit_epoch = g->epoch;
}

/*
 * From the next layer search on, node ref (QDB_NO_NODE: none) is walked
 * around as if it were not in the graph: marked visited at the start of
 * every layer search, left out of what QdbDiskWiden widens with.  For
 * quantumdb.calibrate's query row, whose own neighbour list would lead a
 * walk straight to the rows it looks for, as a new query's cannot.  A
 * descent that starts at it (it became the entry point) ends it for the
 * graph's life: a walk cannot go around where it starts.
 */
void
QdbDiskGraphHide(QdbDiskGraph *g, QdbNodeRef ref)
{
	g->hidden = ref;
}

/*
 * Whether a walk over g read a dead end that a concurrent VACUUM or insert
 * made (a freed node, or a node with no level-0 list): a short walk, or an
 * insert's search, should start again over a new graph.
 */
bool
QdbDiskGraphMetUnlinked(QdbDiskGraph *g)
{
	return g->met_unlinked;
}

/* Nodes visited so far (what quantumdb.max_scan_tuples counts). */
int64
QdbDiskGraphVisited(QdbDiskGraph *g)
{
	return g->visits;
}

/*
 * Fills e's code from the backend's code cache (index_code_cache.c);
 * false when the cache does not have it.
 */
static inline bool
code_from_cache(QdbDiskGraph *g, DiskNode *e)
{
	const uint8 *code = QdbCodeCacheGet(g->c, e->ref);

	if (code == NULL)
		return false;
	if (g->c->shape.code_size == 16)
		memcpy(NODE_CODE(g, e), code, 16);	/* inlined: two moves */
	else
		memcpy(NODE_CODE(g, e), code, g->c->shape.code_size);
	e->code_known = true;
	return true;
}

static inline DiskNode *
node_at(QdbDiskGraph *g, uint32 i)
{
	DiskArena  *a = g->a;

	return (DiskNode *) (a->chunks[i >> a->chunk_shift] +
						 (Size) (i & (((uint32) 1 << a->chunk_shift) - 1)) * a->node_bytes);
}

static void
grow_keys(QdbDiskGraph *g)
{
	DiskArena  *a = g->a;
	uint32		newcap = a->cap * 2;
	uint32	   *keys = MemoryContextAllocHuge(a->cxt, sizeof(uint32) * newcap);
	uint32	   *slot = MemoryContextAllocHuge(a->cxt, sizeof(uint32) * newcap);
	uint32		i;

	memset(keys, 0xFF, sizeof(uint32) * newcap);
	for (i = 0; i < a->cap; i++)
	{
		uint32		h;

		if (a->keys[i] == QDB_NO_NODE)
			continue;
		h = murmurhash32(a->keys[i]) & (newcap - 1);
		while (keys[h] != QDB_NO_NODE)
			h = (h + 1) & (newcap - 1);
		keys[h] = a->keys[i];
		slot[h] = a->slot[i];
	}
	pfree(a->keys);
	pfree(a->slot);
	a->keys = keys;
	a->slot = slot;
	a->cap = newcap;
}

/* The copy of node ref, or NULL when the walk has none. */
static DiskNode *
find(QdbDiskGraph *g, QdbNodeRef ref)
{
	DiskArena  *a = g->a;
	uint32		h = murmurhash32(ref) & (a->cap - 1);

	while (a->keys[h] != QDB_NO_NODE)
	{
		if (a->keys[h] == ref)
			return node_at(g, a->slot[h]);
		h = (h + 1) & (a->cap - 1);
	}
	return NULL;
}

/* The copy of node ref, created empty when absent; its address never changes. */
static DiskNode *
lookup(QdbDiskGraph *g, QdbNodeRef ref)
{
	DiskArena  *a = g->a;
	uint32		h;
	DiskNode   *e;

	if (g->used * 2 >= a->cap)
		grow_keys(g);
	h = murmurhash32(ref) & (a->cap - 1);
	while (a->keys[h] != QDB_NO_NODE)
	{
		if (a->keys[h] == ref)
			return node_at(g, a->slot[h]);
		h = (h + 1) & (a->cap - 1);
	}
	if ((g->used >> a->chunk_shift) >= (uint32) a->nchunks)
	{
		if (g->used >= MAX_WALK_NODES)
			elog(ERROR, "quantumdb walk visited more than %d nodes", MAX_WALK_NODES);
		if (a->nchunks == a->chunks_cap)
		{
			int			cap = Max(64, 2 * a->chunks_cap);

			a->chunks = a->chunks ? repalloc(a->chunks, sizeof(char *) * cap)
				: MemoryContextAlloc(a->cxt, sizeof(char *) * cap);
			a->chunks_cap = cap;
		}
		a->chunks[a->nchunks] = MemoryContextAlloc(a->cxt, CHUNK_BYTES);
		a->nchunks++;
	}
	a->keys[h] = ref;
	a->slot[h] = g->used;
	e = node_at(g, g->used++);
	memset(e, 0, sizeof(DiskNode));
	e->ref = ref;
	e->nb_level = -1;
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

	/* every node a walk visits passes here: a long walk stays cancellable */
	CHECK_FOR_INTERRUPTS();
	/* a reference from a damaged list must not read past the relation */
	if (blkno >= g->nblocks)
		g->nblocks = RelationGetNumberOfBlocks(g->index);
	if (blkno < c->shape.first_node_page || blkno >= g->nblocks ||
		QdbRefOffset(e->ref) < FirstOffsetNumber)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" links to a node (%u,%u) that cannot exist",
						RelationGetRelationName(g->index), blkno, QdbRefOffset(e->ref)),
				 errhint("REINDEX INDEX %s;", QdbRelationSqlName(g->index))));
	buf = QdbReadIndexPage(g->index, c, blkno);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	node = QdbPageGetNode(g->index, &c->shape, page, blkno, QdbRefOffset(e->ref));
	e->flags = node->flags;
	e->level = node->level;
	e->heaptid = node->heaptid;
	/* a code taken from the cache before may be an old one: the page's wins */
	if (e->code_known && memcmp(NODE_CODE(g, e), node->code, c->shape.code_size) != 0)
		e->dist_epoch = 0;
	memcpy(NODE_CODE(g, e), node->code, c->shape.code_size);
	e->code_known = true;
	QdbCodeCachePut(c, e->ref, node->code);
	if (level <= node->level)
	{
		QdbNodeRef *list = QdbNodeLists(node, c->shape.code_size) + QdbLevelStart(c->shape.m, level);
		QdbNodeRef *nb = NODE_NB(e);

		for (i = 0; i < QdbLevelSlots(c->shape.m, level); i++)
		{
			if (list[i] == QDB_NO_NODE)
				continue;
			nb[n++] = list[i];
			if (c->shape.inline_codes)
			{
				/* the neighbour's code, so visiting it needs no page read */
				DiskNode   *ne = lookup(g, list[i]);

				if (!ne->code_known)
				{
					memcpy(NODE_CODE(g, ne), QdbSlotCode(c, node, level, i), c->shape.code_size);
					ne->code_known = true;
				}
			}
		}
	}
	UnlockReleaseBuffer(buf);
	/*
	 * A freed node (VACUUM emptied its lists while this walk held a link to
	 * it) or a live node without a level-0 list (an insert's still linking
	 * it, reached as VACUUM's new entry point or through a reused slot; or,
	 * for good, a node VACUUM's repair found no neighbour for) is a dead
	 * end: a walk through it may come back short.  A deleted node may keep
	 * an empty list for good (it let go of freed nodes) and is not one.
	 */
	if ((e->flags & QDB_NODE_FREE) ||
		(level == 0 && n == 0 && !(e->flags & QDB_NODE_DELETED)))
		g->met_unlinked = true;
	e->nnb = n;
	e->nb_level = level;
	e->loaded = true;
}

/* e's code known: from the code cache, else its page */
static inline void
load_code(QdbDiskGraph *g, DiskNode *e)
{
	if (!e->code_known && !code_from_cache(g, e))
		read_node(g, e, g->level);
}

/* Whether this layer search meets e for the first time; marks it met. */
static inline bool
first_visit(QdbDiskGraph *g, DiskNode *e)
{
	if (e->visit_epoch == g->epoch)
		return false;
	e->visit_epoch = g->epoch;
	g->visits++;
	return true;
}

static float
disk_distance(void *arg, uint32 id)
{
	QdbDiskGraph *g = arg;
	DiskNode   *e = lookup(g, id);

	load_code(g, e);
	if (e->dist_epoch != g->dist_epoch)
	{
		if (g->table)
			e->dist = qdb_adc_distance(&g->c->model, g->table, g->bias, NODE_CODE(g, e));
		else
			e->dist = QdbPairDistance(g->c, g->query_code, NODE_CODE(g, e));
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
	memcpy(out, NODE_NB(e), sizeof(QdbNodeRef) * e->nnb);
	return e->nnb;
}

static bool
disk_visit(void *arg, uint32 id)
{
	QdbDiskGraph *g = arg;

	return first_visit(g, lookup(g, id));
}

/*
 * disk_visit and disk_distance for a list's members, with one lookup per
 * member, and the ADC of the codes still without a distance computed side
 * by side (qdb_adc_distances: the same floats as one at a time).
 */
static int
disk_visit_distances(void *arg, const uint32 *ids, int n, uint32 *out, float *dist)
{
	QdbDiskGraph *g = arg;
	DiskNode   *seen[QDB_MAX_LIST],
			   *todo[QDB_MAX_LIST];
	const uint8 *codes[QDB_MAX_LIST];
	float		d[QDB_MAX_LIST];
	int			i,
				k = 0,
				ntodo = 0;

	/* search_loop never passes more (graph.h); a caller that did must not overrun */
	if (n > QDB_MAX_LIST)
		elog(ERROR, "quantumdb: a list of %d neighbours is longer than %d", n, QDB_MAX_LIST);
	for (i = 0; i < n; i++)
	{
		DiskNode   *e = lookup(g, ids[i]);

		if (!first_visit(g, e))
			continue;
		load_code(g, e);
		if (e->dist_epoch != g->dist_epoch)
		{
			if (g->table)
			{
				todo[ntodo] = e;
				codes[ntodo++] = NODE_CODE(g, e);
			}
			else
			{
				e->dist = QdbPairDistance(g->c, g->query_code, NODE_CODE(g, e));
				e->dist_epoch = g->dist_epoch;
			}
		}
		out[k] = ids[i];		/* k <= i: ids[i] was read already */
		seen[k++] = e;
	}
	if (ntodo > 0)
		qdb_adc_distances(&g->c->model, g->table, g->bias, codes, ntodo, d);
	for (i = 0; i < ntodo; i++)
	{
		todo[i]->dist = d[i];
		todo[i]->dist_epoch = g->dist_epoch;
	}
	for (i = 0; i < k; i++)
		dist[i] = seen[i]->dist;
	return k;
}

static float
disk_pair(void *arg, uint32 a, uint32 b)
{
	QdbDiskGraph *g = arg;
	const uint8 *ca = QdbDiskGraphCode(g, a, NULL, NULL);
	const uint8 *cb = QdbDiskGraphCode(g, b, NULL, NULL);

	return QdbPairDistance(g->c, ca, cb);
}

static void
disk_new_layer(void *arg, int level)
{
	QdbDiskGraphNewLayer((QdbDiskGraph *) arg, level);
}

/* Deleted nodes are walked through but never linked to. */
static bool
disk_linkable(void *arg, uint32 id)
{
	bool		deleted;

	(void) QdbDiskGraphCode((QdbDiskGraph *) arg, id, &deleted, NULL);
	return !deleted;
}

/* The code cache's slots of a list's members, fetched ahead. */
static void
disk_prefetch(void *arg, const uint32 *ids, int n)
{
	QdbCodeCachePrefetch(((QdbDiskGraph *) arg)->c, ids, n);
}

/* Whether nodes a and b hold the same code: copies. */
static bool
disk_same(void *arg, uint32 a, uint32 b)
{
	QdbDiskGraph *g = arg;
	const uint8 *ca = QdbDiskGraphCode(g, a, NULL, NULL);
	const uint8 *cb = QdbDiskGraphCode(g, b, NULL, NULL);

	return memcmp(ca, cb, g->c->shape.code_size) == 0;
}

const QdbGraphOps qdb_disk_graph_ops = {
	.distance = disk_distance,
	.neighbors = disk_neighbors,
	.visit = disk_visit,
	.pair = disk_pair,
	.new_layer = disk_new_layer,
	.linkable = disk_linkable,
	.prefetch = disk_prefetch,
	.visit_distances = disk_visit_distances,
	.same = disk_same
};

/* The code of a node (stable for the graph), its deleted flag and heap TID. */
const uint8 *
QdbDiskGraphCode(QdbDiskGraph *g, QdbNodeRef ref, bool *deleted, ItemPointer heaptid)
{
	DiskNode   *e = lookup(g, ref);

	if (!e->loaded && (deleted || heaptid || (!e->code_known && !code_from_cache(g, e))))
		read_node(g, e, g->level);
	if (deleted)
		*deleted = (e->flags & QDB_NODE_DELETED) != 0;
	if (heaptid)
		*heaptid = e->heaptid;
	return NODE_CODE(g, e);
}

static void
search_failed(QdbDiskGraph *g)
{
	ereport(ERROR,
			(errcode(ERRCODE_OUT_OF_MEMORY),
			 errmsg("out of memory"),
			 errdetail("A search of index \"%s\" could not grow its candidate list.",
					   RelationGetRelationName(g->index))));
}

/*
 * QdbSearchLayer over the pages with the graph's own scratch: the ef
 * nearest nodes at level from the entries; the caller has started the
 * layer (QdbDiskGraphNewLayer).  With keep, the graph keeps the search's
 * state, so that it can be widened (QdbDiskWiden) until the graph starts
 * another layer search.
 */
int
QdbDiskSearch(QdbDiskGraph *g, const QdbCandidate *entry, int nentry, int ef, int level,
			  QdbCandidate *out, bool keep)
{
	int			n = (keep ? QdbSearchLayerKept : QdbSearchLayer) (&qdb_disk_graph_ops, g, entry,
																  nentry, ef, level,
																  2 * g->c->shape.m, out,
																  &g->scratch);

	if (n < 0)
		search_failed(g);
	g->kept_epoch = g->epoch;
	g->kept_dist_epoch = g->dist_epoch;
	return n;
}

/* Whether the graph's last search was kept and nothing has started since. */
bool
QdbDiskCanWiden(QdbDiskGraph *g)
{
	return g->scratch.kept && g->kept_epoch == g->epoch &&
		g->kept_dist_epoch == g->dist_epoch && !g->lost;
}

/*
 * The kept search widened to ef (no less than it had): the ef nearest nodes
 * into out (room for ef), going on from what it visited (QdbWidenLayer),
 * which are the copies marked visited in the current layer search, each
 * with its distance (computed when it was visited).
 */
int
QdbDiskWiden(QdbDiskGraph *g, int ef, QdbCandidate *out)
{
	QdbCandidate *visited = palloc(sizeof(QdbCandidate) * Max(g->used, 1));
	int			nvisited = 0,
				n;
	uint32		i;

	Assert(QdbDiskCanWiden(g));
	for (i = 0; i < g->used; i++)
	{
		DiskNode   *e = node_at(g, i);

		/* marked visited, never walked to: not among the visited to widen with */
		if (e->visit_epoch != g->epoch || e->ref == g->hidden)
			continue;
		visited[nvisited].id = e->ref;
		visited[nvisited].dist = e->dist_epoch == g->dist_epoch ? e->dist
			: disk_distance(g, e->ref);
		nvisited++;
	}
	n = QdbWidenLayer(&qdb_disk_graph_ops, g, ef, visited, nvisited, out, &g->scratch);
	pfree(visited);
	if (n < 0)
		search_failed(g);
	return n;
}

/*
 * Asks the kernel for the pages of the nodes in cand that the walk has not
 * read yet (effective_io_concurrency above 0): a scan about to read them
 * for their heap TIDs then waits for one round of reads, not one each.
 */
void
QdbDiskGraphPrefetchNodes(QdbDiskGraph *g, const QdbCandidate *cand, int n)
{
#ifdef USE_PREFETCH
	int			i;

	if (effective_io_concurrency <= 0)
		return;
	for (i = 0; i < n; i++)
	{
		DiskNode   *e = find(g, cand[i].id);

		if (e == NULL || !e->loaded)
			PrefetchBuffer(g->index, MAIN_FORKNUM, QdbRefBlock(cand[i].id));
	}
#endif
}

/*
 * Greedy descent from the entry point through the levels above to_level;
 * *cur gets the nearest node found.  False when the graph is empty.
 */
bool
QdbDiskDescend(QdbDiskGraph *g, const QdbMetaPageData *meta, int to_level,
			   QdbCandidate *cur)
{
	QdbCodeCacheSync(g->c, meta->free_generation);
	if (meta->entry == QDB_NO_NODE)
		return false;
	if (meta->entry == g->hidden)
		g->hidden = QDB_NO_NODE;
	QdbDiskGraphNewLayer(g, meta->entry_level);
	cur->id = meta->entry;
	cur->dist = disk_distance(g, meta->entry);
	if (QdbDescend(&qdb_disk_graph_ops, g, cur, meta->entry_level, to_level, 2 * g->c->shape.m,
				   &g->scratch) < 0)
		search_failed(g);
	return true;
}

/*
 * A level-0 search that found fewer than ef nodes (out[0 .. nout)) from the
 * node a descent ended at, done again from every node the graph has
 * measured (the nodes the descent looked at on the levels above, and those
 * found) and from entry, the entry point, as QdbDiskSearch (room for ef in
 * out); returns how many it found, nout when the entry point was found.  A node's lists can all point within a small part of
 * the graph (rows with one vector fill each other's lists) or lead nowhere
 * (a dead end: met_unlinked, above).  The descent's nodes lie near the
 * query outside that part, and the entry point reaches every node VACUUM's
 * reachability repair saw.
 */
int
QdbDiskSearchFromMeasured(QdbDiskGraph *g, QdbNodeRef entry, int ef, QdbCandidate *out,
						  int nout, bool keep)
{
	QdbCandidate *entries;
	int			n;
	bool		have_entry = false;

	/* found from the entry point's side already: all there is, as far as it reaches */
	for (int i = 0; i < nout; i++)
		if (out[i].id == entry)
			return nout;
	n = QdbDiskGraphMeasured(g, &entries);
	for (int i = 0; i < n; i++)
		have_entry |= entries[i].id == entry;
	if (!have_entry)
	{
		entries = repalloc(entries, sizeof(QdbCandidate) * (n + 1));
		entries[n].id = entry;
		entries[n].dist = disk_distance(g, entry);
		n++;
	}
	QdbDiskGraphNewLayer(g, 0);
	n = QdbDiskSearch(g, entries, n, ef, 0, out, keep);
	pfree(entries);
	return n;
}

/*
 * Every node whose distance the graph has measured for its current query,
 * nearest first, in *out (palloc'd); returns how many.
 */
int
QdbDiskGraphMeasured(QdbDiskGraph *g, QdbCandidate **out)
{
	QdbCandidate *all = palloc(sizeof(QdbCandidate) * Max(g->used, 1));
	int			n = 0;

	for (uint32 i = 0; i < g->used; i++)
	{
		DiskNode   *e = node_at(g, i);

		if (e->dist_epoch != g->dist_epoch)
			continue;
		all[n].id = e->ref;
		all[n].dist = e->dist;
		n++;
	}
	QdbSortCandidates(all, n);
	*out = all;
	return n;
}

/*
 * The code of ref if the walk knows it (read from its page, or noted from a
 * neighbour's inline list), else NULL; reads nothing, so it may be called
 * with a page locked.
 */
const uint8 *
QdbDiskGraphKnownCode(QdbDiskGraph *g, QdbNodeRef ref)
{
	DiskNode   *e = find(g, ref);

	return e != NULL && e->code_known ? NODE_CODE(g, e) : NULL;
}

/* Notes the code of ref (copied from an inline list), if not known yet. */
void
QdbDiskGraphNoteCode(QdbDiskGraph *g, QdbNodeRef ref, const uint8 *code)
{
	DiskNode   *e = lookup(g, ref);

	if (!e->code_known)
	{
		memcpy(NODE_CODE(g, e), code, g->c->shape.code_size);
		e->code_known = true;
	}
}

/*
 * Notes the inline codes of a node's list at level (a locked page's node),
 * so that planning a new list needs no more page reads.
 */
void
QdbDiskGraphNoteList(QdbDiskGraph *g, QdbNode node, int level)
{
	QdbIndexCache *c = g->c;
	QdbNodeRef *list = QdbNodeLists(node, c->shape.code_size) + QdbLevelStart(c->shape.m, level);
	int			i;

	if (!c->shape.inline_codes)
		return;
	for (i = 0; i < QdbLevelSlots(c->shape.m, level); i++)
		if (list[i] != QDB_NO_NODE)
			QdbDiskGraphNoteCode(g, list[i], QdbSlotCode(c, node, level, i));
}

/*
 * Reads the codes of refs that the walk does not know yet (no lock held),
 * when the index keeps codes inline: index_write.c writes them into a list.
 */
void
QdbDiskGraphLoadCodes(QdbDiskGraph *g, const QdbNodeRef *refs, int n)
{
	int			i;

	if (!g->c->shape.inline_codes)
		return;
	for (i = 0; i < n; i++)
		if (refs[i] != QDB_NO_NODE)
			(void) QdbDiskGraphCode(g, refs[i], NULL, NULL);
}
