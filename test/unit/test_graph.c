/*
 * test_graph.c
 *	  Unit tests of the storage-free graph layer (src/graph_search.c,
 *	  src/graph_link.c): the link planner's rules one by one, and QdbLinkNode
 *	  building a whole graph over a toy storage with exact distances, which
 *	  must stay connected and find the true neighbours.  TAP output.
 */
#include "postgres.h"

#include <math.h>
#include <stdlib.h>

#include "graph.h"
#include "../../trainer/tests/tap.h"

#define DIM			8
#define MAX_LEVEL	4

/* A graph in plain arrays: points, levels, flat lists as on a node. */
typedef struct Toy
{
	int			n;
	int			m;
	float	   *x;				/* (n, DIM) */
	int		   *level;
	uint32	   *nb;				/* (n, QdbNodeSlots(m, MAX_LEVEL)) */
	bool	   *dead;			/* not linkable */
	uint32	   *stamp;
	uint32		epoch;
	const float *q;				/* the query's point */
	uint32		self;			/* the node being linked, or QDB_NO_ID */
	bool		no_ties;		/* link_back reports no tie (as before ties were kept) */
} Toy;

static uint32 *
list_of(Toy *t, uint32 id, int level)
{
	return t->nb + (size_t) id * QdbNodeSlots(t->m, MAX_LEVEL) + QdbLevelStart(t->m, level);
}

static float
l2(const float *a, const float *b)
{
	float		s = 0;
	int			i;

	for (i = 0; i < DIM; i++)
		s += (a[i] - b[i]) * (a[i] - b[i]);
	return sqrtf(s);
}

static long toy_dists;			/* query distances asked, for test_widen */

static float
toy_distance(void *g, uint32 id)
{
	Toy		   *t = g;

	toy_dists++;
	return l2(t->q, t->x + (size_t) id * DIM);
}

static int *toy_expansions;		/* level-0 expansions per node, for test_widen */

static int
toy_neighbors(void *g, uint32 id, int level, uint32 *out)
{
	Toy		   *t = g;
	uint32	   *list = list_of(t, id, level);
	int			i,
				n = 0;

	if (toy_expansions && level == 0)
		toy_expansions[id]++;

	if (level > t->level[id])
		return 0;
	for (i = 0; i < QdbLevelSlots(t->m, level); i++)
		if (list[i] != QDB_NO_ID)
			out[n++] = list[i];
	return n;
}

static bool
toy_visit(void *g, uint32 id)
{
	Toy		   *t = g;

	if (t->stamp[id] == t->epoch)
		return false;
	t->stamp[id] = t->epoch;
	return true;
}

static long toy_pairs;			/* pair distances asked, for test_plan_link_random */

static float
toy_pair(void *g, uint32 a, uint32 b)
{
	Toy		   *t = g;

	toy_pairs++;
	return l2(t->x + (size_t) a * DIM, t->x + (size_t) b * DIM);
}

static void
toy_new_layer(void *g, int level)
{
	Toy		   *t = g;

	t->epoch++;
	if (t->self != QDB_NO_ID)
		t->stamp[t->self] = t->epoch;
}

static bool
toy_linkable(void *g, uint32 id)
{
	return !((Toy *) g)->dead[id];
}

static const QdbGraphOps toy_ops = {
	toy_distance, toy_neighbors, toy_visit, toy_pair, toy_new_layer, toy_linkable, NULL
};

static int
toy_set_own_lists(void *store, uint32 id, int level, const uint32 *lists, const int *nlist)
{
	Toy		   *t = store;
	int			l,
				i;

	for (l = 0; l <= level; l++)
		for (i = 0; i < QdbLevelSlots(t->m, l); i++)
			list_of(t, id, l)[i] = i < nlist[l] ? lists[QdbLevelStart(t->m, l) + i] : QDB_NO_ID;
	return QDB_OK;
}

static bool
toy_link_back(void *store, uint32 b, uint32 a, int level, bool force, QdbMayDrop may_drop,
			  void *drop_arg, uint32 *tied)
{
	Toy		   *t = store;
	uint32		want[2 * QDB_MAX_M];
	int			nslots = QdbLevelSlots(t->m, level);
	QdbLinkPlan plan = QdbPlanLink(&toy_ops, t, b, list_of(t, b, level), nslots, a, force,
								   may_drop, drop_arg, want, t->no_ties ? NULL : tied);

	if (tied && (t->no_ties || plan != QDB_LINK_WRITE))
		*tied = QDB_NO_ID;

	if (plan == QDB_LINK_WRITE)
		memcpy(list_of(t, b, level), want, sizeof(uint32) * nslots);
	return plan != QDB_LINK_REFUSED;
}

static const QdbLinkOps toy_link_ops = {toy_set_own_lists, toy_link_back};

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static double
rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (rng_state >> 11) * (1.0 / 9007199254740992.0);
}

static void
toy_init(Toy *t, int n, int m)
{
	size_t		slots = (size_t) n * QdbNodeSlots(m, MAX_LEVEL);
	size_t		i;

	memset(t, 0, sizeof(Toy));
	t->n = n;
	t->m = m;
	t->x = calloc((size_t) n * DIM, sizeof(float));
	t->level = calloc(n, sizeof(int));
	t->nb = malloc(slots * sizeof(uint32));
	t->dead = calloc(n, sizeof(bool));
	t->stamp = calloc(n, sizeof(uint32));
	t->self = QDB_NO_ID;
	for (i = 0; i < slots; i++)
		t->nb[i] = QDB_NO_ID;
}

static void
toy_free(Toy *t)
{
	free(t->x);
	free(t->level);
	free(t->nb);
	free(t->dead);
	free(t->stamp);
}

/* Points on a line, so every distance is known: point i at x[0] = pos[i]. */
static void
toy_line(Toy *t, const float *pos, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		t->x[(size_t) i * DIM] = pos[i];
}

static bool
holds(const uint32 *list, int n, uint32 id)
{
	int			i;

	for (i = 0; i < n; i++)
		if (list[i] == id)
			return true;
	return false;
}

static bool
holds_cand(const QdbCandidate *c, int n, uint32 id)
{
	int			i;

	for (i = 0; i < n; i++)
		if (c[i].id == id)
			return true;
	return false;
}

/* may_drop for the test: everything but node 2 */
static bool
keep_two(void *arg, uint32 id)
{
	return id != 2;
}

static void
test_plan_link(void)
{
	Toy			t;
	/* node 0 owns the lists; 1..4 its members; 5 near it, 6 far on 1's side */
	const float pos[] = {0, 1, 2, 3, 4, 0.5f, 1.2f};
	uint32		cur[4];
	uint32		out[4];
	uint32		tied;
	QdbLinkPlan p;

	toy_init(&t, 7, 2);			/* level 0 lists of 2m = 4 slots */
	toy_line(&t, pos, 7);

	cur[0] = 1, cur[1] = 2, cur[2] = 3, cur[3] = 4;
	p = QdbPlanLink(&toy_ops, &t, 0, cur, 4, 3, false, NULL, NULL, out, NULL);
	tap_ok(p == QDB_LINK_PRESENT, "a member already in the list: present, nothing to write");

	cur[0] = 1, cur[1] = QDB_NO_ID, cur[2] = 3, cur[3] = QDB_NO_ID;
	p = QdbPlanLink(&toy_ops, &t, 0, cur, 4, 6, false, NULL, NULL, out, NULL);
	tap_ok(p == QDB_LINK_WRITE && out[0] == 1 && out[1] == 6 && out[2] == 3 &&
		   out[3] == QDB_NO_ID, "room: the new node takes the first empty slot, the rest stays");

	/*
	 * Full, all on one side of 0: the heuristic keeps the nearest (5 at
	 * 0.5) and fills the rest with the nearest pruned ones; 6 at 1.2 beats
	 * 2, 3 and 4, so it gets in and 4 (the farthest) goes.
	 */
	cur[0] = 1, cur[1] = 2, cur[2] = 3, cur[3] = 4;
	p = QdbPlanLink(&toy_ops, &t, 0, cur, 4, 5, false, NULL, NULL, out, &tied);
	tap_ok(p == QDB_LINK_WRITE && holds(out, 4, 5) && !holds(out, 4, 4) && tied == QDB_NO_ID,
		   "full: a nearer node gets in, the farthest member goes (no tie)");

	/* a node farther than every member loses, unless forced */
	t.x[6 * DIM] = 9;
	p = QdbPlanLink(&toy_ops, &t, 0, cur, 4, 6, false, NULL, NULL, out, NULL);
	tap_ok(p == QDB_LINK_REFUSED, "full: the farthest candidate is refused without force");
	p = QdbPlanLink(&toy_ops, &t, 0, cur, 4, 6, true, NULL, NULL, out, NULL);
	tap_ok(p == QDB_LINK_WRITE && holds(out, 4, 6) && !holds(out, 4, 4) &&
		   holds(out, 4, 1) && holds(out, 4, 2) && holds(out, 4, 3),
		   "force: it takes the place of the farthest member");

	/* may_drop protects member 2: with 4 and 3 protected too, no victim */
	cur[0] = 2, cur[1] = 1, cur[2] = 5, cur[3] = 3;
	t.x[3 * DIM] = 0.6f;		/* 3 near 0, so the order by distance is 5, 3, 1, 2 */
	p = QdbPlanLink(&toy_ops, &t, 0, cur, 4, 6, true, keep_two, NULL, out, NULL);
	tap_ok(p == QDB_LINK_WRITE && holds(out, 4, 6) && holds(out, 4, 2) && !holds(out, 4, 1),
		   "force with may_drop: the farthest member it lets go is dropped, not the farthest");

	/*
	 * members and the new node all at one distance (copies of one vector):
	 * forced in, it drops a member only node numbers chose, and says which
	 */
	{
		Toy			u;
		const float same[7] = {0, 1, 1, 1, 1, 1, 1};

		toy_init(&u, 7, 2);
		toy_line(&u, same, 7);
		cur[0] = 1, cur[1] = 2, cur[2] = 3, cur[3] = 4;
		p = QdbPlanLink(&toy_ops, &u, 0, cur, 4, 6, true, NULL, NULL, out, &tied);
		tap_ok(p == QDB_LINK_WRITE && holds(out, 4, 6) && tied != QDB_NO_ID &&
			   holds(cur, 4, tied) && !holds(out, 4, tied),
			   "a tie: the member dropped for the new node is reported");
		toy_free(&u);
	}

	/* unlinkable members are dropped from a full list */
	cur[0] = 1, cur[1] = 2, cur[2] = 3, cur[3] = 4;
	t.x[3 * DIM] = 3;
	t.dead[1] = true;
	p = QdbPlanLink(&toy_ops, &t, 0, cur, 4, 6, false, NULL, NULL, out, NULL);
	tap_ok(p == QDB_LINK_WRITE && !holds(out, 4, 1) && holds(out, 4, 6),
		   "full: a deleted member makes room and is dropped");
	toy_free(&t);
}

/*
 * The planner for a full list the long way, as it was written before it
 * sought only the candidate it leaves out: the heuristic over every
 * linkable member and add, filled nearest first (QdbSelectNeighbors).
 * Returns the plan; *out the list (its order aside).
 */
static QdbLinkPlan
reference_plan(Toy *t, uint32 owner, const uint32 *cur, int nslots, uint32 add, bool force,
			   uint32 *out)
{
	QdbCandidate cand[2 * QDB_MAX_M + 1];
	QdbCandidate sel[2 * QDB_MAX_M];
	int			ncand = 0,
				nsel,
				victim = -1,
				i;

	for (i = 0; i < nslots; i++)
	{
		if (t->dead[cur[i]])
			continue;
		cand[ncand].id = cur[i];
		cand[ncand].dist = toy_pair(t, owner, cur[i]);
		ncand++;
	}
	cand[ncand].id = add;
	cand[ncand].dist = toy_pair(t, owner, add);
	ncand++;
	QdbSortCandidates(cand, ncand);
	nsel = QdbSelectNeighbors(&toy_ops, t, cand, ncand, nslots, sel);
	if (!holds_cand(sel, nsel, add))
	{
		if (!force)
			return QDB_LINK_REFUSED;
		for (i = ncand - 1; i >= 0 && victim < 0; i--)
			if (cand[i].id != add)
				victim = i;
		nsel = 0;
		for (i = 0; i < ncand; i++)
			if (i != victim)
				sel[nsel++] = cand[i];
	}
	for (i = 0; i < nslots; i++)
		out[i] = i < nsel ? sel[i].id : QDB_NO_ID;
	return QDB_LINK_WRITE;
}

/* the same members, in any order */
static bool
same_list(const uint32 *a, const uint32 *b, int n)
{
	int			i,
				na = 0,
				nb = 0;

	for (i = 0; i < n; i++)
	{
		na += a[i] != QDB_NO_ID;
		nb += b[i] != QDB_NO_ID;
		if (a[i] != QDB_NO_ID && !holds(b, n, a[i]))
			return false;
	}
	return na == nb;
}

/*
 * Full lists of random points, in clusters so that the heuristic prunes
 * some members and keeps others: the planner must keep exactly the list
 * the long way keeps, refuse when it refuses, and ask fewer pair distances.
 */
static void
test_plan_link_random(void)
{
	Toy			t;
	const int	npts = 200;
	const int	sizes[] = {2, 4, 8, 16, 32, 64};
	int			trials = 0,
				same = 0,
				writes = 0,
				refusals = 0,
				trial,
				i;
	long		fast_pairs = 0,
				slow_pairs = 0;

	toy_init(&t, npts, 32);
	for (trial = 0; trial < 3000; trial++)
	{
		int			nslots = sizes[trial % 6];
		uint32		cur[2 * QDB_MAX_M];
		uint32		got[2 * QDB_MAX_M];
		uint32		want[2 * QDB_MAX_M];
		uint32		owner = 0,
					add;
		bool		force = (trial % 7) == 0;
		QdbLinkPlan p,
					r;
		long		before;

		/* points around a few centres; owner 0, members 1..nslots, add after */
		for (i = 0; i < npts * DIM; i++)
			t.x[i] = (float) ((i / DIM) % 3) * 2.0f * (float) (trial % 2) + (float) rnd();
		for (i = 0; i < npts; i++)
			t.dead[i] = (trial % 5) == 0 && rnd() < 0.1;
		for (i = 0; i < nslots; i++)
			cur[i] = (uint32) (1 + i);
		add = (uint32) (1 + nslots + (int) (rnd() * (npts - 2 - nslots)));

		before = toy_pairs;
		p = QdbPlanLink(&toy_ops, &t, owner, cur, nslots, add, force, NULL, NULL, got, NULL);
		fast_pairs += toy_pairs - before;
		before = toy_pairs;
		r = reference_plan(&t, owner, cur, nslots, add, force, want);
		slow_pairs += toy_pairs - before;

		trials++;
		if (p == r && (p != QDB_LINK_WRITE || same_list(got, want, nslots)))
			same++;
		writes += p == QDB_LINK_WRITE;
		refusals += p == QDB_LINK_REFUSED;
	}
	tap_ok(same == trials, "full lists at random: the planner keeps what the whole heuristic keeps "
		   "(%d of %d the same; %d written, %d refused)", same, trials, writes, refusals);
	tap_ok(writes > 0 && refusals > 0, "both outcomes occur among the random lists");
	tap_ok(fast_pairs < slow_pairs, "and it asks fewer pair distances (%ld against %ld)",
		   fast_pairs, slow_pairs);
	toy_free(&t);
}

static void
test_plan_list(void)
{
	Toy			t;
	/* 0 owns; 1 and 2 close together on one side, 3 on the other */
	const float pos[] = {0, 1, 1.1f, -2, 5};
	QdbCandidate cand[4] = {{1, 1}, {1.1f, 2}, {2, 3}, {5, 4}};
	uint32		out[4];
	int			n;

	toy_init(&t, 5, 1);
	toy_line(&t, pos, 5);
	n = QdbPlanList(&toy_ops, &t, cand, 4, 2, out);
	tap_ok(n == 2 && out[0] == 1 && out[1] == 3,
		   "heuristic: a candidate nearer to a kept one than to the owner is pruned (2 gives way to 3)");
	n = QdbPlanList(&toy_ops, &t, cand, 2, 2, out);
	tap_ok(n == 2 && out[0] == 1 && out[1] == 2, "free slots take the nearest pruned candidates");
	toy_free(&t);
}

/* A failing allocator: the search must say so, not crash. */
static void *
no_alloc(size_t size, void *st)
{
	return NULL;
}

static void
no_free(void *p, void *st)
{
}

static const QdbAlloc failing_alloc = {no_alloc, no_free, NULL};

static int
reached_from(Toy *t, uint32 entry)
{
	uint32	   *queue = malloc(sizeof(uint32) * t->n);
	bool	   *seen = calloc(t->n, sizeof(bool));
	int			head = 0,
				tail = 0,
				i;

	queue[tail++] = entry;
	seen[entry] = true;
	while (head < tail)
	{
		uint32		u = queue[head++];
		uint32	   *list = list_of(t, u, 0);

		for (i = 0; i < 2 * t->m; i++)
			if (list[i] != QDB_NO_ID && !seen[list[i]])
			{
				seen[list[i]] = true;
				queue[tail++] = list[i];
			}
	}
	free(queue);
	free(seen);
	return tail;
}

static int
float_cmp(const void *a, const void *b)
{
	float		x = *(const float *) a,
				y = *(const float *) b;

	return x < y ? -1 : x > y;
}

/*
 * Whether out[0 .. nf) are, in order, the min(ef, visited) nearest of the
 * nodes the layer search visited (stamped with the toy's epoch).
 */
static bool
nearest_of_visited(Toy *t, const QdbCandidate *out, int nf, int ef)
{
	float	   *d = malloc(sizeof(float) * t->n);
	int			nv = 0,
				i;
	bool		ok;

	for (i = 0; i < t->n; i++)
		if (t->stamp[i] == t->epoch)
			d[nv++] = l2(t->q, t->x + (size_t) i * DIM);
	qsort(d, nv, sizeof(float), float_cmp);
	ok = nf == Min(ef, nv);
	for (i = 0; ok && i < nf; i++)
		ok = out[i].dist == d[i] && (i == 0 || out[i - 1].id != out[i].id);
	free(d);
	return ok;
}

/* The nodes the toy's layer search visited, with their distances. */
static int
toy_visited(Toy *t, QdbCandidate *out)
{
	int			n = 0,
				i;

	for (i = 0; i < t->n; i++)
		if (t->stamp[i] == t->epoch)
		{
			out[n].id = i;
			out[n].dist = l2(t->q, t->x + (size_t) i * DIM);
			n++;
		}
	return n;
}

/*
 * Links the nodes of t by QdbLinkNode in order (NULL: 0 .. n-1), the first
 * the first entry point, a node above its level the next; *entry and
 * *entry_level get the last.  Returns how many failed.
 */
static int
link_all(Toy *t, QdbLinkScratch *s, const uint32 *order, uint32 *entry, int *entry_level)
{
	int			failures = 0;

	*entry = order ? order[0] : 0;
	*entry_level = t->level[*entry];
	for (int k = 1; k < t->n; k++)
	{
		uint32		i = order ? order[k] : (uint32) k;

		t->q = t->x + (size_t) i * DIM;
		t->self = i;
		if (QdbLinkNode(&toy_ops, t, &toy_link_ops, t, i, t->level[i], *entry, *entry_level,
						s) != QDB_OK)
			failures++;
		if (t->level[i] > *entry_level)
		{
			*entry = i;
			*entry_level = t->level[i];
		}
	}
	return failures;
}

/*
 * A kept search widened (QdbSearchLayerKept, then QdbWidenLayer to twice
 * the candidates, three times) against searches started again at each
 * width, as a scan's wider walks did: each widened result must be the
 * nearest of all nodes visited so far, as good in recall, for fewer
 * distances.
 */
static void
test_widen(Toy *t, uint32 entry, int entry_level, const float *queries, int nq,
		   QdbSearchScratch *s)
{
	const int	ef0 = 8,
				widths = 4,
				k = 5;
	QdbCandidate cur,
				found[64];
	QdbCandidate *visited = malloc(sizeof(QdbCandidate) * t->n);
	long		widen_dists = 0,
				restart_dists = 0;
	int			twice = 0,
				bad = 0,
				hits_widen = 0,
				hits_restart = 0,
				i,
				w;

	for (i = 0; i < nq; i++)
	{
		float	   *d = malloc(sizeof(float) * t->n);
		float		kth;
		int			nf,
					ef = ef0,
					a;

		t->q = queries + i * DIM;
		for (a = 0; a < t->n; a++)
			d[a] = l2(t->q, t->x + (size_t) a * DIM);
		qsort(d, t->n, sizeof(float), float_cmp);
		kth = d[k - 1];
		free(d);

		/* kept, then widened */
		toy_new_layer(t, entry_level);
		cur.id = entry;
		cur.dist = toy_distance(t, entry);
		(void) QdbDescend(&toy_ops, t, &cur, entry_level, 0, 2 * t->m, s);
		toy_new_layer(t, 0);
		toy_dists = 0;
		toy_expansions = calloc(t->n, sizeof(int));
		nf = QdbSearchLayerKept(&toy_ops, t, &cur, 1, ef, 0, 2 * t->m, found, s);
		bad += !nearest_of_visited(t, found, nf, ef);
		for (w = 1; w < widths; w++)
		{
			ef *= 2;
			nf = QdbWidenLayer(&toy_ops, t, ef, visited, toy_visited(t, visited), found, s);
			bad += !nearest_of_visited(t, found, nf, ef);
		}
		widen_dists += toy_dists;
		for (a = 0; a < t->n; a++)
			twice += toy_expansions[a] > 1;
		free(toy_expansions);
		toy_expansions = NULL;
		for (a = 0; a < Min(nf, k); a++)
			hits_widen += found[a].dist <= kth;

		/* started again at each width */
		toy_dists = 0;
		for (ef = ef0, w = 0; w < widths; w++, ef *= 2)
		{
			toy_new_layer(t, entry_level);
			cur.id = entry;
			cur.dist = toy_distance(t, entry);
			(void) QdbDescend(&toy_ops, t, &cur, entry_level, 0, 2 * t->m, s);
			toy_new_layer(t, 0);
			nf = QdbSearchLayer(&toy_ops, t, &cur, 1, ef, 0, 2 * t->m, found, s);
		}
		restart_dists += toy_dists;
		for (a = 0; a < Min(nf, k); a++)
			hits_restart += found[a].dist <= kth;
	}
	tap_ok(bad == 0, "a widened search's best are the nearest of all nodes it visited, "
		   "at every width (%d of %d searches not)", bad, nq * widths);
	tap_ok(hits_widen >= hits_restart - nq * k / 100,
		   "widened to ef %d: recall@%d %.3f, searches started again: %.3f",
		   ef0 << (widths - 1), k, hits_widen / (double) (nq * k),
		   hits_restart / (double) (nq * k));
	tap_ok(twice == 0, "no node is expanded twice over a search and its widenings (%d were)",
		   twice);
	tap_ok(widen_dists < restart_dists / 2,
		   "widening asked %ld distances, starting again %ld", widen_dists, restart_dists);

	/* a plain search drops the kept state */
	t->q = queries;
	toy_new_layer(t, 0);
	cur.id = entry;
	cur.dist = toy_distance(t, entry);
	(void) QdbSearchLayerKept(&toy_ops, t, &cur, 1, ef0, 0, 2 * t->m, found, s);
	(void) QdbDescend(&toy_ops, t, &cur, entry_level, 0, 2 * t->m, s);
	tap_ok(!s->kept, "a search of width 1 after a kept one drops the kept state");
	free(visited);
}

static void
test_link_node(void)
{
	const int	n = 3000,
				m = 8,
				ef = 64,
				nq = 100,
				k = 10;
	Toy			t;
	QdbLinkScratch s;
	float	   *queries = malloc(sizeof(float) * nq * DIM);
	uint32		entry = 0;
	int			entry_level,
				i,
				j,
				failures = 0,
				bad_lists = 0,
				hits = 0;

	toy_init(&t, n, m);
	/*
	 * Uniform points.  (On clusters far apart for their spread, level 0 of
	 * HNSW falls apart into clusters, joined only through the levels above:
	 * the reachability repair of index_reach.c is for that.)
	 */
	for (i = 0; i < n; i++)
		for (j = 0; j < DIM; j++)
			t.x[(size_t) i * DIM + j] = (float) rnd();
	for (i = 0; i < nq; i++)
		for (j = 0; j < DIM; j++)
			queries[i * DIM + j] = (float) rnd();
	for (i = 0; i < n; i++)
	{
		int			l = (int) floor(-log(1.0 - rnd()) / log((double) m));

		t.level[i] = Min(l, MAX_LEVEL);
	}

	tap_ok(QdbLinkScratchInit(&s, &qdb_default_alloc, m, ef, MAX_LEVEL), "link scratch");
	failures = link_all(&t, &s, NULL, &entry, &entry_level);
	tap_ok(failures == 0, "QdbLinkNode linked %d nodes (%d failed)", n - 1, failures);

	for (i = 0; i < n; i++)
	{
		uint32	   *list = list_of(&t, i, 0);

		for (j = 0; j < 2 * m; j++)
			if (list[j] == (uint32) i ||
				(list[j] != QDB_NO_ID && holds(list + j + 1, 2 * m - j - 1, list[j])))
				bad_lists++;
	}
	tap_ok(bad_lists == 0, "no list names its own node or a node twice (%d bad)", bad_lists);
	i = reached_from(&t, entry);
	tap_ok(i == n, "every node is reachable from the entry point at level 0 (%d of %d)", i, n);

	/* recall@10 of a search at ef against brute force */
	t.self = QDB_NO_ID;
	for (i = 0; i < nq; i++)
	{
		QdbCandidate cur,
					found[64];
		float		kth;
		float	   *d = malloc(sizeof(float) * n);
		int			nf,
					a,
					b;

		t.q = queries + i * DIM;
		toy_new_layer(&t, entry_level);
		cur.id = entry;
		cur.dist = toy_distance(&t, entry);
		(void) QdbDescend(&toy_ops, &t, &cur, entry_level, 0, 2 * m, &s.search);
		toy_new_layer(&t, 0);
		nf = QdbSearchLayer(&toy_ops, &t, &cur, 1, ef, 0, 2 * m, found, &s.search);
		for (a = 0; a < n; a++)
			d[a] = toy_distance(&t, a);
		/* the k-th smallest exact distance */
		for (a = 0; a < k; a++)
		{
			int			best = -1;

			for (b = 0; b < n; b++)
				if (d[b] >= 0 && (best < 0 || d[b] < d[best]))
					best = b;
			kth = d[best];
			d[best] = -1;
		}
		for (a = 0; a < Min(nf, k); a++)
			hits += found[a].dist <= kth;
		free(d);
	}
	tap_ok(hits >= 0.95 * nq * k, "10-recall@10 of the search: %.3f (>= 0.95)",
		   hits / (double) (nq * k));
	test_widen(&t, entry, entry_level, queries, nq, &s.search);
	QdbLinkScratchFree(&s);

	{
		QdbSearchScratch fs;
		QdbCandidate cur = {0, 0},
					found[4];

		QdbSearchScratchInit(&fs, &failing_alloc);
		t.q = t.x;
		toy_new_layer(&t, 0);
		tap_ok(QdbSearchLayer(&toy_ops, &t, &cur, 1, 4, 0, 2 * m, found, &fs) == -1,
			   "a search whose scratch cannot grow returns -1");
	}
	free(queries);
	toy_free(&t);
}

/*
 * QdbLinkNode with 200 copies of one point among 100 others: every list of a
 * copy fills with copies at distance 0, so node numbers decide which copy a
 * back-link drops; the new copy then links to it (keep_tied).  Without
 * that, most copies lost their only way in.
 */
static int
link_copies(bool no_ties, int copies_order)
{
	const int	n = 300,
				m = 4,
				ef = 32;
	Toy			t;
	QdbLinkScratch s;
	uint32		entry = 0,
				order[300];
	int			entry_level,
				reached,
				i,
				j;

	rng_state = 0x243F6A8885A308D3ULL;
	toy_init(&t, n, m);
	t.no_ties = no_ties;
	for (i = 0; i < n; i++)
		for (j = 0; j < DIM; j++)
			t.x[(size_t) i * DIM + j] = i < 100 ? (float) rnd() : t.x[5 * DIM + j];
	/*
	 * the copies at level 0 only, so that none becomes the entry point (one
	 * that did would hold the walks among the copies: src/README)
	 */
	for (i = 0; i < n; i++)
		t.level[i] = i < 100 ? Min((int) floor(-log(1.0 - rnd()) / log((double) m)), MAX_LEVEL) : 0;
	if (!QdbLinkScratchInit(&s, &qdb_default_alloc, m, ef, MAX_LEVEL))
		return -1;
	/* the copies inserted by rising node number (0), falling (1) or shuffled (2) */
	for (i = 0; i < n; i++)
		order[i] = i < 100 || copies_order == 0 ? i : copies_order == 1 ? n - 1 - (i - 100) : i;
	for (i = n - 1; copies_order == 2 && i > 100; i--)
	{
		int			r = 100 + (int) (rnd() * (i - 100 + 1));
		uint32		tmp = order[i];

		order[i] = order[r];
		order[r] = tmp;
	}
	if (link_all(&t, &s, order, &entry, &entry_level) != 0)
		return -1;
	reached = reached_from(&t, entry);
	QdbLinkScratchFree(&s);
	toy_free(&t);
	return reached;
}

static void
test_link_copies(void)
{
	static const char *const orders[3] = {"rising", "falling", "shuffled"};

	for (int o = 0; o < 3; o++)
	{
		int			with = link_copies(false, o),
					without = link_copies(true, o);

		tap_ok(with == 300,
			   "200 copies of one point, by %s node number: every node reachable (%d of 300)",
			   orders[o], with);
		tap_ok(without >= 0 && without < 300,
			   "without the tied member's new link, some are not (%d of 300): the check can fail",
			   without);
	}
}

/*
 * A beam full of copies: 20 copies of one point (nodes 0 .. 19) link to
 * one another and to node 20, farther from the query than they are, whose
 * list holds node 21, the nearest of all.  A beam of 4 that counts each
 * copy fills with copies, turns node 20 away and never reaches node 21; one
 * that counts a distance once goes on past them.  The kept search widened
 * (QdbWidenLayer) counts them once too.
 */
static void
test_beam_copies(void)
{
	const int	n = 22,
				m = 4,
				copies = 20;
	Toy			t;
	QdbSearchScratch s;
	QdbCandidate cur,
				found[8];
	float		q[DIM] = {0};
	int			i,
				j,
				nf;

	toy_init(&t, n, m);
	for (i = 0; i < copies; i++)
	{
		uint32	   *list = list_of(&t, i, 0);

		t.x[(size_t) i * DIM] = 1.0f;
		list[0] = copies;
		for (j = 1; j < QdbLevelSlots(m, 0); j++)
			list[j] = (i + j) % copies;
	}
	t.x[(size_t) copies * DIM + 1] = 1.5f;	/* the way out, at 1.5 */
	t.x[(size_t) (copies + 1) * DIM + 2] = 0.5f;	/* the nearest, at 0.5 */
	list_of(&t, copies, 0)[0] = copies + 1;
	t.q = q;

	QdbSearchScratchInit(&s, &qdb_default_alloc);
	cur.id = 0;
	cur.dist = toy_distance(&t, 0);
	toy_new_layer(&t, 0);
	nf = QdbSearchLayer(&toy_ops, &t, &cur, 1, 4, 0, 2 * m, found, &s);
	tap_ok(nf == 4 && found[0].id == (uint32) copies + 1 && found[1].dist == 1.0f &&
		   found[3].dist == 1.0f,
		   "a beam of 4 among 20 copies goes past them to the nearest node (found %u at %.2f, %d nodes)",
		   nf > 0 ? found[0].id : 0, nf > 0 ? found[0].dist : -1.0, nf);

	toy_new_layer(&t, 0);
	nf = QdbSearchLayerKept(&toy_ops, &t, &cur, 1, 2, 0, 2 * m, found, &s);
	tap_ok(nf == 2 && found[0].id == (uint32) copies + 1,
		   "and a beam of 2 (found %u)", nf > 0 ? found[0].id : 0);
	{
		QdbCandidate visited[22];
		int			nv = 0;

		for (i = 0; i < n; i++)
			if (t.stamp[i] == t.epoch)
			{
				visited[nv].id = i;
				visited[nv].dist = l2(q, t.x + (size_t) i * DIM);
				nv++;
			}
		nf = QdbWidenLayer(&toy_ops, &t, 6, visited, nv, found, &s);
		tap_ok(nf == 6 && found[0].id == (uint32) copies + 1 && found[5].dist == 1.0f,
			   "widened to 6: the nearest, then copies (%d nodes)", nf);
	}
	QdbSearchScratchFree(&s);
	toy_free(&t);
}

int
main(void)
{
	test_plan_link();
	test_plan_link_random();
	test_plan_list();
	test_link_node();
	test_link_copies();
	test_beam_copies();
	printf("1..%d\n", tap_count);
	return tap_failed != 0;
}
