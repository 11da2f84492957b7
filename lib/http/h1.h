/*
 * h1.h - alyx's own HTTP/1.1 request parser (h1.c) and the front that
 * serves plain-HTTP connections with it (front.c).
 *
 * The parser is pure: it reads a request head that is already complete
 * in a buffer and records where the method, path, query and the headers
 * alyx uses are, as offsets from the head's first byte, so the head can
 * be moved (front.c copies it out of the read buffer) without fixing
 * pointers.  Decoding of the path and of the query parameters is here
 * too.  Every refusal carries an HTTP status and a message for the JSON
 * error reply.
 */
#ifndef ALYX_H1_H
#define ALYX_H1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The request headers alyx reads, by index. */
enum alyx__hh {
	HH_HOST,
	HH_CONTENT_TYPE,
	HH_CONTENT_LENGTH,
	HH_TRANSFER_ENCODING,
	HH_EXPECT,
	HH_AUTHORIZATION,
	HH_ORIGIN,
	HH_AC_REQUEST_HEADERS,	/* Access-Control-Request-Headers */
	HH_X_REQUEST_ID,
	HH_CONNECTION,
	HH_UPGRADE,
	HH_COUNT
};

/* At most this many header lines in one request (then 431). */
#define ALYX_H1_MAX_HEADERS 100

typedef struct alyx__h1span {
	uint32_t off, len;
} alyx__h1span;

typedef struct alyx__h1head {
	uint8_t method;		/* M_* of http.h; M_OTHER: a method we lack */
	uint8_t minor;		/* HTTP/1.<minor>: 0 or 1 */
	bool has_query;		/* a '?' in the target (query may be empty) */
	/* Tokens of every Connection / Upgrade line (RFC 9110 §7.6.1: the
	 * lines of a list header make one list). */
	bool conn_close, conn_upgrade, upgrade_websocket;
	uint32_t have;		/* bit (1 << HH_x) per header present */
	uint32_t head_len;	/* bytes through the blank line */
	alyx__h1span method_tok;	/* the method as sent */
	alyx__h1span path;	/* the target up to '?', raw; empty for an
				 * absolute-form target without a path ("/");
				 * "*" for OPTIONS * */
	alyx__h1span query;	/* after '?', raw */
	alyx__h1span hv[HH_COUNT];	/* values, without surrounding blanks */
	/* After a refusal: which part of the head it is about, and the
	 * header's name when one is known (len 0 otherwise). */
	uint8_t fail_part;	/* ALYX_H1_LINE or ALYX_H1_HEADERS */
	alyx__h1span fail_name;
} alyx__h1head;

enum { ALYX_H1_LINE = 1, ALYX_H1_HEADERS = 2 };

/*
 * Where the head that starts at p ends: the offset just past its blank
 * line, or 0 while it is incomplete.  *scan is where the search resumes
 * next time (start it at 0 for a new head), so bytes that trickle in are
 * looked at once.
 */
size_t alyx__h1_head_end(const char *p, size_t n, size_t *scan);

/*
 * Parses the complete head p[0..n) (n from alyx__h1_head_end).  Returns
 * 0 and fills *h, or -1 with *status (400, 431, 501 or 505), *why, and
 * h->fail_part / h->fail_name.
 */
int alyx__h1_parse(const char *p, size_t n, alyx__h1head *h, int *status,
		   const char **why);

/* Does the comma-separated list v[0..n) hold `tok` (case-insensitive)? */
bool alyx__h1_has_token(const char *v, size_t n, const char *tok);

/*
 * Decodes a raw path into out (cap bytes with its NUL): %xx escapes,
 * then dot segments resolved and repeated '/' folded, never above "/".
 * Returns the length, or -1 for a bad escape, an escaped NUL or no room.
 */
long alyx__h1_path(const char *p, size_t n, char *out, size_t cap);

/*
 * Decodes a raw query into `out` (cap bytes): split at '&', each piece
 * %xx- and '+'-decoded and NUL-terminated; its offset and length go to
 * args[] (at most max; empty pieces are kept, as lws keeps them).
 * Returns how many pieces, or -1 for a bad escape or an escaped NUL,
 * -2 for more than max pieces or no room.
 */
int alyx__h1_args(const char *q, size_t n, char *out, size_t cap,
		  alyx__h1span *args, int max);

/*
 * Transfer-Encoding v[0..n) of a request: 1 for "chunked" alone (empty
 * list elements and case aside), 0 when chunked is missing, not last or
 * repeated (the body's length cannot be known: 400), -1 when another
 * coding is named (gzip, ...: alyx decodes none, 501).
 */
int alyx__h1_te(const char *v, size_t n);

/* Longest chunk-size line (size, extensions, line end) and trailer
 * section accepted; more is a 400. */
#define ALYX_H1_MAX_CHUNK_LINE 4096
#define ALYX_H1_MAX_TRAILER 8192

/* Where a chunked body's decoder is (RFC 9112 §7.1); zeroed to start. */
typedef struct alyx__h1chunk {
	uint8_t st;
	uint8_t digits;		/* hex digits of the size read so far */
	uint32_t line;		/* bytes of the current size line */
	uint32_t trailer;	/* bytes of the trailer section */
	uint64_t left;		/* data bytes left in the current chunk */
} alyx__h1chunk;

enum {
	ALYX_H1_CHUNK_BAD = -1,	/* malformed framing: *why, a 400 */
	ALYX_H1_CHUNK_MORE = 0,	/* all of p used; more bytes are needed */
	ALYX_H1_CHUNK_DATA = 1,	/* data at p[*doff .. *doff + *dlen) */
	ALYX_H1_CHUNK_END = 2	/* the body ended (last chunk, trailers) */
};

/*
 * Reads a chunked body from p[0..n), where the previous call stopped.
 * *used is how many bytes of p this call took: with DATA, up to the end
 * of one run of chunk data, which is p[*doff .. *doff + *dlen) (call
 * again with the rest); with END, through the blank line that ends the
 * body (bytes after it belong to the next request); with MORE, all n.
 * Chunk extensions and trailer fields are read and dropped.  CRLF or a
 * bare LF ends a line; a CR not followed by LF is malformed.
 */
int alyx__h1_chunked(alyx__h1chunk *c, const char *p, size_t n,
		     size_t *used, size_t *doff, size_t *dlen,
		     const char **why);

#endif
