/*
 * fuzz_node_page.c
 *	  libFuzzer target for the checks every reader of a node page relies on:
 *	  QdbNodePageProblem and QdbNodeItemProblem (src/node_check.c, linked
 *	  alone: it needs only header macros, not the backend).
 *
 * Input: 3 bytes that choose a node shape (code_size 1..64, m 2..100,
 * inline codes or not; max_level from QdbHighestLevel, as the index
 * computes it), then the page: up to BLCKSZ bytes, zero-filled after the
 * input's end, in a heap buffer of exactly BLCKSZ bytes.
 *
 * When the page check passes, every offset from 0 to maxoff + 1 goes
 * through the item check.  Each node it accepts is then read the way the
 * readers read one (graph_disk.c, graph_reach.c, index_vacuum.c, verify):
 * flags, level, heap TID, code, every slot of every level 0..level and,
 * with inline codes, each slot's code; and once more from a heap copy of
 * exactly the tuple's length, so that AddressSanitizer reports any read
 * outside the tuple, not only outside the page.  The walk counts links per
 * level into an array of max_level + 1 entries, as a reader that sizes its
 * arrays by the shape does.  UndefinedBehaviorSanitizer reports misaligned
 * loads of the lists and the TID.
 *
 * It aborts (a crash for libFuzzer) when the checks contradict themselves:
 * an offset outside 1..maxoff that is not QdbNodeMissing, or an accepted
 * node whose line pointer is not in use.
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>

#include "storage/bufpage.h"

#include "index.h"

/* the C library's, not src/port's (this file does not link libpgport) */
#undef fprintf

#define SHAPE_BYTES 3

static volatile uint32 sink;

static void
fail(const char *what, int off)
{
	fprintf(stderr, "fuzz_node_page: %s (offset %d)\n", what, off);
	abort();
}

/* Reads every field of node, as the readers do. */
static void
walk(const QdbNodeShape *shape, QdbNode node, uint32 *per_level)
{
	uint32		h = 0;
	QdbNodeRef *lists = QdbNodeLists(node, shape->code_size);
	int			level,
				i,
				j;

	h += node->flags;
	h += node->level;
	h += ItemPointerGetBlockNumberNoCheck(&node->heaptid);
	h += ItemPointerGetOffsetNumberNoCheck(&node->heaptid);
	for (i = 0; i < shape->code_size; i++)
		h = h * 31 + node->code[i];
	for (level = 0; level <= node->level; level++)
	{
		QdbNodeRef *list = lists + QdbLevelStart(shape->m, level);
		int			nslots = QdbLevelSlots(shape->m, level);

		per_level[level] = 0;
		for (i = 0; i < nslots; i++)
		{
			if (list[i] == QDB_NO_NODE)
				continue;
			per_level[level]++;
			h += QdbRefBlock(list[i]) + QdbRefOffset(list[i]);
			if (shape->inline_codes)
			{
				const uint8 *code = QdbNodeSlotCodes(node, shape->code_size, shape->m,
													 node->level) +
					(Size) (QdbLevelStart(shape->m, level) + i) * shape->code_size;

				for (j = 0; j < shape->code_size; j++)
					h = h * 31 + code[j];
			}
		}
		h += per_level[level];
	}
	sink += h;
}

int
LLVMFuzzerTestOneInput(const uint8 *data, size_t size)
{
	QdbNodeShape shape;
	char	   *page;
	uint32	   *per_level;
	int			maxoff,
				off;

	if (size < SHAPE_BYTES)
		return 0;
	shape.code_size = 1 + data[0] % 64;
	shape.m = QDB_MIN_M + data[1] % (QDB_MAX_M - QDB_MIN_M + 1);
	shape.inline_codes = (data[2] & 1) != 0;
	shape.max_level = QdbHighestLevel(shape.code_size, shape.m, shape.inline_codes);
	data += SHAPE_BYTES;
	size -= SHAPE_BYTES;

	page = malloc(BLCKSZ);
	per_level = malloc(sizeof(uint32) * (shape.max_level + 1));
	memset(page, 0, BLCKSZ);
	memcpy(page, data, Min(size, BLCKSZ));

	if (QdbNodePageProblem((Page) page) == NULL)
	{
		maxoff = PageGetMaxOffsetNumber((Page) page);
		if (maxoff > QDB_MAX_NODES_PER_PAGE)
			fail("page check passed a page with too many line pointers", maxoff);
		for (off = 0; off <= maxoff + 1; off++)
		{
			const char *what = QdbNodeItemProblem(&shape, (Page) page, off);
			ItemId		iid;
			char	   *copy;

			if ((off < FirstOffsetNumber || off > maxoff) && what != QdbNodeMissing)
				fail("an offset outside the line pointers is not QdbNodeMissing", off);
			if (what != NULL)
				continue;
			iid = PageGetItemId((Page) page, off);
			if (!ItemIdIsNormal(iid))
				fail("accepted a line pointer not in use", off);
			walk(&shape, (QdbNode) PageGetItem((Page) page, iid), per_level);
			copy = malloc(ItemIdGetLength(iid));
			memcpy(copy, PageGetItem((Page) page, iid), ItemIdGetLength(iid));
			walk(&shape, (QdbNode) copy, per_level);
			free(copy);
		}
	}
	free(per_level);
	free(page);
	return 0;
}
