/*
 * caller.c - the access context of each request (issue 5): anonymous
 * without an Authorization header, the signed-in user's from a valid
 * Bearer token, 401 for anything else.
 *
 * Verified tokens are cached per service thread (only that thread
 * touches its cache): a direct-mapped table keyed by the token text,
 * each entry good for TOKEN_TTL_MS.  A cached token skips the HS256
 * verification and the account read (about 16 µs of CPU in process,
 * 32 µs per request over HTTP: docs/auth.md); the token text is compared
 * in constant time;
 * the price is that a role change, a deleted account or the token's own
 * expiry reach a cached token up to TOKEN_TTL_MS late (docs/auth.md).
 */
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "auth/auth.h"
#include "http/http.h"

#define TOKEN_SLOTS 64
#define TOKEN_TTL_MS 1000

typedef struct tok_entry {
	char *token;
	size_t len;
	uint64_t hash;
	int64_t until_ms;
	alyx_ctx *ctx;
} tok_entry;

struct alyx__tokcache {
	tok_entry e[TOKEN_SLOTS];
};

static void entry_clear(tok_entry *e)
{
	alyx__free(e->token);
	alyx_ctx_free(e->ctx);
	memset(e, 0, sizeof(*e));
}

void alyx__tokcache_free(struct alyx__tokcache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < TOKEN_SLOTS; i++)
		entry_clear(&c->e[i]);
	alyx__free(c);
}

/* FNV-1a, 64 bits. */
static uint64_t hash_of(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

/* The context of `tok` (n bytes) for this thread: cached, or verified and
 * cached.  ALYX_OK with *out borrowed from the cache (valid until the
 * next call on this thread), or the failure (this thread's last error
 * on the handle). */
static int token_ctx(alyx__svc *t, const char *tok, size_t n,
		     const alyx_ctx **out)
{
	uint64_t h = hash_of(tok, n);
	int64_t now = alyx__now_ms();
	tok_entry *e;
	alyx_ctx *ctx = NULL;
	int rc;

	if (!t->tok && !(t->tok = alyx__calloc(1, sizeof(*t->tok))))
		return ALYX_E_NOMEM;
	e = &t->tok->e[h % TOKEN_SLOTS];
	if (e->token && e->hash == h && e->len == n && now < e->until_ms &&
	    !CRYPTO_memcmp(e->token, tok, n)) {
		*out = e->ctx;
		return ALYX_OK;
	}
	rc = alyx_ctx_from_token(t->srv->a, tok, &ctx);
	if (rc != ALYX_OK)
		return rc;
	entry_clear(e);
	e->token = alyx__strndup(tok, n);
	if (!e->token) {
		alyx_ctx_free(ctx);
		return ALYX_E_NOMEM;
	}
	e->len = n;
	e->hash = h;
	e->until_ms = now + TOKEN_TTL_MS;
	e->ctx = ctx;
	*out = ctx;
	return ALYX_OK;
}

int alyx__req_caller(alyx__svc *t, alyx__req *r, struct alyx_ctx *rc,
		     char *ip, size_t ip_len, const char **why)
{
	const alyx_ctx *base = alyx_ctx_anonymous();
	char stack[512], *tok = stack;
	const char *p;
	int n, code = ALYX_OK;

	*why = NULL;
	n = alyx__hdr_len(r, HH_AUTHORIZATION);
	if (n > 0) {
		if (n > ALYX_AUTH_JWT_MAX + 16) {
			*why = "the bearer token is too long";
			return ALYX_E_UNAUTHORIZED;
		}
		if ((size_t)n >= sizeof(stack) &&
		    !(tok = alyx__malloc((size_t)n + 1)))
			return ALYX_E_NOMEM;
		if (alyx__hdr_copy(r, tok, n + 1, HH_AUTHORIZATION) != n) {
			code = ALYX_E_UNAUTHORIZED;
			*why = "unreadable Authorization header";
			goto out;
		}
		if (strncasecmp(tok, "Bearer ", 7) != 0) {
			code = ALYX_E_UNAUTHORIZED;
			*why = "the Authorization header must be "
			       "\"Bearer <access token>\"";
			goto out;
		}
		for (p = tok + 7; *p == ' '; p++)
			;
		code = token_ctx(t, p, strlen(p), &base);
		if (code != ALYX_OK)
			goto out;
	}
	*rc = *base;
	/* Borrowed for the request: the connection or `ip` outlives it. */
	rc->ip = (char *)alyx__req_peer(r, ip, ip_len);
out:
	if (tok != stack)
		alyx__free(tok);
	return code;
}

int alyx__reply_unauthorized(alyx__svc *t, alyx__req *r, int code,
			     const char *why)
{
	alyx *a = t->srv->a;

	if (code == ALYX_E_NOMEM)
		return alyx__reply_error(t, r, 500, "OUT_OF_MEMORY",
					 "out of memory", NULL);
	/* Whatever failed (bad signature, expiry, issuer, a deleted
	 * account, auth turned off): 401, never silently anonymous. */
	return alyx__reply_error_h(t, r, 401,
				   alyx_errname(ALYX_E_UNAUTHORIZED),
				   why ? why : alyx_errmsg(a),
				   why ? NULL : alyx_errdetails(a),
				   "WWW-Authenticate: Bearer\r\n");
}
