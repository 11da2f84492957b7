/* Unit tests of alyx__schema_diff: which changes are safe, which are
 * destructive, which need a table rebuild, and the plan's JSON. */
#include <stdio.h>

#include "harness.h"
#include "schema/schema.h"

static alyx__schema *parse(const char *yaml)
{
	alyx__err err = {0};
	alyx__schema *s = NULL;
	int rc = alyx__schema_parse(yaml, strlen(yaml), NULL, &s, &err);

	if (rc != ALYX_OK)
		fprintf(stderr, "parse: %s\n", err.msg);
	ASSERT_EQ(rc, ALYX_OK);
	return s;
}

/* The plan from a one-collection schema with the given extra field lines
 * (old) to another (new). */
#define BASE "collections:\n  posts:\n    fields:\n" \
	     "      id: {type: uuid, primary: true, default: auto}\n"

static alyx__plan *diff(const char *old_yaml, const char *new_yaml)
{
	alyx__schema *o = old_yaml ? parse(old_yaml) : NULL;
	alyx__schema *n = parse(new_yaml);
	alyx__plan *p = NULL;
	alyx__err err = {0};

	ASSERT_EQ(alyx__schema_diff(o, n, &p, &err), ALYX_OK);
	alyx__schema_free(o);
	alyx__schema_free(n);
	return p;
}

/* Asserts the plan holds exactly one change and that it matches. */
static void expect_one(const char *old_fields, const char *new_fields,
		       alyx__change_op op, bool safe, bool rebuild,
		       const char *desc)
{
	char *o = alyx__asprintf(BASE "%s", old_fields);
	char *n = alyx__asprintf(BASE "%s", new_fields);
	alyx__plan *p = diff(o, n);

	if (p->n_changes != 1) {
		char *j = alyx__plan_to_json(p);

		fprintf(stderr, "plan: %s\n", j);
		alyx__free(j);
	}
	ASSERT_EQ(p->n_changes, 1);
	ASSERT_STR_EQ(alyx__change_op_name(p->changes[0].op),
		      alyx__change_op_name(op));
	ASSERT_EQ(p->changes[0].safe, safe);
	ASSERT_EQ(p->destructive, !safe);
	ASSERT_EQ(p->changes[0].needs_rebuild, rebuild);
	ASSERT_STR_EQ(p->changes[0].collection, "posts");
	ASSERT_CONTAINS(p->changes[0].description, desc);
	alyx__plan_free(p);
	alyx__free(o);
	alyx__free(n);
}

TEST(from_empty_database)
{
	alyx__plan *p = diff(NULL, BASE "  users:\n    fields: {id: {type: "
				   "int, primary: true}}\n");

	ASSERT_EQ(p->n_changes, 2);
	ASSERT_EQ(p->changes[0].op, ALYX_CH_ADD_COLLECTION);
	ASSERT_STR_EQ(p->changes[1].description, "+ Added collection 'users'");
	ASSERT(!p->destructive);
	alyx__plan_free(p);
}

TEST(identical_schemas_have_no_changes)
{
	alyx__plan *p = diff(BASE "      t: {type: string, maxLength: 3}\n",
			     BASE "      t: {type: string, validate: "
				  "{maxLength: 3}}\n");
	char *j = alyx__plan_to_json(p);

	ASSERT_EQ(p->n_changes, 0);
	ASSERT_STR_EQ(j, "{\"changes\":[],\"destructive\":false}");
	alyx__free(j);
	alyx__plan_free(p);
}

TEST(add_fields)
{
	expect_one("", "      view_count: {type: int, default: 0}\n",
		   ALYX_CH_ADD_FIELD, true, false,
		   "+ Added field 'posts.view_count'");
	expect_one("", "      note: {type: text, nullable: true}\n",
		   ALYX_CH_ADD_FIELD, true, false, "'posts.note'");
	/* A NOT NULL now/auto default is computed per row: rebuild. */
	expect_one("", "      at: {type: timestamp, default: now}\n",
		   ALYX_CH_ADD_FIELD, true, true, "'posts.at'");
	expect_one("", "      title: {type: string}\n", ALYX_CH_ADD_FIELD,
		   false, true, "required field 'posts.title' without a "
		   "default");
	expect_one("", "      code: {type: string, unique: true, nullable: "
		   "true}\n", ALYX_CH_ADD_FIELD, true, true, "'posts.code'");
	expect_one("", "      code: {type: string, unique: true, default: "
		   "x}\n", ALYX_CH_ADD_FIELD, false, true, "unique field");
}

TEST(add_field_with_index)
{
	alyx__plan *p = diff(BASE, BASE "      slug: {type: string, "
				      "nullable: true, index: true}\n");

	ASSERT_EQ(p->n_changes, 2);
	ASSERT_EQ(p->changes[1].op, ALYX_CH_ADD_INDEX);
	ASSERT_STR_EQ(p->changes[1].field, "idx_posts_slug");
	ASSERT(!p->destructive);
	alyx__plan_free(p);
}

/* The plan names the field indexes the SQL creates and drops: none for a
 * unique field's `index: true`; a composite index starting with a field
 * replaces that field's own index, and dropping it brings it back. */
TEST(field_index_follows_the_redundancy_rule)
{
	alyx__plan *p = diff(BASE, BASE "      code: {type: string, "
				      "nullable: true, unique: true, "
				      "index: true}\n");

	ASSERT_EQ(p->n_changes, 1);
	ASSERT_EQ(p->changes[0].op, ALYX_CH_ADD_FIELD);
	alyx__plan_free(p);
#define TF "      t: {type: string, index: true}\n" \
	   "      v: {type: int, default: 0}\n"
#define TV "    indexes:\n      - {name: posts_tv, fields: [t, v]}\n"
	p = diff(BASE TF, BASE TF TV);
	ASSERT_EQ(p->n_changes, 2);
	ASSERT_EQ(p->changes[0].op, ALYX_CH_DROP_INDEX);
	ASSERT_STR_EQ(p->changes[0].field, "idx_posts_t");
	ASSERT_EQ(p->changes[1].op, ALYX_CH_ADD_INDEX);
	alyx__plan_free(p);
	p = diff(BASE TF TV, BASE TF);
	ASSERT_EQ(p->n_changes, 2);
	ASSERT_EQ(p->changes[0].op, ALYX_CH_ADD_INDEX);
	ASSERT_STR_EQ(p->changes[0].field, "idx_posts_t");
	ASSERT_EQ(p->changes[1].op, ALYX_CH_DROP_INDEX);
	alyx__plan_free(p);
#undef TF
#undef TV
}

TEST(drops_are_destructive)
{
	alyx__plan *p;

	expect_one("      t: {type: string}\n", "", ALYX_CH_DROP_FIELD, false,
		   false, "- Dropped field 'posts.t'");
	expect_one("      t: {type: string, index: true}\n", "",
		   ALYX_CH_DROP_FIELD, false, true, "'posts.t'");
	p = diff(BASE "  old:\n    fields: {id: {type: int, primary: true}}\n",
		 BASE);
	ASSERT_EQ(p->n_changes, 1);
	ASSERT_EQ(p->changes[0].op, ALYX_CH_DROP_COLLECTION);
	ASSERT_STR_EQ(p->changes[0].description, "- Dropped collection 'old'");
	ASSERT(p->destructive);
	alyx__plan_free(p);
}

TEST(rename_is_drop_plus_add)
{
	alyx__plan *p = diff(BASE "      name: {type: string, nullable: true}\n",
			     BASE "      display_name: {type: string, "
				  "nullable: true}\n");

	ASSERT_EQ(p->n_changes, 2);
	ASSERT_EQ(p->changes[0].op, ALYX_CH_DROP_FIELD);
	ASSERT_EQ(p->changes[1].op, ALYX_CH_ADD_FIELD);
	ASSERT(p->destructive);
	alyx__plan_free(p);
}

TEST(type_change)
{
	expect_one("      n: {type: int}\n", "      n: {type: string}\n",
		   ALYX_CH_CHANGE_TYPE, false, true,
		   "! Changed type of 'posts.n' from int to string");
}

TEST(nullability_and_uniqueness)
{
	expect_one("      n: {type: int}\n",
		   "      n: {type: int, nullable: true}\n", ALYX_CH_LOOSEN, true,
		   true, "now nullable");
	expect_one("      n: {type: int, nullable: true}\n",
		   "      n: {type: int}\n", ALYX_CH_TIGHTEN, false, true,
		   "now NOT NULL");
	expect_one("      n: {type: int}\n", "      n: {type: int, unique: "
		   "true}\n", ALYX_CH_TIGHTEN, false, true, "now unique");
	expect_one("      n: {type: int, unique: true}\n",
		   "      n: {type: int}\n", ALYX_CH_LOOSEN, true, true,
		   "no longer unique");
}

TEST(length_and_range_limits)
{
	expect_one("      t: {type: string, maxLength: 100}\n",
		   "      t: {type: string, maxLength: 200}\n", ALYX_CH_LOOSEN,
		   true, false, "maxLength widened");
	expect_one("      t: {type: string, maxLength: 200}\n",
		   "      t: {type: string, maxLength: 100}\n", ALYX_CH_TIGHTEN,
		   false, false, "maxLength narrowed");
	expect_one("      t: {type: string}\n",
		   "      t: {type: string, minLength: 1}\n", ALYX_CH_TIGHTEN,
		   false, false, "minLength added");
	expect_one("      t: {type: string, minLength: 1}\n",
		   "      t: {type: string}\n", ALYX_CH_LOOSEN, true, false,
		   "minLength removed");
	expect_one("      n: {type: float, min: 0}\n",
		   "      n: {type: float, min: -1}\n", ALYX_CH_LOOSEN, true,
		   false, "min widened");
	expect_one("      n: {type: float, max: 10}\n",
		   "      n: {type: float, max: 5}\n", ALYX_CH_TIGHTEN, false,
		   false, "max narrowed");
}

TEST(pattern_format_enum)
{
	expect_one("      t: {type: string}\n",
		   "      t: {type: string, pattern: '^a'}\n", ALYX_CH_TIGHTEN,
		   false, false, "pattern added");
	expect_one("      t: {type: string, pattern: '^a'}\n",
		   "      t: {type: string}\n", ALYX_CH_LOOSEN, true, false,
		   "pattern removed");
	expect_one("      t: {type: string, format: email}\n",
		   "      t: {type: string}\n", ALYX_CH_LOOSEN, true, false,
		   "format removed");
	expect_one("      t: {type: string, format: email}\n",
		   "      t: {type: string, format: url}\n", ALYX_CH_TIGHTEN,
		   false, false, "format changed");
	expect_one("      t: {type: string, enum: [a, b]}\n",
		   "      t: {type: string, enum: [b, a, c]}\n", ALYX_CH_LOOSEN,
		   true, false, "enum values added");
	expect_one("      t: {type: string, enum: [a, b]}\n",
		   "      t: {type: string, enum: [a]}\n", ALYX_CH_TIGHTEN,
		   false, false, "enum values removed");
	expect_one("      t: {type: string}\n",
		   "      t: {type: string, enum: [a]}\n", ALYX_CH_TIGHTEN,
		   false, false, "enum added");
	expect_one("      t: {type: string, enum: [a]}\n",
		   "      t: {type: string}\n", ALYX_CH_LOOSEN, true, false,
		   "enum removed");
}

TEST(references)
{
	expect_one("      p: {type: uuid, nullable: true}\n",
		   "      p: {type: uuid, nullable: true, references: "
		   "posts.id}\n", ALYX_CH_TIGHTEN, false, true,
		   "now references posts.id");
	expect_one("      p: {type: uuid, references: posts.id}\n",
		   "      p: {type: uuid}\n", ALYX_CH_LOOSEN, true, true,
		   "reference removed");
	expect_one("      p: {type: uuid, references: posts.id}\n",
		   "      p: {type: uuid, references: posts.id, onDelete: "
		   "cascade}\n", ALYX_CH_META, true, true, "onDelete");
}

TEST(metadata_changes_are_safe)
{
	expect_one("      n: {type: int, default: 0}\n",
		   "      n: {type: int, default: 1}\n", ALYX_CH_META, true,
		   true, "default of 'posts.n' from 0 to 1");
	expect_one("      n: {type: timestamp}\n",
		   "      n: {type: timestamp, default: now}\n", ALYX_CH_META,
		   true, false, "from none to now");
	expect_one("      n: {type: timestamp}\n",
		   "      n: {type: timestamp, onUpdate: now}\n", ALYX_CH_META,
		   true, false, "Added onUpdate");
	expect_one("      n: {type: int}\n",
		   "      n: {type: int, internal: true}\n", ALYX_CH_META, true,
		   false, "is now internal");
	expect_one("    rules: {read: 'true'}\n",
		   "    rules: {read: 'false', create: 'true'}\n", ALYX_CH_RULES,
		   true, false, "Changed rules of 'posts' (create, read)");
}

TEST(indexes)
{
	expect_one("      n: {type: int}\n", "      n: {type: int, index: "
		   "true}\n", ALYX_CH_ADD_INDEX, true, false,
		   "+ Added index 'idx_posts_n'");
	expect_one("      n: {type: int, index: true}\n",
		   "      n: {type: int}\n", ALYX_CH_DROP_INDEX, true, false,
		   "- Dropped index 'idx_posts_n'");
	expect_one("      n: {type: int}\n",
		   "      n: {type: int}\n    indexes: [{name: i, fields: "
		   "[n, id]}]\n", ALYX_CH_ADD_INDEX, true, false,
		   "+ Added index 'i' on 'posts'");
	expect_one("      n: {type: int}\n    indexes: [{name: i, fields: "
		   "[n]}]\n", "      n: {type: int}\n", ALYX_CH_DROP_INDEX,
		   true, false, "- Dropped index 'i'");
	expect_one("      n: {type: int}\n",
		   "      n: {type: int}\n    indexes: [{name: i, fields: "
		   "[n], unique: true}]\n", ALYX_CH_ADD_INDEX, false, false,
		   "unique index 'i'");
}

TEST(redefined_index_is_drop_and_add)
{
	alyx__plan *p = diff(BASE "      n: {type: int}\n    indexes: [{name: "
				  "i, fields: [n]}]\n",
			     BASE "      n: {type: int}\n    indexes: [{name: "
				  "i, fields: [n], order: desc}]\n");

	ASSERT_EQ(p->n_changes, 2);
	ASSERT_EQ(p->changes[0].op, ALYX_CH_DROP_INDEX);
	ASSERT_EQ(p->changes[1].op, ALYX_CH_ADD_INDEX);
	ASSERT(!p->destructive);
	alyx__plan_free(p);
}

TEST(plan_json)
{
	alyx__plan *p = diff(BASE, BASE "      view_count: {type: int, "
				      "default: 0}\n      t: {type: text}\n");
	char *j = alyx__plan_to_json(p);

	ASSERT_STR_EQ(j, "{\"changes\":[{\"op\":\"add_field\",\"collection\":"
		      "\"posts\",\"field\":\"view_count\",\"safe\":true,"
		      "\"needs_rebuild\":false,\"description\":\"+ Added field "
		      "'posts.view_count'\"},{\"op\":\"add_field\","
		      "\"collection\":\"posts\",\"field\":\"t\",\"safe\":false,"
		      "\"needs_rebuild\":true,\"description\":\"! Added "
		      "required field 'posts.t' without a default (existing "
		      "rows have no value)\"}],\"destructive\":true}");
	alyx__free(j);
	alyx__plan_free(p);
	ASSERT_STR_EQ(alyx__change_op_name((alyx__change_op)77), "unknown");
}

TEST_MAIN()
