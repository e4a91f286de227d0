/*
 * beam_ties.c
 *	  How many entries of a search's beam lie at each distance: a table
 *	  of distance -> count with open addressing and linear probing, removal
 *	  by shifting the probe run back (no tombstones).  graph_search.c counts the beam's distinct distances with
 *	  it, so that copies of one vector fill one place of the beam, not one
 *	  each.  No palloc and no ereport (graph.h).
 */
#include "postgres.h"

#include "beam_ties.h"

#define TIES_MIN_CAP	64

/* Empties the table (no memory freed). */
void
QdbTiesClear(QdbBeamTies *t)
{
	t->distinct = 0;
	if (t->cap > 0)
		memset(t->slot, 0, sizeof(QdbTieSlot) * t->cap);
}

/*
 * QdbTiesReserve's slow path: a larger table, the distances in the old one
 * moved in; false when the slots could not grow.
 */
bool
QdbTiesGrow(QdbBeamTies *t, int n, const QdbAlloc *alloc)
{
	QdbTieSlot *old = t->slot;
	int			oldcap = t->cap,
				cap = Max(t->cap, TIES_MIN_CAP),
				log2cap = 0,
				i;

	if (t->cap > 0 && (int64) n * 2 <= t->cap)
		return true;
	while ((int64) n * 2 > cap)
	{
		if (cap >= (1 << 29))
			return false;
		cap *= 2;
	}
	while ((1 << log2cap) < cap)
		log2cap++;
	t->slot = alloc->alloc(sizeof(QdbTieSlot) * cap, alloc->st);
	if (t->slot == NULL)
	{
		t->slot = old;
		return false;
	}
	memset(t->slot, 0, sizeof(QdbTieSlot) * cap);
	t->cap = cap;
	t->shift = 32 - log2cap;
	for (i = 0; i < oldcap; i++)
	{
		if (old[i].count > 0)
		{
			int			e = 0;

			(void) qdb_ties_find(t, old[i].key, &e);
			t->slot[e] = old[i];
		}
	}
	if (old)
		alloc->free(old, alloc->st);
	return true;
}

/*
 * Slot i's distance has no entry left: its slot is taken out of its probe
 * run by moving back each later member of the run that may sit there, so
 * that no lookup stops short at a hole.
 */
void
QdbTiesUnslot(QdbBeamTies *t, int i)
{
	int			mask = t->cap - 1,
				j;

	t->distinct--;
	for (j = (i + 1) & mask; qdb_ties_live(t, j); j = (j + 1) & mask)
	{
		int			h = qdb_ties_home(t, t->slot[j].key);

		/* j's member stays when its home lies in (i, j], cyclically */
		if (i <= j ? (i < h && h <= j) : (i < h || h <= j))
			continue;
		t->slot[i] = t->slot[j];
		i = j;
	}
	t->slot[i].count = 0;
}

void
QdbTiesFree(QdbBeamTies *t, const QdbAlloc *alloc)
{
	if (t->slot)
		alloc->free(t->slot, alloc->st);
	memset(t, 0, sizeof(QdbBeamTies));
}
