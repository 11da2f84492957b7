/*
 * oauth.c - sign-in with GitHub and Google (OAuth 2.0 authorization code
 * with PKCE S256; docs/auth.md).
 *
 * start: a one-time state (links.c's token store, kind "oauth", expiring
 * after auth.oauth.state_ttl) keeps the provider, the PKCE verifier and
 * the redirect URI server-side; the browser gets the provider's
 * authorize URL.  callback: the state is taken (single use), the code
 * is exchanged for an access token, the provider's user info (and, for
 * GitHub, its list of verified emails) is read with libcurl, and the
 * account is found or made:
 *   1. an _alyx_oauth_accounts row for (provider, provider user id);
 *   2. else an account whose email the provider has verified: linked;
 *   3. else, when the email belongs to an account but the provider does
 *      not vouch for it: refused (CONFLICT) - no account takeover;
 *   4. else a new account (and users document, like register).
 * The callback blocks on the network: the server runs it on an outbound
 * worker thread, never on a service thread.
 */
#include <string.h>

#include <openssl/evp.h>

#include "auth/auth.h"
#include "core/handle.h"

#define RESP_MAX (256 * 1024)	/* bytes of a provider's answer */
#define STATES_MAX 10000	/* sign-ins in progress (unexpired states);
				 * also in the error details below */
#define CODE_MAX 2048		/* bytes of a code or state */

static int nomem(alyx__err *err)
{
	return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
}

static const alyx__oauth_provider *provider_of(const alyx__config *cfg,
					       const char *name)
{
	const alyx__oauth_provider *p = NULL;

	if (!name)
		return NULL;
	if (!strcmp(name, "github"))
		p = &cfg->auth.oauth.github;
	else if (!strcmp(name, "google"))
		p = &cfg->auth.oauth.google;
	return p && p->enabled ? p : NULL;
}

static int find_provider(const alyx__config *cfg, const char *name,
			 const alyx__oauth_provider **out, alyx__err *err)
{
	*out = provider_of(cfg, name);
	if (*out)
		return ALYX_OK;
	return alyx__err_setd(err, ALYX_E_NOTFOUND,
			      alyx__asprintf("{\"provider\":\"%s\"}",
					     name && alyx__ident_valid(name)
						     ? name : "?"),
			      "no OAuth provider '%.40s' is configured",
			      name ? name : "");
}

/* Percent-encodes everything but RFC 3986's unreserved characters. */
void alyx__url_enc(alyx_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~') {
			alyx__buf_addc(b, (char)c);
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			alyx__buf_add(b, e, 3);
		}
	}
}

static void param(alyx_buf *b, const char *k, const char *v)
{
	if (b->len && b->data[b->len - 1] != '?' &&
	    b->data[b->len - 1] != '&')
		alyx__buf_addc(b, '&');
	alyx__buf_adds(b, k);
	alyx__buf_addc(b, '=');
	alyx__url_enc(b, v);
}

/* The callback URL: auth.oauth.redirect_url with {provider} replaced,
 * else `fallback`. */
char *alyx__oauth_redirect_uri(const alyx__config *cfg, const char *name,
			       const char *fallback)
{
	const char *t = cfg->auth.oauth.redirect_url, *at;

	if (!t)
		return fallback ? alyx__strdup(fallback) : NULL;
	at = strstr(t, "{provider}");
	if (!at)
		return alyx__strdup(t);
	return alyx__asprintf("%.*s%s%s", (int)(at - t), t, name, at + 10);
}

ALYX_API int alyx_auth_providers(alyx *a, char **out)
{
	static const char *const names[] = {"github", "google"};
	alyx__err err = {0};
	alyx_buf b;
	bool first = true;
	int rc;

	alyx__buf_init(&b, 0);
	rc = alyx__auth_begin(a, out, &err);
	if (rc != ALYX_OK)
		goto out;
	alyx__buf_adds(&b, "{\"providers\":[");
	for (size_t i = 0; i < ALYX_ARRAY_LEN(names); i++) {
		if (!provider_of(a->cfg, names[i]))
			continue;
		alyx__buf_addf(&b, "%s{\"name\":\"%s\",\"url\":\"/api/auth/"
			       "oauth/%s\"}", first ? "" : ",", names[i],
			       names[i]);
		first = false;
	}
	alyx__buf_adds(&b, "]}");
	rc = alyx__auth_take_out(&b, out, &err);
out:
	alyx__buf_free(&b);
	return alyx__finish(a, &err);
}

/* Anyone may start a sign-in: the stored states are capped (write tx
 * held).  Expired ones do not count (and go with the next new token). */
static int states_cap(alyx *a, alyx__err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = alyx__aq(a->wdb, "SELECT 1 FROM _alyx_auth_tokens WHERE "
			  "kind='oauth' AND expires_at > ? LIMIT 1 OFFSET ?",
			  &st, err, "ii", alyx__now_ms(),
			  (int64_t)(STATES_MAX - 1));

	sqlite3_finalize(st);
	if (rc == ALYX_OK && st)
		rc = alyx__err_set(err, ALYX_E_UNAVAILABLE,
				   "{\"max_sign_ins\":10000}",
				   "too many sign-ins in progress; retry "
				   "later");
	return rc;
}

/* A sign-in's start: the state row and the provider's URL; with an
 * address (the HTTP route), counted against auth.rate_limit.oauth first,
 * so that one client cannot fill the states' cap. */
int alyx__oauth_start(alyx *a, const char *name, const char *redirect_uri,
		      const char *ip, char **out)
{
	const alyx__oauth_provider *p = NULL;
	alyx__err err = {0};
	alyx__wtx t = {0};
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char verifier[44], vhash[65], state[44], challenge[48];
	char *ruri = NULL, *data = NULL;
	cJSON *d = NULL;
	alyx_buf b;
	int rc;

	alyx__buf_init(&b, 0);
	rc = alyx__auth_begin(a, out, &err);
	if (rc == ALYX_OK)
		rc = find_provider(a->cfg, name, &p, &err);
	if (rc == ALYX_OK && ip && *ip)
		rc = alyx__auth_rate(a, "oauth", &a->cfg->auth.rate_limit.oauth,
				     ip, NULL, &err);
	if (rc != ALYX_OK)
		goto out;
	ruri = alyx__oauth_redirect_uri(a->cfg, name, redirect_uri);
	if (!ruri) {
		rc = alyx__err_set(&err, ALYX_E_MISUSE, NULL,
				   "redirect_uri is needed when alyx.yaml "
				   "has no auth.oauth.redirect_url");
		goto out;
	}
	/* PKCE: the verifier stays here, its SHA-256 goes out. */
	rc = alyx__refresh_new(verifier, vhash, &err);
	if (rc != ALYX_OK)
		goto out;
	EVP_Digest(verifier, strlen(verifier), md, &mdlen, EVP_sha256(),
		   NULL);
	alyx__b64url(md, mdlen, challenge);
	d = cJSON_CreateObject();
	if (!d || !cJSON_AddStringToObject(d, "provider", name) ||
	    !cJSON_AddStringToObject(d, "verifier", verifier) ||
	    !cJSON_AddStringToObject(d, "redirect_uri", ruri) ||
	    !(data = cJSON_PrintUnformatted(d))) {
		rc = nomem(&err);
		goto out;
	}
	rc = alyx__auth_tables(a, &err);
	if (rc == ALYX_OK)
		rc = alyx__wtx_begin(a, &t, &err);
	if (rc != ALYX_OK)
		goto out;
	rc = states_cap(a, &err);
	if (rc == ALYX_OK)
		rc = alyx__otok_new(a, "oauth", NULL, data,
				    a->cfg->auth.oauth.state_ttl_ms, state, NULL,
				    &err);
	rc = alyx__wtx_end(&t, rc == ALYX_OK, &err);
	if (rc != ALYX_OK)
		goto out;
	alyx__buf_adds(&b, "{\"url\":");
	{
		alyx_buf u;

		alyx__buf_init(&u, 0);
		alyx__buf_adds(&u, p->auth_url);
		alyx__buf_addc(&u, strchr(p->auth_url, '?') ? '&' : '?');
		param(&u, "response_type", "code");
		param(&u, "client_id", p->client_id);
		param(&u, "redirect_uri", ruri);
		alyx__buf_adds(&u, "&scope=");
		for (size_t i = 0; i < p->n_scopes; i++) {
			if (i)
				alyx__buf_adds(&u, "%20");
			alyx__url_enc(&u, p->scopes[i]);
		}
		param(&u, "state", state);
		param(&u, "code_challenge", challenge);
		param(&u, "code_challenge_method", "S256");
		alyx__buf_addc(&u, '\0');
		alyx__json_strz(&b, u.err ? "" : u.data);
		if (u.err)
			b.err = true;
		alyx__buf_free(&u);
	}
	alyx__buf_adds(&b, ",\"state\":");
	alyx__json_strz(&b, state);
	alyx__buf_addc(&b, '}');
	rc = alyx__auth_take_out(&b, out, &err);
out:
	explicit_bzero(verifier, sizeof(verifier));
	cJSON_free(data);
	cJSON_Delete(d);
	alyx__free(ruri);
	alyx__buf_free(&b);
	return alyx__finish(a, &err);
}

ALYX_API int alyx_auth_oauth_start(alyx *a, const char *name,
				   const char *redirect_uri, char **out)
{
	return alyx__oauth_start(a, name, redirect_uri, NULL, out);
}

/* ---- callback ---- */

static int provider_error(alyx__err *err, const char *name, int code,
			  const char *reason, const char *msg)
{
	cJSON *d = cJSON_CreateObject();
	char *txt = NULL;

	if (d && cJSON_AddStringToObject(d, "provider", name) &&
	    cJSON_AddStringToObject(d, "reason", reason))
		txt = cJSON_PrintUnformatted(d);
	cJSON_Delete(d);
	alyx__err_set(err, code, txt, "%s: %s", name, msg);
	cJSON_free(txt);
	return code;
}

/* A provider request answering JSON (object or array) in *out. */
static int provider_json(const char *name, const char *method,
			 const char *url, const char *const *hdrs,
			 const char *body, int64_t timeout_ms, cJSON **out,
			 long *status, alyx__err *err)
{
	alyx_buf b;
	int rc;

	*out = NULL;
	alyx__buf_init(&b, RESP_MAX);
	rc = alyx__fetch(method, url, hdrs, body, timeout_ms, status, &b,
			 err);
	if (rc == ALYX_OK) {
		*out = b.len ? cJSON_ParseWithLength(b.data, b.len) : NULL;
		if (!*out || (!cJSON_IsObject(*out) && !cJSON_IsArray(*out)))
			rc = provider_error(err, name, ALYX_E_UNAVAILABLE,
					    "bad_response", "the provider's "
					    "answer is not JSON");
	} else {
		/* Keep the cause, name the provider. */
		char *msg = alyx__strdup(err->msg);

		alyx__err_clear(err);
		provider_error(err, name, rc, rc == ALYX_E_TIMEOUT
			       ? "timeout" : "unreachable",
			       msg ? msg : "request failed");
		alyx__free(msg);
	}
	if (rc != ALYX_OK) {
		cJSON_Delete(*out);
		*out = NULL;
	}
	alyx__buf_free(&b);
	return rc;
}

typedef struct who {
	char *id;		/* the provider's user id */
	char *email;		/* lower-cased; NULL when none */
	bool verified;		/* the provider vouches for the email */
	char *name, *avatar;
} who;

static void who_free(who *w)
{
	alyx__free(w->id);
	alyx__free(w->email);
	alyx__free(w->name);
	alyx__free(w->avatar);
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) && *v->valuestring ? v->valuestring : NULL;
}

static int set_email(who *w, const char *e, bool verified, alyx__err *err)
{
	cJSON *j = cJSON_CreateString(e);
	int rc = j ? alyx__auth_email(j, &w->email, err) : nomem(err);

	cJSON_Delete(j);
	w->verified = w->email && verified;
	return rc;
}

/* Who the provider says the user is. */
static int read_user(const char *name, const alyx__oauth_provider *p,
		     const char *access, int64_t timeout_ms, who *w,
		     alyx__err *err)
{
	const char *hdrs[4] = {"Accept: application/json", NULL, NULL};
	char *auth = alyx__asprintf("Authorization: Bearer %s", access);
	cJSON *u = NULL, *emails = NULL;
	const cJSON *id, *it;
	long status = 0;
	int rc;

	if (!auth)
		return nomem(err);
	hdrs[1] = auth;
	rc = provider_json(name, "GET", p->userinfo_url, hdrs, NULL,
			   timeout_ms, &u, &status, err);
	if (rc == ALYX_OK && (status < 200 || status > 299))
		rc = provider_error(err, name, ALYX_E_UNAVAILABLE, "userinfo",
				    "the provider refused the user info "
				    "request");
	if (rc != ALYX_OK)
		goto out;
	/* GitHub: numeric "id"; Google (OpenID Connect): "sub". */
	id = cJSON_GetObjectItemCaseSensitive(u, "sub");
	if (!cJSON_IsString(id))
		id = cJSON_GetObjectItemCaseSensitive(u, "id");
	if (cJSON_IsString(id) && *id->valuestring &&
	    strlen(id->valuestring) <= 255)
		w->id = alyx__strdup(id->valuestring);
	else if (cJSON_IsNumber(id))
		w->id = alyx__asprintf("%.0f", id->valuedouble);
	else {
		rc = provider_error(err, name, ALYX_E_UNAVAILABLE, "userinfo",
				    "the user info has no user id");
		goto out;
	}
	w->name = jstr(u, "name") ? alyx__strdup(jstr(u, "name"))
		: jstr(u, "login") ? alyx__strdup(jstr(u, "login")) : NULL;
	w->avatar = jstr(u, "avatar_url") ? alyx__strdup(jstr(u, "avatar_url"))
		  : jstr(u, "picture") ? alyx__strdup(jstr(u, "picture"))
		  : NULL;
	if (!w->id)
		goto nomem;
	if (jstr(u, "email"))
		rc = set_email(w, jstr(u, "email"), cJSON_IsTrue(
			cJSON_GetObjectItemCaseSensitive(u, "email_verified")),
			err);
	if (rc != ALYX_OK || !*p->emails_url || w->verified)
		goto out;
	/* GitHub: the verified addresses, primary first. */
	rc = provider_json(name, "GET", p->emails_url, hdrs, NULL, timeout_ms,
			   &emails, &status, err);
	if (rc == ALYX_OK && (status < 200 || status > 299 ||
			      !cJSON_IsArray(emails)))
		rc = provider_error(err, name, ALYX_E_UNAVAILABLE, "emails",
				    "the provider refused the email list "
				    "request");
	if (rc != ALYX_OK)
		goto out;
	for (int pass = 0; pass < 2 && !w->verified && rc == ALYX_OK; pass++)
		cJSON_ArrayForEach(it, emails) {
			if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
				    it, "verified")) || !jstr(it, "email") ||
			    (pass == 0 && !cJSON_IsTrue(
				    cJSON_GetObjectItemCaseSensitive(
					    it, "primary"))))
				continue;
			alyx__free(w->email);
			w->email = NULL;
			rc = set_email(w, jstr(it, "email"), true, err);
			if (w->verified || rc != ALYX_OK)
				break;
		}
	goto out;
nomem:
	rc = nomem(err);
out:
	cJSON_Delete(u);
	cJSON_Delete(emails);
	alyx__free(auth);
	return rc;
}

/* The code for the provider's access token. */
static int exchange(const char *name, const alyx__oauth_provider *p,
		    const char *code, const char *verifier, const char *ruri,
		    int64_t timeout_ms, char **access, alyx__err *err)
{
	static const char *const hdrs[] = {
		"Accept: application/json",
		"Content-Type: application/x-www-form-urlencoded", NULL
	};
	cJSON *r = NULL;
	alyx_buf f;
	long status = 0;
	int rc;

	*access = NULL;
	alyx__buf_init(&f, 0);
	param(&f, "grant_type", "authorization_code");
	param(&f, "code", code);
	param(&f, "redirect_uri", ruri);
	param(&f, "client_id", p->client_id);
	param(&f, "client_secret", p->client_secret);
	param(&f, "code_verifier", verifier);
	alyx__buf_addc(&f, '\0');
	if (f.err) {
		rc = nomem(err);
		goto out;
	}
	rc = provider_json(name, "POST", p->token_url, hdrs, f.data,
			   timeout_ms, &r, &status, err);
	if (rc != ALYX_OK)
		goto out;
	if (status >= 500 || (status > 299 && !jstr(r, "error"))) {
		rc = provider_error(err, name, ALYX_E_UNAVAILABLE, "token",
				    "the provider's token endpoint failed");
		goto out;
	}
	/* GitHub refuses a code with 200 and {"error": ...}, Google with
	 * 400. */
	if (jstr(r, "error") || !jstr(r, "access_token")) {
		rc = provider_error(err, name, ALYX_E_UNAUTHORIZED, "code",
				    "the provider refused the authorization "
				    "code");
		goto out;
	}
	*access = alyx__strdup(jstr(r, "access_token"));
	if (!*access)
		rc = nomem(err);
out:
	cJSON_Delete(r);
	alyx__buf_free(&f);
	return rc;
}

/* Takes the state: its provider must be `name`. */
static int take_state(alyx *a, const char *name, const char *state,
		      char **verifier, char **ruri, alyx__err *err)
{
	alyx__wtx t = {0};
	char *uid = NULL, *data = NULL;
	cJSON *d = NULL;
	int rc;

	*verifier = *ruri = NULL;
	rc = alyx__auth_tables(a, err);
	if (rc == ALYX_OK)
		rc = alyx__wtx_begin(a, &t, err);
	if (rc != ALYX_OK)
		return rc;
	rc = alyx__otok_take(a, "oauth", state, &uid, &data, err);
	if (rc == ALYX_OK)
		rc = alyx__wtx_end(&t, true, err);
	else
		alyx__wtx_end(&t, false, err);	/* nothing was written */
	if (rc == ALYX_OK)
		d = cJSON_Parse(data);
	if (rc == ALYX_E_NOTFOUND || (rc == ALYX_OK && (!d ||
	    !jstr(d, "provider") || strcmp(jstr(d, "provider"), name) ||
	    !jstr(d, "verifier") || !jstr(d, "redirect_uri"))))
		rc = provider_error(err, name, ALYX_E_UNAUTHORIZED, "state",
				    "invalid, expired or used OAuth state");
	if (rc == ALYX_OK) {
		*verifier = alyx__strdup(jstr(d, "verifier"));
		*ruri = alyx__strdup(jstr(d, "redirect_uri"));
		if (!*verifier || !*ruri)
			rc = nomem(err);
	}
	cJSON_Delete(d);
	alyx__free(uid);
	alyx__free(data);
	return rc;
}

/* Finds, links or makes the account of `w` (write tx held); *uid is
 * alyx__malloc'd. */
static int account_of(alyx *a, const char *name, const who *w, char **uid,
		      alyx__err *err)
{
	sqlite3_stmt *st = NULL;
	char oid[37], nid[37];
	int rc;

	*uid = NULL;
	rc = alyx__aq(a->wdb, "SELECT user_id FROM _alyx_oauth_accounts WHERE"
		      " provider=? AND provider_user_id=?", &st, err, "tt",
		      name, w->id);
	if (rc == ALYX_OK && st) {
		*uid = alyx__strdup(alyx__acol(st, 0));
		sqlite3_finalize(st);
		st = NULL;
		if (!*uid)
			return nomem(err);
		/* The provider's word counts on later sign-ins too. */
		if (w->verified)
			rc = alyx__aq(a->wdb, "SELECT 1 FROM _alyx_users WHERE "
				      "id=? AND email=? AND verified=0", &st,
				      err, "tt", *uid, w->email);
		if (rc == ALYX_OK && st)
			rc = alyx__auth_mark_verified(a, *uid, err);
		sqlite3_finalize(st);
		return rc;
	}
	if (rc != ALYX_OK)
		return rc;
	if (!w->email)
		return provider_error(err, name, ALYX_E_UNAUTHORIZED, "email",
				      "the provider shared no email address");
	rc = alyx__aq(a->wdb, "SELECT id FROM _alyx_users WHERE email=?", &st,
		      err, "t", w->email);
	if (rc != ALYX_OK)
		return rc;
	if (st) {
		*uid = alyx__strdup(alyx__acol(st, 0));
		sqlite3_finalize(st);
		if (!*uid)
			return nomem(err);
		/* Only the provider's verification proves the mailbox is
		 * this user's: without it, no link (no takeover). */
		if (!w->verified)
			return alyx__err_set(err, ALYX_E_CONFLICT,
				"{\"field\":\"email\",\"reason\":"
				"\"unverified_provider_email\"}",
				"an account with this email exists and %s has "
				"not verified the address; sign in with the "
				"account's password", name);
		rc = alyx__auth_mark_verified(a, *uid, err);
	} else {
		cJSON *f = cJSON_CreateObject();

		alyx__uuid_v7_pooled(nid);
		*uid = alyx__strdup(nid);
		if (!f || !*uid ||
		    (w->name && !cJSON_AddStringToObject(f, "name", w->name)) ||
		    (w->avatar && !cJSON_AddStringToObject(f, "avatar_url",
							   w->avatar)))
			rc = nomem(err);
		else
			rc = alyx__auth_insert_account(a, nid, w->email,
						       w->verified, f, err);
		cJSON_Delete(f);
	}
	alyx__uuid_v4(oid);
	if (rc == ALYX_OK)
		rc = alyx__aq(a->wdb, "INSERT INTO _alyx_oauth_accounts(id, "
			      "user_id, provider, provider_user_id) "
			      "VALUES(?,?,?,?)", NULL, err, "tttt", oid, *uid,
			      name, w->id);
	return rc;
}

int alyx__oauth_finish(alyx *a, const char *name, const char *code,
		       const char *state, const char *ip, char **out)
{
	const alyx__oauth_provider *p = NULL;
	alyx__err err = {0};
	alyx__wtx t = {0};
	who w = {0};
	char *verifier = NULL, *ruri = NULL, *access = NULL, *uid = NULL;
	char tok[44];
	alyx_buf b;
	int rc;

	alyx__buf_init(&b, 0);
	rc = alyx__auth_begin(a, out, &err);
	if (rc == ALYX_OK)
		rc = find_provider(a->cfg, name, &p, &err);
	if (rc != ALYX_OK)
		goto out;
	if (!state || !*state || strlen(state) > CODE_MAX) {
		rc = provider_error(&err, name, ALYX_E_UNAUTHORIZED, "state",
				    "invalid, expired or used OAuth state");
		goto out;
	}
	if (!code || !*code || strlen(code) > CODE_MAX) {
		rc = alyx__err_set(&err, ALYX_E_VALIDATION,
				   "{\"fields\":[{\"field\":\"code\",\"code\":"
				   "\"required\",\"message\":\"the provider's "
				   "code is required\"}]}",
				   "the provider's code is required");
		goto out;
	}
	/* The state is spent first: a replay fails even if the rest
	 * fails. */
	rc = take_state(a, name, state, &verifier, &ruri, &err);
	if (rc == ALYX_OK)
		rc = exchange(name, p, code, verifier, ruri,
			      a->cfg->auth.oauth.timeout_ms, &access, &err);
	if (rc == ALYX_OK)
		rc = read_user(name, p, access, a->cfg->auth.oauth.timeout_ms,
			       &w, &err);
	if (rc == ALYX_OK)
		rc = alyx__wtx_begin(a, &t, &err);
	if (rc != ALYX_OK)
		goto out;
	rc = account_of(a, name, &w, &uid, &err);
	if (rc == ALYX_OK)
		rc = alyx__auth_session(a, uid, ip, tok, &err);
	if (rc == ALYX_OK)
		rc = alyx__auth_token_reply(a, a->wdb, uid, tok, &b, &err);
	rc = alyx__wtx_end(&t, rc == ALYX_OK, &err);
	if (rc == ALYX_OK)
		rc = alyx__auth_take_out(&b, out, &err);
out:
	if (access)
		explicit_bzero(access, strlen(access));
	alyx__free(access);
	alyx__free(verifier);
	alyx__free(ruri);
	alyx__free(uid);
	who_free(&w);
	alyx__buf_free(&b);
	return alyx__finish(a, &err);
}

ALYX_API int alyx_auth_oauth_callback(alyx *a, const char *provider,
				      const char *code, const char *state,
				      char **out)
{
	return alyx__oauth_finish(a, provider, code, state, NULL, out);
}
