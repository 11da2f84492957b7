/*
 * fuzz-http.c - libFuzzer target for the HTTP/1.1 request-head parser and
 * the path and query decoders (lib/http/h1.c).
 *
 * The input is a byte stream from a client.  Beyond "does not crash":
 *  - alyx__h1_head_end gives the end of the first empty line after a
 *    line end, the same whole and fed a byte at a time, found when its
 *    last byte arrives and never before;
 *  - a complete head that alyx__h1_parse accepts has head_len == end and
 *    every span inside the head, a path starting with '/' (or "*" for
 *    OPTIONS), known methods and versions only;
 *  - alyx__h1_path on the path span, with a roomy and a small buffer,
 *    gives a NUL-terminated result within the buffer that starts with
 *    '/' and has no "//", "/./" or "/../" and no final "/." or "/..",
 *    equal to a simple reference (decode, then RFC 3986 5.2.4 with empty
 *    segments dropped);
 *  - alyx__h1_args on the query span equals a reference split and decode,
 *    with every piece NUL-terminated inside the buffer;
 *  - the bytes after the head, read as a chunked body by
 *    alyx__h1_chunked whole, a byte at a time and split in two, give one
 *    outcome, equal to a line-by-line reference decoder's when that one
 *    finds the body's end or a fault (while it waits for more bytes, the
 *    decoder may already have refused them).
 * Without a complete head the decoders run on the raw input instead.
 * A violated property abort()s.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/h1.h"
#include "http/http.h"

#define CHECK(c)                                                        \
	do {                                                            \
		if (!(c)) {                                             \
			fprintf(stderr, "fuzz-http: %s:%d: %s\n",       \
				__FILE__, __LINE__, #c);                \
			abort();                                        \
		}                                                       \
	} while (0)

/* %xx-decodes p[0..n) into out ('+' to ' ' when plus); the length, or -1
 * for a bad escape or %00. */
static long ref_unescape(const char *p, size_t n, char *out, int plus)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)p[i];

		if (c == '%') {
			int hi, lo;

			if (n - i < 3)
				return -1;
			hi = alyx__hexval((unsigned char)p[i + 1]);
			lo = alyx__hexval((unsigned char)p[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -1;
			c = hi << 4 | lo;
			i += 2;
		} else if (plus && c == '+') {
			c = ' ';
		}
		out[o++] = (char)c;
	}
	return (long)o;
}

/* The reference path decoder; out has room for n + 2 bytes. */
static long ref_path(const char *p, size_t n, char *out)
{
	char *d = malloc(n + 1);
	size_t *seg = malloc((n + 1) * sizeof(*seg));	/* starts in out */
	long dn = d ? ref_unescape(p, n, d, 0) : -1;
	size_t o = 1, depth = 0, i = 1;

	if (!d || !seg || dn <= 0 || d[0] != '/') {
		free(d);
		free(seg);
		return -1;
	}
	out[0] = '/';
	while (i <= (size_t)dn) {
		size_t j = i;

		while (j < (size_t)dn && d[j] != '/')
			j++;
		size_t l = j - i;
		int last = j >= (size_t)dn;

		if (l == 0 || (l == 1 && d[i] == '.')) {
			/* an empty or "." segment: nothing */
		} else if (l == 2 && d[i] == '.' && d[i + 1] == '.') {
			if (depth) {
				depth--;
				o = seg[depth];
			}
		} else {
			seg[depth++] = o;
			memcpy(out + o, d + i, l);
			o += l;
			if (!last)
				out[o++] = '/';
		}
		if (last)
			break;
		i = j + 1;
	}
	out[o] = '\0';
	free(d);
	free(seg);
	return (long)o;
}

static int has(const char *s, size_t n, const char *needle)
{
	size_t l = strlen(needle);

	for (size_t i = 0; i + l <= n; i++)
		if (!memcmp(s + i, needle, l))
			return 1;
	return 0;
}

static int ends(const char *s, size_t n, const char *tail)
{
	size_t l = strlen(tail);

	return n >= l && !memcmp(s + n - l, tail, l);
}

static void check_path(const char *p, size_t n)
{
	size_t big = n + 1;
	char *out = malloc(big + 1), *ref = malloc(n + 2);
	long k, r;

	CHECK(out && ref);
	out[big] = 'Z';
	k = alyx__h1_path(p, n, out, big);
	r = ref_path(p, n, ref);
	CHECK(out[big] == 'Z');
	if (k >= 0) {
		CHECK((size_t)k < big);
		CHECK(out[k] == '\0');
		CHECK(k >= 1 && out[0] == '/');
		CHECK(!has(out, (size_t)k, "//"));
		CHECK(!has(out, (size_t)k, "/./"));
		CHECK(!has(out, (size_t)k, "/../"));
		CHECK(!ends(out, (size_t)k, "/."));
		CHECK(!ends(out, (size_t)k, "/.."));
		CHECK(!memchr(out, '\0', (size_t)k) || memchr(p, '\0', n));
	}
	/* The reference agrees, error or result. */
	CHECK(k == r);
	if (k >= 0)
		CHECK(!memcmp(out, ref, (size_t)k));

	/* Small buffers: no room, or the same answer; never past cap. */
	for (size_t cap = 0; cap <= 8 && cap < big; cap++) {
		char small[16];
		long s;

		memset(small, 'Z', sizeof(small));
		s = alyx__h1_path(p, n, small, cap);
		for (size_t i = cap; i < sizeof(small); i++)
			CHECK(small[i] == 'Z');
		if (s >= 0) {
			CHECK((size_t)s < cap);
			CHECK(s == k && !memcmp(small, out, (size_t)k + 1));
		}
	}
	free(out);
	free(ref);
}

#define MAXA 64

static void check_args(const char *q, size_t n)
{
	/* As front.c sizes it: decoding never grows a piece. */
	size_t big = n + MAXA + 1;
	char *out = malloc(big + 1), *ref = malloc(n + 1);
	alyx__h1span a[MAXA + 1];
	int cnt, pieces = 1, bad = 0;

	CHECK(out && ref);
	for (size_t i = 0; i < n; i++)
		pieces += q[i] == '&';
	out[big] = 'Z';
	cnt = alyx__h1_args(q, n, out, big, a, MAXA);
	CHECK(out[big] == 'Z');

	/* The reference, piece by piece. */
	size_t start = 0;
	int idx = 0;

	for (size_t i = 0; i <= n && !bad; i++) {
		if (i < n && q[i] != '&')
			continue;
		long l = ref_unescape(q + start, i - start, ref, 1);

		if (l < 0) {
			bad = 1;
		} else if (idx < MAXA && cnt >= 0) {
			CHECK(a[idx].len == (uint32_t)l);
			CHECK((size_t)a[idx].off + a[idx].len < big);
			CHECK(out[a[idx].off + a[idx].len] == '\0');
			CHECK(!memcmp(out + a[idx].off, ref, (size_t)l));
			if (idx)
				CHECK(a[idx].off > a[idx - 1].off +
						   a[idx - 1].len);
		}
		idx++;
		start = i + 1;
	}
	if (cnt >= 0) {
		CHECK(!bad && cnt == pieces && pieces <= MAXA);
	} else if (cnt == -1) {
		CHECK(bad);
	} else {
		CHECK(cnt == -2 && pieces > MAXA);
	}

	/* A small buffer or a small max: -2, or the same answer. */
	for (size_t cap = 0; cap <= 8; cap++) {
		char small[16];
		alyx__h1span sa[4];
		int sc;

		memset(small, 'Z', sizeof(small));
		sc = alyx__h1_args(q, n, small, cap, sa, 4);
		for (size_t i = cap; i < sizeof(small); i++)
			CHECK(small[i] == 'Z');
		if (sc >= 0) {
			CHECK(sc == cnt);
			for (int i = 0; i < sc; i++) {
				CHECK(sa[i].len == a[i].len);
				CHECK((size_t)sa[i].off + sa[i].len < cap);
				CHECK(small[sa[i].off + sa[i].len] == '\0');
				CHECK(!memcmp(small + sa[i].off,
					      out + a[i].off, a[i].len));
			}
		} else if (sc == -1) {
			CHECK(cnt == -1);
		} else {
			CHECK(sc == -2);
		}
	}
	free(out);
	free(ref);
}

/* The reference head end: just past the first empty line ("\n" or
 * "\r\n") that follows a line end; 0 without one. */
static size_t ref_end(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] != '\n')
			continue;
		if (i + 1 < n && p[i + 1] == '\n')
			return i + 2;
		if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

static int in_head(alyx__h1span s, size_t end)
{
	return (size_t)s.off <= end && (size_t)s.len <= end - s.off;
}

static void check_head(const char *p, size_t end)
{
	alyx__h1head h;
	int status = 0;
	const char *why = NULL;

	if (alyx__h1_parse(p, end, &h, &status, &why) != 0) {
		CHECK(why && *why);
		CHECK(status == 400 || status == 431 || status == 501 ||
		      status == 505);
		return;
	}
	CHECK(h.head_len == end);
	CHECK(h.method < M_OTHER);
	CHECK(h.minor <= 1);
	CHECK(in_head(h.method_tok, end) && h.method_tok.off == 0 &&
	      h.method_tok.len > 0);
	CHECK(in_head(h.path, end));
	/* An empty path: an absolute-form target without one ("/"); the
	 * target then starts with its scheme.  "*": OPTIONS *, alone. */
	if (h.path.len == 1 && p[h.path.off] == '*') {
		CHECK(h.method == M_OPTIONS && !h.has_query &&
		      h.path.off == h.method_tok.len + 1 &&
		      p[h.path.off + 1] == ' ');
		return;
	}
	CHECK(h.path.len ? p[h.path.off] == '/'
			 : p[h.method_tok.len + 1] != '/');
	CHECK(!memchr(p + h.path.off, '?', h.path.len));
	if (h.has_query) {
		CHECK(in_head(h.query, end));
		CHECK(h.query.off == h.path.off + h.path.len + 1);
		CHECK(p[h.query.off - 1] == '?');
	} else {
		CHECK(h.query.off == 0 && h.query.len == 0);
	}
	for (int i = 0; i < HH_COUNT; i++) {
		if (!(h.have & (1u << i))) {
			CHECK(h.hv[i].off == 0 && h.hv[i].len == 0);
			continue;
		}
		CHECK(in_head(h.hv[i], end) && h.hv[i].off > h.path.off);
		if (h.hv[i].len) {
			char f = p[h.hv[i].off];
			char l = p[h.hv[i].off + h.hv[i].len - 1];

			CHECK(f != ' ' && f != '\t' && l != ' ' && l != '\t');
		}
		for (uint32_t j = 0; j < h.hv[i].len; j++) {
			unsigned char c = (unsigned char)p[h.hv[i].off + j];

			CHECK(c == '\t' || (c >= 0x20 && c != 0x7f));
		}
	}
	CHECK(!(h.have >> HH_COUNT));
	if (h.path.len)
		check_path(p + h.path.off, h.path.len);
	if (h.has_query)
		check_args(p + h.query.off, h.query.len);
}

/* ---- chunked bodies ---- */

enum { R_MORE, R_BAD, R_END };

/* The line at p[i..n): its length through '\n' in *len, or 0 if no LF
 * is there. */
static size_t line_len(const char *p, size_t n, size_t i)
{
	const char *nl = memchr(p + i, '\n', n - i);

	return nl ? (size_t)(nl - (p + i)) + 1 : 0;
}

static int ctl(unsigned char c)
{
	return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* A line-by-line chunked decoder (RFC 9112 §7.1 with alyx's bounds):
 * R_END with the data in out (*outn) and the body's length in *used,
 * R_BAD, or R_MORE. */
static int ref_chunked(const char *p, size_t n, char *out, size_t *outn,
		       size_t *used)
{
	size_t i = 0;

	*outn = 0;
	for (;;) {
		size_t L = line_len(p, n, i), e, j = 0, digits = 0;
		uint64_t size = 0;

		if (!L)
			return n - i > ALYX_H1_MAX_CHUNK_LINE ? R_BAD : R_MORE;
		if (L > ALYX_H1_MAX_CHUNK_LINE)
			return R_BAD;
		e = L - 1;
		if (e && p[i + e - 1] == '\r')
			e--;
		if (memchr(p + i, '\r', e))
			return R_BAD;
		for (; j < e && alyx__hexval((unsigned char)p[i + j]) >= 0;
		     j++) {
			if (++digits > 15)
				return R_BAD;
			size = size << 4 |
			       (uint64_t)alyx__hexval((unsigned char)p[i + j]);
		}
		if (!digits)
			return R_BAD;
		while (j < e && (p[i + j] == ' ' || p[i + j] == '\t'))
			j++;
		if (j < e) {
			if (p[i + j] != ';')
				return R_BAD;
			for (; j < e; j++)
				if (ctl((unsigned char)p[i + j]))
					return R_BAD;
		}
		i += L;
		if (!size)
			break;
		if (n - i < size)
			return R_MORE;
		memcpy(out + *outn, p + i, size);
		*outn += size;
		i += size;
		if (i == n)
			return R_MORE;
		if (p[i] == '\n') {
			i++;
			continue;
		}
		if (p[i] != '\r')
			return R_BAD;
		if (i + 1 == n)
			return R_MORE;
		if (p[i + 1] != '\n')
			return R_BAD;
		i += 2;
	}
	/* The trailer section. */
	size_t t0 = i;
	for (;;) {
		size_t L = line_len(p, n, i), e;

		if (!L || i + L - t0 > ALYX_H1_MAX_TRAILER) {
			/* Bytes up to the bound are looked at one by one. */
			size_t lim = t0 + ALYX_H1_MAX_TRAILER;
			size_t stop = L ? i + L : n;

			for (size_t k = i; k < stop && k < lim; k++) {
				if (p[k] == '\r' && k + 1 < n &&
				    p[k + 1] != '\n')
					return R_BAD;
				if (ctl((unsigned char)p[k]) && p[k] != '\r' &&
				    p[k] != '\n')
					return R_BAD;
			}
			return stop > lim ? R_BAD : R_MORE;
		}
		e = L - 1;
		if (e && p[i + e - 1] == '\r')
			e--;
		for (size_t k = 0; k < e; k++)
			if (ctl((unsigned char)p[i + k]))
				return R_BAD;	/* a CR included */
		i += L;
		if (!e) {
			*used = i;
			return R_END;
		}
	}
}

/* alyx__h1_chunked on p[0..n) with the bytes arriving at the cumulative
 * points avail[0..na), as front.c calls it. */
static int run_chunked(const char *p, const size_t *avail, size_t na,
		       char *out, size_t *outn, size_t *used)
{
	alyx__h1chunk c;
	size_t at = 0;

	memset(&c, 0, sizeof(c));
	*outn = 0;
	for (size_t a = 0; a < na; a++) {
		for (;;) {
			size_t u = 0, off = 0, len = 0;
			const char *why = NULL;
			int k = alyx__h1_chunked(&c, p + at, avail[a] - at, &u,
						 &off, &len, &why);

			if (k == ALYX_H1_CHUNK_BAD) {
				CHECK(why && *why);
				return R_BAD;
			}
			CHECK(u <= avail[a] - at);
			if (k == ALYX_H1_CHUNK_DATA) {
				CHECK(len && off + len == u);
				memcpy(out + *outn, p + at + off, len);
				*outn += len;
				at += u;
				continue;
			}
			CHECK(!len);
			at += u;
			if (k == ALYX_H1_CHUNK_END) {
				*used = at;
				return R_END;
			}
			CHECK(at == avail[a]);
			break;
		}
	}
	return R_MORE;
}

static void check_chunked(const char *p, size_t n)
{
	char *o1 = malloc(n + 1), *o2 = malloc(n + 1), *o3 = malloc(n + 1);
	char *ro = malloc(n + 1);
	size_t *steps = malloc((n + 1) * sizeof(*steps));
	size_t n1, n2, n3, rn, u1 = 0, u2 = 0, u3 = 0, ru = 0, whole[1] = {n};
	size_t split[2] = {n ? (unsigned char)p[0] % (n + 1) : 0, n};

	CHECK(o1 && o2 && o3 && ro && steps);
	for (size_t k = 0; k < n; k++)
		steps[k] = k + 1;
	int r1 = run_chunked(p, whole, 1, o1, &n1, &u1);
	int r2 = run_chunked(p, steps, n, o2, &n2, &u2);
	int r3 = run_chunked(p, split, 2, o3, &n3, &u3);
	int rr = ref_chunked(p, n, ro, &rn, &ru);

	CHECK(r1 == r2 && r1 == r3);
	if (r1 == R_END) {
		CHECK(u1 == u2 && u1 == u3 && u1 <= n);
		CHECK(n1 == n2 && n1 == n3);
		CHECK(!memcmp(o1, o2, n1) && !memcmp(o1, o3, n1));
	}
	if (rr != R_MORE)
		CHECK(r1 == rr);
	else
		CHECK(r1 != R_END);
	if (rr == R_END)
		CHECK(u1 == ru && n1 == rn && !memcmp(o1, ro, rn));
	free(o1);
	free(o2);
	free(o3);
	free(ro);
	free(steps);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	size_t scan = 0, end, k;

	end = alyx__h1_head_end(p, size, &scan);
	CHECK(end <= size);
	CHECK(end == ref_end(p, size));
	if (!end)
		CHECK(scan <= size);

	/* Byte by byte: found once, when its last byte arrives. */
	scan = 0;
	for (k = 1; k <= size; k++) {
		size_t e = alyx__h1_head_end(p, k, &scan);

		if (e) {
			CHECK(e == end && k == end);
			break;
		}
		CHECK(scan <= k);
	}
	if (!end)
		CHECK(k == size + 1);

	if (end) {
		check_head(p, end);
		/* The next pipelined head, if the rest has one. */
		size_t scan2 = 0;
		size_t end2 = alyx__h1_head_end(p + end, size - end, &scan2);

		if (end2)
			check_head(p + end, end2);
		check_chunked(p + end, size - end);
	} else {
		check_path(p, size);
		check_args(p, size);
		check_chunked(p, size);
	}
	return 0;
}
