/*
 * alyx.h - the public C API of libalyx.
 *
 * This header is the contract: anything not declared here is not API.
 * It includes only <stddef.h>, <stdint.h> and Alyx's own generated
 * <alyx/version.h>; no sqlite3, libwebsockets, cJSON or OpenSSL type ever
 * crosses it.
 *
 * CONVENTIONS
 *
 *  Status codes.  Every function that can fail returns an int status:
 *  ALYX_OK (0) on success, or one of the ALYX_E_* codes below.  The numbers
 *  are stable: they are never reused or renumbered.
 *
 *  Error triple.  After a failing call on a handle, the calling thread can
 *  read the failure as the same triple the HTTP layer puts in its error
 *  envelope:
 *    alyx_errcode(a)     the ALYX_E_* code,
 *    alyx_errname(code)  its stable upper-case name ("VALIDATION_ERROR"),
 *    alyx_errmsg(a)      a human message,
 *    alyx_errdetails(a)  details as JSON text ("{}" when there are none),
 *                        e.g. {"fields":[{"field":"title","code":...}]}.
 *  The last error is kept per handle *and per thread*, so several threads
 *  can share one handle and each sees its own failures.  The strings are
 *  owned by the library and stay valid until the next call on the same
 *  handle from the same thread.
 *
 *  Ownership.  A returned `char *` (always through an OUT parameter) is
 *  owned by the caller and must be released with alyx_free(), never with
 *  free().  A returned `const char *` is borrowed; each function says for
 *  how long.  Input pointers are borrowed: the library copies what it
 *  keeps.  On failure, OUT parameters are set to NULL.
 *
 *  JSON at the boundary.  Documents go in and come out as UTF-8 JSON text,
 *  typed per schema: bool as true/false, int and float as numbers,
 *  timestamp as ISO-8601 UTC with milliseconds ("2026-01-02T03:04:05.006Z"),
 *  json as JSON, blob as base64 text, uuid/string/text as strings.
 *  Fields marked `internal` are never returned by reads.
 *
 *  Threads.  An alyx handle may be used from several threads at once.
 *  libalyx starts no hidden threads (the HTTP server, when asked for, is
 *  the one exception and says so).  alyx_close() must not race with other
 *  calls on the same handle.
 *
 *  Access context.  Data functions take an `const alyx_ctx *ctx`.  NULL
 *  means the system: trusted code, no access rules apply (the CLI, seeds,
 *  migrations).  alyx_ctx_from_token() makes the context of a signed-in
 *  user (see "authentication" below), alyx_ctx_anonymous() the one of a
 *  caller who is not signed in.  With a context, every data call applies
 *  the collection's rules (docs/rules.md, "Enforcement"): a rule decides
 *  for everyone, admins included; an operation without a rule is allowed
 *  to role `admin` only.  Reads never show a document the read rule
 *  hides: alyx_doc_get() answers ALYX_E_NOTFOUND as for a missing id,
 *  and lists, totals, cursors and expansions leave it out.  A denied
 *  write is ALYX_E_FORBIDDEN (ALYX_E_NOTFOUND when the caller may not
 *  read that document either).  Fields marked `internal` are never
 *  returned and cannot be written with a context.
 */
#ifndef ALYX_H
#define ALYX_H

#include <stddef.h>
#include <stdint.h>

#include <alyx/version.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define ALYX_API __declspec(dllexport)
#elif defined(__GNUC__)
#define ALYX_API __attribute__((visibility("default")))
#else
#define ALYX_API
#endif

/* Status codes.  Stable numbers; never reused. */
enum alyx_status {
	ALYX_OK = 0,
	ALYX_E_MISUSE = 1,	/* NULL/closed handle, bad argument */
	ALYX_E_NOMEM = 2,	/* out of memory */
	ALYX_E_IO = 3,		/* file system or database I/O */
	ALYX_E_CONFIG = 4,	/* alyx.yaml is invalid */
	ALYX_E_SCHEMA = 5,	/* schema.yaml is invalid */
	ALYX_E_MIGRATION = 6,	/* a change needs a migration file, or a
				 * migration failed (nothing was changed) */
	ALYX_E_NOTFOUND = 7,	/* unknown collection, document or file */
	ALYX_E_VALIDATION = 8,	/* a document failed validation */
	ALYX_E_CONFLICT = 9,	/* unique or foreign-key conflict */
	ALYX_E_BADQUERY = 10,	/* bad filter, sort, limit, expand, ... */
	ALYX_E_BADJSON = 11,	/* input is not valid JSON of the right shape */
	ALYX_E_TOOBIG = 12,	/* an input or result exceeds a limit */
	ALYX_E_FORBIDDEN = 13,	/* an access rule denied the operation */
	ALYX_E_UNAUTHORIZED = 14, /* missing or invalid credentials */
	ALYX_E_INTERNAL = 15,	/* a real fault inside libalyx */
	ALYX_E_BUSY = 16,	/* the database stayed locked too long */
	ALYX_E_RULE = 17,	/* an access rule failed to compile or run */
	ALYX_E_RATELIMIT = 18,	/* too many requests */
	ALYX_E_UNAVAILABLE = 19, /* a resource (pool, server) is unavailable */
	ALYX_E_TIMEOUT = 20,	/* an operation ran out of time */
	ALYX_E_CHECKSUM = 21,	/* an applied migration file was edited */
	ALYX_E_EXISTS = 22,	/* the thing to create exists already */
	ALYX_E_UNSUPPORTED = 23, /* the build lacks an optional feature */
	ALYX_E_FUNCTION = 24	/* a function failed (threw, exited) */
};

/* Opaque handles. */
typedef struct alyx alyx;
typedef struct alyx_ctx alyx_ctx;	/* access context; NULL = system */

/* ---- versions ----------------------------------------------------- */

/* The linked library's version as ALYX_VERSION_NUM would give it
 * (0xMMmmpp).  Compare with ALYX_VERSION_NUM to see what you compiled
 * with.  Thread-safe.  Since 0.1. */
ALYX_API uint32_t alyx_version(void);
/* "0.1.0"; static storage.  Thread-safe.  Since 0.1. */
ALYX_API const char *alyx_version_string(void);

/* ---- errors ------------------------------------------------------- */

/* Stable upper-case name of a status code ("NOT_FOUND"); static storage;
 * "UNKNOWN_ERROR" for a number that is not a code.  Thread-safe. */
ALYX_API const char *alyx_errname(int code);
/* Short generic English description of a code; static storage. */
ALYX_API const char *alyx_strerror(int code);
/* The last failure of a call on `a` made by this thread (see the top of
 * this file).  alyx_errcode returns ALYX_OK if the last call succeeded.
 * `a` may be NULL: then the failure of the last alyx_open() of this
 * thread that could not return a handle is reported. */
ALYX_API int alyx_errcode(const alyx *a);
ALYX_API const char *alyx_errmsg(const alyx *a);
ALYX_API const char *alyx_errdetails(const alyx *a);
/* The last failure as one JSON object {"code":"NAME","message":...,
 * "details":{...}}; caller frees with alyx_free(); NULL when out of
 * memory. */
ALYX_API char *alyx_error_json(const alyx *a);

/* ---- memory ------------------------------------------------------- */

/* Releases memory returned by libalyx.  NULL is a no-op. */
ALYX_API void alyx_free(void *p);

/* ---- projects ----------------------------------------------------- */

/* Flags for alyx_open(). */
#define ALYX_OPEN_CREATE 0x1u	/* create the data directory and the
				 * database if missing (default: both must
				 * exist) */
#define ALYX_OPEN_READONLY 0x2u	/* open the database read-only */

/*
 * Opens the project in directory `dir`: alyx.yaml (optional; defaults
 * apply), schema.yaml, migrations/ and the data directory (alyx.yaml
 * `database.path`, default "data/alyx.db").  The database schema is the
 * one last applied; opening never changes it (see alyx_migrate_apply()).
 *
 * On success *out is a new handle (release with alyx_close()).  On failure
 * *out is NULL and the error is read with alyx_errmsg(NULL) on this thread.
 * Returns ALYX_OK, ALYX_E_MISUSE, ALYX_E_NOMEM, ALYX_E_IO, ALYX_E_CONFIG,
 * ALYX_E_SCHEMA, ALYX_E_NOTFOUND.
 */
ALYX_API int alyx_open(const char *dir, unsigned flags, alyx **out);
/* Like alyx_open(), but the configuration is read from `config_path` (an
 * alyx.yaml anywhere, e.g. /etc/alyx/production.yaml) instead of the
 * project's own alyx.yaml.  Relative paths in it (database.path) still
 * resolve against `dir`.  `config_path` NULL is alyx_open().  A missing
 * config file is ALYX_E_NOTFOUND (unlike the project's optional
 * alyx.yaml).  Since 0.1. */
ALYX_API int alyx_open_config(const char *dir, const char *config_path,
			      unsigned flags, alyx **out);
/* Closes the handle (checkpoints the WAL).  NULL is a no-op. */
ALYX_API void alyx_close(alyx *a);

/* The project directory and the database file path; borrowed, valid
 * until alyx_close(). */
ALYX_API const char *alyx_project_dir(const alyx *a);
ALYX_API const char *alyx_db_path(const alyx *a);

/* The effective configuration (alyx.yaml after ${ENV} expansion and
 * defaults) as JSON, secrets masked.  Caller frees with alyx_free(). */
ALYX_API int alyx_config_json(alyx *a, char **out);

/* ---- schema and migrations --------------------------------------- */

#define ALYX_APPLY_DRY_RUN 0x1u	/* compute the plan, change nothing */

/*
 * Applies schema YAML text (`yaml`, `len` bytes; len may be (size_t)-1 for
 * a NUL-terminated string) to the database.  The schema is validated; its
 * difference from the applied schema becomes a plan.  Safe changes (new
 * collection, new nullable or defaulted field, new index, loosened
 * constraint) are applied in one transaction, with triggers regenerated.
 * If any change is destructive (remove collection or field, rename, type
 * change, stricter constraint) nothing changes and ALYX_E_MIGRATION is
 * returned; its details list each change that needs a migration file.
 *
 * *plan_out (may be NULL) receives the plan as JSON:
 *   {"changes":[{"op":"add_field","collection":"posts","field":"x",
 *                "safe":true,"description":"..."},...],"applied":true}
 * On failure *plan_out is NULL.  Caller frees with alyx_free().
 * `filename` (may be NULL) names the source in error messages.
 */
ALYX_API int alyx_apply_schema(alyx *a, const char *yaml, size_t len,
			       const char *filename, unsigned flags,
			       char **plan_out);

/* The applied schema as canonical JSON ({"version":..,"collections":{..}}).
 * Caller frees with alyx_free(). */
ALYX_API int alyx_schema_json(alyx *a, char **out);

/*
 * Migration files (migrations/NNN_name.yaml).  All report JSON that the
 * caller frees with alyx_free().
 *  status:   {"applied":[{"version","name","file","applied_at",
 *             "checksum","modified":bool,"missing":bool}],
 *             "pending":[{"version","name","file"[,"error"]}],
 *             "schema":{"changes":[...],"destructive":bool}|null,
 *             "baseline":bool}  (schema: what schema.yaml would change
 *             after the pending files, as alyx_apply_schema's plan;
 *             baseline: the database is empty and apply will create
 *             schema.yaml whole; see docs/migrations.md)
 *  apply:    applies every pending migration file, each in its own
 *            transaction, then the project's schema.yaml (safe changes
 *            only).  Stops at the first failure, which changes nothing of
 *            that migration.  {"applied":[{"version","name","file",
 *            "notes"}],"baseline":bool,"schema":{plan}|null}
 *  rollback: undoes the last `n` applied migrations (their `down`):
 *            {"rolled_back":[{"version","name","notes"}]}.
 *  create:   writes migrations/NNN_<name>.yaml from a template and returns
 *            {"path":...}.
 */
ALYX_API int alyx_migrate_status(alyx *a, char **out);
ALYX_API int alyx_migrate_apply(alyx *a, char **out);
ALYX_API int alyx_migrate_rollback(alyx *a, int n, char **out);
ALYX_API int alyx_migrate_create(alyx *a, const char *name, char **out);

/* ---- documents ---------------------------------------------------- */

/*
 * Creates one document in `collection` from a JSON object.  Defaults
 * (literal, auto uuid, now) are filled in; every field is validated and
 * every failing field is reported (ALYX_E_VALIDATION, details.fields).
 * *out receives the stored document as JSON (caller frees).
 * Returns ALYX_OK, ALYX_E_NOTFOUND (collection), ALYX_E_BADJSON,
 * ALYX_E_VALIDATION, ALYX_E_CONFLICT, ALYX_E_FORBIDDEN, ALYX_E_TOOBIG,
 * ALYX_E_BUSY, ALYX_E_IO.
 */
ALYX_API int alyx_doc_create(alyx *a, const alyx_ctx *ctx,
			     const char *collection, const char *json,
			     size_t len, char **out);

/*
 * Reads one document by primary key.  `opts` (may be NULL) is a URL query
 * string with `expand=` and `fields=` as for alyx_query_str().
 * Returns ALYX_OK or ALYX_E_NOTFOUND (collection or id), ALYX_E_BADQUERY.
 */
ALYX_API int alyx_doc_get(alyx *a, const alyx_ctx *ctx,
			  const char *collection, const char *id,
			  const char *opts, char **out);

/* Updates the given fields of one document (a JSON object; a partial
 * document).  onUpdate fields are refreshed.  *out is the updated
 * document.  Errors as alyx_doc_create() plus ALYX_E_NOTFOUND for the id. */
ALYX_API int alyx_doc_update(alyx *a, const alyx_ctx *ctx,
			     const char *collection, const char *id,
			     const char *json, size_t len, char **out);

/* Deletes one document (onDelete actions apply).  ALYX_E_NOTFOUND if it
 * does not exist; ALYX_E_CONFLICT if a `restrict` reference holds it. */
ALYX_API int alyx_doc_delete(alyx *a, const alyx_ctx *ctx,
			     const char *collection, const char *id);

/*
 * An atomic batch of writes, all or nothing, in one transaction:
 *   {"requests":[{"method":"POST","url":"/api/collections/posts",
 *                 "body":{...}},
 *                {"method":"PATCH","url":"/api/collections/posts/ID",
 *                 "body":{...}},
 *                {"method":"DELETE","url":"/api/collections/posts/ID"}]}
 * On success *out is {"results":[{"status":201,"body":{...}},...]}.
 * On failure nothing is written, *out is NULL, and the error details carry
 * {"index":N,...} naming the first failing request.
 */
ALYX_API int alyx_batch(alyx *a, const alyx_ctx *ctx, const char *json,
			size_t len, char **out);

/* ---- queries ------------------------------------------------------ */

/*
 * Runs a query given as a URL query string, exactly the REST syntax:
 *   filter=field:op:value   (repeatable, ANDed; op is eq ne gt gte lt lte
 *                            like in contains; `in` takes a comma list;
 *                            values are URL-decoded)
 *   sort=-created_at,title  limit=N  offset=N  after=CURSOR
 *   expand=author_id,post_id.author_id  fields=id,title  total=true
 * *out receives {"docs":[...]} plus "total" when total=true was asked and
 * "next" (a cursor for after=) when more documents remain.
 * Returns ALYX_OK, ALYX_E_NOTFOUND (collection), ALYX_E_BADQUERY.
 */
ALYX_API int alyx_query_str(alyx *a, const alyx_ctx *ctx,
			    const char *collection, const char *qs,
			    char **out);

/*
 * The same query given as JSON (the realtime protocol's shape):
 *   {"filter":{"author_id":{"$eq":"u1"},"views":{"$gte":10}},
 *    "sort":["-created_at"],"limit":20,"offset":0,"after":"...",
 *    "expand":["author_id"],"fields":["id"],"total":true}
 * Operators: $eq $ne $gt $gte $lt $lte $like $in $contains; a field given a
 * plain value means $eq; {"$or":[{...},{...}]} groups alternatives.
 * `query_json` may be NULL for "everything".  Output as alyx_query_str().
 */
ALYX_API int alyx_query(alyx *a, const alyx_ctx *ctx, const char *collection,
			const char *query_json, char **out);

/* ---- data utilities (trusted; used by `alyx db`) ------------------ */

/* Writes documents from {"collection":[{...},...],...} in one transaction
 * (all or nothing).  *out (may be NULL) gets {"inserted":{"posts":N,..}}. */
ALYX_API int alyx_db_seed(alyx *a, const char *json, size_t len, char **out);
/* Every collection's documents (including internal fields) in the seed
 * format.  Caller frees. */
ALYX_API int alyx_db_dump(alyx *a, char **out);
/* Deletes every document of every collection and the change feed, in one
 * transaction; the schema stays. */
ALYX_API int alyx_db_reset(alyx *a);

/*
 * Converts YAML text (`len` bytes, or (size_t)-1 for a NUL-terminated
 * string) holding one document into JSON text, e.g. a seed file for
 * alyx_db_seed().  Mappings become objects (keys as strings), sequences
 * arrays; plain scalars are read with the YAML 1.2 core schema (null, ~,
 * true/false, decimal/0x/0o integers, floats); quoted or !!str-tagged
 * scalars stay strings; an empty document is null.  Aliases, several
 * documents, nesting deeper than 64 levels and invalid UTF-8 are refused:
 * ALYX_E_BADJSON (or ALYX_E_TOOBIG) with details {"file","line","column"}
 * and the message "FILE:LINE:COL: problem"; `filename` (may be NULL)
 * names the source.  `a` may be NULL: the error is then read with
 * alyx_errmsg(NULL) on this thread.  *out is caller-owned (alyx_free()).
 * Thread-safe.  Since 0.1.
 */
ALYX_API int alyx_yaml_to_json(alyx *a, const char *yaml, size_t len,
			       const char *filename, char **out);

/* ---- change feed -------------------------------------------------- */

/* Changes with id > since, oldest first, at most `limit` (1..10000):
 * {"changes":[{"id":N,"collection":..,"operation":"INSERT|UPDATE|DELETE",
 *   "doc_id":..,"changed_fields":[..]|null,"timestamp":..}],"last_id":N} */
ALYX_API int alyx_changes(alyx *a, int64_t since, int limit, char **out);

/* ---- authentication (since 0.1; docs/auth.md) ---------------------- */

/*
 * Accounts live in _alyx_users; when the schema has a `users` collection,
 * each account is also its `users` document with the same id (created in
 * the same transaction).  Passwords are hashed with argon2id; access
 * tokens are HS256 JWTs (claims iss, sub = user id, role, iat, exp);
 * refresh tokens are opaque, stored only as SHA-256, and rotate on every
 * refresh.  Every call that issues tokens needs alyx.yaml auth.jwt.secret
 * of at least 32 bytes (else ALYX_E_CONFIG).
 *
 * register, login and refresh answer (caller frees with alyx_free()):
 *   {"access_token":"...","refresh_token":"...","token_type":"Bearer",
 *    "expires_in":900,"user":{"id",...,"email","role","verified",...}}
 * where "user" is the users document (when there is one) with id, email,
 * role and verified taken from the account.
 */

/* {"email","password", ...users collection fields (name, ...)}.  "role",
 * "verified" and the id cannot be given (ALYX_E_VALIDATION, code
 * "read_only"); the password must satisfy auth.password.  Returns
 * ALYX_OK, ALYX_E_VALIDATION, ALYX_E_CONFLICT (email taken),
 * ALYX_E_RATELIMIT (details {"retry_after":seconds}), ALYX_E_BADJSON,
 * ALYX_E_CONFIG. */
ALYX_API int alyx_auth_register(alyx *a, const char *json, size_t len,
				char **out);
/* {"email","password"}.  A wrong password and an unknown email fail the
 * same way (ALYX_E_UNAUTHORIZED, "invalid email or password") after the
 * same argon2id work.  ALYX_E_RATELIMIT as above. */
ALYX_API int alyx_auth_login(alyx *a, const char *json, size_t len,
			     char **out);
/* {"refresh_token"}: a new token pair; the presented refresh token is
 * spent.  Presenting a spent token again revokes its whole session
 * (every token of the chain) and fails with ALYX_E_UNAUTHORIZED, details
 * {"reason":"reused"}.  Unknown or expired: ALYX_E_UNAUTHORIZED. */
ALYX_API int alyx_auth_refresh(alyx *a, const char *json, size_t len,
			       char **out);
/* {"refresh_token"}: revokes that token's session.  ALYX_E_UNAUTHORIZED
 * for an unknown token. */
ALYX_API int alyx_auth_logout(alyx *a, const char *json, size_t len);
/* Trusted (the CLI's create-admin): creates an account like register,
 * with role `role` and the email marked verified, without rate limits
 * or tokens.  *out is the user object. */
ALYX_API int alyx_auth_create_user(alyx *a, const char *json, size_t len,
				   const char *role, char **out);

/*
 * The access context of an access token (`bearer` is the token, with or
 * without a leading "Bearer ").  The token must be HS256, correctly
 * signed, unexpired and from auth.jwt.issuer, and its account must still
 * exist; else ALYX_E_UNAUTHORIZED.  The context carries the account's
 * id, email, role and verified flag as stored now.  Release with
 * alyx_ctx_free().  The data calls enforce the collection rules with it
 * (see "Access context" at the top of this file).
 */
ALYX_API int alyx_ctx_from_token(alyx *a, const char *bearer,
				 alyx_ctx **out);
/* The context of a caller who is not signed in (`auth` is null in the
 * rules).  Static storage: valid forever, shared by all handles and
 * threads; alyx_ctx_free() ignores it.  Since 0.1. */
ALYX_API const alyx_ctx *alyx_ctx_anonymous(void);
/* NULL (and the anonymous context) is a no-op. */
ALYX_API void alyx_ctx_free(alyx_ctx *ctx);
/* The user object of a context (as in the token replies);
 * ALYX_E_UNAUTHORIZED for a NULL context. */
ALYX_API int alyx_auth_me(alyx *a, const alyx_ctx *ctx, char **out);

/*
 * Email verification and password reset (docs/auth.md).  Alyx sends no
 * email: a link <auth.email.verify_url|reset_url>?token=... goes to the
 * auth.email.webhook (a JSON POST, sent from these calls on the
 * caller's thread; a failed delivery is not reported).  Tokens are
 * one-time, expiring (auth.email.verify_ttl, reset_ttl) and stored
 * hashed.  The requests answer ALYX_OK whether or not the email has an
 * account; ALYX_E_VALIDATION for a malformed email, ALYX_E_RATELIMIT
 * over auth.rate_limit.password_reset (per email).
 */
/* {"email"}: sends a verification link (unless already verified). */
ALYX_API int alyx_auth_request_verification(alyx *a, const char *json,
					    size_t len);
/* {"token"}: marks the account verified (and the users document's bool
 * `verified` field); *out is the user object.  A spent, expired or
 * unknown token: ALYX_E_VALIDATION (field "token", code "invalid"). */
ALYX_API int alyx_auth_verify(alyx *a, const char *json, size_t len,
			      char **out);
/* {"email"}: sends a password reset link. */
ALYX_API int alyx_auth_request_password_reset(alyx *a, const char *json,
					      size_t len);
/* {"token","password"}: sets the password (policy applies; a refused
 * password leaves the token usable), marks the email verified and
 * revokes every session of the account. */
ALYX_API int alyx_auth_confirm_password_reset(alyx *a, const char *json,
					      size_t len);
/* Trusted (`alyx auth reset-password`): a reset link for the account of
 * `email` without sending it: {"email","link","expires_at"}.
 * ALYX_E_NOTFOUND when no account has that email. */
ALYX_API int alyx_auth_reset_link(alyx *a, const char *email, char **out);

/*
 * OAuth sign-in with GitHub and Google (authorization code with PKCE
 * S256; docs/auth.md).  Providers are configured in alyx.yaml
 * auth.oauth (client id and secret; endpoints overridable).
 */
/* {"providers":[{"name":"github","url":"/api/auth/oauth/github"},...]}:
 * the configured ones. */
ALYX_API int alyx_auth_providers(alyx *a, char **out);
/* Begins a sign-in: stores a one-time state (expiring after
 * auth.oauth.state_ttl) with the PKCE verifier and the callback URL
 * (auth.oauth.redirect_url, else `redirect_uri`), and answers
 * {"url": the provider's authorize URL, "state"}.  ALYX_E_NOTFOUND for
 * an unknown or unconfigured provider. */
ALYX_API int alyx_auth_oauth_start(alyx *a, const char *provider,
				   const char *redirect_uri, char **out);
/* Completes it on the caller's thread (it blocks on the provider, at
 * most auth.oauth.timeout per request): takes the state (single use),
 * exchanges the code, reads the user and finds, links (only by an email
 * the provider verified) or creates the account.  Answers the token
 * reply of login.  Errors: ALYX_E_UNAUTHORIZED (bad, used or expired
 * state; the provider refused the code), ALYX_E_CONFLICT (the email has
 * an account and the provider does not vouch for it),
 * ALYX_E_UNAVAILABLE / ALYX_E_TIMEOUT (the provider failed), with
 * details {"provider","reason"}. */
ALYX_API int alyx_auth_oauth_callback(alyx *a, const char *provider,
				      const char *code, const char *state,
				      char **out);

/*
 * Uses `secret` (at least 32 bytes, else ALYX_E_CONFIG) as
 * auth.jwt.secret when alyx.yaml gives none; a configured secret wins
 * (ALYX_OK, nothing changes).  For `alyx dev`'s generated secret.  Call
 * it before the handle is used from other threads (before
 * alyx_server_start()).
 */
ALYX_API int alyx_auth_default_secret(alyx *a, const char *secret);

/* ---- realtime: live queries (since 0.1; docs/realtime.md) ---------- */

/*
 * A subscription keeps a query's result (its "window": the first `limit`
 * documents in the query's order) up to date and tells the subscriber
 * every change as JSON text, exactly the payloads of the WebSocket
 * protocol:
 *   snapshot  {"subscription_id":"sub_1","docs":[...],["total":N,]
 *              "change_id":N[,"resync":bool]}
 *   resume    {"subscription_id":"sub_1","resumed":true,"changes":{..},
 *              "change_id":N}  (first message instead of a snapshot)
 *   delta     {"subscription_id":"sub_1","changes":{"inserts":[{doc}..],
 *              "updates":[{doc}..],"deletes":["id",..]},"change_id":N}
 *   error     {"subscription_id":"sub_1","error":{"code":"NOMEM",
 *              "message":..}}  (the last message; nothing follows)
 * Applying each delta to the documents held (drop `deletes`, replace or
 * add `updates` and `inserts` by id) and ordering them by the query's
 * sort gives exactly what alyx_query() answers at that change id.  A
 * document that starts matching, or enters a sort+limit window, is an
 * insert; one that stops matching, is deleted or is pushed out of the
 * window is a delete.  `change_id` is the newest change of the feed the
 * message reflects (alyx_changes()).
 *
 * THREADS.  libalyx starts no thread for this.  Work is done, and every
 * callback is called, by alyx_dispatch() on the thread that calls it.
 * The host waits for alyx_get_fd() to become readable (writes made
 * through this handle make it readable right after their commit; so does
 * a new subscription's snapshot) or for alyx_next_timeout_ms() to elapse
 * (the timer notices writes by other processes through PRAGMA
 * data_version, every alyx.yaml realtime.poll_interval_ms, default 50,
 * and prunes the change feed), then calls alyx_dispatch().
 */
typedef struct alyx_sub alyx_sub;

/* Receives one message (`len` bytes, also NUL-terminated, borrowed for
 * the call).  Inside a callback any libalyx call is allowed except
 * alyx_dispatch() (it would deadlock) and alyx_close(). */
typedef void (*alyx_sub_cb)(const char *json, size_t len, void *user_data);

/*
 * Subscribes to `collection` with `query_json` as alyx_query() takes it
 * (filter, sort, limit, expand, total; NULL for everything) plus an
 * optional "since": a change id from an earlier message.  Not allowed:
 * offset, after, fields (ALYX_E_BADQUERY).  The snapshot is the first
 * message, delivered by the next alyx_dispatch().  With "since" (the
 * caller holds the result as of that change id), the first message is
 * either a resume delta with only what was missed, marked "resumed":true
 * (apply it leniently: an update of an id not held is an insert, a
 * delete of an id not held is ignored), or, when a replay cannot be
 * proved complete (a limit window, "total", a pruned feed, a schema
 * change; docs/realtime.md "Resume"), a snapshot carrying "resync":
 * false when the feed still holds every change after `since`, true when
 * it was pruned past it (or `since` is unknown).
 *
 * `destroy` (may be NULL) is called with user_data once the subscription
 * is gone: after alyx_unsubscribe() when no callback of it is running,
 * or by alyx_close().  On failure nothing is kept and destroy is not
 * called.  Returns ALYX_OK, ALYX_E_MISUSE, ALYX_E_NOTFOUND (collection),
 * ALYX_E_BADJSON, ALYX_E_BADQUERY, ALYX_E_TOOBIG, ALYX_E_NOMEM,
 * ALYX_E_IO.  With a `ctx` (not NULL), the subscription sees exactly
 * what alyx_query() would show that caller: the collection's read rule
 * filters the snapshot and every delta (a document that stops passing it
 * after an update arrives as a delete, one that starts as an insert; a
 * sort+limit window holds the first `limit` documents the caller may
 * read); without a read rule only role `admin` sees documents (others
 * get empty results); expanded documents meet their own collection's
 * read rule.  The context is copied: it may be freed after the call.
 */
ALYX_API int alyx_subscribe(alyx *a, const alyx_ctx *ctx,
			    const char *collection, const char *query_json,
			    alyx_sub_cb cb, void *user_data,
			    void (*destroy)(void *), alyx_sub **out);
/* Ends a subscription; no callback of it starts after this returns (one
 * already running on the dispatching thread finishes).  NULL is a no-op.
 * Must not be called after alyx_close() (which ends them all). */
ALYX_API void alyx_unsubscribe(alyx_sub *s);
/* The subscription's id ("sub_N"), as in its messages; borrowed, valid
 * until alyx_unsubscribe(). */
ALYX_API const char *alyx_sub_id(const alyx_sub *s);

/* An fd (eventfd) that is readable when alyx_dispatch() has work; owned
 * by the handle (do not close or read it).  -1 on failure. */
ALYX_API int alyx_get_fd(alyx *a);
/* Milliseconds until alyx_dispatch() must run anyway (0: now), or -1 for
 * no deadline. */
ALYX_API int alyx_next_timeout_ms(alyx *a);
/* Runs pending work: reads the change feed, updates every subscription
 * and calls their callbacks, prunes the feed when due.  One thread at a
 * time (concurrent calls wait).  Returns ALYX_OK or the failure of
 * reading the feed (retried by the next call). */
ALYX_API int alyx_dispatch(alyx *a);

/* ---- functions (since 0.1; docs/functions.md) ---------------------- */

/*
 * Runs the function `name` of the project's functions/ directory (a
 * .js/.mjs file for Node.js or a .py file for Python, with an optional
 * name.yaml manifest) with `input_json` (a JSON object, `len` bytes or
 * (size_t)-1 for a NUL-terminated string; NULL means {}) on a warm
 * executor process of its runtime's pool, sandboxed with bubblewrap when
 * it is installed.  The caller's thread waits for the answer (at most the
 * function's timeout, plus the wait for a free executor, bounded the
 * same way); other threads may invoke at the same time.  `ctx` gives the
 * function ctx.auth (NULL: none).  The function's ctx.db calls run as
 * trusted code on the calling thread while it waits (a transaction holds
 * the writer for at most 5 s; docs/functions.md).
 *
 * On success *out is the protocol's response object (caller frees):
 *   {"request_id":..,"success":true,"output":..,"logs":[{"level",
 *    "message"[,"data"]},..],"duration_ms":..}
 * Errors: ALYX_E_NOTFOUND (no such function), ALYX_E_BADJSON (input not
 * a JSON object), ALYX_E_VALIDATION (input fails the function's declared
 * input schema, or the function threw VALIDATION_ERROR: details
 * {"fields":[..],"logs":[..]}), ALYX_E_FUNCTION (the function threw or
 * its executor died: details {"function","code","details","logs",
 * "request_id"}, code EXECUTOR_EXITED when the process exited, crashed
 * or ran out of memory), ALYX_E_TIMEOUT (ran past its timeout; that
 * executor is replaced), ALYX_E_TOOBIG (output too large),
 * ALYX_E_UNAVAILABLE (every executor busy and the queue full, no
 * interpreter, functions disabled), ALYX_E_CONFIG (a broken manifest),
 * ALYX_E_UNSUPPORTED (functions.runner is not "process").
 */
ALYX_API int alyx_invoke(alyx *a, const alyx_ctx *ctx, const char *name,
			 const char *input_json, size_t len, char **out);

/*
 * The functions and their executor pools (caller frees):
 *   {"enabled":true,"runner":"process","sandbox":"bwrap"|"none",
 *    "functions":[{"name","runtime","file","timeout_ms","memory",
 *                  "network","status":"ready"|"error"[,"error"]}],
 *    "pools":[{"runtime","network","memory","instances","busy",
 *              "waiting","started","replaced","min_warm",
 *              "max_instances"}]}
 */
ALYX_API int alyx_functions_json(alyx *a, char **out);

/*
 * The last invocations of function `name` kept in memory for the admin
 * UI (a ring per function: at most 200 entries or 512 KiB, oldest
 * dropped first), oldest first (caller frees):
 *   {"function":"createPost","max_entries":200,"entries":[
 *     {"time":"2026-...Z","request_id":"req_..","success":true,
 *      "duration_ms":1.9,"logs":[{"level","message"[,"data"]},..]},
 *     {..,"success":false,"error":{"code":"TIMEOUT","message":".."},..}]}
 * ALYX_E_NOTFOUND when there is no such function.
 */
ALYX_API int alyx_function_logs_json(alyx *a, const char *name, char **out);

/* ---- HTTP server (alyxd's engine; since 0.1) ------------------------ */

/*
 * The REST server: libwebsockets serving HTTP/1.1 on one port, routes as
 * docs/http-api.md.  alyx_server_start() is THE ONE PLACE libalyx starts
 * threads: `threads` network service threads (one libwebsockets context
 * each, sharing the port through SO_REUSEPORT) that run reads, plus one
 * writer thread that group-commits queued writes.  All of them are joined
 * by alyx_server_stop().  The handle `a` must outlive the server.
 */
typedef struct alyx_server alyx_server;

/* Log levels passed to alyx_log_cb. */
enum alyx_log_level {
	ALYX_LOG_ERROR = 0,
	ALYX_LOG_WARN = 1,
	ALYX_LOG_INFO = 2	/* one line per request */
};

/* Receives one complete log line (no trailing newline; `len` bytes, also
 * NUL-terminated).  Called from the server's threads, possibly several
 * at once: it must be thread-safe and must not call back into the
 * server. */
typedef void (*alyx_log_cb)(void *user_data, int level, const char *line,
			    size_t len);

/* alyx_server_options.log_format */
#define ALYX_LOG_JSON 0		/* one JSON object per line */
#define ALYX_LOG_LOGFMT 1	/* key=value pairs */

/* alyx_server_options.loop */
#define ALYX_SERVER_LOOP_DEFAULT (-1)	/* config server.loop, else poll */
#define ALYX_SERVER_LOOP_POLL 0	/* poll(): fastest for plain HTTP */
#define ALYX_SERVER_LOOP_EV 1	/* libev (epoll) plugin: flat with many
				 * idle connections */

/* alyx_server_options.flags */
#define ALYX_SERVER_BENCH_ROUTES 0x1u	/* serve GET /bench/hello (a fixed
					 * tiny JSON reply, for benchmarks) */
#define ALYX_SERVER_DEV 0x2u		/* development: email verification
					 * and password reset links are also
					 * written to the log */

#define ALYX_SERVER_OPTIONS_VERSION 1

/*
 * Server options.  Fill with alyx_server_options_init(), then set what
 * you need.  "config" below means the project's alyx.yaml `server:`
 * section (alyx_config_json()); what neither sets gets the default.
 * Strings are borrowed for the duration of alyx_server_start().
 */
typedef struct alyx_server_options {
	uint32_t version;	/* ALYX_SERVER_OPTIONS_VERSION */
	const char *host;	/* bind address; NULL: config, "127.0.0.1" */
	int port;		/* -1: config, 8090; 0: any free port (see
				 * alyx_server_port()) */
	int threads;		/* service threads; 0: config, else one per
				 * online CPU */
	const char *tls_cert;	/* PEM certificate and key paths; both or
				 * neither; NULL: config (none = plain) */
	const char *tls_key;
	const char *cors_origins; /* comma-separated allowed origins, "*" for
				   * any, "" for none; NULL: config */
	size_t max_body;	/* request body cap (413 above); 0: config,
				 * 1 MiB */
	size_t max_header;	/* request header cap; 0: config, 8 KiB */
	int request_timeout_ms;	/* per-request bound (slow clients are
				 * dropped); 0: config, 10000 */
	int loop;		/* ALYX_SERVER_LOOP_* */
	int log_fd;		/* log lines are written here (buffered, one
				 * write per loop pass); -1: none */
	int log_format;		/* ALYX_LOG_JSON or ALYX_LOG_LOGFMT */
	alyx_log_cb log_cb;	/* called per line; NULL: none */
	void *log_user_data;
	unsigned flags;		/* ALYX_SERVER_* */
} alyx_server_options;

/* Sets every field to its "use config / default" value. */
ALYX_API void alyx_server_options_init(alyx_server_options *o);

/*
 * Binds the port and starts serving `a` (see the top of this section for
 * the threads).  `o` may be NULL (all defaults).  On success *out is the
 * running server.  Start-up problems are reported synchronously, with a
 * message naming the cause: port in use or bind failure (ALYX_E_IO), bad
 * options or config (ALYX_E_CONFIG, ALYX_E_MISUSE), TLS files that cannot
 * be loaded (ALYX_E_CONFIG), out of memory.  Unless alyx.yaml has
 * auth.enabled: false, the server refuses to start (ALYX_E_CONFIG)
 * without an auth.jwt.secret of at least 32 bytes (docs/auth.md).
 * Errors are read with
 * alyx_errmsg(a) on this thread.
 */
ALYX_API int alyx_server_start(alyx *a, const alyx_server_options *o,
			       alyx_server **out);
/* The port actually bound (useful with port 0).  Thread-safe. */
ALYX_API int alyx_server_port(const alyx_server *s);
/*
 * Graceful stop: stops accepting connections, answers new requests on
 * open connections with 503, lets in-flight requests finish for at most
 * `grace_ms` milliseconds, lets the writer commit every write it has
 * queued, closes every connection and joins all the server's threads.
 * Returns ALYX_OK, or ALYX_E_TIMEOUT if requests were still in flight
 * when the bound ran out (their connections were closed; writes already
 * queued were still committed).  Idempotent.  Must not be called from a
 * log callback.
 */
ALYX_API int alyx_server_stop(alyx_server *s, int grace_ms);
/* Stops (with a 5 s grace) if still running, then releases.  NULL is a
 * no-op. */
ALYX_API void alyx_server_free(alyx_server *s);

#ifdef __cplusplus
}
#endif
#endif /* ALYX_H */
