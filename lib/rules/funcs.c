/*
 * funcs.c - CEL's standard functions: size, string tests, matches (pcre2),
 * type conversions, timestamp/duration constructors and getters.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "rules/rules-int.h"

void cel_fmt_timestamp(alyx_buf *b, int64_t sec, int32_t ns);
void cel_fmt_duration(alyx_buf *b, int64_t sec, int32_t ns);
void cel_fmt_double(alyx_buf *b, double d);

static const struct {
	const char *name;
	cel_fn id;
} fn_table[] = {
	{"size", F_SIZE}, {"contains", F_CONTAINS},
	{"startsWith", F_STARTSWITH}, {"endsWith", F_ENDSWITH},
	{"matches", F_MATCHES}, {"int", F_INT}, {"uint", F_UINT},
	{"double", F_DOUBLE}, {"string", F_STRING}, {"bytes", F_BYTES},
	{"bool", F_BOOL}, {"dyn", F_DYN}, {"type", F_TYPE},
	{"timestamp", F_TIMESTAMP}, {"duration", F_DURATION},
	{"getFullYear", F_GETFULLYEAR}, {"getMonth", F_GETMONTH},
	{"getDate", F_GETDATE}, {"getDayOfMonth", F_GETDAYOFMONTH},
	{"getDayOfWeek", F_GETDAYOFWEEK}, {"getDayOfYear", F_GETDAYOFYEAR},
	{"getHours", F_GETHOURS}, {"getMinutes", F_GETMINUTES},
	{"getSeconds", F_GETSECONDS},
	{"getMilliseconds", F_GETMILLISECONDS},
};

cel_fn cel_fn_lookup(const char *name, size_t n)
{
	for (size_t i = 0; i < ALYX_ARRAY_LEN(fn_table); i++)
		if (strlen(fn_table[i].name) == n &&
		    !memcmp(fn_table[i].name, name, n))
			return fn_table[i].id;
	return F_UNKNOWN;
}

/* ---- regular expressions ---- */

void *cel_regex_compile(const char *pat, size_t n, char *why, size_t whylen)
{
	int ec;
	PCRE2_SIZE eo;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, n,
				       PCRE2_UTF |
					       PCRE2_DOLLAR_ENDONLY,
				       &ec, &eo, NULL);

	if (!re) {
		PCRE2_UCHAR msg[120];
		pcre2_get_error_message(ec, msg, sizeof(msg));
		snprintf(why, whylen, "invalid regular expression at %zu: %s",
			 (size_t)eo, (const char *)msg);
		return NULL;
	}
	return re;
}

void cel_regex_free(void *re)
{
	pcre2_code_free(re);
}

int cel_regex_match(void *re, const char *s, size_t n)
{
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
	pcre2_match_context *mc = pcre2_match_context_create(NULL);
	int rc;

	if (!md || !mc) {
		pcre2_match_data_free(md);
		pcre2_match_context_free(mc);
		return -1;
	}
	/* bound backtracking: RE2 is linear, PCRE2 is not */
	pcre2_set_match_limit(mc, 200000);
	pcre2_set_depth_limit(mc, 10000);
	pcre2_set_heap_limit(mc, 8192);	/* KiB */
	rc = pcre2_match(re, (PCRE2_SPTR)s, n, 0, 0, md, mc);
	pcre2_match_data_free(md);
	pcre2_match_context_free(mc);
	if (rc >= 0)
		return 1;
	return rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
}

/* ---- helpers ---- */

static alyx__cel_val bad_args(cel_ectx *x, const cel_node *n,
			      const alyx__cel_val *args, size_t nargs)
{
	char buf[200];
	size_t o = 0;

	if (n->slot == F_UNKNOWN)
		return cel_errorf(x->r, n->pos,
				  "undeclared reference to '%.*s'",
				  (int)n->name_len, n->name);
	buf[0] = 0;
	for (size_t i = 0; i < nargs && o < sizeof(buf) - 40; i++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s",
				      i ? ", " : "",
				      alyx__cel_type_name(args[i].k));
	return cel_errorf(x->r, n->pos,
			  "no such overload: %.*s applied to (%s)",
			  (int)n->name_len, n->name, buf);
}

static alyx__cel_val str_from_buf(cel_ectx *x, const cel_node *n,
				  alyx_buf *b)
{
	if (b->err || !b->data) {
		alyx__buf_free(b);
		return cel_errorf(x->r, n->pos, "out of memory");
	}
	char *s = alyx__cel_alloc(x->r, b->len + 1);
	if (!s) {
		alyx__buf_free(b);
		return cel_errorf(x->r, n->pos, "memory limit exceeded");
	}
	memcpy(s, b->data, b->len + 1);
	alyx__cel_val v = alyx__cel_str(s, b->len);
	alyx__buf_free(b);
	return v;
}

static size_t utf8_count(const char *s, size_t n)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		c += ((unsigned char)s[i] & 0xC0) != 0x80;
	return c;
}

static bool has_sub(const alyx__cel_val *s, const alyx__cel_val *t)
{
	if (t->n == 0)
		return true;
	if (t->n > s->n)
		return false;
	return memmem(s->v.s, s->n, t->v.s, t->n) != NULL;
}

/* ---- conversions ---- */

static alyx__cel_val to_int(cel_ectx *x, const cel_node *n,
			    const alyx__cel_val *a)
{
	switch (a->k) {
	case ALYX_CEL_INT:
		return *a;
	case ALYX_CEL_UINT:
		if (a->v.u > (uint64_t)INT64_MAX)
			return cel_errorf(x->r, n->pos, "int range error");
		return alyx__cel_int((int64_t)a->v.u);
	case ALYX_CEL_DOUBLE:
		if (!(a->v.d > -9223372036854775808.0 &&
		      a->v.d < 9223372036854775808.0))
			return cel_errorf(x->r, n->pos, "int range error");
		return alyx__cel_int((int64_t)a->v.d);
	case ALYX_CEL_STRING: {
		char tmp[32], *end;
		if (a->n == 0 || a->n >= sizeof(tmp))
			goto bad;
		memcpy(tmp, a->v.s, a->n);
		tmp[a->n] = 0;
		if (!(tmp[0] == '-' || tmp[0] == '+' ||
		      (tmp[0] >= '0' && tmp[0] <= '9')))
			goto bad;
		errno = 0;
		long long v = strtoll(tmp, &end, 10);
		if (errno || *end)
			goto bad;
		return alyx__cel_int(v);
bad:
		return cel_errorf(x->r, n->pos,
				  "cannot convert string to int");
	}
	case ALYX_CEL_TIMESTAMP:
		return alyx__cel_int(a->v.i);
	case ALYX_CEL_DURATION: {
		__int128 t = (__int128)a->v.i * 1000000000 + a->ns;
		if (t > INT64_MAX || t < INT64_MIN)
			return cel_errorf(x->r, n->pos, "int range error");
		return alyx__cel_int((int64_t)t);
	}
	default:
		return bad_args(x, n, a, 1);
	}
}

static alyx__cel_val to_uint(cel_ectx *x, const cel_node *n,
			     const alyx__cel_val *a)
{
	switch (a->k) {
	case ALYX_CEL_UINT:
		return *a;
	case ALYX_CEL_INT:
		if (a->v.i < 0)
			return cel_errorf(x->r, n->pos, "uint range error");
		return alyx__cel_uint((uint64_t)a->v.i);
	case ALYX_CEL_DOUBLE:
		if (!(a->v.d > -1.0 && a->v.d < 18446744073709551616.0))
			return cel_errorf(x->r, n->pos, "uint range error");
		return alyx__cel_uint((uint64_t)a->v.d);
	case ALYX_CEL_STRING: {
		char tmp[32], *end;
		if (a->n == 0 || a->n >= sizeof(tmp))
			goto bad;
		memcpy(tmp, a->v.s, a->n);
		tmp[a->n] = 0;
		if (!(tmp[0] >= '0' && tmp[0] <= '9'))
			goto bad;
		errno = 0;
		unsigned long long v = strtoull(tmp, &end, 10);
		if (errno || *end)
			goto bad;
		return alyx__cel_uint(v);
bad:
		return cel_errorf(x->r, n->pos,
				  "cannot convert string to uint");
	}
	default:
		return bad_args(x, n, a, 1);
	}
}

static alyx__cel_val to_double(cel_ectx *x, const cel_node *n,
			       const alyx__cel_val *a)
{
	switch (a->k) {
	case ALYX_CEL_DOUBLE:
		return *a;
	case ALYX_CEL_INT:
		return alyx__cel_double((double)a->v.i);
	case ALYX_CEL_UINT:
		return alyx__cel_double((double)a->v.u);
	case ALYX_CEL_STRING: {
		char tmp[400], *end;
		if (a->n == 0 || a->n >= sizeof(tmp) || a->v.s[0] == ' ' ||
		    a->v.s[0] == '\t' || a->v.s[0] == '\n')
			goto bad;
		memcpy(tmp, a->v.s, a->n);
		tmp[a->n] = 0;
		if (strlen(tmp) != a->n)
			goto bad;
		double d = strtod(tmp, &end);
		if (*end)
			goto bad;
		return alyx__cel_double(d);
bad:
		return cel_errorf(x->r, n->pos,
				  "cannot convert string to double");
	}
	default:
		return bad_args(x, n, a, 1);
	}
}

static alyx__cel_val to_string(cel_ectx *x, const cel_node *n,
			       const alyx__cel_val *a)
{
	alyx_buf b;

	switch (a->k) {
	case ALYX_CEL_STRING:
		return *a;
	case ALYX_CEL_BOOL:
		return a->v.b ? alyx__cel_str("true", 4) :
				alyx__cel_str("false", 5);
	case ALYX_CEL_BYTES:
		if (!alyx__utf8_valid(a->v.s, a->n))
			return cel_errorf(x->r, n->pos,
					  "invalid UTF-8 in bytes, cannot "
					  "convert to string");
		return alyx__cel_str(a->v.s, a->n);
	case ALYX_CEL_INT:
	case ALYX_CEL_UINT:
	case ALYX_CEL_DOUBLE:
	case ALYX_CEL_TIMESTAMP:
	case ALYX_CEL_DURATION:
		alyx__buf_init(&b, 128);
		if (a->k == ALYX_CEL_INT)
			alyx__buf_addf(&b, "%lld", (long long)a->v.i);
		else if (a->k == ALYX_CEL_UINT)
			alyx__buf_addf(&b, "%llu", (unsigned long long)a->v.u);
		else if (a->k == ALYX_CEL_DOUBLE)
			cel_fmt_double(&b, a->v.d);
		else if (a->k == ALYX_CEL_TIMESTAMP)
			cel_fmt_timestamp(&b, a->v.i, a->ns);
		else
			cel_fmt_duration(&b, a->v.i, a->ns);
		return str_from_buf(x, n, &b);
	default:
		return bad_args(x, n, a, 1);
	}
}

static alyx__cel_val to_bool(cel_ectx *x, const cel_node *n,
			     const alyx__cel_val *a)
{
	static const char *const t[] = {"1", "t", "true", "TRUE", "True"};
	static const char *const f[] = {"0", "f", "false", "FALSE", "False"};

	if (a->k == ALYX_CEL_BOOL)
		return *a;
	if (a->k != ALYX_CEL_STRING)
		return bad_args(x, n, a, 1);
	for (size_t i = 0; i < ALYX_ARRAY_LEN(t); i++) {
		if (strlen(t[i]) == a->n && !memcmp(t[i], a->v.s, a->n))
			return alyx__cel_bool(true);
		if (strlen(f[i]) == a->n && !memcmp(f[i], a->v.s, a->n))
			return alyx__cel_bool(false);
	}
	return cel_errorf(x->r, n->pos, "Type conversion error: '%.*s' is "
			  "not a bool", (int)(a->n > 40 ? 40 : a->n), a->v.s);
}

/* ---- time getters ---- */

static alyx__cel_val ts_get(cel_ectx *x, const cel_node *n,
			    const alyx__cel_val *args, size_t nargs)
{
	const alyx__cel_val *t = &args[0];
	int32_t off = 0;
	int64_t local, days, rem, y;
	int m, d;

	if (nargs == 2) {
		if (args[1].k != ALYX_CEL_STRING)
			return bad_args(x, n, args, nargs);
		if (!cel_tz_offset(args[1].v.s, args[1].n, t->v.i, &off))
			return cel_errorf(x->r, n->pos,
					  "unknown time zone '%.*s'",
					  (int)(args[1].n > 60 ? 60 :
								 args[1].n),
					  args[1].v.s);
	}
	local = t->v.i + off;
	days = local / 86400;
	rem = local % 86400;
	if (rem < 0) {
		rem += 86400;
		days--;
	}
	cel_civil(days, &y, &m, &d);
	switch (n->slot) {
	case F_GETFULLYEAR: return alyx__cel_int(y);
	case F_GETMONTH: return alyx__cel_int(m - 1);
	case F_GETDATE: return alyx__cel_int(d);
	case F_GETDAYOFMONTH: return alyx__cel_int(d - 1);
	case F_GETDAYOFWEEK: {
		int64_t w = (days + 4) % 7;
		return alyx__cel_int(w < 0 ? w + 7 : w);
	}
	case F_GETDAYOFYEAR: return alyx__cel_int(days - cel_days(y, 1, 1));
	case F_GETHOURS: return alyx__cel_int(rem / 3600);
	case F_GETMINUTES: return alyx__cel_int(rem / 60 % 60);
	case F_GETSECONDS: return alyx__cel_int(rem % 60);
	case F_GETMILLISECONDS: return alyx__cel_int(t->ns / 1000000);
	}
	return bad_args(x, n, args, nargs);
}

static alyx__cel_val dur_get(cel_ectx *x, const cel_node *n,
			     const alyx__cel_val *d)
{
	switch (n->slot) {
	case F_GETHOURS: return alyx__cel_int(d->v.i / 3600);
	case F_GETMINUTES: return alyx__cel_int(d->v.i / 60);
	case F_GETSECONDS: return alyx__cel_int(d->v.i);
	case F_GETMILLISECONDS: return alyx__cel_int(d->ns / 1000000);
	}
	return bad_args(x, n, d, 1);
}

/* ---- dispatch ---- */

alyx__cel_val cel_call(cel_ectx *x, const cel_node *n, alyx__cel_val *args,
		       size_t nargs)
{
	const alyx__cel_val *a = nargs ? &args[0] : NULL;
	bool recv = n->recv;

	switch ((cel_fn)n->slot) {
	case F_SIZE:
		if (nargs != 1)
			break;
		switch (a->k) {
		case ALYX_CEL_STRING:
			return alyx__cel_int((int64_t)utf8_count(a->v.s, a->n));
		case ALYX_CEL_BYTES:
		case ALYX_CEL_LIST:
		case ALYX_CEL_MAP:
			return alyx__cel_int((int64_t)a->n);
		default:
			break;
		}
		break;
	case F_CONTAINS:
	case F_STARTSWITH:
	case F_ENDSWITH:
		if (!recv || nargs != 2 || a->k != ALYX_CEL_STRING ||
		    args[1].k != ALYX_CEL_STRING)
			break;
		if (n->slot == F_CONTAINS)
			return alyx__cel_bool(has_sub(a, &args[1]));
		if (args[1].n > a->n)
			return alyx__cel_bool(false);
		if (n->slot == F_STARTSWITH)
			return alyx__cel_bool(
				!args[1].n ||
				!memcmp(a->v.s, args[1].v.s, args[1].n));
		return alyx__cel_bool(
			!args[1].n || !memcmp(a->v.s + a->n - args[1].n,
					      args[1].v.s, args[1].n));
	case F_MATCHES: {
		if (nargs != 2 || a->k != ALYX_CEL_STRING ||
		    args[1].k != ALYX_CEL_STRING)
			break;
		void *re = n->re;
		char why[200];
		if (!re) {
			re = cel_regex_compile(args[1].v.s, args[1].n, why,
					       sizeof(why));
			if (!re)
				return cel_errorf(x->r, n->pos, "%s", why);
		}
		int m = cel_regex_match(re, a->v.s, a->n);
		if (re != n->re)
			cel_regex_free(re);
		if (m < 0)
			return cel_errorf(x->r, n->pos,
					  "regular expression match failed");
		return alyx__cel_bool(m == 1);
	}
	case F_INT:
		if (nargs == 1 && !recv)
			return to_int(x, n, a);
		break;
	case F_UINT:
		if (nargs == 1 && !recv)
			return to_uint(x, n, a);
		break;
	case F_DOUBLE:
		if (nargs == 1 && !recv)
			return to_double(x, n, a);
		break;
	case F_STRING:
		if (nargs == 1 && !recv)
			return to_string(x, n, a);
		break;
	case F_BYTES:
		if (nargs != 1 || recv)
			break;
		if (a->k == ALYX_CEL_BYTES)
			return *a;
		if (a->k == ALYX_CEL_STRING)
			return alyx__cel_bytes(a->v.s, a->n);
		break;
	case F_BOOL:
		if (nargs == 1 && !recv)
			return to_bool(x, n, a);
		break;
	case F_DYN:
		if (nargs == 1 && !recv)
			return *a;
		break;
	case F_TYPE:
		if (nargs == 1 && !recv)
			return alyx__cel_type((alyx__cel_kind)a->k);
		break;
	case F_TIMESTAMP:
		if (nargs != 1 || recv)
			break;
		if (a->k == ALYX_CEL_TIMESTAMP)
			return *a;
		if (a->k == ALYX_CEL_INT) {
			if (a->v.i < CEL_TS_MIN || a->v.i > CEL_TS_MAX)
				return cel_errorf(x->r, n->pos,
						  "timestamp out of range");
			return alyx__cel_timestamp(a->v.i, 0);
		}
		if (a->k == ALYX_CEL_STRING) {
			int64_t s;
			int32_t ns;
			if (!alyx__cel_parse_timestamp(a->v.s, a->n, &s, &ns))
				return cel_errorf(x->r, n->pos,
						  "invalid timestamp or out "
						  "of range: '%.*s'",
						  (int)(a->n > 60 ? 60 : a->n),
						  a->v.s);
			return alyx__cel_timestamp(s, ns);
		}
		break;
	case F_DURATION:
		if (nargs != 1 || recv)
			break;
		if (a->k == ALYX_CEL_DURATION)
			return *a;
		if (a->k == ALYX_CEL_STRING) {
			int64_t s;
			int32_t ns;
			if (!alyx__cel_parse_duration(a->v.s, a->n, &s, &ns))
				return cel_errorf(x->r, n->pos,
						  "invalid duration or out of "
						  "range: '%.*s'",
						  (int)(a->n > 60 ? 60 : a->n),
						  a->v.s);
			return alyx__cel_duration(s, ns);
		}
		break;
	case F_GETHOURS:
	case F_GETMINUTES:
	case F_GETSECONDS:
	case F_GETMILLISECONDS:
		if (recv && nargs == 1 && a->k == ALYX_CEL_DURATION)
			return dur_get(x, n, a);
		/* fall through */
	case F_GETFULLYEAR:
	case F_GETMONTH:
	case F_GETDATE:
	case F_GETDAYOFMONTH:
	case F_GETDAYOFWEEK:
	case F_GETDAYOFYEAR:
		if (recv && (nargs == 1 || nargs == 2) &&
		    a->k == ALYX_CEL_TIMESTAMP)
			return ts_get(x, n, args, nargs);
		break;
	case F_UNKNOWN:
		break;
	}
	return bad_args(x, n, args, nargs);
}
