/*
 * test-query.c - the query parsers, SQL compilation and execution:
 * errors that name their parameter/field/operator, injection attempts
 * through every parameter, REST and JSON forms giving identical SQL,
 * projection, expand, totals, limits, cursors, and LIKE against SQLite.
 */
#include "harness.h"
#include "fixture.h"

/* "id1,id2,..." of the docs of a query output. */
static char *ids_of(const char *out)
{
	cJSON *j = cJSON_Parse(out), *d;
	static char buf[4096];
	size_t o = 0;

	buf[0] = '\0';
	if (!j)
		return buf;
	cJSON_ArrayForEach(d, cJSON_GetObjectItem(j, "docs")) {
		cJSON *id = cJSON_GetObjectItem(d, "id");

		if (!id)
			id = cJSON_GetObjectItem(d, "name");
		if (cJSON_IsNumber(id))
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%d",
					      o ? "," : "", id->valueint);
		else if (cJSON_IsString(id))
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s",
					      o ? "," : "", id->valuestring);
	}
	cJSON_Delete(j);
	return buf;
}

static void seed_blog(sqlite3 *db)
{
	fx_insert(db, "orgs", "{\"id\":1,\"name\":\"Acme\"}");
	fx_insert(db, "orgs", "{\"id\":2,\"name\":\"Initech\"}");
	fx_insert(db, "users", "{\"id\":\"u1\",\"name\":\"Ann\",\"org_id\":1,"
		  "\"pw\":\"hash1\"}");
	fx_insert(db, "users", "{\"id\":\"u2\",\"name\":\"Bob\",\"org_id\":2}");
	fx_insert(db, "users", "{\"id\":\"u3\",\"name\":null}");
	fx_insert(db, "posts", "{\"id\":1,\"title\":\"Hello world\","
		  "\"author_id\":\"u1\",\"views\":10,\"score\":1.5,"
		  "\"published\":true,\"created_at\":\"2026-01-01T00:00:00Z\","
		  "\"tags\":[\"c\",\"db\",1],\"secret\":\"s1\"}");
	fx_insert(db, "posts", "{\"id\":2,\"title\":\"Second\","
		  "\"author_id\":\"u2\",\"views\":5,\"published\":false,"
		  "\"created_at\":\"2026-01-02T00:00:00Z\","
		  "\"tags\":[\"go\"]}");
	fx_insert(db, "posts", "{\"id\":3,\"title\":\"100% sure\","
		  "\"author_id\":\"u1\",\"views\":null,"
		  "\"created_at\":\"2026-01-03T00:00:00Z\","
		  "\"tags\":{\"a\":1}}");
	fx_insert(db, "posts", "{\"id\":4,\"title\":\"a_b\","
		  "\"author_id\":\"zz\",\"views\":7,"
		  "\"uid\":\"0C9A8B3E-1234-4ABC-8DEF-0123456789AB\","
		  "\"data\":\"AAEC\"}");
	fx_insert(db, "posts", "{\"id\":5,\"title\":\"hello again\","
		  "\"views\":10,\"published\":true,\"tags\":[1.0,true,null]}");
	fx_insert(db, "comments", "{\"id\":1,\"post_id\":1,\"body\":\"c1\"}");
	fx_insert(db, "comments", "{\"id\":2,\"post_id\":2,\"body\":\"c2\"}");
	fx_insert(db, "comments", "{\"id\":3,\"post_id\":null,\"body\":\"c3\"}");
	fx_insert(db, "comments", "{\"id\":4,\"post_id\":99,\"body\":\"c4\"}");
}

static char *run(sqlite3 *db, const char *coll, const char *qs)
{
	alyx__err err = {0};
	int code;
	char *out = fx_query(db, coll, qs, &code, &err);

	if (!out)
		fprintf(stderr, "  query '%s' failed: %s %s\n", qs, err.msg,
			err.details ? err.details : "");
	alyx__err_clear(&err);
	return out;
}

static const char *ids(sqlite3 *db, const char *coll, const char *qs)
{
	char *out = run(db, coll, qs);
	const char *r;

	if (!out)
		return "<error>";
	r = ids_of(out);
	free(out);
	return r;
}

TEST(filters_run)
{
	sqlite3 *db = fx_open();

	seed_blog(db);
	ASSERT_STR_EQ(ids(db, "posts", ""), "1,2,3,4,5");
	ASSERT_STR_EQ(ids(db, "posts", "filter=views:eq:10"), "1,5");
	ASSERT_STR_EQ(ids(db, "posts", "filter=views:ne:10"), "2,3,4");
	ASSERT_STR_EQ(ids(db, "posts", "filter=views:eq:null"), "3");
	ASSERT_STR_EQ(ids(db, "posts", "filter=views:ne:null"), "1,2,4,5");
	ASSERT_STR_EQ(ids(db, "posts", "filter=views:gt:5"), "1,4,5");
	ASSERT_STR_EQ(ids(db, "posts", "filter=views:lte:7"), "2,4");
	ASSERT_STR_EQ(ids(db, "posts", "filter=views:in:5,7"), "2,4");
	ASSERT_STR_EQ(ids(db, "posts", "filter=views:in:[5,7]"), "2,4");
	ASSERT_STR_EQ(ids(db, "posts", "filter=title:like:hello%25"), "1,5");
	ASSERT_STR_EQ(ids(db, "posts", "filter=title:like:100\\%25%25"), "3");
	ASSERT_STR_EQ(ids(db, "posts", "filter=title:like:a\\_b"), "4");
	ASSERT_STR_EQ(ids(db, "posts", "filter=title:contains:llo"), "1,5");
	ASSERT_STR_EQ(ids(db, "posts", "filter=title:contains:Hello"), "1");
	ASSERT_STR_EQ(ids(db, "posts", "filter=tags:contains:db"), "1");
	ASSERT_STR_EQ(ids(db, "posts", "filter=tags:contains:1"), "1,5");
	ASSERT_STR_EQ(ids(db, "posts", "filter=tags:contains:true"), "5");
	ASSERT_STR_EQ(ids(db, "posts", "filter=tags:contains:null"), "5");
	ASSERT_STR_EQ(ids(db, "posts", "filter=tags:contains:%221%22"), "");
	ASSERT_STR_EQ(ids(db, "posts", "filter=published:eq:true"), "1,5");
	ASSERT_STR_EQ(ids(db, "posts", "filter=published:ne:true"), "2,3,4");
	ASSERT_STR_EQ(ids(db, "posts", "filter=created_at:gte:2026-01-02"),
		      "2,3");
	ASSERT_STR_EQ(ids(db, "posts", "filter=created_at:lt:"
			  "2026-01-02T00:00:00.000%2B01:00"), "1");
	ASSERT_STR_EQ(ids(db, "posts", "filter=uid:eq:"
			  "0c9a8b3e-1234-4abc-8def-0123456789ab"), "4");
	ASSERT_STR_EQ(ids(db, "posts", "filter=uid:like:0C9A%25"), "4");
	ASSERT_STR_EQ(ids(db, "posts", "filter=data:eq:AAEC"), "4");
	ASSERT_STR_EQ(ids(db, "posts", "filter=score:gte:1"), "1");
	ASSERT_STR_EQ(ids(db, "posts", "filter=or(views:eq:5|title:like:a_b)"
			  "&filter=id:gt:1"), "2,4");
	ASSERT_STR_EQ(ids(db, "posts", "filter=views:gte:5&filter=views:lt:10"
			  "&sort=-views"), "4,2");
	ASSERT_STR_EQ(ids(db, "posts", "sort=-views,-id"), "5,1,4,2,3");
	ASSERT_STR_EQ(ids(db, "posts", "sort=views"), "3,2,4,1,5");
	ASSERT_STR_EQ(ids(db, "tags", ""), "");
	sqlite3_close(db);
}

/* Error code and details (must contain `want`) of a REST query. */
static void expect_err(const char *coll, const char *qs, int code,
		       const char *want)
{
	alyx__err err = {0};
	alyx__query *q = NULL;
	int rc = alyx__query_parse_str(&fx_schema, fx_coll(coll), qs, &q,
				       &err);

	if (rc != code || !err.details || !strstr(err.details, want)) {
		fprintf(stderr, "  '%s': rc %d (want %d), msg '%s', "
			"details %s (want %s)\n", qs, rc, code, err.msg,
			err.details ? err.details : "-", want);
		alyx__query_free(q);
		alyx__err_clear(&err);
		TH_FAIL("wrong error");
	}
	ASSERT(q == NULL);
	ASSERT(err.msg[0] != '\0');
	alyx__err_clear(&err);
}

static void expect_jerr(const char *coll, const char *json, int code,
			const char *want)
{
	alyx__err err = {0};
	alyx__query *q = NULL;
	cJSON *j = cJSON_Parse(json);
	int rc;

	ASSERT(j != NULL);
	rc = alyx__query_parse_json(&fx_schema, fx_coll(coll), j, &q, &err);
	cJSON_Delete(j);
	if (rc != code || !err.details || !strstr(err.details, want)) {
		fprintf(stderr, "  '%s': rc %d (want %d), msg '%s', "
			"details %s (want %s)\n", json, rc, code, err.msg,
			err.details ? err.details : "-", want);
		alyx__query_free(q);
		alyx__err_clear(&err);
		TH_FAIL("wrong error");
	}
	ASSERT(q == NULL);
	alyx__err_clear(&err);
}

#define BQ ALYX_E_BADQUERY
#define TB ALYX_E_TOOBIG

TEST(rest_errors)
{
	static const struct {
		const char *coll, *qs;
		int code;
		const char *want;	/* in the error details */
	} cases[] = {
		{"posts", "filter=nope:eq:1", BQ,
		 "{\"param\":\"filter\",\"field\":\"nope\"}"},
		{"posts", "filter=title:zz:1", BQ,
		 "\"field\":\"title\",\"op\":\"zz\""},
		{"posts", "filter=published:gt:1", BQ,
		 "\"field\":\"published\",\"op\":\"gt\""},
		{"posts", "filter=tags:lt:1", BQ, "\"op\":\"lt\""},
		{"posts", "filter=views:like:1", BQ, "\"op\":\"like\""},
		{"posts", "filter=views:contains:1", BQ, "\"op\":\"contains\""},
		{"posts", "filter=views:eq:abc", BQ,
		 "\"field\":\"views\",\"op\":\"eq\""},
		{"posts", "filter=views:eq:1.5", BQ, "\"field\":\"views\""},
		{"posts", "filter=published:eq:yes", BQ,
		 "\"field\":\"published\""},
		{"posts", "filter=created_at:gt:yesterday", BQ,
		 "\"field\":\"created_at\""},
		{"posts", "filter=uid:eq:123", BQ, "\"field\":\"uid\""},
		{"posts", "filter=views:in:1,x", BQ,
		 "\"field\":\"views\",\"op\":\"in\""},
		{"posts", "filter=views:in:[1,null]", BQ, "\"op\":\"in\""},
		{"posts", "filter=views:gt:null", BQ, "\"op\":\"gt\""},
		{"posts", "filter=tags:contains:[1]", BQ,
		 "\"op\":\"contains\""},
		{"posts", "filter=secret:eq:x", BQ, "\"field\":\"secret\""},
		{"posts", "filter=title", BQ, "\"param\":\"filter\""},
		{"posts", "filter=title:eq", BQ, "\"param\":\"filter\""},
		{"posts", "filter=or(title:eq:a|nope:eq:1)", BQ,
		 "\"field\":\"nope\""},
		{"posts", "filter=or(title:eq:a\\)", BQ,
		 "\"param\":\"filter\""},
		{"posts", "filter=title:eq:a%00b", BQ, "\"field\":\"title\""},
		{"posts", "filter=title:eq:%zz", BQ, "{}"},
		{"posts", "sort=secret", BQ,
		 "{\"param\":\"sort\",\"field\":\"secret\"}"},
		{"posts", "sort=nope", BQ, "\"field\":\"nope\""},
		{"posts", "sort=tags", BQ, "\"field\":\"tags\""},
		{"posts", "sort=title,-title", BQ, "\"field\":\"title\""},
		{"posts", "sort=title,,id", BQ, "\"param\":\"sort\""},
		{"posts", "fields=secret", BQ,
		 "{\"param\":\"fields\",\"field\":\"secret\"}"},
		{"posts", "fields=id,nope", BQ, "\"field\":\"nope\""},
		{"posts", "limit=0", BQ, "{\"param\":\"limit\"}"},
		{"posts", "limit=1001", BQ, "{\"param\":\"limit\"}"},
		{"posts", "limit=-1", BQ, "{\"param\":\"limit\"}"},
		{"posts", "limit=ten", BQ, "{\"param\":\"limit\"}"},
		{"posts", "limit=99999999999999999999", BQ,
		 "{\"param\":\"limit\"}"},
		{"posts", "offset=-1", BQ, "{\"param\":\"offset\"}"},
		{"posts", "limit=5&limit=6", BQ, "{\"param\":\"limit\"}"},
		{"posts", "bogus=1", BQ, "{\"param\":\"bogus\"}"},
		{"posts", "total=yes", BQ, "{\"param\":\"total\"}"},
		{"posts", "after=!!!", BQ, "{\"param\":\"after\"}"},
		{"posts", "after=AQE", BQ, "{\"param\":\"after\"}"},
		{"posts", "expand=title", BQ,
		 "{\"param\":\"expand\",\"field\":\"title\"}"},
		{"comments", "expand=post_id.nope", BQ, "\"field\":\"nope\""},
		{"comments", "expand=post_id.author_id.org_id.id", BQ,
		 "\"param\":\"expand\""},
		{"users", "expand=pw", BQ, "\"field\":\"pw\""},
	};

	char big[ALYX_QUERY_MAX_VALUE + 64];
	char *many;
	size_t i, o;

	for (i = 0; i < ALYX_ARRAY_LEN(cases); i++)
		expect_err(cases[i].coll, cases[i].qs, cases[i].code,
			   cases[i].want);
	/* caps */
	o = (size_t)snprintf(big, sizeof(big), "filter=title:eq:");
	memset(big + o, 'x', ALYX_QUERY_MAX_VALUE + 1);
	big[o + ALYX_QUERY_MAX_VALUE + 1] = '\0';
	expect_err("posts", big, TB, "\"field\":\"title\"");
	many = malloc(64 * 1024);
	for (i = 0, o = 0; i <= ALYX_QUERY_MAX_FILTERS; i++)
		o += (size_t)sprintf(many + o, "filter=views:gt:%zu&", i);
	expect_err("posts", many, TB, "\"param\":\"filter\"");
	o = (size_t)sprintf(many, "filter=views:in:0");
	for (i = 1; i <= ALYX_QUERY_MAX_LIST; i++)
		o += (size_t)sprintf(many + o, ",%zu", i);
	expect_err("posts", many, TB, "\"op\":\"in\"");
	free(many);
	many = malloc(ALYX_QUERY_MAX_TEXT + 16);
	memset(many, '&', ALYX_QUERY_MAX_TEXT + 8);
	many[ALYX_QUERY_MAX_TEXT + 8] = '\0';
	expect_err("posts", many, TB, "{}");
	free(many);
}

TEST(json_errors)
{
	char deep[1024];
	size_t i, o = 0;

	expect_jerr("posts", "{\"filter\":{\"nope\":1}}", BQ,
		    "{\"param\":\"filter\",\"field\":\"nope\"}");
	expect_jerr("posts", "{\"filter\":{\"views\":{\"$zz\":1}}}", BQ,
		    "\"field\":\"views\",\"op\":\"zz\"");
	expect_jerr("posts", "{\"filter\":{\"views\":{\"$gt\":\"x\"}}}", BQ,
		    "\"field\":\"views\",\"op\":\"gt\"");
	expect_jerr("posts", "{\"filter\":{\"views\":{\"$gt\":1,\"a\":2}}}",
		    BQ, "\"param\":\"filter\"");
	expect_jerr("posts", "{\"filter\":{\"$nor\":[]}}", BQ,
		    "\"op\":\"$nor\"");
	expect_jerr("posts", "{\"filter\":{\"$or\":[]}}", BQ, "\"op\":\"$or\"");
	expect_jerr("posts", "{\"filter\":{\"$or\":[1]}}", BQ,
		    "\"param\":\"filter\"");
	expect_jerr("posts", "{\"filter\":{\"views\":{\"$in\":5}}}", BQ,
		    "\"op\":\"in\"");
	expect_jerr("posts", "{\"filter\":{\"views\":{\"$lt\":null}}}", BQ,
		    "\"op\":\"lt\"");
	expect_jerr("posts", "{\"filter\":{\"published\":{\"$gte\":true}}}",
		    BQ, "\"op\":\"gte\"");
	expect_jerr("posts", "{\"filter\":{\"tags\":{\"$contains\":{}}}}", BQ,
		    "\"op\":\"contains\"");
	expect_jerr("posts", "{\"filter\":[]}", BQ, "\"param\":\"filter\"");
	expect_jerr("posts", "{\"limit\":2000}", BQ, "{\"param\":\"limit\"}");
	expect_jerr("posts", "{\"limit\":1.5}", BQ, "{\"param\":\"limit\"}");
	expect_jerr("posts", "{\"limit\":\"5\"}", BQ, "{\"param\":\"limit\"}");
	expect_jerr("posts", "{\"offset\":-3}", BQ, "{\"param\":\"offset\"}");
	expect_jerr("posts", "{\"sort\":[1]}", BQ, "{\"param\":\"sort\"}");
	expect_jerr("posts", "{\"sort\":[\"-secret\"]}", BQ,
		    "\"field\":\"secret\"");
	expect_jerr("posts", "{\"expand\":[\"views\"]}", BQ,
		    "\"field\":\"views\"");
	expect_jerr("posts", "{\"fields\":\"nope\"}", BQ,
		    "\"field\":\"nope\"");
	expect_jerr("posts", "{\"total\":1}", BQ, "{\"param\":\"total\"}");
	expect_jerr("posts", "{\"after\":5}", BQ, "{\"param\":\"after\"}");
	expect_jerr("posts", "{\"bogus\":5}", BQ, "{\"param\":\"bogus\"}");
	expect_jerr("posts", "{\"limit\":5,\"limit\":6}", BQ,
		    "{\"param\":\"limit\"}");
	expect_jerr("posts", "[1]", BQ, "{}");
	for (i = 0; i < 10; i++)
		o += (size_t)sprintf(deep + o, "{\"$or\":[");
	o += (size_t)sprintf(deep + o, "{\"views\":1}");
	for (i = 0; i < 10; i++)
		o += (size_t)sprintf(deep + o, "]}");
	{
		char wrap[1200];

		snprintf(wrap, sizeof(wrap), "{\"filter\":%s}", deep);
		expect_jerr("posts", wrap, TB, "\"param\":\"filter\"");
	}
}

static char *sql_of_str(const char *qs)
{
	alyx__err err = {0};
	alyx__query *q = NULL;
	alyx_buf b;

	alyx__buf_init(&b, 0);
	if (alyx__query_parse_str(&fx_schema, fx_coll("posts"), qs, &q,
				  &err) != ALYX_OK ||
	    alyx__query_sql(q, NULL, &b, &err) != ALYX_OK) {
		fprintf(stderr, "  %s: %s %s\n", qs, err.msg,
			err.details ? err.details : "");
		alyx__err_clear(&err);
		alyx__query_free(q);
		alyx__buf_free(&b);
		return NULL;
	}
	alyx__query_free(q);
	return alyx__buf_take(&b);
}

static char *sql_of_json(const char *json)
{
	alyx__err err = {0};
	alyx__query *q = NULL;
	cJSON *j = cJSON_Parse(json);
	alyx_buf b;

	alyx__buf_init(&b, 0);
	if (!j || alyx__query_parse_json(&fx_schema, fx_coll("posts"), j, &q,
					 &err) != ALYX_OK ||
	    alyx__query_sql(q, NULL, &b, &err) != ALYX_OK) {
		fprintf(stderr, "  %s: %s %s\n", json, err.msg,
			err.details ? err.details : "");
		alyx__err_clear(&err);
		cJSON_Delete(j);
		alyx__query_free(q);
		alyx__buf_free(&b);
		return NULL;
	}
	cJSON_Delete(j);
	alyx__query_free(q);
	return alyx__buf_take(&b);
}

TEST(rest_and_json_same_sql)
{
	static const char *const pairs[][2] = {
		{"", "{}"},
		{"filter=views:eq:10", "{\"filter\":{\"views\":10}}"},
		{"filter=views:eq:10&filter=title:like:a%25&sort=-views,title"
		 "&limit=20&offset=3&fields=title&total=true",
		 "{\"filter\":{\"views\":{\"$eq\":10},\"title\":{\"$like\":"
		 "\"a%\"}},\"sort\":[\"-views\",\"title\"],\"limit\":20,"
		 "\"offset\":3,\"fields\":[\"title\"],\"total\":true}"},
		{"filter=views:gte:1&filter=views:lt:5",
		 "{\"filter\":{\"views\":{\"$gte\":1,\"$lt\":5}}}"},
		{"filter=or(views:eq:1|title:contains:x)&filter=published:ne:"
		 "null",
		 "{\"filter\":{\"$or\":[{\"views\":1},{\"title\":{"
		 "\"$contains\":\"x\"}}],\"published\":{\"$ne\":null}}}"},
		{"filter=author_id:in:u1,u\\,2&filter=tags:contains:db",
		 "{\"filter\":{\"author_id\":{\"$in\":[\"u1\",\"u,2\"]},"
		 "\"tags\":{\"$contains\":\"db\"}}}"},
		{"filter=views:eq:null", "{\"filter\":{\"views\":null}}"},
		{"filter=tags:contains:1.5&filter=tags:contains:false",
		 "{\"filter\":{\"$and\":[{\"tags\":{\"$contains\":1.5}},"
		 "{\"tags\":{\"$contains\":false}}]}}"},
		{"expand=author_id&sort=created_at",
		 "{\"expand\":[\"author_id\"],\"sort\":\"created_at\"}"},
	};
	size_t i;

	for (i = 0; i < ALYX_ARRAY_LEN(pairs); i++) {
		char *a = sql_of_str(pairs[i][0]);
		char *b = sql_of_json(pairs[i][1]);

		ASSERT(a && b);
		ASSERT_STR_EQ(a, b);
		alyx__free(a);
		alyx__free(b);
	}
}

TEST(sql_text)
{
	char *s = sql_of_str("filter=views:eq:1&filter=or(title:like:x|"
			     "tags:contains:a)&filter=body:ne:null&sort=-score");

	ASSERT(s);
	ASSERT_STR_EQ(s, "SELECT _m.\"id\", _m.\"title\", _m.\"body\", "
		      "_m.\"author_id\", _m.\"views\", _m.\"score\", "
		      "_m.\"published\", _m.\"created_at\", _m.\"tags\", "
		      "_m.\"uid\", _m.\"data\" FROM \"posts\" AS _m WHERE "
		      "(_m.\"views\" = ? AND (_m.\"title\" LIKE ? ESCAPE '\\' "
		      "OR (json_type(_m.\"tags\") = 'array' AND EXISTS (SELECT "
		      "1 FROM json_each(_m.\"tags\") AS _je WHERE _je.type = "
		      "'text' AND _je.value = ?))) AND _m.\"body\" IS NOT "
		      "NULL) ORDER BY _m.\"score\" DESC, _m.\"id\" ASC "
		      "LIMIT ? OFFSET ?");
	alyx__free(s);
}

TEST(injection)
{
	sqlite3 *db = fx_open();
	static const char *const bad[] = {
		"filter=title%22%3B%20DROP%20TABLE%20posts%3B%20--:eq:1",
		"filter=title:eq%22%20OR%201=1%20--:1",
		"sort=title%22%3B%20DROP%20TABLE%20posts%3B%20--",
		"sort=-%22id%22",
		"fields=id,title%22%20FROM%20users%20--",
		"expand=author_id%22)%20--",
		"filter=or(title%22)%20OR%201=1%20--:eq:1)",
		"limit=1;DROP",
		"offset=1%20OR%201=1",
		"title%22=1",
	};
	size_t i;
	char *out, *s;

	seed_blog(db);
	for (i = 0; i < ALYX_ARRAY_LEN(bad); i++) {
		alyx__err err = {0};
		int code = 0;

		out = fx_query(db, "posts", bad[i], &code, &err);
		if (out)
			fprintf(stderr, "  accepted: %s\n", bad[i]);
		ASSERT(out == NULL);
		ASSERT_EQ(code, ALYX_E_BADQUERY);
		alyx__err_clear(&err);
	}
	/* Values with quotes are data: bound, never spliced. */
	ASSERT_STR_EQ(ids(db, "posts", "filter=title:eq:%27%3B%20DROP%20TABLE"
			  "%20posts%3B%20--"), "");
	ASSERT_STR_EQ(ids(db, "posts", "filter=title:eq:x%22%20OR%20%221%22="
			  "%221"), "");
	ASSERT_STR_EQ(ids(db, "posts", "filter=title:like:%25%27%20OR%201=1"
			  "%20--"), "");
	ASSERT_STR_EQ(ids(db, "posts", "filter=author_id:in:'),('x"), "");
	/* ... even when they look like the end of an or() group. */
	ASSERT_STR_EQ(ids(db, "posts", "filter=or(title:eq:1)%20OR%201=1%20--"
			  ":eq:1)"), "");
	ASSERT_STR_EQ(ids(db, "posts", "filter=tags:contains:%27)%20OR%201"),
		      "");
	s = sql_of_str("filter=title:eq:%27%3B%20DROP%20TABLE%20x%3B--"
		       "&filter=title:like:%22%3B&filter=author_id:in:a%27,b");
	ASSERT(s && !strstr(s, "DROP") && !strstr(s, "'a"));
	alyx__free(s);
	/* The table is still there, with its rows. */
	ASSERT_STR_EQ(ids(db, "posts", ""), "1,2,3,4,5");
	/* The JSON form: keys are field names, looked up, never spliced. */
	expect_jerr("posts", "{\"filter\":{\"title\\\" OR 1=1 --\":1}}", BQ,
		    "\"field\":\"title\\\" OR 1=1 --\"");
	expect_jerr("posts", "{\"sort\":[\"id; DROP TABLE posts\"]}", BQ,
		    "\"param\":\"sort\"");
	sqlite3_close(db);
}

TEST(projection_and_internal)
{
	sqlite3 *db = fx_open();
	cJSON *j, *d;
	char *out;

	seed_blog(db);
	out = run(db, "posts", "fields=title&sort=-id&limit=1");
	ASSERT(out);
	ASSERT_STR_EQ(out, "{\"docs\":[{\"id\":5,\"title\":\"hello again\"}],"
		      "\"next\":\"AQEAAAEBAAAAAAAAAAU\"}");
	free(out);
	out = run(db, "posts", "filter=id:eq:1");
	ASSERT(out && !strstr(out, "secret") && !strstr(out, "s1"));
	j = cJSON_Parse(out);
	d = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "docs"), 0);
	ASSERT_EQ(cJSON_GetArraySize(d), 11);
	ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(d, "published")));
	ASSERT_STR_EQ(cJSON_GetObjectItem(d, "created_at")->valuestring,
		      "2026-01-01T00:00:00.000Z");
	ASSERT(cJSON_IsArray(cJSON_GetObjectItem(d, "tags")));
	cJSON_Delete(j);
	free(out);
	out = run(db, "users", "");
	ASSERT(out && !strstr(out, "pw") && !strstr(out, "hash1"));
	free(out);
	sqlite3_close(db);
}

/* A collection's read plan (made with the schema; the fixture's are hand
 * built without one) gives the same answers as each query's own select
 * list: every field, internal fields hidden, sorts, cursors, totals; and it
 * is not used where a query picks fields or expands. */
TEST(read_plan_same_answers)
{
	static const struct {
		const char *coll, *qs;
	} qs[] = {
		{"posts", ""},
		{"posts", "sort=-views&limit=2"},
		{"posts", "filter=views:gte:5&limit=2&total=true"},
		{"posts", "fields=title&sort=-id&limit=1"},
		{"posts", "expand=author_id&limit=3"},
		{"users", ""},
		{"users", "sort=name"},
		{"things", ""},
		{"tags", "sort=-rank&limit=1"},
	};
	sqlite3 *db = fx_open();

	seed_blog(db);
	for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
		alyx__collection *c = (alyx__collection *)fx_coll(qs[i].coll);
		char *plain, *planned;

		ASSERT(c && !c->read_plan);
		plain = run(db, qs[i].coll, qs[i].qs);
		c->read_plan = alyx__qplan_new(c);
		ASSERT(c->read_plan);
		planned = run(db, qs[i].coll, qs[i].qs);
		alyx__qplan_free(c->read_plan);
		c->read_plan = NULL;
		ASSERT(plain && planned);
		if (strcmp(plain, planned))
			TH_FAIL("%s?%s: %s != %s", qs[i].coll, qs[i].qs,
				planned, plain);
		free(plain);
		free(planned);
	}
	sqlite3_close(db);
}

/* Two queries that must be one: the same SQL and the same answer from
 * db, which is returned (the caller frees it). */
static char *same_sql_and_answer(sqlite3 *db, const alyx__query *a,
				 const alyx__query *b)
{
	alyx_buf sa, sb, oa, ob;
	alyx__err err = {0};

	alyx__buf_init(&sa, 0);
	alyx__buf_init(&sb, 0);
	alyx__buf_init(&oa, 0);
	alyx__buf_init(&ob, 0);
	ASSERT_EQ(alyx__query_sql(a, NULL, &sa, &err), ALYX_OK);
	ASSERT_EQ(alyx__query_sql(b, NULL, &sb, &err), ALYX_OK);
	ASSERT_STR_EQ(sb.data, sa.data);
	ASSERT_EQ(alyx__query_exec(db, a, NULL, &oa, &err), ALYX_OK);
	ASSERT_EQ(alyx__query_exec(db, b, NULL, &ob, &err), ALYX_OK);
	ASSERT_STR_EQ(ob.data, oa.data);
	alyx__buf_free(&sa);
	alyx__buf_free(&sb);
	alyx__buf_free(&ob);
	return alyx__buf_take(&oa);
}

/* A get under a rule runs the query of alyx__query_by_pk: the same SQL
 * and answers as the REST form it stands for, for a found, a missing and
 * a text key (upper-case uuids compare as their lower-case form). */
TEST(by_pk_same_as_rest_form)
{
	static const struct {
		const char *coll, *id;
	} ids[] = {
		{"posts", "1"}, {"posts", "4"}, {"posts", "99"},
		{"users", "u2"}, {"users", "nobody"},
	};
	sqlite3 *db = fx_open();

	seed_blog(db);
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		const alyx__collection *c = fx_coll(ids[i].coll);
		alyx__query *rest = NULL, *direct = NULL;
		alyx__value pk;
		alyx__err err = {0};
		char qs[128], why[128], *o;

		snprintf(qs, sizeof(qs), "filter=%s:eq:%s&limit=1",
			 c->fields[c->pk].name, ids[i].id);
		ASSERT_EQ(alyx__query_parse_str(&fx_schema, c, qs, &rest,
						&err), ALYX_OK);
		ASSERT(alyx__doc_pk_value(c, ids[i].id, &pk, why));
		ASSERT_EQ(alyx__query_by_pk(&fx_schema, c, &pk, &direct,
					    &err), ALYX_OK);
		ASSERT(pk.kind == ALYX_V_NULL && !pk.s);	/* taken over */
		ASSERT_EQ(direct->limit, 1);
		ASSERT_EQ(direct->n_sort, rest->n_sort);
		o = same_sql_and_answer(db, rest, direct);
		ASSERT(strstr(o, "\"docs\":[]") ==
		       (strcmp(ids[i].id, "99") && strcmp(ids[i].id, "nobody")
			? NULL : o + 1));
		alyx__free(o);
		alyx__query_free(rest);
		alyx__query_free(direct);
	}
	sqlite3_close(db);
}

/* The HTTP layer passes a query's parameters decoded: the same query,
 * SQL, answers and errors (code, message, details) as the string form,
 * for good queries and each kind of bad one. */
TEST(args_same_as_string)
{
	static const char *const qss[] = {
		"",
		"filter=views:eq:10",
		"filter=author_id:eq:u1&sort=-created_at&limit=20",
		("filter=title:like:%25ost%25&sort=title,-views&limit=5"
		 "&offset=1&total=true"),
		"filter=title:eq:a+b&fields=title,views",
		"filter=or(views:eq:1|title:contains:x)&expand=author_id",
		"filter=author_id:in:u1,u\\,2&limit=2&&offset=0",
		"filter=views:gte:1&filter=views:lt:5&total=false",
		"bogus=1",
		"limit=0",
		"limit=abc",
		"sort=title&sort=views",
		"filter=nofield:eq:1",
		"filter=views:eq:notanint",
		"=x",
		"filter",
		"sort=-secret",
		"total=maybe",
		"after=%21%21",
	};
	sqlite3 *db = fx_open();
	const alyx__collection *c = fx_coll("posts");
	size_t good = 0;

	seed_blog(db);
	for (size_t i = 0; i < ALYX_ARRAY_LEN(qss); i++) {
		alyx__qarg args[16];
		char store[1024];
		alyx__query *qs = NULL, *qa = NULL;
		alyx__err e1 = {0}, e2 = {0};
		size_t n = fx_split_args(qss[i], args, 16, store,
					 sizeof(store));
		int r1, r2;

		ASSERT(n != (size_t)-1);
		r1 = alyx__query_parse_str(&fx_schema, c, qss[i], &qs, &e1);
		r2 = alyx__query_parse_args(&fx_schema, c, args, n, &qa, &e2);
		ASSERT_EQ(r2, r1);
		ASSERT_EQ(e2.code, e1.code);
		ASSERT_STR_EQ(e2.msg, e1.msg);
		ASSERT_STR_EQ(e2.details ? e2.details : "-",
			      e1.details ? e1.details : "-");
		if (r1 == ALYX_OK) {
			good++;
			ASSERT_EQ(qa->limit, qs->limit);
			ASSERT_EQ(qa->offset, qs->offset);
			ASSERT_EQ(qa->total, qs->total);
			alyx__free(same_sql_and_answer(db, qs, qa));
		} else {
			ASSERT(!qs && !qa);
		}
		alyx__query_free(qs);
		alyx__query_free(qa);
		alyx__err_clear(&e1);
		alyx__err_clear(&e2);
	}
	ASSERT_EQ(good, 8);	/* the first 8: the rest are refused */
	sqlite3_close(db);
}

TEST(total_limit_next)
{
	sqlite3 *db = fx_open();
	alyx__err err = {0};
	char *out, qs[256];
	cJSON *j, *next;
	char seen[256] = "";
	int pages = 0, code;

	seed_blog(db);
	out = run(db, "posts", "filter=views:gte:5&limit=2&total=true");
	ASSERT(out);
	j = cJSON_Parse(out);
	ASSERT_EQ(cJSON_GetObjectItem(j, "total")->valueint, 4);
	ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(j, "docs")), 2);
	ASSERT(cJSON_IsString(cJSON_GetObjectItem(j, "next")));
	cJSON_Delete(j);
	free(out);
	out = run(db, "posts", "limit=5");
	ASSERT(out && !strstr(out, "\"next\"") && !strstr(out, "\"total\""));
	free(out);
	/* Walk every page of 2 with the cursor, sorted by a nullable key. */
	snprintf(qs, sizeof(qs), "sort=-views&limit=2");
	for (;;) {
		out = run(db, "posts", qs);
		ASSERT(out);
		strcat(seen, ids_of(out));
		strcat(seen, "|");
		pages++;
		j = cJSON_Parse(out);
		next = cJSON_GetObjectItem(j, "next");
		if (!next) {
			cJSON_Delete(j);
			free(out);
			break;
		}
		snprintf(qs, sizeof(qs), "sort=-views&limit=2&after=%s",
			 next->valuestring);
		cJSON_Delete(j);
		free(out);
		ASSERT(pages < 10);
	}
	ASSERT_STR_EQ(seen, "1,5|4,2|3|");
	/* A cursor is bound to its sort. */
	out = run(db, "posts", "sort=-views&limit=1");
	j = cJSON_Parse(out);
	snprintf(qs, sizeof(qs), "sort=views&after=%s",
		 cJSON_GetObjectItem(j, "next")->valuestring);
	ASSERT(fx_query(db, "posts", qs, &code, &err) == NULL);
	ASSERT_EQ(code, ALYX_E_BADQUERY);
	ASSERT(strstr(err.details, "\"after\""));
	alyx__err_clear(&err);
	/* Truncated, extended, and non-canonical cursors are refused. */
	snprintf(qs, sizeof(qs), "sort=-views&after=%.*s",
		 (int)strlen(cJSON_GetObjectItem(j, "next")->valuestring) - 2,
		 cJSON_GetObjectItem(j, "next")->valuestring);
	ASSERT(fx_query(db, "posts", qs, &code, &err) == NULL);
	alyx__err_clear(&err);
	snprintf(qs, sizeof(qs), "sort=-views&after=%sAA",
		 cJSON_GetObjectItem(j, "next")->valuestring);
	ASSERT(fx_query(db, "posts", qs, &code, &err) == NULL);
	alyx__err_clear(&err);
	cJSON_Delete(j);
	free(out);
	/* Offset still works, alone or after a cursor. */
	ASSERT_STR_EQ(ids(db, "posts", "offset=3"), "4,5");
	ASSERT_STR_EQ(ids(db, "posts", "limit=1&offset=1"), "2");
	sqlite3_close(db);
}

/* Keyset pages on a text primary key with a nullable, duplicated key. */
TEST(text_key_pages)
{
	sqlite3 *db = fx_open();
	static const char *const sorts[] = {"rank", "-rank", "-name",
					    "rank,-name"};
	char json[128], qs[512], full[4096], paged[4096];
	size_t si;
	int i;

	for (i = 0; i < 30; i++) {
		if (i % 4 == 3)
			snprintf(json, sizeof(json), "{\"name\":\"t\xc3\xa9"
				 "%02d\",\"rank\":null}", (i * 11) % 30);
		else
			snprintf(json, sizeof(json), "{\"name\":\"T%02d\","
				 "\"rank\":%d}", (i * 11) % 30, i % 3);
		fx_insert(db, "tags", json);
	}
	for (si = 0; si < ALYX_ARRAY_LEN(sorts); si++) {
		snprintf(qs, sizeof(qs), "sort=%s&limit=1000", sorts[si]);
		snprintf(full, sizeof(full), "%s", ids(db, "tags", qs));
		paged[0] = '\0';
		snprintf(qs, sizeof(qs), "sort=%s&limit=4", sorts[si]);
		for (i = 0; i < 20; i++) {
			char *out = run(db, "tags", qs);
			cJSON *j = cJSON_Parse(out), *next;

			ASSERT(j);
			if (paged[0])
				strcat(paged, ",");
			strcat(paged, ids_of(out));
			next = cJSON_GetObjectItem(j, "next");
			if (next)
				snprintf(qs, sizeof(qs),
					 "sort=%s&limit=4&after=%s",
					 sorts[si], next->valuestring);
			cJSON_Delete(j);
			free(out);
			if (!next)
				break;
		}
		ASSERT_STR_EQ(paged, full);
	}
	sqlite3_close(db);
}

TEST(expand)
{
	sqlite3 *db = fx_open();
	char *out;

	seed_blog(db);
	out = run(db, "comments", "expand=post_id.author_id.org_id,post_id"
		  "&fields=body");
	ASSERT(out);
	ASSERT_STR_EQ(out,
		"{\"docs\":["
		"{\"id\":1,\"body\":\"c1\",\"expand\":{\"post_id\":"
		"{\"id\":1,\"title\":\"Hello world\",\"body\":null,"
		"\"author_id\":\"u1\",\"views\":10,\"score\":1.5,"
		"\"published\":true,\"created_at\":\"2026-01-01T00:00:00.000Z\","
		"\"tags\":[\"c\",\"db\",1],\"uid\":null,\"data\":null,"
		"\"expand\":{\"author_id\":{\"id\":\"u1\",\"name\":\"Ann\","
		"\"org_id\":1,\"expand\":{\"org_id\":{\"id\":1,\"name\":"
		"\"Acme\"}}}}}}},"
		"{\"id\":2,\"body\":\"c2\",\"expand\":{\"post_id\":"
		"{\"id\":2,\"title\":\"Second\",\"body\":null,"
		"\"author_id\":\"u2\",\"views\":5,\"score\":null,"
		"\"published\":false,\"created_at\":\"2026-01-02T00:00:00.000Z\","
		"\"tags\":[\"go\"],\"uid\":null,\"data\":null,"
		"\"expand\":{\"author_id\":{\"id\":\"u2\",\"name\":\"Bob\","
		"\"org_id\":2,\"expand\":{\"org_id\":{\"id\":2,\"name\":"
		"\"Initech\"}}}}}}},"
		"{\"id\":3,\"body\":\"c3\",\"expand\":{\"post_id\":null}},"
		"{\"id\":4,\"body\":\"c4\",\"expand\":{\"post_id\":null}}]}");
	free(out);
	/* Dangling and null references expand to null; internal fields of
	 * expanded documents stay hidden. */
	out = run(db, "posts", "expand=author_id&fields=id&sort=id");
	ASSERT(out);
	ASSERT_STR_EQ(out,
		"{\"docs\":["
		"{\"id\":1,\"expand\":{\"author_id\":{\"id\":\"u1\",\"name\":"
		"\"Ann\",\"org_id\":1}}},"
		"{\"id\":2,\"expand\":{\"author_id\":{\"id\":\"u2\",\"name\":"
		"\"Bob\",\"org_id\":2}}},"
		"{\"id\":3,\"expand\":{\"author_id\":{\"id\":\"u1\",\"name\":"
		"\"Ann\",\"org_id\":1}}},"
		"{\"id\":4,\"expand\":{\"author_id\":null}},"
		"{\"id\":5,\"expand\":{\"author_id\":null}}]}");
	free(out);
	sqlite3_close(db);
}

static alyx__value ann = { .kind = ALYX_V_TEXT, .s = (char *)"Ann", .n = 3 };

static int users_named_ann(void *ud, const alyx__collection *c,
			   alyx__sqlcond *cond, alyx__err *err)
{
	int *calls = ud;

	(*calls)++;
	if (!strcmp(c->name, "orgs"))
		return alyx__err_set(err, ALYX_E_FORBIDDEN, NULL, "no orgs");
	if (!strcmp(c->name, "users")) {
		cond->sql = "\"name\" = ?";
		cond->binds = &ann;
		cond->n_binds = 1;
	}
	return ALYX_OK;
}

TEST(expand_rule_condition)
{
	sqlite3 *db = fx_open();
	alyx__query *q = NULL;
	alyx__err err = {0};
	int calls = 0;
	alyx__query_opts o = { .expand_cond = users_named_ann, .ud = &calls };
	alyx_buf out;

	seed_blog(db);
	alyx__buf_init(&out, 0);
	ASSERT_EQ(alyx__query_parse_str(&fx_schema, fx_coll("posts"),
					"expand=author_id&fields=id&limit=2",
					&q, &err), ALYX_OK);
	ASSERT_EQ(alyx__query_run(db, q, &o, &out, &err), ALYX_OK);
	ASSERT_EQ(calls, 1);
	ASSERT_STR_EQ(out.data, "{\"docs\":["
		"{\"id\":1,\"expand\":{\"author_id\":{\"id\":\"u1\","
		"\"name\":\"Ann\",\"org_id\":1}}},"
		"{\"id\":2,\"expand\":{\"author_id\":null}}],"
		"\"next\":\"AQEAAAABAAAAAAAAAAI\"}");
	alyx__query_free(q);
	/* A refusal fails the whole query and leaves the output alone. */
	alyx__buf_reset(&out);
	ASSERT_EQ(alyx__query_parse_str(&fx_schema, fx_coll("posts"),
					"expand=author_id.org_id", &q, &err),
		  ALYX_OK);
	ASSERT_EQ(alyx__query_run(db, q, &o, &out, &err), ALYX_E_FORBIDDEN);
	ASSERT_EQ(out.len, 0);
	alyx__err_clear(&err);
	alyx__query_free(q);
	alyx__buf_free(&out);
	sqlite3_close(db);
}

TEST(statement_cache)
{
	sqlite3 *db = fx_open(), *other = fx_open();
	alyx__qcache *cache = alyx__qcache_new(db);
	static const char *const qs[] = {
		"expand=author_id.org_id&total=true&limit=2",
		"filter=views:gt:1&sort=-views",
		"filter=tags:contains:1&limit=1",
	};
	char *first[3];
	size_t i, round;

	seed_blog(db);
	seed_blog(other);
	for (round = 0; round < 3; round++) {
		for (i = 0; i < ALYX_ARRAY_LEN(qs); i++) {
			alyx__query *q = NULL;
			alyx__err err = {0};
			alyx__query_opts o = { .cache = cache };
			alyx_buf out;

			alyx__buf_init(&out, 0);
			ASSERT_EQ(alyx__query_parse_str(&fx_schema,
				fx_coll("posts"), qs[i], &q, &err), ALYX_OK);
			/* Round 2 uses another connection: the cache,
			 * made for `db`, must stay out of it. */
			ASSERT_EQ(alyx__query_run(round == 2 ? other : db, q,
						  &o, &out, &err), ALYX_OK);
			if (round == 0)
				first[i] = alyx__buf_take(&out);
			else
				ASSERT_STR_EQ(out.data, first[i]);
			alyx__buf_free(&out);
			alyx__query_free(q);
		}
	}
	for (i = 0; i < ALYX_ARRAY_LEN(qs); i++)
		alyx__free(first[i]);
	alyx__qcache_free(cache);
	/* Every statement is finalized: the connections close cleanly. */
	ASSERT_EQ(sqlite3_close(db), SQLITE_OK);
	ASSERT_EQ(sqlite3_close(other), SQLITE_OK);
}

TEST(extra_condition)
{
	sqlite3 *db = fx_open();
	alyx__query *q = NULL;
	alyx__err err = {0};
	alyx__value v = { .kind = ALYX_V_TEXT, .s = (char *)"u1", .n = 2 };
	alyx__sqlcond extra = { .sql = "\"author_id\" = ?", .binds = &v,
				.n_binds = 1 };
	alyx_buf out;

	seed_blog(db);
	alyx__buf_init(&out, 0);
	ASSERT_EQ(alyx__query_parse_str(&fx_schema, fx_coll("posts"),
					"filter=views:gte:0&total=true&limit=1",
					&q, &err), ALYX_OK);
	ASSERT_EQ(alyx__query_exec(db, q, &extra, &out, &err), ALYX_OK);
	ASSERT(strstr(out.data, "\"total\":1") && strstr(out.data, "\"id\":1"));
	ASSERT(!strstr(out.data, "\"next\""));
	alyx__query_free(q);
	alyx__buf_free(&out);
	sqlite3_close(db);
}

TEST(exec_errors_leave_output)
{
	sqlite3 *db = fx_open();
	alyx__query *q = NULL;
	alyx__err err = {0};
	alyx_buf out;

	seed_blog(db);
	fx_exec(db, "DROP TABLE posts");
	alyx__buf_init(&out, 0);
	alyx__buf_adds(&out, "keep");
	ASSERT_EQ(alyx__query_parse_str(&fx_schema, fx_coll("posts"), "", &q,
					&err), ALYX_OK);
	ASSERT_NE(alyx__query_exec(db, q, NULL, &out, &err), ALYX_OK);
	ASSERT_STR_EQ(out.data, "keep");
	alyx__err_clear(&err);
	alyx__query_free(q);
	alyx__buf_free(&out);
	sqlite3_close(db);
}

/* The matcher's LIKE against SQLite's, on random patterns and strings
 * over an alphabet full of traps (case, wildcards, escapes, UTF-8). */
TEST(like_agrees_with_sqlite)
{
	static const char *const atoms[] = {
		"a", "A", "b", "%", "_", "\\", "\xc3\xa9", "\xc3\x89",
		"\xc3\x9f", "\xe6\x97\xa5", "\xf0\x9f\x98\x80", "z", "Z", "[",
	};
	sqlite3 *db = NULL;
	sqlite3_stmt *st;
	cJSON *doc;
	alyx__filter f;
	alyx__field strf = { .name = (char *)"s", .type = ALYX_T_STRING };
	alyx__collection c = { .name = (char *)"t", .fields = &strf,
			       .n_fields = 1 };
	char pat[64], str[64];
	int i, k, n, mism = 0;

	ASSERT_EQ(sqlite3_open(":memory:", &db), SQLITE_OK);
	ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT ? LIKE ? ESCAPE '\\'", -1,
				     &st, NULL), SQLITE_OK);
	srand(7);
	for (i = 0; i < 40000; i++) {
		alyx__value pv;

		pat[0] = str[0] = '\0';
		n = rand() % 6;
		for (k = 0; k < n; k++)
			strcat(pat, atoms[rand() % ALYX_ARRAY_LEN(atoms)]);
		n = rand() % 6;
		for (k = 0; k < n; k++) {
			const char *a = atoms[rand() % ALYX_ARRAY_LEN(atoms)];

			strcat(str, a);
		}
		memset(&f, 0, sizeof(f));
		f.kind = ALYX_F_COND;
		f.field = 0;
		f.op = ALYX_OP_LIKE;
		pv.kind = ALYX_V_TEXT;
		pv.s = pat;
		pv.n = strlen(pat);
		f.vals = &pv;
		f.n_vals = 1;
		doc = cJSON_CreateObject();
		cJSON_AddStringToObject(doc, "s", str);
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, str, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, pat, -1, SQLITE_STATIC);
		ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
		if ((sqlite3_column_int(st, 0) != 0) !=
		    alyx__filter_match(&c, &f, doc)) {
			if (mism++ < 5)
				fprintf(stderr, "  '%s' LIKE '%s': sqlite %d\n",
					str, pat, sqlite3_column_int(st, 0));
		}
		cJSON_Delete(doc);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	ASSERT_EQ(mism, 0);
}

TEST(matcher_basics)
{
	alyx__query *q = NULL;
	alyx__err err = {0};
	const alyx__collection *c = fx_coll("posts");
	cJSON *d1 = cJSON_Parse("{\"id\":1,\"title\":\"Hi\",\"views\":null,"
				"\"tags\":[1,\"x\"],\"published\":true}");
	cJSON *d2 = cJSON_Parse("{\"id\":2,\"title\":\"hi\",\"views\":3,"
				"\"tags\":{\"x\":1}}");

	ASSERT_EQ(alyx__query_parse_str(&fx_schema, c, "filter=views:ne:3",
					&q, &err), ALYX_OK);
	ASSERT(alyx__filter_match(c, q->where, d1));
	ASSERT(!alyx__filter_match(c, q->where, d2));
	alyx__query_free(q);
	ASSERT_EQ(alyx__query_parse_str(&fx_schema, c, "filter=tags:contains:"
					"x&sort=-views", &q, &err), ALYX_OK);
	ASSERT(alyx__filter_match(c, q->where, d1));
	ASSERT(!alyx__filter_match(c, q->where, d2));
	/* -views: NULLs last descending. */
	ASSERT(alyx__query_doc_cmp(q, d1, d2) > 0);
	ASSERT(alyx__query_doc_cmp(q, d2, d1) < 0);
	ASSERT_EQ(alyx__query_doc_cmp(q, d1, d1), 0);
	alyx__query_free(q);
	ASSERT_EQ(alyx__query_parse_str(&fx_schema, c, "filter=title:like:HI",
					&q, &err), ALYX_OK);
	ASSERT(alyx__filter_match(c, q->where, d1));
	ASSERT(alyx__filter_match(c, q->where, d2));
	ASSERT(alyx__filter_match(c, NULL, d2));
	alyx__query_free(q);
	cJSON_Delete(d1);
	cJSON_Delete(d2);
}

TEST_MAIN()
