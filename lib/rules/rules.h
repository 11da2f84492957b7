/*
 * rules.h - the CEL rules engine (cel-spec language definition) and its
 * Alyx integration: compile a rule once, evaluate it per request/document
 * with the variables `auth`, `doc` and `request`, type-check it against a
 * collection, and push read rules down into SQL.  Internal to libalyx;
 * docs/rules.md describes the language subset and the limits.
 *
 * Two layers:
 *  - alyx__cel_*: the language.  A program (alyx__cel_prog) is immutable
 *    once compiled and may be evaluated from several threads at once; each
 *    evaluation uses its own alyx__cel_run (an arena with an inline first
 *    block, a step budget and a size budget), so small evaluations do not
 *    allocate.
 *  - alyx__rule_*: Alyx rules (SEED-PLAN.md §CEL Rule Engine).
 */
#ifndef ALYX_RULES_H
#define ALYX_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "doc/doc.h"
#include "schema/schema.h"
#include "util/util.h"

/* ---- limits (defaults; alyx__cel_opts / alyx__cel_run override) ---- */
#define ALYX_CEL_MAX_SRC	(100 * 1024)	/* bytes of source text */
#define ALYX_CEL_MAX_DEPTH	200		/* AST nesting */
#define ALYX_CEL_MAX_STEPS	1000000		/* evaluation steps */
#define ALYX_CEL_MAX_BYTES	(16u << 20)	/* bytes one evaluation may
						 * allocate for values */
#define ALYX_RULE_MAX_SRC	(16 * 1024)	/* an Alyx rule's text */
#define ALYX_RULE_MAX_STEPS	100000

/* ---- values ---- */
typedef enum alyx__cel_kind {
	ALYX_CEL_NULL,
	ALYX_CEL_BOOL,
	ALYX_CEL_INT,
	ALYX_CEL_UINT,
	ALYX_CEL_DOUBLE,
	ALYX_CEL_STRING,
	ALYX_CEL_BYTES,
	ALYX_CEL_LIST,
	ALYX_CEL_MAP,
	ALYX_CEL_TIMESTAMP,
	ALYX_CEL_DURATION,
	ALYX_CEL_TYPE,
	ALYX_CEL_ERROR
} alyx__cel_kind;

typedef struct alyx__cel_error {
	int pos;		/* byte offset in the source, or -1 */
	const char *msg;	/* NUL-terminated */
} alyx__cel_error;

/*
 * A CEL value: 24 bytes, passed by value.  Strings and bytes point to n
 * bytes (not necessarily NUL-terminated); a list points to n values; a map
 * points to 2n values, key and value interleaved.  A timestamp is
 * i = seconds since the epoch and ns = nanoseconds (0..999999999); a
 * duration is i seconds and ns nanoseconds with the sign of i (or of ns
 * when i is 0).  A type value holds the kind it names in `i` (ALYX_CEL_TYPE
 * for `type` itself).  Memory is owned by whoever built the value: the
 * program (literals), the caller (variables) or the run's arena.
 */
typedef struct alyx__cel_val {
	uint8_t k;		/* alyx__cel_kind */
	int32_t ns;
	size_t n;
	union {
		bool b;
		int64_t i;
		uint64_t u;
		double d;
		const char *s;
		const struct alyx__cel_val *l;
		const alyx__cel_error *e;
	} v;
} alyx__cel_val;

/* Builders for values that need no memory. */
static inline alyx__cel_val alyx__cel_null(void)
{
	alyx__cel_val r = {.k = ALYX_CEL_NULL};
	return r;
}
static inline alyx__cel_val alyx__cel_bool(bool b)
{
	alyx__cel_val r = {.k = ALYX_CEL_BOOL};
	r.v.b = b;
	return r;
}
static inline alyx__cel_val alyx__cel_int(int64_t i)
{
	alyx__cel_val r = {.k = ALYX_CEL_INT};
	r.v.i = i;
	return r;
}
static inline alyx__cel_val alyx__cel_uint(uint64_t u)
{
	alyx__cel_val r = {.k = ALYX_CEL_UINT};
	r.v.u = u;
	return r;
}
static inline alyx__cel_val alyx__cel_double(double d)
{
	alyx__cel_val r = {.k = ALYX_CEL_DOUBLE};
	r.v.d = d;
	return r;
}
/* Borrows s (n bytes). */
static inline alyx__cel_val alyx__cel_str(const char *s, size_t n)
{
	alyx__cel_val r = {.k = ALYX_CEL_STRING, .n = n};
	r.v.s = s;
	return r;
}
static inline alyx__cel_val alyx__cel_bytes(const char *s, size_t n)
{
	alyx__cel_val r = {.k = ALYX_CEL_BYTES, .n = n};
	r.v.s = s;
	return r;
}
/* Borrows n elements. */
static inline alyx__cel_val alyx__cel_list(const alyx__cel_val *l, size_t n)
{
	alyx__cel_val r = {.k = ALYX_CEL_LIST, .n = n};
	r.v.l = l;
	return r;
}
/* Borrows 2n values: k0, v0, k1, v1, ... */
static inline alyx__cel_val alyx__cel_map(const alyx__cel_val *kv, size_t n)
{
	alyx__cel_val r = {.k = ALYX_CEL_MAP, .n = n};
	r.v.l = kv;
	return r;
}
static inline alyx__cel_val alyx__cel_type(alyx__cel_kind t)
{
	alyx__cel_val r = {.k = ALYX_CEL_TYPE};
	r.v.i = t;
	return r;
}
/* Seconds + nanoseconds; no range check (see alyx__cel_ts_valid). */
static inline alyx__cel_val alyx__cel_timestamp(int64_t s, int32_t ns)
{
	alyx__cel_val r = {.k = ALYX_CEL_TIMESTAMP, .ns = ns};
	r.v.i = s;
	return r;
}
static inline alyx__cel_val alyx__cel_duration(int64_t s, int32_t ns)
{
	alyx__cel_val r = {.k = ALYX_CEL_DURATION, .ns = ns};
	r.v.i = s;
	return r;
}

/* "int", "google.protobuf.Timestamp", ...: the name of type kind t. */
const char *alyx__cel_type_name(alyx__cel_kind t);
/* CEL `==` (heterogeneous equality: numbers compare by value, different
 * types are unequal).  Neither side may be an error. */
bool alyx__cel_equal(const alyx__cel_val *a, const alyx__cel_val *b);
/* Parses RFC 3339 text as CEL's timestamp() does; false if invalid or
 * out of range (0001-01-01 .. 9999-12-31T23:59:59.999999999Z). */
bool alyx__cel_parse_timestamp(const char *s, size_t n, int64_t *sec,
			       int32_t *ns);
/* Parses a Go-style duration ("1h2m3.5s", "-150ms") as duration() does;
 * false if invalid or out of range (int64 nanoseconds, about ±292
 * years, as cel-go). */
bool alyx__cel_parse_duration(const char *s, size_t n, int64_t *sec,
			      int32_t *ns);
/* Appends a readable rendering of v (for messages and tests). */
void alyx__cel_val_format(alyx_buf *b, const alyx__cel_val *v);

/* ---- evaluation state ---- */
typedef struct alyx__cel_chunk alyx__cel_chunk;

typedef struct alyx__cel_run {
	/* settings (alyx__cel_run_init fills the defaults) */
	uint64_t max_steps;
	size_t max_bytes;
	/* state */
	uint64_t steps;
	size_t used;
	char *cur, *end;
	alyx__cel_chunk *chunks;
	int max_locals;
	alyx__cel_val *locals;
	alyx__cel_val local_buf[16];
	_Alignas(16) char first[2048];
} alyx__cel_run;

void alyx__cel_run_init(alyx__cel_run *r);
/* Frees everything the run allocated; values from it become invalid.
 * The run can be reused without a new init. */
void alyx__cel_run_reset(alyx__cel_run *r);
void alyx__cel_run_free(alyx__cel_run *r);
/* Arena allocation (8-byte aligned); NULL when max_bytes is reached. */
void *alyx__cel_alloc(alyx__cel_run *r, size_t n);

/* ---- programs ---- */
typedef struct alyx__cel_prog alyx__cel_prog;

typedef struct alyx__cel_opts {
	const char *container;	/* namespace for name resolution, or NULL */
	/* Declared variables, by (possibly qualified) name; their values are
	 * passed to alyx__cel_eval in this order. */
	const char *const *vars;
	size_t n_vars;
	size_t max_src;		/* 0 = ALYX_CEL_MAX_SRC */
	int max_depth;		/* 0 = ALYX_CEL_MAX_DEPTH */
	bool disable_macros;
} alyx__cel_opts;

/*
 * Parses `src` (len bytes; may contain NUL), expands macros and resolves
 * names.  On a syntax error returns ALYX_E_RULE with a message
 * "line:col: ..." and details {"line":..,"column":..,"offset":..};
 * ALYX_E_TOOBIG for a source over max_src or nesting over max_depth.
 */
int alyx__cel_compile(const char *src, size_t len, const alyx__cel_opts *o,
		      alyx__cel_prog **out, alyx__err *err);
void alyx__cel_prog_free(alyx__cel_prog *p);
/* The source text the program was compiled from. */
const char *alyx__cel_prog_src(const alyx__cel_prog *p, size_t *len);

/*
 * Evaluates the program with vars[i] the value of declared variable i.
 * The result (possibly ALYX_CEL_ERROR, carrying the position) lives in the
 * run's arena, the program or the vars until alyx__cel_run_reset.
 */
alyx__cel_val alyx__cel_eval(const alyx__cel_prog *p,
			     const alyx__cel_val *vars, alyx__cel_run *r);

/* 1-based line and column (in bytes) of byte offset `off` in src. */
void alyx__cel_linecol(const char *src, size_t len, int off, int *line,
		       int *col);

/* ---- Alyx rules ---- */

typedef struct alyx__rule alyx__rule;

/*
 * Compiles an access rule over the variables auth, doc and request.
 * `c` (may be NULL) types the doc fields: timestamp fields become CEL
 * timestamps, bool fields bools, and so on.  Errors are ALYX_E_RULE
 * ("line:col: message", details {"line","column","offset"}; lines and
 * columns within the rule text) or ALYX_E_TOOBIG.
 */
int alyx__rule_compile(const char *src, size_t len,
		       const alyx__collection *c, alyx__rule **out,
		       alyx__err *err);
void alyx__rule_free(alyx__rule *r);
const char *alyx__rule_src(const alyx__rule *r);
/* True when the rule is the constant `true` (a public collection's
 * `read: "true"`): it allows everyone without looking at anything. */
bool alyx__rule_always(const alyx__rule *r);

/*
 * Type-checks the rule against collection c: every `doc.<field>` must name
 * a field of c, and comparisons (==, !=, <, <=, >, >=, in) of a doc field
 * with a literal of a clearly wrong type are errors.  ALYX_E_RULE with
 * "line:col: message" and details {"line","column","field"}.
 */
int alyx__rule_check(const alyx__rule *r, const alyx__collection *c,
		     alyx__err *err);

/*
 * Compiles and checks every rule of collection c (c->rules[op], NULL =
 * none) into out[op] (NULL where there is no rule), for the program cache
 * the schema loader keeps until the schema changes.  On the first bad
 * rule frees what it built and returns ALYX_E_SCHEMA with the message
 * "L:C: rule posts.read: <message>" (L:C in the schema file, from
 * c->rule_line/rule_col) and details {"collection","operation","line",
 * "column","rule_line","rule_column","message"}; or ALYX_E_TOOBIG/NOMEM.
 */
int alyx__rules_build(const alyx__collection *c,
		      alyx__rule *out[ALYX_RULE_COUNT], alyx__err *err);

typedef enum alyx__rule_result {
	ALYX_RULE_DENY = 0,
	ALYX_RULE_ALLOW = 1,
	ALYX_RULE_ERROR = -1	/* evaluation error or a non-bool result:
				 * callers treat it as deny */
} alyx__rule_result;

/*
 * The evaluation context.  Every pointer may be NULL.
 *  auth: NULL or JSON null = unauthenticated (auth is null in the rule);
 *        otherwise an object {id, email, role, verified, metadata}.
 *  doc:  the document in the JSON boundary form; with the collection the
 *        rule was compiled against, timestamp fields (ISO text) become
 *        CEL timestamps and int fields ints.
 *  request: {method, ip, time (ISO text or epoch ms), body}.
 */
typedef struct alyx__rule_ctx {
	const cJSON *auth;
	const cJSON *doc;
	const cJSON *request;
} alyx__rule_ctx;

/* Evaluates; on ALYX_RULE_ERROR `err` (may be NULL) gets ALYX_E_RULE with
 * the message and position. */
alyx__rule_result alyx__rule_eval(const alyx__rule *r,
				  const alyx__rule_ctx *ctx, alyx__err *err);

/*
 * Pre-converted variables for hot loops: build auth/request once and
 * only the doc per row.  The values live in `run` until its reset.
 */
int alyx__rule_json_val(const cJSON *j, const alyx__collection *c,
			alyx__cel_run *run, alyx__cel_val *out);
alyx__rule_result alyx__rule_eval_vals(const alyx__rule *r,
				       const alyx__cel_val vars[3],
				       alyx__cel_run *run, alyx__err *err);
/* auth as the rules see it: null (NULL or not an object), else a map that
 * always has id, email, role, verified (bool) and metadata (map). */
int alyx__rule_auth_val(const cJSON *j, alyx__cel_run *run,
			alyx__cel_val *out);
/* request: a map with method, ip, time (timestamp; now when absent) and
 * body, plus any other keys. */
int alyx__rule_request_val(const cJSON *j, alyx__cel_run *run,
			   alyx__cel_val *out);
/* Variable slots for alyx__rule_eval_vals. */
enum { ALYX_RULE_VAR_AUTH, ALYX_RULE_VAR_DOC, ALYX_RULE_VAR_REQUEST };

/*
 * SQL push-down of a read rule.  With auth and request known (JSON, may
 * be NULL = unauthenticated / no request), partially evaluates the rule
 * and translates it into a condition over the columns of c (column names
 * are the field names, double-quoted; values are anonymous '?'
 * parameters, in order, whose values are (*binds)[0..*n_binds)).
 *
 * With exact != NULL, returns ALYX_OK and sets *exact:
 *   true   *sql admits exactly the rows for which alyx__rule_eval returns
 *          ALLOW (errors and non-bool results deny); it may be "1" or "0"
 *          when the rule does not depend on doc;
 *   false  some part could not be translated: *sql is a pre-filter that
 *          admits a superset of the allowed rows, and the caller must
 *          evaluate the rule on each row it returns.
 * With exact == NULL, an inexact translation returns ALYX_E_UNSUPPORTED
 * ("not pushable": evaluate per row) and leaves sql and binds empty.
 * Other codes: ALYX_E_NOMEM, ALYX_E_TOOBIG.  Free *binds with
 * alyx__rule_binds_free.
 */
int alyx__rule_to_sql(const alyx__rule *r, const alyx__collection *c,
		      const cJSON *auth, const cJSON *request, alyx_buf *sql,
		      alyx__value **binds, size_t *n_binds, bool *exact,
		      alyx__err *err);
void alyx__rule_binds_free(alyx__value *binds, size_t n);

#endif
