/*
 * parse.c - builds and validates an alyx__schema from a document tree
 * (SEED-PLAN.md §Schema File Format, §Type System, §Field Options).
 *
 * Every check reports the first problem as ALYX_E_SCHEMA (ALYX_E_TOOBIG
 * for limits) with file, line and column of the offending node.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <pcre2.h>

#include "query/query.h"
#include "rules/rules.h"
#include "schema/schema-int.h"

typedef struct pending_ref {
	size_t ci, fi;
	const ynode *node;	/* the `references:` value */
} pending_ref;

typedef struct bctx {
	const char *file;
	alyx__err *err;
	alyx__schema *s;
	const char *coll;	/* names for error details */
	const char *field;
	pending_ref *refs;
	size_t n_refs, cap_refs;
} bctx;

static int berr(bctx *c, const ynode *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int berr(bctx *c, const ynode *n, const char *fmt, ...)
{
	char msg[380];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return alyx__schema_err(c->err, ALYX_E_SCHEMA, c->file,
				n ? n->line : 0, n ? n->col : 0, c->coll,
				c->field, "%s", msg);
}

static int toobig(bctx *c, const ynode *n, const char *what, size_t max)
{
	return alyx__schema_err(c->err, ALYX_E_TOOBIG, c->file,
				n ? n->line : 0, n ? n->col : 0, c->coll,
				c->field, "too many %s (at most %zu)", what,
				max);
}

static int nomem(bctx *c)
{
	return alyx__err_set(c->err, ALYX_E_NOMEM, NULL, "out of memory");
}

/* ---- suggestions ---- */

size_t alyx__edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j;
	size_t row[64], prev, tmp;

	if (la > 63 || lb > 63)
		return 64;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = i;
		for (j = 1; j <= lb; j++) {
			size_t sub = prev + ((a[i - 1] | 32) != (b[j - 1] | 32));
			size_t best = row[j] + 1 < row[j - 1] + 1 ?
				row[j] + 1 : row[j - 1] + 1;

			tmp = row[j];
			row[j] = sub < best ? sub : best;
			prev = tmp;
		}
	}
	return row[lb];
}

/* Appends " (did you mean 'x'?)" to msg for the closest of `names`. */
static void suggest(char *msg, size_t size, const char *got,
		    const char *const *names, size_t n)
{
	size_t i, best = (size_t)-1, bestd = 3, d, len = strlen(msg);

	for (i = 0; i < n; i++) {
		size_t lg = strlen(got), ln = strlen(names[i]);

		d = alyx__edit_distance(got, names[i]);
		/* A truncated name ("maxLen") is a likely typo too. */
		if (lg >= 3 && ln >= 3 &&
		    strncasecmp(got, names[i], lg < ln ? lg : ln) == 0)
			d = 1;
		if (d < bestd) {
			bestd = d;
			best = i;
		}
	}
	if (best != (size_t)-1 && len < size)
		snprintf(msg + len, size - len, " (did you mean '%s'?)",
			 names[best]);
}

static int unknown_name(bctx *c, const ynode *n, const char *what,
			const char *const *names, size_t count)
{
	char msg[300];

	snprintf(msg, sizeof(msg), "unknown %s '%.64s'", what, n->str);
	suggest(msg, sizeof(msg), n->str, names, count);
	return berr(c, n, "%s", msg);
}

/* Index of key in names[], or an "unknown option" error. */
static int lookup_key(bctx *c, const ynode *key, const char *what,
		      const char *const *names, size_t count, size_t *idx)
{
	size_t i;

	*idx = 0;
	for (i = 0; i < count; i++) {
		if (strcmp(key->str, names[i]) == 0) {
			*idx = i;
			return ALYX_OK;
		}
	}
	return unknown_name(c, key, what, names, count);
}

/* ---- scalar typing (YAML 1.2 core schema for plain scalars) ---- */

typedef enum skind { SK_STR, SK_INT, SK_FLOAT, SK_BOOL, SK_NULL } skind;

static const char *skind_name(skind k)
{
	static const char *const names[] = {"string", "int", "float", "bool",
					     "null"};
	return names[k];
}

static bool parse_i64(const char *s, int64_t *out)
{
	char *end;
	long long v;
	const char *p = s;

	if (*p == '+' || *p == '-')
		p++;
	if (*p < '0' || *p > '9')
		return false;
	for (; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno == ERANGE || *end)
		return false;
	*out = v;
	return true;
}

static bool parse_f64(const char *s, double *out)
{
	const char *p;
	char *end;
	double v;
	bool digit = false;

	for (p = s; *p; p++) {
		if (*p >= '0' && *p <= '9')
			digit = true;
		else if (!strchr("+-.eE", *p))
			return false;
	}
	if (!digit)
		return false;
	v = strtod(s, &end);
	if (*end || !isfinite(v))
		return false;
	*out = v;
	return true;
}

static skind scalar_kind(const ynode *n)
{
	const char *s = n->str;
	int64_t i;
	double d;

	if (!n->plain)
		return SK_STR;
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE") ||
	    !strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
		return SK_BOOL;
	if (!*s || !strcmp(s, "null") || !strcmp(s, "Null") ||
	    !strcmp(s, "NULL") || !strcmp(s, "~"))
		return SK_NULL;
	if (parse_i64(s, &i))
		return SK_INT;
	if (parse_f64(s, &d))
		return SK_FLOAT;
	return SK_STR;
}

static int want_scalar(bctx *c, const ynode *n, const char *opt)
{
	if (n->kind != YN_SCALAR)
		return berr(c, n, "'%s' must be a single value", opt);
	return ALYX_OK;
}

static int get_bool(bctx *c, const ynode *n, const char *opt, bool *out)
{
	if (n->kind != YN_SCALAR || scalar_kind(n) != SK_BOOL)
		return berr(c, n, "'%s' must be true or false", opt);
	*out = n->str[0] == 't' || n->str[0] == 'T';
	return ALYX_OK;
}

/* Integers the schema stores must survive JSON (a double) exactly. */
#define SCHEMA_MAX_INT 9007199254740991LL

static int get_count(bctx *c, const ynode *n, const char *opt, int64_t *out)
{
	if (n->kind != YN_SCALAR || scalar_kind(n) != SK_INT ||
	    !parse_i64(n->str, out) || *out < 0 || *out > SCHEMA_MAX_INT)
		return berr(c, n, "'%s' must be a non-negative integer", opt);
	return ALYX_OK;
}

static int get_number(bctx *c, const ynode *n, const char *opt, double *out)
{
	skind k = n->kind == YN_SCALAR ? scalar_kind(n) : SK_STR;

	if ((k != SK_INT && k != SK_FLOAT) || !parse_f64(n->str, out))
		return berr(c, n, "'%s' must be a number", opt);
	return ALYX_OK;
}

/* A string value (a quoted or plain scalar that is not a number etc.). */
static int get_string(bctx *c, const ynode *n, const char *opt)
{
	if (n->kind != YN_SCALAR || scalar_kind(n) == SK_NULL)
		return berr(c, n, "'%s' must be a string", opt);
	return ALYX_OK;
}

/* ---- type system ---- */

static const char *const type_names[] = {
	[ALYX_T_UUID] = "uuid",	  [ALYX_T_STRING] = "string",
	[ALYX_T_TEXT] = "text",	  [ALYX_T_INT] = "int",
	[ALYX_T_FLOAT] = "float", [ALYX_T_BOOL] = "bool",
	[ALYX_T_TIMESTAMP] = "timestamp", [ALYX_T_JSON] = "json",
	[ALYX_T_BLOB] = "blob",
};

const char *alyx__type_name(alyx__type t)
{
	if ((unsigned)t >= ALYX_ARRAY_LEN(type_names))
		return NULL;
	return type_names[t];
}

bool alyx__type_parse(const char *name, alyx__type *out)
{
	size_t i;

	for (i = 0; name && i < ALYX_ARRAY_LEN(type_names); i++) {
		if (strcmp(name, type_names[i]) == 0) {
			*out = (alyx__type)i;
			return true;
		}
	}
	return false;
}

const char *alyx__type_sql(alyx__type t)
{
	switch (t) {
	case ALYX_T_INT:
	case ALYX_T_BOOL:
		return "INTEGER";
	case ALYX_T_FLOAT:
		return "REAL";
	case ALYX_T_BLOB:
		return "BLOB";
	default:
		return "TEXT";
	}
}

static bool is_texty(alyx__type t)
{
	return t == ALYX_T_STRING || t == ALYX_T_TEXT;
}

static bool is_numeric(alyx__type t)
{
	return t == ALYX_T_INT || t == ALYX_T_FLOAT;
}

/* ---- values (defaults, enum members) ---- */

static int json_value(bctx *c, const ynode *n, alyx_buf *b);

static void scalar_json(const ynode *n, alyx_buf *b)
{
	int64_t i;
	double d;

	switch (scalar_kind(n)) {
	case SK_BOOL:
		alyx__json_bool(b, n->str[0] == 't' || n->str[0] == 'T');
		break;
	case SK_NULL:
		alyx__buf_adds(b, "null");
		break;
	case SK_INT:
		parse_i64(n->str, &i);
		alyx__json_i64(b, i);
		break;
	case SK_FLOAT:
		parse_f64(n->str, &d);
		alyx__json_f64(b, d);
		break;
	default:
		alyx__json_str(b, n->str, n->len);
	}
}

/* Any YAML value as JSON (for json-typed defaults). */
static int json_value(bctx *c, const ynode *n, alyx_buf *b)
{
	size_t i, j;
	int rc;

	if (n->kind == YN_SCALAR) {
		scalar_json(n, b);
		return ALYX_OK;
	}
	if (n->n > 2 * SCHEMA_MAX_ENUM)
		return toobig(c, n, "entries in a default value",
			      SCHEMA_MAX_ENUM);
	alyx__buf_addc(b, n->kind == YN_MAP ? '{' : '[');
	for (i = 0; i < n->n; i++) {
		if (i)
			alyx__buf_addc(b, n->kind == YN_MAP && i % 2 ? ':' :
					  ',');
		if (n->kind == YN_MAP && i % 2 == 0) {
			for (j = 0; j < i; j += 2)
				if (!strcmp(n->kids[j]->str, n->kids[i]->str))
					return berr(c, n->kids[i],
						    "duplicate key '%.64s'",
						    n->kids[i]->str);
			alyx__json_str(b, n->kids[i]->str, n->kids[i]->len);
			continue;
		}
		rc = json_value(c, n->kids[i], b);
		if (rc != ALYX_OK)
			return rc;
	}
	alyx__buf_addc(b, n->kind == YN_MAP ? '}' : ']');
	return ALYX_OK;
}

/* Converts a literal for a field of type t into JSON text in *out, or
 * reports "<what> of the wrong type". */
static int typed_literal(bctx *c, const ynode *n, alyx__type t,
			 const char *what, char **out)
{
	alyx_buf b;
	skind k = n->kind == YN_SCALAR ? scalar_kind(n) : SK_STR;
	const char *got = n->kind == YN_SCALAR ? skind_name(k) :
			  n->kind == YN_MAP ? "mapping" : "list";
	bool ok = false;
	int64_t ms;
	unsigned char *bin;
	size_t binlen;
	int rc;

	*out = NULL;
	alyx__buf_init(&b, SCHEMA_MAX_BYTES);
	if (t == ALYX_T_JSON) {
		rc = json_value(c, n, &b);
		if (rc != ALYX_OK) {
			alyx__buf_free(&b);
			return rc;
		}
		ok = true;
	} else if (n->kind != YN_SCALAR) {
		ok = false;
	} else if (t == ALYX_T_STRING || t == ALYX_T_TEXT) {
		ok = k == SK_STR;
		if (ok)
			alyx__json_str(&b, n->str, n->len);
	} else if (t == ALYX_T_UUID) {
		ok = k == SK_STR && alyx__uuid_valid(n->str, n->len);
		if (ok)
			alyx__json_str(&b, n->str, n->len);
		else if (k == SK_STR)
			got = "string that is not a UUID";
	} else if (t == ALYX_T_INT) {
		int64_t v = 0;

		ok = k == SK_INT && parse_i64(n->str, &v) &&
		     v >= -SCHEMA_MAX_INT && v <= SCHEMA_MAX_INT;
		if (ok)
			scalar_json(n, &b);
		else if (k == SK_INT)
			got = "int outside +-2^53";
	} else if (t == ALYX_T_FLOAT) {
		ok = k == SK_INT || k == SK_FLOAT;
		if (ok) {
			double d;

			parse_f64(n->str, &d);
			alyx__json_f64(&b, d);
		}
	} else if (t == ALYX_T_BOOL) {
		ok = k == SK_BOOL;
		if (ok)
			scalar_json(n, &b);
	} else if (t == ALYX_T_TIMESTAMP) {
		ok = k == SK_STR && alyx__parse_iso8601(n->str, n->len, &ms);
		if (ok) {
			char iso[25];

			alyx__iso8601_ms(ms, iso);
			alyx__json_strz(&b, iso);
		} else if (k == SK_STR) {
			got = "string that is not an ISO-8601 time";
		}
	} else if (t == ALYX_T_BLOB) {
		ok = k == SK_STR &&
		     alyx__base64_dec(n->str, n->len, &bin, &binlen);
		if (ok) {
			alyx__free(bin);
			alyx__json_str(&b, n->str, n->len);
		} else if (k == SK_STR) {
			got = "string that is not base64";
		}
	}
	if (!ok) {
		alyx__buf_free(&b);
		return berr(c, n, "%s of the wrong type: expected %s, got %s%s",
			    what, alyx__type_name(t), got,
			    k != SK_STR && is_texty(t) ?
				    " (quote it to make it a string)" : "");
	}
	*out = alyx__buf_take(&b);
	if (!*out)
		return b.err == ALYX_E_TOOBIG ?
			toobig(c, n, "bytes in a default", SCHEMA_MAX_BYTES) :
			nomem(c);
	return ALYX_OK;
}

/* ---- fields ---- */

enum fopt {
	FO_TYPE, FO_PRIMARY, FO_UNIQUE, FO_NULLABLE, FO_INDEX, FO_DEFAULT,
	FO_REFERENCES, FO_ONDELETE, FO_ONUPDATE, FO_INTERNAL, FO_VALIDATE,
	FO_MINLENGTH, FO_MAXLENGTH, FO_MIN, FO_MAX, FO_FORMAT, FO_PATTERN,
	FO_ENUM, FO_COUNT
};

static const char *const field_opts[FO_COUNT] = {
	"type", "primary", "unique", "nullable", "index", "default",
	"references", "onDelete", "onUpdate", "internal", "validate",
	"minLength", "maxLength", "min", "max", "format", "pattern", "enum",
};

static const char *const validate_opts[] = {
	"minLength", "maxLength", "min", "max", "format", "pattern", "enum",
};

static int set_enum(bctx *c, alyx__field *f, const ynode *v)
{
	size_t i;
	int rc;

	if (v->kind != YN_SEQ || v->n == 0)
		return berr(c, v, "'enum' must be a non-empty list");
	if (v->n > SCHEMA_MAX_ENUM)
		return toobig(c, v, "enum values", SCHEMA_MAX_ENUM);
	f->enum_json = alyx__calloc(v->n, sizeof(char *));
	if (!f->enum_json)
		return nomem(c);
	for (i = 0; i < v->n; i++) {
		rc = typed_literal(c, v->kids[i], f->type, "enum value",
				   &f->enum_json[i]);
		if (rc != ALYX_OK)
			return rc;
		f->n_enum++;
	}
	return ALYX_OK;
}

static int set_pattern(bctx *c, alyx__field *f, const ynode *v)
{
	int errcode;
	PCRE2_SIZE off;
	PCRE2_UCHAR buf[200];

	if (get_string(c, v, "pattern") != ALYX_OK)
		return c->err->code;
	if (v->len > SCHEMA_MAX_PATTERN)
		return toobig(c, v, "bytes in a pattern", SCHEMA_MAX_PATTERN);
	f->pattern = alyx__strdup(v->str);
	if (!f->pattern)
		return nomem(c);
	f->pattern_code = pcre2_compile((PCRE2_SPTR)v->str, v->len,
					PCRE2_UTF | PCRE2_UCP, &errcode, &off,
					NULL);
	if (!f->pattern_code) {
		ynode at = *v;
		size_t i, chars = 0;

		pcre2_get_error_message(errcode, buf, sizeof(buf));
		/* Point at the offending character when the pattern is one
		 * line of the file (escapes in "..." can still shift it). */
		if (v->line > 0 && !memchr(v->str, '\n', v->len)) {
			for (i = 0; i < off && i < v->len; i++)
				chars += ((unsigned char)v->str[i] & 0xC0) !=
					 0x80;
			at.line = v->cline;
			at.col = v->ccol + (int)chars;
		}
		return berr(c, &at, "bad pattern at offset %zu: %s",
			    (size_t)off, (const char *)buf);
	}
	return ALYX_OK;
}

/* One validation option (direct on the field or under validate:). */
static int set_validation(bctx *c, alyx__field *f, enum fopt o,
			  const ynode *key, const ynode *v)
{
	const char *tn = alyx__type_name(f->type);
	int rc;

	switch (o) {
	case FO_MINLENGTH:
	case FO_MAXLENGTH:
		/* Characters for text, bytes for blobs. */
		if (!is_texty(f->type) && f->type != ALYX_T_BLOB)
			goto inapplicable;
		if (o == FO_MINLENGTH) {
			f->has_min_length = true;
			return get_count(c, v, key->str, &f->min_length);
		}
		f->has_max_length = true;
		return get_count(c, v, key->str, &f->max_length);
	case FO_MIN:
	case FO_MAX:
		if (!is_numeric(f->type))
			goto inapplicable;
		if (o == FO_MIN) {
			f->has_min = true;
			return get_number(c, v, key->str, &f->min);
		}
		f->has_max = true;
		return get_number(c, v, key->str, &f->max);
	case FO_FORMAT: {
		static const char *const fmts[] = {"email", "url", "uuid"};
		size_t i;

		if (!is_texty(f->type))
			goto inapplicable;
		rc = want_scalar(c, v, "format");
		if (rc != ALYX_OK)
			return rc;
		rc = lookup_key(c, v, "format", fmts, 3, &i);
		if (rc != ALYX_OK)
			return rc;
		f->format = (alyx__format)(ALYX_FMT_EMAIL + i);
		return ALYX_OK;
	}
	case FO_PATTERN:
		if (!is_texty(f->type))
			goto inapplicable;
		return set_pattern(c, f, v);
	case FO_ENUM:
		if (!is_texty(f->type) && !is_numeric(f->type))
			goto inapplicable;
		return set_enum(c, f, v);
	default:
		return ALYX_OK;
	}
inapplicable:
	return berr(c, key, "option '%s' does not apply to %s fields",
		    key->str, tn);
}

static int set_default(bctx *c, alyx__field *f, const ynode *v)
{
	/* "auto" is never a UUID and "now" never an ISO time, so the
	 * keywords are recognised quoted or not (the JSON form quotes them). */
	if (v->kind == YN_SCALAR) {
		/* On an int primary key, auto means the next rowid
		 * (checked in check_field once primary is known). */
		if ((f->type == ALYX_T_UUID || f->type == ALYX_T_INT) &&
		    !strcmp(v->str, "auto")) {
			f->default_kind = ALYX_DEF_AUTO;
			return ALYX_OK;
		}
		if (f->type == ALYX_T_TIMESTAMP && !strcmp(v->str, "now")) {
			f->default_kind = ALYX_DEF_NOW;
			return ALYX_OK;
		}
		if (scalar_kind(v) == SK_NULL && f->type != ALYX_T_JSON)
			return berr(c, v,
				    "default null: leave the default out and "
				    "make the field nullable instead");
	}
	f->default_kind = ALYX_DEF_LITERAL;
	return typed_literal(c, v, f->type, "default", &f->default_json);
}

static int set_references(bctx *c, size_t ci, size_t fi, alyx__field *f,
			  const ynode *v)
{
	const char *dot;

	if (get_string(c, v, "references") != ALYX_OK)
		return c->err->code;
	dot = strchr(v->str, '.');
	if (!dot || strchr(dot + 1, '.') || dot == v->str || !dot[1])
		return berr(c, v,
			    "'references' must be collection.field, got '%.64s'",
			    v->str);
	f->ref_collection = alyx__strndup(v->str, (size_t)(dot - v->str));
	f->ref_field = alyx__strdup(dot + 1);
	if (!f->ref_collection || !f->ref_field)
		return nomem(c);
	if (c->n_refs == c->cap_refs) {
		size_t ncap = c->cap_refs ? c->cap_refs * 2 : 16;
		pending_ref *r = alyx__realloc(c->refs, ncap * sizeof(*r));

		if (!r)
			return nomem(c);
		c->refs = r;
		c->cap_refs = ncap;
	}
	c->refs[c->n_refs].ci = ci;
	c->refs[c->n_refs].fi = fi;
	c->refs[c->n_refs].node = v;
	c->n_refs++;
	return ALYX_OK;
}

static int check_field(bctx *c, alyx__field *f, const ynode *fnode,
		       const ynode *ondelete)
{
	if (f->type == ALYX_T_INT && f->default_kind == ALYX_DEF_AUTO &&
	    !f->primary)
		return berr(c, alyx__ytree_get(fnode, "default"),
			    "default: auto on an int field needs primary: "
			    "true (it means the next row id)");
	if (f->primary && f->nullable)
		return berr(c, fnode, "a primary key cannot be nullable");
	if (f->primary && f->type != ALYX_T_UUID && f->type != ALYX_T_STRING &&
	    f->type != ALYX_T_TEXT && f->type != ALYX_T_INT)
		return berr(c, fnode, "a primary key cannot have type %s",
			    alyx__type_name(f->type));
	if (ondelete && !f->ref_collection)
		return berr(c, ondelete, "'onDelete' needs 'references'");
	if (f->on_delete == ALYX_ONDEL_SET_NULL && !f->nullable)
		return berr(c, ondelete,
			    "onDelete: set null needs nullable: true");
	if (f->has_min_length && f->has_max_length &&
	    f->min_length > f->max_length)
		return berr(c, fnode, "minLength %lld is greater than "
			    "maxLength %lld", (long long)f->min_length,
			    (long long)f->max_length);
	if (f->has_min && f->has_max && f->min > f->max)
		return berr(c, fnode, "min %g is greater than max %g", f->min,
			    f->max);
	return ALYX_OK;
}

static int parse_field(bctx *c, size_t ci, size_t fi, alyx__field *f,
		       const ynode *key, const ynode *fnode)
{
	const ynode *tnode = NULL, *ondelete = NULL, *opts = fnode;
	bool seen[FO_COUNT] = {0};
	size_t i, o;
	int rc;

	f->line = key->line;
	f->col = key->col;
	if (fnode->kind == YN_SCALAR && fnode->plain) {
		/* Shorthand `title: string` is not in the seed format;
		 * say what is expected. */
		return berr(c, fnode, "field '%.64s' must be a mapping with a "
			    "'type' (e.g. type: %.32s)", key->str, fnode->str);
	}
	if (fnode->kind != YN_MAP)
		return berr(c, fnode, "field '%.64s' must be a mapping",
			    key->str);
	tnode = alyx__ytree_get(fnode, "type");
	if (!tnode)
		return berr(c, fnode, "field '%.64s' has no 'type'", key->str);
	rc = want_scalar(c, tnode, "type");
	if (rc != ALYX_OK)
		return rc;
	if (!alyx__type_parse(tnode->str, &f->type))
		return unknown_name(c, tnode, "type", type_names,
				    ALYX_ARRAY_LEN(type_names));
	/* Check keys of the field map and of validate: first, so unknown
	 * options are reported even next to other problems. */
	for (i = 0; i + 1 < opts->n; i += 2) {
		const ynode *k = opts->kids[i], *v = opts->kids[i + 1];

		rc = lookup_key(c, k, "option", field_opts, FO_COUNT, &o);
		if (rc != ALYX_OK)
			return rc;
		if (seen[o])
			return berr(c, k, "duplicate option '%s'", k->str);
		seen[o] = true;
		if (o == FO_VALIDATE) {
			size_t j, vo;

			if (v->kind != YN_MAP)
				return berr(c, v, "'validate' must be a "
					    "mapping");
			for (j = 0; j + 1 < v->n; j += 2) {
				rc = lookup_key(c, v->kids[j],
						"validation option",
						validate_opts,
						ALYX_ARRAY_LEN(validate_opts),
						&vo);
				if (rc != ALYX_OK)
					return rc;
				vo += FO_MINLENGTH;
				if (seen[vo])
					return berr(c, v->kids[j],
						    "duplicate option '%s'",
						    v->kids[j]->str);
				seen[vo] = true;
			}
		}
	}
	for (i = 0; i + 1 < opts->n; i += 2) {
		const ynode *k = opts->kids[i], *v = opts->kids[i + 1];
		size_t j;

		lookup_key(c, k, "option", field_opts, FO_COUNT, &o);
		switch ((enum fopt)o) {
		case FO_TYPE:
			break;
		case FO_PRIMARY:
			rc = get_bool(c, v, k->str, &f->primary);
			break;
		case FO_UNIQUE:
			rc = get_bool(c, v, k->str, &f->unique);
			break;
		case FO_NULLABLE:
			rc = get_bool(c, v, k->str, &f->nullable);
			break;
		case FO_INDEX:
			rc = get_bool(c, v, k->str, &f->index);
			break;
		case FO_INTERNAL:
			rc = get_bool(c, v, k->str, &f->internal);
			break;
		case FO_DEFAULT:
			rc = set_default(c, f, v);
			break;
		case FO_REFERENCES:
			rc = set_references(c, ci, fi, f, v);
			break;
		case FO_ONDELETE: {
			static const char *const ods[] = {"restrict",
							  "cascade",
							  "set null"};

			ondelete = v;
			rc = want_scalar(c, v, "onDelete");
			if (rc == ALYX_OK)
				rc = lookup_key(c, v, "onDelete action", ods,
						3, &j);
			if (rc == ALYX_OK)
				f->on_delete = (alyx__on_delete)j;
			break;
		}
		case FO_ONUPDATE:
			if (v->kind != YN_SCALAR || strcmp(v->str, "now"))
				rc = berr(c, v, "'onUpdate' can only be now");
			else if (f->type != ALYX_T_TIMESTAMP)
				rc = berr(c, k, "onUpdate: now needs a "
					  "timestamp field");
			else
				f->on_update_now = true;
			break;
		case FO_VALIDATE:
			for (j = 0; j + 1 < v->n; j += 2) {
				size_t vo;

				lookup_key(c, v->kids[j], "", validate_opts,
					   ALYX_ARRAY_LEN(validate_opts), &vo);
				rc = set_validation(c, f,
						    (enum fopt)(vo +
								FO_MINLENGTH),
						    v->kids[j],
						    v->kids[j + 1]);
				if (rc != ALYX_OK)
					break;
			}
			break;
		default:
			rc = set_validation(c, f, (enum fopt)o, k, v);
			break;
		}
		if (rc != ALYX_OK)
			return rc;
	}
	return check_field(c, f, fnode, ondelete);
}

/* ---- collections ---- */

static bool reserved_coll(const char *name)
{
	return strncasecmp(name, "_alyx", 5) == 0 ||
	       strncasecmp(name, "sqlite_", 7) == 0;
}

static int check_name(bctx *c, const ynode *k, const char *what)
{
	if (!alyx__ident_valid(k->str))
		return berr(c, k, "invalid %s name '%.64s': use letters, "
			    "digits and _ (at most 63, not starting with a "
			    "digit)", what, k->str);
	return ALYX_OK;
}

static int parse_fields(bctx *c, size_t ci, alyx__collection *col,
			const ynode *fields, const ynode *cnode)
{
	size_t i, j, nf;
	bool have_pk = false;
	int rc;

	if (!fields)
		return berr(c, cnode, "collection '%s' has no 'fields'",
			    col->name);
	if (fields->kind != YN_MAP || fields->n == 0)
		return berr(c, fields, "'fields' must be a non-empty mapping");
	nf = fields->n / 2;
	if (nf > SCHEMA_MAX_FIELDS)
		return toobig(c, fields, "fields", SCHEMA_MAX_FIELDS);
	col->fields = alyx__calloc(nf, sizeof(*col->fields));
	if (!col->fields)
		return nomem(c);
	for (i = 0; i < nf; i++) {
		const ynode *k = fields->kids[2 * i];
		alyx__field *f = &col->fields[i];

		c->field = k->str;
		rc = check_name(c, k, "field");
		if (rc != ALYX_OK)
			return rc;
		if (strcasecmp(k->str, "expand") == 0)
			return berr(c, k, "'%s' is a reserved field name "
				    "(it is the query parameter for "
				    "references)", k->str);
		if (!strcasecmp(k->str, "rowid") ||
		    !strcasecmp(k->str, "oid") ||
		    !strcasecmp(k->str, "_rowid_"))
			return berr(c, k, "'%s' is a reserved field name "
				    "(SQLite's row id)", k->str);
		for (j = 0; j < i; j++)
			if (strcasecmp(col->fields[j].name, k->str) == 0)
				return berr(c, k, "duplicate field '%s'",
					    k->str);
		f->name = alyx__strdup(k->str);
		if (!f->name)
			return nomem(c);
		col->n_fields++;
		rc = parse_field(c, ci, i, f, k, fields->kids[2 * i + 1]);
		if (rc != ALYX_OK)
			return rc;
		if (f->primary) {
			if (have_pk)
				return berr(c, k, "collection '%s' has more "
					    "than one primary key ('%s' and "
					    "'%s')", col->name,
					    col->fields[col->pk].name,
					    f->name);
			have_pk = true;
			col->pk = i;
		}
	}
	c->field = NULL;
	if (!have_pk)
		return berr(c, cnode, "collection '%s' has no primary key "
			    "(add primary: true to one field, e.g. id: "
			    "{type: uuid, primary: true, default: auto})",
			    col->name);
	return ALYX_OK;
}

static int parse_index(bctx *c, alyx__collection *col, alyx__index *ix,
		       const ynode *n)
{
	static const char *const keys[] = {"name", "fields", "order",
					   "unique"};
	static const char *const orders[] = {"asc", "desc"};
	const ynode *name = NULL, *fields = NULL;
	size_t i, j, k;
	bool seen[4] = {0};
	int rc;

	ix->line = n->line;
	ix->col = n->col;
	if (n->kind != YN_MAP)
		return berr(c, n, "an index must be a mapping with name and "
			    "fields");
	for (i = 0; i + 1 < n->n; i += 2) {
		const ynode *key = n->kids[i], *v = n->kids[i + 1];

		rc = lookup_key(c, key, "index option", keys, 4, &k);
		if (rc != ALYX_OK)
			return rc;
		if (seen[k])
			return berr(c, key, "duplicate option '%s'", key->str);
		seen[k] = true;
		if (k == 0) {
			name = v;
			rc = want_scalar(c, v, "name");
			if (rc == ALYX_OK)
				rc = check_name(c, v, "index");
			if (rc == ALYX_OK && (reserved_coll(v->str)))
				rc = berr(c, v, "index name '%s' is reserved "
					  "(_alyx and sqlite_ prefixes)",
					  v->str);
		} else if (k == 1) {
			fields = v;
		} else if (k == 2) {
			rc = want_scalar(c, v, "order");
			if (rc == ALYX_OK)
				rc = lookup_key(c, v, "order", orders, 2, &j);
			if (rc == ALYX_OK)
				ix->desc = j == 1;
		} else {
			rc = get_bool(c, v, "unique", &ix->unique);
		}
		if (rc != ALYX_OK)
			return rc;
	}
	if (!name)
		return berr(c, n, "index has no 'name'");
	if (!fields)
		return berr(c, n, "index '%s' has no 'fields'", name->str);
	ix->name = alyx__strdup(name->str);
	if (!ix->name)
		return nomem(c);
	if (fields->kind == YN_SCALAR)
		return berr(c, fields, "'fields' must be a list, e.g. "
			    "[%.64s]", fields->str);
	if (fields->kind != YN_SEQ || fields->n == 0)
		return berr(c, fields, "'fields' must be a non-empty list");
	if (fields->n > 64)
		return toobig(c, fields, "fields in an index", 64);
	ix->fields = alyx__calloc(fields->n, sizeof(char *));
	if (!ix->fields)
		return nomem(c);
	for (i = 0; i < fields->n; i++) {
		const ynode *fn = fields->kids[i];

		if (fn->kind != YN_SCALAR)
			return berr(c, fn, "index fields must be names");
		if (alyx__coll_field_index(col, fn->str) < 0) {
			const char *names[SCHEMA_MAX_FIELDS];
			char msg[300];

			for (j = 0; j < col->n_fields; j++)
				names[j] = col->fields[j].name;
			snprintf(msg, sizeof(msg), "index '%s' names unknown "
				 "field '%.64s' of '%s'", ix->name, fn->str,
				 col->name);
			suggest(msg, sizeof(msg), fn->str, names,
				col->n_fields);
			return berr(c, fn, "%s", msg);
		}
		for (j = 0; j < i; j++)
			if (!strcmp(ix->fields[j], fn->str))
				return berr(c, fn, "field '%s' is listed "
					    "twice", fn->str);
		ix->fields[i] = alyx__strdup(fn->str);
		if (!ix->fields[i])
			return nomem(c);
		ix->n_fields++;
	}
	return ALYX_OK;
}

static const char *const rule_names[ALYX_RULE_COUNT] = {
	[ALYX_RULE_CREATE] = "create", [ALYX_RULE_READ] = "read",
	[ALYX_RULE_UPDATE] = "update", [ALYX_RULE_DELETE] = "delete",
};

static int parse_rules(bctx *c, alyx__collection *col, const ynode *n)
{
	size_t i, k;
	int rc;

	if (n->kind != YN_MAP)
		return berr(c, n, "'rules' must be a mapping of create, read, "
			    "update, delete");
	for (i = 0; i + 1 < n->n; i += 2) {
		const ynode *key = n->kids[i], *v = n->kids[i + 1];

		rc = lookup_key(c, key, "rule", rule_names, ALYX_RULE_COUNT,
				&k);
		if (rc != ALYX_OK)
			return rc;
		if (col->rules[k])
			return berr(c, key, "duplicate rule '%s'", key->str);
		if (v->kind != YN_SCALAR || scalar_kind(v) == SK_NULL)
			return berr(c, v, "rule '%s' must be an expression "
				    "string", key->str);
		if (v->len > SCHEMA_MAX_RULE)
			return toobig(c, v, "bytes in a rule",
				      SCHEMA_MAX_RULE);
		col->rules[k] = alyx__strdup(v->str);
		if (!col->rules[k])
			return nomem(c);
		col->rule_line[k] = v->cline;
		col->rule_col[k] = v->ccol;
	}
	return ALYX_OK;
}

static int parse_collection(bctx *c, size_t ci, const ynode *key,
			    const ynode *cn)
{
	static const char *const keys[] = {"fields", "indexes", "rules"};
	alyx__collection *col = &c->s->colls[ci];
	const ynode *parts[3] = {NULL, NULL, NULL};
	size_t i, k;
	int rc;

	col->line = key->line;
	col->col = key->col;
	if (cn->kind != YN_MAP)
		return berr(c, cn, "collection '%s' must be a mapping with "
			    "'fields'", col->name);
	for (i = 0; i + 1 < cn->n; i += 2) {
		rc = lookup_key(c, cn->kids[i], "collection key", keys, 3, &k);
		if (rc != ALYX_OK)
			return rc;
		if (parts[k])
			return berr(c, cn->kids[i], "duplicate key '%s'",
				    keys[k]);
		parts[k] = cn->kids[i + 1];
	}
	rc = parse_fields(c, ci, col, parts[0], key);
	if (rc != ALYX_OK)
		return rc;
	if (parts[1] && !(parts[1]->kind == YN_SCALAR &&
			  scalar_kind(parts[1]) == SK_NULL)) {
		const ynode *ixs = parts[1];

		if (ixs->kind != YN_SEQ)
			return berr(c, ixs, "'indexes' must be a list");
		if (ixs->n > SCHEMA_MAX_INDEXES)
			return toobig(c, ixs, "indexes", SCHEMA_MAX_INDEXES);
		col->indexes = alyx__calloc(ixs->n ? ixs->n : 1,
					    sizeof(*col->indexes));
		if (!col->indexes)
			return nomem(c);
		for (i = 0; i < ixs->n; i++) {
			col->n_indexes++;
			rc = parse_index(c, col, &col->indexes[i],
					 ixs->kids[i]);
			if (rc != ALYX_OK)
				return rc;
		}
	}
	if (parts[2])
		return parse_rules(c, col, parts[2]);
	return ALYX_OK;
}

/* ---- whole-schema checks ---- */

static int resolve_refs(bctx *c)
{
	size_t i, j;

	for (i = 0; i < c->n_refs; i++) {
		const pending_ref *r = &c->refs[i];
		alyx__collection *col = &c->s->colls[r->ci];
		alyx__field *f = &col->fields[r->fi];
		const alyx__collection *tc;
		const alyx__field *tf;
		const char *names[SCHEMA_MAX_FIELDS > SCHEMA_MAX_COLLS ?
				  SCHEMA_MAX_FIELDS : SCHEMA_MAX_COLLS];
		char msg[300];

		c->coll = col->name;
		c->field = f->name;
		tc = alyx__schema_coll(c->s, f->ref_collection);
		if (!tc) {
			for (j = 0; j < c->s->n_colls; j++)
				names[j] = c->s->colls[j].name;
			snprintf(msg, sizeof(msg), "'%s.%s' references unknown "
				 "collection '%.64s'", col->name, f->name,
				 f->ref_collection);
			suggest(msg, sizeof(msg), f->ref_collection, names,
				c->s->n_colls);
			return berr(c, r->node, "%s", msg);
		}
		tf = alyx__coll_field(tc, f->ref_field);
		if (!tf) {
			for (j = 0; j < tc->n_fields; j++)
				names[j] = tc->fields[j].name;
			snprintf(msg, sizeof(msg), "'%s.%s' references unknown "
				 "field '%.64s' of '%s'", col->name, f->name,
				 f->ref_field, tc->name);
			suggest(msg, sizeof(msg), f->ref_field, names,
				tc->n_fields);
			return berr(c, r->node, "%s", msg);
		}
		if (!tf->primary && !tf->unique)
			return berr(c, r->node, "'%s.%s' references '%s.%s', "
				    "which is neither primary nor unique",
				    col->name, f->name, tc->name, tf->name);
		if (tf->type != f->type)
			return berr(c, r->node, "reference type mismatch: "
				    "'%s.%s' is %s but '%s.%s' is %s",
				    col->name, f->name,
				    alyx__type_name(f->type), tc->name,
				    tf->name, alyx__type_name(tf->type));
	}
	c->coll = c->field = NULL;
	return ALYX_OK;
}

typedef struct objname {
	char *name;
	const char *what;
	int line, col;
	const char *coll;
} objname;

static int cmp_objname(const void *a, const void *b)
{
	const objname *x = a, *y = b;
	int c = strcasecmp(x->name, y->name);

	if (c)
		return c;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->col < y->col ? -1 : x->col > y->col;
}

/* Tables, indexes and triggers share SQLite's one namespace: make sure
 * no two generated objects collide (e.g. idx_a_b_c from a_b.c and a.b_c). */
static int check_namespace(bctx *c)
{
	static const char *const trig[] = {"_alyx_ins", "_alyx_upd",
					   "_alyx_del"};
	objname *v;
	size_t n = 0, cap = 0, i, j;
	int rc = ALYX_OK;

	for (i = 0; i < c->s->n_colls; i++) {
		const alyx__collection *col = &c->s->colls[i];

		cap += 4 + col->n_indexes + col->n_fields;
	}
	v = alyx__calloc(cap ? cap : 1, sizeof(*v));
	if (!v)
		return nomem(c);
	for (i = 0; i < c->s->n_colls; i++) {
		const alyx__collection *col = &c->s->colls[i];

		v[n++] = (objname){alyx__strdup(col->name), "collection",
				   col->line, col->col, col->name};
		for (j = 0; j < 3; j++)
			v[n++] = (objname){alyx__asprintf("%s%s", col->name,
							  trig[j]),
					   "trigger", col->line, col->col,
					   col->name};
		for (j = 0; j < col->n_indexes; j++)
			v[n++] = (objname){alyx__strdup(col->indexes[j].name),
					   "index", col->indexes[j].line,
					   col->indexes[j].col, col->name};
		for (j = 0; j < col->n_fields; j++) {
			if (!col->fields[j].index)
				continue;
			v[n++] = (objname){alyx__asprintf("idx_%s_%s",
							  col->name,
							  col->fields[j].name),
					   "index", col->fields[j].line,
					   col->fields[j].col, col->name};
		}
	}
	for (i = 0; i < n; i++)
		if (!v[i].name) {
			rc = nomem(c);
			goto out;
		}
	/* Equal names sort by position, so the later definition is the one
	 * reported. */
	qsort(v, n, sizeof(*v), cmp_objname);
	for (i = 1; i < n; i++) {
		if (strcasecmp(v[i - 1].name, v[i].name) != 0)
			continue;
		c->coll = v[i].coll;
		rc = alyx__schema_err(c->err, ALYX_E_SCHEMA, c->file, v[i].line,
				      v[i].col, v[i].coll, NULL,
				      "%s name '%s' collides with a %s of the "
				      "same name (index and trigger names "
				      "share one namespace with tables)",
				      v[i].what, v[i].name, v[i - 1].what);
		goto out;
	}
out:
	for (i = 0; i < n; i++)
		alyx__free(v[i].name);
	alyx__free(v);
	return rc;
}

static int parse_top(bctx *c, const ynode *root)
{
	static const char *const keys[] = {"version", "collections"};
	const ynode *colls = NULL;
	size_t i, j, k, nc;
	int64_t ver;
	int rc;

	if (root->kind != YN_MAP)
		return berr(c, root, "a schema must be a mapping with version "
			    "and collections");
	for (i = 0; i + 1 < root->n; i += 2) {
		const ynode *key = root->kids[i], *v = root->kids[i + 1];

		rc = lookup_key(c, key, "top-level key", keys, 2, &k);
		if (rc != ALYX_OK)
			return rc;
		if (k == 0) {
			if (v->kind != YN_SCALAR || !parse_i64(v->str, &ver) ||
			    !v->plain)
				return berr(c, v, "'version' must be 1");
			if (ver != 1)
				return berr(c, v, "unsupported schema version "
					    "%lld (this Alyx reads version 1)",
					    (long long)ver);
		} else {
			if (colls)
				return berr(c, key, "duplicate key "
					    "'collections'");
			colls = v;
		}
	}
	if (!colls || (colls->kind == YN_SCALAR && scalar_kind(colls) ==
						       SK_NULL))
		return ALYX_OK;
	if (colls->kind != YN_MAP)
		return berr(c, colls, "'collections' must be a mapping of "
			    "collection names");
	nc = colls->n / 2;
	if (nc > SCHEMA_MAX_COLLS)
		return toobig(c, colls, "collections", SCHEMA_MAX_COLLS);
	c->s->colls = alyx__calloc(nc ? nc : 1, sizeof(*c->s->colls));
	if (!c->s->colls)
		return nomem(c);
	/* Names first, so a reference can name a later collection. */
	for (i = 0; i < nc; i++) {
		const ynode *key = colls->kids[2 * i];

		c->coll = key->str;
		rc = check_name(c, key, "collection");
		if (rc != ALYX_OK)
			return rc;
		if (reserved_coll(key->str))
			return berr(c, key, "collection name '%s' is reserved "
				    "(names starting with _alyx or sqlite_ "
				    "belong to Alyx and SQLite)", key->str);
		for (j = 0; j < i; j++)
			if (!strcasecmp(c->s->colls[j].name, key->str))
				return berr(c, key, "duplicate collection "
					    "'%s'", key->str);
		c->s->colls[i].name = alyx__strdup(key->str);
		if (!c->s->colls[i].name)
			return nomem(c);
		c->s->n_colls++;
	}
	for (i = 0; i < nc; i++) {
		c->coll = c->s->colls[i].name;
		c->field = NULL;
		rc = parse_collection(c, i, colls->kids[2 * i],
				      colls->kids[2 * i + 1]);
		if (rc != ALYX_OK)
			return rc;
	}
	c->coll = c->field = NULL;
	rc = resolve_refs(c);
	if (rc != ALYX_OK)
		return rc;
	return check_namespace(c);
}

int alyx__schema_build(const ynode *root, const char *file,
		       alyx__schema **out, alyx__err *err)
{
	bctx c;
	int rc = ALYX_OK;
	size_t i;

	*out = NULL;
	memset(&c, 0, sizeof(c));
	c.file = file;
	c.err = err;
	c.s = alyx__calloc(1, sizeof(*c.s));
	if (!c.s)
		return nomem(&c);
	c.s->version = 1;
	if (root)
		rc = parse_top(&c, root);
	alyx__free(c.refs);
	for (i = 0; rc == ALYX_OK && i < c.s->n_colls; i++) {
		rc = alyx__rules_build(&c.s->colls[i], c.s->colls[i].programs,
				       err);
		if (rc == ALYX_E_SCHEMA && file) {
			/* "L:C: rule ..." becomes "schema.yaml:L:C: ..." like
			 * every other schema error. */
			char *m = alyx__asprintf("%s:%s", file, err->msg);

			if (m)
				snprintf(err->msg, sizeof(err->msg), "%s", m);
			alyx__free(m);
		}
	}
	if (rc != ALYX_OK) {
		alyx__schema_free(c.s);
		return rc;
	}
	for (i = 0; i < c.s->n_colls; i++)
		c.s->colls[i].read_plan = alyx__qplan_new(&c.s->colls[i]);
	*out = c.s;
	return ALYX_OK;
}

int alyx__schema_parse(const char *yaml, size_t len, const char *filename,
		       alyx__schema **out, alyx__err *err)
{
	ynode *root = NULL;
	int rc;

	*out = NULL;
	if (!filename)
		filename = "schema.yaml";
	rc = alyx__ytree_parse(yaml, len, filename, &root, err);
	if (rc == ALYX_OK)
		rc = alyx__schema_build(root, filename, out, err);
	alyx__ytree_free(root);
	return rc;
}

/* ---- model helpers ---- */

static void field_free(alyx__field *f)
{
	size_t i;

	alyx__free(f->name);
	alyx__free(f->default_json);
	alyx__free(f->ref_collection);
	alyx__free(f->ref_field);
	alyx__free(f->pattern);
	pcre2_code_free(f->pattern_code);
	for (i = 0; i < f->n_enum; i++)
		alyx__free(f->enum_json[i]);
	alyx__free(f->enum_json);
}

void alyx__schema_free(alyx__schema *s)
{
	size_t i, j, k;

	if (!s)
		return;
	for (i = 0; i < s->n_colls; i++) {
		alyx__collection *c = &s->colls[i];

		alyx__free(c->name);
		for (j = 0; j < c->n_fields; j++)
			field_free(&c->fields[j]);
		alyx__free(c->fields);
		for (j = 0; j < c->n_indexes; j++) {
			alyx__free(c->indexes[j].name);
			for (k = 0; k < c->indexes[j].n_fields; k++)
				alyx__free(c->indexes[j].fields[k]);
			alyx__free(c->indexes[j].fields);
		}
		alyx__free(c->indexes);
		for (j = 0; j < ALYX_RULE_COUNT; j++) {
			alyx__free(c->rules[j]);
			alyx__rule_free(c->programs[j]);
		}
		alyx__qplan_free(c->read_plan);
	}
	alyx__free(s->colls);
	alyx__free(s);
}

const alyx__collection *alyx__schema_coll(const alyx__schema *s,
					  const char *name)
{
	size_t i;

	for (i = 0; s && name && i < s->n_colls; i++)
		if (strcmp(s->colls[i].name, name) == 0)
			return &s->colls[i];
	return NULL;
}

int alyx__coll_field_index(const alyx__collection *c, const char *name)
{
	size_t i;

	for (i = 0; c && name && i < c->n_fields; i++)
		if (strcmp(c->fields[i].name, name) == 0)
			return (int)i;
	return -1;
}

const alyx__field *alyx__coll_field(const alyx__collection *c,
				    const char *name)
{
	int i = alyx__coll_field_index(c, name);

	return i < 0 ? NULL : &c->fields[i];
}
