/*
 * index_cost.c
 *	  Planner cost of a quantumdb index scan.
 *
 * The index answers only ORDER BY <distance> (LIMIT k): without an ORDER BY
 * it is never chosen.  A scan walks about ef_search * 2m graph nodes and
 * reads up to rerank heap rows, whatever the table's size.  An index
 * without a compressor, and any index for a user whom row-level security
 * on the table restricts, costs a sequential scan and a sort; a plan for
 * every row (no LIMIT, a cursor, a LIMIT of half the table or more) costs
 * more than that (wants_every_row below).  The cost uses
 * the session's quantumdb.ef_search and quantumdb.rerank even under
 * quantumdb.target_recall.  Of a trained index's meta page it reads only
 * the m the index was built with (QdbBuiltMQuiet).
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "optimizer/optimizer.h"
#include "utils/float.h"
#include "utils/selfuncs.h"
#include "utils/spccache.h"

#include "index.h"

/*
 * What reading the whole heap, computing a distance per row and sorting
 * costs: a sequential scan and a sort (index_scan_heap.c does that).
 */
static Cost
exact_scan_cost(IndexOptInfo *index)
{
	double		tuples = Max(index->rel->tuples, 1);
	double		spc_seq_page_cost;

	get_tablespace_page_costs(index->rel->reltablespace, NULL, &spc_seq_page_cost);
	return spc_seq_page_cost * index->rel->pages +
		(cpu_tuple_cost + 2 * cpu_operator_cost) * tuples +
		2 * cpu_operator_cost * tuples * log2(tuples);
}

/*
 * Whether the plan at this query level is asked for every row, or for so
 * many that a scan of the graph cannot be trusted to give them in order:
 * under strict_order a row found after a farther one was returned is
 * passed over, and quantumdb.max_scan_tuples ends the walks.  A cursor is
 * planned for cursor_tuple_fraction (0.1) of its rows, and with the
 * index's cost that of one walk the planner chose the index for a cursor
 * without a LIMIT on tables of about 10,000 rows and more (DECLARE, psql's
 * FETCH_COUNT, a PL/pgSQL OPEN): MOVE ALL gave 11,539 rows of 12,000
 * (session 68's hunt, /work/runs/hunt-s68f.md F1).  The planner's
 * tuple_fraction says what the plan is for: 0 every row, below 1 a share
 * (a cursor; a LIMIT of a parameter or an expression), 1 or more a number
 * of rows (the LIMIT and OFFSET of this level, or of an outer query whose
 * LIMIT reaches a subquery, a view or an inlined SQL function: their
 * ORDER BY keeps the index, session 68's review F2).  A number of rows
 * that is half the table or more counts as every row (a LIMIT of
 * 1,000,000 returned 12,135 rows of 20,000: the review's F1).  A LIMIT of
 * a parameter at this level keeps the index (a generic plan of LIMIT $1);
 * so does a LIMIT that is NULL only at run time.
 */
static bool
wants_every_row(PlannerInfo *root, IndexOptInfo *index)
{
	Node	   *count = root->parse->limitCount;
	double		f = root->tuple_fraction;

	if (count != NULL && !IsA(count, Const))
		return false;
	if (f >= 1.0)
		return f * 2 >= Max(index->rel->tuples, 1);
	return true;
}

void
qdbcostestimate(PlannerInfo *root, IndexPath *path, double loop_count,
				Cost *indexStartupCost, Cost *indexTotalCost,
				Selectivity *indexSelectivity, double *indexCorrelation,
				double *indexPages)
{
	GenericCosts costs;
	IndexOptInfo *index = path->indexinfo;
	double		visited;
	int			m;
	Oid			heapoid;
	Relation	rel;

	/*
	 * Never for a plain filter: there is no search operator.  Nor for more
	 * than one: the planner matches ORDER BY a <op> q1, a <op> q2 to an
	 * index that orders by an operator, but a scan orders by its first key
	 * only (index_scan.c), and rows that tie on it (all of them, when q1 is
	 * NULL) came back in no order of the second (session 56's hunt,
	 * /work/runs/hunt-s56a.md): a Sort does that.
	 */
	if (path->indexorderbys == NIL || list_length(path->indexorderbys) > 1)
	{
		*indexStartupCost = get_float8_infinity();
		*indexTotalCost = get_float8_infinity();
		*indexSelectivity = 0;
		*indexCorrelation = 0;
		*indexPages = 0;
		return;
	}

	rel = index_open(index->indexoid, NoLock);
	heapoid = rel->rd_index->indrelid;

	/*
	 * An index of one page is one without a compressor (a trained one has
	 * compressor pages after its meta page); told from the page count, not
	 * by reading the page.
	 */
	if (index->pages <= 1 || QdbScanExactForUser(heapoid))
	{
		/*
		 * No compressor yet, or a user whom row-level security restricts:
		 * every scan reads the whole heap, computes a distance per row and
		 * sorts (index_scan_heap.c), what a sequential scan and a sort cost.
		 * (A plan that row-level security shapes is the user's own: the
		 * planner replans it for another role.)
		 */
		Cost		run = exact_scan_cost(index);

		index_close(rel, NoLock);
		*indexStartupCost = run;
		*indexTotalCost = run;
		*indexSelectivity = 1;
		*indexCorrelation = 0;
		*indexPages = 1;
		return;
	}

	/*
	 * the m it was built with: ALTER INDEX SET (m = ...) takes effect at the
	 * next build (session 58's hunt, /work/runs/hunt-s58a.md F2).  Read
	 * from the meta page as btree's planning reads its own (and pgvector's
	 * its): a page whose contents are damaged falls back to the reloption,
	 * but one the buffer manager refuses (a bad header or checksum) makes
	 * planning fail until REINDEX or DROP INDEX (session 58's review,
	 * /work/runs/review-s58b.md).
	 */
	m = QdbBuiltMQuiet(rel);
	if (m == 0)
		m = QdbGetM(rel);
	index_close(rel, NoLock);

	/* nodes read by the walk, one page each, plus the reranked heap rows */
	visited = (double) Max(qdb_ef_search, qdb_rerank) * 2 * m + qdb_rerank;
	MemSet(&costs, 0, sizeof(costs));
	costs.numIndexTuples = Min(visited, Max(index->tuples, 1));
	genericcostestimate(root, path, loop_count, &costs);

	/*
	 * the whole walk happens before the first row comes back; for every
	 * row, a sequential scan and a sort come first, so that they win
	 * whatever share of the rows the plan is for (a path with the index is
	 * still there when enable_seqscan or enable_sort is off)
	 */
	if (wants_every_row(root, index))
		costs.indexTotalCost += exact_scan_cost(index);
	*indexStartupCost = costs.indexTotalCost;
	*indexTotalCost = costs.indexTotalCost;
	*indexSelectivity = costs.indexSelectivity;
	*indexCorrelation = 0;
	*indexPages = costs.numIndexPages;
}
