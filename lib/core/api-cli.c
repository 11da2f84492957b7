/*
 * api-cli.c - public helpers the developer CLI needs beyond the data API:
 * alyx_yaml_to_json() (for `alyx db seed file.yaml`).  The CLI links only
 * libalyx, so what it cannot do through alyx.h is added here as API.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "core/handle.h"

#define YAML_MAX_DEPTH 64

/* One open container while converting. */
struct level {
	bool map;	/* mapping (else sequence) */
	bool any;	/* an element or member was written already */
	bool want_key;	/* mapping: the next scalar is a key */
};

struct conv {
	alyx_buf out;
	struct level stack[YAML_MAX_DEPTH];
	int depth;
	const char *file;
	alyx__err *err;
};

static int yerr(struct conv *c, const yaml_mark_t *m, int code,
		const char *msg)
{
	alyx_buf d;
	int line = m ? (int)m->line + 1 : 0;
	int col = m ? (int)m->column + 1 : 0;

	alyx__buf_init(&d, 0);
	alyx__buf_adds(&d, "{\"file\":");
	alyx__json_strz(&d, c->file);
	alyx__buf_addf(&d, ",\"line\":%d,\"column\":%d}", line, col);
	return alyx__err_setd(c->err, code, alyx__buf_take(&d), "%s:%d:%d: %s",
			      c->file, line, col, msg);
}

static bool all_digits(const char *s, const char *digits)
{
	if (!*s)
		return false;
	return s[strspn(s, digits)] == '\0';
}

/* YAML 1.2 core schema floats, sign removed:
 * (\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool is_float(const char *p)
{
	size_t digits = strspn(p, "0123456789");

	p += digits;
	if (*p == '.') {
		size_t frac = strspn(p + 1, "0123456789");

		digits += frac;
		p += 1 + frac;
	}
	if (digits == 0)
		return false;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!(*p >= '0' && *p <= '9'))
			return false;
		p += strspn(p, "0123456789");
	}
	return *p == '\0';
}

/* Writes a plain scalar the way the YAML 1.2 core schema reads it: null,
 * true/false, integers (decimal, 0x, 0o), floats; everything else is a
 * string.  .inf and .nan have no JSON form and stay strings. */
static void plain_scalar(alyx_buf *b, const char *s, size_t n)
{
	const char *body = (*s == '-' || *s == '+') ? s + 1 : s;
	char *end;

	if (n == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
	    strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0) {
		alyx__buf_adds(b, "null");
		return;
	}
	if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 ||
	    strcmp(s, "TRUE") == 0) {
		alyx__json_bool(b, true);
		return;
	}
	if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 ||
	    strcmp(s, "FALSE") == 0) {
		alyx__json_bool(b, false);
		return;
	}
	if (all_digits(body, "0123456789") ||
	    (strncmp(s, "0x", 2) == 0 &&
	     all_digits(s + 2, "0123456789abcdefABCDEF")) ||
	    (strncmp(s, "0o", 2) == 0 && all_digits(s + 2, "01234567"))) {
		int base = s[1] == 'x' ? 16 : s[1] == 'o' ? 8 : 10;
		long long v;

		errno = 0;
		v = strtoll(base == 10 ? s : s + 2, &end, base);
		if (errno == 0 && *end == '\0') {
			alyx__json_i64(b, (int64_t)v);
			return;
		}
		if (base == 10) {	/* beyond int64: a float */
			alyx__json_f64(b, strtod(s, NULL));
			return;
		}
	}
	if (is_float(body)) {
		double d;

		errno = 0;
		d = strtod(s, &end);
		if (*end == '\0' && errno == 0 && isfinite(d)) {
			alyx__json_f64(b, d);
			return;
		}
	}
	alyx__json_str(b, s, n);
}

/* Writes the separator a new value needs inside the current container. */
static void before_value(struct conv *c)
{
	struct level *l;

	if (c->depth == 0)
		return;
	l = &c->stack[c->depth - 1];
	if (l->map) {
		l->want_key = true;	/* after this value */
		return;
	}
	if (l->any)
		alyx__buf_addc(&c->out, ',');
	l->any = true;
}

static int scalar(struct conv *c, const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t n = ev->data.scalar.length;
	const char *tag = (const char *)ev->data.scalar.tag;
	struct level *l = c->depth ? &c->stack[c->depth - 1] : NULL;

	if (strlen(s) != n || !alyx__utf8_valid(s, n))
		return yerr(c, &ev->start_mark, ALYX_E_BADJSON,
			    "a scalar holds a NUL byte or invalid UTF-8");
	if (l && l->map && l->want_key) {
		if (l->any)
			alyx__buf_addc(&c->out, ',');
		l->any = true;
		l->want_key = false;
		alyx__json_str(&c->out, s, n);
		alyx__buf_addc(&c->out, ':');
		return ALYX_OK;
	}
	before_value(c);
	if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	    (!tag || strcmp(tag, "!") != 0) &&
	    (!tag || strcmp(tag, YAML_STR_TAG) != 0))
		plain_scalar(&c->out, s, n);
	else
		alyx__json_str(&c->out, s, n);
	return ALYX_OK;
}

static int open_container(struct conv *c, const yaml_event_t *ev, bool map)
{
	struct level *l = c->depth ? &c->stack[c->depth - 1] : NULL;

	if (l && l->map && l->want_key)
		return yerr(c, &ev->start_mark, ALYX_E_BADJSON,
			    "a mapping key must be a plain value, not a "
			    "mapping or sequence");
	if (c->depth >= YAML_MAX_DEPTH)
		return yerr(c, &ev->start_mark, ALYX_E_TOOBIG,
			    "nested more than 64 levels deep");
	before_value(c);
	c->stack[c->depth++] = (struct level){map, false, map};
	alyx__buf_addc(&c->out, map ? '{' : '[');
	return ALYX_OK;
}

static int convert(struct conv *c, const char *yaml, size_t len)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	int docs = 0, rc = ALYX_OK;
	bool done = false;

	if (!yaml_parser_initialize(&parser))
		return alyx__err_set(c->err, ALYX_E_NOMEM, NULL,
				     "out of memory");
	yaml_parser_set_input_string(&parser, (const unsigned char *)yaml,
				     len);
	while (!done && rc == ALYX_OK) {
		if (!yaml_parser_parse(&parser, &ev)) {
			rc = yerr(c, &parser.problem_mark, ALYX_E_BADJSON,
				  parser.problem ? parser.problem :
						   "invalid YAML");
			break;
		}
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1)
				rc = yerr(c, &ev.start_mark, ALYX_E_BADJSON,
					  "more than one YAML document");
			break;
		case YAML_ALIAS_EVENT:
			rc = yerr(c, &ev.start_mark, ALYX_E_BADJSON,
				  "YAML aliases (*name) are not supported");
			break;
		case YAML_SCALAR_EVENT:
			rc = scalar(c, &ev);
			break;
		case YAML_SEQUENCE_START_EVENT:
			rc = open_container(c, &ev, false);
			break;
		case YAML_MAPPING_START_EVENT:
			rc = open_container(c, &ev, true);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			c->depth--;
			alyx__buf_addc(&c->out,
				       ev.type == YAML_MAPPING_END_EVENT ?
					       '}' : ']');
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	if (rc == ALYX_OK && c->out.len == 0)
		alyx__buf_adds(&c->out, "null");	/* an empty document */
	if (rc == ALYX_OK && c->out.err)
		rc = alyx__err_set(c->err, c->out.err, NULL,
				   "the JSON form of the YAML is too large");
	return rc;
}

ALYX_API int alyx_yaml_to_json(alyx *a, const char *yaml, size_t len,
			       const char *filename, char **out)
{
	alyx__err err = {0};
	struct conv c = {0};
	int rc;

	if (out)
		*out = NULL;
	if ((a && a->magic != ALYX__MAGIC) || !yaml || !out) {
		rc = alyx__err_set(&err, ALYX_E_MISUSE, NULL,
				   "alyx_yaml_to_json: %s",
				   a && a->magic != ALYX__MAGIC ?
					   "bad handle" : "NULL argument");
		goto out;
	}
	if (len == (size_t)-1)
		len = strlen(yaml);
	alyx__buf_init(&c.out, 0);
	c.file = filename ? filename : "<yaml>";
	c.err = &err;
	rc = convert(&c, yaml, len);
	if (rc == ALYX_OK)
		*out = alyx__buf_take(&c.out);
	alyx__buf_free(&c.out);
out:
	rc = alyx__report(a, &err);
	alyx__err_clear(&err);
	return rc;
}
