/*
 * auth.h - accounts, passwords, tokens and rate limits (docs/auth.md).
 * Internal to libalyx (lib/auth, lib/core, lib/http).
 *
 * Passwords are hashed with argon2id (libargon2, encoded PHC strings);
 * access tokens are HS256 JWTs (libjwt); refresh tokens are 32 random
 * bytes in base64url, stored only as their SHA-256 in
 * _alyx_refresh_tokens, one row per token, grouped by session (the
 * _alyx_sessions row is the token family).
 */
#ifndef ALYX_AUTH_H
#define ALYX_AUTH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "core/config.h"
#include "util/util.h"

/* argon2id cost: m=19 MiB, t=3, p=1 (OWASP's m=19 MiB, t=2 plus one
 * pass): ~55-60 ms of CPU per hash here (docs/auth.md). */
#define ALYX_AUTH_ARGON2_T 3
#define ALYX_AUTH_ARGON2_M_KIB 19456
#define ALYX_AUTH_ARGON2_P 1
#define ALYX_AUTH_PASSWORD_MAX 1024	/* bytes; longer is refused */
#define ALYX_AUTH_EMAIL_MAX 254
#define ALYX_AUTH_HASH_MAX 256		/* encoded hash length cap */
#define ALYX_AUTH_JWT_MAX 4096		/* bytes of a bearer token */
#define ALYX_AUTH_REFRESH_BYTES 32
#define ALYX_AUTH_SECRET_MIN 32

/* Test hook: the argon2id cost used for new hashes (t, m in KiB);
 * 0, 0 restores the defaults above.  Not thread-safe; tests only. */
void alyx__auth_set_cost(uint32_t t, uint32_t m_kib);

/* ---- passwords (password.c) ---- */
/* Encoded argon2id hash of `pw` (n bytes) with a fresh 16-byte salt into
 * out[ALYX_AUTH_HASH_MAX]. */
int alyx__pw_hash(const char *pw, size_t n, char out[ALYX_AUTH_HASH_MAX],
		  alyx__err *err);
/* True if `pw` matches the encoded hash (argon2id_verify: constant-time
 * comparison).  A malformed hash is simply false. */
bool alyx__pw_verify(const char *encoded, const char *pw, size_t n);
/* The body's "password" member checked as a new password (a string, then
 * the policy): failures go to fe; returns the member, a string or NULL. */
const cJSON *alyx__pw_field(const alyx__config *cfg, const cJSON *body,
			    alyx__fielderrs *fe);
/* Checks the password policy (auth.password).  Adds one field error per
 * failed requirement to `fe` under field "password" (codes min_length,
 * max_length, uppercase, number, special, type). */
void alyx__pw_policy(const alyx__config *cfg, const char *pw, size_t n,
		     alyx__fielderrs *fe);

/* Hands the reply in b to *out (the caller frees it with alyx_free);
 * NOMEM (with *out NULL) when b could not be built. */
int alyx__auth_take_out(alyx_buf *b, char **out, alyx__err *err);

/* ---- tokens (token.c) ---- */
/* ALYX_E_CONFIG unless auth.jwt.secret is at least 32 bytes. */
int alyx__jwt_check_secret(const alyx__config *cfg, alyx__err *err);
/* A signed HS256 access token for (sub, role), iat = now_s,
 * exp = now_s + access_ttl.  *out is alyx__malloc'd. */
int alyx__jwt_issue(const alyx__config *cfg, const char *sub,
		    const char *role, int64_t now_s, char **out,
		    alyx__err *err);
/* Verifies a token: HS256 only (any other "alg", "none" included, is
 * refused), the signature, "iss" equal to auth.jwt.issuer, "exp" after
 * now_s, "sub" present.  On success *sub is alyx__malloc'd.  Failures are
 * ALYX_E_UNAUTHORIZED. */
int alyx__jwt_verify(const alyx__config *cfg, const char *token,
		     int64_t now_s, char **sub, alyx__err *err);
/* A new refresh token (base64url of 32 random bytes, 43 chars + NUL) and
 * its SHA-256 hex. */
int alyx__refresh_new(char tok[44], char hash[65], alyx__err *err);
/* base64url without padding of n bytes into out (4 * ceil(n / 3) + 1
 * bytes suffice); returns the length written. */
size_t alyx__b64url(const unsigned char *in, size_t n, char *out);

/* ---- rate limits (ratelimit.c) ---- */
#define ALYX_RL_MAX_KEYS 65536

typedef struct alyx__rl_entry {
	struct alyx__rl_entry *next;
	int64_t start_ms;	/* window start */
	int64_t window_ms;
	int count;
	char key[];
} alyx__rl_entry;

/* Fixed-window counters keyed by text ("login|ip|1.2.3.4"); thread-safe. */
typedef struct alyx__ratelimit {
	pthread_mutex_t mu;
	alyx__rl_entry **slots;
	size_t n_slots;
	size_t n_keys;
} alyx__ratelimit;

int alyx__rl_init(alyx__ratelimit *rl);
void alyx__rl_free(alyx__ratelimit *rl);
/* Counts one event for `key` at now_ms under rate `r`.  Returns 0 when it
 * is allowed, else the seconds until the window reopens (>= 1); an event
 * over the limit is not counted.  A rate with count <= 0 allows all. */
int64_t alyx__rl_hit(alyx__ratelimit *rl, const alyx__rate *r,
		     const char *key, int64_t now_ms);

/* ---- per-handle state (account.c) ---- */
typedef struct alyx__auth {
	alyx__ratelimit rl;
	pthread_mutex_t mu;	/* guards dummy and the tables check */
	atomic_bool tables_ok;	/* _alyx_refresh_tokens etc. exist */
	char dummy[ALYX_AUTH_HASH_MAX];	/* hash verified for unknown
					 * emails */
} alyx__auth;

struct alyx;
/* Created by alyx_open, freed by alyx_close. */
int alyx__auth_new(alyx__auth **out, alyx__err *err);
void alyx__auth_free(alyx__auth *au);

/* The access context behind alyx_ctx.  user_id NULL: anonymous
 * (alyx_ctx_anonymous(), a static context alyx_ctx_free ignores). */
struct alyx_ctx {
	char *user_id;
	char *email;
	char *role;
	bool verified;
	/* Rules on every door (lib/core/access.h): */
	cJSON *auth;	/* auth as the rules see it, built once by
			 * alyx_ctx_from_token; NULL: built per call */
	char *ip;	/* the client's address (request.ip), or NULL */
};
/* A deep copy (for work that outlives the request, e.g. a queued
 * write); the anonymous context copies as itself.  NULL out of memory
 * (or for a NULL ctx). */
struct alyx_ctx *alyx__ctx_dup(const struct alyx_ctx *ctx);
/* auth as the rules see it: {"id","email","role","verified"}; NULL for a
 * NULL ctx or out of memory. */
cJSON *alyx__ctx_auth_json(const struct alyx_ctx *ctx);

/* ---- shared by account.c, links.c, oauth.c ---- */
/* Prepares `sql` and binds the arguments named by `types` ('t' const
 * char * or NULL, 'i' int64_t).  With row != NULL, steps once: *row is
 * the statement on a row (finalize it), NULL when there is none.
 * Without, runs it to the end. */
int alyx__aq(sqlite3 *db, const char *sql, sqlite3_stmt **row,
	     alyx__err *err, const char *types, ...);
/* Column i as text ("" for NULL). */
const char *alyx__acol(sqlite3_stmt *st, int i);
/* The start of a public call with an *out: clears it (MISUSE if NULL),
 * enters the handle and needs authentication on with a JWT secret. */
int alyx__auth_begin(struct alyx *a, char **out, alyx__err *err);
/* Hashes pw into hash[ALYX_AUTH_HASH_MAX] (before taking the writer:
 * argon2id is the slow part), then opens the write transaction. */
struct alyx__wtx;
int alyx__auth_hash_begin(struct alyx *a, const char *pw, char *hash,
			  struct alyx__wtx *t, alyx__err *err);
/* Creates the auth module's own tables and columns once per handle. */
int alyx__auth_tables(struct alyx *a, alyx__err *err);
/* Lower-cased, checked email of a JSON value; *out NULL if invalid. */
int alyx__auth_email(const cJSON *j, char **out, alyx__err *err);
/* Counts one `what` event per ip and per email (RATELIMIT over r). */
int alyx__auth_rate(struct alyx *a, const char *what, const alyx__rate *r,
		    const char *ip, const char *email, alyx__err *err);
/* The account's user object appended to b (*role_out: its role). */
int alyx__auth_user_json(struct alyx *a, sqlite3 *db, const char *uid,
			 alyx_buf *b, char **role_out, alyx__err *err);
/* A new session for uid with its first refresh token (write tx held). */
int alyx__auth_session(struct alyx *a, const char *uid, const char *ip,
		       char tok[44], alyx__err *err);
/* The token reply for uid with refresh token `refresh`. */
int alyx__auth_token_reply(struct alyx *a, sqlite3 *db, const char *uid,
			   const char *refresh, alyx_buf *b, alyx__err *err);

/* ---- outbound HTTP (fetch.c) ---- */
/* One request ("GET" or "POST" with `body`), headers NULL-terminated,
 * at most timeout_ms in all; the answer's body is appended to `out`
 * (whose cap bounds it: TOOBIG).  *status is the HTTP status.  Errors:
 * TIMEOUT, UNAVAILABLE (cannot connect, TLS, ...), TOOBIG, NOMEM. */
int alyx__fetch(const char *method, const char *url,
		const char *const *headers, const char *body,
		int64_t timeout_ms, long *status, alyx_buf *out,
		alyx__err *err);

/* ---- one-time tokens and links (links.c) ---- */
/* A new token of `kind` ("verify", "reset", "oauth") for uid (may be
 * NULL) carrying `data`, valid ttl_ms; the write transaction is held.
 * Expired tokens of every kind are deleted on the way. */
int alyx__otok_new(struct alyx *a, const char *kind, const char *uid,
		   const char *data, int64_t ttl_ms, char tok[44],
		   int64_t *expires_at, alyx__err *err);
/* Takes (deletes) the unexpired token `tok` of `kind`: *uid and *data
 * (if data != NULL) are alyx__malloc'd ("" for NULL columns).
 * ALYX_E_NOTFOUND, with `err` untouched, when there is no such token. */
int alyx__otok_take(struct alyx *a, const char *kind, const char *tok,
		    char **uid, char **data, alyx__err *err);

/* A verification or reset link to deliver. */
typedef struct alyx__link {
	const char *type;	/* "email_verification" | "password_reset" */
	char *email;
	char *link;		/* <verify_url|reset_url>?token=... */
	char *payload;		/* the webhook's JSON body */
	int64_t expires_at;	/* epoch ms */
} alyx__link;
void alyx__link_free(alyx__link *l);
/* {"email"}: rate-limited (auth.rate_limit.password_reset, per ip and
 * email); *out is the link to deliver, or NULL when there is no such
 * account (or, for verification, it is verified already): the caller
 * answers the same either way. */
int alyx__auth_request_link(struct alyx *a, bool reset, const char *json,
			    size_t len, const char *ip, alyx__link **out);
/* "v1,<base64 HMAC-SHA256 of id.ts.body>" appended to out: a Standard
 * Webhooks signature under the klen-byte key. */
int alyx__webhook_sign(const unsigned char *key, size_t klen,
		       const char *id, int64_t ts, const char *body,
		       alyx_buf *out);
/* POSTs the link's payload to auth.email.webhook (no-op without one),
 * signed when auth.email.webhook_secret is set. */
int alyx__link_send(const alyx__config *cfg, const alyx__link *l,
		    alyx__err *err);
/* The answer of a link request: {"message":...}. */
const char *alyx__link_accepted(void);
/* Marks the account (and its users document) verified; write tx held. */
int alyx__auth_mark_verified(struct alyx *a, const char *uid,
			     alyx__err *err);
/* Deletes every session and refresh token of uid; write tx held. */
int alyx__auth_revoke_sessions(struct alyx *a, const char *uid,
			       alyx__err *err);

/* A new password-less account (and its users document with those of
 * `fields` the collection has); write tx held. */
int alyx__auth_insert_account(struct alyx *a, const char *uid,
			      const char *email, bool verified,
			      const cJSON *fields, alyx__err *err);

/* ---- OAuth (oauth.c) ---- */
/* alyx_auth_oauth_start with the client's address (NULL: not counted):
 * RATELIMIT past auth.rate_limit.oauth sign-in starts per address. */
int alyx__oauth_start(struct alyx *a, const char *name,
		      const char *redirect_uri, const char *ip, char **out);
/* auth.oauth.redirect_url with {provider} replaced, else a copy of
 * `fallback` (NULL if that is NULL too). */
char *alyx__oauth_redirect_uri(const alyx__config *cfg, const char *name,
			       const char *fallback);
/* Percent-encodes s (all but RFC 3986 unreserved characters). */
void alyx__url_enc(alyx_buf *b, const char *s);
/* The callback: takes the state, exchanges the code, reads the user,
 * finds/links/creates the account and answers the token reply.  Blocks
 * on the network (auth.oauth.timeout per request): never call it on a
 * server service thread.  The error is recorded on the handle. */
int alyx__oauth_finish(struct alyx *a, const char *name, const char *code,
		       const char *state, const char *ip, char **out);

/* The public calls with the client's address (`ip`, may be NULL: then
 * only per-email limits apply), for the HTTP server. */
int alyx__auth_register(struct alyx *a, const char *json, size_t len,
			const char *ip, char **out);
int alyx__auth_login(struct alyx *a, const char *json, size_t len,
		     const char *ip, char **out);

#endif
