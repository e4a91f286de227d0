/*
 * index_nodes.c
 *	  The walk over node pages: every pass that reads or changes all nodes
 *	  (vacuum's passes, the reachability map, index_info and verify) goes
 *	  through it.
 *
 * A walk reads the pages [first, end) one at a time with the caller's
 * strategy and buffer lock, pacing itself between pages as asked (a
 * cost-based vacuum delay, or only an interrupt check), and hands out each
 * node with its reference.  A node is handed out only once QdbPageGetNode
 * has accepted it (node_check.c's page and item checks); a page with no line
 * pointer holds no node and is not checked.  A walk in report mode (verify)
 * checks every page and passes each problem to a callback instead of the
 * ERROR, and skips what it reported.  An all-zero page is no problem: a
 * crash between extending the index and logging the new page's first node
 * leaves one (the extension itself is not WAL-logged); nothing refers to
 * it, and VACUUM offers it for reuse.
 *
 * A writer registers the page with QdbXLog between QdbNodeScanNextPage and
 * the first QdbNodeScanNext, storing the registered copy in scan->page, and
 * finishes or aborts the record before the next page: the walk releases the
 * buffer only when it moves on (or at QdbNodeScanReleasePage).
 */
#include "postgres.h"

#include "commands/vacuum.h"
#include "miscadmin.h"

#include "index.h"

void
QdbNodeScanBegin(QdbNodeScan *scan, Relation index, const QdbNodeShape *shape,
				 BlockNumber first, BlockNumber end, BufferAccessStrategy strategy,
				 int lockmode, QdbNodeScanPace pace)
{
	memset(scan, 0, sizeof(*scan));
	scan->index = index;
	scan->shape = shape;
	scan->first = first;
	scan->end = end;
	scan->strategy = strategy;
	scan->lockmode = lockmode;
	scan->pace = pace;
	scan->blkno = InvalidBlockNumber;
	scan->buf = InvalidBuffer;
}

/* Unlocks and releases the current page, if any. */
void
QdbNodeScanReleasePage(QdbNodeScan *scan)
{
	if (BufferIsValid(scan->buf))
	{
		UnlockReleaseBuffer(scan->buf);
		scan->buf = InvalidBuffer;
		scan->page = NULL;
	}
}

/* Moves to the next page and locks it; false past the last one. */
bool
QdbNodeScanNextPage(QdbNodeScan *scan)
{
	QdbNodeScanReleasePage(scan);
	scan->blkno = scan->blkno == InvalidBlockNumber ? scan->first : scan->blkno + 1;
	if (scan->blkno >= scan->end)
		return false;

	if (scan->pace == QDB_PACE_VACUUM)
		vacuum_delay_point();
	else if (scan->pace == QDB_PACE_INTERRUPTS)
		CHECK_FOR_INTERRUPTS();
	scan->buf = ReadBufferExtended(scan->index, MAIN_FORKNUM, scan->blkno, RBM_NORMAL,
								   scan->strategy);
	LockBuffer(scan->buf, scan->lockmode);
	scan->page = BufferGetPage(scan->buf);
	scan->off = InvalidOffsetNumber;
	scan->page_ok = true;
	if (scan->report && PageIsNew(scan->page))
		scan->page_ok = false;
	else if (scan->report)
	{
		const char *what = QdbNodePageProblem(scan->page);

		if (what != NULL)
		{
			scan->report(scan->report_arg, scan->blkno, InvalidOffsetNumber, what);
			scan->page_ok = false;
		}
	}
	return true;
}

/*
 * The next node of the current page, checked, and its reference in *ref;
 * NULL when the page has no more.  Only the first *maxoff of a page are
 * walked when the caller gave per-page limits (a QdbNodeMap's).
 */
QdbNode
QdbNodeScanNext(QdbNodeScan *scan, QdbNodeRef *ref)
{
	OffsetNumber maxoff;

	if (scan->page == NULL || !scan->page_ok)
		return NULL;
	maxoff = PageGetMaxOffsetNumber(scan->page);
	if (scan->maxoff)
		maxoff = Min(maxoff, scan->maxoff[scan->blkno - scan->first]);
	while (scan->off < maxoff)
	{
		OffsetNumber off = ++scan->off;

		if (scan->report)
		{
			const char *what = QdbNodeItemProblem(scan->shape, scan->page, off);

			if (what != NULL)
			{
				scan->report(scan->report_arg, scan->blkno, off, what);
				continue;
			}
		}
		*ref = QdbMakeRef(scan->blkno, off);
		return QdbPageGetNode(scan->index, scan->shape, scan->page, scan->blkno, off);
	}
	return NULL;
}

/* Releases what the walk still holds. */
void
QdbNodeScanEnd(QdbNodeScan *scan)
{
	QdbNodeScanReleasePage(scan);
	scan->blkno = scan->end;
}
