/*
 * account.c - accounts (_alyx_users and the schema's `users` collection),
 * sessions with rotating refresh tokens, access contexts, and the public
 * alyx_auth_* calls.
 */
#include <ctype.h>
#include <stdarg.h>
#include <string.h>

#include "auth/auth.h"
#include "core/handle.h"
#include "doc/doc.h"

#define REFRESH_MAX 128		/* bytes of a presented refresh token */
#define BAD_LOGIN "invalid email or password"
#define BAD_REFRESH "invalid or expired refresh token"

static const char tables_sql[] =
	"CREATE TABLE IF NOT EXISTS _alyx_refresh_tokens ("
	" token_hash TEXT PRIMARY KEY,"
	" session_id TEXT NOT NULL"
	"  REFERENCES _alyx_sessions(id) ON DELETE CASCADE,"
	" used INTEGER NOT NULL DEFAULT 0,"
	" expires_at INTEGER NOT NULL,"	/* epoch ms */
	" created_at TEXT NOT NULL"
	"  DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')));"
	"CREATE INDEX IF NOT EXISTS _alyx_refresh_tokens_session"
	" ON _alyx_refresh_tokens(session_id);"
	/* One-time tokens (links.c): email verification, password reset,
	 * OAuth state.  Only the SHA-256 of a token is kept. */
	"CREATE TABLE IF NOT EXISTS _alyx_auth_tokens ("
	" token_hash TEXT PRIMARY KEY,"
	" kind TEXT NOT NULL,"
	" user_id TEXT,"
	" data TEXT,"
	" expires_at INTEGER NOT NULL,"	/* epoch ms */
	" created_at TEXT NOT NULL"
	"  DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')));"
	"CREATE INDEX IF NOT EXISTS _alyx_auth_tokens_user"
	" ON _alyx_auth_tokens(kind, user_id);"
	"CREATE INDEX IF NOT EXISTS _alyx_auth_tokens_expiry"
	" ON _alyx_auth_tokens(expires_at);";

/* ---- per-handle state ---- */

int alyx__auth_new(alyx__auth **out, alyx__err *err)
{
	alyx__auth *au = alyx__calloc(1, sizeof(*au));

	*out = NULL;
	if (!au || alyx__rl_init(&au->rl) != ALYX_OK) {
		alyx__free(au);
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	}
	pthread_mutex_init(&au->mu, NULL);
	atomic_init(&au->tables_ok, false);
	*out = au;
	return ALYX_OK;
}

void alyx__auth_free(alyx__auth *au)
{
	if (!au)
		return;
	alyx__rl_free(&au->rl);
	pthread_mutex_destroy(&au->mu);
	alyx__free(au);
}

/* ---- SQL helpers ---- */

/*
 * Prepares `sql` and binds the arguments named by `types` ('t' const char
 * * or NULL, 'i' int64_t).  With row != NULL, steps once: *row is the
 * statement on a row (finalize it), NULL when there is none.  Without,
 * runs it to the end.
 */
int alyx__aq(sqlite3 *db, const char *sql, sqlite3_stmt **row,
	     alyx__err *err, const char *types, ...)
{
	sqlite3_stmt *st = NULL;
	va_list ap;
	int rc, i;

	if (row)
		*row = NULL;
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	va_start(ap, types);
	for (i = 0; rc == SQLITE_OK && types[i]; i++) {
		if (types[i] == 'i') {
			rc = sqlite3_bind_int64(st, i + 1,
						va_arg(ap, int64_t));
		} else {
			const char *s = va_arg(ap, const char *);

			rc = s ? sqlite3_bind_text(st, i + 1, s, -1,
						   SQLITE_TRANSIENT)
			       : sqlite3_bind_null(st, i + 1);
		}
	}
	va_end(ap);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && row) {
		*row = st;
		return ALYX_OK;
	}
	while (rc == SQLITE_ROW)
		rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		alyx__conn_err(db, rc, "auth", err);
		sqlite3_finalize(st);
		return err->code;
	}
	sqlite3_finalize(st);
	return ALYX_OK;
}

const char *alyx__acol(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s ? (const char *)s : "";
}

/* Creates the auth module's own tables and columns once per handle. */
int alyx__auth_tables(alyx *a, alyx__err *err)
{
	alyx__auth *au = a->auth;
	sqlite3_stmt *st = NULL;
	alyx__wtx t = {0};
	int rc;

	if (atomic_load(&au->tables_ok) || !a->wdb)
		return ALYX_OK;
	rc = alyx__wtx_begin(a, &t, err);
	if (rc != ALYX_OK)
		return rc;
	rc = alyx__exec(a->wdb, tables_sql, err);
	if (rc == ALYX_OK)
		rc = alyx__aq(a->wdb, "SELECT 1 FROM pragma_table_info('_alyx_users')"
		       " WHERE name='role'", &st, err, "");
	if (rc == ALYX_OK && !st)
		rc = alyx__exec(a->wdb, "ALTER TABLE _alyx_users ADD COLUMN "
				"role TEXT NOT NULL DEFAULT 'user'", err);
	sqlite3_finalize(st);
	rc = alyx__wtx_end(&t, rc == ALYX_OK, err);
	if (rc == ALYX_OK)
		atomic_store(&au->tables_ok, true);
	return rc;
}

/* ---- small checks ---- */

int alyx__auth_begin(alyx *a, char **out, alyx__err *err)
{
	int rc;

	if (out)
		*out = NULL;
	rc = out ? alyx__enter(a, err) : alyx__misuse(err, "out");
	return rc == ALYX_OK ? alyx__jwt_check_secret(a->cfg, err) : rc;
}

int alyx__auth_hash_begin(alyx *a, const char *pw, char *hash,
			  alyx__wtx *t, alyx__err *err)
{
	/* Hash before taking the writer: argon2id is the slow part. */
	int rc = alyx__pw_hash(pw, strlen(pw), hash, err);

	if (rc == ALYX_OK)
		rc = alyx__auth_tables(a, err);
	return rc == ALYX_OK ? alyx__wtx_begin(a, t, err) : rc;
}

static int check_out(char **out, alyx__err *err)
{
	if (!out)
		return alyx__misuse(err, "out");
	*out = NULL;
	return ALYX_OK;
}

static int nomem(alyx__err *err)
{
	return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
}

/* Hands the reply in `b` to the caller's *out. */
int alyx__auth_take_out(alyx_buf *b, char **out, alyx__err *err)
{
	*out = alyx__buf_take(b);
	return *out ? ALYX_OK : nomem(err);
}

/* Lower-cases and checks an email: one '@', something on each side, a
 * dot in the domain, no spaces or control characters.  *out is NULL for
 * an invalid one; NOMEM is the only error. */
int alyx__auth_email(const cJSON *j, char **out, alyx__err *err)
{
	const char *s, *at;
	char *e;
	size_t n, i;

	*out = NULL;
	if (!cJSON_IsString(j))
		return ALYX_OK;
	s = j->valuestring;
	n = strlen(s);
	at = strchr(s, '@');
	if (n > ALYX_AUTH_EMAIL_MAX || !at || at == s || strchr(at + 1, '@') ||
	    !strchr(at + 1, '.') || at[1] == '.' || s[n - 1] == '.')
		return ALYX_OK;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
			return ALYX_OK;
	e = alyx__strdup(s);
	if (!e)
		return nomem(err);
	for (i = 0; i < n; i++)
		e[i] = (char)tolower((unsigned char)e[i]);
	*out = e;
	return ALYX_OK;
}

/* Counts one `what` event for ip and for email; RATELIMIT when either is
 * over auth.rate_limit.<what>. */
int alyx__auth_rate(alyx *a, const char *what, const alyx__rate *r,
		    const char *ip, const char *email, alyx__err *err)
{
	int64_t now = alyx__mono_ms(), w = 0, w2;
	char *k;

	if (ip && *ip) {
		k = alyx__asprintf("%s|ip|%s", what, ip);
		if (!k)
			return nomem(err);
		w = alyx__rl_hit(&a->auth->rl, r, k, now);
		alyx__free(k);
	}
	if (w == 0 && email) {
		k = alyx__asprintf("%s|email|%s", what, email);
		if (!k)
			return nomem(err);
		w2 = alyx__rl_hit(&a->auth->rl, r, k, now);
		alyx__free(k);
		w = w2;
	}
	if (w == 0)
		return ALYX_OK;
	return alyx__err_setd(err, ALYX_E_RATELIMIT,
			      alyx__asprintf("{\"retry_after\":%lld}",
					     (long long)w),
			      "too many %s attempts; retry in %lld s", what,
			      (long long)w);
}

/* ---- user JSON and token replies ---- */

/* The account as JSON: the users document (when the schema has a `users`
 * collection and the document exists) with id, email, role and verified
 * taken from the account. */
int alyx__auth_user_json(alyx *a, sqlite3 *db, const char *uid, alyx_buf *b,
			 char **role_out, alyx__err *err)
{
	const alyx__collection *c;
	alyx__snap *snap = NULL;
	sqlite3_stmt *st = NULL;
	cJSON *u = NULL;
	char *txt = NULL;
	alyx_buf d;
	int rc;

	alyx__buf_init(&d, 0);
	rc = alyx__aq(db, "SELECT email, role, verified, created_at FROM _alyx_users"
	       " WHERE id=?", &st, err, "t", uid);
	if (rc == ALYX_OK && !st)
		rc = alyx__err_set(err, ALYX_E_UNAUTHORIZED, NULL,
				   "the account no longer exists");
	if (rc != ALYX_OK)
		goto out;
	snap = alyx__snap_get(a);
	c = alyx__schema_coll(snap->schema, "users");
	if (c && alyx__doc_read(db, c, uid, false, &d, err) == ALYX_OK &&
	    !d.err)
		u = cJSON_Parse(d.data);
	alyx__err_clear(err);
	if (!u)
		u = cJSON_CreateObject();
	if (!u)
		goto nomem;
	cJSON_DeleteItemFromObjectCaseSensitive(u, "id");
	cJSON_DeleteItemFromObjectCaseSensitive(u, "email");
	cJSON_DeleteItemFromObjectCaseSensitive(u, "role");
	cJSON_DeleteItemFromObjectCaseSensitive(u, "verified");
	if (!cJSON_AddStringToObject(u, "id", uid) ||
	    !cJSON_AddStringToObject(u, "email", alyx__acol(st, 0)) ||
	    !cJSON_AddStringToObject(u, "role", alyx__acol(st, 1)) ||
	    !cJSON_AddBoolToObject(u, "verified",
				   sqlite3_column_int(st, 2) != 0))
		goto nomem;
	if (!cJSON_GetObjectItemCaseSensitive(u, "created_at") &&
	    !cJSON_AddStringToObject(u, "created_at", alyx__acol(st, 3)))
		goto nomem;
	txt = cJSON_PrintUnformatted(u);
	if (!txt)
		goto nomem;
	alyx__buf_adds(b, txt);
	if (role_out) {
		*role_out = alyx__strdup(alyx__acol(st, 1));
		if (!*role_out)
			goto nomem;
	}
	goto out;
nomem:
	rc = nomem(err);
out:
	cJSON_free(txt);
	cJSON_Delete(u);
	sqlite3_finalize(st);
	alyx__snap_put(snap);
	alyx__buf_free(&d);
	return rc;
}

/* {"access_token","refresh_token","token_type","expires_in","user"} */
int alyx__auth_token_reply(alyx *a, sqlite3 *db, const char *uid,
			   const char *refresh, alyx_buf *b, alyx__err *err)
{
	char *role = NULL, *jwt = NULL;
	alyx_buf u;
	int rc;

	alyx__buf_init(&u, 0);
	rc = alyx__auth_user_json(a, db, uid, &u, &role, err);
	if (rc == ALYX_OK)
		rc = alyx__jwt_issue(a->cfg, uid, role, alyx__now_ms() / 1000,
				     &jwt, err);
	if (rc != ALYX_OK)
		goto out;
	alyx__buf_adds(b, "{\"access_token\":");
	alyx__json_strz(b, jwt);
	alyx__buf_adds(b, ",\"refresh_token\":");
	alyx__json_strz(b, refresh);
	alyx__buf_adds(b, ",\"token_type\":\"Bearer\",\"expires_in\":");
	alyx__json_i64(b, a->cfg->auth.jwt.access_ttl_ms / 1000);
	alyx__buf_adds(b, ",\"user\":");
	alyx__buf_add(b, u.data, u.len);
	alyx__buf_addc(b, '}');
	if (b->err || u.err)
		rc = nomem(err);
out:
	alyx__free(role);
	alyx__free(jwt);
	alyx__buf_free(&u);
	return rc;
}

/* A new session (token family) for uid with its first refresh token;
 * the caller holds the write transaction. */
int alyx__auth_session(alyx *a, const char *uid, const char *ip,
		       char tok[44], alyx__err *err)
{
	int64_t exp = alyx__now_ms() + a->cfg->auth.jwt.refresh_ttl_ms;
	char sid[37], hash[65], when[25];
	int rc;

	alyx__uuid_v4(sid);
	alyx__iso8601_ms(exp, when);
	rc = alyx__refresh_new(tok, hash, err);
	if (rc == ALYX_OK)
		rc = alyx__aq(a->wdb, "INSERT INTO _alyx_sessions(id, user_id, "
		       "refresh_token_hash, expires_at, ip_address) "
		       "VALUES(?,?,?,?,?)", NULL, err, "ttttt", sid, uid, hash,
		       when, ip);
	if (rc == ALYX_OK)
		rc = alyx__aq(a->wdb, "INSERT INTO _alyx_refresh_tokens(token_hash, "
		       "session_id, expires_at) VALUES(?,?,?)", NULL, err,
		       "tti", hash, sid, exp);
	return rc;
}

/* ---- register ---- */

/* The users document for a new account: the caller's fields (less the
 * password) with id, email, role and verified from the account. */
static cJSON *users_doc(const alyx__collection *c, const cJSON *body,
			const char *uid, const char *email, const char *role,
			bool verified)
{
	cJSON *d = cJSON_Duplicate(body, true);
	const alyx__field *f;

	if (!d)
		return NULL;
	cJSON_DeleteItemFromObjectCaseSensitive(d, "password");
	cJSON_DeleteItemFromObjectCaseSensitive(d, "email");
	if (!cJSON_AddStringToObject(d, c->fields[c->pk].name, uid))
		goto nomem;
	f = alyx__coll_field(c, "email");
	if (f && !cJSON_AddStringToObject(d, "email", email))
		goto nomem;
	f = alyx__coll_field(c, "role");
	if (f && !cJSON_AddStringToObject(d, "role", role))
		goto nomem;
	f = alyx__coll_field(c, "verified");
	if (f && f->type == ALYX_T_BOOL &&
	    !cJSON_AddBoolToObject(d, "verified", verified))
		goto nomem;
	return d;
nomem:
	cJSON_Delete(d);
	return NULL;
}

int alyx__auth_insert_account(alyx *a, const char *uid, const char *email,
			      bool verified, const cJSON *fields,
			      alyx__err *err)
{
	alyx__snap *snap = alyx__snap_get(a);
	const alyx__collection *c = alyx__schema_coll(snap->schema, "users");
	cJSON *body = cJSON_CreateObject(), *doc = NULL;
	const cJSON *it;
	alyx__row row = {0};
	int rc = ALYX_OK;

	if (!body) {
		rc = nomem(err);
		goto out;
	}
	/* Only the fields the users collection has. */
	cJSON_ArrayForEach(it, fields)
		if (c && alyx__coll_field(c, it->string) &&
		    !cJSON_AddItemToObject(body, it->string,
					   cJSON_Duplicate(it, true))) {
			rc = nomem(err);
			goto out;
		}
	if (c) {
		doc = users_doc(c, body, uid, email, "user", verified);
		rc = doc ? alyx__doc_prepare(c, doc, ALYX_DOC_CREATE, &row, err)
			 : nomem(err);
	}
	if (rc == ALYX_OK)
		rc = alyx__aq(a->wdb, "INSERT INTO _alyx_users(id, email, "
			      "password_hash, verified, role) "
			      "VALUES(?,?,NULL,?,'user')", NULL, err, "tti",
			      uid, email, (int64_t)(verified ? 1 : 0));
	if (rc == ALYX_OK && c) {
		alyx_buf ignored;

		alyx__buf_init(&ignored, 0);
		rc = alyx__doc_insert(a->wdb, c, &row, &ignored, err);
		alyx__buf_free(&ignored);
	}
out:
	alyx__row_free(&row);
	cJSON_Delete(doc);
	cJSON_Delete(body);
	alyx__snap_put(snap);
	return rc;
}

/*
 * Creates an account from {"email","password",...}.  `trusted` (the CLI)
 * skips rate limits, sets `role` and marks the email verified, and
 * answers just the user; otherwise the reply is a token reply.
 */
static int create_account(alyx *a, const char *json, size_t len,
			  const char *ip, const char *role, bool trusted,
			  char **out)
{
	alyx__err err = {0};
	alyx__fielderrs fe;
	alyx__snap *snap = NULL;
	const alyx__collection *c = NULL;
	const cJSON *pw, *it;
	cJSON *body = NULL, *doc = NULL;
	alyx__row row = {0};
	sqlite3_stmt *st = NULL;
	alyx__wtx t = {0};
	char uid[37], hash[ALYX_AUTH_HASH_MAX], tok[44];
	char *email = NULL;
	alyx_buf b;
	int rc;

	alyx__fielderrs_init(&fe);
	alyx__buf_init(&b, 0);
	rc = check_out(out, &err);
	if (rc == ALYX_OK)
		rc = alyx__enter(a, &err);
	if (rc == ALYX_OK && !trusted)
		rc = alyx__jwt_check_secret(a->cfg, &err);
	if (rc == ALYX_OK)
		rc = alyx__json_parse(a, json, len, "json", &body, &err);
	if (rc == ALYX_OK && !cJSON_IsObject(body))
		rc = alyx__err_set(&err, ALYX_E_BADJSON, NULL,
				   "expected a JSON object");
	if (rc != ALYX_OK)
		goto out;
	rc = alyx__auth_email(cJSON_GetObjectItemCaseSensitive(body, "email"),
			&email, &err);
	if (rc != ALYX_OK)
		goto out;
	if (!trusted) {
		rc = alyx__auth_rate(a, "register", &a->cfg->auth.rate_limit.register_,
				ip, email, &err);
		if (rc != ALYX_OK)
			goto out;
	}
	if (!email)
		alyx__fielderrs_add(&fe, "email", cJSON_GetObjectItemCaseSensitive(
				    body, "email") ? "format" : "required",
				    "a valid email address is required");
	pw = alyx__pw_field(a->cfg, body, &fe);
	snap = alyx__snap_get(a);
	c = alyx__schema_coll(snap->schema, "users");
	cJSON_ArrayForEach(it, body) {
		const char *k = it->string;

		if (!strcmp(k, "email") || !strcmp(k, "password"))
			continue;
		if (!strcmp(k, "role") || !strcmp(k, "verified") ||
		    (c && !strcmp(k, c->fields[c->pk].name)))
			alyx__fielderrs_add(&fe, k, "read_only",
					    "is set by the server");
		else if (!c)
			alyx__fielderrs_add(&fe, k, "unknown_field",
					    "unknown field (the schema has no "
					    "users collection)");
	}
	if (fe.count) {
		rc = alyx__err_setd(&err, ALYX_E_VALIDATION,
				    alyx__fielderrs_take(&fe),
				    "invalid registration");
		goto out;
	}
	alyx__uuid_v7_pooled(uid);
	if (c) {
		doc = users_doc(c, body, uid, email, role, trusted);
		if (!doc) {
			rc = nomem(&err);
			goto out;
		}
		rc = alyx__doc_prepare(c, doc, ALYX_DOC_CREATE, &row, &err);
		if (rc != ALYX_OK)
			goto out;
	}
	rc = alyx__auth_hash_begin(a, pw->valuestring, hash, &t, &err);
	if (rc != ALYX_OK)
		goto out;
	rc = alyx__aq(a->wdb, "SELECT 1 FROM _alyx_users WHERE email=?", &st, &err,
	       "t", email);
	if (rc == ALYX_OK && st)
		rc = alyx__err_set(&err, ALYX_E_CONFLICT,
				   "{\"field\":\"email\",\"constraint\":"
				   "\"unique\"}",
				   "an account with this email exists");
	if (rc == ALYX_OK)
		rc = alyx__aq(a->wdb, "INSERT INTO _alyx_users(id, email, "
		       "password_hash, verified, role) VALUES(?,?,?,?,?)",
		       NULL, &err, "tttit", uid, email,
		       hash, (int64_t)(trusted ? 1 : 0), role);
	if (rc == ALYX_OK && c) {
		alyx_buf ignored;

		alyx__buf_init(&ignored, 0);
		rc = alyx__doc_insert(a->wdb, c, &row, &ignored, &err);
		alyx__buf_free(&ignored);
	}
	if (rc == ALYX_OK && !trusted)
		rc = alyx__auth_session(a, uid, ip, tok, &err);
	if (rc == ALYX_OK)
		rc = trusted ? alyx__auth_user_json(a, a->wdb, uid, &b, NULL, &err)
			     : alyx__auth_token_reply(a, a->wdb, uid, tok, &b, &err);
	rc = alyx__wtx_end(&t, rc == ALYX_OK, &err);
	if (rc == ALYX_OK)
		rc = alyx__auth_take_out(&b, out, &err);
out:
	sqlite3_finalize(st);
	alyx__row_free(&row);
	cJSON_Delete(doc);
	cJSON_Delete(body);
	alyx__free(email);
	alyx__snap_put(snap);
	alyx__fielderrs_free(&fe);
	alyx__buf_free(&b);
	return alyx__finish(a, &err);
}

int alyx__auth_register(alyx *a, const char *json, size_t len,
			const char *ip, char **out)
{
	return create_account(a, json, len, ip, "user", false, out);
}

ALYX_API int alyx_auth_register(alyx *a, const char *json, size_t len,
				char **out)
{
	return create_account(a, json, len, NULL, "user", false, out);
}

ALYX_API int alyx_auth_create_user(alyx *a, const char *json, size_t len,
				   const char *role, char **out)
{
	alyx__err err = {0};

	if (!role || !*role || strlen(role) > 64) {
		if (out)
			*out = NULL;
		alyx__misuse(&err, "role");
		return alyx__finish(a, &err);
	}
	return create_account(a, json, len, NULL, role, true, out);
}

/* ---- login ---- */

/* The hash verified when the email is unknown, so that an unknown email
 * costs the same argon2id work as a wrong password. */
static const char *dummy_hash(alyx *a)
{
	alyx__auth *au = a->auth;
	alyx__err err = {0};
	unsigned char r[16];

	pthread_mutex_lock(&au->mu);
	if (!au->dummy[0] && alyx__random(r, sizeof(r)))
		alyx__pw_hash((const char *)r, sizeof(r), au->dummy, &err);
	pthread_mutex_unlock(&au->mu);
	alyx__err_clear(&err);
	return au->dummy;
}

int alyx__auth_login(alyx *a, const char *json, size_t len, const char *ip,
		     char **out)
{
	alyx__err err = {0};
	cJSON *body = NULL;
	const cJSON *pw;
	sqlite3_stmt *st = NULL;
	alyx__rd rd = {0};
	alyx__wtx t = {0};
	char *email = NULL, *uid = NULL, *hash = NULL, tok[44];
	bool ok;
	alyx_buf b;
	int rc;

	alyx__buf_init(&b, 0);
	rc = check_out(out, &err);
	if (rc == ALYX_OK)
		rc = alyx__enter(a, &err);
	if (rc == ALYX_OK)
		rc = alyx__jwt_check_secret(a->cfg, &err);
	if (rc == ALYX_OK)
		rc = alyx__json_parse(a, json, len, "json", &body, &err);
	if (rc == ALYX_OK && !cJSON_IsObject(body))
		rc = alyx__err_set(&err, ALYX_E_BADJSON, NULL,
				   "expected a JSON object");
	if (rc != ALYX_OK)
		goto out;
	pw = cJSON_GetObjectItemCaseSensitive(body, "password");
	if (!cJSON_IsString(pw) ||
	    !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(body, "email"))) {
		rc = alyx__err_set(&err, ALYX_E_VALIDATION,
				   "{\"fields\":[{\"field\":\"email\",\"code\":"
				   "\"required\",\"message\":\"email and "
				   "password strings are required\"}]}",
				   "email and password are required");
		goto out;
	}
	rc = alyx__auth_email(cJSON_GetObjectItemCaseSensitive(body, "email"),
			&email, &err);
	if (rc == ALYX_OK)
		rc = alyx__auth_rate(a, "login", &a->cfg->auth.rate_limit.login,
				ip, email, &err);
	if (rc == ALYX_OK)
		rc = alyx__auth_tables(a, &err);
	if (rc == ALYX_OK && email)
		rc = alyx__reader_get(a, &rd, &err);
	if (rc == ALYX_OK && email)
		rc = alyx__aq(rd.db, "SELECT id, password_hash FROM _alyx_users "
		       "WHERE email=?", &st, &err, "t", email);
	if (rc == ALYX_OK && st) {
		uid = alyx__strdup(alyx__acol(st, 0));
		hash = sqlite3_column_type(st, 1) == SQLITE_NULL
			       ? NULL : alyx__strdup(alyx__acol(st, 1));
		if (!uid)
			rc = nomem(&err);
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rd.db)
		alyx__reader_put(a, &rd);
	if (rc != ALYX_OK)
		goto out;
	/* Same work whether or not the email exists (or has a password). */
	ok = alyx__pw_verify(hash ? hash : dummy_hash(a), pw->valuestring,
			     strlen(pw->valuestring)) && hash && uid;
	if (!ok) {
		rc = alyx__err_set(&err, ALYX_E_UNAUTHORIZED, NULL, BAD_LOGIN);
		goto out;
	}
	rc = alyx__wtx_begin(a, &t, &err);
	if (rc != ALYX_OK)
		goto out;
	rc = alyx__auth_session(a, uid, ip, tok, &err);
	if (rc == ALYX_OK)
		rc = alyx__auth_token_reply(a, a->wdb, uid, tok, &b, &err);
	rc = alyx__wtx_end(&t, rc == ALYX_OK, &err);
	if (rc == ALYX_OK)
		rc = alyx__auth_take_out(&b, out, &err);
out:
	alyx__free(email);
	alyx__free(uid);
	alyx__free(hash);
	cJSON_Delete(body);
	alyx__buf_free(&b);
	return alyx__finish(a, &err);
}

ALYX_API int alyx_auth_login(alyx *a, const char *json, size_t len,
			     char **out)
{
	return alyx__auth_login(a, json, len, NULL, out);
}

/* ---- refresh and logout ---- */

/* The SHA-256 hex of {"refresh_token": "..."} in `json`. */
static int refresh_hash(alyx *a, const char *json, size_t len,
			char hash[65], alyx__err *err)
{
	cJSON *body = NULL;
	const cJSON *r;
	int rc = alyx__json_parse(a, json, len, "json", &body, err);

	if (rc != ALYX_OK)
		return rc;
	r = cJSON_IsObject(body)
		    ? cJSON_GetObjectItemCaseSensitive(body, "refresh_token")
		    : NULL;
	if (!cJSON_IsString(r) || !*r->valuestring)
		rc = alyx__err_set(err, ALYX_E_VALIDATION,
				   "{\"fields\":[{\"field\":\"refresh_token\","
				   "\"code\":\"required\",\"message\":"
				   "\"a refresh_token string is required\"}]}",
				   "refresh_token is required");
	else if (strlen(r->valuestring) > REFRESH_MAX)
		rc = alyx__err_set(err, ALYX_E_UNAUTHORIZED, NULL, BAD_REFRESH);
	else
		alyx__sha256_hex(r->valuestring, strlen(r->valuestring), hash);
	cJSON_Delete(body);
	return rc;
}

static int session_delete(alyx *a, const char *sid, alyx__err *err)
{
	int rc = alyx__aq(a->wdb, "DELETE FROM _alyx_refresh_tokens WHERE "
		   "session_id=?", NULL, err, "t", sid);

	if (rc == ALYX_OK)
		rc = alyx__aq(a->wdb, "DELETE FROM _alyx_sessions WHERE id=?", NULL,
		       err, "t", sid);
	return rc;
}

/* Refresh (logout == false) or logout (true). */
static int refresh_or_logout(alyx *a, const char *json, size_t len,
			     bool logout, char **out)
{
	alyx__err err = {0};
	sqlite3_stmt *st = NULL;
	alyx__wtx t = {0};
	char hash[65], nhash[65], tok[44], when[25];
	char *sid = NULL, *uid = NULL;
	bool used = false, expired = false;
	int64_t now = alyx__now_ms(), exp;
	alyx_buf b;
	int rc;

	alyx__buf_init(&b, 0);
	if (!logout)
		rc = check_out(out, &err);
	else
		rc = ALYX_OK;
	if (rc == ALYX_OK)
		rc = alyx__enter(a, &err);
	if (rc == ALYX_OK && !logout)
		rc = alyx__jwt_check_secret(a->cfg, &err);
	if (rc == ALYX_OK)
		rc = refresh_hash(a, json, len, hash, &err);
	if (rc == ALYX_OK)
		rc = alyx__auth_tables(a, &err);
	if (rc == ALYX_OK)
		rc = alyx__wtx_begin(a, &t, &err);
	if (rc != ALYX_OK)
		goto out;
	rc = alyx__aq(a->wdb, "SELECT r.session_id, r.used, r.expires_at, s.user_id"
	       " FROM _alyx_refresh_tokens r JOIN _alyx_sessions s"
	       " ON s.id = r.session_id WHERE r.token_hash=?", &st, &err, "t",
	       hash);
	if (rc == ALYX_OK && !st)
		rc = alyx__err_set(&err, ALYX_E_UNAUTHORIZED, NULL,
				   BAD_REFRESH);
	if (rc == ALYX_OK) {
		sid = alyx__strdup(alyx__acol(st, 0));
		uid = alyx__strdup(alyx__acol(st, 3));
		used = sqlite3_column_int(st, 1) != 0;
		expired = sqlite3_column_int64(st, 2) <= now;
		if (!sid || !uid)
			rc = nomem(&err);
	}
	sqlite3_finalize(st);
	if (rc != ALYX_OK)
		goto end;
	if (logout) {
		rc = session_delete(a, sid, &err);
		goto end;
	}
	if (used) {
		/* A rotated token came back: someone holds a copy.  Revoke
		 * the whole family, commit that, and refuse. */
		rc = session_delete(a, sid, &err);
		rc = alyx__wtx_end(&t, rc == ALYX_OK, &err);
		if (rc == ALYX_OK)
			rc = alyx__err_set(&err, ALYX_E_UNAUTHORIZED,
					   "{\"reason\":\"reused\"}",
					   "refresh token reuse detected; the "
					   "session is revoked");
		goto out;
	}
	if (expired) {
		rc = alyx__err_set(&err, ALYX_E_UNAUTHORIZED, NULL,
				   BAD_REFRESH);
		goto end;
	}
	exp = now + a->cfg->auth.jwt.refresh_ttl_ms;
	alyx__iso8601_ms(exp, when);
	rc = alyx__refresh_new(tok, nhash, &err);
	if (rc == ALYX_OK)
		rc = alyx__aq(a->wdb, "UPDATE _alyx_refresh_tokens SET used=1 WHERE "
		       "token_hash=?", NULL, &err, "t", hash);
	if (rc == ALYX_OK)
		rc = alyx__aq(a->wdb, "INSERT INTO _alyx_refresh_tokens(token_hash, "
		       "session_id, expires_at) VALUES(?,?,?)", NULL, &err,
		       "tti", nhash, sid, exp);
	if (rc == ALYX_OK)
		rc = alyx__aq(a->wdb, "UPDATE _alyx_sessions SET refresh_token_hash=?,"
		       " expires_at=? WHERE id=?", NULL, &err, "ttt", nhash,
		       when, sid);
	if (rc == ALYX_OK)
		rc = alyx__auth_token_reply(a, a->wdb, uid, tok, &b, &err);
end:
	rc = alyx__wtx_end(&t, rc == ALYX_OK, &err);
	if (rc == ALYX_OK && !logout)
		rc = alyx__auth_take_out(&b, out, &err);
out:
	alyx__free(sid);
	alyx__free(uid);
	alyx__buf_free(&b);
	return alyx__finish(a, &err);
}

ALYX_API int alyx_auth_refresh(alyx *a, const char *json, size_t len,
			       char **out)
{
	return refresh_or_logout(a, json, len, false, out);
}

ALYX_API int alyx_auth_logout(alyx *a, const char *json, size_t len)
{
	return refresh_or_logout(a, json, len, true, NULL);
}

/* ---- access contexts ---- */

static const struct alyx_ctx anonymous;

ALYX_API const alyx_ctx *alyx_ctx_anonymous(void)
{
	return &anonymous;
}

ALYX_API void alyx_ctx_free(alyx_ctx *ctx)
{
	if (!ctx || ctx == &anonymous)
		return;
	alyx__free(ctx->user_id);
	alyx__free(ctx->email);
	alyx__free(ctx->role);
	cJSON_Delete(ctx->auth);
	alyx__free(ctx->ip);
	alyx__free(ctx);
}

struct alyx_ctx *alyx__ctx_dup(const struct alyx_ctx *ctx)
{
	struct alyx_ctx *d;

	if (!ctx || ctx == &anonymous)
		return (struct alyx_ctx *)ctx;
	d = alyx__calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->verified = ctx->verified;
	d->user_id = alyx__strdup(ctx->user_id);
	d->email = alyx__strdup(ctx->email);
	d->role = alyx__strdup(ctx->role);
	d->ip = alyx__strdup(ctx->ip);
	d->auth = ctx->auth ? cJSON_Duplicate(ctx->auth, true) : NULL;
	if ((ctx->user_id && !d->user_id) || (ctx->email && !d->email) ||
	    (ctx->role && !d->role) || (ctx->ip && !d->ip) ||
	    (ctx->auth && !d->auth)) {
		alyx_ctx_free(d);
		return NULL;
	}
	return d;
}

ALYX_API int alyx_ctx_from_token(alyx *a, const char *bearer,
				 alyx_ctx **out)
{
	alyx__err err = {0};
	sqlite3_stmt *st = NULL;
	alyx__rd rd = {0};
	alyx_ctx *ctx = NULL;
	char *sub = NULL;
	int rc;

	if (!out) {
		rc = alyx__misuse(&err, "out");
		goto out;
	}
	*out = NULL;
	rc = alyx__enter(a, &err);
	if (rc != ALYX_OK)
		goto out;
	if (bearer && strncasecmp(bearer, "Bearer ", 7) == 0)
		bearer += 7;
	rc = alyx__jwt_verify(a->cfg, bearer, alyx__now_ms() / 1000, &sub,
			      &err);
	if (rc == ALYX_OK)
		rc = alyx__auth_tables(a, &err);
	if (rc == ALYX_OK)
		rc = alyx__reader_get(a, &rd, &err);
	if (rc != ALYX_OK)
		goto out;
	/* Every token the per-thread cache of the HTTP server misses comes
	 * here: the account read is a cached statement (preparing and
	 * finalizing it was 33k instructions, a fifth of such a request). */
	int src = alyx__stmt_get(rd.db, "SELECT email, role, verified FROM "
				 "_alyx_users WHERE id=?", &st);
	if (src == SQLITE_OK)
		src = sqlite3_bind_text(st, 1, sub, -1, SQLITE_STATIC);
	if (src == SQLITE_OK)
		src = sqlite3_step(st);
	if (src == SQLITE_DONE)
		rc = alyx__err_set(&err, ALYX_E_UNAUTHORIZED, NULL,
				   "the account no longer exists");
	else if (src != SQLITE_ROW)
		rc = alyx__conn_err(rd.db, src, "auth", &err);
	if (rc == ALYX_OK) {
		ctx = alyx__calloc(1, sizeof(*ctx));
		if (ctx) {
			ctx->user_id = sub;
			sub = NULL;
			ctx->email = alyx__strdup(alyx__acol(st, 0));
			ctx->role = alyx__strdup(alyx__acol(st, 1));
			ctx->verified = sqlite3_column_int(st, 2) != 0;
			if (ctx->email && ctx->role)
				ctx->auth = alyx__ctx_auth_json(ctx);
		}
		if (!ctx || !ctx->email || !ctx->role || !ctx->auth)
			rc = nomem(&err);
	}
	alyx__stmt_put(st);
	alyx__reader_put(a, &rd);
	if (rc == ALYX_OK) {
		*out = ctx;
		ctx = NULL;
	}
out:
	alyx_ctx_free(ctx);
	alyx__free(sub);
	return alyx__finish(a, &err);
}

cJSON *alyx__ctx_auth_json(const struct alyx_ctx *ctx)
{
	cJSON *j;

	if (!ctx || !ctx->user_id)
		return NULL;
	j = cJSON_CreateObject();
	if (j && (!cJSON_AddStringToObject(j, "id", ctx->user_id) ||
		  !cJSON_AddStringToObject(j, "email", ctx->email) ||
		  !cJSON_AddStringToObject(j, "role", ctx->role) ||
		  !cJSON_AddBoolToObject(j, "verified", ctx->verified))) {
		cJSON_Delete(j);
		j = NULL;
	}
	return j;
}

ALYX_API int alyx_auth_me(alyx *a, const alyx_ctx *ctx, char **out)
{
	alyx__err err = {0};
	alyx__rd rd = {0};
	alyx_buf b;
	int rc;

	alyx__buf_init(&b, 0);
	rc = check_out(out, &err);
	if (rc == ALYX_OK)
		rc = alyx__enter(a, &err);
	if (rc == ALYX_OK && (!ctx || !ctx->user_id))
		rc = alyx__err_set(&err, ALYX_E_UNAUTHORIZED, NULL,
				   "not signed in");
	if (rc == ALYX_OK)
		rc = alyx__reader_get(a, &rd, &err);
	if (rc != ALYX_OK)
		goto out;
	rc = alyx__auth_user_json(a, rd.db, ctx->user_id, &b, NULL, &err);
	alyx__reader_put(a, &rd);
	if (rc == ALYX_OK)
		rc = alyx__auth_take_out(&b, out, &err);
out:
	alyx__buf_free(&b);
	return alyx__finish(a, &err);
}

ALYX_API int alyx_auth_default_secret(alyx *a, const char *secret)
{
	alyx__err err = {0};
	char *copy;
	int rc = alyx__enter(a, &err);

	if (rc != ALYX_OK)
		goto out;
	if (!secret) {
		rc = alyx__misuse(&err, "secret");
		goto out;
	}
	if (*a->cfg->auth.jwt.secret)
		goto out;	/* alyx.yaml's own secret wins */
	if (strlen(secret) < ALYX_AUTH_SECRET_MIN) {
		rc = alyx__err_set(&err, ALYX_E_CONFIG,
				   "{\"key\":\"auth.jwt.secret\"}",
				   "the JWT secret must be at least %d bytes",
				   ALYX_AUTH_SECRET_MIN);
		goto out;
	}
	copy = alyx__strdup(secret);
	if (!copy) {
		rc = nomem(&err);
		goto out;
	}
	alyx__free(a->cfg->auth.jwt.secret);
	a->cfg->auth.jwt.secret = copy;
out:
	return alyx__finish(a, &err);
}
