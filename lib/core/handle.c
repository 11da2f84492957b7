/* handle.c - the alyx handle: open/close, connections, the applied schema
 * snapshot, write transactions, group commit and read passes. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/config.h"
#include "functions/functions.h"
#include "core/handle.h"
#include "realtime/realtime.h"
#include "auth/auth.h"

struct alyx__reader {
	sqlite3 *db;
	alyx__qcache *qc;
	/* BEGIN and ROLLBACK of read passes, prepared once (finalized with
	 * the connection): a pass per loop pass of a service thread */
	sqlite3_stmt *begin, *rollback;
	struct alyx__reader *next_idle;
	struct alyx__reader *next_all;
};

/* Live handles, so a closed or foreign pointer is refused (MISUSE) without
 * being dereferenced.  Handles are few; a linear scan is enough. */
static pthread_rwlock_t live_lock = PTHREAD_RWLOCK_INITIALIZER;
static const alyx **live;
static size_t n_live, cap_live;

/* This thread's group (alyx__group_begin/open) and read pass; a group
 * made by alyx__group_open also takes this thread's reads. */
static _Thread_local alyx *tl_group;
static _Thread_local bool tl_group_reads;
static _Thread_local struct {
	alyx *a;
	struct alyx__reader *r;
	int depth;
} tl_pass;

static bool live_add(const alyx *a)
{
	bool ok = true;

	pthread_rwlock_wrlock(&live_lock);
	if (n_live == cap_live) {
		size_t nc = cap_live ? cap_live * 2 : 8;
		const alyx **nl = alyx__realloc(live, nc * sizeof(*nl));

		if (nl) {
			live = nl;
			cap_live = nc;
		} else {
			ok = false;
		}
	}
	if (ok)
		live[n_live++] = a;
	pthread_rwlock_unlock(&live_lock);
	return ok;
}

static void live_remove(const alyx *a)
{
	size_t i;

	pthread_rwlock_wrlock(&live_lock);
	for (i = 0; i < n_live; i++) {
		if (live[i] == a) {
			live[i] = live[--n_live];
			break;
		}
	}
	if (n_live == 0) {
		alyx__free(live);
		live = NULL;
		cap_live = 0;
	}
	pthread_rwlock_unlock(&live_lock);
}

bool alyx__handle_ok(const alyx *a)
{
	bool found = false;
	size_t i;

	if (!a)
		return false;
	pthread_rwlock_rdlock(&live_lock);
	for (i = 0; i < n_live && !found; i++)
		found = live[i] == a;
	pthread_rwlock_unlock(&live_lock);
	return found && a->magic == ALYX__MAGIC;
}

int alyx__misuse(alyx__err *err, const char *what)
{
	char d[160];

	snprintf(d, sizeof(d), "{\"argument\":\"%s\"}", what);
	return alyx__err_set(err, ALYX_E_MISUSE, d,
			     "%s is NULL or not a valid argument", what);
}

/* ---- schema snapshots ---- */

alyx__snap *alyx__snap_get(alyx *a)
{
	alyx__snap *s;

	pthread_rwlock_rdlock(&a->snap_lock);
	s = a->snap;
	atomic_fetch_add(&s->refs, 1);
	pthread_rwlock_unlock(&a->snap_lock);
	return s;
}

void alyx__snap_put(alyx__snap *s)
{
	if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
		alyx__schema_free(s->schema);
		alyx__free(s);
	}
}

int alyx__snap_set(alyx *a, alyx__schema *schema, alyx__err *err)
{
	alyx__snap *s, *old;

	if (!schema)
		schema = alyx__calloc(1, sizeof(*schema));
	s = alyx__calloc(1, sizeof(*s));
	if (!s || !schema) {
		alyx__free(s);
		alyx__schema_free(schema);
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	}
	s->schema = schema;
	atomic_init(&s->refs, 1);
	pthread_rwlock_wrlock(&a->snap_lock);
	old = a->snap;
	a->snap = s;
	pthread_rwlock_unlock(&a->snap_lock);
	alyx__snap_put(old);
	return ALYX_OK;
}

/* ---- readers ---- */

static int reader_take(alyx *a, struct alyx__reader **out, alyx__err *err)
{
	struct alyx__reader *r;
	alyx__conn_opts o;
	int rc;

	pthread_mutex_lock(&a->rmu);
	r = a->idle;
	if (r)
		a->idle = r->next_idle;
	pthread_mutex_unlock(&a->rmu);
	if (r) {
		*out = r;
		return ALYX_OK;
	}
	r = alyx__calloc(1, sizeof(*r));
	if (!r)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	o = a->copts;
	o.create = false;
	o.reader = true;
	rc = alyx__conn_open(a->db_path, &o, &r->db, err);
	if (rc == ALYX_OK && !(r->qc = alyx__qcache_new(r->db))) {
		alyx__conn_close(r->db);
		rc = alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	}
	if (rc != ALYX_OK) {
		alyx__free(r);
		return rc;
	}
	pthread_mutex_lock(&a->rmu);
	r->next_all = a->all;
	a->all = r;
	pthread_mutex_unlock(&a->rmu);
	*out = r;
	return ALYX_OK;
}

/* Runs the reader's kept statement `sql` (prepared on first use). */
static int reader_step(struct alyx__reader *r, sqlite3_stmt **st,
		       const char *sql)
{
	int rc = SQLITE_OK;

	if (!*st)
		rc = sqlite3_prepare_v3(r->db, sql, -1,
					SQLITE_PREPARE_PERSISTENT, st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(*st);
		sqlite3_reset(*st);
	}
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void reader_give(alyx *a, struct alyx__reader *r)
{
	/* A read that failed half-way must not leave a snapshot open. */
	if (!sqlite3_get_autocommit(r->db) &&
	    reader_step(r, &r->rollback, "ROLLBACK") != SQLITE_OK)
		alyx__tx_rollback(r->db);
	pthread_mutex_lock(&a->rmu);
	r->next_idle = a->idle;
	a->idle = r;
	pthread_mutex_unlock(&a->rmu);
}

int alyx__reader_get(alyx *a, alyx__rd *rd, alyx__err *err)
{
	int rc;

	memset(rd, 0, sizeof(*rd));
	if (tl_group == a && tl_group_reads) {
		/* Inside a function's transaction: read its own writes. */
		rd->db = a->wdb;
		rd->pass = true;
		return ALYX_OK;
	}
	if (tl_pass.a == a && tl_pass.r) {
		rd->r = tl_pass.r;
		rd->pass = true;
	} else {
		rc = reader_take(a, &rd->r, err);
		if (rc != ALYX_OK)
			return rc;
	}
	rd->db = rd->r->db;
	rd->qc = rd->r->qc;
	return ALYX_OK;
}

void alyx__reader_put(alyx *a, alyx__rd *rd)
{
	if (rd->r && !rd->pass)
		reader_give(a, rd->r);
	memset(rd, 0, sizeof(*rd));
}

/* Group and pass calls wrap other calls: they report only their own
 * failures, so a success never hides the error of the request before. */
static int quiet_finish(alyx *a, alyx__err *err)
{
	int rc = err->code;

	if (rc != ALYX_OK)
		alyx__report(a, err);
	alyx__err_clear(err);
	return rc;
}

int alyx__read_pass_begin(alyx *a)
{
	alyx__err err = {0};
	int rc = ALYX_OK;

	if (!alyx__handle_ok(a)) {
		rc = alyx__misuse(&err, "handle");
		goto out;
	}
	if (tl_pass.a == a) {
		tl_pass.depth++;
		goto out;
	}
	if (tl_pass.a) {
		rc = alyx__err_set(&err, ALYX_E_MISUSE, NULL,
				   "this thread holds a read pass on another "
				   "handle");
		goto out;
	}
	rc = reader_take(a, &tl_pass.r, &err);
	if (rc == ALYX_OK) {
		int src = reader_step(tl_pass.r, &tl_pass.r->begin, "BEGIN");

		if (src != SQLITE_OK)
			rc = alyx__conn_err(tl_pass.r->db, src, "database",
					    &err);
		if (rc != ALYX_OK) {
			reader_give(a, tl_pass.r);
			tl_pass.r = NULL;
		}
	}
	if (rc == ALYX_OK) {
		tl_pass.a = a;
		tl_pass.depth = 1;
	}
out:
	return quiet_finish(a, &err);
}

int alyx__read_pass_end(alyx *a)
{
	alyx__err err = {0};

	if (!alyx__handle_ok(a) || tl_pass.a != a) {
		alyx__err_set(&err, ALYX_E_MISUSE, NULL,
			      "no read pass open on this handle");
		goto out;
	}
	if (--tl_pass.depth == 0) {
		/* COMMIT of a read transaction only ends the snapshot. */
		reader_give(a, tl_pass.r);
		tl_pass.a = NULL;
		tl_pass.r = NULL;
	}
out:
	return quiet_finish(a, &err);
}

/* ---- writes ---- */

int alyx__wtx_begin(alyx *a, alyx__wtx *t, alyx__err *err)
{
	int rc;

	memset(t, 0, sizeof(*t));
	t->a = a;
	if (!a->wdb)
		return alyx__err_set(err, ALYX_E_MISUSE, NULL,
				     "the handle was opened read-only");
	pthread_mutex_lock(&a->wmu);
	t->sp = tl_group == a;
	rc = t->sp ? alyx__sp_begin(a->wdb, err)
		   : alyx__tx_begin(a->wdb, true, err);
	if (rc != ALYX_OK) {
		pthread_mutex_unlock(&a->wmu);
		return rc;
	}
	t->open = true;
	return ALYX_OK;
}

int alyx__wtx_end(alyx__wtx *t, bool ok, alyx__err *err)
{
	sqlite3 *db;
	int rc = ALYX_OK;

	if (!t->open)
		return ok ? ALYX_OK : err->code;
	db = t->a->wdb;
	if (t->sp) {
		if (ok)
			rc = alyx__sp_release(db, err);
		if (!ok || rc != ALYX_OK)
			alyx__sp_rollback(db);
	} else if (ok) {
		rc = alyx__tx_commit(db, err);
	} else {
		alyx__tx_rollback(db);
	}
	t->open = false;
	pthread_mutex_unlock(&t->a->wmu);
	if (ok && !t->sp && rc == ALYX_OK)
		alyx__rt_notify(t->a);
	return ok ? rc : err->code;
}

int alyx__group_begin(alyx *a)
{
	alyx__err err = {0};
	int rc = ALYX_OK;

	if (!alyx__handle_ok(a)) {
		rc = alyx__misuse(&err, "handle");
		goto out;
	}
	if (tl_group) {
		rc = alyx__err_set(&err, ALYX_E_MISUSE, NULL,
				   "groups do not nest");
		goto out;
	}
	if (!a->wdb) {
		rc = alyx__err_set(&err, ALYX_E_MISUSE, NULL,
				   "the handle was opened read-only");
		goto out;
	}
	pthread_mutex_lock(&a->wmu);
	rc = alyx__tx_begin(a->wdb, true, &err);
	if (rc != ALYX_OK) {
		pthread_mutex_unlock(&a->wmu);
		goto out;
	}
	tl_group = a;
out:
	return quiet_finish(a, &err);
}

int alyx__group_open(alyx *a, int64_t wait_ms, alyx__err *err)
{
	struct timespec ts;
	int e;

	if (tl_group)
		return alyx__err_set(err, ALYX_E_MISUSE, NULL,
				     "groups do not nest");
	if (!a->wdb)
		return alyx__err_set(err, ALYX_E_MISUSE, NULL,
				     "the handle was opened read-only");
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += wait_ms / 1000;
	ts.tv_nsec += (wait_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	e = pthread_mutex_timedlock(&a->wmu, &ts);
	if (e)
		return alyx__err_set(err, ALYX_E_BUSY, NULL,
				     "the database writer stayed busy for "
				     "%lld ms", (long long)wait_ms);
	if (alyx__tx_begin(a->wdb, true, err) != ALYX_OK) {
		pthread_mutex_unlock(&a->wmu);
		return err->code;
	}
	tl_group = a;
	tl_group_reads = true;
	return ALYX_OK;
}

int alyx__group_close(alyx *a, bool ok, alyx__err *err)
{
	int rc = ALYX_OK;

	if (tl_group != a)
		return alyx__err_set(err, ALYX_E_MISUSE, NULL,
				     "no group open on this handle");
	tl_group = NULL;
	tl_group_reads = false;
	if (ok)
		rc = alyx__tx_commit(a->wdb, err);
	if (!ok || rc != ALYX_OK)
		alyx__tx_rollback(a->wdb);
	pthread_mutex_unlock(&a->wmu);
	if (ok && rc == ALYX_OK)
		alyx__rt_notify(a);
	return rc;
}

bool alyx__group_held(const alyx *a)
{
	return a && tl_group == a;
}

int alyx__group_end(alyx *a)
{
	alyx__err err = {0};

	if (!alyx__handle_ok(a) || tl_group != a) {
		alyx__err_set(&err, ALYX_E_MISUSE, NULL,
			      "no group open on this handle");
		goto out;
	}
	tl_group = NULL;
	tl_group_reads = false;
	alyx__tx_commit(a->wdb, &err);
	pthread_mutex_unlock(&a->wmu);
	if (err.code == ALYX_OK)
		alyx__rt_notify(a);
out:
	return quiet_finish(a, &err);
}

/* ---- JSON input ---- */

/* Deepest nesting of arrays/objects in a JSON text, strings skipped. */
static int json_depth(const char *s, size_t n, int cap)
{
	int depth = 0, max = 0;
	bool str = false;
	size_t i;

	for (i = 0; i < n; i++) {
		char c = s[i];

		if (str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				str = false;
		} else if (c == '"') {
			str = true;
		} else if (c == '[' || c == '{') {
			if (++depth > max)
				max = depth;
			if (max > cap)
				break;
		} else if (c == ']' || c == '}') {
			depth--;
		}
	}
	return max;
}

int alyx__json_parse(alyx *a, const char *json, size_t len, const char *what,
		     cJSON **out, alyx__err *err)
{
	const char *end = NULL;
	char d[160];
	cJSON *j;

	*out = NULL;
	if (!json)
		return alyx__misuse(err, what);
	if (len == (size_t)-1)
		len = strnlen(json, a->max_body + 1);
	snprintf(d, sizeof(d), "{\"argument\":\"%s\"}", what);
	if (len > a->max_body)
		return alyx__err_setd(err, ALYX_E_TOOBIG,
				      alyx__asprintf("{\"argument\":\"%s\","
						     "\"max_bytes\":%zu}",
						     what, a->max_body),
				      "%s is larger than %zu bytes", what,
				      a->max_body);
	if (!alyx__utf8_valid(json, len))
		return alyx__err_set(err, ALYX_E_BADJSON, d,
				     "%s is not valid UTF-8", what);
	if (json_depth(json, len, ALYX__MAX_DEPTH) > ALYX__MAX_DEPTH)
		return alyx__err_set(err, ALYX_E_BADJSON, d,
				     "%s is nested deeper than %d levels", what,
				     ALYX__MAX_DEPTH);
	j = cJSON_ParseWithLengthOpts(json, len, &end, false);
	if (!j) {
		size_t off = end ? (size_t)(end - json) : 0;

		return alyx__err_setd(err, ALYX_E_BADJSON,
				      alyx__asprintf("{\"argument\":\"%s\","
						     "\"offset\":%zu}",
						     what, off),
				      "%s is not valid JSON (at byte %zu)",
				      what, off);
	}
	while (end && (size_t)(end - json) < len &&
	       (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
		end++;
	if (end && (size_t)(end - json) < len && *end) {
		cJSON_Delete(j);
		return alyx__err_set(err, ALYX_E_BADJSON, d,
				     "%s has trailing data after the JSON value",
				     what);
	}
	*out = j;
	return ALYX_OK;
}

/* ---- entry and exit helpers ---- */

int alyx__finish(const alyx *a, alyx__err *err)
{
	int rc = alyx__report(a, err);

	alyx__err_clear(err);
	return rc;
}

int alyx__enter(alyx *a, alyx__err *err)
{
	if (!alyx__handle_ok(a))
		return alyx__err_set(err, ALYX_E_MISUSE,
				     "{\"argument\":\"handle\"}",
				     "the alyx handle is NULL, closed or not "
				     "a handle");
	return ALYX_OK;
}

int alyx__coll_find(alyx__snap *s, const char *name,
		    const alyx__collection **out, alyx__err *err)
{
	alyx_buf d;

	*out = NULL;
	if (!name)
		return alyx__misuse(err, "collection");
	*out = alyx__schema_coll(s->schema, name);
	if (*out)
		return ALYX_OK;
	alyx__buf_init(&d, 0);
	alyx__buf_adds(&d, "{\"collection\":");
	alyx__json_strz(&d, name);
	alyx__buf_addc(&d, '}');
	return alyx__err_setd(err, ALYX_E_NOTFOUND, alyx__buf_take(&d),
			      "unknown collection '%.200s'", name);
}

char *alyx__details_prepend(const char *details, const char *key,
			    const char *json)
{
	alyx_buf b;
	const char *rest = "}";

	if (details) {
		while (*details == ' ' || *details == '\n')
			details++;
		if (*details == '{') {
			rest = details + 1;
			while (*rest == ' ' || *rest == '\n')
				rest++;
		}
	}
	alyx__buf_init(&b, 0);
	alyx__buf_addc(&b, '{');
	alyx__json_strz(&b, key);
	alyx__buf_addc(&b, ':');
	alyx__buf_adds(&b, json);
	if (*rest != '}')
		alyx__buf_addc(&b, ',');
	alyx__buf_adds(&b, rest);
	return alyx__buf_take(&b);
}

/* ---- open and close ---- */

static void handle_free(alyx *a)
{
	struct alyx__reader *r, *next;

	if (!a)
		return;
	alyx__rt_free(a->rt);
	for (r = a->all; r; r = next) {
		next = r->next_all;
		alyx__qcache_free(r->qc);
		alyx__conn_close(r->db);
		alyx__free(r);
	}
	if (a->wdb) {
		alyx__err err = {0};

		/* Readers are closed: TRUNCATE can reset the WAL file. */
		alyx__wal_checkpoint(a->wdb, &err);
		alyx__err_clear(&err);
		alyx__conn_close(a->wdb);
	}
	alyx__fn_free(a->fn);
	alyx__snap_put(a->snap);
	alyx__config_free(a->cfg);
	alyx__auth_free(a->auth);
	pthread_mutex_destroy(&a->rmu);
	pthread_mutex_destroy(&a->wmu);
	pthread_rwlock_destroy(&a->snap_lock);
	alyx__free(a->migrations_dir);
	alyx__free(a->schema_path);
	alyx__free(a->db_path);
	alyx__free(a->dir);
	a->magic = 0;
	alyx__free(a);
}

static alyx *handle_new(void)
{
	pthread_mutexattr_t ma;
	alyx *a = alyx__calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&a->wmu, &ma);
	pthread_mutexattr_destroy(&ma);
	pthread_mutex_init(&a->rmu, NULL);
	pthread_rwlock_init(&a->snap_lock, NULL);
	alyx__conn_opts_default(&a->copts);
	a->max_body = ALYX__DEFAULT_MAX_BODY;
	return a;
}

/* Directory part of a path ("." when there is none). */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return alyx__strdup(".");
	if (slash == path)
		return alyx__strdup("/");
	return alyx__strndup(path, (size_t)(slash - path));
}

static int open_paths(alyx *a, const char *dir, unsigned flags,
		      alyx__err *err)
{
	char real[PATH_MAX];
	struct stat st;
	const char *db;
	char *data_dir = NULL;
	int rc = ALYX_OK;

	if (!realpath(dir, real) || stat(real, &st) != 0 ||
	    !S_ISDIR(st.st_mode))
		return alyx__err_set(err, ALYX_E_NOTFOUND,
				     "{\"argument\":\"dir\"}",
				     "project directory %.300s not found",
				     dir);
	a->dir = alyx__strdup(real);
	a->schema_path = alyx__path_join(real, "schema.yaml");
	a->migrations_dir = alyx__path_join(real, "migrations");
	db = a->cfg->database.path;
	a->db_path = db[0] == '/' ? alyx__strdup(db)
				  : alyx__path_join(real, db);
	if (!a->dir || !a->schema_path || !a->migrations_dir || !a->db_path)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	if (flags & ALYX_OPEN_CREATE) {
		data_dir = dir_of(a->db_path);
		rc = data_dir ? alyx__mkdirs(data_dir, 0755, err)
			      : alyx__err_set(err, ALYX_E_NOMEM, NULL,
					      "out of memory");
		alyx__free(data_dir);
	}
	return rc;
}

static int open_handle(const char *dir, const char *config_path,
		       unsigned flags, alyx **out)
{
	alyx__err err = {0};
	alyx__schema *schema = NULL;
	alyx *a = NULL;
	int rc;

	if (!out) {
		rc = alyx__misuse(&err, "out");
		goto out;
	}
	*out = NULL;
	if (!dir) {
		rc = alyx__misuse(&err, "dir");
		goto out;
	}
	if ((flags & ~(ALYX_OPEN_CREATE | ALYX_OPEN_READONLY)) ||
	    ((flags & ALYX_OPEN_CREATE) && (flags & ALYX_OPEN_READONLY))) {
		rc = alyx__err_set(&err, ALYX_E_MISUSE,
				   "{\"argument\":\"flags\"}",
				   "bad flags 0x%x", flags);
		goto out;
	}
	a = handle_new();
	if (!a) {
		rc = alyx__err_set(&err, ALYX_E_NOMEM, NULL, "out of memory");
		goto out;
	}
	a->flags = flags;
	rc = alyx__auth_new(&a->auth, &err);
	if (rc == ALYX_OK)
		rc = alyx__config_load(config_path ? config_path : dir,
				       &a->cfg, &err);
	if (rc == ALYX_OK)
		rc = open_paths(a, dir, flags, &err);
	if (rc != ALYX_OK)
		goto out;
	a->copts.readonly = flags & ALYX_OPEN_READONLY;
	a->copts.busy_timeout_ms = a->cfg->database.busy_timeout_ms;
	a->copts.cache_size = a->cfg->database.cache_size;
	if (a->cfg->server.max_body > 0)
		a->max_body = (size_t)a->cfg->server.max_body;
	if (!(flags & ALYX_OPEN_READONLY)) {
		alyx__conn_opts o = a->copts;

		o.create = flags & ALYX_OPEN_CREATE;
		rc = alyx__conn_open(a->db_path, &o, &a->wdb, &err);
		if (rc == ALYX_OK)
			rc = alyx__store_init(a->wdb, &err);
		if (rc == ALYX_OK)
			rc = alyx__store_load_schema(a->wdb, &schema, &err);
	} else {
		struct alyx__reader *r = NULL;

		rc = reader_take(a, &r, &err);
		if (rc == ALYX_OK) {
			rc = alyx__store_load_schema(r->db, &schema, &err);
			reader_give(a, r);
		}
	}
	if (rc == ALYX_OK)
		rc = alyx__snap_set(a, schema, &err);
	schema = NULL;
	if (rc != ALYX_OK)
		goto out;
	a->magic = ALYX__MAGIC;
	if (!live_add(a)) {
		rc = alyx__err_set(&err, ALYX_E_NOMEM, NULL, "out of memory");
		goto out;
	}
	*out = a;
	a = NULL;
out:
	handle_free(a);
	/* An alyx_open failure is read with alyx_errmsg(NULL). */
	return alyx__finish(out ? *out : NULL, &err);
}

ALYX_API int alyx_open(const char *dir, unsigned flags, alyx **out)
{
	return open_handle(dir, NULL, flags, out);
}

ALYX_API int alyx_open_config(const char *dir, const char *config_path,
			      unsigned flags, alyx **out)
{
	return open_handle(dir, config_path, flags, out);
}

ALYX_API void alyx_close(alyx *a)
{
	if (!alyx__handle_ok(a))
		return;
	live_remove(a);
	if (tl_pass.a == a) {
		tl_pass.a = NULL;
		tl_pass.r = NULL;
	}
	if (tl_group == a) {
		tl_group = NULL;
		tl_group_reads = false;
		alyx__tx_rollback(a->wdb);
		pthread_mutex_unlock(&a->wmu);
	}
	/* A reader held by an open pass is in a->all, and idle or not it is
	 * closed below; nothing else may be running (see alyx.h). */
	handle_free(a);
}

ALYX_API const char *alyx_project_dir(const alyx *a)
{
	return alyx__handle_ok(a) ? a->dir : NULL;
}

ALYX_API const char *alyx_db_path(const alyx *a)
{
	return alyx__handle_ok(a) ? a->db_path : NULL;
}

ALYX_API int alyx_config_json(alyx *a, char **out)
{
	alyx__err err = {0};
	int rc = out ? alyx__enter(a, &err) : alyx__misuse(&err, "out");

	if (out)
		*out = NULL;
	if (rc == ALYX_OK) {
		*out = alyx__config_to_json(a->cfg, true);
		if (!*out)
			alyx__err_set(&err, ALYX_E_NOMEM, NULL,
				      "out of memory");
	}
	return alyx__finish(a, &err);
}
