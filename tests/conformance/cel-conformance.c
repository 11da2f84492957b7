/*
 * cel-conformance.c - runs the CEL conformance cases (format:
 * tests/conformance/cel/README.md) against lib/rules.
 *
 *   alyx-cel-conformance [-v] FILE.json...
 *
 * Prints pass/fail/skip per file (every skip with its reason, every
 * failure with the expression and both values) and ends with
 * "conformance: N passed, N failed, N skipped".  Exit 1 on a failure.
 *
 * The JSON reader below keeps string lengths, so expressions and values
 * with U+0000 are run, not skipped.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rules/rules.h"

/* ---- a small length-preserving JSON reader ---- */

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jkind;

typedef struct jv {
	jkind k;
	bool b;
	char *s;		/* J_STR (decoded) / J_NUM (text) */
	size_t n;		/* string length / number of items */
	struct jv *items;	/* J_ARR: n values; J_OBJ: 2n (key, value) */
} jv;

typedef struct jp {
	const char *s;
	size_t len, i;
	const char *err;
} jp;

static void jws(jp *p)
{
	while (p->i < p->len && (p->s[p->i] == ' ' || p->s[p->i] == '\n' ||
				 p->s[p->i] == '\r' || p->s[p->i] == '\t'))
		p->i++;
}

static void jfree(jv *v)
{
	if (v->k == J_ARR || v->k == J_OBJ) {
		size_t m = v->k == J_OBJ ? 2 * v->n : v->n;
		for (size_t i = 0; i < m; i++)
			jfree(&v->items[i]);
		free(v->items);
	}
	free(v->s);
}

static int hex4(const char *s)
{
	int v = 0;
	for (int i = 0; i < 4; i++) {
		char c = s[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xC0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

static bool jstr(jp *p, char **out, size_t *outn)
{
	size_t i = p->i + 1, on = 0;
	char *o = malloc(p->len - p->i + 1);

	while (i < p->len && p->s[i] != '"') {
		if (p->s[i] != '\\') {
			o[on++] = p->s[i++];
			continue;
		}
		if (i + 1 >= p->len)
			goto bad;
		char c = p->s[i + 1];
		i += 2;
		switch (c) {
		case '"': o[on++] = '"'; break;
		case '\\': o[on++] = '\\'; break;
		case '/': o[on++] = '/'; break;
		case 'b': o[on++] = '\b'; break;
		case 'f': o[on++] = '\f'; break;
		case 'n': o[on++] = '\n'; break;
		case 'r': o[on++] = '\r'; break;
		case 't': o[on++] = '\t'; break;
		case 'u': {
			if (i + 4 > p->len)
				goto bad;
			int cp = hex4(p->s + i);
			if (cp < 0)
				goto bad;
			i += 4;
			if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 <= p->len &&
			    p->s[i] == '\\' && p->s[i + 1] == 'u') {
				int lo = hex4(p->s + i + 2);
				if (lo >= 0xDC00 && lo <= 0xDFFF) {
					cp = 0x10000 + ((cp - 0xD800) << 10) +
					     (lo - 0xDC00);
					i += 6;
				}
			}
			on += put_utf8(o + on, (unsigned)cp);
			break;
		}
		default:
			goto bad;
		}
	}
	if (i >= p->len)
		goto bad;
	p->i = i + 1;
	o[on] = 0;
	*out = o;
	*outn = on;
	return true;
bad:
	free(o);
	p->err = "bad string";
	return false;
}

static bool jparse(jp *p, jv *v, int depth)
{
	memset(v, 0, sizeof(*v));
	jws(p);
	if (p->i >= p->len || depth > 100) {
		p->err = "unexpected end";
		return false;
	}
	char c = p->s[p->i];
	if (c == '"') {
		v->k = J_STR;
		return jstr(p, &v->s, &v->n);
	}
	if (c == '{' || c == '[') {
		bool obj = c == '{';
		size_t cap = 0;
		v->k = obj ? J_OBJ : J_ARR;
		p->i++;
		jws(p);
		if (p->i < p->len && p->s[p->i] == (obj ? '}' : ']')) {
			p->i++;
			return true;
		}
		for (;;) {
			size_t need = (obj ? 2 : 1) * (v->n + 1);
			if (need > cap) {
				cap = need * 2;
				v->items = realloc(v->items,
						   cap * sizeof(jv));
			}
			jv *slot = &v->items[(obj ? 2 : 1) * v->n];
			if (obj) {
				jws(p);
				if (p->i >= p->len || p->s[p->i] != '"') {
					p->err = "expected key";
					return false;
				}
				slot[0].k = J_STR;
				slot[0].items = NULL;
				if (!jstr(p, &slot[0].s, &slot[0].n))
					return false;
				jws(p);
				if (p->i >= p->len || p->s[p->i] != ':') {
					p->err = "expected ':'";
					free(slot[0].s);
					return false;
				}
				p->i++;
				if (!jparse(p, &slot[1], depth + 1)) {
					free(slot[0].s);
					return false;
				}
			} else if (!jparse(p, &slot[0], depth + 1)) {
				return false;
			}
			v->n++;
			jws(p);
			if (p->i < p->len && p->s[p->i] == ',') {
				p->i++;
				continue;
			}
			if (p->i < p->len && p->s[p->i] == (obj ? '}' : ']')) {
				p->i++;
				return true;
			}
			p->err = "expected ',' or end";
			return false;
		}
	}
	if (!strncmp(p->s + p->i, "true", 4) ||
	    !strncmp(p->s + p->i, "false", 5)) {
		v->k = J_BOOL;
		v->b = p->s[p->i] == 't';
		p->i += v->b ? 4 : 5;
		return true;
	}
	if (!strncmp(p->s + p->i, "null", 4)) {
		v->k = J_NULL;
		p->i += 4;
		return true;
	}
	size_t st = p->i;
	while (p->i < p->len && strchr("+-0123456789.eE", p->s[p->i]))
		p->i++;
	if (p->i == st) {
		p->err = "unexpected character";
		return false;
	}
	v->k = J_NUM;
	v->s = strndup(p->s + st, p->i - st);
	return true;
}

static const jv *jget(const jv *o, const char *key)
{
	if (!o || o->k != J_OBJ)
		return NULL;
	for (size_t i = 0; i < o->n; i++)
		if (!strcmp(o->items[2 * i].s, key))
			return &o->items[2 * i + 1];
	return NULL;
}

/* ---- VALUE <-> CEL ---- */

static bool type_kind(const char *name, alyx__cel_kind *k)
{
	for (int t = ALYX_CEL_NULL; t <= ALYX_CEL_TYPE; t++)
		if (!strcmp(alyx__cel_type_name((alyx__cel_kind)t), name)) {
			*k = (alyx__cel_kind)t;
			return true;
		}
	return false;
}

static double jdouble(const jv *d)
{
	if (d->k == J_STR) {
		if (!strcmp(d->s, "NaN"))
			return NAN;
		if (!strcmp(d->s, "Infinity"))
			return INFINITY;
		if (!strcmp(d->s, "-Infinity"))
			return -INFINITY;
	}
	return strtod(d->s ? d->s : "0", NULL);
}

/* Builds a CEL value from a tagged VALUE; memory from run r. */
static bool to_cel(const jv *j, alyx__cel_run *r, alyx__cel_val *out)
{
	const jv *x;

	if (!j || j->k != J_OBJ || j->n != 1)
		return false;
	const char *tag = j->items[0].s;
	x = &j->items[1];
	if (!strcmp(tag, "null")) {
		*out = alyx__cel_null();
	} else if (!strcmp(tag, "bool")) {
		*out = alyx__cel_bool(x->b);
	} else if (!strcmp(tag, "int")) {
		*out = alyx__cel_int(strtoll(x->s, NULL, 10));
	} else if (!strcmp(tag, "uint")) {
		*out = alyx__cel_uint(strtoull(x->s, NULL, 10));
	} else if (!strcmp(tag, "double")) {
		*out = alyx__cel_double(jdouble(x));
	} else if (!strcmp(tag, "string")) {
		*out = alyx__cel_str(x->s, x->n);
	} else if (!strcmp(tag, "bytes")) {
		unsigned char *d;
		size_t dn;
		if (!alyx__base64_dec(x->s, x->n, &d, &dn))
			return false;
		char *c = alyx__cel_alloc(r, dn + 1);
		memcpy(c, d, dn);
		alyx__free(d);
		*out = alyx__cel_bytes(c, dn);
	} else if (!strcmp(tag, "list")) {
		alyx__cel_val *l = alyx__cel_alloc(r, (x->n + 1) * sizeof(*l));
		for (size_t i = 0; i < x->n; i++)
			if (!to_cel(&x->items[i], r, &l[i]))
				return false;
		*out = alyx__cel_list(l, x->n);
	} else if (!strcmp(tag, "map")) {
		alyx__cel_val *kv = alyx__cel_alloc(r, (2 * x->n + 1) *
							       sizeof(*kv));
		for (size_t i = 0; i < x->n; i++) {
			const jv *pair = &x->items[i];
			if (pair->k != J_ARR || pair->n != 2 ||
			    !to_cel(&pair->items[0], r, &kv[2 * i]) ||
			    !to_cel(&pair->items[1], r, &kv[2 * i + 1]))
				return false;
		}
		*out = alyx__cel_map(kv, x->n);
	} else if (!strcmp(tag, "type")) {
		alyx__cel_kind k;
		if (!type_kind(x->s, &k))
			return false;
		*out = alyx__cel_type(k);
	} else if (!strcmp(tag, "duration")) {
		int64_t s;
		int32_t ns;
		if (!alyx__cel_parse_duration(x->s, x->n, &s, &ns))
			return false;
		*out = alyx__cel_duration(s, ns);
	} else if (!strcmp(tag, "timestamp")) {
		int64_t s;
		int32_t ns;
		if (!alyx__cel_parse_timestamp(x->s, x->n, &s, &ns))
			return false;
		*out = alyx__cel_timestamp(s, ns);
	} else {
		return false;
	}
	return true;
}

/* Strict equality: tags must match (README "Value equality"). */
static bool same(const alyx__cel_val *a, const alyx__cel_val *b)
{
	if (a->k != b->k)
		return false;
	switch (a->k) {
	case ALYX_CEL_DOUBLE:
		return a->v.d == b->v.d || (isnan(a->v.d) && isnan(b->v.d));
	case ALYX_CEL_LIST:
		if (a->n != b->n)
			return false;
		for (size_t i = 0; i < a->n; i++)
			if (!same(&a->v.l[i], &b->v.l[i]))
				return false;
		return true;
	case ALYX_CEL_MAP:
		if (a->n != b->n)
			return false;
		for (size_t i = 0; i < b->n; i++) {
			bool found = false;
			for (size_t k = 0; k < a->n && !found; k++)
				if (same(&a->v.l[2 * k], &b->v.l[2 * i]))
					found = same(&a->v.l[2 * k + 1],
						     &b->v.l[2 * i + 1]);
			if (!found)
				return false;
		}
		return true;
	default:
		return alyx__cel_equal(a, b);
	}
}

/* ---- running ---- */

static int verbose;

static void show(const char *what, const alyx__cel_val *v)
{
	alyx_buf b;
	alyx__buf_init(&b, 4096);
	alyx__cel_val_format(&b, v);
	printf("      %s: %s\n", what, b.data ? b.data : "?");
	alyx__buf_free(&b);
}

static void run_case(const jv *c, int *pass, int *fail, int *skip)
{
	const jv *id = jget(c, "id"), *expr = jget(c, "expr"),
		 *cont = jget(c, "container"), *binds = jget(c, "bindings"),
		 *exp = jget(c, "expect"), *dm = jget(c, "disable_macros");
	const jv *unsup = jget(exp, "unsupported");
	alyx__cel_run conv, run;
	alyx__cel_prog *prog = NULL;
	alyx__err err = {0};
	const char **names = NULL;
	alyx__cel_val *vals = NULL, want, got;
	size_t nb = binds && binds->k == J_OBJ ? binds->n : 0;

	if (unsup) {
		printf("  skip %s: unsupported: %s\n", id->s, unsup->s);
		(*skip)++;
		return;
	}
	alyx__cel_run_init(&conv);
	alyx__cel_run_init(&run);
	names = calloc(nb + 1, sizeof(*names));
	vals = calloc(nb + 1, sizeof(*vals));
	for (size_t i = 0; i < nb; i++) {
		names[i] = binds->items[2 * i].s;
		if (!to_cel(&binds->items[2 * i + 1], &conv, &vals[i])) {
			printf("  FAIL %s: binding %s cannot be built\n",
			       id->s, names[i]);
			(*fail)++;
			goto out;
		}
	}
	alyx__cel_opts o = {
		.container = cont && cont->k == J_STR ? cont->s : NULL,
		.vars = names,
		.n_vars = nb,
		.disable_macros = dm && dm->k == J_BOOL && dm->b,
	};
	if (alyx__cel_compile(expr->s, expr->n, &o, &prog, &err) != ALYX_OK) {
		printf("  FAIL %s: parse error: %s\n      expr: %s\n", id->s,
		       err.msg, expr->s);
		(*fail)++;
		goto out;
	}
	alarm(10);	/* a hang fails the run instead of stalling it */
	got = alyx__cel_eval(prog, vals, &run);
	alarm(0);
	if (jget(exp, "error")) {
		if (got.k == ALYX_CEL_ERROR) {
			(*pass)++;
			if (verbose)
				printf("  pass %s (error: %s)\n", id->s,
				       got.v.e->msg);
		} else {
			printf("  FAIL %s: expected an error\n      expr: %s\n",
			       id->s, expr->s);
			show("got", &got);
			(*fail)++;
		}
		goto out;
	}
	if (!to_cel(jget(exp, "value"), &conv, &want)) {
		printf("  FAIL %s: expected value cannot be built\n", id->s);
		(*fail)++;
		goto out;
	}
	if (got.k != ALYX_CEL_ERROR && same(&got, &want)) {
		(*pass)++;
		if (verbose)
			printf("  pass %s\n", id->s);
	} else {
		printf("  FAIL %s\n      expr: %s\n", id->s, expr->s);
		show("want", &want);
		show("got", &got);
		(*fail)++;
	}
out:
	alyx__err_clear(&err);
	alyx__cel_prog_free(prog);
	alyx__cel_run_free(&run);
	alyx__cel_run_free(&conv);
	free(names);
	free(vals);
}

int main(int argc, char **argv)
{
	int tp = 0, tf = 0, ts = 0;

	for (int a = 1; a < argc; a++) {
		char *data;
		size_t len;
		alyx__err err = {0};
		jv root;
		jp p;

		if (!strcmp(argv[a], "-v")) {
			verbose = 1;
			continue;
		}
		if (alyx__read_file(argv[a], 64u << 20, &data, &len, &err)) {
			printf("%s: cannot read: %s\n", argv[a], err.msg);
			alyx__err_clear(&err);
			tf++;
			continue;
		}
		p = (jp){data, len, 0, NULL};
		if (!jparse(&p, &root, 0)) {
			printf("%s: bad JSON at %zu: %s\n", argv[a], p.i,
			       p.err);
			alyx__free(data);
			tf++;
			continue;
		}
		const jv *cases = jget(&root, "cases");
		int fp = 0, ff = 0, fs = 0;
		printf("%s:\n", argv[a]);
		for (size_t i = 0; cases && i < cases->n; i++)
			run_case(&cases->items[i], &fp, &ff, &fs);
		printf("%s: %d passed, %d failed, %d skipped\n", argv[a], fp,
		       ff, fs);
		tp += fp;
		tf += ff;
		ts += fs;
		jfree(&root);
		alyx__free(data);
	}
	printf("conformance: %d passed, %d failed, %d skipped\n", tp, tf, ts);
	return tf ? 1 : 0;
}
