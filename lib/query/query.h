/*
 * query.h - one query model, two evaluators (DESIGN.md principle 2).
 *
 * A filter is parsed once into one AST, whichever door it came through:
 * the REST query string (filter=field:op:value), the JSON form of the
 * realtime protocol ({"field":{"$eq":v}}) or the C API.  The AST compiles
 * to parametrised SQL (identifiers only ever taken from the schema) *and*
 * evaluates in memory against a document (realtime matching).
 * Internal to libalyx.
 */
#ifndef ALYX_QUERY_H
#define ALYX_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "doc/doc.h"
#include "schema/schema.h"
#include "util/util.h"

#define ALYX_QUERY_DEFAULT_LIMIT 50
#define ALYX_QUERY_MAX_LIMIT 1000
#define ALYX_QUERY_MAX_EXPAND_DEPTH 3
#define ALYX_QUERY_MAX_FILTERS 64	/* conditions in one filter */
#define ALYX_QUERY_MAX_LIST 500		/* values of one `in` list */
#define ALYX_QUERY_MAX_VALUES 1000	/* values in one filter, all lists */
#define ALYX_QUERY_MAX_VALUE 8192	/* bytes of one filter value */
#define ALYX_QUERY_MAX_NEST 8		/* $or/$and nesting (JSON form) */
#define ALYX_QUERY_MAX_SORT 8		/* sort keys (the primary key aside) */
#define ALYX_QUERY_MAX_EXPAND 16	/* expand paths */
#define ALYX_QUERY_MAX_TEXT 65536	/* bytes of a REST query string */
#define ALYX_QUERY_MAX_OFFSET 1000000000
#define ALYX_QUERY_MAX_CURSOR 16384	/* bytes of a decoded cursor */

typedef enum alyx__op {
	ALYX_OP_EQ,
	ALYX_OP_NE,
	ALYX_OP_GT,
	ALYX_OP_GTE,
	ALYX_OP_LT,
	ALYX_OP_LTE,
	ALYX_OP_LIKE,	/* SQL LIKE pattern (% and _), case-insensitive ASCII */
	ALYX_OP_IN,	/* value list */
	ALYX_OP_CONTAINS /* substring for text; element for json arrays */
} alyx__op;

const char *alyx__op_name(alyx__op op);	/* "eq", ... */

typedef enum alyx__fkind { ALYX_F_AND, ALYX_F_OR, ALYX_F_COND } alyx__fkind;

typedef struct alyx__filter {
	alyx__fkind kind;
	/* AND / OR */
	struct alyx__filter **kids;
	size_t n_kids;
	/* COND */
	int field;		/* index into coll->fields */
	alyx__op op;
	alyx__value *vals;	/* 1 value, or the list for IN */
	size_t n_vals;
	/* For CONTAINS on a json field, the element as compact JSON text. */
	char *json_elem;
	/* ... and as what SQLite's json_each() yields for it: elem_type is
	 * cJSON_String (elem TEXT), cJSON_Number (elem FLOAT), cJSON_True,
	 * cJSON_False or cJSON_NULL (elem NULL).  Elements are scalars. */
	int elem_type;
	alyx__value elem;
} alyx__filter;

typedef struct alyx__sortkey {
	int field;
	bool desc;
} alyx__sortkey;

typedef struct alyx__query {
	const alyx__schema *schema;
	const alyx__collection *coll;
	alyx__filter *where;	/* NULL = everything */
	alyx__sortkey *sort;	/* the parsers append the primary key as the
				 * final tie-breaker when it is not a key
				 * already (for stable cursors) */
	size_t n_sort;
	int64_t limit;		/* 1..ALYX_QUERY_MAX_LIMIT */
	int64_t offset;
	char *after;		/* opaque cursor from a previous "next" */
	char **expand;		/* dotted paths of reference fields */
	size_t n_expand;
	char **fields;		/* projection; NULL = all non-internal */
	size_t n_fields;
	bool total;
	/* `after` decoded (by the parsers): one value per sort key. */
	alyx__value *after_vals;
	size_t n_after;
} alyx__query;

/* Parses the REST query string (see alyx_query_str in alyx.h).  Unknown
 * parameters are an error (ALYX_E_BADQUERY, details {"param":..}); so are
 * unknown fields, bad operators, values of the wrong type ({"field":..,
 * "op":..}), limit out of range, bad cursors, expand of a non-reference
 * field or deeper than the cap, internal fields in filter/sort/fields. */
int alyx__query_parse_str(const alyx__schema *s, const alyx__collection *c,
			  const char *qs, alyx__query **out, alyx__err *err);
/* One REST query parameter, already split at '&' and '=' and decoded
 * (%xx, '+' as space): the HTTP layer gets them so from libwebsockets.
 * key is NUL-terminated at klen unless it holds a NUL byte (an error). */
typedef struct alyx__qarg {
	const char *key, *val;
	size_t klen, vlen;
} alyx__qarg;

/* The length the parameters are measured by: their decoded text with a
 * separator each, at most one byte more than the string they came from
 * (decoding only shrinks), so a bound on it refuses only what the same
 * bound on the string would. */
size_t alyx__qargs_len(const alyx__qarg *args, size_t n);
/* alyx__query_parse_str for parameters already split and decoded: the
 * same answers and the same errors, without re-encoding and decoding the
 * text again. */
int alyx__query_parse_args(const alyx__schema *s, const alyx__collection *c,
			   const alyx__qarg *args, size_t n,
			   alyx__query **out, alyx__err *err);
/* Parses the JSON form (see alyx_query in alyx.h). */
int alyx__query_parse_json(const alyx__schema *s, const alyx__collection *c,
			   const cJSON *q, alyx__query **out, alyx__err *err);
/* The query of a get by primary key: `pk` equal to *pk (taken over, left
 * zeroed), limit 1: what the REST form filter=<pk>:eq:<id>&limit=1 parses
 * to, without making and parsing that text.  *pk must be a value of the
 * primary key's field (alyx__doc_pk_value). */
int alyx__query_by_pk(const alyx__schema *s, const alyx__collection *c,
		      alyx__value *pk, alyx__query **out, alyx__err *err);
void alyx__query_free(alyx__query *q);
void alyx__filter_free(alyx__filter *f);

/*
 * Runs the query on `db` (the caller provides a connection and, if it
 * wants one, a read transaction) and appends
 * {"docs":[...],"total":N,"next":"cursor"} to `out` ("total" only if
 * q->total; "next" only when more documents remain).  `extra` may be NULL.
 * Expanded references appear in each document under
 * "expand":{"author_id":{...}} (nested for dotted paths).
 */
int alyx__query_exec(sqlite3 *db, const alyx__query *q,
		     const alyx__sqlcond *extra, alyx_buf *out,
		     alyx__err *err);

/*
 * A cache of prepared statements for one connection (the generated SQL
 * text is the key; least recently used evicted).  Owned by whoever owns
 * the connection, used by one thread at a time like the connection, and
 * freed (finalizing its statements) before the connection is closed.
 */
/* A collection's read plan (see alyx__collection.read_plan): made once
 * the collection is complete, NULL on NOMEM. */
struct alyx__qplan *alyx__qplan_new(const alyx__collection *c);
void alyx__qplan_free(struct alyx__qplan *p);	/* NULL ok */
/* Writes the current row of `st`, which selects every non-internal field
 * of c in order, as a document with c's read plan; false (nothing
 * written) when c has none. */
bool alyx__qplan_write(const alyx__collection *c, sqlite3_stmt *st,
		       alyx_buf *b);
/* Appends the read plan's "SELECT <every non-internal field> FROM <c> AS
 * _m" to sql; false (nothing appended) when c has none. */
bool alyx__qplan_select(const alyx__collection *c, alyx_buf *sql);

typedef struct alyx__qcache alyx__qcache;

alyx__qcache *alyx__qcache_new(sqlite3 *db);	/* NULL on NOMEM */
void alyx__qcache_free(alyx__qcache *c);	/* NULL ok */

/* Options of alyx__query_run (a zeroed struct means none). */
typedef struct alyx__query_opts {
	const alyx__sqlcond *extra;	/* as alyx__query_exec's `extra` */
	alyx__qcache *cache;	/* statements of this connection, or NULL */
	/* Read-rule push-down for expanded documents: called once per
	 * expand path segment with the referenced collection; sets *cond to
	 * the condition its documents must meet (cond->sql NULL: none).
	 * What cond points to must stay valid until alyx__query_run
	 * returns.  A referenced document that does not meet it expands to
	 * null.  A non-OK return (err set) fails the query.  NULL: expanded
	 * documents are not restricted (trusted callers). */
	int (*expand_cond)(void *ud, const alyx__collection *c,
			   alyx__sqlcond *cond, alyx__err *err);
	void *ud;
} alyx__query_opts;

/* alyx__query_exec with options (o may be NULL). */
int alyx__query_run(sqlite3 *db, const alyx__query *q,
		    const alyx__query_opts *o, alyx_buf *out, alyx__err *err);

struct alyx__rule;	/* lib/rules/rules.h */

/* A get by primary key under read rule r (NULL: no rule) for `auth`:
 * when the rule translates to SQL exactly, alyx__doc_read_key with it and
 * *done true; otherwise nothing read and *done false (the caller runs the
 * query form, whose per-row evaluation covers the rest). */
int alyx__query_get_ruled(sqlite3 *db, const alyx__collection *c,
			  const alyx__value *pk,
			  const struct alyx__rule *r, const cJSON *auth,
			  const cJSON *request, alyx_buf *out, bool *done,
			  bool *found, alyx__err *err);
/*
 * alyx__query_run under a read rule (NULL: none) for the caller's auth and
 * request (JSON, may be NULL): only documents the rule allows are listed,
 * counted in "total", skipped by `offset`, and the pages are full.  A rule
 * alyx__rule_to_sql translates exactly is ANDed into the SQL; otherwise
 * its pre-filter is, and the rule is evaluated on each candidate (an
 * evaluation error denies).  Expanded documents meet the read rule of
 * their collection (`read_rule` for the queried one, else its compiled
 * programs[ALYX_RULE_READ]); one that is not exactly translatable expands
 * to null, and so does one of a collection without a read rule unless
 * auth.role is "admin".  `cache` may be NULL.  See docs/rules.md,
 * "Push-down".  (The queried collection itself with read_rule NULL is
 * not restricted: the caller decides, lib/core/access.h.)
 */
int alyx__query_run_ruled(sqlite3 *db, const alyx__query *q,
			  const struct alyx__rule *read_rule,
			  const cJSON *auth, const cJSON *request,
			  alyx__qcache *cache, alyx_buf *out, alyx__err *err);

/* Builds the SQL text of the page query exactly as alyx__query_exec
 * prepares it (SELECT ... FROM "coll" AS _m WHERE ... ORDER BY ...
 * LIMIT ? OFFSET ?), for tests and EXPLAIN QUERY PLAN checks.  The main
 * table is aliased _m; `extra->sql` may name columns unqualified or as
 * _m."field", and must use plain `?` parameters (never ?NNN). */
int alyx__query_sql(const alyx__query *q, const alyx__sqlcond *extra,
		    alyx_buf *sql, alyx__err *err);

/* In-memory evaluation: does `doc` (a document in the JSON boundary form,
 * as returned by reads) match filter f?  NULL f matches everything.
 * Must agree with the SQL evaluation for every document and filter. */
bool alyx__filter_match(const alyx__collection *c, const alyx__filter *f,
			const cJSON *doc);
/* Compares two documents by the query's sort keys (then the primary key):
 * <0, 0, >0.  Agrees with the SQL ORDER BY. */
int alyx__query_doc_cmp(const alyx__query *q, const cJSON *a,
			const cJSON *b);

#endif
