/*
 * functions.h - Alyx functions: discovery of functions/, warm pools of
 * executor processes (runtimes/node, runtimes/python), sandboxing and
 * invocation (docs/functions.md).  Internal to libalyx.
 *
 * The state hangs off the handle (a->fn), made on first use by
 * alyx_invoke() or alyx_functions_json() and freed by alyx_close().  No
 * thread is started: pools grow on demand, idle executors are reaped by
 * later calls, and each invocation does its pipe I/O on the caller's
 * thread.  Every entry point is safe to call from several threads.
 */
#ifndef ALYX_FUNCTIONS_H
#define ALYX_FUNCTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "util/util.h"

struct alyx__fn;
typedef struct alyx__fn_reg alyx__fn_reg;

enum {
	ALYX__RT_NODE = 0,
	ALYX__RT_PYTHON = 1,
	ALYX__RT_COUNT
};

/* Invocations that may wait for an executor, per pool, as a multiple of
 * max_instances; beyond that a call fails at once (ALYX_E_UNAVAILABLE). */
#define ALYX__FN_QUEUE_FACTOR 4
/* The executor refuses a response line longer than this (its own error
 * OUTPUT_TOO_LARGE); libalyx kills an executor that sends more than four
 * times as much. */
#define ALYX__FN_MAX_OUTPUT (1u << 20)
/* Rescan functions/ at least this often (also when its mtime changes). */
#define ALYX__FN_RESCAN_MS 1000

/* One discovered function (a copy owned by the caller of
 * alyx__fn_lookup; release with alyx__fn_def_clear). */
typedef struct alyx__fn_def {
	char *name;
	char *file;		/* absolute path of the code file */
	int runtime;		/* ALYX__RT_* */
	int64_t timeout_ms;	/* manifest, else the runtime's exec_timeout */
	int64_t memory;		/* bytes; manifest, else memory_limit */
	bool network;		/* manifest `network: true` */
	char *env_json;		/* the manifest env, expanded: JSON object */
	char *error;		/* a broken manifest: why (NULL when fine) */
	int64_t gen;		/* bumped when functions/_shared changes:
				 * executors of an older one are replaced */
} alyx__fn_def;

void alyx__fn_def_clear(alyx__fn_def *d);

/* Frees the functions state: kills every executor.  NULL is a no-op. */
void alyx__fn_free(struct alyx__fn *fn);

/* ---- between the files of lib/functions ---- */

struct alyx;
/* The handle's functions state, made on first use. */
int alyx__fn_get(struct alyx *a, struct alyx__fn **out, alyx__err *err);
/* Runs function d with `input` (a JSON object, len bytes) and `auth` (JSON
 * text or NULL) on an executor of its pool.  On success *out is the
 * response line (caller frees).  Errors: ALYX_E_VALIDATION (details
 * {"fields":[...],"logs":[...]}), ALYX_E_FUNCTION (the function failed:
 * details {"function","code","details","logs","request_id"}, or its
 * executor died: code EXECUTOR_EXITED), ALYX_E_TIMEOUT, ALYX_E_TOOBIG,
 * ALYX_E_UNAVAILABLE (pool full, no interpreter), ALYX_E_NOMEM. */
int alyx__fn_call(struct alyx__fn *fn, const alyx__fn_def *d,
		  const char *input, size_t len, const char *auth, char **out,
		  alyx__err *err);
/* Appends the pools as a JSON array to b. */
void alyx__fn_pools_json(struct alyx__fn *fn, alyx_buf *b);
/* "bwrap" or "none". */
const char *alyx__fn_sandbox(struct alyx__fn *fn);
/* The registry of fn. */
alyx__fn_reg *alyx__fn_registry(struct alyx__fn *fn);

struct alyx__config;

/* The registry: the functions directory scanned on demand. */
int alyx__fn_reg_new(const char *dir, const struct alyx__config *cfg,
		     alyx__fn_reg **out, alyx__err *err);
void alyx__fn_reg_free(alyx__fn_reg *r);
/* Copies function `name` into *d: ALYX_E_NOTFOUND when there is none. */
int alyx__fn_lookup(alyx__fn_reg *r, const char *name, alyx__fn_def *d,
		    alyx__err *err);
/* Appends [{"name","runtime","file","timeout_ms","memory","network",
 * "status"[,"error"]},...] to b. */
void alyx__fn_reg_json(alyx__fn_reg *r, alyx_buf *b);
const char *alyx__fn_runtime_name(int rt);

/* Expands ${VAR} and ${VAR:-default} from the environment; NULL when out
 * of memory, or (with *bad set) on an unterminated ${. */
char *alyx__fn_expand_env(const char *s, bool *bad);

/* ---- per-function logs for the admin UI (logs.c) ---- */
typedef struct alyx__fn_logbook alyx__fn_logbook;
alyx__fn_logbook *alyx__fn_logbook_new(void);
void alyx__fn_logbook_free(alyx__fn_logbook *lb);
/* Records one invocation of `name`: outcome rc (message msg), its
 * response line or error details `json` (for "logs" and "request_id";
 * may be NULL) and its duration. */
void alyx__fn_log_call(alyx__fn_logbook *lb, const char *name, int rc,
		       const char *msg, const char *json, double duration_ms);
/* Appends {"function","max_entries","entries":[...oldest first]} to b. */
void alyx__fn_logs_json(alyx__fn_logbook *lb, const char *name,
			alyx_buf *b);
/* The logbook of fn (pool.c). */
alyx__fn_logbook *alyx__fn_logbook_of(struct alyx__fn *fn);

/* ---- the internal API: ctx.db (internal.c; docs/functions.md) ----
 *
 * Every invocation gets a token ("itk_<id>_<secret>") that authorizes the
 * internal database API (/internal/v1/db/query, /exec, /tx) for as long
 * as the invocation runs.  The requests run on the invoking thread, as
 * trusted code (ctx NULL), whether they arrive on the executor's own
 * pipe or over HTTP (handed to that thread and answered through a
 * callback), so a transaction stays on one thread and one writer
 * connection. */

enum {
	ALYX__FN_DB_QUERY,	/* /internal/v1/db/query */
	ALYX__FN_DB_EXEC,	/* /internal/v1/db/exec */
	ALYX__FN_DB_TX,		/* /internal/v1/db/tx */
	ALYX__FN_DB_COUNT
};
/* ALYX__FN_DB_* for a path, or -1. */
int alyx__fn_db_route(const char *path);

typedef struct alyx__fn_inv alyx__fn_inv;

/* Registers an invocation of d on this thread with a fresh token that
 * expires after ttl_ms at the latest. */
int alyx__fn_inv_begin(struct alyx *a, const alyx__fn_def *d, int64_t ttl_ms,
		       alyx__fn_inv **out, alyx__err *err);
const char *alyx__fn_inv_token(const alyx__fn_inv *inv);
/* Appends the request context's internal API keys: ,"internal_token",
 * "alyx_url" (when a server runs) and "db_transport": "pipe", or "http"
 * when $ALYX_FUNCTIONS_DB is "http" and a server runs. */
void alyx__fn_inv_context(const alyx__fn_inv *inv, alyx_buf *b);
/* The address of a's HTTP server (NULL: none), for alyx_url. */
void alyx__fn_set_url(struct alyx *a, const char *url);
/* Ends it (same thread): rolls back an open transaction, revokes the
 * token and fails requests that arrived over HTTP and were not run. */
void alyx__fn_inv_end(alyx__fn_inv *inv);

/* I/O results of one exchange with an executor. */
enum { ALYX__IO_OK, ALYX__IO_TIMEOUT, ALYX__IO_EOF, ALYX__IO_TOOBIG,
       ALYX__IO_ERR };

/* Reads the executor's answer (one line, without '\n', into line) from
 * out_fd before the deadline, meanwhile answering its internal API
 * requests (lines starting {"internal":) on in_fd and running those
 * that arrive over HTTP for this invocation.  inv may be NULL (no
 * internal API). */
int alyx__fn_converse(alyx__fn_inv *inv, int in_fd, int out_fd,
		      alyx_buf *line, int64_t deadline);

/* Writes all of s to fd before the deadline (pool.c). */
int alyx__fn_write_all(int fd, const char *s, size_t n, int64_t deadline,
		       bool *timed_out);

/* Answer of a request submitted over HTTP: rc is ALYX_OK with `body`
 * (JSON text, the callee frees it with alyx__free) or an error code with
 * msg and details (JSON object text or NULL).  Called once, on the
 * invoking thread or, when the token is refused, on the caller's. */
typedef void (*alyx__fn_db_cb)(void *ud, int rc, char *body, const char *msg,
			       const char *details);
/* Hands one internal API request (route ALYX__FN_DB_*) authorized by
 * `token` to its invocation.  A token that is missing, wrong, expired
 * or revoked is answered at once with ALYX_E_UNAUTHORIZED. */
void alyx__fn_db_submit(struct alyx *a, const char *token, int route,
			const char *body, size_t len, alyx__fn_db_cb cb,
			void *ud);

/* ---- the container runner (container.c; docs/functions.md) ----
 *
 * alyx.yaml `functions.runner: container`: each executor is a long-lived
 * container made through the Docker Engine API on
 * functions.container_socket, connected to libalyx by one unix socket
 * (requests in, responses out: the same fd for both). */

typedef struct alyx__engine alyx__engine;
typedef struct alyx__box alyx__box;	/* one container */

typedef struct alyx__box_spec {
	int runtime;		/* ALYX__RT_* */
	bool network;
	int64_t memory;		/* bytes */
	const char *fn_dir;	/* mounted read-only at the same path */
	const char *rt_dir;	/* the executors, likewise */
} alyx__box_spec;

/* The client of the engine at cfg's socket; it is reached on the first
 * alyx__box_start (which also removes containers left by alyx processes
 * that are gone). */
int alyx__engine_new(const struct alyx__config *cfg, alyx__engine **out,
		     alyx__err *err);
/* Deletes the stopped containers; NULL is a no-op. */
void alyx__engine_free(alyx__engine *e);
/* Creates and starts a container for spec and waits for its executor to
 * connect: *fd is the protocol socket (non-blocking, the caller closes
 * it).  Takes a container start (~0.5 s): call it with no pool lock
 * held.  Errors: ALYX_E_UNAVAILABLE (engine unreachable or refusing,
 * image missing, container exited early, start timeout), ALYX_E_CONFIG,
 * ALYX_E_IO, ALYX_E_NOMEM. */
int alyx__box_start(alyx__engine *e, const alyx__box_spec *spec,
		    alyx__box **out, int *fd, alyx__err *err);
/* Queues b to be killed and deleted (cheap: safe under a lock). */
void alyx__box_stop(alyx__box *b);
/* Kills and deletes the queued containers (Engine API requests: call it
 * with no lock held). */
void alyx__engine_reap(alyx__engine *e);
/* After its connection ended: how the container ended, e.g. "exited with
 * status 3" (waits up to 1 s for the engine to see the exit). */
void alyx__box_exit_text(alyx__box *b, char *out, size_t n);

#endif
