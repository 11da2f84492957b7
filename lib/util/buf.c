/* buf.c - capped growable buffers and the streaming JSON writer. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "util/jsonrow.h"

#define BUF_DEFAULT_MAX ((size_t)256 << 20)

void alyx__buf_init(alyx_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max ? max : BUF_DEFAULT_MAX;
	b->err = ALYX_OK;
}

void alyx__buf_free(alyx_buf *b)
{
	alyx__free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void alyx__buf_reset(alyx_buf *b)
{
	b->len = 0;
	b->err = ALYX_OK;
	if (b->data)
		b->data[0] = '\0';
}

void alyx__buf_trim(alyx_buf *b, size_t keep)
{
	if (b->cap > keep) {
		alyx__free(b->data);
		b->data = NULL;
		b->cap = 0;
	}
	alyx__buf_reset(b);
}

bool alyx__buf_grow(alyx_buf *b, size_t extra)
{
	size_t need, ncap;
	char *p;

	if (b->err)
		return false;
	if (extra > b->max || b->len > b->max - extra) {
		b->err = ALYX_E_TOOBIG;
		return false;
	}
	need = b->len + extra + 1;
	if (need <= b->cap)
		return true;
	ncap = b->cap ? b->cap : 64;
	while (ncap < need)
		ncap *= 2;
	p = alyx__realloc(b->data, ncap);
	if (!p) {
		b->err = ALYX_E_NOMEM;
		return false;
	}
	b->data = p;
	b->cap = ncap;
	return true;
}

void alyx__buf_reserve(alyx_buf *b, size_t extra)
{
	int was = b->err;

	if (alyx__buf_grow(b, extra))
		b->data[b->len] = '\0';
	else
		b->err = was;
}

void alyx__buf_vaddf(alyx_buf *b, const char *fmt, va_list ap)
{
	size_t room = !b->err && b->data ? b->cap - b->len : 0;
	va_list cp;
	int n;

	/* Straight into the free space; measure and grow only if short. */
	va_copy(cp, ap);
	n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, cp);
	va_end(cp);
	if (n >= 0 && alyx__buf_room(b, (size_t)n)) {
		b->len += (size_t)n;
		return;
	}
	if (room)
		b->data[b->len] = '\0';	/* undo a truncated write */
	if (n < 0 || !alyx__buf_grow(b, (size_t)n))
		return;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

void alyx__buf_addf(alyx_buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	alyx__buf_vaddf(b, fmt, ap);
	va_end(ap);
}

char *alyx__buf_take(alyx_buf *b)
{
	char *d;

	if (b->err) {
		alyx__buf_free(b);
		b->err = ALYX_OK;
		return NULL;
	}
	if (!b->data && !alyx__buf_grow(b, 0))
		return NULL;
	d = b->data;
	b->data = NULL;
	b->len = b->cap = 0;
	return d;
}

/* ---- UTF-8 ---- */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len, i;
	unsigned cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

bool alyx__utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, k;

	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		k = utf8_seq(p + i, n - i);
		if (!k)
			return false;
		i += k;
	}
	return true;
}

/* ---- JSON writer ---- */

/* Writes the escape of byte c (class 2) or U+FFFD (invalid UTF-8). */
static void json_escape(alyx_buf *b, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";

	if (c >= 0x80) {
		alyx__buf_add(b, "\xEF\xBF\xBD", 3);
		return;
	}
	switch (c) {
	case '"': alyx__buf_add(b, "\\\"", 2); break;
	case '\\': alyx__buf_add(b, "\\\\", 2); break;
	case '\n': alyx__buf_add(b, "\\n", 2); break;
	case '\r': alyx__buf_add(b, "\\r", 2); break;
	case '\t': alyx__buf_add(b, "\\t", 2); break;
	case '\b': alyx__buf_add(b, "\\b", 2); break;
	case '\f': alyx__buf_add(b, "\\f", 2); break;
	default: {
		char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

		alyx__buf_add(b, e, 6);
	}
	}
}

/*
 * Byte classes of the string writer: 0 copies as is, 1 starts a UTF-8
 * sequence (checked), 2 needs an escape.  A run of class-0 bytes is found
 * with one table lookup per byte and copied with one memcpy.
 */
const unsigned char alyx__json_class[256] = {
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* '"' */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,	/* '\\' */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

void alyx__json_str(alyx_buf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i, start, k;
	char *d;

	/* The common case (nothing to escape) then needs no further growth:
	 * the plain leading bytes are copied into place as they are checked. */
	if (!alyx__buf_grow(b, n + 2))
		return;
	d = b->data + b->len;
	d[0] = '"';
	i = alyx__plain_copy(d + 1, p, n);
	if (i == n) {
		d[n + 1] = '"';
		d[n + 2] = '\0';
		b->len += n + 2;
		return;
	}
	/* The scan goes on from the first byte the copy did not take. */
	b->len += 1 + i;
	for (start = i; i < n; start = i) {
		for (;;) {
			i += alyx__plain_skip(p + i, n - i);
			if (i == n || alyx__json_class[p[i]] == 2)
				break;
			k = utf8_seq(p + i, n - i);
			if (!k)
				break;
			i += k;
		}
		if (i > start)
			alyx__buf_add(b, p + start, i - start);
		if (i < n)
			json_escape(b, p[i++]);
	}
	alyx__buf_addc(b, '"');
}

void alyx__json_strz(alyx_buf *b, const char *s)
{
	if (!s)
		alyx__buf_add(b, "null", 4);
	else
		alyx__json_str(b, s, strlen(s));
}

void alyx__json_key(alyx_buf *b, const char *ident)
{
	size_t n = strlen(ident);
	char *p;

	if (!alyx__buf_room(b, n + 3) && !alyx__buf_grow(b, n + 3))
		return;
	p = b->data + b->len;
	*p++ = '"';
	memcpy(p, ident, n);
	p += n;
	*p++ = '"';
	*p++ = ':';
	*p = '\0';
	b->len += n + 3;
}

void alyx__json_i64(alyx_buf *b, int64_t v)
{
	char tmp[24];
	char *e = tmp + sizeof(tmp), *q = e;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

	do {
		*--q = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--q = '-';
	alyx__buf_add(b, q, (size_t)(e - q));
}

void alyx__json_f64(alyx_buf *b, double v)
{
	char tmp[32];
	int prec;

	if (!isfinite(v)) {
		alyx__buf_add(b, "null", 4);
		return;
	}
	/* Shortest precision that round-trips. */
	for (prec = 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	/* Keep floats recognisable as floats ("1.0", not "1"). */
	alyx__buf_adds(b, tmp);
	if (!strpbrk(tmp, ".eEn"))
		alyx__buf_add(b, ".0", 2);
}

void alyx__json_bool(alyx_buf *b, bool v)
{
	if (v)
		alyx__buf_add(b, "true", 4);
	else
		alyx__buf_add(b, "false", 5);
}
