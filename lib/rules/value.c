/*
 * value.c - CEL values: the evaluation arena, equality, ordering, map
 * lookup, timestamp/duration text forms and civil-date arithmetic.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules/rules-int.h"

struct alyx__cel_chunk {
	alyx__cel_chunk *next;
	size_t size;
	_Alignas(16) char data[];
};

void alyx__cel_run_init(alyx__cel_run *r)
{
	r->max_steps = ALYX_CEL_MAX_STEPS;
	r->max_bytes = ALYX_CEL_MAX_BYTES;
	r->steps = 0;
	r->used = 0;
	r->cur = r->first;
	r->end = r->first + sizeof(r->first);
	r->chunks = NULL;
	r->max_locals = (int)ALYX_ARRAY_LEN(r->local_buf);
	r->locals = r->local_buf;
}

void alyx__cel_run_reset(alyx__cel_run *r)
{
	alyx__cel_chunk *c = r->chunks, *nx;

	for (; c; c = nx) {
		nx = c->next;
		alyx__free(c);
	}
	r->chunks = NULL;
	r->steps = 0;
	r->used = 0;
	r->cur = r->first;
	r->end = r->first + sizeof(r->first);
	r->max_locals = (int)ALYX_ARRAY_LEN(r->local_buf);
	r->locals = r->local_buf;
}

void alyx__cel_run_free(alyx__cel_run *r)
{
	alyx__cel_run_reset(r);
}

void *alyx__cel_alloc(alyx__cel_run *r, size_t n)
{
	alyx__cel_chunk *c;
	size_t sz;
	void *p;

	n = (n + 15) & ~(size_t)15;
	if (n == 0)
		n = 16;
	if ((size_t)(r->end - r->cur) >= n) {
		p = r->cur;
		r->cur += n;
		return p;
	}
	sz = r->chunks ? r->chunks->size * 2 : 8192;
	if (sz > (1u << 20))
		sz = 1u << 20;
	if (sz < n)
		sz = n;
	if (r->used + sz > r->max_bytes) {
		if (r->used + n > r->max_bytes)
			return NULL;
		sz = n;
	}
	c = alyx__malloc(sizeof(*c) + sz);
	if (!c)
		return NULL;
	c->next = r->chunks;
	c->size = sz;
	r->chunks = c;
	r->used += sz;
	r->cur = c->data + n;
	r->end = c->data + sz;
	return c->data;
}

const char *alyx__cel_type_name(alyx__cel_kind t)
{
	switch (t) {
	case ALYX_CEL_NULL: return "null_type";
	case ALYX_CEL_BOOL: return "bool";
	case ALYX_CEL_INT: return "int";
	case ALYX_CEL_UINT: return "uint";
	case ALYX_CEL_DOUBLE: return "double";
	case ALYX_CEL_STRING: return "string";
	case ALYX_CEL_BYTES: return "bytes";
	case ALYX_CEL_LIST: return "list";
	case ALYX_CEL_MAP: return "map";
	case ALYX_CEL_TIMESTAMP: return "google.protobuf.Timestamp";
	case ALYX_CEL_DURATION: return "google.protobuf.Duration";
	case ALYX_CEL_TYPE: return "type";
	case ALYX_CEL_ERROR: return "error";
	}
	return "unknown";
}

/* ---- numbers across types ---- */

#define TWO63 9223372036854775808.0
#define TWO64 18446744073709551616.0

/*
 * int/uint against double as cel-go does: out-of-range doubles order
 * outside, otherwise the integer is converted to double (lossy near
 * 2^63), so 9223372036854775807 == 9223372036854775808.0.
 */
static int cmp_dd(double a, double b)
{
	return a < b ? -1 : a > b;
}

static int cmp_int_double(int64_t i, double d)
{
	if (isnan(d))
		return 2;
	if (d < -TWO63)
		return 1;
	if (d > TWO63)
		return -1;
	return cmp_dd((double)i, d);
}

static int cmp_uint_double(uint64_t u, double d)
{
	if (isnan(d))
		return 2;
	if (d < 0)
		return 1;
	if (d > TWO64)
		return -1;
	return cmp_dd((double)u, d);
}

static int cmp_int_uint(int64_t i, uint64_t u)
{
	if (i < 0)
		return -1;
	return (uint64_t)i < u ? -1 : (uint64_t)i > u ? 1 : 0;
}

static bool is_num(int k)
{
	return k == ALYX_CEL_INT || k == ALYX_CEL_UINT || k == ALYX_CEL_DOUBLE;
}

/* -1/0/1, or 2 when unordered (NaN).  Both must be numbers. */
static int cmp_num(const alyx__cel_val *a, const alyx__cel_val *b)
{
	switch (a->k * 16 + b->k) {
	case ALYX_CEL_INT * 16 + ALYX_CEL_INT:
		return a->v.i < b->v.i ? -1 : a->v.i > b->v.i;
	case ALYX_CEL_UINT * 16 + ALYX_CEL_UINT:
		return a->v.u < b->v.u ? -1 : a->v.u > b->v.u;
	case ALYX_CEL_DOUBLE * 16 + ALYX_CEL_DOUBLE:
		if (isnan(a->v.d) || isnan(b->v.d))
			return 2;
		return a->v.d < b->v.d ? -1 : a->v.d > b->v.d;
	case ALYX_CEL_INT * 16 + ALYX_CEL_UINT:
		return cmp_int_uint(a->v.i, b->v.u);
	case ALYX_CEL_UINT * 16 + ALYX_CEL_INT:
		return -cmp_int_uint(b->v.i, a->v.u);
	case ALYX_CEL_INT * 16 + ALYX_CEL_DOUBLE:
		return cmp_int_double(a->v.i, b->v.d);
	case ALYX_CEL_DOUBLE * 16 + ALYX_CEL_INT: {
		int c = cmp_int_double(b->v.i, a->v.d);
		return c == 2 ? 2 : -c;
	}
	case ALYX_CEL_UINT * 16 + ALYX_CEL_DOUBLE:
		return cmp_uint_double(a->v.u, b->v.d);
	case ALYX_CEL_DOUBLE * 16 + ALYX_CEL_UINT: {
		int c = cmp_uint_double(b->v.u, a->v.d);
		return c == 2 ? 2 : -c;
	}
	}
	return 2;
}

static int cmp_bytes(const alyx__cel_val *a, const alyx__cel_val *b)
{
	size_t n = a->n < b->n ? a->n : b->n;
	int c = n ? memcmp(a->v.s, b->v.s, n) : 0;

	if (c)
		return c < 0 ? -1 : 1;
	return a->n < b->n ? -1 : a->n > b->n;
}

bool cel_compare(const alyx__cel_val *a, const alyx__cel_val *b, int *c)
{
	if (is_num(a->k) && is_num(b->k)) {
		*c = cmp_num(a, b);
		return true;
	}
	if (a->k != b->k)
		return false;
	switch (a->k) {
	case ALYX_CEL_BOOL:
		*c = (int)a->v.b - (int)b->v.b;
		return true;
	case ALYX_CEL_STRING:
	case ALYX_CEL_BYTES:
		*c = cmp_bytes(a, b);
		return true;
	case ALYX_CEL_TIMESTAMP:
	case ALYX_CEL_DURATION:
		if (a->v.i != b->v.i)
			*c = a->v.i < b->v.i ? -1 : 1;
		else
			*c = a->ns < b->ns ? -1 : a->ns > b->ns;
		return true;
	default:
		return false;
	}
}

bool alyx__cel_equal(const alyx__cel_val *a, const alyx__cel_val *b)
{
	if (is_num(a->k) && is_num(b->k))
		return cmp_num(a, b) == 0;
	if (a->k != b->k)
		return false;
	switch (a->k) {
	case ALYX_CEL_NULL:
		return true;
	case ALYX_CEL_BOOL:
		return a->v.b == b->v.b;
	case ALYX_CEL_STRING:
	case ALYX_CEL_BYTES:
		return a->n == b->n && (!a->n || !memcmp(a->v.s, b->v.s, a->n));
	case ALYX_CEL_LIST:
		if (a->n != b->n)
			return false;
		for (size_t i = 0; i < a->n; i++)
			if (!alyx__cel_equal(&a->v.l[i], &b->v.l[i]))
				return false;
		return true;
	case ALYX_CEL_MAP:
		if (a->n != b->n)
			return false;
		for (size_t i = 0; i < a->n; i++) {
			const alyx__cel_val *o = cel_map_get(b, &a->v.l[2 * i]);
			if (!o || !alyx__cel_equal(o, &a->v.l[2 * i + 1]))
				return false;
		}
		return true;
	case ALYX_CEL_TIMESTAMP:
	case ALYX_CEL_DURATION:
		return a->v.i == b->v.i && a->ns == b->ns;
	case ALYX_CEL_TYPE:
		return a->v.i == b->v.i;
	default:
		return false;
	}
}

const alyx__cel_val *cel_map_get(const alyx__cel_val *m,
				 const alyx__cel_val *key)
{
	const alyx__cel_val *kv = m->v.l;

	if (key->k == ALYX_CEL_STRING)
		return cel_map_field(m, key->v.s, key->n);
	for (size_t i = 0; i < m->n; i++)
		if (alyx__cel_equal(&kv[2 * i], key))
			return &kv[2 * i + 1];
	return NULL;
}

const alyx__cel_val *cel_map_field(const alyx__cel_val *m, const char *name,
				   size_t n)
{
	const alyx__cel_val *kv = m->v.l;

	for (size_t i = 0; i < m->n; i++) {
		const alyx__cel_val *k = &kv[2 * i];
		if (k->k == ALYX_CEL_STRING && k->n == n &&
		    (!n || !memcmp(k->v.s, name, n)))
			return &kv[2 * i + 1];
	}
	return NULL;
}

/* ---- civil dates (proleptic Gregorian) ---- */

int64_t cel_days(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void cel_civil(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int digits(const char *s, size_t n, size_t at, int count, bool *ok)
{
	int v = 0;

	if (at + (size_t)count > n) {
		*ok = false;
		return 0;
	}
	for (int i = 0; i < count; i++) {
		char c = s[at + (size_t)i];
		if (c < '0' || c > '9') {
			*ok = false;
			return 0;
		}
		v = v * 10 + (c - '0');
	}
	return v;
}

bool alyx__cel_parse_timestamp(const char *s, size_t n, int64_t *sec,
			       int32_t *ns)
{
	bool ok = true;
	int y, mo, d, h, mi, se, frac = 0;
	size_t i;
	int64_t off = 0;
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31,
				    30, 31};

	if (n < 20)
		return false;
	y = digits(s, n, 0, 4, &ok);
	mo = digits(s, n, 5, 2, &ok);
	d = digits(s, n, 8, 2, &ok);
	h = digits(s, n, 11, 2, &ok);
	mi = digits(s, n, 14, 2, &ok);
	se = digits(s, n, 17, 2, &ok);
	if (!ok || s[4] != '-' || s[7] != '-' ||
	    (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
		return false;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 ||
	    mi > 59 || se > 59)
		return false;
	if (mo == 2 && d == 29 &&
	    !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return false;
	i = 19;
	if (i < n && s[i] == '.') {
		int nd = 0;
		i++;
		while (i < n && s[i] >= '0' && s[i] <= '9') {
			if (nd < 9) {
				frac = frac * 10 + (s[i] - '0');
				nd++;
			} else {
				return false;
			}
			i++;
		}
		if (nd == 0)
			return false;
		for (; nd < 9; nd++)
			frac *= 10;
	}
	if (i >= n)
		return false;
	if (s[i] == 'Z' || s[i] == 'z') {
		i++;
	} else if (s[i] == '+' || s[i] == '-') {
		int oh = digits(s, n, i + 1, 2, &ok);
		int om = digits(s, n, i + 4, 2, &ok);
		if (!ok || s[i + 3] != ':' || oh > 23 || om > 59)
			return false;
		off = (oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
		i += 6;
	} else {
		return false;
	}
	if (i != n)
		return false;
	int64_t t = cel_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + se -
		    off;
	if (t < CEL_TS_MIN || t > CEL_TS_MAX)
		return false;
	*sec = t;
	*ns = frac;
	return true;
}

bool alyx__cel_parse_duration(const char *s, size_t n, int64_t *sec,
			      int32_t *ns)
{
	__int128 total = 0;
	bool neg = false;
	size_t i = 0;
	const __int128 limit = INT64_MAX;

	if (i < n && (s[i] == '-' || s[i] == '+')) {
		neg = s[i] == '-';
		i++;
	}
	if (i == n)
		return false;
	if (n - i == 1 && s[i] == '0') {
		*sec = 0;
		*ns = 0;
		return true;
	}
	while (i < n) {
		__int128 whole = 0, fr = 0, scale = 1;
		bool any = false;
		while (i < n && s[i] >= '0' && s[i] <= '9') {
			whole = whole * 10 + (s[i] - '0');
			if (whole > limit)
				return false;
			i++;
			any = true;
		}
		if (i < n && s[i] == '.') {
			i++;
			while (i < n && s[i] >= '0' && s[i] <= '9') {
				if (scale < (__int128)1000000000000000000LL) {
					fr = fr * 10 + (s[i] - '0');
					scale *= 10;
				}
				i++;
				any = true;
			}
		}
		if (!any)
			return false;
		__int128 unit;
		if (i + 1 < n && s[i] == 'n' && s[i + 1] == 's') {
			unit = 1;
			i += 2;
		} else if (i + 1 < n && s[i] == 'u' && s[i + 1] == 's') {
			unit = 1000;
			i += 2;
		} else if (i + 2 < n && (unsigned char)s[i] == 0xC2 &&
			   (unsigned char)s[i + 1] == 0xB5 && s[i + 2] == 's') {
			unit = 1000;
			i += 3;
		} else if (i + 2 < n && (unsigned char)s[i] == 0xCE &&
			   (unsigned char)s[i + 1] == 0xBC && s[i + 2] == 's') {
			unit = 1000;
			i += 3;
		} else if (i + 1 < n && s[i] == 'm' && s[i + 1] == 's') {
			unit = 1000000;
			i += 2;
		} else if (i < n && s[i] == 's') {
			unit = 1000000000;
			i++;
		} else if (i < n && s[i] == 'm') {
			unit = (__int128)60 * 1000000000;
			i++;
		} else if (i < n && s[i] == 'h') {
			unit = (__int128)3600 * 1000000000;
			i++;
		} else {
			return false;
		}
		total += whole * unit + fr * unit / scale;
		if (total > limit)
			return false;
	}
	if (neg)
		total = -total;
	*sec = (int64_t)(total / 1000000000);
	*ns = (int32_t)(total % 1000000000);
	return true;
}

/* ---- text forms ---- */

void cel_fmt_timestamp(alyx_buf *b, int64_t sec, int32_t ns);
void cel_fmt_duration(alyx_buf *b, int64_t sec, int32_t ns);
void cel_fmt_double(alyx_buf *b, double d);

void cel_fmt_timestamp(alyx_buf *b, int64_t sec, int32_t ns)
{
	int64_t days = sec / 86400, rem = sec % 86400, y;
	int m, d;

	if (rem < 0) {
		rem += 86400;
		days--;
	}
	cel_civil(days, &y, &m, &d);
	alyx__buf_addf(b, "%04lld-%02d-%02dT%02d:%02d:%02d", (long long)y, m,
		       d, (int)(rem / 3600), (int)(rem / 60 % 60),
		       (int)(rem % 60));
	if (ns) {
		char f[16];
		int k = snprintf(f, sizeof(f), "%09d", (int)ns);
		while (k > 0 && f[k - 1] == '0')
			f[--k] = 0;
		alyx__buf_addf(b, ".%s", f);
	}
	alyx__buf_addc(b, 'Z');
}

void cel_fmt_duration(alyx_buf *b, int64_t sec, int32_t ns)
{
	bool neg = sec < 0 || ns < 0;
	uint64_t s = sec < 0 ? (uint64_t)0 - (uint64_t)sec : (uint64_t)sec;
	int32_t n = ns < 0 ? -ns : ns;

	alyx__buf_addf(b, "%s%llu", neg ? "-" : "", (unsigned long long)s);
	if (n) {
		char f[16];
		int k = snprintf(f, sizeof(f), "%09d", (int)n);
		while (k > 0 && f[k - 1] == '0')
			f[--k] = 0;
		alyx__buf_addf(b, ".%s", f);
	}
	alyx__buf_addc(b, 's');
}

/* Go's strconv.FormatFloat(d, 'g', -1, 64). */
void cel_fmt_double(alyx_buf *b, double d)
{
	char e[40], out[64];
	int prec;

	if (isnan(d)) {
		alyx__buf_adds(b, "NaN");
		return;
	}
	if (isinf(d)) {
		alyx__buf_adds(b, d > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (d == 0) {
		alyx__buf_adds(b, signbit(d) ? "-0" : "0");
		return;
	}
	/* shortest digits that round-trip */
	for (prec = 1; prec <= 17; prec++) {
		snprintf(e, sizeof(e), "%.*e", prec - 1, d);
		if (strtod(e, NULL) == d)
			break;
	}
	char *ep = strchr(e, 'e');
	int exp = (int)strtol(ep + 1, NULL, 10);
	if (exp < -4 || exp >= 6) {
		/* mantissa digits, then e+XX with at least two digits */
		*ep = 0;
		alyx__buf_addf(b, "%se%c%02d", e, exp < 0 ? '-' : '+',
			       exp < 0 ? -exp : exp);
		return;
	}
	int decimals = prec - 1 - exp;
	if (decimals < 0)
		decimals = 0;
	snprintf(out, sizeof(out), "%.*f", decimals, d);
	alyx__buf_adds(b, out);
}

void alyx__cel_val_format(alyx_buf *b, const alyx__cel_val *v)
{
	switch (v->k) {
	case ALYX_CEL_NULL:
		alyx__buf_adds(b, "null");
		break;
	case ALYX_CEL_BOOL:
		alyx__buf_adds(b, v->v.b ? "true" : "false");
		break;
	case ALYX_CEL_INT:
		alyx__buf_addf(b, "%lld", (long long)v->v.i);
		break;
	case ALYX_CEL_UINT:
		alyx__buf_addf(b, "%lluu", (unsigned long long)v->v.u);
		break;
	case ALYX_CEL_DOUBLE:
		cel_fmt_double(b, v->v.d);
		break;
	case ALYX_CEL_STRING:
		alyx__json_str(b, v->v.s, v->n);
		break;
	case ALYX_CEL_BYTES:
		alyx__buf_adds(b, "b");
		alyx__json_str(b, v->v.s, v->n);
		break;
	case ALYX_CEL_LIST:
		alyx__buf_addc(b, '[');
		for (size_t i = 0; i < v->n; i++) {
			if (i)
				alyx__buf_adds(b, ", ");
			alyx__cel_val_format(b, &v->v.l[i]);
		}
		alyx__buf_addc(b, ']');
		break;
	case ALYX_CEL_MAP:
		alyx__buf_addc(b, '{');
		for (size_t i = 0; i < v->n; i++) {
			if (i)
				alyx__buf_adds(b, ", ");
			alyx__cel_val_format(b, &v->v.l[2 * i]);
			alyx__buf_adds(b, ": ");
			alyx__cel_val_format(b, &v->v.l[2 * i + 1]);
		}
		alyx__buf_addc(b, '}');
		break;
	case ALYX_CEL_TIMESTAMP:
		alyx__buf_adds(b, "timestamp(\"");
		cel_fmt_timestamp(b, v->v.i, v->ns);
		alyx__buf_adds(b, "\")");
		break;
	case ALYX_CEL_DURATION:
		alyx__buf_adds(b, "duration(\"");
		cel_fmt_duration(b, v->v.i, v->ns);
		alyx__buf_adds(b, "\")");
		break;
	case ALYX_CEL_TYPE:
		alyx__buf_adds(b, alyx__cel_type_name((alyx__cel_kind)v->v.i));
		break;
	case ALYX_CEL_ERROR:
		alyx__buf_addf(b, "error: %s", v->v.e->msg);
		break;
	}
}
