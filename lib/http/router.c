/*
 * router.c - one HTTP request on its service thread: method, route,
 * request id, CORS, limits, then a translation to the public C API.
 * Reads run here (inside the thread's read pass); writes are queued to
 * the writer thread and answered when it hands the result back.
 *
 * The request (alyx__req) lives in lws's per-transaction user space:
 * lws frees it when the transaction completes, so nothing may touch `r`
 * after lws_http_transaction_completed() (alyx__reply() calls it last).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "auth/auth.h"
#include "core/handle.h"
#include "http/http.h"

static const char *const route_labels[R_COUNT] = {
	[R_ROOT] = "/",
	[R_HEALTH] = "/health",
	[R_LIVE] = "/health/live",
	[R_READY] = "/health/ready",
	[R_STATS] = "/health/stats",
	[R_METRICS] = "/metrics",
	[R_OPENAPI] = "/api/openapi.json",
	[R_BATCH] = "/api/batch",
	[R_COLL] = "/api/collections/:name",
	[R_DOC] = "/api/collections/:name/:id",
	[R_BENCH] = "/bench/hello",
	[R_AUTH_REGISTER] = "/api/auth/register",
	[R_AUTH_LOGIN] = "/api/auth/login",
	[R_AUTH_REFRESH] = "/api/auth/refresh",
	[R_AUTH_LOGOUT] = "/api/auth/logout",
	[R_AUTH_ME] = "/api/auth/me",
	[R_AUTH_REQ_VERIFY] = "/api/auth/request-verification",
	[R_AUTH_VERIFY] = "/api/auth/verify",
	[R_AUTH_REQ_RESET] = "/api/auth/request-password-reset",
	[R_AUTH_CONFIRM_RESET] = "/api/auth/confirm-password-reset",
	[R_AUTH_PROVIDERS] = "/api/auth/providers",
	[R_AUTH_OAUTH] = "/api/auth/oauth/:provider",
	[R_AUTH_OAUTH_CB] = "/api/auth/oauth/:provider/callback",
	[R_REALTIME] = "/api/realtime",
	[R_FUNCTION] = "/api/functions/:name",
	[R_ADMIN_FUNCTIONS] = "/api/admin/functions",
	[R_ADMIN_FN_LOGS] = "/api/admin/functions/:name/logs",
	[R_INTERNAL_QUERY] = "/internal/v1/db/query",
	[R_INTERNAL_EXEC] = "/internal/v1/db/exec",
	[R_INTERNAL_TX] = "/internal/v1/db/tx",
	[R_NONE] = "unmatched",
};

const char *alyx__route_label(int route)
{
	return route >= 0 && route < R_COUNT ? route_labels[route] : "?";
}

static const char *const method_names[M_COUNT] = {
	"GET", "POST", "PATCH", "DELETE", "PUT", "OPTIONS", "HEAD", "OTHER"
};

const char *alyx__method_name(int m)
{
	return m >= 0 && m < M_COUNT ? method_names[m] : "OTHER";
}

#define B(m) (1u << (m))
static const unsigned route_methods[R_COUNT] = {
	[R_ROOT] = B(M_GET),
	[R_HEALTH] = B(M_GET),
	[R_LIVE] = B(M_GET),
	[R_READY] = B(M_GET),
	[R_STATS] = B(M_GET),
	[R_METRICS] = B(M_GET),
	[R_OPENAPI] = B(M_GET),
	[R_BATCH] = B(M_POST),
	[R_COLL] = B(M_GET) | B(M_POST),
	[R_DOC] = B(M_GET) | B(M_PATCH) | B(M_DELETE),
	[R_BENCH] = B(M_GET),
	[R_AUTH_REGISTER] = B(M_POST),
	[R_AUTH_LOGIN] = B(M_POST),
	[R_AUTH_REFRESH] = B(M_POST),
	[R_AUTH_LOGOUT] = B(M_POST),
	[R_AUTH_ME] = B(M_GET),
	[R_AUTH_REQ_VERIFY] = B(M_POST),
	[R_AUTH_VERIFY] = B(M_POST),
	[R_AUTH_REQ_RESET] = B(M_POST),
	[R_AUTH_CONFIRM_RESET] = B(M_POST),
	[R_AUTH_PROVIDERS] = B(M_GET),
	[R_AUTH_OAUTH] = B(M_GET),
	[R_AUTH_OAUTH_CB] = B(M_GET),
	[R_REALTIME] = B(M_GET),
	[R_FUNCTION] = B(M_POST),
	[R_ADMIN_FUNCTIONS] = B(M_GET),
	[R_ADMIN_FN_LOGS] = B(M_GET),
	[R_INTERNAL_QUERY] = B(M_POST),
	[R_INTERNAL_EXEC] = B(M_POST),
	[R_INTERNAL_TX] = B(M_POST),
	[R_NONE] = 0,
};

static const struct {
	const char *path;
	int route;
} fixed_routes[] = {
	{"/", R_ROOT},
	{"/health", R_HEALTH},
	{"/health/live", R_LIVE},
	{"/health/ready", R_READY},
	{"/health/stats", R_STATS},
	{"/metrics", R_METRICS},
	{"/api/openapi.json", R_OPENAPI},
	{"/api/batch", R_BATCH},
	{"/api/auth/register", R_AUTH_REGISTER},
	{"/api/auth/login", R_AUTH_LOGIN},
	{"/api/auth/refresh", R_AUTH_REFRESH},
	{"/api/auth/logout", R_AUTH_LOGOUT},
	{"/api/auth/me", R_AUTH_ME},
	{"/api/auth/request-verification", R_AUTH_REQ_VERIFY},
	{"/api/auth/verify", R_AUTH_VERIFY},
	{"/api/auth/request-password-reset", R_AUTH_REQ_RESET},
	{"/api/auth/confirm-password-reset", R_AUTH_CONFIRM_RESET},
	{"/api/auth/providers", R_AUTH_PROVIDERS},
	{"/api/realtime", R_REALTIME},
	{"/api/admin/functions", R_ADMIN_FUNCTIONS},
	{"/internal/v1/db/query", R_INTERNAL_QUERY},
	{"/internal/v1/db/exec", R_INTERNAL_EXEC},
	{"/internal/v1/db/tx", R_INTERNAL_TX},
};

#define COLL_PREFIX "/api/collections/"
#define FN_PREFIX "/api/functions/"
#define FN_ADMIN_PREFIX "/api/admin/functions/"

/* /api/functions/:name and /api/admin/functions/:name/logs; the name
 * goes to r->coll. */
static int function_route(alyx__req *r)
{
	const char *p = r->path;
	bool admin = !strncmp(p, FN_ADMIN_PREFIX, strlen(FN_ADMIN_PREFIX));
	char *name, *rest;

	if (!admin && strncmp(p, FN_PREFIX, strlen(FN_PREFIX)))
		return R_NONE;
	r->segs = alyx__strdup(p + strlen(admin ? FN_ADMIN_PREFIX :
					  FN_PREFIX));
	if (!r->segs)
		return R_NONE;
	name = r->segs;
	rest = strchr(name, '/');
	if (rest)
		*rest++ = '\0';
	if (admin ? !rest || strcmp(rest, "logs") : rest != NULL)
		return R_NONE;
	if (!*name || strlen(name) > 64 ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		   "0123456789_-") != strlen(name))
		return R_NONE;
	r->coll = name;
	return admin ? R_ADMIN_FN_LOGS : R_FUNCTION;
}

#define OAUTH_PREFIX "/api/auth/oauth/"

/* /api/auth/oauth/:provider[/callback]; the provider name goes in
 * r->coll (checked by the handler). */
static int oauth_route(alyx__req *r, const char *rest)
{
	char *slash;

	r->segs = alyx__strdup(rest);
	if (!r->segs)
		return R_NONE;
	slash = strchr(r->segs, '/');
	if (slash) {
		*slash = '\0';
		if (strcmp(slash + 1, "callback"))
			return R_NONE;
	}
	if (!alyx__ident_valid(r->segs))
		return R_NONE;
	r->coll = r->segs;
	return slash ? R_AUTH_OAUTH_CB : R_AUTH_OAUTH;
}

static int get_method(struct lws *wsi)
{
	static const struct {
		enum lws_token_indexes tok;
		int m;
	} toks[] = {
		{WSI_TOKEN_GET_URI, M_GET},
		{WSI_TOKEN_POST_URI, M_POST},
		{WSI_TOKEN_PATCH_URI, M_PATCH},
		{WSI_TOKEN_DELETE_URI, M_DELETE},
		{WSI_TOKEN_PUT_URI, M_PUT},
		{WSI_TOKEN_OPTIONS_URI, M_OPTIONS},
		{WSI_TOKEN_HEAD_URI, M_HEAD},
	};
	for (size_t i = 0; i < ALYX_ARRAY_LEN(toks); i++)
		if (lws_hdr_total_length(wsi, toks[i].tok))
			return toks[i].m;
	return M_OTHER;
}

/* Splits the (lws-decoded, dot-segment-free) path into a route. */
static int route_of(alyx_server *s, alyx__req *r)
{
	const char *p = r->path;

	/* Documents first: the busiest routes, and no fixed route starts
	 * with the collections prefix. */
	if (strncmp(p, COLL_PREFIX, strlen(COLL_PREFIX))) {
		for (size_t i = 0; i < ALYX_ARRAY_LEN(fixed_routes); i++)
			if (!strcmp(p, fixed_routes[i].path))
				return fixed_routes[i].route;
		if ((s->flags & ALYX_SERVER_BENCH_ROUTES) &&
		    !strcmp(p, "/bench/hello"))
			return R_BENCH;
		if (!strncmp(p, OAUTH_PREFIX, strlen(OAUTH_PREFIX)))
			return oauth_route(r, p + strlen(OAUTH_PREFIX));
		return function_route(r);
	}
	r->segs = alyx__strdup(p + strlen(COLL_PREFIX));
	if (!r->segs)
		return R_NONE;
	char *name = r->segs, *slash = strchr(name, '/');
	if (slash) {
		*slash = '\0';
		char *id = slash + 1;
		if (strchr(id, '/'))
			return R_NONE;
		if (*id)
			r->id = id;
	}
	/* Collection names are identifiers; anything else cannot exist. */
	if (!alyx__ident_valid(name))
		return R_NONE;
	r->coll = name;
	return r->id ? R_DOC : R_COLL;
}

static bool rid_ok(const char *s, size_t n)
{
	if (n < 1 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

static void set_request_id(alyx__svc *t, alyx__req *r)
{
	int n = alyx__hdr_len(r, HH_X_REQUEST_ID);

	if (n > 0 && n <= 64 &&
	    alyx__hdr_copy(r, r->rid, sizeof(r->rid), HH_X_REQUEST_ID) == n &&
	    rid_ok(r->rid, (size_t)n))
		return;
	/* "<16 hex prefix>-<sequence in at least 6 hex digits>" */
	static const char hex[] = "0123456789abcdef";
	char tmp[16], *q = tmp + sizeof(tmp);
	uint64_t seq = ++t->rid_seq;
	size_t plen = strlen(t->rid_prefix), dlen;

	do {
		*--q = hex[seq & 15];
		seq >>= 4;
	} while (seq || tmp + sizeof(tmp) - q < 6);
	dlen = (size_t)(tmp + sizeof(tmp) - q);
	memcpy(r->rid, t->rid_prefix, plen);
	r->rid[plen] = '-';
	memcpy(r->rid + plen + 1, q, dlen);
	r->rid[plen + 1 + dlen] = '\0';
}

static bool origin_allowed(alyx_server *s, const char *o)
{
	if (s->cors_any)
		return true;
	for (char **p = s->cors; p && *p; p++)
		if (!strcmp(*p, o))
			return true;
	return false;
}

static void check_cors(alyx__svc *t, alyx__req *r)
{
	int n = alyx__hdr_len(r, HH_ORIGIN);

	if (n <= 0 || (!t->srv->cors_any && !t->srv->cors))
		return;
	char *o = alyx__malloc((size_t)n + 1);
	if (!o)
		return;
	if (alyx__hdr_copy(r, o, n + 1, HH_ORIGIN) != n ||
	    !origin_allowed(t->srv, o)) {
		alyx__free(o);
		return;
	}
	r->origin = o;
	r->cors = true;
}

/* Percent-encodes everything but unreserved characters and ':' ',' (the
 * query syntax's own separators, which lws has already decoded). */
static void qs_encode(alyx_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	/* 1: copied as it is (unreserved characters, ':' and ','). */
	static const unsigned char plain[256] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0,
		1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
		0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
		1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1,
		0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
		1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	};
	size_t need = 0;
	char *d;

	/* The exact length first: one reservation, and the cap judges
	 * what is written, not a worst case. */
	for (size_t i = 0; i < n; i++)
		need += plain[(unsigned char)s[i]] ? 1 : 3;
	if (!alyx__buf_grow(b, need))
		return;
	d = b->data + b->len;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (plain[c]) {
			*d++ = (char)c;
		} else {
			*d++ = '%';
			*d++ = hex[c >> 4];
			*d++ = hex[c & 15];
		}
	}
	*d = '\0';
	b->len = (size_t)(d - b->data);
}

/*
 * The query string as the client sent it, for a get's options and for a
 * query of more parameters than query_args() takes.  lws splits the
 * arguments at '&' and decodes each one (%xx, '+' as space); they are
 * re-encoded here so the core decodes each value exactly once.  Returns
 * NULL when there is no query (or out of memory: then *oom is set).
 */
static const char *query_string(alyx__svc *t, alyx__req *r, bool *oom)
{
	alyx_buf *b = &t->scratch;
	char *frag;
	size_t cap = t->srv->max_header + 1;

	*oom = false;
	alyx__buf_reset(b);
	if (!alyx__req_has_query(r))
		return NULL;
	if (!t->frag) {
		t->frag = alyx__malloc(cap);
		if (!t->frag) {
			*oom = true;
			return NULL;
		}
	}
	frag = t->frag;
	for (int i = 0;; i++) {
		int n = alyx__arg_copy(r, frag, (int)cap, i);
		if (n < 0)
			break;
		if (!n)
			continue;
		if (b->len)
			alyx__buf_addc(b, '&');
		const char *eq = memchr(frag, '=', (size_t)n);
		if (eq) {
			qs_encode(b, frag, (size_t)(eq - frag));
			alyx__buf_addc(b, '=');
			qs_encode(b, eq + 1, (size_t)(n - (eq - frag) - 1));
		} else {
			qs_encode(b, frag, (size_t)n);
		}
	}
	if (b->err) {
		*oom = true;
		return NULL;
	}
	return b->len ? b->data : NULL;
}

/* Parameters passed to the core as decoded pairs; a query with more (only
 * `filter` may repeat) goes as the query string, with the same answer. */
#define QARGS_MAX 16

/*
 * The query's parameters as lws decoded them (split at '&', %xx and '+'
 * decoded), each split at its first '=', for the core to take as they
 * are instead of re-encoding them into a query string it decodes again.
 * Their text is kept in the thread's scratch buffer.  Returns how many
 * (0: no query), or -1 if there are more than QARGS_MAX or on out of
 * memory (then *oom is set).
 */
static int query_args(alyx__svc *t, alyx__req *r, alyx__qarg *args,
		      bool *oom)
{
	alyx_buf *b = &t->scratch;
	size_t cap = t->srv->max_header + 1, off[QARGS_MAX];
	int len[QARGS_MAX], n = 0;

	*oom = false;
	alyx__buf_reset(b);
	if (!alyx__req_has_query(r))
		return 0;
	for (int i = 0;; i++) {
		int k;

		if (!alyx__buf_grow(b, cap)) {
			*oom = true;
			return -1;
		}
		k = alyx__arg_copy(r, b->data + b->len, (int)cap, i);
		if (k < 0)
			break;
		if (!k)
			continue;
		if (n == QARGS_MAX)
			return -1;
		off[n] = b->len;
		len[n++] = k;
		b->len += (size_t)k + 1;	/* and its NUL */
	}
	for (int i = 0; i < n; i++) {
		char *p = b->data + off[i];
		char *eq = memchr(p, '=', (size_t)len[i]);

		args[i].key = p;
		if (eq) {
			*eq = '\0';
			args[i].klen = (size_t)(eq - p);
			args[i].val = eq + 1;
			args[i].vlen = (size_t)len[i] - args[i].klen - 1;
		} else {
			args[i].klen = (size_t)len[i];
			args[i].val = "";
			args[i].vlen = 0;
		}
	}
	return n;
}

/* ---- handlers: each translates to one C API call ---- */

#define JSON_TYPE "application/json"

/* GET on a collection (a query) or on one document, under the
 * caller's rules. */
static int h_read(alyx__svc *t, alyx__req *r)
{
	struct alyx_ctx rc_;
	alyx__qarg args[QARGS_MAX];
	const char *why;
	char ip[64];
	alyx_buf *body;
	bool oom = false;
	const char *qs = NULL;
	int rc, n = -1;

	rc = alyx__req_caller(t, r, &rc_, ip, sizeof(ip), &why);
	if (rc != ALYX_OK)
		return alyx__reply_unauthorized(t, r, rc, why);
	/* A query's parameters go decoded; a get's options, and a query
	 * with too many parameters, as the query string. */
	if (!r->id)
		n = query_args(t, r, args, &oom);
	if (n < 0 && !oom)
		qs = query_string(t, r, &oom);
	if (oom)
		return alyx__reply_error(t, r, 500, "OUT_OF_MEMORY",
					 "out of memory", NULL);
	alyx__svc_read_pass(t);
	body = alyx__reply_body_begin(t);
	if (r->id)
		rc = alyx__doc_get_buf(t->srv->a, &rc_, r->coll, r->id, qs,
				       body);
	else if (n >= 0)
		rc = alyx__query_args_buf(t->srv->a, &rc_, r->coll, args,
					  (size_t)n, body);
	else
		rc = alyx__query_str_buf(t->srv->a, &rc_, r->coll, qs, body);
	if (rc != ALYX_OK)
		return alyx__reply_core_error(t, r);
	return alyx__reply_in_place(t, r, 200, JSON_TYPE);
}

/* Admin-only routes (/health/stats): a Bearer token of role admin;
 * none is 401, another role 403.  Returns 1 to go on. */
static int require_admin(alyx__svc *t, alyx__req *r)
{
	struct alyx_ctx rc_;
	const char *why;
	char ip[64];
	int rc = alyx__req_caller(t, r, &rc_, ip, sizeof(ip), &why);

	if (rc != ALYX_OK)
		return alyx__reply_unauthorized(t, r, rc, why);
	if (!rc_.user_id)
		return alyx__reply_error_h(t, r, 401,
			alyx_errname(ALYX_E_UNAUTHORIZED),
			"this route needs an admin's Bearer token", NULL,
			"WWW-Authenticate: Bearer\r\n");
	if (!rc_.role || strcmp(rc_.role, "admin"))
		return alyx__reply_error(t, r, 403,
					 alyx_errname(ALYX_E_FORBIDDEN),
					 "this route is for admins only",
					 NULL);
	return 1;
}

/* A liveness probe of the database: one indexed read. */
static int db_check(alyx__svc *t)
{
	char *out = NULL;

	alyx__svc_read_pass(t);
	int rc = alyx_changes(t->srv->a, INT64_MAX - 1, 1, &out);
	alyx_free(out);
	return rc;
}

static int h_health(alyx__svc *t, alyx__req *r)
{
	alyx_server *s = t->srv;
	alyx_buf *b = &t->scratch;
	int rc = db_check(t);
	bool stopping = atomic_load(&s->stopping);
	int status = 200;

	alyx__buf_reset(b);
	if (r->route == R_LIVE) {
		alyx__buf_adds(b, "{\"status\":\"ok\"}");
	} else if (r->route == R_READY) {
		if (stopping || rc != ALYX_OK)
			status = 503;
		alyx__buf_addf(b, "{\"status\":\"%s\"}",
			       stopping ? "stopping"
			       : rc != ALYX_OK ? "unavailable" : "ready");
	} else {
		if (rc != ALYX_OK)
			status = 503;
		alyx__buf_addf(b, "{\"status\":\"%s\",\"version\":\"%s\","
			       "\"uptime_s\":%lld,\"database\":",
			       rc != ALYX_OK ? "unavailable" : "ok",
			       alyx_version_string(),
			       (long long)((alyx__now_ms() - s->started_ms) /
					   1000));
		if (rc != ALYX_OK)
			alyx__json_strz(b, alyx_errmsg(s->a));
		else
			alyx__buf_adds(b, "\"ok\"");
		alyx__buf_addc(b, '}');
	}
	if (b->err)
		return alyx__reply_error(t, r, 500, "OUT_OF_MEMORY",
					 "out of memory", NULL);
	/* alyx__reply copies the body before it reuses scratch. */
	return alyx__reply(t, r, status, JSON_TYPE, b->data, b->len, NULL);
}

static int h_text(alyx__svc *t, alyx__req *r)
{
	alyx_buf *b = &t->scratch;
	const char *ctype = JSON_TYPE;

	alyx__buf_reset(b);
	switch (r->route) {
	case R_ROOT:
		alyx__buf_addf(b, "{\"name\":\"alyx\",\"version\":\"%s\"}",
			       alyx_version_string());
		break;
	case R_STATS: {
		int n = require_admin(t, r);

		if (n != 1)
			return n;
		alyx__buf_reset(b);
		alyx__stats_json(t->srv, b);
		break;
	}
	case R_METRICS:
		alyx__metrics_text(t->srv, b);
		ctype = "text/plain; version=0.0.4; charset=utf-8";
		break;
	case R_BENCH:
		alyx__buf_adds(b, "{\"message\":\"hello\",\"ok\":true}");
		break;
	default:
		break;
	}
	if (b->err)
		return alyx__reply_error(t, r, 500, "OUT_OF_MEMORY",
					 "out of memory", NULL);
	return alyx__reply(t, r, 200, ctype, b->data, b->len, NULL);
}

static int h_openapi(alyx__svc *t, alyx__req *r)
{
	alyx__err err = {0};
	char *doc = NULL;
	int rc = alyx__openapi(t->srv, &doc, &err), n;

	if (rc != ALYX_OK) {
		n = alyx__reply_error(t, r, alyx__http_status(rc),
				      alyx_errname(rc), err.msg, err.details);
		alyx__err_clear(&err);
		return n;
	}
	n = alyx__reply(t, r, 200, JSON_TYPE, doc, strlen(doc), NULL);
	alyx__free(doc);
	return n;
}

/* Queues the request's write to the writer thread. */
static int queue_write(alyx__svc *t, alyx__req *r)
{
	alyx_server *s = t->srv;
	struct alyx_ctx rc_;
	const char *why;
	char ip[64];
	alyx__job *j;
	int rc;

	rc = alyx__req_caller(t, r, &rc_, ip, sizeof(ip), &why);
	if (rc != ALYX_OK)
		return alyx__reply_unauthorized(t, r, rc, why);
	j = alyx__calloc(1, sizeof(*j));
	if (!j || !(j->ctx = alyx__ctx_dup(&rc_))) {
		alyx__free(j);
		return alyx__reply_error(t, r, 500, "OUT_OF_MEMORY",
					 "out of memory", NULL);
	}
	j->op = r->route == R_BATCH ? JOB_BATCH
		: r->method == M_POST ? JOB_CREATE
		: r->method == M_PATCH ? JOB_UPDATE : JOB_DELETE;
	j->coll = r->coll ? alyx__strdup(r->coll) : NULL;
	j->id = r->id ? alyx__strdup(r->id) : NULL;
	if (j->op != JOB_DELETE) {
		j->body_len = r->body.len;
		j->body = r->body.len ? alyx__buf_take(&r->body)
				      : alyx__strdup("");
		if (!j->body) {
			alyx__job_free(j);
			return alyx__reply_error(t, r, 500, "OUT_OF_MEMORY",
						 "out of memory", NULL);
		}
	}
	if ((r->coll && !j->coll) || (r->id && !j->id)) {
		alyx__job_free(j);
		return alyx__reply_error(t, r, 500, "OUT_OF_MEMORY",
					 "out of memory", NULL);
	}
	if (j->op == JOB_CREATE || j->op == JOB_UPDATE) {
		/* Parse and validate here: the writer only writes, and a bad
		 * document is answered without reaching it. */
		j->prep = alyx__malloc(sizeof(*j->prep));
		if (!j->prep) {
			alyx__job_free(j);
			return alyx__reply_error(t, r, 500, "OUT_OF_MEMORY",
						 "out of memory", NULL);
		}
		if (alyx__write_prepare(s->a, j->ctx, j->coll,
					j->op == JOB_UPDATE, j->body,
					j->body_len, j->prep) != ALYX_OK) {
			alyx__free(j->prep);
			j->prep = NULL;
			alyx__job_free(j);
			return alyx__reply_core_error(t, r);
		}
	}
	j->owner = t;
	j->req = r;
	r->job = j;
	r->state = RS_WRITER;
	if (alyx__writer_push(s, j))
		return 0;
	r->job = NULL;
	r->state = RS_DONE;
	alyx__job_free(j);
	r->closing = true;
	return alyx__reply_error(t, r, 503, alyx_errname(ALYX_E_UNAVAILABLE),
				 "the server is shutting down", NULL);
}

static int dispatch(alyx__svc *t, alyx__req *r)
{
	switch (r->route) {
	case R_COLL:
	case R_DOC:
		return r->method == M_GET || r->method == M_HEAD
		       ? h_read(t, r) : queue_write(t, r);
	case R_BATCH:
		return queue_write(t, r);
	case R_HEALTH:
	case R_LIVE:
	case R_READY:
		return h_health(t, r);
	case R_OPENAPI:
		return h_openapi(t, r);
	case R_AUTH_REGISTER:
	case R_AUTH_LOGIN:
	case R_AUTH_REFRESH:
	case R_AUTH_LOGOUT:
	case R_AUTH_ME:
	case R_AUTH_REQ_VERIFY:
	case R_AUTH_VERIFY:
	case R_AUTH_REQ_RESET:
	case R_AUTH_CONFIRM_RESET:
	case R_AUTH_PROVIDERS:
	case R_AUTH_OAUTH:
	case R_AUTH_OAUTH_CB:
		return alyx__h_auth(t, r);
	case R_REALTIME:
		/* A plain GET: the WebSocket handshake goes to ws.c. */
		return alyx__reply_error_h(t, r, 426, "UPGRADE_REQUIRED",
			"/api/realtime is a WebSocket endpoint (send "
			"Upgrade: websocket)", NULL,
			"Upgrade: websocket\r\nConnection: Upgrade\r\n");
	case R_FUNCTION:
	case R_ADMIN_FUNCTIONS:
	case R_ADMIN_FN_LOGS:
	case R_INTERNAL_QUERY:
	case R_INTERNAL_EXEC:
	case R_INTERNAL_TX:
		return alyx__h_functions(t, r);
	default:
		return h_text(t, r);
	}
}

/* The methods of mask as an Allow list; HEAD goes with GET (RFC 9110
 * §9.3.2: a HEAD is answered as the GET would be, without the body). */
static void allow_list(char *buf, size_t n, unsigned mask)
{
	size_t used = 0;

	if (mask & B(M_GET))
		mask |= B(M_HEAD);
	buf[0] = '\0';
	for (int m = 0; m < M_COUNT; m++) {
		if (!(mask & B(m)))
			continue;
		used += (size_t)snprintf(buf + used, n - used, "%s%s",
					 used ? ", " : "", method_names[m]);
		if (used >= n)
			break;
	}
}

static int preflight(alyx__svc *t, alyx__req *r)
{
	char allow[96], hdrs[512];
	unsigned mask = route_methods[r->route] | B(M_OPTIONS);

	allow_list(allow, sizeof(allow), mask);
	if (!r->cors) {
		snprintf(hdrs, sizeof(hdrs), "Allow: %s\r\n", allow);
		return alyx__reply(t, r, 204, NULL, NULL, 0, hdrs);
	}
	char req_hdrs[256] = "Content-Type, Authorization, X-Request-Id";
	int n = alyx__hdr_len(r, HH_AC_REQUEST_HEADERS);
	if (n > 0 && n < (int)sizeof(req_hdrs)) {
		char tmp[256];
		if (alyx__hdr_copy(r, tmp, sizeof(tmp),
				   HH_AC_REQUEST_HEADERS) == n) {
			/* Echo only header-name characters. */
			bool ok = true;
			for (int i = 0; i < n; i++) {
				char c = tmp[i];
				if (!((c >= 'a' && c <= 'z') ||
				      (c >= 'A' && c <= 'Z') ||
				      (c >= '0' && c <= '9') || c == '-' ||
				      c == '_' || c == ',' || c == ' '))
					ok = false;
			}
			if (ok)
				memcpy(req_hdrs, tmp, (size_t)n + 1);
		}
	}
	snprintf(hdrs, sizeof(hdrs),
		 "Allow: %s\r\nAccess-Control-Allow-Methods: %s\r\n"
		 "Access-Control-Allow-Headers: %s\r\n"
		 "Access-Control-Max-Age: 600\r\n", allow, allow, req_hdrs);
	return alyx__reply(t, r, 204, NULL, NULL, 0, hdrs);
}

static bool is_json_type(const char *ct)
{
	size_t n = strcspn(ct, ";");
	while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
		n--;
	if (n == 16 && !strncasecmp(ct, "application/json", 16))
		return true;
	/* application/<something>+json */
	return n > 17 && !strncasecmp(ct, "application/", 12) &&
	       !strncasecmp(ct + n - 5, "+json", 5);
}

/* A client that sent "Expect: 100-continue" waits for this interim
 * answer before its body (curl would otherwise wait a second).  False if
 * the connection failed. */
static bool expect_continue(alyx__req *r)
{
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	unsigned char buf[LWS_PRE + sizeof(cont)];
	char v[32];
	int n = alyx__hdr_len(r, HH_EXPECT);

	if (n <= 0 || n >= (int)sizeof(v) ||
	    alyx__hdr_copy(r, v, sizeof(v), HH_EXPECT) != n ||
	    strcasecmp(v, "100-continue"))
		return true;
	memcpy(buf + LWS_PRE, cont, sizeof(cont) - 1);
	return alyx__req_write(r, buf + LWS_PRE, sizeof(cont) - 1, false) >= 0;
}

/* Checks the headers of a request that carries a JSON body and prepares
 * to read it.  Returns 1 to read the body, 0 to act now (empty body), or
 * the reply's return value (<= 0) after an error reply. */
static int body_prepare(alyx__svc *t, alyx__req *r, bool *act_now)
{
	alyx_server *s = t->srv;
	char tmp[128];
	int n;

	*act_now = false;
	n = alyx__hdr_len(r, HH_CONTENT_TYPE);
	if (n <= 0 || n >= (int)sizeof(tmp) ||
	    alyx__hdr_copy(r, tmp, sizeof(tmp), HH_CONTENT_TYPE) != n ||
	    !is_json_type(tmp))
		return alyx__reply_error(t, r, 415, "UNSUPPORTED_MEDIA_TYPE",
			"the request body must be JSON (Content-Type: "
			"application/json)", NULL);
	if (alyx__hdr_len(r, HH_TRANSFER_ENCODING) > 0) {
		if (!r->h1) {
			/* TLS: libwebsockets' connections. */
			r->closing = true;
			return alyx__reply_error(t, r, 411, "LENGTH_REQUIRED",
				"chunked request bodies are not read over "
				"TLS; send Content-Length", NULL);
		}
		/* The front has checked it is "chunked" alone and decodes
		 * it; the body is bounded as it arrives. */
		alyx__buf_init(&r->body, s->max_body);
		r->state = RS_BODY;
		return expect_continue(r) ? 1 : -1;
	}
	n = alyx__hdr_len(r, HH_CONTENT_LENGTH);
	if (n <= 0) {
		r->closing = true;
		return alyx__reply_error(t, r, 411, "LENGTH_REQUIRED",
			"Content-Length is required", NULL);
	}
	if (n >= (int)sizeof(tmp) ||
	    alyx__hdr_copy(r, tmp, sizeof(tmp), HH_CONTENT_LENGTH) != n)
		goto bad_length;
	unsigned long long cl = 0;
	for (int i = 0; i < n; i++) {
		if (tmp[i] < '0' || tmp[i] > '9' || cl > (1ull << 50))
			goto bad_length;
		cl = cl * 10 + (unsigned)(tmp[i] - '0');
	}
	if (cl > s->max_body) {
		char det[64];
		snprintf(det, sizeof(det), "{\"max_body\":%zu}", s->max_body);
		/* Let lws read and drop a moderately large body so the
		 * client sees the answer; hang up on absurd ones. */
		if (cl > 16ull * s->max_body)
			r->closing = true;
		return alyx__reply_error(t, r, 413,
			alyx_errname(ALYX_E_TOOBIG),
			"the request body is larger than the limit", det);
	}
	if (cl == 0) {
		/* lws delivers an empty body for POST only. */
		*act_now = r->method != M_POST;
		if (!*act_now)
			r->state = RS_BODY;
		return 1;
	}
	alyx__buf_init(&r->body, s->max_body);
	r->state = RS_BODY;
	return expect_continue(r) ? 1 : -1;
bad_length:
	r->closing = true;
	return alyx__reply_error(t, r, 400, "BAD_REQUEST",
				 "invalid Content-Length", NULL);
}

/* lws parses any single-digit HTTP version; serve 1.0 and 1.1 only. */
static bool http1(struct lws *wsi)
{
	char v[16];
	int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP);

	if (n <= 0)
		return true;	/* HTTP/0.9-style request line: lws's 1.0 */
	if (n >= (int)sizeof(v) ||
	    lws_hdr_copy(wsi, v, sizeof(v), WSI_TOKEN_HTTP) != n)
		return false;
	return !strcmp(v, "HTTP/1.1") || !strcmp(v, "HTTP/1.0");
}

int alyx__req_begin(alyx__svc *t, struct lws *wsi, alyx__req *r,
		    const char *uri)
{
	alyx_server *s = t->srv;

	if (!r)
		return -1;
	r->svc = t;
	r->wsi = wsi;
	r->t0_us = lws_now_usecs();
	r->counted = true;
	atomic_fetch_add(&s->inflight, 1);
	/* The front has parsed the method and refused other versions. */
	r->method = r->h1 ? alyx__front_method(r) : (uint8_t)get_method(wsi);
	set_request_id(t, r);
	r->path = alyx__strdup(uri ? uri : "/");
	if (!r->path)
		return -1;
	r->route = (uint8_t)route_of(s, r);
	check_cors(t, r);

	if (!r->h1 && !http1(wsi)) {
		r->closing = true;
		return alyx__reply_error(t, r, 505, "HTTP_VERSION_NOT_SUPPORTED",
					 "only HTTP/1.0 and HTTP/1.1 are served",
					 NULL);
	}
	if (atomic_load(&s->stopping)) {
		r->closing = true;
		return alyx__reply_error(t, r, 503,
			alyx_errname(ALYX_E_UNAVAILABLE),
			"the server is shutting down", NULL);
	}
	if (r->method == M_OPTIONS && !strcmp(r->path, "*")) {
		/* OPTIONS * : what the server serves anywhere. */
		unsigned mask = B(M_OPTIONS);
		char allow[96], hdr[128];
		for (int i = 0; i < R_COUNT; i++)
			mask |= route_methods[i];
		allow_list(allow, sizeof(allow), mask);
		snprintf(hdr, sizeof(hdr), "Allow: %s\r\n", allow);
		return alyx__reply(t, r, 204, NULL, NULL, 0, hdr);
	}
	if (r->route == R_NONE) {
		char msg[160];
		snprintf(msg, sizeof(msg), "no route for %s %.100s",
			 method_names[r->method], r->path);
		return alyx__reply_error(t, r, 404, "NOT_FOUND", msg, NULL);
	}
	if (r->method == M_OPTIONS)
		return preflight(t, r);
	if (!(route_methods[r->route] &
	      B(r->method == M_HEAD ? M_GET : r->method))) {
		char allow[96], hdr[128], msg[160];
		allow_list(allow, sizeof(allow),
			   route_methods[r->route] | B(M_OPTIONS));
		snprintf(hdr, sizeof(hdr), "Allow: %s\r\n", allow);
		snprintf(msg, sizeof(msg), "%s is not allowed on %s",
			 method_names[r->method], alyx__route_label(r->route));
		char det[160];
		snprintf(det, sizeof(det), "{\"allow\":\"%s\"}", allow);
		return alyx__reply_error_h(t, r, 405, "METHOD_NOT_ALLOWED", msg,
					   det, hdr);
	}
	if (r->method == M_POST || r->method == M_PATCH) {
		bool act_now;
		int n = body_prepare(t, r, &act_now);
		if (n <= 0)
			return n;
		if (!act_now) {
			/* The body follows; bound the whole request. */
			return 0;
		}
	}
	return dispatch(t, r);
}

int alyx__req_refuse(alyx__svc *t, struct lws *wsi, alyx__req *r,
		     int status, const char *code, const char *msg,
		     const char *details)
{
	r->svc = t;
	r->wsi = wsi;
	r->t0_us = lws_now_usecs();
	r->counted = true;
	atomic_fetch_add(&t->srv->inflight, 1);
	r->method = r->h1 ? alyx__front_method(r) : M_OTHER;
	set_request_id(t, r);
	r->path = alyx__strdup(r->h1 ? alyx__front_raw_path(r) : "/");
	r->route = R_NONE;
	r->closing = true;
	return alyx__reply_error(t, r, status, code, msg, details);
}

int alyx__req_body(alyx__svc *t, alyx__req *r, const void *p, size_t n)
{
	if (r->state != RS_BODY)
		return 0;	/* a body we do not need (lws discards it) */
	if (lws_now_usecs() - r->t0_us >
	    (int64_t)t->srv->timeout_ms * 1000) {
		/* A client trickling its body: answer and hang up. */
		r->closing = true;
		alyx__reply_error(t, r, 408, "TIMEOUT",
				  "the request took too long to arrive", NULL);
		return -1;
	}
	alyx__buf_add(&r->body, p, n);
	if (r->body.err == ALYX_E_NOMEM) {
		r->closing = true;
		alyx__reply_error(t, r, 500, "OUT_OF_MEMORY",
				  "out of memory reading the request body",
				  NULL);
		return -1;
	}
	if (r->body.err) {
		/* A body longer than its Content-Length said cannot reach
		 * here; a chunked one can. */
		char det[64];
		snprintf(det, sizeof(det), "{\"max_body\":%zu}",
			 t->srv->max_body);
		r->closing = true;
		alyx__reply_error(t, r, 413, alyx_errname(ALYX_E_TOOBIG),
				  "the request body is larger than the limit",
				  det);
		return -1;
	}
	return 0;
}

int alyx__req_body_done(alyx__svc *t, alyx__req *r)
{
	if (r->state != RS_BODY)
		return 0;
	return dispatch(t, r);
}

int alyx__req_writeable(alyx__svc *t, alyx__req *r)
{
	alyx__job *j = r->job;
	int n;

	if (r->state != RS_REPLY || !j)
		return 0;
	r->job = NULL;
	if (j->op == JOB_OAUTH) {
		n = alyx__h_oauth_done(t, r, j);
	} else if (j->op == JOB_INVOKE || j->op == JOB_INTERNAL) {
		n = alyx__fn_job_reply(t, r, j);
	} else if (j->rc != ALYX_OK) {
		n = alyx__reply_job_error(t, r, j);
	} else if (j->op == JOB_DELETE) {
		n = alyx__reply(t, r, 204, NULL, NULL, 0, NULL);
	} else {
		const char *body = j->out ? j->out : "{}";
		n = alyx__reply(t, r, j->op == JOB_CREATE ? 201 : 200,
				JSON_TYPE, body, strlen(body), NULL);
	}
	alyx__job_free(j);
	return n;
}

void alyx__req_cleanup(alyx__svc *t, alyx__req *r)
{
	alyx_server *s = t->srv;

	if (r->job) {
		if (r->state == RS_WRITER)
			r->job->req = NULL;	/* the writer still holds it */
		else
			alyx__job_free(r->job);
		r->job = NULL;
	}
	if (r->counted) {
		/* The client went away before its answer. */
		r->counted = false;
		atomic_fetch_sub(&s->inflight, 1);
		alyx_buf *b = &t->scratch;
		alyx__buf_reset(b);
		alyx__log_begin(s, b, "warn", "request aborted");
		alyx__log_kv(s, b, "method", alyx__method_name(r->method));
		alyx__log_kv(s, b, "path", r->path);
		alyx__log_kv(s, b, "request_id", r->rid);
		alyx__log_end(s, b);
		alyx__srv_log(s, t, ALYX_LOG_WARN, b);
	}
	alyx__free(r->path);
	r->path = NULL;
	alyx__free(r->segs);
	r->segs = NULL;
	r->coll = r->id = NULL;
	alyx__free(r->origin);
	r->origin = NULL;
	alyx__buf_free(&r->body);
	r->state = RS_DONE;
}
