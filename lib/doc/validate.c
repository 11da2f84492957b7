/*
 * validate.c - write validation: a JSON object becomes the row of typed
 * values one create or update writes, with defaults applied and every
 * failing field reported at once (docs/documents.md).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <pcre2.h>

#include "doc.h"

void alyx__row_free(alyx__row *r)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; r->vals && i < r->n; i++)
		alyx__value_clear(&r->vals[i]);
	alyx__free(r->vals);
	alyx__free(r->set);
	r->vals = NULL;
	r->set = NULL;
	r->n = 0;
}

/* ---- formats ---- */

static size_t count_code_points(const char *s, size_t n)
{
	size_t i, cp = 0;

	for (i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			cp++;
	return cp;
}

/* A DNS host name: dot-separated labels of letters, digits and '-' (no
 * leading or trailing '-', 1..63 bytes each, 253 in all); bytes >= 0x80
 * are allowed so internationalised names pass in their UTF-8 form.  With
 * `need_dot` the name must have two labels or more, the last one not all
 * digits (e-mail domains). */
static bool host_valid(const char *s, size_t n, bool need_dot)
{
	size_t i, label = 0, labels = 1;
	bool last_digits = true;

	if (!n || n > 253)
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (!label || s[i - 1] == '-')
				return false;
			label = 0;
			labels++;
			last_digits = true;
			continue;
		}
		if (!(isalnum(c) || c == '-' || c >= 0x80))
			return false;
		if (c == '-' && !label)
			return false;
		if (!isdigit(c))
			last_digits = false;
		if (++label > 63)
			return false;
	}
	if (!label || s[n - 1] == '-')
		return false;
	return !need_dot || (labels >= 2 && !last_digits);
}

/*
 * E-mail: the practical subset of RFC 5321 that real addresses use:
 * local@domain, at most 254 bytes; the local part is 1..64 of
 * A-Z a-z 0-9 and !#$%&'*+/=?^_`{|}~.- (or UTF-8), dots not first, last or
 * doubled; the domain is a host name with a dot.  No quoted local parts,
 * no IP-literal domains, no comments.
 */
static bool email_valid(const char *s, size_t n)
{
	const char *at = memchr(s, '@', n);
	size_t ln, i;

	if (!at || n > 254)
		return false;
	ln = (size_t)(at - s);
	if (!ln || ln > 64 || s[0] == '.' || s[ln - 1] == '.')
		return false;
	for (i = 0; i < ln; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.' && s[i + 1] == '.')
			return false;
		if (!(isalnum(c) || c >= 0x80 ||
		      strchr("!#$%&'*+/=?^_`{|}~.-", c)))
			return false;
	}
	return host_valid(at + 1, n - ln - 1, true);
}

/*
 * URL: scheme "://" authority [path ?query #fragment], with a scheme of
 * RFC 3986 form (http, https, ftp, ...), a non-empty host (a host name,
 * an IPv4 address or a bracketed IPv6 literal), an optional userinfo@ and
 * an optional numeric :port; no whitespace or control characters
 * anywhere.  "mailto:x" or "/relative" are not URLs here.
 */
static bool url_valid(const char *s, size_t n)
{
	size_t i = 0, a, e, h, he;

	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7F)
			return false;
	if (!n || !isalpha((unsigned char)s[0]))
		return false;
	for (i = 1; i < n && (isalnum((unsigned char)s[i]) ||
			      strchr("+.-", s[i])); i++)
		;
	if (n - i < 3 || memcmp(s + i, "://", 3))
		return false;
	a = i + 3;
	for (e = a; e < n && !strchr("/?#", s[e]); e++)
		;
	/* userinfo@ */
	h = a;
	for (i = a; i < e; i++)
		if (s[i] == '@')
			h = i + 1;
	if (h < e && s[h] == '[') {
		const char *rb = memchr(s + h, ']', e - h);

		if (!rb || rb == s + h + 1)
			return false;
		for (i = h + 1; s + i < rb; i++)
			if (!(isxdigit((unsigned char)s[i]) || s[i] == ':' ||
			      s[i] == '.'))
				return false;
		he = (size_t)(rb - s) + 1;
	} else {
		for (he = h; he < e && s[he] != ':'; he++)
			;
		if (!host_valid(s + h, he - h, false))
			return false;
	}
	if (he < e) {
		if (s[he] != ':' || he + 1 == e)
			return false;
		for (i = he + 1; i < e; i++)
			if (!isdigit((unsigned char)s[i]))
				return false;
		if (e - he - 1 > 5)
			return false;
	}
	return true;
}

/* ---- constraint checks on one non-null value ---- */

static bool is_texty(alyx__type t)
{
	return t == ALYX_T_STRING || t == ALYX_T_TEXT || t == ALYX_T_UUID;
}

static void enum_list(const alyx__field *f, char *out, size_t cap)
{
	size_t i, o = 0;

	out[0] = '\0';
	for (i = 0; i < f->n_enum && o + 4 < cap; i++) {
		int w = snprintf(out + o, cap - o, "%s%s", i ? ", " : "",
				 f->enum_json[i]);

		if (w < 0 || (size_t)w >= cap - o) {
			snprintf(out + (cap > 4 ? cap - 4 : 0), 4, "...");
			return;
		}
		o += (size_t)w;
	}
}

/* True if v equals one of the enum values (parsed as values of f). */
/* 1 if v is one of the field's enum values, 0 if not, -1 out of memory
 * (the enum texts were valid JSON when the schema was built, so a parse
 * failure here can only be an allocation failure). */
static int in_enum(const alyx__field *f, const alyx__value *v)
{
	size_t i;
	int ok = 0;

	for (i = 0; i < f->n_enum && !ok; i++) {
		cJSON *j = cJSON_Parse(f->enum_json[i]);
		alyx__value e;
		char why[128];

		if (!j)
			return -1;
		if (alyx__value_from_json(f, j, &e, why)) {
			ok = alyx__value_cmp(&e, v) == 0;
			alyx__value_clear(&e);
		} else if (!strcmp(why, ALYX_DOC_WHY_NOMEM)) {
			ok = -1;
		}
		cJSON_Delete(j);
	}
	return ok;
}

/* pcre2_match with match data made for this call (the compiled code is
 * shared read-only between threads).  1 match, 0 no match, <0 error. */
static int pattern_match(const alyx__field *f, const alyx__value *v)
{
	pcre2_match_data *md;
	int rc;

	md = pcre2_match_data_create_from_pattern(f->pattern_code, NULL);
	if (!md)
		return -1;
	/* Every text value was checked as UTF-8 on its way in. */
	rc = pcre2_match(f->pattern_code, (PCRE2_SPTR)v->s, v->n, 0,
			 PCRE2_NO_UTF_CHECK, md, NULL);
	pcre2_match_data_free(md);
	if (rc >= 0)
		return 1;
	return rc == PCRE2_ERROR_NOMATCH ? 0 : rc;
}

static bool num_of(const alyx__value *v, double *d)
{
	if (v->kind == ALYX_V_INT)
		*d = (double)v->i;
	else if (v->kind == ALYX_V_FLOAT)
		*d = v->f;
	else
		return false;
	return true;
}

/* Adds a field error for every constraint of f that v breaks. */
static void check_value(const alyx__field *f, const alyx__value *v,
			alyx__fielderrs *fe)
{
	const char *n = f->name;
	double d;

	if (v->kind == ALYX_V_NULL)
		return;
	if (v->kind == ALYX_V_TEXT && is_texty(f->type) &&
	    (f->has_min_length || f->has_max_length)) {
		size_t cp = count_code_points(v->s, v->n);

		if (f->has_min_length && (int64_t)cp < f->min_length)
			alyx__fielderrs_add(fe, n, "min_length",
				"must be at least %lld characters (got %zu)",
				(long long)f->min_length, cp);
		if (f->has_max_length && (int64_t)cp > f->max_length)
			alyx__fielderrs_add(fe, n, "max_length",
				"must be at most %lld characters (got %zu)",
				(long long)f->max_length, cp);
	}
	if (v->kind == ALYX_V_BLOB && (f->has_min_length ||
				       f->has_max_length)) {
		if (f->has_min_length && (int64_t)v->n < f->min_length)
			alyx__fielderrs_add(fe, n, "min_length",
				"must be at least %lld bytes",
				(long long)f->min_length);
		if (f->has_max_length && (int64_t)v->n > f->max_length)
			alyx__fielderrs_add(fe, n, "max_length",
				"must be at most %lld bytes",
				(long long)f->max_length);
	}
	if ((f->type == ALYX_T_INT || f->type == ALYX_T_FLOAT) &&
	    num_of(v, &d)) {
		alyx__value bound = {.kind = ALYX_V_FLOAT};

		bound.f = f->min;
		if (f->has_min && alyx__value_cmp(v, &bound) < 0)
			alyx__fielderrs_add(fe, n, "min", "must be >= %.17g",
					    f->min);
		bound.f = f->max;
		if (f->has_max && alyx__value_cmp(v, &bound) > 0)
			alyx__fielderrs_add(fe, n, "max", "must be <= %.17g",
					    f->max);
	}
	if (v->kind == ALYX_V_TEXT && f->format != ALYX_FMT_NONE) {
		switch (f->format) {
		case ALYX_FMT_EMAIL:
			if (!email_valid(v->s, v->n))
				alyx__fielderrs_add(fe, n, "format",
					"is not a valid e-mail address");
			break;
		case ALYX_FMT_URL:
			if (!url_valid(v->s, v->n))
				alyx__fielderrs_add(fe, n, "format",
					"is not a valid URL "
					"(scheme://host[:port][/path])");
			break;
		case ALYX_FMT_UUID:
			if (!alyx__uuid_valid(v->s, v->n))
				alyx__fielderrs_add(fe, n, "format",
					"is not a valid UUID");
			break;
		default:
			break;
		}
	}
	if (v->kind == ALYX_V_TEXT && f->pattern_code &&
	    f->type != ALYX_T_JSON) {
		int m = pattern_match(f, v);

		if (m == 0)
			alyx__fielderrs_add(fe, n, "pattern",
				"does not match the pattern %.200s",
				f->pattern ? f->pattern : "");
		else if (m < 0)
			alyx__fielderrs_add(fe, n, "pattern",
				"could not be matched against the pattern "
				"(pcre2 error %d)", m);
	}
	if (f->n_enum) {
		int in = in_enum(f, v);
		char list[256];

		if (in < 0) {
			/* Reported as NOMEM by the caller, not as a field
			 * error. */
			fe->buf.err = ALYX_E_NOMEM;
		} else if (in == 0) {
			enum_list(f, list, sizeof(list));
			alyx__fielderrs_add(fe, n, "enum",
					    "must be one of [%s]", list);
		}
	}
}

/* The field-error code for a value alyx__value_from_json refused. */
static const char *conv_code(const alyx__field *f, const cJSON *j)
{
	if (!cJSON_IsString(j))
		return "type";
	switch (f->type) {
	case ALYX_T_UUID:
	case ALYX_T_TIMESTAMP:
	case ALYX_T_BLOB:
		return "format";
	case ALYX_T_STRING:
	case ALYX_T_TEXT:
		if (strlen(j->valuestring) > ALYX_DOC_MAX_STRING)
			return "max_length";
		return "type";
	default:
		return "type";
	}
}

static bool now_value(alyx__value *v, int64_t now)
{
	char iso[25];

	alyx__iso8601_ms(now, iso);
	v->kind = ALYX_V_TEXT;
	v->s = alyx__strndup(iso, 24);
	v->n = 24;
	return v->s != NULL;
}

/* Fills the default of an absent field on create.  Returns false when
 * the field has no default (required unless nullable). */
static bool apply_default(const alyx__collection *c, size_t i, int64_t now,
			  alyx__row *r, alyx__fielderrs *fe, bool *nomem)
{
	const alyx__field *f = &c->fields[i];
	alyx__value *v = &r->vals[i];
	char why[128];

	switch (f->default_kind) {
	case ALYX_DEF_LITERAL: {
		cJSON *j = f->default_json ? cJSON_Parse(f->default_json)
					   : NULL;
		bool ok = j && alyx__value_from_json(f, j, v, why);

		if (!ok && j && !strcmp(why, ALYX_DOC_WHY_NOMEM))
			*nomem = true;
		else if (!ok || (v->kind == ALYX_V_NULL && !f->nullable))
			alyx__fielderrs_add(fe, f->name, "type",
				"the schema's default %.100s is not valid here",
				f->default_json ? f->default_json : "(none)");
		cJSON_Delete(j);
		r->set[i] = true;
		return true;
	}
	case ALYX_DEF_AUTO:
		if (f->type == ALYX_T_UUID) {
			char id[37];

			alyx__uuid_v7_pooled(id);
			v->kind = ALYX_V_TEXT;
			v->s = alyx__strndup(id, 36);
			v->n = 36;
			*nomem = !v->s;
			r->set[i] = true;
			return true;
		}
		/* auto on an int primary key: SQLite assigns the rowid. */
		return i == c->pk;
	case ALYX_DEF_NOW:
		*nomem = !now_value(v, now);
		r->set[i] = true;
		return true;
	case ALYX_DEF_NONE:
	default:
		break;
	}
	if (f->on_update_now && f->type == ALYX_T_TIMESTAMP) {
		*nomem = !now_value(v, now);
		r->set[i] = true;
		return true;
	}
	/* An int primary key without a value gets the next rowid. */
	if (i == c->pk && f->type == ALYX_T_INT)
		return true;
	if (f->nullable) {
		r->set[i] = true;	/* explicit NULL */
		return true;
	}
	return false;
}

/* Bounds on what one document's unknown keys add to the error. */
#define MAX_UNKNOWN_REPORTED 20
#define MAX_KEY_REPORTED 100

static int find_field(const alyx__collection *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->n_fields; i++)
		if (!strcmp(c->fields[i].name, name))
			return (int)i;
	return -1;
}

/* After the fields: keys that are no field, and keys given twice. */
static void report_keys(const alyx__collection *c, const cJSON *in,
			const cJSON **given, alyx__fielderrs *fe)
{
	const cJSON *k;
	size_t unknown = 0;

	for (k = in->child; k; k = k->next) {
		const char *key = k->string ? k->string : "";
		int fi = find_field(c, key);

		if (fi < 0 && ++unknown <= MAX_UNKNOWN_REPORTED) {
			char name[MAX_KEY_REPORTED + 1];

			/* Quote at most a bounded prefix of a hostile key. */
			snprintf(name, sizeof(name), "%s", key);
			alyx__fielderrs_add(fe, name, "unknown_field",
				"unknown field in collection '%s'", c->name);
		} else if (fi >= 0 && given[fi] != k) {
			alyx__fielderrs_add(fe, key, "duplicate_field",
					    "given more than once");
		}
	}
	if (unknown > MAX_UNKNOWN_REPORTED)
		alyx__fielderrs_add(fe, "*", "unknown_field",
			"and %zu more unknown fields",
			unknown - MAX_UNKNOWN_REPORTED);
}

int alyx__doc_prepare(const alyx__collection *c, const cJSON *in, int mode,
		      alyx__row *out, alyx__err *err)
{
	alyx__fielderrs fe;
	const cJSON **given = NULL, *k;
	int64_t now = alyx__now_ms();
	bool nomem = false;
	size_t i;
	int rc = ALYX_OK;

	memset(out, 0, sizeof(*out));
	alyx__fielderrs_init(&fe);
	if (!cJSON_IsObject(in)) {
		rc = alyx__err_set(err, ALYX_E_BADJSON, NULL,
				   "a document must be a JSON object");
		goto out;
	}
	out->n = c->n_fields;
	out->vals = alyx__calloc(c->n_fields ? c->n_fields : 1,
				 sizeof(*out->vals));
	out->set = alyx__calloc(c->n_fields ? c->n_fields : 1,
				sizeof(*out->set));
	given = alyx__calloc(c->n_fields ? c->n_fields : 1, sizeof(*given));
	if (!out->vals || !out->set || !given) {
		rc = alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
		goto out;
	}
	for (k = in->child; k; k = k->next) {
		int fi = find_field(c, k->string ? k->string : "");

		if (fi >= 0 && !given[fi])
			given[fi] = k;
	}
	for (i = 0; i < c->n_fields && !nomem; i++) {
		const alyx__field *f = &c->fields[i];
		alyx__value *v = &out->vals[i];
		char why[128];

		if (mode == ALYX_DOC_UPDATE && i == c->pk) {
			if (given[i])
				alyx__fielderrs_add(&fe, f->name, "immutable",
					"the primary key cannot be changed");
			continue;
		}
		if (given[i] && !alyx__value_from_json(f, given[i], v, why)) {
			if (!strcmp(why, ALYX_DOC_WHY_NOMEM))
				nomem = true;
			else
				alyx__fielderrs_add(&fe, f->name,
					conv_code(f, given[i]), "%s", why);
			continue;
		}
		if (given[i] && v->kind != ALYX_V_NULL) {
			out->set[i] = true;
			check_value(f, v, &fe);
			continue;
		}
		if (mode == ALYX_DOC_UPDATE) {
			if (given[i] && !f->nullable) {
				alyx__fielderrs_add(&fe, f->name, "null",
						    "cannot be null");
			} else if (given[i]) {
				out->set[i] = true;
			} else if (f->on_update_now &&
				   f->type == ALYX_T_TIMESTAMP) {
				nomem = !now_value(v, now);
				out->set[i] = true;
			}
			continue;
		}
		/* Create: an explicit null on a nullable field stays null. */
		if (given[i] && f->nullable) {
			out->set[i] = true;
			continue;
		}
		if (!apply_default(c, i, now, out, &fe, &nomem)) {
			alyx__fielderrs_add(&fe, f->name, "required",
					    "is required");
			continue;
		}
		check_value(f, v, &fe);
	}
	report_keys(c, in, given, &fe);
	if (nomem || fe.buf.err == ALYX_E_NOMEM) {
		rc = alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
		goto out;
	}
	if (fe.count) {
		int cnt = fe.count;
		char *details = alyx__fielderrs_take(&fe);
		cJSON *d = details ? cJSON_Parse(details) : NULL;
		cJSON *first = d ? cJSON_GetArrayItem(
			cJSON_GetObjectItemCaseSensitive(d, "fields"), 0) : NULL;
		const char *ff = cJSON_GetStringValue(
			cJSON_GetObjectItemCaseSensitive(first, "field"));
		const char *fm = cJSON_GetStringValue(
			cJSON_GetObjectItemCaseSensitive(first, "message"));

		if (cnt > 1)
			alyx__err_setd(err, ALYX_E_VALIDATION, details,
				"%s: %s: %s (and %d more)", c->name,
				ff ? ff : "?", fm ? fm : "invalid", cnt - 1);
		else
			alyx__err_setd(err, ALYX_E_VALIDATION, details,
				"%s: %s: %s", c->name, ff ? ff : "?",
				fm ? fm : "invalid");
		cJSON_Delete(d);
		rc = ALYX_E_VALIDATION;
	}
out:
	alyx__free(given);
	alyx__fielderrs_free(&fe);
	if (rc != ALYX_OK)
		alyx__row_free(out);
	return rc;
}
