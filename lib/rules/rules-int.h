/*
 * rules-int.h - internals of lib/rules shared between its files: the AST
 * (which is also the compiled form the evaluator walks), programs and the
 * built-in function table.
 */
#ifndef ALYX_RULES_INT_H
#define ALYX_RULES_INT_H

#include <pthread.h>

#include "rules/rules.h"

typedef enum cel_nkind {
	N_LIT,		/* lit */
	N_IDENT,	/* name (parser output; resolved away) */
	N_VAR,		/* declared variable: slot */
	N_LOCAL,	/* comprehension variable: slot */
	N_UNDECL,	/* unresolved name: an error when evaluated */
	N_SELECT,	/* a[0].name */
	N_HAS,		/* has(a[0].name) */
	N_INDEX,	/* a[0][a[1]] */
	N_LIST,		/* [a...] */
	N_MAP,		/* {a[0]: a[1], ...} */
	N_CALL,		/* slot = function id; recv: a[0] is the target */
	N_AND,
	N_OR,
	N_NOT,
	N_NEG,
	N_COND,		/* a[0] ? a[1] : a[2] */
	N_BIN,		/* op */
	N_COMPR		/* op = macro; slot = local; a[0] range, a[1] body,
			 * a[2] transform (map with a filter) */
} cel_nkind;

typedef enum cel_binop {
	OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN,
	OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MOD
} cel_binop;

typedef enum cel_macro {
	M_ALL, M_EXISTS, M_EXISTS_ONE, M_MAP, M_MAP_FILTER, M_FILTER
} cel_macro;

typedef enum cel_fn {
	F_UNKNOWN,
	F_SIZE, F_CONTAINS, F_STARTSWITH, F_ENDSWITH, F_MATCHES,
	F_INT, F_UINT, F_DOUBLE, F_STRING, F_BYTES, F_BOOL, F_DYN, F_TYPE,
	F_TIMESTAMP, F_DURATION,
	F_GETFULLYEAR, F_GETMONTH, F_GETDATE, F_GETDAYOFMONTH,
	F_GETDAYOFWEEK, F_GETDAYOFYEAR, F_GETHOURS, F_GETMINUTES,
	F_GETSECONDS, F_GETMILLISECONDS
} cel_fn;

typedef struct cel_node {
	uint8_t kind;
	uint8_t op;
	uint8_t root;		/* leading '.' on an identifier */
	uint8_t recv;		/* N_CALL with a receiver */
	uint16_t depth;
	int pos;		/* byte offset of the node in the source */
	int slot;
	const char *name;
	size_t name_len;
	struct cel_node **a;
	size_t n;
	alyx__cel_val lit;
	void *re;		/* constant pattern of matches() (pcre2_code) */
} cel_node;

struct alyx__cel_prog {
	alyx__cel_run mem;	/* owns nodes, literals, names */
	char *src;
	size_t len;
	cel_node *root;
	int n_locals;		/* comprehension nesting depth */
	void **regexes;		/* compiled constant patterns to free */
	size_t n_regexes, cap_regexes;
};

/* Function name -> id (F_UNKNOWN when not built in). */
cel_fn cel_fn_lookup(const char *name, size_t n);

/* The evaluator's entry for function calls (funcs.c). */
typedef struct cel_ectx cel_ectx;
alyx__cel_val cel_call(cel_ectx *x, const cel_node *n, alyx__cel_val *args,
		       size_t nargs);
alyx__cel_val cel_errorf(alyx__cel_run *r, int pos, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

struct cel_ectx {
	alyx__cel_run *r;
	const alyx__cel_val *vars;
	const alyx__cel_prog *p;
};

/* Evaluates one subtree (which must not use comprehension variables
 * bound outside it). */
alyx__cel_val cel_eval_node(const alyx__cel_prog *p, const cel_node *n,
			    const alyx__cel_val *vars, alyx__cel_run *r);
/* Compare two values of comparable types: sets *c to -1/0/1; returns
 * false if the types do not compare (or NaN is involved: *c = 2). */
bool cel_compare(const alyx__cel_val *a, const alyx__cel_val *b, int *c);
/* Map lookup with numeric key equivalence; NULL if absent. */
const alyx__cel_val *cel_map_get(const alyx__cel_val *m,
				 const alyx__cel_val *key);
const alyx__cel_val *cel_map_field(const alyx__cel_val *m, const char *name,
				   size_t n);
/* Compile a pcre2 pattern (RE2 syntax translated as far as possible). */
void *cel_regex_compile(const char *pat, size_t n, char *why, size_t whylen);
void cel_regex_free(void *re);
int cel_regex_match(void *re, const char *s, size_t n);	/* 1, 0, -1 err */

/* Time zones (tz.c): offset in seconds east of UTC at UTC time t for a
 * zone name or "+HH:MM"/"-HH:MM"/"HH:MM".  False for an unknown zone. */
bool cel_tz_offset(const char *name, size_t n, int64_t t, int32_t *off);

/* Civil date from days since 1970-01-01 and back. */
void cel_civil(int64_t days, int64_t *y, int *m, int *d);
int64_t cel_days(int64_t y, int m, int d);

#define CEL_TS_MIN (-62135596800LL)	/* 0001-01-01T00:00:00Z */
#define CEL_TS_MAX (253402300799LL)	/* 9999-12-31T23:59:59Z */

/* ---- Alyx rules ---- */
typedef struct rule_field {
	char *name;
	alyx__type type;
} rule_field;

struct rule_memo;
void alyx__rule_memo_free(struct alyx__rule *r);

struct alyx__rule {
	alyx__cel_prog *prog;
	rule_field *fields;	/* copy of the collection's field types */
	size_t n_fields;
	bool typed;
	/* The doc fields the rule reads (doc.<name> / has(doc.<name>)), with
	 * their schema type (-1: not in the schema), so evaluation converts
	 * only those; doc_whole when doc is used in any other way. */
	rule_field *used;	/* type -1 = untyped */
	size_t n_used;
	bool doc_whole;
	bool uses_request;	/* the rule reads `request` */
	bool always;		/* the rule is the literal `true` */
	/* Push-down translations already made, by collection and auth, for
	 * calls without a request or rules that do not read it (sql.c): a
	 * signed-in user's requests translate once while the rule (the
	 * schema) lives. */
	pthread_mutex_t memo_mu;
	struct rule_memo *memo;	/* RULE_MEMO_SLOTS entries, or NULL */
	unsigned memo_next;
};

const alyx__field *cel_coll_field(const alyx__collection *c,
				  const char *name);

#endif
