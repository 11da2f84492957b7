/*
 * json.c - the canonical JSON form of a schema and its parser.
 *
 * The JSON uses the YAML format's own keys (with validation options under
 * "validate"), so alyx__schema_from_json() turns it into the same document
 * tree and runs the same validator as schema.yaml.  Keys appear in a fixed
 * order and options at their default value are left out, so two schemas
 * that mean the same thing serialise to the same bytes.
 */
#include <string.h>

#include <cjson/cJSON.h>

#include "schema/schema-int.h"

static const char *const on_delete_names[] = {"restrict", "cascade",
					      "set null"};
static const char *const format_names[] = {NULL, "email", "url", "uuid"};
static const char *const rule_keys[ALYX_RULE_COUNT] = {
	[ALYX_RULE_CREATE] = "create", [ALYX_RULE_READ] = "read",
	[ALYX_RULE_UPDATE] = "update", [ALYX_RULE_DELETE] = "delete",
};

static void key(alyx_buf *b, bool *first, const char *k)
{
	if (!*first)
		alyx__buf_addc(b, ',');
	*first = false;
	alyx__json_strz(b, k);
	alyx__buf_addc(b, ':');
}

static void bool_opt(alyx_buf *b, bool *first, const char *k, bool v)
{
	if (v) {
		key(b, first, k);
		alyx__buf_adds(b, "true");
	}
}

static void field_json(alyx_buf *b, const alyx__field *f)
{
	bool first = true, vfirst = true;
	size_t i;

	alyx__buf_addc(b, '{');
	key(b, &first, "type");
	alyx__json_strz(b, alyx__type_name(f->type));
	bool_opt(b, &first, "primary", f->primary);
	bool_opt(b, &first, "unique", f->unique);
	bool_opt(b, &first, "nullable", f->nullable);
	bool_opt(b, &first, "index", f->index);
	if (f->default_kind != ALYX_DEF_NONE) {
		key(b, &first, "default");
		if (f->default_kind == ALYX_DEF_AUTO)
			alyx__buf_adds(b, "\"auto\"");
		else if (f->default_kind == ALYX_DEF_NOW)
			alyx__buf_adds(b, "\"now\"");
		else
			alyx__buf_adds(b, f->default_json);
	}
	if (f->ref_collection) {
		/* Written piecewise into the buffer: an allocation failure
		 * then marks the buffer failed instead of writing null. */
		key(b, &first, "references");
		alyx__buf_addc(b, '"');
		alyx__buf_adds(b, f->ref_collection);
		alyx__buf_addc(b, '.');
		alyx__buf_adds(b, f->ref_field);
		alyx__buf_addc(b, '"');
		if (f->on_delete != ALYX_ONDEL_RESTRICT) {
			key(b, &first, "onDelete");
			alyx__json_strz(b, on_delete_names[f->on_delete]);
		}
	}
	if (f->on_update_now) {
		key(b, &first, "onUpdate");
		alyx__buf_adds(b, "\"now\"");
	}
	bool_opt(b, &first, "internal", f->internal);
	if (!(f->has_min_length || f->has_max_length || f->has_min ||
	      f->has_max || f->format || f->pattern || f->n_enum))
		goto done;
	key(b, &first, "validate");
	alyx__buf_addc(b, '{');
	if (f->has_min_length) {
		key(b, &vfirst, "minLength");
		alyx__json_i64(b, f->min_length);
	}
	if (f->has_max_length) {
		key(b, &vfirst, "maxLength");
		alyx__json_i64(b, f->max_length);
	}
	if (f->has_min) {
		key(b, &vfirst, "min");
		alyx__json_f64(b, f->min);
	}
	if (f->has_max) {
		key(b, &vfirst, "max");
		alyx__json_f64(b, f->max);
	}
	if (f->format) {
		key(b, &vfirst, "format");
		alyx__json_strz(b, format_names[f->format]);
	}
	if (f->pattern) {
		key(b, &vfirst, "pattern");
		alyx__json_strz(b, f->pattern);
	}
	if (f->n_enum) {
		key(b, &vfirst, "enum");
		alyx__buf_addc(b, '[');
		for (i = 0; i < f->n_enum; i++) {
			if (i)
				alyx__buf_addc(b, ',');
			alyx__buf_adds(b, f->enum_json[i]);
		}
		alyx__buf_addc(b, ']');
	}
	alyx__buf_addc(b, '}');
done:
	alyx__buf_addc(b, '}');
}

static void coll_json(alyx_buf *b, const alyx__collection *c)
{
	bool first = true;
	size_t i, j;

	alyx__buf_adds(b, "{\"fields\":{");
	for (i = 0; i < c->n_fields; i++) {
		if (i)
			alyx__buf_addc(b, ',');
		alyx__json_strz(b, c->fields[i].name);
		alyx__buf_addc(b, ':');
		field_json(b, &c->fields[i]);
	}
	alyx__buf_addc(b, '}');
	if (c->n_indexes) {
		alyx__buf_adds(b, ",\"indexes\":[");
		for (i = 0; i < c->n_indexes; i++) {
			const alyx__index *ix = &c->indexes[i];

			alyx__buf_adds(b, i ? ",{\"name\":" : "{\"name\":");
			alyx__json_strz(b, ix->name);
			alyx__buf_adds(b, ",\"fields\":[");
			for (j = 0; j < ix->n_fields; j++) {
				if (j)
					alyx__buf_addc(b, ',');
				alyx__json_strz(b, ix->fields[j]);
			}
			alyx__buf_addc(b, ']');
			if (ix->desc)
				alyx__buf_adds(b, ",\"order\":\"desc\"");
			if (ix->unique)
				alyx__buf_adds(b, ",\"unique\":true");
			alyx__buf_addc(b, '}');
		}
		alyx__buf_addc(b, ']');
	}
	for (i = 0; i < ALYX_RULE_COUNT; i++) {
		if (!c->rules[i])
			continue;
		alyx__buf_adds(b, first ? ",\"rules\":{" : ",");
		first = false;
		alyx__json_strz(b, rule_keys[i]);
		alyx__buf_addc(b, ':');
		alyx__json_strz(b, c->rules[i]);
	}
	if (!first)
		alyx__buf_addc(b, '}');
	alyx__buf_addc(b, '}');
}

char *alyx__schema_to_json(const alyx__schema *s)
{
	alyx_buf b;
	size_t i;

	alyx__buf_init(&b, 0);
	alyx__buf_adds(&b, "{\"version\":");
	alyx__json_i64(&b, s->version);
	alyx__buf_adds(&b, ",\"collections\":{");
	for (i = 0; i < s->n_colls; i++) {
		if (i)
			alyx__buf_addc(&b, ',');
		alyx__json_strz(&b, s->colls[i].name);
		alyx__buf_addc(&b, ':');
		coll_json(&b, &s->colls[i]);
	}
	alyx__buf_adds(&b, "}}");
	return alyx__buf_take(&b);
}

int alyx__schema_from_json(const char *json, alyx__schema **out,
			   alyx__err *err)
{
	cJSON *j;
	ynode *root = NULL;
	int rc;

	*out = NULL;
	if (!json || strlen(json) > 4 * SCHEMA_MAX_BYTES)
		return alyx__err_set(err, ALYX_E_TOOBIG, NULL,
				     "schema JSON is missing or too large");
	j = cJSON_Parse(json);
	if (!j)
		return alyx__err_set(err, ALYX_E_BADJSON, NULL,
				     "schema JSON does not parse");
	rc = alyx__ytree_from_cjson(j, &root, err);
	cJSON_Delete(j);
	if (rc == ALYX_OK)
		rc = alyx__schema_build(root, "schema.json", out, err);
	alyx__ytree_free(root);
	return rc;
}
