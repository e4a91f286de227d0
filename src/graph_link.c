/*
 * graph_link.c
 *	  The link planner and the per-layer linking loop of HNSW, over any
 *	  graph: the one place that decides what a neighbour list holds.
 *
 * QdbPlanLink decides an old node's list once a new node asks to be in it
 * (an insert's back-link, in memory or on pages, and the reachability
 * repair); QdbPlanList picks a list from candidates (a new node's own
 * lists, vacuum's repair of a list that held deleted nodes); QdbLinkNode
 * is the insert: descent, a search per layer, the node's own lists, then
 * the back-links, with the rule that every new node keeps a way in.  The
 * storage (graph_memory.c, index_lists.c) copies a list, asks the planner
 * and writes the answer.  No palloc and no ereport here (graph.h).
 */
#include "postgres.h"

#include "graph.h"

/*
 * Is cand[i] among the heuristic's picks (QdbSelectNeighbors without its
 * cap on how many)?  It is unless a pick nearer the owner is nearer to it
 * than the owner is.  known[] (-1 not yet, 0 no, 1 yes) keeps the answers,
 * so each pair is measured at most once, and a candidate's own answer is
 * sought only when it would prune cand[i].
 */
static bool
is_picked(const QdbGraphOps *ops, void *g, const QdbCandidate *cand, int i, int8 *known)
{
	int			j;

	if (known[i] >= 0)
		return known[i] == 1;
	for (j = 0; j < i; j++)
	{
		if (known[j] == 0)
			continue;
		if (ops->pair(g, cand[i].id, cand[j].id) < cand[i].dist &&
			is_picked(ops, g, cand, j, known))
		{
			known[i] = 0;
			return false;
		}
	}
	known[i] = 1;
	return true;
}

/*
 * Which of ncand candidates (sorted nearest first) a list of ncand - 1
 * slots lets go.  QdbSelectNeighbors keeps the heuristic's picks, at most
 * ncand - 1 of them, and fills the free slots nearest first, so the one it
 * leaves out is the farthest candidate it does not pick; when the ncand - 1
 * nearest are all picks, the cap leaves out the last.  Sought from the far
 * end, this asks the heuristic only about the candidates that decide it:
 * the full way takes up to 528 pair distances for 33 candidates, 339 on
 * average in a build of glove-100-angular, against 256 this way.
 */
static int
left_out(const QdbGraphOps *ops, void *g, const QdbCandidate *cand, int ncand)
{
	int8		known[2 * QDB_MAX_M + 1];
	int			i;

	memset(known, -1, sizeof(int8) * ncand);
	for (i = ncand - 1; i >= 0; i--)
		if (!is_picked(ops, g, cand, i, known))
			return i;
	return ncand - 1;
}

/*
 * Is cand[i] (sorted nearest first) a copy of its vector beyond the first
 * cap after it (QdbDropExcessCopies)?  Only the run of equal distances
 * before it is asked.
 */
static bool
excess_copy(const QdbGraphOps *ops, void *g, const QdbCandidate *cand, int i, int cap)
{
	int			same = 0,
				j;

	if (ops->same == NULL)
		return false;
	for (j = i - 1; j >= 0 && cand[j].dist == cand[i].dist && same <= cap; j--)
		same += ops->same(g, cand[i].id, cand[j].id);
	return same > cap;
}

/* The last such excess copy in cand, or -1: the one a full list lets go first. */
static int
last_excess_copy(const QdbGraphOps *ops, void *g, const QdbCandidate *cand, int ncand, int cap)
{
	int			last = -1,
				i;

	for (i = 1; i < ncand; i++)
		if (excess_copy(ops, g, cand, i, cap))
			last = i;
	return last;
}

/*
 * The list of node owner (cur, nslots slots, QDB_NO_ID empty) once node
 * add asks to be in it, into out (nslots):
 *	- add is there already: QDB_LINK_PRESENT;
 *	- an empty slot: add takes the first one, the rest stays;
 *	- full: the heuristic picks among the linkable members and add, by
 *	  their distance from owner, and the free slots take the nearest of the
 *	  rest (QdbSelectNeighbors); members it leaves out are dropped
 *	  (unlinkable ones always are);
 *	- add not kept: QDB_LINK_REFUSED, unless force, when add takes the
 *	  place of the farthest member that may_drop lets go (none: refused).
 * A full list keeps all but at most one candidate, so the planner finds
 * just that one (left_out); the list it writes is nearest first.
 */
QdbLinkPlan
QdbPlanLink(const QdbGraphOps *ops, void *g, uint32 owner, const uint32 *cur, int nslots,
			uint32 add, bool force, QdbMayDrop may_drop, void *drop_arg, uint32 *out,
			uint32 *tied)
{
	QdbCandidate cand[2 * QDB_MAX_M + 1];
	int			ncand = 0,
				nout = 0,
				empty = -1,
				drop = -1,
				over_copies = -1,
				i;
	float		add_dist;

	Assert(nslots <= 2 * QDB_MAX_M);
	if (tied)
		*tied = QDB_NO_ID;
	for (i = 0; i < nslots; i++)
	{
		if (cur[i] == add)
			return QDB_LINK_PRESENT;
		if (cur[i] == QDB_NO_ID && empty < 0)
			empty = i;
	}
	if (empty >= 0)
	{
		memcpy(out, cur, sizeof(uint32) * nslots);
		out[empty] = add;
		return QDB_LINK_WRITE;
	}

	for (i = 0; i < nslots; i++)
	{
		if (ops->linkable && !ops->linkable(g, cur[i]))
			continue;
		cand[ncand].id = cur[i];
		cand[ncand].dist = ops->pair(g, owner, cur[i]);
		ncand++;
	}
	cand[ncand].id = add;
	cand[ncand].dist = add_dist = ops->pair(g, owner, add);
	ncand++;
	QdbSortCandidates(cand, ncand);
	if (ncand > nslots)
	{
		/* copies beyond the list's share go first (QdbDropExcessCopies) */
		over_copies = last_excess_copy(ops, g, cand, ncand, QDB_MAX_COPIES);
		drop = over_copies >= 0 ? over_copies : left_out(ops, g, cand, ncand);
	}
	if (drop >= 0 && cand[drop].id == add && !force)
		return QDB_LINK_REFUSED;
	/*
	 * add forced in, or a member may_drop keeps left out: the farthest it
	 * lets go, an excess copy first when the list holds any (a copy forced
	 * in takes another copy's place, not one of the ways out of them)
	 */
	if (drop >= 0 && (cand[drop].id == add ||
					  (may_drop != NULL && !may_drop(drop_arg, cand[drop].id))))
	{
		int			other = -1;

		for (i = ncand - 1, drop = -1; i >= 0 && drop < 0; i--)
			if (cand[i].id != add && (may_drop == NULL || may_drop(drop_arg, cand[i].id)))
			{
				if (over_copies < 0 || excess_copy(ops, g, cand, i, QDB_MAX_COPIES))
					drop = i;
				else if (other < 0)
					other = i;
			}
		if (drop < 0)
			drop = other;
		if (drop < 0)
			return QDB_LINK_REFUSED;
	}
	for (i = 0; i < ncand; i++)
		if (i != drop)
			out[nout++] = cand[i].id;
	for (; nout < nslots; nout++)
		out[nout] = QDB_NO_ID;
	/*
	 * a member let go at exactly add's distance: between equals, node
	 * numbers (or the heuristic) chose
	 */
	if (tied && drop >= 0 && cand[drop].dist == add_dist)
		*tied = cand[drop].id;
	return QDB_LINK_WRITE;
}

/*
 * A list of nslots chosen by the heuristic from cand (distinct, sorted
 * nearest first, distances from the list's owner), into out, empty slots
 * after; returns how many it holds.
 */
int
QdbPlanList(const QdbGraphOps *ops, void *g, QdbCandidate *cand, int ncand, int nslots,
			uint32 *out)
{
	QdbCandidate sel[2 * QDB_MAX_M];
	int			nsel,
				i;

	Assert(nslots <= 2 * QDB_MAX_M);
	nsel = QdbSelectNeighbors(ops, g, cand, ncand, nslots, sel);
	for (i = 0; i < nslots; i++)
		out[i] = i < nsel ? sel[i].id : QDB_NO_ID;
	return nsel;
}

bool
QdbLinkScratchInit(QdbLinkScratch *s, const QdbAlloc *alloc, int m, int ef, int max_level)
{
	memset(s, 0, sizeof(QdbLinkScratch));
	QdbSearchScratchInit(&s->search, alloc);
	s->ef = ef;
	s->m = m;
	s->max_level = max_level;
	s->found = alloc->alloc(sizeof(QdbCandidate) * ef, alloc->st);
	s->entries = alloc->alloc(sizeof(QdbCandidate) * ef, alloc->st);
	s->sel = alloc->alloc(sizeof(QdbCandidate) * 2 * m, alloc->st);
	s->lists = alloc->alloc(sizeof(uint32) * QdbNodeSlots(m, max_level), alloc->st);
	s->nlist = alloc->alloc(sizeof(int) * (max_level + 1), alloc->st);
	return s->found && s->entries && s->sel && s->lists && s->nlist;
}

void
QdbLinkScratchFree(QdbLinkScratch *s)
{
	const QdbAlloc *a = s->search.alloc;

	QdbSearchScratchFree(&s->search);
	if (s->found)
		a->free(s->found, a->st);
	if (s->entries)
		a->free(s->entries, a->st);
	if (s->sel)
		a->free(s->sel, a->st);
	if (s->lists)
		a->free(s->lists, a->st);
	if (s->nlist)
		a->free(s->nlist, a->st);
	memset(s, 0, sizeof(QdbLinkScratch));
}

/*
 * A back-link to the new node id let tied go, a member as far from its
 * owner as id (QDB_NO_ID: none): id links to it instead, so that it keeps
 * a way in through id.  Rows with one vector are such ties: every list of
 * theirs is full of equal distances and node numbers decide, so each new
 * copy pushed the newest copy out of its neighbour's list, often its only
 * way in (300 copies inserted one by one left 259 unreachable: a LIMIT 350
 * scan returned 43 of them).  Forced into id's list, it drops one of id's
 * own neighbours, which have other ways in, but never a member adopted so
 * before at this level (adopted[0 .. *nadopted), room for 2m): with node
 * numbers not in insert order (pages reused after VACUUM) several ties in
 * one insert otherwise pushed each other out again.
 */
typedef struct KeepSet
{
	const uint32 *ids;
	int			n;
} KeepSet;

static bool
not_kept(void *arg, uint32 id)
{
	const KeepSet *k = arg;

	for (int i = 0; i < k->n; i++)
		if (k->ids[i] == id)
			return false;
	return true;
}

static void
keep_tied(const QdbLinkOps *lops, void *store, uint32 id, int level, uint32 tied,
		  uint32 *adopted, int *nadopted)
{
	KeepSet		k = {adopted, *nadopted};

	if (tied == QDB_NO_ID)
		return;
	if (lops->link_back(store, id, tied, level, true, not_kept, &k, NULL) &&
		*nadopted < 2 * QDB_MAX_M)
		adopted[(*nadopted)++] = tied;
}

/*
 * Links the new node id of level into the graph whose entry point is entry
 * (at entry_level; the graph is not empty): a greedy descent to the node's
 * level, then at each level from min(level, entry_level) down to 0 a search
 * of width ef whose linkable finds, but the node itself, are picked from by
 * the heuristic.  The node's own lists are stored first, all levels at once
 * (a list is never linked to before the node's own lists exist), then each
 * chosen neighbour is linked back; if none keeps the node at a level, the
 * nearest must (force), so every new node starts with a way in.  The
 * distances of ops->distance must be from the new node; ops->visit must not
 * hand out the node itself or the caller filters it as unlinkable.
 * Returns a QdbStatus.
 */
int
QdbLinkNode(const QdbGraphOps *ops, void *g, const QdbLinkOps *lops, void *store, uint32 id,
			int level, uint32 entry, int entry_level, QdbLinkScratch *s)
{
	int			m = s->m;
	int			top = Min(level, entry_level);
	int			nentries = 1,
				status,
				l,
				i;
	QdbCandidate cur;
	uint32		tied;
	uint32		adopted[2 * QDB_MAX_M];

	Assert(level <= s->max_level);
	ops->new_layer(g, entry_level);
	cur.id = entry;
	cur.dist = ops->distance(g, entry);
	if (QdbDescend(ops, g, &cur, entry_level, top, 2 * m, &s->search) < 0)
		return QDB_ERR_NOMEM;
	s->entries[0] = cur;

	for (l = 0; l <= level; l++)
		s->nlist[l] = 0;
	for (l = top; l >= 0; l--)
	{
		int			nfound,
					nusable = 0;
		uint32	   *list = s->lists + QdbLevelStart(m, l);

		ops->new_layer(g, l);
		nfound = QdbSearchLayer(ops, g, s->entries, nentries, s->ef, l, 2 * m, s->found,
								&s->search);
		if (nfound < 0)
			return QDB_ERR_NOMEM;
		/* the next layer starts from every find; this one links linkable ones */
		memcpy(s->entries, s->found, sizeof(QdbCandidate) * nfound);
		nentries = nfound;
		for (i = 0; i < nfound; i++)
			if (s->found[i].id != id && (ops->linkable == NULL || ops->linkable(g, s->found[i].id)))
				s->found[nusable++] = s->found[i];
		s->nlist[l] = QdbPlanList(ops, g, s->found, nusable, QdbLevelSlots(m, l), list);
	}
	status = lops->set_own_lists(store, id, level, s->lists, s->nlist);
	if (status != QDB_OK)
		return status;

	for (l = top; l >= 0; l--)
	{
		const uint32 *list = s->lists + QdbLevelStart(m, l);
		bool		linked = false;
		int			nadopted = 0;

		for (i = 0; i < s->nlist[l]; i++)
		{
			linked |= lops->link_back(store, list[i], id, l, false, NULL, NULL, &tied);
			keep_tied(lops, store, id, l, tied, adopted, &nadopted);
		}
		/* every node keeps a way in: else a neighbour must link to it */
		for (i = 0; !linked && i < s->nlist[l]; i++)
		{
			linked = lops->link_back(store, list[i], id, l, true, NULL, NULL, &tied);
			keep_tied(lops, store, id, l, tied, adopted, &nadopted);
		}
	}
	return QDB_OK;
}
