/*
 * sql.c - SQL push-down of read rules.
 *
 * With auth and request known, every subtree that does not mention doc is
 * evaluated to a constant (possibly an error).  What remains is translated
 * into two SQL conditions per boolean node: T, the rows where the node is
 * true, and F, the rows where it is false (a row where it is an error or
 * not a bool is in neither).  Then
 *   T(a || b) = T(a) OR T(b)     F(a || b) = F(a) AND F(b)
 *   T(a && b) = T(a) AND T(b)    F(a && b) = F(a) OR F(b)
 *   T(!a) = F(a)                 F(!a) = T(a)
 * which is exactly CEL's commutative error absorption, and leaves compare
 * a column with a constant using the storage forms of doc.h (bool 0/1,
 * timestamps as fixed-width ISO text, so text order is time order), with
 * CEL's null semantics (`x == null` is IS NULL; `null < 1` is an error, in
 * neither T nor F).  A subtree that cannot be translated becomes T = F =
 * "1" and marks the result inexact: every combination above is monotone,
 * so the result is still a superset of the allowed rows.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules/rules-int.h"

/* Placeholders are written as \x01<bind index>\x02 while building and
 * become '?' (renumbered in order of appearance) at the end. */
#define PH_OPEN '\x01'
#define PH_CLOSE '\x02'

static void vfree(alyx__value *v)
{
	if (v->kind == ALYX_V_TEXT || v->kind == ALYX_V_BLOB)
		alyx__free(v->s);
	v->s = NULL;
	v->kind = ALYX_V_NULL;
}

static int vcopy(alyx__value *dst, const alyx__value *src)
{
	*dst = *src;
	if (src->kind == ALYX_V_TEXT || src->kind == ALYX_V_BLOB) {
		dst->s = alyx__malloc(src->n + 1);
		if (!dst->s) {
			dst->kind = ALYX_V_NULL;
			return ALYX_E_NOMEM;
		}
		memcpy(dst->s, src->s, src->n);
		dst->s[src->n] = 0;
	}
	return ALYX_OK;
}

typedef struct px {
	const alyx__rule *r;
	const alyx__collection *c;
	const alyx__cel_val *vars;
	alyx__cel_run *run;
	alyx__value *binds;
	size_t nb, cap;
	bool nomem;
	bool exact;
} px;

typedef struct cond {
	char *t, *f;
} cond;

static char *dup(px *x, const char *s)
{
	char *d = alyx__strdup(s);
	if (!d)
		x->nomem = true;
	return d;
}

static cond mkc(px *x, const char *t, const char *f)
{
	cond c = {dup(x, t), dup(x, f)};
	return c;
}

static void cfree(cond *c)
{
	alyx__free(c->t);
	alyx__free(c->f);
	c->t = c->f = NULL;
}

static cond inexact(px *x)
{
	x->exact = false;
	return mkc(x, "1", "1");
}

static bool is1(const char *s)
{
	return s && !strcmp(s, "1");
}

static bool is0(const char *s)
{
	return s && !strcmp(s, "0");
}

/* a AND b / a OR b with constant folding; takes both strings. */
static char *join(px *x, char *a, char *b, bool and)
{
	char *r;

	if (!a || !b) {
		alyx__free(a);
		alyx__free(b);
		x->nomem = true;
		return NULL;
	}
	if (and ? is1(a) : is0(a)) {
		alyx__free(a);
		return b;
	}
	if (and ? is1(b) : is0(b)) {
		alyx__free(b);
		return a;
	}
	if (and ? is0(a) : is1(a)) {
		alyx__free(b);
		return a;
	}
	if (and ? is0(b) : is1(b)) {
		alyx__free(a);
		return b;
	}
	r = alyx__asprintf("(%s %s %s)", a, and ? "AND" : "OR", b);
	alyx__free(a);
	alyx__free(b);
	if (!r)
		x->nomem = true;
	return r;
}

static char *sdup(px *x, const char *s)
{
	return s ? dup(x, s) : NULL;
}

/* ---- binds ---- */

static int add_bind(px *x, alyx__value v)
{
	if (x->nb == x->cap) {
		size_t nc = x->cap ? x->cap * 2 : 8;
		alyx__value *nv = alyx__realloc(x->binds, nc * sizeof(*nv));
		if (!nv) {
			vfree(&v);
			x->nomem = true;
			return -1;
		}
		x->binds = nv;
		x->cap = nc;
	}
	x->binds[x->nb] = v;
	return (int)x->nb++;
}

static int bind_int(px *x, int64_t i)
{
	alyx__value v = {.kind = ALYX_V_INT, .i = i};
	return add_bind(x, v);
}

static int bind_float(px *x, double d)
{
	alyx__value v = {.kind = ALYX_V_FLOAT, .f = d};
	return add_bind(x, v);
}

static int bind_text(px *x, const char *s, size_t n)
{
	alyx__value v = {.kind = ALYX_V_TEXT, .n = n};
	v.s = alyx__strndup(s, n);
	if (!v.s) {
		x->nomem = true;
		return -1;
	}
	return add_bind(x, v);
}

/* ---- leaves ---- */

static bool uses_doc(const cel_node *n)
{
	if (n->kind == N_VAR && n->slot == ALYX_RULE_VAR_DOC)
		return true;
	for (size_t i = 0; i < n->n; i++)
		if (n->a[i] && uses_doc(n->a[i]))
			return true;
	return false;
}

/* doc.<name> -> the field, or NULL (then *unknown says whether it names
 * no field at all, which makes it an error when evaluated). */
static const alyx__field *doc_field(px *x, const cel_node *n, bool *unknown)
{
	char name[128];

	*unknown = false;
	if (n->kind != N_SELECT || n->a[0]->kind != N_VAR ||
	    n->a[0]->slot != ALYX_RULE_VAR_DOC)
		return NULL;
	snprintf(name, sizeof(name), "%.*s", (int)n->name_len, n->name);
	const alyx__field *f = cel_coll_field(x->c, name);
	*unknown = f == NULL;
	return f;
}



typedef enum fk { FK_STR, FK_INT, FK_FLOAT, FK_BOOL, FK_TS, FK_OTHER } fk;

static fk field_kind(alyx__type t)
{
	switch (t) {
	case ALYX_T_UUID:
	case ALYX_T_STRING:
	case ALYX_T_TEXT:
		return FK_STR;
	case ALYX_T_INT:
		return FK_INT;
	case ALYX_T_FLOAT:
		return FK_FLOAT;
	case ALYX_T_BOOL:
		return FK_BOOL;
	case ALYX_T_TIMESTAMP:
		return FK_TS;
	default:
		return FK_OTHER;
	}
}

#define EXACT_INT 9007199254740992.0	/* 2^53 */

/* Binds constant v for a comparison with a column of kind k.
 * Returns the bind index, -2 when v can never compare equal / ordered
 * meaningfully with the column (type mismatch), -3 when the comparison
 * is outside what translates exactly, -1 on NOMEM. */
static int bind_for(px *x, fk k, const alyx__cel_val *v)
{
	switch (k) {
	case FK_STR:
		if (v->k != ALYX_CEL_STRING)
			return -2;
		return bind_text(x, v->v.s, v->n);
	case FK_BOOL:
		if (v->k != ALYX_CEL_BOOL)
			return -2;
		return bind_int(x, v->v.b);
	case FK_TS: {
		if (v->k != ALYX_CEL_TIMESTAMP)
			return -2;
		if (v->ns % 1000000)
			return -3;
		char iso[25];
		alyx__iso8601_ms(v->v.i * 1000 + v->ns / 1000000, iso);
		return bind_text(x, iso, 24);
	}
	case FK_INT:
	case FK_FLOAT:
		if (v->k == ALYX_CEL_INT) {
			if (k == FK_FLOAT && fabs((double)v->v.i) > EXACT_INT)
				return -3;
			return k == FK_INT ? bind_int(x, v->v.i) :
					     bind_float(x, (double)v->v.i);
		}
		if (v->k == ALYX_CEL_UINT) {
			if ((double)v->v.u > EXACT_INT)
				return -3;
			return k == FK_INT ? bind_int(x, (int64_t)v->v.u) :
					     bind_float(x, (double)v->v.u);
		}
		if (v->k == ALYX_CEL_DOUBLE) {
			if (isnan(v->v.d) || fabs(v->v.d) >= EXACT_INT)
				return -3;
			return bind_float(x, v->v.d);
		}
		return -2;
	default:
		return -3;
	}
}

static const char *sql_op(int op)
{
	switch (op) {
	case OP_LT: return "<";
	case OP_LE: return "<=";
	case OP_GT: return ">";
	default: return ">=";
	}
}

static int neg_op(int op)
{
	switch (op) {
	case OP_LT: return OP_GE;
	case OP_LE: return OP_GT;
	case OP_GT: return OP_LE;
	default: return OP_LT;
	}
}

static int flip_op(int op)
{
	switch (op) {
	case OP_LT: return OP_GT;
	case OP_LE: return OP_GE;
	case OP_GT: return OP_LT;
	case OP_GE: return OP_LE;
	default: return op;
	}
}

static cond fmt2(px *x, const char *tf, const char *ff, const char *col,
		 int b)
{
	cond c;
	c.t = alyx__asprintf(tf, col, PH_OPEN, b, PH_CLOSE);
	c.f = alyx__asprintf(ff, col, PH_OPEN, b, PH_CLOSE);
	if (!c.t || !c.f)
		x->nomem = true;
	return c;
}

/*
 * <col> (op) v, where col is a column ("title") of kind k, or an
 * expression over one (length("title")) when expr is set: then a NULL
 * column is an error in CEL (size(null)), not a null value.
 */
static cond leaf_col(px *x, const char *col, fk k, bool expr, int op,
		     const alyx__cel_val *v)
{
	bool eq = op == OP_EQ || op == OP_NE;
	char nn[200];
	cond c;
	int b;

	if (k == FK_OTHER)
		return inexact(x);
	snprintf(nn, sizeof(nn), "%s IS NOT NULL", col);
	if (v->k == ALYX_CEL_ERROR)
		return mkc(x, "0", "0");
	if (eq) {
		if (v->k == ALYX_CEL_NULL && expr) {
			c = mkc(x, "0", nn);
		} else if (v->k == ALYX_CEL_NULL) {
			c.t = alyx__asprintf("%s IS NULL", col);
			c.f = alyx__asprintf("%s IS NOT NULL", col);
			if (!c.t || !c.f)
				x->nomem = true;
		} else {
			b = bind_for(x, k, v);
			if (b == -3 && v->k == ALYX_CEL_DOUBLE &&
			    isnan(v->v.d))
				b = -2;		/* NaN equals nothing */
			if (b == -3 && v->k == ALYX_CEL_TIMESTAMP)
				b = -2;		/* stored at ms precision */
			if (b == -3)
				return inexact(x);
			if (b == -2)
				c = mkc(x, "0", expr ? nn : "1");
			else if (b < 0)
				c = mkc(x, "0", "0");
			else if (expr)
				c = fmt2(x, "%s = %c%d%c", "%s <> %c%d%c", col,
					 b);
			else
				c = fmt2(x, "%s IS %c%d%c", "%s IS NOT %c%d%c",
					 col, b);
		}
		if (op == OP_NE) {
			char *t = c.t;
			c.t = c.f;
			c.f = t;
		}
		return c;
	}
	/* ordering: null or a type mismatch is an error on every row */
	if (v->k == ALYX_CEL_NULL)
		return mkc(x, "0", "0");
	if (k == FK_INT && v->k == ALYX_CEL_UINT &&
	    v->v.u > (uint64_t)INT64_MAX) {
		/* every int is below it */
		bool below = op == OP_LT || op == OP_LE;
		return mkc(x, below ? nn : "0", below ? "0" : nn);
	}
	if ((k == FK_INT || k == FK_FLOAT) && v->k == ALYX_CEL_DOUBLE &&
	    isnan(v->v.d))
		return mkc(x, "0", nn);
	b = bind_for(x, k, v);
	if (b == -3)
		return inexact(x);
	if (b < 0)
		return mkc(x, "0", "0");
	char tf[32], ff[32];
	snprintf(tf, sizeof(tf), "%%s %s %%c%%d%%c", sql_op(op));
	snprintf(ff, sizeof(ff), "%%s %s %%c%%d%%c", sql_op(neg_op(op)));
	return fmt2(x, tf, ff, col, b);
}

/* doc.<f> (op) v */
static cond leaf(px *x, const alyx__field *f, int op, const alyx__cel_val *v)
{
	char col[80];

	snprintf(col, sizeof(col), "\"%s\"", f->name);
	return leaf_col(x, col, field_kind(f->type), false, op, v);
}

/* size(doc.<f>) for a string field: length() counts characters, as CEL
 * counts code points (stored text is valid UTF-8). */
static bool size_of_field(px *x, const cel_node *n, const alyx__field **f)
{
	bool unknown;

	if (n->kind != N_CALL || n->slot != F_SIZE || n->n != 1)
		return false;
	*f = doc_field(x, n->a[0], &unknown);
	return *f && field_kind((*f)->type) == FK_STR;
}

/* doc.<f>.startsWith/endsWith/contains(<constant>) on a string field. */
static cond string_test(px *x, const cel_node *n)
{
	bool unknown;
	const alyx__field *f = n->recv && n->n == 2 ?
				       doc_field(x, n->a[0], &unknown) :
				       NULL;
	char col[80];
	cond c;

	if (!f || field_kind(f->type) != FK_STR || uses_doc(n->a[1]))
		return inexact(x);
	snprintf(col, sizeof(col), "\"%s\"", f->name);
	alyx__cel_val v = cel_eval_node(x->r->prog, n->a[1], x->vars, x->run);
	if (v.k != ALYX_CEL_STRING)	/* no overload: an error on every row */
		return mkc(x, "0", "0");
	size_t chars = 0;
	for (size_t i = 0; i < v.n; i++)
		chars += ((unsigned char)v.v.s[i] & 0xC0) != 0x80;
	if (chars == 0) {	/* '' starts, ends and is in every string */
		char nn[100];
		snprintf(nn, sizeof(nn), "%s IS NOT NULL", col);
		return mkc(x, nn, "0");
	}
	int b = bind_text(x, v.v.s, v.n);
	if (b < 0)
		return mkc(x, "0", "0");
	if (n->slot == F_CONTAINS) {
		c.t = alyx__asprintf("instr(%s, %c%d%c) > 0", col, PH_OPEN, b,
				     PH_CLOSE);
		c.f = alyx__asprintf("instr(%s, %c%d%c) = 0", col, PH_OPEN, b,
				     PH_CLOSE);
	} else {
		char ex[120];
		if (n->slot == F_STARTSWITH)
			snprintf(ex, sizeof(ex), "substr(%s, 1, %zu)", col,
				 chars);
		else
			snprintf(ex, sizeof(ex), "substr(%s, -%zu)", col, chars);
		c.t = alyx__asprintf("%s = %c%d%c", ex, PH_OPEN, b, PH_CLOSE);
		c.f = alyx__asprintf("%s <> %c%d%c", ex, PH_OPEN, b, PH_CLOSE);
	}
	if (!c.t || !c.f)
		x->nomem = true;
	return c;
}

/* doc.<f> (op) doc.<g> */
static cond leaf2(px *x, const alyx__field *f, int op, const alyx__field *g)
{
	fk a = field_kind(f->type), b = field_kind(g->type);
	cond c;

	if (a == FK_OTHER || a != b)
		return inexact(x);
	if (op == OP_EQ || op == OP_NE) {
		c.t = alyx__asprintf("\"%s\" IS \"%s\"", f->name, g->name);
		c.f = alyx__asprintf("\"%s\" IS NOT \"%s\"", f->name, g->name);
		if (op == OP_NE) {
			char *t = c.t;
			c.t = c.f;
			c.f = t;
		}
	} else {
		c.t = alyx__asprintf("\"%s\" %s \"%s\"", f->name, sql_op(op),
				     g->name);
		c.f = alyx__asprintf("\"%s\" %s \"%s\"", f->name,
				     sql_op(neg_op(op)), g->name);
	}
	if (!c.t || !c.f)
		x->nomem = true;
	return c;
}

/* ---- the walk ---- */

static cond from_value(px *x, const alyx__cel_val *v)
{
	if (v->k != ALYX_CEL_BOOL)
		return mkc(x, "0", "0");
	return v->v.b ? mkc(x, "1", "0") : mkc(x, "0", "1");
}

static cond tr(px *x, const cel_node *n);

static cond compare(px *x, const cel_node *n)
{
	const cel_node *l = n->a[0], *r = n->a[1];
	bool lu, ru;
	const alyx__field *lf = doc_field(x, l, &lu),
			  *rf = doc_field(x, r, &ru);
	int op = n->op;

	if (lu || ru)	/* "no such key" on every row */
		return mkc(x, "0", "0");
	if (op == OP_IN) {
		if (!lf || uses_doc(r))
			return inexact(x);
		alyx__cel_val v = cel_eval_node(x->r->prog, r, x->vars, x->run);
		if (v.k == ALYX_CEL_ERROR ||
		    (v.k != ALYX_CEL_LIST && v.k != ALYX_CEL_MAP))
			return mkc(x, "0", "0");
		cond acc = mkc(x, "0", "1");
		size_t step = v.k == ALYX_CEL_MAP ? 2 : 1;
		for (size_t i = 0; i < v.n && !x->nomem; i++) {
			cond e = leaf(x, lf, OP_EQ, &v.v.l[i * step]);
			acc.t = join(x, acc.t, e.t, false);
			acc.f = join(x, acc.f, e.f, true);
		}
		return acc;
	}
	if (lf && rf)
		return leaf2(x, lf, op, rf);
	if (rf && !uses_doc(l)) {
		const alyx__field *t = lf;
		lf = rf;
		rf = t;
		const cel_node *tn = l;
		l = r;
		r = tn;
		op = flip_op(op);
	}
	if (lf && !uses_doc(r)) {
		alyx__cel_val v = cel_eval_node(x->r->prog, r, x->vars, x->run);
		return leaf(x, lf, op, &v);
	}
	/* size(doc.f) (op) constant, either way round */
	const alyx__field *sf;
	if (op != OP_IN && size_of_field(x, r, &sf) && !uses_doc(l)) {
		const cel_node *tn = l;
		l = r;
		r = tn;
		op = flip_op(op);
	}
	if (op != OP_IN && size_of_field(x, l, &sf) && !uses_doc(r)) {
		char ex[100];
		alyx__cel_val v = cel_eval_node(x->r->prog, r, x->vars, x->run);
		snprintf(ex, sizeof(ex), "length(\"%s\")", sf->name);
		return leaf_col(x, ex, FK_INT, true, op, &v);
	}
	return inexact(x);
}

static cond tr(px *x, const cel_node *n)
{
	cond a, b, c;

	if (x->nomem)
		return (cond){NULL, NULL};
	if (!uses_doc(n)) {
		alyx__cel_val v = cel_eval_node(x->r->prog, n, x->vars, x->run);
		return from_value(x, &v);
	}
	switch (n->kind) {
	case N_AND:
	case N_OR: {
		bool and = n->kind == N_AND;
		a = tr(x, n->a[0]);
		b = tr(x, n->a[1]);
		c.t = join(x, a.t, b.t, and);
		c.f = join(x, a.f, b.f, !and);
		return c;
	}
	case N_NOT:
		a = tr(x, n->a[0]);
		c.t = a.f;
		c.f = a.t;
		return c;
	case N_COND: {
		cond k = tr(x, n->a[0]);
		a = tr(x, n->a[1]);
		b = tr(x, n->a[2]);
		char *kt2 = sdup(x, k.t), *kf2 = sdup(x, k.f);
		c.t = join(x, join(x, k.t, a.t, true), join(x, k.f, b.t, true),
			   false);
		c.f = join(x, join(x, kt2, a.f, true), join(x, kf2, b.f, true),
			   false);
		return c;
	}
	case N_BIN:
		if (n->op <= OP_IN)
			return compare(x, n);
		return inexact(x);
	case N_CALL:
		if (n->slot == F_STARTSWITH || n->slot == F_ENDSWITH ||
		    n->slot == F_CONTAINS)
			return string_test(x, n);
		return inexact(x);
	case N_SELECT: {
		bool unknown;
		const alyx__field *f = doc_field(x, n, &unknown);
		if (unknown)
			return mkc(x, "0", "0");
		if (f && f->type == ALYX_T_BOOL) {
			c.t = alyx__asprintf("\"%s\" = 1", f->name);
			c.f = alyx__asprintf("\"%s\" = 0", f->name);
			if (!c.t || !c.f)
				x->nomem = true;
			return c;
		}
		if (f && field_kind(f->type) != FK_OTHER)
			return mkc(x, "0", "0");	/* not a bool */
		return inexact(x);
	}
	case N_HAS:
		if (n->a[0]->kind == N_VAR &&
		    n->a[0]->slot == ALYX_RULE_VAR_DOC) {
			bool unknown;
			cel_node sel = *n;
			sel.kind = N_SELECT;
			doc_field(x, &sel, &unknown);
			/* rows always carry every field, null or not */
			return unknown ? mkc(x, "0", "1") : mkc(x, "1", "0");
		}
		return inexact(x);
	default:
		return inexact(x);
	}
}

/* Replaces the placeholder markers with '?' and orders the binds. */
static int finish(px *x, const char *t, alyx_buf *sql, alyx__value **binds,
		  size_t *n_binds)
{
	alyx__value *out = NULL;
	size_t no = 0;

	for (const char *p = t; *p; p++)
		no += *p == PH_OPEN;
	if (no) {
		out = alyx__calloc(no, sizeof(*out));
		if (!out)
			return ALYX_E_NOMEM;
	}
	no = 0;
	for (const char *p = t; *p; p++) {
		if (*p != PH_OPEN) {
			alyx__buf_addc(sql, *p);
			continue;
		}
		int idx = (int)strtol(p + 1, NULL, 10);
		while (*p && *p != PH_CLOSE)
			p++;
		alyx__buf_addc(sql, '?');
		if (vcopy(&out[no], &x->binds[idx])) {
			alyx__rule_binds_free(out, no);
			return ALYX_E_NOMEM;
		}
		no++;
	}
	if (sql->err) {
		alyx__rule_binds_free(out, no);
		return sql->err;
	}
	*binds = out;
	*n_binds = no;
	return ALYX_OK;
}

static int to_sql(const alyx__rule *r, const alyx__collection *c,
		  const cJSON *auth, const cJSON *request, alyx_buf *sql,
		  alyx__value **binds, size_t *n_binds, bool *exact,
		  alyx__err *err)
{
	alyx__cel_run run;
	alyx__cel_val vars[3];
	px x;
	cond res = {NULL, NULL};
	int rc;

	memset(&x, 0, sizeof(x));
	*binds = NULL;
	*n_binds = 0;
	if (exact)
		*exact = false;
	alyx__cel_run_init(&run);
	run.max_steps = ALYX_RULE_MAX_STEPS;
	rc = alyx__rule_auth_val(auth, &run, &vars[0]);
	vars[1] = alyx__cel_null();	/* never read: doc subtrees are
					 * translated, not evaluated */
	if (!rc)
		rc = alyx__rule_request_val(request, &run, &vars[2]);
	if (rc) {
		alyx__err_set(err, rc, NULL, "rule context too large");
		goto out;
	}
	x.r = r;
	x.c = c;
	x.vars = vars;
	x.run = &run;
	x.exact = true;
	res = tr(&x, r->prog->root);
	if (x.nomem || !res.t) {
		rc = alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
		goto out;
	}
	if (!x.exact && !exact) {
		rc = alyx__err_set(err, ALYX_E_UNSUPPORTED, NULL,
				   "rule cannot be pushed down to SQL");
		goto out;
	}
	rc = finish(&x, res.t, sql, binds, n_binds);
	if (rc) {
		alyx__err_set(err, rc, NULL, "push-down condition too large");
		goto out;
	}
	if (exact)
		*exact = x.exact;
out:
	for (size_t i = 0; i < x.nb; i++)
		vfree(&x.binds[i]);
	alyx__free(x.binds);
	cfree(&res);
	alyx__cel_run_free(&run);
	return rc;
}

void alyx__rule_binds_free(alyx__value *binds, size_t n)
{
	for (size_t i = 0; binds && i < n; i++)
		vfree(&binds[i]);
	alyx__free(binds);
}

/* ---- memo: translations by (collection, auth) ----
 * Without a request, a translation depends only on the rule, the
 * collection and auth, so the rule keeps the last RULE_MEMO_SLOTS of
 * them.  auth is compared whole (cJSON_Compare), never by a hash, so one
 * caller's condition can never serve another. */
#define RULE_MEMO_SLOTS 16

struct rule_memo {
	const alyx__collection *c;
	cJSON *auth;		/* a copy; NULL: anonymous */
	char *sql;
	alyx__value *binds;
	size_t n_binds;
	bool exact;
	bool used;
};

static void memo_clear(struct rule_memo *m)
{
	cJSON_Delete(m->auth);
	alyx__free(m->sql);
	alyx__rule_binds_free(m->binds, m->n_binds);
	memset(m, 0, sizeof(*m));
}

void alyx__rule_memo_free(alyx__rule *r)
{
	if (!r->memo)
		return;
	for (size_t i = 0; i < RULE_MEMO_SLOTS; i++)
		memo_clear(&r->memo[i]);
	alyx__free(r->memo);
	r->memo = NULL;
}

static const cJSON *auth_obj(const cJSON *auth)
{
	return cJSON_IsObject(auth) ? auth : NULL;
}

/* Copies n binds; false out of memory (nothing left allocated). */
static bool binds_copy(const alyx__value *src, size_t n, alyx__value **out)
{
	*out = NULL;
	if (!n)
		return true;
	*out = alyx__calloc(n, sizeof(**out));
	if (!*out)
		return false;
	for (size_t i = 0; i < n; i++)
		if (vcopy(&(*out)[i], &src[i])) {
			alyx__rule_binds_free(*out, i);
			*out = NULL;
			return false;
		}
	return true;
}

/* A memoized translation into sql/binds: 1 hit, 0 miss, -1 no memory. */
static int memo_get(alyx__rule *r, const alyx__collection *c,
		    const cJSON *auth, alyx_buf *sql, alyx__value **binds,
		    size_t *n_binds, bool *exact)
{
	int hit = 0;

	pthread_mutex_lock(&r->memo_mu);
	for (size_t i = 0; r->memo && i < RULE_MEMO_SLOTS; i++) {
		struct rule_memo *m = &r->memo[i];

		if (!m->used || m->c != c || (!m->auth) != (!auth) ||
		    (auth && !cJSON_Compare(m->auth, auth, true)))
			continue;
		alyx__buf_adds(sql, m->sql);
		if (sql->err || !binds_copy(m->binds, m->n_binds, binds)) {
			hit = -1;
			break;
		}
		*n_binds = m->n_binds;
		*exact = m->exact;
		hit = 1;
		break;
	}
	pthread_mutex_unlock(&r->memo_mu);
	return hit;
}

static void memo_put(alyx__rule *r, const alyx__collection *c,
		     const cJSON *auth, const char *sql,
		     const alyx__value *binds, size_t n_binds, bool exact)
{
	struct rule_memo m = {.c = c, .n_binds = n_binds, .exact = exact,
			      .used = true};

	m.sql = alyx__strdup(sql);
	m.auth = auth ? cJSON_Duplicate(auth, true) : NULL;
	if (!m.sql || (auth && !m.auth) ||
	    !binds_copy(binds, n_binds, &m.binds)) {
		m.n_binds = 0;
		memo_clear(&m);
		return;	/* no memory: just not remembered */
	}
	pthread_mutex_lock(&r->memo_mu);
	if (!r->memo)
		r->memo = alyx__calloc(RULE_MEMO_SLOTS, sizeof(*r->memo));
	if (r->memo) {
		struct rule_memo *slot = &r->memo[r->memo_next++ %
						   RULE_MEMO_SLOTS];

		memo_clear(slot);
		*slot = m;
		m.used = false;
	}
	pthread_mutex_unlock(&r->memo_mu);
	if (m.used)
		memo_clear(&m);
}

int alyx__rule_to_sql(const alyx__rule *r, const alyx__collection *c,
		      const cJSON *auth, const cJSON *request, alyx_buf *sql,
		      alyx__value **binds, size_t *n_binds, bool *exact,
		      alyx__err *err)
{
	/* The memo is the rule's own cache, not part of its meaning. */
	alyx__rule *w = (alyx__rule *)r;
	size_t mark = sql->len;
	int rc;

	*binds = NULL;
	*n_binds = 0;
	if ((request && r->uses_request) || !exact)
		return to_sql(r, c, auth, request, sql, binds, n_binds, exact,
			      err);
	auth = auth_obj(auth);
	switch (memo_get(w, c, auth, sql, binds, n_binds, exact)) {
	case 1:
		return ALYX_OK;
	case -1:
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	default:
		break;
	}
	rc = to_sql(r, c, auth, NULL, sql, binds, n_binds, exact, err);
	if (rc == ALYX_OK && !sql->err)
		memo_put(w, c, auth, sql->data + mark, *binds, *n_binds,
			 *exact);
	return rc;
}
