/*
 * test_calibration_grid.c
 *	  Unit tests of the calibration's grid (src/calibration_grid.c): which
 *	  reranks each ef_search measures (those of at least k, distinct, the
 *	  full one last), a partial rerank dropped after its pairs at two
 *	  ef_search in a row were dominated and not after one, never the full
 *	  rerank, a dropped one left out from then on, and no pair dominated by
 *	  one of rerank 0 alone (never chosen).  TAP output.
 */
#include "postgres.h"

#include "calibration.h"
#include "../../trainer/tests/tap.h"

/* a level's point at index cal->npoints */
static void
add(QdbCalibration *cal, int ef, int rerank, double recall, double ms)
{
	QdbCalibrationPoint *p = &cal->points[cal->npoints++];

	p->ef_search = ef;
	p->rerank = rerank;
	p->recall = recall;
	p->ms = ms;
}

static bool
same(const int *got, int n, const int *want, int m)
{
	if (n != m)
		return false;
	for (int i = 0; i < n; i++)
		if (got[i] != want[i])
			return false;
	return true;
}

static void
test_reranks(void)
{
	QdbGridSlots g;
	int			out[QDB_GRID_SLOTS],
				slot[QDB_GRID_SLOTS],
				n;

	memset(&g, 0, sizeof(g));
	n = QdbGridReranks(&g, 10, 10, out, slot);
	tap_ok(same(out, n, (int[]) {0, 10}, 2) && same(slot, n, (int[]) {0, 3}, 2),
		   "ef 10, k 10: reranks 0 and 10");
	n = QdbGridReranks(&g, 40, 10, out, slot);
	tap_ok(same(out, n, (int[]) {0, 10, 20, 40}, 4) && same(slot, n, (int[]) {0, 1, 2, 3}, 4),
		   "ef 40, k 10: all four");
	n = QdbGridReranks(&g, 2, 1, out, slot);
	tap_ok(same(out, n, (int[]) {0, 1, 2}, 3) && same(slot, n, (int[]) {0, 2, 3}, 3),
		   "ef 2, k 1: ef/4 is 0, the same as the first: left out");
	g.dropped[0] = g.dropped[2] = true;
	n = QdbGridReranks(&g, 40, 10, out, slot);
	tap_ok(same(out, n, (int[]) {10, 40}, 2) && same(slot, n, (int[]) {1, 3}, 2),
		   "dropped slots 0 and 2: 10 and 40");
	g.dropped[1] = g.dropped[3] = true;
	n = QdbGridReranks(&g, 40, 10, out, slot);
	tap_ok(same(out, n, (int[]) {40}, 1) && same(slot, n, (int[]) {3}, 1),
		   "the full rerank whatever dropped[] says");
}

/* a level at ef: each measured slot's recall and time from recall[] and ms[] */
static int
level(QdbCalibration *cal, QdbGridSlots *g, int ef, const double *recall, const double *ms)
{
	int			out[QDB_GRID_SLOTS],
				slot[QDB_GRID_SLOTS],
				n = QdbGridReranks(g, ef, 10, out, slot),
				first = cal->npoints;

	for (int i = 0; i < n; i++)
		add(cal, ef, out[i], recall[slot[i]], ms[slot[i]]);
	QdbGridAfterLevel(g, cal, first, n, slot);
	return n;
}

static void
test_drops(void)
{
	QdbCalibration cal;
	QdbGridSlots g;
	int			n;

	memset(&cal, 0, sizeof(cal));
	memset(&g, 0, sizeof(g));
	/* ef 40: nothing dominated (each rerank slower and better) */
	n = level(&cal, &g, 40, (double[]) {0.5, 0.6, 0.7, 0.8}, (double[]) {0.1, 0.2, 0.3, 0.4});
	tap_ok(n == 4 && !g.dropped[0] && !g.dropped[1] && !g.dropped[2],
		   "no dominated pair: nothing dropped");
	/*
	 * ef 56: slot 1 (0.25 ms, 0.65) beats ef 40's (0.2 ms, 0.6) on recall;
	 * slot 2 (0.45 ms, 0.75) is dominated by ef 40's full (0.4 ms, 0.8)
	 */
	n = level(&cal, &g, 56, (double[]) {0.51, 0.65, 0.75, 0.85}, (double[]) {0.15, 0.25, 0.45, 0.5});
	tap_ok(n == 4 && g.strikes[2] == 1 && !g.dropped[2] && g.strikes[1] == 0,
		   "one dominated pair: a strike, not dropped");
	/* ef 80: slot 2 not dominated (more recall than all): strikes back to 0 */
	n = level(&cal, &g, 80, (double[]) {0.52, 0.72, 0.95, 0.9}, (double[]) {0.12, 0.28, 0.55, 0.6});
	tap_ok(n == 4 && g.strikes[2] == 0 && !g.dropped[2], "not dominated: the count starts again");
	/*
	 * ef 113: slot 0 (0.3 ms, 0.5) dominated by ef 40's rerank 10 (0.2,
	 * 0.6); slot 1 (0.5 ms, 0.7) by ef 80's rerank 20 (0.28, 0.72), slot 2
	 * by ef 80's full
	 */
	n = level(&cal, &g, 113, (double[]) {0.5, 0.7, 0.8, 0.96}, (double[]) {0.3, 0.5, 0.6, 0.8});
	tap_ok(n == 4 && g.strikes[0] == 1 && g.strikes[2] == 1 && g.strikes[1] == 1 && !g.dropped[0],
		   "slot 0, 1 and 2 dominated once");
	/* ef 160: all three dominated again, the full one too (never dropped) */
	n = level(&cal, &g, 160, (double[]) {0.5, 0.6, 0.7, 0.9}, (double[]) {0.4, 0.6, 0.7, 0.9});
	tap_ok(n == 4 && g.dropped[0] && g.dropped[1] && g.dropped[2] && !g.dropped[3],
		   "dominated at two ef_search in a row: dropped, never the full rerank");
	n = level(&cal, &g, 226, (double[]) {0.99, 0.99, 0.99, 0.97}, (double[]) {0.01, 0.01, 0.01, 1.0});
	tap_ok(n == 1 && cal.points[cal.npoints - 1].rerank == 226,
		   "dropped slots stay out: only the full rerank measured");
}

/*
 * A pair of rerank 0, which no target or bound chooses, dominates nothing:
 * here each partial rerank is slower than its level's rerank 0 and finds
 * fewer rows, at two ef_search in a row, and keeps its slot.  A pair that a
 * choice may take still dominates with equal recall.
 */
static void
test_rerank0_dominates_nothing(void)
{
	QdbCalibration cal;
	QdbGridSlots g;
	int			n;

	memset(&cal, 0, sizeof(cal));
	memset(&g, 0, sizeof(g));
	n = level(&cal, &g, 40, (double[]) {0.9, 0.5, 0.6, 0.7}, (double[]) {0.1, 0.2, 0.3, 0.4});
	tap_ok(n == 4 && g.strikes[1] == 0 && g.strikes[2] == 0,
		   "below rerank 0 only: no strike");
	n = level(&cal, &g, 56, (double[]) {0.95, 0.55, 0.65, 0.75}, (double[]) {0.1, 0.25, 0.35, 0.45});
	tap_ok(n == 4 && !g.dropped[1] && !g.dropped[2] && g.strikes[1] == 0 && g.strikes[2] == 0,
		   "below rerank 0 at two ef_search in a row: kept");
	/* ef 80: slot 1 (0.3 ms, 0.6) against ef 40's rerank 20 (0.3 ms, 0.6) */
	n = level(&cal, &g, 80, (double[]) {0.96, 0.6, 0.8, 0.85}, (double[]) {0.1, 0.3, 0.5, 0.6});
	tap_ok(n == 4 && g.strikes[1] == 1 && g.strikes[2] == 0,
		   "equal time and recall of a reranking pair: a strike");
	/* rerank 0 itself is struck as usual, by a reranking pair */
	tap_ok(g.strikes[0] == 0, "rerank 0 above every reranking pair: no strike");
}

int
main(void)
{
	test_reranks();
	test_drops();
	test_rerank0_dominates_nothing();
	return tap_done();
}
