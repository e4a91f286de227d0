/*
 * index_scan_sweep.c
 *	  A scan's last resort: the live nodes no walk reached.
 *
 * HNSW's pruning can leave nodes that no walk from the entry point reaches
 * until the next VACUUM links them back (index_reach.c): an insert's
 * back-link into a full list may let go of the only link into a cluster
 * far from the rest.  In session 60's coverage hunt (/work/runs/hunt-s60b.md
 * F1) 140 inserts cut 500 rows of 10,140 off, and a query filtered to them
 * returned no row where a sequential scan returned five.  So once a scan's
 * walks have seen the whole reachable graph and the executor still asks for
 * rows (a filter rejected the rest), it reads the node pages for the live
 * nodes whose rows it has not returned, and goes on with them, nearest code
 * first; a scan whose first walk came back short does so at once, keeping
 * that walk's rows (index_scan.c, sweep).  The rows a walk reached are
 * among the returned ones by then, or entered there first (a walk that saw
 * the whole reachable graph held all of it), so the sweep adds exactly
 * what no walk could; rows the snapshot does not see are skipped by the
 * scan's re-scoring as before.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "index.h"

/*
 * The live nodes of index whose heap TIDs are not in returned, but for
 * node skip (QDB_NO_NODE: none), with their code distances to the query of
 * table and bias, into *rows (palloc'd, huge) after its first lead
 * entries, left for the caller; returns lead plus their count.  Sorted
 * nearest first when lead is 0 (else the caller sorts).  Reads live nodes
 * until budget of them were read (those in returned too: they cost a
 * read), and says how many in *read.
 */
int
QdbSweepNodes(Relation index, QdbIndexCache *c, const float *table, float bias,
			  HTAB *returned, QdbNodeRef skip, int lead, int64 budget,
			  QdbScanRow **rows_out, int64 *read_out)
{
	QdbMetaPageData meta;
	QdbNodeShape shape;
	QdbNodeScan ns;
	QdbNode		node;
	QdbNodeRef	ref;
	QdbScanRow *rows;
	Size		size = Max(256, 2 * (Size) lead);
	int			nrows = lead;
	int64		read = 0;

	budget = Min(budget, (int64) INT_MAX - lead);
	QdbReadMeta(index, &meta);
	QdbNodeShapeFromMeta(&meta, &shape);
	rows = palloc_extended(sizeof(QdbScanRow) * size, MCXT_ALLOC_HUGE);
	QdbNodeScanBegin(&ns, index, &shape, meta.first_node_page,
					 RelationGetNumberOfBlocks(index), NULL, BUFFER_LOCK_SHARE,
					 QDB_PACE_INTERRUPTS);
	while (read < budget && QdbNodeScanNextPage(&ns))
	{
		while (read < budget && (node = QdbNodeScanNext(&ns, &ref)) != NULL)
		{
			if (node->flags & (QDB_NODE_DELETED | QDB_NODE_FREE) || ref == skip)
				continue;
			read++;
			if (hash_search(returned, &node->heaptid, HASH_FIND, NULL))
				continue;
			if (nrows == size)
			{
				size *= 2;
				rows = repalloc_huge(rows, sizeof(QdbScanRow) * size);
			}
			rows[nrows].tid = node->heaptid;
			rows[nrows].dist = qdb_adc_distance(&c->model, table, bias, node->code);
			nrows++;
		}
	}
	QdbNodeScanEnd(&ns);
	if (lead == 0)
		qsort(rows, nrows, sizeof(QdbScanRow), QdbScanRowCmp);
	*rows_out = rows;
	*read_out = read;
	return nrows;
}
