/*
 * h1.c - the HTTP/1.1 request-head parser and the path and query
 * decoders (h1.h).  RFC 9112 §2-§5: request-line, then field lines up to
 * an empty line; CRLF or a bare LF ends a line.  What alyx refuses:
 *  - a method that is not a token, a target that is neither an absolute
 *    path (origin-form) nor an absolute URI (absolute-form, whose scheme
 *    and authority are skipped) nor, for OPTIONS, '*' (asterisk-form), a
 *    malformed version: 400;
 *  - a version other than HTTP/1.0 and HTTP/1.1: 505;
 *  - a well-formed method alyx does not serve (CONNECT, TRACE, ...): 501;
 *  - a field line without a token name and ':', whitespace before the
 *    ':', an obsolete line fold, a control byte in a value: 400;
 *  - a second Host, Content-Length, Transfer-Encoding, Content-Type or
 *    Authorization (request smuggling and ambiguity): 400;
 *  - more than ALYX_H1_MAX_HEADERS field lines: 431.
 */
#include <string.h>
#include <strings.h>

#include "http/h1.h"
#include "http/http.h"
#include "util/util.h"

/* RFC 9110 tchar: ASCII letters and digits and !#$%&'*+-.^_`|~, as a
 * 128-bit set. */
static inline bool tchar(unsigned char c)
{
	static const uint64_t set[2] = {0x03ff6cfa00000000ull,
					0x57ffffffc7fffffeull};

	return c < 128 && (set[c >> 6] >> (c & 63) & 1);
}

size_t alyx__h1_head_end(const char *p, size_t n, size_t *scan)
{
	size_t i = *scan;

	while (i < n) {
		const char *nl = memchr(p + i, '\n', n - i);
		size_t at;

		if (!nl) {
			i = n;
			break;
		}
		at = (size_t)(nl - p);
		/* A line that ends here and is empty: "\n\n" or "\n\r\n". */
		if (at >= 1 && p[at - 1] == '\n')
			return at + 1;
		if (at >= 2 && p[at - 1] == '\r' && p[at - 2] == '\n')
			return at + 1;
		i = at + 1;
	}
	/* Resume a little before the end: the blank line may be split. */
	*scan = i >= 2 ? i - 2 : 0;
	return 0;
}

/* The method token by the router's own names (M_* order). */
static int method_of(const char *m, size_t n)
{
	for (int k = 0; k < M_OTHER; k++) {
		const char *s = alyx__method_name(k);

		if (strlen(s) == n && !memcmp(s, m, n))
			return k;
	}
	return M_OTHER;
}

static int header_of(const char *name, size_t n)
{
#define IS(s) (n == sizeof(s) - 1 && !strncasecmp(name, s, n))
	switch (n) {
	case 4:
		return IS("host") ? HH_HOST : -1;
	case 6:
		if (IS("origin"))
			return HH_ORIGIN;
		return IS("expect") ? HH_EXPECT : -1;
	case 7:
		return IS("upgrade") ? HH_UPGRADE : -1;
	case 10:
		return IS("connection") ? HH_CONNECTION : -1;
	case 12:
		if (IS("content-type"))
			return HH_CONTENT_TYPE;
		return IS("x-request-id") ? HH_X_REQUEST_ID : -1;
	case 13:
		return IS("authorization") ? HH_AUTHORIZATION : -1;
	case 14:
		return IS("content-length") ? HH_CONTENT_LENGTH : -1;
	case 17:
		return IS("transfer-encoding") ? HH_TRANSFER_ENCODING : -1;
	case 30:
		return IS("access-control-request-headers")
			? HH_AC_REQUEST_HEADERS : -1;
	}
	return -1;
#undef IS
}

/* Headers that may appear once only. */
#define HH_SINGLE ((1u << HH_HOST) | (1u << HH_CONTENT_LENGTH) | \
		   (1u << HH_TRANSFER_ENCODING) | (1u << HH_CONTENT_TYPE) | \
		   (1u << HH_AUTHORIZATION))

static int fail(int *status, const char **why, int st, const char *msg)
{
	*status = st;
	*why = msg;
	return -1;
}

/* The end of the line that starts at i (the index of its '\n'), and its
 * length without the line end; -1 for a CR that is not before the LF. */
static long line_end(const char *p, size_t n, size_t i, size_t *len)
{
	const char *nl = memchr(p + i, '\n', n - i);
	size_t at, l;

	if (!nl)
		return -1;
	at = (size_t)(nl - p);
	l = at - i;
	if (l && p[at - 1] == '\r')
		l--;
	if (memchr(p + i, '\r', l))
		return -1;
	*len = l;
	return (long)at;
}

int alyx__h1_parse(const char *p, size_t n, alyx__h1head *h, int *status,
		   const char **why)
{
	size_t i = 0, len, k;
	long at;

	memset(h, 0, sizeof(*h));
	h->head_len = (uint32_t)n;
	h->fail_part = ALYX_H1_LINE;
	at = line_end(p, n, 0, &len);
	if (at < 0)
		return fail(status, why, 400, "malformed request line");
	/* method SP request-target SP HTTP-version */
	for (k = 0; k < len && tchar((unsigned char)p[k]); k++)
		;
	if (!k || k == len || p[k] != ' ')
		return fail(status, why, 400, "malformed request line");
	h->method_tok = (alyx__h1span){0, (uint32_t)k};
	h->method = (uint8_t)method_of(p, k);
	i = k + 1;
	size_t t0 = i;
	while (i < len && p[i] != ' ') {
		unsigned char c = (unsigned char)p[i];
		if (c <= 0x20 || c >= 0x7f)
			return fail(status, why, 400, "malformed request target");
		i++;
	}
	if (i == t0 || i == len)
		return fail(status, why, 400, "malformed request line");
	const char *hash = memchr(p + t0, '#', i - t0);
	if (hash)
		return fail(status, why, 400,
			    "a request target has no fragment");
	const char *q = memchr(p + t0, '?', i - t0);
	size_t pend = q ? (size_t)(q - p) : i;
	if (p[t0] == '*' && i - t0 == 1) {
		/* asterisk-form (RFC 9112 §3.2.4): the server as a whole,
		 * for OPTIONS only.  The path is "*". */
		if (h->method != M_OPTIONS)
			return fail(status, why, 400,
				    "the request target '*' is for OPTIONS "
				    "only");
	} else if (p[t0] != '/') {
		/* absolute-form: scheme "://" authority [path] */
		size_t k2 = t0;
		while (k2 < pend && (((p[k2] | 0x20) >= 'a' &&
				      (p[k2] | 0x20) <= 'z') ||
				     (k2 > t0 && ((p[k2] >= '0' &&
						   p[k2] <= '9') ||
						  p[k2] == '+' ||
						  p[k2] == '-' ||
						  p[k2] == '.'))))
			k2++;
		if (k2 == t0 || pend - k2 < 3 || memcmp(p + k2, "://", 3))
			return fail(status, why, 400,
				    "the request target must be an absolute "
				    "path or URI");
		const char *sl = memchr(p + k2 + 3, '/', pend - k2 - 3);
		t0 = sl ? (size_t)(sl - p) : pend;
	}
	if (q) {
		h->path = (alyx__h1span){(uint32_t)t0, (uint32_t)(q - p - t0)};
		h->has_query = true;
		h->query = (alyx__h1span){(uint32_t)(q - p + 1),
					  (uint32_t)(i - (size_t)(q - p) - 1)};
	} else {
		h->path = (alyx__h1span){(uint32_t)t0, (uint32_t)(i - t0)};
	}
	i++;	/* the SP */
	if (len - i != 8 || memcmp(p + i, "HTTP/", 5) ||
	    p[i + 5] < '0' || p[i + 5] > '9' || p[i + 6] != '.' ||
	    p[i + 7] < '0' || p[i + 7] > '9')
		return fail(status, why, 400, "malformed HTTP version");
	if (p[i + 5] != '1' || p[i + 7] > '1')
		return fail(status, why, 505,
			    "only HTTP/1.0 and HTTP/1.1 are served");
	h->minor = (uint8_t)(p[i + 7] - '0');
	if (h->method == M_OTHER)
		return fail(status, why, 501,
			    "alyx does not serve this request method");

	/* field-name ":" OWS field-value OWS, up to the empty line */
	h->fail_part = ALYX_H1_HEADERS;
	int count = 0;
	i = (size_t)at + 1;
	for (;;) {
		at = line_end(p, n, i, &len);
		if (at < 0)
			return fail(status, why, 400, "malformed header line");
		if (!len)
			break;
		if (++count > ALYX_H1_MAX_HEADERS)
			return fail(status, why, 431, "too many header lines");
		if (p[i] == ' ' || p[i] == '\t')
			return fail(status, why, 400,
				    "folded header lines are not accepted");
		for (k = 0; k < len && tchar((unsigned char)p[i + k]); k++)
			;
		if (!k || k == len || p[i + k] != ':')
			return fail(status, why, 400, "malformed header line");
		size_t v = i + k + 1, e = i + len;
		while (v < e && (p[v] == ' ' || p[v] == '\t'))
			v++;
		while (e > v && (p[e - 1] == ' ' || p[e - 1] == '\t'))
			e--;
		for (size_t j = v; j < e; j++) {
			unsigned char c = (unsigned char)p[j];
			if ((c < 0x20 && c != '\t') || c == 0x7f) {
				h->fail_name = (alyx__h1span){(uint32_t)i,
							      (uint32_t)k};
				return fail(status, why, 400,
					    "a control character in a header "
					    "value");
			}
		}
		int hh = header_of(p + i, k);
		if (hh == HH_CONNECTION) {
			if (alyx__h1_has_token(p + v, e - v, "close"))
				h->conn_close = true;
			if (alyx__h1_has_token(p + v, e - v, "upgrade"))
				h->conn_upgrade = true;
		} else if (hh == HH_UPGRADE &&
			   alyx__h1_has_token(p + v, e - v, "websocket")) {
			h->upgrade_websocket = true;
		}
		if (hh >= 0) {
			if (h->have & (1u << hh)) {
				if (HH_SINGLE & (1u << hh)) {
					h->fail_name = (alyx__h1span){
						(uint32_t)i, (uint32_t)k};
					return fail(status, why, 400,
						    "a header that may appear "
						    "once is repeated");
				}
			} else {
				h->have |= 1u << hh;
				h->hv[hh] = (alyx__h1span){(uint32_t)v,
							   (uint32_t)(e - v)};
			}
		}
		i = (size_t)at + 1;
	}
	return 0;
}

bool alyx__h1_has_token(const char *v, size_t n, const char *tok)
{
	size_t tl = strlen(tok), i = 0;

	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t st = i;
		while (i < n && v[i] != ',')
			i++;
		size_t e = i;
		while (e > st && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - st == tl && !strncasecmp(v + st, tok, tl))
			return true;
	}
	return false;
}

/* One %xx at p[i] (p[i] == '%'), or -1. */
static int unescape(const char *p, size_t n, size_t i)
{
	int hi, lo;

	if (n < 3 || i > n - 3)
		return -1;
	hi = alyx__hexval((unsigned char)p[i + 1]);
	lo = alyx__hexval((unsigned char)p[i + 2]);
	if (hi < 0 || lo < 0)
		return -1;
	return hi << 4 | lo;
}

long alyx__h1_path(const char *p, size_t n, char *out, size_t cap)
{
	size_t o = 0;

	if (!cap)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)p[i];

		if (c == '%') {
			c = unescape(p, n, i);
			if (c <= 0)
				return -1;	/* bad escape, or %00 */
			i += 2;
		}
		if (o + 1 >= cap)
			return -1;
		out[o++] = (char)c;
		/* "//" folds to "/" */
		if (c == '/' && o >= 2 && out[o - 2] == '/')
			o--;
		/* A finished "/." or "/.." segment (at '/' or the end) is
		 * resolved when the next '/' arrives or at the end. */
		if (c == '/' && o >= 3 && out[o - 2] == '.' &&
		    out[o - 3] == '/') {
			o -= 2;			/* "/./" -> "/" */
		} else if (c == '/' && o >= 4 && out[o - 2] == '.' &&
			   out[o - 3] == '.' && out[o - 4] == '/') {
			o -= 3;			/* "/../" -> "/", then up */
			while (o >= 2 && out[o - 2] != '/')
				o--;
			if (o >= 2)
				o--;
		}
	}
	/* A final "/." or "/..". */
	if (o >= 2 && out[o - 1] == '.' && out[o - 2] == '/') {
		o -= 1;
	} else if (o >= 3 && out[o - 1] == '.' && out[o - 2] == '.' &&
		   out[o - 3] == '/') {
		o -= 2;
		while (o >= 2 && out[o - 2] != '/')
			o--;
		if (o >= 2)
			o--;
	}
	if (!o || out[0] != '/')
		return -1;
	out[o] = '\0';
	return (long)o;
}

int alyx__h1_args(const char *q, size_t n, char *out, size_t cap,
		  alyx__h1span *args, int max)
{
	size_t o = 0;
	int count = 0;
	size_t start = 0;

	for (size_t i = 0; i <= n; i++) {
		if (i < n && q[i] != '&')
			continue;
		if (count == max)
			return -2;
		if (o + (i - start) + 1 > cap)
			return -2;
		size_t s = o;
		for (size_t j = start; j < i; j++) {
			int c = (unsigned char)q[j];
			if (c == '+') {
				c = ' ';
			} else if (c == '%') {
				c = unescape(q, i, j);
				if (c <= 0)
					return -1;
				j += 2;
			}
			out[o++] = (char)c;
		}
		out[o] = '\0';
		args[count++] = (alyx__h1span){(uint32_t)s, (uint32_t)(o - s)};
		o++;
		start = i + 1;
	}
	return count;
}

int alyx__h1_te(const char *v, size_t n)
{
	size_t i = 0;
	int chunked = 0;
	bool last = false, other = false;

	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t st = i;
		while (i < n && v[i] != ',')
			i++;
		size_t e = i;
		while (e > st && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e == st)
			continue;	/* an empty list element */
		last = e - st == 7 && !strncasecmp(v + st, "chunked", 7);
		if (last)
			chunked++;
		else
			other = true;
	}
	if (chunked != 1 || !last)
		return 0;
	return other ? -1 : 1;
}

/* The decoder's states: the size line (digits, blanks after them, an
 * extension, its LF after a CR), the data and the line end after it, the
 * trailer section (a line's start, inside a line, a line's LF) and the
 * LF of the blank line that ends the body. */
enum {
	CK_SIZE, CK_AFTER_SIZE, CK_EXT, CK_SIZE_LF, CK_DATA, CK_DATA_END,
	CK_DATA_LF, CK_TRAILER, CK_TRAILER_LINE, CK_TRAILER_LF, CK_END_LF,
	CK_DONE
};

static int ck_bad(const char **why, const char *msg)
{
	*why = msg;
	return ALYX_H1_CHUNK_BAD;
}

/* A CTL that may not appear in an extension or a trailer line. */
static inline bool ck_ctl(unsigned char b)
{
	return (b < 0x20 && b != '\t') || b == 0x7f;
}

int alyx__h1_chunked(alyx__h1chunk *c, const char *p, size_t n,
		     size_t *used, size_t *doff, size_t *dlen,
		     const char **why)
{
	size_t i = 0;

	*doff = *dlen = 0;
	while (i < n) {
		unsigned char b = (unsigned char)p[i];
		int hv;

		if (c->st == CK_DATA) {
			size_t k = n - i;
			if (k > c->left)
				k = (size_t)c->left;
			c->left -= k;
			if (!c->left)
				c->st = CK_DATA_END;
			*doff = i;
			*dlen = k;
			*used = i + k;
			return ALYX_H1_CHUNK_DATA;
		}
		if (c->st <= CK_SIZE_LF &&
		    ++c->line > ALYX_H1_MAX_CHUNK_LINE)
			return ck_bad(why, "a chunk-size line is too long");
		if (c->st >= CK_TRAILER && c->st <= CK_END_LF &&
		    ++c->trailer > ALYX_H1_MAX_TRAILER)
			return ck_bad(why, "the chunked body's trailer section "
				      "is too large");
		i++;
		switch (c->st) {
		case CK_SIZE:
			hv = alyx__hexval(b);
			if (hv >= 0) {
				if (++c->digits > 15)
					return ck_bad(why, "a chunk size is too "
						      "large");
				c->left = c->left << 4 | (uint64_t)hv;
				break;
			}
			if (!c->digits)
				return ck_bad(why, "a chunk must start with its "
					      "size in hex digits");
			c->st = CK_AFTER_SIZE;
			/* The byte after the digits: */
			/* fall through */
		case CK_AFTER_SIZE:
			if (b == ' ' || b == '\t')
				break;
			if (b == ';') {
				c->st = CK_EXT;
				break;
			}
			/* fall through */
		case CK_EXT:
			if (b == '\r') {
				c->st = CK_SIZE_LF;
				break;
			}
			if (b == '\n')
				goto size_line_done;
			if (c->st == CK_AFTER_SIZE)
				return ck_bad(why, "a chunk size must be hex "
					      "digits, then ';' extensions or "
					      "the line end");
			if (ck_ctl(b))
				return ck_bad(why, "a control byte in a chunk "
					      "extension");
			break;
		case CK_DATA_END:
			if (b == '\r') {
				c->st = CK_DATA_LF;
				break;
			}
			if (b != '\n')
				return ck_bad(why, "a chunk's data does not end "
					      "where its size says");
			c->st = CK_SIZE;
			break;
		case CK_TRAILER:
			if (b == '\r') {
				c->st = CK_END_LF;
				break;
			}
			if (b == '\n')
				goto done;
			c->st = CK_TRAILER_LINE;
			/* The line's first byte: */
			/* fall through */
		case CK_TRAILER_LINE:
			if (b == '\n')
				c->st = CK_TRAILER;
			else if (b == '\r')
				c->st = CK_TRAILER_LF;
			else if (ck_ctl(b))
				return ck_bad(why, "a control byte in a trailer "
					      "field");
			break;
		case CK_SIZE_LF:	/* the LF after a CR */
		case CK_DATA_LF:
		case CK_TRAILER_LF:
		case CK_END_LF:
			if (b != '\n')
				return ck_bad(why, "a CR without LF in the "
					      "chunked framing");
			if (c->st == CK_SIZE_LF)
				goto size_line_done;
			if (c->st == CK_END_LF)
				goto done;
			c->st = c->st == CK_DATA_LF ? CK_SIZE : CK_TRAILER;
			break;
		size_line_done:
			c->line = 0;
			c->digits = 0;
			c->st = c->left ? CK_DATA : CK_TRAILER;
			break;
		done:
			c->st = CK_DONE;
			*used = i;
			return ALYX_H1_CHUNK_END;
		default:	/* CK_DONE: nothing more is read */
			*used = i - 1;
			return ALYX_H1_CHUNK_END;
		}
	}
	*used = n;
	return ALYX_H1_CHUNK_MORE;
}
