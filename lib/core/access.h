/*
 * access.h - collection rules on every door (issue 5, docs/rules.md
 * "Enforcement").  The data calls of api-doc.c (and whatever else serves
 * collection data to a caller: realtime, functions) decide here what a
 * caller may do.  Internal to libalyx.
 *
 * A caller is the system (ctx NULL: trusted code, no rules), anonymous
 * (alyx_ctx_anonymous(): `auth` is null in the rules) or a signed-in
 * user.  For a collection operation with a rule, the rule decides for
 * every non-system caller, admins included; with no rule, only role
 * `admin` may.
 */
#ifndef ALYX_ACCESS_H
#define ALYX_ACCESS_H

#include <stdbool.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "auth/auth.h"
#include "doc/doc.h"
#include "rules/rules.h"
#include "schema/schema.h"
#include "util/util.h"

typedef struct alyx__caller {
	const struct alyx_ctx *ctx;	/* NULL: the system */
	const cJSON *auth;		/* as the rules see it; NULL: anonymous
					 * (or the system) */
	cJSON *own;			/* auth built for this call */
	bool admin;			/* signed in with role admin */
} alyx__caller;

/* Sets up the caller of one call (no allocation for the system, the
 * anonymous context or a context made by alyx_ctx_from_token). */
int alyx__caller_init(alyx__caller *k, const struct alyx_ctx *ctx,
		      alyx__err *err);
void alyx__caller_free(alyx__caller *k);

static inline bool alyx__caller_system(const alyx__caller *k)
{
	return k->ctx == NULL;
}

/* What the caller may do of operation `op` (ALYX_RULE_*) on c. */
enum { ALYX_ACC_ALL, ALYX_ACC_NONE, ALYX_ACC_RULE };
int alyx__access_mode(const alyx__caller *k, const alyx__collection *c,
		      int op, const alyx__rule **rule);
/* True when `op` needs no evaluation for k: no rule applies (system,
 * admin without a rule) or the rule is literally `true`. */
bool alyx__access_open(const alyx__caller *k, const alyx__collection *c,
		       int op);

/* The `request` variable {"method","ip","body"} (body referenced, not
 * copied), or NULL when the rule does not mention `request` (then rules
 * see request.method etc. as null; nothing reads them).  *nomem is set
 * when it could not be built. */
cJSON *alyx__access_request(const alyx__caller *k, const alyx__rule *r,
			    const char *method, const cJSON *body,
			    bool *nomem);

/* Evaluates op's rule on `doc` (JSON boundary form, internal fields
 * included) with the request body: true when allowed.  An evaluation
 * error denies.  *nomem is set (and false returned) out of memory. */
bool alyx__access_allows(const alyx__caller *k, const alyx__collection *c,
			 int op, const cJSON *doc, const cJSON *body,
			 bool *nomem);

/*
 * Write checks (inside the write transaction, on the writer's `db`).
 *  create: `row` is the prepared document (defaults applied); the rule
 *          sees it as `doc` and the client's JSON as request.body.
 *          FORBIDDEN when denied.  *doc_out (may be NULL) receives the
 *          document as JSON for alyx__access_result.
 *  update/delete: the stored document (internal fields included) is
 *          the rule's `doc`; NOTFOUND when it does not exist or when
 *          the rule denies and the caller may not read it either (ids of
 *          hidden documents do not leak), else FORBIDDEN when denied.
 * Bodies of non-system callers may not name internal fields
 * (VALIDATION, code "internal"): alyx__access_body.
 */
int alyx__access_body(const alyx__caller *k, const alyx__collection *c,
		      const cJSON *body, alyx__err *err);
int alyx__access_create(const alyx__caller *k, const alyx__collection *c,
			const alyx__row *row, const cJSON *body,
			cJSON **doc_out, alyx__err *err);
int alyx__access_stored(const alyx__caller *k, sqlite3 *db,
			const alyx__collection *c, const char *id, int op,
			const cJSON *body, alyx__err *err);

/*
 * After a write whose result document was appended to `out` from byte
 * `mark`: when the caller may not read the document (read rule, or no
 * read rule and not admin), the result is cut down to its primary key
 * {"<pk>":<id>}.  `doc` is the document (internal fields included) when
 * the caller has it, else it is read from `db` by `id`.
 */
int alyx__access_result(const alyx__caller *k, sqlite3 *db,
			const alyx__collection *c, const char *id,
			const cJSON *doc, alyx_buf *out, size_t mark,
			alyx__err *err);

/* The error of a denied operation (FORBIDDEN, details {"collection",
 * "operation"}). */
int alyx__access_denied(const alyx__collection *c, int op, bool has_rule,
			alyx__err *err);

#endif
