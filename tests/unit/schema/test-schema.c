/* Unit tests of lib/schema: the parser, its errors, canonical JSON and the
 * generated SQL (executed in an in-memory SQLite database). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"
#include "schema/schema.h"

#ifndef BLOG_YAML
#error "BLOG_YAML must name the seed plan's blog schema"
#endif

static char *read_blog(size_t *len)
{
	alyx__err err = {0};
	char *text = NULL;

	ASSERT_EQ(alyx__read_file(BLOG_YAML, 1 << 20, &text, len, &err),
		  ALYX_OK);
	return text;
}

static alyx__schema *parse_ok(const char *yaml)
{
	alyx__err err = {0};
	alyx__schema *s = NULL;
	int rc = alyx__schema_parse(yaml, strlen(yaml), "t.yaml", &s, &err);

	if (rc != ALYX_OK)
		fprintf(stderr, "unexpected error: %s\n", err.msg);
	ASSERT_EQ(rc, ALYX_OK);
	alyx__err_clear(&err);
	return s;
}

static alyx__schema *parse_blog(void)
{
	size_t len;
	char *text = read_blog(&len);
	alyx__err err = {0};
	alyx__schema *s = NULL;
	int rc = alyx__schema_parse(text, len, "schema.yaml", &s, &err);

	if (rc != ALYX_OK)
		fprintf(stderr, "blog: %s\n", err.msg);
	ASSERT_EQ(rc, ALYX_OK);
	alyx__free(text);
	return s;
}

/* Parses `yaml`, expects failure with `code` at line:col and a message
 * containing `needle`; returns nothing, asserts everything. */
static void expect_err(const char *yaml, int code, int line, int col,
		       const char *needle)
{
	alyx__err err = {0};
	alyx__schema *s = NULL;
	char where[64];
	int rc = alyx__schema_parse(yaml, strlen(yaml), "t.yaml", &s, &err);

	if (rc == ALYX_OK)
		fprintf(stderr, "expected an error containing '%s'\n", needle);
	ASSERT_EQ(rc, code);
	ASSERT(s == NULL);
	ASSERT_CONTAINS(err.msg, needle);
	snprintf(where, sizeof(where), "t.yaml:%d:%d: ", line, col);
	if (strncmp(err.msg, where, strlen(where)) != 0)
		fprintf(stderr, "message: %s\n", err.msg);
	ASSERT(strncmp(err.msg, where, strlen(where)) == 0);
	snprintf(where, sizeof(where), "\"line\":%d,\"column\":%d", line,
		 col);
	ASSERT_CONTAINS(err.details, where);
	ASSERT_CONTAINS(err.details, "\"file\":\"t.yaml\"");
	alyx__err_clear(&err);
}

/* A collection prefix used by most error cases: fields start at line 4. */
#define HEAD "version: 1\ncollections:\n  c:\n    fields:\n" \
	     "      id: {type: uuid, primary: true}\n"

TEST(blog_parses)
{
	alyx__schema *s = parse_blog();
	const alyx__collection *posts = alyx__schema_coll(s, "posts");
	const alyx__collection *users = alyx__schema_coll(s, "users");
	const alyx__field *f;

	ASSERT_EQ(s->n_colls, 3);
	ASSERT_STR_EQ(s->colls[0].name, "users");
	ASSERT_STR_EQ(s->colls[2].name, "comments");
	ASSERT(posts && users);
	ASSERT_EQ(posts->n_fields, 12);
	ASSERT_STR_EQ(posts->fields[posts->pk].name, "id");
	f = alyx__coll_field(posts, "author_id");
	ASSERT(f && f->index);
	ASSERT_STR_EQ(f->ref_collection, "users");
	ASSERT_STR_EQ(f->ref_field, "id");
	ASSERT_EQ(f->on_delete, ALYX_ONDEL_CASCADE);
	f = alyx__coll_field(posts, "title");
	ASSERT(f->has_min_length && f->has_max_length);
	ASSERT_EQ(f->min_length, 1);
	ASSERT_EQ(f->max_length, 200);
	f = alyx__coll_field(posts, "view_count");
	ASSERT_EQ(f->default_kind, ALYX_DEF_LITERAL);
	ASSERT_STR_EQ(f->default_json, "0");
	f = alyx__coll_field(posts, "published");
	ASSERT_STR_EQ(f->default_json, "false");
	f = alyx__coll_field(posts, "updated_at");
	ASSERT_EQ(f->default_kind, ALYX_DEF_NOW);
	ASSERT(f->on_update_now);
	ASSERT_EQ(alyx__coll_field(posts, "id")->default_kind, ALYX_DEF_AUTO);
	f = alyx__coll_field(users, "role");
	ASSERT_STR_EQ(f->default_json, "\"user\"");
	ASSERT_EQ(f->n_enum, 3);
	ASSERT_STR_EQ(f->enum_json[2], "\"admin\"");
	ASSERT_EQ(alyx__coll_field(users, "email")->format, ALYX_FMT_EMAIL);
	ASSERT(alyx__coll_field(users, "name")->nullable);
	ASSERT_EQ(posts->n_indexes, 2);
	ASSERT_STR_EQ(posts->indexes[0].name, "idx_posts_published_date");
	ASSERT(posts->indexes[0].desc);
	ASSERT_EQ(posts->indexes[0].n_fields, 2);
	ASSERT_STR_EQ(posts->indexes[0].fields[1], "published_at");
	ASSERT_STR_EQ(users->rules[ALYX_RULE_CREATE], "true");
	ASSERT_STR_EQ(posts->rules[ALYX_RULE_READ],
		      "doc.published == true || auth.id == doc.author_id || "
		      "auth.role == 'admin'");
	ASSERT(posts->rule_line[ALYX_RULE_READ] > posts->line);
	ASSERT(posts->rule_col[ALYX_RULE_READ] > 1);
	ASSERT_EQ(alyx__coll_field_index(posts, "nope"), -1);
	ASSERT(alyx__schema_coll(s, "nope") == NULL);
	alyx__schema_free(s);
}

TEST(all_types_and_options)
{
	alyx__schema *s = parse_ok(
		"version: 1\n"
		"collections:\n"
		"  t:\n"
		"    fields:\n"
		"      id: {type: int, primary: true, default: auto}\n"
		"      u: {type: uuid, default: 123e4567-e89b-42d3-a456-426614174000}\n"
		"      s: {type: string, validate: {pattern: '^[a-z]+$', format: url}, default: abc}\n"
		"      tx: {type: text, minLength: 2, enum: [ab, cd]}\n"
		"      f: {type: float, min: -1.5, max: 2, default: 1, enum: [1, 1.5]}\n"
		"      b: {type: bool, default: true, internal: true}\n"
		"      ts: {type: timestamp, default: '2026-01-02T03:04:05+01:00'}\n"
		"      j: {type: json, default: {a: [1, x, true, null]}}\n"
		"      bl: {type: blob, default: AAEC, nullable: true}\n"
		"      i: {type: int, validate: {min: 0, max: 10}, default: -0}\n"
		"      r: {type: int, references: t.id, onDelete: set null, nullable: true}\n");
	const alyx__collection *t = &s->colls[0];

	ASSERT_EQ(t->n_fields, 11);
	ASSERT_EQ(t->fields[0].default_kind, ALYX_DEF_AUTO);
	ASSERT_EQ(t->fields[1].type, ALYX_T_UUID);
	ASSERT_STR_EQ(t->fields[1].default_json,
		      "\"123e4567-e89b-42d3-a456-426614174000\"");
	ASSERT(t->fields[2].pattern_code != NULL);
	ASSERT_EQ(t->fields[2].format, ALYX_FMT_URL);
	ASSERT_STR_EQ(t->fields[2].default_json, "\"abc\"");
	ASSERT_EQ(t->fields[3].min_length, 2);
	ASSERT_STR_EQ(t->fields[4].default_json, "1.0");
	ASSERT_STR_EQ(t->fields[4].enum_json[1], "1.5");
	ASSERT(t->fields[4].min == -1.5 && t->fields[4].max == 2);
	ASSERT(t->fields[5].internal);
	ASSERT_STR_EQ(t->fields[6].default_json,
		      "\"2026-01-02T02:04:05.000Z\"");
	ASSERT_STR_EQ(t->fields[7].default_json, "{\"a\":[1,\"x\",true,null]}");
	ASSERT_STR_EQ(t->fields[8].default_json, "\"AAEC\"");
	ASSERT_STR_EQ(t->fields[9].default_json, "0");
	ASSERT_EQ(t->fields[10].on_delete, ALYX_ONDEL_SET_NULL);
	ASSERT_STR_EQ(alyx__type_name(ALYX_T_BLOB), "blob");
	ASSERT_STR_EQ(alyx__type_sql(ALYX_T_BOOL), "INTEGER");
	ASSERT_STR_EQ(alyx__type_sql(ALYX_T_FLOAT), "REAL");
	ASSERT_STR_EQ(alyx__type_sql(ALYX_T_TIMESTAMP), "TEXT");
	ASSERT(alyx__type_name((alyx__type)99) == NULL);
	alyx__schema_free(s);
}

TEST(rule_positions_point_at_the_text)
{
	alyx__schema *s = parse_ok(
		HEAD "      bl: {type: blob, nullable: true, maxLength: 16}\n"
		"    rules:\n"
		"      read: doc.id != null\n"
		"      create: \"auth.id != null\"\n"
		"      update: |\n"
		"\n"
		"          auth.id == doc.id\n"
		"      delete: 'false'\n");
	const alyx__collection *c = &s->colls[0];

	ASSERT_EQ(c->fields[1].max_length, 16);
	ASSERT_EQ(c->rule_line[ALYX_RULE_READ], 8);
	ASSERT_EQ(c->rule_col[ALYX_RULE_READ], 13);
	ASSERT_EQ(c->rule_line[ALYX_RULE_CREATE], 9);
	ASSERT_EQ(c->rule_col[ALYX_RULE_CREATE], 16);
	/* Leading blank lines belong to a block scalar's text. */
	ASSERT_STR_EQ(c->rules[ALYX_RULE_UPDATE], "\nauth.id == doc.id\n");
	ASSERT_EQ(c->rule_line[ALYX_RULE_UPDATE], 11);
	ASSERT_EQ(c->rule_col[ALYX_RULE_UPDATE], 11);
	ASSERT_EQ(c->rule_line[ALYX_RULE_DELETE], 13);
	ASSERT_EQ(c->rule_col[ALYX_RULE_DELETE], 16);
	alyx__schema_free(s);
}

/* Rules are compiled and type-checked when the schema loads: a bad rule is
 * a schema error naming the collection, the operation and the place. */
static void expect_rule_err(const char *rule, const char *needle,
			    const char *where)
{
	char yaml[512];
	alyx__err err = {0};
	alyx__schema *s = NULL;
	int rc;

	snprintf(yaml, sizeof(yaml),
		 HEAD "      n: {type: int}\n"
		 "      ok: {type: bool}\n"
		 "    rules:\n"
		 "      read: \"%s\"\n", rule);
	rc = alyx__schema_parse(yaml, strlen(yaml), "t.yaml", &s, &err);
	if (rc == ALYX_OK)
		fprintf(stderr, "rule accepted: %s\n", rule);
	ASSERT_EQ(rc, ALYX_E_SCHEMA);
	ASSERT(s == NULL);
	ASSERT_CONTAINS(err.msg, needle);
	ASSERT_CONTAINS(err.msg, where);
	ASSERT_CONTAINS(err.details, "\"collection\":\"c\"");
	ASSERT_CONTAINS(err.details, "\"operation\":\"read\"");
	alyx__err_clear(&err);
}

TEST(rules_checked_at_load)
{
	alyx__schema *s;

	expect_rule_err("doc.nope == 1", "nope", "t.yaml:9:");
	expect_rule_err("doc.ok == 'yes'", "cannot compare bool with string",
			"t.yaml:9:21:");
	expect_rule_err("doc.n > 'x'", "cannot compare", "t.yaml:9:");
	expect_rule_err("doc.n ==", "rule c.read", "t.yaml:9:");
	/* A good rule is compiled once and kept with the schema. */
	s = parse_ok(HEAD "      n: {type: int}\n"
		     "    rules:\n"
		     "      read: \"doc.n > 3 || auth.role == 'admin'\"\n");
	ASSERT(s->colls[0].programs[ALYX_RULE_READ] != NULL);
	ASSERT(s->colls[0].programs[ALYX_RULE_UPDATE] == NULL);
	alyx__schema_free(s);
}

TEST(empty_schema_is_valid)
{
	alyx__schema *s = parse_ok("");

	ASSERT_EQ(s->n_colls, 0);
	alyx__schema_free(s);
	s = parse_ok("version: 1\ncollections: {}\n");
	ASSERT_EQ(s->n_colls, 0);
	alyx__schema_free(s);
}

/* ---- errors: every class with code, line and column ---- */

TEST(err_yaml_syntax)
{
	expect_err("version: 1\ncollections:\n  c: [a\n", ALYX_E_SCHEMA, 4, 1,
		   "YAML syntax error");
	expect_err("a: b: c\n", ALYX_E_SCHEMA, 1, 5, "YAML syntax error");
}

TEST(err_unknown_type_suggests)
{
	expect_err(HEAD "      title: {type: strng}\n", ALYX_E_SCHEMA, 6, 21,
		   "unknown type 'strng' (did you mean 'string'?)");
	expect_err(HEAD "      title:\n        type: timestap\n", ALYX_E_SCHEMA,
		   7, 15, "did you mean 'timestamp'");
}

TEST(err_unknown_option_suggests)
{
	expect_err(HEAD "      title: {type: string, uniqe: true}\n",
		   ALYX_E_SCHEMA, 6, 29,
		   "unknown option 'uniqe' (did you mean 'unique'?)");
	expect_err(HEAD "      title: {type: string, validate: {maxLen: 3}}\n",
		   ALYX_E_SCHEMA, 6, 40, "did you mean 'maxLength'");
	expect_err("version: 1\ncolections: {}\n", ALYX_E_SCHEMA, 2, 1,
		   "did you mean 'collections'");
	expect_err(HEAD "    indexs: []\n", ALYX_E_SCHEMA, 6, 5,
		   "did you mean 'indexes'");
	expect_err(HEAD "    rules: {raed: 'true'}\n", ALYX_E_SCHEMA, 6, 13,
		   "unknown rule 'raed' (did you mean 'read'?)");
	expect_err(HEAD "      r: {type: uuid, references: c.id, onDelete: "
		   "cascde}\n", ALYX_E_SCHEMA, 6, 51, "did you mean 'cascade'");
	expect_err(HEAD "      e: {type: string, format: emial}\n",
		   ALYX_E_SCHEMA, 6, 33, "did you mean 'email'");
}

TEST(err_reference_missing)
{
	expect_err(HEAD "      r: {type: uuid, references: user.id}\n",
		   ALYX_E_SCHEMA, 6, 35, "unknown collection 'user'");
	expect_err(HEAD "      r: {type: uuid, references: c.idd}\n",
		   ALYX_E_SCHEMA, 6, 35,
		   "unknown field 'idd' of 'c' (did you mean 'id'?)");
	expect_err(HEAD "      r: {type: uuid, references: nodot}\n",
		   ALYX_E_SCHEMA, 6, 35, "must be collection.field");
	expect_err(HEAD "      r: {type: uuid, onDelete: cascade}\n",
		   ALYX_E_SCHEMA, 6, 33, "'onDelete' needs 'references'");
}

TEST(err_reference_forward_ok_and_type_mismatch)
{
	alyx__schema *s = parse_ok(
		"collections:\n"
		"  a:\n    fields:\n      id: {type: int, primary: true}\n"
		"      b_id: {type: string, references: b.key}\n"
		"  b:\n    fields:\n      key: {type: string, primary: true}\n");

	alyx__schema_free(s);
	expect_err(HEAD "      r: {type: string, references: c.id}\n",
		   ALYX_E_SCHEMA, 6, 37,
		   "reference type mismatch: 'c.r' is string but 'c.id' is "
		   "uuid");
	expect_err(HEAD "      x: {type: uuid}\n"
		   "      r: {type: uuid, references: c.x}\n",
		   ALYX_E_SCHEMA, 7, 35, "neither primary nor unique");
	expect_err(HEAD "      r: {type: uuid, references: c.id, onDelete: "
		   "set null}\n", ALYX_E_SCHEMA, 6, 51,
		   "set null needs nullable: true");
}

TEST(err_default_wrong_type)
{
	expect_err(HEAD "      n: {type: int, default: abc}\n", ALYX_E_SCHEMA,
		   6, 31, "default of the wrong type: expected int, got string");
	expect_err(HEAD "      n: {type: int, default: 1.5}\n", ALYX_E_SCHEMA,
		   6, 31, "expected int, got float");
	expect_err(HEAD "      n: {type: bool, default: 1}\n", ALYX_E_SCHEMA,
		   6, 32, "expected bool, got int");
	expect_err(HEAD "      n: {type: string, default: 12}\n",
		   ALYX_E_SCHEMA, 6, 34, "quote it");
	expect_err(HEAD "      n: {type: uuid, default: not-a-uuid}\n",
		   ALYX_E_SCHEMA, 6, 32, "not a UUID");
	expect_err(HEAD "      n: {type: timestamp, default: yesterday}\n",
		   ALYX_E_SCHEMA, 6, 37, "not an ISO-8601 time");
	expect_err(HEAD "      n: {type: blob, default: '***'}\n",
		   ALYX_E_SCHEMA, 6, 32, "not base64");
	expect_err(HEAD "      n: {type: string, default: [a]}\n",
		   ALYX_E_SCHEMA, 6, 34, "got list");
	expect_err(HEAD "      n: {type: int, default: auto}\n", ALYX_E_SCHEMA,
		   6, 31, "needs primary: true");
	expect_err(HEAD "      n: {type: int, default: now}\n", ALYX_E_SCHEMA,
		   6, 31, "expected int");
	expect_err(HEAD "      n: {type: string, default: auto}\n" /* ok */
		   "      m: {type: string, default: null}\n",
		   ALYX_E_SCHEMA, 7, 34, "make the field nullable");
}

TEST(err_identifiers)
{
	expect_err("collections:\n  9lives:\n    fields: {}\n", ALYX_E_SCHEMA,
		   2, 3, "invalid collection name '9lives'");
	expect_err(HEAD "      bad-name: {type: int}\n", ALYX_E_SCHEMA, 6, 7,
		   "invalid field name 'bad-name'");
	expect_err(HEAD "      ID: {type: int}\n", ALYX_E_SCHEMA, 6, 7,
		   "duplicate field 'ID'");
	expect_err(HEAD "  C:\n    fields:\n      id: {type: int, primary: "
		   "true}\n", ALYX_E_SCHEMA, 6, 3, "duplicate collection 'C'");
	expect_err(HEAD "    indexes:\n      - {name: 'x y', fields: [id]}\n",
		   ALYX_E_SCHEMA, 7, 16, "invalid index name");
	expect_err(HEAD "      id2: {type: int, index: true}\n"
		   "    indexes:\n      - {name: idx_c_id2, fields: [id]}\n",
		   ALYX_E_SCHEMA, 8, 9, "collides");
	expect_err(HEAD "  c_alyx_ins:\n    fields:\n      id: {type: int, "
		   "primary: true}\n", ALYX_E_SCHEMA, 6, 3, "collides");
	expect_err(HEAD "      x:\n        type: int\n        type: int\n",
		   ALYX_E_SCHEMA, 8, 9, "duplicate option 'type'");
	expect_err(HEAD "      x: {type: string, maxLength: 3, validate: "
		   "{maxLength: 4}}\n", ALYX_E_SCHEMA, 6, 50,
		   "duplicate option 'maxLength'");
}

TEST(err_reserved_names)
{
	expect_err("collections:\n  _alyx_users:\n    fields: {}\n",
		   ALYX_E_SCHEMA, 2, 3, "reserved");
	expect_err("collections:\n  SQLITE_stat:\n    fields: {}\n",
		   ALYX_E_SCHEMA, 2, 3, "reserved");
	expect_err(HEAD "      expand: {type: string}\n", ALYX_E_SCHEMA, 6, 7,
		   "reserved field name");
	expect_err(HEAD "      RowId: {type: int}\n", ALYX_E_SCHEMA, 6, 7,
		   "SQLite's row id");
	expect_err(HEAD "    indexes:\n      - {name: sqlite_x, fields: [id]}\n",
		   ALYX_E_SCHEMA, 7, 16, "reserved");
}

TEST(err_primary_keys)
{
	expect_err("collections:\n  c:\n    fields:\n      a: {type: int}\n",
		   ALYX_E_SCHEMA, 2, 3, "has no primary key");
	expect_err(HEAD "      b: {type: int, primary: true}\n", ALYX_E_SCHEMA,
		   6, 7, "more than one primary key ('id' and 'b')");
	expect_err("collections:\n  c:\n    fields:\n      a: {type: float, "
		   "primary: true}\n", ALYX_E_SCHEMA, 4, 10,
		   "primary key cannot have type float");
	expect_err("collections:\n  c:\n    fields:\n      a: {type: int, "
		   "primary: true, nullable: true}\n", ALYX_E_SCHEMA, 4, 10,
		   "cannot be nullable");
}

TEST(err_min_max_and_enum)
{
	expect_err(HEAD "      n: {type: int, min: 5, max: 1}\n", ALYX_E_SCHEMA,
		   6, 10, "min 5 is greater than max 1");
	expect_err(HEAD "      n: {type: string, minLength: 5, maxLength: 1}\n",
		   ALYX_E_SCHEMA, 6, 10, "minLength 5 is greater than maxLength");
	expect_err(HEAD "      n: {type: int, enum: [1, two]}\n",
		   ALYX_E_SCHEMA, 6, 32,
		   "enum value of the wrong type: expected int, got string");
	expect_err(HEAD "      n: {type: string, enum: []}\n", ALYX_E_SCHEMA,
		   6, 31, "non-empty list");
	expect_err(HEAD "      n: {type: int, minLength: 1}\n", ALYX_E_SCHEMA,
		   6, 22, "option 'minLength' does not apply to int fields");
	expect_err(HEAD "      n: {type: string, max: 1}\n", ALYX_E_SCHEMA,
		   6, 25, "does not apply to string fields");
	expect_err(HEAD "      n: {type: string, maxLength: -1}\n",
		   ALYX_E_SCHEMA, 6, 36, "non-negative integer");
	expect_err(HEAD "      n: {type: int, min: ten}\n", ALYX_E_SCHEMA, 6,
		   27, "'min' must be a number");
}

TEST(err_bad_pattern)
{
	/* Column of the character pcre2 stopped at (offset 5, after the
	 * quote at 34). */
	expect_err(HEAD "      n: {type: string, pattern: '([a-z'}\n",
		   ALYX_E_SCHEMA, 6, 40, "bad pattern at offset");
}

TEST(err_index_unknown_field)
{
	expect_err(HEAD "    indexes:\n      - name: i1\n        fields: [id, "
		   "titel]\n", ALYX_E_SCHEMA, 8, 22,
		   "index 'i1' names unknown field 'titel'");
	expect_err(HEAD "    indexes:\n      - {name: i1, fields: [id], order: "
		   "down}\n", ALYX_E_SCHEMA, 7, 41, "unknown order 'down'");
	expect_err(HEAD "    indexes:\n      - {fields: [id]}\n", ALYX_E_SCHEMA,
		   7, 9, "index has no 'name'");
}

TEST(err_misc_shapes)
{
	expect_err("version: 2\n", ALYX_E_SCHEMA, 1, 10,
		   "unsupported schema version 2");
	expect_err("- a\n", ALYX_E_SCHEMA, 1, 1, "must be a mapping");
	expect_err(HEAD "      n: string\n", ALYX_E_SCHEMA, 6, 10,
		   "must be a mapping with a 'type'");
	expect_err(HEAD "      n: {nullable: true}\n", ALYX_E_SCHEMA, 6, 10,
		   "has no 'type'");
	expect_err(HEAD "      n: {type: int, unique: yes}\n", ALYX_E_SCHEMA,
		   6, 30, "must be true or false");
	expect_err(HEAD "      n: {type: int, onUpdate: now}\n", ALYX_E_SCHEMA,
		   6, 22, "onUpdate: now needs a timestamp field");
	expect_err(HEAD "    rules: {read: [a]}\n", ALYX_E_SCHEMA, 6, 19,
		   "must be an expression string");
	expect_err("a: 1\n---\nb: 2\n", ALYX_E_SCHEMA, 2, 1,
		   "only one YAML document");
	expect_err("? [a]\n: b\n", ALYX_E_SCHEMA, 1, 3,
		   "mapping keys must be plain names");
}

/* ---- limits ---- */

TEST(limit_aliases_refused)
{
	expect_err("a: &x [1, 2]\nb: *x\n", ALYX_E_SCHEMA, 1, 4,
		   "anchors are not supported");
	expect_err("a: *x\n", ALYX_E_SCHEMA, 1, 4, "aliases are not supported");
}

TEST(limit_depth)
{
	char buf[256];
	size_t i, n = 0;

	n += (size_t)snprintf(buf, sizeof(buf), "a: ");
	for (i = 0; i < 40; i++)
		buf[n++] = '[';
	for (i = 0; i < 40; i++)
		buf[n++] = ']';
	buf[n] = '\0';
	expect_err(buf, ALYX_E_TOOBIG, 1, 35, "nesting is too deep");
}

TEST(limit_size_and_counts)
{
	alyx_buf b;
	alyx__err err = {0};
	alyx__schema *s = NULL;
	char *big = alyx__malloc((1 << 20) + 2);
	int i;

	memset(big, ' ', (1 << 20) + 1);
	big[(1 << 20) + 1] = '\0';
	ASSERT_EQ(alyx__schema_parse(big, (1 << 20) + 1, NULL, &s, &err),
		  ALYX_E_TOOBIG);
	ASSERT_CONTAINS(err.msg, "schema.yaml:1:1: document is larger");
	alyx__free(big);

	alyx__buf_init(&b, 0);
	alyx__buf_adds(&b, "collections:\n");
	for (i = 0; i < 257; i++)
		alyx__buf_addf(&b, "  c%d: {fields: {id: {type: int, primary: "
			       "true}}}\n", i);
	ASSERT_EQ(alyx__schema_parse(b.data, b.len, NULL, &s, &err),
		  ALYX_E_TOOBIG);
	ASSERT_CONTAINS(err.msg, "too many collections");
	alyx__buf_reset(&b);
	alyx__buf_adds(&b, "collections:\n  c:\n    fields:\n"
		       "      id: {type: int, primary: true}\n");
	for (i = 0; i < 256; i++)
		alyx__buf_addf(&b, "      f%d: {type: int}\n", i);
	ASSERT_EQ(alyx__schema_parse(b.data, b.len, NULL, &s, &err),
		  ALYX_E_TOOBIG);
	ASSERT_CONTAINS(err.msg, "schema.yaml:4:7: too many fields");
	alyx__buf_free(&b);
	alyx__err_clear(&err);
}

/* Every allocation of a parse, in turn, fails once: the parse reports
 * ALYX_E_NOMEM (never another error, never a partial schema) or, when the
 * failed allocation was not needed, gives the same schema. */
TEST(allocation_failures)
{
	size_t len;
	char *text = read_blog(&len), *want, *got;
	alyx__schema *s = parse_blog();
	alyx__plan *p = NULL;
	alyx__err err = {0};
	long n;
	int rc, failures = 0;

	want = alyx__schema_to_json(s);
	alyx__schema_free(s);
	for (n = 1; n < 4000; n++) {
		s = NULL;
		alyx__fail_alloc_after(n);
		rc = alyx__schema_parse(text, len, NULL, &s, &err);
		alyx__fail_alloc_after(0);
		if (rc != ALYX_OK) {
			if (rc != ALYX_E_NOMEM)
				fprintf(stderr, "n=%ld: %s\n", n, err.msg);
			ASSERT_EQ(rc, ALYX_E_NOMEM);
			ASSERT(s == NULL);
			failures++;
			continue;
		}
		got = alyx__schema_to_json(s);
		ASSERT_STR_EQ(got, want);
		alyx__free(got);
		alyx__fail_alloc_after(n % 300 + 1);
		rc = alyx__schema_diff(NULL, s, &p, &err);
		alyx__fail_alloc_after(0);
		ASSERT(rc == ALYX_OK || rc == ALYX_E_NOMEM);
		alyx__plan_free(p);
		p = NULL;
		alyx__schema_free(s);
	}
	ASSERT(failures > 100);
	alyx__err_clear(&err);
	alyx__free(want);
	alyx__free(text);
}

/* ---- canonical JSON ---- */

TEST(json_round_trip_blog)
{
	alyx__schema *s = parse_blog(), *s2 = NULL;
	alyx__err err = {0};
	char *j1 = alyx__schema_to_json(s), *j2;

	ASSERT(j1 != NULL);
	ASSERT(strncmp(j1, "{\"version\":1,\"collections\":{\"users\":{\"fields\":"
		       "{\"id\":{\"type\":\"uuid\",\"primary\":true,\"default\":"
		       "\"auto\"}", 85) == 0);
	ASSERT_CONTAINS(j1, "\"author_id\":{\"type\":\"uuid\",\"index\":true,"
			"\"references\":\"users.id\",\"onDelete\":\"cascade\"}");
	ASSERT_CONTAINS(j1, "\"role\":{\"type\":\"string\",\"default\":\"user\","
			"\"validate\":{\"enum\":[\"user\",\"moderator\","
			"\"admin\"]}}");
	ASSERT_CONTAINS(j1, "{\"name\":\"idx_posts_published_date\",\"fields\":"
			"[\"published\",\"published_at\"],\"order\":\"desc\"}");
	ASSERT_CONTAINS(j1, "\"rules\":{\"create\":\"true\"");
	ASSERT_EQ(alyx__schema_from_json(j1, &s2, &err), ALYX_OK);
	j2 = alyx__schema_to_json(s2);
	ASSERT_STR_EQ(j1, j2);
	ASSERT_STR_EQ(s2->colls[1].name, "posts");
	ASSERT_STR_EQ(s2->colls[1].fields[11].name, "updated_at");
	alyx__free(j1);
	alyx__free(j2);
	alyx__schema_free(s);
	alyx__schema_free(s2);
}

TEST(json_round_trip_every_option)
{
	alyx__schema *s = parse_ok(
		"collections:\n"
		"  z:\n"
		"    fields:\n"
		"      k: {type: string, primary: true, pattern: '^\\d+$'}\n"
		"      a: {type: float, min: -1, max: 2.5, default: 0.25, "
		"enum: [0.25, 1]}\n"
		"      b: {type: text, minLength: 0, maxLength: 9, format: "
		"email, unique: true, internal: true}\n"
		"      c: {type: json, default: [1, {x: 'y'}]}\n"
		"      d: {type: blob, nullable: true, default: AAEC}\n"
		"      e: {type: timestamp, default: now, onUpdate: now}\n"
		"      g: {type: string, references: z.k, onDelete: set null, "
		"nullable: true}\n"
		"      h: {type: int, default: -42, index: true}\n"
		"    indexes:\n"
		"      - {name: zi, fields: [a, b], unique: true}\n"
		"    rules: {delete: \"auth.id != null\"}\n"
		"  a:\n"
		"    fields: {id: {type: uuid, primary: true, default: auto}}\n");
	alyx__schema *s2 = NULL;
	alyx__err err = {0};
	char *j1 = alyx__schema_to_json(s), *j2;

	ASSERT_EQ(alyx__schema_from_json(j1, &s2, &err), ALYX_OK);
	j2 = alyx__schema_to_json(s2);
	ASSERT_STR_EQ(j1, j2);
	ASSERT_CONTAINS(j1, "\"collections\":{\"z\":");
	ASSERT_CONTAINS(j1, "\"a\":{\"fields\":{\"id\":");
	ASSERT_CONTAINS(j1, "\"validate\":{\"min\":-1.0,\"max\":2.5,"
			"\"enum\":[0.25,1.0]}");
	ASSERT_CONTAINS(j1, "\"pattern\":\"^\\\\d+$\"");
	ASSERT(s2->colls[0].fields[0].pattern_code != NULL);
	alyx__free(j1);
	alyx__free(j2);
	alyx__schema_free(s);
	alyx__schema_free(s2);
}

TEST(json_errors)
{
	alyx__schema *s = NULL;
	alyx__err err = {0};

	ASSERT_EQ(alyx__schema_from_json("{", &s, &err), ALYX_E_BADJSON);
	ASSERT_EQ(alyx__schema_from_json("{\"collections\":{\"x\":{\"fields\":"
					 "{\"id\":{\"type\":\"nope\"}}}}}",
					 &s, &err),
		  ALYX_E_SCHEMA);
	ASSERT_CONTAINS(err.msg, "schema.json:0:0: unknown type 'nope'");
	ASSERT_CONTAINS(err.details, "\"collection\":\"x\",\"field\":\"id\"");
	ASSERT(s == NULL);
	alyx__err_clear(&err);
}

/* ---- SQL ---- */

static void exec_ok(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK)
		fprintf(stderr, "SQL error: %s\nin: %s\n", msg, sql);
	ASSERT_EQ(rc, SQLITE_OK);
	sqlite3_free(msg);
}

static char *query_text(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	char *out = NULL;

	ASSERT_EQ(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		out = alyx__strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return out;
}

#define CHANGES_DDL \
	"CREATE TABLE _alyx_changes (id INTEGER PRIMARY KEY, collection " \
	"TEXT NOT NULL, operation TEXT NOT NULL, doc_id TEXT NOT NULL, " \
	"changed_fields TEXT, timestamp TEXT NOT NULL, processed INTEGER " \
	"NOT NULL DEFAULT 0)"

static sqlite3 *open_schema_db(const alyx__schema *s)
{
	sqlite3 *db = NULL;
	size_t i;

	ASSERT_EQ(sqlite3_open(":memory:", &db), SQLITE_OK);
	exec_ok(db, "PRAGMA foreign_keys = ON");
	exec_ok(db, CHANGES_DDL);
	for (i = 0; i < s->n_colls; i++) {
		char *t = alyx__sql_create_table(&s->colls[i], NULL);
		char *ix = alyx__sql_create_indexes(&s->colls[i]);
		char *tr = alyx__sql_triggers(&s->colls[i]);

		ASSERT(t && ix && tr);
		exec_ok(db, t);
		exec_ok(db, ix);
		exec_ok(db, tr);
		/* Triggers are re-creatable (DROP ... IF EXISTS first). */
		exec_ok(db, tr);
		alyx__free(t);
		alyx__free(ix);
		alyx__free(tr);
	}
	return db;
}

TEST(sql_create_table_text)
{
	alyx__schema *s = parse_blog();
	char *t = alyx__sql_create_table(alyx__schema_coll(s, "posts"), NULL);
	char *t2 = alyx__sql_create_table(alyx__schema_coll(s, "posts"),
					  "_alyx_new_posts");
	char *ix = alyx__sql_create_indexes(alyx__schema_coll(s, "posts"));

	ASSERT(strncmp(t, "CREATE TABLE \"posts\" (\n  \"id\" TEXT NOT NULL "
		       "PRIMARY KEY,\n", 48) == 0);
	ASSERT_CONTAINS(t, "\"slug\" TEXT NOT NULL UNIQUE,");
	ASSERT_CONTAINS(t, "\"excerpt\" TEXT,");
	ASSERT_CONTAINS(t, "\"author_id\" TEXT NOT NULL REFERENCES \"users\""
			"(\"id\") ON DELETE CASCADE,");
	ASSERT_CONTAINS(t, "\"published\" INTEGER NOT NULL DEFAULT 0,");
	ASSERT_CONTAINS(t, "\"view_count\" INTEGER NOT NULL DEFAULT 0,");
	ASSERT_CONTAINS(t, "\"tags\" TEXT,");
	ASSERT(!strstr(t, "AUTOINCREMENT"));
	ASSERT(strncmp(t2, "CREATE TABLE \"_alyx_new_posts\" (", 32) == 0);
	/* slug is unique: its `index: true` would copy SQLite's own. */
	ASSERT(!strstr(ix, "idx_posts_slug"));
	ASSERT_CONTAINS(ix, "CREATE INDEX IF NOT EXISTS "
			"\"idx_posts_published_date\" ON \"posts\" "
			"(\"published\" DESC, \"published_at\" DESC, "
			"\"id\");\n");
	alyx__free(t);
	alyx__free(t2);
	alyx__free(ix);
	alyx__schema_free(s);
}

TEST(sql_composite_indexes_end_with_the_key)
{
	alyx__schema *s = parse_ok(
		"collections:\n  d:\n    fields:\n"
		"      k: {type: string, primary: true}\n"
		"      a: {type: string}\n"
		"      b: {type: int, index: true}\n"
		"    indexes:\n"
		"      - {name: ix_ab, fields: [a, b], order: desc}\n"
		"      - {name: ix_u, fields: [a, b], unique: true}\n"
		"      - {name: ix_ka, fields: [k, a]}\n");
	char *ix = alyx__sql_create_indexes(&s->colls[0]);

	/* Ties break by the key: a not-unique composite index ends with
	 * it; unique ones, single-field ones and those that hold the key
	 * already keep exactly their fields. */
	ASSERT_CONTAINS(ix, "\"ix_ab\" ON \"d\" (\"a\" DESC, \"b\" DESC, "
			"\"k\");\n");
	ASSERT_CONTAINS(ix, "\"ix_u\" ON \"d\" (\"a\", \"b\");\n");
	ASSERT_CONTAINS(ix, "\"ix_ka\" ON \"d\" (\"k\", \"a\");\n");
	ASSERT_CONTAINS(ix, "\"idx_d_b\" ON \"d\" (\"b\");\n");
	alyx__free(ix);
	alyx__schema_free(s);
}

/* `index: true` is left out where the table has that index anyway: the
 * key's, a unique field's, or a composite index starting with the field
 * (unique or not, either order); a field second in a composite keeps
 * its own. */
TEST(sql_single_field_index_only_where_needed)
{
	alyx__schema *s = parse_ok(
		"collections:\n  d:\n    fields:\n"
		"      k: {type: string, primary: true, index: true}\n"
		"      u: {type: string, unique: true, index: true}\n"
		"      a: {type: string, index: true}\n"
		"      b: {type: int, index: true}\n"
		"      c: {type: int, index: true}\n"
		"      e: {type: int, index: true}\n"
		"    indexes:\n"
		"      - {name: ix_ab, fields: [a, b], order: desc}\n"
		"      - {name: ix_cu, fields: [c, u], unique: true}\n");
	char *ix = alyx__sql_create_indexes(&s->colls[0]);

	ASSERT(!strstr(ix, "idx_d_k"));
	ASSERT(!strstr(ix, "idx_d_u"));
	ASSERT(!strstr(ix, "idx_d_a"));
	ASSERT(!strstr(ix, "idx_d_c"));
	ASSERT_CONTAINS(ix, "\"idx_d_b\" ON \"d\" (\"b\");\n");
	ASSERT_CONTAINS(ix, "\"idx_d_e\" ON \"d\" (\"e\");\n");
	ASSERT_CONTAINS(ix, "\"ix_ab\" ON \"d\" (\"a\" DESC, \"b\" DESC, "
			"\"k\");\n");
	alyx__free(ix);
	alyx__schema_free(s);
}

TEST(sql_defaults_are_quoted_literals)
{
	alyx__schema *s = parse_ok(
		"collections:\n  d:\n    fields:\n"
		"      id: {type: int, primary: true}\n"
		"      s: {type: string, default: \"it's\"}\n"
		"      b: {type: bool, default: true}\n"
		"      f: {type: float, default: -2.5}\n"
		"      j: {type: json, default: {q: \"a'b\"}}\n"
		"      bl: {type: blob, default: AAEC}\n"
		"      ts: {type: timestamp, default: '2026-01-02'}\n"
		"      r: {type: int, unique: true, nullable: true, references: "
		"d.id, onDelete: set null}\n");
	sqlite3 *db = open_schema_db(s);
	char *t = alyx__sql_create_table(&s->colls[0], NULL), *v;

	ASSERT_CONTAINS(t, "DEFAULT 'it''s'");
	ASSERT_CONTAINS(t, "\"b\" INTEGER NOT NULL DEFAULT 1");
	ASSERT_CONTAINS(t, "DEFAULT -2.5");
	ASSERT_CONTAINS(t, "DEFAULT '{\"q\":\"a''b\"}'");
	ASSERT_CONTAINS(t, "DEFAULT X'000102'");
	ASSERT_CONTAINS(t, "DEFAULT '2026-01-02T00:00:00.000Z'");
	ASSERT_CONTAINS(t, "\"r\" INTEGER UNIQUE REFERENCES \"d\"(\"id\") ON "
			"DELETE SET NULL");
	exec_ok(db, "INSERT INTO d (id) VALUES (1)");
	v = query_text(db, "SELECT s || '|' || b || '|' || f || '|' || j || "
		       "'|' || hex(bl) || '|' || ts FROM d");
	ASSERT_STR_EQ(v, "it's|1|-2.5|{\"q\":\"a'b\"}|000102|"
		      "2026-01-02T00:00:00.000Z");
	alyx__free(v);
	alyx__free(t);
	sqlite3_close(db);
	alyx__schema_free(s);
}

TEST(sql_blog_executes_with_change_feed)
{
	alyx__schema *s = parse_blog();
	sqlite3 *db = open_schema_db(s);
	char *v;

	exec_ok(db, "INSERT INTO users (id, email, role, created_at, "
		"updated_at) VALUES ('u1', 'a@b.c', 'user', 't', 't')");
	exec_ok(db, "INSERT INTO posts (id, title, slug, content, author_id, "
		"created_at, updated_at) VALUES ('p1', 'T', 's', 'c', 'u1', "
		"'t', 't')");
	exec_ok(db, "INSERT INTO comments (id, post_id, author_id, content, "
		"created_at) VALUES ('c1', 'p1', 'u1', 'x', 't')");
	exec_ok(db, "UPDATE posts SET title = 'T2', excerpt = 'e' WHERE id = "
		"'p1'");
	exec_ok(db, "UPDATE posts SET excerpt = NULL WHERE id = 'p1'");
	exec_ok(db, "UPDATE posts SET title = 'T2' WHERE id = 'p1'");
	v = query_text(db, "SELECT group_concat(collection || ':' || operation "
		       "|| ':' || doc_id || ':' || ifnull(changed_fields, '-'), "
		       "' ') FROM _alyx_changes");
	ASSERT_STR_EQ(v, "users:INSERT:u1:- posts:INSERT:p1:- "
		      "comments:INSERT:c1:- "
		      "posts:UPDATE:p1:[\"title\",\"excerpt\"] "
		      "posts:UPDATE:p1:[\"excerpt\"] posts:UPDATE:p1:[]");
	alyx__free(v);
	v = query_text(db, "SELECT timestamp FROM _alyx_changes LIMIT 1");
	ASSERT_EQ(strlen(v), 24);
	ASSERT_EQ(v[10], 'T');
	ASSERT_EQ(v[23], 'Z');
	alyx__free(v);
	/* ON DELETE CASCADE through two levels, each delete in the feed. */
	exec_ok(db, "DELETE FROM users WHERE id = 'u1'");
	v = query_text(db, "SELECT group_concat(collection || ':' || doc_id, "
		       "' ') FROM _alyx_changes WHERE operation = 'DELETE'");
	ASSERT_CONTAINS(v, "users:u1");
	ASSERT_CONTAINS(v, "posts:p1");
	ASSERT_CONTAINS(v, "comments:c1");
	alyx__free(v);
	v = query_text(db, "SELECT count(*) FROM sqlite_schema WHERE type = "
		       "'trigger'");
	ASSERT_STR_EQ(v, "9");
	alyx__free(v);
	sqlite3_close(db);
	alyx__schema_free(s);
}

TEST(sql_restrict_blocks_delete)
{
	alyx__schema *s = parse_ok(
		"collections:\n  p:\n    fields: {id: {type: int, primary: "
		"true}}\n  c:\n    fields:\n      id: {type: int, primary: "
		"true}\n      p_id: {type: int, references: p.id}\n");
	sqlite3 *db = open_schema_db(s);

	exec_ok(db, "INSERT INTO p VALUES (1); INSERT INTO c VALUES (1, 1)");
	ASSERT(sqlite3_exec(db, "DELETE FROM p", NULL, NULL, NULL) ==
	       SQLITE_CONSTRAINT);
	sqlite3_close(db);
	alyx__schema_free(s);
}

TEST(sql_trigger_with_256_fields)
{
	alyx_buf b;
	alyx__schema *s;
	sqlite3 *db;
	char *v;
	int i;

	alyx__buf_init(&b, 0);
	alyx__buf_adds(&b, "collections:\n  w:\n    fields:\n"
		       "      id: {type: int, primary: true}\n");
	for (i = 1; i < 256; i++)
		alyx__buf_addf(&b, "      f%d: {type: int, nullable: true}\n",
			       i);
	s = parse_ok(b.data);
	alyx__buf_free(&b);
	db = open_schema_db(s);
	exec_ok(db, "INSERT INTO w (id) VALUES (1)");
	exec_ok(db, "UPDATE w SET f1 = 1, f150 = 2, f255 = 3");
	v = query_text(db, "SELECT changed_fields FROM _alyx_changes WHERE "
		       "operation = 'UPDATE'");
	ASSERT_STR_EQ(v, "[\"f1\",\"f150\",\"f255\"]");
	alyx__free(v);
	sqlite3_close(db);
	alyx__schema_free(s);
}

TEST_MAIN()
