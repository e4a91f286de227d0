/*
 * distance_memo.c
 *	  The exact distances an index scan's rerank computed, kept for the
 *	  executor, which computes the same distances again.
 *
 * A query "SELECT ... ORDER BY emb <~> $1 LIMIT 10" through a quantumdb
 * index has the executor evaluate emb <~> $1 once more for every row the
 * scan returns (the ORDER BY expression is part of the scan's target list).
 * The rerank computed exactly that distance a moment before.  For a vector
 * of a few hundred floats that is cheap, but a vector stored compressed or
 * out of line must be detoasted first: for 784-dim rows stored compressed
 * (Postgres's default for values over about 2 kB that compress) one
 * decompression costs more than the rest of the row's work.
 *
 * So while a scan is open it keeps a memo: the distance function's OID, the
 * query, and for each re-scored row its stored value as it lies in the heap
 * tuple (the compressed bytes, or the TOAST pointer) with the distance.  The
 * real[] distance functions (distance_ops.c) look a value up before
 * detoasting it, and record what they compute while the rerank calls them.
 * Only the same function with the same query bytes and the same stored
 * bytes hits, so a hit is the value the function would compute:
 *	- compressed bytes decompress to one value, whatever row holds them;
 *	- a TOAST pointer names a value that never changes, and its OID cannot
 *	  be given to another value while a row that holds it is visible to a
 *	  registered snapshot; the rerank recorded only rows visible to the
 *	  scan's snapshot, and the memo lives no longer than the scan.
 * Values stored plainly in the tuple are never kept: reading them costs
 * nothing.  A value stored out of line is read by the rerank itself
 * (toast_fetch.c), and the function gets it plain: then
 * QdbDistanceMemoCall keeps the distance under the TOAST pointer itself.
 * Entries hold from one re-scored batch to the next (the
 * executor asks for a row's distance right after the scan returns it; a
 * strict-order scan may return rows of an earlier batch after a later one
 * is re-scored, and the executor then computes their distances itself), at
 * most MEMO_MAX_ENTRIES and MEMO_MAX_BYTES of them, in a hash table sized
 * for the batch and made at its first entry.  Only calls through the
 * scan's own FmgrInfo, during its rerank, record; a lookup also checks the
 * function's OID and entry point and the query before it hashes the value.
 *
 * A memo lives in the scan's memory context; a reset callback unlinks it
 * when that context is reset or deleted (rescan, end of scan, or an error),
 * so nothing here can outlive it.
 */
#include "postgres.h"

#include "utils/regproc.h"

#include "access/detoast.h"
#include "utils/memutils.h"

#include "distance_memo.h"

#define MEMO_MAX_ENTRIES	4096
#define MEMO_MAX_BYTES		(8 * 1024 * 1024)
/* stored forms of a query detoasted to compare, per scan */
#define MEMO_MAX_QUERY_TRIES	16

typedef struct MemoEntry
{
	uint64		hash;
	Size		len;			/* 0: empty slot */
	const char *bytes;
	double		dist;
} MemoEntry;

struct QdbDistanceMemo
{
	QdbDistanceMemo *next;		/* open memos of this backend */
	FmgrInfo   *flinfo;			/* the scan's own: only its calls record */
	Oid			fn_oid;
	PGFunction	fn_addr;
	const struct varlena *query;	/* plain (4-byte header, not compressed) */
	const char *raw_query;		/* stored bytes known to hold query, or NULL */
	Size		raw_query_len;
	int			raw_query_tries;	/* stored queries detoasted to compare */
	MemoryContext cxt;
	MemoryContext entry_cxt;	/* slots and copies; NULL until the first entry */
	int			expected;		/* entries the walk may make */
	MemoEntry  *slots;			/* open addressing, cap a power of 2 */
	uint32		cap;
	int			nentries;
	Size		nbytes;
	MemoryContextCallback cb;
};

static QdbDistanceMemo *open_memos = NULL;
/* the memo of the rerank call in progress, else NULL */
static QdbDistanceMemo *recording = NULL;

static void
unregister_memo(void *arg)
{
	QdbDistanceMemo *memo = arg;
	QdbDistanceMemo **p;

	for (p = &open_memos; *p != NULL; p = &(*p)->next)
	{
		if (*p == memo)
		{
			*p = memo->next;
			break;
		}
	}
	if (recording == memo)
		recording = NULL;
}

/*
 * The bytes that identify a stored value, or NULL for a value that is not
 * worth keeping (plain in the tuple) or not safe to key (a pointer to
 * memory, as an expanded or indirect datum is).
 */
static const char *
value_key(Datum value, Size *len)
{
	const char *p = DatumGetPointer(value);

	if (p == NULL)
		return NULL;
	if (VARATT_IS_COMPRESSED(p) || VARATT_IS_EXTERNAL_ONDISK(p))
	{
		*len = VARSIZE_ANY(p);
		return p;
	}
	return NULL;
}

/*
 * A memo for distances by flinfo's function (a copy that lives as long as
 * the scan, used only by it) to query (detoasted; it must stay valid and
 * unchanged while cxt lives), unlinked when cxt is reset or deleted.
 * raw_query is the query as the scan key held it.  NULL when the query is
 * not a plain varlena (then nothing is kept).
 */
QdbDistanceMemo *
QdbDistanceMemoCreate(MemoryContext cxt, FmgrInfo *flinfo, Datum raw_query,
					  const struct varlena *query)
{
	QdbDistanceMemo *memo;
	const char *raw;
	Size		len;

	if (query == NULL || !VARATT_IS_4B_U(query))
		return NULL;
	memo = MemoryContextAllocZero(cxt, sizeof(QdbDistanceMemo));
	memo->flinfo = flinfo;
	memo->fn_oid = flinfo->fn_oid;
	memo->fn_addr = flinfo->fn_addr;
	memo->query = query;
	memo->cxt = cxt;
	raw = value_key(raw_query, &len);
	if (raw != NULL)
	{
		memo->raw_query = memcpy(MemoryContextAlloc(cxt, len), raw, len);
		memo->raw_query_len = len;
	}
	memo->cb.func = unregister_memo;
	memo->cb.arg = memo;
	MemoryContextRegisterResetCallback(cxt, &memo->cb);
	memo->next = open_memos;
	open_memos = memo;
	return memo;
}

/* Forgets every entry: a new batch, which may re-score up to expected rows. */
void
QdbDistanceMemoClear(QdbDistanceMemo *memo, int expected)
{
	if (memo == NULL)
		return;
	if (memo->entry_cxt != NULL)
		MemoryContextReset(memo->entry_cxt);
	memo->slots = NULL;
	memo->cap = 0;
	memo->nentries = 0;
	memo->nbytes = 0;
	memo->expected = Min(expected, MEMO_MAX_ENTRIES);
}

/* FNV-1a over 8-byte words: a filter before the full comparison */
static uint64
key_hash(const char *p, Size len)
{
	uint64		h = UINT64CONST(0xcbf29ce484222325) ^ len;
	Size		i;

	for (i = 0; i + 8 <= len; i += 8)
	{
		uint64		w;

		memcpy(&w, p + i, 8);
		h = (h ^ w) * UINT64CONST(0x100000001b3);
	}
	for (; i < len; i++)
		h = (h ^ (uint8) p[i]) * UINT64CONST(0x100000001b3);
	return h ^ (h >> 29);
}

/* The slot holding key, or the empty slot where it would go */
static MemoEntry *
find_slot(const QdbDistanceMemo *memo, uint64 h, const char *key, Size len)
{
	uint32		mask = memo->cap - 1;
	uint32		i = (uint32) h & mask;

	for (;;)
	{
		MemoEntry  *e = &memo->slots[i];

		if (e->len == 0 ||
			(e->hash == h && e->len == len && memcmp(e->bytes, key, len) == 0))
			return e;
		i = (i + 1) & mask;
	}
}

static bool
plain_equal(const QdbDistanceMemo *memo, const struct varlena *q)
{
	return VARSIZE(q) == VARSIZE(memo->query) &&
		memcmp(q, memo->query, VARSIZE(q)) == 0;
}

/*
 * The query plain and equal to the memo's, or stored as bytes known to hold
 * it.  The executor may pass the query still stored (a TOAST pointer or
 * compressed: a query read from a table), where the scan key had it
 * detoasted; the first few such are detoasted and compared, and stored
 * bytes that hold the query are remembered.
 */
static bool
same_query(QdbDistanceMemo *memo, Datum query)
{
	const struct varlena *q = (const struct varlena *) DatumGetPointer(query);
	struct varlena *plain;
	const char *raw;
	Size		len;
	bool		equal;

	if (q == NULL)
		return false;
	if (VARATT_IS_4B_U(q))
		return plain_equal(memo, q);
	raw = value_key(query, &len);
	if (raw == NULL)
		return false;
	if (memo->raw_query != NULL && len == memo->raw_query_len &&
		memcmp(raw, memo->raw_query, len) == 0)
		return true;
	if (memo->raw_query_tries >= MEMO_MAX_QUERY_TRIES)
		return false;
	memo->raw_query_tries++;
	plain = detoast_attr((struct varlena *) q);
	equal = VARATT_IS_4B_U(plain) && plain_equal(memo, plain);
	pfree(plain);
	if (equal)
	{
		memo->raw_query = memcpy(MemoryContextAlloc(memo->cxt, len), raw, len);
		memo->raw_query_len = len;
	}
	return equal;
}

/* The call's function and query are the memo's */
static bool
memo_matches(QdbDistanceMemo *memo, FunctionCallInfo fcinfo)
{
	return fcinfo->flinfo != NULL && fcinfo->flinfo->fn_oid == memo->fn_oid &&
		fcinfo->flinfo->fn_addr == memo->fn_addr &&
		same_query(memo, PG_GETARG_DATUM(1));
}

/*
 * In a distance function, before its arguments are detoasted: the distance
 * of argument 0 to argument 1 if an open scan's rerank computed it.
 */
bool
QdbDistanceMemoFind(FunctionCallInfo fcinfo, double *dist)
{
	QdbDistanceMemo *memo;
	const char *key;
	Size		len;
	uint64		h = 0;
	bool		hashed = false;

	if (open_memos == NULL || fcinfo->nargs < 2 ||
		PG_ARGISNULL(0) || PG_ARGISNULL(1))
		return false;
	key = value_key(PG_GETARG_DATUM(0), &len);
	if (key == NULL)
		return false;
	for (memo = open_memos; memo != NULL; memo = memo->next)
	{
		MemoEntry  *e;

		/* the rerank's own calls have nothing to find */
		if (memo->nentries == 0 || memo == recording || !memo_matches(memo, fcinfo))
			continue;
		if (!hashed)
		{
			h = key_hash(key, len);
			hashed = true;
		}
		e = find_slot(memo, h, key, len);
		if (e->len != 0)
		{
			*dist = e->dist;
			return true;
		}
	}
	return false;
}

/* Keeps dist under the stored bytes key[0 .. len) unless full or kept. */
static void
keep_entry(QdbDistanceMemo *memo, const char *key, Size len, double dist)
{
	uint64		h;
	MemoEntry  *e;

	if (memo->nentries >= memo->expected || memo->nbytes + len > MEMO_MAX_BYTES)
		return;
	if (memo->slots == NULL)
	{
		if (memo->entry_cxt == NULL)
			memo->entry_cxt = AllocSetContextCreate(memo->cxt, "quantumdb distance memo",
													ALLOCSET_DEFAULT_SIZES);
		memo->cap = 16;
		while (memo->cap < 2 * (uint32) memo->expected)
			memo->cap *= 2;
		memo->slots = MemoryContextAllocZero(memo->entry_cxt,
											 sizeof(MemoEntry) * memo->cap);
	}
	h = key_hash(key, len);
	e = find_slot(memo, h, key, len);
	if (e->len != 0)
		return;					/* the same stored value twice */
	e->bytes = memcpy(MemoryContextAlloc(memo->entry_cxt, len), key, len);
	e->len = len;
	e->hash = h;
	e->dist = dist;
	memo->nentries++;
	memo->nbytes += len;
}

/* In a distance function, after computing dist: kept if the rerank asked. */
void
QdbDistanceMemoKeep(FunctionCallInfo fcinfo, double dist)
{
	QdbDistanceMemo *memo = recording;
	const char *key;
	Size		len;

	if (memo == NULL || fcinfo->flinfo != memo->flinfo ||
		PG_ARGISNULL(0) || PG_ARGISNULL(1))
		return;
	key = value_key(PG_GETARG_DATUM(0), &len);
	if (key != NULL)
		keep_entry(memo, key, len, dist);
}

/*
 * proc(a, b) of an operator class's distance function (support function 1),
 * whose NULL result is an ERROR with an errcode: FunctionCall2Coll's own is
 * XX000, "function N returned NULL".  A sequential scan sorts a NULL
 * distance last; the index cannot place a row without one (session 58's
 * hunt, /work/runs/hunt-s58a.md F1; only a superuser makes such a class).
 */
double
QdbCallDistance(FmgrInfo *proc, Oid collation, Datum a, Datum b)
{
	LOCAL_FCINFO(fcinfo, 2);
	Datum		result;

	InitFunctionCallInfoData(*fcinfo, proc, 2, collation, NULL, NULL);
	fcinfo->args[0].value = a;
	fcinfo->args[0].isnull = false;
	fcinfo->args[1].value = b;
	fcinfo->args[1].isnull = false;
	result = FunctionCallInvoke(fcinfo);
	if (fcinfo->isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("distance function %s returned NULL", format_procedure(proc->fn_oid)),
				 errhint("The distance function of a quantumdb operator class must return a number for every pair of vectors it is given.")));
	return DatumGetFloat8(result);
}

/*
 * The rerank's call of proc (the memo's FmgrInfo) on (value, query), the
 * result kept in memo (NULL: a plain call) by a function that keeps results.
 * value is the row's stored value, or what the caller detoasted it to:
 * then the result is kept here, under the stored bytes (stored), which are
 * what the executor's own call will pass.
 */
double
QdbDistanceMemoCall(QdbDistanceMemo *memo, FmgrInfo *proc, Oid collation,
					Datum stored, Datum value, Datum query)
{
	double		d;

	/*
	 * An error leaves recording set: harmless, as only calls through the
	 * scan's own FmgrInfo record, and the memo's reset callback clears it.
	 */
	recording = memo;
	d = QdbCallDistance(proc, collation, value, query);
	recording = NULL;
	if (memo != NULL && value != stored)
	{
		Size		len;
		const char *key = value_key(stored, &len);

		if (key != NULL)
			keep_entry(memo, key, len, d);
	}
	return d;
}
