/*
 * Unit tests of lib/store/migrate.c: migration files (rename_field,
 * drop_field, drop_collection, change_type, sql), history with checksums,
 * status, apply, rollback and create.  Every structural change is checked
 * to keep every row and value.
 */
#include "store-helpers.h"

/* Built twice: without STORE_FAULTS (the behaviour tests) and with it
 * (allocation-failure loops), so each program stays short. */
#pragma GCC diagnostic ignored "-Wunused-function"

#define NROWS 40

/* The schema every test starts from (all nine types). */
#define BASE_USERS                                                      \
	"collections:\n"                                                \
	"  users:\n"                                                    \
	"    fields:\n"                                                 \
	"      id: {type: uuid, primary: true, default: auto}\n"        \
	"      email: {type: string, unique: true}\n"

static const char *V1 =
	BASE_USERS
	"      name: {type: string, nullable: true, index: true}\n"
	"  posts:\n"
	"    fields:\n"
	"      id: {type: uuid, primary: true, default: auto}\n"
	"      title: {type: string, maxLength: 200, index: true}\n"
	"      body: {type: text, nullable: true}\n"
	"      views: {type: int, default: 0}\n"
	"      score: {type: float, nullable: true}\n"
	"      published: {type: bool, default: false}\n"
	"      created_at: {type: timestamp, default: now}\n"
	"      meta: {type: json, nullable: true}\n"
	"      data: {type: blob, nullable: true}\n"
	"      legacy: {type: string, nullable: true}\n"
	"      author_id: {type: uuid, references: users.id, "
	"onDelete: cascade}\n"
	"    indexes:\n"
	"      - name: posts_title_views\n"
	"        fields: [title, views]\n"
	"  logs:\n"
	"    fields:\n"
	"      id: {type: int, primary: true}\n"
	"      line: {type: text}\n";

typedef struct env {
	char *dir;
	char *mdir;
	sqlite3 *db;
} env;

static env setup(void)
{
	env e;
	alyx__schema *s = parse(V1);
	alyx__err err = {0};

	e.dir = tmp_dir();
	e.mdir = alyx__path_join(e.dir, "migrations");
	ASSERT_EQ(mkdir(e.mdir, 0755), 0);
	e.db = open_db(e.dir);
	ASSERT_EQ(alyx__store_apply_schema(e.db, NULL, s, NULL, 0, &err),
		  ALYX_OK);
	alyx__schema_free(s);
	exec_ok(e.db, "BEGIN");
	for (int i = 0; i < NROWS; i++) {
		char *sql = alyx__asprintf(
			"INSERT INTO users VALUES ('u%02d', 'u%d@x.io', %s);"
			"INSERT INTO posts VALUES ('p%02d', 'title %d', %s, "
			"%d, %s, %d, '2026-02-03T04:05:06.%03dZ', %s, %s, "
			"'old %d', 'u%02d');"
			"INSERT INTO logs VALUES (%d, 'line %d');",
			i, i, i % 3 ? "'name'" : "NULL", i, i,
			i % 4 ? "'body'" : "NULL", i * 7,
			i % 5 ? "2.5" : "NULL", i % 2, i,
			i % 2 ? "'{\"k\":[1,2]}'" : "NULL",
			i % 3 ? "x'00ff10'" : "NULL", i, i, i, i);

		exec_ok(e.db, sql);
		alyx__free(sql);
	}
	exec_ok(e.db, "COMMIT");
	return e;
}

static void teardown(env *e)
{
	alyx__conn_close(e->db);
	alyx__free(e->mdir);
	rm_tree(e->dir);
}

/* V1 with `from` replaced by `to` (first occurrence each time). */
static char *schema_edit(const char *base, const char *from, const char *to)
{
	const char *p = strstr(base, from);
	char *r;

	ASSERT(p != NULL);
	r = alyx__asprintf("%.*s%s%s", (int)(p - base), base, to,
			   p + strlen(from));
	ASSERT(r != NULL);
	return r;
}

static int migrate(env *e, const char *project_yaml, char **report,
		   alyx__err *err)
{
	alyx__schema *s = project_yaml ? parse(project_yaml) : NULL;
	alyx_buf b;
	int rc;

	alyx__buf_init(&b, 0);
	rc = alyx__migrate_apply(e->db, e->mdir, s, &b, err);
	if (rc != ALYX_OK)
		fprintf(stderr, "  migrate: %s %s\n", err->msg,
			err->details ? err->details : "");
	*report = alyx__buf_take(&b);
	alyx__schema_free(s);
	return rc;
}

static char *migrate_ok(env *e, const char *project_yaml)
{
	alyx__err err = {0};
	char *r = NULL;

	ASSERT_EQ(migrate(e, project_yaml, &r, &err), ALYX_OK);
	alyx__err_clear(&err);
	return r;
}

static char *status(env *e, const char *project_yaml)
{
	alyx__schema *s = project_yaml ? parse(project_yaml) : NULL;
	alyx__err err = {0};
	alyx_buf b;

	alyx__buf_init(&b, 0);
	ASSERT_EQ(alyx__migrate_status(e->db, e->mdir, s, &b, &err), ALYX_OK);
	alyx__schema_free(s);
	return alyx__buf_take(&b);
}

static char *rollback(env *e, int n, int want)
{
	alyx__err err = {0};
	alyx_buf b;
	int rc;

	alyx__buf_init(&b, 0);
	rc = alyx__migrate_rollback(e->db, e->mdir, n, &b, &err);
	if (rc != want)
		fprintf(stderr, "  rollback: %s\n", err.msg);
	ASSERT_EQ(rc, want);
	alyx__err_clear(&err);
	return alyx__buf_take(&b);
}

/* The rows of `cols` of `table`, in primary-key order. */
static char *rows(sqlite3 *db, const char *table, const char *cols)
{
	char *sql = alyx__asprintf("SELECT %s FROM %s ORDER BY 1", cols,
				   table);
	alyx_buf b;

	alyx__buf_init(&b, 0);
	dump_rows(db, sql, &b);
	alyx__free(sql);
	return alyx__buf_take(&b);
}

static void same_rows(sqlite3 *db, const char *table, const char *cols,
		      const char *want)
{
	char *got = rows(db, table, cols);

	ASSERT_STR_EQ(got, want);
	alyx__free(got);
}

#define POST_COLS "id, title, body, views, score, published, created_at, " \
		  "meta, data, author_id"

/* The applied schema equals the project schema: nothing left to do. */
static void schema_is(env *e, const char *yaml)
{
	alyx__schema *s = NULL, *want = parse(yaml);
	alyx__err err = {0};
	alyx__plan *p = NULL;

	ASSERT_EQ(alyx__store_load_schema(e->db, &s, &err), ALYX_OK);
	ASSERT_EQ(alyx__schema_diff(s, want, &p, &err), ALYX_OK);
	if (p->n_changes) {
		char *j = alyx__plan_to_json(p);

		fprintf(stderr, "  left over: %s\n", j);
		alyx__free(j);
	}
	ASSERT_EQ(p->n_changes, 0);
	alyx__plan_free(p);
	alyx__schema_free(s);
	alyx__schema_free(want);
}

#ifndef STORE_FAULTS

TEST(create_numbers_files_and_refuses_bad_names)
{
	env e = setup();
	alyx__err err = {0};
	alyx_buf b;
	char *r = NULL;

	alyx__buf_init(&b, 0);
	ASSERT_EQ(alyx__migrate_create(e.mdir, "Bad-Name", &b, &err),
		  ALYX_E_MISUSE);
	ASSERT_CONTAINS(err.msg, "bad migration name");
	ASSERT_EQ(alyx__migrate_create(e.mdir, "", &b, &err), ALYX_E_MISUSE);
	ASSERT_EQ(alyx__migrate_create(e.mdir, "9lives", &b, &err),
		  ALYX_E_MISUSE);
	ASSERT_EQ(alyx__migrate_create(e.mdir, "first_one", &b, &err),
		  ALYX_OK);
	ASSERT_CONTAINS(b.data, "001_first_one.yaml\",\"version\":1}");
	alyx__buf_reset(&b);
	write_text(e.mdir, "007_seven.yaml", "version: 7\nname: seven\n"
		   "operations: []\n");
	ASSERT_EQ(alyx__migrate_create(e.mdir, "next", &b, &err), ALYX_OK);
	ASSERT_CONTAINS(b.data, "008_next.yaml\",\"version\":8}");
	/* the template parses, but an untouched one is not applied */
	ASSERT_EQ(migrate(&e, V1, &r, &err), ALYX_E_MIGRATION);
	ASSERT_CONTAINS(err.msg, "001_first_one.yaml: no operations yet");
	ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM _alyx_migrations"), 0);
	alyx__free(r);
	r = NULL;
	alyx__buf_free(&b);
	alyx__err_clear(&err);
	teardown(&e);
}

TEST(rename_field_keeps_values_and_follows_indexes_and_triggers)
{
	env e = setup();
	char *before = rows(e.db, "posts", POST_COLS);
	char *v2 = schema_edit(V1, "      title: {", "      headline: {");
	char *v2b = schema_edit(v2, "fields: [title, views]",
				"fields: [headline, views]");
	char *r, *st, *cf;

	write_text(e.mdir, "002_rename_title.yaml",
		   "version: 2\n"
		   "name: rename_title\n"
		   "description: Rename title to headline\n"
		   "operations:\n"
		   "  - type: rename_field\n"
		   "    collection: posts\n"
		   "    from: title\n"
		   "    to: headline\n"
		   "  - type: sql\n"
		   "    up: |\n"
		   "      UPDATE posts SET headline = headline || '!' WHERE "
		   "views = 0;\n"
		   "    down: |\n"
		   "      UPDATE posts SET headline = substr(headline, 1, "
		   "length(headline) - 1) WHERE views = 0;\n");
	/* status: pending, and after it schema.yaml needs nothing unsafe */
	st = status(&e, v2b);
	ASSERT_CONTAINS(st, "\"pending\":[{\"version\":2,\"name\":"
			"\"rename_title\"");
	ASSERT_CONTAINS(st, "\"destructive\":false");
	alyx__free(st);
	r = migrate_ok(&e, v2b);
	ASSERT_CONTAINS(r, "\"applied\":[{\"version\":2");
	alyx__free(r);
	ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM posts WHERE headline = "
			"'title 0!'"), 1);
	exec_ok(e.db, "UPDATE posts SET headline = 'title 0' WHERE id='p00'");
	same_rows(e.db, "posts", "id, headline, body, views, score, "
		  "published, created_at, meta, data, author_id", before);
	/* title's own index is left out: posts_title_views starts with it
	 * (and with headline after the rename). */
	ASSERT(!has_object(e.db, "index", "idx_posts_headline"));
	ASSERT(!has_object(e.db, "index", "idx_posts_title"));
	ASSERT(has_object(e.db, "index", "posts_title_views"));
	cf = q_text(e.db, "SELECT sql FROM sqlite_master WHERE name = "
		    "'posts_title_views'");
	ASSERT_CONTAINS(cf, "\"headline\"");
	alyx__free(cf);
	cf = q_text(e.db, "SELECT changed_fields FROM _alyx_changes ORDER BY "
		    "id DESC LIMIT 1");
	ASSERT_STR_EQ(cf, "[\"headline\"]");
	alyx__free(cf);
	schema_is(&e, v2b);
	st = status(&e, v2b);
	ASSERT_CONTAINS(st, "\"pending\":[]");
	ASSERT_CONTAINS(st, "\"modified\":false");
	ASSERT_CONTAINS(st, "\"changes\":[]");
	alyx__free(st);
	/* rollback: the name comes back, the sql down runs */
	exec_ok(e.db, "UPDATE posts SET headline = 'title 0!' WHERE "
		"id='p00'");
	r = rollback(&e, 1, ALYX_OK);
	ASSERT_CONTAINS(r, "\"rolled_back\":[{\"version\":2");
	alyx__free(r);
	same_rows(e.db, "posts", POST_COLS, before);
	schema_is(&e, V1);
	ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM _alyx_migrations"), 0);
	alyx__free(before);
	alyx__free(v2);
	alyx__free(v2b);
	teardown(&e);
}

TEST(drop_field_keeps_rows_and_rollback_restores_an_empty_column)
{
	env e = setup();
	char *v2 = schema_edit(V1, "      legacy: {type: string, nullable: "
			       "true}\n", "");
	char *before = rows(e.db, "posts", POST_COLS);
	char *users = rows(e.db, "users", "*");
	char *r;

	write_text(e.mdir, "002_drop_legacy.yaml",
		   "version: 2\nname: drop_legacy\noperations:\n"
		   "  - {type: drop_field, collection: posts, field: legacy}\n");
	r = migrate_ok(&e, v2);
	alyx__free(r);
	ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM pragma_table_info('posts')"
			" WHERE name = 'legacy'"), 0);
	same_rows(e.db, "posts", POST_COLS, before);
	same_rows(e.db, "users", "*", users);
	/* the FK to users survived the rebuild and still cascades */
	exec_ok(e.db, "DELETE FROM users WHERE id = 'u05'");
	ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM posts"), NROWS - 1);
	schema_is(&e, v2);
	r = rollback(&e, 1, ALYX_OK);
	ASSERT_CONTAINS(r, "cannot come back");
	alyx__free(r);
	ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM posts WHERE legacy IS "
			"NULL"), NROWS - 1);
	schema_is(&e, V1);
	alyx__free(before);
	alyx__free(users);
	alyx__free(v2);
	teardown(&e);
}

TEST(change_type_converts_values_with_using_or_cast)
{
	env e = setup();
	char *v2 = schema_edit(V1, "      score: {type: float, nullable: "
			       "true}\n", "      score: {type: int, nullable: "
			       "true, min: 0}\n");
	char *v3 = schema_edit(v2, "      views: {type: int, default: 0}\n",
			       "      views: {type: string, default: \"0\"}\n");
	char *r;

	write_text(e.mdir, "002_score_int.yaml",
		   "version: 2\nname: score_int\noperations:\n"
		   "  - type: change_type\n    collection: posts\n"
		   "    field: score\n    to: int\n"
		   "    using: CAST(round(score * 2) AS INTEGER)\n"
		   "  - type: change_type\n    collection: posts\n"
		   "    field: views\n    to: string\n");
	r = migrate_ok(&e, v3);
	alyx__free(r);
	ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM posts"), NROWS);
	ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM posts WHERE score = 5 "
			"AND typeof(score) = 'integer'"), NROWS - NROWS / 5);
	ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM posts WHERE score IS "
			"NULL"), NROWS / 5);
	ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM posts WHERE typeof(views)"
			" = 'text' AND views = CAST(CAST(substr(id, 2) AS "
			"INTEGER) * 7 AS TEXT)"), NROWS);
	schema_is(&e, v3);
	/* rollback casts back */
	r = rollback(&e, 1, ALYX_OK);
	alyx__free(r);
	ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM posts WHERE typeof(views)"
			" = 'integer'"), NROWS);
	ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM posts WHERE typeof(score)"
			" = 'real' AND score = 5.0"), NROWS - NROWS / 5);
	schema_is(&e, V1);
	alyx__free(v2);
	alyx__free(v3);
	teardown(&e);
}

TEST(drop_collection_and_rollback_recreates_it_empty)
{
	env e = setup();
	char *v2 = schema_edit(V1, "  logs:\n    fields:\n      id: {type: "
			       "int, primary: true}\n      line: {type: "
			       "text}\n", "");
	char *posts = rows(e.db, "posts", POST_COLS);
	char *r;

	write_text(e.mdir, "002_no_logs.yaml",
		   "version: 2\nname: no_logs\noperations:\n"
		   "  - {type: drop_collection, collection: logs}\n");
	r = migrate_ok(&e, v2);
	alyx__free(r);
	ASSERT(!has_object(e.db, "table", "logs"));
	ASSERT(!has_object(e.db, "trigger", "logs_alyx_ins"));
	same_rows(e.db, "posts", POST_COLS, posts);
	schema_is(&e, v2);
	r = rollback(&e, 1, ALYX_OK);
	ASSERT_CONTAINS(r, "restored empty");
	alyx__free(r);
	ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM logs"), 0);
	ASSERT(has_object(e.db, "trigger", "logs_alyx_ins"));
	schema_is(&e, V1);
	alyx__free(posts);
	alyx__free(v2);
	teardown(&e);
}

/* The second operation fails after the first rebuilt a table: the whole
 * database is exactly as before, no history row. */
TEST(failing_migration_leaves_database_identical)
{
	env e = setup();
	alyx__err err = {0};
	char *before = dump(e.db), *after, *r = NULL;

	write_text(e.mdir, "002_half.yaml",
		   "version: 2\nname: half\noperations:\n"
		   "  - {type: drop_field, collection: posts, field: legacy}\n"
		   "  - type: rename_field\n    collection: users\n"
		   "    from: name\n    to: display_name\n"
		   "  - type: sql\n"
		   "    up: |\n"
		   "      UPDATE logs SET line = line\n"
		   "      - 0;\n"
		   "  - type: sql\n"
		   "    up: INSERT INTO users(id, email) VALUES ('dup', "
		   "'u1@x.io')\n"
		   "    down: DELETE FROM users WHERE id = 'dup'\n");
	ASSERT_EQ(migrate(&e, NULL, &r, &err), ALYX_E_MIGRATION);
	ASSERT_CONTAINS(err.msg, "002_half.yaml:13: operation 4 (sql)");
	ASSERT_CONTAINS(err.msg, "UNIQUE constraint failed");
	ASSERT_CONTAINS(err.details, "\"operation\":4");
	after = dump(e.db);
	ASSERT_STR_EQ(after, before);
	ASSERT_EQ(q_int(e.db, "PRAGMA foreign_keys"), 1);
	alyx__free(after);
	alyx__free(r);
	alyx__err_clear(&err);
	/* structural errors are reported the same way */
	write_text(e.mdir, "002_half.yaml",
		   "version: 2\nname: half\noperations:\n"
		   "  - {type: drop_field, collection: posts, field: legacy}\n"
		   "  - {type: drop_field, collection: posts, field: nope}\n");
	ASSERT_EQ(migrate(&e, NULL, &r, &err), ALYX_E_MIGRATION);
	ASSERT_CONTAINS(err.msg, "002_half.yaml:5: operation 2 (drop_field): "
			"no field 'posts.nope'");
	after = dump(e.db);
	ASSERT_STR_EQ(after, before);
	alyx__free(after);
	alyx__free(r);
	alyx__free(before);
	alyx__err_clear(&err);
	teardown(&e);
}

TEST(bad_files_are_reported_with_file_and_line)
{
	env e = setup();
	alyx__err err = {0};
	char *r = NULL, *before = dump(e.db), *after;

	write_text(e.mdir, "002_bad.yaml",
		   "version: 2\nname: bad\noperations:\n"
		   "  - type: rename_field\n    collection: posts\n"
		   "    form: title\n    to: x\n");
	ASSERT_EQ(migrate(&e, NULL, &r, &err), ALYX_E_MIGRATION);
	ASSERT_CONTAINS(err.msg, "002_bad.yaml:5:17: Unexpected key: form");
	ASSERT_CONTAINS(err.details, "\"line\":5");
	alyx__free(r);
	write_text(e.mdir, "002_bad.yaml",
		   "version: 2\nname: bad\noperations:\n"
		   "  - type: rename_column\n    collection: posts\n");
	ASSERT_EQ(migrate(&e, NULL, &r, &err), ALYX_E_MIGRATION);
	ASSERT_CONTAINS(err.msg, "002_bad.yaml:4: operation 1 "
			"(rename_column): unknown operation type");
	alyx__free(r);
	write_text(e.mdir, "002_bad.yaml",
		   "version: 2\nname: bad\noperations:\n"
		   "  - type: drop_field\n    collection: posts\n");
	ASSERT_EQ(migrate(&e, NULL, &r, &err), ALYX_E_MIGRATION);
	ASSERT_CONTAINS(err.msg, "missing key 'field'");
	alyx__free(r);
	write_text(e.mdir, "002_bad.yaml", "version: 3\noperations: []\n");
	ASSERT_EQ(migrate(&e, NULL, &r, &err), ALYX_E_MIGRATION);
	ASSERT_CONTAINS(err.msg, "does not match");
	alyx__free(r);
	write_text(e.mdir, "002_bad.yaml", "version: 2\noperations: [\n");
	ASSERT_EQ(migrate(&e, NULL, &r, &err), ALYX_E_MIGRATION);
	ASSERT_CONTAINS(err.msg, "002_bad.yaml:2:13: libyaml");
	alyx__free(r);
	write_text(e.mdir, "002_bad.yaml", "version: 2\noperations: []\n");
	write_text(e.mdir, "0002_dup.yaml", "version: 2\noperations: []\n");
	ASSERT_EQ(migrate(&e, NULL, &r, &err), ALYX_E_MIGRATION);
	ASSERT_CONTAINS(err.msg, "same version 2");
	alyx__free(r);
	after = dump(e.db);
	ASSERT_STR_EQ(after, before);
	alyx__free(after);
	alyx__free(before);
	alyx__err_clear(&err);
	teardown(&e);
}

TEST(edited_applied_file_is_a_checksum_error)
{
	env e = setup();
	alyx__err err = {0};
	char *r = NULL, *st;

	write_text(e.mdir, "002_a.yaml", "version: 2\noperations:\n"
		   "  - {type: sql, up: 'UPDATE posts SET views = views + 1', "
		   "down: 'UPDATE posts SET views = views - 1'}\n");
	r = migrate_ok(&e, NULL);
	alyx__free(r);
	ASSERT_EQ(q_int(e.db, "SELECT length(checksum) FROM "
			"_alyx_migrations"), 64);
	write_text(e.mdir, "002_a.yaml", "version: 2\noperations:\n"
		   "  - {type: sql, up: 'UPDATE posts SET views = views + 2', "
		   "down: 'UPDATE posts SET views = views - 2'}\n");
	write_text(e.mdir, "003_b.yaml", "version: 3\noperations: []\n");
	ASSERT_EQ(migrate(&e, NULL, &r, &err), ALYX_E_CHECKSUM);
	ASSERT_CONTAINS(err.msg, "002_a.yaml was edited");
	ASSERT_CONTAINS(err.details, "\"modified\":[{\"version\":2");
	alyx__free(r);
	/* nothing ran: 003 is still pending */
	ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM _alyx_migrations"), 1);
	st = status(&e, NULL);
	ASSERT_CONTAINS(st, "\"modified\":true");
	ASSERT_CONTAINS(st, "\"pending\":[{\"version\":3");
	alyx__free(st);
	alyx__err_clear(&err);
	teardown(&e);
}

TEST(rollback_order_irreversible_sql_and_counts)
{
	env e = setup();
	char *r;

	r = rollback(&e, 1, ALYX_E_NOTFOUND);
	alyx__free(r);
	r = rollback(&e, 0, ALYX_E_MISUSE);
	alyx__free(r);
	write_text(e.mdir, "001_seed.yaml", "version: 1\noperations:\n"
		   "  - type: sql\n    up: INSERT INTO logs VALUES (100, 'a')\n");
	write_text(e.mdir, "002_more.yaml", "version: 2\noperations:\n"
		   "  - type: sql\n    up: INSERT INTO logs VALUES (101, 'b')\n"
		   "    down: DELETE FROM logs WHERE id = 101\n");
	write_text(e.mdir, "010_most.yaml", "version: 10\noperations:\n"
		   "  - type: sql\n    up: INSERT INTO logs VALUES (102, 'c')\n"
		   "    down: DELETE FROM logs WHERE id = 102\n");
	r = migrate_ok(&e, NULL);
	ASSERT_CONTAINS(r, "{\"version\":1,");
	ASSERT_CONTAINS(r, "{\"version\":10,");
	alyx__free(r);
	ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM logs"), NROWS + 3);
	r = rollback(&e, 2, ALYX_OK);
	ASSERT_CONTAINS(r, "[{\"version\":10,\"name\":\"most\"");
	ASSERT_CONTAINS(r, "},{\"version\":2,");
	alyx__free(r);
	ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM logs"), NROWS + 1);
	/* 001 has an sql operation without `down`: refused, nothing changes */
	r = rollback(&e, 5, ALYX_E_MIGRATION);
	alyx__free(r);
	ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM _alyx_migrations"), 1);
	ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM logs"), NROWS + 1);
	/* pending again: apply re-runs them */
	r = migrate_ok(&e, NULL);
	alyx__free(r);
	ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM logs"), NROWS + 3);
	teardown(&e);
}

TEST(destructive_schema_change_without_file_is_refused)
{
	env e = setup();
	char *v2 = schema_edit(V1, "      legacy: {type: string, nullable: "
			       "true}\n", "");
	alyx__err err = {0};
	char *r = NULL, *before = dump(e.db), *after, *st;

	st = status(&e, v2);
	ASSERT_CONTAINS(st, "\"destructive\":true");
	alyx__free(st);
	/* a pending file that does not cover the change: refused before
	 * the file runs */
	write_text(e.mdir, "002_ok.yaml", "version: 2\noperations:\n"
		   "  - {type: sql, up: 'DELETE FROM logs', down: ''}\n");
	ASSERT_EQ(migrate(&e, v2, &r, &err), ALYX_E_MIGRATION);
	ASSERT_CONTAINS(err.details, "Dropped field 'posts.legacy'");
	ASSERT_CONTAINS(err.details, "{\"applied\":[],");
	ASSERT_CONTAINS(r, "{\"applied\":[],");
	ASSERT_CONTAINS(r, "\"schema\":null}");
	after = dump(e.db);
	ASSERT_STR_EQ(after, before);
	alyx__free(after);
	alyx__free(before);
	alyx__free(r);
	alyx__free(v2);
	alyx__err_clear(&err);
	teardown(&e);
}

/* Safe changes in schema.yaml apply after the files, in the same call. */
TEST(apply_runs_files_then_the_safe_schema_diff)
{
	env e = setup();
	char *v2 = schema_edit(V1, "      legacy: {type: string, nullable: "
			       "true}\n", "      extra: {type: int, nullable: "
			       "true}\n");
	char *r;

	write_text(e.mdir, "002_drop_legacy.yaml",
		   "version: 2\noperations:\n"
		   "  - {type: drop_field, collection: posts, field: legacy}\n");
	r = migrate_ok(&e, v2);
	ASSERT_CONTAINS(r, "\"schema\":{\"changes\":[{\"op\":\"add_field\"");
	alyx__free(r);
	schema_is(&e, v2);
	ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM posts WHERE extra IS "
			"NULL"), NROWS);
	alyx__free(v2);
	teardown(&e);
}

/* An empty database: schema.yaml is created first and the files run
 * against it, skipping structural operations it already reflects. */
TEST(fresh_database_creates_schema_then_runs_files)
{
	char *dir = tmp_dir();
	char *mdir = alyx__path_join(dir, "migrations");
	sqlite3 *db;
	char *v2 = schema_edit(V1, "      name: {", "      display_name: {");
	env e;
	char *r;

	ASSERT_EQ(mkdir(mdir, 0755), 0);
	db = open_db(dir);
	e = (env){dir, mdir, db};
	write_text(mdir, "002_rename_user_name.yaml",
		   "version: 2\n"
		   "name: rename_user_name\n"
		   "description: Rename 'name' field to 'display_name' in "
		   "users\n"
		   "\n"
		   "operations:\n"
		   "  - type: rename_field\n"
		   "    collection: users\n"
		   "    from: name\n"
		   "    to: display_name\n"
		   "\n"
		   "  - type: sql\n"
		   "    up: |\n"
		   "      UPDATE users SET display_name = 'Anonymous' WHERE "
		   "display_name IS NULL;\n"
		   "    down: |\n"
		   "      -- No rollback needed\n");
	r = migrate_ok(&e, v2);
	ASSERT_CONTAINS(r, "\"baseline\":true");
	ASSERT_CONTAINS(r, "skipped rename of users.name");
	alyx__free(r);
	schema_is(&e, v2);
	ASSERT(has_object(db, "table", "posts"));
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM _alyx_migrations"), 1);
	r = rollback(&e, 1, ALYX_OK);
	alyx__free(r);
	alyx__free(v2);
	teardown(&e);
}

/* Renaming a primary key that another collection references rebuilds
 * both tables; the reference follows and keeps cascading. */
TEST(rename_referenced_primary_key)
{
	env e = setup();
	char *v2a = schema_edit(V1, "      id: {type: uuid, primary: true, "
				"default: auto}\n      email",
				"      uid: {type: uuid, primary: true, "
				"default: auto}\n      email");
	char *v2 = schema_edit(v2a, "references: users.id",
			       "references: users.uid");
	char *posts = rows(e.db, "posts", POST_COLS), *r;

	write_text(e.mdir, "002_uid.yaml", "version: 2\noperations:\n"
		   "  - {type: rename_field, collection: users, from: id, "
		   "to: uid}\n");
	r = migrate_ok(&e, v2);
	alyx__free(r);
	schema_is(&e, v2);
	same_rows(e.db, "posts", POST_COLS, posts);
	ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM pragma_foreign_key_list("
			"'posts') WHERE \"table\" = 'users' AND \"to\" = "
			"'uid'"), 1);
	exec_ok(e.db, "DELETE FROM users WHERE uid = 'u07'");
	ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM posts"), NROWS - 1);
	r = rollback(&e, 1, ALYX_OK);
	alyx__free(r);
	schema_is(&e, V1);
	ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM posts p JOIN users u ON "
			"u.id = p.author_id"), NROWS - 1);
	alyx__free(posts);
	alyx__free(v2a);
	alyx__free(v2);
	teardown(&e);
}

/* sql-only migrations run with foreign keys on (ON DELETE actions fire);
 * migrations that change tables run with them off and are checked at the
 * end, so a delete that would orphan rows is refused. */
TEST(foreign_keys_during_migrations)
{
	env e = setup();
	alyx__err err = {0};
	char *r = NULL, *before;

	write_text(e.mdir, "002_del.yaml", "version: 2\noperations:\n"
		   "  - {type: sql, up: \"DELETE FROM users WHERE id = 'u01'\","
		   " down: 'SELECT 1'}\n");
	r = migrate_ok(&e, NULL);
	alyx__free(r);
	ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM posts"), NROWS - 1);
	before = dump(e.db);
	write_text(e.mdir, "003_del.yaml", "version: 3\noperations:\n"
		   "  - {type: drop_field, collection: posts, field: legacy}\n"
		   "  - {type: sql, up: \"DELETE FROM users WHERE id = 'u02'\","
		   " down: 'SELECT 1'}\n");
	ASSERT_EQ(migrate(&e, NULL, &r, &err), ALYX_E_MIGRATION);
	ASSERT_CONTAINS(err.msg, "003_del.yaml: the change leaves 1 row(s)");
	ASSERT_CONTAINS(err.details, "\"table\":\"posts\"");
	alyx__free(r);
	r = dump(e.db);
	ASSERT_STR_EQ(r, before);
	ASSERT_EQ(q_int(e.db, "PRAGMA foreign_keys"), 1);
	alyx__free(r);
	alyx__free(before);
	alyx__err_clear(&err);
	teardown(&e);
}

/* status never writes: it works on a read-only connection, also of a
 * database nothing was applied to. */
TEST(status_on_a_read_only_connection)
{
	env e = setup();
	char *path = alyx__path_join(e.dir, "data.db");
	char *empty = alyx__path_join(e.dir, "empty.db");
	alyx__err err = {0};
	sqlite3 *ro = NULL;
	alyx_buf b;

	write_text(e.mdir, "002_x.yaml", "version: 2\noperations: []\n");
	alyx__buf_init(&b, 0);
	ASSERT_EQ(sqlite3_open_v2(path, &ro, SQLITE_OPEN_READONLY, NULL),
		  SQLITE_OK);
	exec_ok(ro, "PRAGMA query_only = 1");
	ASSERT_EQ(alyx__migrate_status(ro, e.mdir, NULL, &b, &err), ALYX_OK);
	ASSERT_CONTAINS(b.data, "\"pending\":[{\"version\":2");
	sqlite3_close(ro);
	ro = NULL;
	ASSERT_EQ(sqlite3_open_v2(empty, &ro, SQLITE_OPEN_READWRITE |
				  SQLITE_OPEN_CREATE, NULL), SQLITE_OK);
	exec_ok(ro, "PRAGMA query_only = 1");
	alyx__buf_reset(&b);
	ASSERT_EQ(alyx__migrate_status(ro, e.mdir, NULL, &b, &err), ALYX_OK);
	ASSERT_CONTAINS(b.data, "{\"applied\":[],\"pending\":[{");
	ASSERT_EQ(q_int(ro, "SELECT count(*) FROM sqlite_master"), 0);
	sqlite3_close(ro);
	alyx__buf_free(&b);
	alyx__free(path);
	alyx__free(empty);
	teardown(&e);
}

/* Another writer holds the lock: apply waits busy_timeout, then fails
 * cleanly with nothing changed; once the lock is gone it succeeds. */
TEST(apply_while_another_connection_writes)
{
	env e = setup();
	char *path = alyx__path_join(e.dir, "data.db");
	alyx__err err = {0};
	sqlite3 *other = NULL;
	char *r = NULL, *before, *after;

	write_text(e.mdir, "002_a.yaml", "version: 2\noperations:\n"
		   "  - {type: drop_field, collection: posts, field: legacy}\n");
	ASSERT_EQ(sqlite3_open_v2(path, &other, SQLITE_OPEN_READWRITE, NULL),
		  SQLITE_OK);
	exec_ok(other, "BEGIN IMMEDIATE; INSERT INTO logs VALUES (999, 'x')");
	before = dump(e.db);
	sqlite3_busy_timeout(e.db, 200);
	ASSERT_EQ(migrate(&e, NULL, &r, &err), ALYX_E_BUSY);
	alyx__free(r);
	after = dump(e.db);
	ASSERT_STR_EQ(after, before);
	ASSERT_EQ(q_int(e.db, "PRAGMA foreign_keys"), 1);
	exec_ok(other, "COMMIT");
	sqlite3_close(other);
	r = migrate_ok(&e, NULL);
	ASSERT_CONTAINS(r, "{\"version\":2,");
	ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM logs"), NROWS + 1);
	alyx__free(r);
	alyx__free(after);
	alyx__free(before);
	alyx__free(path);
	alyx__err_clear(&err);
	teardown(&e);
}

/* A view that a change would break refuses the change. */
TEST(broken_view_refuses_the_migration)
{
	env e = setup();
	alyx__err err = {0};
	char *r = NULL, *before, *after;

	exec_ok(e.db, "CREATE VIEW old_posts AS SELECT id, legacy FROM posts");
	write_text(e.mdir, "002_a.yaml", "version: 2\noperations:\n"
		   "  - {type: drop_field, collection: posts, field: legacy}\n");
	before = dump(e.db);
	ASSERT_EQ(migrate(&e, NULL, &r, &err), ALYX_E_MIGRATION);
	ASSERT_CONTAINS(err.msg, "view 'old_posts' no longer works");
	alyx__free(r);
	after = dump(e.db);
	ASSERT_STR_EQ(after, before);
	alyx__free(after);
	exec_ok(e.db, "DROP VIEW old_posts");
	r = migrate_ok(&e, NULL);
	alyx__free(r);
	alyx__free(before);
	alyx__err_clear(&err);
	teardown(&e);
}

/* Dropping a field drops the composite indexes that use it. */
TEST(drop_field_in_a_composite_index)
{
	env e = setup();
	char *v2a = schema_edit(V1, "      views: {type: int, default: 0}\n",
				"");
	char *v2 = schema_edit(v2a, "    indexes:\n      - name: "
			       "posts_title_views\n        fields: [title, "
			       "views]\n", "");
	char *r;

	write_text(e.mdir, "002_a.yaml", "version: 2\noperations:\n"
		   "  - {type: drop_field, collection: posts, field: views}\n");
	r = migrate_ok(&e, v2);
	ASSERT_CONTAINS(r, "index posts_title_views dropped with posts.views");
	alyx__free(r);
	ASSERT(!has_object(e.db, "index", "posts_title_views"));
	ASSERT(has_object(e.db, "index", "idx_posts_title"));
	ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM posts"), NROWS);
	schema_is(&e, v2);
	r = rollback(&e, 1, ALYX_OK);
	alyx__free(r);
	ASSERT(has_object(e.db, "index", "posts_title_views"));
	ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM posts WHERE views = 0"),
		  NROWS);
	schema_is(&e, V1);
	alyx__free(v2a);
	alyx__free(v2);
	teardown(&e);
}

#else /* STORE_FAULTS: the slow fault-injection tests */

/* Every allocation of a migration run fails in turn: the migration is
 * all or nothing — a failure leaves the database exactly as before, or,
 * when only the report after the commit failed, the migration complete.  (A migration file is one transaction;
 * the schema.yaml step after it is another, tested in test-ddl.c.) */
#define MIX_FILE                                                        \
	"version: 2\noperations:\n"                                     \
	"  - {type: rename_field, collection: users, from: name, "      \
	"to: display_name}\n"                                           \
	"  - {type: drop_field, collection: posts, field: legacy}\n"    \
	"  - {type: sql, up: 'UPDATE logs SET line = upper(line)', "    \
	"down: 'UPDATE logs SET line = lower(line)'}\n"

static void check_mix_done(env *e, const char *yaml)
{
	schema_is(e, yaml);
	ASSERT_EQ(q_int(e->db, "SELECT count(*) FROM logs WHERE line LIKE "
			"'LINE %'"), NROWS);
	ASSERT_EQ(q_int(e->db, "SELECT count(*) FROM users WHERE "
			"display_name = 'name'"), NROWS - (NROWS + 2) / 3);
	ASSERT_EQ(q_int(e->db, "SELECT count(*) FROM posts"), NROWS);
}

#if STORE_FAULTS == 1
TEST(allocation_failures_change_nothing)
{
	env e = setup();
	char *v2y = schema_edit(V1, "      name: {", "      display_name: {");
	char *v2z = schema_edit(v2y, "      legacy: {type: string, nullable: "
				"true}\n", "");
	alyx__schema *v2 = parse(v2z);
	char *before, *after;
	alyx__err err = {0};
	alyx_buf b;
	long n, failed = 0;

	write_text(e.mdir, "002_mix.yaml", MIX_FILE);
	before = dump(e.db);
	alyx__buf_init(&b, 0);
	for (n = 1; n < 100000; n++) {
		void *probe;
		int rc;

		alyx__buf_reset(&b);
		alyx__fail_alloc_after(n);
		rc = alyx__migrate_apply(e.db, e.mdir, NULL, &b, &err);
		probe = alyx__malloc(1);	/* NULL: the failure never hit */
		alyx__fail_alloc_after(0);
		alyx__free(probe);
		ASSERT_EQ(sqlite3_get_autocommit(e.db), 1);
		if (rc == ALYX_OK) {
			check_mix_done(&e, v2z);
			if (!probe)
				break;
			/* start over from a fresh database */
			alyx__free(before);
			teardown(&e);
			e = setup();
			write_text(e.mdir, "002_mix.yaml", MIX_FILE);
			before = dump(e.db);
			continue;
		}
		failed++;
		after = dump(e.db);
		alyx__err_clear(&err);
		if (strcmp(after, before) != 0) {
			/* only the report after the commit failed: the
			 * migration must then be complete */
			check_mix_done(&e, v2z);
			alyx__free(after);
			alyx__free(before);
			teardown(&e);
			e = setup();
			write_text(e.mdir, "002_mix.yaml", MIX_FILE);
			before = dump(e.db);
			continue;
		}
		alyx__free(after);
	}
	ASSERT(failed > 100);
	alyx__buf_free(&b);
	alyx__schema_free(v2);
	alyx__free(before);
	alyx__free(v2y);
	alyx__free(v2z);
	teardown(&e);
}


#endif

#if STORE_FAULTS == 2
/* The same for rollback: all or nothing under every allocation failure. */
TEST(allocation_failures_in_rollback_change_nothing)
{
	env e = setup();
	char *before, *after, *r;
	alyx__err err = {0};
	alyx_buf b;
	long n, failed = 0;

	write_text(e.mdir, "002_mix.yaml", MIX_FILE);
	r = migrate_ok(&e, NULL);
	alyx__free(r);
	before = dump(e.db);
	alyx__buf_init(&b, 0);
	for (n = 1; n < 100000; n++) {
		void *probe;
		int rc;

		alyx__buf_reset(&b);
		alyx__fail_alloc_after(n);
		rc = alyx__migrate_rollback(e.db, e.mdir, 1, &b, &err);
		probe = alyx__malloc(1);	/* NULL: the failure never hit */
		alyx__fail_alloc_after(0);
		alyx__free(probe);
		alyx__err_clear(&err);
		ASSERT_EQ(sqlite3_get_autocommit(e.db), 1);
		after = dump(e.db);
		if (rc != ALYX_OK && strcmp(after, before) == 0) {
			failed++;
			alyx__free(after);
			continue;
		}
		alyx__free(after);
		/* rolled back: complete */
		schema_is(&e, V1);
		ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM logs WHERE line "
				"LIKE 'line %'"), NROWS);
		ASSERT_EQ(q_int(e.db, "SELECT count(*) FROM _alyx_migrations"),
			  0);
		if (rc == ALYX_OK && !probe)
			break;
		r = migrate_ok(&e, NULL);
		alyx__free(r);
		alyx__free(before);
		before = dump(e.db);
	}
	ASSERT(failed > 50);
	alyx__buf_free(&b);
	alyx__free(before);
	teardown(&e);
}

#endif

#endif

TEST_MAIN()
