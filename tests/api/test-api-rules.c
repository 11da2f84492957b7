/*
 * test-api-rules.c - collection rules on every door of the C API
 * (issue 5): get, list (push-down and the per-row fallback: totals,
 * offsets, cursors), create/update/delete, expand, batch, fields and
 * internal fields, with the system, anonymous, a reader, the author and
 * an admin.  Only <alyx.h>.
 */
#include <stdbool.h>

#include "api-util.h"

#define SECRET "auth:\n  jwt:\n    secret: rules-api-test-secret-0123456789abcdef\n"

/* Extra collections after the blog's: no rules at all (admin-only), an
 * internal field whose rules read request.body and the internal field,
 * and a read rule that cannot be pushed down exactly (per-row). */
static const char extra_schema[] =
	"  notes:\n"
	"    fields:\n"
	"      id: {type: uuid, primary: true, default: auto}\n"
	"      body: {type: string}\n"
	"  vaults:\n"
	"    fields:\n"
	"      id: {type: uuid, primary: true, default: auto}\n"
	"      owner: {type: string}\n"
	"      label: {type: string, default: \"x\"}\n"
	"      token: {type: string, nullable: true, internal: true}\n"
	"    rules:\n"
	"      create: \"request.body.owner == auth.id && doc.label == 'x' "
	"&& request.method == 'POST'\"\n"
	"      read: \"doc.owner == auth.id\"\n"
	"      update: \"doc.owner == auth.id\"\n"
	"      delete: \"doc.owner == auth.id && doc.token == 'ok'\"\n"
	"  tagged:\n"
	"    fields:\n"
	"      id: {type: uuid, primary: true, default: auto}\n"
	"      title: {type: string}\n"
	"      rank: {type: int}\n"
	"    rules:\n"
	"      read: \"doc.title.matches('^pub') || auth.role == 'admin'\"\n"
	"      create: \"auth.role == 'admin'\"\n"
	"  boards:\n"
	"    fields:\n"
	"      id: {type: uuid, primary: true, default: auto}\n"
	"      name: {type: string}\n"
	"      secret: {type: string, nullable: true, internal: true}\n"
	"    rules:\n"
	"      read: \"true\"\n";

typedef struct world {
	alyx *a;
	char *dir;
	alyx_ctx *ann, *bob, *adm;	/* author, reader, admin */
	const alyx_ctx *anon;
	char ann_id[64], bob_id[64], adm_id[64];
} world;

static void user(world *w, const char *email, const char *role,
		 alyx_ctx **ctx, char id[64])
{
	char body[256], *out = NULL;
	cJSON *j;

	snprintf(body, sizeof(body),
		 "{\"email\":\"%s\",\"password\":\"correct horse 1\","
		 "\"name\":\"%s\"}", email, role);
	if (alyx_auth_create_user(w->a, body, (size_t)-1, role, &out))
		TH_FAIL("create_user: %s", alyx_errmsg(w->a));
	alyx_free(out);
	snprintf(body, sizeof(body),
		 "{\"email\":\"%s\",\"password\":\"correct horse 1\"}", email);
	if (alyx_auth_login(w->a, body, (size_t)-1, &out))
		TH_FAIL("login: %s", alyx_errmsg(w->a));
	j = cJSON_Parse(out);
	ASSERT_OK(alyx_ctx_from_token(
		w->a, cJSON_GetObjectItem(j, "access_token")->valuestring,
		ctx));
	snprintf(id, 64, "%s", cJSON_GetObjectItem(
		cJSON_GetObjectItem(j, "user"), "id")->valuestring);
	cJSON_Delete(j);
	alyx_free(out);
}

static void open_world(world *w)
{
	char path[600], *cfg, *yaml, *full, *plan = NULL;

	memset(w, 0, sizeof(*w));
	w->dir = make_project(0);
	snprintf(path, sizeof(path), "%s/alyx.yaml", w->dir);
	cfg = slurp(path);
	full = malloc(strlen(cfg) + sizeof(SECRET) + 1);
	sprintf(full, "%s\n%s", cfg, SECRET);
	spit(path, full);
	free(cfg);
	free(full);
	ASSERT_OK(alyx_open(w->dir, ALYX_OPEN_CREATE, &w->a));
	yaml = slurp(FIXTURES_DIR "/blog/schema.yaml");
	full = malloc(strlen(yaml) + sizeof(extra_schema) + 2);
	sprintf(full, "%s\n%s", yaml, extra_schema);
	if (alyx_apply_schema(w->a, full, (size_t)-1, "schema.yaml", 0, &plan))
		TH_FAIL("apply: %s %s", alyx_errmsg(w->a),
			alyx_errdetails(w->a));
	free(yaml);
	free(full);
	alyx_free(plan);
	user(w, "ann@example.com", "user", &w->ann, w->ann_id);
	user(w, "bob@example.com", "user", &w->bob, w->bob_id);
	user(w, "root@example.com", "admin", &w->adm, w->adm_id);
	w->anon = alyx_ctx_anonymous();
}

static void close_world(world *w)
{
	alyx_ctx_free(w->ann);
	alyx_ctx_free(w->bob);
	alyx_ctx_free(w->adm);
	alyx_ctx_free((alyx_ctx *)w->anon);	/* a no-op */
	alyx_close(w->a);
	remove_project(w->dir);
}

/* Copies the id of the document JSON `out` (a create's result) into id
 * and frees out. */
static void take_id(char *out, char id[64])
{
	cJSON *j = cJSON_Parse(out);

	snprintf(id, 64, "%s", cJSON_GetObjectItem(j, "id")->valuestring);
	cJSON_Delete(j);
	alyx_free(out);
}

/* A post by `author` (published or a draft); returns its id (static). */
static const char *post(world *w, const char *author, int i, bool pub)
{
	static char id[64];
	char body[400], *out = NULL;

	snprintf(body, sizeof(body),
		 "{\"title\":\"Post %d\",\"slug\":\"s%d\",\"content\":\"c\","
		 "\"author_id\":\"%s\",\"published\":%s,\"view_count\":%d}",
		 i, i, author, pub ? "true" : "false", i);
	if (alyx_doc_create(w->a, NULL, "posts", body, (size_t)-1, &out))
		TH_FAIL("post: %s", alyx_errmsg(w->a));
	take_id(out, id);
	return id;
}

static int get(world *w, const alyx_ctx *ctx, const char *coll,
	       const char *id, const char *opts, cJSON **doc)
{
	char *out = NULL;
	int rc = alyx_doc_get(w->a, ctx, coll, id, opts, &out);

	if (doc)
		*doc = rc == ALYX_OK ? cJSON_Parse(out) : NULL;
	alyx_free(out);
	return rc;
}

static cJSON *query(world *w, const alyx_ctx *ctx, const char *coll,
		    const char *qs)
{
	char *out = NULL;
	cJSON *j;

	if (alyx_query_str(w->a, ctx, coll, qs, &out))
		TH_FAIL("query %s?%s: %s", coll, qs, alyx_errmsg(w->a));
	j = cJSON_Parse(out);
	alyx_free(out);
	return j;
}

static int total_of(const cJSON *j)
{
	return cJSON_GetObjectItem(j, "total")->valueint;
}

static int ndocs(const cJSON *j)
{
	return cJSON_GetArraySize(cJSON_GetObjectItem(j, "docs"));
}

/* ---- tests ---- */

TEST(system_context_is_unrestricted)
{
	world w;
	const char *id;
	cJSON *j;

	open_world(&w);
	id = post(&w, w.ann_id, 1, false);
	ASSERT_OK(get(&w, NULL, "posts", id, NULL, NULL));
	ASSERT_OK(get(&w, NULL, "posts", id, "fields=id", NULL));
	ASSERT_OK(alyx_doc_update(w.a, NULL, "posts", id, "{\"title\":\"S\"}",
				  (size_t)-1, NULL) == ALYX_E_MISUSE ? 0 : 1);
	j = query(&w, NULL, "users", "total=true");
	ASSERT_EQ(total_of(j), 3);
	cJSON_Delete(j);
	close_world(&w);
}

TEST(get_hidden_document_is_not_found)
{
	world w;
	char draft[64], pub[64], *missing_msg;
	cJSON *d = NULL;

	open_world(&w);
	snprintf(draft, sizeof(draft), "%s", post(&w, w.ann_id, 1, false));
	snprintf(pub, sizeof(pub), "%s", post(&w, w.ann_id, 2, true));
	/* Everyone reads the published post. */
	ASSERT_OK(get(&w, w.anon, "posts", pub, NULL, NULL));
	ASSERT_OK(get(&w, w.bob, "posts", pub, NULL, NULL));
	/* The draft: its author and the admin only. */
	ASSERT_OK(get(&w, w.ann, "posts", draft, NULL, &d));
	ASSERT_STR_EQ(cJSON_GetObjectItem(d, "title")->valuestring, "Post 1");
	cJSON_Delete(d);
	ASSERT_OK(get(&w, w.adm, "posts", draft, NULL, NULL));
	ASSERT_EQ(get(&w, w.bob, "posts", draft, NULL, NULL), ALYX_E_NOTFOUND);
	ASSERT_EQ(get(&w, w.anon, "posts", draft, "fields=id", NULL),
		  ALYX_E_NOTFOUND);
	/* The same error as an id that does not exist (no leak). */
	ASSERT_EQ(get(&w, w.bob, "posts", "11111111-1111-1111-1111-111111111111",
		      NULL, NULL), ALYX_E_NOTFOUND);
	missing_msg = strdup(alyx_errdetails(w.a));
	ASSERT_EQ(get(&w, w.bob, "posts", draft, NULL, NULL), ALYX_E_NOTFOUND);
	ASSERT_CONTAINS(alyx_errmsg(w.a), "no document");
	ASSERT_CONTAINS(alyx_errdetails(w.a), "\"collection\":\"posts\"");
	ASSERT(strstr(missing_msg, "\"collection\":\"posts\"") != NULL);
	free(missing_msg);
	/* users: each reads their own document; the admin all. */
	ASSERT_OK(get(&w, w.bob, "users", w.bob_id, NULL, NULL));
	ASSERT_EQ(get(&w, w.bob, "users", w.ann_id, NULL, NULL),
		  ALYX_E_NOTFOUND);
	ASSERT_OK(get(&w, w.adm, "users", w.ann_id, NULL, NULL));
	ASSERT_EQ(get(&w, w.anon, "users", w.ann_id, NULL, NULL),
		  ALYX_E_NOTFOUND);
	close_world(&w);
}

/* Walks every page with `after` cursors and counts the documents. */
static int walk(world *w, const alyx_ctx *ctx, const char *coll,
		const char *qs, int limit, int *pages)
{
	char q[4096], after[2048] = "";
	int n = 0;

	*pages = 0;
	for (;;) {
		cJSON *j, *next;

		snprintf(q, sizeof(q), "%s&limit=%d%s%s", qs, limit,
			 *after ? "&after=" : "", after);
		j = query(w, ctx, coll, q);
		n += ndocs(j);
		(*pages)++;
		next = cJSON_GetObjectItem(j, "next");
		if (!next) {
			cJSON_Delete(j);
			break;
		}
		/* Every page but the last is full. */
		ASSERT_EQ(ndocs(j), limit);
		snprintf(after, sizeof(after), "%s", next->valuestring);
		cJSON_Delete(j);
		ASSERT(*pages < 100);
	}
	return n;
}

TEST(list_totals_offsets_cursors_under_pushdown)
{
	world w;
	cJSON *j;
	int i, pages;

	open_world(&w);
	/* 30 posts: ann's 0..14 (even published), bob's 15..29 (all
	 * drafts). */
	for (i = 0; i < 30; i++)
		post(&w, i < 15 ? w.ann_id : w.bob_id, i, i < 15 && i % 2 == 0);
	/* anonymous: the 8 published; bob: those + his 15 drafts; ann: her
	 * 15; admin: 30. */
	j = query(&w, w.anon, "posts", "total=true&limit=3");
	ASSERT_EQ(total_of(j), 8);
	ASSERT_EQ(ndocs(j), 3);
	cJSON_Delete(j);
	j = query(&w, w.bob, "posts", "total=true&limit=1000");
	ASSERT_EQ(total_of(j), 23);
	ASSERT_EQ(ndocs(j), 23);
	cJSON_Delete(j);
	j = query(&w, w.ann, "posts", "total=true");
	ASSERT_EQ(total_of(j), 15);
	cJSON_Delete(j);
	j = query(&w, w.adm, "posts", "total=true");
	ASSERT_EQ(total_of(j), 30);
	cJSON_Delete(j);
	/* A filter cannot reach hidden rows: bob asks for ann's drafts. */
	{
		char qs[256];

		snprintf(qs, sizeof(qs),
			 "filter=author_id:eq:%s&filter=published:eq:false"
			 "&total=true", w.ann_id);
		j = query(&w, w.bob, "posts", qs);
		ASSERT_EQ(total_of(j), 0);
		ASSERT_EQ(ndocs(j), 0);
		cJSON_Delete(j);
		j = query(&w, w.anon, "posts",
			  "filter=title:like:Post%25&sort=-view_count"
			  "&total=true&fields=id");
		ASSERT_EQ(total_of(j), 8);
		cJSON_Delete(j);
	}
	/* Offsets count visible documents only. */
	j = query(&w, w.anon, "posts", "sort=view_count&offset=7&limit=5");
	ASSERT_EQ(ndocs(j), 1);
	ASSERT_EQ(cJSON_GetObjectItem(cJSON_GetArrayItem(
		cJSON_GetObjectItem(j, "docs"), 0), "view_count")->valueint,
		  14);
	cJSON_Delete(j);
	/* Cursors: full pages, every visible document once. */
	ASSERT_EQ(walk(&w, w.anon, "posts", "sort=-created_at", 3, &pages),
		  8);
	ASSERT_EQ(pages, 3);
	ASSERT_EQ(walk(&w, w.bob, "posts", "sort=title", 5, &pages), 23);
	/* The JSON form goes through the same door. */
	{
		char *out = NULL;

		ASSERT_OK(alyx_query(w.a, w.anon, "posts",
				     "{\"filter\":{\"published\":false},"
				     "\"total\":true}", &out));
		ASSERT_CONTAINS(out, "\"total\":0");
		alyx_free(out);
	}
	close_world(&w);
}

TEST(list_per_row_fallback)
{
	world w;
	char body[128], *out = NULL;
	cJSON *j;
	int i, pages;

	open_world(&w);
	/* 40 documents, every third titled pub-... (14 visible). */
	for (i = 0; i < 40; i++) {
		snprintf(body, sizeof(body),
			 "{\"title\":\"%s-%02d\",\"rank\":%d}",
			 i % 3 == 0 ? "pub" : "hid", i, i);
		ASSERT_OK(alyx_doc_create(w.a, w.adm, "tagged", body,
					  (size_t)-1, &out));
		alyx_free(out);
	}
	j = query(&w, w.bob, "tagged", "total=true&limit=4&sort=rank");
	ASSERT_EQ(total_of(j), 14);
	ASSERT_EQ(ndocs(j), 4);
	cJSON_Delete(j);
	j = query(&w, w.anon, "tagged", "sort=rank&offset=12&limit=5"
				       "&total=true&fields=rank");
	ASSERT_EQ(ndocs(j), 2);
	ASSERT_EQ(total_of(j), 14);
	ASSERT_EQ(cJSON_GetObjectItem(cJSON_GetArrayItem(
		cJSON_GetObjectItem(j, "docs"), 0), "rank")->valueint, 36);
	cJSON_Delete(j);
	ASSERT_EQ(walk(&w, w.bob, "tagged", "sort=-rank", 4, &pages), 14);
	ASSERT_EQ(pages, 4);
	j = query(&w, w.adm, "tagged", "total=true");
	ASSERT_EQ(total_of(j), 40);
	cJSON_Delete(j);
	/* Get by id under the fallback. */
	j = query(&w, NULL, "tagged", "filter=rank:eq:1");
	snprintf(body, sizeof(body), "%s", cJSON_GetObjectItem(
		cJSON_GetArrayItem(cJSON_GetObjectItem(j, "docs"), 0),
		"id")->valuestring);
	cJSON_Delete(j);
	ASSERT_EQ(get(&w, w.bob, "tagged", body, NULL, NULL), ALYX_E_NOTFOUND);
	ASSERT_OK(get(&w, w.adm, "tagged", body, NULL, NULL));
	/* Writes without rules: admin only. */
	ASSERT_EQ(alyx_doc_create(w.a, w.bob, "tagged",
				  "{\"title\":\"pub\",\"rank\":1}", (size_t)-1,
				  &out), ALYX_E_FORBIDDEN);
	ASSERT_EQ(alyx_doc_delete(w.a, w.adm, "tagged", body), ALYX_OK);
	close_world(&w);
}

TEST(writes_follow_create_update_delete_rules)
{
	world w;
	char body[512], pub[64], draft[64], *out = NULL;
	cJSON *j;

	open_world(&w);
	snprintf(pub, sizeof(pub), "%s", post(&w, w.ann_id, 1, true));
	snprintf(draft, sizeof(draft), "%s", post(&w, w.ann_id, 2, false));
	snprintf(body, sizeof(body),
		 "{\"title\":\"B\",\"slug\":\"b\",\"content\":\"c\","
		 "\"author_id\":\"%s\"}", w.bob_id);
	/* create: auth.id != null */
	ASSERT_EQ(alyx_doc_create(w.a, w.anon, "posts", body, (size_t)-1,
				  &out), ALYX_E_FORBIDDEN);
	ASSERT(out == NULL);
	ASSERT_CONTAINS(alyx_errdetails(w.a), "\"operation\":\"create\"");
	ASSERT_OK(alyx_doc_create(w.a, w.bob, "posts", body, (size_t)-1,
				  &out));
	ASSERT_CONTAINS(out, "\"title\":\"B\"");
	alyx_free(out);
	/* update: the author (stored doc) or an admin. */
	ASSERT_EQ(alyx_doc_update(w.a, w.bob, "posts", pub,
				  "{\"title\":\"X\"}", (size_t)-1, &out),
		  ALYX_E_FORBIDDEN);
	/* bob cannot see the draft: not found, not forbidden. */
	ASSERT_EQ(alyx_doc_update(w.a, w.bob, "posts", draft,
				  "{\"title\":\"X\"}", (size_t)-1, &out),
		  ALYX_E_NOTFOUND);
	ASSERT_EQ(alyx_doc_update(w.a, w.anon, "posts", pub,
				  "{\"title\":\"X\"}", (size_t)-1, &out),
		  ALYX_E_FORBIDDEN);
	ASSERT_OK(alyx_doc_update(w.a, w.ann, "posts", pub,
				  "{\"title\":\"Ann's\"}", (size_t)-1, &out));
	alyx_free(out);
	ASSERT_OK(alyx_doc_update(w.a, w.adm, "posts", draft,
				  "{\"title\":\"Admin's\"}", (size_t)-1, &out));
	alyx_free(out);
	/* Nothing changed by the refusals. */
	ASSERT_OK(get(&w, NULL, "posts", pub, NULL, &j));
	ASSERT_STR_EQ(cJSON_GetObjectItem(j, "title")->valuestring, "Ann's");
	cJSON_Delete(j);
	/* delete */
	ASSERT_EQ(alyx_doc_delete(w.a, w.bob, "posts", pub), ALYX_E_FORBIDDEN);
	ASSERT_EQ(alyx_doc_delete(w.a, w.bob, "posts", draft),
		  ALYX_E_NOTFOUND);
	ASSERT_EQ(alyx_doc_delete(w.a, w.anon, "posts", pub),
		  ALYX_E_FORBIDDEN);
	ASSERT_OK(get(&w, NULL, "posts", pub, NULL, NULL));
	ASSERT_OK(alyx_doc_delete(w.a, w.ann, "posts", pub));
	ASSERT_OK(alyx_doc_delete(w.a, w.adm, "posts", draft));
	ASSERT_EQ(get(&w, NULL, "posts", draft, NULL, NULL), ALYX_E_NOTFOUND);
	close_world(&w);
}

TEST(write_result_is_cut_when_unreadable)
{
	world w;
	char body[512], *out = NULL;
	cJSON *j;

	open_world(&w);
	/* bob writes a draft in ann's name: allowed by create, but he may
	 * not read it, so only its id comes back. */
	snprintf(body, sizeof(body),
		 "{\"title\":\"T\",\"slug\":\"t\",\"content\":\"secret\","
		 "\"author_id\":\"%s\"}", w.ann_id);
	ASSERT_OK(alyx_doc_create(w.a, w.bob, "posts", body, (size_t)-1,
				  &out));
	j = cJSON_Parse(out);
	ASSERT_EQ(cJSON_GetArraySize(j), 1);
	ASSERT(cJSON_IsString(cJSON_GetObjectItem(j, "id")));
	ASSERT(strstr(out, "secret") == NULL);
	cJSON_Delete(j);
	alyx_free(out);
	/* users: update "auth.id == doc.id"; bob updates himself. */
	ASSERT_OK(alyx_doc_update(w.a, w.bob, "users", w.bob_id,
				  "{\"name\":\"Bobby\"}", (size_t)-1, &out));
	ASSERT_CONTAINS(out, "Bobby");
	alyx_free(out);
	ASSERT_EQ(alyx_doc_update(w.a, w.bob, "users", w.ann_id,
				  "{\"name\":\"x\"}", (size_t)-1, &out),
		  ALYX_E_NOTFOUND);
	close_world(&w);
}

TEST(no_rule_means_admin_only)
{
	world w;
	char *out = NULL, id[64];
	cJSON *j;

	open_world(&w);
	ASSERT_EQ(alyx_doc_create(w.a, w.bob, "notes", "{\"body\":\"b\"}",
				  (size_t)-1, &out), ALYX_E_FORBIDDEN);
	ASSERT_CONTAINS(alyx_errmsg(w.a), "only admins");
	ASSERT_EQ(alyx_doc_create(w.a, w.anon, "notes", "{\"body\":\"b\"}",
				  (size_t)-1, &out), ALYX_E_FORBIDDEN);
	ASSERT_OK(alyx_doc_create(w.a, w.adm, "notes", "{\"body\":\"b\"}",
				  (size_t)-1, &out));
	take_id(out, id);
	j = query(&w, w.bob, "notes", "total=true");
	ASSERT_EQ(total_of(j), 0);
	ASSERT_EQ(ndocs(j), 0);
	cJSON_Delete(j);
	j = query(&w, w.adm, "notes", "total=true");
	ASSERT_EQ(total_of(j), 1);
	cJSON_Delete(j);
	ASSERT_EQ(get(&w, w.bob, "notes", id, NULL, NULL), ALYX_E_NOTFOUND);
	ASSERT_OK(get(&w, w.adm, "notes", id, NULL, NULL));
	ASSERT_EQ(alyx_doc_update(w.a, w.bob, "notes", id, "{\"body\":\"x\"}",
				  (size_t)-1, &out), ALYX_E_NOTFOUND);
	ASSERT_EQ(alyx_doc_delete(w.a, w.anon, "notes", id), ALYX_E_NOTFOUND);
	ASSERT_OK(alyx_doc_update(w.a, w.adm, "notes", id, "{\"body\":\"x\"}",
				  (size_t)-1, &out));
	alyx_free(out);
	ASSERT_OK(alyx_doc_delete(w.a, w.adm, "notes", id));
	close_world(&w);
}

/* A get that may read everything (a `true` read rule for anyone, no rule
 * for an admin) is one primary-key read: the same document the system
 * gets, internal fields left out; a missing id is still NOT_FOUND. */
TEST(get_of_readable_collection_matches_system)
{
	world w;
	char *sys = NULL, *out = NULL, id[64];

	open_world(&w);
	ASSERT_OK(alyx_doc_create(w.a, NULL, "boards",
				  "{\"name\":\"b\",\"secret\":\"s3cr3t\"}",
				  (size_t)-1, &out));
	take_id(out, id);
	ASSERT_OK(alyx_doc_get(w.a, NULL, "boards", id, NULL, &sys));
	ASSERT(!strstr(sys, "s3cr3t"));
	const alyx_ctx *who[] = {w.anon, w.bob, w.adm};
	for (size_t i = 0; i < sizeof(who) / sizeof(who[0]); i++) {
		ASSERT_OK(alyx_doc_get(w.a, who[i], "boards", id, NULL, &out));
		ASSERT_STR_EQ(out, sys);
		alyx_free(out);
		ASSERT_OK(alyx_doc_get(w.a, who[i], "boards", id, "fields=name",
				       &out));
		ASSERT(!strstr(out, "s3cr3t"));
		alyx_free(out);
		ASSERT_EQ(alyx_doc_get(w.a, who[i], "boards",
				       "00000000-0000-4000-8000-000000000000",
				       NULL, &out), ALYX_E_NOTFOUND);
	}
	alyx_free(sys);
	sys = NULL;
	/* no read rule: the admin's get equals the system's */
	ASSERT_OK(alyx_doc_create(w.a, w.adm, "notes", "{\"body\":\"n\"}",
				  (size_t)-1, &out));
	take_id(out, id);
	ASSERT_OK(alyx_doc_get(w.a, NULL, "notes", id, NULL, &sys));
	ASSERT_OK(alyx_doc_get(w.a, w.adm, "notes", id, NULL, &out));
	ASSERT_STR_EQ(out, sys);
	alyx_free(out);
	alyx_free(sys);
	ASSERT_EQ(get(&w, w.anon, "notes", id, NULL, NULL), ALYX_E_NOTFOUND);
	close_world(&w);
}

TEST(expand_shows_only_readable_relations)
{
	world w;
	char body[512], pid[64], *out = NULL;
	cJSON *j, *d, *x;

	open_world(&w);
	snprintf(pid, sizeof(pid), "%s", post(&w, w.ann_id, 1, true));
	snprintf(body, sizeof(body),
		 "{\"post_id\":\"%s\",\"author_id\":\"%s\",\"content\":\"hi\"}",
		 pid, w.bob_id);
	ASSERT_OK(alyx_doc_create(w.a, w.bob, "comments", body, (size_t)-1,
				  &out));
	alyx_free(out);
	/* comments are public; their authors (users) are readable only by
	 * themselves and admins; the post is published. */
	j = query(&w, w.anon, "comments", "expand=author_id,post_id.author_id");
	d = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "docs"), 0);
	x = cJSON_GetObjectItem(d, "expand");
	ASSERT_STR_EQ(cJSON_GetObjectItem(d, "author_id")->valuestring,
		      w.bob_id);	/* the plain id stays */
	ASSERT(cJSON_IsNull(cJSON_GetObjectItem(x, "author_id")));
	ASSERT(cJSON_IsObject(cJSON_GetObjectItem(x, "post_id")));
	ASSERT(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(
		cJSON_GetObjectItem(x, "post_id"), "expand"), "author_id")));
	cJSON_Delete(j);
	j = query(&w, w.bob, "comments", "expand=author_id");
	x = cJSON_GetObjectItem(cJSON_GetArrayItem(
		cJSON_GetObjectItem(j, "docs"), 0), "expand");
	ASSERT_STR_EQ(cJSON_GetObjectItem(cJSON_GetObjectItem(x, "author_id"),
					  "email")->valuestring,
		      "bob@example.com");
	cJSON_Delete(j);
	j = query(&w, w.adm, "comments", "expand=post_id.author_id");
	x = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(
		cJSON_GetArrayItem(cJSON_GetObjectItem(j, "docs"), 0),
		"expand"), "post_id"), "expand");
	ASSERT_STR_EQ(cJSON_GetObjectItem(cJSON_GetObjectItem(x, "author_id"),
					  "email")->valuestring,
		      "ann@example.com");
	cJSON_Delete(j);
	/* get-by-id expands the same way. */
	ASSERT_OK(get(&w, w.ann, "posts", pid, "expand=author_id", &j));
	ASSERT(cJSON_IsObject(cJSON_GetObjectItem(
		cJSON_GetObjectItem(j, "expand"), "author_id")));
	cJSON_Delete(j);
	ASSERT_OK(get(&w, w.bob, "posts", pid, "expand=author_id", &j));
	ASSERT(cJSON_IsNull(cJSON_GetObjectItem(
		cJSON_GetObjectItem(j, "expand"), "author_id")));
	cJSON_Delete(j);
	close_world(&w);
}

TEST(batch_is_all_or_nothing_under_rules)
{
	world w;
	char body[1400], pub[64], *out = NULL;
	cJSON *j;

	open_world(&w);
	snprintf(pub, sizeof(pub), "%s", post(&w, w.ann_id, 1, true));
	snprintf(body, sizeof(body),
		 "{\"requests\":["
		 "{\"method\":\"POST\",\"url\":\"/api/collections/posts\","
		 "\"body\":{\"title\":\"B\",\"slug\":\"b\",\"content\":\"c\","
		 "\"author_id\":\"%s\"}},"
		 "{\"method\":\"PATCH\",\"url\":\"/api/collections/posts/%s\","
		 "\"body\":{\"title\":\"stolen\"}}]}", w.bob_id, pub);
	ASSERT_EQ(alyx_batch(w.a, w.bob, body, (size_t)-1, &out),
		  ALYX_E_FORBIDDEN);
	ASSERT(out == NULL);
	ASSERT_CONTAINS(alyx_errdetails(w.a), "\"index\":1");
	j = query(&w, NULL, "posts", "total=true");
	ASSERT_EQ(total_of(j), 1);	/* the create was rolled back */
	cJSON_Delete(j);
	/* A delete of a hidden document inside a batch: not found. */
	snprintf(body, sizeof(body),
		 "{\"requests\":[{\"method\":\"POST\",\"url\":"
		 "\"/api/collections/notes\",\"body\":{\"body\":\"n\"}}]}");
	ASSERT_EQ(alyx_batch(w.a, w.ann, body, (size_t)-1, &out),
		  ALYX_E_FORBIDDEN);
	ASSERT_OK(alyx_batch(w.a, w.adm, body, (size_t)-1, &out));
	alyx_free(out);
	/* Allowed ops all pass; results of unreadable documents are cut. */
	snprintf(body, sizeof(body),
		 "{\"requests\":["
		 "{\"method\":\"POST\",\"url\":\"/api/collections/posts\","
		 "\"body\":{\"title\":\"D\",\"slug\":\"d\",\"content\":\"hidden\","
		 "\"author_id\":\"%s\"}},"
		 "{\"method\":\"PATCH\",\"url\":\"/api/collections/posts/%s\","
		 "\"body\":{\"title\":\"mine\"}}]}", w.bob_id, pub);
	ASSERT_OK(alyx_batch(w.a, w.ann, body, (size_t)-1, &out));
	ASSERT(strstr(out, "hidden") == NULL);
	ASSERT_CONTAINS(out, "\"title\":\"mine\"");
	alyx_free(out);
	close_world(&w);
}

TEST(internal_fields_never_leave_nor_enter)
{
	world w;
	char body[256], id[64], *out = NULL;
	cJSON *j;

	open_world(&w);
	snprintf(body, sizeof(body), "{\"owner\":\"%s\",\"token\":\"ok\"}",
		 w.bob_id);
	/* A context cannot write an internal field. */
	ASSERT_EQ(alyx_doc_create(w.a, w.bob, "vaults", body, (size_t)-1,
				  &out), ALYX_E_VALIDATION);
	ASSERT_CONTAINS(alyx_errdetails(w.a), "\"code\":\"internal\"");
	/* The system can; the rule reads request.body, doc and method. */
	ASSERT_OK(alyx_doc_create(w.a, NULL, "vaults", body, (size_t)-1, &out));
	take_id(out, id);
	snprintf(body, sizeof(body), "{\"owner\":\"%s\"}", w.ann_id);
	ASSERT_EQ(alyx_doc_create(w.a, w.bob, "vaults", body, (size_t)-1,
				  &out), ALYX_E_FORBIDDEN);
	snprintf(body, sizeof(body), "{\"owner\":\"%s\",\"label\":\"y\"}",
		 w.bob_id);
	ASSERT_EQ(alyx_doc_create(w.a, w.bob, "vaults", body, (size_t)-1,
				  &out), ALYX_E_FORBIDDEN);
	snprintf(body, sizeof(body), "{\"owner\":\"%s\"}", w.bob_id);
	ASSERT_OK(alyx_doc_create(w.a, w.bob, "vaults", body, (size_t)-1,
				  &out));
	ASSERT(strstr(out, "token") == NULL);
	alyx_free(out);
	/* Reads never carry it, and it can be neither filtered, sorted nor
	 * projected. */
	ASSERT_OK(get(&w, w.bob, "vaults", id, NULL, &j));
	ASSERT(cJSON_GetObjectItem(j, "token") == NULL);
	cJSON_Delete(j);
	ASSERT_EQ(alyx_query_str(w.a, w.bob, "vaults", "filter=token:eq:ok",
				 &out), ALYX_E_BADQUERY);
	ASSERT_EQ(alyx_query_str(w.a, w.bob, "vaults", "sort=token", &out),
		  ALYX_E_BADQUERY);
	ASSERT_EQ(alyx_query_str(w.a, w.bob, "vaults", "fields=id,token",
				 &out), ALYX_E_BADQUERY);
	ASSERT_EQ(alyx_doc_update(w.a, w.bob, "vaults", id,
				  "{\"token\":\"x\"}", (size_t)-1, &out),
		  ALYX_E_VALIDATION);
	/* Rules may read it: delete needs token == 'ok'. */
	ASSERT_EQ(alyx_doc_delete(w.a, w.ann, "vaults", id), ALYX_E_NOTFOUND);
	ASSERT_OK(alyx_doc_delete(w.a, w.bob, "vaults", id));
	close_world(&w);
}

TEST(anonymous_context)
{
	world w;
	char *out = NULL;

	open_world(&w);
	ASSERT(alyx_ctx_anonymous() == alyx_ctx_anonymous());
	ASSERT_EQ(alyx_auth_me(w.a, w.anon, &out), ALYX_E_UNAUTHORIZED);
	ASSERT_OK(alyx_auth_me(w.a, w.bob, &out));
	ASSERT_CONTAINS(out, "bob@example.com");
	alyx_free(out);
	close_world(&w);
}

TEST_MAIN()
