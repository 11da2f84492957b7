/*
 * logs.c - per-function logs for the admin UI: a bounded in-memory ring
 * per function of its last invocations (time, request id, outcome,
 * duration, the function's own log entries).  Oldest entries go first
 * once a function holds more than LOG_ENTRIES entries or LOG_BYTES bytes.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "functions/functions.h"

#define LOG_ENTRIES 200
#define LOG_BYTES (512u * 1024)
#define LOG_FUNCTIONS 1024	/* distinct names kept */

typedef struct entry {
	char *json;
	size_t len;
	struct entry *next;
} entry;

typedef struct ring {
	char *name;
	entry *head, *tail;	/* oldest first */
	int n;
	size_t bytes;
	struct ring *next;
} ring;

struct alyx__fn_logbook {
	pthread_mutex_t mu;
	ring *rings;
	int n_rings;
};

alyx__fn_logbook *alyx__fn_logbook_new(void)
{
	alyx__fn_logbook *lb = alyx__calloc(1, sizeof(*lb));

	if (lb)
		pthread_mutex_init(&lb->mu, NULL);
	return lb;
}

static void drop_oldest(ring *r)
{
	entry *e = r->head;

	r->head = e->next;
	if (!r->head)
		r->tail = NULL;
	r->n--;
	r->bytes -= e->len;
	alyx__free(e->json);
	alyx__free(e);
}

void alyx__fn_logbook_free(alyx__fn_logbook *lb)
{
	ring *r, *next;

	if (!lb)
		return;
	for (r = lb->rings; r; r = next) {
		next = r->next;
		while (r->head)
			drop_oldest(r);
		alyx__free(r->name);
		alyx__free(r);
	}
	pthread_mutex_destroy(&lb->mu);
	alyx__free(lb);
}

static ring *ring_of(alyx__fn_logbook *lb, const char *name, bool make)
{
	ring *r;

	for (r = lb->rings; r; r = r->next)
		if (!strcmp(r->name, name))
			return r;
	if (!make || lb->n_rings >= LOG_FUNCTIONS)
		return NULL;
	r = alyx__calloc(1, sizeof(*r));
	if (!r || !(r->name = alyx__strdup(name))) {
		alyx__free(r);
		return NULL;
	}
	r->next = lb->rings;
	lb->rings = r;
	lb->n_rings++;
	return r;
}

/* The `logs` array and request id of a response line or of error
 * details. */
static char *logs_of(const char *json, char *rid, size_t n)
{
	static const char head[] = "{\"request_id\":\"";
	const char *l = json ? strstr(json, "\"logs\":") : NULL;
	cJSON *j;

	/* Most calls log nothing: a response that starts with its request
	 * id and holds "logs": once, as [], needs no parse. */
	if (l && !strncmp(l + 7, "[]", 2) && !strstr(l + 7, "\"logs\":") &&
	    !strncmp(json, head, sizeof(head) - 1)) {
		const char *id = json + sizeof(head) - 1;
		size_t k = strcspn(id, "\"\\");

		if (id[k] == '"' && k < n) {
			memcpy(rid, id, k);
			rid[k] = '\0';
			return alyx__strdup("[]");
		}
	}
	j = json ? cJSON_Parse(json) : NULL;
	cJSON *lj = cJSON_GetObjectItemCaseSensitive(j, "logs");
	cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "request_id");
	char *s = cJSON_IsArray(lj) ? cJSON_PrintUnformatted(lj) : NULL;
	char *r = s ? alyx__strdup(s) : NULL;

	snprintf(rid, n, "%s", cJSON_IsString(id) ? id->valuestring : "");
	cJSON_free(s);
	cJSON_Delete(j);
	return r;
}

void alyx__fn_log_call(alyx__fn_logbook *lb, const char *name, int rc,
		       const char *msg, const char *json, double duration_ms)
{
	char ts[25], rid[80], *logs;
	alyx_buf b;
	entry *e;
	ring *r;

	if (!lb)
		return;
	logs = logs_of(json, rid, sizeof(rid));
	alyx__iso8601_ms(alyx__now_ms(), ts);
	alyx__buf_init(&b, LOG_BYTES / 2);
	alyx__buf_addf(&b, "{\"time\":\"%s\",\"request_id\":", ts);
	if (rid[0])
		alyx__json_strz(&b, rid);
	else
		alyx__buf_adds(&b, "null");
	alyx__buf_addf(&b, ",\"success\":%s", rc == ALYX_OK ? "true" :
		       "false");
	if (rc != ALYX_OK) {
		alyx__buf_adds(&b, ",\"error\":{\"code\":");
		alyx__json_strz(&b, alyx_errname(rc));
		alyx__buf_adds(&b, ",\"message\":");
		alyx__json_strz(&b, msg ? msg : alyx_strerror(rc));
		alyx__buf_addc(&b, '}');
	}
	alyx__buf_addf(&b, ",\"duration_ms\":%.3f,\"logs\":%s}", duration_ms,
		       logs ? logs : "[]");
	alyx__free(logs);
	if (b.err) {
		/* Entry too large: keep the outcome without the logs. */
		alyx__buf_free(&b);
		alyx__fn_log_call(lb, name, rc, msg, NULL, duration_ms);
		return;
	}
	e = alyx__calloc(1, sizeof(*e));
	if (!e) {
		alyx__buf_free(&b);
		return;
	}
	e->len = b.len;
	e->json = alyx__buf_take(&b);
	pthread_mutex_lock(&lb->mu);
	r = ring_of(lb, name, true);
	if (r && e->json) {
		if (r->tail)
			r->tail->next = e;
		else
			r->head = e;
		r->tail = e;
		r->n++;
		r->bytes += e->len;
		while (r->n > LOG_ENTRIES || r->bytes > LOG_BYTES)
			drop_oldest(r);
		e = NULL;
	}
	pthread_mutex_unlock(&lb->mu);
	if (e) {
		alyx__free(e->json);
		alyx__free(e);
	}
}

void alyx__fn_logs_json(alyx__fn_logbook *lb, const char *name, alyx_buf *b)
{
	entry *e;
	ring *r;

	alyx__buf_adds(b, "{\"function\":");
	alyx__json_strz(b, name);
	alyx__buf_addf(b, ",\"max_entries\":%d,\"entries\":[", LOG_ENTRIES);
	pthread_mutex_lock(&lb->mu);
	r = ring_of(lb, name, false);
	for (e = r ? r->head : NULL; e; e = e->next) {
		alyx__buf_add(b, e->json, e->len);
		if (e->next)
			alyx__buf_addc(b, ',');
	}
	pthread_mutex_unlock(&lb->mu);
	alyx__buf_adds(b, "]}");
}
