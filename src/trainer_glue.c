/*
 * trainer_glue.c
 *	  The seam between the extension and the trainer core: allocation from a
 *	  memory context and the mapping of status codes to errcodes.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/memutils.h"

#include "compressor.h"

/* From the context st, or CurrentMemoryContext when st is NULL. */
static void *
context_alloc(size_t size, void *st)
{
	/* NO_OOM: the trainer reports QDB_ERR_NOMEM instead of a longjmp */
	return MemoryContextAllocExtended(st ? (MemoryContext) st : CurrentMemoryContext,
									  size, MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
}

static void
context_free(void *p, void *st)
{
	pfree(p);
}

const QdbAlloc qdb_palloc_alloc = {context_alloc, context_free, NULL};

/* A QdbAlloc that counts what is in use and refuses past a limit. */
typedef struct LimitedAlloc
{
	QdbAlloc	a;				/* first: the trainer sees only this */
	MemoryContext cxt;
	Size		used;
	Size		limit;
	bool		hit;
} LimitedAlloc;

static void *
limited_alloc(size_t size, void *st)
{
	LimitedAlloc *l = st;
	void	   *p;

	if (size > l->limit || l->used > l->limit - size)
	{
		l->hit = true;
		return NULL;
	}
	p = MemoryContextAllocExtended(l->cxt, size, MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
	if (p)
		l->used += GetMemoryChunkSpace(p);
	return p;
}

static void
limited_free(void *p, void *st)
{
	LimitedAlloc *l = st;
	Size		space = GetMemoryChunkSpace(p);

	l->used -= Min(space, l->used);
	pfree(p);
}

const QdbAlloc *
QdbLimitedAlloc(MemoryContext cxt, Size limit)
{
	LimitedAlloc *l = MemoryContextAllocZero(cxt, sizeof(LimitedAlloc));

	l->a.alloc = limited_alloc;
	l->a.free = limited_free;
	l->a.st = l;
	l->cxt = cxt;
	l->limit = limit;
	return &l->a;
}

/* Whether a QdbLimitedAlloc refused an allocation for its limit. */
bool
QdbAllocHitLimit(const QdbAlloc *a)
{
	return a->alloc == limited_alloc && ((const LimitedAlloc *) a->st)->hit;
}

/* A QdbAlloc drawing from cxt, itself allocated in cxt. */
const QdbAlloc *
QdbContextAlloc(MemoryContext cxt)
{
	QdbAlloc   *a = MemoryContextAlloc(cxt, sizeof(QdbAlloc));

	a->alloc = context_alloc;
	a->free = context_free;
	a->st = cxt;
	return a;
}

/*
 * The SQLSTATE of a trainer status: the one place that maps them.  QDB_OK
 * has none (0).
 */
int
QdbStatusErrcode(int status)
{
	switch (status)
	{
		case QDB_OK:
			return 0;
		case QDB_ERR_NOMEM:
			return ERRCODE_OUT_OF_MEMORY;
		case QDB_ERR_ARG:
			return ERRCODE_INVALID_PARAMETER_VALUE;
		case QDB_ERR_DATA:
			return ERRCODE_DATA_EXCEPTION;
		case QDB_ERR_FORMAT:
		case QDB_ERR_CHECKSUM:
		case QDB_ERR_VERSION:
			return ERRCODE_DATA_CORRUPTED;
		case QDB_ERR_CANCELLED:
			return ERRCODE_QUERY_CANCELED;
		case QDB_ERR_NO_DEVICE:
		case QDB_ERR_UNSUPPORTED:
			return ERRCODE_FEATURE_NOT_SUPPORTED;
		default:
			return ERRCODE_EXTERNAL_ROUTINE_EXCEPTION;
	}
}

/* Raises the ERROR for a failed trainer call; returns on QDB_OK. */
void
QdbReportStatus(int status, const char *context, const char *detail)
{
	if (status == QDB_OK)
		return;
	/* a cancel the trainer saw: the pending interrupt's own ERROR first */
	if (status == QDB_ERR_CANCELLED)
		CHECK_FOR_INTERRUPTS();
	ereport(ERROR,
			(errcode(QdbStatusErrcode(status)),
			 errmsg("%s: %s", context, qdb_status_string(status)),
			 detail ? errdetail_internal("%s", detail) : 0));
}
