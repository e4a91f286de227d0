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

#include <math.h>
#include <unistd.h>

#include "access/xact.h"
#include "commands/progress.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "blas_load.h"
#include "compressor.h"
#include "neural.h"
#include "qdb_internal.h"
#include "rq.h"
#include "task_pool.h"

#define CUDA_LIBRARY	"quantumdb_cuda.so"

typedef struct TrainProgress
{
	const char *name;
	const char *last_stage;
	double		last_notice;
	QdbTrainingLog log;			/* run 0: no training log */
	ErrorData  *cancel;			/* a cancel caught while logging, thrown later */
	QdbTrainHook *hook;			/* the caller's, or NULL */
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
			char		what[32];

			snprintf(what, sizeof(what), "epoch %d", s->iter);
			QdbTrainingLogLost(&p->log, what, edata->message);
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
 * frames are below it, and while the product quantizer's threads run it is
 * called from qdb_run_tasks with those threads still working on its stack
 * and memory.  errfinish() ends a NOTICE with CHECK_FOR_INTERRUPTS(), which
 * would raise a cancel or statement_timeout arriving meanwhile right here;
 * with interrupts held around each NOTICE, the check below sees it instead,
 * the trainer stops and the caller raises it once the trainer has returned.
 */
static int
train_progress(const QdbEpochStats *s, void *arg)
{
	TrainProgress *p = arg;
	const QdbNeuralEpoch *e = s->neural;
	bool		changed = p->last_stage == NULL || strcmp(p->last_stage, s->stage) != 0;

	if (QueryCancelPending || ProcDiePending || p->cancel)
		return 1;
	if (p->hook && p->hook->stop && !p->hook->stopped && p->hook->stop(s, p->hook->arg))
		p->hook->stopped = true;
	/* CREATE INDEX's training: the stage's steps move its progress view */
	if (p->hook && p->hook->progress_view && !s->heartbeat && s->iters > 0)
	{
		const int	params[2] = {PROGRESS_CREATEIDX_TUPLES_TOTAL, PROGRESS_CREATEIDX_TUPLES_DONE};
		const int64 values[2] = {s->iters, Min(s->iter, s->iters)};

		pgstat_progress_update_multi_param(2, params, values);
	}
	if (p->hook && p->hook->stopped)
		return 1;
	if (p->hook && p->hook->quiet)
		return 0;
	if (e)
	{
		HOLD_INTERRUPTS();
		ereport(NOTICE,
				(errmsg("training \"%s\": epoch %d/%d on %s: loss %.4g (reconstruction %.4g, cluster %.4g, diversity %.4g, commitment %.4g, triplet %.4g), code entropy %.2f bits, validation recall %.4f%s, %.0f samples/s",
						p->name, s->iter, s->iters, e->device, e->total, e->recon,
						e->cluster, e->diversity, e->commit, e->triplet, e->code_entropy,
						e->val_recall, e->best ? " (best)" : "", e->samples_per_sec)));
		RESUME_INTERRUPTS();
		/* its own subtransaction catches whatever it raises, a cancel too */
		if (p->log.run > 0)
			log_epoch(p, s);
		p->last_notice = s->seconds;
	}
	else if (!s->heartbeat &&
			 (changed || s->iter == s->iters || s->seconds - p->last_notice >= 1.0))
	{
		HOLD_INTERRUPTS();
		ereport(NOTICE,
				(errmsg("training \"%s\": %s %d/%d, %s %.6g, %.1f s",
						p->name, s->stage, s->iter, s->iters,
						s->measure ? s->measure : "mean squared error", s->loss, s->seconds)));
		RESUME_INTERRUPTS();
		p->last_notice = s->seconds;
	}
	if (!s->heartbeat)
		p->last_stage = s->stage;
	return (QueryCancelPending || ProcDiePending || p->cancel) ? 1 : 0;
}

typedef struct BackendHandle
{
	QdbBackend *backend;
} BackendHandle;

/* Memory-context reset callback: the backend frees what it holds. */
static void
close_backend(void *arg)
{
	BackendHandle *h = arg;

	qdb_backend_close(h->backend);
	h->backend = NULL;
}

/* Opens the cuda backend, or says why not in err; QDB_OK or a status. */
static int
open_cuda(BackendHandle *h, const QdbAlloc *alloc, char *err, size_t errlen)
{
	char		path[MAXPGPATH];
	const QdbNeuralOps *ops;
	int			rc;

	/*
	 * No NVIDIA device node (nor WSL's): no GPU to find, so the CUDA
	 * libraries are not loaded at all.  cuBLAS maps hundreds of megabytes
	 * into the backend, and under an address-space limit (ulimit -v) its
	 * loader crashed the backend, and with it the server (session 61's
	 * memory hunt), on a machine without a GPU.
	 */
	if (access("/dev/nvidiactl", F_OK) != 0 && access("/dev/dxg", F_OK) != 0)
	{
		snprintf(err, errlen, "There is no /dev/nvidiactl (nor /dev/dxg): no NVIDIA driver, so the CUDA libraries were not loaded.");
		return QDB_ERR_NO_DEVICE;
	}
	snprintf(path, sizeof(path), "%s/%s", pkglib_path, CUDA_LIBRARY);
	rc = qdb_cuda_backend(path, &ops, err, errlen);
	if (rc != QDB_OK)
		return rc;
	return qdb_backend_open(&h->backend, ops, alloc, err, errlen);
}

/* Why open_cuda failed, in the words of the ERROR or NOTICE that says so. */
static const char *
cuda_unavailable(int rc)
{
	switch (rc)
	{
		case QDB_ERR_NO_DEVICE:
			return "no CUDA device is present";
		case QDB_ERR_UNSUPPORTED:
			return "the CUDA backend is not installed";
		default:
			return qdb_status_string(rc);	/* a device failure, out of memory */
	}
}

/*
 * The memory a training allocates: bytes per sample row (the sample itself
 * included) and fixed bytes, for rows of dim floats.  Measured as the peak
 * of the trainer's allocations (trainer_glue.c's QdbLimitedAlloc) at 1,000
 * and 3,900 rows of 48, 192 and 784 dimensions, default settings:
 *   pq      2.1-2.3 row sizes per row,  1.1-2.1 MB fixed
 *   opq     3.0-3.3 row sizes per row,  2.0 / 8.1 / 49.7 MB fixed
 *   neural  3.0-3.6 row sizes per row,  57 / 72 / 163 MB fixed, most of it
 *           the Gumbel activations (3 x batch_size rows x 256 centroids x
 *           M, several copies) and four copies of the parameters
 * and train()'s validation (adc.c's qdb_adc_recall) 4 MB of blocked dot
 * products.  The formulas below are at or above every measurement.
 */
static void
training_memory(const QdbTrainConfig *cfg, int dim, double *per_row, double *fixed,
				double *per_batch_row)
{
	const double mb = 1024.0 * 1024.0;
	double		row = sizeof(float) * (double) dim;
	QdbTrainConfig shaped = *cfg;
	double		t;
	double		h;
	double		square = 6 * mb + 20.0 * sizeof(float) * dim * (double) dim;

	shaped.dim = dim;
	t = qdb_config_dim_pq(&shaped);
	h = cfg->hidden > 0 ? cfg->hidden : Min(2 * t, 1024);
	*per_batch_row = 0;

	switch (cfg->kind)
	{
		case QDB_KIND_PQ:
			*per_row = 3.5 * row;
			*fixed = 1.5 * mb + 1024.0 * dim + (t < dim ? square : 0);
			break;
		case QDB_KIND_OPQ:
			*per_row = 4.5 * row;
			*fixed = square;
			break;
		case QDB_KIND_RQ:
			{
				/* codewords of the joint refit's normal equations (rq.c) */
				double		K = 256.0 * (cfg->M - (cfg->metric != QDB_METRIC_IP));

				double		B = qdb_rq_beam(cfg);
				bool		aniso = qdb_rq_config_anisotropic(cfg);

				/* the sample, its transform and residuals, B partial codes a row */
				*per_row = 1.5 * row + 2.0 * sizeof(float) * t + (B + 1) * (cfg->M + 4);
				*fixed = 2 * mb + sizeof(float) * (double) cfg->M * 256 * t * 2 +
					256.0 * B * sizeof(float) * (2 * t + 256) + (t < dim ? square : 0);
				/* training's beam steps: the tables and a block per thread (rq_lut.c) */
				*fixed += sizeof(float) * 65536.0 * (cfg->M + 2.0 * qdb_thread_count());
				if (K <= 8192)
					*fixed += sizeof(float) * (K * K + K * t);
				/* eta: each row's direction and r . u; the refit's six K x t arrays */
				if (aniso)
				{
					*per_row += sizeof(float) * (t + B);
					if (K <= 8192)
						*fixed += sizeof(float) * 6 * K * t;
				}
			}
			break;
		default:
			*per_row = 5.0 * row + 3.0 * sizeof(int) * cfg->k_neighbors;
			*fixed = 2 * mb + 0.1 * mb * dim + 4.0 * sizeof(float) * (dim * h + h * t + t * dim);

			/*
			 * the Gumbel activations of a batch, which is batch_size rows or
			 * all there are (neural_train.c), of no more sub-quantizers than
			 * the dimensions they quantize: more are a 22023 after sampling
			 */
			*per_batch_row = 12288.0 * Min(cfg->M, cfg->dim_pq > 0 ? cfg->dim_pq : dim);
			break;
	}
	/* train()'s validation: 256 queries against 4,096 rows at a time */
	*fixed += 4.5 * mb + 256.0 * row;
}

/* the bytes training takes from maintenance_work_mem: a tenth kept for what the estimate misses */
static double
training_budget(void)
{
	return (double) maintenance_work_mem * 1024.0 / 1.1;
}

/* MB a training of cfg on rows rows of dim floats takes, sample included */
static double
training_mb(const QdbTrainConfig *cfg, int dim, int rows)
{
	double		per_row,
				fixed,
				per_batch_row;

	training_memory(cfg, dim, &per_row, &fixed, &per_batch_row);
	return (fixed + per_row * rows + per_batch_row * Min(rows, cfg->batch_size)) /
		(1024.0 * 1024.0);
}

/* the maintenance_work_mem setting, in MB, that such a training needs */
static double
setting_mb(const QdbTrainConfig *cfg, int dim, int rows)
{
	return ceil(1.1 * training_mb(cfg, dim, rows));
}

/* how many sample rows of dim floats fit beside a training of cfg (may be < 0) */
static double
rows_that_fit(const QdbTrainConfig *cfg, int dim)
{
	double		per_row,
				fixed,
				per_batch_row,
				rows;

	training_memory(cfg, dim, &per_row, &fixed, &per_batch_row);
	/* a whole batch and more rows, else fewer rows than a batch, each in it */
	rows = floor((training_budget() - fixed - per_batch_row * cfg->batch_size) / per_row);
	if (rows >= cfg->batch_size)
		return rows;
	return floor((training_budget() - fixed) / (per_row + per_batch_row));
}

/*
 * How many of want sample rows of dim floats a training of cfg may take
 * within maintenance_work_mem: want when they fit, else fewer (*short_cfg,
 * when not NULL, is then cfg, for the NOTICE the sampler gives when the
 * table had more rows than it kept: QdbSampleShortNotice), or an
 * ERROR that says what to raise when not even the fewest the training
 * needs (QDB_KSUB rows) fit.  what names the training ("training \"c\"",
 * "index \"i\"").
 */
int
QdbSampleRowsThatFit(const QdbTrainConfig *cfg, int dim, int want, const char *what,
					 const QdbTrainConfig **short_cfg)
{
	double		fit = rows_that_fit(cfg, dim);

	if (short_cfg)
		*short_cfg = NULL;
	if (fit >= want)
		return want;
	if (fit < QDB_KSUB)
	{
		/* the hint makes room for more rows than the fewest: say both */
		int			hint_rows = Max(QDB_KSUB, Min(want, 10 * QDB_KSUB));

		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("maintenance_work_mem is too small for %s", what),
				 errdetail("Kind %s needs about %.0f MB for %d rows of %d dimensions, the fewest it trains on, and about %.0f MB for %d; maintenance_work_mem is %d kB.",
						   qdb_kind_name(cfg->kind), training_mb(cfg, dim, QDB_KSUB),
						   QDB_KSUB, dim, training_mb(cfg, dim, hint_rows), hint_rows,
						   maintenance_work_mem),
				 errhint("SET maintenance_work_mem = '%.0fMB' (or more) first: room for %d rows, and a tenth to spare.",
						 setting_mb(cfg, dim, hint_rows), hint_rows)));
	}
	if (short_cfg)
		*short_cfg = cfg;
	return (int) fit;
}

/*
 * The same for the auto-tuner's kinds (one config each): a kind that cannot
 * take min_rows rows beside its training is left out (left_out[i]), with
 * a NOTICE that says what it needs, while another remains; the sample is
 * then sized for the hungriest kind kept.  When none can take min_rows,
 * an ERROR says what the least hungry one needs.
 */
int
QdbSampleRowsForKinds(const QdbTrainConfig *cfgs, int ncfgs, int dim, int want,
					  int min_rows, bool *left_out, const char *what,
					  const QdbTrainConfig **short_cfg)
{
	int			least = 0,
				hungriest = -1;
	double		fit_least = -1,
				fit_kept = 0;

	for (int i = 0; i < ncfgs; i++)
	{
		double		fit = rows_that_fit(&cfgs[i], dim);

		left_out[i] = fit < min_rows;
		if (fit > fit_least)
			fit_least = fit, least = i;
		if (!left_out[i] && (hungriest < 0 || fit < fit_kept))
			fit_kept = fit, hungriest = i;
	}
	if (hungriest < 0)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("maintenance_work_mem is too small for %s", what),
				 errdetail("The kind searched that needs the least, %s, needs about %.0f MB for %d rows of %d dimensions; maintenance_work_mem is %d kB.",
						   qdb_kind_name(cfgs[least].kind),
						   training_mb(&cfgs[least], dim, min_rows), min_rows, dim,
						   maintenance_work_mem),
				 errhint("SET maintenance_work_mem = '%.0fMB' (or more) first.",
						 setting_mb(&cfgs[least], dim, min_rows))));
	for (int i = 0; i < ncfgs; i++)
		if (left_out[i])
		{
			/* the hint makes room for more rows than the fewest: say so */
			int			hint_rows = Max(min_rows, Min(want, 10 * min_rows));

			ereport(NOTICE,
					(errmsg("%s leaves kind %s out: its training on %d rows of %d dimensions needs about %.0f MB, and maintenance_work_mem is %d kB",
							what, qdb_kind_name(cfgs[i].kind), min_rows, dim,
							training_mb(&cfgs[i], dim, min_rows), maintenance_work_mem),
					 errhint("SET maintenance_work_mem = '%.0fMB' to search it too: room for %d rows, and a tenth to spare.",
							 setting_mb(&cfgs[i], dim, hint_rows), hint_rows)));
		}
	return QdbSampleRowsThatFit(&cfgs[hungriest], dim, want, what, short_cfg);
}

/*
 * The sampler's NOTICE when it kept fewer rows than asked, to fit beside a
 * training of cfg (above): want is what it would have kept, the rows asked
 * for or the table's, the fewer (a hint for the rows asked made a table of
 * fewer rows sound larger than it is).
 */
void
QdbSampleShortNotice(const char *what, int kept, int want, const QdbTrainConfig *cfg,
					 int dim)
{
	ereport(NOTICE,
			(errmsg("%s samples %d rows, not %d, to stay within maintenance_work_mem (%d kB)",
					what, kept, want, maintenance_work_mem),
			 errhint("SET maintenance_work_mem = '%.0fMB' to sample all %d rows.",
					 setting_mb(cfg, dim, want), want)));
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
			  const char **device_used, QdbTrainHook *hook)
{
	MemoryContextCallback *cb;
	BackendHandle *h;
	const QdbAlloc *alloc;
	TrainProgress progress = {0};
	char		err[256];
	double		t0,
				seconds;
	int			rc;
	Size		limit;

	/* the trainer's allocations share maintenance_work_mem with the sample */
	limit = (Size) maintenance_work_mem * 1024;
	limit -= Min(limit / 2, (Size) n * cfg->dim * sizeof(float));
	alloc = QdbLimitedAlloc(tcxt, limit);
	h = MemoryContextAllocZero(tcxt, sizeof(BackendHandle));
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
					(errcode(QdbStatusErrcode(rc)),
					 errmsg("cannot train on device \"cuda\": %s", cuda_unavailable(rc)),
					 errdetail_internal("%s", err),
					 rc == QDB_ERR_NO_DEVICE ?
					 errhint("Use device => 'cpu', or 'auto' to use a GPU only when there is one.") :
					 rc == QDB_ERR_UNSUPPORTED ?
					 errhint("It is built only where nvcc was found when the extension was built; use device => 'cpu' or 'auto'.") : 0));
		if (rc != QDB_OK)
		{
			if (!(hook && hook->quiet))
				ereport(NOTICE,
						(errmsg("training \"%s\" on the CPU: %s", name, cuda_unavailable(rc)),
						 errdetail_internal("%s", err)));
			h->backend = NULL;
		}
	}
	else if (device == QDB_DEVICE_CUDA)
		ereport(NOTICE,
				(errmsg("kind %s trains on the CPU; device applies to kind neural",
						qdb_kind_name(cfg->kind))));
	if (h->backend == NULL)
	{
		err[0] = '\0';
		rc = qdb_backend_open(&h->backend, qdb_neural_cpu_ops(), alloc, err, sizeof(err));
		QdbReportStatus(rc, "could not open the cpu backend", err[0] ? err : NULL);
	}
	*device_used = qdb_backend_name(h->backend);

	progress.name = name;
	progress.hook = hook;
	if (hook)
		hook->stopped = false;
	progress.log.run = log_run;
	progress.log.compressor = name;
	memset(model, 0, sizeof(*model));
	QdbBlasPrepare();
	t0 = qdb_now();
	rc = qdb_backend_train(h->backend, x, n, cfg, model, train_progress, &progress);
	seconds = qdb_now() - t0;
	if (progress.cancel)
		ReThrowError(progress.cancel);
	CHECK_FOR_INTERRUPTS();
	QdbTrainingLogEnd(&progress.log);
	if (hook && hook->stopped)
	{
		/* the caller asked to stop: no model, and no ERROR */
		qdb_model_free(model);
		memset(model, 0, sizeof(*model));
		return seconds;
	}
	if (rc == QDB_ERR_NOMEM && QdbAllocHitLimit(alloc))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("training \"%s\" needs more memory than maintenance_work_mem allows", name),
				 errdetail("maintenance_work_mem is %d kB, of which the sample of %d rows of %d dimensions takes %zu kB.",
						   maintenance_work_mem, n, cfg->dim,
						   (Size) n * cfg->dim * sizeof(float) / 1024),
				 errhint("Raise maintenance_work_mem, or lower sample (or target_dim or hidden).")));
	if (rc != QDB_OK)
	{
		const char *detail = qdb_backend_last_error(h->backend);

		strlcpy(err, detail, sizeof(err));
		QdbReportStatus(rc, "training failed", err[0] ? err : NULL);
	}
	return seconds;
}
