/*
 * index_cache.c
 *	  What an open index needs: its settings and its own copy of the
 *	  compressor, read from its pages and checked once, pinned by its users.
 *
 * Caches are kept per backend, not in rd_amcache: a relcache flush frees
 * rd_amcache under whoever still points into it (a cursor's scan, an
 * INSERT ... SELECT through the same index), while a pinned cache here
 * outlives every flush until its last pin goes.  The code-to-code table
 * (4 MB at 16 sub-quantizers) is only built for callers that link nodes.
 *
 * A backend keeps the caches of the indexes it has used, to spare the next
 * statement the compressor's reading and parsing and the code cache's
 * warming, but not without bound: when it pins a cache, the caches of other
 * indexes that nobody holds and that the current transaction has not
 * used go, least recently pinned first, until all of them take no more
 * than quantumdb.index_cache_size (trim_caches).  Without a bound a
 * pooled backend that inserted once into each of 60 partitions kept 160 MB
 * (session 59's hunt, /work/runs/hunt-s59a.md F1).  What the transaction
 * used stays for it: an insert holds its cache for one row, and a COPY
 * into 48 partitions evicting as it went reloaded a compressor and its 4 MB
 * code-to-code table per row (session 59's review).  A transaction that
 * pinned any cache trims again as it ends, its own caches no longer spared:
 * trimmed only at a later pin, a backend that inserted one row into each of
 * 30 partitions and then sat idle kept 131 MB at an index_cache_size of
 * 4MB (session 62's hunt, /work/runs/hunt-s62b.md F1).
 *
 * The code-to-code table depends on the compressor alone, and the indexes
 * of a partitioned table built with one named compressor share it: caches
 * whose compressors are the same bytes share one table (PairShare),
 * counted once by the trim.  Partitions whose builds trained their own
 * compressors (no compressor option) keep a table each.
 * Built per index, one INSERT of a row into each of 100 partitions kept
 * 100 copies, 457 MB, until its transaction ended (session 68's hunt,
 * /work/runs/hunt-s68g.md F1).
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "access/xact.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "index.h"

/* The metric of the index's operator class (support function 2). */
QdbMetric
QdbIndexMetric(Relation index)
{
	FmgrInfo   *proc = index_getprocinfo(index, 1, QDB_METRIC_PROC);
	int32		metric = DatumGetInt32(FunctionCall1(proc, (Datum) 0));

	if (metric != QDB_METRIC_L2 && metric != QDB_METRIC_IP && metric != QDB_METRIC_COSINE)
		elog(ERROR, "operator class of index \"%s\" gives unknown metric %d",
			 RelationGetRelationName(index), metric);
	return (QdbMetric) metric;
}

/*
 * A code-to-code table, in a memory context of its own under
 * CacheMemoryContext, and the caches that point to it: it goes with the
 * last of them.  Found by the compressor's bytes, compared whole after
 * their length and CRC-32C (as the meta page keeps it): a compressor
 * imported by a user could be made to collide with another's CRC, whose
 * table may be of another shape (session 68's review F2).
 */
typedef struct PairShare
{
	Size		len;
	uint32		crc;
	uint8	   *bytes;			/* the compressor's, len of them */
	int			refs;
	uint64		counted_in;		/* caches_memory's last pass that counted it */
	MemoryContext cxt;
	float	   *pair;
	struct PairShare *next;
} PairShare;

/*
 * A loaded cache and the pins on it.  Every cache lives in a memory context
 * of its own under CacheMemoryContext.  While any pin is held the cache is
 * never freed: a relcache invalidation of the index (or a newer cache with
 * the pair table) only retires it from lookup, and the last unpin frees it.
 */
typedef struct CacheSlot
{
	Oid			indexoid;
	MemoryContext cxt;
	QdbIndexCache *c;
	PairShare  *share;			/* c->pair's owner, or NULL */
	int			pins;
	bool		retired;		/* no longer found by lookup */
	uint64		pinned_at;		/* use_clock at its latest pin */
	LocalTransactionId pinned_lxid; /* the transaction of that pin */
	struct CacheSlot *next;
} CacheSlot;

static CacheSlot *slots = NULL;
static PairShare *shares = NULL;
static bool callback_registered = false;
static bool pinned_in_xact = false;	/* a cache was pinned since the last end */
static uint64 use_clock = 0;

/* kB; the GUC quantumdb.index_cache_size */
int			qdb_index_cache_kb = 128 * 1024;

/* One cache fewer points to share: the last one frees it. */
static void
share_release(PairShare *share)
{
	PairShare **pp;

	Assert(share->refs > 0);
	if (--share->refs > 0)
		return;
	for (pp = &shares; *pp; pp = &(*pp)->next)
	{
		if (*pp == share)
		{
			*pp = share->next;
			break;
		}
	}
	MemoryContextDelete(share->cxt);	/* share is inside it */
}

static void
slot_free_if_unused(CacheSlot *s)
{
	CacheSlot **pp;

	if (!s->retired || s->pins > 0)
		return;
	for (pp = &slots; *pp; pp = &(*pp)->next)
	{
		if (*pp == s)
		{
			*pp = s->next;
			break;
		}
	}
	if (s->share)
		share_release(s->share);
	MemoryContextDelete(s->cxt);	/* the slot is inside it */
}

/*
 * The memory of the caches in lookup, each shared table once (the tables
 * of retired caches still pinned are not counted, as their caches are not).
 */
static Size
caches_memory(void)
{
	static uint64 pass = 0;
	Size		total = 0;
	CacheSlot  *s;

	pass++;
	for (s = slots; s; s = s->next)
	{
		if (s->retired)
			continue;
		total += MemoryContextMemAllocated(s->cxt, true);
		/* each table once: one pass over the caches, not one per table */
		if (s->share != NULL && s->share->counted_in != pass)
		{
			s->share->counted_in = pass;
			total += MemoryContextMemAllocated(s->share->cxt, true);
		}
	}
	return total;
}

/* What retiring victim frees of the caches in lookup: its share's table too when no other holds it. */
static Size
slot_memory(CacheSlot *victim)
{
	Size		size = MemoryContextMemAllocated(victim->cxt, true);
	CacheSlot  *s;

	if (victim->share == NULL)
		return size;
	for (s = slots; s; s = s->next)
		if (s != victim && !s->retired && s->share == victim->share)
			return size;
	return size + MemoryContextMemAllocated(victim->share->cxt, true);
}

static void
slot_retire(CacheSlot *s)
{
	s->retired = true;
	slot_free_if_unused(s);
}

/* Relcache invalidation: caches of that index (or of all) are retired. */
static void
invalidate_caches(Datum arg, Oid relid)
{
	CacheSlot  *s = slots,
			   *next;

	for (; s; s = next)
	{
		next = s->next;
		if (!s->retired && (relid == InvalidOid || s->indexoid == relid))
			slot_retire(s);
	}
}

/*
 * Retires the least recently pinned caches nobody holds and this
 * transaction has not pinned (any, as it ends), until the caches in lookup
 * take at most quantumdb.index_cache_size.  A pinned cache is never freed
 * here (its users point into it); those of this transaction wait for its
 * end.
 */
static void
trim_caches(CacheSlot *keep, bool ending)
{
	Size		limit = (Size) qdb_index_cache_kb * 1024;
	Size		total = caches_memory();
	CacheSlot  *s;

	while (total > limit)
	{
		CacheSlot  *victim = NULL;

		for (s = slots; s; s = s->next)
			if (!s->retired && s->pins == 0 && s != keep &&
				(ending || s->pinned_lxid != MyProc->lxid) &&
				(victim == NULL || s->pinned_at < victim->pinned_at))
				victim = s;
		if (victim == NULL)
			break;
		total -= Min(total, slot_memory(victim));
		slot_retire(victim);
	}
}

/* The end of a transaction that pinned a cache: trim, sparing none of its own. */
static void
trim_at_end(XactEvent event, void *arg)
{
	if (!pinned_in_xact)
		return;
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			pinned_in_xact = false;
			trim_caches(NULL, true);
			break;
		default:
			break;
	}
}

static void
unpin(void *arg)
{
	CacheSlot  *s = arg;

	Assert(s->pins > 0);
	s->pins--;
	slot_free_if_unused(s);
}

/*
 * The code-to-code table of c's compressor (blob, its bytes as the index
 * stores them), shared with the caches of the same compressor: into
 * c->pair, with the share counted for the caller's cache.
 */
static PairShare *
share_pair_table(Relation index, QdbIndexCache *c, bytea *blob)
{
	Size		len = VARSIZE(blob) - VARHDRSZ;
	PairShare  *share;
	MemoryContext cxt,
				old;

	for (share = shares; share; share = share->next)
		if (share->len == len && share->crc == c->compressor_crc &&
			memcmp(share->bytes, VARDATA(blob), len) == 0)
			break;
	if (share == NULL)
	{
		/* a child of the caller's context until it is complete: an ERROR frees it */
		cxt = AllocSetContextCreate(CurrentMemoryContext, "quantumdb pair table",
									ALLOCSET_SMALL_SIZES);
		/* named by the compressor, not by an index that may go before it */
		MemoryContextSetIdentifier(cxt, MemoryContextStrdup(cxt, psprintf("compressor crc %08x",
																		  c->compressor_crc)));
		old = MemoryContextSwitchTo(cxt);
		share = palloc0(sizeof(PairShare));
		share->bytes = MemoryContextAllocHuge(cxt, len);
		memcpy(share->bytes, VARDATA(blob), len);
		share->len = len;
		share->crc = c->compressor_crc;
		share->cxt = cxt;
		share->pair = MemoryContextAllocHuge(cxt, sizeof(float) * qdb_pair_table_floats(&c->model));
		QdbReportStatus(qdb_compute_pair_table(&c->model, share->pair),
						"could not prepare the index's code distances", NULL);
		MemoryContextSwitchTo(old);
		MemoryContextSetParent(cxt, CacheMemoryContext);
		share->next = shares;
		shares = share;
	}
	share->refs++;
	c->pair = share->pair;
	return share;
}

static CacheSlot *
load_slot(Relation index, bool want_pair)
{
	QdbMetaPageData meta;
	bytea	   *blob;
	char		err[256];
	int			rc;
	MemoryContext cxt,
				old;
	CacheSlot  *s;
	QdbIndexCache *c;

	QdbReadMeta(index, &meta);

	/* a child of the caller's context until it is complete: an ERROR frees it */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "quantumdb index cache",
								ALLOCSET_DEFAULT_SIZES);
	/* the index's name as it was, for pg_backend_memory_contexts */
	MemoryContextSetIdentifier(cxt, MemoryContextStrdup(cxt, RelationGetRelationName(index)));
	old = MemoryContextSwitchTo(cxt);
	s = palloc0(sizeof(CacheSlot));
	c = s->c = palloc0(sizeof(QdbIndexCache));
	c->vectype = QdbVecTypeOf(index->rd_opcintype[0]);
	if (c->vectype == QDB_VEC_NONE)
		elog(ERROR, "index \"%s\" indexes type %s, not a vector type",
			 RelationGetRelationName(index), format_type_be(index->rd_opcintype[0]));
	if (QdbMetaUntrained(&meta))
	{
		/* no compressor, no graph: only what scans and inserts check */
		c->untrained = true;
		c->metric = (QdbMetric) meta.metric;
		c->dim = meta.dim;		/* 0 until a row is seen */
		MemoryContextSwitchTo(old);
		s->indexoid = RelationGetRelid(index);
		s->cxt = cxt;
		MemoryContextSetParent(cxt, CacheMemoryContext);
		return s;
	}
	blob = QdbReadCompressor(index, &meta);

	err[0] = '\0';
	/* every array of the model, the neural layers included, lands in cxt */
	rc = qdb_model_parse((const uint8 *) VARDATA(blob), VARSIZE(blob) - VARHDRSZ,
						 QdbContextAlloc(cxt), &c->model, err, sizeof(err));
	/* a stored model that does not parse is a damaged index */
	if (rc != QDB_OK)
		ereport(ERROR,
				(errcode(QdbStatusErrcode(rc) == ERRCODE_DATA_CORRUPTED ?
						 ERRCODE_INDEX_CORRUPTED : QdbStatusErrcode(rc)),
				 errmsg("the compressor stored in index \"%s\" cannot be read: %s",
						RelationGetRelationName(index), qdb_status_string(rc)),
				 err[0] ? errdetail_internal("%s", err) : 0,
				 errhint("REINDEX INDEX %s;", QdbRelationSqlName(index))));
	if (c->model.dim != meta.dim || (int) c->model.metric != meta.metric ||
		(int) qdb_code_size(&c->model) != meta.code_size)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("the compressor stored in index \"%s\" does not match the index",
						RelationGetRelationName(index)),
				 errdetail("The index has %d dimensions and %d-byte codes; its compressor %d and %d.",
						   meta.dim, meta.code_size, c->model.dim,
						   (int) qdb_code_size(&c->model)),
				 errhint("REINDEX INDEX %s;", QdbRelationSqlName(index))));
	c->dim = meta.dim;
	c->metric = (QdbMetric) meta.metric;
	c->ef_construction = meta.ef_construction;
	QdbNodeShapeFromMeta(&meta, &c->shape);
	c->level_mult = 1.0 / log((double) c->shape.m);
	c->compressor_crc = meta.compressor_crc;
	QdbReportStatus(qdb_model_prepare(&c->model),
					"could not prepare the index's compressor", NULL);
	MemoryContextSwitchTo(old);
	/* taken last: nothing after it can fail and leave the share counted */
	if (want_pair)
		s->share = share_pair_table(index, c, blob);
	pfree(blob);

	s->indexoid = RelationGetRelid(index);
	s->cxt = cxt;
	MemoryContextSetParent(cxt, CacheMemoryContext);
	return s;
}

/*
 * The index is being built: this backend's cache of it goes (a pinned one
 * lives on for its pins, out of lookup).  A truncation in place (COMMIT
 * emptying a temporary table ON COMMIT DELETE ROWS; TRUNCATE of a table
 * whose relfilenode is new in this transaction) keeps the index's OID and
 * relfilenode, and the relcache invalidation of its new statistics is
 * processed only after the build, which would otherwise pin the cache of
 * the old pages: an index without a compressor, or another compressor's
 * model.  Only this backend can have cached those pages: they are its
 * temporary relation's, or a relfilenode no other backend has seen.
 */
void
QdbForgetIndexCache(Relation index)
{
	invalidate_caches((Datum) 0, RelationGetRelid(index));
}

/*
 * The open index's settings and compressor, loaded on first use and pinned
 * until the current memory context is reset or deleted (so a pin taken in a
 * scan's context lasts for the scan, and an ERROR releases it).  Inserts,
 * relcache invalidations and cursors in between cannot free it.  want_pair
 * asks for the code-to-code table too (inserts, build and vacuum).
 */
QdbIndexCache *
QdbPinIndexCache(Relation index, bool want_pair)
{
	Oid			relid = RelationGetRelid(index);
	CacheSlot  *s;
	MemoryContextCallback *cb;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(invalidate_caches, (Datum) 0);
		RegisterXactCallback(trim_at_end, NULL);
		callback_registered = true;
	}
	pinned_in_xact = true;
	for (s = slots; s; s = s->next)
		if (!s->retired && s->indexoid == relid)
			break;
	if (s != NULL && want_pair && s->c->pair == NULL && !s->c->untrained)
	{
		slot_retire(s);
		s = NULL;
	}
	if (s == NULL)
	{
		s = load_slot(index, want_pair);
		s->next = slots;
		slots = s;
	}
	cb = MemoryContextAlloc(CurrentMemoryContext, sizeof(MemoryContextCallback));
	cb->func = unpin;
	cb->arg = s;
	s->pins++;
	s->pinned_at = ++use_clock;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	/*
	 * A cache's first pin in a transaction trims: trim_caches drops only
	 * caches of earlier transactions, and within one only this one's grow,
	 * so every row of an INSERT ... SELECT need not add up the contexts
	 */
	if (s->pinned_lxid != MyProc->lxid)
	{
		s->pinned_lxid = MyProc->lxid;
		if (slots->next != NULL)
			trim_caches(s, false);
	}
	return s->c;
}

/* A level drawn as in the HNSW paper: floor(-ln(U) / ln(m)), capped. */
int
QdbDrawLevel(const QdbIndexCache *c, pg_prng_state *rng)
{
	double		u = pg_prng_double(rng);
	int			level;

	if (u <= 0)
		u = 1e-12;
	level = (int) floor(-log(u) * c->level_mult);
	return Min(level, c->shape.max_level);
}

float
QdbPairDistance(const QdbIndexCache *c, const uint8 *a, const uint8 *b)
{
	return qdb_pair_distance(&c->model, c->pair, a, b);
}
