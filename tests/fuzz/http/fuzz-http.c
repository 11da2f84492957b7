/*
 * fuzz-http.c - libFuzzer target for the HTTP/1.1 request-head parser and
 * the path and query decoders (lib/http/h1.c).
 *
 * The input is a byte stream from a client.  Beyond "does not crash":
 *  - alyx__h1_head_end gives the end of the first empty line after a
 *    line end, the same whole and fed a byte at a time, found when its
 *    last byte arrives and never before;
 *  - a complete head that alyx__h1_parse accepts has head_len == end and
 *    every span inside the head, a path starting with '/', known methods
 *    and versions only;
 *  - alyx__h1_path on the path span, with a roomy and a small buffer,
 *    gives a NUL-terminated result within the buffer that starts with
 *    '/' and has no "//", "/./" or "/../" and no final "/." or "/..",
 *    equal to a simple reference (decode, then RFC 3986 5.2.4 with empty
 *    segments dropped);
 *  - alyx__h1_args on the query span equals a reference split and decode,
 *    with every piece NUL-terminated inside the buffer.
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
	 * target then starts with its scheme. */
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
	} else {
		check_path(p, size);
		check_args(p, size);
	}
	return 0;
}
