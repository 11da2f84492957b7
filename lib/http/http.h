/*
 * http.h - the REST server's internals (lib/http): service threads (one
 * libwebsockets context each), the writer thread, routing, replies,
 * metrics.  Handlers only translate HTTP to and from the public C API
 * ("one core, many doors"); no business logic lives here.
 *
 * Threads and ownership:
 *  - a service thread (struct alyx__svc) owns its lws context, its
 *    connections and their requests; only it touches them.
 *  - the writer thread owns the jobs it has taken off the queue until it
 *    hands each one back to its service thread (svc->done list +
 *    lws_cancel_service()).  A job's `req` pointer is only ever read or
 *    written by the owning service thread.
 *  - metrics counters are written by one thread each and read by any
 *    (relaxed atomics).
 */
#ifndef ALYX_HTTP_H
#define ALYX_HTTP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <libwebsockets.h>
#include <sqlite3.h>

#include "http/h1.h"
#include "util/util.h"

struct alyx__svc;
struct alyx__req;
struct alyx__h1c;

/* ---- routes (also the metrics' route label) ---- */
enum alyx__route {
	R_ROOT,
	R_HEALTH,
	R_LIVE,
	R_READY,
	R_STATS,
	R_METRICS,
	R_OPENAPI,
	R_BATCH,
	R_COLL,		/* /api/collections/:name */
	R_DOC,		/* /api/collections/:name/:id */
	R_BENCH,	/* /bench/hello (ALYX_SERVER_BENCH_ROUTES) */
	R_AUTH_REGISTER,	/* /api/auth/...: auth-routes.c */
	R_AUTH_LOGIN,
	R_AUTH_REFRESH,
	R_AUTH_LOGOUT,
	R_AUTH_ME,
	R_AUTH_REQ_VERIFY,	/* /api/auth/request-verification */
	R_AUTH_VERIFY,		/* /api/auth/verify */
	R_AUTH_REQ_RESET,	/* /api/auth/request-password-reset */
	R_AUTH_CONFIRM_RESET,	/* /api/auth/confirm-password-reset */
	R_AUTH_PROVIDERS,	/* /api/auth/providers */
	R_AUTH_OAUTH,		/* /api/auth/oauth/:provider */
	R_AUTH_OAUTH_CB,	/* /api/auth/oauth/:provider/callback */
	R_REALTIME,	/* /api/realtime: ws.c */
	R_FUNCTION,		/* POST /api/functions/:name: fn-routes.c */
	R_ADMIN_FUNCTIONS,	/* GET /api/admin/functions */
	R_ADMIN_FN_LOGS,	/* GET /api/admin/functions/:name/logs */
	R_INTERNAL_QUERY,	/* POST /internal/v1/db/query|exec|tx */
	R_INTERNAL_EXEC,
	R_INTERNAL_TX,
	R_NONE,		/* no route matched */
	R_COUNT
};
const char *alyx__route_label(int route);
/* Answers the R_AUTH_* routes (auth-routes.c). */
int alyx__h_auth(struct alyx__svc *t, struct alyx__req *r);
struct alyx__job;
/* Answers a finished JOB_OAUTH (auth-routes.c). */
int alyx__h_oauth_done(struct alyx__svc *t, struct alyx__req *r,
		       struct alyx__job *j);

enum alyx__method {
	M_GET, M_POST, M_PATCH, M_DELETE, M_PUT, M_OPTIONS, M_HEAD, M_OTHER,
	M_COUNT
};
const char *alyx__method_name(int m);

/* ---- metrics ---- */
#define ALYX_N_STATUS 20
#define ALYX_N_BUCKETS 14
extern const int alyx__status_codes[ALYX_N_STATUS];	/* last is "other" */
extern const double alyx__latency_buckets[ALYX_N_BUCKETS]; /* seconds */

typedef struct alyx__metrics {
	_Atomic uint64_t req[R_COUNT][M_COUNT][ALYX_N_STATUS];
	_Atomic uint64_t hist[R_COUNT][ALYX_N_BUCKETS];	/* non-cumulative */
	_Atomic uint64_t hist_count[R_COUNT];
	_Atomic uint64_t hist_sum_us[R_COUNT];
	_Atomic uint64_t bytes_out;
	_Atomic int64_t conns;		/* open connections */
	_Atomic uint64_t accepted;
} alyx__metrics;

/* Single-writer increment (the owning thread only). */
static inline void alyx__ctr_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed)
			      + n, memory_order_relaxed);
}
void alyx__metrics_record(alyx__metrics *m, int route, int method,
			  int status, int64_t dur_us, size_t bytes);

/* ---- write jobs ---- */
enum alyx__job_op { JOB_CREATE, JOB_UPDATE, JOB_DELETE, JOB_BATCH,
		   JOB_WEBHOOK,	/* outbound.c: POST body to the webhook */
		   JOB_OAUTH,	/* outbound.c: an OAuth callback */
		   JOB_INVOKE, JOB_INTERNAL };

typedef struct alyx__job {
	struct alyx__job *next;
	int op;
	char *coll;
	char *id;
	char *body;
	size_t body_len;
	/* create/update: parsed and validated by the service thread
	 * (alyx__write_prepare), so the writer only writes */
	struct alyx__prepared *prep;
	char *ip;		/* JOB_OAUTH: the client's address */
	struct alyx__svc *owner;	/* the service thread to answer on */
	struct alyx__req *req;		/* owner thread only; NULL: orphaned */
	/* results (writer thread, then owner thread) */
	int rc;
	char *out;		/* success JSON (alyx_free) */
	char *err_msg;		/* alyx__malloc'd */
	char *err_details;	/* JSON object text, alyx__malloc'd */
	alyx_ctx *ctx;		/* the caller's context (owned; data jobs:
				 * a copy, never NULL; JOB_INVOKE: NULL
				 * when anonymous) */
} alyx__job;

void alyx__job_free(alyx__job *j);

/* ---- requests (one per lws HTTP transaction; lws per-session data) ---- */
enum alyx__req_state {
	RS_NEW,		/* zeroed by lws */
	RS_BODY,	/* reading the body */
	RS_WRITER,	/* queued to the writer */
	RS_REPLY,	/* the writer answered; waiting for WRITEABLE */
	RS_DONE		/* reply written */
};

typedef struct alyx__req {
	struct alyx__svc *svc;
	struct lws *wsi;	/* lws's connection, or the front's raw one */
	struct alyx__h1c *h1;	/* the front's connection (front.c), or
				 * NULL: lws parsed the request */
	int64_t t0_us;
	uint8_t method;
	uint8_t route;
	uint8_t state;
	bool counted;		/* in s->inflight */
	bool cors;		/* the Origin is allowed: answer with CORS */
	bool closing;		/* reply with Connection: close */
	char rid[65];
	char *path;		/* decoded path (for logs and routing) */
	char *coll;		/* points into path copy `segs` */
	char *id;
	char *segs;		/* path copy split into segments */
	char *origin;
	alyx_buf body;
	alyx__job *job;		/* queued or answered write */
} alyx__req;

/* ---- service threads ---- */
typedef struct alyx__svc {
	struct alyx_server *srv;
	int index;
	pthread_t th;
	bool started;
	struct lws_context *ctx;
	struct lws_vhost *vh;
	struct lws *listen_wsi;
	int listen_fd;
	void *ev_loop;		/* libev loop when loop == EV */
	void *ev_prepare;
	_Atomic bool quit;
	bool in_read_pass;
	bool listen_closed;
	/* answers from the writer */
	pthread_mutex_t done_mu;
	alyx__job *done_head, *done_tail;
	_Atomic int done_pending;
	/* per-thread buffers */
	alyx_buf out;		/* LWS_PRE + reply */
	alyx_buf scratch;
	alyx_buf logbuf;
	char *frag;		/* one query argument (max_header + 1) */
	int64_t date_sec;	/* the second `date` was formatted for */
	char date[40];		/* HTTP Date header value */
	uint64_t rid_seq;
	char rid_prefix[17];
	alyx__metrics metrics;
	struct alyx__tokcache *tok;	/* verified tokens (caller.c) */
	struct alyx__wsq *wsq;	/* realtime frames for this thread (ws.c) */
	/* the HTTP front's connections (front.c) */
	struct alyx__h1c *h1_conns;
	char *h1_rx;		/* receive buffer */
	lws_sorted_usec_list_t h1_sul;	/* deadline sweep */
	bool h1_in_wcb;		/* inside a front WRITEABLE callback */
	/* wsis of ours (raw files, TLS raw sockets) to ask POLLOUT for at
	 * the end of the loop pass (alyx__svc_writable_later) */
	struct lws **rearm;
	int rearm_n, rearm_cap;
	/* TLS connections (tls.c) */
	struct lws_vhost *vh_plain;	/* WebSocket hand-overs: vh without
					 * TLS when the server has it */
	char *tls_tx;		/* LWS_PRE + one chunk of output to lws */
	bool ws_answered;	/* a handshake being handed over was refused
				 * with an answer (ws.c) */
} alyx__svc;

/* ---- the server ---- */
struct alyx_server {
	alyx *a;
	/* effective settings */
	char *host;
	int port;
	int nthreads;
	char *tls_cert, *tls_key;
	char **cors;		/* allowed origins; NULL-terminated */
	bool cors_any;
	size_t max_body;
	size_t max_header;
	int timeout_ms;
	int loop;
	int log_fd;
	int log_format;
	alyx_log_cb log_cb;
	void *log_ud;
	unsigned flags;
	int64_t started_ms;

	alyx__svc *svcs;
	/* writer thread */
	pthread_t writer;
	bool writer_started;
	pthread_mutex_t wmu;
	pthread_cond_t wcv;
	alyx__job *wq_head, *wq_tail;
	bool wquit;
	_Atomic uint64_t wq_len;
	_Atomic uint64_t w_batches, w_jobs, w_failed_commits;
	/* outbound workers (outbound.c) */
	pthread_t out_th[2];
	int out_started;
	pthread_mutex_t omu;
	pthread_cond_t ocv;
	alyx__job *oq_head, *oq_tail;
	size_t oq_len;
	bool oquit;
	/* function invocations and internal API requests (fn-routes.c) */
	struct alyx__fnq *fnq;
	/* checkpointer thread (writer.c): WAL checkpoints off the writer */
	pthread_t ckpt;
	bool ckpt_started;
	pthread_mutex_t ckpt_mu;
	pthread_cond_t ckpt_cv;
	bool ckpt_quit;		/* under ckpt_mu */
	bool ckpt_due;		/* under ckpt_mu */
	_Atomic bool ckpt_busy;		/* a round is asked for or running */
	_Atomic int ckpt_backfilled;	/* WAL frames its last round copied */
	sqlite3 *ckpt_db;
	_Atomic uint64_t w_checkpoints;

	_Atomic bool stopping;
	_Atomic int inflight;
	bool stopped;
	pthread_mutex_t stop_mu;

	/* OpenAPI cache */
	pthread_mutex_t oa_mu;
	char *oa_schema;	/* schema JSON the cache was built from */
	char *oa_doc;

	struct alyx__ws *ws;	/* realtime: dispatch thread, limits (ws.c) */
};

/* server.c */
void alyx__srv_log(struct alyx_server *s, alyx__svc *t, int level,
		   alyx_buf *line);
/* Appends the start of a log line (timestamp, level) in the configured
 * format; finish with alyx__log_kv*() and alyx__srv_log(). */
void alyx__log_begin(struct alyx_server *s, alyx_buf *b, const char *level,
		     const char *msg);
void alyx__log_kv(struct alyx_server *s, alyx_buf *b, const char *k,
		  const char *v);
void alyx__log_kvi(struct alyx_server *s, alyx_buf *b, const char *k,
		   int64_t v);
void alyx__log_end(struct alyx_server *s, alyx_buf *b);
void alyx__log_flush(alyx__svc *t);

/* service.c */
int alyx__svc_init(alyx__svc *t, alyx__err *err);
void *alyx__svc_main(void *arg);
void alyx__svc_destroy(alyx__svc *t);
void alyx__svc_read_pass(alyx__svc *t);	/* begin lazily */
/* WSI_DESTROY of a connection this thread accepted (any protocol). */
void alyx__svc_conn_gone(alyx__svc *t, struct lws *wsi);
/* The client's address (the TCP peer; proxies' headers are not trusted)
 * as text, kept from the accept, or NULL; buf (n bytes) is used only
 * for a connection the thread did not accept itself. */
const char *alyx__svc_peer(struct lws *wsi, char *buf, size_t n);

/* writer.c */
int alyx__writer_start(struct alyx_server *s, alyx__err *err);
/* Queues a job; false once the writer is stopping (answer 503). */
bool alyx__writer_push(struct alyx_server *s, alyx__job *j);
void alyx__writer_stop(struct alyx_server *s);
/* On the owning service thread: answers every finished job. */
void alyx__svc_take_done(alyx__svc *t);
/* Hands finished jobs back to their service threads (any thread). */
void alyx__jobs_deliver(struct alyx_server *s, alyx__job *list);

/* fn-routes.c: functions over HTTP.  Invocations run on worker threads
 * (started on demand), internal API requests on their invocation's
 * thread; both are answered like queued writes. */
int alyx__h_functions(struct alyx__svc *t, struct alyx__req *r);
/* The reply of a finished JOB_INVOKE / JOB_INTERNAL. */
int alyx__fn_job_reply(struct alyx__svc *t, struct alyx__req *r,
		       alyx__job *j);
int alyx__fnq_start(struct alyx_server *s, alyx__err *err);
/* Waits for running invocations and internal requests, stops the
 * workers (before the service threads go). */
void alyx__fnq_stop(struct alyx_server *s);
/* Records the handle's last error in the job (rc, message, details). */
void alyx__job_capture(alyx *a, alyx__job *j);

/* outbound.c: worker threads for requests to other servers (email
 * webhooks, OAuth providers), so no service thread or the writer ever
 * waits on the network. */
int alyx__outbound_start(struct alyx_server *s, alyx__err *err);
/* Queues a job; false when the queue is full or stopping. */
bool alyx__outbound_push(struct alyx_server *s, alyx__job *j);
void alyx__outbound_stop(struct alyx_server *s);

/* router.c: request handling on the service thread */
int alyx__req_begin(alyx__svc *t, struct lws *wsi, alyx__req *r,
		    const char *uri);
/* A request the front refuses before routing (a malformed head): the
 * JSON error with `status`, `code` and `details` (JSON object text or
 * NULL), Connection: close. */
int alyx__req_refuse(alyx__svc *t, struct lws *wsi, alyx__req *r,
		     int status, const char *code, const char *msg,
		     const char *details);
int alyx__req_body(alyx__svc *t, alyx__req *r, const void *p, size_t n);
int alyx__req_body_done(alyx__svc *t, alyx__req *r);
int alyx__req_writeable(alyx__svc *t, alyx__req *r);
void alyx__req_cleanup(alyx__svc *t, alyx__req *r);


/* front.c: plain-HTTP connections on alyx's own parser (h1.c). */
/* Takes an accepted socket (ip: its peer's address) into the thread's
 * context; -1 when it could not (the socket is closed). */
int alyx__front_adopt(alyx__svc *t, int fd, const char *ip);
/* The "alyx-h1" protocol's callback. */
int alyx__front_cb(struct lws *wsi, enum lws_callback_reasons reason,
		   void *user, void *in, size_t len);
/* Before the thread's context goes: stops the deadline sweep. */
void alyx__front_end(alyx__svc *t);
/* The same for an accepted socket of a TLS server: lws terminates TLS
 * on it ("alyx-tls" protocol, tls.c). */
int alyx__front_adopt_tls(alyx__svc *t, int fd, const char *ip);
/* alyx__tls_cb's events for a TLS wsi that carries the front's connection
 * `conn`. */
int alyx__front_tls_cb(struct lws *wsi, enum lws_callback_reasons reason,
		       void *conn, void *in, size_t len);
/* Sends what the non-blocking socket takes of p[0..n) now: how many
 * bytes (fewer when it would block), or -1 when the socket failed. */
long alyx__send_now(int fd, const char *p, size_t n);

/* tls.c: TLS connections, terminated by libwebsockets on a raw socket and
 * served by the front; a WebSocket's plaintext is relayed through a
 * socketpair.  The first byte of what an "alyx-tls" wsi carries: */
enum { ALYX_TLSW_FRONT = 1, ALYX_TLSW_RELAY = 2 };
/* Encrypts to the client what lws takes of p[0..n) now: a chunk while it
 * holds none of the client's output, else 0; -1 when the connection
 * failed. */
long alyx__tls_write(alyx__svc *t, struct lws *wsi, const char *p, size_t n);
/* TLS close_notify, then the socket's write side shut. */
void alyx__tls_shut(struct lws *wsi);
/* Relays the TLS connection `tls` to a WebSocket from now on: lws takes
 * p[0..n) (the handshake and what followed it) on the WebSocket's end,
 * whose wsi goes to *ws (NULL when lws refused or dropped it: the relay
 * still carries a refusal's answer, then closes).  0: the relay owns the
 * connection; -1: nothing changed (the caller closes). */
int alyx__tls_hand_over(alyx__svc *t, struct lws *tls, const char *p,
			size_t n, struct lws **ws);
/* The "alyx-tls" protocol's callback (the front's TLS connections, both
 * ends of a relay). */
int alyx__tls_cb(struct lws *wsi, enum lws_callback_reasons reason,
		 void *user, void *in, size_t len);
/* Before the thread's context goes. */
void alyx__tls_end(alyx__svc *t);

/*
 * POLLOUT for a raw wsi of ours asked for inside its own WRITEABLE
 * callback: lws's raw-file role clears POLLOUT after that callback
 * returns, which would undo the request, so it is asked for when the loop
 * pass ends (the front's TLS sockets go the same way).
 * forget: the wsi is closing (drops it from the list).
 */
void alyx__svc_writable_later(alyx__svc *t, struct lws *wsi);
void alyx__svc_writable_forget(alyx__svc *t, struct lws *wsi);
/* A front request's method (M_OTHER when none was read) and raw path
 * ("" when none was read; at most 255 bytes, valid until the next call
 * on this thread). */
uint8_t alyx__front_method(alyx__req *r);
const char *alyx__front_raw_path(alyx__req *r);
/* The request, whichever parser read it (front.c; the lws calls of the
 * same name have the same contract): a header's length (0: absent) and
 * copy (-1: absent or no room), whether there is a query, the idx-th
 * query piece decoded, the piece that starts with `name` (a pointer past
 * the name, into buf), the client's address. */
int alyx__hdr_len(alyx__req *r, int hh);
int alyx__hdr_copy(alyx__req *r, char *buf, int cap, int hh);
bool alyx__req_has_query(alyx__req *r);
int alyx__arg_copy(alyx__req *r, char *buf, int cap, int idx);
const char *alyx__req_urlarg(alyx__req *r, const char *name, char *buf,
			     int len);
const char *alyx__req_peer(alyx__req *r, char *buf, size_t n);
/* Sends reply bytes (LWS_PRE bytes of headroom before p); -1 when the
 * connection failed. */
int alyx__req_write(alyx__req *r, unsigned char *p, size_t n, bool final);
/* The reply is complete: -1 when the connection must close. */
int alyx__req_completed(alyx__req *r);
/* service.c: an lws connection made from a front connection (a WebSocket
 * handshake handed over): counted, with the peer's address. */
void alyx__svc_conn_adopted(alyx__svc *t, struct lws *wsi, const char *ip);

/* caller.c: the request's access context.  Fills *rc (a copy of the
 * anonymous context or of the Bearer token's, with ip pointing to
 * `ip`); rc is valid until the next request on this thread.  On failure
 * returns the code and, for a malformed header, *why. */
struct alyx__tokcache;
int alyx__req_caller(alyx__svc *t, alyx__req *r, struct alyx_ctx *rc,
		     char *ip, size_t ip_len, const char **why);
/* The 401 (or 500 out of memory) answer of alyx__req_caller's failure. */
int alyx__reply_unauthorized(alyx__svc *t, alyx__req *r, int code,
			     const char *why);
void alyx__tokcache_free(struct alyx__tokcache *c);
/* ws.c: GET /api/realtime (docs/realtime.md).  The WebSocket protocol
 * ("alyx-realtime", the vhost's default for upgrades) of every service
 * thread's context; its per-session data is one pointer. */
#define ALYX_WS_PROTOCOL "alyx-realtime"
int alyx__ws_cb(struct lws *wsi, enum lws_callback_reasons reason,
		void *user, void *in, size_t len);
/* Creates the server's realtime state; starts the dispatch thread. */
int alyx__ws_start(struct alyx_server *s, alyx__err *err);
/* Ends the dispatch thread (after the service threads) and frees. */
void alyx__ws_stop(struct alyx_server *s);
/* Per service thread: its frame queue. */
int alyx__ws_svc_init(alyx__svc *t, alyx__err *err);
/* On the service thread before its context goes: no more frames. */
void alyx__ws_svc_end(alyx__svc *t);
void alyx__ws_svc_free(alyx__svc *t);
/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: 0 to upgrade, else (after an error
 * reply) -1 to hang up. */
int alyx__ws_confirm(alyx__svc *t, struct lws *wsi, alyx__req *r,
		     const char *upgrade);
/* `"realtime":{...},` for /health/stats; the realtime metrics. */
void alyx__ws_stats_json(struct alyx_server *s, alyx_buf *b);
void alyx__ws_metrics_text(struct alyx_server *s, alyx_buf *b);

/* reply.c */
const char *alyx__status_text(int status);
int alyx__http_status(int alyx_code);
/* Writes a complete reply (status line, headers, body) on r->wsi.
 * `extra` are additional header lines (each ending "\r\n") or NULL.
 * Returns 0, or -1 if the connection must close. */
int alyx__reply(alyx__svc *t, alyx__req *r, int status, const char *ctype,
		const char *body, size_t len, const char *extra);
/* A reply whose body is written in place: alyx__reply_body_begin resets
 * the thread's reply buffer to ALYX_REPLY_BODY_AT bytes of room (LWS_PRE
 * and the head) and returns it for the body to be appended to;
 * alyx__reply_in_place then writes the head just in front of the body
 * and sends both, with no copy of the body. */
#define ALYX_REPLY_BODY_AT (LWS_PRE + 512)
alyx_buf *alyx__reply_body_begin(alyx__svc *t);
int alyx__reply_in_place(alyx__svc *t, alyx__req *r, int status,
			 const char *ctype);
/* The error envelope {"error":{"code","message","details"},"request_id",
 * "timestamp"}; `details` is JSON object text or NULL. */
int alyx__reply_error(alyx__svc *t, alyx__req *r, int status,
		      const char *code, const char *msg, const char *details);
/* The same with extra header lines. */
int alyx__reply_error_h(alyx__svc *t, alyx__req *r, int status,
			const char *code, const char *msg, const char *details,
			const char *extra);
/* An error from the core: this thread's last error on s->a. */
int alyx__reply_core_error(alyx__svc *t, alyx__req *r);
/* Error from captured parts (the writer's results). */
int alyx__reply_job_error(alyx__svc *t, alyx__req *r, alyx__job *j);

/* metrics.c */
void alyx__metrics_text(struct alyx_server *s, alyx_buf *b);
void alyx__stats_json(struct alyx_server *s, alyx_buf *b);
int64_t alyx__file_size(const char *path);

/* openapi.c: the OpenAPI 3.1 document for the current schema (cached
 * per schema text); caller frees with alyx__free. */
int alyx__openapi(struct alyx_server *s, char **out, alyx__err *err);
/* openapi-auth.c: adds the /api/auth/... paths, their schemas and
 * responses, and the bearerAuth security scheme. */
struct cJSON;
void alyx__openapi_auth(struct cJSON *paths, struct cJSON *comp);

#endif
