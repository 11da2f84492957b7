/*
 * util.h - helpers shared by every libalyx module (never exported).
 *
 * Allocation goes through alyx__malloc & co. so a test can inject faults
 * and the host never mixes allocators.  alyx_buf is a growable byte buffer
 * with a hard cap: exceeding it sets a sticky ALYX_E_TOOBIG instead of
 * growing forever.  The JSON writer appends escaped JSON to an alyx_buf.
 */
#ifndef ALYX_UTIL_H
#define ALYX_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "alyx.h"

#ifdef NDEBUG
#define ALYX_ASSERT(x) ((void)0)
#else
#include <assert.h>
#define ALYX_ASSERT(x) assert(x)
#endif

#define ALYX_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- memory ---- */
void *alyx__malloc(size_t n);
void *alyx__calloc(size_t n, size_t size);
void *alyx__realloc(void *p, size_t n);
void alyx__free(void *p);	/* keeps errno */
char *alyx__strdup(const char *s);	/* NULL in -> NULL out */
char *alyx__strndup(const char *s, size_t n);
char *alyx__asprintf(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
/* Test hook: make the Nth allocation from now fail (0 = off). */
void alyx__fail_alloc_after(long n);

/* ---- growable buffer ---- */
typedef struct alyx_buf {
	char *data;	/* always NUL-terminated when non-NULL */
	size_t len;	/* bytes used, without the NUL */
	size_t cap;	/* bytes allocated */
	size_t max;	/* hard cap on len (0 = 256 MiB) */
	int err;	/* sticky: ALYX_OK, ALYX_E_NOMEM or ALYX_E_TOOBIG */
} alyx_buf;

void alyx__buf_init(alyx_buf *b, size_t max);
void alyx__buf_free(alyx_buf *b);
void alyx__buf_reset(alyx_buf *b);	/* len = 0, keeps memory and err=OK */
/* alyx__buf_reset, and the memory released when more than `keep` bytes
 * are allocated (a buffer that once held something large). */
void alyx__buf_trim(alyx_buf *b, size_t keep);
/* Makes room for `extra` more bytes (and the NUL); false (and b->err set)
 * past the cap or out of memory. */
bool alyx__buf_grow(alyx_buf *b, size_t extra);
/* Room for `extra` more bytes ahead of time, to spare the reallocations
 * of growing by doubling: a hint only.  When it cannot be had the buffer
 * is left as it was, error included, and the appends decide. */
void alyx__buf_reserve(alyx_buf *b, size_t extra);

/* Appending is inline: a capacity check, a copy and the NUL; only growth
 * (or a full buffer) takes the call. */
static inline bool alyx__buf_room(const alyx_buf *b, size_t n)
{
	return !b->err && n < b->cap - b->len && n <= b->max - b->len;
}

static inline void alyx__buf_add(alyx_buf *b, const void *p, size_t n)
{
	if (!alyx__buf_room(b, n) && !alyx__buf_grow(b, n))
		return;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static inline void alyx__buf_adds(alyx_buf *b, const char *s)
{
	alyx__buf_add(b, s, strlen(s));
}

static inline void alyx__buf_addc(alyx_buf *b, char c)
{
	if (!alyx__buf_room(b, 1) && !alyx__buf_grow(b, 1))
		return;
	b->data[b->len++] = c;
	b->data[b->len] = '\0';
}
void alyx__buf_addf(alyx_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void alyx__buf_vaddf(alyx_buf *b, const char *fmt, va_list ap);
/* Detaches the data (caller frees with alyx__free); NULL if b->err.  The
 * buffer is left empty and reusable. */
char *alyx__buf_take(alyx_buf *b);

/* ---- JSON writer (appends to an alyx_buf) ---- */
/* A quoted, escaped JSON string from `n` bytes of UTF-8.  Invalid UTF-8
 * sequences are replaced by U+FFFD. */
void alyx__json_str(alyx_buf *b, const char *s, size_t n);
void alyx__json_strz(alyx_buf *b, const char *s);	/* NULL -> null */
/* `"name":` for an object key that is a schema identifier
 * (alyx__ident_valid: nothing to escape), in one append. */
void alyx__json_key(alyx_buf *b, const char *ident);
void alyx__json_i64(alyx_buf *b, int64_t v);
/* Shortest text that round-trips; NaN/Inf (not JSON) become null. */
void alyx__json_f64(alyx_buf *b, double v);
void alyx__json_bool(alyx_buf *b, bool v);
/* True if `s` (n bytes) is valid UTF-8 (no overlongs, no surrogates). */
bool alyx__utf8_valid(const char *s, size_t n);

/* ---- errors ---- */
typedef struct alyx__err {
	int code;		/* ALYX_OK or ALYX_E_* */
	char msg[512];		/* human message */
	char *details;		/* JSON object text (alyx__malloc'd) or NULL */
} alyx__err;

void alyx__err_clear(alyx__err *e);	/* frees details, code = OK */
/* Sets code, message (printf) and details (copied JSON object text, or
 * NULL).  Returns `code` so callers can `return alyx__err_set(...)`. */
int alyx__err_set(alyx__err *e, int code, const char *details_json,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Like alyx__err_set but takes ownership of `details` (may be NULL). */
int alyx__err_setd(alyx__err *e, int code, char *details, const char *fmt,
		   ...) __attribute__((format(printf, 4, 5)));
void alyx__err_move(alyx__err *dst, alyx__err *src);

/* Collects per-field failures and renders
 * {"fields":[{"field":"title","code":"max_length","message":"..."},...]} */
typedef struct alyx__fielderrs {
	alyx_buf buf;
	int count;
} alyx__fielderrs;
void alyx__fielderrs_init(alyx__fielderrs *fe);
void alyx__fielderrs_add(alyx__fielderrs *fe, const char *field,
			 const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Returns the details JSON (caller frees) and resets; NULL when none. */
char *alyx__fielderrs_take(alyx__fielderrs *fe);
void alyx__fielderrs_free(alyx__fielderrs *fe);

/* ---- time ---- */
/* Milliseconds since the Unix epoch, wall clock. */
int64_t alyx__now_ms(void);
/* Monotonic milliseconds, for timers. */
int64_t alyx__mono_ms(void);
/* Writes "YYYY-MM-DDTHH:MM:SS.mmmZ" (24 chars + NUL) into out[25]. */
void alyx__iso8601_ms(int64_t ms, char out[25]);
/* Parses RFC 3339 / ISO-8601 ("2026-01-02", "2026-01-02T03:04:05Z",
 * "...05.123+02:00", " " instead of "T") into ms since the epoch.
 * Returns false if it is not a valid timestamp. */
bool alyx__parse_iso8601(const char *s, size_t n, int64_t *ms);

/* The value of one hex digit (either case), or -1. */
static inline int alyx__hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* ---- ids, hashes, encodings ---- */
/* A random RFC 4122 version-4 UUID in lower-case text (37 bytes). */
void alyx__uuid_v4(char out[37]);
/* A time-ordered RFC 9562 version-7 UUID (ms timestamp, sub-ms fraction,
 * 62 random bits from a per-thread pool of CSPRNG bytes): the automatic
 * document id.  Not for secrets. */
void alyx__uuid_v7_pooled(char out[37]);
bool alyx__uuid_valid(const char *s, size_t n);
/* Random bytes from OpenSSL; false on failure. */
bool alyx__random(void *p, size_t n);
/* The n bytes at p as 2n lower-case hex digits and a NUL at out. */
void alyx__hex(const void *p, size_t n, char *out);
/* Lower-case hex SHA-256 of n bytes (65 bytes). */
void alyx__sha256_hex(const void *p, size_t n, char out[65]);
/* HMAC-SHA256 of n bytes under a klen-byte key into out; false on an
 * OpenSSL failure. */
bool alyx__hmac_sha256(const void *key, size_t klen, const void *p,
		       size_t n, unsigned char out[32]);
/* Standard base64 with padding.  Decode accepts no whitespace; returns
 * false on bad input.  Decode output is alyx__malloc'd. */
void alyx__base64_enc(alyx_buf *b, const void *p, size_t n);
bool alyx__base64_dec(const char *s, size_t n, unsigned char **out,
		      size_t *outlen);
/* URL-decodes n bytes of a query-string component ('+' is a space).
 * Returns false on a bad %-escape (errno EINVAL) or when out of memory
 * (errno ENOMEM).  Output is alyx__malloc'd, NUL-ended,
 * and *outlen excludes the NUL. */
bool alyx__url_decode(const char *s, size_t n, char **out, size_t *outlen);

/* ---- files ---- */
/* Reads a whole file (cap `max` bytes) into *out (NUL-terminated). */
int alyx__read_file(const char *path, size_t max, char **out, size_t *len,
		    alyx__err *err);
/* Writes atomically (temp file + rename). */
int alyx__write_file(const char *path, const void *p, size_t n,
		     alyx__err *err);
/* mkdir -p */
int alyx__mkdirs(const char *path, int mode, alyx__err *err);
char *alyx__path_join(const char *a, const char *b);

/* ---- identifiers ---- */
/* [A-Za-z_][A-Za-z0-9_]{0,62}: the only names ever spliced into SQL. */
bool alyx__ident_valid(const char *s);
/* Appends `name` as a double-quoted SQL identifier ("a""b"). */
void alyx__sql_ident(alyx_buf *b, const char *name);

#endif
