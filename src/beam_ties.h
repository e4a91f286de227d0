/*
 * beam_ties.h
 *	  How many entries of a search's beam lie at each distance
 *	  (beam_ties.c): copies of one vector (or rows of one code) share a
 *	  distance, and the beam counts each distance once (graph_search.c).
 */
#ifndef QDB_BEAM_TIES_H
#define QDB_BEAM_TIES_H

#include "postgres.h"

#include "qdb_trainer.h"

typedef struct QdbTieSlot
{
	uint32		key;			/* the distance's bits */
	int32		count;			/* 0: an empty slot */
} QdbTieSlot;

/*
 * An open-addressed table (linear probing) of distance -> entries, with
 * distinct, the distances of count > 0.  Its slots come from a QdbAlloc
 * and stay from one search to the next.
 */
typedef struct QdbBeamTies
{
	QdbTieSlot *slot;
	int			cap;			/* a power of two, or 0 */
	int			shift;			/* 32 - log2(cap) */
	int			distinct;		/* slots of count > 0 */
} QdbBeamTies;

extern void QdbTiesClear(QdbBeamTies *t);
extern bool QdbTiesGrow(QdbBeamTies *t, int n, const QdbAlloc *alloc);
extern void QdbTiesUnslot(QdbBeamTies *t, int i);
extern void QdbTiesFree(QdbBeamTies *t, const QdbAlloc *alloc);

/*
 * The lookups are inline: a beam search makes a few for each node that
 * enters its beam.
 */

/* a distance's key: its bits, with -0 as +0 (they are equal distances) */
static inline uint32
qdb_ties_key(float d)
{
	uint32		k;

	if (d == 0)
		d = 0;
	memcpy(&k, &d, sizeof(k));
	return k;
}

static inline int
qdb_ties_home(const QdbBeamTies *t, uint32 k)
{
	return (int) ((k * 0x9E3779B1u) >> t->shift);
}

static inline bool
qdb_ties_live(const QdbBeamTies *t, int i)
{
	return t->slot[i].count > 0;
}

/* The slot holding k, or -1 with *empty the first empty slot of its run. */
static inline int
qdb_ties_find(const QdbBeamTies *t, uint32 k, int *empty)
{
	int			mask = t->cap - 1,
				i = qdb_ties_home(t, k);

	while (qdb_ties_live(t, i))
	{
		if (t->slot[i].key == k)
			return i;
		i = (i + 1) & mask;
	}
	*empty = i;
	return -1;
}

/* Room for n distances at a load of at most a half; false if it failed. */
static inline bool
QdbTiesReserve(QdbBeamTies *t, int n, const QdbAlloc *alloc)
{
	if (likely(t->cap > 0 && (int64) n * 2 <= t->cap))
		return true;
	return QdbTiesGrow(t, n, alloc);
}

/* How many entries lie at distance d. */
static inline int
QdbTiesCount(const QdbBeamTies *t, float d)
{
	int			e,
				i;

	if (t->cap == 0)
		return 0;
	i = qdb_ties_find(t, qdb_ties_key(d), &e);
	return i < 0 ? 0 : t->slot[i].count;
}

/*
 * One entry more at d, the caller having reserved room (QdbTiesReserve),
 * unless cap entries lie there already: then false and nothing changes.
 */
static inline bool
QdbTiesAdd(QdbBeamTies *t, float d, int cap)
{
	uint32		k = qdb_ties_key(d);
	int			e = 0,
				i = qdb_ties_find(t, k, &e);

	if (i >= 0)
	{
		if (t->slot[i].count >= cap)
			return false;
		t->slot[i].count++;
		return true;
	}
	Assert((t->distinct + 1) * 2 <= t->cap);
	t->slot[e].key = k;
	t->slot[e].count = 1;
	t->distinct++;
	return true;
}

/* One entry less at d (one that was added). */
static inline void
QdbTiesRemove(QdbBeamTies *t, float d)
{
	int			e,
				i;

	if (unlikely(t->cap == 0) || (i = qdb_ties_find(t, qdb_ties_key(d), &e)) < 0)
	{
		Assert(false);
		return;
	}
	if (--t->slot[i].count == 0)
		QdbTiesUnslot(t, i);
}

#endif							/* QDB_BEAM_TIES_H */
