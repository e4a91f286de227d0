/*
 * calibration_grid.c
 *	  Which reranks the calibration (index_calibrate.c) measures at each
 *	  ef_search of its grid.
 *
 * Four slots: rerank 0, ef_search / 4, ef_search / 2 and ef_search (those
 * of at least k, distinct).  The full rerank is always measured: the grid
 * stops on it.  Each of the other three is measured until its pairs at two
 * ef_search in a row were dominated: another pair measured by then (at the
 * same or a smaller ef_search) was no slower and found no fewer rows.  A
 * target's choice and a latency bound's never need a dominated pair (the
 * other serves at least as well), and further up the walk's time grows
 * faster than what a partial rerank saves: on glove-100-angular, with all
 * four measured at every ef_search, every such pair above ef_search 56 was
 * dominated, and their walks took 3/4 of the calibration's time.  Two in
 * a row, so that one timing's noise does not drop a slot for good.
 */
#include "postgres.h"

#include "calibration.h"

/*
 * Whether cal's point self is dominated by another of its points that a
 * choice may take (QdbPointChoosable).
 */
static bool
dominated(const QdbCalibration *cal, int self)
{
	const QdbCalibrationPoint *p = &cal->points[self];

	for (int i = 0; i < cal->npoints; i++)
		if (i != self && QdbPointChoosable(&cal->points[i]) &&
			cal->points[i].ms <= p->ms && cal->points[i].recall >= p->recall)
			return true;
	return false;
}

/*
 * The reranks to measure at ef_search ef, into out (up to QDB_GRID_SLOTS),
 * and the slot of each into slot; returns how many.  The full rerank is
 * last.
 */
int
QdbGridReranks(const QdbGridSlots *g, int ef, int k, int *out, int *slot)
{
	int			cand[QDB_GRID_SLOTS] = {0, ef / 4, ef / 2, ef};
	int			n = 0;

	for (int i = 0; i < QDB_GRID_SLOTS; i++)
		if ((i == QDB_GRID_SLOTS - 1 || !g->dropped[i]) &&
			(cand[i] == 0 || cand[i] >= k) && (n == 0 || out[n - 1] != cand[i]))
		{
			out[n] = cand[i];
			slot[n++] = i;
		}
	return n;
}

/*
 * After an ef_search's nr points were added to cal from index first (their
 * slots as QdbGridReranks gave them): count each partial slot's dominated
 * pairs in a row, and drop a slot at two.
 */
void
QdbGridAfterLevel(QdbGridSlots *g, const QdbCalibration *cal, int first, int nr,
				  const int *slot)
{
	for (int r = 0; r < nr; r++)
	{
		int			s = slot[r];

		if (s == QDB_GRID_SLOTS - 1)
			continue;
		g->strikes[s] = dominated(cal, first + r) ? g->strikes[s] + 1 : 0;
		if (g->strikes[s] >= 2)
			g->dropped[s] = true;
	}
}
