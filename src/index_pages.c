/*
 * index_pages.c
 *	  Pages of a quantumdb index: the meta page, the compressor pages that
 *	  hold the index's own copy of its model, and node pages.
 *
 * Build-time writers (QdbWrite*) change pages without WAL: the build logs
 * the whole relation afterwards, and the init fork is logged page by page.
 * Everything else goes through GenericXLog.
 */
#include "postgres.h"

#include "access/xloginsert.h"
#include "crc32c.h"
#include "miscadmin.h"
#include "storage/indexfsm.h"
#include "storage/lmgr.h"

#include "index.h"

#define COMPRESSOR_BYTES_PER_PAGE \
	(BLCKSZ - MAXALIGN(SizeOfPageHeaderData) - MAXALIGN(sizeof(QdbPageOpaqueData)))

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
check_page(Relation index, Page page, BlockNumber blkno, uint16 flags)
{
	if (PageIsNew(page) || PageGetSpecialSize(page) != MAXALIGN(sizeof(QdbPageOpaqueData)) ||
		QdbPageGetOpaque(page)->page_id != QDB_PAGE_ID ||
		(QdbPageGetOpaque(page)->flags & flags) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" contains an unexpected page at block %u",
						RelationGetRelationName(index), blkno),
				 errhint("Please REINDEX it.")));
}

/* ERROR unless page is a meta page this code can read. */
void
QdbCheckMetaPage(Relation index, Page page)
{
	QdbMetaPage meta;

	check_page(index, page, QDB_META_BLKNO, QDB_PAGE_META);
	meta = QdbPageGetMeta(page);
	if (meta->magic != QDB_INDEX_MAGIC)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" is not a quantumdb index",
						RelationGetRelationName(index)),
				 errhint("Please REINDEX it.")));
	if (meta->version != QDB_INDEX_VERSION || meta->compressor_format != QDB_FORMAT_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("index \"%s\" has format %u with a compressor of format %u, but this quantumdb reads format %u with compressors of format %u",
						RelationGetRelationName(index), meta->version,
						meta->compressor_format, QDB_INDEX_VERSION, QDB_FORMAT_VERSION),
				 errhint("REINDEX INDEX %s;", RelationGetRelationName(index))));
}

/* A copy of the meta page's contents. */
void
QdbReadMeta(Relation index, QdbMetaPageData *meta)
{
	Buffer		buf = ReadBuffer(index, QDB_META_BLKNO);
	Page		page;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	QdbCheckMetaPage(index, page);
	memcpy(meta, QdbPageGetMeta(page), sizeof(QdbMetaPageData));
	UnlockReleaseBuffer(buf);
}

/* The serialized compressor, checked against the meta page's length and CRC. */
bytea *
QdbReadCompressor(Relation index, const QdbMetaPageData *meta)
{
	bytea	   *blob = palloc(VARHDRSZ + meta->compressor_len);
	char	   *dst = VARDATA(blob);
	Size		left = meta->compressor_len;
	uint32		i;

	SET_VARSIZE(blob, VARHDRSZ + meta->compressor_len);
	for (i = 0; i < meta->compressor_pages && left > 0; i++)
	{
		BlockNumber blkno = QDB_FIRST_COMPRESSOR_BLKNO + i;
		Buffer		buf = ReadBuffer(index, blkno);
		Page		page;
		Size		n = Min(left, COMPRESSOR_BYTES_PER_PAGE);

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		check_page(index, page, blkno, QDB_PAGE_COMPRESSOR);
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
				 errhint("REINDEX INDEX %s;", RelationGetRelationName(index))));
	return blob;
}

/* A new page at the end of fork, exclusively locked; logged if it is the init fork. */
static Buffer
new_build_page(Relation index, ForkNumber fork, uint16 flags)
{
	Buffer		buf = ReadBufferExtended(index, fork, P_NEW, RBM_NORMAL, NULL);

	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
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

	if (RelationGetNumberOfBlocksInFork(index, fork) == 0)
		buf = new_build_page(index, fork, QDB_PAGE_META);
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
		Buffer		buf = new_build_page(index, fork, QDB_PAGE_COMPRESSOR);
		Page		page = BufferGetPage(buf);
		Size		n = Min(len, COMPRESSOR_BYTES_PER_PAGE);

		Assert(BufferGetBlockNumber(buf) == QDB_FIRST_COMPRESSOR_BLKNO + npages);
		memcpy(PageGetContents(page), blob, n);
		((PageHeader) page)->pd_lower += n;
		finish_build_page(buf, fork);
		blob += n;
		len -= n;
		npages++;
	}
	return npages;
}

/* The node at (blkno, off) of a locked node page; ERROR if there is none. */
QdbNode
QdbPageGetNode(Relation index, Page page, BlockNumber blkno, OffsetNumber off)
{
	ItemId		iid;

	check_page(index, page, blkno, QDB_PAGE_NODES);
	if (off < FirstOffsetNumber || off > PageGetMaxOffsetNumber(page))
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" refers to a missing node (%u,%u)",
						RelationGetRelationName(index), blkno, off),
				 errhint("Please REINDEX it.")));
	iid = PageGetItemId(page, off);
	return (QdbNode) PageGetItem(page, iid);
}

Size
QdbNodeSizeOf(const QdbIndexCache *c, int level)
{
	return QdbNodeSize(c->code_size, c->m, level, c->inline_codes);
}

/* With inline codes: where the code of the neighbour in slot of level's list goes. */
uint8 *
QdbSlotCode(const QdbIndexCache *c, QdbNode node, int level, int slot)
{
	Assert(c->inline_codes);
	return QdbNodeSlotCodes(node, c->code_size, c->m, node->level) +
		(Size) (QdbLevelStart(c->m, level) + slot) * c->code_size;
}

/* Fills a node with no neighbours yet. */
void
QdbFormNode(const QdbIndexCache *c, QdbNode node, int level, ItemPointer heaptid,
			const uint8 *code)
{
	QdbNodeRef *lists = QdbNodeLists(node, c->code_size);
	int			nslots = QdbNodeSlots(c->m, level);
	int			i;

	memset(node, 0, QdbNodeSizeOf(c, level));
	node->flags = 0;
	node->level = level;
	node->heaptid = *heaptid;
	memcpy(node->code, code, c->code_size);
	for (i = 0; i < nslots; i++)
		lists[i] = QDB_NO_NODE;
}

static bool
page_has_room(Page page, Size size)
{
	return PageGetFreeSpace(page) >= MAXALIGN(size) &&
		PageGetMaxOffsetNumber(page) < QDB_MAX_NODES_PER_PAGE;
}

static OffsetNumber
add_item(Relation index, Page page, QdbNode node, Size size)
{
	OffsetNumber off = PageAddItem(page, (Item) node, size, InvalidOffsetNumber, false, false);

	if (off == InvalidOffsetNumber)
		elog(ERROR, "failed to add a node to index \"%s\"", RelationGetRelationName(index));
	return off;
}

/* The meta page locked for a change: finish or abort *state, then unlock *buf. */
static QdbMetaPage
meta_for_update(Relation index, Buffer *buf, GenericXLogState **state)
{
	*buf = ReadBuffer(index, QDB_META_BLKNO);
	LockBuffer(*buf, BUFFER_LOCK_EXCLUSIVE);
	*state = GenericXLogStart(index);
	return QdbPageGetMeta(GenericXLogRegisterBuffer(*state, *buf, 0));
}

/* Notes blkno as the page where the next inserts try first. */
static void
note_insert_page(Relation index, BlockNumber blkno)
{
	Buffer		buf;
	GenericXLogState *state;
	QdbMetaPage meta = meta_for_update(index, &buf, &state);

	if (meta->insert_page == InvalidBlockNumber || meta->insert_page < blkno)
	{
		meta->insert_page = blkno;
		GenericXLogFinish(state);
	}
	else
		GenericXLogAbort(state);
	UnlockReleaseBuffer(buf);
}

/*
 * Adds a node tuple on the insert page, or on a new page at the end of the
 * relation when it is full; WAL-logged.  Holds one buffer lock at a time
 * (the relation extension lock is taken only with no buffer locked).
 */
/*
 * Puts the node in a free slot of the same size (a deleted node that VACUUM
 * unlinked) on a page the free space map offers; InvalidOffsetNumber if
 * the page has none.  A page with more such slots goes back to the map.
 */
static OffsetNumber
reuse_slot(Relation index, BlockNumber blkno, QdbNode node, Size size)
{
	Buffer		buf;
	Page		page;
	GenericXLogState *state;
	OffsetNumber off,
				found = InvalidOffsetNumber;
	int			more = 0;

	if (blkno >= RelationGetNumberOfBlocks(index))
		return InvalidOffsetNumber;
	buf = ReadBuffer(index, blkno);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	page = BufferGetPage(buf);
	if (PageIsNew(page) || PageGetSpecialSize(page) != MAXALIGN(sizeof(QdbPageOpaqueData)) ||
		QdbPageGetOpaque(page)->flags != QDB_PAGE_NODES)
	{
		UnlockReleaseBuffer(buf);
		return InvalidOffsetNumber;
	}
	state = GenericXLogStart(index);
	page = GenericXLogRegisterBuffer(state, buf, 0);
	for (off = FirstOffsetNumber; off <= PageGetMaxOffsetNumber(page); off++)
	{
		ItemId		iid = PageGetItemId(page, off);
		QdbNode		old = (QdbNode) PageGetItem(page, iid);

		if (!(old->flags & QDB_NODE_FREE))
			continue;
		if (found == InvalidOffsetNumber && ItemIdGetLength(iid) == size)
		{
			memcpy(old, node, size);
			found = off;
		}
		else
			more++;
	}
	if (found != InvalidOffsetNumber)
		GenericXLogFinish(state);
	else
		GenericXLogAbort(state);
	UnlockReleaseBuffer(buf);
	if (more > 0)
		RecordFreeIndexPage(index, blkno);
	return found;
}

QdbNodeRef
QdbAddNode(Relation index, const QdbIndexCache *c, QdbNode node, Size size)
{
	QdbMetaPageData meta;
	Buffer		buf;
	Page		page;
	GenericXLogState *state;
	OffsetNumber off;
	BlockNumber blkno;
	int			tries;

	/* a slot VACUUM freed, if the free space map knows one */
	for (tries = 0; tries < 4; tries++)
	{
		blkno = GetFreeIndexPage(index);
		if (blkno == InvalidBlockNumber)
			break;
		off = reuse_slot(index, blkno, node, size);
		if (off != InvalidOffsetNumber)
			return QdbMakeRef(blkno, off);
	}

	QdbReadMeta(index, &meta);
	blkno = meta.insert_page;
	buf = ReadBuffer(index, blkno);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	state = GenericXLogStart(index);
	page = GenericXLogRegisterBuffer(state, buf, 0);
	check_page(index, page, blkno, QDB_PAGE_NODES);
	if (page_has_room(page, size))
	{
		off = add_item(index, page, node, size);
		GenericXLogFinish(state);
		UnlockReleaseBuffer(buf);
		return QdbMakeRef(blkno, off);
	}
	GenericXLogAbort(state);
	UnlockReleaseBuffer(buf);

	/* the insert page is full: start a new one */
	LockRelationForExtension(index, ExclusiveLock);
	buf = ReadBuffer(index, P_NEW);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	UnlockRelationForExtension(index, ExclusiveLock);
	blkno = BufferGetBlockNumber(buf);
	if (blkno >= QDB_MAX_BLOCKS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("index \"%s\" has reached its limit of %u blocks",
						RelationGetRelationName(index), QDB_MAX_BLOCKS)));
	state = GenericXLogStart(index);
	page = GenericXLogRegisterBuffer(state, buf, GENERIC_XLOG_FULL_IMAGE);
	QdbInitPage(page, QDB_PAGE_NODES);
	off = add_item(index, page, node, size);
	GenericXLogFinish(state);
	UnlockReleaseBuffer(buf);
	note_insert_page(index, blkno);
	return QdbMakeRef(blkno, off);
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
	GenericXLogState *state;
	QdbMetaPage meta = meta_for_update(index, &buf, &state);
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
		GenericXLogFinish(state);
	}
	else
		GenericXLogAbort(state);
	UnlockReleaseBuffer(buf);
	return change;
}
