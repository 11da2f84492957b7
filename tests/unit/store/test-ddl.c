/*
 * Unit tests of lib/store/ddl.c: internal tables, applying schema plans
 * (CREATE, ADD COLUMN, table rebuilds), destructive refusal, atomicity,
 * and the change feed written by the generated triggers — also for writes
 * from a second connection and from the sqlite3 shell.
 */
#include "store-helpers.h"

/* Built twice: without STORE_FAULTS (the behaviour tests) and with it
 * (the allocation-failure loop), so each program stays short. */
#pragma GCC diagnostic ignored "-Wunused-function"

#define NROWS 60

#define USERS                                                           \
	"collections:\n"                                                \
	"  users:\n"                                                    \
	"    fields:\n"                                                 \
	"      id: {type: uuid, primary: true, default: auto}\n"        \
	"      email: {type: string, unique: true}\n"                   \
	"      name: {type: string, nullable: true, index: true}\n"

#define POSTS_HEAD                                                      \
	"  posts:\n"                                                    \
	"    fields:\n"                                                 \
	"      id: {type: uuid, primary: true, default: auto}\n"        \
	"      title: {type: string, maxLength: 200}\n"                 \
	"      body: {type: text, nullable: true}\n"                    \
	"      views: {type: int, default: 0}\n"                        \
	"      score: {type: float, nullable: true}\n"                  \
	"      published: {type: bool, default: false}\n"              \
	"      created_at: {type: timestamp, default: now}\n"           \
	"      meta: {type: json, nullable: true}\n"                    \
	"      data: {type: blob, nullable: true}\n"                    \
	"      author_id: {type: uuid, references: users.id, "          \
	"onDelete: cascade, index: true}\n"

#define POSTS_INDEXES                                                   \
	"    indexes:\n"                                                \
	"      - name: posts_by_author_time\n"                          \
	"        fields: [author_id, created_at]\n"

#define V1 USERS POSTS_HEAD POSTS_INDEXES

static int apply(sqlite3 *db, const char *old_yaml, const char *new_yaml,
		 unsigned flags, alyx__err *err)
{
	alyx__schema *o = old_yaml ? parse(old_yaml) : NULL;
	alyx__schema *n = parse(new_yaml);
	int rc = alyx__store_apply_schema(db, o, n, NULL, flags, err);

	if (rc != ALYX_OK)
		fprintf(stderr, "  apply: %s %s\n", err->msg,
			err->details ? err->details : "");
	alyx__schema_free(o);
	alyx__schema_free(n);
	return rc;
}

static void apply_ok(sqlite3 *db, const char *old_yaml, const char *new_yaml)
{
	alyx__err err = {0};

	ASSERT_EQ(apply(db, old_yaml, new_yaml, 0, &err), ALYX_OK);
	alyx__err_clear(&err);
}

/* NROWS users and posts using every type, NULLs included. */
static void fill(sqlite3 *db)
{
	sqlite3_stmt *u = NULL, *p = NULL;

	ASSERT_EQ(sqlite3_prepare_v2(db, "INSERT INTO users(id, email, name) "
				     "VALUES (?, ?, ?)", -1, &u, NULL),
		  SQLITE_OK);
	ASSERT_EQ(sqlite3_prepare_v2(db, "INSERT INTO posts(id, title, body, "
				     "views, score, published, created_at, "
				     "meta, data, author_id) VALUES "
				     "(?,?,?,?,?,?,?,?,?,?)", -1, &p, NULL),
		  SQLITE_OK);
	exec_ok(db, "BEGIN");
	for (int i = 0; i < NROWS; i++) {
		char uid[40], pid[40], email[40], title[40], body[40];
		char ts[32], meta[40];
		unsigned char blob[4] = {(unsigned char)i, 0, 0xff, 7};

		snprintf(uid, sizeof(uid), "u-%04d", i);
		snprintf(pid, sizeof(pid), "p-%04d", i);
		snprintf(email, sizeof(email), "u%d@example.com", i);
		snprintf(title, sizeof(title), "title %d", i);
		snprintf(body, sizeof(body), "body 'quoted' %d", i);
		snprintf(ts, sizeof(ts), "2026-01-%02dT10:00:00.000Z",
			 i % 28 + 1);
		snprintf(meta, sizeof(meta), "{\"n\":%d,\"tags\":[\"a\"]}", i);
		sqlite3_bind_text(u, 1, uid, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(u, 2, email, -1, SQLITE_TRANSIENT);
		if (i % 3)
			sqlite3_bind_text(u, 3, title, -1, SQLITE_TRANSIENT);
		else
			sqlite3_bind_null(u, 3);
		ASSERT_EQ(sqlite3_step(u), SQLITE_DONE);
		sqlite3_reset(u);
		sqlite3_clear_bindings(u);
		sqlite3_bind_text(p, 1, pid, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(p, 2, title, -1, SQLITE_TRANSIENT);
		if (i % 4)
			sqlite3_bind_text(p, 3, body, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(p, 4, (int64_t)i * 1000003);
		if (i % 5)
			sqlite3_bind_double(p, 5, i / 7.0);
		sqlite3_bind_int(p, 6, i % 2);
		sqlite3_bind_text(p, 7, ts, -1, SQLITE_TRANSIENT);
		if (i % 2)
			sqlite3_bind_text(p, 8, meta, -1, SQLITE_TRANSIENT);
		if (i % 3)
			sqlite3_bind_blob(p, 9, blob, 4, SQLITE_TRANSIENT);
		sqlite3_bind_text(p, 10, uid, -1, SQLITE_TRANSIENT);
		ASSERT_EQ(sqlite3_step(p), SQLITE_DONE);
		sqlite3_reset(p);
		sqlite3_clear_bindings(p);
	}
	exec_ok(db, "COMMIT");
	sqlite3_finalize(u);
	sqlite3_finalize(p);
}

/* The rows of the v1 columns of posts and users, for before/after. */
static char *v1_rows(sqlite3 *db)
{
	alyx_buf b;

	alyx__buf_init(&b, 0);
	dump_rows(db, "SELECT id, title, body, views, score, published, "
		  "created_at, meta, data, author_id FROM posts ORDER BY id",
		  &b);
	dump_rows(db, "SELECT id, email, name FROM users ORDER BY id", &b);
	return alyx__buf_take(&b);
}

static void check_triggers_write(sqlite3 *db)
{
	int64_t before = q_int(db, "SELECT count(*) FROM _alyx_changes");

	exec_ok(db, "UPDATE posts SET views = views + 1 WHERE id='p-0001'");
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM _alyx_changes"), before + 1);
	char *cf = q_text(db, "SELECT changed_fields FROM _alyx_changes "
			  "ORDER BY id DESC LIMIT 1");

	ASSERT_STR_EQ(cf, "[\"views\"]");
	alyx__free(cf);
	exec_ok(db, "UPDATE posts SET views = views - 1 WHERE id='p-0001'");
}

#ifndef STORE_FAULTS

TEST(init_is_idempotent_and_creates_internal_tables)
{
	char *d = tmp_dir();
	sqlite3 *db = open_db(d);
	alyx__err err = {0};
	const char *tables[] = {"_alyx_migrations", "_alyx_changes",
				"_alyx_schema", "_alyx_users",
				"_alyx_sessions", "_alyx_oauth_accounts"};
	alyx__schema *s = (alyx__schema *)1;

	ASSERT_EQ(alyx__store_init(db, &err), ALYX_OK);
	ASSERT_EQ(alyx__store_init(db, &err), ALYX_OK);
	for (size_t i = 0; i < ALYX_ARRAY_LEN(tables); i++)
		ASSERT(has_object(db, "table", tables[i]));
	ASSERT(has_object(db, "index", "_alyx_changes_unprocessed"));
	/* AUTOINCREMENT: change ids are never reused */
	ASSERT(has_object(db, "table", "sqlite_sequence"));
	ASSERT_EQ(alyx__store_load_schema(db, &s, &err), ALYX_OK);
	ASSERT(s == NULL);
	alyx__conn_close(db);
	rm_tree(d);
}

TEST(apply_creates_tables_indexes_triggers_and_records_schema)
{
	char *d = tmp_dir();
	sqlite3 *db = open_db(d);
	alyx__err err = {0};
	alyx__schema *s = NULL, *v1 = parse(V1);
	char *j1, *j2;

	apply_ok(db, NULL, V1);
	ASSERT(has_object(db, "table", "users"));
	ASSERT(has_object(db, "table", "posts"));
	/* author_id's `index: true` would repeat the start of
	 * posts_by_author_time: not created (see the end of the test). */
	ASSERT(!has_object(db, "index", "idx_posts_author_id"));
	ASSERT(has_object(db, "index", "idx_users_name"));
	ASSERT(has_object(db, "index", "posts_by_author_time"));
	ASSERT(has_object(db, "trigger", "posts_alyx_ins"));
	ASSERT(has_object(db, "trigger", "posts_alyx_upd"));
	ASSERT(has_object(db, "trigger", "users_alyx_del"));
	ASSERT_EQ(alyx__store_load_schema(db, &s, &err), ALYX_OK);
	ASSERT(s != NULL);
	j1 = alyx__schema_to_json(s);
	j2 = alyx__schema_to_json(v1);
	ASSERT_STR_EQ(j1, j2);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM _alyx_schema"), 1);
	/* applying the same schema again changes nothing at all */
	int64_t cookie = q_int(db, "PRAGMA schema_version");

	apply_ok(db, V1, V1);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM _alyx_schema"), 1);
	ASSERT_EQ(q_int(db, "PRAGMA schema_version"), cookie);
	alyx__free(j1);
	alyx__free(j2);
	alyx__schema_free(s);
	alyx__schema_free(v1);
	alyx__conn_close(db);
	rm_tree(d);
}

TEST(add_fields_keep_every_row)
{
	char *d = tmp_dir();
	sqlite3 *db = open_db(d);
	const char *v2 = USERS POSTS_HEAD
		"      subtitle: {type: string, nullable: true}\n"
		"      rank: {type: int, default: 7}\n"
		"      edited_at: {type: timestamp, default: now}\n"
		"      ref: {type: uuid, default: auto}\n" POSTS_INDEXES;
	char *before, *after;

	apply_ok(db, NULL, V1);
	fill(db);
	before = v1_rows(db);
	apply_ok(db, V1, v2);
	after = v1_rows(db);
	ASSERT_STR_EQ(after, before);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM posts"), NROWS);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM posts WHERE subtitle IS "
			"NULL AND rank = 7"), NROWS);
	/* NOT NULL `now`/`auto` columns are filled for existing rows */
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM posts WHERE edited_at LIKE "
			"'____-__-__T__:__:__.___Z'"), NROWS);
	/* ... `auto` with the documents' own version-7 ids, increasing in
	 * the rows' order, and the copy's function gone afterwards. */
	ASSERT_EQ(q_int(db, "SELECT count(DISTINCT ref) FROM posts WHERE "
			"length(ref) = 36 AND substr(ref, 15, 1) = '7' AND "
			"substr(ref, 20, 1) IN ('8', '9', 'a', 'b')"),
		  NROWS);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM posts a JOIN posts b ON "
			"b.rowid = a.rowid + 1 WHERE b.ref <= a.ref"), 0);
	ASSERT(sqlite3_exec(db, "SELECT _alyx_uuid7()", NULL, NULL, NULL) ==
	       SQLITE_ERROR);
	ASSERT(has_object(db, "index", "posts_by_author_time"));
	check_triggers_write(db);
	alyx__free(before);
	alyx__free(after);
	alyx__conn_close(db);
	rm_tree(d);
}

TEST(add_nullable_field_uses_alter_table_in_place)
{
	char *d = tmp_dir();
	sqlite3 *db = open_db(d);
	const char *v2 = V1 "  tags:\n    fields:\n"
		"      id: {type: int, primary: true}\n";
	const char *v3 = USERS "      bio: {type: text, nullable: true}\n"
		POSTS_HEAD POSTS_INDEXES
		"  tags:\n    fields:\n      id: {type: int, primary: true}\n";
	int64_t root;

	apply_ok(db, NULL, V1);
	fill(db);
	root = q_int(db, "SELECT rootpage FROM sqlite_master WHERE "
		     "name='users'");
	apply_ok(db, V1, v2);
	ASSERT(has_object(db, "table", "tags"));
	ASSERT(has_object(db, "trigger", "tags_alyx_upd"));
	apply_ok(db, v2, v3);
	/* no rebuild: the table keeps its b-tree */
	ASSERT_EQ(q_int(db, "SELECT rootpage FROM sqlite_master WHERE "
			"name='users'"), root);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM users WHERE bio IS NULL"),
		  NROWS);
	exec_ok(db, "UPDATE users SET bio='x' WHERE id='u-0002'");
	char *cf = q_text(db, "SELECT changed_fields FROM _alyx_changes "
			  "ORDER BY id DESC LIMIT 1");

	ASSERT_STR_EQ(cf, "[\"bio\"]");
	alyx__free(cf);
	alyx__conn_close(db);
	rm_tree(d);
}

TEST(add_and_drop_indexes)
{
	char *d = tmp_dir();
	sqlite3 *db = open_db(d);
	const char *v2 = USERS POSTS_HEAD POSTS_INDEXES
		"      - name: posts_title\n        fields: [title]\n"
		"        order: desc\n";
	const char *v3 = USERS POSTS_HEAD;
	char *before;

	apply_ok(db, NULL, V1);
	fill(db);
	before = v1_rows(db);
	apply_ok(db, V1, v2);
	ASSERT(has_object(db, "index", "posts_title"));
	ASSERT(has_object(db, "index", "posts_by_author_time"));
	apply_ok(db, v2, v3);
	ASSERT(!has_object(db, "index", "posts_title"));
	ASSERT(!has_object(db, "index", "posts_by_author_time"));
	ASSERT(has_object(db, "index", "idx_posts_author_id"));
	char *after = v1_rows(db);

	ASSERT_STR_EQ(after, before);
	alyx__free(after);
	alyx__free(before);
	alyx__conn_close(db);
	rm_tree(d);
}

/* Loosening NOT NULL / UNIQUE rebuilds the table; rows, foreign keys,
 * indexes, triggers and foreign objects survive, and rebuilding a parent
 * table does not fire ON DELETE CASCADE on its children. */
TEST(loosen_rebuilds_keep_rows_fks_indexes_triggers)
{
	char *d = tmp_dir();
	sqlite3 *db = open_db(d);
	const char *v2 =
		"collections:\n"
		"  users:\n"
		"    fields:\n"
		"      id: {type: uuid, primary: true, default: auto}\n"
		"      email: {type: string, nullable: true}\n"
		"      name: {type: string, nullable: true, index: true}\n"
		POSTS_HEAD POSTS_INDEXES;
	char *before, *after;
	int64_t roots;

	apply_ok(db, NULL, V1);
	fill(db);
	/* an object Alyx does not manage */
	exec_ok(db, "CREATE INDEX my_own_idx ON users(email, name)");
	exec_ok(db, "CREATE VIEW user_emails AS SELECT id, email FROM users");
	before = v1_rows(db);
	roots = q_int(db, "SELECT rootpage FROM sqlite_master WHERE "
		      "name='users'");
	apply_ok(db, V1, v2);
	ASSERT_NE(q_int(db, "SELECT rootpage FROM sqlite_master WHERE "
			"name='users'"), roots);
	after = v1_rows(db);
	ASSERT_STR_EQ(after, before);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM posts"), NROWS);
	ASSERT(has_object(db, "index", "idx_users_name"));
	ASSERT(has_object(db, "index", "my_own_idx"));
	ASSERT(has_object(db, "view", "user_emails"));
	ASSERT(has_object(db, "trigger", "users_alyx_ins"));
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM user_emails"), NROWS);
	/* the FK from posts still points at users and still cascades */
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM pragma_foreign_key_list("
			"'posts') WHERE \"table\"='users' AND on_delete="
			"'CASCADE'"), 1);
	ASSERT_EQ(q_int(db, "PRAGMA foreign_keys"), 1);
	exec_ok(db, "DELETE FROM users WHERE id='u-0003'");
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM posts"), NROWS - 1);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM _alyx_changes WHERE "
			"operation='DELETE' AND collection='posts' AND "
			"doc_id='p-0003'"), 1);
	/* email is nullable now */
	exec_ok(db, "INSERT INTO users(id, email) VALUES ('u-x', NULL)");
	char *ok = q_text(db, "PRAGMA integrity_check");

	ASSERT_STR_EQ(ok, "ok");
	alyx__free(ok);
	alyx__free(before);
	alyx__free(after);
	alyx__conn_close(db);
	rm_tree(d);
}

TEST(destructive_plan_is_refused_with_every_change_listed)
{
	char *d = tmp_dir();
	sqlite3 *db = open_db(d);
	const char *v2 =
		"collections:\n"
		"  users:\n"
		"    fields:\n"
		"      id: {type: uuid, primary: true, default: auto}\n"
		"      email: {type: int, unique: true}\n"
		POSTS_HEAD POSTS_INDEXES;
	alyx__err err = {0};
	char *before, *after;

	apply_ok(db, NULL, V1);
	fill(db);
	before = dump(db);
	ASSERT_EQ(apply(db, V1, v2, 0, &err), ALYX_E_MIGRATION);
	ASSERT_CONTAINS(err.msg, "2 change(s) need a migration file");
	ASSERT_CONTAINS(err.details, "\"op\":\"drop_field\"");
	ASSERT_CONTAINS(err.details, "\"field\":\"name\"");
	ASSERT_CONTAINS(err.details, "\"op\":\"change_type\"");
	ASSERT_CONTAINS(err.details, "\"field\":\"email\"");
	after = dump(db);
	ASSERT_STR_EQ(after, before);
	alyx__err_clear(&err);
	alyx__free(before);
	alyx__free(after);
	alyx__conn_close(db);
	rm_tree(d);
}

/* A rebuild whose copy violates the new constraint fails half-way: the
 * whole database is exactly as before. */
TEST(failing_rebuild_leaves_database_identical)
{
	char *d = tmp_dir();
	sqlite3 *db = open_db(d);
	const char *v2 = USERS POSTS_HEAD
		"      extra: {type: string, nullable: true}\n" POSTS_INDEXES
		"  tags:\n    fields:\n      id: {type: int, primary: true}\n";
	/* body becomes NOT NULL: rows with NULL bodies break the copy,
	 * after `tags` was created and posts.extra added in the same plan */
	const char *v3 = USERS
		"  posts:\n"
		"    fields:\n"
		"      id: {type: uuid, primary: true, default: auto}\n"
		"      title: {type: string, maxLength: 200}\n"
		"      body: {type: text}\n"
		"      views: {type: int, default: 0}\n"
		"      score: {type: float, nullable: true}\n"
		"      published: {type: bool, default: false}\n"
		"      created_at: {type: timestamp, default: now}\n"
		"      meta: {type: json, nullable: true}\n"
		"      data: {type: blob, nullable: true}\n"
		"      author_id: {type: uuid, references: users.id, "
		"onDelete: cascade, index: true}\n"
		"      extra: {type: string, nullable: true}\n" POSTS_INDEXES
		"  tags:\n    fields:\n      id: {type: int, primary: true}\n"
		"  more:\n    fields:\n      id: {type: int, primary: true}\n";
	alyx__err err = {0};
	char *before, *after;

	apply_ok(db, NULL, V1);
	fill(db);
	apply_ok(db, V1, v2);
	before = dump(db);
	ASSERT_EQ(apply(db, v2, v3, ALYX_STORE_ALLOW_DESTRUCTIVE, &err),
		  ALYX_E_MIGRATION);
	ASSERT_CONTAINS(err.msg, "NOT NULL");
	ASSERT_CONTAINS(err.details, "\"collection\":\"posts\"");
	after = dump(db);
	ASSERT_STR_EQ(after, before);
	ASSERT_EQ(q_int(db, "PRAGMA foreign_keys"), 1);
	ASSERT_EQ(sqlite3_get_autocommit(db), 1);
	/* with the offending rows fixed the same change goes through */
	exec_ok(db, "UPDATE posts SET body='' WHERE body IS NULL");
	alyx__err_clear(&err);
	ASSERT_EQ(apply(db, v2, v3, ALYX_STORE_ALLOW_DESTRUCTIVE, &err),
		  ALYX_OK);
	ASSERT(has_object(db, "table", "more"));
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM posts"), NROWS);
	alyx__free(before);
	alyx__free(after);
	alyx__conn_close(db);
	rm_tree(d);
}

/* A new reference whose existing values point nowhere is caught by
 * foreign_key_check before commit. */
TEST(foreign_key_violation_is_refused_and_changes_nothing)
{
	char *d = tmp_dir();
	sqlite3 *db = open_db(d);
	const char *v1 = USERS "  notes:\n    fields:\n"
		"      id: {type: int, primary: true}\n"
		"      owner: {type: uuid, nullable: true}\n";
	const char *v2 = USERS "  notes:\n    fields:\n"
		"      id: {type: int, primary: true}\n"
		"      owner: {type: uuid, nullable: true, references: "
		"users.id}\n";
	alyx__err err = {0};
	char *before, *after;

	apply_ok(db, NULL, v1);
	exec_ok(db, "INSERT INTO users(id, email) VALUES ('u1', 'a@b.c');"
		"INSERT INTO notes VALUES (1, 'u1'), (2, NULL), (3, 'ghost')");
	before = dump(db);
	ASSERT_EQ(apply(db, v1, v2, ALYX_STORE_ALLOW_DESTRUCTIVE, &err),
		  ALYX_E_MIGRATION);
	ASSERT_CONTAINS(err.msg, "foreign_key_check");
	ASSERT_CONTAINS(err.details, "\"table\":\"notes\"");
	after = dump(db);
	ASSERT_STR_EQ(after, before);
	alyx__err_clear(&err);
	exec_ok(db, "DELETE FROM notes WHERE id=3");
	ASSERT_EQ(apply(db, v1, v2, ALYX_STORE_ALLOW_DESTRUCTIVE, &err),
		  ALYX_OK);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM notes"), 2);
	alyx__free(before);
	alyx__free(after);
	alyx__conn_close(db);
	rm_tree(d);
}

/* Inside the caller's transaction: additive changes work (savepoint) and
 * roll back with the caller; a rebuild is refused while foreign_keys is
 * on, since the pragma cannot change inside a transaction. */
TEST(apply_inside_a_caller_transaction)
{
	char *d = tmp_dir();
	sqlite3 *db = open_db(d);
	const char *v2 = V1 "  tags:\n    fields:\n"
		"      id: {type: int, primary: true}\n";
	const char *v3 = "collections:\n  users:\n    fields:\n"
		"      id: {type: uuid, primary: true, default: auto}\n"
		"      email: {type: string, nullable: true}\n"
		"      name: {type: string, nullable: true, index: true}\n"
		POSTS_HEAD POSTS_INDEXES;
	alyx__err err = {0};
	char *before, *after;

	apply_ok(db, NULL, V1);
	fill(db);
	before = dump(db);
	exec_ok(db, "BEGIN");
	apply_ok(db, V1, v2);
	ASSERT(has_object(db, "table", "tags"));
	exec_ok(db, "ROLLBACK");
	after = dump(db);
	ASSERT_STR_EQ(after, before);
	alyx__free(after);

	exec_ok(db, "BEGIN");
	ASSERT_EQ(apply(db, V1, v3, 0, &err), ALYX_E_MISUSE);
	ASSERT_CONTAINS(err.msg, "foreign_keys off");
	ASSERT_EQ(sqlite3_get_autocommit(db), 0);
	exec_ok(db, "ROLLBACK");
	after = dump(db);
	ASSERT_STR_EQ(after, before);
	alyx__err_clear(&err);
	alyx__free(before);
	alyx__free(after);
	alyx__conn_close(db);
	rm_tree(d);
}

/* ---- change feed ---- */

static const char *FEED =
	"collections:\n"
	"  items:\n"
	"    fields:\n"
	"      id: {type: string, primary: true}\n"
	"      title: {type: string}\n"
	"      qty: {type: int, nullable: true}\n"
	"      note: {type: text, nullable: true}\n";

/* The feed rows after `after_id` as "op doc fields;" text. */
static char *feed_since(sqlite3 *db, int64_t after_id)
{
	char *sql = alyx__asprintf(
		"SELECT group_concat(operation || ' ' || doc_id || ' ' || "
		"coalesce(changed_fields, '-'), ';') FROM (SELECT * FROM "
		"_alyx_changes WHERE id > %lld ORDER BY id)",
		(long long)after_id);
	char *v = q_text(db, sql);

	alyx__free(sql);
	return v;
}

TEST(change_feed_records_inserts_updates_deletes)
{
	char *d = tmp_dir();
	sqlite3 *db = open_db(d);
	char *f;

	apply_ok(db, NULL, FEED);
	exec_ok(db, "INSERT INTO items VALUES ('a', 'A', 1, NULL);"
		"INSERT INTO items VALUES ('b', 'B', NULL, 'n');"
		"UPDATE items SET qty = 2, note = 'x' WHERE id = 'a';"
		"UPDATE items SET qty = NULL WHERE id = 'a';"
		"UPDATE items SET title = title WHERE id = 'b';"
		"DELETE FROM items WHERE id = 'b'");
	f = feed_since(db, 0);
	ASSERT_STR_EQ(f, "INSERT a -;INSERT b -;"
		      "UPDATE a [\"qty\",\"note\"];UPDATE a [\"qty\"];"
		      "UPDATE b [];DELETE b -");
	/* ids strictly increase, timestamps are ISO-8601 with ms */
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM _alyx_changes c1 JOIN "
			"_alyx_changes c2 ON c2.id = c1.id + 1"), 5);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM _alyx_changes WHERE "
			"timestamp LIKE '____-__-__T__:__:__.___Z' AND "
			"collection = 'items' AND processed = 0"), 6);
	/* ids are never reused, even after the feed is trimmed */
	exec_ok(db, "DELETE FROM _alyx_changes");
	exec_ok(db, "INSERT INTO items VALUES ('c', 'C', 3, NULL)");
	ASSERT_EQ(q_int(db, "SELECT id FROM _alyx_changes"), 7);
	alyx__free(f);
	alyx__conn_close(db);
	rm_tree(d);
}

TEST(change_feed_sees_writes_from_another_connection)
{
	char *d = tmp_dir();
	sqlite3 *db = open_db(d), *other = NULL;
	char *path = alyx__path_join(d, "data.db"), *f;

	apply_ok(db, NULL, FEED);
	exec_ok(db, "INSERT INTO items VALUES ('a', 'A', 1, NULL)");
	/* a plain connection, no Alyx code involved */
	ASSERT_EQ(sqlite3_open_v2(path, &other, SQLITE_OPEN_READWRITE, NULL),
		  SQLITE_OK);
	sqlite3_busy_timeout(other, 5000);
	exec_ok(other, "INSERT INTO items VALUES ('z', 'Z', 9, NULL);"
		"UPDATE items SET title = 'AA' WHERE id = 'a';"
		"DELETE FROM items WHERE id = 'z'");
	sqlite3_close(other);
	f = feed_since(db, 1);
	ASSERT_STR_EQ(f, "INSERT z -;UPDATE a [\"title\"];DELETE z -");
	alyx__free(f);
	alyx__free(path);
	alyx__conn_close(db);
	rm_tree(d);
}

TEST(change_feed_sees_writes_from_the_sqlite3_shell)
{
	char *d = tmp_dir();
	sqlite3 *db = open_db(d);
	char *path = alyx__path_join(d, "data.db"), *cmd, *f;
	int64_t last;

	if (system("command -v sqlite3 >/dev/null 2>&1") != 0) {
		alyx__conn_close(db);
		alyx__free(path);
		rm_tree(d);
		SKIP("the sqlite3 shell is not installed");
	}
	apply_ok(db, NULL, FEED);
	last = q_int(db, "SELECT coalesce(max(id), 0) FROM _alyx_changes");
	cmd = alyx__asprintf("sqlite3 '%s' \"INSERT INTO items VALUES "
			     "('s', 'S', 1, NULL); UPDATE items SET qty = 5, "
			     "title = 'T' WHERE id = 's'; DELETE FROM items "
			     "WHERE id = 's';\"", path);
	ASSERT_EQ(system(cmd), 0);
	f = feed_since(db, last);
	ASSERT_STR_EQ(f, "INSERT s -;UPDATE s [\"title\",\"qty\"];DELETE s -");
	alyx__free(f);
	alyx__free(cmd);
	alyx__free(path);
	alyx__conn_close(db);
	rm_tree(d);
}

/* Triggers are regenerated when fields change: a new field shows up in
 * changed_fields, a rebuilt table still feeds the change log. */
TEST(change_feed_triggers_follow_the_schema)
{
	char *d = tmp_dir();
	sqlite3 *db = open_db(d);
	char *v2 = alyx__asprintf("%s      extra: {type: int, default: 0}\n",
				  FEED);
	char *v3 = alyx__asprintf("%s      extra: {type: int, default: 0, "
				  "unique: true}\n", FEED);
	char *f;
	alyx__err err = {0};

	apply_ok(db, NULL, FEED);
	exec_ok(db, "INSERT INTO items VALUES ('a', 'A', 1, NULL)");
	apply_ok(db, FEED, v2);
	exec_ok(db, "UPDATE items SET extra = 4 WHERE id = 'a'");
	ASSERT_EQ(apply(db, v2, v3, ALYX_STORE_ALLOW_DESTRUCTIVE, &err),
		  ALYX_OK);
	exec_ok(db, "UPDATE items SET extra = 5, qty = 2 WHERE id = 'a'");
	f = feed_since(db, 1);
	ASSERT_STR_EQ(f, "UPDATE a [\"extra\"];UPDATE a [\"qty\",\"extra\"]");
	alyx__free(f);
	alyx__free(v2);
	alyx__free(v3);
	alyx__conn_close(db);
	rm_tree(d);
}

/* A table that references itself keeps pointing at itself after a
 * rebuild (the new table is created under a temporary name). */
TEST(self_reference_survives_a_rebuild)
{
	char *d = tmp_dir();
	sqlite3 *db = open_db(d);
	const char *v1 = "collections:\n  nodes:\n    fields:\n"
		"      id: {type: int, primary: true}\n"
		"      label: {type: string, unique: true}\n"
		"      parent: {type: int, nullable: true, references: nodes.id,"
		" onDelete: cascade}\n";
	const char *v2 = "collections:\n  nodes:\n    fields:\n"
		"      id: {type: int, primary: true}\n"
		"      label: {type: string, nullable: true}\n"
		"      parent: {type: int, nullable: true, references: nodes.id,"
		" onDelete: cascade}\n";
	char *sql;

	apply_ok(db, NULL, v1);
	exec_ok(db, "INSERT INTO nodes VALUES (1, 'root', NULL), (2, 'a', 1),"
		" (3, 'b', 2), (4, 'c', 1)");
	apply_ok(db, v1, v2);
	sql = q_text(db, "SELECT sql FROM sqlite_master WHERE name='nodes'");
	ASSERT(strstr(sql, "_alyx_new") == NULL);
	alyx__free(sql);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM pragma_foreign_key_list("
			"'nodes') WHERE \"table\" = 'nodes'"), 1);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM nodes"), 4);
	exec_ok(db, "DELETE FROM nodes WHERE id = 2");
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM nodes"), 2);
	alyx__conn_close(db);
	rm_tree(d);
}

#else /* STORE_FAULTS: the slow fault-injection test */

/* Every allocation of a schema application fails in turn: each failure
 * leaves the database exactly as before. */
TEST(allocation_failures_in_apply_change_nothing)
{
	const char *v2 =
		"collections:\n"
		"  users:\n"
		"    fields:\n"
		"      id: {type: uuid, primary: true, default: auto}\n"
		"      email: {type: string, nullable: true}\n"
		"      name: {type: string, nullable: true, index: true}\n"
		POSTS_HEAD
		"      edited_at: {type: timestamp, default: now}\n"
		POSTS_INDEXES
		"      - name: posts_title\n        fields: [title]\n"
		"  tags:\n    fields:\n      id: {type: int, primary: true}\n";
	alyx__schema *o = parse(V1), *n2 = parse(v2);
	char *d = tmp_dir(), *before, *after, *rows1;
	sqlite3 *db = open_db(d);
	alyx__err err = {0};
	long n, failed = 0;

	apply_ok(db, NULL, V1);
	fill(db);
	rows1 = v1_rows(db);
	before = dump(db);
	for (n = 1; n < 100000; n++) {
		void *probe;
		int rc;

		alyx__fail_alloc_after(n);
		rc = alyx__store_apply_schema(db, o, n2, NULL, 0, &err);
		probe = alyx__malloc(1);	/* NULL: the failure never hit */
		alyx__fail_alloc_after(0);
		alyx__free(probe);
		ASSERT_EQ(sqlite3_get_autocommit(db), 1);
		ASSERT_EQ(q_int(db, "PRAGMA foreign_keys"), 1);
		if (rc == ALYX_OK) {
			char *r = v1_rows(db);

			ASSERT_STR_EQ(r, rows1);
			alyx__free(r);
			ASSERT(has_object(db, "index", "posts_title"));
			ASSERT(has_object(db, "table", "tags"));
			if (!probe)
				break;
			/* start over */
			alyx__conn_close(db);
			rm_tree(d);
			d = tmp_dir();
			db = open_db(d);
			apply_ok(db, NULL, V1);
			fill(db);
			alyx__free(before);
			before = dump(db);
			continue;
		}
		failed++;
		after = dump(db);
		if (strcmp(after, before) != 0)
			fprintf(stderr, "  allocation %ld: %s\n", n, err.msg);
		ASSERT_STR_EQ(after, before);
		alyx__free(after);
		alyx__err_clear(&err);
	}
	ASSERT(failed > 50);
	alyx__schema_free(o);
	alyx__schema_free(n2);
	alyx__free(before);
	alyx__free(rows1);
	alyx__conn_close(db);
	rm_tree(d);
}

#endif

TEST_MAIN()
