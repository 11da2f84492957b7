/*
 * parse.c - the filter AST and its two parsers: the REST query string
 * (filter=field:op:value&sort=...) and the JSON form of the realtime
 * protocol and the C API ({"filter":{"field":{"$op":v}}, ...}).  Both
 * build the same AST through the same helpers, so a filter means the same
 * thing whichever door it came through.  docs/queries.md is the reference.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "query/query-int.h"

static const char *const op_names[] = {
	[ALYX_OP_EQ] = "eq",	   [ALYX_OP_NE] = "ne",
	[ALYX_OP_GT] = "gt",	   [ALYX_OP_GTE] = "gte",
	[ALYX_OP_LT] = "lt",	   [ALYX_OP_LTE] = "lte",
	[ALYX_OP_LIKE] = "like",   [ALYX_OP_IN] = "in",
	[ALYX_OP_CONTAINS] = "contains",
};

const char *alyx__op_name(alyx__op op)
{
	if ((size_t)op >= ALYX_ARRAY_LEN(op_names))
		return "?";
	return op_names[op];
}

static bool op_parse(const char *s, size_t n, alyx__op *out)
{
	size_t i;

	for (i = 0; i < ALYX_ARRAY_LEN(op_names); i++) {
		if (strlen(op_names[i]) == n && !memcmp(op_names[i], s, n)) {
			*out = (alyx__op)i;
			return true;
		}
	}
	return false;
}

/* ---- small shared helpers ---- */

static const char *tname(alyx__type t)
{
	static const char *const names[] = {
		"uuid", "string", "text", "int", "float", "bool",
		"timestamp", "json", "blob",
	};

	return (size_t)t < ALYX_ARRAY_LEN(names) ? names[t] : "?";
}

int alyx__qerr(alyx__err *err, int code, const char *param,
	       const char *field, size_t flen, const char *op,
	       const char *fmt, ...)
{
	alyx_buf d;
	char msg[512];
	va_list ap;
	bool first = true;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	alyx__buf_init(&d, 4 * ALYX_QUERY_MAX_VALUE);
	alyx__buf_addc(&d, '{');
	if (param) {
		alyx__buf_adds(&d, "\"param\":");
		alyx__json_strz(&d, param);
		first = false;
	}
	if (field) {
		alyx__buf_adds(&d, first ? "\"field\":" : ",\"field\":");
		alyx__json_str(&d, field, flen);
		first = false;
	}
	if (op) {
		alyx__buf_adds(&d, first ? "\"op\":" : ",\"op\":");
		alyx__json_strz(&d, op);
	}
	alyx__buf_addc(&d, '}');
	return alyx__err_setd(err, code, alyx__buf_take(&d), "%s", msg);
}

int alyx__qfield(const alyx__collection *c, const char *name, size_t n)
{
	size_t i;

	for (i = 0; i < c->n_fields; i++) {
		const char *f = c->fields[i].name;

		if (strlen(f) == n && !memcmp(f, name, n))
			return (int)i;
	}
	return -1;
}

const alyx__collection *alyx__qcoll(const alyx__schema *s, const char *name)
{
	size_t i;

	if (!s || !name)
		return NULL;
	for (i = 0; i < s->n_colls; i++)
		if (!strcmp(s->colls[i].name, name))
			return &s->colls[i];
	return NULL;
}

bool alyx__qop_allowed(alyx__type t, alyx__op op)
{
	switch (op) {
	case ALYX_OP_EQ:
	case ALYX_OP_NE:
	case ALYX_OP_IN:
		return true;
	case ALYX_OP_GT:
	case ALYX_OP_GTE:
	case ALYX_OP_LT:
	case ALYX_OP_LTE:
		return t != ALYX_T_BOOL && t != ALYX_T_JSON &&
		       t != ALYX_T_BLOB;
	case ALYX_OP_LIKE:
		return t == ALYX_T_UUID || t == ALYX_T_STRING ||
		       t == ALYX_T_TEXT;
	case ALYX_OP_CONTAINS:
		return t == ALYX_T_UUID || t == ALYX_T_STRING ||
		       t == ALYX_T_TEXT || t == ALYX_T_JSON;
	}
	return false;
}

bool alyx__qsortable(alyx__type t)
{
	return t != ALYX_T_JSON && t != ALYX_T_BLOB;
}

/* ---- the AST ---- */

void alyx__filter_free(alyx__filter *f)
{
	size_t i;

	if (!f)
		return;
	for (i = 0; i < f->n_kids; i++)
		alyx__filter_free(f->kids[i]);
	alyx__free(f->kids);
	for (i = 0; i < f->n_vals; i++)
		alyx__value_clear(&f->vals[i]);
	alyx__free(f->vals);
	alyx__free(f->json_elem);
	alyx__value_clear(&f->elem);
	alyx__free(f);
}

static void strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		alyx__free(v[i]);
	alyx__free(v);
}

void alyx__query_free(alyx__query *q)
{
	size_t i;

	if (!q)
		return;
	alyx__filter_free(q->where);
	alyx__free(q->sort);
	alyx__free(q->after);
	strv_free(q->expand, q->n_expand);
	strv_free(q->fields, q->n_fields);
	for (i = 0; i < q->n_after; i++)
		alyx__value_clear(&q->after_vals[i]);
	alyx__free(q->after_vals);
	alyx__free(q);
}

static alyx__filter *node_new(alyx__fkind kind)
{
	alyx__filter *f = alyx__calloc(1, sizeof(*f));

	if (f) {
		f->kind = kind;
		f->field = -1;
	}
	return f;
}

static int node_add(alyx__filter *parent, alyx__filter *kid)
{
	alyx__filter **k;

	k = alyx__realloc(parent->kids,
			  (parent->n_kids + 1) * sizeof(*parent->kids));
	if (!k) {
		alyx__filter_free(kid);
		return ALYX_E_NOMEM;
	}
	parent->kids = k;
	parent->kids[parent->n_kids++] = kid;
	return ALYX_OK;
}

/* Flattens AND-in-AND and OR-in-OR and drops single-child groups, so
 * equivalent filters from either parser have one shape. */
static alyx__filter *fnorm(alyx__filter *f)
{
	alyx__filter **kids;
	size_t i, j, n = 0;

	if (f->kind == ALYX_F_COND)
		return f;
	for (i = 0; i < f->n_kids; i++) {
		f->kids[i] = fnorm(f->kids[i]);
		n += f->kids[i]->kind == f->kind ? f->kids[i]->n_kids : 1;
	}
	if (n != f->n_kids) {
		kids = alyx__calloc(n ? n : 1, sizeof(*kids));
		if (!kids)
			return f;	/* unflattened is still correct */
		for (i = 0, j = 0; i < f->n_kids; i++) {
			alyx__filter *k = f->kids[i];

			if (k->kind == f->kind) {
				if (k->n_kids)
					memcpy(kids + j, k->kids,
					       k->n_kids * sizeof(*kids));
				j += k->n_kids;
				k->n_kids = 0;
				alyx__filter_free(k);
			} else {
				kids[j++] = k;
			}
		}
		alyx__free(f->kids);
		f->kids = kids;
		f->n_kids = n;
	}
	if (f->n_kids == 1) {
		alyx__filter *k = f->kids[0];

		f->n_kids = 0;
		alyx__filter_free(f);
		return k;
	}
	return f;
}

/* ---- parser state ---- */

typedef struct pctx {
	alyx__query *q;
	alyx__err *err;
	const char *param;	/* the parameter being parsed, for errors */
	size_t n_conds;
	size_t n_values;
} pctx;

static alyx__field str_field = { .name = "", .type = ALYX_T_STRING };

static const alyx__field *fld(pctx *px, const alyx__filter *f)
{
	return &px->q->coll->fields[f->field];
}

/* A condition on field `name` with operator `op` (both as given). */
static alyx__filter *cond_new(pctx *px, const char *name, size_t nlen,
			      const char *op, size_t oplen)
{
	const alyx__collection *c = px->q->coll;
	alyx__filter *f;
	char opbuf[24];
	alyx__op o;
	int i;

	if (++px->n_conds > ALYX_QUERY_MAX_FILTERS) {
		alyx__qerr(px->err, ALYX_E_TOOBIG, px->param, NULL, 0, NULL,
			   "more than %d filter conditions",
			   ALYX_QUERY_MAX_FILTERS);
		return NULL;
	}
	i = alyx__qfield(c, name, nlen);
	if (i < 0 || c->fields[i].internal) {
		alyx__qerr(px->err, ALYX_E_BADQUERY, px->param, name, nlen,
			   NULL, "%s: %s field '%.*s' in collection '%s'",
			   px->param, i < 0 ? "unknown" : "internal",
			   (int)(nlen > 64 ? 64 : nlen), name, c->name);
		return NULL;
	}
	if (!op_parse(op, oplen, &o)) {
		snprintf(opbuf, sizeof(opbuf), "%.*s",
			 (int)(oplen > 20 ? 20 : oplen), op);
		alyx__qerr(px->err, ALYX_E_BADQUERY, px->param, name, nlen,
			   opbuf, "%s: unknown operator '%s' for field '%s' "
			   "(eq ne gt gte lt lte like in contains)",
			   px->param, opbuf, c->fields[i].name);
		return NULL;
	}
	if (!alyx__qop_allowed(c->fields[i].type, o)) {
		alyx__qerr(px->err, ALYX_E_BADQUERY, px->param, name, nlen,
			   op_names[o], "%s: operator '%s' cannot be used on "
			   "%s field '%s'", px->param, op_names[o],
			   tname(c->fields[i].type),
			   c->fields[i].name);
		return NULL;
	}
	f = node_new(ALYX_F_COND);
	if (!f) {
		alyx__err_set(px->err, ALYX_E_NOMEM, NULL, "out of memory");
		return NULL;
	}
	f->field = i;
	f->op = o;
	return f;
}

static int cond_vals(pctx *px, alyx__filter *f, size_t n)
{
	if (n > ALYX_QUERY_MAX_LIST ||
	    (px->n_values += n) > ALYX_QUERY_MAX_VALUES)
		return alyx__qerr(px->err, ALYX_E_TOOBIG, px->param,
				  fld(px, f)->name, strlen(fld(px, f)->name),
				  op_names[f->op], "%s: too many values for "
				  "field '%s' (at most %d in a list, %d in a "
				  "filter)", px->param, fld(px, f)->name,
				  ALYX_QUERY_MAX_LIST, ALYX_QUERY_MAX_VALUES);
	f->vals = alyx__calloc(n ? n : 1, sizeof(*f->vals));
	if (!f->vals)
		return alyx__err_set(px->err, ALYX_E_NOMEM, NULL,
				     "out of memory");
	f->n_vals = n;
	return ALYX_OK;
}

static int bad_value(pctx *px, const alyx__filter *f, const char *why)
{
	const alyx__field *fd = fld(px, f);

	/* The value converters report an allocation failure as a reason
	 * text; it is not the caller's bad value. */
	if (!strcmp(why, ALYX_DOC_WHY_NOMEM))
		return alyx__err_set(px->err, ALYX_E_NOMEM, NULL,
				     "out of memory");
	return alyx__qerr(px->err, ALYX_E_BADQUERY, px->param, fd->name,
			  strlen(fd->name), op_names[f->op],
			  "%s: bad value for %s field '%s' (operator %s): %s",
			  px->param, tname(fd->type), fd->name,
			  op_names[f->op], why);
}

static int too_long(pctx *px, const alyx__filter *f)
{
	const alyx__field *fd = fld(px, f);

	return alyx__qerr(px->err, ALYX_E_TOOBIG, px->param, fd->name,
			  strlen(fd->name), op_names[f->op],
			  "%s: value for field '%s' longer than %d bytes",
			  px->param, fd->name, ALYX_QUERY_MAX_VALUE);
}

/* For like and substring contains, the value is a plain string whatever
 * the field's type (a uuid fragment is not a uuid). */
static const alyx__field *conv_field(pctx *px, const alyx__filter *f)
{
	if (f->op == ALYX_OP_LIKE ||
	    (f->op == ALYX_OP_CONTAINS && fld(px, f)->type != ALYX_T_JSON))
		return &str_field;
	return fld(px, f);
}

/* For contains on a json field: the element's json_each() view. */
static int set_elem(pctx *px, alyx__filter *f)
{
	const alyx__value *v = &f->vals[0];
	cJSON *j = cJSON_ParseWithLength(v->s, v->n);
	int rc = ALYX_OK;

	if (!j)
		return alyx__err_set(px->err, ALYX_E_NOMEM, NULL,
				     "out of memory");
	f->elem_type = j->type & 0xff;
	switch (f->elem_type) {
	case cJSON_String:
		f->elem.kind = ALYX_V_TEXT;
		f->elem.n = strlen(j->valuestring);
		f->elem.s = alyx__strndup(j->valuestring, f->elem.n);
		if (!f->elem.s)
			rc = alyx__err_set(px->err, ALYX_E_NOMEM, NULL,
					   "out of memory");
		break;
	case cJSON_Number:
		f->elem.kind = ALYX_V_FLOAT;
		f->elem.f = j->valuedouble;
		break;
	case cJSON_True:
	case cJSON_False:
	case cJSON_NULL:
		break;
	default:
		rc = bad_value(px, f, "contains on a json field takes a "
			       "scalar element (string, number, true, false "
			       "or null)");
		break;
	}
	cJSON_Delete(j);
	if (rc == ALYX_OK) {
		f->json_elem = alyx__strndup(v->s, v->n);
		if (!f->json_elem)
			rc = alyx__err_set(px->err, ALYX_E_NOMEM, NULL,
					   "out of memory");
	}
	return rc;
}

static int check_value(pctx *px, alyx__filter *f, size_t i)
{
	alyx__value *v = &f->vals[i];

	if (v->kind == ALYX_V_NULL)
		return bad_value(px, f, f->op == ALYX_OP_IN ?
				 "null is not allowed in a list" :
				 "null is only allowed with eq and ne");
	if ((v->kind == ALYX_V_TEXT || v->kind == ALYX_V_BLOB) &&
	    v->n > ALYX_QUERY_MAX_VALUE)
		return too_long(px, f);
	if (f->op == ALYX_OP_CONTAINS && fld(px, f)->type == ALYX_T_JSON)
		return set_elem(px, f);
	return ALYX_OK;
}

/* Value i of f from text (REST). */
static int set_text(pctx *px, alyx__filter *f, size_t i, const char *s,
		    size_t n)
{
	char why[128];

	if (n > ALYX_QUERY_MAX_VALUE)
		return too_long(px, f);
	if (memchr(s, '\0', n))
		return bad_value(px, f, "NUL byte in the value");
	if (!alyx__value_from_text(conv_field(px, f), s, n, &f->vals[i],
				   why))
		return bad_value(px, f, why);
	return check_value(px, f, i);
}

/* Value i of f from JSON.  A JSON null is the null literal. */
static int set_json(pctx *px, alyx__filter *f, size_t i, const cJSON *j)
{
	char why[128];

	if (cJSON_IsString(j) && strlen(j->valuestring) > ALYX_QUERY_MAX_VALUE)
		return too_long(px, f);
	if (cJSON_IsNull(j) && (f->op == ALYX_OP_EQ || f->op == ALYX_OP_NE) &&
	    f->n_vals == 1)
		return ALYX_OK;
	if (cJSON_IsNull(j) && f->op == ALYX_OP_CONTAINS &&
	    fld(px, f)->type == ALYX_T_JSON) {
		/* contains null: the array holds a JSON null. */
		if (!alyx__value_from_text(fld(px, f), "null", 4, &f->vals[i],
					   why))
			return bad_value(px, f, why);
		return check_value(px, f, i);
	}
	if (!alyx__value_from_json(conv_field(px, f), j, &f->vals[i], why))
		return bad_value(px, f, why);
	return check_value(px, f, i);
}

/* ---- common parameter helpers ---- */

static int add_sort(pctx *px, const char *s, size_t n)
{
	alyx__query *q = px->q;
	const alyx__collection *c = q->coll;
	alyx__sortkey *k;
	bool desc = false;
	size_t j;
	int i;

	if (n && (s[0] == '-' || s[0] == '+')) {
		desc = s[0] == '-';
		s++;
		n--;
	}
	i = alyx__qfield(c, s, n);
	if (i < 0 || c->fields[i].internal)
		return alyx__qerr(px->err, ALYX_E_BADQUERY, "sort", s, n, NULL,
				  "sort: %s field '%.*s' in collection '%s'",
				  i < 0 ? "unknown" : "internal",
				  (int)(n > 64 ? 64 : n), s, c->name);
	if (!alyx__qsortable(c->fields[i].type))
		return alyx__qerr(px->err, ALYX_E_BADQUERY, "sort", s, n, NULL,
				  "sort: %s field '%s' cannot be sorted",
				  tname(c->fields[i].type),
				  c->fields[i].name);
	for (j = 0; j < q->n_sort; j++)
		if (q->sort[j].field == i)
			return alyx__qerr(px->err, ALYX_E_BADQUERY, "sort", s,
					  n, NULL, "sort: field '%s' given "
					  "twice", c->fields[i].name);
	if (q->n_sort >= ALYX_QUERY_MAX_SORT)
		return alyx__qerr(px->err, ALYX_E_TOOBIG, "sort", NULL, 0,
				  NULL, "sort: more than %d keys",
				  ALYX_QUERY_MAX_SORT);
	k = alyx__realloc(q->sort, (q->n_sort + 2) * sizeof(*k));
	if (!k)
		return alyx__err_set(px->err, ALYX_E_NOMEM, NULL,
				     "out of memory");
	q->sort = k;
	k[q->n_sort].field = i;
	k[q->n_sort].desc = desc;
	q->n_sort++;
	return ALYX_OK;
}

static int strv_add(char ***v, size_t *n, const char *s, size_t len)
{
	char **nv, *d;
	size_t i;

	for (i = 0; i < *n; i++)
		if (strlen((*v)[i]) == len && !memcmp((*v)[i], s, len))
			return ALYX_OK;
	d = alyx__strndup(s, len);
	nv = d ? alyx__realloc(*v, (*n + 1) * sizeof(*nv)) : NULL;
	if (!nv) {
		alyx__free(d);
		return ALYX_E_NOMEM;
	}
	nv[(*n)++] = d;
	*v = nv;
	return ALYX_OK;
}

/* A dotted path of reference fields, each in the collection the previous
 * one points to. */
static int add_expand(pctx *px, const char *s, size_t n)
{
	alyx__query *q = px->q;
	const alyx__collection *c = q->coll;
	const char *p = s, *e = s + n, *dot;
	int depth = 0, i;

	if (q->n_expand >= ALYX_QUERY_MAX_EXPAND)
		return alyx__qerr(px->err, ALYX_E_TOOBIG, "expand", NULL, 0,
				  NULL, "expand: more than %d paths",
				  ALYX_QUERY_MAX_EXPAND);
	for (;;) {
		dot = memchr(p, '.', (size_t)(e - p));
		if (!dot)
			dot = e;
		if (++depth > ALYX_QUERY_MAX_EXPAND_DEPTH)
			return alyx__qerr(px->err, ALYX_E_BADQUERY, "expand",
					  s, n, NULL, "expand: '%.*s' is "
					  "deeper than %d levels",
					  (int)(n > 200 ? 200 : n), s,
					  ALYX_QUERY_MAX_EXPAND_DEPTH);
		i = alyx__qfield(c, p, (size_t)(dot - p));
		if (i < 0 || c->fields[i].internal ||
		    !c->fields[i].ref_collection ||
		    !alyx__qcoll(q->schema, c->fields[i].ref_collection))
			return alyx__qerr(px->err, ALYX_E_BADQUERY, "expand",
					  p, (size_t)(dot - p), NULL,
					  "expand: '%.*s' is not a reference "
					  "field of collection '%s'",
					  (int)(dot - p > 64 ? 64 : dot - p),
					  p, c->name);
		c = alyx__qcoll(q->schema, c->fields[i].ref_collection);
		if (dot == e)
			break;
		p = dot + 1;
	}
	if (strv_add(&q->expand, &q->n_expand, s, n) != ALYX_OK)
		return alyx__err_set(px->err, ALYX_E_NOMEM, NULL,
				     "out of memory");
	return ALYX_OK;
}

static int add_field(pctx *px, const char *s, size_t n)
{
	alyx__query *q = px->q;
	int i = alyx__qfield(q->coll, s, n);

	if (i < 0 || q->coll->fields[i].internal)
		return alyx__qerr(px->err, ALYX_E_BADQUERY, "fields", s, n,
				  NULL, "fields: %s field '%.*s' in "
				  "collection '%s'",
				  i < 0 ? "unknown" : "internal",
				  (int)(n > 64 ? 64 : n), s, q->coll->name);
	if (strv_add(&q->fields, &q->n_fields, s, n) != ALYX_OK)
		return alyx__err_set(px->err, ALYX_E_NOMEM, NULL,
				     "out of memory");
	return ALYX_OK;
}

/* Splits a comma list of names and feeds each to `add`. */
static int name_list(pctx *px, const char *s, size_t n,
		     int (*add)(pctx *, const char *, size_t))
{
	const char *p = s, *e = s + n, *comma;
	int rc;

	for (;;) {
		comma = memchr(p, ',', (size_t)(e - p));
		if (!comma)
			comma = e;
		if (comma == p)
			return alyx__qerr(px->err, ALYX_E_BADQUERY, px->param,
					  NULL, 0, NULL, "%s: empty name in "
					  "the list", px->param);
		rc = add(px, p, (size_t)(comma - p));
		if (rc != ALYX_OK)
			return rc;
		if (comma == e)
			return ALYX_OK;
		p = comma + 1;
	}
}

/* Strict non-negative decimal integer. */
static bool parse_u(const char *s, size_t n, int64_t max, int64_t *out)
{
	int64_t v = 0;
	size_t i;

	if (!n || n > 18)
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

/* limit (1..MAX_LIMIT) or offset (0..MAX_OFFSET), parsed or not (!ok). */
static int set_num(pctx *px, bool limit, int64_t v, bool ok)
{
	int64_t lo = limit ? 1 : 0;
	int64_t hi = limit ? ALYX_QUERY_MAX_LIMIT : ALYX_QUERY_MAX_OFFSET;
	const char *name = limit ? "limit" : "offset";

	if (!ok || v < lo || v > hi)
		return alyx__qerr(px->err, ALYX_E_BADQUERY, name, NULL, 0,
				  NULL, "%s: expected an integer from %lld to "
				  "%lld", name, (long long)lo, (long long)hi);
	if (limit)
		px->q->limit = v;
	else
		px->q->offset = v;
	return ALYX_OK;
}

static int set_after(pctx *px, const char *s, size_t n)
{
	if (n > 4 * ALYX_QUERY_MAX_CURSOR)
		return alyx__qerr(px->err, ALYX_E_BADQUERY, "after", NULL, 0,
				  NULL, "after: cursor too long");
	px->q->after = alyx__strndup(s, n);
	if (!px->q->after)
		return alyx__err_set(px->err, ALYX_E_NOMEM, NULL,
				     "out of memory");
	return ALYX_OK;
}

static alyx__query *query_new(const alyx__schema *s,
			      const alyx__collection *c)
{
	alyx__query *q = alyx__calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->schema = s;
	q->coll = c;
	q->limit = ALYX_QUERY_DEFAULT_LIMIT;
	return q;
}

/* Common end of both parsers: normal filter shape, the primary key as the
 * final sort key, the cursor decoded against the final sort. */
static int finish(pctx *px)
{
	alyx__query *q = px->q;
	size_t i;

	if (q->where) {
		q->where = fnorm(q->where);
		if (q->where->kind == ALYX_F_AND && !q->where->n_kids) {
			alyx__filter_free(q->where);
			q->where = NULL;
		}
	}
	for (i = 0; i < q->n_sort; i++)
		if ((size_t)q->sort[i].field == q->coll->pk)
			break;
	if (i == q->n_sort) {
		alyx__sortkey *k = alyx__realloc(q->sort, (q->n_sort + 1) *
						 sizeof(*k));

		if (!k)
			return alyx__err_set(px->err, ALYX_E_NOMEM, NULL,
					     "out of memory");
		q->sort = k;
		k[q->n_sort].field = (int)q->coll->pk;
		k[q->n_sort].desc = false;
		q->n_sort++;
	}
	if (q->after)
		return alyx__cursor_decode(q, px->err);
	return ALYX_OK;
}

static int start(pctx *px, const alyx__schema *s, const alyx__collection *c,
		 alyx__query **out, alyx__err *err)
{
	memset(px, 0, sizeof(*px));
	px->err = err;
	*out = NULL;
	if (!c || c->pk >= c->n_fields)
		return alyx__err_set(err, ALYX_E_MISUSE, NULL,
				     "query on a collection without a "
				     "primary key");
	px->q = query_new(s, c);
	if (!px->q)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL,
				     "out of memory");
	px->q->where = node_new(ALYX_F_AND);
	if (!px->q->where)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL,
				     "out of memory");
	return ALYX_OK;
}

static int end(pctx *px, int rc, alyx__query **out)
{
	if (rc == ALYX_OK)
		rc = finish(px);
	if (rc != ALYX_OK) {
		alyx__query_free(px->q);
		return rc;
	}
	*out = px->q;
	return ALYX_OK;
}

/* ---- the REST form ---- */

/* Copies s[0..n) into b, dropping the backslash of each `\c` and stopping
 * at the first unescaped `stop` character.  Returns the bytes consumed, or
 * (size_t)-1 for a trailing lone backslash. */
static size_t unescape_until(alyx_buf *b, const char *s, size_t n, char stop)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] == '\\') {
			if (++i == n)
				return (size_t)-1;
		} else if (s[i] == stop) {
			break;
		}
		alyx__buf_addc(b, s[i]);
	}
	return i;
}

/* `in` values: a JSON array, or a comma list with backslash escapes. */
static int rest_list(pctx *px, alyx__filter *f, const char *s, size_t n)
{
	cJSON *arr = NULL, *el;
	alyx_buf b;
	size_t i, cnt, used;
	int rc = ALYX_OK;

	if (n && s[0] == '[')
		arr = cJSON_ParseWithLength(s, n);
	if (arr && cJSON_IsArray(arr)) {
		rc = cond_vals(px, f, (size_t)cJSON_GetArraySize(arr));
		for (el = arr->child, i = 0; el && rc == ALYX_OK;
		     el = el->next, i++)
			rc = set_json(px, f, i, el);
		cJSON_Delete(arr);
		return rc;
	}
	cJSON_Delete(arr);
	for (i = 0, cnt = 1; i < n; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == ',')
			cnt++;
	}
	rc = cond_vals(px, f, cnt);
	alyx__buf_init(&b, ALYX_QUERY_MAX_VALUE + 1);
	for (i = 0; rc == ALYX_OK && i < cnt; i++) {
		alyx__buf_reset(&b);
		used = unescape_until(&b, s, n, ',');
		if (used == (size_t)-1) {
			rc = bad_value(px, f, "a lone backslash ends the list");
			break;
		}
		if (b.err) {
			rc = b.err == ALYX_E_NOMEM ? alyx__err_set(px->err,
				ALYX_E_NOMEM, NULL, "out of memory") :
				too_long(px, f);
			break;
		}
		rc = set_text(px, f, i, b.data ? b.data : "", b.len);
		s += used + (used < n);
		n -= used + (used < n);
	}
	alyx__buf_free(&b);
	return rc;
}

/* field:op:value (the value is everything after the second colon). */
static alyx__filter *rest_cond(pctx *px, const char *s, size_t n)
{
	const char *c1, *c2, *v;
	alyx__filter *f;
	size_t vn;
	int rc;

	c1 = memchr(s, ':', n);
	c2 = c1 ? memchr(c1 + 1, ':', (size_t)(s + n - c1 - 1)) : NULL;
	if (!c2) {
		alyx__qerr(px->err, ALYX_E_BADQUERY, "filter", NULL, 0, NULL,
			   "filter: expected field:op:value, got '%.*s'",
			   (int)(n > 100 ? 100 : n), s);
		return NULL;
	}
	f = cond_new(px, s, (size_t)(c1 - s), c1 + 1,
		     (size_t)(c2 - c1 - 1));
	if (!f)
		return NULL;
	v = c2 + 1;
	vn = (size_t)(s + n - v);
	if (vn > ALYX_QUERY_MAX_VALUE && f->op != ALYX_OP_IN)
		rc = too_long(px, f);
	else if (f->op == ALYX_OP_IN)
		rc = rest_list(px, f, v, vn);
	else
		rc = cond_vals(px, f, 1);
	/* `null` for eq/ne leaves vals[0] NULL: IS [NOT] NULL. */
	if (rc == ALYX_OK && f->op != ALYX_OP_IN &&
	    !((f->op == ALYX_OP_EQ || f->op == ALYX_OP_NE) && vn == 4 &&
	      !memcmp(v, "null", 4)))
		rc = set_text(px, f, 0, v, vn);
	if (rc != ALYX_OK) {
		alyx__filter_free(f);
		return NULL;
	}
	return f;
}

/* or(cond|cond|...): backslash escapes the next character inside. */
static alyx__filter *rest_or(pctx *px, const char *s, size_t n)
{
	alyx__filter *g = node_new(ALYX_F_OR), *k;
	alyx_buf b;
	size_t used;

	alyx__buf_init(&b, ALYX_QUERY_MAX_TEXT);
	if (!g)
		goto nomem;
	for (;;) {
		alyx__buf_reset(&b);
		used = unescape_until(&b, s, n, '|');
		if (used == (size_t)-1) {
			alyx__qerr(px->err, ALYX_E_BADQUERY, "filter", NULL, 0,
				   NULL, "filter: a lone backslash ends the "
				   "or() group");
			goto fail;
		}
		if (b.err)
			goto nomem;
		k = rest_cond(px, b.data ? b.data : "", b.len);
		if (!k)
			goto fail;
		if (node_add(g, k) != ALYX_OK)
			goto nomem;
		if (used == n)
			break;
		s += used + 1;
		n -= used + 1;
	}
	alyx__buf_free(&b);
	return g;
nomem:
	alyx__err_set(px->err, ALYX_E_NOMEM, NULL, "out of memory");
fail:
	alyx__buf_free(&b);
	alyx__filter_free(g);
	return NULL;
}

static int rest_filter(pctx *px, const char *s, size_t n)
{
	alyx__filter *f;

	if (n >= 4 && !memcmp(s, "or(", 3) && s[n - 1] == ')')
		f = rest_or(px, s + 3, n - 4);
	else
		f = rest_cond(px, s, n);
	if (!f)
		return px->err->code;
	if (node_add(px->q->where, f) != ALYX_OK)
		return alyx__err_set(px->err, ALYX_E_NOMEM, NULL,
				     "out of memory");
	return ALYX_OK;
}

enum {
	P_SORT = 1 << 0, P_LIMIT = 1 << 1, P_OFFSET = 1 << 2,
	P_AFTER = 1 << 3, P_EXPAND = 1 << 4, P_FIELDS = 1 << 5,
	P_TOTAL = 1 << 6,
};

static const struct {
	const char *name;
	unsigned bit;
} rest_params[] = {
	{"filter", 0},	       {"sort", P_SORT},     {"limit", P_LIMIT},
	{"offset", P_OFFSET},  {"after", P_AFTER},   {"expand", P_EXPAND},
	{"fields", P_FIELDS},  {"total", P_TOTAL},
};

static int rest_param(pctx *px, const char *key, const char *v, size_t vn,
		      unsigned *seen)
{
	size_t i;
	int64_t num = 0;
	bool ok;

	for (i = 0; i < ALYX_ARRAY_LEN(rest_params); i++)
		if (!strcmp(key, rest_params[i].name))
			break;
	if (i == ALYX_ARRAY_LEN(rest_params))
		return alyx__qerr(px->err, ALYX_E_BADQUERY, key, NULL, 0, NULL,
				  "unknown query parameter '%.64s' (filter "
				  "sort limit offset after expand fields "
				  "total)", key);
	px->param = rest_params[i].name;
	if (*seen & rest_params[i].bit)
		return alyx__qerr(px->err, ALYX_E_BADQUERY, px->param, NULL, 0,
				  NULL, "query parameter '%s' given more than "
				  "once", px->param);
	*seen |= rest_params[i].bit;
	switch (rest_params[i].bit) {
	case 0:
		return rest_filter(px, v, vn);
	case P_SORT:
		return vn ? name_list(px, v, vn, add_sort) : ALYX_OK;
	case P_LIMIT:
		ok = parse_u(v, vn, ALYX_QUERY_MAX_LIMIT + 1, &num);
		return set_num(px, true, num, ok);
	case P_OFFSET:
		ok = parse_u(v, vn, ALYX_QUERY_MAX_OFFSET, &num);
		return set_num(px, false, num, ok);
	case P_AFTER:
		return set_after(px, v, vn);
	case P_EXPAND:
		return vn ? name_list(px, v, vn, add_expand) : ALYX_OK;
	case P_FIELDS:
		return vn ? name_list(px, v, vn, add_field) : ALYX_OK;
	default:
		if (vn == 4 && !memcmp(v, "true", 4))
			px->q->total = true;
		else if (!(vn == 5 && !memcmp(v, "false", 5)))
			return alyx__qerr(px->err, ALYX_E_BADQUERY, "total",
					  NULL, 0, NULL,
					  "total: expected true or false");
		return ALYX_OK;
	}
}

/* ---- a get by primary key ---- */

int alyx__query_by_pk(const alyx__schema *s, const alyx__collection *c,
		      alyx__value *pk, alyx__query **out, alyx__err *err)
{
	alyx__filter *f;
	pctx px;
	int rc = start(&px, s, c, out, err);

	if (rc == ALYX_OK) {
		px.q->limit = 1;
		f = node_new(ALYX_F_COND);
		if (f && !(f->vals = alyx__calloc(1, sizeof(*f->vals)))) {
			alyx__filter_free(f);
			f = NULL;
		}
		if (f) {
			f->field = (int)c->pk;
			f->op = ALYX_OP_EQ;
			f->n_vals = 1;
			f->vals[0] = *pk;
			memset(pk, 0, sizeof(*pk));
		}
		if (!f || node_add(px.q->where, f) != ALYX_OK)
			rc = alyx__err_set(err, ALYX_E_NOMEM, NULL,
					   "out of memory");
	}
	return end(&px, rc, out);
}

/* One decoded parameter: a name holding a NUL byte is refused before its
 * name is looked up. */
static int one_param(pctx *px, const char *key, size_t klen, const char *v,
		     size_t vn, unsigned *seen)
{
	if (strlen(key) != klen)
		return alyx__qerr(px->err, ALYX_E_BADQUERY, NULL, NULL, 0, NULL,
				  "NUL byte in a parameter name");
	return rest_param(px, key, v, vn, seen);
}

static int text_too_long(alyx__err *err)
{
	return alyx__qerr(err, ALYX_E_TOOBIG, NULL, NULL, 0, NULL,
			  "query string longer than %d bytes",
			  ALYX_QUERY_MAX_TEXT);
}

int alyx__query_parse_str(const alyx__schema *s, const alyx__collection *c,
			  const char *qs, alyx__query **out, alyx__err *err)
{
	pctx px;
	const char *p, *amp, *eq;
	char *key = NULL, *val = NULL;
	size_t klen, vlen, n;
	unsigned seen = 0;
	int rc;

	rc = start(&px, s, c, out, err);
	if (rc != ALYX_OK)
		return end(&px, rc, out);
	p = qs ? qs : "";
	if (*p == '?')
		p++;
	n = strlen(p);
	if (n > ALYX_QUERY_MAX_TEXT)
		return end(&px, text_too_long(err), out);
	while (*p && rc == ALYX_OK) {
		amp = strchr(p, '&');
		if (!amp)
			amp = p + strlen(p);
		if (amp == p) {
			p++;
			continue;
		}
		eq = memchr(p, '=', (size_t)(amp - p));
		if (!eq)
			eq = amp;
		if (!alyx__url_decode(p, (size_t)(eq - p), &key, &klen) ||
		    !alyx__url_decode(eq + (eq < amp), (size_t)(amp - eq) -
				      (eq < amp), &val, &vlen)) {
			if (errno == ENOMEM)
				rc = alyx__err_set(err, ALYX_E_NOMEM, NULL,
						   "out of memory");
			else
				rc = alyx__qerr(err, ALYX_E_BADQUERY, NULL,
						NULL, 0, NULL,
						"bad %%-escape in the query "
						"string");
		} else {
			rc = one_param(&px, key, klen, val, vlen, &seen);
		}
		alyx__free(key);
		alyx__free(val);
		key = val = NULL;
		p = *amp ? amp + 1 : amp;
	}
	return end(&px, rc, out);
}

size_t alyx__qargs_len(const alyx__qarg *args, size_t n)
{
	size_t i, len = 0;

	for (i = 0; i < n; i++)
		len += args[i].klen + args[i].vlen + 1;
	return len;
}

int alyx__query_parse_args(const alyx__schema *s, const alyx__collection *c,
			   const alyx__qarg *args, size_t n,
			   alyx__query **out, alyx__err *err)
{
	pctx px;
	size_t i;
	unsigned seen = 0;
	int rc;

	rc = start(&px, s, c, out, err);
	if (rc != ALYX_OK)
		return end(&px, rc, out);
	if (alyx__qargs_len(args, n) > (size_t)ALYX_QUERY_MAX_TEXT + 1)
		return end(&px, text_too_long(err), out);
	for (i = 0; i < n && rc == ALYX_OK; i++)
		rc = one_param(&px, args[i].key, args[i].klen, args[i].val,
			       args[i].vlen, &seen);
	return end(&px, rc, out);
}

/* ---- the JSON form ---- */

static alyx__filter *json_filter(pctx *px, const cJSON *obj, int depth);

/* {"$gte":1,"$lt":5}: every key an operator (not a plain object value). */
static int op_object(pctx *px, const cJSON *v, bool *is_ops)
{
	const cJSON *k;
	size_t ops = 0, plain = 0;

	*is_ops = false;
	if (!cJSON_IsObject(v) || !v->child)
		return ALYX_OK;
	for (k = v->child; k; k = k->next) {
		if (k->string && k->string[0] == '$')
			ops++;
		else
			plain++;
	}
	if (ops && plain)
		return alyx__qerr(px->err, ALYX_E_BADQUERY, "filter", NULL, 0,
				  NULL, "filter: an object mixes $operators "
				  "and plain keys");
	*is_ops = ops > 0;
	return ALYX_OK;
}

static alyx__filter *json_cond(pctx *px, const char *name, const char *op,
			       const cJSON *v)
{
	alyx__filter *f = cond_new(px, name, strlen(name), op, strlen(op));
	const cJSON *el;
	size_t i;
	int rc;

	if (!f)
		return NULL;
	if (f->op == ALYX_OP_IN) {
		if (!cJSON_IsArray(v))
			rc = bad_value(px, f, "$in takes an array");
		else
			rc = cond_vals(px, f, (size_t)cJSON_GetArraySize(v));
		for (el = v->child, i = 0; rc == ALYX_OK && el;
		     el = el->next, i++)
			rc = set_json(px, f, i, el);
	} else {
		rc = cond_vals(px, f, 1);
		if (rc == ALYX_OK)
			rc = set_json(px, f, 0, v);
	}
	if (rc != ALYX_OK) {
		alyx__filter_free(f);
		return NULL;
	}
	return f;
}

static alyx__filter *json_group(pctx *px, const cJSON *k, int depth)
{
	alyx__filter *g, *kid;
	const cJSON *el;
	bool is_or = !strcmp(k->string, "$or");

	if (!cJSON_IsArray(k) || !k->child) {
		alyx__qerr(px->err, ALYX_E_BADQUERY, "filter", NULL, 0,
			   k->string, "filter: %s takes a non-empty array of "
			   "filter objects", k->string);
		return NULL;
	}
	g = node_new(is_or ? ALYX_F_OR : ALYX_F_AND);
	if (!g) {
		alyx__err_set(px->err, ALYX_E_NOMEM, NULL, "out of memory");
		return NULL;
	}
	for (el = k->child; el; el = el->next) {
		kid = json_filter(px, el, depth + 1);
		if (!kid || node_add(g, kid) != ALYX_OK) {
			if (kid)
				alyx__err_set(px->err, ALYX_E_NOMEM, NULL,
					      "out of memory");
			alyx__filter_free(g);
			return NULL;
		}
	}
	return g;
}

static alyx__filter *json_filter(pctx *px, const cJSON *obj, int depth)
{
	alyx__filter *g, *kid;
	const cJSON *k, *o;
	bool is_ops;

	if (!cJSON_IsObject(obj)) {
		alyx__qerr(px->err, ALYX_E_BADQUERY, "filter", NULL, 0, NULL,
			   "filter: expected an object");
		return NULL;
	}
	if (depth > ALYX_QUERY_MAX_NEST) {
		alyx__qerr(px->err, ALYX_E_TOOBIG, "filter", NULL, 0, NULL,
			   "filter: $or/$and nested deeper than %d levels",
			   ALYX_QUERY_MAX_NEST);
		return NULL;
	}
	g = node_new(ALYX_F_AND);
	if (!g) {
		alyx__err_set(px->err, ALYX_E_NOMEM, NULL, "out of memory");
		return NULL;
	}
	for (k = obj->child; k; k = k->next) {
		const char *name = k->string ? k->string : "";

		kid = NULL;
		if (!strcmp(name, "$or") || !strcmp(name, "$and")) {
			kid = json_group(px, k, depth);
		} else if (name[0] == '$') {
			alyx__qerr(px->err, ALYX_E_BADQUERY, "filter", NULL,
				   0, name, "filter: unknown operator '%.32s' "
				   "at the top of a filter object", name);
		} else if (op_object(px, k, &is_ops) != ALYX_OK) {
			;
		} else if (!is_ops) {
			kid = json_cond(px, name, "eq", k);
		} else {
			for (o = k->child; o; o = o->next) {
				kid = json_cond(px, name, o->string + 1, o);
				if (!kid)
					break;
				if (o->next && node_add(g, kid) != ALYX_OK) {
					kid = NULL;
					alyx__err_set(px->err, ALYX_E_NOMEM,
						      NULL, "out of memory");
					break;
				}
			}
		}
		if (!kid || node_add(g, kid) != ALYX_OK) {
			if (kid)
				alyx__err_set(px->err, ALYX_E_NOMEM, NULL,
					      "out of memory");
			alyx__filter_free(g);
			return NULL;
		}
	}
	return g;
}

/* A list given as a JSON array of strings, or as one comma string. */
static int json_names(pctx *px, const cJSON *v,
		      int (*add)(pctx *, const char *, size_t))
{
	const cJSON *el;
	int rc;

	if (cJSON_IsString(v))
		return v->valuestring[0] ?
			name_list(px, v->valuestring, strlen(v->valuestring),
				  add) : ALYX_OK;
	if (!cJSON_IsArray(v))
		return alyx__qerr(px->err, ALYX_E_BADQUERY, px->param, NULL, 0,
				  NULL, "%s: expected an array of strings",
				  px->param);
	for (el = v->child; el; el = el->next) {
		if (!cJSON_IsString(el))
			return alyx__qerr(px->err, ALYX_E_BADQUERY, px->param,
					  NULL, 0, NULL, "%s: expected an "
					  "array of strings", px->param);
		rc = add(px, el->valuestring, strlen(el->valuestring));
		if (rc != ALYX_OK)
			return rc;
	}
	return ALYX_OK;
}

static bool json_int(const cJSON *v, int64_t *out)
{
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= -1e15 &&
				     v->valuedouble <= 1e15) ||
	    v->valuedouble != (double)(int64_t)v->valuedouble)
		return false;
	*out = (int64_t)v->valuedouble;
	return true;
}

static int json_param(pctx *px, const cJSON *k)
{
	int64_t num = 0;
	bool ok;

	px->param = k->string;
	if (!strcmp(k->string, "filter")) {
		alyx__filter *f;

		if (cJSON_IsNull(k))
			return ALYX_OK;
		f = json_filter(px, k, 1);
		if (!f)
			return px->err->code;
		if (node_add(px->q->where, f) != ALYX_OK)
			return alyx__err_set(px->err, ALYX_E_NOMEM, NULL,
					     "out of memory");
		return ALYX_OK;
	}
	if (!strcmp(k->string, "sort"))
		return json_names(px, k, add_sort);
	if (!strcmp(k->string, "expand"))
		return json_names(px, k, add_expand);
	if (!strcmp(k->string, "fields"))
		return json_names(px, k, add_field);
	if (!strcmp(k->string, "limit")) {
		ok = json_int(k, &num);
		return set_num(px, true, num, ok);
	}
	if (!strcmp(k->string, "offset")) {
		ok = json_int(k, &num);
		return set_num(px, false, num, ok);
	}
	if (!strcmp(k->string, "after")) {
		if (!cJSON_IsString(k))
			return alyx__qerr(px->err, ALYX_E_BADQUERY, "after",
					  NULL, 0, NULL, "after: expected a "
					  "cursor string");
		return set_after(px, k->valuestring, strlen(k->valuestring));
	}
	if (!strcmp(k->string, "total")) {
		if (!cJSON_IsBool(k))
			return alyx__qerr(px->err, ALYX_E_BADQUERY, "total",
					  NULL, 0, NULL,
					  "total: expected true or false");
		px->q->total = cJSON_IsTrue(k);
		return ALYX_OK;
	}
	/* The realtime subscribe payload names its collection beside the
	 * query; the caller has resolved it already. */
	if (!strcmp(k->string, "collection") && cJSON_IsString(k))
		return ALYX_OK;
	return alyx__qerr(px->err, ALYX_E_BADQUERY, k->string, NULL, 0, NULL,
			  "unknown query key '%.64s' (filter sort limit "
			  "offset after expand fields total)", k->string);
}

int alyx__query_parse_json(const alyx__schema *s, const alyx__collection *c,
			   const cJSON *qj, alyx__query **out, alyx__err *err)
{
	pctx px;
	const cJSON *k, *prev;
	int rc;

	rc = start(&px, s, c, out, err);
	if (rc != ALYX_OK || !qj || cJSON_IsNull(qj))
		return end(&px, rc, out);
	if (!cJSON_IsObject(qj))
		return end(&px, alyx__qerr(err, ALYX_E_BADQUERY, NULL, NULL, 0,
					   NULL, "a query must be a JSON "
					   "object"), out);
	for (k = qj->child; k && rc == ALYX_OK; k = k->next) {
		for (prev = qj->child; prev != k; prev = prev->next)
			if (!strcmp(prev->string, k->string))
				break;
		if (prev != k)
			rc = alyx__qerr(err, ALYX_E_BADQUERY, k->string, NULL,
					0, NULL, "query key '%.64s' given more "
					"than once", k->string);
		else
			rc = json_param(&px, k);
	}
	return end(&px, rc, out);
}
