/*
 * outbound.c - the server's outbound workers: two threads that make the
 * requests to other servers (email webhooks; OAuth code exchange and
 * user info), so that neither a service thread nor the writer ever waits
 * on the network.  Each request has a bounded time (auth.email.
 * webhook_timeout, auth.oauth.timeout).  A job with a waiting client
 * goes back to its service thread like a writer job
 * (alyx__jobs_deliver); a webhook job has none and is freed here.
 */
#include <string.h>

#include "auth/auth.h"
#include "core/handle.h"
#include "http/http.h"

#define N_WORKERS 2
#define MAX_QUEUE 1024		/* queued jobs; more are refused */

static void log_webhook(alyx_server *s, const alyx__job *j, int rc,
			const alyx__err *err)
{
	alyx_buf b;

	alyx__buf_init(&b, 0);
	alyx__log_begin(s, &b, rc == ALYX_OK ? "info" : "warn",
			rc == ALYX_OK ? "email webhook delivered"
				      : "email webhook failed");
	alyx__log_kv(s, &b, "type", j->coll);
	if (rc != ALYX_OK)
		alyx__log_kv(s, &b, "error", err->msg);
	alyx__log_end(s, &b);
	alyx__srv_log(s, NULL, rc == ALYX_OK ? ALYX_LOG_INFO : ALYX_LOG_WARN,
		      &b);
	alyx__buf_free(&b);
}

static void run_job(alyx_server *s, alyx__job *j)
{
	alyx *a = s->a;
	alyx__err err = {0};

	switch (j->op) {
	case JOB_WEBHOOK: {
		const alyx__link l = {.payload = j->body};

		j->rc = alyx__link_send(a->cfg, &l, &err);
		log_webhook(s, j, j->rc, &err);
		alyx__err_clear(&err);
		alyx__job_free(j);
		return;
	}
	case JOB_OAUTH:
		j->rc = alyx__oauth_finish(a, j->coll, j->body, j->id, j->ip,
					   &j->out);
		if (j->rc != ALYX_OK)
			alyx__job_capture(a, j);
		break;
	default:
		j->rc = ALYX_E_INTERNAL;
		break;
	}
	alyx__jobs_deliver(s, j);
}

static void *worker_main(void *arg)
{
	alyx_server *s = arg;

	for (;;) {
		alyx__job *j;

		pthread_mutex_lock(&s->omu);
		while (!s->oq_head && !s->oquit)
			pthread_cond_wait(&s->ocv, &s->omu);
		if (s->oquit) {
			pthread_mutex_unlock(&s->omu);
			break;
		}
		j = s->oq_head;
		s->oq_head = j->next;
		if (!s->oq_head)
			s->oq_tail = NULL;
		s->oq_len--;
		j->next = NULL;
		pthread_mutex_unlock(&s->omu);
		run_job(s, j);
	}
	return NULL;
}

int alyx__outbound_start(alyx_server *s, alyx__err *err)
{
	for (int i = 0; i < N_WORKERS; i++) {
		int e = pthread_create(&s->out_th[i], NULL, worker_main, s);
		if (e)
			return alyx__err_set(err, ALYX_E_NOMEM, NULL,
					     "cannot start a thread: %s",
					     strerror(e));
		s->out_started++;
	}
	return ALYX_OK;
}

bool alyx__outbound_push(alyx_server *s, alyx__job *j)
{
	bool ok;

	pthread_mutex_lock(&s->omu);
	ok = !s->oquit && s->oq_len < MAX_QUEUE && s->out_started;
	if (ok) {
		j->next = NULL;
		if (s->oq_tail)
			s->oq_tail->next = j;
		else
			s->oq_head = j;
		s->oq_tail = j;
		s->oq_len++;
		pthread_cond_signal(&s->ocv);
	}
	pthread_mutex_unlock(&s->omu);
	return ok;
}

/* Workers finish the request they are making (each is bounded), then
 * exit.  Jobs still queued are dropped: webhooks with a log line, and a
 * waiting client gets 503. */
void alyx__outbound_stop(alyx_server *s)
{
	alyx__job *list, *answer = NULL;

	pthread_mutex_lock(&s->omu);
	s->oquit = true;
	pthread_cond_broadcast(&s->ocv);
	list = s->oq_head;
	s->oq_head = s->oq_tail = NULL;
	s->oq_len = 0;
	pthread_mutex_unlock(&s->omu);
	for (int i = 0; i < s->out_started; i++)
		pthread_join(s->out_th[i], NULL);
	s->out_started = 0;
	while (list) {
		alyx__job *j = list;

		list = j->next;
		j->next = NULL;
		if (j->op == JOB_WEBHOOK) {
			alyx__err err = {0};

			alyx__err_set(&err, ALYX_E_UNAVAILABLE, NULL,
				      "the server stopped before sending it");
			log_webhook(s, j, ALYX_E_UNAVAILABLE, &err);
			alyx__err_clear(&err);
			alyx__job_free(j);
			continue;
		}
		j->rc = ALYX_E_UNAVAILABLE;
		j->err_msg = alyx__strdup("the server is shutting down");
		j->next = answer;
		answer = j;
	}
	if (answer)
		alyx__jobs_deliver(s, answer);
}
