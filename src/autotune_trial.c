/*
 * autotune_trial.c
 *	  One trial of the auto-tuner: the settings a point of the search space
 *	  stands for, a training on part of the sample, and the score.
 *
 * score = w_quality x quality + w_compression x compression
 *         + w_speed x speed - w_memory x memory, each term in [0, 1]:
 *  - quality: 10-recall@10 of exhaustive ADC for the held-out rows
 *    searching all the training rows (whatever share the trial trained on),
 *    as quantumdb.train reports it;
 *  - compression: 1 - (bytes per row in the index) / (bytes of a float4
 *    vector): the code plus the level-0 neighbour list of m;
 *  - speed: autotune_speed.c;
 *  - memory: the model's bytes / (the model's bytes + the index's bytes
 *    for the table's rows): the share of the index's memory a backend
 *    spends on the model (a wide neural encoder on a small table counts).
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"
#include "utils/json.h"
#include "utils/memutils.h"

#include "autotune.h"
#include "qdb_internal.h"

static const int tune_dims_per_sub[] = {4, 8, 16, 32};
static const int tune_batch[] = {64, 128, 256, 512, 1024};
static const int tune_hidden_mult[] = {1, 2, 4};

#define NCHOICES(a) ((int) lengthof(a))

static void
param(QdbTune *t, QdbTuneParamId id, const char *name, QdbTuneKind kind,
	  double lo, double hi, int nchoices)
{
	QdbTuneParam *p = &t->space[id];

	p->name = name;
	p->kind = kind;
	p->lo = lo;
	p->hi = hi;
	p->nchoices = nchoices;
}

/* The search space, with t->kinds set. */
void
QdbTuneSpaceInit(QdbTune *t)
{
	param(t, TP_KIND, "kind", QDB_TUNE_CHOICE, 0, 0, t->nkinds);
	param(t, TP_DIMS_PER_SUB, "dims_per_subvector", QDB_TUNE_CHOICE, 0, 0,
		  NCHOICES(tune_dims_per_sub));
	param(t, TP_LR, "lr", QDB_TUNE_LOG, 1e-5, 3e-3, 0);
	param(t, TP_BATCH, "batch_size", QDB_TUNE_CHOICE, 0, 0, NCHOICES(tune_batch));
	param(t, TP_W_RECON, "w_reconstruction", QDB_TUNE_FLOAT, 0, 1, 0);
	param(t, TP_W_CLUSTER, "w_cluster", QDB_TUNE_FLOAT, 0, 1, 0);
	param(t, TP_W_DIVERSITY, "w_diversity", QDB_TUNE_FLOAT, 0, 1, 0);
	param(t, TP_W_COMMIT, "w_commitment", QDB_TUNE_FLOAT, 0, 1, 0);
	param(t, TP_W_TRIPLET, "w_triplet", QDB_TUNE_FLOAT, 0, 1, 0);
	param(t, TP_K_NEIGHBORS, "k_neighbors", QDB_TUNE_INT, 5, 50, 0);
	param(t, TP_HIDDEN, "hidden_per_target_dim", QDB_TUNE_CHOICE, 0, 0,
		  NCHOICES(tune_hidden_mult));
	param(t, TP_M, "m", QDB_TUNE_CHOICE, 0, 0, TUNE_NM);
	param(t, TP_EFC, "ef_construction", QDB_TUNE_CHOICE, 0, 0, TUNE_NEFC);
}

/* The training settings of point v at a stage (cfg->dim set by the caller). */
static void
trial_config(const QdbTune *t, const QdbTuneStage *st, const double *v, QdbTrainConfig *cfg)
{
	int			dps = tune_dims_per_sub[(int) v[TP_DIMS_PER_SUB]];
	int			target;

	qdb_train_config_init(cfg);
	cfg->kind = t->kinds[(int) v[TP_KIND]];
	cfg->metric = t->metric;
	cfg->dim = t->dim;
	cfg->seed = t->seed;
	/* a target_dim at or past the column's dims is the kind's default */
	target = dps * cfg->M;
	cfg->dim_pq = target < t->dim ? target : 0;
	cfg->kmeans_iters = st->kmeans_iters;
	cfg->opq_iters = st->opq_iters;
	cfg->epochs = st->epochs;
	cfg->lr = (float) v[TP_LR];
	cfg->batch_size = tune_batch[(int) v[TP_BATCH]];
	cfg->w_recon = (float) v[TP_W_RECON];
	cfg->w_cluster = (float) v[TP_W_CLUSTER];
	cfg->w_diversity = (float) v[TP_W_DIVERSITY];
	cfg->w_commit = (float) v[TP_W_COMMIT];
	cfg->w_triplet = (float) v[TP_W_TRIPLET];
	cfg->k_neighbors = (int) v[TP_K_NEIGHBORS];
	cfg->hidden = Min(tune_hidden_mult[(int) v[TP_HIDDEN]] * qdb_config_dim_pq(cfg),
					  QDB_MAX_HIDDEN);
}

/*
 * Point v as a JSON object of the settings it stands for: quantumdb.train's
 * argument names (those of its kind only), m and ef_construction.
 */
void
QdbTuneSettingsJson(const QdbTune *t, const double *v, StringInfo out)
{
	QdbTuneStage st = {0};
	QdbTrainConfig cfg;

	trial_config(t, &st, v, &cfg);
	appendStringInfo(out, "{\"kind\": \"%s\", \"target_dim\": %d",
					 qdb_kind_name(cfg.kind), qdb_config_dim_pq(&cfg));
	if (cfg.kind == QDB_KIND_NEURAL)
		appendStringInfo(out, ", \"lr\": %.3g, \"batch_size\": %d, \"hidden\": %d"
						 ", \"k_neighbors\": %d, \"w_reconstruction\": %.3f"
						 ", \"w_cluster\": %.3f, \"w_diversity\": %.3f"
						 ", \"w_commitment\": %.3f, \"w_triplet\": %.3f",
						 cfg.lr, cfg.batch_size, cfg.hidden, cfg.k_neighbors,
						 cfg.w_recon, cfg.w_cluster, cfg.w_diversity, cfg.w_commit,
						 cfg.w_triplet);
	appendStringInfo(out, ", \"m\": %d, \"ef_construction\": %d}",
					 tune_m[(int) v[TP_M]], tune_efc[(int) v[TP_EFC]]);
}

typedef struct HookState
{
	QdbTune    *t;
	const QdbTuneStage *st;
	bool		pruned;
	bool		over_budget;
	double		mid_recall;		/* at st->prune_epoch, or -1 */
	const char *kind;
	double		started;
	double		last_notice;	/* qdb_now() of the trial's last NOTICE */
} HookState;

/* a trial's training says where it is at most this often (seconds) */
#define TRIAL_NOTICE_EVERY 5.0

/* The trainer's progress: the deadline, and stage 2's median pruning. */
static bool
trial_stop(const QdbEpochStats *s, void *arg)
{
	HookState  *h = arg;
	double		now = qdb_now();

	/*
	 * The trainer is quiet (the trial's NOTICE comes as it ends); a long
	 * trial (rq at its defaults: 17 s in session 59's hunt) says where it
	 * is, with interrupts held as train_backend.c's NOTICEs are.
	 */
	if (!s->heartbeat && s->stage && now - h->last_notice >= TRIAL_NOTICE_EVERY)
	{
		HOLD_INTERRUPTS();
		ereport(NOTICE,
				(errmsg("autotune \"%s\": a %s trial is training: %s %d/%d, %.0f s",
						h->t->name, h->kind, s->stage, s->iter, s->iters, now - h->started)));
		RESUME_INTERRUPTS();
		h->last_notice = now;
	}
	if (now > h->t->deadline)
	{
		h->over_budget = true;
		return true;
	}
	if (s->neural && h->st->prune_epoch > 0 && s->iter == h->st->prune_epoch)
	{
		h->mid_recall = s->neural->val_recall;
		if (qdb_tune_prune(h->t->mid_recalls, h->t->nmid, h->mid_recall, 2))
		{
			h->pruned = true;
			return true;
		}
	}
	return false;
}

/* The model's size as stored (its safetensors file). */
static double
model_bytes(const QdbModel *m)
{
	uint8_t    *buf;
	size_t		len;

	QdbReportStatus(qdb_model_serialize(m, &qdb_palloc_alloc, &buf, &len),
					"could not measure the model", NULL);
	pfree(buf);
	return (double) len;
}

/*
 * Trains point v at stage st on its share of the training rows and scores
 * it into r; the model and its arrays live in cxt.
 */
void
QdbTuneRunTrial(QdbTune *t, const QdbTuneStage *st, const double *v, MemoryContext cxt,
				QdbTrialResult *r)
{
	HookState	h = {t, st, false, false, -1};
	QdbTrainHook hook = {trial_stop, &h, true, false};
	const char *device_used;
	double		t0 = qdb_now(),
				row_bytes,
				mb;
	int			rows;

	memset(r, 0, sizeof(*r));
	trial_config(t, st, v, &r->cfg);
	r->m = tune_m[(int) v[TP_M]];
	r->ef_construction = tune_efc[(int) v[TP_EFC]];
	rows = (int) ceil(st->share * t->n_train);
	rows = Min(t->n_train, Max(rows, Min(t->n_train, 1000)));
	r->training_rows = rows;
	h.kind = qdb_kind_name(r->cfg.kind);
	h.started = h.last_notice = qdb_now();

	r->train_seconds = QdbTrainModel(t->name, t->x, rows, &r->cfg, QDB_DEVICE_AUTO, 0, cxt,
									 &r->model, &device_used, &hook);
	if (!hook.stopped && qdb_now() > t->deadline)
	{
		/* trained, but no time is left to score it */
		hook.stopped = true;
		h.over_budget = true;
	}
	if (h.mid_recall >= 0 && !h.pruned && !h.over_budget)
	{
		t->mid_recalls = repalloc(t->mid_recalls, sizeof(double) * (t->nmid + 1));
		t->mid_recalls[t->nmid++] = h.mid_recall;
	}
	if (hook.stopped)
	{
		r->status = h.pruned ? "pruned" : "over budget";
		r->quality = h.pruned ? h.mid_recall : NAN;
		r->compression = r->speed = r->memory = r->score = NAN;
		r->seconds = qdb_now() - t0;
		return;
	}

	QdbReportStatus(qdb_adc_recall_shared(&r->model, t->x, t->n_train,
										  t->x + (Size) t->n_train * t->dim, t->n_val, 10,
										  t->val_kth, &t->val_kth_known, &r->quality),
					"could not measure the trial's recall", NULL);
	row_bytes = QdbTuneRowBytes((int) qdb_code_size(&r->model), r->m);
	r->compression = Max(0.0, 1.0 - row_bytes / (4.0 * t->dim));
	mb = model_bytes(&r->model);
	r->memory = mb / (mb + Max(t->table_rows, 1.0) * row_bytes);
	if (!QdbTuneMeasureWalks(t, &r->model, (int) v[TP_M], (int) v[TP_EFC], r))
	{
		r->status = "over budget";	/* its graph could not be built in time */
		r->quality = r->compression = r->speed = r->memory = r->score = NAN;
		r->seconds = qdb_now() - t0;
		return;
	}
	r->score = t->w.quality * r->quality + t->w.compression * r->compression +
		t->w.speed * r->speed - t->w.memory * r->memory;
	r->status = "done";
	r->seconds = qdb_now() - t0;
}
