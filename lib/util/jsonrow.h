/*
 * jsonrow.h - the JSON string writer's byte tests, and the row writers
 * built on them (inline: a document's values are written one call each,
 * and a call's own cost was a third of a short value's).
 *
 * The row writers write `key` (k bytes of ready text such as `,"name":`,
 * readable up to k rounded up to 16: keep 15 bytes of padding after key
 * text kept for them) then a value, in one reservation.  They only take
 * the common case and return false, with nothing written, otherwise: a
 * string that needs an escape or is not ASCII, or a buffer near its cap or
 * in error; the caller then writes with the writer of util.h.
 */
#ifndef ALYX_JSONROW_H
#define ALYX_JSONROW_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "util.h"

/* Byte classes of the string writer: 0 copies as is, 1 starts a UTF-8
 * sequence (checked), 2 needs an escape. */
extern const unsigned char alyx__json_class[256];

/* No byte of the 8 in w is below 0x20, '"', '\\' or above 0x7F.  A false
 * "no" only sends the bytes to the table loop; a false "yes" cannot
 * happen (the lowest offending byte always sets its high bit). */
static inline bool alyx__word_plain(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ULL;
	uint64_t q = w ^ (ones * '"'), s = w ^ (ones * '\\');

	return !(((w - ones * 0x20) | (q - ones) | (s - ones) | w) &
		 (ones * 0x80));
}

#if defined(__SSE2__)
/* The offending bytes of the 16 at p as a bit mask (bit k: byte k is
 * below 0x20, '"', '\\' or above 0x7F; the signed compare counts bytes
 * from 0x80 as below 0x20).  0: the 16 bytes copy as they are. */
static inline unsigned alyx__block_stops(const unsigned char *p)
{
	__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
	__m128i x = _mm_or_si128(
		_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
			     _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
		_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));

	return (unsigned)_mm_movemask_epi8(x);
}
#endif

/* Room for `need` more bytes without a reallocation where possible; NULL
 * (nothing changed) past the cap or after an error, so the caller's exact
 * writer decides what a full buffer means. */
static inline char *alyx__fast_room(alyx_buf *b, size_t need)
{
	if (b->err || need > b->max - b->len)
		return NULL;
	if (need >= b->cap - b->len && !alyx__buf_grow(b, need))
		return NULL;
	return b->data + b->len;
}

/* Copies the key in whole 16-byte blocks: up to 15 bytes past its end are
 * read (the key text is padded, see the header) and written (inside the
 * room taken, and overwritten by the value). */
static inline char *alyx__key_copy(char *d, const char *key, size_t k)
{
#if defined(__SSE2__)
	size_t i;

	for (i = 0; i < k; i += 16)
		_mm_storeu_si128((__m128i *)(void *)(d + i),
				 _mm_loadu_si128((const __m128i *)
						 (const void *)(key + i)));
#else
	memcpy(d, key, k);
#endif
	return d + k;
}

/* Copies the leading bytes of p[0..n) that need no escape and no UTF-8
 * check to d, checking and copying the same blocks (the last one
 * overlapping), and returns how many: n for the usual string.  It may stop
 * short of the first such byte (the 8-byte check is conservative), never
 * past it; d may hold more than that afterwards, never past d + n.  Reads
 * nothing past p + n. */
static inline size_t alyx__plain_copy(char *d, const unsigned char *p,
				      size_t n)
{
	uint64_t w;
	size_t i = 0;

#if defined(__SSE2__)
	if (n >= 16) {
		unsigned m;

		for (; i + 16 <= n; i += 16) {
			_mm_storeu_si128((__m128i *)(void *)(d + i),
					 _mm_loadu_si128((const __m128i *)
							 (const void *)(p + i)));
			if ((m = alyx__block_stops(p + i)))
				return i + (size_t)__builtin_ctz(m);
		}
		if (i < n) {
			_mm_storeu_si128((__m128i *)(void *)(d + n - 16),
					 _mm_loadu_si128((const __m128i *)
						(const void *)(p + n - 16)));
			/* Bytes before i are plain: a stop is at i or later. */
			if ((m = alyx__block_stops(p + n - 16)))
				return n - 16 + (size_t)__builtin_ctz(m);
		}
		return n;
	}
#endif
	for (; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		if (!alyx__word_plain(w))
			return i;
		memcpy(d + i, &w, 8);
	}
	if (i < n && n >= 8) {
		memcpy(&w, p + n - 8, 8);
		if (!alyx__word_plain(w))
			return i;
		memcpy(d + n - 8, &w, 8);
		return n;
	}
	for (; i < n && !alyx__json_class[p[i]]; i++)
		d[i] = (char)p[i];
	return i;
}

/* How many leading bytes of p[0..n) need no escape and no UTF-8 check:
 * exactly the offset of the first one that does, or n (blocks, then
 * words, then bytes). */
static inline size_t alyx__plain_skip(const unsigned char *p, size_t n)
{
	uint64_t w;
	size_t i = 0;

#if defined(__SSE2__)
	for (; i + 16 <= n; i += 16) {
		unsigned m = alyx__block_stops(p + i);

		if (m)
			return i + (size_t)__builtin_ctz(m);
	}
#endif
	for (; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		if (!alyx__word_plain(w))
			break;
	}
	while (i < n && !alyx__json_class[p[i]])
		i++;
	return i;
}

/* Room for the key, `extra` bytes and the NUL, with the key written:
 * where its value goes, or NULL. */
static inline char *alyx__keyed(alyx_buf *b, const char *key, size_t k,
			  size_t extra)
{
	char *d = alyx__fast_room(b, k + 16 + extra);

	return d ? alyx__key_copy(d, key, k) : NULL;
}

static inline void alyx__keyed_end(alyx_buf *b, char *end)
{
	*end = '\0';
	b->len = (size_t)(end - b->data);
}

static inline bool alyx__json_kstr(alyx_buf *b, const char *key, size_t k, const char *s,
		     size_t n)
{
	char *d = alyx__keyed(b, key, k, n + 2);

	if (!d)
		return false;
	*d++ = '"';
	if (alyx__plain_copy(d, (const unsigned char *)s, n) != n) {
		b->data[b->len] = '\0';
		return false;
	}
	d[n] = '"';
	alyx__keyed_end(b, d + n + 1);
	return true;
}

static inline bool alyx__json_kraw(alyx_buf *b, const char *key, size_t k, const char *s,
		     size_t n)
{
	char *d = alyx__keyed(b, key, k, n);

	if (!d)
		return false;
	memcpy(d, s, n);
	alyx__keyed_end(b, d + n);
	return true;
}

static inline bool alyx__json_ki64(alyx_buf *b, const char *key, size_t k, int64_t v)
{
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, t;
	size_t n = 1;
	char *d, *q;

	for (t = u; t >= 10; t /= 10)
		n++;
	d = alyx__keyed(b, key, k, n + 1);
	if (!d)
		return false;
	if (v < 0)
		*d++ = '-';
	q = d + n;
	do {
		*--q = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	alyx__keyed_end(b, d + n);
	return true;
}

#endif
