/*
 * auth-routes.c - the /api/auth/... routes (docs/auth.md): each translates
 * to one libalyx auth call (lib/auth).
 *
 * Most run on the service thread (not the writer): register, login and
 * confirm-password-reset spend one argon2id hash (~60 ms of CPU) there,
 * and take the database writer briefly for their own transaction.  What
 * talks to other servers does not: email webhooks and the OAuth callback
 * go to the outbound workers (outbound.c) and the callback is answered
 * when its job comes back, like a queued write.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "auth/auth.h"
#include "core/config.h"
#include "core/handle.h"
#include "http/http.h"

#define NO_STORE "Cache-Control: no-store\r\n"

/* The error of the last auth call, with Retry-After on 429 and
 * WWW-Authenticate on 401. */
static int auth_error(alyx__svc *t, alyx__req *r)
{
	alyx *a = t->srv->a;
	int code = alyx_errcode(a);
	const char *d = alyx_errdetails(a), *ra;
	char hdr[96];

	hdr[0] = '\0';
	if (code == ALYX_OK)
		code = ALYX_E_INTERNAL;
	ra = strstr(d, "\"retry_after\":");
	if (code == ALYX_E_RATELIMIT && ra)
		snprintf(hdr, sizeof(hdr), "Retry-After: %ld\r\n",
			 strtol(ra + 14, NULL, 10));
	else if (code == ALYX_E_UNAUTHORIZED)
		snprintf(hdr, sizeof(hdr), "WWW-Authenticate: Bearer\r\n");
	return alyx__reply_error_h(t, r, alyx__http_status(code),
				   alyx_errname(code), alyx_errmsg(a), d,
				   hdr[0] ? hdr : NULL);
}

/* GET /api/auth/me with Authorization: Bearer <token>. */
static int h_me(alyx__svc *t, alyx__req *r)
{
	alyx *a = t->srv->a;
	alyx_ctx *ctx = NULL;
	char *tok, *out = NULL;
	int n, rc;

	n = alyx__hdr_len(r, HH_AUTHORIZATION);
	if (n <= 0 || n > ALYX_AUTH_JWT_MAX + 16)
		return alyx__reply_error_h(t, r, 401,
					   alyx_errname(ALYX_E_UNAUTHORIZED),
					   "an Authorization: Bearer token is "
					   "required", NULL,
					   "WWW-Authenticate: Bearer\r\n");
	tok = alyx__malloc((size_t)n + 1);
	if (!tok)
		return alyx__reply_error(t, r, 500, "OUT_OF_MEMORY",
					 "out of memory", NULL);
	if (alyx__hdr_copy(r, tok, n + 1, HH_AUTHORIZATION) != n)
		tok[0] = '\0';
	rc = alyx_ctx_from_token(a, tok, &ctx);
	alyx__free(tok);
	if (rc == ALYX_OK)
		rc = alyx_auth_me(a, ctx, &out);
	alyx_ctx_free(ctx);
	if (rc != ALYX_OK)
		return auth_error(t, r);
	n = alyx__reply(t, r, 200, "application/json", out, strlen(out),
			NO_STORE);
	alyx_free(out);
	return n;
}

/* ---- email verification and password reset ---- */

static void log_line(alyx__svc *t, int level, const char *msg,
		     const char *k1, const char *v1, const char *k2,
		     const char *v2, const char *k3, const char *v3)
{
	alyx_server *s = t->srv;
	alyx_buf *b = &t->scratch;

	alyx__buf_reset(b);
	alyx__log_begin(s, b, level == ALYX_LOG_WARN ? "warn" : "info", msg);
	if (k1)
		alyx__log_kv(s, b, k1, v1);
	if (k2)
		alyx__log_kv(s, b, k2, v2);
	if (k3)
		alyx__log_kv(s, b, k3, v3);
	alyx__log_end(s, b);
	alyx__srv_log(s, t, level, b);
}

/* The link goes to the webhook (an outbound worker POSTs it) and, in
 * dev mode, to the log.  Nothing of this shows in the answer. */
static void deliver_link(alyx__svc *t, alyx__link *l)
{
	alyx_server *s = t->srv;
	const alyx__config *cfg = s->a->cfg;
	alyx__job *j;

	if (cfg->auth.email.webhook) {
		j = alyx__calloc(1, sizeof(*j));
		if (j) {
			j->op = JOB_WEBHOOK;
			j->coll = alyx__strdup(l->type);
			j->body = l->payload;
			l->payload = NULL;
		}
		if (!j || !j->coll || !alyx__outbound_push(s, j)) {
			alyx__job_free(j);
			log_line(t, ALYX_LOG_WARN, "email webhook queue is "
				 "full; a link was dropped", "type", l->type,
				 NULL, NULL, NULL, NULL);
		}
	}
	if (s->flags & ALYX_SERVER_DEV)
		log_line(t, ALYX_LOG_INFO, "auth link (dev mode)", "type",
			 l->type, "email", l->email, "link", l->link);
	else if (!cfg->auth.email.webhook)
		log_line(t, ALYX_LOG_WARN, "no auth.email.webhook is "
			 "configured: a link was not delivered", "type",
			 l->type, NULL, NULL, NULL, NULL);
}

static int h_request_link(alyx__svc *t, alyx__req *r, bool reset)
{
	const char *body = r->body.data ? r->body.data : "";
	alyx__link *l = NULL;
	const char *ok;
	char ip[64];
	int rc;

	rc = alyx__auth_request_link(t->srv->a, reset, body, r->body.len,
				     alyx__req_peer(r, ip, sizeof(ip)), &l);
	if (rc != ALYX_OK)
		return auth_error(t, r);
	if (l)
		deliver_link(t, l);
	alyx__link_free(l);
	ok = alyx__link_accepted();
	return alyx__reply(t, r, 202, "application/json", ok, strlen(ok),
			   NO_STORE);
}

/* ---- OAuth ---- */

static bool host_ok(const char *h)
{
	if (!*h)
		return false;
	for (; *h; h++)
		if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') ||
		      (*h >= '0' && *h <= '9') || *h == '.' || *h == '-' ||
		      *h == ':' || *h == '[' || *h == ']'))
			return false;
	return true;
}

/* http(s)://<Host>/api/auth/oauth/<p>/callback, or NULL without a
 * usable Host header. */
static char *callback_url(alyx__svc *t, alyx__req *r)
{
	char host[256];
	int n = alyx__hdr_len(r, HH_HOST);

	if (n <= 0 || n >= (int)sizeof(host) ||
	    alyx__hdr_copy(r, host, sizeof(host), HH_HOST) != n ||
	    !host_ok(host))
		return NULL;
	return alyx__asprintf("%s://%s/api/auth/oauth/%s/callback",
			      t->srv->tls_cert ? "https" : "http", host,
			      r->coll);
}

/* GET /api/auth/oauth/:provider: 302 to the provider. */
static int h_oauth_start(alyx__svc *t, alyx__req *r)
{
	alyx *a = t->srv->a;
	char *fallback = callback_url(t, r), *out = NULL, *hdr = NULL;
	const cJSON *url;
	cJSON *j = NULL;
	char ip[64];
	int rc, n;

	rc = alyx__oauth_start(a, r->coll, fallback,
			       alyx__req_peer(r, ip, sizeof(ip)), &out);
	alyx__free(fallback);
	if (rc != ALYX_OK)
		return auth_error(t, r);
	j = cJSON_Parse(out);
	url = cJSON_GetObjectItemCaseSensitive(j, "url");
	if (cJSON_IsString(url) && !strpbrk(url->valuestring, "\r\n"))
		hdr = alyx__asprintf("Location: %s\r\n" NO_STORE,
				     url->valuestring);
	if (hdr)
		n = alyx__reply(t, r, 302, "application/json", out,
				strlen(out), hdr);
	else
		n = alyx__reply_error(t, r, 500, "OUT_OF_MEMORY",
				      "out of memory", NULL);
	alyx__free(hdr);
	cJSON_Delete(j);
	alyx_free(out);
	return n;
}

/* One query argument (lws has decoded it) into a new string, or NULL. */
static char *url_arg(alyx__req *r, const char *name)
{
	char buf[2200], key[32];
	const char *v;

	snprintf(key, sizeof(key), "%s=", name);
	v = alyx__req_urlarg(r, key, buf, (int)sizeof(buf));
	return v ? alyx__strdup(v) : NULL;
}

/* "<frontend_url>#k=v&..." from `pairs` (NULL-terminated k, v, ...). */
static char *fragment_url(const char *base, const char *const *pairs)
{
	alyx_buf b;

	alyx__buf_init(&b, 0);
	alyx__buf_adds(&b, base);
	alyx__buf_addc(&b, '#');
	for (size_t i = 0; pairs[i]; i += 2) {
		if (i)
			alyx__buf_addc(&b, '&');
		alyx__buf_adds(&b, pairs[i]);
		alyx__buf_addc(&b, '=');
		alyx__url_enc(&b, pairs[i + 1]);
	}
	return alyx__buf_take(&b);
}

/* 302 to auth.oauth.frontend_url with `pairs` in the fragment (never
 * sent to servers, kept out of logs and Referer). */
static int to_frontend(alyx__svc *t, alyx__req *r, const char *const *pairs)
{
	char *loc = fragment_url(t->srv->a->cfg->auth.oauth.frontend_url,
				 pairs);
	char *hdr = loc ? alyx__asprintf("Location: %s\r\n" NO_STORE, loc)
			: NULL;
	int n;

	if (hdr)
		n = alyx__reply(t, r, 302, NULL, NULL, 0, hdr);
	else
		n = alyx__reply_error(t, r, 500, "OUT_OF_MEMORY",
				      "out of memory", NULL);
	alyx__free(hdr);
	alyx__free(loc);
	return n;
}

static int oauth_fail(alyx__svc *t, alyx__req *r, int code, const char *msg,
		      const char *details)
{
	if (t->srv->a->cfg->auth.oauth.frontend_url) {
		const char *pairs[] = {"error", alyx_errname(code),
				       "error_description", msg, NULL};

		return to_frontend(t, r, pairs);
	}
	return alyx__reply_error(t, r, alyx__http_status(code),
				 alyx_errname(code), msg, details);
}

int alyx__h_oauth_done(alyx__svc *t, alyx__req *r, alyx__job *j)
{
	const cJSON *at, *rt, *ei;
	char exp[24];
	cJSON *o;
	int n;

	if (j->rc != ALYX_OK)
		return oauth_fail(t, r, j->rc, j->err_msg ? j->err_msg
				  : alyx_strerror(j->rc), j->err_details);
	if (!t->srv->a->cfg->auth.oauth.frontend_url)
		return alyx__reply(t, r, 200, "application/json", j->out,
				   strlen(j->out), NO_STORE);
	o = cJSON_Parse(j->out);
	at = cJSON_GetObjectItemCaseSensitive(o, "access_token");
	rt = cJSON_GetObjectItemCaseSensitive(o, "refresh_token");
	ei = cJSON_GetObjectItemCaseSensitive(o, "expires_in");
	if (!cJSON_IsString(at) || !cJSON_IsString(rt) || !cJSON_IsNumber(ei)) {
		cJSON_Delete(o);
		return alyx__reply_error(t, r, 500, "OUT_OF_MEMORY",
					 "out of memory", NULL);
	}
	snprintf(exp, sizeof(exp), "%.0f", ei->valuedouble);
	{
		const char *pairs[] = {"access_token", at->valuestring,
				       "refresh_token", rt->valuestring,
				       "token_type", "Bearer",
				       "expires_in", exp, NULL};

		n = to_frontend(t, r, pairs);
	}
	cJSON_Delete(o);
	return n;
}

/* GET /api/auth/oauth/:provider/callback?code&state: the exchange runs
 * on an outbound worker; the answer comes back as a job. */
static int h_oauth_callback(alyx__svc *t, alyx__req *r)
{
	char *perr = url_arg(r, "error");
	alyx__job *j;
	char ip[64];
	const char *pip;

	if (perr) {
		char det[160];
		int n;

		snprintf(det, sizeof(det), "{\"provider\":\"%s\",\"reason\":"
			 "\"denied\"}", r->coll);
		n = oauth_fail(t, r, ALYX_E_UNAUTHORIZED, "the provider "
			       "did not authorize the sign-in", det);
		alyx__free(perr);
		return n;
	}
	j = alyx__calloc(1, sizeof(*j));
	if (!j)
		return alyx__reply_error(t, r, 500, "OUT_OF_MEMORY",
					 "out of memory", NULL);
	j->op = JOB_OAUTH;
	j->coll = alyx__strdup(r->coll);
	j->body = url_arg(r, "code");
	j->id = url_arg(r, "state");
	pip = alyx__req_peer(r, ip, sizeof(ip));
	if (pip)
		j->ip = alyx__strdup(pip);
	if (!j->coll) {
		alyx__job_free(j);
		return alyx__reply_error(t, r, 500, "OUT_OF_MEMORY",
					 "out of memory", NULL);
	}
	j->owner = t;
	j->req = r;
	r->job = j;
	r->state = RS_WRITER;
	if (alyx__outbound_push(t->srv, j))
		return 0;
	r->job = NULL;
	r->state = RS_DONE;
	alyx__job_free(j);
	return alyx__reply_error(t, r, 503, alyx_errname(ALYX_E_UNAVAILABLE),
				 "too many sign-ins in progress; retry", NULL);
}

int alyx__h_auth(alyx__svc *t, alyx__req *r)
{
	alyx *a = t->srv->a;
	const char *body = r->body.data ? r->body.data : "";
	size_t len = r->body.len;
	char ip[64], *out = NULL;
	const char *peer = alyx__req_peer(r, ip, sizeof(ip));
	int rc, status = 200, n;

	switch (r->route) {
	case R_AUTH_REGISTER:
		rc = alyx__auth_register(a, body, len, peer, &out);
		status = 201;
		break;
	case R_AUTH_LOGIN:
		rc = alyx__auth_login(a, body, len, peer, &out);
		break;
	case R_AUTH_REFRESH:
		rc = alyx_auth_refresh(a, body, len, &out);
		break;
	case R_AUTH_LOGOUT:
	case R_AUTH_CONFIRM_RESET:
		rc = r->route == R_AUTH_LOGOUT
			     ? alyx_auth_logout(a, body, len)
			     : alyx_auth_confirm_password_reset(a, body, len);
		if (rc != ALYX_OK)
			return auth_error(t, r);
		return alyx__reply(t, r, 204, NULL, NULL, 0, NULL);
	case R_AUTH_REQ_VERIFY:
	case R_AUTH_REQ_RESET:
		return h_request_link(t, r, r->route == R_AUTH_REQ_RESET);
	case R_AUTH_VERIFY:
		rc = alyx_auth_verify(a, body, len, &out);
		break;
	case R_AUTH_PROVIDERS:
		rc = alyx_auth_providers(a, &out);
		break;
	case R_AUTH_OAUTH:
		return h_oauth_start(t, r);
	case R_AUTH_OAUTH_CB:
		return h_oauth_callback(t, r);
	default:
		return h_me(t, r);
	}
	if (rc != ALYX_OK)
		return auth_error(t, r);
	n = alyx__reply(t, r, status, "application/json", out, strlen(out),
			NO_STORE);
	alyx_free(out);
	return n;
}
