/* token.c - HS256 access tokens (libjwt) and refresh tokens. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jwt.h>

#include "auth/auth.h"

int alyx__jwt_check_secret(const alyx__config *cfg, alyx__err *err)
{
	const char *s = cfg->auth.jwt.secret;

	if (!cfg->auth.enabled)
		return alyx__err_set(err, ALYX_E_NOTFOUND,
				     "{\"key\":\"auth.enabled\"}",
				     "authentication is turned off "
				     "(alyx.yaml auth.enabled: false)");
	if (!s || strlen(s) < ALYX_AUTH_SECRET_MIN)
		return alyx__err_set(err, ALYX_E_CONFIG,
				     "{\"key\":\"auth.jwt.secret\"}",
				     "auth.jwt.secret must be at least %d "
				     "bytes (set JWT_SECRET)",
				     ALYX_AUTH_SECRET_MIN);
	return ALYX_OK;
}

int alyx__jwt_issue(const alyx__config *cfg, const char *sub,
		    const char *role, int64_t now_s, char **out,
		    alyx__err *err)
{
	const char *secret = cfg->auth.jwt.secret;
	jwt_t *j = NULL;
	char *s = NULL;
	int rc;

	*out = NULL;
	rc = alyx__jwt_check_secret(cfg, err);
	if (rc != ALYX_OK)
		return rc;
	if (jwt_new(&j) != 0 ||
	    jwt_set_alg(j, JWT_ALG_HS256, (const unsigned char *)secret,
			(int)strlen(secret)) != 0 ||
	    jwt_add_grant(j, "iss", cfg->auth.jwt.issuer) != 0 ||
	    jwt_add_grant(j, "sub", sub) != 0 ||
	    jwt_add_grant(j, "role", role) != 0 ||
	    jwt_add_grant_int(j, "iat", (long)now_s) != 0 ||
	    jwt_add_grant_int(j, "exp", (long)(now_s +
			      cfg->auth.jwt.access_ttl_ms / 1000)) != 0 ||
	    !(s = jwt_encode_str(j))) {
		rc = alyx__err_set(err, ALYX_E_NOMEM, NULL,
				   "could not sign an access token");
		goto out;
	}
	*out = alyx__strdup(s);
	if (!*out)
		rc = alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
out:
	/* libjwt 1.10 allocates with malloc and has no jwt_free_str(). */
	free(s); /* check-style: allow */
	jwt_free(j);
	return rc;
}

static int bad_token(alyx__err *err, const char *why)
{
	return alyx__err_set(err, ALYX_E_UNAUTHORIZED, NULL,
			     "invalid access token: %s", why);
}

int alyx__jwt_verify(const alyx__config *cfg, const char *token,
		     int64_t now_s, char **sub, alyx__err *err)
{
	const char *secret = cfg->auth.jwt.secret;
	const char *iss, *s;
	jwt_t *j = NULL;
	long exp;
	int rc;

	*sub = NULL;
	if (!cfg->auth.enabled)
		return bad_token(err, "authentication is turned off");
	rc = alyx__jwt_check_secret(cfg, err);
	if (rc != ALYX_OK)
		return rc;
	if (!token || !*token || strlen(token) > ALYX_AUTH_JWT_MAX)
		return bad_token(err, "missing or too long");
	/* libjwt checks the signature for the token's own "alg"; only a
	 * token that names HS256 and verifies with our key is accepted. */
	if (jwt_decode(&j, token, (const unsigned char *)secret,
		       (int)strlen(secret)) != 0 || !j) {
		rc = bad_token(err, "malformed or bad signature");
		goto out;
	}
	if (jwt_get_alg(j) != JWT_ALG_HS256) {
		rc = bad_token(err, "algorithm is not HS256");
		goto out;
	}
	iss = jwt_get_grant(j, "iss");
	if (!iss || strcmp(iss, cfg->auth.jwt.issuer) != 0) {
		rc = bad_token(err, "wrong issuer");
		goto out;
	}
	errno = 0;
	exp = jwt_get_grant_int(j, "exp");
	if (errno != 0) {
		rc = bad_token(err, "no expiry");
		goto out;
	}
	if ((int64_t)exp <= now_s) {
		rc = bad_token(err, "expired");
		goto out;
	}
	s = jwt_get_grant(j, "sub");
	if (!s || !*s) {
		rc = bad_token(err, "no subject");
		goto out;
	}
	*sub = alyx__strdup(s);
	if (!*sub)
		rc = alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
out:
	jwt_free(j);
	return rc;
}

size_t alyx__b64url(const unsigned char *in, size_t n, char *out)
{
	static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				     "abcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t i, o = 0;

	for (i = 0; i < n; i += 3) {
		size_t left = n - i;
		uint32_t v = (uint32_t)in[i] << 16 |
			     (left > 1 ? (uint32_t)in[i + 1] << 8 : 0) |
			     (left > 2 ? in[i + 2] : 0);

		out[o++] = b64url[(v >> 18) & 63];
		out[o++] = b64url[(v >> 12) & 63];
		if (left > 1)
			out[o++] = b64url[(v >> 6) & 63];
		if (left > 2)
			out[o++] = b64url[v & 63];
	}
	out[o] = '\0';
	return o;
}

int alyx__refresh_new(char tok[44], char hash[65], alyx__err *err)
{
	unsigned char r[ALYX_AUTH_REFRESH_BYTES];
	size_t n;

	if (!alyx__random(r, ALYX_AUTH_REFRESH_BYTES))
		return alyx__err_set(err, ALYX_E_INTERNAL, NULL,
				     "no random bytes for a token");
	/* 32 bytes: 43 characters, no padding. */
	n = alyx__b64url(r, ALYX_AUTH_REFRESH_BYTES, tok);
	alyx__sha256_hex(tok, n, hash);
	return ALYX_OK;
}
