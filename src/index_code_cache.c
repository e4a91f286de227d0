/*
 * index_code_cache.c
 *	  A backend's copy of node codes, by node reference, kept across scans.
 *
 * A walk needs a visited node's 16-byte code for its distance, and the
 * node's page only when it expands the node (its list) or returns it (its
 * heap TID and flags).  Without this cache every visited node costs a
 * buffer read: hashing the buffer tag, a pin, a content lock and the page
 * checks, most of a scan's time.  With it, a node's code is read from its
 * page once per backend; later walks find it here.
 *
 * The cache hangs off the index's cache (index_cache.c), in its memory
 * context, so it lives exactly as long as that: a relcache invalidation of
 * the index drops both.  A node's code never changes while the node lives
 * at its reference; a reference gets another node only when VACUUM has
 * freed the first and an insert reuses the slot, and QdbFreeUnlinkedNodes
 * sends a relcache invalidation for every index where it freed a node, so
 * every backend drops its codes when it next processes invalidations (at
 * the start of its next transaction, or when it next takes a lock); that
 * message is lost when the VACUUM aborts (a cancel while it waits to
 * truncate the heap, or while it frees), so it also moves the meta page's
 * free_generation on before it frees the first node, and a walk that finds
 * another generation than the cache's forgets every code first
 * (QdbCodeCacheSync: from QdbDiskDescend, an insert's link search and
 * VACUUM's repairs).  Until then a walk may meet an old code: a wrong turn,
 * never a wrong row, since rows come from the heap TID of the node actually
 * read; and reading a node's page puts the page's code in place of the old
 * one.
 *
 * Direct-mapped: a node reference (block, offset) is a place in one array,
 * (block - first node page) x per_page + offset - 1, where per_page is the
 * most level-0 nodes a page holds (higher levels' nodes are larger, so no
 * sound page has more), and a bit per place says whether it holds a code.
 * A lookup is an index computation, a bit of a bitmap small enough to stay
 * in cache and the code, where the hash table it replaced (2026-12-05)
 * hashed, probed and kept twice the room: about 16 bytes a code of 16 bytes
 * plus the places of a page's unused offsets, against 40.  The array covers
 * the pages up to the highest one read so far and a quarter more, grown as
 * higher pages are read, up to quantumdb.code_cache_size; past it, codes
 * of higher pages are read from their pages as before (an index larger
 * than the limit keeps its first pages' codes only: at the default 32 MB,
 * about 40,000 pages at m 16).  An offset above per_page (a damaged page)
 * is never cached.  Indexes with inline codes do not use it: their lists
 * carry the codes already.
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "index.h"

#define FIRST_PAGES	8		/* the fewest pages a cache covers */

/* kB; the GUC quantumdb.code_cache_size */
int			qdb_code_cache_kb = 32 * 1024;

struct QdbCodeCache
{
	MemoryContext cxt;
	int			code_size;
	BlockNumber first;			/* the index's first node page */
	uint32		per_page;		/* places per page */
	uint32		npages;			/* pages covered */
	uint8	   *codes;			/* npages x per_page codes */
	uint64	   *known;			/* a bit per place: holds a code */
	uint32		generation;		/* the meta page's free_generation of the codes */
};

/* The most level-0 node tuples a node page holds, with their line pointers. */
static uint32
places_per_page(const QdbNodeShape *shape)
{
	Size		node = MAXALIGN(QdbNodeSize(shape->code_size, shape->m, 0, shape->inline_codes));
	Size		n = QDB_PAGE_CAPACITY / (node + sizeof(ItemIdData));

	return (uint32) Max(1, Min(n, QDB_MAX_NODES_PER_PAGE));
}

/* Bytes a cache covering npages takes. */
static Size
cache_bytes(const QdbCodeCache *cc, uint32 npages)
{
	Size		places = (Size) npages * cc->per_page;

	return places * cc->code_size + (places + 63) / 64 * sizeof(uint64);
}

/* The place of ref, or -1 when it has none (below the first node page, a bad offset). */
static inline int64
place_of(const QdbCodeCache *cc, QdbNodeRef ref)
{
	BlockNumber blk = QdbRefBlock(ref);
	OffsetNumber off = QdbRefOffset(ref);

	if (blk < cc->first || off < FirstOffsetNumber || off > cc->per_page)
		return -1;
	return (int64) (blk - cc->first) * cc->per_page + (off - 1);
}

/* Covers at least want pages (> npages), and a quarter more; false past the size limit. */
static bool
cache_cover(QdbCodeCache *cc, uint32 want)
{
	Size		limit = (Size) qdb_code_cache_kb * 1024;
	uint32		npages = Max(want + want / 4, FIRST_PAGES);
	uint8	   *codes;
	uint64	   *known;
	Size		oldplaces = (Size) cc->npages * cc->per_page,
				places;

	if (cache_bytes(cc, npages) > limit)
	{
		/* the most that fits, if that covers want */
		npages = (uint32) Min((Size) PG_UINT32_MAX,
							  limit / ((Size) cc->per_page * cc->code_size + 1));
		while (npages > 0 && cache_bytes(cc, npages) > limit)
			npages--;
		if (npages < want || npages <= cc->npages)
			return false;
	}
	places = (Size) npages * cc->per_page;
	codes = MemoryContextAllocHuge(cc->cxt, places * cc->code_size);
	known = MemoryContextAllocHuge(cc->cxt, (places + 63) / 64 * sizeof(uint64));
	memset(known, 0, (places + 63) / 64 * sizeof(uint64));
	if (cc->codes)
	{
		memcpy(codes, cc->codes, oldplaces * cc->code_size);
		memcpy(known, cc->known, (oldplaces + 63) / 64 * sizeof(uint64));
		pfree(cc->codes);
		pfree(cc->known);
	}
	cc->codes = codes;
	cc->known = known;
	cc->npages = npages;
	return true;
}

/* The cached code of ref (valid until the next QdbCodeCachePut), or NULL. */
const uint8 *
QdbCodeCacheGet(QdbIndexCache *c, QdbNodeRef ref)
{
	QdbCodeCache *cc = c->codes;
	int64		p;
	uint64		u;

	if (cc == NULL)
		return NULL;
	p = place_of(cc, ref);
	if (p < 0 || p >= (int64) cc->npages * cc->per_page)
		return NULL;
	u = (uint64) p;
	if (!(cc->known[u / 64] & (UINT64CONST(1) << (u % 64))))
		return NULL;
	return cc->codes + (Size) u * cc->code_size;
}

/*
 * Asks the CPU for the places where refs' codes would be found first: a
 * walk about to visit a list's members waits for one memory fetch, not for
 * each.
 */
void
QdbCodeCachePrefetch(QdbIndexCache *c, const QdbNodeRef *refs, int n)
{
	QdbCodeCache *cc = c->codes;
	int64		limit;
	int			i;

	if (cc == NULL)
		return;
	limit = (int64) cc->npages * cc->per_page;
	for (i = 0; i < n; i++)
	{
		int64		p = place_of(cc, refs[i]);

		if (p >= 0 && p < limit)
		{
			__builtin_prefetch(&cc->known[(uint64) p / 64]);
			__builtin_prefetch(cc->codes + (Size) p * cc->code_size);
		}
	}
}

/* Keeps the code of ref, read from its page, if there is room; replaces an older one. */
void
QdbCodeCachePut(QdbIndexCache *c, QdbNodeRef ref, const uint8 *code)
{
	QdbCodeCache *cc = c->codes;
	int64		p;

	if (c->shape.inline_codes || qdb_code_cache_kb <= 0)
		return;
	if (cc == NULL)
	{
		MemoryContext cxt = GetMemoryChunkContext(c);

		cc = MemoryContextAllocZero(cxt, sizeof(QdbCodeCache));
		cc->cxt = cxt;
		cc->code_size = c->shape.code_size;
		cc->first = c->shape.first_node_page;
		cc->per_page = places_per_page(&c->shape);
		cc->generation = c->free_generation;
		if (cache_bytes(cc, FIRST_PAGES) > (Size) qdb_code_cache_kb * 1024)
		{
			pfree(cc);
			return;
		}
		c->codes = cc;
	}
	p = place_of(cc, ref);
	if (p < 0)
		return;
	if (p >= (int64) cc->npages * cc->per_page &&
		!cache_cover(cc, QdbRefBlock(ref) - cc->first + 1))
		return;
	/* a known one too: the page's code wins over an old one (slot reused) */
	memcpy(cc->codes + (Size) p * cc->code_size, code, cc->code_size);
	cc->known[(uint64) p / 64] |= UINT64CONST(1) << ((uint64) p % 64);
}

/*
 * A walk read the meta page's free_generation: where VACUUM moved it on
 * since the cached codes were read, some of their slots may hold other
 * nodes now, and every code is forgotten (the memory stays: a code a walk
 * holds stays readable).
 */
void
QdbCodeCacheSync(QdbIndexCache *c, uint32 free_generation)
{
	QdbCodeCache *cc = c->codes;

	c->free_generation = free_generation;
	if (cc == NULL || cc->generation == free_generation)
		return;
	if (cc->known)
		memset(cc->known, 0, ((Size) cc->npages * cc->per_page + 63) / 64 * sizeof(uint64));
	cc->generation = free_generation;
}
