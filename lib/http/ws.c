/*
 * ws.c - GET /api/realtime: the realtime WebSocket protocol
 * (docs/realtime.md, "WebSocket protocol").
 *
 * Threads and ownership:
 *  - A connection (wsconn) belongs to the service thread whose lws
 *    context accepted it: only that thread reads its messages, writes its
 *    frames, subscribes and unsubscribes for it.
 *  - The dispatch thread (one per server) runs alyx_dispatch(); the
 *    broker calls on_msg() there with each subscription's messages.
 *    on_msg() wraps the message into a frame and posts it to the owning
 *    thread's queue (wsq) with lws_cancel_service(); that thread moves it
 *    to the connection's send queue when LWS_CALLBACK_EVENT_WAIT_CANCELLED
 *    arrives, and writes it when the socket is writeable.
 *  - A connection is reference-counted (atomically): lws holds one until
 *    the connection closes, every subscription one until the broker has
 *    destroyed it, every frame in a thread queue one.
 *  - Bytes queued for a connection (thread queue + send queue) are
 *    counted atomically; above realtime.send_queue the client is a slow
 *    consumer: its queue is dropped, it gets one SLOW_CONSUMER error and
 *    the connection is closed (1008).  Memory per connection therefore
 *    stays under send_queue plus one message.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "auth/auth.h"
#include "core/config.h"
#include "core/handle.h"
#include "http/http.h"

#define RID_MAX 128		/* bytes of a message's "id" (as JSON) */
#define SWEEP_MAX_MS 1000
#define SWEEP_MIN_MS 50

enum { FR_DATA, FR_END, FR_SLOW };

typedef struct wsframe {
	struct wsframe *next;
	struct wsconn *c;	/* in a thread queue: holds a reference */
	char sub[32];		/* its subscription ("" for none) */
	int kind;
	size_t len;
	unsigned char buf[];	/* LWS_PRE bytes, then the JSON text */
} wsframe;

/* The user data of one alyx_sub. */
typedef struct wssub {
	struct wsconn *c;
	char rid[RID_MAX + 1];	/* the subscribe message's id, as JSON */
} wssub;

typedef struct wsent {
	alyx_sub *s;
	char id[32];
} wsent;

typedef struct wsconn {
	_Atomic int refs;
	_Atomic size_t queued;	/* bytes posted and not yet written */
	_Atomic bool slow;
	alyx__svc *t;
	/* owner thread only */
	struct lws *wsi;	/* NULL once closed */
	struct wsconn *next, *prev;
	char client_id[48];
	alyx_ctx *ctx;		/* never NULL; no user_id = anonymous */
	char *token;		/* bearer token (re-checked), or NULL */
	int64_t exp_ms;		/* the token's expiry, 0: none */
	int64_t recheck_ms;
	bool expired;		/* token expired or revoked */
	wsent *subs;
	size_t n_subs, cap_subs;
	alyx_buf rx;
	wsframe *sq, *sq_tail;
	int64_t last_rx_ms;	/* anything from the client (pongs too) */
	int64_t last_msg_ms;	/* the client's last message */
	int64_t ping_ms;	/* when our ping went out, 0: none pending */
	bool want_ping;
	bool closing;		/* close after the send queue */
	bool kill;		/* close now, no close frame */
	int close_code;
	char close_reason[64];
} wsconn;

/* A service thread's realtime state. */
struct alyx__wsq {
	pthread_mutex_t mu;
	wsframe *head, *tail;	/* posted frames */
	bool dead;		/* the context is going: drop posts */
	_Atomic bool pending;
	/* owner thread only */
	wsconn *conns;
	struct lws *p_wsi;	/* an accepted upgrade, until ESTABLISHED */
	alyx_ctx *p_ctx;
	char *p_token;
	int64_t p_exp;
	uint64_t seq;
	bool stopping_seen;
	alyx__svc *t;
	lws_sorted_usec_list_t sul;	/* the sweep timer */
};

struct alyx__ws {
	alyx_server *srv;
	pthread_t th;
	bool started;
	int efd;
	_Atomic bool quit;
	_Atomic int conns;
	int max_conns;
	size_t max_subs;
	size_t max_msg;
	size_t send_cap;
	int64_t idle_ms, ping_ms, token_ms, sweep_ms;
	struct stage *staged;	/* per service thread (dispatch thread) */
	/* counters (any thread) */
	_Atomic int64_t subs;		/* open subscriptions */
	_Atomic uint64_t accepted;	/* connections upgraded */
	_Atomic uint64_t messages;	/* frames written */
	_Atomic uint64_t slow;		/* slow consumers closed */
	_Atomic uint64_t dispatch_errors;
};

/* ---- connections ---- */

static void frame_free(wsframe *f)
{
	alyx__free(f);
}

static void conn_ref(wsconn *c)
{
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

static void conn_unref(wsconn *c)
{
	if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	while (c->sq) {
		wsframe *f = c->sq;
		c->sq = f->next;
		frame_free(f);
	}
	alyx_ctx_free(c->ctx);
	alyx__free(c->token);
	alyx__free(c->subs);
	alyx__buf_free(&c->rx);
	alyx__free(c);
}

/* A frame holding `len` bytes of JSON (copied from p, if not NULL). */
static wsframe *frame_new(const char *sub, int kind, const void *p,
			  size_t len)
{
	wsframe *f = alyx__malloc(sizeof(*f) + LWS_PRE + len + 1);

	if (!f)
		return NULL;
	f->next = NULL;
	f->c = NULL;
	snprintf(f->sub, sizeof(f->sub), "%s", sub ? sub : "");
	f->kind = kind;
	f->len = len;
	if (p)
		memcpy(f->buf + LWS_PRE, p, len);
	f->buf[LWS_PRE + len] = '\0';
	return f;
}

enum { RES_OK, RES_FULL, RES_FULL_FIRST };

/* Counts len more bytes for c.  RES_FULL when that would pass the cap
 * (RES_FULL_FIRST: c just became a slow consumer).  A connection with
 * nothing queued always gets one message, whatever its size. */
static int reserve(struct alyx__ws *w, wsconn *c, size_t len)
{
	size_t before;

	if (atomic_load_explicit(&c->slow, memory_order_relaxed))
		return RES_FULL;
	before = atomic_fetch_add(&c->queued, len);
	if (before == 0 || before + len <= w->send_cap)
		return RES_OK;
	atomic_fetch_sub(&c->queued, len);
	return atomic_exchange(&c->slow, true) ? RES_FULL : RES_FULL_FIRST;
}

/* Frames the dispatch thread collected for one service thread during
 * one alyx_dispatch(): handed over together (one lock, one wake-up). */
typedef struct stage {
	wsframe *head, *tail;
} stage;

/* Stages a frame for the connection's service thread (the dispatch
 * thread only; flush_staged() hands them over). */
static void post(wsconn *c, wsframe *f)
{
	stage *st = &c->t->srv->ws->staged[c->t->index];

	conn_ref(c);
	f->c = c;
	f->next = NULL;
	if (st->tail)
		st->tail->next = f;
	else
		st->head = f;
	st->tail = f;
}

static void drop_frames(wsframe *f)
{
	while (f) {
		wsframe *next = f->next;
		wsconn *c = f->c;

		if (f->kind != FR_SLOW)
			atomic_fetch_sub(&c->queued, f->len);
		frame_free(f);
		conn_unref(c);
		f = next;
	}
}

/* Hands every staged frame to its service thread's queue. */
static void flush_staged(struct alyx__ws *w)
{
	for (int i = 0; i < w->srv->nthreads; i++) {
		stage *st = &w->staged[i];
		alyx__svc *t = &w->srv->svcs[i];
		struct alyx__wsq *q = t->wsq;
		bool wake;

		if (!st->head)
			continue;
		pthread_mutex_lock(&q->mu);
		if (q->dead) {
			pthread_mutex_unlock(&q->mu);
			drop_frames(st->head);
			st->head = st->tail = NULL;
			continue;
		}
		wake = !q->head;
		if (q->tail)
			q->tail->next = st->head;
		else
			q->head = st->head;
		q->tail = st->tail;
		st->head = st->tail = NULL;
		if (wake) {
			atomic_store_explicit(&q->pending, true,
					      memory_order_release);
			/* Under the lock: the context lives while !dead. */
			lws_cancel_service(t->ctx);
		}
		pthread_mutex_unlock(&q->mu);
	}
}

/* ---- messages from the broker (dispatch thread) ---- */

static void sub_destroy(void *ud)
{
	wssub *ws = ud;

	conn_unref(ws->c);
	alyx__free(ws);
}

/* The subscription id and the key after it in a broker message
 * {"subscription_id":"sub_N","<key>":...}. */
static bool msg_head(const char *json, size_t len, char id[32],
		     const char **key)
{
	static const char pfx[] = "{\"subscription_id\":\"";
	const char *p, *e;

	if (len < sizeof(pfx) || memcmp(json, pfx, sizeof(pfx) - 1))
		return false;
	p = json + sizeof(pfx) - 1;
	e = memchr(p, '"', len - (size_t)(p - json));
	if (!e || e - p >= 32 || (size_t)(e - json) + 3 > len)
		return false;
	memcpy(id, p, (size_t)(e - p));
	id[e - p] = '\0';
	*key = e + 3;	/* past `","` */
	return true;
}

/* {"id":..,"type":"error","payload":{"subscription_id","code","message"}}
 * from the broker's error message. */
static wsframe *error_frame(const wssub *ws, const char *sub,
			    const char *json, size_t len)
{
	cJSON *j = cJSON_ParseWithLength(json, len);
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
	wsframe *f = NULL;
	alyx_buf b;

	alyx__buf_init(&b, 0);
	alyx__buf_addc(&b, '{');
	if (ws->rid[0])
		alyx__buf_addf(&b, "\"id\":%s,", ws->rid);
	alyx__buf_adds(&b, "\"type\":\"error\",\"payload\":{"
		       "\"subscription_id\":");
	alyx__json_strz(&b, sub);
	alyx__buf_adds(&b, ",\"code\":");
	alyx__json_strz(&b, cJSON_IsString(code) ? code->valuestring
						 : "INTERNAL_ERROR");
	alyx__buf_adds(&b, ",\"message\":");
	alyx__json_strz(&b, cJSON_IsString(msg) ? msg->valuestring
						: "the subscription ended");
	alyx__buf_adds(&b, "}}");
	if (!b.err)
		f = frame_new(sub, FR_END, b.data, b.len);
	alyx__buf_free(&b);
	cJSON_Delete(j);
	return f;
}

/* The broker's callback: wraps its message and posts it. */
static void on_msg(const char *json, size_t len, void *ud)
{
	wssub *ws = ud;
	wsconn *c = ws->c;
	struct alyx__ws *w = c->t->srv->ws;
	char sub[32];
	const char *key;
	wsframe *f = NULL;
	size_t off;

	if (!msg_head(json, len, sub, &key))
		return;
	if (!strncmp(key, "error\"", 6)) {
		f = error_frame(ws, sub, json, len);
	} else {
		bool snap = !strncmp(key, "docs\"", 5);
		/* The answer to subscribe (a snapshot, or the resume delta)
		 * echoes its id. */
		bool first = snap || !strncmp(key, "resumed\"", 8);
		char head[RID_MAX + 64];
		int hn = snprintf(head, sizeof(head),
				  "{%s%s%s\"type\":\"%s\",\"payload\":",
				  first && ws->rid[0] ? "\"id\":" : "",
				  first ? ws->rid : "",
				  first && ws->rid[0] ? "," : "",
				  snap ? "snapshot" : "delta");

		f = frame_new(sub, FR_DATA, NULL, (size_t)hn + len + 1);
		if (f) {
			off = LWS_PRE;
			memcpy(f->buf + off, head, (size_t)hn);
			memcpy(f->buf + off + hn, json, len);
			f->buf[off + hn + len] = '}';
			f->buf[off + hn + len + 1] = '\0';
		}
	}
	if (!f) {
		/* Out of memory: this client's view can no longer be
		 * trusted; treat it like a slow consumer. */
		if (!atomic_exchange(&c->slow, true) &&
		    (f = frame_new(NULL, FR_SLOW, NULL, 0)))
			post(c, f);
		return;
	}
	if (f->kind == FR_END) {
		/* A subscription's last message always goes. */
		atomic_fetch_add(&c->queued, f->len);
		post(c, f);
		return;
	}
	switch (reserve(w, c, f->len)) {
	case RES_OK:
		post(c, f);
		return;
	case RES_FULL_FIRST:
		/* Tell its thread, once. */
		frame_free(f);
		if ((f = frame_new(NULL, FR_SLOW, NULL, 0)))
			post(c, f);
		return;
	default:
		frame_free(f);
		return;
	}
}

/* ---- frames written on the service thread ---- */

static void want_write(wsconn *c)
{
	if (c->wsi)
		lws_callback_on_writable(c->wsi);
}

/* Closes after what is queued (and the close frame) has gone out; a
 * client that does not read it within the bound is dropped. */
static void close_conn(wsconn *c, int code, const char *reason)
{
	int64_t secs = c->t->srv->ws->ping_ms / 1000 + 2;

	if (c->closing)
		return;
	c->closing = true;
	c->close_code = code;
	snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
	if (c->wsi)
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK,
				(int)(secs > 600 ? 600 : secs));
	want_write(c);
}

/* Drops the connection now (no close frame). */
static void kill_conn(wsconn *c)
{
	c->kill = true;
	if (c->wsi)
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK,
				LWS_TO_KILL_ASYNC);
}

static void handle_slow(wsconn *c);

static void sq_append(wsconn *c, wsframe *f)
{
	if (c->sq_tail)
		c->sq_tail->next = f;
	else
		c->sq = f;
	c->sq_tail = f;
	want_write(c);
}

/* Queues text the service thread built (a reply). */
static void send_buf(wsconn *c, alyx_buf *b)
{
	struct alyx__ws *w = c->t->srv->ws;
	wsframe *f;

	if (!c->wsi || c->closing)
		return;
	if (b->err) {
		close_conn(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
			   "out of memory");
		return;
	}
	if (reserve(w, c, b->len) != RES_OK) {
		handle_slow(c);
		return;
	}
	f = frame_new(NULL, FR_DATA, b->data, b->len);
	if (!f) {
		atomic_fetch_sub(&c->queued, b->len);
		close_conn(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
			   "out of memory");
		return;
	}
	sq_append(c, f);
}

static void reply_head(alyx_buf *b, const char *rid, const char *type)
{
	alyx__buf_reset(b);
	alyx__buf_addc(b, '{');
	if (rid && *rid)
		alyx__buf_addf(b, "\"id\":%s,", rid);
	alyx__buf_addf(b, "\"type\":\"%s\"", type);
}

static void send_error(wsconn *c, const char *rid, const char *code,
		       const char *msg, const char *details, const char *sub)
{
	alyx_buf b;

	alyx__buf_init(&b, 0);
	reply_head(&b, rid, "error");
	alyx__buf_adds(&b, ",\"payload\":{\"code\":");
	alyx__json_strz(&b, code);
	alyx__buf_adds(&b, ",\"message\":");
	alyx__json_strz(&b, msg);
	if (details && *details && strcmp(details, "{}")) {
		alyx__buf_adds(&b, ",\"details\":");
		alyx__buf_adds(&b, details);
	}
	if (sub) {
		alyx__buf_adds(&b, ",\"subscription_id\":");
		alyx__json_strz(&b, sub);
	}
	alyx__buf_adds(&b, "}}");
	send_buf(c, &b);
	alyx__buf_free(&b);
}

/* ---- subscriptions ---- */

static ssize_t sub_find(const wsconn *c, const char *id)
{
	for (size_t i = 0; i < c->n_subs; i++)
		if (!strcmp(c->subs[i].id, id))
			return (ssize_t)i;
	return -1;
}

static void sub_end(wsconn *c, size_t i)
{
	atomic_fetch_sub(&c->t->srv->ws->subs, 1);
	alyx_unsubscribe(c->subs[i].s);	/* destroy may run here */
	c->subs[i] = c->subs[--c->n_subs];
}

/* Ends every subscription with an error (token expired or revoked, the
 * account changed). */
static void end_all(wsconn *c, const char *code, const char *msg,
		    const char *details)
{
	while (c->n_subs) {
		char id[32];

		memcpy(id, c->subs[c->n_subs - 1].id, sizeof(id));
		sub_end(c, c->n_subs - 1);
		send_error(c, NULL, code, msg, details, id);
	}
}

static void do_subscribe(wsconn *c, const char *rid, const cJSON *pl)
{
	struct alyx__ws *w = c->t->srv->ws;
	alyx *a = c->t->srv->a;
	const cJSON *coll = cJSON_GetObjectItemCaseSensitive(pl, "collection");
	cJSON *q = NULL;
	char *qtext = NULL;
	wssub *ws = NULL;
	alyx_sub *s = NULL;
	int rc;

	if (c->expired) {
		send_error(c, rid, alyx_errname(ALYX_E_UNAUTHORIZED),
			   "the connection's token expired or was revoked: "
			   "send an auth message with a new token", NULL, NULL);
		return;
	}
	if (!cJSON_IsObject(pl) || !cJSON_IsString(coll)) {
		send_error(c, rid, "BAD_REQUEST", "subscribe needs a payload "
			   "with a \"collection\"", NULL, NULL);
		return;
	}
	if (c->n_subs >= w->max_subs) {
		char det[64];
		snprintf(det, sizeof(det), "{\"max_subscriptions\":%zu}",
			 w->max_subs);
		send_error(c, rid, alyx_errname(ALYX_E_TOOBIG),
			   "too many subscriptions on this connection", det,
			   NULL);
		return;
	}
	if (c->n_subs == c->cap_subs) {
		size_t nc = c->cap_subs ? c->cap_subs * 2 : 4;
		wsent *ns = alyx__realloc(c->subs, nc * sizeof(*ns));
		if (!ns)
			goto nomem;
		c->subs = ns;
		c->cap_subs = nc;
	}
	q = cJSON_Duplicate(pl, true);
	ws = alyx__calloc(1, sizeof(*ws));
	if (!q || !ws)
		goto nomem;
	cJSON_DeleteItemFromObjectCaseSensitive(q, "collection");
	qtext = cJSON_PrintUnformatted(q);
	if (!qtext)
		goto nomem;
	ws->c = c;
	snprintf(ws->rid, sizeof(ws->rid), "%s", rid ? rid : "");
	conn_ref(c);
	rc = alyx_subscribe(a, c->ctx, coll->valuestring, qtext, on_msg, ws,
			    sub_destroy, &s);
	if (rc != ALYX_OK) {
		conn_unref(c);
		send_error(c, rid, alyx_errname(rc), alyx_errmsg(a),
			   alyx_errdetails(a), NULL);
		alyx__free(ws);
		ws = NULL;
		goto out;
	}
	c->subs[c->n_subs].s = s;
	snprintf(c->subs[c->n_subs].id, sizeof(c->subs[0].id), "%s",
		 alyx_sub_id(s));
	c->n_subs++;
	atomic_fetch_add(&w->subs, 1);
	ws = NULL;
	goto out;
nomem:
	send_error(c, rid, alyx_errname(ALYX_E_NOMEM), "out of memory", NULL,
		   NULL);
out:
	alyx__free(ws);
	cJSON_free(qtext);
	cJSON_Delete(q);
}

static void do_unsubscribe(wsconn *c, const char *rid, const cJSON *pl)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(pl,
							   "subscription_id");
	alyx_buf b;
	ssize_t i;

	if (!cJSON_IsString(id)) {
		send_error(c, rid, "BAD_REQUEST", "unsubscribe needs a payload "
			   "with a \"subscription_id\"", NULL, NULL);
		return;
	}
	i = sub_find(c, id->valuestring);
	if (i < 0) {
		send_error(c, rid, alyx_errname(ALYX_E_NOTFOUND),
			   "no such subscription on this connection", NULL,
			   id->valuestring);
		return;
	}
	sub_end(c, (size_t)i);
	alyx__buf_init(&b, 0);
	reply_head(&b, rid, "unsubscribed");
	alyx__buf_adds(&b, ",\"payload\":{\"subscription_id\":");
	alyx__json_strz(&b, id->valuestring);
	alyx__buf_adds(&b, "}}");
	send_buf(c, &b);
	alyx__buf_free(&b);
}

/* The "exp" claim (ms) of a JWT the library has verified; 0 if none. */
static int64_t token_exp_ms(const char *tok)
{
	const char *p, *e;
	alyx_buf s;
	unsigned char *raw = NULL;
	size_t n = 0;
	int64_t exp = 0;

	if (!strncasecmp(tok, "Bearer ", 7))
		tok += 7;
	p = strchr(tok, '.');
	e = p ? strchr(p + 1, '.') : NULL;
	if (!e)
		return 0;
	alyx__buf_init(&s, 0);
	for (const char *q = p + 1; q < e; q++)
		alyx__buf_addc(&s, *q == '-' ? '+' : *q == '_' ? '/' : *q);
	while (s.len % 4)
		alyx__buf_addc(&s, '=');
	if (!s.err && alyx__base64_dec(s.data, s.len, &raw, &n)) {
		cJSON *j = cJSON_ParseWithLength((const char *)raw, n);
		const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, "exp");
		if (cJSON_IsNumber(x) && x->valuedouble > 0)
			exp = (int64_t)x->valuedouble * 1000;
		cJSON_Delete(j);
		alyx__free(raw);
	}
	alyx__buf_free(&s);
	return exp;
}

/* The anonymous context (static; alyx_ctx_free ignores it). */
static alyx_ctx *anon_ctx(void)
{
	return (alyx_ctx *)alyx_ctx_anonymous();
}

/* Gives a signed-in context the client's address (request.ip). */
static void set_ip(alyx_ctx *ctx, struct lws *wsi)
{
	char ip[64];
	const char *p;

	if (!ctx || !ctx->user_id || ctx->ip || !wsi)
		return;
	p = alyx__svc_peer(wsi, ip, sizeof(ip));
	if (p)
		ctx->ip = alyx__strdup(p);
}

static bool same_user(const alyx_ctx *x, const alyx_ctx *y)
{
	if (!x->user_id || !y->user_id)
		return !x->user_id && !y->user_id;
	return !strcmp(x->user_id, y->user_id);
}

static void user_json(alyx_buf *b, const alyx_ctx *ctx)
{
	alyx__buf_adds(b, "\"user_id\":");
	alyx__json_strz(b, ctx->user_id);
	alyx__buf_adds(b, ",\"role\":");
	alyx__json_strz(b, ctx->role);
}

static void do_auth(wsconn *c, const char *rid, const cJSON *pl)
{
	alyx *a = c->t->srv->a;
	const cJSON *tok = cJSON_GetObjectItemCaseSensitive(pl, "token");
	alyx_ctx *ctx = NULL;
	char *dup;
	alyx_buf b;

	if (!cJSON_IsString(tok) || strlen(tok->valuestring) >
	    ALYX_AUTH_JWT_MAX) {
		send_error(c, rid, "BAD_REQUEST", "auth needs a payload with "
			   "a \"token\"", NULL, NULL);
		return;
	}
	if (alyx_ctx_from_token(a, tok->valuestring, &ctx) != ALYX_OK) {
		int code = alyx_errcode(a);
		send_error(c, rid, alyx_errname(code ? code
					       : ALYX_E_UNAUTHORIZED),
			   alyx_errmsg(a), alyx_errdetails(a), NULL);
		return;
	}
	if (c->n_subs && !same_user(ctx, c->ctx)) {
		alyx_ctx_free(ctx);
		send_error(c, rid, alyx_errname(ALYX_E_CONFLICT),
			   "this token is another user's: unsubscribe first "
			   "(subscriptions keep the user they were made for)",
			   NULL, NULL);
		return;
	}
	dup = alyx__strdup(tok->valuestring);
	if (!dup) {
		alyx_ctx_free(ctx);
		send_error(c, rid, alyx_errname(ALYX_E_NOMEM), "out of memory",
			   NULL, NULL);
		return;
	}
	alyx_ctx_free(c->ctx);
	alyx__free(c->token);
	set_ip(ctx, c->wsi);
	c->ctx = ctx;
	c->token = dup;
	c->exp_ms = token_exp_ms(dup);
	c->recheck_ms = alyx__now_ms() + c->t->srv->ws->token_ms;
	c->expired = false;
	alyx__buf_init(&b, 0);
	reply_head(&b, rid, "authenticated");
	alyx__buf_adds(&b, ",\"payload\":{");
	user_json(&b, ctx);
	alyx__buf_adds(&b, "}}");
	send_buf(c, &b);
	alyx__buf_free(&b);
}

/* One complete client message. */
static void on_message(wsconn *c, const char *p, size_t n)
{
	cJSON *m = cJSON_ParseWithLength(p, n);
	const cJSON *id, *type, *pl;
	char rid[RID_MAX + 1] = "";

	if (!cJSON_IsObject(m)) {
		send_error(c, NULL, "BAD_REQUEST", "a message is one JSON "
			   "object", NULL, NULL);
		goto out;
	}
	id = cJSON_GetObjectItemCaseSensitive(m, "id");
	if (id && !cJSON_IsNull(id)) {
		char *t = (cJSON_IsString(id) || cJSON_IsNumber(id))
			  ? cJSON_PrintUnformatted(id) : NULL;
		bool ok = t && strlen(t) <= RID_MAX;
		if (ok)
			memcpy(rid, t, strlen(t) + 1);
		cJSON_free(t);
		if (!ok) {
			send_error(c, NULL, "BAD_REQUEST", "\"id\" must be a "
				   "string or a number of at most 128 bytes",
				   NULL, NULL);
			goto out;
		}
	}
	type = cJSON_GetObjectItemCaseSensitive(m, "type");
	pl = cJSON_GetObjectItemCaseSensitive(m, "payload");
	if (!cJSON_IsString(type)) {
		send_error(c, rid, "BAD_REQUEST", "a message needs a \"type\"",
			   NULL, NULL);
	} else if (!strcmp(type->valuestring, "subscribe")) {
		do_subscribe(c, rid, pl);
	} else if (!strcmp(type->valuestring, "unsubscribe")) {
		do_unsubscribe(c, rid, pl);
	} else if (!strcmp(type->valuestring, "ping")) {
		alyx_buf b;
		alyx__buf_init(&b, 0);
		reply_head(&b, rid, "pong");
		alyx__buf_addc(&b, '}');
		send_buf(c, &b);
		alyx__buf_free(&b);
	} else if (!strcmp(type->valuestring, "auth")) {
		do_auth(c, rid, pl);
	} else {
		send_error(c, rid, "BAD_REQUEST", "unknown message type (one "
			   "of subscribe, unsubscribe, ping, auth)", NULL,
			   NULL);
	}
out:
	cJSON_Delete(m);
}

/* ---- the service thread's side ---- */

static void drop_queue(wsconn *c)
{
	while (c->sq) {
		wsframe *f = c->sq;
		c->sq = f->next;
		atomic_fetch_sub(&c->queued, f->len);
		frame_free(f);
	}
	c->sq_tail = NULL;
}

/* A slow consumer: drop what it has not read, tell it, close.  Frames
 * still posted to this thread are dropped when they arrive. */
static void handle_slow(wsconn *c)
{
	alyx_buf b;
	wsframe *f;
	char msg[200];

	if (c->closing || !c->wsi)
		return;
	atomic_store(&c->slow, true);
	atomic_fetch_add(&c->t->srv->ws->slow, 1);
	drop_queue(c);
	snprintf(msg, sizeof(msg), "the client does not read its messages "
		 "fast enough (more than %zu bytes queued): the connection "
		 "closes; reconnect and subscribe again (with since)",
		 c->t->srv->ws->send_cap);
	alyx__buf_init(&b, 0);
	reply_head(&b, NULL, "error");
	alyx__buf_adds(&b, ",\"payload\":{\"code\":\"SLOW_CONSUMER\","
		       "\"message\":");
	alyx__json_strz(&b, msg);
	alyx__buf_adds(&b, "}}");
	f = b.err ? NULL : frame_new(NULL, FR_DATA, b.data, b.len);
	alyx__buf_free(&b);
	if (f) {
		atomic_fetch_add(&c->queued, f->len);
		sq_append(c, f);
	}
	close_conn(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "slow consumer");
}

/* Moves posted frames to their connections (LWS_CALLBACK_EVENT_WAIT_
 * CANCELLED). */
static void take_posted(alyx__svc *t)
{
	struct alyx__wsq *q = t->wsq;
	wsframe *f, *next;

	if (!atomic_exchange_explicit(&q->pending, false,
				      memory_order_acquire))
		return;
	pthread_mutex_lock(&q->mu);
	f = q->head;
	q->head = q->tail = NULL;
	pthread_mutex_unlock(&q->mu);
	for (; f; f = next) {
		wsconn *c = f->c;
		ssize_t i = -1;

		next = f->next;
		f->next = NULL;
		f->c = NULL;
		if (f->kind == FR_SLOW) {
			handle_slow(c);
			frame_free(f);
		} else if (!c->wsi || c->closing ||
			   (f->sub[0] && (i = sub_find(c, f->sub)) < 0)) {
			atomic_fetch_sub(&c->queued, f->len);
			frame_free(f);
		} else {
			sq_append(c, f);
			if (f->kind == FR_END && i >= 0)
				sub_end(c, (size_t)i);
		}
		conn_unref(c);
	}
}

static int on_writeable(wsconn *c, struct lws *wsi)
{
	unsigned char pbuf[LWS_PRE + 8];

	if (c->kill)
		return -1;
	if (c->want_ping) {
		/* With a payload: lws does not report an empty pong. */
		c->want_ping = false;
		memcpy(pbuf + LWS_PRE, "alyx", 4);
		if (lws_write(wsi, pbuf + LWS_PRE, 4, LWS_WRITE_PING) < 4)
			return -1;
		if (lws_send_pipe_choked(wsi)) {
			lws_callback_on_writable(wsi);
			return 0;
		}
	}
	while (c->sq) {
		wsframe *f = c->sq;
		int n = lws_write(wsi, f->buf + LWS_PRE, f->len,
				  LWS_WRITE_TEXT);

		if (n < (int)f->len)
			return -1;
		c->sq = f->next;
		if (!c->sq)
			c->sq_tail = NULL;
		atomic_fetch_sub(&c->queued, f->len);
		frame_free(f);
		atomic_fetch_add_explicit(&c->t->srv->ws->messages, 1,
					  memory_order_relaxed);
		if (lws_send_pipe_choked(wsi))
			break;
	}
	if (c->sq || (c->closing && lws_send_pipe_choked(wsi))) {
		/* More to write, or lws still holds part of the last frame:
		 * the close frame must come after it. */
		lws_callback_on_writable(wsi);
		return 0;
	}
	if (c->closing) {
		lws_close_reason(wsi, (enum lws_close_status)c->close_code,
				 (unsigned char *)c->close_reason,
				 strlen(c->close_reason));
		return -1;
	}
	return 0;
}

static void conn_closed(alyx__svc *t, wsconn *c)
{
	struct alyx__wsq *q = t->wsq;

	if (!c->wsi)
		return;
	while (c->n_subs)
		sub_end(c, c->n_subs - 1);
	c->wsi = NULL;
	drop_queue(c);
	if (c->prev)
		c->prev->next = c->next;
	else if (q->conns == c)
		q->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
	atomic_fetch_sub(&t->srv->ws->conns, 1);
	conn_unref(c);
}

static int on_established(alyx__svc *t, struct lws *wsi, wsconn **slot)
{
	struct alyx__wsq *q = t->wsq;
	struct alyx__ws *w = t->srv->ws;
	wsconn *c = alyx__calloc(1, sizeof(*c));
	alyx_buf b;

	if (!c)
		return -1;
	atomic_init(&c->refs, 1);
	c->t = t;
	c->wsi = wsi;
	if (q->p_wsi == wsi) {
		c->ctx = q->p_ctx;
		c->token = q->p_token;
		c->exp_ms = q->p_exp;
		q->p_ctx = NULL;
		q->p_token = NULL;
		q->p_wsi = NULL;
	}
	if (!c->ctx && !(c->ctx = anon_ctx())) {
		alyx__free(c->token);
		alyx__free(c);
		return -1;
	}
	alyx__buf_init(&c->rx, w->max_msg);
	c->last_rx_ms = c->last_msg_ms = alyx__mono_ms();
	c->recheck_ms = alyx__now_ms() + c->t->srv->ws->token_ms;
	snprintf(c->client_id, sizeof(c->client_id), "client_%s_%llx",
		 t->rid_prefix, (unsigned long long)++q->seq);
	c->next = q->conns;
	if (q->conns)
		q->conns->prev = c;
	q->conns = c;
	*slot = c;
	atomic_fetch_add(&w->conns, 1);
	atomic_fetch_add(&w->accepted, 1);
	alyx__buf_init(&b, 0);
	reply_head(&b, NULL, "connected");
	alyx__buf_adds(&b, ",\"payload\":{\"client_id\":");
	alyx__json_strz(&b, c->client_id);
	alyx__buf_addc(&b, ',');
	user_json(&b, c->ctx);
	alyx__buf_adds(&b, "}}");
	send_buf(c, &b);
	alyx__buf_free(&b);
	return 0;
}

static int on_receive(wsconn *c, struct lws *wsi, const void *in, size_t len)
{
	c->last_rx_ms = c->last_msg_ms = alyx__mono_ms();
	c->ping_ms = 0;
	if (c->closing)
		return 0;
	if (lws_frame_is_binary(wsi)) {
		close_conn(c, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
			   "text frames only");
		return 0;
	}
	if (lws_is_first_fragment(wsi))
		alyx__buf_reset(&c->rx);
	alyx__buf_add(&c->rx, in, len);
	if (c->rx.err) {
		char msg[96];
		alyx__buf_reset(&c->rx);
		snprintf(msg, sizeof(msg), "a message is larger than %zu bytes",
			 c->t->srv->ws->max_msg);
		send_error(c, NULL, alyx_errname(ALYX_E_TOOBIG), msg, NULL,
			   NULL);
		close_conn(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
			   "message too large");
		return 0;
	}
	if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
		return 0;
	on_message(c, c->rx.data, c->rx.len);
	alyx__buf_reset(&c->rx);
	return 0;
}

/* Whether the rules see the same caller in x and y: what an account can
 * change (role, email, verified) under a token that stays valid. */
static bool same_identity(const alyx_ctx *x, const alyx_ctx *y)
{
	return same_user(x, y) && x->verified == y->verified &&
	       !strcmp(x->role ? x->role : "", y->role ? y->role : "") &&
	       !strcmp(x->email ? x->email : "", y->email ? y->email : "");
}

/* The token check found the account changed: the connection takes the
 * new context (its next subscriptions see it), and the subscriptions made
 * under the old one end with AUTH_CHANGED, whose details say who the
 * connection is now: the client subscribes again. */
static void account_changed(wsconn *c, alyx_ctx *ctx)
{
	alyx_buf d;

	set_ip(ctx, c->wsi);
	alyx_ctx_free(c->ctx);
	c->ctx = ctx;
	if (!c->n_subs)
		return;
	alyx__buf_init(&d, 0);
	alyx__buf_addc(&d, '{');
	user_json(&d, ctx);
	alyx__buf_adds(&d, ",\"verified\":");
	alyx__json_bool(&d, ctx->verified);
	alyx__buf_addc(&d, '}');
	end_all(c, "AUTH_CHANGED", "the account's role, email or verified "
		"flag changed: subscribe again", d.err ? NULL : d.data);
	alyx__buf_free(&d);
}

/* Timed work of one connection: idle close, keepalive, token expiry. */
static void sweep_conn(struct alyx__ws *w, wsconn *c, int64_t mono,
		       int64_t now)
{
	alyx *a = c->t->srv->a;

	if (c->closing)
		return;
	if (!c->n_subs && mono - c->last_msg_ms >= w->idle_ms) {
		close_conn(c, LWS_CLOSE_STATUS_GOINGAWAY, "idle timeout");
		return;
	}
	if (c->ping_ms && mono - c->ping_ms >= w->ping_ms) {
		/* No answer to our ping for a whole interval: dead peer. */
		kill_conn(c);
		return;
	}
	if (!c->ping_ms && mono - c->last_rx_ms >= w->ping_ms) {
		c->ping_ms = mono;
		c->want_ping = true;
		want_write(c);
	}
	if (c->expired || !c->token)
		return;
	if (c->exp_ms && now >= c->exp_ms) {
		c->expired = true;
		end_all(c, alyx_errname(ALYX_E_UNAUTHORIZED),
			"the token expired: send an auth message with a new "
			"token and subscribe again", NULL);
	} else if (now >= c->recheck_ms) {
		alyx_ctx *ctx = NULL;

		c->recheck_ms = now + c->t->srv->ws->token_ms;
		if (alyx_ctx_from_token(a, c->token, &ctx) == ALYX_OK) {
			if (same_identity(ctx, c->ctx))
				alyx_ctx_free(ctx);
			else
				account_changed(c, ctx);
		} else if (alyx_errcode(a) == ALYX_E_UNAUTHORIZED) {
			c->expired = true;
			end_all(c, alyx_errname(ALYX_E_UNAUTHORIZED),
				"the token is no longer valid (revoked or its "
				"account is gone)", NULL);
		}
	}
}

static void sweep(alyx__svc *t)
{
	struct alyx__ws *w = t->srv->ws;
	int64_t mono = alyx__mono_ms(), now = alyx__now_ms();

	for (wsconn *c = t->wsq->conns; c; c = c->next)
		sweep_conn(w, c, mono, now);
}

static void sweep_cb(lws_sorted_usec_list_t *sul)
{
	struct alyx__wsq *q = lws_container_of(sul, struct alyx__wsq, sul);
	alyx__svc *t = q->t;

	sweep(t);
	lws_sul_schedule(t->ctx, 0, &q->sul, sweep_cb,
			 (lws_usec_t)t->srv->ws->sweep_ms * 1000);
}

static void stop_all(alyx__svc *t)
{
	for (wsconn *c = t->wsq->conns; c; c = c->next)
		close_conn(c, LWS_CLOSE_STATUS_GOINGAWAY, "server stopping");
}

int alyx__ws_cb(struct lws *wsi, enum lws_callback_reasons reason,
		void *user, void *in, size_t len)
{
	struct lws_context *cx = lws_get_context(wsi);
	alyx__svc *t = cx ? lws_context_user(cx) : NULL;
	wsconn **slot = user, *c = slot ? *slot : NULL;

	if (!t || !t->srv->ws)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_PROTOCOL_INIT:
		lws_sul_schedule(cx, 0, &t->wsq->sul, sweep_cb,
				 (lws_usec_t)t->srv->ws->sweep_ms * 1000);
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		take_posted(t);
		if (!t->wsq->stopping_seen &&
		    atomic_load_explicit(&t->srv->stopping,
					 memory_order_relaxed)) {
			t->wsq->stopping_seen = true;
			stop_all(t);
		}
		return 0;
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: {
		/* A handshake the HTTP front handed over (front.c): lws bound
		 * it to this protocol, the vhost's default. */
		alyx__req r;
		int n;

		memset(&r, 0, sizeof(r));
		n = alyx__ws_confirm(t, wsi, &r, in);
		alyx__req_cleanup(t, &r);
		return n;
	}
	case LWS_CALLBACK_ESTABLISHED:
		return slot ? on_established(t, wsi, slot) : -1;
	case LWS_CALLBACK_RECEIVE:
		return c ? on_receive(c, wsi, in, len) : -1;
	case LWS_CALLBACK_RECEIVE_PONG:
		if (c) {
			c->last_rx_ms = alyx__mono_ms();
			c->ping_ms = 0;
		}
		return 0;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return c ? on_writeable(c, wsi) : 0;
	case LWS_CALLBACK_CLOSED:
		if (c) {
			*slot = NULL;
			conn_closed(t, c);
		}
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		if (c) {
			*slot = NULL;
			conn_closed(t, c);
		}
		/* The connection was counted as an HTTP one first. */
		alyx__svc_conn_gone(t, wsi);
		return 0;
	default:
		return 0;
	}
}

/* ---- the upgrade ---- */

static int reject(alyx__svc *t, alyx__req *r, int status, int code,
		  const char *msg, const char *extra)
{
	r->closing = true;
	alyx__reply_error_h(t, r, status, alyx_errname(code), msg, NULL,
			    extra);
	t->ws_answered = true;	/* lws closes it: not a drop (front.c) */
	return -1;
}

/* The bearer token of the handshake (Authorization header, else the
 * `token` query parameter), alyx__malloc'd; NULL when there is none
 * (*bad when one is there but unusable). */
static char *handshake_token(struct lws *wsi, bool *bad)
{
	int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
	char *tok;

	*bad = false;
	if (n > 0) {
		if (n > ALYX_AUTH_JWT_MAX + 16) {
			*bad = true;
			return NULL;
		}
		tok = alyx__malloc((size_t)n + 1);
		if (tok && lws_hdr_copy(wsi, tok, n + 1,
					WSI_TOKEN_HTTP_AUTHORIZATION) != n)
			tok[0] = '\0';
		*bad = !tok;
		return tok;
	}
	tok = alyx__malloc(ALYX_AUTH_JWT_MAX + 8);
	if (!tok) {
		*bad = true;
		return NULL;
	}
	if (lws_get_urlarg_by_name(wsi, "token=", tok, ALYX_AUTH_JWT_MAX + 8)) {
		memmove(tok, tok + 6, strlen(tok + 6) + 1);
		return tok;
	}
	alyx__free(tok);
	return NULL;
}

int alyx__ws_confirm(alyx__svc *t, struct lws *wsi, alyx__req *r,
		     const char *upgrade)
{
	alyx_server *s = t->srv;
	struct alyx__ws *w = s->ws;
	struct alyx__wsq *q = t->wsq;
	alyx_ctx *ctx = NULL;
	char *tok;
	bool bad;
	int n;

	if (!upgrade || strcasecmp(upgrade, "websocket"))
		return -1;	/* h2c: not served */
	r->svc = t;
	r->wsi = wsi;
	r->t0_us = lws_now_usecs();
	r->method = M_GET;
	r->route = R_REALTIME;
	snprintf(r->rid, sizeof(r->rid), "%s-%06llx", t->rid_prefix,
		 (unsigned long long)++t->rid_seq);
	n = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI);
	if (n <= 0) {
		r->path = alyx__strdup("/");
		return reject(t, r, 405, ALYX_E_MISUSE, "a WebSocket handshake "
			      "is a GET", NULL);
	}
	r->path = alyx__malloc((size_t)n + 1);
	if (!r->path || lws_hdr_copy(wsi, r->path, n + 1, WSI_TOKEN_GET_URI) != n)
		return -1;
	if (strcmp(r->path, "/api/realtime")) {
		r->route = R_NONE;
		return reject(t, r, 404, ALYX_E_NOTFOUND, "WebSocket is served "
			      "on /api/realtime only", NULL);
	}
	if (atomic_load(&s->stopping))
		return reject(t, r, 503, ALYX_E_UNAVAILABLE,
			      "the server is shutting down", NULL);
	if (atomic_load(&w->conns) >= w->max_conns)
		return reject(t, r, 503, ALYX_E_UNAVAILABLE,
			      "too many realtime connections "
			      "(realtime.max_connections)", NULL);
	tok = handshake_token(wsi, &bad);
	if (bad)
		return reject(t, r, 401, ALYX_E_UNAUTHORIZED,
			      "the bearer token is too long",
			      "WWW-Authenticate: Bearer\r\n");
	if (tok && alyx_ctx_from_token(s->a, tok, &ctx) != ALYX_OK) {
		int code = alyx_errcode(s->a);
		char msg[256];

		alyx__free(tok);
		snprintf(msg, sizeof(msg), "%s", alyx_errmsg(s->a));
		if (code != ALYX_E_UNAUTHORIZED)
			return reject(t, r, alyx__http_status(code), code, msg,
				      NULL);
		return reject(t, r, 401, code, msg,
			      "WWW-Authenticate: Bearer\r\n");
	}
	set_ip(ctx, wsi);
	/* Handed to LWS_CALLBACK_ESTABLISHED, in this same lws call. */
	alyx_ctx_free(q->p_ctx);
	alyx__free(q->p_token);
	q->p_wsi = wsi;
	q->p_ctx = ctx;
	q->p_token = tok;
	q->p_exp = tok ? token_exp_ms(tok) : 0;
	alyx__req_cleanup(t, r);
	return 0;
}

/* ---- per service thread ---- */

int alyx__ws_svc_init(alyx__svc *t, alyx__err *err)
{
	struct alyx__wsq *q = alyx__calloc(1, sizeof(*q));

	if (!q)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	pthread_mutex_init(&q->mu, NULL);
	q->t = t;
	t->wsq = q;
	return ALYX_OK;
}

void alyx__ws_svc_end(alyx__svc *t)
{
	struct alyx__wsq *q = t->wsq;

	if (!q)
		return;
	pthread_mutex_lock(&q->mu);
	q->dead = true;
	pthread_mutex_unlock(&q->mu);
	lws_sul_cancel(&q->sul);
}

void alyx__ws_svc_free(alyx__svc *t)
{
	struct alyx__wsq *q = t->wsq;
	wsframe *f, *next;

	if (!q)
		return;
	for (f = q->head; f; f = next) {
		next = f->next;
		conn_unref(f->c);
		frame_free(f);
	}
	alyx_ctx_free(q->p_ctx);
	alyx__free(q->p_token);
	pthread_mutex_destroy(&q->mu);
	alyx__free(q);
	t->wsq = NULL;
}

/* ---- figures (/health/stats, /metrics) ---- */

void alyx__ws_stats_json(alyx_server *s, alyx_buf *b)
{
	struct alyx__ws *w = s->ws;

	if (!w)
		return;
	alyx__buf_addf(b, "\"realtime\":{\"connections\":%d,"
		       "\"accepted\":%llu,\"subscriptions\":%lld,"
		       "\"messages\":%llu,\"slow_consumers\":%llu,"
		       "\"dispatch_errors\":%llu},",
		       atomic_load(&w->conns),
		       (unsigned long long)atomic_load(&w->accepted),
		       (long long)atomic_load(&w->subs),
		       (unsigned long long)atomic_load(&w->messages),
		       (unsigned long long)atomic_load(&w->slow),
		       (unsigned long long)atomic_load(&w->dispatch_errors));
}

void alyx__ws_metrics_text(alyx_server *s, alyx_buf *b)
{
	struct alyx__ws *w = s->ws;

	if (!w)
		return;
	alyx__buf_addf(b,
		"# HELP alyx_realtime_connections Open realtime WebSocket "
		"connections.\n"
		"# TYPE alyx_realtime_connections gauge\n"
		"alyx_realtime_connections %d\n"
		"# HELP alyx_realtime_subscriptions Open live queries of "
		"WebSocket clients.\n"
		"# TYPE alyx_realtime_subscriptions gauge\n"
		"alyx_realtime_subscriptions %lld\n"
		"# HELP alyx_realtime_messages_total Messages written to "
		"realtime clients.\n"
		"# TYPE alyx_realtime_messages_total counter\n"
		"alyx_realtime_messages_total %llu\n"
		"# HELP alyx_realtime_slow_consumers_total Connections closed "
		"as slow consumers.\n"
		"# TYPE alyx_realtime_slow_consumers_total counter\n"
		"alyx_realtime_slow_consumers_total %llu\n",
		atomic_load(&w->conns), (long long)atomic_load(&w->subs),
		(unsigned long long)atomic_load(&w->messages),
		(unsigned long long)atomic_load(&w->slow));
}

/* ---- the dispatch thread ---- */

static void *dispatch_main(void *arg)
{
	struct alyx__ws *w = arg;
	alyx *a = w->srv->a;
	int fd = alyx_get_fd(a), rc;
	bool failing = false;

	while (!atomic_load(&w->quit)) {
		struct pollfd p[2] = {{.fd = fd, .events = POLLIN},
				      {.fd = w->efd, .events = POLLIN}};
		int to = alyx_next_timeout_ms(a);
		uint64_t v;

		if (poll(p, 2, to) < 0 && errno != EINTR)
			break;
		if (p[1].revents & POLLIN) {
			ssize_t r = read(w->efd, &v, sizeof(v));
			(void)r;
		}
		if (atomic_load(&w->quit))
			break;
		rc = alyx_dispatch(a);
		flush_staged(w);
		if (rc == ALYX_OK) {
			failing = false;
			continue;
		}
		/* Retried by the next pass; said once per failure streak. */
		atomic_fetch_add(&w->dispatch_errors, 1);
		if (!failing) {
			alyx_buf b;

			failing = true;
			alyx__buf_init(&b, 0);
			alyx__log_begin(w->srv, &b, "error",
					"realtime dispatch failed");
			alyx__log_kv(w->srv, &b, "error", alyx_errmsg(a));
			alyx__log_end(w->srv, &b);
			alyx__srv_log(w->srv, NULL, ALYX_LOG_ERROR, &b);
			alyx__buf_free(&b);
		}
	}
	/* Last messages of subscriptions ended meanwhile; their frames are
	 * dropped (the contexts are gone), their destroys run. */
	alyx_dispatch(a);
	flush_staged(w);
	return NULL;
}

int alyx__ws_start(alyx_server *s, alyx__err *err)
{
	const alyx__config *cfg = s->a->cfg;
	struct alyx__ws *w = alyx__calloc(1, sizeof(*w));
	int e;

	if (!w)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	w->srv = s;
	w->max_conns = cfg->realtime.max_connections > 0
		       ? cfg->realtime.max_connections : 10000;
	w->max_subs = cfg->realtime.max_subscriptions > 0
		      ? (size_t)cfg->realtime.max_subscriptions : 100;
	w->max_msg = cfg->realtime.max_message > 0
		     ? (size_t)cfg->realtime.max_message : 64 * 1024;
	w->send_cap = cfg->realtime.send_queue > 0
		      ? (size_t)cfg->realtime.send_queue : 4 << 20;
	w->idle_ms = cfg->realtime.idle_timeout_ms > 0
		     ? cfg->realtime.idle_timeout_ms : 60000;
	w->ping_ms = cfg->realtime.ping_interval_ms > 0
		     ? cfg->realtime.ping_interval_ms : 30000;
	w->token_ms = cfg->realtime.token_check_ms > 0
		      ? cfg->realtime.token_check_ms : 30000;
	w->sweep_ms = SWEEP_MAX_MS;
	if (w->idle_ms / 4 < w->sweep_ms)
		w->sweep_ms = w->idle_ms / 4;
	if (w->ping_ms / 4 < w->sweep_ms)
		w->sweep_ms = w->ping_ms / 4;
	if (w->token_ms / 4 < w->sweep_ms)
		w->sweep_ms = w->token_ms / 4;
	if (w->sweep_ms < SWEEP_MIN_MS)
		w->sweep_ms = SWEEP_MIN_MS;
	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->efd < 0) {
		alyx__free(w);
		return alyx__err_set(err, ALYX_E_IO, NULL, "eventfd: %s",
				     strerror(errno));
	}
	s->ws = w;
	w->staged = alyx__calloc((size_t)s->nthreads, sizeof(*w->staged));
	if (!w->staged)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	if (alyx_get_fd(s->a) < 0)
		return alyx__err_set(err, alyx_errcode(s->a), NULL,
				     "realtime: %s", alyx_errmsg(s->a));
	e = pthread_create(&w->th, NULL, dispatch_main, w);
	if (e)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL,
				     "cannot start the realtime thread: %s",
				     strerror(e));
	w->started = true;
	return ALYX_OK;
}

void alyx__ws_stop(alyx_server *s)
{
	struct alyx__ws *w = s->ws;
	uint64_t one = 1;

	if (!w)
		return;
	if (w->started) {
		atomic_store(&w->quit, true);
		ssize_t r = write(w->efd, &one, sizeof(one));
		(void)r;
		pthread_join(w->th, NULL);
		w->started = false;
	}
	close(w->efd);
	alyx__free(w->staged);
	alyx__free(w);
	s->ws = NULL;
}
