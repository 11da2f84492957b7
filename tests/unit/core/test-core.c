/* test-core.c - the handle's internals: group commit with per-request
 * savepoints, read passes, the live-handle registry, JSON input checks. */
#include "../../api/api-util.h"
#include "core/handle.h"

static int total(alyx *a, const char *coll)
{
	char *out = NULL;
	cJSON *j;
	int n;

	if (alyx_query_str(a, NULL, coll, "total=true&limit=1", &out))
		TH_FAIL("query: %s", alyx_errmsg(a));
	j = cJSON_Parse(out);
	n = cJSON_GetObjectItem(j, "total")->valueint;
	cJSON_Delete(j);
	alyx_free(out);
	return n;
}

TEST(group_commit_isolates_failures)
{
	char *dir, *out = NULL;
	alyx *a = open_blog(&dir);

	ASSERT_EQ(alyx__group_end(a), ALYX_E_MISUSE);
	ASSERT_OK(alyx__group_begin(a));
	ASSERT_EQ(alyx__group_begin(a), ALYX_E_MISUSE);
	ASSERT_OK(alyx_doc_create(a, NULL, "users", "{\"email\":\"a@x.io\"}",
				  (size_t)-1, &out));
	alyx_free(out);
	/* A conflict fails alone; the group goes on. */
	ASSERT_EQ(alyx_doc_create(a, NULL, "users", "{\"email\":\"a@x.io\"}",
				  (size_t)-1, &out),
		  ALYX_E_CONFLICT);
	/* A failing batch inside the group is undone alone too. */
	ASSERT_EQ(alyx_batch(a, NULL,
			     "{\"requests\":[{\"method\":\"POST\",\"url\":"
			     "\"/api/collections/users\",\"body\":{\"email\":"
			     "\"b@x.io\"}},{\"method\":\"POST\",\"url\":"
			     "\"/api/collections/users\",\"body\":{\"email\":"
			     "\"b@x.io\"}}]}",
			     (size_t)-1, &out),
		  ALYX_E_CONFLICT);
	ASSERT_OK(alyx_doc_create(a, NULL, "users", "{\"email\":\"c@x.io\"}",
				  (size_t)-1, &out));
	alyx_free(out);
	/* Readers do not see the open group. */
	ASSERT_EQ(total(a, "users"), 0);
	ASSERT_OK(alyx__group_end(a));
	ASSERT_EQ(total(a, "users"), 2);
	alyx_close(a);
	remove_project(dir);
}

TEST(read_pass_keeps_one_snapshot)
{
	char *dir, *out = NULL;
	alyx *a = open_blog(&dir);

	ASSERT_OK(alyx__read_pass_begin(a));
	ASSERT_OK(alyx__read_pass_begin(a));	/* nests */
	ASSERT_EQ(total(a, "users"), 0);
	ASSERT_OK(alyx_doc_create(a, NULL, "users", "{\"email\":\"a@x.io\"}",
				  (size_t)-1, &out));
	alyx_free(out);
	ASSERT_EQ(total(a, "users"), 0);	/* same snapshot */
	ASSERT_OK(alyx__read_pass_end(a));
	ASSERT_EQ(total(a, "users"), 0);	/* still inside the outer */
	ASSERT_OK(alyx__read_pass_end(a));
	ASSERT_EQ(total(a, "users"), 1);
	ASSERT_EQ(alyx__read_pass_end(a), ALYX_E_MISUSE);
	/* A pass left open is cleaned up by close. */
	ASSERT_OK(alyx__read_pass_begin(a));
	alyx_close(a);
	remove_project(dir);
}

TEST(handle_registry)
{
	char *dir;
	alyx *a = open_blog(&dir);
	struct alyx fake;

	ASSERT(alyx__handle_ok(a));
	memset(&fake, 0, sizeof(fake));
	fake.magic = ALYX__MAGIC;	/* right magic, never opened */
	ASSERT(!alyx__handle_ok(&fake));
	ASSERT(!alyx__handle_ok(NULL));
	alyx_close(a);
	ASSERT(!alyx__handle_ok(a));
	remove_project(dir);
}

TEST(json_parse_checks)
{
	char *dir;
	alyx *a = open_blog(&dir);
	alyx__err err = {0};
	cJSON *j = NULL;

	ASSERT_OK(alyx__json_parse(a, " {\"a\":\"[{\\\"\"} \n", (size_t)-1,
				   "body", &j, &err));
	ASSERT(cJSON_IsObject(j));
	cJSON_Delete(j);
	/* Brackets inside strings do not count as depth. */
	ASSERT_OK(alyx__json_parse(a, "[\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
				   "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"]",
				   (size_t)-1, "body", &j, &err));
	cJSON_Delete(j);
	ASSERT_EQ(alyx__json_parse(a, "{\"a\":1}x", (size_t)-1, "body", &j,
				   &err),
		  ALYX_E_BADJSON);
	ASSERT(j == NULL);
	ASSERT_EQ(alyx__json_parse(a, "{\"a\":1}", 3, "body", &j, &err),
		  ALYX_E_BADJSON);
	ASSERT_CONTAINS(err.details, "\"offset\"");
	alyx__err_clear(&err);
	alyx_close(a);
	remove_project(dir);
}

TEST(details_prepend)
{
	char *d;

	d = alyx__details_prepend(NULL, "index", "3");
	ASSERT_STR_EQ(d, "{\"index\":3}");
	alyx__free(d);
	d = alyx__details_prepend("{}", "index", "3");
	ASSERT_STR_EQ(d, "{\"index\":3}");
	alyx__free(d);
	d = alyx__details_prepend("{\"fields\":[]}", "index", "0");
	ASSERT_STR_EQ(d, "{\"index\":0,\"fields\":[]}");
	alyx__free(d);
}

/* Every allocation of a create, a get, a query and a batch is made to
 * fail in turn: each call fails cleanly (or succeeds), never crashes or
 * leaks (ASan's leak check runs in the suite), and the handle stays
 * usable. */
TEST(allocation_failures)
{
	static const char batch[] =
		"{\"requests\":[{\"method\":\"POST\",\"url\":"
		"\"/api/collections/users\",\"body\":{\"email\":\"b@x.io\"}}]}";
	char *dir, *out = NULL, *id;
	alyx *a = open_blog(&dir);
	int n, step, rc, done[4] = {0}, nomem[4] = {0};

	id = create_id(a, "users", "{\"email\":\"a@x.io\"}");
	for (n = 1; n < 400; n++) {
		for (step = 0; step < 4; step++) {
			alyx__fail_alloc_after(n);
			switch (step) {
			case 0:
				rc = alyx_doc_create(a, NULL, "users",
						     "{\"email\":\"c@x.io\"}",
						     (size_t)-1, &out);
				break;
			case 1:
				rc = alyx_doc_get(a, NULL, "users", id, NULL,
						  &out);
				break;
			case 2:
				rc = alyx_query_str(a, NULL, "users",
						    "filter=email:like:%25x%25"
						    "&sort=-created_at&total=true",
						    &out);
				break;
			default:
				rc = alyx_batch(a, NULL, batch, (size_t)-1,
						&out);
				break;
			}
			alyx__fail_alloc_after(0);
			if (rc == ALYX_OK) {
				ASSERT(out != NULL);
				done[step]++;
			} else {
				ASSERT(out == NULL);
				/* An allocation failure is reported as
				 * exactly that, never as bad input. */
				if (rc != ALYX_E_NOMEM)
					fprintf(stderr, "step %d n %d: %s %s\n",
						step, n, alyx_errname(rc),
						alyx_errmsg(a));
				ASSERT_EQ(rc, ALYX_E_NOMEM);
				nomem[step]++;
			}
			alyx_free(out);
			out = NULL;
			/* Undo a successful write so the next one can run. */
			if (rc == ALYX_OK && (step == 0 || step == 3))
				ASSERT_OK(alyx_db_reset(a));
			if (rc == ALYX_OK && (step == 0 || step == 3)) {
				free(id);
				id = create_id(a, "users",
					       "{\"email\":\"a@x.io\"}");
			}
		}
	}
	/* Eventually every call had enough allocations to succeed. */
	for (step = 0; step < 4; step++) {
		ASSERT(done[step] > 0);
		ASSERT(nomem[step] > 0);
	}
	ASSERT_EQ(total(a, "users"), 1);
	free(id);
	alyx_close(a);
	remove_project(dir);
}

TEST_MAIN()
