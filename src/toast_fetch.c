/*
 * toast_fetch.c
 *	  Vectors stored out of line, read for a rerank's batch of rows through
 *	  one open TOAST relation and one index scan on it.
 *
 * A vector of more than about 500 floats that does not compress (the
 * embeddings of a language model: 768 or 1536 floats) is stored out of
 * line: the row holds a TOAST pointer, and the value's bytes lie in chunks
 * of the table's TOAST relation, found by its index on (value id, chunk
 * number).  The server's detoasting opens that relation and its indexes,
 * begins an index scan, reads the chunks and closes everything again for
 * every value.  An index scan's rerank detoasts a whole batch of rows (40
 * to 200) one after the other; here the relation, its valid index, the
 * scan and a slot are opened at the batch's first such value and kept
 * until the batch ends (QdbToastFetchEnd), each value being one rescan of
 * the same index scan.  Nothing is kept across calls of the access method:
 * no pin or lock outlives the batch's rerank.
 *
 * The chunks are read and checked as the server reads a whole value (see
 * heap_fetch_toast_slice in the server's heaptoast.c): with the TOAST
 * snapshot, in chunk order, each chunk the size its number says, none
 * missing and none past the last; a violation is the server's
 * ERRCODE_DATA_CORRUPTED error.  A value compressed before it was stored
 * out of line is then decompressed (QdbDetoastDatum).  The server's own
 * path reads an empty value, a pointer to another TOAST relation than the
 * one open (a heap row's pointers all name its table's), a TOAST relation
 * of another table access method than heap (its chunks may be laid out
 * otherwise) and one whose index this backend is rebuilding.
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/heaptoast.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/toast_internals.h"
#include "catalog/index.h"
#include "catalog/pg_am_d.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/fmgroids.h"

#include "compressor.h"
#include "toast_fetch.h"

void
QdbToastFetchInit(QdbToastFetch *f)
{
	memset(f, 0, sizeof(*f));
	f->toastrelid = InvalidOid;
}

/*
 * Opens toastrelid for the batch; false (nothing left open) where the
 * server's path must read it: a TOAST relation of another table access
 * method than heap (whose chunks may be laid out otherwise), or whose index
 * is being rebuilt by this backend.
 */
static bool
open_toast(QdbToastFetch *f, Oid toastrelid)
{
	int			valid;

	f->toastrel = table_open(toastrelid, AccessShareLock);
	if (f->toastrel->rd_rel->relam != HEAP_TABLE_AM_OID)
	{
		table_close(f->toastrel, AccessShareLock);
		f->toastrel = NULL;
		return false;
	}
	valid = toast_open_indexes(f->toastrel, AccessShareLock, &f->toastidxs,
							   &f->num_indexes);
	if (ReindexIsProcessingIndex(RelationGetRelid(f->toastidxs[valid])))
	{
		toast_close_indexes(f->toastidxs, f->num_indexes, AccessShareLock);
		table_close(f->toastrel, AccessShareLock);
		f->toastrel = NULL;
		return false;
	}
	f->toastrelid = toastrelid;
	init_toast_snapshot(&f->snapshot);
	ScanKeyInit(&f->key, (AttrNumber) 1, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(InvalidOid));
	f->scan = index_beginscan(f->toastrel, f->toastidxs[valid], &f->snapshot, 1, 0);
	f->slot = table_slot_create(f->toastrel, NULL);
	return true;
}

void
QdbToastFetchEnd(QdbToastFetch *f)
{
	if (OidIsValid(f->toastrelid))
	{
		ExecDropSingleTupleTableSlot(f->slot);
		index_endscan(f->scan);
		toast_close_indexes(f->toastidxs, f->num_indexes, AccessShareLock);
		table_close(f->toastrel, AccessShareLock);
	}
	QdbToastFetchInit(f);
}

/*
 * Whether f reads the value ptr names, opening the TOAST relation at the
 * batch's first: not an empty value, nor one of a relation the server must
 * read (open_toast), nor of another relation than the one open (rare).
 */
static bool
reads_value(QdbToastFetch *f, const struct varatt_external *ptr)
{
	if (VARATT_EXTERNAL_GET_EXTSIZE(*ptr) == 0 || f->server_path)
		return false;
	if (!OidIsValid(f->toastrelid) && !open_toast(f, ptr->va_toastrelid))
	{
		f->server_path = true;
		return false;
	}
	return f->toastrelid == ptr->va_toastrelid;
}

/* Points the index scan at the chunks of value valueid. */
static void
rescan_value(QdbToastFetch *f, Oid valueid)
{
	f->key.sk_argument = ObjectIdGetDatum(valueid);
	index_rescan(f->scan, &f->key, 1, NULL, 0);
}

/* The chunks of value valueid, attrsize bytes, into result's data. */
static void
read_chunks(QdbToastFetch *f, Oid valueid, int32 attrsize, struct varlena *result)
{
	int32		totalchunks = ((attrsize - 1) / TOAST_MAX_CHUNK_SIZE) + 1;
	int32		expected = 0;
	const char *relname = RelationGetRelationName(f->toastrel);

	rescan_value(f, valueid);
	while (index_getnext_slot(f->scan, ForwardScanDirection, f->slot))
	{
		bool		isnull;
		int32		seq = DatumGetInt32(slot_getattr(f->slot, 2, &isnull));
		Pointer		chunk;
		char	   *data;
		int32		size,
					want;

		if (isnull)
			elog(ERROR, "null chunk number for toast value %u in %s", valueid, relname);
		chunk = DatumGetPointer(slot_getattr(f->slot, 3, &isnull));
		if (isnull)
			elog(ERROR, "null chunk for toast value %u in %s", valueid, relname);
		if (!VARATT_IS_EXTENDED(chunk))
		{
			size = VARSIZE(chunk) - VARHDRSZ;
			data = VARDATA(chunk);
		}
		else if (VARATT_IS_SHORT(chunk))
		{
			size = VARSIZE_SHORT(chunk) - VARHDRSZ_SHORT;
			data = VARDATA_SHORT(chunk);
		}
		else
			elog(ERROR, "found toasted toast chunk for toast value %u in %s",
				 valueid, relname);
		if (seq != expected)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg_internal("unexpected chunk number %d (expected %d) for toast value %u in %s",
									 seq, expected, valueid, relname)));
		if (seq >= totalchunks)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg_internal("unexpected chunk number %d (out of range %d..%d) for toast value %u in %s",
									 seq, 0, totalchunks - 1, valueid, relname)));
		want = seq < totalchunks - 1 ? TOAST_MAX_CHUNK_SIZE
			: attrsize - (totalchunks - 1) * TOAST_MAX_CHUNK_SIZE;
		if (size != want)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg_internal("unexpected chunk size %d (expected %d) in chunk %d of %d for toast value %u in %s",
									 size, want, seq, totalchunks, valueid, relname)));
		memcpy(VARDATA(result) + seq * TOAST_MAX_CHUNK_SIZE, data, size);
		expected++;
	}
	ExecClearTuple(f->slot);
	if (expected != totalchunks)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg_internal("missing chunk number %d for toast value %u in %s",
								 expected, valueid, relname)));
}

/*
 * Batches in a row whose chunks all lay in shared buffers already, after
 * which QdbToastFetchPrefetch looks only every PREFETCH_PROBE-th batch (a
 * backend's: the table it reads from memory today is the same tomorrow).
 */
#define PREFETCH_QUIET	8
#define PREFETCH_PROBE	32
#ifdef USE_PREFETCH
static int	quiet_batches = 0;
static uint32 skipped_batches = 0;
#endif

/*
 * Asks the kernel for the blocks of every chunk of the n values (TOAST
 * pointers, as QdbToastFetchValue takes them) before the first is read, so
 * that chunks not in shared buffers come in parallel rather than one by
 * one (effective_io_concurrency above 0).  It costs an index descent per
 * value, which a table held in shared buffers does not repay: once
 * PREFETCH_QUIET batches in a row found every block there, the backend
 * prefetches only one batch in PREFETCH_PROBE, until one needs a read again.
 */
void
QdbToastFetchPrefetch(QdbToastFetch *f, const Datum *values, int n)
{
#ifdef USE_PREFETCH
	bool		io = false;
	BlockNumber last = InvalidBlockNumber;

	if (effective_io_concurrency <= 0 || n == 0)
		return;
	if (quiet_batches >= PREFETCH_QUIET && ++skipped_batches % PREFETCH_PROBE != 0)
		return;
	for (int i = 0; i < n; i++)
	{
		struct varatt_external ptr;
		ItemPointer tid;

		CHECK_FOR_INTERRUPTS();
		VARATT_EXTERNAL_GET_POINTER(ptr, DatumGetPointer(values[i]));
		if (!reads_value(f, &ptr))
			continue;
		rescan_value(f, ptr.va_valueid);
		while ((tid = index_getnext_tid(f->scan, ForwardScanDirection)) != NULL)
		{
			BlockNumber blk = ItemPointerGetBlockNumber(tid);

			if (blk != last)
				io |= PrefetchBuffer(f->toastrel, MAIN_FORKNUM, blk).initiated_io;
			last = blk;
		}
	}
	quiet_batches = io ? 0 : Min(quiet_batches + 1, PREFETCH_QUIET);
#endif
}

struct varlena *
QdbToastFetchValue(QdbToastFetch *f, Datum d)
{
	struct varlena *attr = (struct varlena *) DatumGetPointer(d);
	struct varatt_external ptr;
	int32		attrsize;
	struct varlena *result;

	if (!VARATT_IS_EXTERNAL_ONDISK(attr))
		return QdbDetoastDatum(d);
	VARATT_EXTERNAL_GET_POINTER(ptr, attr);
	if (!reads_value(f, &ptr))
		return QdbDetoastDatum(d);
	attrsize = VARATT_EXTERNAL_GET_EXTSIZE(ptr);
	result = (struct varlena *) palloc(attrsize + VARHDRSZ);
	if (VARATT_EXTERNAL_IS_COMPRESSED(ptr))
		SET_VARSIZE_COMPRESSED(result, attrsize + VARHDRSZ);
	else
		SET_VARSIZE(result, attrsize + VARHDRSZ);
	read_chunks(f, ptr.va_valueid, attrsize, result);
	if (VARATT_IS_COMPRESSED(result))
	{
		struct varlena *plain = QdbDetoastDatum(PointerGetDatum(result));

		pfree(result);
		result = plain;
	}
	return result;
}
