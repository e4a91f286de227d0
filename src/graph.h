/*
 * graph.h
 *	  The HNSW algorithm, free of storage: layer search, the neighbour
 *	  heuristic, the link planner and the per-layer linking loop
 *	  (graph_search.c, graph_link.c).  Malkov and Yashunin, "Efficient and
 *	  robust approximate nearest neighbor search using Hierarchical Navigable
 *	  Small World graphs", 2018.
 *
 * One algorithm serves every graph: the build's graph in memory
 * (graph_memory.c, filled by threads) and the graph read from index pages
 * (index_graph.c: scans, inserts, vacuum's repairs, the reachability
 * repair).  A graph is reached only through QdbGraphOps and, for linking,
 * QdbLinkOps, so these files never touch a page, a lock or a Postgres
 * memory context.
 *
 * The rule that makes them callable from the build's threads: no palloc, no
 * ereport, no elog, no backend call of any kind.  Memory comes from the
 * QdbAlloc a caller gives (malloc in threads, a memory context in a
 * backend) and a failed allocation is a return value, never a longjmp.
 */
#ifndef QDB_GRAPH_H
#define QDB_GRAPH_H

#include "postgres.h"

#include "beam_ties.h"
#include "qdb_trainer.h"

/* the most neighbours of a node per level: 2 * QDB_MAX_M at level 0 */
#define QDB_MAX_M				100

/* the longest neighbour list: level 0's 2m */
#define QDB_MAX_LIST			(2 * QDB_MAX_M)

/* a node id that is no node: an empty list slot (QDB_NO_NODE on pages) */
#define QDB_NO_ID				((uint32) 0xFFFFFFFF)

/*
 * Neighbour lists of a node of level L, as laid out on pages and in memory:
 * 2m slots for level 0, then m for each level 1..L, one flat array.
 */
#define QdbLevelSlots(m, level)	((level) == 0 ? 2 * (m) : (m))
#define QdbLevelStart(m, level)	((level) == 0 ? 0 : 2 * (m) + ((level) - 1) * (m))
#define QdbNodeSlots(m, level)	(2 * (m) + (level) * (m))

typedef struct QdbCandidate
{
	float		dist;
	uint32		id;
} QdbCandidate;

/* How the algorithm sees a graph; g is the graph's own state. */
typedef struct QdbGraphOps
{
	/* distance from the query (the vector searched for) to node id */
	float		(*distance) (void *g, uint32 id);
	/* neighbour ids of node id at level into out (room for 2m); how many */
	int			(*neighbors) (void *g, uint32 id, int level, uint32 *out);
	/* true the first time id is seen in the current layer search */
	bool		(*visit) (void *g, uint32 id);
	/* distance between two nodes (the heuristic, a list's own order) */
	float		(*pair) (void *g, uint32 a, uint32 b);
	/* a layer search at level starts: nothing is visited yet */
	void		(*new_layer) (void *g, int level);
	/* may id be linked to (not deleted)?  NULL: every node may */
	bool		(*linkable) (void *g, uint32 id);
	/*
	 * a hint: the distances of these nodes are about to be asked (a list
	 * being expanded), so their memory may be fetched ahead.  NULL: none
	 */
	void		(*prefetch) (void *g, const uint32 *ids, int n);
	/*
	 * a hint: node id's list at level is likely the next one read (the
	 * nearest candidate left), so its memory may be fetched ahead.  NULL:
	 * none
	 */
	void		(*prefetch_list) (void *g, uint32 id, int level);
	/*
	 * visit, then distance, for each of ids[0 .. n) (a list being
	 * expanded, n <= QDB_MAX_LIST) in one call: the ids seen for the first
	 * time in this layer search go into out, in their order, with their
	 * distances into dist; returns how many.  out may be ids.  The same
	 * marks and floats as the two calls, faster.  NULL: those two are
	 * called
	 */
	int			(*visit_distances) (void *g, const uint32 *ids, int n, uint32 *out,
									float *dist);
	/*
	 * do nodes a and b hold the same vector (or code)?  Copies: a list
	 * keeps only a few of one vector (QdbDropExcessCopies).  NULL: never
	 */
	bool		(*same) (void *g, uint32 a, uint32 b);
} QdbGraphOps;

/*
 * graph_search.c.  The scratch of QdbSearchLayer and QdbDescend: arrays
 * that grow on demand, from the allocator given to QdbSearchScratchInit, and
 * are kept from one search to the next.
 */
typedef struct QdbSearchScratch
{
	const QdbAlloc *alloc;
	QdbCandidate *cand;
	int			cand_cap;
	QdbCandidate *best;
	int			best_cap;
	uint32	   *nbuf;
	int			nbuf_cap;
	/* a kept search (QdbSearchLayerKept): its heaps above, and the rest */
	QdbCandidate *more;			/* QdbWidenLayer's nodes to add to the best */
	int			more_cap;
	uint32	   *ids;			/* QdbWidenLayer's ids of the best, sorted */
	int			ids_cap;
	uint32	   *skip;			/* and of the expanded and the candidates */
	int			skip_cap;
	uint32	   *expanded;		/* the nodes the kept search expanded */
	int			nexpanded;
	int			expanded_cap;
	int			nbest;			/* best[0 .. nbest): a max-heap */
	int			ncand;			/* cand[0 .. ncand): a min-heap */
	int			kept_level;
	bool		kept;			/* the last search was kept and may widen */
	QdbBeamTies ties;			/* the beam's entries at each distance */
} QdbSearchScratch;

extern void QdbSearchScratchInit(QdbSearchScratch *s, const QdbAlloc *alloc);
extern void QdbSearchScratchFree(QdbSearchScratch *s);
extern int	QdbSearchLayer(const QdbGraphOps *ops, void *g, const QdbCandidate *entry,
						   int nentry, int ef, int level, int max_degree,
						   QdbCandidate *out, QdbSearchScratch *scratch);
extern int	QdbSearchLayerKept(const QdbGraphOps *ops, void *g, const QdbCandidate *entry,
							   int nentry, int ef, int level, int max_degree,
							   QdbCandidate *out, QdbSearchScratch *scratch);
extern int	QdbWidenLayer(const QdbGraphOps *ops, void *g, int ef,
						  const QdbCandidate *visited, int nvisited, QdbCandidate *out,
						  QdbSearchScratch *scratch);
extern int	QdbDescend(const QdbGraphOps *ops, void *g, QdbCandidate *cur, int from_level,
					   int to_level, int max_degree, QdbSearchScratch *scratch);
extern int	QdbSelectNeighbors(const QdbGraphOps *ops, void *g, QdbCandidate *cand,
							   int ncand, int mmax, QdbCandidate *out);

/*
 * Copies of each vector a list may hold beyond the first (QdbDropExcessCopies).
 * On sift-photos-128's first 3,000 rows with 428 of them set to the rows'
 * mean, for 200 queries whose nearest row an index scan at the defaults
 * gave farther than the exact 10th: 124 with no bound, 62 with a quarter
 * of a list, 21 with 1, 7 with 0; but with 0 a scan for the copies' own
 * vector found too few of them (sql/iterative_scan.sql's copies), as the
 * copies are then reached only through other rows' lists.
 */
#define QDB_MAX_COPIES	1
extern int	QdbDropExcessCopies(const QdbGraphOps *ops, void *g, QdbCandidate *cand,
								int ncand, int cap);
extern void QdbSortCandidates(QdbCandidate *c, int n);

/*
 * graph_link.c: the link planner.  A list is planned from a copy and
 * written by its storage (under a node lock in memory; on pages only if the
 * list is still the copy, else planned again).
 */
typedef enum QdbLinkPlan
{
	QDB_LINK_PRESENT,			/* the list holds the new node already */
	QDB_LINK_WRITE,				/* out is the new list, the new node in it */
	QDB_LINK_REFUSED			/* the new node lost: the list stays */
} QdbLinkPlan;

/* may a full list let member id go to make room?  NULL: any member may */
typedef bool (*QdbMayDrop) (void *arg, uint32 id);

extern QdbLinkPlan QdbPlanLink(const QdbGraphOps *ops, void *g, uint32 owner,
							   const uint32 *cur, int nslots, uint32 add, bool force,
							   QdbMayDrop may_drop, void *drop_arg, uint32 *out,
							   uint32 *tied);
extern int	QdbPlanList(const QdbGraphOps *ops, void *g, QdbCandidate *cand, int ncand,
						int nslots, uint32 *out);

/*
 * The per-layer linking of a new node, for any storage: how a graph stores
 * the new node's lists and links an old node back to it.  store is the
 * storage's own state, given to QdbLinkNode.
 */
typedef struct QdbLinkOps
{
	/*
	 * Store node id's own lists: lists is laid out as on a node
	 * (QdbLevelStart), level l holding nlist[l] ids.  Returns a QdbStatus.
	 */
	int			(*set_own_lists) (void *store, uint32 id, int level, const uint32 *lists,
								  const int *nlist);
	/*
	 * Link node b to the new node a at level as QdbPlanLink plans it (force:
	 * a must get in; may_drop, NULL for any, says which members b may let
	 * go); whether b links to a afterwards.  tied (NULL: not wanted) gets
	 * the member b let go for a at a's distance from b (a tie: QdbPlanLink),
	 * else QDB_NO_ID.
	 */
	bool		(*link_back) (void *store, uint32 b, uint32 a, int level, bool force,
							  QdbMayDrop may_drop, void *drop_arg, uint32 *tied);
} QdbLinkOps;

/* What QdbLinkNode needs: arrays for a node of any level up to max_level. */
typedef struct QdbLinkScratch
{
	QdbSearchScratch search;
	QdbCandidate *found;		/* (ef) */
	QdbCandidate *entries;		/* (ef) */
	QdbCandidate *sel;			/* (2m) */
	uint32	   *lists;			/* (2m + max_level * m) */
	int		   *nlist;			/* (max_level + 1) */
	int			ef;
	int			m;
	int			max_level;
} QdbLinkScratch;

extern bool QdbLinkScratchInit(QdbLinkScratch *s, const QdbAlloc *alloc, int m, int ef,
							   int max_level);
extern void QdbLinkScratchFree(QdbLinkScratch *s);
extern int	QdbLinkNode(const QdbGraphOps *ops, void *g, const QdbLinkOps *lops,
						void *store, uint32 id, int level, uint32 entry, int entry_level,
						QdbLinkScratch *s);

#endif							/* QDB_GRAPH_H */
