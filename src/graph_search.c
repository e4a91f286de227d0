/*
 * graph_search.c
 *	  HNSW layer search and neighbour choice (Malkov and Yashunin, 2018,
 *	  algorithms 2 and 4), over any graph that QdbGraphOps can walk: the
 *	  in-memory graph of a build or the pages of an index.  No palloc and no
 *	  ereport (graph.h): memory comes from the scratch's allocator.
 */
#include "postgres.h"

#include "graph.h"

/*
 * A binary heap of candidates: a max-heap for the ef best found so far, a
 * min-heap for the candidates left to expand.  Which one is a constant at
 * every call (is_max), so that each inlined copy compares without testing
 * it.  Its array is the scratch's, grown from the scratch's allocator; a
 * growth that fails sets full and drops the push (the search then reports
 * it).
 */
typedef struct CandHeap
{
	QdbCandidate *a;
	int			n;
	int			cap;
	bool		full;
	const QdbAlloc *alloc;
	QdbCandidate **home;		/* the scratch's pointer to the array */
	int		   *home_cap;
} CandHeap;

static pg_attribute_always_inline bool
heap_above(bool is_max, float xd, uint32 xid, float yd, uint32 yid)
{
	/* ties broken by id so that results do not depend on visiting order */
	if (xd != yd)
		return is_max ? xd > yd : xd < yd;
	return is_max ? xid > yid : xid < yid;
}

/* Grows *a (cap *cap, n used) to at least want entries; false if it failed. */
static bool
grow(const QdbAlloc *alloc, void **a, int *cap, int n, int want, size_t size)
{
	int			newcap = Max(*cap, 16);
	void	   *b;

	if (*cap >= want)
		return true;
	while (newcap < want)
		newcap *= 2;
	b = alloc->alloc(size * newcap, alloc->st);
	if (b == NULL)
		return false;
	if (n > 0)
		memcpy(b, *a, size * n);
	if (*a)
		alloc->free(*a, alloc->st);
	*a = b;
	*cap = newcap;
	return true;
}

/*
 * Puts (dist, id) into the hole at i and moves it down to its place: each
 * step moves the child that goes above it up into the hole, one copy per
 * level instead of a swap.
 */
static pg_attribute_always_inline void
heap_sift_down(CandHeap *h, bool is_max, int i, float dist, uint32 id)
{
	QdbCandidate *a = h->a;
	int			n = h->n;

	for (;;)
	{
		int			w = 2 * i + 1;

		if (w >= n)
			break;
		if (w + 1 < n && heap_above(is_max, a[w + 1].dist, a[w + 1].id, a[w].dist, a[w].id))
			w++;
		if (!heap_above(is_max, a[w].dist, a[w].id, dist, id))
			break;
		a[i] = a[w];
		i = w;
	}
	a[i].dist = dist;
	a[i].id = id;
}

static pg_attribute_always_inline void
heap_push(CandHeap *h, bool is_max, float dist, uint32 id)
{
	int			i;

	if (unlikely(h->n == h->cap))
	{
		if (!grow(h->alloc, (void **) &h->a, &h->cap, h->n, h->n + 1, sizeof(QdbCandidate)))
		{
			h->full = true;
			return;
		}
		/* the old array is freed: the scratch never keeps pointing at it */
		*h->home = h->a;
		*h->home_cap = h->cap;
	}
	i = h->n++;
	while (i > 0)
	{
		int			parent = (i - 1) / 2;

		if (!heap_above(is_max, dist, id, h->a[parent].dist, h->a[parent].id))
			break;
		h->a[i] = h->a[parent];
		i = parent;
	}
	h->a[i].dist = dist;
	h->a[i].id = id;
}

static pg_attribute_always_inline QdbCandidate
heap_pop(CandHeap *h, bool is_max)
{
	QdbCandidate top = h->a[0];
	QdbCandidate last = h->a[--h->n];

	if (h->n > 0)
		heap_sift_down(h, is_max, 0, last.dist, last.id);
	return top;
}

/*
 * The top taken out and (dist, id) put in, in one pass down: what a push
 * followed by a pop gives when (dist, id) goes below the top.
 */
static pg_attribute_always_inline void
heap_replace_top(CandHeap *h, bool is_max, float dist, uint32 id)
{
	heap_sift_down(h, is_max, 0, dist, id);
}

static void
heap_init(CandHeap *h, QdbCandidate **home, int *home_cap,
		  const QdbAlloc *alloc)
{
	h->home = home;
	h->home_cap = home_cap;
	h->a = *home;
	h->cap = *home_cap;
	h->n = 0;
	h->full = false;
	h->alloc = alloc;
}

/* Empty scratch; its arrays come from alloc as searches need them. */
void
QdbSearchScratchInit(QdbSearchScratch *s, const QdbAlloc *alloc)
{
	memset(s, 0, sizeof(QdbSearchScratch));
	s->alloc = alloc;
}

void
QdbSearchScratchFree(QdbSearchScratch *s)
{
	void	   *arrays[] = {s->cand, s->best, s->nbuf, s->more, s->ids, s->skip, s->expanded};
	int			i;

	for (i = 0; i < lengthof(arrays); i++)
		if (arrays[i])
			s->alloc->free(arrays[i], s->alloc->st);
	QdbTiesFree(&s->ties, s->alloc);
	QdbSearchScratchInit(s, s->alloc);
}

static int
cand_cmp(const void *a, const void *b)
{
	const QdbCandidate *x = a,
			   *y = b;

	if (x->dist != y->dist)
		return x->dist < y->dist ? -1 : 1;
	return x->id < y->id ? -1 : (x->id > y->id ? 1 : 0);
}

/* Nearest first; insertion sort for the short lists of neighbour pruning. */
void
QdbSortCandidates(QdbCandidate *c, int n)
{
	int			i,
				j;

	if (n > 64)
	{
		qsort(c, n, sizeof(QdbCandidate), cand_cmp);
		return;
	}
	for (i = 1; i < n; i++)
	{
		QdbCandidate x = c[i];

		for (j = i; j > 0 && cand_cmp(&x, &c[j - 1]) < 0; j--)
			c[j] = c[j - 1];
		c[j] = x;
	}
}

/*
 * The beam: the max-heap best, and how many of its entries lie at each
 * distance (ties).  It holds the nodes of the ef nearest distinct distances
 * found so far, so that copies of one vector (rows of one code), which
 * share a distance, take one place of the ef, not one each.  Counted each,
 * they filled the beam of a walk that reached more of them than ef: every
 * way out of them lay farther than they did and was turned away, and a
 * scan answered with the copies instead of the nearer rows beyond them
 * (sift's first 3,000 rows with 429 copies of their mean after the rest:
 * 7 of 200 queries wrong at the defaults, 0 at ef_search 480).  At most ef
 * nodes of one distance enter: with all of them, an insert among 4,000
 * copies expanded every copy it reached, and took 11 times as long.  And
 * at most twice ef nodes in all: on data of few distinct distances (0/1
 * features, 9 distances at 8 dimensions), a beam of ef distances held up
 * to ef x ef nodes, and a build took 3 times as long (session 63's
 * review, /work/runs/review-s63.md F1).  A node turned away is no
 * candidate either.
 */
static pg_attribute_always_inline bool
beam_push(CandHeap *best, QdbBeamTies *t, int ef, float d, uint32 id)
{
	/* the table holds distances, at most one more than ef */
	if (!QdbTiesReserve(t, t->distinct + 1, best->alloc))
	{
		best->full = true;
		return false;
	}
	if (!QdbTiesAdd(t, d, ef))
		return false;
	heap_push(best, true, d, id);
	if (unlikely(best->full))
	{
		QdbTiesRemove(t, d);
		return false;
	}
	return true;
}

/* Whether the beam holds all it may: ef distances, or twice ef nodes. */
static pg_attribute_always_inline bool
beam_full(const CandHeap *best, const QdbBeamTies *t, int ef)
{
	return t->distinct >= ef || best->n >= 2 * ef;
}

/*
 * Drops the farthest distance's nodes while the beam holds more than ef
 * distances or more than twice ef nodes.
 */
static pg_attribute_always_inline void
beam_trim(CandHeap *best, QdbBeamTies *t, int ef)
{
	while ((t->distinct > ef || best->n > 2 * ef) && best->n > 0)
		QdbTiesRemove(t, heap_pop(best, true).dist);
}

/* A node just visited at distance d: a candidate if it can enter the beam. */
static pg_attribute_always_inline void
offer(CandHeap *cand, CandHeap *best, QdbBeamTies *t, int ef, float d, uint32 id)
{
	if (!beam_full(best, t, ef))
	{
		if (beam_push(best, t, ef, d, id))
			heap_push(cand, false, d, id);
		return;
	}
	if (!(d < best->a[0].dist) || !beam_push(best, t, ef, d, id))
		return;
	heap_push(cand, false, d, id);
	/* the farthest distance's nodes go when d is a distance new to the beam */
	beam_trim(best, t, ef);
}

/*
 * The beam search's loop: expands the nearest candidate until the ef best
 * are all nearer than it.  With keep (a constant at each call), the nodes
 * it expands are listed in s->expanded and the candidate it stopped at goes
 * back among the candidates, so that the search can be widened later
 * (QdbWidenLayer).  False when an array could not grow.
 */
static pg_attribute_always_inline bool
search_loop(const QdbGraphOps *ops, void *g, CandHeap *cand, CandHeap *best, int ef,
			int level, QdbSearchScratch *s, bool keep)
{
	float		dist[QDB_MAX_LIST];
	int			i;

	while (cand->n > 0)
	{
		QdbCandidate c = heap_pop(cand, false);
		int			nn;

		if (beam_full(best, &s->ties, ef) && c.dist > best->a[0].dist)
		{
			if (keep)
				heap_push(cand, false, c.dist, c.id);
			break;
		}
		if (keep)
		{
			if (unlikely(s->nexpanded == s->expanded_cap) &&
				!grow(s->alloc, (void **) &s->expanded, &s->expanded_cap, s->nexpanded,
					  s->nexpanded + 1, sizeof(uint32)))
				return false;
			s->expanded[s->nexpanded++] = c.id;
		}
		if (ops->prefetch_list && cand->n > 0)
			ops->prefetch_list(g, cand->a[0].id, level);
		nn = ops->neighbors(g, c.id, level, s->nbuf);
		if (ops->prefetch)
			ops->prefetch(g, s->nbuf, nn);
		if (ops->visit_distances && nn <= QDB_MAX_LIST)
		{
			/* the new members and their distances first, then the heaps */
			nn = ops->visit_distances(g, s->nbuf, nn, s->nbuf, dist);
			for (i = 0; i < nn; i++)
				offer(cand, best, &s->ties, ef, dist[i], s->nbuf[i]);
			continue;
		}
		for (i = 0; i < nn; i++)
		{
			if (!ops->visit(g, s->nbuf[i]))
				continue;
			offer(cand, best, &s->ties, ef, ops->distance(g, s->nbuf[i]), s->nbuf[i]);
		}
	}
	return !(cand->full || best->full);
}

/*
 * Pops the ef best into out, nearest first; with keep, puts them back as
 * the same max-heap (nearest first read backwards is one) and keeps both
 * heaps' sizes in the scratch for QdbWidenLayer.
 */
static pg_attribute_always_inline int
finish_search(CandHeap *cand, CandHeap *best, int ef, int level, QdbCandidate *out,
			  QdbSearchScratch *s, bool keep)
{
	int			n,
				i;

	/* the beam may hold more nodes than ef, at fewer distances: out has ef */
	while (best->n > ef)
		(void) heap_pop(best, true);
	n = best->n;
	for (i = n - 1; i >= 0; i--)
		out[i] = heap_pop(best, true);
	if (keep)
	{
		for (i = 0; i < n; i++)
			best->a[i] = out[n - 1 - i];
		s->nbest = n;
		s->ncand = cand->n;
		s->kept_level = level;
		s->kept = true;
	}
	return n;
}

/*
 * The ef nearest nodes to the query at one level, found by a beam search
 * from the entry candidates (their distances already known), sorted nearest
 * first into out (room for ef).  max_degree bounds a neighbour list.  The
 * caller has started the layer (ops->new_layer).  Returns how many, or -1
 * when the scratch could not grow (QDB_ERR_NOMEM to the caller).
 *
 * With keep, the search's heaps stay in the scratch (s->kept) for
 * QdbWidenLayer; any other search with the same scratch drops them.
 */
static pg_attribute_always_inline int
search_layer(const QdbGraphOps *ops, void *g, const QdbCandidate *entry, int nentry,
			 int ef, int level, int max_degree, QdbCandidate *out,
			 QdbSearchScratch *s, bool keep)
{
	CandHeap	cand,
				best;
	int			i;

	s->kept = false;
	s->nexpanded = 0;
	if (!grow(s->alloc, (void **) &s->best, &s->best_cap, 0, ef + 1, sizeof(QdbCandidate)) ||
		!grow(s->alloc, (void **) &s->cand, &s->cand_cap, 0, Max(ef * 4, 64),
			  sizeof(QdbCandidate)) ||
		!grow(s->alloc, (void **) &s->nbuf, &s->nbuf_cap, 0, max_degree, sizeof(uint32)) ||
		(keep && !grow(s->alloc, (void **) &s->expanded, &s->expanded_cap, 0, ef,
					   sizeof(uint32))))
		return -1;
	heap_init(&cand, &s->cand, &s->cand_cap, s->alloc);
	heap_init(&best, &s->best, &s->best_cap, s->alloc);
	if (!QdbTiesReserve(&s->ties, ef + 1, s->alloc))
		return -1;
	QdbTiesClear(&s->ties);
	for (i = 0; i < nentry; i++)
	{
		if (!ops->visit(g, entry[i].id))
			continue;
		if (!beam_push(&best, &s->ties, ef, entry[i].dist, entry[i].id))
			continue;
		heap_push(&cand, false, entry[i].dist, entry[i].id);
		beam_trim(&best, &s->ties, ef);
	}

	if (!search_loop(ops, g, &cand, &best, ef, level, s, keep))
		return -1;
	return finish_search(&cand, &best, ef, level, out, s, keep);
}

int
QdbSearchLayer(const QdbGraphOps *ops, void *g, const QdbCandidate *entry, int nentry,
			   int ef, int level, int max_degree, QdbCandidate *out,
			   QdbSearchScratch *s)
{
	return search_layer(ops, g, entry, nentry, ef, level, max_degree, out, s, false);
}

/* QdbSearchLayer, its heaps kept in the scratch for QdbWidenLayer. */
int
QdbSearchLayerKept(const QdbGraphOps *ops, void *g, const QdbCandidate *entry, int nentry,
				   int ef, int level, int max_degree, QdbCandidate *out,
				   QdbSearchScratch *s)
{
	return search_layer(ops, g, entry, nentry, ef, level, max_degree, out, s, true);
}

static int
id_cmp(const void *a, const void *b)
{
	uint32		x = *(const uint32 *) a,
				y = *(const uint32 *) b;

	return x < y ? -1 : x > y;
}

/*
 * Widens the kept search (QdbSearchLayerKept, or QdbWidenLayer: the last
 * search of the scratch, s->kept) to ef, no less than its own (out must
 * hold the beam), and goes on from where it stopped, with what it visited
 * still visited (the caller has started no other layer search since).
 * visited[0 .. nvisited) are the nodes that search visited, with their
 * distances, in any order (the caller's storage knows them): the nearest
 * of those not among its best fill the wider beam, and those it never
 * expanded go back among the candidates.  A node left out of the best was at
 * least as far as the best's farthest then, and that only came nearer, so
 * the wider beam starts as the ef nearest of all nodes visited, as a search
 * started again with ef would be once it had found them.  Keeping the
 * nodes the search drops as it goes would give the same, at a cost to
 * every first search whether it is widened or not.  Returns the ef nearest
 * found, sorted into out (room for ef), or -1 as QdbSearchLayer (and when
 * ef is less than the kept beam).
 */
int
QdbWidenLayer(const QdbGraphOps *ops, void *g, int ef, const QdbCandidate *visited,
			  int nvisited, QdbCandidate *out, QdbSearchScratch *s)
{
	CandHeap	cand,
				best,
				more;
	int			i,
				take,
				nskip;

	Assert(s->kept);
	s->kept = false;
	if (ef < s->nbest)
		return -1;				/* out has no room for the beam */
	take = ef - s->nbest;
	nskip = s->nexpanded + s->ncand;
	if (!grow(s->alloc, (void **) &s->best, &s->best_cap, s->nbest, ef + 1,
			  sizeof(QdbCandidate)) ||
		!grow(s->alloc, (void **) &s->ids, &s->ids_cap, 0, Max(s->nbest, 1), sizeof(uint32)) ||
		!grow(s->alloc, (void **) &s->skip, &s->skip_cap, 0, Max(nskip, 1), sizeof(uint32)) ||
		!grow(s->alloc, (void **) &s->more, &s->more_cap, 0, take + 1, sizeof(QdbCandidate)))
		return -1;
	heap_init(&cand, &s->cand, &s->cand_cap, s->alloc);
	heap_init(&best, &s->best, &s->best_cap, s->alloc);
	heap_init(&more, &s->more, &s->more_cap, s->alloc);
	cand.n = s->ncand;
	best.n = s->nbest;

	/* the take nearest visited nodes that are not among the best */
	for (i = 0; i < best.n; i++)
		s->ids[i] = best.a[i].id;
	qsort(s->ids, best.n, sizeof(uint32), id_cmp);
	for (i = 0; i < nvisited && take > 0; i++)
	{
		const QdbCandidate *v = &visited[i];

		if (more.n == take &&
			!heap_above(true, more.a[0].dist, more.a[0].id, v->dist, v->id))
			continue;
		if (bsearch(&v->id, s->ids, best.n, sizeof(uint32), id_cmp) != NULL)
			continue;
		if (more.n < take)
			heap_push(&more, true, v->dist, v->id);
		else
			heap_replace_top(&more, true, v->dist, v->id);
	}
	/*
	 * Each goes among the candidates unless it is one already or was
	 * expanded: a node pushed out of the best had entered the candidates
	 * with it.
	 */
	if (s->nexpanded > 0)
		memcpy(s->skip, s->expanded, sizeof(uint32) * s->nexpanded);
	for (i = 0; i < cand.n; i++)
		s->skip[s->nexpanded + i] = cand.a[i].id;
	qsort(s->skip, nskip, sizeof(uint32), id_cmp);
	for (i = 0; i < more.n; i++)
	{
		heap_push(&best, true, more.a[i].dist, more.a[i].id);
		if (bsearch(&more.a[i].id, s->skip, nskip, sizeof(uint32), id_cmp) == NULL)
			heap_push(&cand, false, more.a[i].dist, more.a[i].id);
	}
	/* the beam's distances, counted again (ef nodes: at most ef of them) */
	QdbTiesClear(&s->ties);
	if (!QdbTiesReserve(&s->ties, best.n, s->alloc))
		return -1;
	for (i = 0; i < best.n; i++)
		(void) QdbTiesAdd(&s->ties, best.a[i].dist, ef);
	if (cand.full || best.full || more.full ||
		!search_loop(ops, g, &cand, &best, ef, s->kept_level, s, true))
		return -1;
	return finish_search(&cand, &best, ef, s->kept_level, out, s, true);
}

/*
 * Greedy descent (a search of width 1) through the levels from_level down
 * to to_level + 1, starting at *cur (its distance known); *cur becomes the
 * nearest node found.  Returns 0, or -1 as QdbSearchLayer.
 */
int
QdbDescend(const QdbGraphOps *ops, void *g, QdbCandidate *cur, int from_level,
		   int to_level, int max_degree, QdbSearchScratch *scratch)
{
	int			level;

	for (level = from_level; level > to_level; level--)
	{
		QdbCandidate best;
		int			n;

		ops->new_layer(g, level);
		n = QdbSearchLayer(ops, g, cur, 1, 1, level, max_degree, &best, scratch);
		if (n < 0)
			return -1;
		if (n > 0)
			*cur = best;
	}
	return 0;
}

/*
 * Takes out of cand (sorted nearest first) the copies of each vector beyond
 * the first cap (QDB_MAX_COPIES) after it, keeping the order; returns how
 * many are left.  Without this, the heuristic kept every copy of a node's
 * own vector (a copy is no nearer to another than to the node), so the
 * lists of rows with one vector held nothing but one another: with more
 * copies than a scan's candidates, a walk that reached them never left
 * them, and 97 of 200 queries of 2,000 rows with 285 copies got the copies
 * instead of nearer rows (session 62's hunt, /work/runs/hunt-s62a.md F1).
 */
int
QdbDropExcessCopies(const QdbGraphOps *ops, void *g, QdbCandidate *cand, int ncand, int cap)
{
	int			n = 0,
				i,
				j;

	if (ops->same == NULL)
		return ncand;
	for (i = 0; i < ncand; i++)
	{
		int			same = 0;

		/* those kept of its vector: a run of equal distances before it */
		for (j = n - 1; j >= 0 && cand[j].dist == cand[i].dist && same <= cap; j--)
			same += ops->same(g, cand[i].id, cand[j].id);
		if (same > cap)
			continue;
		cand[n++] = cand[i];
	}
	return n;
}

/*
 * The HNSW neighbour heuristic: from candidates sorted nearest first, keep
 * one only if it is nearer to the base than to every one kept before it,
 * up to mmax.  This keeps links in several directions on clustered data.
 * Candidates must be distinct; copies of one vector beyond a share of mmax
 * are not candidates (QdbDropExcessCopies, which changes cand).
 */
int
QdbSelectNeighbors(const QdbGraphOps *ops, void *g, QdbCandidate *cand, int ncand,
				   int mmax, QdbCandidate *out)
{
	int			nout = 0,
				nkept;
	int			i,
				j;

	ncand = QdbDropExcessCopies(ops, g, cand, ncand, QDB_MAX_COPIES);
	for (i = 0; i < ncand && nout < mmax; i++)
	{
		bool		keep = true;

		for (j = 0; j < nout; j++)
		{
			if (ops->pair(g, cand[i].id, out[j].id) < cand[i].dist)
			{
				keep = false;
				break;
			}
		}
		if (keep)
			out[nout++] = cand[i];
	}

	/*
	 * Fill the free slots with the nearest pruned candidates.  Without this,
	 * nodes far from the rest (large norms under L2) lose every incoming
	 * link: on the glove sample under L2 at m = 16, 146 of 1343 nodes were
	 * unreachable without it and 5 with it, and recall at ef_search 40 rose
	 * from 0.875 to 0.914.
	 */
	nkept = nout;
	for (i = 0; i < ncand && nout < mmax; i++)
	{
		bool		kept = false;

		for (j = 0; j < nkept && !kept; j++)
			kept = out[j].id == cand[i].id;
		if (!kept)
			out[nout++] = cand[i];
	}
	return nout;
}
