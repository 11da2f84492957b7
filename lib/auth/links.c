/*
 * links.c - one-time tokens (email verification, password reset, OAuth
 * state) and the verification and password-reset flows (docs/auth.md).
 *
 * A one-time token is 32 random bytes in base64url; only its SHA-256 is
 * stored (_alyx_auth_tokens), with its kind, account and expiry.  Taking
 * a token deletes it, so it works once; an expired one is never taken.
 * Alyx sends no email: a link goes to the configured webhook (or, from
 * the server in dev mode, to the log).
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth/auth.h"
#include "core/handle.h"
#include "doc/doc.h"

#define TOKEN_MAX 128		/* bytes of a presented one-time token */
#define BAD_TOKEN "invalid or expired token"
#define ACCEPTED_MSG "if an account with this email exists, a link is " \
	"on its way"

static int nomem(alyx__err *err)
{
	return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
}

/* ---- the token store ---- */

int alyx__otok_new(alyx *a, const char *kind, const char *uid,
		   const char *data, int64_t ttl_ms, char tok[44],
		   int64_t *expires_at, alyx__err *err)
{
	int64_t now = alyx__now_ms(), exp = now + ttl_ms;
	char hash[65];
	int rc;

	/* Expired tokens go as new ones come: the table stays small. */
	rc = alyx__aq(a->wdb, "DELETE FROM _alyx_auth_tokens WHERE "
		      "expires_at <= ?", NULL, err, "i", now);
	if (rc == ALYX_OK)
		rc = alyx__refresh_new(tok, hash, err);
	if (rc == ALYX_OK)
		rc = alyx__aq(a->wdb, "INSERT INTO _alyx_auth_tokens(token_hash,"
			      " kind, user_id, data, expires_at) "
			      "VALUES(?,?,?,?,?)", NULL, err, "tttti",
			      hash, kind, uid, data, exp);
	if (rc == ALYX_OK && expires_at)
		*expires_at = exp;
	return rc;
}

int alyx__otok_take(alyx *a, const char *kind, const char *tok, char **uid,
		    char **data, alyx__err *err)
{
	sqlite3_stmt *st = NULL;
	char hash[65];
	int rc;

	*uid = NULL;
	if (data)
		*data = NULL;
	if (!tok || !*tok || strlen(tok) > TOKEN_MAX)
		return ALYX_E_NOTFOUND;
	alyx__sha256_hex(tok, strlen(tok), hash);
	rc = alyx__aq(a->wdb, "SELECT user_id, data FROM _alyx_auth_tokens "
		      "WHERE token_hash=? AND kind=? AND expires_at > ?", &st,
		      err, "tti", hash, kind, alyx__now_ms());
	if (rc != ALYX_OK)
		return rc;
	if (!st)
		return ALYX_E_NOTFOUND;
	*uid = alyx__strdup(alyx__acol(st, 0));
	if (data)
		*data = alyx__strdup(alyx__acol(st, 1));
	sqlite3_finalize(st);
	if (!*uid || (data && !*data)) {
		alyx__free(*uid);
		*uid = NULL;
		if (data) {
			alyx__free(*data);
			*data = NULL;
		}
		return nomem(err);
	}
	return alyx__aq(a->wdb, "DELETE FROM _alyx_auth_tokens WHERE "
			"token_hash=?", NULL, err, "t", hash);
}

/* ---- links ---- */

void alyx__link_free(alyx__link *l)
{
	if (!l)
		return;
	alyx__free(l->link);
	alyx__free(l->payload);
	alyx__free(l->email);
	alyx__free(l);
}

/* <base>?token=... (or &token= when base has a query already). */
static char *link_url(const char *base, const char *tok)
{
	return alyx__asprintf("%s%ctoken=%s", base,
			      strchr(base, '?') ? '&' : '?', tok);
}

/* A new token of `kind` for uid (replacing earlier ones of that kind)
 * and its link; the write transaction is held. */
static int make_link(alyx *a, bool reset, const char *uid,
		     const char *email, alyx__link **out, alyx__err *err)
{
	const alyx__config *cfg = a->cfg;
	const char *kind = reset ? "reset" : "verify";
	char tok[44], when[25];
	int64_t exp = 0;
	alyx__link *l;
	alyx_buf b;
	int rc;

	*out = NULL;
	rc = alyx__aq(a->wdb, "DELETE FROM _alyx_auth_tokens WHERE kind=? AND"
		      " user_id=?", NULL, err, "tt", kind, uid);
	if (rc == ALYX_OK)
		rc = alyx__otok_new(a, kind, uid, email,
				    reset ? cfg->auth.email.reset_ttl_ms
					  : cfg->auth.email.verify_ttl_ms,
				    tok, &exp, err);
	if (rc != ALYX_OK)
		return rc;
	l = alyx__calloc(1, sizeof(*l));
	if (!l)
		return nomem(err);
	l->type = reset ? "password_reset" : "email_verification";
	l->expires_at = exp;
	l->email = alyx__strdup(email);
	l->link = link_url(reset ? cfg->auth.email.reset_url
				 : cfg->auth.email.verify_url, tok);
	alyx__iso8601_ms(exp, when);
	alyx__buf_init(&b, 0);
	alyx__buf_adds(&b, "{\"type\":");
	alyx__json_strz(&b, l->type);
	alyx__buf_adds(&b, ",\"email\":");
	alyx__json_strz(&b, email);
	alyx__buf_adds(&b, ",\"user_id\":");
	alyx__json_strz(&b, uid);
	alyx__buf_adds(&b, ",\"token\":");
	alyx__json_strz(&b, tok);
	alyx__buf_adds(&b, ",\"link\":");
	alyx__json_strz(&b, l->link ? l->link : "");
	alyx__buf_adds(&b, ",\"expires_at\":");
	alyx__json_strz(&b, when);
	alyx__buf_addc(&b, '}');
	l->payload = alyx__buf_take(&b);
	if (!l->email || !l->link || !l->payload) {
		alyx__link_free(l);
		return nomem(err);
	}
	*out = l;
	return ALYX_OK;
}

/* {"email"} -> the email, lower-cased; VALIDATION when missing or
 * malformed. */
static int body_email(alyx *a, const char *json, size_t len, char **email,
		      alyx__err *err)
{
	cJSON *body = NULL;
	int rc = alyx__json_parse(a, json, len, "json", &body, err);

	*email = NULL;
	if (rc == ALYX_OK && !cJSON_IsObject(body))
		rc = alyx__err_set(err, ALYX_E_BADJSON, NULL,
				   "expected a JSON object");
	if (rc == ALYX_OK)
		rc = alyx__auth_email(cJSON_GetObjectItemCaseSensitive(body,
				      "email"), email, err);
	if (rc == ALYX_OK && !*email)
		rc = alyx__err_set(err, ALYX_E_VALIDATION,
				   "{\"fields\":[{\"field\":\"email\",\"code\":"
				   "\"format\",\"message\":\"a valid email "
				   "address is required\"}]}",
				   "a valid email address is required");
	cJSON_Delete(body);
	return rc;
}

int alyx__auth_request_link(alyx *a, bool reset, const char *json,
			    size_t len, const char *ip, alyx__link **out)
{
	alyx__err err = {0};
	sqlite3_stmt *st = NULL;
	alyx__wtx t = {0};
	char *email = NULL, *uid = NULL;
	bool skip = false;
	int rc;

	*out = NULL;
	rc = alyx__enter(a, &err);
	if (rc == ALYX_OK)
		rc = alyx__jwt_check_secret(a->cfg, &err);
	if (rc == ALYX_OK)
		rc = body_email(a, json, len, &email, &err);
	/* Both requests send a message somewhere: both spend the
	 * password_reset allowance (counted separately). */
	if (rc == ALYX_OK)
		rc = alyx__auth_rate(a, reset ? "password_reset"
				     : "verification",
				     &a->cfg->auth.rate_limit.password_reset,
				     ip, email, &err);
	if (rc == ALYX_OK)
		rc = alyx__auth_tables(a, &err);
	if (rc == ALYX_OK)
		rc = alyx__wtx_begin(a, &t, &err);
	if (rc != ALYX_OK)
		goto out;
	rc = alyx__aq(a->wdb, "SELECT id, verified FROM _alyx_users WHERE "
		      "email=?", &st, &err, "t", email);
	if (rc == ALYX_OK && st) {
		uid = alyx__strdup(alyx__acol(st, 0));
		/* Nothing to verify on a verified account. */
		skip = !reset && sqlite3_column_int(st, 1) != 0;
		if (!uid)
			rc = nomem(&err);
	}
	sqlite3_finalize(st);
	if (rc == ALYX_OK && uid && !skip)
		rc = make_link(a, reset, uid, email, out, &err);
	rc = alyx__wtx_end(&t, rc == ALYX_OK, &err);
	if (rc != ALYX_OK) {
		alyx__link_free(*out);
		*out = NULL;
	}
out:
	alyx__free(email);
	alyx__free(uid);
	return alyx__finish(a, &err);
}

const char *alyx__link_accepted(void)
{
	return "{\"message\":\"" ACCEPTED_MSG "\"}";
}

int alyx__webhook_sign(const unsigned char *key, size_t klen,
		       const char *id, int64_t ts, const char *body,
		       alyx_buf *out)
{
	unsigned char md[32];
	alyx_buf m;
	int rc;

	alyx__buf_init(&m, 0);
	alyx__buf_addf(&m, "%s.%lld.", id, (long long)ts);
	alyx__buf_adds(&m, body);
	rc = m.err ? ALYX_E_NOMEM :
	     alyx__hmac_sha256(key, klen, m.data, m.len, md) ? ALYX_OK :
							       ALYX_E_INTERNAL;
	alyx__buf_free(&m);
	if (rc != ALYX_OK)
		return rc;
	alyx__buf_adds(out, "v1,");
	alyx__base64_enc(out, md, sizeof(md));
	OPENSSL_cleanse(md, sizeof(md));
	return out->err ? ALYX_E_NOMEM : ALYX_OK;
}

/* The Standard Webhooks headers of one POST when a secret is configured:
 * `id` and `ts` the webhook-id (msg_ and 32 random hex digits) and
 * webhook-timestamp (Unix seconds) lines, `sig` the webhook-signature
 * line. */
static int sign_headers(const alyx__config *cfg, const char *body,
			char id[64], char ts[48], alyx_buf *sig,
			alyx__err *err)
{
	unsigned char rnd[16];
	char mid[4 + 32 + 1] = "msg_";
	int64_t now = alyx__now_ms() / 1000;
	int rc;

	if (!alyx__random(rnd, sizeof(rnd)))
		return alyx__err_set(err, ALYX_E_INTERNAL, NULL,
				     "no random bytes for the webhook id");
	alyx__hex(rnd, sizeof(rnd), mid + 4);
	snprintf(id, 64, "webhook-id: %s", mid);
	snprintf(ts, 48, "webhook-timestamp: %lld", (long long)now);
	alyx__buf_adds(sig, "webhook-signature: ");
	rc = alyx__webhook_sign(cfg->auth.email.webhook_key,
				cfg->auth.email.webhook_key_len, mid, now,
				body, sig);
	if (rc != ALYX_OK)
		return alyx__err_set(err, rc, NULL, rc == ALYX_E_NOMEM ?
				     "out of memory" :
				     "the webhook signature failed");
	return ALYX_OK;
}

int alyx__link_send(const alyx__config *cfg, const alyx__link *l,
		    alyx__err *err)
{
	const char *hdrs[6] = {
		"Content-Type: application/json", "Accept: */*", NULL
	};
	char id[64], ts[48];
	long status = 0;
	alyx_buf resp, sig;
	int rc = ALYX_OK;

	if (!cfg->auth.email.webhook)
		return ALYX_OK;
	alyx__buf_init(&resp, 64 * 1024);
	alyx__buf_init(&sig, 0);
	if (cfg->auth.email.webhook_key) {
		rc = sign_headers(cfg, l->payload, id, ts, &sig, err);
		hdrs[2] = id;
		hdrs[3] = ts;
		hdrs[4] = sig.data;
	}
	if (rc == ALYX_OK)
		rc = alyx__fetch("POST", cfg->auth.email.webhook, hdrs,
				 l->payload, cfg->auth.email.webhook_timeout_ms,
				 &status, &resp, err);
	if (rc == ALYX_E_TOOBIG) {	/* we do not read the answer */
		alyx__err_clear(err);
		rc = ALYX_OK;
		status = 200;
	}
	if (rc == ALYX_OK && (status < 200 || status > 299))
		rc = alyx__err_set(err, ALYX_E_UNAVAILABLE, NULL,
				   "the email webhook answered HTTP %ld",
				   status);
	alyx__buf_free(&sig);
	alyx__buf_free(&resp);
	return rc;
}

/* The public requests: the C caller's own thread sends the webhook; a
 * failed delivery is not reported (it would tell that the email
 * exists). */
static int request_link(alyx *a, bool reset, const char *json, size_t len)
{
	alyx__err ignored = {0};
	alyx__link *l = NULL;
	int rc = alyx__auth_request_link(a, reset, json, len, NULL, &l);

	if (rc == ALYX_OK && l)
		alyx__link_send(a->cfg, l, &ignored);
	alyx__err_clear(&ignored);
	alyx__link_free(l);
	return rc;
}

ALYX_API int alyx_auth_request_verification(alyx *a, const char *json,
					    size_t len)
{
	return request_link(a, false, json, len);
}

ALYX_API int alyx_auth_request_password_reset(alyx *a, const char *json,
					      size_t len)
{
	return request_link(a, true, json, len);
}

/* ---- using a token ---- */

/* The users document's bool `verified` field, when the schema has one,
 * follows the account (write transaction held). */
static int doc_verified(alyx *a, const char *uid, alyx__err *err)
{
	alyx__snap *snap = alyx__snap_get(a);
	const alyx__collection *c = alyx__schema_coll(snap->schema, "users");
	const alyx__field *f = c ? alyx__coll_field(c, "verified") : NULL;
	alyx__row row = {0};
	cJSON *d = NULL;
	alyx_buf ignored;
	int rc = ALYX_OK;

	alyx__buf_init(&ignored, 0);
	if (!f || f->type != ALYX_T_BOOL)
		goto out;
	d = cJSON_CreateObject();
	if (!d || !cJSON_AddBoolToObject(d, "verified", true)) {
		rc = nomem(err);
		goto out;
	}
	rc = alyx__doc_prepare(c, d, ALYX_DOC_UPDATE, &row, err);
	if (rc == ALYX_OK)
		rc = alyx__doc_update(a->wdb, c, uid, &row, &ignored, err);
	if (rc == ALYX_E_NOTFOUND) {	/* an account without a document */
		alyx__err_clear(err);
		rc = ALYX_OK;
	}
out:
	alyx__row_free(&row);
	cJSON_Delete(d);
	alyx__buf_free(&ignored);
	alyx__snap_put(snap);
	return rc;
}

int alyx__auth_mark_verified(alyx *a, const char *uid, alyx__err *err)
{
	int rc = alyx__aq(a->wdb, "UPDATE _alyx_users SET verified=1, "
			  "updated_at=strftime('%Y-%m-%dT%H:%M:%fZ','now') "
			  "WHERE id=?", NULL, err, "t", uid);

	return rc == ALYX_OK ? doc_verified(a, uid, err) : rc;
}

static int bad_token(alyx__err *err)
{
	return alyx__err_set(err, ALYX_E_VALIDATION,
			     "{\"fields\":[{\"field\":\"token\",\"code\":"
			     "\"invalid\",\"message\":\"" BAD_TOKEN "\"}]}",
			     BAD_TOKEN);
}

/* The "token" string of body, or a VALIDATION error. */
static int body_token(const cJSON *body, const char **tok, alyx__err *err)
{
	const cJSON *t = cJSON_IsObject(body)
		? cJSON_GetObjectItemCaseSensitive(body, "token") : NULL;

	*tok = NULL;
	if (!cJSON_IsObject(body))
		return alyx__err_set(err, ALYX_E_BADJSON, NULL,
				     "expected a JSON object");
	if (!cJSON_IsString(t) || !*t->valuestring)
		return alyx__err_set(err, ALYX_E_VALIDATION,
				     "{\"fields\":[{\"field\":\"token\","
				     "\"code\":\"required\",\"message\":\"a "
				     "token string is required\"}]}",
				     "token is required");
	*tok = t->valuestring;
	return ALYX_OK;
}

ALYX_API int alyx_auth_verify(alyx *a, const char *json, size_t len,
			      char **out)
{
	alyx__err err = {0};
	cJSON *body = NULL;
	alyx__wtx t = {0};
	const char *tok = NULL;
	char *uid = NULL, *email = NULL;
	alyx_buf b;
	int rc;

	alyx__buf_init(&b, 0);
	rc = alyx__auth_begin(a, out, &err);
	if (rc == ALYX_OK)
		rc = alyx__json_parse(a, json, len, "json", &body, &err);
	if (rc == ALYX_OK)
		rc = body_token(body, &tok, &err);
	if (rc == ALYX_OK)
		rc = alyx__auth_tables(a, &err);
	if (rc == ALYX_OK)
		rc = alyx__wtx_begin(a, &t, &err);
	if (rc != ALYX_OK)
		goto out;
	rc = alyx__otok_take(a, "verify", tok, &uid, &email, &err);
	if (rc == ALYX_E_NOTFOUND)
		rc = bad_token(&err);
	/* The token was for this address: an account whose email changed
	 * since is not verified by it. */
	if (rc == ALYX_OK)
		rc = alyx__aq(a->wdb, "UPDATE _alyx_users SET verified=1, "
			      "updated_at=strftime('%Y-%m-%dT%H:%M:%fZ','now')"
			      " WHERE id=? AND email=?", NULL, &err, "tt", uid,
			      email);
	if (rc == ALYX_OK && sqlite3_changes(a->wdb) == 0)
		rc = bad_token(&err);
	if (rc == ALYX_OK)
		rc = doc_verified(a, uid, &err);
	if (rc == ALYX_OK)
		rc = alyx__auth_user_json(a, a->wdb, uid, &b, NULL, &err);
	rc = alyx__wtx_end(&t, rc == ALYX_OK, &err);
	if (rc == ALYX_OK)
		rc = alyx__auth_take_out(&b, out, &err);
out:
	alyx__free(uid);
	alyx__free(email);
	cJSON_Delete(body);
	alyx__buf_free(&b);
	return alyx__finish(a, &err);
}

/* Every session (and refresh token) of the account (write tx held). */
int alyx__auth_revoke_sessions(alyx *a, const char *uid, alyx__err *err)
{
	int rc = alyx__aq(a->wdb, "DELETE FROM _alyx_refresh_tokens WHERE "
			  "session_id IN (SELECT id FROM _alyx_sessions WHERE "
			  "user_id=?)", NULL, err, "t", uid);

	if (rc == ALYX_OK)
		rc = alyx__aq(a->wdb, "DELETE FROM _alyx_sessions WHERE "
			      "user_id=?", NULL, err, "t", uid);
	return rc;
}

ALYX_API int alyx_auth_confirm_password_reset(alyx *a, const char *json,
					      size_t len)
{
	alyx__err err = {0};
	alyx__fielderrs fe;
	cJSON *body = NULL;
	const cJSON *pw;
	alyx__wtx t = {0};
	const char *tok = NULL;
	char *uid = NULL, hash[ALYX_AUTH_HASH_MAX];
	int rc;

	alyx__fielderrs_init(&fe);
	rc = alyx__enter(a, &err);
	if (rc == ALYX_OK)
		rc = alyx__jwt_check_secret(a->cfg, &err);
	if (rc == ALYX_OK)
		rc = alyx__json_parse(a, json, len, "json", &body, &err);
	if (rc == ALYX_OK)
		rc = body_token(body, &tok, &err);
	if (rc != ALYX_OK)
		goto out;
	pw = alyx__pw_field(a->cfg, body, &fe);
	if (fe.count) {
		/* A refused password does not spend the token. */
		rc = alyx__err_setd(&err, ALYX_E_VALIDATION,
				    alyx__fielderrs_take(&fe),
				    "invalid password");
		goto out;
	}
	rc = alyx__auth_hash_begin(a, pw->valuestring, hash, &t, &err);
	if (rc != ALYX_OK)
		goto out;
	rc = alyx__otok_take(a, "reset", tok, &uid, NULL, &err);
	if (rc == ALYX_E_NOTFOUND)
		rc = bad_token(&err);
	if (rc == ALYX_OK)
		rc = alyx__aq(a->wdb, "UPDATE _alyx_users SET password_hash=?, "
			      "updated_at=strftime('%Y-%m-%dT%H:%M:%fZ','now')"
			      " WHERE id=?", NULL, &err, "tt", hash, uid);
	if (rc == ALYX_OK && sqlite3_changes(a->wdb) == 0)
		rc = bad_token(&err);
	/* The link reached the mailbox: that proves the address too. */
	if (rc == ALYX_OK)
		rc = alyx__auth_mark_verified(a, uid, &err);
	/* Whoever held the old password loses every session. */
	if (rc == ALYX_OK)
		rc = alyx__auth_revoke_sessions(a, uid, &err);
	if (rc == ALYX_OK)
		rc = alyx__aq(a->wdb, "DELETE FROM _alyx_auth_tokens WHERE "
			      "kind='reset' AND user_id=?", NULL, &err, "t",
			      uid);
	rc = alyx__wtx_end(&t, rc == ALYX_OK, &err);
out:
	alyx__free(uid);
	cJSON_Delete(body);
	alyx__fielderrs_free(&fe);
	return alyx__finish(a, &err);
}

ALYX_API int alyx_auth_reset_link(alyx *a, const char *email_in,
				  char **out)
{
	alyx__err err = {0};
	sqlite3_stmt *st = NULL;
	alyx__link *l = NULL;
	alyx__wtx t = {0};
	cJSON *ej = NULL;
	char *email = NULL, *uid = NULL, when[25];
	alyx_buf b;
	int rc;

	alyx__buf_init(&b, 0);
	if (out)
		*out = NULL;
	rc = out ? alyx__enter(a, &err) : alyx__misuse(&err, "out");
	if (rc == ALYX_OK && !a->cfg->auth.enabled)
		rc = alyx__jwt_check_secret(a->cfg, &err);
	if (rc != ALYX_OK)
		goto out;
	ej = cJSON_CreateString(email_in ? email_in : "");
	rc = ej ? alyx__auth_email(ej, &email, &err) : nomem(&err);
	if (rc == ALYX_OK && !email)
		rc = alyx__err_set(&err, ALYX_E_VALIDATION,
				   "{\"fields\":[{\"field\":\"email\",\"code\":"
				   "\"format\",\"message\":\"a valid email "
				   "address is required\"}]}",
				   "a valid email address is required");
	if (rc == ALYX_OK)
		rc = alyx__auth_tables(a, &err);
	if (rc == ALYX_OK)
		rc = alyx__wtx_begin(a, &t, &err);
	if (rc != ALYX_OK)
		goto out;
	rc = alyx__aq(a->wdb, "SELECT id FROM _alyx_users WHERE email=?", &st,
		      &err, "t", email);
	if (rc == ALYX_OK && !st)
		rc = alyx__err_set(&err, ALYX_E_NOTFOUND,
				   "{\"field\":\"email\"}",
				   "no account has the email %s", email);
	if (rc == ALYX_OK && !(uid = alyx__strdup(alyx__acol(st, 0))))
		rc = nomem(&err);
	sqlite3_finalize(st);
	if (rc == ALYX_OK)
		rc = make_link(a, true, uid, email, &l, &err);
	rc = alyx__wtx_end(&t, rc == ALYX_OK, &err);
	if (rc != ALYX_OK)
		goto out;
	alyx__iso8601_ms(l->expires_at, when);
	alyx__buf_adds(&b, "{\"email\":");
	alyx__json_strz(&b, email);
	alyx__buf_adds(&b, ",\"link\":");
	alyx__json_strz(&b, l->link);
	alyx__buf_adds(&b, ",\"expires_at\":");
	alyx__json_strz(&b, when);
	alyx__buf_addc(&b, '}');
	rc = alyx__auth_take_out(&b, out, &err);
out:
	alyx__link_free(l);
	cJSON_Delete(ej);
	alyx__free(email);
	alyx__free(uid);
	alyx__buf_free(&b);
	return alyx__finish(a, &err);
}
