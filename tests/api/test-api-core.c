/* test-api-core.c - lifecycle, misuse, schema application, CRUD,
 * validation, conflicts, input limits and batches through <alyx.h>. */
#include "api-util.h"

TEST(version)
{
	ASSERT_EQ(alyx_version(), ALYX_VERSION_NUM);
	ASSERT_STR_EQ(alyx_version_string(), ALYX_VERSION_STRING);
}

TEST(open_close_lifecycle)
{
	char *dir = make_project(0), *cfg = NULL;
	alyx *a = NULL, *b = NULL;
	char expect[600];

	/* Without CREATE a project with no database is refused. */
	ASSERT_EQ(alyx_open(dir, 0, &a), ALYX_E_NOTFOUND);
	ASSERT(a == NULL);
	ASSERT_EQ(alyx_errcode(NULL), ALYX_E_NOTFOUND);
	ASSERT_OK(alyx_open(dir, ALYX_OPEN_CREATE, &a));
	ASSERT(a != NULL);
	ASSERT_EQ(alyx_errcode(a), ALYX_OK);
	snprintf(expect, sizeof(expect), "%s/data/alyx.db", dir);
	ASSERT_STR_EQ(alyx_db_path(a), expect);
	ASSERT(strstr(alyx_project_dir(a), strrchr(dir, '/')) != NULL);
	ASSERT_OK(alyx_config_json(a, &cfg));
	ASSERT_CONTAINS(cfg, "data/alyx.db");
	alyx_free(cfg);
	/* A second handle on the same project, and a read-only one. */
	ASSERT_OK(alyx_open(dir, 0, &b));
	alyx_close(b);
	ASSERT_OK(alyx_open(dir, ALYX_OPEN_READONLY, &b));
	ASSERT_EQ(alyx_doc_create(b, NULL, "x", "{}", 2, &cfg),
		  ALYX_E_NOTFOUND);
	alyx_close(b);
	alyx_close(a);
	alyx_close(NULL);
	remove_project(dir);
}

TEST(config_errors_and_env)
{
	char *dir = make_project(0), path[800], expect[700];
	alyx *a = NULL;
	struct stat st;

	snprintf(path, sizeof(path), "%s/alyx.yaml", dir);
	spit(path, "database:\n  path: ${ALYX_API_TEST_DB:-data/x.db}\n"
		   "  busy_timeout: [1]\n");
	ASSERT_EQ(alyx_open(dir, ALYX_OPEN_CREATE, &a), ALYX_E_CONFIG);
	ASSERT(a == NULL);
	ASSERT_CONTAINS(alyx_errmsg(NULL), "alyx.yaml:");
	spit(path, "database:\n  path: ${ALYX_API_TEST_DB:-data/x.db}\n");
	setenv("ALYX_API_TEST_DB", "store/env.db", 1);
	ASSERT_OK(alyx_open(dir, ALYX_OPEN_CREATE, &a));
	snprintf(expect, sizeof(expect), "%s/store/env.db", dir);
	ASSERT_STR_EQ(alyx_db_path(a), expect);
	ASSERT_OK(alyx_apply_schema(a, "version: 1\ncollections:\n  t:\n"
				       "    fields:\n      id: {type: string, "
				       "primary: true}\n",
				    (size_t)-1, NULL, 0, NULL));
	alyx_close(a);
	/* close checkpointed the WAL away */
	snprintf(path, sizeof(path), "%s-wal", expect);
	ASSERT(stat(path, &st) != 0 || st.st_size == 0);
	/* A read-only handle reads and refuses writes. */
	ASSERT_OK(alyx_open(dir, ALYX_OPEN_READONLY, &a));
	{
		char *out = NULL;

		ASSERT_EQ(alyx_doc_create(a, NULL, "t", "{\"id\":\"x\"}",
					  (size_t)-1, &out),
			  ALYX_E_MISUSE);
		ASSERT_CONTAINS(alyx_errmsg(a), "read-only");
		ASSERT_OK(alyx_query_str(a, NULL, "t", "", &out));
		ASSERT_STR_EQ(out, "{\"docs\":[]}");
		alyx_free(out);
		ASSERT_EQ(alyx_db_reset(a), ALYX_E_MISUSE);
		ASSERT_EQ(alyx_apply_schema(a, "version: 1\ncollections: {}\n",
					    (size_t)-1, NULL, 0, NULL),
			  ALYX_E_MISUSE);
	}
	alyx_close(a);
	ASSERT_EQ(alyx_open(dir, ALYX_OPEN_READONLY | ALYX_OPEN_CREATE, &a),
		  ALYX_E_MISUSE);
	unsetenv("ALYX_API_TEST_DB");
	remove_project(dir);
}

TEST(misuse)
{
	char *dir, *out = (char *)"sentinel";
	alyx *a = NULL, *closed = NULL;
	char fake[256] = {0};

	ASSERT_EQ(alyx_open(NULL, 0, &a), ALYX_E_MISUSE);
	ASSERT_CONTAINS(alyx_errmsg(NULL), "dir");
	ASSERT_EQ(alyx_open("/nonexistent/alyx", 0, &a), ALYX_E_NOTFOUND);
	ASSERT_EQ(alyx_open("/tmp", 0, NULL), ALYX_E_MISUSE);
	ASSERT_EQ(alyx_query_str(NULL, NULL, "posts", "", &out),
		  ALYX_E_MISUSE);
	ASSERT(out == NULL);
	ASSERT_CONTAINS(alyx_errdetails(NULL), "handle");
	/* A pointer that is not a handle is refused, not dereferenced. */
	ASSERT_EQ(alyx_doc_get((alyx *)fake, NULL, "posts", "x", NULL, &out),
		  ALYX_E_MISUSE);
	a = open_blog(&dir);
	ASSERT_EQ(alyx_doc_get(a, NULL, NULL, "x", NULL, &out),
		  ALYX_E_MISUSE);
	ASSERT_CONTAINS(alyx_errmsg(a), "collection");
	ASSERT_EQ(alyx_doc_get(a, NULL, "posts", NULL, NULL, &out),
		  ALYX_E_MISUSE);
	ASSERT_CONTAINS(alyx_errmsg(a), "id");
	ASSERT_EQ(alyx_doc_get(a, NULL, "posts", "x", NULL, NULL),
		  ALYX_E_MISUSE);
	ASSERT_CONTAINS(alyx_errmsg(a), "out");
	ASSERT_EQ(alyx_doc_create(a, NULL, "posts", NULL, 0, &out),
		  ALYX_E_MISUSE);
	ASSERT_EQ(alyx_changes(a, 0, 0, &out), ALYX_E_MISUSE);
	/* Unknown collection: NOT_FOUND naming it. */
	ASSERT_EQ(alyx_query_str(a, NULL, "nope", "", &out), ALYX_E_NOTFOUND);
	ASSERT_STR_EQ(alyx_errdetails(a), "{\"collection\":\"nope\"}");
	ASSERT_STR_EQ(alyx_errname(alyx_errcode(a)), "NOT_FOUND");
	/* A closed handle is refused too. */
	ASSERT_OK(alyx_open(dir, 0, &closed));
	alyx_close(closed);
	ASSERT_EQ(alyx_schema_json(closed, &out), ALYX_E_MISUSE);
	ASSERT(alyx_project_dir(closed) == NULL);
	alyx_close(closed);	/* a second close is a no-op */
	alyx_close(a);
	remove_project(dir);
}

TEST(apply_schema_plan_and_refusal)
{
	char *dir = make_project(1), *yaml, *plan = NULL, *sj = NULL, *p;
	alyx *a = NULL;

	ASSERT_OK(alyx_open(dir, ALYX_OPEN_CREATE, &a));
	yaml = slurp(FIXTURES_DIR "/blog/schema.yaml");
	/* Dry run: the plan, nothing applied. */
	ASSERT_OK(alyx_apply_schema(a, yaml, (size_t)-1, NULL,
				    ALYX_APPLY_DRY_RUN, &plan));
	ASSERT_CONTAINS(plan, "\"applied\":false");
	ASSERT_CONTAINS(plan, "add_collection");
	alyx_free(plan);
	ASSERT_OK(alyx_schema_json(a, &sj));
	ASSERT(strstr(sj, "posts") == NULL);
	alyx_free(sj);
	/* Real apply. */
	ASSERT_OK(alyx_apply_schema(a, yaml, (size_t)-1, NULL, 0, &plan));
	ASSERT_CONTAINS(plan, "\"applied\":true");
	ASSERT_CONTAINS(plan, "\"collection\":\"comments\"");
	alyx_free(plan);
	ASSERT_OK(alyx_schema_json(a, &sj));
	ASSERT_CONTAINS(sj, "\"posts\"");
	ASSERT_CONTAINS(sj, "\"view_count\"");
	alyx_free(sj);
	/* Again: nothing to do. */
	ASSERT_OK(alyx_apply_schema(a, yaml, (size_t)-1, NULL, 0, &plan));
	ASSERT_CONTAINS(plan, "\"changes\":[]");
	alyx_free(plan);
	/* Removing a field is destructive: refused, listed, nothing done. */
	p = strstr(yaml, "      excerpt:");
	ASSERT(p != NULL);
	memmove(p, strstr(p, "      author_id:"),
		strlen(strstr(p, "      author_id:")) + 1);
	plan = (char *)"x";
	ASSERT_EQ(alyx_apply_schema(a, yaml, (size_t)-1, NULL, 0, &plan),
		  ALYX_E_MIGRATION);
	ASSERT(plan == NULL);
	ASSERT_CONTAINS(alyx_errdetails(a), "excerpt");
	ASSERT_OK(alyx_schema_json(a, &sj));
	ASSERT_CONTAINS(sj, "\"excerpt\"");
	alyx_free(sj);
	/* A schema error names the line. */
	ASSERT_EQ(alyx_apply_schema(a,
				    "version: 1\ncollections:\n  t:\n"
				    "    fields:\n      id:\n        type: strng\n"
				    "        primary: true\n",
				    (size_t)-1, "bad.yaml", 0, NULL),
		  ALYX_E_SCHEMA);
	ASSERT_CONTAINS(alyx_errmsg(a), "bad.yaml:6");
	free(yaml);
	alyx_close(a);
	remove_project(dir);
}

static const char kinds_yaml[] =
	"version: 1\n"
	"collections:\n"
	"  kinds:\n"
	"    fields:\n"
	"      id: {type: uuid, primary: true, default: auto}\n"
	"      s: {type: string, maxLength: 10}\n"
	"      t: {type: text, nullable: true}\n"
	"      i: {type: int, default: 7}\n"
	"      f: {type: float, nullable: true}\n"
	"      b: {type: bool, default: false}\n"
	"      ts: {type: timestamp, nullable: true}\n"
	"      j: {type: json, nullable: true}\n"
	"      bl: {type: blob, nullable: true}\n"
	"      secret: {type: string, nullable: true, internal: true}\n"
	"      created: {type: timestamp, default: now}\n"
	"      updated: {type: timestamp, default: now, onUpdate: now}\n";

TEST(crud_every_type)
{
	char *dir = make_project(0), *out = NULL, *id;
	alyx *a = NULL;
	cJSON *j;

	ASSERT_OK(alyx_open(dir, ALYX_OPEN_CREATE, &a));
	ASSERT_OK(alyx_apply_schema(a, kinds_yaml, (size_t)-1, NULL, 0,
				    NULL));
	ASSERT_OK(alyx_doc_create(a, NULL, "kinds",
				  "{\"s\":\"hello\",\"t\":\"long text\","
				  "\"f\":1.5,\"b\":true,"
				  "\"ts\":\"2026-01-02T03:04:05+01:00\","
				  "\"j\":{\"a\":[1,2]},\"bl\":\"AAEC\","
				  "\"secret\":\"hidden\"}",
				  (size_t)-1, &out));
	j = cJSON_Parse(out);
	ASSERT(j != NULL);
	id = strdup(cJSON_GetObjectItem(j, "id")->valuestring);
	ASSERT_EQ(strlen(id), 36);
	ASSERT_STR_EQ(cJSON_GetObjectItem(j, "s")->valuestring, "hello");
	ASSERT_EQ(cJSON_GetObjectItem(j, "i")->valueint, 7);
	ASSERT(cJSON_GetObjectItem(j, "f")->valuedouble == 1.5);
	ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(j, "b")));
	ASSERT_STR_EQ(cJSON_GetObjectItem(j, "ts")->valuestring,
		      "2026-01-02T02:04:05.000Z");
	ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(
			  cJSON_GetObjectItem(j, "j"), "a")), 2);
	ASSERT_STR_EQ(cJSON_GetObjectItem(j, "bl")->valuestring, "AAEC");
	ASSERT(cJSON_GetObjectItem(j, "secret") == NULL);
	ASSERT_EQ(strlen(cJSON_GetObjectItem(j, "created")->valuestring), 24);
	cJSON_Delete(j);
	alyx_free(out);

	ASSERT_OK(alyx_doc_get(a, NULL, "kinds", id, NULL, &out));
	ASSERT_CONTAINS(out, "\"s\":\"hello\"");
	ASSERT_CONTAINS(out, "\"b\":true");
	ASSERT(strstr(out, "hidden") == NULL);
	alyx_free(out);

	ASSERT_OK(alyx_doc_update(a, NULL, "kinds", id,
				  "{\"i\":42,\"b\":false,\"t\":null}",
				  (size_t)-1, &out));
	ASSERT_CONTAINS(out, "\"i\":42");
	ASSERT_CONTAINS(out, "\"b\":false");
	ASSERT_CONTAINS(out, "\"t\":null");
	ASSERT_CONTAINS(out, "\"s\":\"hello\"");
	alyx_free(out);
	/* The primary key cannot change. */
	ASSERT_EQ(alyx_doc_update(a, NULL, "kinds", id,
				  "{\"id\":\"6f1c1b8e-2f0c-4f5e-9a43-"
				  "0c1d2e3f4a5b\"}",
				  (size_t)-1, &out),
		  ALYX_E_VALIDATION);

	/* A dump keeps internal fields, and seeds them back. */
	ASSERT_OK(alyx_db_dump(a, &out));
	ASSERT_CONTAINS(out, "\"secret\":\"hidden\"");
	ASSERT_OK(alyx_db_reset(a));
	ASSERT_OK(alyx_db_seed(a, out, (size_t)-1, NULL));
	alyx_free(out);
	ASSERT_OK(alyx_db_dump(a, &out));
	ASSERT_CONTAINS(out, "\"secret\":\"hidden\"");
	ASSERT_CONTAINS(out, "\"i\":42");
	alyx_free(out);

	ASSERT_OK(alyx_doc_delete(a, NULL, "kinds", id));
	ASSERT_EQ(alyx_doc_get(a, NULL, "kinds", id, NULL, &out),
		  ALYX_E_NOTFOUND);
	ASSERT(out == NULL);
	ASSERT_EQ(alyx_doc_delete(a, NULL, "kinds", id), ALYX_E_NOTFOUND);
	ASSERT_EQ(alyx_doc_update(a, NULL, "kinds", id, "{\"i\":1}",
				  (size_t)-1, &out),
		  ALYX_E_NOTFOUND);
	free(id);
	alyx_close(a);
	remove_project(dir);
}

TEST(validation_reports_every_field)
{
	char *dir, *out = NULL, *uid;
	alyx *a = open_blog(&dir);
	cJSON *d, *f;
	int n;

	uid = create_id(a, "users", "{\"email\":\"ann@example.com\"}");
	ASSERT_EQ(alyx_doc_create(a, NULL, "posts",
				  "{\"title\":\"\",\"slug\":\"s\","
				  "\"author_id\":\"not-a-uuid\","
				  "\"view_count\":\"many\",\"bogus\":1}",
				  (size_t)-1, &out),
		  ALYX_E_VALIDATION);
	ASSERT(out == NULL);
	d = cJSON_Parse(alyx_errdetails(a));
	ASSERT(d != NULL);
	f = cJSON_GetObjectItem(d, "fields");
	n = cJSON_GetArraySize(f);
	cJSON_Delete(d);
	/* title (min_length), content (required), author_id (type),
	 * view_count (type), bogus (unknown_field). */
	ASSERT(n >= 5);
	ASSERT_CONTAINS(alyx_errdetails(a), "\"title\"");
	ASSERT_CONTAINS(alyx_errdetails(a), "\"content\"");
	ASSERT_CONTAINS(alyx_errdetails(a), "\"author_id\"");
	ASSERT_CONTAINS(alyx_errdetails(a), "\"view_count\"");
	ASSERT_CONTAINS(alyx_errdetails(a), "\"bogus\"");
	/* Format and enum. */
	ASSERT_EQ(alyx_doc_create(a, NULL, "users",
				  "{\"email\":\"nope\",\"role\":\"king\"}",
				  (size_t)-1, &out),
		  ALYX_E_VALIDATION);
	ASSERT_CONTAINS(alyx_errdetails(a), "\"email\"");
	ASSERT_CONTAINS(alyx_errdetails(a), "\"role\"");
	/* Nothing was written. */
	ASSERT_OK(alyx_query_str(a, NULL, "posts", "total=true", &out));
	ASSERT_CONTAINS(out, "\"total\":0");
	alyx_free(out);
	free(uid);
	alyx_close(a);
	remove_project(dir);
}

TEST(conflicts_and_cascade)
{
	char *dir, *out = NULL, *uid, *pid, body[512];
	alyx *a = open_blog(&dir);

	uid = create_id(a, "users", "{\"email\":\"bob@example.com\"}");
	ASSERT_EQ(alyx_doc_create(a, NULL, "users",
				  "{\"email\":\"bob@example.com\"}",
				  (size_t)-1, &out),
		  ALYX_E_CONFLICT);
	ASSERT_CONTAINS(alyx_errdetails(a), "email");
	snprintf(body, sizeof(body),
		 "{\"title\":\"T\",\"slug\":\"t\",\"content\":\"c\","
		 "\"author_id\":\"%s\"}", uid);
	pid = create_id(a, "posts", body);
	ASSERT_EQ(alyx_doc_create(a, NULL, "posts", body, (size_t)-1, &out),
		  ALYX_E_CONFLICT);
	/* A reference to a missing user. */
	ASSERT_EQ(alyx_doc_create(a, NULL, "posts",
				  "{\"title\":\"T\",\"slug\":\"u\","
				  "\"content\":\"c\",\"author_id\":"
				  "\"00000000-0000-4000-8000-000000000000\"}",
				  (size_t)-1, &out),
		  ALYX_E_CONFLICT);
	/* onDelete: cascade takes the post with the user. */
	ASSERT_OK(alyx_doc_delete(a, NULL, "users", uid));
	ASSERT_EQ(alyx_doc_get(a, NULL, "posts", pid, NULL, &out),
		  ALYX_E_NOTFOUND);
	free(uid);
	free(pid);
	alyx_close(a);
	remove_project(dir);
}

TEST(json_input_limits)
{
	char *dir, *out = NULL, *big, *deep;
	alyx *a = open_blog(&dir);
	size_t i, n = (1u << 20) + 16;

	big = malloc(n + 1);
	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	big[n] = '\0';
	ASSERT_EQ(alyx_doc_create(a, NULL, "users", big, n, &out),
		  ALYX_E_TOOBIG);
	free(big);
	deep = malloc(200 + 1);
	for (i = 0; i < 100; i++) {
		deep[i] = '[';
		deep[199 - i] = ']';
	}
	deep[200] = '\0';
	ASSERT_EQ(alyx_doc_create(a, NULL, "users", deep, 200, &out),
		  ALYX_E_BADJSON);
	ASSERT_CONTAINS(alyx_errmsg(a), "deeper");
	free(deep);
	ASSERT_EQ(alyx_doc_create(a, NULL, "users",
				  "{\"email\":\"\xff\xfe@x.com\"}", (size_t)-1,
				  &out),
		  ALYX_E_BADJSON);
	ASSERT_CONTAINS(alyx_errmsg(a), "UTF-8");
	ASSERT_EQ(alyx_doc_create(a, NULL, "users", "{\"email\":", (size_t)-1,
				  &out),
		  ALYX_E_BADJSON);
	ASSERT_EQ(alyx_doc_create(a, NULL, "users", "{} {}", (size_t)-1,
				  &out),
		  ALYX_E_BADJSON);
	ASSERT_EQ(alyx_doc_create(a, NULL, "users", "[1]", (size_t)-1, &out),
		  ALYX_E_BADJSON);
	alyx_close(a);
	remove_project(dir);
}

TEST(batch_all_or_nothing)
{
	char *dir, *out = NULL, *uid, *pid, req[2048];
	alyx *a = open_blog(&dir);
	cJSON *j, *res;

	uid = create_id(a, "users", "{\"email\":\"cy@example.com\"}");
	snprintf(req, sizeof(req),
		 "{\"title\":\"A\",\"slug\":\"a\",\"content\":\"c\","
		 "\"author_id\":\"%s\"}", uid);
	pid = create_id(a, "posts", req);
	snprintf(req, sizeof(req),
		 "{\"requests\":["
		 "{\"method\":\"POST\",\"url\":\"/api/collections/posts\","
		 "\"body\":{\"title\":\"B\",\"slug\":\"b\",\"content\":\"c\","
		 "\"author_id\":\"%s\"}},"
		 "{\"method\":\"PATCH\",\"url\":\"/api/collections/posts/%s\","
		 "\"body\":{\"view_count\":5}},"
		 "{\"method\":\"POST\",\"url\":\"/api/collections/posts\","
		 "\"body\":{\"title\":\"\",\"slug\":\"c\"}}]}",
		 uid, pid);
	ASSERT_EQ(alyx_batch(a, NULL, req, (size_t)-1, &out),
		  ALYX_E_VALIDATION);
	ASSERT(out == NULL);
	ASSERT_CONTAINS(alyx_errdetails(a), "\"index\":2");
	ASSERT_CONTAINS(alyx_errdetails(a), "\"fields\"");
	/* Nothing of the first two requests was kept. */
	ASSERT_OK(alyx_query_str(a, NULL, "posts", "total=true", &out));
	ASSERT_CONTAINS(out, "\"total\":1");
	ASSERT_CONTAINS(out, "\"view_count\":0");
	alyx_free(out);

	snprintf(req, sizeof(req),
		 "{\"requests\":["
		 "{\"method\":\"POST\",\"url\":\"/api/collections/posts\","
		 "\"body\":{\"title\":\"B\",\"slug\":\"b\",\"content\":\"c\","
		 "\"author_id\":\"%s\"}},"
		 "{\"method\":\"PATCH\",\"url\":\"/api/collections/posts/%s\","
		 "\"body\":{\"view_count\":5}},"
		 "{\"method\":\"DELETE\",\"url\":\"/api/collections/posts/%s\"}"
		 "]}",
		 uid, pid, pid);
	ASSERT_OK(alyx_batch(a, NULL, req, (size_t)-1, &out));
	j = cJSON_Parse(out);
	res = cJSON_GetObjectItem(j, "results");
	ASSERT_EQ(cJSON_GetArraySize(res), 3);
	ASSERT_EQ(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 0), "status")
			  ->valueint, 201);
	ASSERT_EQ(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 1), "status")
			  ->valueint, 200);
	ASSERT_EQ(cJSON_GetObjectItem(cJSON_GetObjectItem(
			  cJSON_GetArrayItem(res, 1), "body"), "view_count")
			  ->valueint, 5);
	ASSERT_EQ(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 2), "status")
			  ->valueint, 204);
	cJSON_Delete(j);
	alyx_free(out);
	ASSERT_OK(alyx_query_str(a, NULL, "posts", "total=true", &out));
	ASSERT_CONTAINS(out, "\"total\":1");
	ASSERT_CONTAINS(out, "\"slug\":\"b\"");
	alyx_free(out);
	/* Bad shapes name the request. */
	ASSERT_EQ(alyx_batch(a, NULL,
			     "{\"requests\":[{\"method\":\"GET\",\"url\":"
			     "\"/api/collections/posts\"}]}",
			     (size_t)-1, &out),
		  ALYX_E_BADJSON);
	ASSERT_CONTAINS(alyx_errdetails(a), "\"index\":0");
	ASSERT_EQ(alyx_batch(a, NULL,
			     "{\"requests\":[{\"method\":\"DELETE\",\"url\":"
			     "\"/api/collections/nope/1\"}]}",
			     (size_t)-1, &out),
		  ALYX_E_NOTFOUND);
	ASSERT_CONTAINS(alyx_errdetails(a), "\"collection\":\"nope\"");
	ASSERT_EQ(alyx_batch(a, NULL, "{\"reqs\":[]}", (size_t)-1, &out),
		  ALYX_E_BADJSON);
	free(uid);
	free(pid);
	alyx_close(a);
	remove_project(dir);
}

TEST_MAIN()
