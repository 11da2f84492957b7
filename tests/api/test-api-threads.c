/* test-api-threads.c - several threads share one handle: creates, queries
 * and gets at once; nothing is lost and each thread keeps its own error. */
#include <pthread.h>

#include "api-util.h"

#define THREADS 4
#define PER_THREAD 150

static alyx *shared;
static char *author;

static void *worker(void *arg)
{
	int t = (int)(intptr_t)arg, i, bad = 0;
	char body[512], *out = NULL;

	for (i = 0; i < PER_THREAD; i++) {
		snprintf(body, sizeof(body),
			 "{\"title\":\"T%d-%d\",\"slug\":\"s%d-%d\","
			 "\"content\":\"c\",\"author_id\":\"%s\"}",
			 t, i, t, i, author);
		if (alyx_doc_create(shared, NULL, "posts", body, (size_t)-1,
				    &out) != 0) {
			fprintf(stderr, "create: %s\n", alyx_errmsg(shared));
			bad++;
		}
		alyx_free(out);
		if (i % 10 == 0) {
			if (alyx_query_str(shared, NULL, "posts",
					   "sort=-created_at&limit=20", &out))
				bad++;
			alyx_free(out);
		}
		/* A failure on this thread stays on this thread. */
		if (i % 25 == 0) {
			if (alyx_doc_get(shared, NULL, "posts", "missing",
					 NULL, &out) != ALYX_E_NOTFOUND ||
			    alyx_errcode(shared) != ALYX_E_NOTFOUND)
				bad++;
		}
	}
	return (void *)(intptr_t)bad;
}

TEST(threads_share_one_handle)
{
	pthread_t th[THREADS];
	char *dir, *out = NULL, want[64];
	int i;

	shared = open_blog(&dir);
	author = create_id(shared, "users", "{\"email\":\"t@example.com\"}");
	for (i = 0; i < THREADS; i++)
		ASSERT_EQ(pthread_create(&th[i], NULL, worker,
					 (void *)(intptr_t)i), 0);
	/* A schema change while the workers run: queries keep the schema
	 * they started with; later ones see the new field. */
	{
		char *yaml = slurp(FIXTURES_DIR "/blog/schema.yaml"), *p, *y2;
		const char *anchor = "  posts:\n    fields:\n";
		const char *add = "      subtitle: {type: string, nullable: "
				  "true}\n";

		ASSERT(yaml != NULL);
		p = strstr(yaml, anchor);
		ASSERT(p != NULL);
		p += strlen(anchor);
		y2 = malloc(strlen(yaml) + strlen(add) + 1);
		memcpy(y2, yaml, (size_t)(p - yaml));
		strcpy(y2 + (p - yaml), add);
		strcat(y2, p);
		usleep(20000);
		if (alyx_apply_schema(shared, y2, (size_t)-1, NULL, 0, &out))
			TH_FAIL("apply: %s", alyx_errmsg(shared));
		ASSERT_CONTAINS(out, "add_field");
		alyx_free(out);
		free(y2);
		free(yaml);
	}
	for (i = 0; i < THREADS; i++) {
		void *bad = NULL;

		pthread_join(th[i], &bad);
		ASSERT_EQ((intptr_t)bad, 0);
	}
	ASSERT_OK(alyx_query_str(shared, NULL, "posts", "total=true&limit=1",
				 &out));
	snprintf(want, sizeof(want), "\"total\":%d", THREADS * PER_THREAD);
	ASSERT_CONTAINS(out, want);
	alyx_free(out);
	ASSERT_OK(alyx_query_str(shared, NULL, "posts",
				 "filter=subtitle:eq:x&total=true", &out));
	ASSERT_CONTAINS(out, "\"total\":0");
	alyx_free(out);
	ASSERT_OK(alyx_changes(shared, 0, 10000, &out));
	ASSERT_EQ(count_in(out, "changes"), THREADS * PER_THREAD + 1);
	alyx_free(out);
	free(author);
	alyx_close(shared);
	remove_project(dir);
}

static void *fail_and_exit(void *arg)
{
	char *out = NULL;

	/* The thread ends with an error (with details) as its last state;
	 * its exit must free it (ASan's leak check watches). */
	if (alyx_query_str(shared, NULL, "nope", "", &out) != ALYX_E_NOTFOUND)
		return (void *)1;
	return strcmp(alyx_errdetails(shared), "{\"collection\":\"nope\"}")
		       ? (void *)1 : NULL;
}

TEST(thread_exit_frees_its_error)
{
	pthread_t th;
	char *dir;
	void *bad = (void *)1;

	shared = open_blog(&dir);
	ASSERT_EQ(pthread_create(&th, NULL, fail_and_exit, NULL), 0);
	pthread_join(th, &bad);
	ASSERT(bad == NULL);
	alyx_close(shared);
	remove_project(dir);
}

TEST_MAIN()
