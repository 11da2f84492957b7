/* json.c - the CLI's small JSON reader and re-indenter (see json.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define MAX_DEPTH 512

struct parser {
	const char *p, *end;
	int depth;
};

static void skip_ws(struct parser *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' ||
				   *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static int hex4(const char *s, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		char c = s[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Parses a string at ps->p (the opening quote) into a new NUL-terminated
 * buffer.  The decoded text is never longer than the escaped text. */
static char *parse_string(struct parser *ps)
{
	const char *s = ps->p + 1;
	char *out = NULL, *o;

	out = malloc((size_t)(ps->end - s) + 1);
	if (!out)
		return NULL;
	o = out;
	while (s < ps->end && *s != '"') {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20)
			goto bad;
		if (c != '\\') {
			*o++ = (char)c;
			s++;
			continue;
		}
		if (++s >= ps->end)
			goto bad;
		switch (*s) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '/': *o++ = '/'; break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u': {
			unsigned cp, lo;

			if (ps->end - s < 5 || hex4(s + 1, &cp) < 0)
				goto bad;
			s += 4;
			if (cp >= 0xd800 && cp < 0xdc00 && ps->end - s >= 7 &&
			    s[1] == '\\' && s[2] == 'u' &&
			    hex4(s + 3, &lo) == 0 && lo >= 0xdc00 &&
			    lo < 0xe000) {
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				     (lo - 0xdc00);
				s += 6;
			} else if (cp >= 0xd800 && cp < 0xe000) {
				cp = 0xfffd;
			}
			o += put_utf8(o, cp);
			break;
		}
		default:
			goto bad;
		}
		s++;
	}
	if (s >= ps->end)
		goto bad;
	*o = '\0';
	ps->p = s + 1;
	return out;
bad:
	free(out);
	return NULL;
}

static cj *parse_value(struct parser *ps);

/* Parses the elements of an array or the members of an object; ps->p is
 * just past the opening bracket. */
static int parse_children(struct parser *ps, cj *v, char close)
{
	cj **tail = &v->kid;

	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == close) {
		ps->p++;
		return 0;
	}
	for (;;) {
		char *key = NULL;
		cj *kid;

		skip_ws(ps);
		if (close == '}') {
			if (ps->p >= ps->end || *ps->p != '"')
				return -1;
			key = parse_string(ps);
			if (!key)
				return -1;
			skip_ws(ps);
			if (ps->p >= ps->end || *ps->p != ':') {
				free(key);
				return -1;
			}
			ps->p++;
		}
		kid = parse_value(ps);
		if (!kid) {
			free(key);
			return -1;
		}
		kid->key = key;
		*tail = kid;
		tail = &kid->next;
		skip_ws(ps);
		if (ps->p >= ps->end)
			return -1;
		if (*ps->p == close) {
			ps->p++;
			return 0;
		}
		if (*ps->p != ',')
			return -1;
		ps->p++;
	}
}

static int match_word(struct parser *ps, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, w, n) != 0)
		return -1;
	ps->p += n;
	return 0;
}

static int parse_number(struct parser *ps, cj *v)
{
	const char *s = ps->p;
	char *endp;

	if (s < ps->end && *s == '-')
		s++;
	if (s >= ps->end || *s < '0' || *s > '9')
		return -1;
	while (s < ps->end && strchr("0123456789.eE+-", *s))
		s++;
	v->str = malloc((size_t)(s - ps->p) + 1);
	if (!v->str)
		return -1;
	memcpy(v->str, ps->p, (size_t)(s - ps->p));
	v->str[s - ps->p] = '\0';
	v->num = strtod(v->str, &endp);
	if (*endp)
		return -1;
	ps->p = s;
	return 0;
}

static cj *parse_value(struct parser *ps)
{
	cj *v;
	int rc = -1;

	skip_ws(ps);
	if (ps->p >= ps->end || ps->depth >= MAX_DEPTH)
		return NULL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	switch (*ps->p) {
	case '{':
	case '[':
		v->type = *ps->p == '{' ? CJ_OBJ : CJ_ARR;
		ps->p++;
		ps->depth++;
		rc = parse_children(ps, v, v->type == CJ_OBJ ? '}' : ']');
		ps->depth--;
		break;
	case '"':
		v->type = CJ_STR;
		v->str = parse_string(ps);
		rc = v->str ? 0 : -1;
		break;
	case 't':
		v->type = CJ_BOOL;
		v->b = true;
		rc = match_word(ps, "true");
		break;
	case 'f':
		v->type = CJ_BOOL;
		rc = match_word(ps, "false");
		break;
	case 'n':
		v->type = CJ_NULL;
		rc = match_word(ps, "null");
		break;
	default:
		v->type = CJ_NUM;
		rc = parse_number(ps, v);
		break;
	}
	if (rc < 0) {
		cj_free(v);
		return NULL;
	}
	return v;
}

cj *cj_parse(const char *text, size_t len)
{
	struct parser ps = {text, text + len, 0};
	cj *v = parse_value(&ps);

	if (!v)
		return NULL;
	skip_ws(&ps);
	if (ps.p != ps.end) {
		cj_free(v);
		return NULL;
	}
	return v;
}

void cj_free(cj *v)
{
	while (v) {
		cj *next = v->next;

		cj_free(v->kid);
		free(v->key);
		free(v->str);
		free(v);
		v = next;
	}
}

const cj *cj_get(const cj *o, const char *key)
{
	if (!o || o->type != CJ_OBJ)
		return NULL;
	for (const cj *k = o->kid; k; k = k->next)
		if (strcmp(k->key, key) == 0)
			return k;
	return NULL;
}

const char *cj_getstr(const cj *o, const char *key)
{
	const cj *v = cj_get(o, key);

	return v && v->type == CJ_STR ? v->str : NULL;
}

bool cj_gettrue(const cj *o, const char *key)
{
	const cj *v = cj_get(o, key);

	return v && v->type == CJ_BOOL && v->b;
}

size_t cj_count(const cj *v)
{
	size_t n = 0;

	if (v && (v->type == CJ_ARR || v->type == CJ_OBJ))
		for (const cj *k = v->kid; k; k = k->next)
			n++;
	return n;
}

const char *cj_text(const cj *v)
{
	if (!v)
		return "";
	switch (v->type) {
	case CJ_NULL: return "null";
	case CJ_BOOL: return v->b ? "true" : "false";
	case CJ_NUM:
	case CJ_STR: return v->str;
	default: return "";
	}
}

static void newline(FILE *f, int depth)
{
	fputc('\n', f);
	for (int i = 0; i < depth; i++)
		fputs("  ", f);
}

void cj_print(FILE *f, const char *text, size_t len, bool pretty)
{
	const char *p = text, *end = text + len;
	int depth = 0;

	if (!pretty) {
		fwrite(text, 1, len, f);
		fputc('\n', f);
		return;
	}
	while (p < end) {
		char c = *p;

		if (c == '"') {
			const char *s = p++;

			while (p < end && *p != '"')
				p += *p == '\\' && p + 1 < end ? 2 : 1;
			if (p < end)
				p++;
			fwrite(s, 1, (size_t)(p - s), f);
			continue;
		}
		p++;
		switch (c) {
		case ' ': case '\t': case '\n': case '\r':
			break;
		case '{':
		case '[': {
			const char *q = p;

			while (q < end && strchr(" \t\r\n", *q))
				q++;
			if (q < end && (*q == '}' || *q == ']')) {
				/* An empty object or array stays on one line. */
				fputc(c, f);
				fputc(*q, f);
				p = q + 1;
				break;
			}
			fputc(c, f);
			newline(f, ++depth);
			break;
		}
		case '}':
		case ']':
			newline(f, --depth);
			fputc(c, f);
			break;
		case ',':
			fputc(c, f);
			newline(f, depth);
			break;
		case ':':
			fputs(": ", f);
			break;
		default:
			fputc(c, f);
			break;
		}
	}
	fputc('\n', f);
}
