/*
 * test-doc.c - write validation and the single-document statements on an
 * in-memory SQLite database, with collections built by hand.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <time.h>

#include "harness.h"
#include "doc/doc.h"

/* ---- fixture: users, posts, comments ---- */

enum { U_ID, U_EMAIL, U_NAME, U_ROLE, U_AGE, U_SCORE, U_ACTIVE, U_SECRET,
       U_CREATED, U_UPDATED, U_META, U_AVATAR, U_SLUG, U_SITE, U_EXT,
       U_LEVEL, U_N };

static alyx__field ufields[U_N], pfields[3], cfields[2];
static alyx__collection users, posts, comments;
static char *role_enum[] = {"\"user\"", "\"admin\""};
static char *level_enum[] = {"1", "2", "3"};
static pcre2_code *slug_re;

static alyx__field mk(const char *name, alyx__type t)
{
	alyx__field f;

	memset(&f, 0, sizeof(f));
	f.name = (char *)name;
	f.type = t;
	return f;
}

static void fixture(void)
{
	alyx__field *u = ufields;
	int e;
	PCRE2_SIZE off;

	u[U_ID] = mk("id", ALYX_T_UUID);
	u[U_ID].primary = true;
	u[U_ID].default_kind = ALYX_DEF_AUTO;
	u[U_EMAIL] = mk("email", ALYX_T_STRING);
	u[U_EMAIL].unique = true;
	u[U_EMAIL].format = ALYX_FMT_EMAIL;
	u[U_NAME] = mk("name", ALYX_T_STRING);
	u[U_NAME].nullable = true;
	u[U_NAME].has_min_length = u[U_NAME].has_max_length = true;
	u[U_NAME].min_length = 2;
	u[U_NAME].max_length = 10;
	u[U_ROLE] = mk("role", ALYX_T_STRING);
	u[U_ROLE].default_kind = ALYX_DEF_LITERAL;
	u[U_ROLE].default_json = "\"user\"";
	u[U_ROLE].enum_json = role_enum;
	u[U_ROLE].n_enum = 2;
	u[U_AGE] = mk("age", ALYX_T_INT);
	u[U_AGE].nullable = true;
	u[U_AGE].has_min = u[U_AGE].has_max = true;
	u[U_AGE].min = 0;
	u[U_AGE].max = 150;
	u[U_SCORE] = mk("score", ALYX_T_FLOAT);
	u[U_SCORE].nullable = true;
	u[U_SCORE].has_min = u[U_SCORE].has_max = true;
	u[U_SCORE].min = 0.5;
	u[U_SCORE].max = 9.5;
	u[U_ACTIVE] = mk("active", ALYX_T_BOOL);
	u[U_ACTIVE].default_kind = ALYX_DEF_LITERAL;
	u[U_ACTIVE].default_json = "false";
	u[U_SECRET] = mk("secret", ALYX_T_STRING);
	u[U_SECRET].nullable = true;
	u[U_SECRET].internal = true;
	u[U_CREATED] = mk("created_at", ALYX_T_TIMESTAMP);
	u[U_CREATED].default_kind = ALYX_DEF_NOW;
	u[U_UPDATED] = mk("updated_at", ALYX_T_TIMESTAMP);
	u[U_UPDATED].default_kind = ALYX_DEF_NOW;
	u[U_UPDATED].on_update_now = true;
	u[U_META] = mk("meta", ALYX_T_JSON);
	u[U_META].nullable = true;
	u[U_AVATAR] = mk("avatar", ALYX_T_BLOB);
	u[U_AVATAR].nullable = true;
	u[U_SLUG] = mk("slug", ALYX_T_STRING);
	u[U_SLUG].nullable = true;
	u[U_SLUG].pattern = "^[a-z]+$";
	slug_re = pcre2_compile((PCRE2_SPTR) "^[a-z]+$", PCRE2_ZERO_TERMINATED,
				PCRE2_UTF, &e, &off, NULL);
	u[U_SLUG].pattern_code = slug_re;
	u[U_SITE] = mk("website", ALYX_T_STRING);
	u[U_SITE].nullable = true;
	u[U_SITE].format = ALYX_FMT_URL;
	u[U_EXT] = mk("ext_ref", ALYX_T_STRING);
	u[U_EXT].nullable = true;
	u[U_EXT].format = ALYX_FMT_UUID;
	u[U_LEVEL] = mk("level", ALYX_T_INT);
	u[U_LEVEL].nullable = true;
	u[U_LEVEL].enum_json = level_enum;
	u[U_LEVEL].n_enum = 3;
	users = (alyx__collection){.name = "users", .fields = ufields,
				   .n_fields = U_N, .pk = U_ID};

	pfields[0] = mk("id", ALYX_T_INT);
	pfields[0].primary = true;
	pfields[1] = mk("title", ALYX_T_STRING);
	pfields[2] = mk("author_id", ALYX_T_UUID);
	pfields[2].ref_collection = "users";
	pfields[2].ref_field = "id";
	pfields[2].nullable = true;
	posts = (alyx__collection){.name = "posts", .fields = pfields,
				   .n_fields = 3, .pk = 0};

	cfields[0] = mk("id", ALYX_T_UUID);
	cfields[0].primary = true;
	cfields[0].default_kind = ALYX_DEF_AUTO;
	cfields[1] = mk("post_id", ALYX_T_INT);
	cfields[1].ref_collection = "posts";
	cfields[1].ref_field = "id";
	cfields[1].on_delete = ALYX_ONDEL_CASCADE;
	comments = (alyx__collection){.name = "comments", .fields = cfields,
				      .n_fields = 2, .pk = 0};
}

static const char ddl[] =
	"PRAGMA foreign_keys=ON;"
	"CREATE TABLE \"users\" (\"id\" TEXT PRIMARY KEY NOT NULL,"
	" \"email\" TEXT NOT NULL UNIQUE, \"name\" TEXT,"
	" \"role\" TEXT NOT NULL DEFAULT 'user', \"age\" INTEGER,"
	" \"score\" REAL, \"active\" INTEGER NOT NULL DEFAULT 0,"
	" \"secret\" TEXT, \"created_at\" TEXT NOT NULL,"
	" \"updated_at\" TEXT NOT NULL, \"meta\" TEXT, \"avatar\" BLOB,"
	" \"slug\" TEXT, \"website\" TEXT, \"ext_ref\" TEXT,"
	" \"level\" INTEGER);"
	"CREATE TABLE \"posts\" (\"id\" INTEGER PRIMARY KEY,"
	" \"title\" TEXT NOT NULL,"
	" \"author_id\" TEXT REFERENCES \"users\"(\"id\") ON DELETE RESTRICT);"
	"CREATE TABLE \"comments\" (\"id\" TEXT PRIMARY KEY NOT NULL,"
	" \"post_id\" INTEGER NOT NULL REFERENCES \"posts\"(\"id\")"
	" ON DELETE CASCADE);";

static sqlite3 *open_db(void)
{
	sqlite3 *db;

	fixture();
	if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
	    sqlite3_exec(db, ddl, NULL, NULL, NULL) != SQLITE_OK) {
		fprintf(stderr, "fixture: %s\n", sqlite3_errmsg(db));
		abort();
	}
	return db;
}

static void close_db(sqlite3 *db)
{
	sqlite3_stmt *st;

	while ((st = sqlite3_next_stmt(db, NULL)) != NULL)
		sqlite3_finalize(st);
	ASSERT_OK(sqlite3_close(db));
	pcre2_code_free(slug_re);
}

/* prepare + insert (or update when id != NULL).  *out: the stored JSON
 * (free()), or NULL; the error is left in *err. */
static int write_doc(sqlite3 *db, const alyx__collection *c, const char *id,
		     const char *json, char **out, alyx__err *err)
{
	cJSON *j = cJSON_Parse(json);
	alyx__row row;
	alyx_buf b;
	int rc;

	*out = NULL;
	alyx__buf_init(&b, 0);
	rc = alyx__doc_prepare(c, j, id ? ALYX_DOC_UPDATE : ALYX_DOC_CREATE,
			       &row, err);
	cJSON_Delete(j);
	if (rc != ALYX_OK)
		return rc;
	rc = id ? alyx__doc_update(db, c, id, &row, &b, err)
		: alyx__doc_insert(db, c, &row, &b, err);
	alyx__row_free(&row);
	if (rc == ALYX_OK)
		*out = strdup(b.data);
	alyx__buf_free(&b);
	return rc;
}

static char *read_doc(sqlite3 *db, const alyx__collection *c, const char *id,
		      bool internal, int *rc)
{
	alyx__err err = {0};
	alyx_buf b;
	char *s = NULL;

	alyx__buf_init(&b, 0);
	*rc = alyx__doc_read(db, c, id, internal, &b, &err);
	if (*rc == ALYX_OK)
		s = strdup(b.data);
	alyx__buf_free(&b);
	alyx__err_clear(&err);
	return s;
}

static char *get_str(const char *json, const char *key)
{
	cJSON *j = cJSON_Parse(json), *v = cJSON_GetObjectItem(j, key);
	char *s = cJSON_IsString(v) ? strdup(v->valuestring) : NULL;

	cJSON_Delete(j);
	return s;
}

/* How many field errors with `code` for `field` the details list. */
static int count_code(const char *details, const char *field,
		      const char *code)
{
	cJSON *d = cJSON_Parse(details), *e;
	int n = 0;

	cJSON_ArrayForEach(e, cJSON_GetObjectItem(d, "fields")) {
		const char *f = cJSON_GetStringValue(cJSON_GetObjectItem(e,
								"field"));
		const char *c = cJSON_GetStringValue(cJSON_GetObjectItem(e,
								"code"));

		if (f && c && !strcmp(f, field) && !strcmp(c, code))
			n++;
	}
	cJSON_Delete(d);
	return n;
}

static int count_all(const char *details)
{
	cJSON *d = cJSON_Parse(details);
	int n = cJSON_GetArraySize(cJSON_GetObjectItem(d, "fields"));

	cJSON_Delete(d);
	return n;
}

/* ---- creates and defaults ---- */

TEST(create_applies_defaults_and_hides_internal)
{
	sqlite3 *db = open_db();
	alyx__err err = {0};
	char *out, *id, *ca, *ua, *again;
	int rc;

	ASSERT_OK(write_doc(db, &users, NULL,
		"{\"email\":\"ann@example.com\",\"secret\":\"s3\"}", &out, &err));
	id = get_str(out, "id");
	ASSERT(id && alyx__uuid_valid(id, strlen(id)));
	ASSERT_EQ(id[14], '7');	/* version 7 */
	ASSERT_CONTAINS(out, "\"role\":\"user\"");
	ASSERT_CONTAINS(out, "\"active\":false");
	ASSERT_CONTAINS(out, "\"name\":null");
	ASSERT_CONTAINS(out, "\"meta\":null");
	ASSERT(!strstr(out, "secret"));
	ca = get_str(out, "created_at");
	ua = get_str(out, "updated_at");
	ASSERT(ca && strlen(ca) == 24 && ca[23] == 'Z' && ca[19] == '.');
	ASSERT_STR_EQ(ca, ua);
	again = read_doc(db, &users, id, false, &rc);
	ASSERT_OK(rc);
	ASSERT_STR_EQ(again, out);
	free(again);
	again = read_doc(db, &users, id, true, &rc);
	ASSERT_CONTAINS(again, "\"secret\":\"s3\"");
	free(again);
	free(id);
	free(ca);
	free(ua);
	free(out);
	close_db(db);
}

TEST(every_type_round_trips)
{
	sqlite3 *db = open_db();
	alyx__err err = {0};
	char *out, *again;
	int rc;

	ASSERT_OK(write_doc(db, &users, NULL,
		"{\"id\":\"6F9619FF-8B86-4011-B42D-00C04FC964FF\","
		"\"email\":\"b@example.org\",\"name\":\"\xc3\xa9l\xc3\xa9na\","
		"\"role\":\"admin\",\"age\":150,\"score\":9.5,\"active\":true,"
		"\"created_at\":\"2026-01-02T03:04:05+01:00\","
		"\"meta\":{\"tags\":[\"a\",\"b\"],\"n\":1.25},"
		"\"avatar\":\"AAEC/w==\",\"slug\":\"abc\","
		"\"website\":\"https://example.com:8080/x?y=1\","
		"\"ext_ref\":\"6f9619ff-8b86-4011-b42d-00c04fc964ff\","
		"\"level\":2}", &out, &err));
	ASSERT_CONTAINS(out, "\"id\":\"6f9619ff-8b86-4011-b42d-00c04fc964ff\"");
	ASSERT_CONTAINS(out, "\"name\":\"\xc3\xa9l\xc3\xa9na\"");
	ASSERT_CONTAINS(out, "\"age\":150,\"score\":9.5,\"active\":true");
	ASSERT_CONTAINS(out, "\"created_at\":\"2026-01-02T02:04:05.000Z\"");
	ASSERT_CONTAINS(out, "\"meta\":{\"tags\":[\"a\",\"b\"],\"n\":1.25}");
	ASSERT_CONTAINS(out, "\"avatar\":\"AAEC/w==\"");
	ASSERT_CONTAINS(out, "\"level\":2");
	again = read_doc(db, &users, "6F9619FF-8B86-4011-B42D-00C04FC964FF",
			 false, &rc);
	ASSERT_OK(rc);
	ASSERT_STR_EQ(again, out);
	free(again);
	free(out);
	close_db(db);
}

TEST(int_primary_key_gets_rowid)
{
	sqlite3 *db = open_db();
	alyx__err err = {0};
	char *out;

	ASSERT_OK(write_doc(db, &posts, NULL, "{\"title\":\"a\"}", &out, &err));
	ASSERT_STR_EQ(out, "{\"id\":1,\"title\":\"a\",\"author_id\":null}");
	free(out);
	ASSERT_OK(write_doc(db, &posts, NULL, "{\"id\":41,\"title\":\"b\"}",
			    &out, &err));
	ASSERT_CONTAINS(out, "\"id\":41");
	free(out);
	ASSERT_OK(write_doc(db, &posts, NULL, "{\"title\":\"c\"}", &out, &err));
	ASSERT_CONTAINS(out, "\"id\":42");
	free(out);
	close_db(db);
}

/* ---- validation ---- */

TEST(all_failing_fields_reported_together)
{
	sqlite3 *db = open_db();
	alyx__err err = {0};
	char *out;
	int n;

	ASSERT_EQ(write_doc(db, &users, NULL,
		"{\"name\":\"x\",\"role\":\"root\",\"age\":-1,\"score\":10,"
		"\"active\":\"yes\",\"created_at\":\"soon\",\"avatar\":\"@@\","
		"\"slug\":\"ABC\",\"website\":\"ftp:/nohost\","
		"\"ext_ref\":\"zz\",\"level\":7,\"bogus\":1,"
		"\"id\":\"nope\"}", &out, &err), ALYX_E_VALIDATION);
	ASSERT(out == NULL);
	ASSERT_EQ(count_code(err.details, "email", "required"), 1);
	ASSERT_EQ(count_code(err.details, "name", "min_length"), 1);
	ASSERT_EQ(count_code(err.details, "role", "enum"), 1);
	ASSERT_EQ(count_code(err.details, "age", "min"), 1);
	ASSERT_EQ(count_code(err.details, "score", "max"), 1);
	ASSERT_EQ(count_code(err.details, "active", "type"), 1);
	ASSERT_EQ(count_code(err.details, "created_at", "format"), 1);
	ASSERT_EQ(count_code(err.details, "avatar", "format"), 1);
	ASSERT_EQ(count_code(err.details, "slug", "pattern"), 1);
	ASSERT_EQ(count_code(err.details, "website", "format"), 1);
	ASSERT_EQ(count_code(err.details, "ext_ref", "format"), 1);
	ASSERT_EQ(count_code(err.details, "level", "enum"), 1);
	ASSERT_EQ(count_code(err.details, "bogus", "unknown_field"), 1);
	ASSERT_EQ(count_code(err.details, "id", "format"), 1);
	n = count_all(err.details);
	ASSERT_EQ(n, 14);
	ASSERT_CONTAINS(err.msg, "and 13 more");
	ASSERT_CONTAINS(err.details, "\"message\":");
	alyx__err_clear(&err);
	/* Nothing was written. */
	{
		sqlite3_stmt *st;

		sqlite3_prepare_v2(db, "SELECT count(*) FROM users", -1, &st,
				   NULL);
		sqlite3_step(st);
		ASSERT_EQ(sqlite3_column_int(st, 0), 0);
		sqlite3_finalize(st);
	}
	close_db(db);
}

TEST(required_null_and_type)
{
	sqlite3 *db = open_db();
	alyx__err err = {0};
	char *out;

	/* null on a non-nullable field without default: required. */
	ASSERT_EQ(write_doc(db, &users, NULL, "{\"email\":null}", &out, &err),
		  ALYX_E_VALIDATION);
	ASSERT_EQ(count_code(err.details, "email", "required"), 1);
	/* null on a defaulted field: the default applies. */
	ASSERT_OK(write_doc(db, &users, NULL,
		"{\"email\":\"c@example.com\",\"role\":null,\"name\":null}",
		&out, &err));
	ASSERT_CONTAINS(out, "\"role\":\"user\"");
	free(out);
	ASSERT_EQ(write_doc(db, &users, NULL,
		"{\"email\":5,\"age\":1.5,\"score\":\"1\",\"meta\":null}",
		&out, &err), ALYX_E_VALIDATION);
	ASSERT_EQ(count_code(err.details, "email", "type"), 1);
	ASSERT_EQ(count_code(err.details, "age", "type"), 1);
	ASSERT_EQ(count_code(err.details, "score", "type"), 1);
	ASSERT_EQ(count_all(err.details), 3);
	ASSERT_EQ(write_doc(db, &users, NULL, "[1]", &out, &err),
		  ALYX_E_BADJSON);
	ASSERT_EQ(write_doc(db, &users, NULL,
		"{\"email\":\"d@example.com\",\"email\":\"e@example.com\"}",
		&out, &err), ALYX_E_VALIDATION);
	ASSERT_EQ(count_code(err.details, "email", "duplicate_field"), 1);
	alyx__err_clear(&err);
	close_db(db);
}

TEST(lengths_count_code_points)
{
	sqlite3 *db = open_db();
	alyx__err err = {0};
	char *out;

	/* 10 code points, 20 bytes: fits maxLength 10. */
	ASSERT_OK(write_doc(db, &users, NULL,
		"{\"email\":\"f@example.com\",\"name\":"
		"\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		"\xc3\xa9\xc3\xa9\xc3\xa9\"}", &out, &err));
	free(out);
	ASSERT_EQ(write_doc(db, &users, NULL,
		"{\"email\":\"g@example.com\",\"name\":\"abcdefghijk\"}",
		&out, &err), ALYX_E_VALIDATION);
	ASSERT_EQ(count_code(err.details, "name", "max_length"), 1);
	/* One emoji (4 bytes) is one character: too short for 2. */
	ASSERT_EQ(write_doc(db, &users, NULL,
		"{\"email\":\"h@example.com\",\"name\":\"\xf0\x9f\x98\x80\"}",
		&out, &err), ALYX_E_VALIDATION);
	ASSERT_EQ(count_code(err.details, "name", "min_length"), 1);
	alyx__err_clear(&err);
	close_db(db);
}

TEST(invalid_utf8_is_a_field_error)
{
	sqlite3 *db = open_db();
	alyx__err err = {0};
	char *out;

	ASSERT_EQ(write_doc(db, &users, NULL,
		"{\"email\":\"i@example.com\",\"name\":\"ab\xed\xa0\x80\","
		"\"meta\":{\"k\":\"\xff\"}}", &out, &err), ALYX_E_VALIDATION);
	ASSERT_EQ(count_code(err.details, "name", "type"), 1);
	ASSERT_EQ(count_code(err.details, "meta", "type"), 1);
	ASSERT_CONTAINS(err.details, "UTF-8");
	alyx__err_clear(&err);
	close_db(db);
}

TEST(huge_strings)
{
	sqlite3 *db = open_db();
	alyx__err err = {0};
	size_t n = ALYX_DOC_MAX_STRING + 1;
	cJSON *j = cJSON_CreateObject();
	char *big = malloc(n + 1), *out;
	alyx__row row;
	alyx_buf b;

	memset(big, 'a', n);
	big[n] = '\0';
	cJSON_AddStringToObject(j, "title", big);
	ASSERT_EQ(alyx__doc_prepare(&posts, j, ALYX_DOC_CREATE, &row, &err),
		  ALYX_E_VALIDATION);
	ASSERT_EQ(count_code(err.details, "title", "max_length"), 1);
	cJSON_Delete(j);
	/* 1 MiB is fine and comes back whole. */
	big[1 << 20] = '\0';
	j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "title", big);
	ASSERT_OK(alyx__doc_prepare(&posts, j, ALYX_DOC_CREATE, &row, &err));
	alyx__buf_init(&b, 0);
	ASSERT_OK(alyx__doc_insert(db, &posts, &row, &b, &err));
	ASSERT_EQ(b.len, (size_t)(1 << 20) + strlen(
		"{\"id\":1,\"title\":\"\",\"author_id\":null}"));
	alyx__buf_free(&b);
	alyx__row_free(&row);
	cJSON_Delete(j);
	(void)out;
	free(big);
	alyx__err_clear(&err);
	close_db(db);
}

TEST(formats)
{
	static const char *emails_ok[] = {
		"a@b.co", "first.last+tag@sub.example.com", "x_y@ex-ample.io",
		"\xc3\xa9@\xc3\xa9xample.fr"};
	static const char *emails_bad[] = {
		"", "plain", "@b.co", "a@", "a@b", "a..b@c.com", ".a@b.com",
		"a.@b.com", "a b@c.com", "a@-b.com", "a@b-.com", "a@b..com",
		"a@b.123", "a@@b.com", "a(b)@c.com"};
	static const char *urls_ok[] = {
		"http://a", "https://example.com/p?q=1#f",
		"ftp://user:pw@host.example:21/x", "http://[::1]:8080/",
		"http://127.0.0.1", "custom+x://h.io"};
	static const char *urls_bad[] = {
		"", "example.com", "http:/x", "http://", "http:// a.com",
		"mailto:a@b.co", "http://a:port", "http://a:123456",
		"1http://a", "http://[zz]/", "http://-a.com"};
	sqlite3 *db = open_db();
	alyx__err err = {0};
	size_t i;
	char json[256], *out;

	for (i = 0; i < ALYX_ARRAY_LEN(emails_ok); i++) {
		snprintf(json, sizeof(json), "{\"email\":\"%s\"}", emails_ok[i]);
		if (write_doc(db, &users, NULL, json, &out, &err) != ALYX_OK)
			TH_FAIL("email %s refused: %s", emails_ok[i], err.msg);
		free(out);
	}
	for (i = 0; i < ALYX_ARRAY_LEN(emails_bad); i++) {
		snprintf(json, sizeof(json), "{\"email\":\"%s\"}",
			 emails_bad[i]);
		if (write_doc(db, &users, NULL, json, &out, &err) !=
		    ALYX_E_VALIDATION ||
		    count_code(err.details, "email", "format") != 1)
			TH_FAIL("email '%s' accepted", emails_bad[i]);
	}
	for (i = 0; i < ALYX_ARRAY_LEN(urls_ok); i++) {
		snprintf(json, sizeof(json),
			 "{\"email\":\"u%zu@x.io\",\"website\":\"%s\"}", i,
			 urls_ok[i]);
		if (write_doc(db, &users, NULL, json, &out, &err) != ALYX_OK)
			TH_FAIL("url %s refused: %s", urls_ok[i], err.msg);
		free(out);
	}
	for (i = 0; i < ALYX_ARRAY_LEN(urls_bad); i++) {
		snprintf(json, sizeof(json),
			 "{\"email\":\"v@x.io\",\"website\":\"%s\"}",
			 urls_bad[i]);
		if (write_doc(db, &users, NULL, json, &out, &err) !=
		    ALYX_E_VALIDATION ||
		    count_code(err.details, "website", "format") != 1)
			TH_FAIL("url '%s' accepted", urls_bad[i]);
	}
	alyx__err_clear(&err);
	close_db(db);
}

TEST(int64_edges)
{
	sqlite3 *db = open_db();
	alyx__err err = {0};
	alyx__row row;
	alyx_buf b;
	char *out;
	cJSON *j = cJSON_Parse("{\"title\":\"max\"}");
	int rc;

	ASSERT_OK(write_doc(db, &users, NULL,
		"{\"email\":\"big@x.io\",\"age\":null}", &out, &err));
	free(out);
	ASSERT_OK(write_doc(db, &posts, NULL,
		"{\"id\":9007199254740991,\"title\":\"t\"}", &out, &err));
	ASSERT_CONTAINS(out, "\"id\":9007199254740991");
	free(out);
	ASSERT_EQ(write_doc(db, &posts, NULL,
		"{\"id\":9007199254740993,\"title\":\"t\"}", &out, &err),
		ALYX_E_VALIDATION);
	ASSERT_EQ(count_code(err.details, "id", "type"), 1);
	ASSERT_EQ(write_doc(db, &posts, NULL,
		"{\"id\":1e300,\"title\":\"t\"}", &out, &err),
		ALYX_E_VALIDATION);
	ASSERT_EQ(write_doc(db, &posts, NULL,
		"{\"id\":-9223372036854775809,\"title\":\"t\"}", &out, &err),
		ALYX_E_VALIDATION);
	/* The full int64 range through text ids and stored rows. */
	ASSERT_OK(alyx__doc_prepare(&posts, j, ALYX_DOC_CREATE, &row, &err));
	row.set[0] = true;
	row.vals[0].kind = ALYX_V_INT;
	row.vals[0].i = INT64_MAX;
	alyx__buf_init(&b, 0);
	ASSERT_OK(alyx__doc_insert(db, &posts, &row, &b, &err));
	ASSERT_STR_EQ(b.data, "{\"id\":9223372036854775807,\"title\":\"max\","
		      "\"author_id\":null}");
	alyx__buf_free(&b);
	alyx__row_free(&row);
	cJSON_Delete(j);
	out = read_doc(db, &posts, "9223372036854775807", false, &rc);
	ASSERT_OK(rc);
	ASSERT_CONTAINS(out, "9223372036854775807");
	free(out);
	out = read_doc(db, &posts, "9223372036854775808", false, &rc);
	ASSERT_EQ(rc, ALYX_E_NOTFOUND);
	out = read_doc(db, &posts, "abc", false, &rc);
	ASSERT_EQ(rc, ALYX_E_NOTFOUND);
	alyx__err_clear(&err);
	close_db(db);
}

/* ---- updates ---- */

TEST(update_partial_onupdate_immutable_null)
{
	sqlite3 *db = open_db();
	alyx__err err = {0};
	char *out, *id, *ca, *ua, *ua2, *up;
	struct timespec ts = {0, 5 * 1000 * 1000};

	ASSERT_OK(write_doc(db, &users, NULL,
		"{\"email\":\"up@x.io\",\"name\":\"Bob\",\"age\":30}", &out,
		&err));
	id = get_str(out, "id");
	ca = get_str(out, "created_at");
	ua = get_str(out, "updated_at");
	free(out);
	nanosleep(&ts, NULL);
	ASSERT_OK(write_doc(db, &users, id, "{\"age\":31,\"name\":null}", &up,
			    &err));
	ASSERT_CONTAINS(up, "\"age\":31");
	ASSERT_CONTAINS(up, "\"name\":null");
	ASSERT_CONTAINS(up, "\"email\":\"up@x.io\"");
	ua2 = get_str(up, "updated_at");
	ASSERT(strcmp(ua2, ua) > 0);
	out = get_str(up, "created_at");
	ASSERT_STR_EQ(out, ca);
	free(out);
	free(up);
	ASSERT_EQ(write_doc(db, &users, id,
		"{\"id\":\"6f9619ff-8b86-4011-b42d-00c04fc964ff\","
		"\"email\":null,\"age\":200,\"nope\":1}", &up, &err),
		ALYX_E_VALIDATION);
	ASSERT_EQ(count_code(err.details, "id", "immutable"), 1);
	ASSERT_EQ(count_code(err.details, "email", "null"), 1);
	ASSERT_EQ(count_code(err.details, "age", "max"), 1);
	ASSERT_EQ(count_code(err.details, "nope", "unknown_field"), 1);
	ASSERT_EQ(count_all(err.details), 4);
	/* An update never reports required fields it was not given. */
	ASSERT_OK(write_doc(db, &users, id, "{}", &up, &err));
	free(up);
	ASSERT_EQ(write_doc(db, &users, "6f9619ff-8b86-4011-b42d-00c04fc964ff",
			    "{\"age\":1}", &up, &err), ALYX_E_NOTFOUND);
	ASSERT_EQ(write_doc(db, &users, "not-a-uuid", "{\"age\":1}", &up,
			    &err), ALYX_E_NOTFOUND);
	ASSERT_CONTAINS(err.details, "\"collection\":\"users\"");
	/* No onUpdate field and nothing given: the document as it is. */
	ASSERT_OK(write_doc(db, &posts, NULL, "{\"title\":\"p\"}", &up, &err));
	free(up);
	ASSERT_OK(write_doc(db, &posts, "1", "{}", &up, &err));
	ASSERT_STR_EQ(up, "{\"id\":1,\"title\":\"p\",\"author_id\":null}");
	free(up);
	ASSERT_EQ(write_doc(db, &posts, "2", "{}", &up, &err),
		  ALYX_E_NOTFOUND);
	free(id);
	free(ca);
	free(ua);
	free(ua2);
	alyx__err_clear(&err);
	close_db(db);
}

/* ---- conflicts ---- */

TEST(unique_conflict_names_field)
{
	sqlite3 *db = open_db();
	alyx__err err = {0};
	char *out, *id;

	ASSERT_OK(write_doc(db, &users, NULL, "{\"email\":\"dup@x.io\"}", &out,
			    &err));
	id = get_str(out, "id");
	free(out);
	ASSERT_EQ(write_doc(db, &users, NULL, "{\"email\":\"dup@x.io\"}", &out,
			    &err), ALYX_E_CONFLICT);
	ASSERT_CONTAINS(err.details, "\"field\":\"email\"");
	ASSERT_CONTAINS(err.details, "\"constraint\":\"unique\"");
	/* Primary key collisions are unique conflicts too. */
	ASSERT_OK(write_doc(db, &posts, NULL, "{\"id\":5,\"title\":\"a\"}",
			    &out, &err));
	free(out);
	ASSERT_EQ(write_doc(db, &posts, NULL, "{\"id\":5,\"title\":\"b\"}",
			    &out, &err), ALYX_E_CONFLICT);
	ASSERT_CONTAINS(err.details, "\"field\":\"id\"");
	{
		char json[128];

		snprintf(json, sizeof(json),
			 "{\"id\":\"%s\",\"email\":\"other@x.io\"}", id);
		ASSERT_EQ(write_doc(db, &users, NULL, json, &out, &err),
			  ALYX_E_CONFLICT);
		ASSERT_CONTAINS(err.details, "\"field\":\"id\"");
	}
	free(id);
	alyx__err_clear(&err);
	close_db(db);
}

TEST(foreign_keys_name_field_and_restrict_and_cascade)
{
	sqlite3 *db = open_db();
	alyx__err err = {0};
	char *out, *uid, json[160];
	int rc;

	ASSERT_EQ(write_doc(db, &posts, NULL,
		"{\"title\":\"x\",\"author_id\":"
		"\"6f9619ff-8b86-4011-b42d-00c04fc964ff\"}", &out, &err),
		ALYX_E_CONFLICT);
	ASSERT_CONTAINS(err.details, "\"field\":\"author_id\"");
	ASSERT_CONTAINS(err.details, "\"constraint\":\"foreign_key\"");
	ASSERT_CONTAINS(err.details, "\"collection\":\"users\"");
	ASSERT_OK(write_doc(db, &users, NULL, "{\"email\":\"fk@x.io\"}", &out,
			    &err));
	uid = get_str(out, "id");
	free(out);
	snprintf(json, sizeof(json), "{\"title\":\"x\",\"author_id\":\"%s\"}",
		 uid);
	ASSERT_OK(write_doc(db, &posts, NULL, json, &out, &err));
	free(out);
	/* Update to a missing author: named too. */
	ASSERT_EQ(write_doc(db, &posts, "1",
		"{\"author_id\":\"00000000-0000-4000-8000-000000000000\"}",
		&out, &err), ALYX_E_CONFLICT);
	ASSERT_CONTAINS(err.details, "\"field\":\"author_id\"");
	ASSERT_OK(write_doc(db, &comments, NULL, "{\"post_id\":1}", &out,
			    &err));
	free(out);
	/* restrict: the user is still referenced by posts.author_id. */
	ASSERT_EQ(alyx__doc_delete(db, &users, uid, &err), ALYX_E_CONFLICT);
	ASSERT_CONTAINS(err.details, "\"collection\":\"posts\"");
	ASSERT_CONTAINS(err.details, "\"field\":\"author_id\"");
	ASSERT_CONTAINS(err.msg, "posts.author_id");
	out = read_doc(db, &users, uid, false, &rc);
	ASSERT_OK(rc);
	free(out);
	/* cascade: deleting the post deletes its comment. */
	ASSERT_OK(alyx__doc_delete(db, &posts, "1", &err));
	{
		sqlite3_stmt *st;

		sqlite3_prepare_v2(db, "SELECT count(*) FROM comments", -1,
				   &st, NULL);
		sqlite3_step(st);
		ASSERT_EQ(sqlite3_column_int(st, 0), 0);
		sqlite3_finalize(st);
	}
	ASSERT_OK(alyx__doc_delete(db, &users, uid, &err));
	ASSERT_EQ(alyx__doc_delete(db, &users, uid, &err), ALYX_E_NOTFOUND);
	ASSERT_EQ(alyx__doc_delete(db, &posts, "x", &err), ALYX_E_NOTFOUND);
	out = read_doc(db, &users, uid, false, &rc);
	ASSERT_EQ(rc, ALYX_E_NOTFOUND);
	free(uid);
	alyx__err_clear(&err);
	close_db(db);
}

TEST(sqlite_error_mapping)
{
	sqlite3 *db = open_db();
	alyx__err err = {0};
	alyx__row row;
	alyx_buf b;
	cJSON *j = cJSON_Parse("{\"title\":\"t\"}");
	char path[] = "/tmp/alyx-doc-busy-XXXXXX", file[64];
	sqlite3 *a, *c2;
	int fd;

	/* NOT NULL from SQLite itself (validation bypassed). */
	ASSERT_OK(alyx__doc_prepare(&posts, j, ALYX_DOC_CREATE, &row, &err));
	alyx__value_clear(&row.vals[1]);
	alyx__buf_init(&b, 0);
	ASSERT_EQ(alyx__doc_insert(db, &posts, &row, &b, &err),
		  ALYX_E_VALIDATION);
	ASSERT_EQ(count_code(err.details, "title", "null"), 1);
	alyx__row_free(&row);
	cJSON_Delete(j);
	/* A missing table is an internal fault, not a crash. */
	ASSERT_OK(sqlite3_exec(db, "DROP TABLE comments", NULL, NULL, NULL));
	ASSERT_EQ(alyx__doc_read(db, &comments,
		"6f9619ff-8b86-4011-b42d-00c04fc964ff", false, &b, &err),
		ALYX_E_INTERNAL);
	ASSERT_CONTAINS(err.msg, "no such table");
	alyx__buf_free(&b);
	/* BUSY: another connection holds the write lock. */
	ASSERT(mkdtemp(path));
	snprintf(file, sizeof(file), "%s/db", path);
	ASSERT_OK(sqlite3_open(file, &a));
	ASSERT_OK(sqlite3_exec(a, ddl, NULL, NULL, NULL));
	ASSERT_OK(sqlite3_open(file, &c2));
	ASSERT_OK(sqlite3_exec(a, "BEGIN IMMEDIATE", NULL, NULL, NULL));
	j = cJSON_Parse("{\"title\":\"t\"}");
	ASSERT_OK(alyx__doc_prepare(&posts, j, ALYX_DOC_CREATE, &row, &err));
	alyx__buf_init(&b, 0);
	ASSERT_EQ(alyx__doc_insert(c2, &posts, &row, &b, &err), ALYX_E_BUSY);
	alyx__buf_free(&b);
	alyx__row_free(&row);
	cJSON_Delete(j);
	sqlite3_exec(a, "ROLLBACK", NULL, NULL, NULL);
	alyx__stmt_cache_clear(c2);
	ASSERT_OK(sqlite3_close(c2));
	ASSERT_OK(sqlite3_close(a));
	unlink(file);
	rmdir(path);
	(void)fd;
	alyx__err_clear(&err);
	close_db(db);
}

/* ---- statement cache ---- */

static int count_stmts(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int n = 0;

	while ((st = sqlite3_next_stmt(db, st)) != NULL)
		n++;
	return n;
}

TEST(stmt_cache_reuses_and_bounds)
{
	sqlite3 *db = open_db();
	sqlite3_stmt *a, *b2, *c;
	char sql[64];
	int i;

	ASSERT_OK(alyx__stmt_get(db, "SELECT 1", &a));
	ASSERT_EQ(sqlite3_step(a), SQLITE_ROW);
	/* a is busy: the same SQL gets a second statement. */
	ASSERT_OK(alyx__stmt_get(db, "SELECT 1", &b2));
	ASSERT(a != b2);
	alyx__stmt_put(a);
	alyx__stmt_put(b2);
	ASSERT_OK(alyx__stmt_get(db, "SELECT 1", &c));
	ASSERT(c == a || c == b2);
	alyx__stmt_put(c);
	for (i = 0; i < 200; i++) {
		snprintf(sql, sizeof(sql), "SELECT %d", i);
		ASSERT_OK(alyx__stmt_get(db, sql, &c));
		ASSERT_EQ(sqlite3_step(c), SQLITE_ROW);
		ASSERT_EQ(sqlite3_column_int(c, 0), i);
		alyx__stmt_put(c);
	}
	ASSERT(count_stmts(db) <= ALYX_STMT_CACHE_MAX);
	/* Statements outside the cache are never touched. */
	ASSERT_OK(sqlite3_prepare_v2(db, "SELECT 1", -1, &a, NULL));
	alyx__stmt_cache_clear(db);
	ASSERT_EQ(count_stmts(db), 1);
	sqlite3_finalize(a);
	ASSERT_OK(alyx__stmt_get(db, "SELECT 'x'", &c));
	ASSERT_EQ(sqlite3_step(c), SQLITE_ROW);
	alyx__stmt_put(c);
	close_db(db);
}

TEST(all_internal_fields_and_pk_value)
{
	alyx__field f[1];
	alyx__collection c;
	alyx__value v;
	char why[128];

	fixture();
	f[0] = mk("id", ALYX_T_INT);
	c = (alyx__collection){.name = "c", .fields = f, .n_fields = 1};
	ASSERT(alyx__doc_pk_value(&c, "-12", &v, why));
	ASSERT_EQ(v.i, -12);
	ASSERT(!alyx__doc_pk_value(&c, "1x", &v, why));
	ASSERT(!alyx__doc_pk_value(&c, NULL, &v, why));
	ASSERT(alyx__doc_pk_value(&users,
		"6F9619FF-8B86-4011-B42D-00C04FC964FF", &v, why));
	ASSERT_STR_EQ(v.s, "6f9619ff-8b86-4011-b42d-00c04fc964ff");
	alyx__value_clear(&v);
	pcre2_code_free(slug_re);
}

TEST(update_explicit_values_internal_and_nulls)
{
	sqlite3 *db = open_db();
	alyx__err err = {0};
	char *out, *id, *in;
	int rc;

	ASSERT_OK(write_doc(db, &users, NULL,
		"{\"email\":\"w@x.io\",\"name\":\"Al\",\"meta\":[1]}", &out, &err));
	id = get_str(out, "id");
	free(out);
	/* An explicit onUpdate value wins; internal fields are writable;
	 * nullable fields can be cleared. */
	ASSERT_OK(write_doc(db, &users, id,
		"{\"updated_at\":\"2001-02-03T04:05:06Z\",\"secret\":\"k\","
		"\"meta\":null,\"name\":null}", &out, &err));
	ASSERT_CONTAINS(out, "\"updated_at\":\"2001-02-03T04:05:06.000Z\"");
	ASSERT_CONTAINS(out, "\"meta\":null");
	ASSERT(!strstr(out, "secret"));
	free(out);
	in = read_doc(db, &users, id, true, &rc);
	ASSERT_CONTAINS(in, "\"secret\":\"k\"");
	free(in);
	free(id);
	alyx__err_clear(&err);
	close_db(db);
}

TEST(bad_literal_default_is_reported)
{
	sqlite3 *db = open_db();
	alyx__err err = {0};
	char *out;

	ufields[U_ACTIVE].default_json = "\"maybe\"";
	ASSERT_EQ(write_doc(db, &users, NULL, "{\"email\":\"z@x.io\"}", &out,
			    &err), ALYX_E_VALIDATION);
	ASSERT_EQ(count_code(err.details, "active", "type"), 1);
	alyx__err_clear(&err);
	close_db(db);
}

/* Every allocation of a create fails in turn: each run ends in ALYX_OK
 * or ALYX_E_NOMEM, never a crash, a leak or a wrong validation error. */
TEST(out_of_memory_is_reported_cleanly)
{
	sqlite3 *db = open_db();
	int k, ok = 0;

	for (k = 1; k <= 60; k++) {
		alyx__err err = {0};
		cJSON *j = cJSON_Parse("{\"email\":\"oom@x.io\",\"name\":\"Ann\","
			"\"meta\":{\"a\":[1,\"x\"]},\"slug\":\"abc\","
			"\"level\":2,\"avatar\":\"AAECAw==\",\"bogus\":true}");
		alyx__row row;
		alyx_buf b;
		int rc;

		/* Without the unknown key: the valid document. */
		cJSON_DeleteItemFromObject(j, k % 2 ? "bogus" : "nothing");
		alyx__buf_init(&b, 0);
		alyx__fail_alloc_after(k);
		rc = alyx__doc_prepare(&users, j, ALYX_DOC_CREATE, &row, &err);
		if (rc == ALYX_OK)
			rc = alyx__doc_insert(db, &users, &row, &b, &err);
		alyx__fail_alloc_after(0);
		if (k % 2)
			ASSERT(rc == ALYX_OK || rc == ALYX_E_NOMEM);
		else
			ASSERT(rc == ALYX_E_VALIDATION || rc == ALYX_E_NOMEM);
		ok += rc == ALYX_OK;
		alyx__row_free(&row);
		alyx__buf_free(&b);
		alyx__err_clear(&err);
		cJSON_Delete(j);
		sqlite3_exec(db, "DELETE FROM users", NULL, NULL, NULL);
	}
	ASSERT(ok > 0);
	close_db(db);
}

TEST(many_unknown_keys_are_bounded)
{
	sqlite3 *db = open_db();
	alyx__err err = {0};
	cJSON *j = cJSON_CreateObject();
	char key[600];
	alyx__row row;
	int i;

	memset(key, 'k', 500);
	key[500] = '\0';
	cJSON_AddNumberToObject(j, key, 1);
	for (i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "x%d", i);
		cJSON_AddNumberToObject(j, key, i);
	}
	ASSERT_EQ(alyx__doc_prepare(&users, j, ALYX_DOC_CREATE, &row, &err),
		  ALYX_E_VALIDATION);
	/* 20 named + 1 summary + email required. */
	ASSERT_EQ(count_all(err.details), 22);
	ASSERT_CONTAINS(err.details, "and 4981 more unknown fields");
	ASSERT(strlen(err.details) < 8000);
	cJSON_Delete(j);
	alyx__err_clear(&err);
	close_db(db);
}

/* ---- randomised documents ---- */

static unsigned long long rs = 88172645463325252ull;

static unsigned rnd(unsigned n)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return (unsigned)(rs % n);
}

static cJSON *rnd_value(void)
{
	static const char *strs[] = {
		"", "a", "ab", "abc", "x@y.io", "https://h.io/p", "user", "admin",
		"2026-01-02T03:04:05Z", "6f9619ff-8b86-4011-b42d-00c04fc964ff",
		"AAEC", "\xc3\xa9\xc3\xa9\xc3\xa9", "\xff\xfe", "null", "1",
		"waytoolongforthenamefield"};
	static const double nums[] = {0, 1, -1, 1.5, 2, 3, 150, 151, 0.5, 9.5,
				      1e300, -1e-300, 9007199254740993.0,
				      1767323045006.0};

	switch (rnd(7)) {
	case 0: return cJSON_CreateNull();
	case 1: return cJSON_CreateBool(rnd(2));
	case 2: return cJSON_CreateNumber(nums[rnd(ALYX_ARRAY_LEN(nums))]);
	case 3: case 4:
		return cJSON_CreateString(strs[rnd(ALYX_ARRAY_LEN(strs))]);
	case 5: return cJSON_Parse("[1,{\"a\":null}]");
	default: return cJSON_CreateObject();
	}
}

/* Any document: prepare ends in OK or VALIDATION; a prepared document is
 * stored (or conflicts on the unique email) and comes back as JSON that
 * parses; a validation error lists at least one field. */
TEST(random_documents_never_misbehave)
{
	sqlite3 *db = open_db();
	int i, ok = 0, invalid = 0;

	for (i = 0; i < 3000; i++) {
		cJSON *j = cJSON_CreateObject();
		alyx__err err = {0};
		alyx__row row;
		alyx_buf b;
		int k, n = (int)rnd(8), rc;

		for (k = 0; k < n; k++) {
			const char *name = rnd(20) ? ufields[rnd(U_N)].name
						   : "extra";

			cJSON_AddItemToObject(j, name, rnd_value());
		}
		if (rnd(2)) {
			char email[32];

			snprintf(email, sizeof(email), "r%d@x.io", i);
			cJSON_DeleteItemFromObject(j, "email");
			cJSON_AddStringToObject(j, "email", email);
		}
		alyx__buf_init(&b, 0);
		rc = alyx__doc_prepare(&users, j, ALYX_DOC_CREATE, &row, &err);
		if (rc == ALYX_OK) {
			rc = alyx__doc_insert(db, &users, &row, &b, &err);
			ASSERT(rc == ALYX_OK || rc == ALYX_E_CONFLICT);
			if (rc == ALYX_OK) {
				cJSON *back = cJSON_Parse(b.data);

				ASSERT(back != NULL);
				cJSON_Delete(back);
				ok++;
			}
		} else {
			ASSERT_EQ(rc, ALYX_E_VALIDATION);
			ASSERT(count_all(err.details) >= 1);
			invalid++;
		}
		alyx__row_free(&row);
		alyx__buf_free(&b);
		alyx__err_clear(&err);
		cJSON_Delete(j);
	}
	ASSERT(ok > 50);
	ASSERT(invalid > 50);
	close_db(db);
}

TEST_MAIN()
