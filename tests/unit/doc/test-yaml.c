/*
 * test-yaml.c - documents against a schema written in YAML (the seed's
 * blog, plus a few extra options) with the tables made by
 * alyx__sql_create_table: the doc module and the schema module agree.
 */
#include "harness.h"
#include "doc/doc.h"

static const char yaml[] =
	"version: 1\n"
	"collections:\n"
	"  users:\n"
	"    fields:\n"
	"      id: {type: uuid, primary: true, default: auto}\n"
	"      email:\n"
	"        type: string\n"
	"        unique: true\n"
	"        index: true\n"
	"        validate:\n"
	"          format: email\n"
	"      name: {type: string, maxLength: 100, nullable: true}\n"
	"      role:\n"
	"        type: string\n"
	"        default: \"user\"\n"
	"        validate:\n"
	"          enum: [user, moderator, admin]\n"
	"      password_hash: {type: string, internal: true, nullable: true}\n"
	"      created_at: {type: timestamp, default: now}\n"
	"      updated_at: {type: timestamp, default: now, onUpdate: now}\n"
	"  posts:\n"
	"    fields:\n"
	"      id: {type: uuid, primary: true, default: auto}\n"
	"      title: {type: string, minLength: 1, maxLength: 200}\n"
	"      slug:\n"
	"        type: string\n"
	"        unique: true\n"
	"        validate:\n"
	"          pattern: \"^[a-z0-9-]+$\"\n"
	"      content: {type: text}\n"
	"      author_id: {type: uuid, references: users.id, onDelete: cascade}\n"
	"      published: {type: bool, default: false}\n"
	"      tags: {type: json, nullable: true}\n"
	"      view_count:\n"
	"        type: int\n"
	"        default: 0\n"
	"        validate: {min: 0}\n"
	"      rating: {type: float, nullable: true, min: 0, max: 5}\n"
	"      created_at: {type: timestamp, default: now}\n"
	"  comments:\n"
	"    fields:\n"
	"      id: {type: uuid, primary: true, default: auto}\n"
	"      post_id: {type: uuid, references: posts.id, onDelete: cascade}\n"
	"      content: {type: text, maxLength: 5000}\n"
	"  counters:\n"
	"    fields:\n"
	"      id: {type: int, primary: true}\n"
	"      label: {type: string, nullable: true}\n"
	"      owner: {type: uuid, nullable: true, references: users.id,"
	" onDelete: restrict}\n"
	"  likes:\n"
	"    fields:\n"
	"      id: {type: int, primary: true}\n"
	"      user_id: {type: uuid, nullable: true, references: users.id,"
	" onDelete: set null}\n";

static alyx__schema *schema;

static sqlite3 *open_db(void)
{
	alyx__err err = {0};
	sqlite3 *db;
	size_t i;

	if (alyx__schema_parse(yaml, sizeof(yaml) - 1, "schema.yaml", &schema,
			       &err) != ALYX_OK) {
		fprintf(stderr, "schema: %s\n", err.msg);
		abort();
	}
	if (sqlite3_open(":memory:", &db) != SQLITE_OK)
		abort();
	sqlite3_exec(db, "PRAGMA foreign_keys=ON", NULL, NULL, NULL);
	for (i = 0; i < schema->n_colls; i++) {
		char *sql = alyx__sql_create_table(&schema->colls[i], NULL);

		if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
			fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(db));
			abort();
		}
		alyx__free(sql);
	}
	return db;
}

static void close_db(sqlite3 *db)
{
	alyx__stmt_cache_clear(db);
	ASSERT_OK(sqlite3_close(db));
	alyx__schema_free(schema);
}

static int create(sqlite3 *db, const char *coll, const char *json,
		  char **out, alyx__err *err)
{
	const alyx__collection *c = alyx__schema_coll(schema, coll);
	cJSON *j = cJSON_Parse(json);
	alyx__row row;
	alyx_buf b;
	int rc;

	*out = NULL;
	alyx__buf_init(&b, 0);
	rc = alyx__doc_prepare(c, j, ALYX_DOC_CREATE, &row, err);
	cJSON_Delete(j);
	if (rc == ALYX_OK) {
		rc = alyx__doc_insert(db, c, &row, &b, err);
		alyx__row_free(&row);
	}
	if (rc == ALYX_OK)
		*out = strdup(b.data);
	alyx__buf_free(&b);
	return rc;
}

static char *field_of(const char *json, const char *key)
{
	cJSON *j = cJSON_Parse(json), *v = cJSON_GetObjectItem(j, key);
	char *s = v ? cJSON_PrintUnformatted(v) : NULL;
	char *r = s ? strdup(s) : NULL;

	cJSON_free(s);
	cJSON_Delete(j);
	return r;
}

static int count(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	int n = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return n;
}

TEST(blog_defaults_and_types)
{
	sqlite3 *db = open_db();
	alyx__err err = {0};
	char *u, *p, *uid, *v, json[512];

	ASSERT_OK(create(db, "users", "{\"email\":\"ann@example.com\","
			 "\"password_hash\":\"x\"}", &u, &err));
	ASSERT_CONTAINS(u, "\"role\":\"user\"");
	ASSERT(!strstr(u, "password_hash"));
	uid = field_of(u, "id");
	snprintf(json, sizeof(json),
		 "{\"title\":\"Hello\",\"slug\":\"hello-world\","
		 "\"content\":\"...\",\"author_id\":%s,"
		 "\"tags\":[\"c\",\"sqlite\"],\"rating\":4.5}", uid);
	ASSERT_OK(create(db, "posts", json, &p, &err));
	ASSERT_CONTAINS(p, "\"published\":false");
	ASSERT_CONTAINS(p, "\"view_count\":0");
	ASSERT_CONTAINS(p, "\"tags\":[\"c\",\"sqlite\"]");
	ASSERT_CONTAINS(p, "\"rating\":4.5");
	v = field_of(p, "created_at");
	ASSERT_EQ(strlen(v), 26);	/* "YYYY-MM-DDTHH:MM:SS.mmmZ" quoted */
	free(v);
	free(p);
	free(u);
	free(uid);
	alyx__err_clear(&err);
	close_db(db);
}

TEST(blog_validation_reports_every_field)
{
	sqlite3 *db = open_db();
	alyx__err err = {0};
	char *p, title[260];

	memset(title, 'x', 201);
	title[201] = '\0';
	ASSERT_EQ(create(db, "users", "{\"email\":\"nope\",\"role\":\"root\"}",
			 &p, &err), ALYX_E_VALIDATION);
	ASSERT_CONTAINS(err.details, "\"field\":\"email\",\"code\":\"format\"");
	ASSERT_CONTAINS(err.details, "\"field\":\"role\",\"code\":\"enum\"");
	ASSERT_CONTAINS(err.details, "must be one of [\\\"user\\\", \\\"moderator\\\"");
	{
		char json[512];

		snprintf(json, sizeof(json),
			 "{\"title\":\"%s\",\"slug\":\"Not A Slug\","
			 "\"view_count\":-1,\"rating\":6}", title);
		ASSERT_EQ(create(db, "posts", json, &p, &err),
			  ALYX_E_VALIDATION);
	}
	ASSERT_CONTAINS(err.details,
			"\"field\":\"title\",\"code\":\"max_length\"");
	ASSERT_CONTAINS(err.details, "\"field\":\"slug\",\"code\":\"pattern\"");
	ASSERT_CONTAINS(err.details,
			"\"field\":\"content\",\"code\":\"required\"");
	ASSERT_CONTAINS(err.details,
			"\"field\":\"author_id\",\"code\":\"required\"");
	ASSERT_CONTAINS(err.details,
			"\"field\":\"view_count\",\"code\":\"min\"");
	ASSERT_CONTAINS(err.details, "\"field\":\"rating\",\"code\":\"max\"");
	ASSERT_EQ(create(db, "posts", "{\"title\":\"\"}", &p, &err),
		  ALYX_E_VALIDATION);
	ASSERT_CONTAINS(err.details,
			"\"field\":\"title\",\"code\":\"min_length\"");
	alyx__err_clear(&err);
	close_db(db);
}

TEST(int_primary_key_and_restrict_and_cascade)
{
	sqlite3 *db = open_db();
	alyx__err err = {0};
	char *c1, *u, *uid, *p, *pid, json[256];
	const alyx__collection *users = alyx__schema_coll(schema, "users");
	const alyx__collection *posts = alyx__schema_coll(schema, "posts");

	/* NOT NULL PRIMARY KEY on an INTEGER column is still the rowid. */
	ASSERT_OK(create(db, "counters", "{\"label\":\"a\"}", &c1, &err));
	ASSERT_STR_EQ(c1, "{\"id\":1,\"label\":\"a\",\"owner\":null}");
	free(c1);
	ASSERT_OK(create(db, "users", "{\"email\":\"b@example.com\"}", &u,
			 &err));
	uid = field_of(u, "id");
	snprintf(json, sizeof(json), "{\"owner\":%s}", uid);
	ASSERT_OK(create(db, "counters", json, &c1, &err));
	free(c1);
	snprintf(json, sizeof(json), "{\"title\":\"t\",\"slug\":\"t\","
		 "\"content\":\"c\",\"author_id\":%s}", uid);
	ASSERT_OK(create(db, "posts", json, &p, &err));
	pid = field_of(p, "id");
	snprintf(json, sizeof(json), "{\"post_id\":%s,\"content\":\"hi\"}",
		 pid);
	free(p);
	ASSERT_OK(create(db, "comments", json, &p, &err));
	free(p);
	/* uid without quotes is the id. */
	memmove(uid, uid + 1, strlen(uid));
	uid[strlen(uid) - 1] = '\0';
	ASSERT_EQ(alyx__doc_delete(db, users, uid, &err), ALYX_E_CONFLICT);
	ASSERT_CONTAINS(err.details, "\"collection\":\"counters\"");
	ASSERT_OK(sqlite3_exec(db, "DELETE FROM counters WHERE owner IS NOT "
			       "NULL", NULL, NULL, NULL));
	snprintf(json, sizeof(json), "{\"user_id\":\"%s\"}", uid);
	ASSERT_OK(create(db, "likes", json, &p, &err));
	free(p);
	ASSERT_OK(alyx__doc_delete(db, users, uid, &err));
	ASSERT_EQ(count(db, "SELECT count(*) FROM posts"), 0);
	/* set null: the like stays, without its user. */
	ASSERT_EQ(count(db, "SELECT count(*) FROM likes WHERE user_id IS "
			"NULL"), 1);
	ASSERT_EQ(count(db, "SELECT count(*) FROM comments"), 0);
	memmove(pid, pid + 1, strlen(pid));
	pid[strlen(pid) - 1] = '\0';
	ASSERT_EQ(alyx__doc_delete(db, posts, pid, &err), ALYX_E_NOTFOUND);
	free(pid);
	free(uid);
	free(u);
	alyx__err_clear(&err);
	close_db(db);
}

TEST_MAIN()
