/*
 * writer.c - the one writer thread.  Service threads queue write jobs
 * (never blocking on the database); the writer drains the queue, runs the
 * whole batch as one transaction (alyx__group_begin/end: each write in its
 * own savepoint, so a failing write is undone alone) and hands every
 * result back to the service thread that owns it (its done list plus
 * lws_cancel_service()).  Batches form by themselves under load: that is
 * the group commit measured in notes/perf-limits.md §C.
 *
 * WAL checkpoints run on a checkpointer thread with its own connection:
 * the writer connection's WAL hook (which replaces SQLite's
 * auto-checkpoint while the server runs) wakes it once the WAL holds
 * CKPT_FRAMES pages (and again each time half as many more have come),
 * and a PASSIVE checkpoint copies the frames back into the database
 * while the writer goes on committing.  Done on the writer, checkpoints
 * were about 10 % of each create's time on the one thread every write
 * waits for.  The WAL file only starts over from its beginning when a
 * write transaction begins with every frame copied, which a checkpointer
 * running behind a busy writer never achieves; so once the WAL holds
 * CKPT_RESTART pages and the last round left at most a quarter of
 * CKPT_FRAMES uncopied, the writer copies those itself (a small PASSIVE
 * checkpoint) and the write after it restarts the WAL.
 */
#include <string.h>

#include "core/handle.h"
#include "http/http.h"
#include "store/store.h"

/* Jobs per transaction: bounds the latency one batch adds to the next. */
#define MAX_GROUP 256
/* WAL pages that trigger a checkpoint: SQLite's auto-checkpoint default. */
#define CKPT_FRAMES 1000
/* WAL pages past which the writer copies the last frames itself so the
 * WAL can restart (bounds the file to about this many pages). */
#define CKPT_RESTART (4 * CKPT_FRAMES)

void alyx__job_free(alyx__job *j)
{
	if (!j)
		return;
	alyx__free(j->coll);
	alyx__free(j->id);
	alyx__free(j->body);
	if (j->prep) {
		alyx__write_free(j->prep);
		alyx__free(j->prep);
	}
	alyx__free(j->ip);
	alyx_free(j->out);
	alyx__free(j->err_msg);
	alyx__free(j->err_details);
	alyx_ctx_free(j->ctx);
	alyx__free(j);
}

void alyx__job_capture(alyx *a, alyx__job *j)
{
	const char *m = alyx_errmsg(a), *d = alyx_errdetails(a);

	j->rc = alyx_errcode(a);
	if (j->rc == ALYX_OK)
		j->rc = ALYX_E_INTERNAL;
	alyx__free(j->err_msg);
	alyx__free(j->err_details);
	j->err_msg = alyx__strdup(m && *m ? m : alyx_strerror(j->rc));
	j->err_details = d && *d ? alyx__strdup(d) : NULL;
}

static void run_job(alyx *a, alyx__job *j)
{
	switch (j->op) {
	case JOB_CREATE:
	case JOB_UPDATE:
		if (j->prep)
			j->rc = alyx__write_run(a, j->ctx, j->prep, j->coll,
						j->id, j->body, j->body_len,
						&j->out);
		else if (j->op == JOB_CREATE)
			j->rc = alyx_doc_create(a, j->ctx, j->coll, j->body,
						j->body_len, &j->out);
		else
			j->rc = alyx_doc_update(a, j->ctx, j->coll, j->id,
						j->body, j->body_len, &j->out);
		break;
	case JOB_DELETE:
		j->rc = alyx_doc_delete(a, j->ctx, j->coll, j->id);
		break;
	case JOB_BATCH:
		j->rc = alyx_batch(a, j->ctx, j->body, j->body_len, &j->out);
		break;
	default:
		j->rc = ALYX_E_INTERNAL;
		break;
	}
	if (j->rc != ALYX_OK)
		alyx__job_capture(a, j);
}

/* Hands the finished jobs back, one wake-up per service thread. */
void alyx__jobs_deliver(alyx_server *s, alyx__job *list)
{
	bool wake[64] = {0};

	while (list) {
		alyx__job *j = list, *n = j->next;
		alyx__svc *t = j->owner;
		j->next = NULL;
		pthread_mutex_lock(&t->done_mu);
		if (t->done_tail)
			t->done_tail->next = j;
		else
			t->done_head = j;
		t->done_tail = j;
		pthread_mutex_unlock(&t->done_mu);
		wake[t->index] = true;
		list = n;
	}
	for (int i = 0; i < s->nthreads; i++) {
		if (!wake[i])
			continue;
		atomic_store_explicit(&s->svcs[i].done_pending, 1,
				      memory_order_release);
		lws_cancel_service(s->svcs[i].ctx);
	}
}

static void *writer_main(void *arg)
{
	alyx_server *s = arg;
	alyx *a = s->a;

	for (;;) {
		alyx__job *head, *j, *rest = NULL;
		int n = 0;

		pthread_mutex_lock(&s->wmu);
		while (!s->wq_head && !s->wquit)
			pthread_cond_wait(&s->wcv, &s->wmu);
		if (!s->wq_head) {
			pthread_mutex_unlock(&s->wmu);
			break;
		}
		head = s->wq_head;
		for (j = head; j; j = j->next) {
			if (++n == MAX_GROUP) {
				rest = j->next;
				j->next = NULL;
				break;
			}
		}
		s->wq_head = rest;
		if (!rest)
			s->wq_tail = NULL;
		atomic_fetch_sub(&s->wq_len, (uint64_t)n);
		pthread_mutex_unlock(&s->wmu);

		int grc = alyx__group_begin(a);
		if (grc != ALYX_OK) {
			/* Could not open the transaction (database busy or
			 * broken): every job in the batch fails. */
			for (j = head; j; j = j->next) {
				alyx__job_capture(a, j);
				if (j->rc == ALYX_OK)
					j->rc = grc;
			}
		} else {
			for (j = head; j; j = j->next)
				run_job(a, j);
			grc = alyx__group_end(a);
			if (grc != ALYX_OK) {
				/* The commit failed: nothing of the batch was
				 * written, so no job may report success. */
				atomic_fetch_add(&s->w_failed_commits, 1);
				for (j = head; j; j = j->next) {
					alyx_free(j->out);
					j->out = NULL;
					alyx__job_capture(a, j);
				}
			}
		}
		atomic_fetch_add(&s->w_batches, 1);
		atomic_fetch_add(&s->w_jobs, (uint64_t)n);
		alyx__jobs_deliver(s, head);
	}
	return NULL;
}

/* ---- the checkpointer ---- */

/* After every commit on the writer connection (whichever thread made
 * it, holding the handle's writer mutex): a cheap signal. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	alyx_server *s = arg;
	int done = atomic_load(&s->ckpt_backfilled);

	if (frames < CKPT_FRAMES || atomic_load(&s->ckpt_busy))
		return SQLITE_OK;
	if (frames < done)
		done = 0;	/* the WAL restarted since */
	if (frames >= CKPT_RESTART && frames - done <= CKPT_FRAMES / 4) {
		/* The few frames written during the last round; then the
		 * next write restarts the WAL. */
		sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE,
					  NULL, NULL);
		return SQLITE_OK;
	}
	if (frames - done < CKPT_FRAMES / 2 && frames < CKPT_RESTART)
		return SQLITE_OK;	/* not worth a round yet */
	atomic_store(&s->ckpt_busy, true);
	pthread_mutex_lock(&s->ckpt_mu);
	s->ckpt_due = true;
	pthread_cond_signal(&s->ckpt_cv);
	pthread_mutex_unlock(&s->ckpt_mu);
	return SQLITE_OK;
}

static void *ckpt_main(void *arg)
{
	alyx_server *s = arg;

	pthread_mutex_lock(&s->ckpt_mu);
	for (;;) {
		while (!s->ckpt_due && !s->ckpt_quit)
			pthread_cond_wait(&s->ckpt_cv, &s->ckpt_mu);
		if (s->ckpt_quit)
			break;
		s->ckpt_due = false;
		pthread_mutex_unlock(&s->ckpt_mu);
		/* PASSIVE: never waits for readers or the writer; what it
		 * cannot copy now is copied by a later round. */
		int log = 0, copied = 0;
		if (sqlite3_wal_checkpoint_v2(s->ckpt_db, NULL,
					      SQLITE_CHECKPOINT_PASSIVE, &log,
					      &copied) != SQLITE_OK)
			copied = 0;
		atomic_store(&s->ckpt_backfilled, copied);
		atomic_store(&s->ckpt_busy, false);
		atomic_fetch_add(&s->w_checkpoints, 1);
		pthread_mutex_lock(&s->ckpt_mu);
	}
	pthread_mutex_unlock(&s->ckpt_mu);
	return NULL;
}

/* Starts the checkpointer; without one (a read-only handle, or no
 * second connection) the writer connection keeps auto-checkpointing. */
static void ckpt_start(alyx_server *s)
{
	alyx *a = s->a;
	alyx__conn_opts o;
	alyx__err err = {0};

	if (!a->wdb)
		return;
	o = a->copts;
	o.create = false;
	o.reader = false;
	if (alyx__conn_open(a->db_path, &o, &s->ckpt_db, &err) != ALYX_OK) {
		alyx__err_clear(&err);
		return;
	}
	s->ckpt_quit = s->ckpt_due = false;
	atomic_store(&s->ckpt_busy, false);
	atomic_store(&s->ckpt_backfilled, 0);
	if (pthread_create(&s->ckpt, NULL, ckpt_main, s)) {
		alyx__conn_close(s->ckpt_db);
		s->ckpt_db = NULL;
		return;
	}
	s->ckpt_started = true;
	pthread_mutex_lock(&a->wmu);
	sqlite3_wal_hook(a->wdb, wal_hook, s);
	pthread_mutex_unlock(&a->wmu);
}

static void ckpt_stop(alyx_server *s)
{
	alyx *a = s->a;

	if (!s->ckpt_started)
		return;
	/* SQLite's own auto-checkpoint again (it replaces our hook). */
	pthread_mutex_lock(&a->wmu);
	sqlite3_wal_autocheckpoint(a->wdb, CKPT_FRAMES);
	pthread_mutex_unlock(&a->wmu);
	pthread_mutex_lock(&s->ckpt_mu);
	s->ckpt_quit = true;
	pthread_cond_signal(&s->ckpt_cv);
	pthread_mutex_unlock(&s->ckpt_mu);
	pthread_join(s->ckpt, NULL);
	s->ckpt_started = false;
	alyx__conn_close(s->ckpt_db);
	s->ckpt_db = NULL;
}

int alyx__writer_start(alyx_server *s, alyx__err *err)
{
	if (s->nthreads > 64)
		return alyx__err_set(err, ALYX_E_MISUSE, NULL,
				     "at most 64 service threads");
	int e = pthread_create(&s->writer, NULL, writer_main, s);
	if (e)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL,
				     "cannot start the writer thread: %s",
				     strerror(e));
	s->writer_started = true;
	ckpt_start(s);
	return ALYX_OK;
}

bool alyx__writer_push(alyx_server *s, alyx__job *j)
{
	pthread_mutex_lock(&s->wmu);
	if (s->wquit) {
		pthread_mutex_unlock(&s->wmu);
		return false;
	}
	j->next = NULL;
	if (s->wq_tail)
		s->wq_tail->next = j;
	else
		s->wq_head = j;
	s->wq_tail = j;
	atomic_fetch_add(&s->wq_len, 1);
	pthread_cond_signal(&s->wcv);
	pthread_mutex_unlock(&s->wmu);
	return true;
}

void alyx__writer_stop(alyx_server *s)
{
	if (!s->writer_started)
		return;
	pthread_mutex_lock(&s->wmu);
	s->wquit = true;
	pthread_cond_signal(&s->wcv);
	pthread_mutex_unlock(&s->wmu);
	pthread_join(s->writer, NULL);
	s->writer_started = false;
	ckpt_stop(s);
}

void alyx__svc_take_done(alyx__svc *t)
{
	alyx__job *list;

	atomic_store_explicit(&t->done_pending, 0, memory_order_relaxed);
	pthread_mutex_lock(&t->done_mu);
	list = t->done_head;
	t->done_head = t->done_tail = NULL;
	pthread_mutex_unlock(&t->done_mu);
	while (list) {
		alyx__job *j = list;
		list = j->next;
		j->next = NULL;
		if (!j->req) {
			/* The client went away; the write itself stands. */
			alyx__job_free(j);
			continue;
		}
		j->req->state = RS_REPLY;
		lws_callback_on_writable(j->req->wsi);
	}
}
