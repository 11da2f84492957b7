/*
 * eval.c - the tree-walking evaluator.
 *
 * Every node costs one step against the run's budget; values built during
 * evaluation come from the run's arena (capped by max_bytes), so nothing
 * is freed piecemeal and a small evaluation touches no allocator at all.
 * Recursion depth is bounded by the tree depth the parser allowed.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rules/rules-int.h"

static const alyx__cel_error err_nomem = {-1,
					  "evaluation memory limit exceeded"};

alyx__cel_val cel_errorf(alyx__cel_run *r, int pos, const char *fmt, ...)
{
	alyx__cel_val v = {.k = ALYX_CEL_ERROR};
	char tmp[300];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(tmp))
		n = sizeof(tmp) - 1;
	alyx__cel_error *e = alyx__cel_alloc(r, sizeof(*e) + (size_t)n + 1);
	if (!e) {
		v.v.e = &err_nomem;
		return v;
	}
	char *m = (char *)(e + 1);
	memcpy(m, tmp, (size_t)n + 1);
	e->pos = pos;
	e->msg = m;
	v.v.e = e;
	return v;
}

#define ISERR(v) ((v).k == ALYX_CEL_ERROR)

static alyx__cel_val ev(cel_ectx *x, const cel_node *n);

/* Adds k steps for work proportional to a value's size (scans of lists
 * and maps, element-wise equality); true when the budget is exceeded. */
static inline bool charge(cel_ectx *x, size_t k)
{
	x->r->steps += k;
	return x->r->steps > x->r->max_steps;
}

static alyx__cel_val cost_error(cel_ectx *x, const cel_node *n)
{
	return cel_errorf(x->r, n->pos, "evaluation cost limit exceeded");
}

/* Literals and variables without a recursive call (the hot path). */
static inline alyx__cel_val ev_fast(cel_ectx *x, const cel_node *n)
{
	if (n->kind == N_LIT)
		return n->lit;
	if (n->kind == N_VAR && x->vars)
		return x->vars[n->slot];
	if (n->kind == N_SELECT && n->a[0]->kind == N_VAR && x->vars &&
	    x->vars[n->a[0]->slot].k == ALYX_CEL_MAP) {
		/* var.field, found: no recursion (misses take the slow path
		 * for the error) */
		const alyx__cel_val *v = cel_map_field(
			&x->vars[n->a[0]->slot], n->name, n->name_len);
		if (v) {
			x->r->steps++;
			return *v;
		}
	}
	return ev(x, n);
}

static alyx__cel_val no_overload(cel_ectx *x, const cel_node *n,
				 const char *op, const alyx__cel_val *a,
				 const alyx__cel_val *b)
{
	if (b)
		return cel_errorf(x->r, n->pos,
				  "no such overload: %s applied to (%s, %s)",
				  op, alyx__cel_type_name(a->k),
				  alyx__cel_type_name(b->k));
	return cel_errorf(x->r, n->pos, "no such overload: %s applied to (%s)",
			  op, alyx__cel_type_name(a->k));
}

static const char *op_name(int op)
{
	static const char *const names[] = {"==", "!=", "<", "<=", ">", ">=",
					    "in", "+", "-", "*", "/", "%"};
	return names[op];
}

/* ---- time arithmetic ---- */

static alyx__cel_val mk_ts(cel_ectx *x, const cel_node *n, __int128 total)
{
	__int128 s = total / 1000000000, r = total % 1000000000;

	if (r < 0) {
		r += 1000000000;
		s--;
	}
	if (s < CEL_TS_MIN || s > CEL_TS_MAX)
		return cel_errorf(x->r, n->pos, "timestamp out of range");
	return alyx__cel_timestamp((int64_t)s, (int32_t)r);
}

static alyx__cel_val mk_dur(cel_ectx *x, const cel_node *n, __int128 total)
{
	__int128 s = total / 1000000000, r = total % 1000000000;

	/* int64 nanoseconds, as cel-go (about +-292 years) */
	if (total > INT64_MAX || total < -(__int128)INT64_MAX)
		return cel_errorf(x->r, n->pos, "duration out of range");
	return alyx__cel_duration((int64_t)s, (int32_t)r);
}

static __int128 nanos(const alyx__cel_val *v)
{
	return (__int128)v->v.i * 1000000000 + v->ns;
}

static alyx__cel_val concat(cel_ectx *x, const cel_node *n,
			    const alyx__cel_val *a, const alyx__cel_val *b)
{
	size_t total = a->n + b->n;
	alyx__cel_val r = *a;

	if (a->k == ALYX_CEL_LIST) {
		if (!a->n)
			return *b;
		if (!b->n)
			return *a;
		alyx__cel_val *l = alyx__cel_alloc(x->r, total * sizeof(*l));
		if (!l)
			return cel_errorf(x->r, n->pos,
					  "list too large: memory limit");
		memcpy(l, a->v.l, a->n * sizeof(*l));
		memcpy(l + a->n, b->v.l, b->n * sizeof(*l));
		r.v.l = l;
	} else {
		if (!a->n)
			return *b;
		if (!b->n)
			return *a;
		char *s = alyx__cel_alloc(x->r, total + 1);
		if (!s)
			return cel_errorf(x->r, n->pos,
					  "string too large: memory limit");
		memcpy(s, a->v.s, a->n);
		memcpy(s + a->n, b->v.s, b->n);
		s[total] = 0;
		r.v.s = s;
	}
	r.n = total;
	return r;
}

static alyx__cel_val arith(cel_ectx *x, const cel_node *n, int op,
			   const alyx__cel_val *a, const alyx__cel_val *b)
{
	if (a->k == ALYX_CEL_INT && b->k == ALYX_CEL_INT) {
		int64_t r, p = a->v.i, q = b->v.i;
		bool over = false;
		switch (op) {
		case OP_ADD: over = __builtin_add_overflow(p, q, &r); break;
		case OP_SUB: over = __builtin_sub_overflow(p, q, &r); break;
		case OP_MUL: over = __builtin_mul_overflow(p, q, &r); break;
		case OP_DIV:
		case OP_MOD:
			if (q == 0)
				return cel_errorf(x->r, n->pos,
						  op == OP_DIV ?
							  "division by zero" :
							  "modulus by zero");
			if (p == INT64_MIN && q == -1) {
				over = true;
				r = 0;
				break;
			}
			r = op == OP_DIV ? p / q : p % q;
			break;
		default: r = 0;
		}
		if (over)
			return cel_errorf(x->r, n->pos,
					  "integer overflow in '%s'",
					  op_name(op));
		return alyx__cel_int(r);
	}
	if (a->k == ALYX_CEL_UINT && b->k == ALYX_CEL_UINT) {
		uint64_t r, p = a->v.u, q = b->v.u;
		bool over = false;
		switch (op) {
		case OP_ADD: over = __builtin_add_overflow(p, q, &r); break;
		case OP_SUB: over = __builtin_sub_overflow(p, q, &r); break;
		case OP_MUL: over = __builtin_mul_overflow(p, q, &r); break;
		case OP_DIV:
		case OP_MOD:
			if (q == 0)
				return cel_errorf(x->r, n->pos,
						  op == OP_DIV ?
							  "division by zero" :
							  "modulus by zero");
			r = op == OP_DIV ? p / q : p % q;
			break;
		default: r = 0;
		}
		if (over)
			return cel_errorf(x->r, n->pos,
					  "unsigned integer overflow in '%s'",
					  op_name(op));
		return alyx__cel_uint(r);
	}
	if (a->k == ALYX_CEL_DOUBLE && b->k == ALYX_CEL_DOUBLE) {
		double p = a->v.d, q = b->v.d;
		switch (op) {
		case OP_ADD: return alyx__cel_double(p + q);
		case OP_SUB: return alyx__cel_double(p - q);
		case OP_MUL: return alyx__cel_double(p * q);
		case OP_DIV: return alyx__cel_double(p / q);
		default: break;
		}
		return no_overload(x, n, op_name(op), a, b);
	}
	if (op == OP_ADD && a->k == b->k &&
	    (a->k == ALYX_CEL_STRING || a->k == ALYX_CEL_BYTES ||
	     a->k == ALYX_CEL_LIST))
		return concat(x, n, a, b);
	if (a->k == ALYX_CEL_TIMESTAMP && b->k == ALYX_CEL_DURATION &&
	    (op == OP_ADD || op == OP_SUB))
		return mk_ts(x, n, op == OP_ADD ? nanos(a) + nanos(b) :
						  nanos(a) - nanos(b));
	if (a->k == ALYX_CEL_DURATION && b->k == ALYX_CEL_TIMESTAMP &&
	    op == OP_ADD)
		return mk_ts(x, n, nanos(a) + nanos(b));
	if (a->k == ALYX_CEL_DURATION && b->k == ALYX_CEL_DURATION &&
	    (op == OP_ADD || op == OP_SUB))
		return mk_dur(x, n, op == OP_ADD ? nanos(a) + nanos(b) :
						   nanos(a) - nanos(b));
	if (a->k == ALYX_CEL_TIMESTAMP && b->k == ALYX_CEL_TIMESTAMP &&
	    op == OP_SUB)
		return mk_dur(x, n, nanos(a) - nanos(b));
	return no_overload(x, n, op_name(op), a, b);
}

static alyx__cel_val binop(cel_ectx *x, const cel_node *n,
			   const alyx__cel_val *a, const alyx__cel_val *b)
{
	int c;

	if ((n->op == OP_EQ || n->op == OP_NE) && a->k == ALYX_CEL_STRING &&
	    b->k == ALYX_CEL_STRING) {
		bool eq = a->n == b->n && (!a->n || !memcmp(a->v.s, b->v.s,
							    a->n));
		return alyx__cel_bool(eq == (n->op == OP_EQ));
	}
	if ((a->k == ALYX_CEL_LIST || a->k == ALYX_CEL_MAP) &&
	    charge(x, a->n / 4))
		return cost_error(x, n);
	if ((b->k == ALYX_CEL_LIST || b->k == ALYX_CEL_MAP) &&
	    charge(x, b->n / 4))
		return cost_error(x, n);
	switch (n->op) {
	case OP_EQ:
		return alyx__cel_bool(alyx__cel_equal(a, b));
	case OP_NE:
		return alyx__cel_bool(!alyx__cel_equal(a, b));
	case OP_LT:
	case OP_LE:
	case OP_GT:
	case OP_GE:
		if (!cel_compare(a, b, &c))
			return no_overload(x, n, op_name(n->op), a, b);
		if (c == 2)
			return alyx__cel_bool(false);
		switch (n->op) {
		case OP_LT: return alyx__cel_bool(c < 0);
		case OP_LE: return alyx__cel_bool(c <= 0);
		case OP_GT: return alyx__cel_bool(c > 0);
		default: return alyx__cel_bool(c >= 0);
		}
	case OP_IN:
		if (b->k == ALYX_CEL_LIST) {
			for (size_t i = 0; i < b->n; i++)
				if (alyx__cel_equal(a, &b->v.l[i]))
					return alyx__cel_bool(true);
			return alyx__cel_bool(false);
		}
		if (b->k == ALYX_CEL_MAP)
			return alyx__cel_bool(cel_map_get(b, a) != NULL);
		return no_overload(x, n, "in", a, b);
	default:
		return arith(x, n, n->op, a, b);
	}
}

/* An integral index from int, uint or an integral double. */
static bool as_index(const alyx__cel_val *v, int64_t *out)
{
	switch (v->k) {
	case ALYX_CEL_INT:
		*out = v->v.i;
		return true;
	case ALYX_CEL_UINT:
		*out = v->v.u > (uint64_t)INT64_MAX ? -1 : (int64_t)v->v.u;
		return true;
	case ALYX_CEL_DOUBLE:
		if (v->v.d != trunc(v->v.d) || fabs(v->v.d) >= 9.2e18)
			return false;
		*out = (int64_t)v->v.d;
		return true;
	default:
		return false;
	}
}

static alyx__cel_val index_op(cel_ectx *x, const cel_node *n,
			      const alyx__cel_val *a, const alyx__cel_val *b)
{
	if (a->k == ALYX_CEL_LIST) {
		int64_t i;
		if (!as_index(b, &i))
			return no_overload(x, n, "_[_]", a, b);
		if (i < 0 || (uint64_t)i >= a->n)
			return cel_errorf(x->r, n->pos,
					  "index out of range: %lld",
					  (long long)i);
		return a->v.l[i];
	}
	if (a->k == ALYX_CEL_MAP) {
		const alyx__cel_val *v = NULL;
		if (charge(x, a->n / 16))
			return cost_error(x, n);
		switch (b->k) {
		case ALYX_CEL_BOOL:
		case ALYX_CEL_INT:
		case ALYX_CEL_UINT:
		case ALYX_CEL_DOUBLE:
		case ALYX_CEL_STRING:
			v = cel_map_get(a, b);
			break;
		default:
			break;
		}
		if (!v) {
			alyx_buf kb;
			alyx__buf_init(&kb, 200);
			alyx__cel_val_format(&kb, b);
			alyx__cel_val e = cel_errorf(
				x->r, n->pos, "no such key: %s",
				kb.data ? kb.data : "");
			alyx__buf_free(&kb);
			return e;
		}
		return *v;
	}
	return no_overload(x, n, "_[_]", a, b);
}

static alyx__cel_val build_map(cel_ectx *x, const cel_node *n)
{
	size_t cnt = n->n / 2;
	alyx__cel_val *kv = alyx__cel_alloc(x->r, (n->n ? n->n : 1) *
						       sizeof(*kv));

	if (!kv)
		return cel_errorf(x->r, n->pos, "map too large: memory limit");
	for (size_t i = 0; i < cnt; i++) {
		alyx__cel_val k = ev(x, n->a[2 * i]);
		if (ISERR(k))
			return k;
		if (k.k != ALYX_CEL_BOOL && k.k != ALYX_CEL_INT &&
		    k.k != ALYX_CEL_UINT && k.k != ALYX_CEL_STRING)
			return cel_errorf(x->r, n->a[2 * i]->pos,
					  "unsupported key type: %s",
					  alyx__cel_type_name(k.k));
		alyx__cel_val v = ev(x, n->a[2 * i + 1]);
		if (ISERR(v))
			return v;
		if (charge(x, i / 16))
			return cost_error(x, n);
		for (size_t j = 0; j < i; j++)
			if (alyx__cel_equal(&kv[2 * j], &k))
				return cel_errorf(x->r, n->a[2 * i]->pos,
						  "Failed with repeated key");
		kv[2 * i] = k;
		kv[2 * i + 1] = v;
	}
	return alyx__cel_map(kv, cnt);
}

static alyx__cel_val comprehension(cel_ectx *x, const cel_node *n)
{
	alyx__cel_val range = ev(x, n->a[0]);
	alyx__cel_val *loc = &x->r->locals[n->slot];
	alyx__cel_val err = {.k = ALYX_CEL_NULL}, *out = NULL;
	bool have_err = false;
	size_t count = 0, nout = 0;
	size_t step;

	if (ISERR(range))
		return range;
	if (range.k == ALYX_CEL_LIST)
		step = 1;
	else if (range.k == ALYX_CEL_MAP)
		step = 2;
	else
		return cel_errorf(x->r, n->pos,
				  "expression of type '%s' cannot be the "
				  "range of a comprehension",
				  alyx__cel_type_name(range.k));
	if (n->op == M_MAP || n->op == M_MAP_FILTER || n->op == M_FILTER) {
		out = alyx__cel_alloc(x->r, (range.n ? range.n : 1) *
						    sizeof(*out));
		if (!out)
			return cel_errorf(x->r, n->pos,
					  "list too large: memory limit");
	}
	for (size_t i = 0; i < range.n; i++) {
		*loc = range.v.l[i * step];
		alyx__cel_val b = ev(x, n->a[1]);
		if (++x->r->steps > x->r->max_steps)
			return cel_errorf(x->r, n->pos,
					  "evaluation cost limit exceeded");
		switch (n->op) {
		case M_ALL:
		case M_EXISTS:
			if (ISERR(b)) {
				if (!have_err)
					err = b;
				have_err = true;
				continue;
			}
			if (b.k != ALYX_CEL_BOOL) {
				if (!have_err)
					err = cel_errorf(
						x->r, n->a[1]->pos,
						"predicate result is not a "
						"bool");
				have_err = true;
				continue;
			}
			if (n->op == M_ALL && !b.v.b)
				return alyx__cel_bool(false);
			if (n->op == M_EXISTS && b.v.b)
				return alyx__cel_bool(true);
			break;
		case M_EXISTS_ONE:
			if (ISERR(b))
				return b;
			if (b.k != ALYX_CEL_BOOL)
				return cel_errorf(x->r, n->a[1]->pos,
						  "predicate result is not a "
						  "bool");
			count += b.v.b;
			break;
		case M_MAP:
			if (ISERR(b))
				return b;
			out[nout++] = b;
			break;
		case M_FILTER:
		case M_MAP_FILTER:
			if (ISERR(b))
				return b;
			if (b.k != ALYX_CEL_BOOL)
				return cel_errorf(x->r, n->a[1]->pos,
						  "filter result is not a "
						  "bool");
			if (!b.v.b)
				break;
			if (n->op == M_FILTER) {
				out[nout++] = *loc;
			} else {
				alyx__cel_val t = ev(x, n->a[2]);
				if (ISERR(t))
					return t;
				out[nout++] = t;
			}
			break;
		}
	}
	switch (n->op) {
	case M_ALL:
	case M_EXISTS:
		if (have_err)
			return err;
		return alyx__cel_bool(n->op == M_ALL);
	case M_EXISTS_ONE:
		return alyx__cel_bool(count == 1);
	default:
		return alyx__cel_list(out, nout);
	}
}

static alyx__cel_val logic(cel_ectx *x, const cel_node *n)
{
	bool is_and = n->kind == N_AND;
	alyx__cel_val l = ev_fast(x, n->a[0]);

	/* the deciding value short-circuits */
	if (l.k == ALYX_CEL_BOOL && l.v.b != is_and)
		return l;
	alyx__cel_val r = ev_fast(x, n->a[1]);
	if (r.k == ALYX_CEL_BOOL && r.v.b != is_and)
		return r;
	if (l.k == ALYX_CEL_BOOL && r.k == ALYX_CEL_BOOL)
		return l;
	if (ISERR(l))
		return l;
	if (ISERR(r))
		return r;
	const alyx__cel_val *bad = l.k != ALYX_CEL_BOOL ? &l : &r;
	return no_overload(x, n, is_and ? "&&" : "||", bad, NULL);
}

static alyx__cel_val ev(cel_ectx *x, const cel_node *n)
{
	alyx__cel_val a, b;

	if (++x->r->steps > x->r->max_steps)
		return cel_errorf(x->r, n->pos,
				  "evaluation cost limit exceeded");
	switch ((cel_nkind)n->kind) {
	case N_LIT:
		return n->lit;
	case N_VAR:
		if (!x->vars)
			return cel_errorf(x->r, n->pos, "no value bound");
		return x->vars[n->slot];
	case N_LOCAL:
		return x->r->locals[n->slot];
	case N_IDENT:
	case N_UNDECL:
		return cel_errorf(x->r, n->pos,
				  "undeclared reference to '%.*s'",
				  (int)n->name_len, n->name);
	case N_SELECT:
	case N_HAS: {
		a = ev_fast(x, n->a[0]);
		if (ISERR(a))
			return a;
		if (a.k != ALYX_CEL_MAP)
			return cel_errorf(x->r, n->pos,
					  "type '%s' does not support field "
					  "selection",
					  alyx__cel_type_name(a.k));
		if (charge(x, a.n / 16))
			return cost_error(x, n);
		const alyx__cel_val *v = cel_map_field(&a, n->name,
						       n->name_len);
		if (n->kind == N_HAS)
			return alyx__cel_bool(v != NULL);
		if (!v)
			return cel_errorf(x->r, n->pos, "no such key: '%.*s'",
					  (int)n->name_len, n->name);
		return *v;
	}
	case N_INDEX:
		a = ev(x, n->a[0]);
		if (ISERR(a))
			return a;
		b = ev(x, n->a[1]);
		if (ISERR(b))
			return b;
		return index_op(x, n, &a, &b);
	case N_LIST: {
		alyx__cel_val *l = alyx__cel_alloc(x->r, (n->n ? n->n : 1) *
							      sizeof(*l));
		if (!l)
			return cel_errorf(x->r, n->pos,
					  "list too large: memory limit");
		for (size_t i = 0; i < n->n; i++) {
			l[i] = ev(x, n->a[i]);
			if (ISERR(l[i]))
				return l[i];
		}
		return alyx__cel_list(l, n->n);
	}
	case N_MAP:
		return build_map(x, n);
	case N_CALL: {
		alyx__cel_val stackv[4], *args = stackv;
		if (n->n > ALYX_ARRAY_LEN(stackv)) {
			args = alyx__cel_alloc(x->r, n->n * sizeof(*args));
			if (!args)
				return cel_errorf(x->r, n->pos,
						  "memory limit exceeded");
		}
		for (size_t i = 0; i < n->n; i++) {
			args[i] = ev(x, n->a[i]);
			if (ISERR(args[i]))
				return args[i];
		}
		return cel_call(x, n, args, n->n);
	}
	case N_AND:
	case N_OR:
		return logic(x, n);
	case N_NOT:
		a = ev(x, n->a[0]);
		if (ISERR(a))
			return a;
		if (a.k != ALYX_CEL_BOOL)
			return no_overload(x, n, "!", &a, NULL);
		return alyx__cel_bool(!a.v.b);
	case N_NEG:
		a = ev(x, n->a[0]);
		if (ISERR(a))
			return a;
		if (a.k == ALYX_CEL_INT) {
			if (a.v.i == INT64_MIN)
				return cel_errorf(x->r, n->pos,
						  "integer overflow in "
						  "negation");
			return alyx__cel_int(-a.v.i);
		}
		if (a.k == ALYX_CEL_DOUBLE)
			return alyx__cel_double(-a.v.d);
		return no_overload(x, n, "-", &a, NULL);
	case N_COND:
		a = ev(x, n->a[0]);
		if (ISERR(a))
			return a;
		if (a.k != ALYX_CEL_BOOL)
			return no_overload(x, n, "_?_:_", &a, NULL);
		return ev(x, n->a[a.v.b ? 1 : 2]);
	case N_BIN:
		a = ev_fast(x, n->a[0]);
		if (ISERR(a))
			return a;
		b = ev_fast(x, n->a[1]);
		if (ISERR(b))
			return b;
		return binop(x, n, &a, &b);
	case N_COMPR:
		return comprehension(x, n);
	}
	return cel_errorf(x->r, n->pos, "internal error: bad node");
}

alyx__cel_val cel_eval_node(const alyx__cel_prog *p, const cel_node *n,
			    const alyx__cel_val *vars, alyx__cel_run *r)
{
	cel_ectx x = {r, vars, p};

	if (p->n_locals > r->max_locals) {
		r->locals = alyx__cel_alloc(r, (size_t)p->n_locals *
						       sizeof(*r->locals));
		if (!r->locals) {
			r->locals = r->local_buf;
			return cel_errorf(r, 0, "memory limit exceeded");
		}
		r->max_locals = p->n_locals;
	}
	return ev(&x, n);
}

alyx__cel_val alyx__cel_eval(const alyx__cel_prog *p,
			     const alyx__cel_val *vars, alyx__cel_run *r)
{
	return cel_eval_node(p, p->root, vars, r);
}
