/*
 * fn-routes.c - functions over HTTP (docs/functions.md, docs/http-api.md):
 *
 *   POST /api/functions/:name         alyx_invoke() on a worker thread
 *   GET  /api/admin/functions         alyx_functions_json() (admin)
 *   GET  /api/admin/functions/:name/logs   alyx_function_logs_json() (admin)
 *   POST /internal/v1/db/query|exec|tx     a function's internal API
 *
 * A function call can take seconds, so it never runs on a service thread:
 * it is queued to a worker (threads started on demand, at most
 * FNQ_THREADS) and answered like a queued write (alyx__jobs_deliver).  An
 * internal API request is handed to the thread of the invocation its
 * token belongs to (alyx__fn_db_submit) and answered the same way.
 */
#include <string.h>

#include <cjson/cJSON.h>

#include "auth/auth.h"
#include "functions/functions.h"
#include "http/http.h"

#define JSON_TYPE "application/json"
#define FNQ_THREADS 64
/* Calls waiting for a worker beyond this are refused at once (503); the
 * pools' own bound (ALYX__FN_QUEUE_FACTOR) usually answers first. */
#define FNQ_WAITING (4 * FNQ_THREADS)

struct alyx__fnq {
	pthread_mutex_t mu;
	pthread_cond_t cv;	/* work queued, or quit */
	pthread_cond_t idle_cv;	/* outstanding internal requests drop */
	alyx__job *head, *tail;
	int waiting;
	pthread_t th[FNQ_THREADS];
	int n, idle;
	bool quit;
	int outstanding;	/* internal requests handed to invocations */
};

int alyx__fnq_start(alyx_server *s, alyx__err *err)
{
	struct alyx__fnq *q = alyx__calloc(1, sizeof(*q));
	char url[300];

	if (!q)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	pthread_cond_init(&q->idle_cv, NULL);
	s->fnq = q;
	/* Executors that reach the internal API over HTTP use this. */
	snprintf(url, sizeof(url), "%s://%s%s%s:%d",
		 s->tls_cert ? "https" : "http",
		 strchr(s->host, ':') ? "[" : "", s->host,
		 strchr(s->host, ':') ? "]" : "", s->port);
	alyx__fn_set_url(s->a, url);
	return ALYX_OK;
}

void alyx__fnq_stop(alyx_server *s)
{
	struct alyx__fnq *q = s->fnq;
	int i;

	if (!q)
		return;
	alyx__fn_set_url(s->a, NULL);
	pthread_mutex_lock(&q->mu);
	q->quit = true;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	/* Workers finish their calls (bounded by the functions' timeouts)
	 * and whatever is queued. */
	for (i = 0; i < q->n; i++)
		pthread_join(q->th[i], NULL);
	/* Internal requests end at the latest with their invocations. */
	pthread_mutex_lock(&q->mu);
	while (q->outstanding > 0)
		pthread_cond_wait(&q->idle_cv, &q->mu);
	pthread_mutex_unlock(&q->mu);
	pthread_cond_destroy(&q->cv);
	pthread_cond_destroy(&q->idle_cv);
	pthread_mutex_destroy(&q->mu);
	alyx__free(q);
	s->fnq = NULL;
}

/* ---- workers ---- */

static void capture(alyx *a, alyx__job *j)
{
	const char *m = alyx_errmsg(a), *d = alyx_errdetails(a);

	j->rc = alyx_errcode(a);
	if (j->rc == ALYX_OK)
		j->rc = ALYX_E_INTERNAL;
	j->err_msg = alyx__strdup(m && *m ? m : alyx_strerror(j->rc));
	j->err_details = d && *d ? alyx__strdup(d) : NULL;
}

static void *worker_main(void *arg)
{
	alyx_server *s = arg;
	struct alyx__fnq *q = s->fnq;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		alyx__job *j;

		while (!q->head && !q->quit) {
			q->idle++;
			pthread_cond_wait(&q->cv, &q->mu);
			q->idle--;
		}
		if (!q->head)
			break;
		j = q->head;
		q->head = j->next;
		if (!q->head)
			q->tail = NULL;
		q->waiting--;
		j->next = NULL;
		pthread_mutex_unlock(&q->mu);
		j->rc = alyx_invoke(s->a, j->ctx, j->coll, j->body,
				    j->body_len, &j->out);
		if (j->rc != ALYX_OK)
			capture(s->a, j);
		alyx__jobs_deliver(s, j);
		pthread_mutex_lock(&q->mu);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

/* Queues an invocation; false when refused (stopping, too many). */
static bool fnq_push(alyx_server *s, alyx__job *j)
{
	struct alyx__fnq *q = s->fnq;
	bool ok = false;

	pthread_mutex_lock(&q->mu);
	if (q->quit || q->waiting >= FNQ_WAITING)
		goto out;
	if (q->idle <= q->waiting && q->n < FNQ_THREADS &&
	    pthread_create(&q->th[q->n], NULL, worker_main, s) == 0)
		q->n++;
	if (!q->n)
		goto out;
	j->next = NULL;
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	q->waiting++;
	pthread_cond_signal(&q->cv);
	ok = true;
out:
	pthread_mutex_unlock(&q->mu);
	return ok;
}

/* ---- helpers ---- */

static int oom(alyx__svc *t, alyx__req *r)
{
	return alyx__reply_error(t, r, 500, "OUT_OF_MEMORY", "out of memory",
				 NULL);
}

/* The Authorization header (alyx__malloc'd), or NULL when absent. */
static char *authorization(alyx__req *r)
{
	int n = alyx__hdr_len(r, HH_AUTHORIZATION);
	char *v;

	if (n <= 0 || n > ALYX_AUTH_JWT_MAX + 16)
		return NULL;
	v = alyx__malloc((size_t)n + 1);
	if (v && alyx__hdr_copy(r, v, n + 1, HH_AUTHORIZATION) != n)
		v[0] = '\0';
	return v;
}

static int unauthorized(alyx__svc *t, alyx__req *r, const char *msg)
{
	return alyx__reply_error_h(t, r, 401, alyx_errname(ALYX_E_UNAUTHORIZED),
				   msg, NULL, "WWW-Authenticate: Bearer\r\n");
}

/* The caller's context from a Bearer token: 0 with *ctx (NULL when no
 * token was sent), or the reply's result after a 401. */
static int caller(alyx__svc *t, alyx__req *r, alyx_ctx **ctx, bool *replied)
{
	char *tok = authorization(r);
	int rc;

	*ctx = NULL;
	*replied = false;
	if (!tok)
		return 0;
	rc = alyx_ctx_from_token(t->srv->a, tok, ctx);
	alyx__free(tok);
	if (rc == ALYX_OK)
		return 0;
	*replied = true;
	return unauthorized(t, r, alyx_errmsg(t->srv->a));
}

static alyx__job *job_new(alyx__req *r, int op)
{
	alyx__job *j = alyx__calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->op = op;
	j->body_len = r->body.len ? r->body.len : 2;
	j->body = r->body.len ? alyx__buf_take(&r->body) : alyx__strdup("{}");
	j->coll = r->coll ? alyx__strdup(r->coll) : NULL;
	if (!j->body || (r->coll && !j->coll)) {
		alyx__job_free(j);
		return NULL;
	}
	return j;
}

/* ---- handlers ---- */

static int h_invoke(alyx__svc *t, alyx__req *r)
{
	alyx_ctx *ctx;
	alyx__job *j;
	bool replied;
	int n = caller(t, r, &ctx, &replied);

	if (replied)
		return n;
	j = job_new(r, JOB_INVOKE);
	if (!j) {
		alyx_ctx_free(ctx);
		return oom(t, r);
	}
	j->ctx = ctx;
	j->owner = t;
	j->req = r;
	r->job = j;
	r->state = RS_WRITER;
	if (fnq_push(t->srv, j))
		return 0;
	r->job = NULL;
	r->state = RS_DONE;
	alyx__job_free(j);
	return alyx__reply_error(t, r, 503, alyx_errname(ALYX_E_UNAVAILABLE),
				 atomic_load(&t->srv->stopping) ?
				 "the server is shutting down" :
				 "too many function calls are waiting",
				 NULL);
}

/* An invocation's thread answers an internal request. */
static void internal_done(void *ud, int rc, char *body, const char *msg,
			  const char *details)
{
	alyx__job *j = ud;
	alyx_server *s = j->owner->srv;
	struct alyx__fnq *q = s->fnq;

	j->rc = rc;
	j->out = body;
	if (rc != ALYX_OK) {
		j->err_msg = alyx__strdup(msg && *msg ? msg :
					  alyx_strerror(rc));
		j->err_details = details && *details ? alyx__strdup(details) :
				 NULL;
	}
	alyx__jobs_deliver(s, j);
	pthread_mutex_lock(&q->mu);
	if (--q->outstanding == 0)
		pthread_cond_broadcast(&q->idle_cv);
	pthread_mutex_unlock(&q->mu);
}

static int h_internal(alyx__svc *t, alyx__req *r)
{
	struct alyx__fnq *q = t->srv->fnq;
	int route = r->route == R_INTERNAL_QUERY ? ALYX__FN_DB_QUERY :
		    r->route == R_INTERNAL_EXEC ? ALYX__FN_DB_EXEC :
		    ALYX__FN_DB_TX;
	char *tok = authorization(r);
	alyx__job *j = job_new(r, JOB_INTERNAL);

	if (!j) {
		alyx__free(tok);
		return oom(t, r);
	}
	j->owner = t;
	j->req = r;
	r->job = j;
	r->state = RS_WRITER;
	pthread_mutex_lock(&q->mu);
	q->outstanding++;
	pthread_mutex_unlock(&q->mu);
	alyx__fn_db_submit(t->srv->a, tok, route, j->body, j->body_len,
			   internal_done, j);
	alyx__free(tok);
	return 0;
}

static int h_admin(alyx__svc *t, alyx__req *r)
{
	alyx *a = t->srv->a;
	alyx_ctx *ctx;
	char *out = NULL;
	bool replied;
	int n = caller(t, r, &ctx, &replied), rc;

	if (replied)
		return n;
	if (!ctx)
		return unauthorized(t, r, "an admin's Authorization: Bearer "
				    "token is required");
	if (!ctx->role || strcmp(ctx->role, "admin")) {
		alyx_ctx_free(ctx);
		return alyx__reply_error(t, r, 403,
					 alyx_errname(ALYX_E_FORBIDDEN),
					 "only admins may read functions",
					 NULL);
	}
	alyx_ctx_free(ctx);
	if (r->route == R_ADMIN_FUNCTIONS)
		rc = alyx_functions_json(a, &out);
	else
		rc = alyx_function_logs_json(a, r->coll, &out);
	if (rc != ALYX_OK)
		return alyx__reply_core_error(t, r);
	n = alyx__reply(t, r, 200, JSON_TYPE, out, strlen(out),
			"Cache-Control: no-store\r\n");
	alyx_free(out);
	return n;
}

int alyx__h_functions(alyx__svc *t, alyx__req *r)
{
	switch (r->route) {
	case R_FUNCTION:
		return h_invoke(t, r);
	case R_ADMIN_FUNCTIONS:
	case R_ADMIN_FN_LOGS:
		return h_admin(t, r);
	default:
		return h_internal(t, r);
	}
}

/* ---- replies ---- */

/* A function's own error code decides the status: a libalyx code its
 * status (NOT_FOUND 404, UNAUTHORIZED 401, ...), any other code of the
 * function's 400, an uncoded throw or a dead executor 500. */
static int function_status(const char *details, char *code, size_t n)
{
	cJSON *d = details ? cJSON_Parse(details) : NULL;
	cJSON *c = cJSON_GetObjectItemCaseSensitive(d, "code");
	int status = 500, e;

	snprintf(code, n, "%s", alyx_errname(ALYX_E_FUNCTION));
	if (cJSON_IsString(c) && strcmp(c->valuestring, "FUNCTION_ERROR") &&
	    strcmp(c->valuestring, "EXECUTOR_EXITED")) {
		snprintf(code, n, "%s", c->valuestring);
		status = 400;
		for (e = 1; e <= ALYX_E_FUNCTION; e++)
			if (!strcmp(alyx_errname(e), c->valuestring))
				status = alyx__http_status(e);
	}
	cJSON_Delete(d);
	return status;
}

int alyx__fn_job_reply(alyx__svc *t, alyx__req *r, alyx__job *j)
{
	char code[64];
	int status;

	if (j->rc == ALYX_OK) {
		const char *body = j->out ? j->out : "null";

		return alyx__reply(t, r, 200, JSON_TYPE, body, strlen(body),
				   NULL);
	}
	if (j->rc == ALYX_E_UNAUTHORIZED)
		return alyx__reply_error_h(t, r, 401,
					   alyx_errname(ALYX_E_UNAUTHORIZED),
					   j->err_msg, j->err_details,
					   "WWW-Authenticate: Bearer\r\n");
	if (j->op != JOB_INVOKE || j->rc != ALYX_E_FUNCTION)
		return alyx__reply_job_error(t, r, j);
	status = function_status(j->err_details, code, sizeof(code));
	return alyx__reply_error(t, r, status, code, j->err_msg,
				 j->err_details);
}
