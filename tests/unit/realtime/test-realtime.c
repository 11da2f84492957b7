/*
 * Tests of lib/realtime: snapshots and deltas through the C API, window
 * maintenance with sort + limit, writes by another connection and by the
 * sqlite3 shell (found through PRAGMA data_version), resume with since,
 * feed pruning, subscribe/unsubscribe cycles, and the randomised model
 * test: every subscriber's state rebuilt only from its messages equals a
 * fresh alyx_query() result.
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <alyx.h>

#include "auth/auth.h"
#include "core/handle.h"
#include "harness.h"

static const char SCHEMA[] =
	"version: 1\n"
	"collections:\n"
	"  owners:\n"
	"    rules:\n"
	"      read: \"auth.id != null\"\n"
	"    fields:\n"
	"      id: {type: string, primary: true}\n"
	"      name: {type: string}\n"
	"  items:\n"
	"    rules:\n"
	/* An exact part (pushed into SQL) and an arithmetic one (evaluated
	 * per row): subscribers with a context see what it allows. */
	"      read: \"doc.flag == true || auth.id == doc.grp || "
	"doc.n % 5 == 0\"\n"
	"    fields:\n"
	"      id: {type: string, primary: true}\n"
	"      grp: {type: string}\n"
	"      n: {type: int}\n"
	"      score: {type: float, nullable: true}\n"
	"      flag: {type: bool}\n"
	"      owner: {type: string, nullable: true, references: owners.id}\n";

#define N_OWNERS 4
#define N_IDS 40

static void spit(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");

	ASSERT(f != NULL);
	ASSERT_EQ(fwrite(text, 1, strlen(text), f), strlen(text));
	fclose(f);
}

/* A project with SCHEMA applied and the owners created. */
static alyx *open_project(const char *yaml_extra, char dir[64])
{
	char path[128], *plan = NULL;
	alyx *a = NULL;
	int i;

	strcpy(dir, "/tmp/alyx-rt-XXXXXX");
	ASSERT(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/alyx.yaml", dir);
	spit(path, yaml_extra ? yaml_extra : "database:\n  path: data/a.db\n");
	ASSERT_OK(alyx_open(dir, ALYX_OPEN_CREATE, &a));
	ASSERT_OK(alyx_apply_schema(a, SCHEMA, (size_t)-1, NULL, 0, &plan));
	alyx_free(plan);
	for (i = 0; i < N_OWNERS; i++) {
		char j[64], *out = NULL;

		snprintf(j, sizeof(j), "{\"id\":\"o%d\",\"name\":\"n%d\"}", i, i);
		ASSERT_OK(alyx_doc_create(a, NULL, "owners", j, (size_t)-1,
					  &out));
		alyx_free(out);
	}
	return a;
}

static void rm_project(const char *dir)
{
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ASSERT_EQ(system(cmd), 0);
}

/* ---- a subscriber: its documents, rebuilt from messages only ---- */

typedef struct client {
	pthread_mutex_t mu;
	cJSON *docs;		/* object: id -> doc */
	int snapshots, deltas, errors;
	int resumes;		/* resume deltas (instead of a snapshot) */
	int64_t change_id;
	bool resync, has_resync;
	int n_ins, n_upd, n_del;
	char last[4096];
} client;

static void client_init(client *c)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->mu, NULL);
	c->docs = cJSON_CreateObject();
}

static void client_free(client *c)
{
	cJSON_Delete(c->docs);
	pthread_mutex_destroy(&c->mu);
}

static char *id_text(const cJSON *doc)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(doc, "id");

	return id && cJSON_IsString(id) ? id->valuestring : NULL;
}

static void on_msg(const char *json, size_t len, void *ud)
{
	client *c = ud;
	cJSON *m = cJSON_ParseWithLength(json, len), *d;
	const cJSON *ch, *x;

	if (!m) {
		TH_FAIL("message is not JSON: %.200s", json);
		return;
	}
	pthread_mutex_lock(&c->mu);
	snprintf(c->last, sizeof(c->last), "%.*s", (int)len, json);
	if ((x = cJSON_GetObjectItemCaseSensitive(m, "error"))) {
		c->errors++;
	} else if ((d = cJSON_GetObjectItemCaseSensitive(m, "docs"))) {
		c->snapshots++;
		cJSON_Delete(c->docs);
		c->docs = cJSON_CreateObject();
		cJSON_ArrayForEach(x, d)
			cJSON_AddItemToObject(c->docs, id_text(x),
					      cJSON_Duplicate(x, true));
		x = cJSON_GetObjectItemCaseSensitive(m, "resync");
		c->has_resync = x != NULL;
		c->resync = cJSON_IsTrue(x);
	} else {
		/* A resume delta may delete or update what this client
		 * never had (docs/realtime.md, "Resume"); a live one not. */
		bool resumed = cJSON_IsTrue(
			cJSON_GetObjectItemCaseSensitive(m, "resumed"));

		ch = cJSON_GetObjectItemCaseSensitive(m, "changes");
		ASSERT(ch != NULL);
		if (resumed) {
			ASSERT_EQ(c->snapshots + c->resumes, 0);
			c->resumes++;
		} else {
			c->deltas++;
		}
		cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(
					      ch, "deletes")) {
			ASSERT(resumed || cJSON_GetObjectItemCaseSensitive(
				c->docs, x->valuestring) != NULL);
			cJSON_DeleteItemFromObjectCaseSensitive(c->docs,
								x->valuestring);
			c->n_del++;
		}
		cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(
					      ch, "updates")) {
			bool had = cJSON_GetObjectItemCaseSensitive(
				c->docs, id_text(x)) != NULL;

			ASSERT(resumed || had);
			if (had)
				cJSON_ReplaceItemInObjectCaseSensitive(
					c->docs, id_text(x),
					cJSON_Duplicate(x, true));
			else
				cJSON_AddItemToObject(c->docs, id_text(x),
						      cJSON_Duplicate(x, true));
			c->n_upd++;
		}
		cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(
					      ch, "inserts")) {
			ASSERT(cJSON_GetObjectItemCaseSensitive(
				c->docs, id_text(x)) == NULL);
			cJSON_AddItemToObject(c->docs, id_text(x),
					      cJSON_Duplicate(x, true));
			c->n_ins++;
		}
	}
	x = cJSON_GetObjectItemCaseSensitive(m, "change_id");
	if (cJSON_IsNumber(x)) {
		ASSERT(x->valuedouble >= (double)c->change_id);
		c->change_id = (int64_t)x->valuedouble;
	}
	pthread_mutex_unlock(&c->mu);
	cJSON_Delete(m);
}

/* Sorts a client's documents by the query's order. */
static alyx__query *g_q;

static int cmp_docs(const void *x, const void *y)
{
	return alyx__query_doc_cmp(g_q, *(cJSON *const *)x,
				   *(cJSON *const *)y);
}

/* The client's documents, ordered, equal the fresh query result for the
 * same caller. */
static void check_client_as(alyx *a, const alyx_ctx *ctx, client *c,
			    const char *query)
{
	alyx__snap *snap = alyx__snap_get(a);
	alyx__err err = {0};
	cJSON *qj = cJSON_Parse(query), *res, *arr[2000];
	const cJSON *docs, *d;
	char *out = NULL;
	size_t n = 0, i;

	cJSON_DeleteItemFromObjectCaseSensitive(qj, "since");
	ASSERT_OK(alyx__query_parse_json(
		snap->schema, alyx__schema_coll(snap->schema, "items"), qj,
		&g_q, &err));
	{
		char *plain = cJSON_PrintUnformatted(qj);

		ASSERT_OK(alyx_query(a, ctx, "items", plain, &out));
		free(plain);
	}
	res = cJSON_Parse(out);
	docs = cJSON_GetObjectItemCaseSensitive(res, "docs");
	pthread_mutex_lock(&c->mu);
	cJSON_ArrayForEach(d, c->docs)
		arr[n++] = (cJSON *)d;
	qsort(arr, n, sizeof(arr[0]), cmp_docs);
	if ((size_t)cJSON_GetArraySize(docs) != n) {
		char *have = cJSON_PrintUnformatted(c->docs);

		TH_FAIL("query %s: client has %zu docs, query %d\n have %s\n"
			" want %s\n last %s", query, n,
			cJSON_GetArraySize(docs), have, out, c->last);
		free(have);
	}
	i = 0;
	cJSON_ArrayForEach(d, docs) {
		if (i < n && !cJSON_Compare(d, arr[i], true)) {
			char *x = cJSON_PrintUnformatted(d);
			char *y = cJSON_PrintUnformatted(arr[i]);

			TH_FAIL("query %s: doc %zu differs:\n want %s\n have %s",
				query, i, x, y);
			free(x);
			free(y);
		}
		i++;
	}
	pthread_mutex_unlock(&c->mu);
	alyx__query_free(g_q);
	cJSON_Delete(res);
	cJSON_Delete(qj);
	alyx_free(out);
	alyx__snap_put(snap);
}

static void check_client(alyx *a, client *c, const char *query)
{
	check_client_as(a, NULL, c, query);
}

/* Dispatches until nothing more arrives for a while (the data_version
 * timer included). */
static void settle(alyx *a)
{
	int i;

	for (i = 0; i < 4; i++) {
		struct pollfd p = {.fd = alyx_get_fd(a), .events = POLLIN};
		int t = alyx_next_timeout_ms(a);

		poll(&p, 1, t < 0 || t > 200 ? 200 : t + 1);
		ASSERT_OK(alyx_dispatch(a));
	}
}

static void create(alyx *a, const char *json)
{
	char *out = NULL;

	ASSERT_OK(alyx_doc_create(a, NULL, "items", json, (size_t)-1, &out));
	alyx_free(out);
}

static void update(alyx *a, const char *id, const char *json)
{
	char *out = NULL;

	ASSERT_OK(alyx_doc_update(a, NULL, "items", id, json, (size_t)-1,
				  &out));
	alyx_free(out);
}

/* A reconnecting client: what `src` held, at its change id. */
static void client_copy(client *dst, client *src)
{
	client_init(dst);
	pthread_mutex_lock(&src->mu);
	cJSON_Delete(dst->docs);
	dst->docs = cJSON_Duplicate(src->docs, true);
	dst->change_id = src->change_id;
	pthread_mutex_unlock(&src->mu);
}

/* ---- deterministic cases ---- */

TEST(window_with_sort_and_limit)
{
	static const char q[] = "{\"filter\":{\"grp\":{\"$eq\":\"a\"}},"
				"\"sort\":[\"n\"],\"limit\":2,\"total\":true}";
	char dir[64];
	alyx *a = open_project(NULL, dir);
	alyx_sub *s = NULL;
	client c;

	client_init(&c);
	create(a, "{\"id\":\"x1\",\"grp\":\"a\",\"n\":10,\"flag\":true}");
	create(a, "{\"id\":\"x2\",\"grp\":\"a\",\"n\":20,\"flag\":true}");
	create(a, "{\"id\":\"x3\",\"grp\":\"a\",\"n\":30,\"flag\":true}");
	create(a, "{\"id\":\"y1\",\"grp\":\"b\",\"n\":1,\"flag\":true}");
	ASSERT_OK(alyx_subscribe(a, NULL, "items", q, on_msg, &c, NULL, &s));
	ASSERT_STR_EQ(alyx_sub_id(s), "sub_1");
	ASSERT_EQ(c.snapshots, 0);	/* delivered by dispatch */
	ASSERT_OK(alyx_dispatch(a));
	ASSERT_EQ(c.snapshots, 1);
	ASSERT_CONTAINS(c.last, "\"total\":3");
	ASSERT_CONTAINS(c.last, "\"subscription_id\":\"sub_1\"");
	ASSERT(!c.has_resync);
	check_client(a, &c, q);

	/* Enters the top 2: pushes x2 out. */
	create(a, "{\"id\":\"x0\",\"grp\":\"a\",\"n\":5,\"flag\":false}");
	ASSERT_OK(alyx_dispatch(a));
	ASSERT_EQ(c.deltas, 1);
	ASSERT_CONTAINS(c.last, "\"deletes\":[\"x2\"]");
	ASSERT_CONTAINS(c.last, "\"inserts\":[{\"id\":\"x0\"");
	check_client(a, &c, q);
	/* Another group: nothing for this subscriber. */
	create(a, "{\"id\":\"y2\",\"grp\":\"b\",\"n\":0,\"flag\":false}");
	ASSERT_OK(alyx_dispatch(a));
	ASSERT_EQ(c.deltas, 1);
	/* Leaves the group: the next one in (x2) comes back. */
	update(a, "x0", "{\"grp\":\"b\"}");
	ASSERT_OK(alyx_dispatch(a));
	ASSERT_EQ(c.deltas, 2);
	ASSERT_CONTAINS(c.last, "\"deletes\":[\"x0\"]");
	ASSERT_CONTAINS(c.last, "\"id\":\"x2\"");
	check_client(a, &c, q);
	/* Changes inside the window: an update. */
	update(a, "x1", "{\"score\":1.5}");
	ASSERT_OK(alyx_dispatch(a));
	ASSERT_EQ(c.deltas, 3);
	ASSERT_CONTAINS(c.last, "\"updates\":[{\"id\":\"x1\"");
	/* Moves beyond the window: x3 comes in. */
	update(a, "x1", "{\"n\":99}");
	ASSERT_OK(alyx_dispatch(a));
	check_client(a, &c, q);
	ASSERT_CONTAINS(c.last, "\"deletes\":[\"x1\"]");
	/* Deleted. */
	ASSERT_OK(alyx_doc_delete(a, NULL, "items", "x2"));
	ASSERT_OK(alyx_dispatch(a));
	check_client(a, &c, q);
	ASSERT_CONTAINS(c.last, "\"change_id\":");
	alyx_unsubscribe(s);
	client_free(&c);
	alyx_close(a);
	rm_project(dir);
}

TEST(shared_view)
{
	static const char q[] = "{\"filter\":{\"flag\":true},"
				"\"sort\":[\"-n\"],\"limit\":2}";
	char dir[64];
	alyx *a = open_project(NULL, dir);
	alyx_sub *s1 = NULL, *s2 = NULL;
	client c1, c2;

	client_init(&c1);
	client_init(&c2);
	create(a, "{\"id\":\"v1\",\"grp\":\"a\",\"n\":1,\"flag\":true}");
	ASSERT_OK(alyx_subscribe(a, NULL, "items", q, on_msg, &c1, NULL, &s1));
	ASSERT_OK(alyx_dispatch(a));
	create(a, "{\"id\":\"v2\",\"grp\":\"a\",\"n\":2,\"flag\":true}");
	/* Joins the same view before the change is dispatched. */
	ASSERT_OK(alyx_subscribe(a, NULL, "items", q, on_msg, &c2, NULL, &s2));
	ASSERT_OK(alyx_dispatch(a));
	check_client(a, &c1, q);
	check_client(a, &c2, q);
	ASSERT_CONTAINS(c2.last, "\"subscription_id\":\"sub_2\"");
	create(a, "{\"id\":\"v3\",\"grp\":\"a\",\"n\":3,\"flag\":true}");
	ASSERT_OK(alyx_dispatch(a));
	ASSERT_CONTAINS(c1.last, "\"subscription_id\":\"sub_1\"");
	ASSERT_CONTAINS(c2.last, "\"subscription_id\":\"sub_2\"");
	ASSERT_CONTAINS(c2.last, "\"deletes\":[\"v1\"]");
	check_client(a, &c1, q);
	check_client(a, &c2, q);
	/* The view lives on with its other subscriber. */
	alyx_unsubscribe(s1);
	update(a, "v3", "{\"flag\":false}");
	ASSERT_OK(alyx_dispatch(a));
	check_client(a, &c2, q);
	ASSERT_CONTAINS(c2.last, "\"inserts\":[{\"id\":\"v1\"");
	alyx_unsubscribe(s2);
	client_free(&c1);
	client_free(&c2);
	alyx_close(a);
	rm_project(dir);
}

TEST(commit_makes_the_fd_readable)
{
	char dir[64];
	alyx *a = open_project(NULL, dir);
	alyx_sub *s = NULL;
	struct pollfd p;
	client c;

	client_init(&c);
	ASSERT_OK(alyx_subscribe(a, NULL, "items", NULL, on_msg, &c, NULL, &s));
	p.fd = alyx_get_fd(a);
	p.events = POLLIN;
	ASSERT(p.fd >= 0);
	ASSERT_EQ(poll(&p, 1, 0), 1);	/* the snapshot */
	ASSERT_OK(alyx_dispatch(a));
	ASSERT_EQ(poll(&p, 1, 0), 0);
	ASSERT(alyx_next_timeout_ms(a) >= 0);
	create(a, "{\"id\":\"x1\",\"grp\":\"a\",\"n\":1,\"flag\":true}");
	ASSERT_EQ(poll(&p, 1, 0), 1);	/* right after the commit */
	ASSERT_OK(alyx_dispatch(a));
	ASSERT_EQ(c.deltas, 1);
	ASSERT_EQ(c.n_ins, 1);
	alyx_unsubscribe(s);
	client_free(&c);
	alyx_close(a);
	rm_project(dir);
}

TEST(other_connection_found_by_data_version)
{
	char dir[64];
	alyx *a = open_project("database:\n  path: data/a.db\n"
			       "realtime:\n  poll_interval_ms: 20\n", dir);
	alyx_sub *s = NULL;
	sqlite3 *db = NULL;
	client c;
	int i;

	client_init(&c);
	ASSERT_OK(alyx_subscribe(a, NULL, "items",
				 "{\"filter\":{\"flag\":{\"$eq\":true}}}",
				 on_msg, &c, NULL, &s));
	ASSERT_OK(alyx_dispatch(a));
	ASSERT_EQ(sqlite3_open(alyx_db_path(a), &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	ASSERT_EQ(sqlite3_exec(db, "INSERT INTO items (id, grp, n, flag) "
			       "VALUES ('e1','a',1,1),('e2','a',2,0)",
			       NULL, NULL, NULL), SQLITE_OK);
	ASSERT(alyx_next_timeout_ms(a) <= 20);
	for (i = 0; i < 50 && c.deltas == 0; i++) {
		usleep(5000);
		ASSERT_OK(alyx_dispatch(a));
	}
	ASSERT_EQ(c.deltas, 1);
	ASSERT_EQ(c.n_ins, 1);
	ASSERT_CONTAINS(c.last, "\"id\":\"e1\"");
	sqlite3_close(db);
	alyx_unsubscribe(s);
	client_free(&c);
	alyx_close(a);
	rm_project(dir);
}

TEST(sqlite3_shell_writes_are_seen)
{
	static const char q[] = "{\"sort\":[\"-n\"],\"limit\":3}";
	char dir[64], cmd[512];
	alyx *a;
	alyx_sub *s = NULL;
	client c;
	int i;

	if (access("/usr/bin/sqlite3", X_OK) != 0)
		SKIP("no sqlite3 shell");
	a = open_project("database:\n  path: data/a.db\n"
			 "realtime:\n  poll_interval_ms: 10\n", dir);
	client_init(&c);
	for (i = 0; i < 5; i++) {
		char j[96];

		snprintf(j, sizeof(j),
			 "{\"id\":\"s%d\",\"grp\":\"a\",\"n\":%d,\"flag\":true}",
			 i, i);
		create(a, j);
	}
	ASSERT_OK(alyx_subscribe(a, NULL, "items", q, on_msg, &c, NULL, &s));
	ASSERT_OK(alyx_dispatch(a));
	snprintf(cmd, sizeof(cmd),
		 "sqlite3 -cmd '.timeout 5000' '%s' \"UPDATE items SET n = 100 "
		 "WHERE id = 's0'; DELETE FROM items WHERE id = 's4'; "
		 "INSERT INTO items (id, grp, n, flag) VALUES "
		 "('s9','b',50,0);\" >/dev/null",
		 alyx_db_path(a));
	ASSERT_EQ(system(cmd), 0);
	settle(a);
	check_client(a, &c, q);
	ASSERT(c.deltas >= 1);
	alyx_unsubscribe(s);
	client_free(&c);
	alyx_close(a);
	rm_project(dir);
}

TEST(since_and_pruning)
{
	char dir[64];
	alyx *a = open_project("database:\n  path: data/a.db\n"
			       "realtime:\n  change_retention: 1s\n", dir);
	alyx_sub *s1 = NULL, *s2 = NULL, *s3 = NULL;
	client c1, c2, c3;
	char *out = NULL;
	cJSON *j;
	char q[64];

	client_init(&c1);
	client_init(&c2);
	client_init(&c3);
	create(a, "{\"id\":\"p1\",\"grp\":\"a\",\"n\":1,\"flag\":true}");
	ASSERT_OK(alyx_subscribe(a, NULL, "items", NULL, on_msg, &c1, NULL,
				 &s1));
	ASSERT_OK(alyx_dispatch(a));
	ASSERT(c1.change_id > 0);
	/* Resume from a change the feed still holds: c2 (holding what c1
	 * held) gets the missed change only. */
	snprintf(q, sizeof(q), "{\"since\":%lld}", (long long)c1.change_id);
	client_free(&c2);
	client_copy(&c2, &c1);
	create(a, "{\"id\":\"p2\",\"grp\":\"a\",\"n\":2,\"flag\":true}");
	ASSERT_OK(alyx_subscribe(a, NULL, "items", q, on_msg, &c2, NULL, &s2));
	ASSERT_OK(alyx_dispatch(a));
	ASSERT_EQ(c2.snapshots, 0);
	ASSERT_EQ(c2.resumes, 1);
	ASSERT_EQ(c2.n_ins, 1);
	ASSERT_EQ(cJSON_GetArraySize(c2.docs), 2);
	check_client(a, &c1, "{}");
	check_client(a, &c2, "{}");
	/* After the retention, dispatch prunes what the broker has seen. */
	sleep(2);
	ASSERT_EQ(alyx_next_timeout_ms(a), 0);
	ASSERT_OK(alyx_dispatch(a));
	create(a, "{\"id\":\"p3\",\"grp\":\"a\",\"n\":3,\"flag\":true}");
	ASSERT_OK(alyx_dispatch(a));
	ASSERT_OK(alyx_changes(a, 0, 100, &out));
	j = cJSON_Parse(out);
	/* The owners' and p1/p2's changes are gone, p3's is kept. */
	ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(j, "changes")), 1);
	cJSON_Delete(j);
	alyx_free(out);
	ASSERT_OK(alyx_subscribe(a, NULL, "items", "{\"since\":1}", on_msg,
				 &c3, NULL, &s3));
	ASSERT_OK(alyx_dispatch(a));
	ASSERT(c3.resync);
	ASSERT_EQ(c3.snapshots, 1);
	ASSERT_EQ(c3.resumes, 0);
	ASSERT_EQ(cJSON_GetArraySize(c3.docs), 3);
	check_client(a, &c1, "{}");
	alyx_unsubscribe(s1);
	alyx_unsubscribe(s2);
	alyx_unsubscribe(s3);
	client_free(&c1);
	client_free(&c2);
	client_free(&c3);
	alyx_close(a);
	rm_project(dir);
}

static void resume_as(alyx *a, const alyx_ctx *ctx, const char *query,
		      client *c, alyx_sub **s)
{
	char q[256];

	snprintf(q, sizeof(q), "%.*s,\"since\":%lld}",
		 (int)strlen(query) - 1, query, (long long)c->change_id);
	ASSERT_OK(alyx_subscribe(a, ctx, "items", q, on_msg, c, NULL, s));
	ASSERT_OK(alyx_dispatch(a));
}

/* A resume is a replay of exactly what was missed: the documents changed
 * since, each in its current state or as a delete, then live deltas with
 * no gap and no repeat; a limit window or total gets a snapshot. */
TEST(resume_replays_missed_changes)
{
	static const char q[] = "{\"filter\":{\"grp\":{\"$in\":[\"a\",\"b\"]}}}";
	static const char qx[] = "{\"filter\":{\"grp\":{\"$eq\":\"a\"}},"
				 "\"expand\":[\"owner\"]}";
	static const char ql[] = "{\"filter\":{\"grp\":{\"$in\":[\"a\",\"b\"]}},"
				 "\"limit\":2}";
	struct alyx_ctx ua = {.user_id = "a", .email = "a@x.io",
			      .role = "user"};
	char dir[64];
	alyx *a = open_project(NULL, dir);
	alyx_sub *s1 = NULL, *s2 = NULL, *s3 = NULL, *sx = NULL, *sl = NULL;
	client c1, c2, c3, cx, cx2, cl, cl2;

	client_init(&c1);
	client_init(&cx);
	client_init(&cl);
	create(a, "{\"id\":\"x1\",\"grp\":\"a\",\"n\":1,\"flag\":true,"
		  "\"owner\":\"o1\"}");
	create(a, "{\"id\":\"x2\",\"grp\":\"b\",\"n\":2,\"flag\":true}");
	create(a, "{\"id\":\"x3\",\"grp\":\"b\",\"n\":3,\"flag\":true}");
	create(a, "{\"id\":\"x4\",\"grp\":\"a\",\"n\":4,\"flag\":true}");
	ASSERT_OK(alyx_subscribe(a, &ua, "items", q, on_msg, &c1, NULL, &s1));
	ASSERT_OK(alyx_subscribe(a, &ua, "items", qx, on_msg, &cx, NULL,
				 &sx));
	ASSERT_OK(alyx_subscribe(a, &ua, "items", ql, on_msg, &cl, NULL,
				 &sl));
	ASSERT_OK(alyx_dispatch(a));
	ASSERT_EQ(cJSON_GetArraySize(c1.docs), 4);
	/* The clients go away; meanwhile ... */
	alyx_unsubscribe(s1);
	alyx_unsubscribe(sx);
	alyx_unsubscribe(sl);
	client_copy(&c2, &c1);
	client_copy(&cx2, &cx);
	client_copy(&cl2, &cl);
	update(a, "x1", "{\"n\":11}");			/* update */
	update(a, "x1", "{\"n\":12}");			/* once, last state */
	update(a, "x2", "{\"grp\":\"c\"}");		/* stops matching */
	update(a, "x3", "{\"flag\":false}");		/* hidden by the rule */
	create(a, "{\"id\":\"x5\",\"grp\":\"a\",\"n\":5,\"flag\":true}");
	create(a, "{\"id\":\"x6\",\"grp\":\"a\",\"n\":6,\"flag\":true}");
	ASSERT_OK(alyx_doc_delete(a, NULL, "items", "x6")); /* never seen */
	ASSERT_OK(alyx_doc_delete(a, NULL, "items", "x4"));
	create(a, "{\"id\":\"y1\",\"grp\":\"z\",\"n\":7,\"flag\":true}");
	/* ... the owner x1 expands changes (no change of x1's row). */
	{
		char *out = NULL;

		ASSERT_OK(alyx_doc_update(a, NULL, "owners", "o1",
					  "{\"name\":\"renamed\"}",
					  (size_t)-1, &out));
		alyx_free(out);
	}
	/* ... and they come back. */
	resume_as(a, &ua, q, &c2, &s2);
	ASSERT_EQ(c2.snapshots, 0);
	ASSERT_EQ(c2.resumes, 1);
	ASSERT_EQ(c2.n_ins, 1);		/* x5 */
	ASSERT_EQ(c2.n_upd, 1);		/* x1 */
	ASSERT_EQ(c2.n_del, 3);		/* x2, x3, x4 */
	check_client_as(a, &ua, &c2, q);
	/* The expanded owner changed: every document held is an update. */
	resume_as(a, &ua, qx, &cx2, &sx);
	ASSERT_EQ(cx2.snapshots, 0);
	ASSERT_EQ(cx2.resumes, 1);
	ASSERT(strstr(cx2.last, "renamed") != NULL);
	check_client_as(a, &ua, &cx2, qx);
	/* A limit window cannot be replayed (see docs): a snapshot. */
	resume_as(a, &ua, ql, &cl2, &sl);
	ASSERT_EQ(cl2.snapshots, 1);
	ASSERT_EQ(cl2.resumes, 0);
	ASSERT(cl2.has_resync && !cl2.resync);
	check_client_as(a, &ua, &cl2, ql);
	/* Live from there: one delta, nothing twice. */
	update(a, "x5", "{\"n\":50}");
	ASSERT_OK(alyx_dispatch(a));
	ASSERT_EQ(c2.deltas, 1);
	ASSERT_EQ(c2.n_upd, 2);
	check_client_as(a, &ua, &c2, q);
	check_client_as(a, &ua, &cx2, qx);
	/* Nothing missed: an empty replay. */
	client_copy(&c3, &c2);
	resume_as(a, &ua, q, &c3, &s3);
	ASSERT_EQ(c3.resumes, 1);
	ASSERT_EQ(c3.n_ins + c3.n_upd + c3.n_del, 0);
	check_client_as(a, &ua, &c3, q);
	alyx_unsubscribe(s2);
	alyx_unsubscribe(s3);
	alyx_unsubscribe(sx);
	alyx_unsubscribe(sl);
	client_free(&c1);
	client_free(&c2);
	client_free(&c3);
	client_free(&cx);
	client_free(&cx2);
	client_free(&cl);
	client_free(&cl2);
	alyx_close(a);
	rm_project(dir);
}

TEST(reset_reaches_subscribers)
{
	static const char q[] = "{\"sort\":[\"n\"],\"limit\":5}";
	char dir[64];
	alyx *a = open_project(NULL, dir);
	alyx_sub *s = NULL;
	client c;

	client_init(&c);
	create(a, "{\"id\":\"r1\",\"grp\":\"a\",\"n\":1,\"flag\":true}");
	create(a, "{\"id\":\"r2\",\"grp\":\"a\",\"n\":2,\"flag\":true}");
	ASSERT_OK(alyx_subscribe(a, NULL, "items", q, on_msg, &c, NULL, &s));
	ASSERT_OK(alyx_dispatch(a));
	ASSERT_EQ(cJSON_GetArraySize(c.docs), 2);
	/* alyx_db_reset empties the feed with the rows. */
	ASSERT_OK(alyx_db_reset(a));
	ASSERT_OK(alyx_dispatch(a));
	ASSERT_EQ(cJSON_GetArraySize(c.docs), 0);
	ASSERT_CONTAINS(c.last, "\"deletes\":[\"r1\",\"r2\"]");
	check_client(a, &c, q);
	create(a, "{\"id\":\"r3\",\"grp\":\"a\",\"n\":3,\"flag\":true}");
	ASSERT_OK(alyx_dispatch(a));
	check_client(a, &c, q);
	ASSERT_EQ(cJSON_GetArraySize(c.docs), 1);
	alyx_unsubscribe(s);
	client_free(&c);
	alyx_close(a);
	rm_project(dir);
}

TEST(schema_change_rebinds)
{
	static const char q[] = "{\"filter\":{\"grp\":\"a\"},"
				"\"sort\":[\"-n\"],\"limit\":3}";
	char dir[64], *plan = NULL, *schema2;
	alyx *a = open_project("database:\n  path: data/a.db\n"
			       "realtime:\n  poll_interval_ms: 10\n", dir);
	alyx_sub *s = NULL;
	client c;

	client_init(&c);
	create(a, "{\"id\":\"m1\",\"grp\":\"a\",\"n\":1,\"flag\":true}");
	ASSERT_OK(alyx_subscribe(a, NULL, "items", q, on_msg, &c, NULL, &s));
	ASSERT_OK(alyx_dispatch(a));
	/* A new field: every document gains it. */
	schema2 = malloc(sizeof(SCHEMA) + 64);
	snprintf(schema2, sizeof(SCHEMA) + 64, "%s      extra: {type: string, "
		 "nullable: true}\n", SCHEMA);
	ASSERT_OK(alyx_apply_schema(a, schema2, (size_t)-1, NULL, 0, &plan));
	alyx_free(plan);
	free(schema2);
	create(a, "{\"id\":\"m2\",\"grp\":\"a\",\"n\":2,\"flag\":true,"
		  "\"extra\":\"x\"}");
	settle(a);
	check_client(a, &c, q);
	ASSERT_CONTAINS(c.last, "\"extra\"");
	ASSERT_EQ(c.errors, 0);
	update(a, "m1", "{\"grp\":\"b\"}");
	ASSERT_OK(alyx_dispatch(a));
	check_client(a, &c, q);
	alyx_unsubscribe(s);
	client_free(&c);
	alyx_close(a);
	rm_project(dir);
}

TEST(bad_subscriptions)
{
	char dir[64];
	alyx *a = open_project(NULL, dir);
	alyx_sub *s = NULL;
	client c;

	client_init(&c);
	ASSERT_EQ(alyx_subscribe(a, NULL, "nope", NULL, on_msg, &c, NULL, &s),
		  ALYX_E_NOTFOUND);
	ASSERT(s == NULL);
	ASSERT_EQ(alyx_subscribe(a, NULL, "items", "{\"offset\":2}", on_msg,
				 &c, NULL, &s), ALYX_E_BADQUERY);
	ASSERT_CONTAINS(alyx_errdetails(a), "offset");
	ASSERT_EQ(alyx_subscribe(a, NULL, "items", "{\"since\":-1}", on_msg,
				 &c, NULL, &s), ALYX_E_BADQUERY);
	ASSERT_EQ(alyx_subscribe(a, NULL, "items",
				 "{\"filter\":{\"zz\":{\"$eq\":1}}}", on_msg,
				 &c, NULL, &s), ALYX_E_BADQUERY);
	ASSERT_EQ(alyx_subscribe(a, NULL, "items", "[1]", on_msg, &c, NULL,
				 &s), ALYX_E_BADJSON);
	ASSERT_EQ(alyx_subscribe(a, NULL, "items", NULL, NULL, &c, NULL, &s),
		  ALYX_E_MISUSE);
	ASSERT_OK(alyx_dispatch(a));
	ASSERT_EQ(c.snapshots, 0);
	client_free(&c);
	alyx_close(a);
	rm_project(dir);
}

/* ---- cycles ---- */

static int destroyed;

static void count_destroy(void *p)
{
	(void)p;
	destroyed++;
}

static int n_msgs;

static void count_msg(const char *json, size_t len, void *ud)
{
	(void)ud;
	ASSERT(len == strlen(json));
	n_msgs++;
}

static alyx_sub *self_sub;

static void unsubscribe_self(const char *json, size_t len, void *ud)
{
	(void)json;
	(void)len;
	(void)ud;
	alyx_unsubscribe(self_sub);
	self_sub = NULL;
}

TEST(subscribe_unsubscribe_cycles)
{
	static const char *qs[] = {
		NULL, "{\"filter\":{\"grp\":{\"$eq\":\"a\"}},\"limit\":3}",
		"{\"filter\":{\"n\":{\"$gt\":2}},\"sort\":[\"-n\"]}",
		"{\"expand\":[\"owner\"],\"limit\":2}"};
	char dir[64];
	alyx *a = open_project(NULL, dir);
	alyx_sub *keep[8] = {0};
	client c;
	int i;

	client_init(&c);
	create(a, "{\"id\":\"c1\",\"grp\":\"a\",\"n\":3,\"flag\":true,"
		  "\"owner\":\"o1\"}");
	for (i = 0; i < 3000; i++) {
		alyx_sub *s = NULL;
		int k = i % 8;

		ASSERT_OK(alyx_subscribe(a, NULL, "items", qs[i % 4],
					 count_msg, NULL, count_destroy, &s));
		if (keep[k])
			alyx_unsubscribe(keep[k]);
		keep[k] = s;
		if (i % 100 == 0) {
			update(a, "c1", i % 200 ? "{\"n\":4}" : "{\"n\":3}");
			ASSERT_OK(alyx_dispatch(a));
		}
	}
	ASSERT_EQ(destroyed, 3000 - 8);
	ASSERT(n_msgs >= 30);
	/* Unsubscribing from inside its own callback. */
	ASSERT_OK(alyx_subscribe(a, NULL, "items", NULL, unsubscribe_self,
				 NULL, count_destroy, &self_sub));
	ASSERT_OK(alyx_dispatch(a));
	ASSERT(self_sub == NULL);
	ASSERT_EQ(destroyed, 3000 - 8 + 1);
	/* alyx_close ends the rest. */
	alyx_close(a);
	ASSERT_EQ(destroyed, 3000 + 1);
	client_free(&c);
	rm_project(dir);
}

/* ---- the randomised model test ---- */

#define N_SUBS 60
#define N_WRITER_THREADS 3
#define OPS_PER_WRITER 400

typedef struct world {
	alyx *a;
	const char *db_path;
	volatile int stop;
} world;

static unsigned rnd(unsigned *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return (*seed >> 8) & 0xffffff;
}

/* A random items document; with its id "i<id>" when id >= 0. */
static void random_doc(unsigned *seed, char *buf, size_t n, int id)
{
	char score[32] = "null", owner[16] = "null", idp[24] = "";

	if (rnd(seed) % 4)
		snprintf(score, sizeof(score), "%.2f",
			 (double)(rnd(seed) % 1000) / 10.0);
	if (rnd(seed) % 3)
		snprintf(owner, sizeof(owner), "\"o%u\"", rnd(seed) % N_OWNERS);
	if (id >= 0)
		snprintf(idp, sizeof(idp), "\"id\":\"i%d\",", id);
	snprintf(buf, n,
		 "{%s\"grp\":\"%c\",\"n\":%u,\"score\":%s,\"flag\":%s,"
		 "\"owner\":%s}",
		 idp, 'a' + (char)(rnd(seed) % 3), rnd(seed) % 20, score,
		 rnd(seed) % 2 ? "true" : "false", owner);
}

static void *api_writer(void *p)
{
	world *w = p;
	unsigned seed = (unsigned)(uintptr_t)pthread_self();
	int i;

	for (i = 0; i < OPS_PER_WRITER; i++) {
		char doc[512], id[16], *out = NULL;
		int k = (int)(rnd(&seed) % N_IDS), op = (int)(rnd(&seed) % 10);

		snprintf(id, sizeof(id), "i%d", k);
		if (op < 4) {
			random_doc(&seed, doc, sizeof(doc), k);
			alyx_doc_create(w->a, NULL, "items", doc, (size_t)-1,
					&out);
		} else if (op < 8) {
			random_doc(&seed, doc, sizeof(doc), -1);
			alyx_doc_update(w->a, NULL, "items", id, doc,
					(size_t)-1, &out);
		} else if (op < 9) {
			alyx_doc_delete(w->a, NULL, "items", id);
		} else {
			snprintf(doc, sizeof(doc), "{\"name\":\"m%u\"}",
				 rnd(&seed) % 100);
			snprintf(id, sizeof(id), "o%u", rnd(&seed) % N_OWNERS);
			alyx_doc_update(w->a, NULL, "owners", id, doc,
					(size_t)-1, &out);
		}
		alyx_free(out);
	}
	return NULL;
}

/* "Another process": its own connection, plain SQL, no libalyx. */
static void *sql_writer(void *p)
{
	world *w = p;
	unsigned seed = 777;
	sqlite3 *db = NULL;
	int i;

	if (sqlite3_open(w->db_path, &db) != SQLITE_OK)
		return NULL;
	sqlite3_busy_timeout(db, 10000);
	for (i = 0; i < OPS_PER_WRITER / 2; i++) {
		char sql[256];
		int k = (int)(rnd(&seed) % N_IDS), op = (int)(rnd(&seed) % 3);

		if (op == 0)
			snprintf(sql, sizeof(sql),
				 "INSERT OR IGNORE INTO items (id, grp, n, "
				 "flag) VALUES ('i%d','%c',%u,%u)",
				 k, 'a' + (char)(rnd(&seed) % 3),
				 rnd(&seed) % 20, rnd(&seed) % 2);
		else if (op == 1)
			snprintf(sql, sizeof(sql),
				 "UPDATE items SET n = %u, score = %u.5 "
				 "WHERE id = 'i%d'",
				 rnd(&seed) % 20, rnd(&seed) % 50, k);
		else
			snprintf(sql, sizeof(sql),
				 "DELETE FROM items WHERE id = 'i%d'", k);
		sqlite3_exec(db, sql, NULL, NULL, NULL);
		if (i % 16 == 0)
			usleep(1000);
	}
	sqlite3_close(db);
	return NULL;
}

static const char *random_query(unsigned *seed, char *buf, size_t n)
{
	static const char *filters[] = {
		"",
		"\"filter\":{\"grp\":{\"$eq\":\"a\"}},",
		"\"filter\":{\"grp\":\"b\",\"n\":{\"$gte\":8}},",
		"\"filter\":{\"n\":{\"$lt\":7}},",
		"\"filter\":{\"flag\":{\"$eq\":true}},",
		"\"filter\":{\"$or\":[{\"grp\":\"a\"},{\"n\":{\"$gt\":15}}]},",
		"\"filter\":{\"score\":{\"$gt\":30}},",
		"\"filter\":{\"owner\":{\"$eq\":\"o1\"},\"flag\":false},",
		"\"filter\":{\"grp\":{\"$in\":[\"a\",\"c\"]}},",
		"\"filter\":{\"score\":{\"$eq\":null}},",
	};
	static const char *sorts[] = {
		"", "\"sort\":[\"n\"],", "\"sort\":[\"-n\"],",
		"\"sort\":[\"-score\",\"n\"],", "\"sort\":[\"grp\",\"-n\"],",
		"\"sort\":[\"flag\",\"score\"],",
	};
	char lim[32] = "", exp[32] = "";
	unsigned f = rnd(seed) % 10, s = rnd(seed) % 6;

	if (rnd(seed) % 4)
		snprintf(lim, sizeof(lim), "\"limit\":%u,", 1 + rnd(seed) % 8);
	if (rnd(seed) % 6 == 0)
		snprintf(exp, sizeof(exp), "\"expand\":[\"owner\"],");
	snprintf(buf, n, "{%s%s%s%s\"total\":false}", filters[f], sorts[s],
		 lim, exp);
	return buf;
}

TEST(random_model)
{
	char dir[64], queries[N_SUBS][256];
	int whoi[N_SUBS], resumed = 0, replays = 0, j, k;
	bool back[N_SUBS] = {0};
	alyx *a = open_project("database:\n  path: data/a.db\n"
			       "realtime:\n  poll_interval_ms: 10\n", dir);
	pthread_t th[N_WRITER_THREADS + 1];
	alyx_sub *subs[N_SUBS] = {0};
	client *cl = calloc(N_SUBS, sizeof(*cl));
	/* ALYX_RT_SEED=N picks another random stream. */
	unsigned seed0 = getenv("ALYX_RT_SEED")
				 ? (unsigned)atoi(getenv("ALYX_RT_SEED"))
				 : 12345u, seed = seed0;
	world w = {.a = a, .db_path = alyx_db_path(a)};
	/* Callers: the system, anonymous, and users "a" and "b" (the read
	 * rule lets a user see the group named like them). */
	struct alyx_ctx ua = {.user_id = "a", .email = "a@x.io",
			      .role = "user"};
	struct alyx_ctx ub = {.user_id = "b", .email = "b@x.io",
			      .role = "user"};
	const alyx_ctx *who[4] = {NULL, alyx_ctx_anonymous(), &ua, &ub};
	int i, round, n_subs = 0;

	for (i = 0; i < N_IDS / 2; i++) {
		char doc[512], *out = NULL;

		random_doc(&seed, doc, sizeof(doc), i);
		ASSERT_OK(alyx_doc_create(a, NULL, "items", doc, (size_t)-1,
					  &out));
		alyx_free(out);
	}
	for (round = 0; round < 3; round++) {
		/* More subscribers join, some resume from an earlier one's
		 * change id, some leave. */
		for (i = 0; i < N_SUBS / 3; i++, n_subs++) {
			char q[256];

			random_query(&seed, q, sizeof(q));
			/* Every fifth one repeats an earlier query exactly
			 * (a shared view; a new client does not resume). */
			j = (int)(rnd(&seed) % (unsigned)(n_subs ? n_subs : 1));
			if (n_subs >= 5 && i % 5 == 0 &&
			    !strstr(queries[j], "since"))
				snprintf(q, sizeof(q), "%s", queries[j]);
			whoi[n_subs] = n_subs % 4;
			/* Every fourth one is a client that left coming back:
			 * its query, caller and documents, resuming from the
			 * last change id it saw. */
			j = -1;
			for (k = 0; round > 0 && i % 4 == 0 && k < n_subs;
			     k++)
				if (!subs[k] && !back[k] &&
				    !strstr(queries[k], "since"))
					j = k;
			if (j >= 0) {
				back[j] = true;
				whoi[n_subs] = whoi[j];
				client_copy(&cl[n_subs], &cl[j]);
				snprintf(q, sizeof(q), "%s", queries[j]);
				q[strlen(q) - 1] = '\0';
				snprintf(queries[n_subs], sizeof(queries[0]),
					 "%s,\"since\":%lld}", q,
					 (long long)cl[j].change_id);
				resumed++;
			} else {
				snprintf(queries[n_subs], sizeof(queries[0]),
					 "%s", q);
				client_init(&cl[n_subs]);
			}
			ASSERT_OK(alyx_subscribe(a, who[whoi[n_subs]], "items",
						 queries[n_subs], on_msg,
						 &cl[n_subs], NULL,
						 &subs[n_subs]));
		}
		for (i = 0; i < N_WRITER_THREADS; i++)
			ASSERT_OK(pthread_create(&th[i], NULL, api_writer, &w));
		ASSERT_OK(pthread_create(&th[i], NULL, sql_writer, &w));
		/* The dispatching thread (this one) runs meanwhile. */
		for (i = 0; i < 60; i++) {
			struct pollfd p = {.fd = alyx_get_fd(a),
					   .events = POLLIN};

			poll(&p, 1, alyx_next_timeout_ms(a));
			ASSERT_OK(alyx_dispatch(a));
		}
		for (i = 0; i <= N_WRITER_THREADS; i++)
			pthread_join(th[i], NULL);
		settle(a);
		for (i = 0; i < n_subs; i++) {
			if (!subs[i])
				continue;
			ASSERT_EQ(cl[i].snapshots + cl[i].resumes, 1);
			ASSERT_EQ(cl[i].errors, 0);
			check_client_as(a, who[whoi[i]], &cl[i], queries[i]);
		}
		/* A few leave. */
		for (i = round; i < n_subs; i += 7) {
			alyx_unsubscribe(subs[i]);
			subs[i] = NULL;
		}
	}
	{
		int deltas = 0;

		for (i = 0; i < n_subs; i++) {
			deltas += cl[i].deltas;
			replays += cl[i].resumes;
		}
		printf("  random_model: seed %u, %d subscriptions, %d "
		       "deltas, %d resumed (%d replayed, %d snapshots)\n",
		       seed0, n_subs, deltas, resumed, replays,
		       resumed - replays);
		ASSERT(deltas > n_subs);
		ASSERT(resumed > 0);
	}
	for (i = 0; i < n_subs; i++) {
		alyx_unsubscribe(subs[i]);
		client_free(&cl[i]);
	}
	free(cl);
	alyx_close(a);
	rm_project(dir);
}

TEST_MAIN()
