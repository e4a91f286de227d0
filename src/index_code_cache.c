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
 * every backend drops its codes before its next statement.  A walk already
 * running may still meet an old code: a wrong turn, never a wrong row,
 * since rows come from the heap TID of the node actually read.
 *
 * Open addressing over node references (murmurhash32, linear probing, at
 * most half full), codes in one array by insertion order.  It grows by
 * doubling up to quantumdb.code_cache_size; once there, it keeps what it
 * has and new codes are read from pages as before.  Indexes with inline
 * codes do not use it: their lists carry the codes already.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "utils/memutils.h"

#include "index.h"

#define FIRST_CAPACITY	4096	/* hash slots of a new cache */

/* kB; the GUC quantumdb.code_cache_size */
int			qdb_code_cache_kb = 32 * 1024;

struct QdbCodeCache
{
	MemoryContext cxt;
	int			code_size;
	uint32		cap;			/* hash slots, a power of 2 */
	uint32		n;				/* codes held */
	uint32	   *keys;			/* QDB_NO_NODE: empty */
	uint32	   *slot;			/* code number of each key */
	uint8	   *codes;			/* (codes_cap, code_size) */
	uint32		codes_cap;
};

/* Bytes held for n codes in a table of cap slots. */
static Size
cache_bytes(int code_size, Size n, Size cap)
{
	return n * code_size + cap * 2 * sizeof(uint32);
}

static QdbCodeCache *
cache_create(QdbIndexCache *c)
{
	MemoryContext cxt = GetMemoryChunkContext(c);
	QdbCodeCache *cc = MemoryContextAllocZero(cxt, sizeof(QdbCodeCache));

	cc->cxt = cxt;
	cc->code_size = c->shape.code_size;
	cc->cap = FIRST_CAPACITY;
	cc->keys = MemoryContextAllocHuge(cxt, sizeof(uint32) * cc->cap);
	cc->slot = MemoryContextAllocHuge(cxt, sizeof(uint32) * cc->cap);
	memset(cc->keys, 0xFF, sizeof(uint32) * cc->cap);
	cc->codes_cap = cc->cap / 2;
	cc->codes = MemoryContextAllocHuge(cxt, (Size) cc->codes_cap * cc->code_size);
	return cc;
}

static uint32
probe(const QdbCodeCache *cc, QdbNodeRef ref)
{
	uint32		h = murmurhash32(ref) & (cc->cap - 1);

	while (cc->keys[h] != QDB_NO_NODE && cc->keys[h] != ref)
		h = (h + 1) & (cc->cap - 1);
	return h;
}

/* Twice the slots and room for twice the codes; false past the size limit. */
static bool
cache_grow(QdbCodeCache *cc)
{
	uint32		newcap = cc->cap * 2;
	uint32	   *oldkeys = cc->keys,
			   *oldslot = cc->slot;
	uint32		oldcap = cc->cap,
				i;

	if (cache_bytes(cc->code_size, newcap / 2, newcap) > (Size) qdb_code_cache_kb * 1024)
		return false;
	cc->keys = MemoryContextAllocHuge(cc->cxt, sizeof(uint32) * newcap);
	cc->slot = MemoryContextAllocHuge(cc->cxt, sizeof(uint32) * newcap);
	memset(cc->keys, 0xFF, sizeof(uint32) * newcap);
	cc->cap = newcap;
	for (i = 0; i < oldcap; i++)
	{
		uint32		h;

		if (oldkeys[i] == QDB_NO_NODE)
			continue;
		h = probe(cc, oldkeys[i]);
		cc->keys[h] = oldkeys[i];
		cc->slot[h] = oldslot[i];
	}
	pfree(oldkeys);
	pfree(oldslot);
	cc->codes = repalloc_huge(cc->codes, (Size) (newcap / 2) * cc->code_size);
	cc->codes_cap = newcap / 2;
	return true;
}

/* The cached code of ref (valid until the next QdbCodeCachePut), or NULL. */
const uint8 *
QdbCodeCacheGet(QdbIndexCache *c, QdbNodeRef ref)
{
	QdbCodeCache *cc = c->codes;
	uint32		h;

	if (cc == NULL)
		return NULL;
	h = probe(cc, ref);
	if (cc->keys[h] == QDB_NO_NODE)
		return NULL;
	return cc->codes + (Size) cc->slot[h] * cc->code_size;
}

/* Keeps the code of ref, read from its page, if there is room. */
void
QdbCodeCachePut(QdbIndexCache *c, QdbNodeRef ref, const uint8 *code)
{
	QdbCodeCache *cc = c->codes;
	uint32		h;

	if (c->shape.inline_codes || qdb_code_cache_kb <= 0)
		return;
	if (cc == NULL)
	{
		if (cache_bytes(c->shape.code_size, FIRST_CAPACITY / 2, FIRST_CAPACITY) >
			(Size) qdb_code_cache_kb * 1024)
			return;
		cc = c->codes = cache_create(c);
	}
	if (cc->n >= cc->codes_cap && !cache_grow(cc))
		return;
	h = probe(cc, ref);
	if (cc->keys[h] != QDB_NO_NODE)
		return;					/* known already */
	cc->keys[h] = ref;
	cc->slot[h] = cc->n;
	memcpy(cc->codes + (Size) cc->n * cc->code_size, code, cc->code_size);
	cc->n++;
}

/* How many codes the cache holds (index_info). */
int64
QdbCodeCacheCount(const QdbIndexCache *c)
{
	return c->codes ? c->codes->n : 0;
}
