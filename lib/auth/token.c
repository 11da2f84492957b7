/* token.c - HS256 access tokens (libjwt) and refresh tokens. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jwt.h>

#include "auth/auth.h"

int alyx__jwt_check_secret(const alyx__config *cfg, alyx__err *err)
{
	const char *s = cfg->auth.jwt.secret;

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

int alyx__refresh_new(char tok[44], char hash[65], alyx__err *err)
{
	static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				     "abcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char r[ALYX_AUTH_REFRESH_BYTES + 1] = {0};
	size_t i, o = 0;

	if (!alyx__random(r, ALYX_AUTH_REFRESH_BYTES))
		return alyx__err_set(err, ALYX_E_INTERNAL, NULL,
				     "no random bytes for a refresh token");
	/* 32 bytes = 10 groups of 3 + 2 bytes: 40 + 3 chars, no padding. */
	for (i = 0; i < ALYX_AUTH_REFRESH_BYTES; i += 3) {
		uint32_t v = (uint32_t)r[i] << 16 | (uint32_t)r[i + 1] << 8 |
			     (i + 2 < ALYX_AUTH_REFRESH_BYTES ? r[i + 2] : 0);
		size_t left = ALYX_AUTH_REFRESH_BYTES - i;

		tok[o++] = b64url[(v >> 18) & 63];
		tok[o++] = b64url[(v >> 12) & 63];
		tok[o++] = b64url[(v >> 6) & 63];
		if (left >= 3)
			tok[o++] = b64url[v & 63];
	}
	tok[o] = '\0';
	alyx__sha256_hex(tok, o, hash);
	return ALYX_OK;
}
