/*
 * index_pages.c
 *	  Pages of a quantumdb index: the meta page, the compressor pages that
 *	  hold the index's own copy of its model, and the reading of node pages
 *	  (their writing is index_write.c's).
 *
 * Build-time writers (QdbWrite*) change pages without WAL: the build logs
 * the whole relation afterwards, and the init fork is logged page by page.
 * Every other change goes through QdbXLog (GenericXLog, except while this
 * backend builds the index).
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "access/xloginsert.h"
#include "crc32c.h"
#include "miscadmin.h"
#include "storage/indexfsm.h"
#include "storage/lmgr.h"

#include "calibration.h"
#include "index.h"

#define COMPRESSOR_BYTES_PER_PAGE	QDB_PAGE_CAPACITY

void
QdbInitPage(Page page, uint16 flags)
{
	QdbPageOpaque opaque;

	PageInit(page, BLCKSZ, sizeof(QdbPageOpaqueData));
	opaque = QdbPageGetOpaque(page);
	opaque->flags = flags;
	opaque->page_id = QDB_PAGE_ID;
}

static void
unexpected_page(Relation index, BlockNumber blkno)
{
	ereport(ERROR,
			(errcode(ERRCODE_INDEX_CORRUPTED),
			 errmsg("index \"%s\" contains an unexpected page at block %u",
					RelationGetRelationName(index), blkno),
			 errhint("Please REINDEX it.")));
}

/* ERRORs unless page is a well-formed page of one of the types in flags. */
void
QdbCheckPage(Relation index, Page page, BlockNumber blkno, uint16 flags)
{
	if (QdbPageProblem(page) != NULL || (QdbPageGetOpaque(page)->flags & flags) == 0)
		unexpected_page(index, blkno);
}

struct QdbXLog
{
	GenericXLogState *state;	/* NULL while the index is being built */
	int			nbuf;
	Buffer		buf[MAX_GENERIC_XLOG_PAGES];
};

/* The index this backend is building, whose pages are logged at the end. */
static Oid	building_index = InvalidOid;

/*
 * A transaction's abort ends any build.  The guarantee is the build's
 * PG_FINALLY, right after the mark is set (index_build.c), which also
 * covers a build in a savepoint rolled back while the transaction goes on;
 * this covers a top-level abort by any other way.
 */
static void
building_xact_end(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		building_index = InvalidOid;
}

void
QdbXLogBuilding(Oid indexoid)
{
	static bool registered = false;

	/* and never past an abort: a build's ERROR must not leave it set */
	if (!registered && OidIsValid(indexoid))
	{
		RegisterXactCallback(building_xact_end, NULL);
		registered = true;
	}
	building_index = indexoid;
}

QdbXLog *
QdbXLogStart(Relation index)
{
	QdbXLog    *x = palloc(sizeof(QdbXLog));

	x->nbuf = 0;
	x->state = RelationGetRelid(index) == building_index ? NULL : GenericXLogStart(index);
	return x;
}

/* The page to change: a copy (logged) or, while building, the page itself. */
Page
QdbXLogRegister(QdbXLog *x, Buffer buf, int flags)
{
	if (x->state)
		return GenericXLogRegisterBuffer(x->state, buf, flags);
	Assert(x->nbuf < MAX_GENERIC_XLOG_PAGES);
	x->buf[x->nbuf++] = buf;
	return BufferGetPage(buf);
}

void
QdbXLogFinish(QdbXLog *x)
{
	int			i;

	if (x->state)
		GenericXLogFinish(x->state);
	else
		for (i = 0; i < x->nbuf; i++)
			MarkBufferDirty(x->buf[i]);
	pfree(x);
}

/* No change: callers abort only before they changed the page. */
void
QdbXLogAbort(QdbXLog *x)
{
	if (x->state)
		GenericXLogAbort(x->state);
	pfree(x);
}

static void
meta_damaged(Relation index, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INDEX_CORRUPTED),
			 errmsg("index \"%s\" has a damaged meta page: %s",
					RelationGetRelationName(index), what),
			 errhint("REINDEX INDEX %s;", QdbRelationSqlName(index))));
}

/*
 * The meta page's buffer, pinned.  An index without pages gets an ERROR
 * that says so, not a failed read: a build that failed after a truncation
 * that is not transactional leaves one (COMMIT's rebuild of a temporary
 * table's index, which index_build.c keeps from failing for want of its
 * compressor).
 */
Buffer
QdbMetaBuffer(Relation index)
{
	if (RelationGetNumberOfBlocks(index) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("index \"%s\" has no pages: its last build did not finish",
						RelationGetRelationName(index)),
				 errhint("REINDEX INDEX %s;", QdbRelationSqlName(index))));
	return ReadBuffer(index, QDB_META_BLKNO);
}

/* ERROR unless page is a meta page this code can read, with sane settings. */
void
QdbCheckMetaPage(Relation index, Page page)
{
	QdbMetaPage meta;

	QdbCheckPage(index, page, QDB_META_BLKNO, QDB_PAGE_META);
	meta = QdbPageGetMeta(page);
	if (meta->magic != QDB_INDEX_MAGIC)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" is not a quantumdb index",
						RelationGetRelationName(index)),
				 errhint("Please REINDEX it.")));
	/*
	 * compressor_format is the model format of the library that wrote the
	 * index; the model in its pages says its own format, and every format up
	 * to QDB_FORMAT_VERSION is read (a kind rq model of format 1 is refused
	 * there, with the same hint).  Requiring this library's own format made
	 * every index built by 0.1.0 (format 1) unusable after an upgrade, even
	 * to VACUUM (session 56's hunt, /work/runs/hunt-s56b.md).
	 */
	if (meta->version != QDB_INDEX_VERSION || !QdbCompressorFormatRead(meta->compressor_format))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("index \"%s\" has format %u with a compressor of format %u, but this quantumdb reads format %u with compressors of formats 1 to %u",
						RelationGetRelationName(index), meta->version,
						meta->compressor_format, QDB_INDEX_VERSION, QDB_FORMAT_VERSION),
				 errhint("REINDEX INDEX %s;", QdbRelationSqlName(index))));
	if (QdbMetaUntrained(meta))
	{
		const char *problem = QdbUntrainedMetaProblem(meta);

		if (problem)
			meta_damaged(index, problem);
		return;
	}
	if (meta->dim < 1 || meta->dim > QDB_MAX_DIM ||
		meta->metric < QDB_METRIC_L2 || meta->metric > QDB_METRIC_COSINE ||
		meta->code_size < 1 || meta->code_size > QDB_MAX_SUBQUANTIZERS ||
		meta->m < QDB_MIN_M || meta->m > QDB_MAX_M ||
		meta->inline_codes > 1 ||
		meta->first_node_page != QDB_FIRST_COMPRESSOR_BLKNO + meta->compressor_pages)
		meta_damaged(index, "its settings are out of range");
	/* the compressor fills its pages, the last one in part */
	if (meta->compressor_pages < 1 || meta->compressor_pages > QDB_MAX_BLOCKS ||
		meta->compressor_len == 0 ||
		(Size) meta->compressor_len > (Size) meta->compressor_pages * COMPRESSOR_BYTES_PER_PAGE ||
		(Size) meta->compressor_len <= (Size) (meta->compressor_pages - 1) * COMPRESSOR_BYTES_PER_PAGE)
		meta_damaged(index, "its compressor's length does not match its pages");
	if (meta->entry != QDB_NO_NODE &&
		(QdbRefBlock(meta->entry) < meta->first_node_page ||
		 QdbRefOffset(meta->entry) < FirstOffsetNumber ||
		 QdbRefOffset(meta->entry) > QDB_MAX_NODES_PER_PAGE ||
		 meta->entry_level < 0 ||
		 meta->entry_level > QdbHighestLevel(meta->code_size, meta->m, meta->inline_codes != 0)))
		meta_damaged(index, "its entry point is out of range");
}

/* A copy of the meta page's contents. */
void
QdbReadMeta(Relation index, QdbMetaPageData *meta)
{
	Buffer		buf = QdbMetaBuffer(index);
	Page		page;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	QdbCheckMetaPage(index, page);
	memcpy(meta, QdbPageGetMeta(page), sizeof(QdbMetaPageData));
	UnlockReleaseBuffer(buf);
}

/*
 * The m the index was built with, read from its meta page without an
 * ERROR for a page whose contents are not a sound meta page (0 then, as for
 * an index without pages): the planner's (index_cost.c).  The buffer
 * manager's own checks (the page header, a checksum) still raise theirs.
 * The m reloption only takes effect at the next build.
 */
int
QdbBuiltMQuiet(Relation index)
{
	Buffer		buf;
	Page		page;
	int			m = 0;

	if (RelationGetNumberOfBlocks(index) == 0)
		return 0;
	buf = ReadBuffer(index, QDB_META_BLKNO);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	if (QdbPageProblem(page) == NULL && (QdbPageGetOpaque(page)->flags & QDB_PAGE_META) &&
		QdbPageGetMeta(page)->magic == QDB_INDEX_MAGIC &&
		QdbPageGetMeta(page)->version == QDB_INDEX_VERSION)
		m = QdbPageGetMeta(page)->m;
	UnlockReleaseBuffer(buf);
	return m >= QDB_MIN_M && m <= QDB_MAX_M ? m : 0;
}

/* The serialized compressor, checked against the meta page's length and CRC. */
bytea *
QdbReadCompressor(Relation index, const QdbMetaPageData *meta)
{
	bytea	   *blob = palloc_extended((Size) VARHDRSZ + meta->compressor_len, MCXT_ALLOC_HUGE);
	char	   *dst = VARDATA(blob);
	Size		left = meta->compressor_len;
	uint32		i;

	SET_VARSIZE(blob, (Size) VARHDRSZ + meta->compressor_len);
	for (i = 0; i < meta->compressor_pages && left > 0; i++)
	{
		BlockNumber blkno = QDB_FIRST_COMPRESSOR_BLKNO + i;
		Buffer		buf = ReadBuffer(index, blkno);
		Page		page;
		Size		n = Min(left, COMPRESSOR_BYTES_PER_PAGE);

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		QdbCheckPage(index, page, blkno, QDB_PAGE_COMPRESSOR);
		memcpy(dst, PageGetContents(page), n);
		UnlockReleaseBuffer(buf);
		dst += n;
		left -= n;
	}
	if (left != 0 ||
		qdb_crc32c((const uint8 *) VARDATA(blob), meta->compressor_len) != meta->compressor_crc)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("the compressor stored in index \"%s\" fails its checksum",
						RelationGetRelationName(index)),
				 errhint("REINDEX INDEX %s;", QdbRelationSqlName(index))));
	return blob;
}

/*
 * Block blkno of fork as a new page, exclusively locked: the fork extended
 * by it, or the page that was there zeroed (an init fork written again,
 * QdbPadInitFork).  finish_build_page logs it if it is the init fork.
 */
static Buffer
new_build_page(Relation index, ForkNumber fork, BlockNumber blkno, uint16 flags)
{
	Buffer		buf;

	if (blkno < RelationGetNumberOfBlocksInFork(index, fork))
		buf = ReadBufferExtended(index, fork, blkno, RBM_ZERO_AND_LOCK, NULL);
	else
	{
		buf = ReadBufferExtended(index, fork, P_NEW, RBM_NORMAL, NULL);
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	}
	Assert(BufferGetBlockNumber(buf) == blkno);
	QdbInitPage(BufferGetPage(buf), flags);
	return buf;
}

static void
finish_build_page(Buffer buf, ForkNumber fork)
{
	START_CRIT_SECTION();
	MarkBufferDirty(buf);
	if (fork == INIT_FORKNUM)
		log_newpage_buffer(buf, true);
	END_CRIT_SECTION();
	UnlockReleaseBuffer(buf);
}

/*
 * Writes the meta page: block 0 is created when the fork is empty, so the
 * build calls this first (with a provisional meta) and again at the end.
 */
void
QdbWriteMetaPage(Relation index, ForkNumber fork, const QdbMetaPageData *meta)
{
	Buffer		buf;
	Page		page;

	/* an init fork's old page, if any, is not read (QdbPadInitFork) */
	if (fork == INIT_FORKNUM || RelationGetNumberOfBlocksInFork(index, fork) == 0)
		buf = new_build_page(index, fork, QDB_META_BLKNO, QDB_PAGE_META);
	else
	{
		buf = ReadBufferExtended(index, fork, QDB_META_BLKNO, RBM_NORMAL, NULL);
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	}
	page = BufferGetPage(buf);
	memcpy(QdbPageGetMeta(page), meta, sizeof(QdbMetaPageData));
	((PageHeader) page)->pd_lower =
		((char *) QdbPageGetMeta(page) + sizeof(QdbMetaPageData)) - (char *) page;
	finish_build_page(buf, fork);
}

/* Writes the model bytes on pages after the meta page; returns how many. */
BlockNumber
QdbWriteCompressorPages(Relation index, ForkNumber fork, const uint8 *blob, Size len)
{
	BlockNumber npages = 0;

	while (len > 0)
	{
		Buffer		buf = new_build_page(index, fork, QDB_FIRST_COMPRESSOR_BLKNO + npages,
										 QDB_PAGE_COMPRESSOR);
		Page		page = BufferGetPage(buf);
		Size		n = Min(len, COMPRESSOR_BYTES_PER_PAGE);

		memcpy(PageGetContents(page), blob, n);
		((PageHeader) page)->pd_lower += n;
		finish_build_page(buf, fork);
		blob += n;
		len -= n;
		npages++;
	}
	return npages;
}

/*
 * The init fork's pages from block from on: empty node pages, at least one
 * when one is true.  An init fork is written again, in place, when its
 * index is rebuilt in place (TRUNCATE of an unlogged table created in the
 * same transaction): the pages of the old compressor past the new
 * header's end are overwritten, not cut off, as a truncation of the init
 * fork would not reach a standby's copy.
 */
void
QdbPadInitFork(Relation index, BlockNumber from, bool one)
{
	BlockNumber n = RelationGetNumberOfBlocksInFork(index, INIT_FORKNUM);

	for (BlockNumber b = from; b < n || (one && b == from); b++)
		finish_build_page(new_build_page(index, INIT_FORKNUM, b, QDB_PAGE_NODES), INIT_FORKNUM);
}

/* The node at (blkno, off) of a locked node page; ERROR if there is none. */
void
QdbNodeShapeFromMeta(const QdbMetaPageData *meta, QdbNodeShape *shape)
{
	shape->code_size = meta->code_size;
	shape->m = meta->m;
	shape->inline_codes = meta->inline_codes != 0;
	shape->max_level = QdbHighestLevel(meta->code_size, meta->m, meta->inline_codes != 0);
	shape->first_node_page = meta->first_node_page;
}

static void
node_damaged(Relation index, BlockNumber blkno, OffsetNumber off, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INDEX_CORRUPTED),
			 errmsg("index \"%s\" has a damaged node (%u,%u): %s",
					RelationGetRelationName(index), blkno, off, what),
			 errhint("REINDEX INDEX %s;", QdbRelationSqlName(index))));
}

/*
 * Node off of a node page, checked before use (QdbNodePageProblem and
 * QdbNodeItemProblem, node_check.c): a page of the right type, a line
 * pointer in use that lies inside the page, a level within the limit and a
 * tuple exactly the size of a node of that level.  A damaged page is an
 * ERROR, never a read past the tuple.
 */
QdbNode
QdbPageGetNode(Relation index, const QdbNodeShape *shape, Page page, BlockNumber blkno,
			   OffsetNumber off)
{
	const char *what;

	if (QdbNodePageProblem(page) != NULL)
		unexpected_page(index, blkno);
	what = QdbNodeItemProblem(shape, page, off);
	if (what == QdbNodeMissing)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" refers to a missing node (%u,%u)",
						RelationGetRelationName(index), blkno, off),
				 errhint("REINDEX INDEX %s;", QdbRelationSqlName(index))));
	if (what != NULL)
		node_damaged(index, blkno, off, what);
	return (QdbNode) PageGetItem(page, PageGetItemId(page, off));
}

Size
QdbNodeSizeOf(const QdbIndexCache *c, int level)
{
	return QdbNodeSize(c->shape.code_size, c->shape.m, level, c->shape.inline_codes);
}

/* With inline codes: where the code of the neighbour in slot of level's list goes. */
uint8 *
QdbSlotCode(const QdbIndexCache *c, QdbNode node, int level, int slot)
{
	Assert(c->shape.inline_codes);
	return QdbNodeSlotCodes(node, c->shape.code_size, c->shape.m, node->level) +
		(Size) (QdbLevelStart(c->shape.m, level) + slot) * c->shape.code_size;
}

/*
 * What is wrong with the meta page of an index without a compressor (a
 * meta page alone, see QDB_BUILT_UNTRAINED), or NULL; QdbCheckMetaPage and
 * verify both ask.
 */
const char *
QdbUntrainedMetaProblem(const QdbMetaPageData *meta)
{
	if (meta->dim < 0 || meta->dim > QDB_MAX_DIM ||
		meta->metric < QDB_METRIC_L2 || meta->metric > QDB_METRIC_COSINE ||
		meta->m < QDB_MIN_M || meta->m > QDB_MAX_M || meta->inline_codes > 1)
		return "its settings are out of range";
	if (meta->code_size != 0 || meta->compressor_pages != 0 || meta->compressor_len != 0 ||
		meta->entry != QDB_NO_NODE || meta->first_node_page != QDB_FIRST_COMPRESSOR_BLKNO)
		return "it has no compressor but has compressor or graph fields set";
	return NULL;
}

/*
 * The meta page locked for a change (the WAL record's copy of the page in
 * *page when page is not NULL): finish or abort *state, then unlock *buf.
 */
static QdbMetaPage
meta_for_update(Relation index, Buffer *buf, QdbXLog **state, Page *page)
{
	Page		p;

	*buf = QdbMetaBuffer(index);
	LockBuffer(*buf, BUFFER_LOCK_EXCLUSIVE);
	*state = QdbXLogStart(index);
	p = QdbXLogRegister(*state, *buf, 0);
	if (page)
		*page = p;
	return QdbPageGetMeta(p);
}

/*
 * The dimensions of an index without a compressor after it was given a row
 * of dim: dim if the meta page had from (0: none yet, an index built on an
 * empty table learns them from its first row; else the dimensions of rows
 * that no longer exist, index_insert.c), else the meta page's.
 */
int
QdbSetUntrainedDim(Relation index, int from, int dim)
{
	Buffer		buf;
	QdbXLog    *state;
	QdbMetaPage meta = meta_for_update(index, &buf, &state, NULL);
	int			result;

	/* meta is the WAL record's copy of the page, gone after finish or abort */
	if (meta->dim == from && QdbMetaUntrained(meta))
	{
		meta->dim = dim;
		result = dim;
		QdbXLogFinish(state);
	}
	else
	{
		result = meta->dim;
		QdbXLogAbort(state);
	}
	UnlockReleaseBuffer(buf);
	return result;
}

/*
 * free_generation took the meta struct's tail padding: the calibration
 * after it (MAXALIGNed) stays where indexes built before have it
 */
StaticAssertDecl(MAXALIGN(offsetof(QdbMetaPageData, free_generation)) ==
				 MAXALIGN(sizeof(QdbMetaPageData)),
				 "the meta page's free_generation moved the calibration");

/*
 * A VACUUM freed nodes: the next generation, before their slots are
 * offered.  A meta page written before the field has its pd_lower short of
 * it (unless a calibration follows), and GenericXLog zeroes a page's hole:
 * pd_lower is moved to cover it.
 */
void
QdbNextFreeGeneration(Relation index)
{
	Buffer		buf;
	QdbXLog    *state;
	Page		page;
	QdbMetaPage meta = meta_for_update(index, &buf, &state, &page);
	LocationIndex end = (LocationIndex) ((char *) (meta + 1) - (char *) page);

	if (((PageHeader) page)->pd_lower < end)
		((PageHeader) page)->pd_lower = end;
	meta->free_generation++;
	QdbXLogFinish(state);
	UnlockReleaseBuffer(buf);
}

/* Where the calibration lies on the meta page, and the pd_lower that covers it */
#define CalibrationOf(page) \
	((QdbCalibration *) ((char *) QdbPageGetMeta(page) + MAXALIGN(sizeof(QdbMetaPageData))))
#define CalibrationEnd(page) \
	((LocationIndex) ((char *) (CalibrationOf(page) + 1) - (char *) (page)))

/* Where a calibration of size bytes ends on page */
#define CalibrationEndOf(page, size) \
	((LocationIndex) ((char *) CalibrationOf(page) + (size) - (char *) (page)))

/*
 * The index's calibration, or false if it has none: never written (an
 * index built before calibrations, or one whose build skipped it), or
 * outside the page's pd_lower (a rebuilt meta page, whose hole a standby
 * or a full-page image would zero).  fit, fit_at_build and removed are 0
 * unless pd_lower covers them (a calibration written before them), or if
 * they are not numbers of their kind.
 */
static bool
read_calibration(Relation index, QdbCalibration *cal, bool quiet)
{
	Buffer		buf = QdbMetaBuffer(index);
	Page		page;
	bool		found;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	QdbCheckMetaPage(index, page);
	found = ((PageHeader) page)->pd_lower >= CalibrationEndOf(page, QDB_CALIBRATION_D_SIZE);
	if (found)
	{
		memset(cal, 0, sizeof(QdbCalibration));
		memcpy(cal, CalibrationOf(page),
			   ((PageHeader) page)->pd_lower >= CalibrationEnd(page) ?
			   sizeof(QdbCalibration) : QDB_CALIBRATION_D_SIZE);
	}
	UnlockReleaseBuffer(buf);
	if (found && !(cal->fit >= 0 && cal->fit_at_build >= 0 && cal->removed >= 0 &&
				   isfinite(cal->fit) && isfinite(cal->fit_at_build) && isfinite(cal->removed)))
		cal->fit = cal->fit_at_build = cal->removed = 0;
	if (found && (cal->magic != QDB_CALIBRATION_MAGIC || cal->npoints < 1 ||
				  cal->npoints > QDB_MAX_CALIBRATION_POINTS || cal->k < 1))
	{
		if (quiet)
			return false;
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" has a damaged calibration",
						RelationGetRelationName(index)),
				 errhint("SELECT quantumdb.calibrate(%s);", QdbQuotedRelation(index))));
	}
	return found;
}

bool
QdbReadCalibration(Relation index, QdbCalibration *cal)
{
	return read_calibration(index, cal, false);
}

/* The same, but a damaged calibration reads as none (VACUUM's check) */
bool
QdbReadCalibrationQuiet(Relation index, QdbCalibration *cal)
{
	return read_calibration(index, cal, true);
}

/* Replaces the index's calibration (one WAL record). */
void
QdbWriteCalibration(Relation index, const QdbCalibration *cal)
{
	Buffer		buf;
	QdbXLog    *state;
	Page		page;

	Assert(cal->magic == QDB_CALIBRATION_MAGIC);
	buf = QdbMetaBuffer(index);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	QdbCheckMetaPage(index, BufferGetPage(buf));
	state = QdbXLogStart(index);
	page = QdbXLogRegister(state, buf, 0);
	StaticAssertStmt(MAXALIGN(sizeof(QdbMetaPageData)) + sizeof(QdbCalibration) <= QDB_PAGE_CAPACITY,
					 "the calibration must fit on the meta page");
	memcpy(CalibrationOf(page), cal, sizeof(QdbCalibration));
	if (((PageHeader) page)->pd_lower < CalibrationEnd(page))
		((PageHeader) page)->pd_lower = CalibrationEnd(page);
	QdbXLogFinish(state);
	UnlockReleaseBuffer(buf);
}

/* Sets flag among the meta page's build_flags (one WAL record, none if set). */
void
QdbSetBuildFlag(Relation index, uint32 flag)
{
	Buffer		buf;
	QdbXLog    *state;
	QdbMetaPage meta = meta_for_update(index, &buf, &state, NULL);

	if ((meta->build_flags & flag) != flag)
	{
		meta->build_flags |= flag;
		QdbXLogFinish(state);
	}
	else
		QdbXLogAbort(state);
	UnlockReleaseBuffer(buf);
}

/*
 * A VACUUM removed entries of the index: added to its calibration's
 * removed (one WAL record), when it has a calibration.  One written before
 * removed gets the fields after it, zeroed, and pd_lower over them.
 */
void
QdbAddCalibrationRemoved(Relation index, double removed)
{
	Buffer		buf;
	QdbXLog    *state;
	Page		page;
	QdbCalibration *cal;

	if (!(removed > 0))
		return;
	buf = QdbMetaBuffer(index);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	page = BufferGetPage(buf);
	QdbCheckMetaPage(index, page);
	if (((PageHeader) page)->pd_lower < CalibrationEndOf(page, QDB_CALIBRATION_D_SIZE) ||
		CalibrationOf(page)->magic != QDB_CALIBRATION_MAGIC)
	{
		/* none (or a damaged one): the next calibration starts counting */
		UnlockReleaseBuffer(buf);
		return;
	}
	state = QdbXLogStart(index);
	page = QdbXLogRegister(state, buf, 0);
	cal = CalibrationOf(page);
	if (((PageHeader) page)->pd_lower < CalibrationEnd(page))
	{
		cal->fit = cal->fit_at_build = cal->removed = 0;
		((PageHeader) page)->pd_lower = CalibrationEnd(page);
	}
	if (!(cal->removed >= 0 && isfinite(cal->removed)))
		cal->removed = 0;
	cal->removed += removed;
	QdbXLogFinish(state);
	UnlockReleaseBuffer(buf);
}

/* Notes blkno as the page where the next inserts try first. */
void
QdbNoteInsertPage(Relation index, BlockNumber blkno)
{
	Buffer		buf;
	QdbXLog *state;
	QdbMetaPage meta = meta_for_update(index, &buf, &state, NULL);

	if (meta->insert_page == InvalidBlockNumber || meta->insert_page < blkno)
	{
		meta->insert_page = blkno;
		QdbXLogFinish(state);
	}
	else
		QdbXLogAbort(state);
	UnlockReleaseBuffer(buf);
}

/*
 * Makes ref the entry point, under a condition checked with the meta page
 * locked: QDB_ENTRY_IF_EMPTY (no entry yet), QDB_ENTRY_IF_HIGHER (level
 * above the entry's, or no entry) or QDB_ENTRY_IF_EXPECTED (the entry is
 * still expected).  Returns whether it changed.
 */
bool
QdbSetEntry(Relation index, QdbNodeRef ref, int level, int mode, QdbNodeRef expected)
{
	Buffer		buf;
	QdbXLog *state;
	QdbMetaPage meta = meta_for_update(index, &buf, &state, NULL);
	bool		change;

	switch (mode)
	{
		case QDB_ENTRY_IF_EMPTY:
			change = meta->entry == QDB_NO_NODE;
			break;
		case QDB_ENTRY_IF_HIGHER:
			change = meta->entry == QDB_NO_NODE || level > meta->entry_level;
			break;
		default:
			change = meta->entry == expected;
			break;
	}
	if (change)
	{
		meta->entry = ref;
		meta->entry_level = ref == QDB_NO_NODE ? -1 : level;
		QdbXLogFinish(state);
	}
	else
		QdbXLogAbort(state);
	UnlockReleaseBuffer(buf);
	return change;
}
