/*
 * node_check.c
 *	  The checks a page and a node tuple pass before anything reads them,
 *	  as pure functions: no ereport, no palloc, no backend call, only the
 *	  macros and inline code of the headers.  QdbPageGetNode (index_pages.c)
 *	  turns a problem into an ERROR, quantumdb.verify() (index_info.c) into a
 *	  line of its report, and test/fuzz/fuzz_node_page.c links this file
 *	  alone to feed it random pages.
 *
 * A node these checks accept can be read whole, lists and inline codes
 * included, without a byte outside its tuple, and its level is within the
 * shape's max_level.
 */
#include "postgres.h"

#include "storage/bufpage.h"

#include "index.h"

/* What QdbNodeItemProblem returns for an offset with no line pointer. */
const char	QdbNodeMissing[] = "there is no such node";

/* The largest node tuple a page holds. */
Size
QdbMaxNodeSize(void)
{
	return QDB_PAGE_CAPACITY - sizeof(ItemIdData);
}

/* Whether a node tuple of level fits on a page. */
bool
QdbNodeFits(int code_size, int m, int level, bool inline_codes)
{
	return MAXALIGN(QdbNodeSize(code_size, m, level, inline_codes)) <= QdbMaxNodeSize();
}

/*
 * The highest level whose node tuple still fits on a page (at most
 * QDB_MAX_LEVEL); 0 also when a level-0 node does not fit, which CREATE
 * INDEX refuses (index_build.c).
 */
int
QdbHighestLevel(int code_size, int m, bool inline_codes)
{
	int			level = QDB_MAX_LEVEL;

	while (level > 0 && !QdbNodeFits(code_size, m, level, inline_codes))
		level--;
	return level;
}

/*
 * NULL when page (BLCKSZ bytes) is an initialized quantumdb page: its
 * header gives BLCKSZ as its size, and its special space is a
 * QdbPageOpaqueData with the page id.  Its type is the caller's to check.
 */
const char *
QdbPageProblem(Page page)
{
	if (PageIsNew(page))
		return "it is not initialized";
	/* the header's page size too: the special space is found from it */
	if (PageGetPageSize(page) != BLCKSZ ||
		PageGetSpecialSize(page) != MAXALIGN(sizeof(QdbPageOpaqueData)))
		return "its special space has the wrong size";
	if (QdbPageGetOpaque(page)->page_id != QDB_PAGE_ID)
		return "its page id is not quantumdb's";
	return NULL;
}

/* NULL when page is a quantumdb node page with no more line pointers than it may hold. */
const char *
QdbNodePageProblem(Page page)
{
	const char *what = QdbPageProblem(page);

	if (what)
		return what;
	if (QdbPageGetOpaque(page)->flags != QDB_PAGE_NODES)
		return "it is not a node page";
	if (PageGetMaxOffsetNumber(page) > QDB_MAX_NODES_PER_PAGE)
		return "it has more line pointers than a node page may hold";
	return NULL;
}

/*
 * NULL when item off of page is a sound node of this shape: a line pointer
 * in use whose tuple lies inside the page at a MAXALIGNed offset, with a
 * level within the limit and exactly the size of a node of that level.
 * QdbNodeMissing when off is not a line pointer of the page; else what is
 * wrong.  The page must have passed QdbNodePageProblem.
 */
const char *
QdbNodeItemProblem(const QdbNodeShape *shape, Page page, OffsetNumber off)
{
	ItemId		iid;
	QdbNode		node;
	Size		start,
				len;

	if (off < FirstOffsetNumber || off > PageGetMaxOffsetNumber(page) ||
		off > QDB_MAX_NODES_PER_PAGE)
		return QdbNodeMissing;
	iid = PageGetItemId(page, off);
	if (!ItemIdIsNormal(iid))
		return "its line pointer is not in use";
	start = ItemIdGetOffset(iid);
	len = ItemIdGetLength(iid);
	if (start < SizeOfPageHeaderData || start + len > ((PageHeader) page)->pd_special ||
		len < QdbNodeSize(shape->code_size, shape->m, 0, shape->inline_codes))
		return "its tuple lies outside the page or is too short";
	/* PageAddItem puts tuples at MAXALIGNed offsets; the lists are uint32 */
	if (start != MAXALIGN(start))
		return "its tuple is not aligned";
	node = (QdbNode) PageGetItem(page, iid);
	if (node->level > shape->max_level)
		return "its level is above the limit";
	if (len != QdbNodeSize(shape->code_size, shape->m, node->level, shape->inline_codes))
		return "its size does not match its level";
	return NULL;
}
