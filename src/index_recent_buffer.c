/*
 * index_recent_buffer.c
 *	  The shared buffer in which this backend last found each page of an
 *	  index, so that a walk's node page reads go to it directly.
 *
 * ReadBuffer finds a page through the buffer mapping table: a hash of the
 * page's tag, a partition lock, a probe of a table as large as
 * shared_buffers is many.  A walk reads a hundred or more node pages per
 * query, and in perf record of glove-100-angular's scans that lookup was
 * one of the largest items.  ReadRecentBuffer (bufmgr.c) instead pins a
 * given buffer if, under its header lock, it still holds the page; else the
 * page is read as before and its buffer remembered.  A remembered buffer
 * is only a guess, checked at every use: one that held another page since
 * (evicted, the relation rewritten by REINDEX or TRUNCATE under a new
 * relfilenode) fails the check and costs one ReadBuffer, as without it.
 *
 * The guesses hang off the index's cache (index_cache.c) and go with it:
 * an array of Buffers, one per block, from 1,024 blocks and doubled as
 * higher blocks are read, at most RECENT_MAX_BLOCKS (4 MB).  The relation's I/O statistics (pg_statio_*_indexes)
 * count a page found this way as a hit, as ReadBuffer would; so does
 * EXPLAIN (BUFFERS), which ReadRecentBuffer counts itself, and so does
 * VACUUM's cost accounting.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "index.h"

#define RECENT_FIRST_BLOCKS	1024
#define RECENT_MAX_BLOCKS	(1024 * 1024)
#define RECENT_EVERY		8		/* one read in 8 takes ReadBuffer (below) */

/* Room for block blkno's guess; false past the limit. */
static bool
recent_room(QdbIndexCache *c, BlockNumber blkno)
{
	uint32		cap,
				i;

	if (blkno < c->nrecent)
		return true;
	if (blkno >= RECENT_MAX_BLOCKS)
		return false;
	cap = Max(c->nrecent, RECENT_FIRST_BLOCKS);
	while (cap <= blkno)
		cap *= 2;
	cap = Min(cap, RECENT_MAX_BLOCKS);
	if (c->recent == NULL)
		c->recent = MemoryContextAlloc(GetMemoryChunkContext(c), sizeof(Buffer) * cap);
	else
		c->recent = repalloc(c->recent, sizeof(Buffer) * cap);
	for (i = c->nrecent; i < cap; i++)
		c->recent[i] = InvalidBuffer;
	c->nrecent = cap;
	return true;
}

/*
 * Block blkno of index's main fork, pinned, as ReadBuffer gives it.
 *
 * PostgreSQL 15's ReadRecentBuffer pins a buffer without raising its usage
 * count, which the clock sweep lowers: pages found only this way would look
 * cold and be evicted before colder ones.  So one read in RECENT_EVERY
 * goes through ReadBuffer all the same, which raises it: a page read on
 * every walk (the entry point's, the upper levels') keeps its count.
 */
Buffer
QdbReadIndexPage(Relation index, QdbIndexCache *c, BlockNumber blkno)
{
	Buffer		buf;

	if (++c->recent_reads % RECENT_EVERY != 0 &&
		blkno < c->nrecent && BufferIsValid(c->recent[blkno]) &&
		ReadRecentBuffer(index->rd_node, MAIN_FORKNUM, blkno, c->recent[blkno]))
	{
		/* what ReadBuffer counts for a hit: statistics and vacuum's cost */
		pgstat_count_buffer_read(index);
		pgstat_count_buffer_hit(index);
		VacuumPageHit++;
		if (VacuumCostActive)
			VacuumCostBalance += VacuumCostPageHit;
		return c->recent[blkno];
	}
	buf = ReadBuffer(index, blkno);
	/* local buffers (a temporary index) have no mapping table to skip */
	if (!BufferIsLocal(buf) && recent_room(c, blkno))
		c->recent[blkno] = buf;
	return buf;
}
