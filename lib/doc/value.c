/*
 * value.c - typed values: the JSON boundary form of each schema type and
 * its SQLite storage form (see the top of doc.h), in both directions.
 *
 * The read direction (column -> JSON) is a hot path: it writes straight
 * into an alyx_buf with the streaming writer of util.h and never builds a
 * cJSON tree.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doc.h"
#include "util/jsonrow.h"

/* Years 0000..9999 as epoch milliseconds: the range the storage form
 * "YYYY-MM-DDTHH:MM:SS.mmmZ" can hold. */
#define TS_MIN_MS (-62167219200000LL)
#define TS_MAX_MS (253402300799999LL)

void alyx__value_clear(alyx__value *v)
{
	alyx__free(v->s);
	memset(v, 0, sizeof(*v));
	v->kind = ALYX_V_NULL;
}

static int set_bytes(alyx__value *v, alyx__vkind kind, const void *p,
		     size_t n)
{
	char *s = alyx__malloc(n + 1);

	if (!s)
		return ALYX_E_NOMEM;
	if (n)
		memcpy(s, p, n);
	s[n] = '\0';
	memset(v, 0, sizeof(*v));
	v->kind = kind;
	v->s = s;
	v->n = n;
	return ALYX_OK;
}

int alyx__value_copy(alyx__value *dst, const alyx__value *src)
{
	if (src->kind == ALYX_V_TEXT || src->kind == ALYX_V_BLOB)
		return set_bytes(dst, src->kind, src->s, src->n);
	*dst = *src;
	dst->s = NULL;
	dst->n = 0;
	return ALYX_OK;
}

int alyx__value_bind(sqlite3_stmt *st, int idx, const alyx__value *v)
{
	switch (v->kind) {
	case ALYX_V_INT:
		return sqlite3_bind_int64(st, idx, v->i);
	case ALYX_V_FLOAT:
		return sqlite3_bind_double(st, idx, v->f);
	case ALYX_V_TEXT:
		return sqlite3_bind_text64(st, idx, v->s ? v->s : "", v->n,
					   SQLITE_TRANSIENT, SQLITE_UTF8);
	case ALYX_V_BLOB:
		/* A NULL pointer would bind SQL NULL, not an empty blob. */
		if (!v->n)
			return sqlite3_bind_zeroblob(st, idx, 0);
		return sqlite3_bind_blob64(st, idx, v->s, v->n,
					   SQLITE_TRANSIENT);
	case ALYX_V_NULL:
	default:
		return sqlite3_bind_null(st, idx);
	}
}

static int kind_rank(alyx__vkind k)
{
	switch (k) {
	case ALYX_V_NULL: return 0;
	case ALYX_V_INT:
	case ALYX_V_FLOAT: return 1;
	case ALYX_V_TEXT: return 2;
	default: return 3;
	}
}

static int cmp_bytes(const char *a, size_t an, const char *b, size_t bn)
{
	size_t m = an < bn ? an : bn;
	int c = m ? memcmp(a, b, m) : 0;

	if (c)
		return c < 0 ? -1 : 1;
	return an < bn ? -1 : an > bn;
}

/* int64 against double, exact even beyond 2^53 (as SQLite does it). */
static int cmp_int_float(int64_t i, double f)
{
	if (isnan(f))
		return 1;
	if (f < -9223372036854775808.0)
		return 1;
	if (f >= 9223372036854775808.0)
		return -1;
	{
		int64_t fi = (int64_t)f;

		if (i != fi)
			return i < fi ? -1 : 1;
		/* Same integral part: the fraction decides. */
		if ((double)fi < f)
			return -1;
		if ((double)fi > f)
			return 1;
		return 0;
	}
}

int alyx__value_cmp(const alyx__value *a, const alyx__value *b)
{
	int ra = kind_rank(a->kind), rb = kind_rank(b->kind);

	if (ra != rb)
		return ra < rb ? -1 : 1;
	switch (ra) {
	case 0:
		return 0;
	case 1:
		if (a->kind == ALYX_V_INT && b->kind == ALYX_V_INT)
			return a->i < b->i ? -1 : a->i > b->i;
		if (a->kind == ALYX_V_FLOAT && b->kind == ALYX_V_FLOAT)
			return a->f < b->f ? -1 : a->f > b->f;
		if (a->kind == ALYX_V_INT)
			return cmp_int_float(a->i, b->f);
		return -cmp_int_float(b->i, a->f);
	default:
		return cmp_bytes(a->s, a->n, b->s, b->n);
	}
}

/* ---- JSON values of json fields ---- */

/* Writes a parsed cJSON tree compactly with the streaming writer,
 * rejecting what the boundary must not accept: invalid UTF-8 in strings or
 * keys, non-finite numbers, nesting deeper than ALYX_DOC_JSON_DEPTH. */
static bool write_cjson(alyx_buf *b, const cJSON *j, int depth,
			char why[128])
{
	const cJSON *c;
	size_t n;

	if (depth > ALYX_DOC_JSON_DEPTH) {
		snprintf(why, 128, "JSON nested deeper than %d levels",
			 ALYX_DOC_JSON_DEPTH);
		return false;
	}
	if (cJSON_IsNull(j)) {
		alyx__buf_add(b, "null", 4);
	} else if (cJSON_IsTrue(j)) {
		alyx__json_bool(b, true);
	} else if (cJSON_IsFalse(j)) {
		alyx__json_bool(b, false);
	} else if (cJSON_IsNumber(j)) {
		double d = j->valuedouble;

		if (!isfinite(d)) {
			snprintf(why, 128, "number out of range");
			return false;
		}
		if (d == trunc(d) && fabs(d) <= ALYX_DOC_INT_EXACT)
			alyx__json_i64(b, (int64_t)d);
		else
			alyx__json_f64(b, d);
	} else if (cJSON_IsString(j)) {
		n = strlen(j->valuestring);
		if (!alyx__utf8_valid(j->valuestring, n)) {
			snprintf(why, 128, "invalid UTF-8 in a JSON string");
			return false;
		}
		alyx__json_str(b, j->valuestring, n);
	} else if (cJSON_IsArray(j) || cJSON_IsObject(j)) {
		bool obj = cJSON_IsObject(j);

		alyx__buf_addc(b, obj ? '{' : '[');
		for (c = j->child; c; c = c->next) {
			if (c != j->child)
				alyx__buf_addc(b, ',');
			if (obj) {
				const char *k = c->string ? c->string : "";

				n = strlen(k);
				if (!alyx__utf8_valid(k, n)) {
					snprintf(why, 128,
						 "invalid UTF-8 in a JSON key");
					return false;
				}
				alyx__json_str(b, k, n);
				alyx__buf_addc(b, ':');
			}
			if (!write_cjson(b, c, depth + 1, why))
				return false;
		}
		alyx__buf_addc(b, obj ? '}' : ']');
	} else {
		snprintf(why, 128, "not a JSON value");
		return false;
	}
	return true;
}

/* Stores `j` compactly as the TEXT of a json field. */
static bool json_to_value(const cJSON *j, alyx__value *out, char why[128])
{
	alyx_buf b;

	alyx__buf_init(&b, ALYX_DOC_MAX_STRING);
	if (!write_cjson(&b, j, 1, why)) {
		alyx__buf_free(&b);
		return false;
	}
	if (b.err) {
		snprintf(why, 128, b.err == ALYX_E_TOOBIG ?
			 "JSON value larger than 16 MiB" : ALYX_DOC_WHY_NOMEM);
		alyx__buf_free(&b);
		return false;
	}
	memset(out, 0, sizeof(*out));
	out->kind = ALYX_V_TEXT;
	out->n = b.len;
	out->s = alyx__buf_take(&b);
	if (!out->s) {
		snprintf(why, 128, ALYX_DOC_WHY_NOMEM);
		out->kind = ALYX_V_NULL;
		out->n = 0;
		return false;
	}
	return true;
}

/*
 * A fast, allocation-free JSON syntax check of stored text (json fields
 * may have been written by other tools, e.g. the sqlite3 shell).  Returns
 * the position after the value, or NULL if it is not valid JSON.
 */
static inline const char *skip_ws(const char *p, const char *e)
{
	if (p < e && (unsigned char)*p > ' ')
		return p;
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* A string from its opening quote: the position after its closing one,
 * or NULL.  Its UTF-8 is checked here: outside strings the grammar lets
 * no byte above 0x7F through.  The plain runs are skipped as the string
 * writer skips them (alyx__plain_skip). */
static const char *scan_string(const char *p, const char *e)
{
	const unsigned char *u = (const unsigned char *)p + 1;
	const unsigned char *ue = (const unsigned char *)e, *start = u;
	bool high = false;

	for (;;) {
		u += alyx__plain_skip(u, (size_t)(ue - u));
		if (u >= ue)
			return NULL;	/* no closing quote */
		if (*u == '"')
			return !high || alyx__utf8_valid(
				(const char *)start, (size_t)(u - start)) ?
				(const char *)u + 1 : NULL;
		if (*u >= 0x80) {
			high = true;
			u++;
			continue;
		}
		if (*u != '\\' || ++u >= ue)
			return NULL;	/* a control byte, or a lone backslash */
		if (*u == 'u') {
			int k;

			for (k = 1; k <= 4; k++)
				if (u + k >= ue || !isxdigit(u[k]))
					return NULL;
			u += 5;
		} else if (!*u || !strchr("\"\\/bfnrt", *u)) {
			return NULL;
		} else {
			u++;
		}
	}
}

/* scan_string for the usual short string of plain bytes: its first 16
 * bytes are tested one by one against the string writer's table, and
 * anything else (a longer string, an escape, a high byte, the end of the
 * text) goes to scan_string from the start. */
static inline const char *scan_str(const char *p, const char *e)
{
	const unsigned char *u = (const unsigned char *)p + 1;
	const unsigned char *lim = (const unsigned char *)e;

	if (lim - u > 16)
		lim = u + 16;
	while (u < lim && !alyx__json_class[*u])
		u++;
	if (u < lim && *u == '"')
		return (const char *)u + 1;
	return scan_string(p, e);
}

static const char *scan_number(const char *p, const char *e)
{
	const char *s;

	if (p < e && *p == '-')
		p++;
	if (p >= e || !isdigit((unsigned char)*p))
		return NULL;
	if (*p == '0')
		p++;
	else
		while (p < e && isdigit((unsigned char)*p))
			p++;
	if (p < e && *p == '.') {
		s = ++p;
		while (p < e && isdigit((unsigned char)*p))
			p++;
		if (p == s)
			return NULL;
	}
	if (p < e && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < e && (*p == '+' || *p == '-'))
			p++;
		s = p;
		while (p < e && isdigit((unsigned char)*p))
			p++;
		if (p == s)
			return NULL;
	}
	return p;
}

static const char *scan_value(const char *p, const char *e, int depth)
{
	p = skip_ws(p, e);
	if (p >= e || depth > ALYX_DOC_JSON_DEPTH * 4)
		return NULL;
	switch (*p) {
	case '"':
		return scan_str(p, e);
	case '{':
	case '[': {
		char close = *p == '{' ? '}' : ']';
		bool obj = *p == '{';

		p = skip_ws(p + 1, e);
		if (p < e && *p == close)
			return p + 1;
		for (;;) {
			if (obj) {
				p = skip_ws(p, e);
				if (p >= e || *p != '"')
					return NULL;
				p = scan_str(p, e);
				if (!p)
					return NULL;
				p = skip_ws(p, e);
				if (p >= e || *p != ':')
					return NULL;
				p++;
			}
			p = skip_ws(p, e);
			p = p < e && *p == '"' ? scan_str(p, e) :
				scan_value(p, e, depth + 1);
			if (!p)
				return NULL;
			p = skip_ws(p, e);
			if (p < e && *p == ',') {
				p++;
				continue;
			}
			if (p < e && *p == close)
				return p + 1;
			return NULL;
		}
	}
	case 't':
		return (e - p >= 4 && !memcmp(p, "true", 4)) ? p + 4 : NULL;
	case 'f':
		return (e - p >= 5 && !memcmp(p, "false", 5)) ? p + 5 : NULL;
	case 'n':
		return (e - p >= 4 && !memcmp(p, "null", 4)) ? p + 4 : NULL;
	default:
		return scan_number(p, e);
	}
}

static bool stored_json_valid(const char *s, size_t n)
{
	const char *e = s + n, *p = scan_value(s, e, 0);

	return p && skip_ws(p, e) == e;
}

/* ---- conversions ---- */

static bool set_text(alyx__value *out, const char *s, size_t n,
		     char why[128])
{
	if (set_bytes(out, ALYX_V_TEXT, s, n) != ALYX_OK) {
		snprintf(why, 128, ALYX_DOC_WHY_NOMEM);
		return false;
	}
	return true;
}

static bool text_value(alyx__value *out, const char *s, size_t n,
		       char why[128])
{
	if (n > ALYX_DOC_MAX_STRING) {
		snprintf(why, 128, "longer than the 16 MiB limit");
		return false;
	}
	if (!alyx__utf8_valid(s, n)) {
		snprintf(why, 128, "invalid UTF-8");
		return false;
	}
	return set_text(out, s, n, why);
}

static bool uuid_value(alyx__value *out, const char *s, size_t n,
		       char why[128])
{
	size_t i;

	if (!alyx__uuid_valid(s, n)) {
		snprintf(why, 128, "expected a UUID "
			 "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)");
		return false;
	}
	if (!set_text(out, s, n, why))
		return false;
	/* One spelling per id, so equality and references work. */
	for (i = 0; i < n; i++)
		out->s[i] = (char)tolower((unsigned char)out->s[i]);
	return true;
}

static bool ts_value_ms(alyx__value *out, int64_t ms, char why[128])
{
	char iso[25];

	if (ms < TS_MIN_MS || ms > TS_MAX_MS) {
		snprintf(why, 128, "timestamp outside years 0000-9999");
		return false;
	}
	alyx__iso8601_ms(ms, iso);
	return set_text(out, iso, 24, why);
}

static bool ts_value_text(alyx__value *out, const char *s, size_t n,
			  char why[128])
{
	int64_t ms;

	if (!alyx__parse_iso8601(s, n, &ms)) {
		snprintf(why, 128, "expected an ISO-8601 timestamp "
			 "(2026-01-02T03:04:05.006Z)");
		return false;
	}
	return ts_value_ms(out, ms, why);
}

/* What alyx__base64_dec accepts; when it fails on such text, it ran out
 * of memory. */
static bool b64_syntax_ok(const char *s, size_t n)
{
	size_t i, pad = 0;

	while (n > 0 && s[n - 1] == '=' && pad < 2) {
		n--;
		pad++;
	}
	if ((n + pad) % 4 == 1)
		return false;
	for (i = 0; i < n; i++)
		if (!s[i] || (!isalnum((unsigned char)s[i]) &&
			      !strchr("+/-_", s[i])))
			return false;
	return true;
}

static bool blob_value(alyx__value *out, const char *s, size_t n,
		       char why[128])
{
	unsigned char *d = NULL;
	size_t dn = 0;

	if (n > ALYX_DOC_MAX_STRING / 3 * 4 + 4) {
		snprintf(why, 128, "blob larger than the 16 MiB limit");
		return false;
	}
	if (!alyx__base64_dec(s, n, &d, &dn)) {
		snprintf(why, 128, b64_syntax_ok(s, n) ? ALYX_DOC_WHY_NOMEM :
			 "expected base64 text");
		return false;
	}
	memset(out, 0, sizeof(*out));
	out->kind = ALYX_V_BLOB;
	out->s = (char *)d;
	out->n = dn;
	return true;
}

static bool int_from_double(alyx__value *out, double d, char why[128])
{
	if (!isfinite(d) || d != trunc(d)) {
		snprintf(why, 128, "expected an integer");
		return false;
	}
	if (fabs(d) > ALYX_DOC_INT_EXACT) {
		snprintf(why, 128, "integer beyond +-2^53-1 cannot be exact "
			 "in JSON input");
		return false;
	}
	memset(out, 0, sizeof(*out));
	out->kind = ALYX_V_INT;
	out->i = (int64_t)d;
	return true;
}

bool alyx__value_from_json(const alyx__field *f, const cJSON *j,
			   alyx__value *out, char why[128])
{
	memset(out, 0, sizeof(*out));
	out->kind = ALYX_V_NULL;
	why[0] = '\0';
	if (!j || cJSON_IsNull(j))
		return true;
	switch (f->type) {
	case ALYX_T_UUID:
		if (!cJSON_IsString(j))
			break;
		return uuid_value(out, j->valuestring,
				  strlen(j->valuestring), why);
	case ALYX_T_STRING:
	case ALYX_T_TEXT:
		if (!cJSON_IsString(j))
			break;
		return text_value(out, j->valuestring,
				  strlen(j->valuestring), why);
	case ALYX_T_INT:
		if (!cJSON_IsNumber(j))
			break;
		return int_from_double(out, j->valuedouble, why);
	case ALYX_T_FLOAT:
		if (!cJSON_IsNumber(j))
			break;
		if (!isfinite(j->valuedouble)) {
			snprintf(why, 128, "number out of range");
			return false;
		}
		out->kind = ALYX_V_FLOAT;
		out->f = j->valuedouble;
		return true;
	case ALYX_T_BOOL:
		if (!cJSON_IsBool(j))
			break;
		out->kind = ALYX_V_INT;
		out->i = cJSON_IsTrue(j) ? 1 : 0;
		return true;
	case ALYX_T_TIMESTAMP:
		if (cJSON_IsString(j))
			return ts_value_text(out, j->valuestring,
					     strlen(j->valuestring), why);
		if (cJSON_IsNumber(j)) {
			double d = j->valuedouble;

			if (!isfinite(d) || d != trunc(d) ||
			    d < (double)TS_MIN_MS || d > (double)TS_MAX_MS) {
				snprintf(why, 128, "expected an ISO-8601 "
					 "timestamp or integer epoch "
					 "milliseconds");
				return false;
			}
			return ts_value_ms(out, (int64_t)d, why);
		}
		break;
	case ALYX_T_JSON:
		return json_to_value(j, out, why);
	case ALYX_T_BLOB:
		if (!cJSON_IsString(j))
			break;
		return blob_value(out, j->valuestring,
				  strlen(j->valuestring), why);
	}
	switch (f->type) {
	case ALYX_T_INT: snprintf(why, 128, "expected an integer"); break;
	case ALYX_T_FLOAT: snprintf(why, 128, "expected a number"); break;
	case ALYX_T_BOOL: snprintf(why, 128, "expected true or false"); break;
	case ALYX_T_TIMESTAMP:
		snprintf(why, 128, "expected an ISO-8601 timestamp string");
		break;
	case ALYX_T_BLOB:
		snprintf(why, 128, "expected a base64 string");
		break;
	case ALYX_T_UUID:
		snprintf(why, 128, "expected a UUID string");
		break;
	default: snprintf(why, 128, "expected a string"); break;
	}
	return false;
}

/* Strict decimal int64: optional sign, digits, nothing else. */
static bool parse_i64(const char *s, size_t n, int64_t *v, bool *overflow)
{
	size_t i = 0;
	bool neg = false;
	uint64_t u = 0, lim;

	*overflow = false;
	if (i < n && (s[i] == '-' || s[i] == '+')) {
		neg = s[i] == '-';
		i++;
	}
	if (i >= n)
		return false;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < n; i++) {
		unsigned dgt;

		if (s[i] < '0' || s[i] > '9')
			return false;
		dgt = (unsigned)(s[i] - '0');
		if (u > (lim - dgt) / 10) {
			*overflow = true;
			return false;
		}
		u = u * 10 + dgt;
	}
	*v = neg ? (int64_t)(0 - u) : (int64_t)u;
	return true;
}

/* Strict decimal float: [-+]digits[.digits][e[-+]digits], finite. */
static bool parse_f64(const char *s, size_t n, double *v)
{
	char tmp[64], *end = NULL;
	size_t i;

	if (!n || n >= sizeof(tmp))
		return false;
	for (i = 0; i < n; i++)
		if (!strchr("0123456789+-.eE", s[i]) || !s[i])
			return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	errno = 0;
	*v = strtod(tmp, &end);
	return end == tmp + n && isfinite(*v) && end != tmp;
}

bool alyx__value_from_text(const alyx__field *f, const char *s, size_t n,
			   alyx__value *out, char why[128])
{
	int64_t i;
	double d;
	bool ovf;

	memset(out, 0, sizeof(*out));
	out->kind = ALYX_V_NULL;
	why[0] = '\0';
	switch (f->type) {
	case ALYX_T_UUID:
		return uuid_value(out, s, n, why);
	case ALYX_T_STRING:
	case ALYX_T_TEXT:
		return text_value(out, s, n, why);
	case ALYX_T_INT:
		if (parse_i64(s, n, &i, &ovf)) {
			out->kind = ALYX_V_INT;
			out->i = i;
			return true;
		}
		if (ovf) {
			snprintf(why, 128, "integer out of the 64-bit range");
			return false;
		}
		/* "1.0", "1e3": integral decimals are fine. */
		if (parse_f64(s, n, &d) && d == trunc(d) &&
		    fabs(d) <= ALYX_DOC_INT_EXACT) {
			out->kind = ALYX_V_INT;
			out->i = (int64_t)d;
			return true;
		}
		snprintf(why, 128, "expected an integer");
		return false;
	case ALYX_T_FLOAT:
		if (!parse_f64(s, n, &d)) {
			snprintf(why, 128, "expected a finite decimal number");
			return false;
		}
		out->kind = ALYX_V_FLOAT;
		out->f = d;
		return true;
	case ALYX_T_BOOL:
		if ((n == 4 && !memcmp(s, "true", 4)) ||
		    (n == 1 && s[0] == '1')) {
			out->kind = ALYX_V_INT;
			out->i = 1;
			return true;
		}
		if ((n == 5 && !memcmp(s, "false", 5)) ||
		    (n == 1 && s[0] == '0')) {
			out->kind = ALYX_V_INT;
			out->i = 0;
			return true;
		}
		snprintf(why, 128, "expected true, false, 1 or 0");
		return false;
	case ALYX_T_TIMESTAMP:
		if (parse_i64(s, n, &i, &ovf))
			return ts_value_ms(out, i, why);
		return ts_value_text(out, s, n, why);
	case ALYX_T_JSON: {
		cJSON *j;
		bool ok;

		if (n > ALYX_DOC_MAX_STRING) {
			snprintf(why, 128, "longer than the 16 MiB limit");
			return false;
		}
		j = cJSON_ParseWithLength(s, n);
		if (!j) {
			alyx_buf b;

			/* Not JSON: the text is taken as a JSON string. */
			if (!alyx__utf8_valid(s, n)) {
				snprintf(why, 128, "invalid UTF-8");
				return false;
			}
			alyx__buf_init(&b, ALYX_DOC_MAX_STRING * 2);
			alyx__json_str(&b, s, n);
			if (b.err) {
				alyx__buf_free(&b);
				snprintf(why, 128, ALYX_DOC_WHY_NOMEM);
				return false;
			}
			out->kind = ALYX_V_TEXT;
			out->n = b.len;
			out->s = alyx__buf_take(&b);
			return true;
		}
		ok = json_to_value(j, out, why);
		cJSON_Delete(j);
		return ok;
	}
	case ALYX_T_BLOB:
		return blob_value(out, s, n, why);
	}
	snprintf(why, 128, "unknown field type");
	return false;
}

/* ---- writing JSON ---- */

static void write_epoch_ms(alyx_buf *b, int64_t ms)
{
	char iso[25];

	if (ms < TS_MIN_MS || ms > TS_MAX_MS) {
		alyx__json_i64(b, ms);
		return;
	}
	alyx__iso8601_ms(ms, iso);
	alyx__json_str(b, iso, 24);
}

/* The boundary form of one value of field type `t`, given as its storage
 * kind and parts.  Shared by the column and the alyx__value writers. */
static void write_typed(alyx_buf *b, alyx__type t, alyx__vkind k,
			int64_t i, double d, const char *s, size_t n)
{
	switch (k) {
	case ALYX_V_NULL:
		alyx__buf_add(b, "null", 4);
		return;
	case ALYX_V_INT:
		if (t == ALYX_T_BOOL)
			alyx__json_bool(b, i != 0);
		else if (t == ALYX_T_FLOAT)
			alyx__json_f64(b, (double)i);
		else if (t == ALYX_T_TIMESTAMP)
			write_epoch_ms(b, i);
		else
			alyx__json_i64(b, i);
		return;
	case ALYX_V_FLOAT:
		if (t == ALYX_T_BOOL)
			alyx__json_bool(b, d != 0);
		else if (t == ALYX_T_INT && d == trunc(d) &&
			 fabs(d) <= ALYX_DOC_INT_EXACT)
			alyx__json_i64(b, (int64_t)d);
		else
			alyx__json_f64(b, d);
		return;
	case ALYX_V_TEXT:
		if (t == ALYX_T_JSON && stored_json_valid(s, n))
			alyx__buf_add(b, s, n);
		else if (t == ALYX_T_BLOB)
			goto blob;
		else
			alyx__json_str(b, s, n);
		return;
	case ALYX_V_BLOB:
	blob:
		alyx__buf_addc(b, '"');
		alyx__base64_enc(b, s, n);
		alyx__buf_addc(b, '"');
		return;
	}
}

/* A column value (protected by nothing: the connection is this thread's)
 * in the JSON boundary form of f. */
static void write_sqlvalue(alyx_buf *b, const alyx__field *f,
			   sqlite3_value *v)
{
	const char *s;

	switch (sqlite3_value_type(v)) {
	case SQLITE_INTEGER:
		write_typed(b, f->type, ALYX_V_INT, sqlite3_value_int64(v), 0,
			    NULL, 0);
		break;
	case SQLITE_FLOAT:
		write_typed(b, f->type, ALYX_V_FLOAT, 0,
			    sqlite3_value_double(v), NULL, 0);
		break;
	case SQLITE_TEXT:
		s = (const char *)sqlite3_value_text(v);
		write_typed(b, f->type, ALYX_V_TEXT, 0, 0, s ? s : "",
			    (size_t)sqlite3_value_bytes(v));
		break;
	case SQLITE_BLOB:
		s = sqlite3_value_blob(v);
		write_typed(b, f->type, ALYX_V_BLOB, 0, 0, s,
			    (size_t)sqlite3_value_bytes(v));
		break;
	default:
		alyx__buf_add(b, "null", 4);
		break;
	}
}

void alyx__value_write_column(alyx_buf *b, const alyx__field *f,
			      sqlite3_stmt *st, int col)
{
	/* One column call, then the value's own accessors: each
	 * sqlite3_column_* call checks the statement and error state
	 * again.  The connection is used by this thread alone, which is what
	 * reading an unprotected value asks for. */
	write_sqlvalue(b, f, sqlite3_column_value(st, col));
}

static inline void write_keyed(alyx_buf *b, const char *key, size_t k,
			       const alyx__field *f, sqlite3_stmt *st, int col)
{
	sqlite3_value *v = sqlite3_column_value(st, col);
	const char *s;
	size_t n;

	/* The usual values in one reservation with their key (the row
	 * writers of util/jsonrow.h); anything else as
	 * alyx__value_write_column. */
	switch (sqlite3_value_type(v)) {
	case SQLITE_TEXT:
		if (f->type == ALYX_T_BLOB)
			break;
		s = (const char *)sqlite3_value_text(v);
		if (!s)
			break;
		n = (size_t)sqlite3_value_bytes(v);
		if (f->type != ALYX_T_JSON) {
			if (alyx__json_kstr(b, key, k, s, n))
				return;
		} else if (stored_json_valid(s, n) &&
			   alyx__json_kraw(b, key, k, s, n)) {
			return;
		}
		break;
	case SQLITE_INTEGER:
		if (f->type == ALYX_T_INT) {
			if (alyx__json_ki64(b, key, k, sqlite3_value_int64(v)))
				return;
		} else if (f->type == ALYX_T_BOOL) {
			if (sqlite3_value_int64(v) ?
			    alyx__json_kraw(b, key, k, "true", 4) :
			    alyx__json_kraw(b, key, k, "false", 5))
				return;
		}
		break;
	case SQLITE_NULL:
		if (alyx__json_kraw(b, key, k, "null", 4))
			return;
		break;
	default:
		break;
	}
	alyx__buf_add(b, key, k);
	write_sqlvalue(b, f, v);
}

void alyx__value_write_row(alyx_buf *b, const alyx__colout *out, size_t n,
			   const char *keys, sqlite3_stmt *st)
{
	size_t i;

	for (i = 0; i < n; i++)
		write_keyed(b, keys + out[i].off, out[i].len, out[i].f, st,
			    out[i].col);
}

void alyx__value_write(alyx_buf *b, const alyx__field *f,
		       const alyx__value *v)
{
	write_typed(b, f->type, v->kind, v->i, v->f, v->s, v->n);
}

int alyx__value_from_column(sqlite3_stmt *st, int col, alyx__value *out)
{
	const void *p;
	int n;

	memset(out, 0, sizeof(*out));
	out->kind = ALYX_V_NULL;
	switch (sqlite3_column_type(st, col)) {
	case SQLITE_INTEGER:
		out->kind = ALYX_V_INT;
		out->i = sqlite3_column_int64(st, col);
		return ALYX_OK;
	case SQLITE_FLOAT:
		out->kind = ALYX_V_FLOAT;
		out->f = sqlite3_column_double(st, col);
		return ALYX_OK;
	case SQLITE_TEXT:
		p = sqlite3_column_text(st, col);
		n = sqlite3_column_bytes(st, col);
		if (!p)
			return ALYX_E_NOMEM;
		return set_bytes(out, ALYX_V_TEXT, p, (size_t)n);
	case SQLITE_BLOB:
		p = sqlite3_column_blob(st, col);
		n = sqlite3_column_bytes(st, col);
		return set_bytes(out, ALYX_V_BLOB, p, (size_t)n);
	default:
		return ALYX_OK;
	}
}
