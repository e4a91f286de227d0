/*
 * gen_node_seeds.c
 *	  Writes the seed corpus of fuzz_node_page: node pages laid out as the
 *	  index lays them out (QdbInitPage, then QdbFormNode and PageAddItem per
 *	  node), each after the 3 bytes that choose its shape.
 *
 * PageInit and PageAddItem live in the backend, so their layout is repeated
 * here: the header, the special space at the end, line pointers from
 * pd_lower up, MAXALIGNed tuples from pd_upper down.
 *
 *	  gen_node_seeds DIR
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>

#include "storage/bufpage.h"

#include "index.h"

/* the C library's, not src/port's (this file does not link libpgport) */
#undef printf
#undef fprintf
#undef snprintf

static uint64 rng = 0x9E3779B97F4A7C15;

static uint32
next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32) (rng >> 32);
}

/* PageInit(page, BLCKSZ, sizeof(QdbPageOpaqueData)) and QdbInitPage's opaque */
static void
init_page(char *page)
{
	PageHeader	p = (PageHeader) page;
	QdbPageOpaque opaque;

	memset(page, 0, BLCKSZ);
	p->pd_flags = 0;
	p->pd_lower = SizeOfPageHeaderData;
	p->pd_upper = BLCKSZ - MAXALIGN(sizeof(QdbPageOpaqueData));
	p->pd_special = BLCKSZ - MAXALIGN(sizeof(QdbPageOpaqueData));
	PageSetPageSizeAndVersion(page, BLCKSZ, PG_PAGE_LAYOUT_VERSION);
	opaque = QdbPageGetOpaque(page);
	opaque->flags = QDB_PAGE_NODES;
	opaque->page_id = QDB_PAGE_ID;
}

/* PageAddItem(page, tuple, size, InvalidOffsetNumber, false, false); false when full */
static bool
add_item(char *page, const char *tuple, Size size)
{
	PageHeader	p = (PageHeader) page;
	Size		aligned = MAXALIGN(size);
	OffsetNumber off = PageGetMaxOffsetNumber(page) + 1;
	ItemId		iid;

	if (off > QDB_MAX_NODES_PER_PAGE ||
		(Size) p->pd_upper < (Size) p->pd_lower + sizeof(ItemIdData) + aligned)
		return false;
	p->pd_upper -= aligned;
	p->pd_lower += sizeof(ItemIdData);
	iid = PageGetItemId(page, off);
	ItemIdSetNormal(iid, p->pd_upper, size);
	memcpy(page + p->pd_upper, tuple, size);
	return true;
}

/* QdbFormNode, then some links (and their inline codes) and flags */
static Size
form_node(char *buf, const QdbNodeShape *s, int level, int nodes_before)
{
	Size		size = QdbNodeSize(s->code_size, s->m, level, s->inline_codes);
	QdbNode		node = (QdbNode) buf;
	QdbNodeRef *lists = QdbNodeLists(node, s->code_size);
	int			nslots = QdbNodeSlots(s->m, level);
	int			i,
				j;

	memset(buf, 0, size);
	node->level = level;
	ItemPointerSet(&node->heaptid, next() % 100000, 1 + next() % 200);
	for (i = 0; i < s->code_size; i++)
		node->code[i] = next();
	for (i = 0; i < nslots; i++)
	{
		lists[i] = (next() % 3 == 0 || nodes_before == 0) ? QDB_NO_NODE :
			QdbMakeRef(1 + next() % 8, 1 + next() % nodes_before);
		if (s->inline_codes && lists[i] != QDB_NO_NODE)
			for (j = 0; j < s->code_size; j++)
				QdbNodeSlotCodes(node, s->code_size, s->m, level)[i * s->code_size + j] = next();
	}
	if (next() % 8 == 0)
		node->flags = QDB_NODE_DELETED;
	else if (next() % 16 == 0)
	{
		/* unlinked by VACUUM: free, no links */
		node->flags = QDB_NODE_DELETED | QDB_NODE_FREE;
		for (i = 0; i < nslots; i++)
			lists[i] = QDB_NO_NODE;
	}
	return size;
}

/* A level as the build draws it (1/ln(m)), capped at the shape's limit. */
static int
draw_level(const QdbNodeShape *s)
{
	int			level = 0;

	while (level < s->max_level && next() % s->m == 0)
		level++;
	return level;
}

static void
write_seed(const char *dir, const char *name, const QdbNodeShape *s, const char *page)
{
	char		path[1024];
	uint8		prefix[3];
	FILE	   *f;
	const char *what = QdbNodePageProblem((Page) page);
	int			off;

	/* the checks accept every node of a page the index could have written */
	for (off = FirstOffsetNumber; what == NULL && off <= PageGetMaxOffsetNumber(page); off++)
		what = QdbNodeItemProblem(s, (Page) page, off);
	if (what != NULL)
	{
		fprintf(stderr, "%s: rejected: %s\n", name, what);
		exit(1);
	}
	prefix[0] = s->code_size - 1;
	prefix[1] = s->m - QDB_MIN_M;
	prefix[2] = s->inline_codes ? 1 : 0;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(prefix, 1, 3, f) != 3 || fwrite(page, 1, BLCKSZ, f) != BLCKSZ ||
		fclose(f) != 0)
	{
		perror(path);
		exit(1);
	}
}

int
main(int argc, char **argv)
{
	static const int shapes[][3] = {
		/* code_size, m, inline codes; a node of level 0 fits on a page */
		{16, 16, 0}, {16, 16, 1}, {8, 8, 0}, {8, 8, 1}, {1, 2, 0}, {1, 2, 1},
		{64, 100, 0}, {64, 50, 1}, {32, 48, 1}, {3, 5, 0},
	};
	char	   *page = malloc(BLCKSZ);
	char	   *tuple = malloc(BLCKSZ);
	int			k,
				n = 0;

	if (argc != 2)
	{
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	for (k = 0; k < (int) lengthof(shapes); k++)
	{
		QdbNodeShape s;
		int			full;

		s.code_size = shapes[k][0];
		s.m = shapes[k][1];
		s.inline_codes = shapes[k][2] != 0;
		s.max_level = QdbHighestLevel(s.code_size, s.m, s.inline_codes);
		for (full = 0; full < 2; full++)
		{
			char		name[64];
			int			nodes = 0;
			int			want = full ? QDB_MAX_NODES_PER_PAGE : 3;

			init_page(page);
			/* the first node of the first page of each shape: its highest level */
			while (nodes < want)
			{
				int			level = nodes == 0 && !full ? s.max_level : draw_level(&s);
				Size		size = form_node(tuple, &s, level, nodes);

				if (!add_item(page, tuple, size))
					break;
				nodes++;
			}
			snprintf(name, sizeof(name), "node-%d-%d-%d-%s.page", s.code_size, s.m,
					 s.inline_codes ? 1 : 0, full ? "full" : "few");
			write_seed(argv[1], name, &s, page);
			n++;
		}
	}
	/* an initialized page with no node */
	{
		QdbNodeShape s = {16, 16, false, QdbHighestLevel(16, 16, false)};

		init_page(page);
		write_seed(argv[1], "empty.page", &s, page);
		n++;
	}
	printf("%d seed pages\n", n);
	free(page);
	free(tuple);
	return 0;
}
