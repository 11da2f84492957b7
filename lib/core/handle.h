/*
 * handle.h - the alyx handle's internals: connections, the applied schema,
 * transactions for public writes, group commit and read passes.
 * Internal to libalyx (lib/core and lib/http).
 *
 * Threads.  One writer connection, guarded by a recursive mutex; reader
 * connections come from a pool, one per concurrent reader.  Every
 * connection is SQLITE_OPEN_NOMUTEX and used by one thread at a time.
 * The applied schema is a reference-counted snapshot swapped atomically
 * when the schema changes; a reader keeps the snapshot it took alive.
 */
#ifndef ALYX_HANDLE_H
#define ALYX_HANDLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "core/core.h"
#include "query/query.h"
#include "schema/schema.h"
#include "store/store.h"

#define ALYX__MAGIC 0x616c7978u		/* "alyx" */
#define ALYX__MAX_DEPTH 64		/* JSON nesting cap for inputs */
#define ALYX__DEFAULT_MAX_BODY (1u << 20)

/* A shared, immutable snapshot of the applied schema. */
typedef struct alyx__snap {
	atomic_int refs;
	alyx__schema *schema;	/* never NULL (empty schema when none) */
} alyx__snap;

struct alyx__reader;
struct alyx__config;
struct alyx__rt;
struct alyx__auth;
struct alyx__fn;

struct alyx {
	uint32_t magic;
	unsigned flags;			/* ALYX_OPEN_* */
	char *dir;			/* project directory */
	char *db_path;
	char *schema_path;		/* <dir>/schema.yaml */
	char *migrations_dir;		/* <dir>/migrations */
	struct alyx__config *cfg;
	struct alyx__auth *auth;	/* lib/auth: rate limits and such */
	size_t max_body;		/* cap on JSON inputs */
	alyx__conn_opts copts;

	pthread_rwlock_t snap_lock;
	alyx__snap *snap;

	pthread_mutex_t wmu;		/* recursive */
	sqlite3 *wdb;			/* NULL for read-only handles */

	pthread_mutex_t rmu;
	struct alyx__reader *idle;	/* pool of idle readers */
	struct alyx__reader *all;	/* every reader (for close) */
	/* lib/functions: executor pools, made on first use. */
	_Atomic(struct alyx__fn *) fn;

	/* lib/realtime: the broker, made on first use of the realtime
	 * API; writers wake it after each commit (alyx__rt_notify). */
	_Atomic(struct alyx__rt *) rt;
};

/* True if `a` is a live handle (not NULL, not closed). */
bool alyx__handle_ok(const alyx *a);
/* Sets err to ALYX_E_MISUSE naming the bad handle. */
int alyx__misuse(alyx__err *err, const char *what);

/* The current schema snapshot (never NULL); release when done. */
alyx__snap *alyx__snap_get(alyx *a);
void alyx__snap_put(alyx__snap *s);
/* Replaces the applied schema (takes ownership of `s`). */
int alyx__snap_set(alyx *a, alyx__schema *s, alyx__err *err);

/*
 * A public write: alyx__wtx_begin locks the writer and opens BEGIN
 * IMMEDIATE, or, when this thread is inside a group (alyx__group_begin),
 * a SAVEPOINT so that a failing write is undone alone.  end commits (or
 * releases) when ok is true, otherwise rolls back, and unlocks.
 */
typedef struct alyx__wtx {
	alyx *a;
	bool sp;	/* inside a group: savepoint */
	bool open;
} alyx__wtx;
int alyx__wtx_begin(alyx *a, alyx__wtx *t, alyx__err *err);
int alyx__wtx_end(alyx__wtx *t, bool ok, alyx__err *err);

/*
 * Group commit for the HTTP server's writer thread: begin locks the writer
 * and opens BEGIN IMMEDIATE; every public write this thread makes until
 * end runs in its own SAVEPOINT.  end commits and unlocks; a failed commit
 * is reported (alyx_errcode on this thread) and returned.  Groups do not
 * nest.  These four calls report only their own failures: on success the
 * thread's last error is left as it was.
 */
int alyx__group_begin(alyx *a);
int alyx__group_end(alyx *a);
/*
 * The same group for code that keeps its own error (lib/functions: a
 * function's ctx.db.transaction).  open waits at most wait_ms for the
 * writer (ALYX_E_BUSY after that); close commits when ok (realtime is
 * woken) and rolls back otherwise.  While a thread holds such a group,
 * its reads on that handle use the writer connection, so they see the
 * group's own uncommitted writes (a group_begin group's reads do not).
 */
int alyx__group_open(alyx *a, int64_t wait_ms, alyx__err *err);
int alyx__group_close(alyx *a, bool ok, alyx__err *err);
bool alyx__group_held(const alyx *a);

/*
 * A create or update validated ahead of its write, so the HTTP server's
 * service threads parse and check documents and the one writer thread
 * only writes them.  alyx__write_prepare parses the JSON and validates it
 * against the current schema (defaults and generated ids included) and
 * the caller's access to the body's fields, keeping that schema snapshot;
 * a failure is reported like any public call's.  alyx__write_run checks
 * the rules and writes it (in the caller's group or its own transaction)
 * and sets *out like alyx_doc_create/update; if the schema changed in
 * between, it validates `json` again against the new one.  Both take the
 * same caller context as alyx_doc_create (NULL: the system).
 * alyx__write_free releases what prepare kept (also after run).
 */
typedef struct alyx__prepared {
	struct alyx__snap *snap;
	const struct alyx__collection *c;
	struct alyx__row *row;
	cJSON *body;		/* the parsed JSON (rules see it) */
	bool update;
} alyx__prepared;
int alyx__write_prepare(alyx *a, const alyx_ctx *ctx, const char *collection,
			bool update, const char *json, size_t len,
			alyx__prepared *p);
int alyx__write_run(alyx *a, const alyx_ctx *ctx, alyx__prepared *p,
		    const char *collection, const char *id, const char *json,
		    size_t len, char **out);
void alyx__write_free(alyx__prepared *p);

/* alyx_doc_get and alyx_query_str appending their JSON to `b` instead of
 * returning a new string (the HTTP replies write it straight behind
 * their headers, in the thread's reply buffer).  On failure b is as it
 * was, and the error is reported like the public calls'. */
int alyx__doc_get_buf(alyx *a, const alyx_ctx *ctx, const char *collection,
		      const char *id, const char *opts, alyx_buf *b);
int alyx__query_str_buf(alyx *a, const alyx_ctx *ctx, const char *collection,
			const char *qs, alyx_buf *b);
/* alyx__query_str_buf for parameters already split and decoded (the HTTP
 * layer's, from libwebsockets); none is the empty query. */
int alyx__query_args_buf(alyx *a, const alyx_ctx *ctx,
			 const char *collection, const alyx__qarg *args,
			 size_t n, alyx_buf *b);

/*
 * Read passes: begin takes a reader connection for this thread and opens
 * one read transaction that every read of this thread on `a` uses until
 * end (snapshot at most one pass stale).  Outside a pass each read takes a
 * pooled reader and runs in autocommit.  Passes nest by count.
 */
int alyx__read_pass_begin(alyx *a);
int alyx__read_pass_end(alyx *a);

/* A reader connection for one read: the pass connection if this thread
 * holds a pass on `a`, else one from the pool.  Return it with
 * alyx__reader_put. */
typedef struct alyx__rd {
	struct alyx__reader *r;
	sqlite3 *db;
	alyx__qcache *qc;	/* the connection's query statement cache */
	bool pass;
} alyx__rd;
int alyx__reader_get(alyx *a, alyx__rd *rd, alyx__err *err);
void alyx__reader_put(alyx *a, alyx__rd *rd);

/* Parses untrusted JSON text (len may be (size_t)-1: NUL-terminated) after
 * checking its size against a->max_body (ALYX_E_TOOBIG), its nesting
 * depth (at most ALYX__MAX_DEPTH) and UTF-8 (ALYX_E_BADJSON). */
int alyx__json_parse(alyx *a, const char *json, size_t len, const char *what,
		     cJSON **out, alyx__err *err);

/* Ends a public call: reports `err` for this thread (alyx__report) and
 * clears it; returns the code. */
int alyx__finish(const alyx *a, alyx__err *err);
/* Checks the handle (MISUSE unless live). */
int alyx__enter(alyx *a, alyx__err *err);
/* The collection `name` of the snapshot, or ALYX_E_NOTFOUND with details
 * {"collection":name}; MISUSE if name is NULL. */
int alyx__coll_find(alyx__snap *s, const char *name,
		    const alyx__collection **out, alyx__err *err);
/* A copy of the error details object with `"key":<json>` added first
 * (details may be NULL).  Returns NULL when out of memory. */
char *alyx__details_prepend(const char *details, const char *key,
			    const char *json);

#endif
