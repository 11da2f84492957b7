/*
 * match.c - the in-memory evaluator: does a document (JSON boundary form,
 * as reads return it) match a filter, and how do two documents sort.
 * Every rule here mirrors what the SQL of sql.c does in SQLite; the
 * agreement test (tests/unit/query/test-agree.c) checks it on thousands
 * of random documents and filters.
 */
#include <math.h>
#include <string.h>

#include "query/query-int.h"

/*
 * A document's field as a storage value.  Text, numbers and booleans are
 * read in place (v->s borrows the cJSON string; *owned stays false); json
 * and blob go through the same conversion as writes, so the compact JSON
 * and the bytes are exactly what SQLite holds.  A missing field, a JSON
 * null or a value that does not convert is NULL.
 */
static void doc_value(const alyx__field *f, const cJSON *item,
		      alyx__value *v, bool *owned)
{
	char why[128];
	double d;

	memset(v, 0, sizeof(*v));
	*owned = false;
	if (!item || cJSON_IsNull(item))
		return;
	switch (f->type) {
	case ALYX_T_UUID:
	case ALYX_T_STRING:
	case ALYX_T_TEXT:
	case ALYX_T_TIMESTAMP:
		if (!cJSON_IsString(item))
			break;
		v->kind = ALYX_V_TEXT;
		v->s = item->valuestring;
		v->n = strlen(item->valuestring);
		return;
	case ALYX_T_INT:
		if (!cJSON_IsNumber(item))
			break;
		d = item->valuedouble;
		if (d == trunc(d) && d >= -9223372036854775808.0 &&
		    d < 9223372036854775808.0) {
			v->kind = ALYX_V_INT;
			v->i = (int64_t)d;
		} else {
			v->kind = ALYX_V_FLOAT;
			v->f = d;
		}
		return;
	case ALYX_T_FLOAT:
		if (!cJSON_IsNumber(item))
			break;
		v->kind = ALYX_V_FLOAT;
		v->f = item->valuedouble;
		return;
	case ALYX_T_BOOL:
		if (!cJSON_IsBool(item))
			break;
		v->kind = ALYX_V_INT;
		v->i = cJSON_IsTrue(item) ? 1 : 0;
		return;
	case ALYX_T_JSON:
	case ALYX_T_BLOB:
		break;
	}
	if (alyx__value_from_json(f, item, v, why)) {
		*owned = true;
	} else {
		memset(v, 0, sizeof(*v));
	}
}

/* ---- LIKE, exactly as SQLite's patternCompare() with ESCAPE '\' and
 * ASCII-only case folding (sqlite3/src/func.c). ---- */

enum { LIKE_MATCH, LIKE_NOMATCH, LIKE_NOWILDCARDMATCH };

static const unsigned char utf8_trans1[] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
	0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
	0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	0x00, 0x01, 0x02, 0x03, 0x00, 0x01, 0x00, 0x00,
};

/* sqlite3Utf8Read(): one code point; bad sequences give U+FFFD. */
static uint32_t utf8_read(const unsigned char **pz)
{
	uint32_t c = *((*pz)++);

	if (c >= 0xc0) {
		c = utf8_trans1[c - 0xc0];
		while ((**pz & 0xc0) == 0x80)
			c = (c << 6) + (0x3f & *((*pz)++));
		if (c < 0x80 || (c & 0xFFFFF800) == 0xD800 ||
		    (c & 0xFFFFFFFE) == 0xFFFE)
			c = 0xFFFD;
	}
	return c;
}

static uint32_t lower(uint32_t c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int like_cmp(const unsigned char *pat, const unsigned char *str)
{
	const unsigned char *escaped = NULL;
	uint32_t c, c2;
	int r;

	for (;;) {
		c = utf8_read(&pat);
		if (c == 0)
			break;
		if (c == '%') {
			/* Runs of % and _ : each _ consumes one character. */
			for (;;) {
				c = utf8_read(&pat);
				if (c != '%' && c != '_')
					break;
				if (c == '_' && utf8_read(&str) == 0)
					return LIKE_NOWILDCARDMATCH;
			}
			if (c == 0)
				return LIKE_MATCH;
			if (c == '\\') {
				c = utf8_read(&pat);
				if (c == 0)
					return LIKE_NOWILDCARDMATCH;
			}
			if (c < 0x80) {
				char stop[3];

				stop[0] = (char)(c >= 'a' && c <= 'z' ?
						 c - 32 : c);
				stop[1] = (char)lower(c);
				stop[2] = 0;
				for (;;) {
					str += strcspn((const char *)str, stop);
					if (!str[0])
						break;
					str++;
					r = like_cmp(pat, str);
					if (r != LIKE_NOMATCH)
						return r;
				}
			} else {
				for (;;) {
					c2 = utf8_read(&str);
					if (c2 == 0)
						break;
					if (c2 != c)
						continue;
					r = like_cmp(pat, str);
					if (r != LIKE_NOMATCH)
						return r;
				}
			}
			return LIKE_NOWILDCARDMATCH;
		}
		if (c == '\\') {
			c = utf8_read(&pat);
			if (c == 0)
				return LIKE_NOMATCH;
			escaped = pat;
		}
		c2 = utf8_read(&str);
		if (c == c2)
			continue;
		if (c < 0x80 && c2 < 0x80 && lower(c) == lower(c2))
			continue;
		if (c == '_' && pat != escaped && c2 != 0)
			continue;
		return LIKE_NOMATCH;
	}
	return *str == 0 ? LIKE_MATCH : LIKE_NOMATCH;
}

static bool like(const alyx__value *pat, const alyx__value *str)
{
	return like_cmp((const unsigned char *)pat->s,
			(const unsigned char *)str->s) == LIKE_MATCH;
}

/* ---- conditions ---- */

/* instr(x, y) > 0 for text: y occurs in x (bytes; empty y always). */
static bool substr_in(const alyx__value *hay, const alyx__value *needle)
{
	if (!needle->n)
		return true;
	return hay->n >= needle->n &&
	       memmem(hay->s, hay->n, needle->s, needle->n) != NULL;
}

/* One element of a json array against the contains element, as the
 * json_each() condition in sql.c compares them. */
static bool elem_eq(const alyx__filter *f, const cJSON *e)
{
	switch (f->elem_type) {
	case cJSON_String:
		return cJSON_IsString(e) &&
		       strlen(e->valuestring) == f->elem.n &&
		       !memcmp(e->valuestring, f->elem.s, f->elem.n);
	case cJSON_Number:
		return cJSON_IsNumber(e) && e->valuedouble == f->elem.f;
	case cJSON_True:
		return cJSON_IsTrue(e);
	case cJSON_False:
		return cJSON_IsFalse(e);
	default:
		return cJSON_IsNull(e);
	}
}

static bool json_contains(const alyx__filter *f, const cJSON *item)
{
	const cJSON *e;

	if (!cJSON_IsArray(item))
		return false;
	for (e = item->child; e; e = e->next)
		if (elem_eq(f, e))
			return true;
	return false;
}

static bool cond_match(const alyx__collection *c, const alyx__filter *f,
		       const cJSON *doc)
{
	const alyx__field *fd = &c->fields[f->field];
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(doc, fd->name);
	alyx__value v;
	bool owned, r = false, null_lit;
	size_t i;
	int cmp;

	if (f->op == ALYX_OP_CONTAINS && fd->type == ALYX_T_JSON)
		return json_contains(f, item);
	doc_value(fd, item, &v, &owned);
	null_lit = f->n_vals == 1 && f->vals[0].kind == ALYX_V_NULL;
	switch (f->op) {
	case ALYX_OP_EQ:
		r = null_lit ? v.kind == ALYX_V_NULL :
		    v.kind != ALYX_V_NULL &&
		    !alyx__value_cmp(&v, &f->vals[0]);
		break;
	case ALYX_OP_NE:
		/* IS NOT: NULL is "not v" for every non-null v. */
		r = null_lit ? v.kind != ALYX_V_NULL :
		    v.kind == ALYX_V_NULL ||
		    alyx__value_cmp(&v, &f->vals[0]) != 0;
		break;
	case ALYX_OP_GT:
	case ALYX_OP_GTE:
	case ALYX_OP_LT:
	case ALYX_OP_LTE:
		if (v.kind == ALYX_V_NULL)
			break;
		cmp = alyx__value_cmp(&v, &f->vals[0]);
		r = f->op == ALYX_OP_GT ? cmp > 0 :
		    f->op == ALYX_OP_GTE ? cmp >= 0 :
		    f->op == ALYX_OP_LT ? cmp < 0 : cmp <= 0;
		break;
	case ALYX_OP_IN:
		for (i = 0; v.kind != ALYX_V_NULL && i < f->n_vals && !r; i++)
			r = !alyx__value_cmp(&v, &f->vals[i]);
		break;
	case ALYX_OP_LIKE:
		r = v.kind == ALYX_V_TEXT && like(&f->vals[0], &v);
		break;
	case ALYX_OP_CONTAINS:
		r = v.kind == ALYX_V_TEXT && substr_in(&v, &f->vals[0]);
		break;
	}
	if (owned)
		alyx__value_clear(&v);
	return r;
}

bool alyx__filter_match(const alyx__collection *c, const alyx__filter *f,
			const cJSON *doc)
{
	size_t i;

	if (!f)
		return true;
	switch (f->kind) {
	case ALYX_F_AND:
		for (i = 0; i < f->n_kids; i++)
			if (!alyx__filter_match(c, f->kids[i], doc))
				return false;
		return true;
	case ALYX_F_OR:
		for (i = 0; i < f->n_kids; i++)
			if (alyx__filter_match(c, f->kids[i], doc))
				return true;
		return false;
	default:
		return cond_match(c, f, doc);
	}
}

int alyx__query_doc_cmp(const alyx__query *q, const cJSON *a, const cJSON *b)
{
	size_t k;
	int r = 0;

	for (k = 0; k < q->n_sort && !r; k++) {
		const alyx__field *f = &q->coll->fields[q->sort[k].field];
		alyx__value va, vb;
		bool oa, ob;

		doc_value(f, cJSON_GetObjectItemCaseSensitive(a, f->name),
			  &va, &oa);
		doc_value(f, cJSON_GetObjectItemCaseSensitive(b, f->name),
			  &vb, &ob);
		/* NULL sorts first, as in SQLite. */
		r = alyx__value_cmp(&va, &vb);
		if (q->sort[k].desc)
			r = -r;
		if (oa)
			alyx__value_clear(&va);
		if (ob)
			alyx__value_clear(&vb);
	}
	return r;
}
