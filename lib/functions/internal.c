/*
 * internal.c - the internal database API of functions (ctx.db):
 * /internal/v1/db/query, /exec and /tx, authorized by a token bound to one
 * invocation (docs/functions.md, "Database access").
 *
 * Every request runs on the thread that invoked the function, as trusted
 * code (ctx NULL): requests on the executor's pipe are read there by
 * alyx__fn_converse(), and requests that arrive over HTTP are queued on
 * the invocation and run by the same loop (woken through an eventfd).
 * So a transaction is one SQLite write transaction on the handle's writer
 * connection (alyx__group_open), held by one thread from begin to
 * commit, and bounded by functions.transaction_timeout.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "core/config.h"
#include "core/handle.h"
#include "functions/functions.h"

#define REQ_PREFIX "{\"internal\":"
/* Raw SQL results and queued HTTP requests are bounded. */
#define MAX_RESULT ((size_t)ALYX__FN_MAX_OUTPUT * 4)
#define MAX_QUEUED 64

static const char *const db_paths[ALYX__FN_DB_COUNT] = {
	[ALYX__FN_DB_QUERY] = "/internal/v1/db/query",
	[ALYX__FN_DB_EXEC] = "/internal/v1/db/exec",
	[ALYX__FN_DB_TX] = "/internal/v1/db/tx",
};

int alyx__fn_db_route(const char *path)
{
	int i;

	for (i = 0; path && i < ALYX__FN_DB_COUNT; i++)
		if (!strcmp(path, db_paths[i]))
			return i;
	return -1;
}

/* A request that arrived over HTTP, waiting for the invoking thread. */
typedef struct sub {
	int route;
	cJSON *body;
	alyx__fn_db_cb cb;
	void *ud;
	struct sub *next;
} sub;

enum { TX_NONE, TX_OPEN, TX_EXPIRED };

struct alyx__fn_inv {
	alyx *a;
	uint64_t id;
	char secret[65];
	char token[96];
	int64_t expires;	/* monotonic ms */
	int wake;		/* the thread's eventfd: HTTP requests
				 * queued */
	sub *head, *tail;	/* under reg_mu */
	int queued;
	bool signalled;		/* the eventfd was written (reg_mu) */
	int tx;			/* TX_* (invoking thread only) */
	int64_t tx_seq;
	char tx_id[32];
	int64_t tx_deadline;
	struct alyx__fn_inv *next;
};

/* Live invocations of every handle, for tokens that arrive over HTTP. */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static alyx__fn_inv *live;
static uint64_t inv_seq;

/* The eventfd an invocation is woken through: one per thread, made on
 * its first invocation and closed when the thread exits (an invocation
 * runs on one thread, and a thread runs one invocation at a time). */
static pthread_key_t wake_key;
static pthread_once_t wake_once = PTHREAD_ONCE_INIT;

static void wake_close(void *p)
{
	close((int)(intptr_t)p - 1);
}

static void wake_key_make(void)
{
	pthread_key_create(&wake_key, wake_close);
}

static int thread_wake_fd(void)
{
	void *p;
	int fd;

	pthread_once(&wake_once, wake_key_make);
	p = pthread_getspecific(wake_key);
	if (p)
		return (int)(intptr_t)p - 1;
	fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd >= 0 && pthread_setspecific(wake_key,
					   (void *)(intptr_t)(fd + 1)) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static bool ct_equal(const char *a, const char *b, size_t n)
{
	unsigned char d = 0;
	size_t i;

	for (i = 0; i < n; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

int alyx__fn_inv_begin(alyx *a, const alyx__fn_def *d, int64_t ttl_ms,
		       alyx__fn_inv **out, alyx__err *err)
{
	unsigned char rnd[32];
	alyx__fn_inv *inv;

	(void)d;
	*out = NULL;
	if (!alyx__random(rnd, sizeof(rnd)))
		return alyx__err_set(err, ALYX_E_INTERNAL, NULL,
				     "no random bytes for an invocation token");
	inv = alyx__calloc(1, sizeof(*inv));
	if (!inv)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	alyx__hex(rnd, sizeof(rnd), inv->secret);
	inv->a = a;
	inv->expires = alyx__mono_ms() + ttl_ms;
	inv->wake = thread_wake_fd();
	if (inv->wake < 0) {
		alyx__free(inv);
		return alyx__err_set(err, ALYX_E_IO, NULL, "eventfd: %s",
				     strerror(errno));
	}
	pthread_mutex_lock(&reg_mu);
	inv->id = ++inv_seq;
	inv->next = live;
	live = inv;
	pthread_mutex_unlock(&reg_mu);
	snprintf(inv->token, sizeof(inv->token), "itk_%llu_%s",
		 (unsigned long long)inv->id, inv->secret);
	*out = inv;
	return ALYX_OK;
}

const char *alyx__fn_inv_token(const alyx__fn_inv *inv)
{
	return inv->token;
}

/* The HTTP address of each handle's server, for executors that reach
 * the internal API over HTTP (containers). */
static struct {
	const alyx *a;
	char *url;
} urls[16];

void alyx__fn_set_url(alyx *a, const char *url)
{
	size_t i, slot = ALYX_ARRAY_LEN(urls);

	pthread_mutex_lock(&reg_mu);
	for (i = 0; i < ALYX_ARRAY_LEN(urls); i++) {
		if (urls[i].a == a) {
			alyx__free(urls[i].url);
			urls[i].a = NULL;
			urls[i].url = NULL;
		}
		if (!urls[i].a && slot == ALYX_ARRAY_LEN(urls))
			slot = i;
	}
	if (url && slot < ALYX_ARRAY_LEN(urls) &&
	    (urls[slot].url = alyx__strdup(url)))
		urls[slot].a = a;
	pthread_mutex_unlock(&reg_mu);
}

void alyx__fn_inv_context(const alyx__fn_inv *inv, alyx_buf *b)
{
	const char *want = getenv("ALYX_FUNCTIONS_DB");
	bool http = false;
	size_t i;

	alyx__buf_adds(b, ",\"internal_token\":");
	alyx__json_strz(b, inv->token);
	pthread_mutex_lock(&reg_mu);
	for (i = 0; i < ALYX_ARRAY_LEN(urls); i++)
		if (urls[i].a == inv->a && urls[i].url) {
			alyx__buf_adds(b, ",\"alyx_url\":");
			alyx__json_strz(b, urls[i].url);
			http = want && !strcmp(want, "http");
		}
	pthread_mutex_unlock(&reg_mu);
	alyx__buf_adds(b, http ? ",\"db_transport\":\"http\"" :
		       ",\"db_transport\":\"pipe\"");
}

static void sub_free(sub *s)
{
	cJSON_Delete(s->body);
	alyx__free(s);
}

void alyx__fn_inv_end(alyx__fn_inv *inv)
{
	alyx__fn_inv **pp;
	sub *s, *next;
	bool signalled;

	if (!inv)
		return;
	pthread_mutex_lock(&reg_mu);
	for (pp = &live; *pp; pp = &(*pp)->next)
		if (*pp == inv) {
			*pp = inv->next;
			break;
		}
	s = inv->head;
	inv->head = inv->tail = NULL;
	signalled = inv->signalled;
	pthread_mutex_unlock(&reg_mu);
	for (; s; s = next) {
		next = s->next;
		s->cb(s->ud, ALYX_E_UNAUTHORIZED, NULL,
		      "the invocation ended before this request ran", NULL);
		sub_free(s);
	}
	if (inv->tx == TX_OPEN) {
		alyx__err e = {0};

		alyx__group_close(inv->a, false, &e);
		alyx__err_clear(&e);
	}
	if (signalled) {
		/* The thread's eventfd is reused: leave it unsignalled. */
		uint64_t n;

		if (read(inv->wake, &n, sizeof(n)) < 0) {
			/* drained already (EAGAIN) */
		}
	}
	alyx__free(inv);
}

/* ---- errors of the public API ---- */

/* Copies this thread's last error on a into err. */
static int api_error(alyx *a, alyx__err *err)
{
	int code = alyx_errcode(a);
	const char *d = alyx_errdetails(a);

	if (code == ALYX_OK)
		code = ALYX_E_INTERNAL;
	return alyx__err_set(err, code, d && *d ? d : NULL, "%s",
			     alyx_errmsg(a));
}

static const char *jstr(const cJSON *o, const char *k)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int need(const char *v, const char *what, alyx__err *err)
{
	char d[96];

	if (v)
		return ALYX_OK;
	snprintf(d, sizeof(d), "{\"field\":\"%s\"}", what);
	return alyx__err_set(err, ALYX_E_BADJSON, d,
			     "the request needs \"%s\" (a string)", what);
}

/* ---- raw SQL ---- */

#define DENIED_MAX 64	/* a refused table's name, cut */

/* Trusted code may read and write rows, not change the schema, the
 * transaction or the connection, and not write alyx's own tables
 * (`_alyx_*`: accounts, tokens, the change feed, migrations).  The
 * change feed's triggers write them on its behalf (a4: the trigger).
 * ud: where the name of a refused internal table goes. */
static int authorize(void *ud, int op, const char *a1, const char *a2,
		     const char *a3, const char *a4)
{
	char *denied = ud;

	(void)a2;
	(void)a3;
	switch (op) {
	case SQLITE_DELETE:
	case SQLITE_INSERT:
	case SQLITE_UPDATE:
		if (!a4 && a1 && !sqlite3_strnicmp(a1, "_alyx_", 6)) {
			snprintf(denied, DENIED_MAX, "%s", a1);
			return SQLITE_DENY;
		}
		return SQLITE_OK;
	case SQLITE_READ:
	case SQLITE_SELECT:
	case SQLITE_FUNCTION:
	case SQLITE_RECURSIVE:
		return SQLITE_OK;
	default:
		return SQLITE_DENY;
	}
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st,
		   alyx__err *err)
{
	const char *tail = NULL;
	char denied[DENIED_MAX] = "";
	int rc;

	*st = NULL;
	sqlite3_set_authorizer(db, authorize, denied);
	rc = sqlite3_prepare_v2(db, sql, -1, st, &tail);
	sqlite3_set_authorizer(db, NULL, NULL);
	if (rc != SQLITE_OK || !*st) {
		sqlite3_finalize(*st);
		*st = NULL;
		if (denied[0])
			return alyx__err_set(err, ALYX_E_BADQUERY, NULL,
					     "raw SQL: %s is one of alyx's own "
					     "tables, written by alyx alone",
					     denied);
		return alyx__err_set(err, ALYX_E_BADQUERY, NULL,
				     "raw SQL: %s", rc == SQLITE_OK ?
				     "empty statement" : sqlite3_errmsg(db));
	}
	while (tail && (*tail == ' ' || *tail == '\n' || *tail == '\t' ||
			*tail == '\r' || *tail == ';'))
		tail++;
	if (tail && *tail) {
		sqlite3_finalize(*st);
		*st = NULL;
		return alyx__err_set(err, ALYX_E_BADQUERY, NULL,
				     "raw SQL: one statement at a time");
	}
	return ALYX_OK;
}

static int bind_params(sqlite3_stmt *st, const cJSON *params, alyx__err *err)
{
	const cJSON *p;
	int i = 0, rc = SQLITE_OK;

	if (params && !cJSON_IsArray(params))
		return alyx__err_set(err, ALYX_E_BADJSON,
				     "{\"field\":\"params\"}",
				     "params must be an array");
	if (cJSON_GetArraySize(params) != sqlite3_bind_parameter_count(st))
		return alyx__err_set(err, ALYX_E_BADQUERY, NULL,
				     "raw SQL: %d parameters given, the "
				     "statement has %d",
				     cJSON_GetArraySize(params),
				     sqlite3_bind_parameter_count(st));
	cJSON_ArrayForEach(p, params) {
		i++;
		if (cJSON_IsNull(p)) {
			rc = sqlite3_bind_null(st, i);
		} else if (cJSON_IsBool(p)) {
			rc = sqlite3_bind_int(st, i, cJSON_IsTrue(p));
		} else if (cJSON_IsNumber(p)) {
			double v = p->valuedouble;

			if (v == (double)(int64_t)v && v > -9.0e15 &&
			    v < 9.0e15)
				rc = sqlite3_bind_int64(st, i, (int64_t)v);
			else
				rc = sqlite3_bind_double(st, i, v);
		} else if (cJSON_IsString(p)) {
			rc = sqlite3_bind_text(st, i, p->valuestring, -1,
					       SQLITE_TRANSIENT);
		} else {
			char *t = cJSON_PrintUnformatted(p);

			rc = t ? sqlite3_bind_text(st, i, t, -1,
						   SQLITE_TRANSIENT) :
			     SQLITE_NOMEM;
			cJSON_free(t);
		}
		if (rc != SQLITE_OK)
			return alyx__err_set(err, ALYX_E_NOMEM, NULL,
					     "out of memory");
	}
	return ALYX_OK;
}

static void column_json(alyx_buf *b, sqlite3_stmt *st, int i)
{
	switch (sqlite3_column_type(st, i)) {
	case SQLITE_INTEGER:
		alyx__buf_addf(b, "%lld",
			       (long long)sqlite3_column_int64(st, i));
		break;
	case SQLITE_FLOAT: {
		double v = sqlite3_column_double(st, i);

		if (v != v || v - v != 0)
			alyx__buf_adds(b, "null");
		else
			alyx__buf_addf(b, "%.17g", v);
		break;
	}
	case SQLITE_TEXT:
		alyx__json_str(b, (const char *)sqlite3_column_text(st, i),
			       (size_t)sqlite3_column_bytes(st, i));
		break;
	case SQLITE_BLOB:
		alyx__buf_addc(b, '"');
		alyx__base64_enc(b, sqlite3_column_blob(st, i),
				 (size_t)sqlite3_column_bytes(st, i));
		alyx__buf_addc(b, '"');
		break;
	default:
		alyx__buf_adds(b, "null");
		break;
	}
}

/* Steps st to the end: {"rows":[{col:value,...}],"changes":N,
 * "last_insert_rowid":N}. */
static int run_stmt(sqlite3 *db, sqlite3_stmt *st, alyx_buf *b,
		    alyx__err *err)
{
	int rc, n = sqlite3_column_count(st), i;
	bool first = true;

	alyx__buf_adds(b, "{\"rows\":[");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!first)
			alyx__buf_addc(b, ',');
		first = false;
		alyx__buf_addc(b, '{');
		for (i = 0; i < n; i++) {
			if (i)
				alyx__buf_addc(b, ',');
			alyx__json_strz(b, sqlite3_column_name(st, i));
			alyx__buf_addc(b, ':');
			column_json(b, st, i);
		}
		alyx__buf_addc(b, '}');
		if (b->err)
			break;
	}
	if (b->err)
		return alyx__err_set(err, b->err, NULL,
				     "raw SQL: the result is larger than %zu "
				     "bytes", MAX_RESULT);
	if (rc != SQLITE_DONE)
		return alyx__err_set(err, rc == SQLITE_CONSTRAINT ?
				     ALYX_E_CONFLICT : rc == SQLITE_BUSY ?
				     ALYX_E_BUSY : ALYX_E_BADQUERY, NULL,
				     "raw SQL: %s", sqlite3_errmsg(db));
	alyx__buf_addf(b, "],\"changes\":%d,\"last_insert_rowid\":%lld}",
		       sqlite3_stmt_readonly(st) ? 0 : sqlite3_changes(db),
		       (long long)sqlite3_last_insert_rowid(db));
	return ALYX_OK;
}

/* Runs one raw statement: reads on a reader (or, inside a transaction,
 * the writer connection); writes, when allowed, on the writer in their
 * own transaction (or the open one). */
static int raw_sql(alyx *a, const char *sql, const cJSON *params,
		   bool may_write, alyx_buf *b, alyx__err *err)
{
	sqlite3_stmt *st = NULL;
	alyx__rd rd = {0};
	alyx__wtx t = {0};
	int rc;

	rc = alyx__reader_get(a, &rd, err);
	if (rc != ALYX_OK)
		return rc;
	rc = prepare(rd.db, sql, &st, err);
	if (rc == ALYX_OK && !sqlite3_stmt_readonly(st) && rd.db != a->wdb) {
		/* A write: prepared again on the writer. */
		sqlite3_finalize(st);
		st = NULL;
		alyx__reader_put(a, &rd);
		if (!may_write)
			return alyx__err_set(err, ALYX_E_BADQUERY, NULL,
					     "raw SQL on /query must only "
					     "read (use /exec)");
		rc = alyx__wtx_begin(a, &t, err);
		if (rc == ALYX_OK)
			rc = prepare(a->wdb, sql, &st, err);
		if (rc == ALYX_OK)
			rc = bind_params(st, params, err);
		if (rc == ALYX_OK)
			rc = run_stmt(a->wdb, st, b, err);
		sqlite3_finalize(st);
		return alyx__wtx_end(&t, rc == ALYX_OK, err);
	}
	if (rc == ALYX_OK && !may_write && !sqlite3_stmt_readonly(st))
		rc = alyx__err_set(err, ALYX_E_BADQUERY, NULL,
				   "raw SQL on /query must only read (use "
				   "/exec)");
	if (rc == ALYX_OK)
		rc = bind_params(st, params, err);
	if (rc == ALYX_OK)
		rc = run_stmt(rd.db, st, b, err);
	sqlite3_finalize(st);
	alyx__reader_put(a, &rd);
	return rc;
}

/* ---- collection operations ---- */

/* One field-name list item: letters, digits, '_', '.', ','. */
static bool names_ok(const cJSON *e)
{
	return cJSON_IsString(e) &&
	       strspn(e->valuestring, "abcdefghijklmnopqrstuvwxyz"
		      "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.,") ==
	       strlen(e->valuestring);
}

/* "expand" / "fields" (a name list or an array of them) as a query
 * string for alyx_doc_get. */
static int get_opts(const cJSON *body, alyx_buf *qs, alyx__err *err)
{
	static const char *const keys[] = {"expand", "fields"};
	size_t k;

	for (k = 0; k < ALYX_ARRAY_LEN(keys); k++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(body,
								  keys[k]);
		const cJSON *arr = cJSON_IsArray(v) ? v : NULL, *e;
		bool ok = arr || names_ok(v);

		if (!v || cJSON_IsNull(v))
			continue;
		cJSON_ArrayForEach(e, arr)
			ok = ok && names_ok(e);
		if (!ok)
			return alyx__err_set(err, ALYX_E_BADQUERY, NULL,
					     "%s must be a field name or a "
					     "list of field names", keys[k]);
		alyx__buf_adds(qs, qs->len ? "&" : "");
		alyx__buf_adds(qs, keys[k]);
		alyx__buf_addc(qs, '=');
		if (cJSON_IsString(v))
			alyx__buf_adds(qs, v->valuestring);
		cJSON_ArrayForEach(e, arr) {
			alyx__buf_adds(qs, e->valuestring);
			if (e->next)
				alyx__buf_addc(qs, ',');
		}
	}
	return ALYX_OK;
}

static bool is_expr(const cJSON *v)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(v, "$raw");

	return cJSON_IsObject(v) && cJSON_IsString(e) && v->child == e &&
	       !e->next;
}

/* Replaces every {"$raw":"<SQL expression>"} value of an update with the
 * expression's value for the document's current row. */
static int eval_exprs(alyx *a, const char *coll, const char *id,
		      cJSON *data, alyx__err *err)
{
	alyx__snap *snap = alyx__snap_get(a);
	const alyx__collection *c;
	cJSON *f;
	int rc;

	rc = alyx__coll_find(snap, coll, &c, err);
	for (f = data ? data->child : NULL; rc == ALYX_OK && f; f = f->next) {
		sqlite3_stmt *st = NULL;
		alyx_buf q, v;
		cJSON *val;

		if (!is_expr(f))
			continue;
		alyx__buf_init(&q, 0);
		alyx__buf_adds(&q, "SELECT (");
		alyx__buf_adds(&q, jstr(f, "$raw"));
		alyx__buf_adds(&q, ") FROM ");
		alyx__sql_ident(&q, c->name);
		alyx__buf_adds(&q, " WHERE ");
		alyx__sql_ident(&q, c->fields[c->pk].name);
		alyx__buf_adds(&q, " = ?");
		rc = q.err ? alyx__err_set(err, ALYX_E_NOMEM, NULL,
					   "out of memory") :
		     prepare(a->wdb, q.data, &st, err);
		alyx__buf_free(&q);
		if (rc != ALYX_OK)
			break;
		sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
		alyx__buf_init(&v, 0);
		if (sqlite3_step(st) == SQLITE_ROW)
			column_json(&v, st, 0);
		else
			rc = alyx__err_set(err, ALYX_E_NOTFOUND, NULL,
					   "no document '%.200s' in %s", id,
					   c->name);
		sqlite3_finalize(st);
		val = rc == ALYX_OK && !v.err ?
		      cJSON_ParseWithLength(v.data, v.len) : NULL;
		alyx__buf_free(&v);
		if (rc == ALYX_OK && !val)
			rc = alyx__err_set(err, ALYX_E_NOMEM, NULL,
					   "out of memory");
		if (rc == ALYX_OK) {
			/* val takes f's place (the key is copied first). */
			cJSON_ReplaceItemInObjectCaseSensitive(data, f->string,
							       val);
			f = val;
		}
	}
	alyx__snap_put(snap);
	return rc;
}

static bool has_exprs(const cJSON *data)
{
	const cJSON *f;

	for (f = data ? data->child : NULL; f; f = f->next)
		if (is_expr(f))
			return true;
	return false;
}

/* update with SQL expressions: evaluated and written in one write
 * transaction (the open one, or its own). */
static int update_exprs(alyx *a, const char *coll, const char *id,
			cJSON *data, char **out, alyx__err *err)
{
	bool own = !alyx__group_held(a);
	char *text = NULL;
	int rc = ALYX_OK;

	if (own)
		rc = alyx__group_open(a, a->cfg->functions.tx_timeout_ms, err);
	if (rc != ALYX_OK)
		return rc;
	rc = eval_exprs(a, coll, id, data, err);
	if (rc == ALYX_OK) {
		text = cJSON_PrintUnformatted(data);
		if (!text)
			rc = alyx__err_set(err, ALYX_E_NOMEM, NULL,
					   "out of memory");
	}
	if (rc == ALYX_OK &&
	    alyx_doc_update(a, NULL, coll, id, text, strlen(text), out) !=
	    ALYX_OK)
		rc = api_error(a, err);
	cJSON_free(text);
	if (own) {
		if (rc == ALYX_OK)
			rc = alyx__group_close(a, true, err);
		else
			alyx__group_close(a, false, &(alyx__err){0});
	}
	return rc;
}

static int db_query(alyx__fn_inv *inv, const cJSON *body, char **out,
		    alyx__err *err)
{
	alyx *a = inv->a;
	const char *coll = jstr(body, "collection"), *id = jstr(body, "id");
	const char *sql = jstr(body, "sql");
	const cJSON *q = cJSON_GetObjectItemCaseSensitive(body, "query");
	char *qtext = NULL;
	alyx_buf b;
	int rc;

	alyx__buf_init(&b, MAX_RESULT);
	if (sql) {
		rc = raw_sql(a, sql, cJSON_GetObjectItemCaseSensitive(body,
				"params"), false, &b, err);
		goto out;
	}
	rc = need(coll, "collection", err);
	if (rc != ALYX_OK)
		goto out;
	if (id) {
		rc = get_opts(body, &b, err);
		if (rc == ALYX_OK &&
		    alyx_doc_get(a, NULL, coll, id, b.len ? b.data : NULL,
				 out) != ALYX_OK)
			rc = api_error(a, err);
		goto out;
	}
	if (q && !cJSON_IsNull(q)) {
		if (!cJSON_IsObject(q)) {
			rc = alyx__err_set(err, ALYX_E_BADJSON,
					   "{\"field\":\"query\"}",
					   "query must be an object");
			goto out;
		}
		qtext = cJSON_PrintUnformatted(q);
		if (!qtext) {
			rc = alyx__err_set(err, ALYX_E_NOMEM, NULL,
					   "out of memory");
			goto out;
		}
	}
	if (alyx_query(a, NULL, coll, qtext, out) != ALYX_OK)
		rc = api_error(a, err);
out:
	if (rc == ALYX_OK && sql) {
		*out = alyx__buf_take(&b);
		if (!*out)
			rc = alyx__err_set(err, ALYX_E_NOMEM, NULL,
					   "out of memory");
	}
	cJSON_free(qtext);
	alyx__buf_free(&b);
	return rc;
}

static int db_exec(alyx__fn_inv *inv, cJSON *body, char **out,
		   alyx__err *err)
{
	alyx *a = inv->a;
	const char *op = jstr(body, "op"), *coll = jstr(body, "collection");
	const char *id = jstr(body, "id"), *sql = jstr(body, "sql");
	cJSON *data = cJSON_GetObjectItemCaseSensitive(body, "data");
	char *text = NULL;
	alyx_buf b;
	int rc;

	if (sql) {
		alyx__buf_init(&b, MAX_RESULT);
		rc = raw_sql(a, sql, cJSON_GetObjectItemCaseSensitive(body,
				"params"), true, &b, err);
		if (rc == ALYX_OK && !(*out = alyx__buf_take(&b)))
			rc = alyx__err_set(err, ALYX_E_NOMEM, NULL,
					   "out of memory");
		alyx__buf_free(&b);
		return rc;
	}
	rc = need(op, "op", err);
	if (rc == ALYX_OK)
		rc = need(coll, "collection", err);
	if (rc == ALYX_OK && strcmp(op, "create"))
		rc = need(id, "id", err);
	if (rc != ALYX_OK)
		return rc;
	if (strcmp(op, "delete") && !cJSON_IsObject(data))
		return alyx__err_set(err, ALYX_E_BADJSON,
				     "{\"field\":\"data\"}",
				     "data must be an object");
	if (!strcmp(op, "update") && has_exprs(data))
		return update_exprs(a, coll, id, data, out, err);
	if (strcmp(op, "delete")) {
		text = cJSON_PrintUnformatted(data);
		if (!text)
			return alyx__err_set(err, ALYX_E_NOMEM, NULL,
					     "out of memory");
	}
	if (!strcmp(op, "create"))
		rc = alyx_doc_create(a, NULL, coll, text, strlen(text), out);
	else if (!strcmp(op, "update"))
		rc = alyx_doc_update(a, NULL, coll, id, text, strlen(text),
				     out);
	else if (!strcmp(op, "delete"))
		rc = alyx_doc_delete(a, NULL, coll, id);
	else
		rc = -1;
	cJSON_free(text);
	if (rc < 0)
		return alyx__err_set(err, ALYX_E_BADJSON, "{\"field\":\"op\"}",
				     "op must be create, update or delete");
	if (rc != ALYX_OK)
		return api_error(a, err);
	if (!strcmp(op, "delete") && !(*out = alyx__strdup("{\"deleted\":true}")))
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	return ALYX_OK;
}

/* ---- transactions ---- */

static void tx_expire(alyx__fn_inv *inv)
{
	alyx__err e = {0};

	if (inv->tx != TX_OPEN)
		return;
	alyx__group_close(inv->a, false, &e);
	alyx__err_clear(&e);
	inv->tx = TX_EXPIRED;
}

static int tx_expired_error(alyx__fn_inv *inv, alyx__err *err)
{
	return alyx__err_set(err, ALYX_E_TIMEOUT, NULL,
			     "transaction %s was open longer than %lld ms and "
			     "was rolled back", inv->tx_id,
			     (long long)inv->a->cfg->functions.tx_timeout_ms);
}

/* The "tx" of a request must name the open transaction; a request
 * without one may not run while a transaction is open. */
static int tx_check(alyx__fn_inv *inv, const cJSON *body, alyx__err *err)
{
	const char *tx = jstr(body, "tx");

	if (inv->tx == TX_OPEN && alyx__mono_ms() >= inv->tx_deadline)
		tx_expire(inv);
	if (!tx) {
		if (inv->tx == TX_OPEN)
			return alyx__err_set(err, ALYX_E_MISUSE, NULL,
					     "transaction %s is open: run this "
					     "call through it (tx), or finish "
					     "it first", inv->tx_id);
		return ALYX_OK;
	}
	if (inv->tx == TX_NONE || strcmp(tx, inv->tx_id))
		return alyx__err_set(err, ALYX_E_NOTFOUND, NULL,
				     "no open transaction '%.60s'", tx);
	if (inv->tx == TX_EXPIRED)
		return tx_expired_error(inv, err);
	return ALYX_OK;
}

static int db_tx(alyx__fn_inv *inv, const cJSON *body, char **out,
		 alyx__err *err)
{
	const char *op = jstr(body, "op");
	int rc = need(op, "op", err);

	if (rc != ALYX_OK)
		return rc;
	if (!strcmp(op, "begin")) {
		int64_t ms = inv->a->cfg->functions.tx_timeout_ms;

		if (inv->tx == TX_OPEN)
			return alyx__err_set(err, ALYX_E_MISUSE, NULL,
					     "transaction %s is already open",
					     inv->tx_id);
		rc = alyx__group_open(inv->a, ms, err);
		if (rc != ALYX_OK)
			return rc;
		inv->tx = TX_OPEN;
		snprintf(inv->tx_id, sizeof(inv->tx_id), "tx_%lld",
			 (long long)++inv->tx_seq);
		inv->tx_deadline = alyx__mono_ms() + ms;
		*out = alyx__asprintf("{\"tx\":\"%s\",\"timeout_ms\":%lld}",
				      inv->tx_id, (long long)ms);
	} else if (!strcmp(op, "commit") || !strcmp(op, "rollback")) {
		bool commit = !strcmp(op, "commit");

		if (!jstr(body, "tx"))
			return need(NULL, "tx", err);
		rc = tx_check(inv, body, err);
		if (rc == ALYX_E_TIMEOUT && !commit) {
			alyx__err_clear(err);
			rc = ALYX_OK;	/* rolled back already */
		} else if (rc == ALYX_OK) {
			inv->tx = TX_NONE;
			rc = alyx__group_close(inv->a, commit, err);
		}
		if (rc != ALYX_OK)
			return rc;
		inv->tx = TX_NONE;
		*out = alyx__strdup(commit ? "{\"committed\":true}" :
				    "{\"rolled_back\":true}");
	} else {
		return alyx__err_set(err, ALYX_E_BADJSON, "{\"field\":\"op\"}",
				     "op must be begin, commit or rollback");
	}
	if (!*out)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	return ALYX_OK;
}

/* Runs one request of the invocation (its thread). */
static int db_run(alyx__fn_inv *inv, int route, cJSON *body, char **out,
		  alyx__err *err)
{
	int rc;

	*out = NULL;
	if (!cJSON_IsObject(body))
		return alyx__err_set(err, ALYX_E_BADJSON, NULL,
				     "the request body must be a JSON object");
	if (route != ALYX__FN_DB_TX) {
		rc = tx_check(inv, body, err);
		if (rc != ALYX_OK)
			return rc;
	}
	switch (route) {
	case ALYX__FN_DB_QUERY:
		return db_query(inv, body, out, err);
	case ALYX__FN_DB_EXEC:
		return db_exec(inv, body, out, err);
	case ALYX__FN_DB_TX:
		return db_tx(inv, body, out, err);
	default:
		return alyx__err_set(err, ALYX_E_NOTFOUND, NULL,
				     "no such internal API route");
	}
}

/* ---- requests over HTTP ---- */

/* The live invocation of a on this token, or NULL (reg_mu held). */
static alyx__fn_inv *inv_of_token(alyx *a, const char *token)
{
	const char *p = token, *sec;
	unsigned long long id = 0;
	alyx__fn_inv *inv;

	if (!p || strncmp(p, "itk_", 4))
		return NULL;
	p += 4;
	if (*p < '0' || *p > '9')
		return NULL;
	while (*p >= '0' && *p <= '9' && id < (1ull << 60))
		id = id * 10 + (unsigned)(*p++ - '0');
	if (*p != '_')
		return NULL;
	sec = p + 1;
	if (strlen(sec) != 64)
		return NULL;
	for (inv = live; inv; inv = inv->next)
		if (inv->id == id)
			break;
	if (!inv || inv->a != a || !ct_equal(sec, inv->secret, 64) ||
	    alyx__mono_ms() >= inv->expires)
		return NULL;
	return inv;
}

void alyx__fn_db_submit(alyx *a, const char *token, int route,
			const char *body, size_t len, alyx__fn_db_cb cb,
			void *ud)
{
	alyx__err err = {0};
	alyx__fn_inv *inv;
	cJSON *j = NULL;
	sub *s;
	int rc;
	uint64_t one = 1;

	if (token && !strncmp(token, "Bearer ", 7))
		token += 7;
	/* The token first: without a valid one nothing else is said. */
	pthread_mutex_lock(&reg_mu);
	inv = inv_of_token(a, token);
	pthread_mutex_unlock(&reg_mu);
	if (!inv)
		goto refused;
	rc = alyx__json_parse(a, body, len, "request body", &j, &err);
	if (rc != ALYX_OK)
		goto fail;
	s = alyx__calloc(1, sizeof(*s));
	if (!s) {
		rc = alyx__err_set(&err, ALYX_E_NOMEM, NULL, "out of memory");
		goto fail;
	}
	s->route = route;
	s->body = j;
	s->cb = cb;
	s->ud = ud;
	j = NULL;
	pthread_mutex_lock(&reg_mu);
	inv = inv_of_token(a, token);
	if (inv && inv->queued < MAX_QUEUED) {
		if (inv->tail)
			inv->tail->next = s;
		else
			inv->head = s;
		inv->tail = s;
		inv->queued++;
		inv->signalled = true;
		if (write(inv->wake, &one, sizeof(one)) < 0) {
			/* the counter is already non-zero */
		}
		pthread_mutex_unlock(&reg_mu);
		return;
	}
	pthread_mutex_unlock(&reg_mu);
	sub_free(s);
	if (inv) {
		rc = alyx__err_set(&err, ALYX_E_RATELIMIT, NULL,
				   "more than %d internal API requests are "
				   "waiting for this invocation", MAX_QUEUED);
		goto fail;
	}
refused:
	rc = alyx__err_set(&err, ALYX_E_UNAUTHORIZED, NULL,
			   "the internal API needs the token of a running "
			   "invocation (Authorization: Bearer itk_...)");
fail:
	cJSON_Delete(j);
	cb(ud, rc, NULL, err.msg, err.details);
	alyx__err_clear(&err);
}

/* Runs the requests queued over HTTP (the invoking thread). */
static void run_queued(alyx__fn_inv *inv)
{
	uint64_t n;
	sub *s, *next;

	if (read(inv->wake, &n, sizeof(n)) < 0) {
		/* nothing pending: EAGAIN */
	}
	pthread_mutex_lock(&reg_mu);
	s = inv->head;
	inv->head = inv->tail = NULL;
	inv->queued = 0;
	pthread_mutex_unlock(&reg_mu);
	for (; s; s = next) {
		alyx__err err = {0};
		char *out = NULL;
		int rc;

		next = s->next;
		rc = db_run(inv, s->route, s->body, &out, &err);
		s->cb(s->ud, rc, out, err.msg, err.details);
		alyx__err_clear(&err);
		sub_free(s);
	}
}

/* ---- the executor's pipe ---- */

/* Reads what is available on fd into in (without blocking). */
static int fill(int fd, alyx_buf *in)
{
	char chunk[65536];

	for (;;) {
		ssize_t r = read(fd, chunk, sizeof(chunk));

		if (r > 0) {
			alyx__buf_add(in, chunk, (size_t)r);
			if (in->err == ALYX_E_TOOBIG)
				return ALYX__IO_TOOBIG;
			if (in->err)
				return ALYX__IO_ERR;
			continue;
		}
		if (r == 0)
			return ALYX__IO_EOF;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN ? ALYX__IO_OK : ALYX__IO_ERR;
	}
}

/* Writes a reply line to the executor; while its stdin is full, keeps
 * reading what it sends (it may be writing more requests). */
static int send_line(int in_fd, int out_fd, alyx_buf *in, const char *s,
		     size_t n, int64_t deadline)
{
	while (n) {
		ssize_t w = write(in_fd, s, n);
		struct pollfd pf[2] = {{in_fd, POLLOUT, 0},
				       {out_fd, POLLIN, 0}};
		int64_t left;

		if (w > 0) {
			s += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN)
			return ALYX__IO_EOF;
		left = deadline - alyx__mono_ms();
		if (left <= 0)
			return ALYX__IO_TIMEOUT;
		if (poll(pf, 2, (int)(left > INT_MAX ? INT_MAX : left)) > 0 &&
		    (pf[1].revents & POLLIN)) {
			int io = fill(out_fd, in);

			if (io != ALYX__IO_OK)
				return io;
		}
	}
	return ALYX__IO_OK;
}

/* One request line from the executor: run it and write the reply
 * {"internal_reply":ID,"ok":true,"body":...} or {..."ok":false,
 * "error":{"code","message","details"}}. */
static int pipe_request(alyx__fn_inv *inv, const char *text, size_t len,
			int in_fd, int out_fd, alyx_buf *in, int64_t deadline)
{
	alyx__err err = {0};
	cJSON *j = NULL, *id, *body;
	const char *path, *token;
	char *out = NULL;
	alyx_buf r;
	int rc, io;

	if (alyx__json_parse(inv->a, text, len, "internal request", &j,
			     &err) != ALYX_OK) {
		alyx__err_clear(&err);
		return ALYX__IO_ERR;	/* the executor broke the protocol */
	}
	id = cJSON_GetObjectItemCaseSensitive(j, "id");
	path = jstr(j, "internal");
	token = jstr(j, "token");
	body = cJSON_GetObjectItemCaseSensitive(j, "body");
	if (!cJSON_IsNumber(id)) {
		cJSON_Delete(j);
		return ALYX__IO_ERR;
	}
	if (!token || strlen(token) != strlen(inv->token) ||
	    !ct_equal(token, inv->token, strlen(inv->token)))
		rc = alyx__err_set(&err, ALYX_E_UNAUTHORIZED, NULL,
				   "the internal API needs this "
				   "invocation's token");
	else if (alyx__fn_db_route(path) < 0)
		rc = alyx__err_set(&err, ALYX_E_NOTFOUND, NULL,
				   "no internal API route '%.100s'",
				   path ? path : "");
	else
		rc = db_run(inv, alyx__fn_db_route(path), body, &out, &err);
	alyx__buf_init(&r, 0);
	alyx__buf_addf(&r, "{\"internal_reply\":%.0f,\"ok\":%s,",
		       id->valuedouble, rc == ALYX_OK ? "true" : "false");
	if (rc == ALYX_OK) {
		alyx__buf_adds(&r, "\"body\":");
		alyx__buf_adds(&r, out);
	} else {
		alyx__buf_adds(&r, "\"error\":{\"code\":");
		alyx__json_strz(&r, alyx_errname(rc));
		alyx__buf_adds(&r, ",\"message\":");
		alyx__json_strz(&r, err.msg[0] ? err.msg : alyx_strerror(rc));
		alyx__buf_adds(&r, ",\"details\":");
		alyx__buf_adds(&r, err.details ? err.details : "{}");
		alyx__buf_addc(&r, '}');
	}
	alyx__buf_adds(&r, "}\n");
	io = r.err ? ALYX__IO_ERR :
	     send_line(in_fd, out_fd, in, r.data, r.len, deadline);
	alyx__buf_free(&r);
	alyx_free(out);
	alyx__err_clear(&err);
	cJSON_Delete(j);
	return io;
}

int alyx__fn_converse(alyx__fn_inv *inv, int in_fd, int out_fd,
		      alyx_buf *line, int64_t deadline)
{
	alyx_buf in;
	size_t done = 0;
	int io = ALYX__IO_OK;

	alyx__buf_init(&in, line->max ? line->max + 65536 : 0);
	for (;;) {
		char *nl = in.len > done ?
			   memchr(in.data + done, '\n', in.len - done) : NULL;
		struct pollfd pf[2];
		int64_t now, until, left;
		int nfds = 1;

		if (nl) {
			size_t n = (size_t)(nl - (in.data + done));
			const char *s = in.data + done;

			done += n + 1;
			if (inv && n >= sizeof(REQ_PREFIX) - 1 &&
			    !memcmp(s, REQ_PREFIX, sizeof(REQ_PREFIX) - 1)) {
				io = pipe_request(inv, s, n, in_fd, out_fd,
						  &in, deadline);
				if (io != ALYX__IO_OK)
					break;
				continue;
			}
			alyx__buf_add(line, s, n);
			io = line->err == ALYX_E_TOOBIG ? ALYX__IO_TOOBIG :
			     line->err ? ALYX__IO_ERR : ALYX__IO_OK;
			break;
		}
		if (done) {
			/* Keep only the unfinished line. */
			memmove(in.data, in.data + done, in.len - done);
			in.len -= done;
			done = 0;
		}
		now = alyx__mono_ms();
		until = deadline;
		if (inv && inv->tx == TX_OPEN) {
			if (now >= inv->tx_deadline)
				tx_expire(inv);
			else if (inv->tx_deadline < until)
				until = inv->tx_deadline;
		}
		left = until - now;
		if (now >= deadline) {
			io = ALYX__IO_TIMEOUT;
			break;
		}
		pf[0] = (struct pollfd){out_fd, POLLIN, 0};
		if (inv) {
			pf[1] = (struct pollfd){inv->wake, POLLIN, 0};
			nfds = 2;
		}
		if (poll(pf, (nfds_t)nfds, (int)(left > INT_MAX ? INT_MAX :
						 left < 0 ? 0 : left)) <= 0)
			continue;
		if (nfds == 2 && (pf[1].revents & POLLIN))
			run_queued(inv);
		if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			io = fill(out_fd, &in);
			if (io == ALYX__IO_EOF && in.len > done &&
			    memchr(in.data + done, '\n', in.len - done))
				io = ALYX__IO_OK;	/* lines first */
			if (io != ALYX__IO_OK)
				break;
		}
	}
	alyx__buf_free(&in);
	return io;
}
