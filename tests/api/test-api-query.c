/* test-api-query.c - queries (string and JSON), expand, totals, cursor
 * paging, seed/dump/reset and the change feed through <alyx.h>. */
#include "api-util.h"

#define N_POSTS 45

/* Users ann and bob; N_POSTS posts alternating between them, view_count
 * = i, published when i is even. */
static alyx *open_seeded(char **dir, char **ann, char **bob)
{
	alyx *a = open_blog(dir);
	char body[512];
	int i;

	*ann = create_id(a, "users", "{\"email\":\"ann@example.com\","
				     "\"name\":\"Ann\"}");
	*bob = create_id(a, "users", "{\"email\":\"bob@example.com\","
				     "\"name\":\"Bob\"}");
	for (i = 0; i < N_POSTS; i++) {
		char *id;

		snprintf(body, sizeof(body),
			 "{\"title\":\"Post %02d\",\"slug\":\"p%02d\","
			 "\"content\":\"body %d\",\"author_id\":\"%s\","
			 "\"view_count\":%d,\"published\":%s,"
			 "\"tags\":[\"t%d\",\"all\"]}",
			 i, i, i, i % 2 ? *bob : *ann, i,
			 i % 2 ? "false" : "true", i % 3);
		id = create_id(a, "posts", body);
		free(id);
	}
	return a;
}

static void close_seeded(alyx *a, char *dir, char *ann, char *bob)
{
	free(ann);
	free(bob);
	alyx_close(a);
	remove_project(dir);
}

TEST(query_string_filters_sort_total)
{
	char *dir, *ann, *bob, *out = NULL, qs[256];
	alyx *a = open_seeded(&dir, &ann, &bob);
	cJSON *j, *docs;

	snprintf(qs, sizeof(qs),
		 "filter=author_id:eq:%s&filter=view_count:gte:10"
		 "&sort=-view_count&limit=5&total=true", ann);
	ASSERT_OK(alyx_query_str(a, NULL, "posts", qs, &out));
	j = cJSON_Parse(out);
	docs = cJSON_GetObjectItem(j, "docs");
	ASSERT_EQ(cJSON_GetArraySize(docs), 5);
	/* ann has the even i; >= 10: 10,12,...,44 = 18 posts. */
	ASSERT_EQ(cJSON_GetObjectItem(j, "total")->valueint, 18);
	ASSERT_EQ(cJSON_GetObjectItem(cJSON_GetArrayItem(docs, 0),
				      "view_count")->valueint, 44);
	ASSERT(cJSON_GetObjectItem(j, "next") != NULL);
	cJSON_Delete(j);
	alyx_free(out);
	/* No total unless asked. */
	ASSERT_OK(alyx_query_str(a, NULL, "posts", "limit=1", &out));
	ASSERT(strstr(out, "\"total\"") == NULL);
	alyx_free(out);
	/* in, like, contains. */
	ASSERT_OK(alyx_query_str(a, NULL, "posts",
				 "filter=slug:in:p01,p02,p03&total=true",
				 &out));
	ASSERT_CONTAINS(out, "\"total\":3");
	alyx_free(out);
	ASSERT_OK(alyx_query_str(a, NULL, "posts",
				 "filter=title:like:Post%201%25&total=true",
				 &out));
	ASSERT_CONTAINS(out, "\"total\":10");
	alyx_free(out);
	ASSERT_OK(alyx_query_str(a, NULL, "posts",
				 "filter=tags:contains:t1&total=true", &out));
	ASSERT_CONTAINS(out, "\"total\":15");
	alyx_free(out);
	/* Bad queries. */
	ASSERT_EQ(alyx_query_str(a, NULL, "posts", "filter=nope:eq:1", &out),
		  ALYX_E_BADQUERY);
	ASSERT_EQ(alyx_query_str(a, NULL, "posts", "filter=title:zz:1",
				 &out),
		  ALYX_E_BADQUERY);
	ASSERT_EQ(alyx_query_str(a, NULL, "posts",
				 "filter=view_count:gt:abc", &out),
		  ALYX_E_BADQUERY);
	ASSERT_EQ(alyx_query_str(a, NULL, "posts", "limit=100000", &out),
		  ALYX_E_BADQUERY);
	close_seeded(a, dir, ann, bob);
}

TEST(query_json)
{
	char *dir, *ann, *bob, *out = NULL, q[512];
	alyx *a = open_seeded(&dir, &ann, &bob);

	snprintf(q, sizeof(q),
		 "{\"filter\":{\"author_id\":\"%s\","
		 "\"view_count\":{\"$lt\":10}},\"sort\":[\"view_count\"],"
		 "\"total\":true,\"fields\":[\"id\",\"view_count\"]}", bob);
	ASSERT_OK(alyx_query(a, NULL, "posts", q, &out));
	ASSERT_CONTAINS(out, "\"total\":5");
	ASSERT(strstr(out, "\"title\"") == NULL);
	ASSERT_EQ(count_in(out, "docs"), 5);
	alyx_free(out);
	ASSERT_OK(alyx_query(a, NULL, "posts",
			     "{\"filter\":{\"$or\":[{\"slug\":\"p00\"},"
			     "{\"slug\":\"p44\"}]},\"total\":true}",
			     &out));
	ASSERT_CONTAINS(out, "\"total\":2");
	alyx_free(out);
	ASSERT_OK(alyx_query(a, NULL, "users", NULL, &out));
	ASSERT_EQ(count_in(out, "docs"), 2);
	alyx_free(out);
	ASSERT_EQ(alyx_query(a, NULL, "posts", "{\"filter\":[1]}", &out),
		  ALYX_E_BADQUERY);
	ASSERT_EQ(alyx_query(a, NULL, "posts", "{bad", &out), ALYX_E_BADJSON);
	close_seeded(a, dir, ann, bob);
}

TEST(expand_and_get_options)
{
	char *dir, *ann, *bob, *out = NULL, *pid, *cid, body[512];
	alyx *a = open_seeded(&dir, &ann, &bob);
	cJSON *j, *e;

	snprintf(body, sizeof(body),
		 "{\"title\":\"E\",\"slug\":\"e\",\"content\":\"c\","
		 "\"author_id\":\"%s\"}", bob);
	pid = create_id(a, "posts", body);
	snprintf(body, sizeof(body),
		 "{\"post_id\":\"%s\",\"author_id\":\"%s\","
		 "\"content\":\"nice\"}", pid, ann);
	cid = create_id(a, "comments", body);
	ASSERT_OK(alyx_doc_get(a, NULL, "comments", cid,
			       "expand=post_id.author_id,author_id", &out));
	j = cJSON_Parse(out);
	ASSERT(j != NULL);
	e = cJSON_GetObjectItem(j, "expand");
	ASSERT(e != NULL);
	ASSERT_STR_EQ(cJSON_GetObjectItem(cJSON_GetObjectItem(e, "author_id"),
					  "name")->valuestring, "Ann");
	ASSERT_CONTAINS(out, "\"Bob\"");
	cJSON_Delete(j);
	alyx_free(out);
	ASSERT_OK(alyx_doc_get(a, NULL, "posts", pid, "fields=id,slug", &out));
	ASSERT_CONTAINS(out, "\"slug\":\"e\"");
	ASSERT(strstr(out, "\"content\"") == NULL);
	alyx_free(out);
	ASSERT_EQ(alyx_doc_get(a, NULL, "posts", pid, "limit=3", &out),
		  ALYX_E_BADQUERY);
	ASSERT_EQ(alyx_doc_get(a, NULL, "posts", "nope", "fields=id", &out),
		  ALYX_E_NOTFOUND);
	ASSERT_OK(alyx_query_str(a, NULL, "posts",
				 "filter=slug:eq:e&expand=author_id", &out));
	ASSERT_CONTAINS(out, "\"expand\"");
	ASSERT_CONTAINS(out, "bob@example.com");
	alyx_free(out);
	ASSERT_EQ(alyx_query_str(a, NULL, "posts", "expand=title", &out),
		  ALYX_E_BADQUERY);
	free(pid);
	free(cid);
	close_seeded(a, dir, ann, bob);
}

TEST(cursor_paging_visits_each_once)
{
	char *dir, *ann, *bob, *out = NULL, qs[1024];
	alyx *a = open_seeded(&dir, &ann, &bob);
	char *next = NULL;
	int seen[N_POSTS] = {0}, pages = 0, total = 0, i;

	for (;;) {
		cJSON *j, *docs, *d, *nx;

		if (next)
			snprintf(qs, sizeof(qs),
				 "sort=-published,view_count&limit=7&after=%s",
				 next);
		else
			snprintf(qs, sizeof(qs),
				 "sort=-published,view_count&limit=7");
		ASSERT_OK(alyx_query_str(a, NULL, "posts", qs, &out));
		j = cJSON_Parse(out);
		docs = cJSON_GetObjectItem(j, "docs");
		cJSON_ArrayForEach(d, docs) {
			int v = cJSON_GetObjectItem(d, "view_count")->valueint;

			ASSERT(v >= 0 && v < N_POSTS);
			seen[v]++;
			total++;
		}
		pages++;
		free(next);
		next = NULL;
		nx = cJSON_GetObjectItem(j, "next");
		if (cJSON_IsString(nx)) {
			/* The cursor goes into a URL: encode it. */
			char enc[600], *p = enc;
			const char *s;

			for (s = nx->valuestring; *s && p < enc + 590; s++) {
				if ((*s >= 'a' && *s <= 'z') ||
				    (*s >= 'A' && *s <= 'Z') ||
				    (*s >= '0' && *s <= '9') || *s == '-' ||
				    *s == '_')
					*p++ = *s;
				else
					p += sprintf(p, "%%%02X",
						     (unsigned char)*s);
			}
			*p = '\0';
			next = strdup(enc);
		}
		cJSON_Delete(j);
		alyx_free(out);
		if (!next)
			break;
		ASSERT(pages < 20);
	}
	ASSERT_EQ(total, N_POSTS);
	for (i = 0; i < N_POSTS; i++)
		ASSERT_EQ(seen[i], 1);
	ASSERT_EQ(pages, 7);
	close_seeded(a, dir, ann, bob);
}

TEST(seed_dump_reset_round_trip)
{
	char *dir, *ann, *bob, *dump = NULL, *dump2 = NULL, *out = NULL;
	alyx *a = open_seeded(&dir, &ann, &bob);

	ASSERT_OK(alyx_db_dump(a, &dump));
	ASSERT_EQ(count_in(dump, "posts"), N_POSTS);
	ASSERT_EQ(count_in(dump, "users"), 2);
	ASSERT_OK(alyx_db_reset(a));
	ASSERT_OK(alyx_query_str(a, NULL, "posts", "total=true", &out));
	ASSERT_CONTAINS(out, "\"total\":0");
	alyx_free(out);
	ASSERT_OK(alyx_changes(a, 0, 100, &out));
	ASSERT_EQ(count_in(out, "changes"), 0);
	alyx_free(out);
	ASSERT_OK(alyx_db_seed(a, dump, (size_t)-1, &out));
	ASSERT_CONTAINS(out, "\"posts\":45");
	ASSERT_CONTAINS(out, "\"users\":2");
	alyx_free(out);
	ASSERT_OK(alyx_db_dump(a, &dump2));
	ASSERT_STR_EQ(dump2, dump);
	alyx_free(dump2);
	/* A seed with one bad document writes nothing and names it. */
	ASSERT_OK(alyx_db_reset(a));
	ASSERT_EQ(alyx_db_seed(a,
			       "{\"users\":[{\"email\":\"a@b.co\"},"
			       "{\"email\":\"zz\"}]}",
			       (size_t)-1, &out),
		  ALYX_E_VALIDATION);
	ASSERT_CONTAINS(alyx_errdetails(a), "\"collection\":\"users\"");
	ASSERT_CONTAINS(alyx_errdetails(a), "\"index\":1");
	ASSERT_OK(alyx_query_str(a, NULL, "users", "total=true", &out));
	ASSERT_CONTAINS(out, "\"total\":0");
	alyx_free(out);
	/* Collections out of reference order seed fine. */
	ASSERT_OK(alyx_db_seed(a, dump, (size_t)-1, NULL));
	ASSERT_EQ(alyx_db_seed(a, "{\"nope\":[]}", (size_t)-1, NULL),
		  ALYX_E_NOTFOUND);
	alyx_free(dump);
	close_seeded(a, dir, ann, bob);
}

TEST(change_feed_sees_other_processes)
{
	char *dir, *out = NULL, *uid, *pid, cmd[1024], body[512];
	alyx *a = open_blog(&dir);
	cJSON *j, *ch, *last;
	int64_t last_id;

	uid = create_id(a, "users", "{\"email\":\"fe@example.com\"}");
	snprintf(body, sizeof(body),
		 "{\"title\":\"F\",\"slug\":\"f\",\"content\":\"c\","
		 "\"author_id\":\"%s\"}", uid);
	pid = create_id(a, "posts", body);
	ASSERT_OK(alyx_doc_update(a, NULL, "posts", pid,
				  "{\"title\":\"G\"}", (size_t)-1, &out));
	alyx_free(out);
	ASSERT_OK(alyx_changes(a, 0, 100, &out));
	j = cJSON_Parse(out);
	ch = cJSON_GetObjectItem(j, "changes");
	ASSERT_EQ(cJSON_GetArraySize(ch), 3);
	ASSERT_STR_EQ(cJSON_GetObjectItem(cJSON_GetArrayItem(ch, 0),
					  "operation")->valuestring, "INSERT");
	last = cJSON_GetArrayItem(ch, 2);
	ASSERT_STR_EQ(cJSON_GetObjectItem(last, "operation")->valuestring,
		      "UPDATE");
	ASSERT_STR_EQ(cJSON_GetObjectItem(last, "doc_id")->valuestring, pid);
	ASSERT_CONTAINS(out, "\"changed_fields\":[\"title\"");
	last_id = (int64_t)cJSON_GetObjectItem(j, "last_id")->valuedouble;
	cJSON_Delete(j);
	alyx_free(out);

	/* Another process writes the file with the sqlite3 shell. */
	snprintf(cmd, sizeof(cmd),
		 "sqlite3 '%s' \"PRAGMA busy_timeout=5000; UPDATE posts SET "
		 "view_count = 99 WHERE id = '%s'; DELETE FROM comments;\" "
		 ">/dev/null",
		 alyx_db_path(a), pid);
	ASSERT_EQ(system(cmd), 0);
	ASSERT_OK(alyx_changes(a, last_id, 100, &out));
	j = cJSON_Parse(out);
	ch = cJSON_GetObjectItem(j, "changes");
	ASSERT_EQ(cJSON_GetArraySize(ch), 1);
	ASSERT_CONTAINS(out, "view_count");
	ASSERT_CONTAINS(out, pid);
	cJSON_Delete(j);
	alyx_free(out);
	ASSERT_OK(alyx_doc_get(a, NULL, "posts", pid, NULL, &out));
	ASSERT_CONTAINS(out, "\"view_count\":99");
	alyx_free(out);
	/* limit bounds */
	ASSERT_OK(alyx_changes(a, 0, 1, &out));
	ASSERT_EQ(count_in(out, "changes"), 1);
	alyx_free(out);
	ASSERT_EQ(alyx_changes(a, 0, 10001, &out), ALYX_E_MISUSE);
	free(uid);
	free(pid);
	alyx_close(a);
	remove_project(dir);
}

TEST(migrate_wrappers)
{
	char *dir = make_project(1), *out = NULL, path[600];
	alyx *a = NULL;
	struct stat st;

	ASSERT_OK(alyx_open(dir, ALYX_OPEN_CREATE, &a));
	ASSERT_OK(alyx_migrate_status(a, &out));
	ASSERT_CONTAINS(out, "\"pending\"");
	alyx_free(out);
	/* apply brings schema.yaml in. */
	ASSERT_OK(alyx_migrate_apply(a, &out));
	alyx_free(out);
	ASSERT_OK(alyx_schema_json(a, &out));
	ASSERT_CONTAINS(out, "\"comments\"");
	alyx_free(out);
	ASSERT_OK(alyx_migrate_create(a, "add_things", &out));
	ASSERT_CONTAINS(out, "add_things");
	alyx_free(out);
	snprintf(path, sizeof(path), "%s/migrations", dir);
	ASSERT_EQ(stat(path, &st), 0);
	ASSERT_EQ(alyx_migrate_create(a, NULL, &out), ALYX_E_MISUSE);
	ASSERT_EQ(alyx_migrate_rollback(a, 0, &out), ALYX_E_MISUSE);
	alyx_close(a);
	remove_project(dir);
}

TEST_MAIN()
