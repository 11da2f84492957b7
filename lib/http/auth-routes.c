/*
 * auth-routes.c - POST /api/auth/register|login|refresh|logout and
 * GET /api/auth/me: each translates to one libalyx auth call (lib/auth).
 *
 * These run on the service thread (not the writer): register and login
 * spend one argon2id hash (~60 ms of CPU, docs/auth.md) there, and take
 * the database writer briefly for their own transaction.
 */
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "http/http.h"

#define NO_STORE "Cache-Control: no-store\r\n"

/* The client's address (the TCP peer; proxies' headers are not
 * trusted), or NULL. */
static const char *peer_ip(alyx__req *r, char *buf, size_t n)
{
	const char *ip = lws_get_peer_simple(r->wsi, buf, n);

	return ip && *ip ? ip : NULL;
}

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

	n = lws_hdr_total_length(r->wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
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
	if (lws_hdr_copy(r->wsi, tok, n + 1, WSI_TOKEN_HTTP_AUTHORIZATION) !=
	    n)
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

int alyx__h_auth(alyx__svc *t, alyx__req *r)
{
	alyx *a = t->srv->a;
	const char *body = r->body.data ? r->body.data : "";
	size_t len = r->body.len;
	char ip[64], *out = NULL;
	int rc, status = 200, n;

	switch (r->route) {
	case R_AUTH_REGISTER:
		rc = alyx__auth_register(a, body, len,
					 peer_ip(r, ip, sizeof(ip)), &out);
		status = 201;
		break;
	case R_AUTH_LOGIN:
		rc = alyx__auth_login(a, body, len, peer_ip(r, ip, sizeof(ip)),
				      &out);
		break;
	case R_AUTH_REFRESH:
		rc = alyx_auth_refresh(a, body, len, &out);
		break;
	case R_AUTH_LOGOUT:
		rc = alyx_auth_logout(a, body, len);
		if (rc != ALYX_OK)
			return auth_error(t, r);
		return alyx__reply(t, r, 204, NULL, NULL, 0, NULL);
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
