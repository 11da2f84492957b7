/*
 * test-pushdown.c - SQL push-down of read rules agrees with evaluation.
 *
 * Generates documents into an in-memory SQLite table (storage forms of
 * doc.h: bool 0/1, timestamps as ISO ms text), then for every rule and a
 * set of auth contexts checks that the rows the pushed-down condition
 * selects are exactly the rows alyx__rule_eval allows (or a superset when
 * the translation says it is inexact).
 */
#include <math.h>
#include <string.h>

#include <sqlite3.h>

#include "harness.h"
#include "rules/rules-int.h"

static alyx__field fields[] = {
	{.name = "id", .type = ALYX_T_UUID, .primary = true},
	{.name = "title", .type = ALYX_T_STRING, .nullable = true},
	{.name = "author_id", .type = ALYX_T_UUID},
	{.name = "published", .type = ALYX_T_BOOL, .nullable = true},
	{.name = "published_at", .type = ALYX_T_TIMESTAMP, .nullable = true},
	{.name = "view_count", .type = ALYX_T_INT, .nullable = true},
	{.name = "score", .type = ALYX_T_FLOAT, .nullable = true},
	{.name = "tags", .type = ALYX_T_JSON, .nullable = true},
};
static alyx__collection posts = {.name = "posts", .fields = fields,
				 .n_fields = 8};

#define NDOCS 3000

static uint64_t rng = 88172645463325252ull;
static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static const char *rules[] = {
	"doc.published == true || auth.id == doc.author_id || "
	"auth.role == 'admin'",
	"doc.published",
	"!doc.published",
	"doc.published != false",
	"doc.published == 1",
	"doc.view_count > 10",
	"doc.view_count >= 10 && doc.view_count < 50",
	"!(doc.view_count > 10)",
	"doc.view_count == null",
	"doc.view_count != null && doc.score > 0.5",
	"doc.view_count in [1, 2, 3, null]",
	"doc.view_count > 10.5 || doc.view_count == 3.0",
	"doc.view_count < 18446744073709551615u",
	"10 < doc.view_count",
	"doc.score <= 1",
	"doc.score > 2u",
	"doc.score == 0.5 || doc.score == 1",
	"doc.title == 'Hello' || doc.title == ''",
	"doc.title in ['Hello', 'World']",
	"doc.title != 'Hello'",
	"'Hello' == doc.title",
	"doc.title < 'M'",
	"doc.title == 5",
	"doc.title > 5",
	"doc.published_at > timestamp('2024-06-01T00:00:00Z')",
	"doc.published_at < request.time",
	"doc.published_at == null || doc.published_at <= "
	"timestamp('2024-03-01T12:00:00.500Z')",
	"doc.published_at == timestamp('2024-03-01T12:00:00.000000001Z')",
	"auth != null && doc.author_id == auth.id",
	"auth.id == doc.author_id",
	"auth.role == 'admin' ? true : doc.published",
	"doc.published ? doc.view_count > 5 : doc.title == 'World'",
	"doc.view_count > 10 || 1 / 0 == 1",
	"doc.view_count > 10 && 1 / 0 == 1",
	"doc.view_count == doc.view_count",
	"doc.view_count < doc.view_count || doc.title != doc.author_id",
	"doc.author_id == auth.metadata.owner",
	"doc.nope == 1 || doc.published",
	"has(doc.title) && !has(doc.nope)",
	"size(doc.title) > 3",
	"doc.published && size(doc.title) > 3",
	"doc.title.startsWith('H') || doc.published",
	"!(doc.title.startsWith('H') || doc.view_count > 3)",
	"doc.tags == null",
	"doc.title",
	"request.method == 'GET' && doc.published",
};

#define NRANDAUTH 10
static char rand_auth_buf[NRANDAUTH][160];
static const char *auths[6 + NRANDAUTH] = {
	NULL,
	"{\"id\":\"u1\",\"role\":\"user\"}",
	"{\"id\":\"u2\"}",
	"{\"id\":\"u9\",\"role\":\"admin\"}",
	"{\"id\":\"u3\",\"role\":\"user\",\"metadata\":{\"owner\":\"u3\"}}",
	"{\"id\":\"u1\",\"role\":\"admin\",\"metadata\":{\"owner\":\"u2\"}}",
};

/* Random auth contexts: ids, roles, verified and metadata vary. */
static void gen_auths(void)
{
	static const char *roles[] = {"user", "admin", "moderator"};
	for (int i = 0; i < NRANDAUTH; i++) {
		snprintf(rand_auth_buf[i], sizeof(rand_auth_buf[i]),
			 "{\"id\":\"u%u\",\"role\":\"%s\",\"verified\":%s,"
			 "\"metadata\":{\"owner\":\"u%u\"}}", 1 + rnd(5),
			 roles[rnd(3)], rnd(2) ? "true" : "false", 1 + rnd(5));
		auths[6 + i] = rand_auth_buf[i];
	}
}

static cJSON *gen_doc(int i)
{
	static const char *titles[] = {"Hello", "World", "", "Zeta", "hello",
				       "éH", "Ma", "été", "Hé"};
	static const char *authors[] = {"u1", "u2", "u3", "u4"};
	cJSON *d = cJSON_CreateObject();
	char id[32], ts[32];

	snprintf(id, sizeof(id), "p%05d", i);
	cJSON_AddStringToObject(d, "id", id);
	if (rnd(8))
		cJSON_AddStringToObject(d, "title", titles[rnd(9)]);
	else
		cJSON_AddNullToObject(d, "title");
	cJSON_AddStringToObject(d, "author_id", authors[rnd(4)]);
	if (rnd(10))
		cJSON_AddBoolToObject(d, "published", rnd(2));
	else
		cJSON_AddNullToObject(d, "published");
	if (rnd(5)) {
		snprintf(ts, sizeof(ts), "2024-%02u-%02uT12:00:00.%03uZ",
			 1 + rnd(12), 1 + rnd(28), rnd(3) ? 0 : rnd(1000));
		cJSON_AddStringToObject(d, "published_at", ts);
	} else {
		cJSON_AddNullToObject(d, "published_at");
	}
	if (rnd(6))
		cJSON_AddNumberToObject(d, "view_count", (int)rnd(60) - 5);
	else
		cJSON_AddNullToObject(d, "view_count");
	if (rnd(6))
		cJSON_AddNumberToObject(d, "score", rnd(5) * 0.5);
	else
		cJSON_AddNullToObject(d, "score");
	cJSON_AddNullToObject(d, "tags");
	return d;
}

static void insert(sqlite3 *db, sqlite3_stmt *st, const cJSON *d)
{
	for (int i = 0; i < 8; i++) {
		const cJSON *v = cJSON_GetObjectItem(d, fields[i].name);
		if (cJSON_IsNull(v))
			sqlite3_bind_null(st, i + 1);
		else if (cJSON_IsBool(v))
			sqlite3_bind_int(st, i + 1, cJSON_IsTrue(v));
		else if (cJSON_IsString(v))
			sqlite3_bind_text(st, i + 1, v->valuestring, -1,
					  SQLITE_TRANSIENT);
		else if (fields[i].type == ALYX_T_INT)
			sqlite3_bind_int64(st, i + 1, (int64_t)v->valuedouble);
		else
			sqlite3_bind_double(st, i + 1, v->valuedouble);
	}
	ASSERT_EQ(sqlite3_step(st), SQLITE_DONE);
	sqlite3_reset(st);
	(void)db;
}

static void bind_value(sqlite3_stmt *st, int i, const alyx__value *v)
{
	switch (v->kind) {
	case ALYX_V_INT: sqlite3_bind_int64(st, i, v->i); break;
	case ALYX_V_FLOAT: sqlite3_bind_double(st, i, v->f); break;
	case ALYX_V_TEXT:
		sqlite3_bind_text(st, i, v->s, (int)v->n, SQLITE_TRANSIENT);
		break;
	case ALYX_V_BLOB:
		sqlite3_bind_blob(st, i, v->s, (int)v->n, SQLITE_TRANSIENT);
		break;
	default: sqlite3_bind_null(st, i);
	}
}

/* An in-memory posts table with n generated documents; docv[i] gets
 * document i as the rules see it (memory from conv). */
static sqlite3 *make_db(cJSON **docs, alyx__cel_val *docv, int n,
			alyx__cel_run *conv)
{
	sqlite3 *db;
	sqlite3_stmt *ins;

	ASSERT_EQ(sqlite3_open(":memory:", &db), SQLITE_OK);
	ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE posts (\"id\" TEXT PRIMARY "
			       "KEY, \"title\" TEXT, \"author_id\" TEXT, "
			       "\"published\" INTEGER, \"published_at\" TEXT, "
			       "\"view_count\" INTEGER, \"score\" REAL, "
			       "\"tags\" TEXT)", NULL, NULL, NULL), SQLITE_OK);
	ASSERT_EQ(sqlite3_prepare_v2(db, "INSERT INTO posts VALUES "
				     "(?,?,?,?,?,?,?,?)", -1, &ins, NULL),
		  SQLITE_OK);
	conv->max_bytes = 64u << 20;
	for (int i = 0; i < n; i++) {
		docs[i] = gen_doc(i);
		insert(db, ins, docs[i]);
		ASSERT_OK(alyx__rule_json_val(docs[i], &posts, conv,
					      &docv[i]));
	}
	sqlite3_finalize(ins);
	return db;
}

/* Checks one rule against every doc and auth context: the pushed-down
 * SQL must select exactly (or, when inexact, at least) the allowed rows. */
static void check_rule(sqlite3 *db, const char *rule, cJSON **docs,
		       const alyx__cel_val *docv, int ndocs,
		       const char *const *auth_list, size_t nauth,
		       const cJSON *req, int *checks, int *exact_n,
		       int *inexact_n)
{
	alyx__rule *r = NULL;
	alyx__err err = {0};
	static char sel[NDOCS];

	ASSERT_OK(alyx__rule_compile(rule, strlen(rule), &posts, &r, &err));
	for (size_t ai = 0; ai < nauth; ai++) {
		cJSON *auth = auth_list[ai] ? cJSON_Parse(auth_list[ai]) : NULL;
		alyx_buf sql;
		alyx__value *binds;
		size_t nb;
		bool exact;
		alyx__cel_run run, sub;
		alyx__cel_val vars[3];
		sqlite3_stmt *st;

		alyx__buf_init(&sql, 0);
		alyx__buf_adds(&sql, "SELECT rowid FROM posts WHERE ");
		ASSERT_OK(alyx__rule_to_sql(r, &posts, auth, req, &sql, &binds,
					    &nb, &exact, &err));
		exact ? (*exact_n)++ : (*inexact_n)++;
		if (sqlite3_prepare_v2(db, sql.data, -1, &st, NULL) !=
		    SQLITE_OK)
			TH_FAIL("bad SQL for %s: %s: %s", rule, sql.data,
				sqlite3_errmsg(db));
		ASSERT_EQ(sqlite3_bind_parameter_count(st), (int)nb);
		for (size_t b = 0; b < nb; b++)
			bind_value(st, (int)b + 1, &binds[b]);
		memset(sel, 0, sizeof(sel));
		while (sqlite3_step(st) == SQLITE_ROW) {
			int id = sqlite3_column_int(st, 0);
			if (id <= ndocs)
				sel[id - 1] = 1;
		}
		sqlite3_finalize(st);

		alyx__cel_run_init(&run);
		ASSERT_OK(alyx__rule_auth_val(auth, &run, &vars[0]));
		ASSERT_OK(alyx__rule_request_val(req, &run, &vars[2]));
		alyx__cel_run_init(&sub);
		for (int d = 0; d < ndocs; d++) {
			vars[1] = docv[d];
			int res = alyx__rule_eval_vals(r, vars, &sub, NULL);
			alyx__cel_run_reset(&sub);
			bool allow = res == ALYX_RULE_ALLOW;
			(*checks)++;
			if (allow == (bool)sel[d] || (!exact && sel[d]))
				continue;
			char *dj = cJSON_PrintUnformatted(docs[d]);
			TH_FAIL("rule %s, auth %s, doc %s: eval %d, sql %d "
				"(exact %d): %s", rule,
				auth_list[ai] ? auth_list[ai] : "null", dj, res,
				sel[d], exact, sql.data);
		}
		alyx__cel_run_free(&sub);
		alyx__cel_run_free(&run);
		alyx__rule_binds_free(binds, nb);
		alyx__buf_free(&sql);
		cJSON_Delete(auth);
	}
	alyx__rule_free(r);
}

/* ---- random rules ---- */

static const char *const rfields[] = {"title", "author_id", "published",
				      "published_at", "view_count", "score",
				      "tags", "nope"};
static const char *const rconsts[] = {
	"null", "true", "false", "0", "3", "-5", "10", "54", "2u",
	"18446744073709551615u", "0.5", "1.0", "2.25", "-0.0", "'Hello'", "''",
	"'M'", "'u1'", "auth.id", "auth.role", "auth.metadata.owner",
	"request.time", "timestamp('2024-06-01T12:00:00Z')",
	"timestamp('2024-03-15T12:00:00.250Z')", "duration('1h')",
	"1 / 0", "[1, 2]", "{'a': 1}", "b'x'", "9007199254740993",
};
static const char *const rops[] = {"==", "!=", "<", "<=", ">", ">="};

static void gen_rule(alyx_buf *b, int depth)
{
	unsigned k = depth <= 0 ? rnd(6) : rnd(12);
	switch (k) {
	case 0: case 1: case 2:
		alyx__buf_addf(b, "doc.%s %s %s", rfields[rnd(8)],
			       rops[rnd(6)], rconsts[rnd(30)]);
		break;
	case 3:
		alyx__buf_addf(b, "%s %s doc.%s", rconsts[rnd(30)],
			       rops[rnd(6)], rfields[rnd(8)]);
		break;
	case 4:
		if (rnd(2))
			alyx__buf_addf(b, "doc.%s %s doc.%s", rfields[rnd(7)],
				       rops[rnd(6)], rfields[rnd(7)]);
		else
			alyx__buf_addf(b, "doc.%s in [%s, %s]",
				       rfields[rnd(8)], rconsts[rnd(30)],
				       rconsts[rnd(30)]);
		break;
	case 5: {
		static const char *const tests[] = {"startsWith", "endsWith",
						    "contains"};
		static const char *const args[] = {"'H'", "''", "'ll'", "'o'",
						   "'Hello'", "'é'", "auth.id",
						   "5", "null"};
		switch (rnd(6)) {
		case 0:
			alyx__buf_adds(b, rnd(2) ? "doc.published" :
				       "has(doc.title)");
			break;
		case 1:
			alyx__buf_addf(b, "size(doc.%s) %s %s",
				       rnd(2) ? "title" : "author_id",
				       rops[rnd(6)], rconsts[rnd(30)]);
			break;
		case 2:
			alyx__buf_addf(b, "%s %s size(doc.title)",
				       rconsts[rnd(30)], rops[rnd(6)]);
			break;
		case 3:
			alyx__buf_addf(b, "doc.%s.%s(%s)", rfields[rnd(8)],
				       tests[rnd(3)], args[rnd(9)]);
			break;
		case 4:
			alyx__buf_adds(b, "doc.title.matches('^[A-Z]')");
			break;
		default:
			alyx__buf_adds(b, "auth.role == 'admin'");
		}
		break;
	}
	case 6: case 7:
		alyx__buf_addc(b, '(');
		gen_rule(b, depth - 1);
		alyx__buf_adds(b, rnd(2) ? " && " : " || ");
		gen_rule(b, depth - 1);
		alyx__buf_addc(b, ')');
		break;
	case 8: case 9:
		alyx__buf_adds(b, "!(");
		gen_rule(b, depth - 1);
		alyx__buf_addc(b, ')');
		break;
	default:
		alyx__buf_addc(b, '(');
		gen_rule(b, depth - 1);
		alyx__buf_adds(b, " ? ");
		gen_rule(b, depth - 1);
		alyx__buf_adds(b, " : ");
		gen_rule(b, depth - 1);
		alyx__buf_addc(b, ')');
	}
}

TEST(pushdown_agrees_with_evaluation)
{
	sqlite3 *db;
	static cJSON *docs[NDOCS];
	alyx__cel_run conv;
	static alyx__cel_val docv[NDOCS];
	cJSON *req = cJSON_Parse("{\"method\":\"GET\",\"ip\":\"::1\","
				 "\"time\":\"2024-05-01T00:00:00Z\"}");
	int exact_n = 0, inexact_n = 0, checks = 0;

	gen_auths();
	alyx__cel_run_init(&conv);
	db = make_db(docs, docv, NDOCS, &conv);

	for (size_t ri = 0; ri < ALYX_ARRAY_LEN(rules); ri++)
		check_rule(db, rules[ri], docs, docv, NDOCS, auths,
			   ALYX_ARRAY_LEN(auths), req, &checks, &exact_n,
			   &inexact_n);
	fprintf(stderr, "  %d checks, %d exact and %d inexact translations\n",
		checks, exact_n, inexact_n);
	ASSERT(exact_n > 5 * inexact_n);
	for (int i = 0; i < NDOCS; i++)
		cJSON_Delete(docs[i]);
	cJSON_Delete(req);
	alyx__cel_run_free(&conv);
	sqlite3_close(db);
}

TEST(pushdown_random_rules)
{
	enum { RDOCS = 600, RRULES = 400 };
	sqlite3 *db;
	static cJSON *docs[RDOCS];
	static alyx__cel_val docv[RDOCS];
	alyx__cel_run conv;
	cJSON *req = cJSON_Parse("{\"method\":\"GET\","
				 "\"time\":\"2024-05-01T00:00:00Z\"}");
	int checks = 0, exact_n = 0, inexact_n = 0;

	rng = 0x9E3779B97F4A7C15ull;
	gen_auths();
	alyx__cel_run_init(&conv);
	db = make_db(docs, docv, RDOCS, &conv);
	for (int i = 0; i < RRULES; i++) {
		alyx_buf b;
		alyx__buf_init(&b, 0);
		gen_rule(&b, 3);
		const char *sub[] = {auths[0], auths[1], auths[3],
				     auths[6 + rnd(NRANDAUTH)]};
		check_rule(db, b.data, docs, docv, RDOCS, sub, 4, req, &checks,
			   &exact_n, &inexact_n);
		alyx__buf_free(&b);
	}
	fprintf(stderr, "  %d checks over %d random rules, %d exact and %d "
		"inexact translations\n", checks, RRULES, exact_n, inexact_n);
	for (int i = 0; i < RDOCS; i++)
		cJSON_Delete(docs[i]);
	cJSON_Delete(req);
	alyx__cel_run_free(&conv);
	sqlite3_close(db);
}

static const char *push(const char *rule, const char *auth, bool *exact)
{
	static char out[600];
	alyx__rule *r = NULL;
	alyx__err err = {0};
	alyx_buf sql;
	alyx__value *binds;
	size_t nb;
	cJSON *a = auth ? cJSON_Parse(auth) : NULL;

	alyx__buf_init(&sql, 0);
	if (alyx__rule_compile(rule, strlen(rule), &posts, &r, &err) ||
	    alyx__rule_to_sql(r, &posts, a, NULL, &sql, &binds, &nb, exact,
			      &err)) {
		snprintf(out, sizeof(out), "error %d: %s", err.code, err.msg);
	} else {
		size_t o = (size_t)snprintf(out, sizeof(out), "%s", sql.data);
		for (size_t i = 0; i < nb && o < sizeof(out) - 40; i++)
			o += (size_t)snprintf(out + o, sizeof(out) - o,
					      binds[i].kind == ALYX_V_TEXT ?
						      " ['%s']" : " [%s]",
					      binds[i].kind == ALYX_V_TEXT ?
						      binds[i].s :
					      binds[i].kind == ALYX_V_INT ?
						      "int" : "float");
		alyx__rule_binds_free(binds, nb);
	}
	alyx__err_clear(&err);
	alyx__buf_free(&sql);
	alyx__rule_free(r);
	cJSON_Delete(a);
	return out;
}

TEST(pushdown_shapes)
{
	bool exact;
	const char *read = "doc.published == true || auth.id == doc.author_id"
			   " || auth.role == 'admin'";

	ASSERT_STR_EQ(push(read, "{\"id\":\"u1\"}", &exact),
		      "(\"published\" IS ? OR \"author_id\" IS ?) [int] "
		      "['u1']");
	ASSERT(exact);
	ASSERT_STR_EQ(push(read, "{\"id\":\"u1\",\"role\":\"admin\"}", &exact),
		      "1");
	/* unauthenticated: auth.id is an error, absorbed by || */
	ASSERT_STR_EQ(push(read, NULL, &exact), "\"published\" IS ? [int]");
	ASSERT_STR_EQ(push("auth.id == doc.author_id", NULL, &exact), "0");
	ASSERT(exact);
	ASSERT_STR_EQ(push("doc.view_count == null", NULL, &exact),
		      "\"view_count\" IS NULL");
	ASSERT_STR_EQ(push("!(doc.view_count > 3)", NULL, &exact),
		      "\"view_count\" <= ? [int]");
	ASSERT_STR_EQ(push("doc.published_at > timestamp('2024-01-01T00:00:00Z')",
			   NULL, &exact),
		      "\"published_at\" > ? ['2024-01-01T00:00:00.000Z']");
	/* not pushable: strict mode says so, lax mode gives a pre-filter */
	ASSERT_STR_EQ(push("doc.published && doc.title.matches('^H')", NULL,
			   NULL), "error 23: rule cannot be pushed down to SQL");
	ASSERT_STR_EQ(push("doc.published && doc.title.matches('^H')", NULL,
			   &exact), "\"published\" = 1");
	ASSERT(!exact);
	ASSERT_STR_EQ(push("size(doc.title) <= 3 || doc.title.startsWith('é')",
			   NULL, &exact),
		      "(length(\"title\") <= ? OR substr(\"title\", 1, 1) = ?)"
		      " [int] ['é']");
	ASSERT(exact);
	ASSERT_STR_EQ(push("!doc.title.contains(auth.id)", "{\"id\":\"x\"}",
			   &exact), "instr(\"title\", ?) = 0 ['x']");
}

/* Translations are remembered per (collection, auth) on the rule: each
 * caller gets its own, whatever the order, and memo hits equal fresh
 * translations. */
TEST(pushdown_memo_keeps_callers_apart)
{
	const char *src = "doc.published == true || auth.id == doc.author_id";
	const char *auths[] = {"{\"id\":\"u1\"}", "{\"id\":\"u2\"}", NULL,
			       "{\"id\":\"u1\",\"role\":\"x\"}"};
	alyx__rule *r = NULL;
	alyx__err err = {0};
	int round, i;

	ASSERT_OK(alyx__rule_compile(src, strlen(src), &posts, &r, &err));
	for (round = 0; round < 40; round++) {
		alyx_buf sql;
		alyx__value *binds;
		size_t nb;
		bool exact;
		cJSON *a;

		i = (round * 7 + round / 5) % 4;
		a = auths[i] ? cJSON_Parse(auths[i]) : NULL;
		alyx__buf_init(&sql, 0);
		alyx__buf_adds(&sql, "x AND ");	/* appends after the mark */
		ASSERT_OK(alyx__rule_to_sql(r, &posts, a, NULL, &sql, &binds,
					    &nb, &exact, &err));
		ASSERT(exact);
		if (!auths[i]) {
			ASSERT_STR_EQ(sql.data, "x AND \"published\" IS ?");
			ASSERT_EQ(nb, 1);
		} else {
			ASSERT_STR_EQ(sql.data, "x AND (\"published\" IS ? OR "
					       "\"author_id\" IS ?)");
			ASSERT_EQ(nb, 2);
			ASSERT_STR_EQ(binds[1].s, i == 1 ? "u2" : "u1");
		}
		alyx__rule_binds_free(binds, nb);
		alyx__buf_free(&sql);
		cJSON_Delete(a);
	}
	alyx__rule_free(r);
	/* Strict mode (exact NULL) does not use the memo. */
	ASSERT_STR_EQ(push("auth.role == 'admin' || doc.published",
			   "{\"id\":\"a\",\"role\":\"admin\"}", NULL), "1");
}

/* Rules that never read `request` share the memo across requests; rules
 * that do are translated per request (a memo hit would answer the first
 * request's translation to every later one). */
TEST(pushdown_memo_and_request)
{
	const char *with = "request.method == 'GET' || doc.published == true";
	const char *without = "doc.published == true || auth.id == doc.author_id";
	const char *reqs[] = {"{\"method\":\"GET\"}", "{\"method\":\"POST\"}",
			      "{\"method\":\"GET\"}"};
	const char *want_with[] = {"1", "\"published\" IS ?", "1"};
	alyx__rule *rw = NULL, *ro = NULL;
	alyx__err err = {0};
	cJSON *a = cJSON_Parse("{\"id\":\"u1\"}");

	ASSERT_OK(alyx__rule_compile(with, strlen(with), &posts, &rw, &err));
	ASSERT_OK(alyx__rule_compile(without, strlen(without), &posts, &ro,
				     &err));
	for (int round = 0; round < 2; round++)
		for (size_t i = 0; i < ALYX_ARRAY_LEN(reqs); i++) {
			cJSON *q = cJSON_Parse(reqs[i]);
			alyx_buf sql;
			alyx__value *binds;
			size_t nb;
			bool exact;

			alyx__buf_init(&sql, 0);
			ASSERT_OK(alyx__rule_to_sql(rw, &posts, a, q, &sql,
						    &binds, &nb, &exact, &err));
			ASSERT(exact);
			ASSERT_STR_EQ(sql.data, want_with[i]);
			alyx__rule_binds_free(binds, nb);
			alyx__buf_free(&sql);
			alyx__buf_init(&sql, 0);
			ASSERT_OK(alyx__rule_to_sql(ro, &posts, a, q, &sql,
						    &binds, &nb, &exact, &err));
			ASSERT(exact);
			ASSERT_STR_EQ(sql.data, "(\"published\" IS ? OR "
					       "\"author_id\" IS ?)");
			ASSERT_EQ(nb, 2);
			ASSERT_STR_EQ(binds[1].s, "u1");
			alyx__rule_binds_free(binds, nb);
			alyx__buf_free(&sql);
			cJSON_Delete(q);
		}
	ASSERT(ro->memo != NULL);	/* the request-free rule was remembered */
	ASSERT(rw->memo == NULL);
	alyx__rule_free(rw);
	alyx__rule_free(ro);
	cJSON_Delete(a);
}

TEST_MAIN()
