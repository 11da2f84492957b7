/*
 * test-ruled.c - list queries under a read rule (alyx__query_run_ruled).
 *
 * Generates documents (several types, NULLs) into an in-memory table, then
 * for read rules that push down exactly and rules that need per-row
 * evaluation, random auth contexts and filters/sorts/projections, walks
 * every page (random limits, `after` cursors and offsets) and checks that
 * the pages concatenate to exactly the documents alyx__rule_eval allows
 * among those the filter matches, in the query's order; that `total` is
 * their count; that no page but the last is short; and that `next` is
 * absent exactly at the end.
 */
#include <stdint.h>

#include "harness.h"
#include "fixture.h"
#include "rules/rules.h"

#define NDOCS 400

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static const char *words[] = {"alpha", "apple", "beta", "Avocado", "gamma",
			      "delta", "axe", "zeta", "", "banana"};
static const char *authors[] = {"u1", "u2", "u3", "admin1"};

static sqlite3 *make_db(void)
{
	sqlite3 *db = fx_open();
	const alyx__collection *c = fx_coll("posts");
	int i;

	fx_exec(db, "BEGIN");
	for (i = 1; i <= NDOCS; i++) {
		cJSON *d = cJSON_CreateObject();
		char ts[40];

		cJSON_AddNumberToObject(d, "id", i);
		cJSON_AddStringToObject(d, "title", words[rnd(10)]);
		if (rnd(5))
			cJSON_AddStringToObject(d, "author_id",
						authors[rnd(4)]);
		if (rnd(6))
			cJSON_AddNumberToObject(d, "views", (int)rnd(25) - 3);
		if (rnd(4))
			cJSON_AddNumberToObject(d, "score", rnd(1000) / 999.0);
		if (rnd(5))
			cJSON_AddBoolToObject(d, "published", rnd(2));
		if (rnd(3)) {
			snprintf(ts, sizeof(ts),
				 "2026-0%u-1%uT10:00:00.000Z", 1 + rnd(9),
				 rnd(10));
			cJSON_AddStringToObject(d, "created_at", ts);
		}
		fx_insert_cjson(db, c, d);
		cJSON_Delete(d);
	}
	fx_exec(db, "COMMIT");
	fx_exec(db, "CREATE INDEX posts_views ON posts(views)");
	return db;
}

static const char *rules_src[] = {
	/* usually exact */
	"doc.published == true || auth.id == doc.author_id",
	"auth.role == 'admin'",
	"auth != null && doc.views > 10 && doc.score < 0.5",
	"doc.author_id == auth.id || auth.role == 'admin'",
	/* need per-row evaluation */
	"doc.views * 2 > 10 || doc.title.matches('^a')",
	"doc.title.matches('^[a-c]') && doc.published == true",
	"auth != null && doc.views % 3 == 0",
	"doc.published == true && 10 / doc.views > 1",
	"size(doc.title) > 4 || auth.role == 'admin'",
};
#define NRULES (sizeof(rules_src) / sizeof(rules_src[0]))

static const char *auths_src[] = {
	NULL,
	"{\"id\":\"u1\",\"email\":\"a@x\",\"role\":\"user\",\"verified\":true}",
	"{\"id\":\"u2\",\"email\":\"b@x\",\"role\":\"user\",\"verified\":false}",
	"{\"id\":\"admin1\",\"email\":\"c@x\",\"role\":\"admin\","
	"\"verified\":true}",
};
#define NAUTHS (sizeof(auths_src) / sizeof(auths_src[0]))

static const char *bases[] = {
	"",
	"filter=views:gte:2",
	"filter=published:eq:true&sort=-score",
	"sort=views",
	"sort=-views,title&fields=id,title",
	"filter=title:like:a%25&sort=created_at",
	"sort=-created_at&fields=id,views",
};
#define NBASES (sizeof(bases) / sizeof(bases[0]))

static cJSON *run(sqlite3 *db, const char *qs, const alyx__rule *r,
		  const cJSON *auth)
{
	alyx__query *q = NULL;
	alyx__err err = {0};
	alyx_buf out;
	cJSON *res = NULL;

	alyx__buf_init(&out, 0);
	if (alyx__query_parse_str(&fx_schema, fx_coll("posts"), qs, &q,
				  &err) != ALYX_OK ||
	    alyx__query_run_ruled(db, q, r, auth, NULL, NULL, &out,
				  &err) != ALYX_OK) {
		fprintf(stderr, "query %s: %s\n", qs, err.msg);
		abort();
	}
	res = cJSON_ParseWithLength(out.data, out.len);
	alyx__query_free(q);
	alyx__buf_free(&out);
	alyx__err_clear(&err);
	if (!res)
		abort();
	return res;
}

/* The ids the evaluator allows among the plain query's documents. */
static int expected(sqlite3 *db, const char *base, const alyx__rule *r,
		    const cJSON *auth, int *ids)
{
	char qs[512];
	alyx__rule_ctx ctx = { .auth = auth };
	const cJSON *d;
	cJSON *res;
	int n = 0;
	const char *f = strstr(base, "fields=");

	/* Whole documents: the rule reads fields the projection drops. */
	snprintf(qs, sizeof(qs), "%.*s%slimit=1000", f ? (int)(f - base) :
		 (int)strlen(base), base, *base && !f ? "&" : "");
	res = run(db, qs, NULL, NULL);
	cJSON_ArrayForEach(d, cJSON_GetObjectItem(res, "docs")) {
		ctx.doc = d;
		if (alyx__rule_eval(r, &ctx, NULL) == ALYX_RULE_ALLOW)
			ids[n++] = cJSON_GetObjectItem(d, "id")->valueint;
	}
	if (cJSON_GetObjectItem(res, "next"))
		abort();
	cJSON_Delete(res);
	return n;
}

static int n_checked_pages, n_exact, n_inexact;

/* Walks the pages with `after` (cursor) or offsets; checks everything. */
static void walk(sqlite3 *db, const char *base, const alyx__rule *r,
		 const cJSON *auth, const int *ids, int n, bool cursor)
{
	/* Offsets rescan from the start: keep their pages larger. */
	int limit = cursor ? 1 + (int)rnd(rnd(3) ? 80 : 7) : 8 + (int)rnd(80);
	int got = 0, pages = 0;
	char *after = NULL;

	for (;;) {
		char qs[1024];
		bool want_total = rnd(3) == 0;
		const cJSON *d, *next, *tot;
		cJSON *res;
		int k = 0;

		snprintf(qs, sizeof(qs), "%s%slimit=%d%s%s%s", base,
			 *base ? "&" : "", limit, want_total ? "&total=true" :
			 "", cursor && after ? "&after=" : "",
			 cursor && after ? after : "");
		if (!cursor)
			snprintf(qs + strlen(qs), sizeof(qs) - strlen(qs),
				 "&offset=%d", got);
		res = run(db, qs, r, auth);
		cJSON_ArrayForEach(d, cJSON_GetObjectItem(res, "docs")) {
			if (got + k >= n ||
			    cJSON_GetObjectItem(d, "id")->valueint !=
			    ids[got + k]) {
				fprintf(stderr, "%s rule %s: doc %d wrong\n",
					qs, alyx__rule_src(r), got + k);
				abort();
			}
			k++;
		}
		next = cJSON_GetObjectItem(res, "next");
		tot = cJSON_GetObjectItem(res, "total");
		if (want_total != (tot != NULL) ||
		    (tot && tot->valueint != n)) {
			fprintf(stderr, "%s: total wrong (want %d)\n", qs, n);
			abort();
		}
		got += k;
		pages++;
		/* A short page only at the end; next exactly when more. */
		if ((k < limit && got != n) || (next != NULL) != (got < n)) {
			fprintf(stderr, "%s: page of %d, %d/%d, next %d\n", qs,
				k, got, n, next != NULL);
			abort();
		}
		free(after);
		after = next ? strdup(next->valuestring) : NULL;
		cJSON_Delete(res);
		n_checked_pages++;
		if (!after)
			break;
		if (pages > NDOCS + 2)
			abort();
	}
	free(after);
	if (got != n)
		abort();
}

TEST(ruled_pages_agree_with_evaluation)
{
	sqlite3 *db = make_db();
	static int ids[NDOCS];
	size_t ri, ai, bi;

	for (ri = 0; ri < NRULES; ri++) {
		alyx__rule *r = NULL;
		alyx__err err = {0};

		ASSERT_OK(alyx__rule_compile(rules_src[ri],
					     strlen(rules_src[ri]),
					     fx_coll("posts"), &r, &err));
		for (ai = 0; ai < NAUTHS; ai++) {
			cJSON *auth = auths_src[ai] ?
				cJSON_Parse(auths_src[ai]) : NULL;
			alyx_buf sql;
			alyx__value *b = NULL;
			size_t nb = 0;
			bool exact = false;

			alyx__buf_init(&sql, 0);
			ASSERT_OK(alyx__rule_to_sql(r, fx_coll("posts"), auth,
						    NULL, &sql, &b, &nb,
						    &exact, &err));
			exact ? n_exact++ : n_inexact++;
			alyx__rule_binds_free(b, nb);
			alyx__buf_free(&sql);
			for (bi = 0; bi < NBASES; bi++) {
				int n = expected(db, bases[bi], r, auth, ids);

				walk(db, bases[bi], r, auth, ids, n, true);
				walk(db, bases[bi], r, auth, ids, n, false);
			}
			cJSON_Delete(auth);
		}
		alyx__rule_free(r);
	}
	/* Both paths were exercised. */
	ASSERT_NE(n_exact, 0);
	ASSERT_NE(n_inexact, 0);
	fprintf(stderr, "  %d pages checked (%d exact, %d per-row contexts)\n",
		n_checked_pages, n_exact, n_inexact);
	sqlite3_close(db);
}

/* A get by primary key under a rule that translates exactly reads the
 * document in its own statement (alyx__query_get_ruled): the same
 * document the query form finds, or none exactly where it finds none; a
 * rule that needs per-row evaluation is left to the query form, with
 * nothing read. */
TEST(ruled_get_agrees_with_query)
{
	sqlite3 *db = make_db();
	alyx__collection *c = (alyx__collection *)fx_coll("posts");
	int n_direct = 0, n_left = 0, n_found = 0;
	size_t ri, ai;

	c->read_plan = alyx__qplan_new(c);
	ASSERT(c->read_plan);
	for (ri = 0; ri < NRULES; ri++) {
		alyx__rule *r = NULL;
		alyx__err err = {0};

		ASSERT_OK(alyx__rule_compile(rules_src[ri],
					     strlen(rules_src[ri]), c, &r,
					     &err));
		for (ai = 0; ai < NAUTHS; ai++) {
			cJSON *auth = auths_src[ai] ?
				cJSON_Parse(auths_src[ai]) : NULL;

			for (int id = 0; id <= NDOCS + 1; id += 13) {
				alyx__value pk = {.kind = ALYX_V_INT, .i = id};
				char qs[64], *want = NULL;
				cJSON *page, *docs;
				alyx_buf out;
				bool done, found;

				snprintf(qs, sizeof(qs),
					 "filter=id:eq:%d&limit=1", id);
				page = run(db, qs, r, auth);
				docs = cJSON_GetObjectItem(page, "docs");
				if (cJSON_GetArraySize(docs))
					want = cJSON_PrintUnformatted(
						cJSON_GetArrayItem(docs, 0));
				alyx__buf_init(&out, 0);
				ASSERT_OK(alyx__query_get_ruled(db, c, &pk, r,
								auth, NULL,
								&out, &done,
								&found, &err));
				if (!done) {
					n_left++;
					ASSERT(!found && out.len == 0);
				} else {
					cJSON *got;
					char *g;

					n_direct++;
					ASSERT_EQ(found, want != NULL);
					n_found += found;
					got = found ? cJSON_ParseWithLength(
						out.data, out.len) : NULL;
					ASSERT(!found || got);
					g = got ? cJSON_PrintUnformatted(got) :
						NULL;
					if (found)
						ASSERT_STR_EQ(g, want);
					cJSON_free(g);
					cJSON_Delete(got);
				}
				cJSON_free(want);
				cJSON_Delete(page);
				alyx__buf_free(&out);
			}
			cJSON_Delete(auth);
		}
		alyx__rule_free(r);
	}
	alyx__qplan_free(c->read_plan);
	c->read_plan = NULL;
	ASSERT_NE(n_direct, 0);
	ASSERT_NE(n_left, 0);
	ASSERT_NE(n_found, 0);
	ASSERT_NE(n_found, n_direct);
	sqlite3_close(db);
}

/* No rule: the plain query. */
TEST(ruled_null_rule_is_plain)
{
	sqlite3 *db = make_db();
	cJSON *res = run(db, "limit=1000&total=true", NULL, NULL);

	ASSERT_EQ(cJSON_GetObjectItem(res, "total")->valueint, NDOCS);
	ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(res, "docs")),
		  NDOCS);
	cJSON_Delete(res);
	sqlite3_close(db);
}

/* Expanded documents meet their collection's read rule: exact rules
 * restrict them, inexact ones expand to null. */
TEST(ruled_expand_uses_collection_rule)
{
	sqlite3 *db = make_db();
	alyx__collection *users = (alyx__collection *)fx_coll("users");
	const char *src[] = {"auth.id == doc.id", "doc.id.matches('^u1$')"};
	cJSON *auth = cJSON_Parse("{\"id\":\"u1\",\"role\":\"user\"}");
	size_t i;

	fx_insert(db, "users", "{\"id\":\"u1\",\"name\":\"one\"}");
	fx_insert(db, "users", "{\"id\":\"u2\",\"name\":\"two\"}");
	for (i = 0; i < 2; i++) {
		alyx__rule *r = NULL;
		alyx__err err = {0};
		cJSON *res;
		const cJSON *d;
		int seen = 0, shown = 0;

		ASSERT_OK(alyx__rule_compile(src[i], strlen(src[i]), users,
					     &r, &err));
		users->programs[ALYX_RULE_READ] = r;
		res = run(db, "expand=author_id&limit=1000", NULL, auth);
		cJSON_ArrayForEach(d, cJSON_GetObjectItem(res, "docs")) {
			const cJSON *a = cJSON_GetObjectItem(d, "author_id");
			const cJSON *x = cJSON_GetObjectItem(
				cJSON_GetObjectItem(d, "expand"), "author_id");

			if (!cJSON_IsString(a) ||
			    (strcmp(a->valuestring, "u1") &&
			     strcmp(a->valuestring, "u2")))
				continue;
			seen++;
			ASSERT_NE(x, NULL);
			if (i == 0 && !strcmp(a->valuestring, "u1")) {
				ASSERT_STR_EQ(cJSON_GetObjectItem(x, "name")
					      ->valuestring, "one");
				shown++;
			} else {
				ASSERT_EQ(cJSON_IsNull(x), 1);
			}
		}
		ASSERT_NE(seen, 0);
		ASSERT_EQ(shown != 0, i == 0);
		users->programs[ALYX_RULE_READ] = NULL;
		alyx__rule_free(r);
		cJSON_Delete(res);
	}
	cJSON_Delete(auth);
	sqlite3_close(db);
}

TEST_MAIN()
