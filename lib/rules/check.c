/*
 * check.c - the schema check of an Alyx rule: doc fields must exist in the
 * collection, auth/request fields must be known, comparisons must not mix
 * clearly incompatible types, and a rule whose type is known must be a
 * bool.  A light static typing: a node's type is known for literals,
 * typed variables' fields and functions with a fixed result, else unknown
 * (dyn) and accepted.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rules/rules-int.h"

#define DYN (-1)

typedef struct checker {
	const alyx__rule *r;
	const alyx__collection *c;
	alyx__err *err;
	int failed;
} checker;

static void fail(checker *k, const cel_node *n, const char *field,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void fail(checker *k, const cel_node *n, const char *field,
		 const char *fmt, ...)
{
	char msg[300];
	va_list ap;
	int line, col;
	size_t len;
	const char *src = alyx__cel_prog_src(k->r->prog, &len);
	alyx_buf d;

	if (k->failed++)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	alyx__cel_linecol(src, len, n->pos, &line, &col);
	alyx__buf_init(&d, 1024);
	alyx__buf_addf(&d, "{\"line\":%d,\"column\":%d", line, col);
	if (field) {
		alyx__buf_adds(&d, ",\"field\":");
		alyx__json_strz(&d, field);
	}
	alyx__buf_addc(&d, '}');
	alyx__err_setd(k->err, ALYX_E_RULE, alyx__buf_take(&d), "%d:%d: %s",
		       line, col, msg);
}

static int schema_kind(alyx__type t)
{
	switch (t) {
	case ALYX_T_UUID:
	case ALYX_T_STRING:
	case ALYX_T_TEXT:
		return ALYX_CEL_STRING;
	case ALYX_T_INT:
		return ALYX_CEL_INT;
	case ALYX_T_FLOAT:
		return ALYX_CEL_DOUBLE;
	case ALYX_T_BOOL:
		return ALYX_CEL_BOOL;
	case ALYX_T_TIMESTAMP:
		return ALYX_CEL_TIMESTAMP;
	case ALYX_T_BLOB:
		return ALYX_CEL_BYTES;
	case ALYX_T_JSON:
		return DYN;
	}
	return DYN;
}

static bool is_var(const cel_node *n, int slot)
{
	return n->kind == N_VAR && n->slot == slot;
}

static const char *kind_name(int k)
{
	return k == DYN ? "dyn" : alyx__cel_type_name((alyx__cel_kind)k);
}

static bool numeric(int k)
{
	return k == ALYX_CEL_INT || k == ALYX_CEL_UINT || k == ALYX_CEL_DOUBLE;
}

static int type_of(checker *k, const cel_node *n);

/* Type of a field selected from auth/doc/request; reports unknown ones. */
static int select_type(checker *k, const cel_node *n)
{
	const cel_node *b = n->a[0];
	char name[128];

	snprintf(name, sizeof(name), "%.*s", (int)n->name_len, n->name);
	if (is_var(b, ALYX_RULE_VAR_DOC)) {
		const alyx__field *f = cel_coll_field(k->c, name);
		if (!f) {
			fail(k, n, name,
			     "unknown field '%s' in collection '%s'", name,
			     k->c->name ? k->c->name : "?");
			return DYN;
		}
		return schema_kind(f->type);
	}
	if (is_var(b, ALYX_RULE_VAR_AUTH)) {
		if (!strcmp(name, "id") || !strcmp(name, "email") ||
		    !strcmp(name, "role"))
			return ALYX_CEL_STRING;
		if (!strcmp(name, "verified"))
			return ALYX_CEL_BOOL;
		if (!strcmp(name, "metadata"))
			return ALYX_CEL_MAP;
		fail(k, n, name,
		     "unknown auth field '%s' (auth has id, email, role, "
		     "verified, metadata)", name);
		return DYN;
	}
	if (is_var(b, ALYX_RULE_VAR_REQUEST)) {
		if (!strcmp(name, "method") || !strcmp(name, "ip"))
			return ALYX_CEL_STRING;
		if (!strcmp(name, "time"))
			return ALYX_CEL_TIMESTAMP;
		if (!strcmp(name, "body"))
			return DYN;
		fail(k, n, name,
		     "unknown request field '%s' (request has method, ip, "
		     "time, body)", name);
		return DYN;
	}
	type_of(k, b);
	return DYN;
}

static void compat(checker *k, const cel_node *n, int op, const cel_node *l,
		   int lt, const cel_node *r, int rt)
{
	bool eq = op == OP_EQ || op == OP_NE;

	if (lt == DYN || rt == DYN || lt == rt)
		return;
	if (numeric(lt) && numeric(rt))
		return;
	if (eq && (lt == ALYX_CEL_NULL || rt == ALYX_CEL_NULL))
		return;
	const cel_node *f = l->kind == N_SELECT ? l : r;
	char name[128];
	snprintf(name, sizeof(name), "%.*s", (int)f->name_len, f->name);
	fail(k, n, f->kind == N_SELECT ? name : NULL,
	     "cannot compare %s with %s", kind_name(lt), kind_name(rt));
}

static int type_of(checker *k, const cel_node *n)
{
	int lt, rt;

	if (k->failed)
		return DYN;
	switch ((cel_nkind)n->kind) {
	case N_LIT:
		return n->lit.k;
	case N_VAR:
		return n->slot == ALYX_RULE_VAR_DOC ? ALYX_CEL_MAP : DYN;
	case N_UNDECL:
	case N_IDENT:
		fail(k, n, NULL, "undeclared reference to '%.*s' (rules see "
		     "auth, doc and request)", (int)n->name_len, n->name);
		return DYN;
	case N_SELECT:
		return select_type(k, n);
	case N_HAS:
		select_type(k, n);
		return ALYX_CEL_BOOL;
	case N_NOT:
	case N_AND:
	case N_OR:
		for (size_t i = 0; i < n->n; i++) {
			int t = type_of(k, n->a[i]);
			if (t != DYN && t != ALYX_CEL_BOOL)
				fail(k, n->a[i], NULL,
				     "operand of a logical operator is %s, "
				     "not bool", kind_name(t));
		}
		return ALYX_CEL_BOOL;
	case N_BIN:
		lt = type_of(k, n->a[0]);
		rt = type_of(k, n->a[1]);
		switch (n->op) {
		case OP_EQ: case OP_NE: case OP_LT: case OP_LE: case OP_GT:
		case OP_GE:
			compat(k, n, n->op, n->a[0], lt, n->a[1], rt);
			return ALYX_CEL_BOOL;
		case OP_IN:
			if (n->a[1]->kind == N_LIST)
				for (size_t i = 0; i < n->a[1]->n; i++)
					compat(k, n, OP_EQ, n->a[0], lt,
					       n->a[1]->a[i],
					       type_of(k, n->a[1]->a[i]));
			return ALYX_CEL_BOOL;
		default:
			if (lt != DYN && lt == rt)
				return lt == ALYX_CEL_TIMESTAMP ?
					       (n->op == OP_SUB ?
							ALYX_CEL_DURATION :
							DYN) :
					       lt;
			return DYN;
		}
	case N_CALL:
		for (size_t i = 0; i < n->n; i++)
			type_of(k, n->a[i]);
		switch (n->slot) {
		case F_SIZE: case F_INT: case F_GETFULLYEAR: case F_GETMONTH:
		case F_GETDATE: case F_GETDAYOFMONTH: case F_GETDAYOFWEEK:
		case F_GETDAYOFYEAR: case F_GETHOURS: case F_GETMINUTES:
		case F_GETSECONDS: case F_GETMILLISECONDS:
			return ALYX_CEL_INT;
		case F_UINT: return ALYX_CEL_UINT;
		case F_DOUBLE: return ALYX_CEL_DOUBLE;
		case F_STRING: return ALYX_CEL_STRING;
		case F_BYTES: return ALYX_CEL_BYTES;
		case F_BOOL: case F_CONTAINS: case F_STARTSWITH:
		case F_ENDSWITH: case F_MATCHES:
			return ALYX_CEL_BOOL;
		case F_TIMESTAMP: return ALYX_CEL_TIMESTAMP;
		case F_DURATION: return ALYX_CEL_DURATION;
		case F_TYPE: return ALYX_CEL_TYPE;
		case F_UNKNOWN:
			fail(k, n, NULL, "unknown function '%.*s'",
			     (int)n->name_len, n->name);
			return DYN;
		default:
			return DYN;
		}
	case N_COMPR:
		type_of(k, n->a[0]);
		for (size_t i = 1; i < n->n; i++)
			type_of(k, n->a[i]);
		return n->op <= M_EXISTS_ONE ? ALYX_CEL_BOOL : ALYX_CEL_LIST;
	case N_COND:
		type_of(k, n->a[0]);
		lt = type_of(k, n->a[1]);
		rt = type_of(k, n->a[2]);
		return lt == rt ? lt : DYN;
	case N_LIST:
	case N_MAP:
		for (size_t i = 0; i < n->n; i++)
			type_of(k, n->a[i]);
		return n->kind == N_LIST ? ALYX_CEL_LIST : ALYX_CEL_MAP;
	default:
		for (size_t i = 0; i < n->n; i++)
			type_of(k, n->a[i]);
		return DYN;
	}
}

int alyx__rule_check(const alyx__rule *r, const alyx__collection *c,
		     alyx__err *err)
{
	checker k = {r, c, err, 0};
	const cel_node *root = r->prog->root;

	if (!c)
		return alyx__err_set(err, ALYX_E_MISUSE, NULL,
				     "no collection to check the rule against");
	int t = type_of(&k, root);

	if (!k.failed && t != DYN && t != ALYX_CEL_BOOL)
		fail(&k, root, NULL, "a rule must be a bool expression, this "
		     "one is %s", kind_name(t));
	return k.failed ? ALYX_E_RULE : ALYX_OK;
}
