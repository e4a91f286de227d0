/*
 * train_backend.c
 *	  Runs one training on the backend the device setting picks: progress
 *	  NOTICEs, one NOTICE and one training-log row per neural epoch, a
 *	  query cancel as a clean stop, and the backend closed on every exit.
 *
 * device 'cuda' loads $libdir/quantumdb_cuda.so (built only where nvcc
 * was found) and needs a GPU: either missing is an ERROR with a hint.
 * 'auto' tries the same and, failing, says in a NOTICE that it trains on
 * the CPU.  pq and opq always train on the CPU.
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "neural.h"
#include "qdb_internal.h"
#include "quantumdb.h"

#define CUDA_LIBRARY	"quantumdb_cuda.so"

typedef struct TrainProgress
{
	const char *name;
	const char *last_stage;
	double		last_notice;
	QdbTrainingLog log;			/* run 0: no training log */
	ErrorData  *cancel;			/* a cancel caught while logging, thrown later */
} TrainProgress;

/*
 * Writes an epoch's log row in a subtransaction: a failure is a WARNING,
 * not an ERROR thrown through the trainer's frames.  A cancel caught here
 * is kept in p->cancel and thrown once the trainer has returned.
 */
static void
log_epoch(TrainProgress *p, const QdbEpochStats *s)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		(void) QdbTrainingLogWrite(&p->log, s);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED && p->cancel == NULL)
			p->cancel = edata;
		else
		{
			QdbTrainingLogLost(&p->log, s->iter, edata->message);
			FreeErrorData(edata);
		}
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	CurrentResourceOwner = oldowner;
}

/*
 * One NOTICE per stage change, stage end or second, one per neural epoch
 * (plus its log row); nonzero on cancel.  Never throws: the trainer's own
 * frames are below it.
 */
static int
train_progress(const QdbEpochStats *s, void *arg)
{
	TrainProgress *p = arg;
	const QdbNeuralEpoch *e = s->neural;
	bool		changed = p->last_stage == NULL || strcmp(p->last_stage, s->stage) != 0;

	if (QueryCancelPending || ProcDiePending || p->cancel)
		return 1;
	if (e)
	{
		ereport(NOTICE,
				(errmsg("training \"%s\": epoch %d/%d on %s: loss %.4g (reconstruction %.4g, cluster %.4g, diversity %.4g, commitment %.4g, triplet %.4g), code entropy %.2f bits, validation recall %.4f%s, %.0f samples/s",
						p->name, s->iter, s->iters, e->device, e->total, e->recon,
						e->cluster, e->diversity, e->commit, e->triplet, e->code_entropy,
						e->val_recall, e->best ? " (best)" : "", e->samples_per_sec)));
		if (p->log.run > 0)
			log_epoch(p, s);
		p->last_notice = s->seconds;
	}
	else if (!s->heartbeat &&
			 (changed || s->iter == s->iters || s->seconds - p->last_notice >= 1.0))
	{
		ereport(NOTICE,
				(errmsg("training \"%s\": %s %d/%d, mean squared error %.6g, %.1f s",
						p->name, s->stage, s->iter, s->iters, s->loss, s->seconds)));
		p->last_notice = s->seconds;
	}
	if (!s->heartbeat)
		p->last_stage = s->stage;
	return (QueryCancelPending || ProcDiePending || p->cancel) ? 1 : 0;
}

typedef struct BackendHandle
{
	const QdbBackend *backend;
	void	   *ctx;
} BackendHandle;

/* Memory-context reset callback: the backend frees what it holds. */
static void
close_backend(void *arg)
{
	BackendHandle *h = arg;

	if (h->ctx)
		h->backend->close(h->ctx);
	h->ctx = NULL;
}

/* Opens the cuda backend, or says why not in err; QDB_OK or a status. */
static int
open_cuda(BackendHandle *h, const QdbAlloc *alloc, char *err, size_t errlen)
{
	char		path[MAXPGPATH];
	const QdbBackend *b;
	int			rc;

	snprintf(path, sizeof(path), "%s/%s", pkglib_path, CUDA_LIBRARY);
	rc = qdb_cuda_backend(path, &b, err, errlen);
	if (rc != QDB_OK)
		return rc;
	rc = b->open(&h->ctx, alloc, err, errlen);
	if (rc == QDB_OK)
		h->backend = b;
	return rc;
}

/*
 * Trains a compressor on x (n rows of cfg->dim) with the model's arrays in
 * tcxt, whose reset closes the backend (also when an ERROR unwinds).
 * log_run > 0 writes neural epochs to quantumdb.training_log.  Returns the
 * training time in seconds; *device_used names the backend.
 */
double
QdbTrainModel(const char *name, const float *x, int n, QdbTrainConfig *cfg,
			  QdbDevice device, int64 log_run, MemoryContext tcxt, QdbModel *model,
			  const char **device_used)
{
	MemoryContextCallback *cb;
	BackendHandle *h;
	const QdbAlloc *alloc;
	TrainProgress progress = {0};
	char		err[256];
	double		t0,
				seconds;
	int			rc;

	alloc = QdbContextAlloc(tcxt);
	h = MemoryContextAllocZero(tcxt, sizeof(BackendHandle));
	h->backend = qdb_cpu_backend();
	cb = MemoryContextAlloc(tcxt, sizeof(MemoryContextCallback));
	cb->func = close_backend;
	cb->arg = h;
	MemoryContextRegisterResetCallback(tcxt, cb);
	err[0] = '\0';

	if (device != QDB_DEVICE_CPU && cfg->kind == QDB_KIND_NEURAL)
	{
		rc = open_cuda(h, alloc, err, sizeof(err));
		if (rc != QDB_OK && device == QDB_DEVICE_CUDA)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot train on device \"cuda\": %s",
							rc == QDB_ERR_NO_DEVICE ? "no CUDA device is present" :
							"the CUDA backend is not installed"),
					 errdetail_internal("%s", err),
					 errhint(rc == QDB_ERR_NO_DEVICE ?
							 "Use device => 'cpu', or 'auto' to use a GPU only when there is one." :
							 "It is built only where nvcc was found when the extension was built; use device => 'cpu' or 'auto'.")));
		if (rc != QDB_OK)
		{
			ereport(NOTICE,
					(errmsg("training \"%s\" on the CPU: %s", name,
							rc == QDB_ERR_NO_DEVICE ? "no CUDA device is present" :
							"the CUDA backend is not installed"),
					 errdetail_internal("%s", err)));
			h->ctx = NULL;
		}
	}
	else if (device == QDB_DEVICE_CUDA)
		ereport(NOTICE,
				(errmsg("kind %s trains on the CPU; device applies to kind neural",
						qdb_kind_name(cfg->kind))));
	if (h->ctx == NULL)
	{
		h->backend = qdb_cpu_backend();
		err[0] = '\0';
		rc = h->backend->open(&h->ctx, alloc, err, sizeof(err));
		QdbReportStatus(rc, "could not open the cpu backend", err[0] ? err : NULL);
	}
	*device_used = h->backend->name;

	progress.name = name;
	progress.log.run = log_run;
	progress.log.compressor = name;
	memset(model, 0, sizeof(*model));
	t0 = qdb_now();
	rc = h->backend->train(h->ctx, x, n, cfg, model, train_progress, &progress);
	seconds = qdb_now() - t0;
	if (progress.cancel)
		ReThrowError(progress.cancel);
	CHECK_FOR_INTERRUPTS();
	QdbTrainingLogEnd(&progress.log);
	if (rc != QDB_OK)
	{
		const char *detail = h->backend->last_error(h->ctx);

		strlcpy(err, detail, sizeof(err));
		QdbReportStatus(rc, "training failed", err[0] ? err : NULL);
	}
	return seconds;
}
