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
 * the start of its next transaction, or when it next takes a lock).  Until
 * then a walk may meet an old code: a wrong turn, never a wrong row, since
 * rows come from the heap TID of the node actually read; and reading a
 * node's page puts the page's code in place of the old one.
 *
 * Open addressing over node references (murmurhash32, linear probing, at
 * most half full), each slot holding the reference and its code, so that a
 * lookup is one cache miss.  It grows by doubling up to
 * quantumdb.code_cache_size (about 40 bytes a code of 16 bytes, counting
 * the empty half); once there, it keeps what it
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

/*
 * One array of slots, each a node reference and its code side by side, so
 * that a lookup costs one cache miss (the walk's visits are random).
 */
struct QdbCodeCache
{
	MemoryContext cxt;
	int			code_size;
	Size		stride;			/* bytes per slot: the key, then the code */
	uint32		cap;			/* slots, a power of 2 */
	uint32		n;				/* codes held, at most cap / 2 */
	char	   *slots;
};

#define SLOT_KEY(cc, i)		(*(uint32 *) ((cc)->slots + (Size) (i) * (cc)->stride))
#define SLOT_CODE(cc, i)	((uint8 *) ((cc)->slots + (Size) (i) * (cc)->stride + sizeof(uint32)))

static Size
slot_stride(int code_size)
{
	return TYPEALIGN(sizeof(uint32), sizeof(uint32) + code_size);
}

static char *
alloc_slots(MemoryContext cxt, Size stride, uint32 cap)
{
	char	   *slots = MemoryContextAllocHuge(cxt, stride * cap);
	uint32		i;

	for (i = 0; i < cap; i++)
		*(uint32 *) (slots + (Size) i * stride) = QDB_NO_NODE;
	return slots;
}

static QdbCodeCache *
cache_create(QdbIndexCache *c)
{
	MemoryContext cxt = GetMemoryChunkContext(c);
	QdbCodeCache *cc = MemoryContextAllocZero(cxt, sizeof(QdbCodeCache));

	cc->cxt = cxt;
	cc->code_size = c->shape.code_size;
	cc->stride = slot_stride(cc->code_size);
	cc->cap = FIRST_CAPACITY;
	cc->slots = alloc_slots(cxt, cc->stride, cc->cap);
	return cc;
}

static inline uint32
probe(const QdbCodeCache *cc, QdbNodeRef ref)
{
	uint32		h = murmurhash32(ref) & (cc->cap - 1);

	while (SLOT_KEY(cc, h) != QDB_NO_NODE && SLOT_KEY(cc, h) != ref)
		h = (h + 1) & (cc->cap - 1);
	return h;
}

/* Twice the slots; false past the size limit. */
static bool
cache_grow(QdbCodeCache *cc)
{
	uint32		oldcap = cc->cap,
				i;
	char	   *old = cc->slots;
	QdbCodeCache tmp = *cc;

	if (cc->stride * oldcap * 2 > (Size) qdb_code_cache_kb * 1024)
		return false;
	cc->cap = oldcap * 2;
	cc->slots = alloc_slots(cc->cxt, cc->stride, cc->cap);
	tmp.slots = old;
	for (i = 0; i < oldcap; i++)
	{
		uint32		h;

		if (SLOT_KEY(&tmp, i) == QDB_NO_NODE)
			continue;
		h = probe(cc, SLOT_KEY(&tmp, i));
		memcpy(cc->slots + (Size) h * cc->stride, old + (Size) i * cc->stride, cc->stride);
	}
	pfree(old);
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
	if (SLOT_KEY(cc, h) == QDB_NO_NODE)
		return NULL;
	return SLOT_CODE(cc, h);
}

/*
 * Asks the CPU for the slots where refs would be found first: a walk about
 * to visit a list's members waits for one memory fetch, not for each.
 */
void
QdbCodeCachePrefetch(QdbIndexCache *c, const QdbNodeRef *refs, int n)
{
	QdbCodeCache *cc = c->codes;
	int			i;

	if (cc == NULL)
		return;
	for (i = 0; i < n; i++)
		__builtin_prefetch(cc->slots +
						   (Size) (murmurhash32(refs[i]) & (cc->cap - 1)) * cc->stride);
}

/* Keeps the code of ref, read from its page, if there is room; replaces an older one. */
void
QdbCodeCachePut(QdbIndexCache *c, QdbNodeRef ref, const uint8 *code)
{
	QdbCodeCache *cc = c->codes;
	uint32		h;

	if (c->shape.inline_codes || qdb_code_cache_kb <= 0)
		return;
	if (cc == NULL)
	{
		if (slot_stride(c->shape.code_size) * FIRST_CAPACITY > (Size) qdb_code_cache_kb * 1024)
			return;
		cc = c->codes = cache_create(c);
	}
	h = probe(cc, ref);
	if (SLOT_KEY(cc, h) == QDB_NO_NODE)
	{
		if (cc->n >= cc->cap / 2)
		{
			if (!cache_grow(cc))
				return;
			h = probe(cc, ref);
		}
		SLOT_KEY(cc, h) = ref;
		cc->n++;
	}
	/* a known one too: the page's code wins over an old one (slot reused) */
	memcpy(SLOT_CODE(cc, h), code, cc->code_size);
}
