/*
 * test-fndb.c - ctx.db of functions through alyx_invoke(): collection
 * calls, raw SQL and SQL expressions, real transactions (commit, rollback
 * by a throw, by the function's timeout, by the transaction bound), the
 * change feed, and the invocation tokens of the internal API.
 * A runtime whose interpreter is missing is skipped with the reason.
 */
#include <fcntl.h>
#include <pthread.h>
#include <time.h>

#include "fn-test.h"

#include "auth/auth.h"
#include "core/handle.h"
#include "functions/functions.h"
#include "util/util.h"

static const char schema[] =
	"version: 1\n"
	"collections:\n"
	"  posts:\n"
	"    fields:\n"
	"      id: {type: uuid, primary: true, default: auto}\n"
	"      title: {type: string, maxLength: 50}\n"
	"      slug: {type: string, unique: true}\n"
	"      views: {type: int, default: 0}\n";

static alyx *db_project_cfg(const char *yaml)
{
	alyx *a = project(yaml);
	char *plan = NULL;

	if (alyx_apply_schema(a, schema, (size_t)-1, "schema.yaml", 0,
			      &plan) != ALYX_OK)
		TH_FAIL("schema: %s", alyx_errmsg(a));
	alyx_free(plan);
	return a;
}

static alyx *db_project(void)
{
	return db_project_cfg(NULL);
}

static int64_t count_posts(alyx *a)
{
	char *out = NULL;
	cJSON *o;
	int64_t n;

	ASSERT_OK(alyx_query_str(a, NULL, "posts", "total=true", &out));
	o = cJSON_Parse(out);
	n = (int64_t)cJSON_GetObjectItem(o, "total")->valuedouble;
	cJSON_Delete(o);
	alyx_free(out);
	return n;
}

/* ---- collection calls, raw SQL, expressions, change feed ---- */

static const char crud_js[] =
	"import { defineFunction, DbError } from \"@alyx/functions\";\n"
	"import { views } from \"./_shared/h.js\";\n"
	"export default defineFunction({\n"
	"  async handler(input, ctx) {\n"
	"    let same = false;\n"
	"    try { await ctx.db.collection('nope').query(); }\n"
	"    catch (e) { same = e instanceof DbError && e.code === 'NOT_FOUND'; }\n"
	"    if (!same) throw new Error('DbError is not the SDK class');\n"
	"    const p = await ctx.db.posts.create({title: input.title,\n"
	"                                         slug: input.slug});\n"
	"    const got = await ctx.db.posts.get(p.id);\n"
	"    const up = await ctx.db.posts.update(p.id,\n"
	"        {views: ctx.db.raw(views(41)), title: 'T2'});\n"
	"    const up2 = await ctx.db.posts.update(p.id,\n"
	"        {views: ctx.db.expr('views + 1')});\n"
	"    const list = await ctx.db.posts.query({filter: {slug: input.slug}});\n"
	"    const raw = await ctx.db.raw('SELECT count(*) AS n FROM posts "
	"WHERE views = ?', [42]);\n"
	"    let bad = null;\n"
	"    try { await ctx.db.posts.create({title: 'x'.repeat(60), slug: 'b'}); }\n"
	"    catch (e) { bad = e.code + ':' + e.details.fields[0].field; }\n"
	"    let ddl = null;\n"
	"    try { await ctx.db.raw('DROP TABLE posts'); }\n"
	"    catch (e) { ddl = e.code; }\n"
	"    const other = await ctx.db.posts.create({title: 'o', slug: input.slug + '-o'});\n"
	"    await ctx.db.posts.delete(other.id);\n"
	"    const gone = await ctx.db.posts.get(other.id);\n"
	"    const [a, b] = await Promise.all([ctx.db.posts.get(p.id),\n"
	"                                      ctx.db.raw('SELECT 7 AS seven')]);\n"
	"    return {id: p.id, got: got.title, title: up.title, views: up2.views,\n"
	"            listed: list.length, n: raw.rows[0].n, bad, ddl,\n"
	"            gone, both: a.id === p.id && b.rows[0].seven === 7};\n"
	"  },\n"
	"});\n";

static const char crud_py[] =
	"from alyx_functions import define_function, DbError\n"
	"@define_function()\n"
	"def handler(input, ctx):\n"
	"    p = ctx.db.posts.create({'title': input['title'],\n"
	"                             'slug': input['slug']})\n"
	"    got = ctx.db.posts.get(p['id'])\n"
	"    up = ctx.db.posts.update(p['id'], {'views': ctx.db.expr('views + 41'),\n"
	"                                       'title': 'T2'})\n"
	"    up2 = ctx.db['posts'].update(p['id'], {'views': ctx.db.expr('views + 1')})\n"
	"    lst = ctx.db.posts.query({'filter': {'slug': input['slug']}})\n"
	"    raw = ctx.db.raw('SELECT count(*) AS n FROM posts WHERE views = ?', [42])\n"
	"    bad = None\n"
	"    try:\n"
	"        ctx.db.posts.create({'title': 'x' * 60, 'slug': 'b'})\n"
	"    except DbError as e:\n"
	"        bad = e.code + ':' + e.details['fields'][0]['field']\n"
	"    ddl = None\n"
	"    try:\n"
	"        ctx.db.raw('DROP TABLE posts')\n"
	"    except DbError as e:\n"
	"        ddl = e.code\n"
	"    other = ctx.db.posts.create({'title': 'o', 'slug': input['slug'] + '-o'})\n"
	"    ctx.db.posts.delete(other['id'])\n"
	"    gone = ctx.db.posts.get(other['id'])\n"
	"    return {'id': p['id'], 'got': got['title'], 'title': up['title'],\n"
	"            'views': up2['views'], 'listed': len(lst),\n"
	"            'n': raw['rows'][0]['n'], 'bad': bad, 'ddl': ddl,\n"
	"            'gone': gone, 'both': True}\n";

static void crud(const char *file, const char *code, const char *yaml)
{
	alyx *a = db_project_cfg(yaml);
	cJSON *res, *out, *o, *c;
	char *feed = NULL;
	int ins = 0, upd = 0, del = 0;

	spit("functions/_shared/h.js",
	     "export const views = (n) => `views + ${n}`;\n");
	spit(file, code);
	if (call(a, NULL, "crud", "{\"title\":\"Hello\",\"slug\":\"h\"}",
		 &res) != ALYX_OK)
		TH_FAIL("crud: %s %s", alyx_errmsg(a), alyx_errdetails(a));
	out = output(res);
	ASSERT_STR_EQ(str(out, "got"), "Hello");
	ASSERT_STR_EQ(str(out, "title"), "T2");
	ASSERT_EQ(cJSON_GetObjectItem(out, "views")->valueint, 42);
	ASSERT_EQ(cJSON_GetObjectItem(out, "listed")->valueint, 1);
	ASSERT_EQ(cJSON_GetObjectItem(out, "n")->valueint, 1);
	ASSERT_STR_EQ(str(out, "bad"), "VALIDATION_ERROR:title");
	ASSERT_STR_EQ(str(out, "ddl"), "INVALID_QUERY");
	ASSERT(cJSON_IsNull(cJSON_GetObjectItem(out, "gone")));
	ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(out, "both")));
	{
		/* The call is in the function's log ring. */
		char *lj = NULL;
		cJSON *l, *e;

		ASSERT_OK(alyx_function_logs_json(a, "crud", &lj));
		l = cJSON_Parse(lj);
		e = cJSON_GetArrayItem(cJSON_GetObjectItem(l, "entries"), 0);
		ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(e, "success")));
		ASSERT_STR_EQ(str(e, "request_id"), str(res, "request_id"));
		ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(e, "logs")),
			  0);
		cJSON_Delete(l);
		alyx_free(lj);
		ASSERT_EQ(alyx_function_logs_json(a, "nope", &lj),
			  ALYX_E_NOTFOUND);
	}
	cJSON_Delete(res);
	ASSERT_EQ(count_posts(a), 1);

	/* Function writes are in the change feed like any other. */
	ASSERT_OK(alyx_changes(a, 0, 100, &feed));
	o = cJSON_Parse(feed);
	cJSON_ArrayForEach(c, cJSON_GetObjectItem(o, "changes")) {
		const char *op = str(c, "operation");

		ins += !strcmp(op, "INSERT");
		upd += !strcmp(op, "UPDATE");
		del += !strcmp(op, "DELETE");
	}
	ASSERT_EQ(ins, 2);
	ASSERT_EQ(upd, 2);
	ASSERT_EQ(del, 1);
	cJSON_Delete(o);
	alyx_free(feed);

	/* A unique conflict thrown out of the handler keeps its code. */
	ASSERT_EQ(call(a, NULL, "crud", "{\"title\":\"Hello\",\"slug\":\"h\"}",
		       &res), ALYX_E_FUNCTION);
	details_code(a, "CONFLICT");
	done(a);
}

TEST(node_db_calls)
{
	NEED("node");
	crud("functions/crud.js", crud_js, NULL);
}

/* Without a sandbox the SDK is found through a link farm: the same. */
TEST(node_db_calls_unsandboxed)
{
	NEED("node");
	crud("functions/crud.js", crud_js,
	     "functions:\n  sandbox: none\n"
	     "  node: {min_warm: 0, max_instances: 2, exec_timeout: 10s}\n");
}

TEST(python_db_calls)
{
	NEED("python3");
	crud("functions/crud.py", crud_py, NULL);
}

/* ---- transactions ---- */

static const char tx_js[] =
	"import { defineFunction, FunctionError } from \"@alyx/functions\";\n"
	"const sleep = (ms) => new Promise((r) => setTimeout(r, ms));\n"
	"export default defineFunction({\n"
	"  async handler(input, ctx) {\n"
	"    if (input.mode === 'commit')\n"
	"      return ctx.db.transaction(async (tx) => {\n"
	"        const p = await tx.posts.create({title: 'a', slug: 'a'});\n"
	"        await tx.posts.create({title: 'b', slug: 'b'});\n"
	"        const seen = await tx.posts.query({});\n"
	"        let outside = null;\n"
	"        try { await ctx.db.posts.get(p.id); } catch (e) { outside = e.code; }\n"
	"        return {seen: seen.length, outside};\n"
	"      });\n"
	"    if (input.mode === 'throw')\n"
	"      return ctx.db.transaction(async (tx) => {\n"
	"        await tx.posts.create({title: 'c', slug: 'c'});\n"
	"        throw new FunctionError('NOPE', 'changed my mind');\n"
	"      });\n"
	"    if (input.mode === 'hang')\n"
	"      return ctx.db.transaction(async (tx) => {\n"
	"        await tx.posts.create({title: 'd', slug: 'd'});\n"
	"        for (;;) {}\n"
	"      });\n"
	"    if (input.mode === 'bound') {\n"
	"      let code = null;\n"
	"      try {\n"
	"        await ctx.db.transaction(async (tx) => {\n"
	"          await tx.posts.create({title: 'e', slug: 'e'});\n"
	"          await sleep(input.ms);\n"
	"          await tx.posts.create({title: 'f', slug: 'f'});\n"
	"        });\n"
	"      } catch (e) { code = e.code; }\n"
	"      const after = await ctx.db.posts.create({title: 'g', slug: 'g'});\n"
	"      return {code, after: after.slug};\n"
	"    }\n"
	"    if (input.mode === 'die')\n"
	"      return ctx.db.transaction(async (tx) => {\n"
	"        await tx.posts.create({title: 'h', slug: 'h'});\n"
	"        process.exit(3);\n"
	"      });\n"
	"    if (input.mode === 'hold')\n"
	"      return ctx.db.transaction(async (tx) => {\n"
	"        const p = await tx.posts.create({title: 'i', slug: input.slug});\n"
	"        await sleep(input.ms);\n"
	"        return {slug: p.slug};\n"
	"      });\n"
	"  },\n"
	"});\n";

static const char tx_py[] =
	"import time\n"
	"from alyx_functions import define_function, FunctionError, DbError\n"
	"@define_function()\n"
	"def handler(input, ctx):\n"
	"    m = input['mode']\n"
	"    if m == 'commit':\n"
	"        with ctx.db.transaction() as tx:\n"
	"            p = tx.posts.create({'title': 'a', 'slug': 'a'})\n"
	"            tx.posts.create({'title': 'b', 'slug': 'b'})\n"
	"            seen = tx.posts.query({})\n"
	"            outside = None\n"
	"            try:\n"
	"                ctx.db.posts.get(p['id'])\n"
	"            except DbError as e:\n"
	"                outside = e.code\n"
	"        return {'seen': len(seen), 'outside': outside}\n"
	"    if m == 'throw':\n"
	"        def body(tx):\n"
	"            tx.posts.create({'title': 'c', 'slug': 'c'})\n"
	"            raise FunctionError('NOPE', 'changed my mind')\n"
	"        return ctx.db.transaction(body)\n"
	"    if m == 'hang':\n"
	"        with ctx.db.transaction() as tx:\n"
	"            tx.posts.create({'title': 'd', 'slug': 'd'})\n"
	"            while True:\n"
	"                pass\n"
	"    if m == 'bound':\n"
	"        code = None\n"
	"        try:\n"
	"            with ctx.db.transaction() as tx:\n"
	"                tx.posts.create({'title': 'e', 'slug': 'e'})\n"
	"                time.sleep(input['ms'] / 1000)\n"
	"                tx.posts.create({'title': 'f', 'slug': 'f'})\n"
	"        except DbError as e:\n"
	"            code = e.code\n"
	"        after = ctx.db.posts.create({'title': 'g', 'slug': 'g'})\n"
	"        return {'code': code, 'after': after['slug']}\n";

struct holder {
	alyx *a;
	const char *input;
	int rc;
};

static void *hold_main(void *p)
{
	struct holder *h = p;
	cJSON *res = NULL;

	h->rc = call(h->a, NULL, "tx", h->input, &res);
	cJSON_Delete(res);
	return NULL;
}

/* Two functions' transactions at once: the second waits for the writer
 * (the first holds it for 400 ms), then both commit. */
static void concurrent_transactions(alyx *a)
{
	struct holder h1 = {a, "{\"mode\":\"hold\",\"slug\":\"c1\","
			       "\"ms\":400}", -1};
	struct holder h2 = {a, "{\"mode\":\"hold\",\"slug\":\"c2\","
			       "\"ms\":0}", -1};
	pthread_t t1, t2;

	ASSERT_OK(pthread_create(&t1, NULL, hold_main, &h1));
	usleep(150000);
	ASSERT_OK(pthread_create(&t2, NULL, hold_main, &h2));
	ASSERT_OK(pthread_join(t1, NULL));
	ASSERT_OK(pthread_join(t2, NULL));
	ASSERT_OK(h1.rc);
	ASSERT_OK(h2.rc);
}

/* functions.transaction_timeout of the transaction tests (5 s by
 * default). */
#define TX_MS 1500

static void transactions(const char *file, const char *code, bool bound)
{
	alyx *a = db_project_cfg(
		"functions:\n"
		"  transaction_timeout: 1500ms\n"
		"  node: {min_warm: 0, max_instances: 2, exec_timeout: 10s}\n"
		"  python: {min_warm: 0, max_instances: 2, exec_timeout: 10s}\n");
	cJSON *res, *out;
	char in[96];

	spit(file, code);
	spit(strstr(file, ".py") ? "functions/tx.yaml" : "functions/tx.yaml",
	     "timeout: 3s\n");

	/* Commit: reads inside see the transaction's own writes; a call
	 * outside the transaction meanwhile is refused. */
	ASSERT_OK(call(a, NULL, "tx", "{\"mode\":\"commit\"}", &res));
	out = output(res);
	ASSERT_EQ(cJSON_GetObjectItem(out, "seen")->valueint, 2);
	ASSERT_STR_EQ(str(out, "outside"), "MISUSE");
	cJSON_Delete(res);
	ASSERT_EQ(count_posts(a), 2);

	/* Rolled back by a throw. */
	ASSERT_EQ(call(a, NULL, "tx", "{\"mode\":\"throw\"}", &res),
		  ALYX_E_FUNCTION);
	details_code(a, "NOPE");
	ASSERT_EQ(count_posts(a), 2);

	/* Rolled back by the function's timeout (its executor killed). */
	ASSERT_EQ(call(a, NULL, "tx", "{\"mode\":\"hang\"}", &res),
		  ALYX_E_TIMEOUT);
	ASSERT_EQ(count_posts(a), 2);
	/* ... and the writer is free again. */
	ASSERT_OK(alyx_doc_create(a, NULL, "posts",
				  "{\"title\":\"w\",\"slug\":\"w\"}",
				  (size_t)-1, &(char *){NULL}));
	ASSERT_EQ(count_posts(a), 3);

	if (bound) {
		/* Rolled back when its executor dies. */
		ASSERT_EQ(call(a, NULL, "tx", "{\"mode\":\"die\"}", &res),
			  ALYX_E_FUNCTION);
		details_code(a, "EXECUTOR_EXITED");
		ASSERT_EQ(count_posts(a), 3);
		concurrent_transactions(a);
		ASSERT_EQ(count_posts(a), 5);
	}
	if (bound) {
		/* Rolled back by the transaction bound while the function
		 * keeps running; it may write again afterwards. */
		spit("functions/tx.yaml", "timeout: 12s\n");
		spit("functions/touch.txt", "x");	/* rescan now */
		snprintf(in, sizeof(in), "{\"mode\":\"bound\",\"ms\":%d}",
			 TX_MS + 400);
		ASSERT_OK(call(a, NULL, "tx", in, &res));
		out = output(res);
		ASSERT_STR_EQ(str(out, "code"), "TIMEOUT");
		ASSERT_STR_EQ(str(out, "after"), "g");
		cJSON_Delete(res);
		ASSERT_EQ(count_posts(a), 6);
	}
	done(a);
}

TEST(node_transactions)
{
	NEED("node");
	transactions("functions/tx.js", tx_js, true);
}

TEST(python_transactions)
{
	NEED("python3");
	transactions("functions/tx.py", tx_py, false);
}

/* ---- invocation tokens ---- */

typedef struct answer {
	int calls;
	int rc;
	char *body;
	char msg[256];
} answer;

static void on_answer(void *ud, int rc, char *body, const char *msg,
		      const char *details)
{
	answer *an = ud;

	(void)details;
	an->calls++;
	an->rc = rc;
	alyx__free(an->body);
	an->body = body;
	snprintf(an->msg, sizeof(an->msg), "%s", msg ? msg : "");
}

static void submit(alyx *a, const char *token, answer *an)
{
	static const char q[] = "{\"sql\":\"SELECT 40 + 2 AS n\"}";

	alyx__fn_db_submit(a, token, ALYX__FN_DB_QUERY, q, strlen(q),
			   on_answer, an);
}

TEST(internal_api_tokens)
{
	alyx *a = db_project();
	alyx__fn_def d = {.name = "t"};
	alyx__fn_inv *inv = NULL;
	alyx__err err = {0};
	answer an = {0};
	alyx_buf line;
	char *tok, bad[128];
	int p[2], q[2];

	/* No token, a malformed one, a wrong secret. */
	submit(a, NULL, &an);
	ASSERT_EQ(an.calls, 1);
	ASSERT_EQ(an.rc, ALYX_E_UNAUTHORIZED);
	submit(a, "Bearer nope", &an);
	ASSERT_EQ(an.rc, ALYX_E_UNAUTHORIZED);
	ASSERT_OK(alyx__fn_inv_begin(a, &d, 60000, &inv, &err));
	tok = alyx__strdup(alyx__fn_inv_token(inv));
	snprintf(bad, sizeof(bad), "%s", tok);
	bad[strlen(bad) - 1] ^= 1;
	submit(a, bad, &an);
	ASSERT_EQ(an.calls, 3);
	ASSERT_EQ(an.rc, ALYX_E_UNAUTHORIZED);

	/* The right token: queued for the invoking thread, which runs it
	 * while it waits for its executor's answer. */
	submit(a, tok, &an);
	ASSERT_EQ(an.calls, 3);
	ASSERT_OK(pipe2(p, O_CLOEXEC | O_NONBLOCK));
	ASSERT_OK(pipe2(q, O_CLOEXEC | O_NONBLOCK));
	ASSERT_EQ(write(p[1], "{\"final\":1}\n", 12), 12);
	alyx__buf_init(&line, 1 << 20);
	ASSERT_EQ(alyx__fn_converse(inv, q[1], p[0], &line,
				    alyx__mono_ms() + 5000), ALYX__IO_OK);
	ASSERT_STR_EQ(line.data, "{\"final\":1}");
	ASSERT_EQ(an.calls, 4);
	ASSERT_EQ(an.rc, ALYX_OK);
	ASSERT_CONTAINS(an.body, "\"n\":42");

	/* Queued when the invocation ends: refused. */
	submit(a, tok, &an);
	ASSERT_EQ(an.calls, 4);
	alyx__fn_inv_end(inv);
	ASSERT_EQ(an.calls, 5);
	ASSERT_EQ(an.rc, ALYX_E_UNAUTHORIZED);
	ASSERT_CONTAINS(an.msg, "ended");

	/* Revoked: the token of a finished invocation. */
	submit(a, tok, &an);
	ASSERT_EQ(an.calls, 6);
	ASSERT_EQ(an.rc, ALYX_E_UNAUTHORIZED);

	/* Expired before its invocation ended. */
	alyx__free(tok);
	ASSERT_OK(alyx__fn_inv_begin(a, &d, 0, &inv, &err));
	submit(a, alyx__fn_inv_token(inv), &an);
	ASSERT_EQ(an.calls, 7);
	ASSERT_EQ(an.rc, ALYX_E_UNAUTHORIZED);
	alyx__fn_inv_end(inv);

	alyx__free(an.body);
	alyx__buf_free(&line);
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
	done(a);
}

/* Runs one request through the invocation's thread (this one): queued
 * over "HTTP", run while it waits for its executor's answer. */
static int run_one(alyx *a, alyx__fn_inv *inv, int route, const char *body,
		   answer *an)
{
	int p[2], q[2];
	alyx_buf line;

	alyx__fn_db_submit(a, alyx__fn_inv_token(inv), route, body,
			   strlen(body), on_answer, an);
	ASSERT_OK(pipe2(p, O_CLOEXEC | O_NONBLOCK));
	ASSERT_OK(pipe2(q, O_CLOEXEC | O_NONBLOCK));
	ASSERT_EQ(write(p[1], "{}\n", 3), 3);
	alyx__buf_init(&line, 1 << 20);
	ASSERT_EQ(alyx__fn_converse(inv, q[1], p[0], &line,
				    alyx__mono_ms() + 5000), ALYX__IO_OK);
	alyx__buf_free(&line);
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
	return an->rc;
}

static void *count_main(void *p)
{
	alyx *a = p;
	char *out = NULL;
	intptr_t n = -1;

	if (alyx_query_str(a, NULL, "posts", "total=true", &out) == ALYX_OK) {
		cJSON *o = cJSON_Parse(out);

		n = (intptr_t)cJSON_GetObjectItem(o, "total")->valuedouble;
		cJSON_Delete(o);
	}
	alyx_free(out);
	return (void *)n;
}

static int count_elsewhere(alyx *a)
{
	pthread_t th;
	void *n;

	ASSERT_OK(pthread_create(&th, NULL, count_main, a));
	ASSERT_OK(pthread_join(th, &n));
	return (int)(intptr_t)n;
}

#define P1 "00000000-0000-4000-8000-000000000001"

TEST(internal_api_refuses_bad_requests)
{
	static const struct {
		int route;
		const char *body;
		int rc;
		const char *msg;	/* in the message, when set */
	} cases[] = {
		{ALYX__FN_DB_QUERY, "[1]", ALYX_E_BADJSON},
		{ALYX__FN_DB_QUERY, "{\"id\":\"x\"}", ALYX_E_BADJSON},
		{ALYX__FN_DB_QUERY, "{\"collection\":\"nope\"}",
		 ALYX_E_NOTFOUND},
		{ALYX__FN_DB_QUERY, "{\"collection\":\"posts\",\"query\":5}",
		 ALYX_E_BADJSON},
		{ALYX__FN_DB_QUERY, "{\"collection\":\"posts\",\"id\":\"x\","
		 "\"expand\":\"a&b=1\"}", ALYX_E_BADQUERY},
		{ALYX__FN_DB_QUERY, "{\"sql\":\"DELETE FROM posts\"}",
		 ALYX_E_BADQUERY},
		{ALYX__FN_DB_EXEC, "{\"sql\":\"SELECT 1; SELECT 2\"}",
		 ALYX_E_BADQUERY},
		{ALYX__FN_DB_EXEC, "{\"sql\":\"PRAGMA foreign_keys=OFF\"}",
		 ALYX_E_BADQUERY},
		{ALYX__FN_DB_EXEC, "{\"sql\":\"ATTACH ':memory:' AS m\"}",
		 ALYX_E_BADQUERY},
		{ALYX__FN_DB_EXEC, "{\"sql\":\"COMMIT\"}", ALYX_E_BADQUERY},
		{ALYX__FN_DB_EXEC, "{\"sql\":\"CREATE TABLE t(x)\"}",
		 ALYX_E_BADQUERY},
		/* alyx's own tables: written by alyx (and its triggers)
		 * alone, in any spelling. */
		{ALYX__FN_DB_EXEC, "{\"sql\":\"INSERT INTO _alyx_changes"
		 "(collection,operation,doc_id,timestamp) VALUES "
		 "('posts','INSERT','x','t')\"}", ALYX_E_BADQUERY,
		 "one of alyx's own tables"},
		{ALYX__FN_DB_EXEC, "{\"sql\":\"DELETE FROM main._ALYX_CHANGES\"}",
		 ALYX_E_BADQUERY,
		 "one of alyx's own tables"},
		{ALYX__FN_DB_EXEC, "{\"sql\":\"UPDATE _alyx_migrations SET "
		 "version = version\"}", ALYX_E_BADQUERY,
		 "one of alyx's own tables"},
		{ALYX__FN_DB_EXEC, "{\"sql\":\"WITH x(n) AS (SELECT 1) "
		 "INSERT OR REPLACE INTO \\\"_alyx_changes\\\"(collection,"
		 "operation,doc_id,timestamp) SELECT 'p','INSERT','x','t' "
		 "FROM x\"}", ALYX_E_BADQUERY,
		 "one of alyx's own tables"},
		{ALYX__FN_DB_EXEC, "{\"sql\":\"SELECT ?\",\"params\":[]}",
		 ALYX_E_BADQUERY},
		{ALYX__FN_DB_EXEC, "{\"sql\":\"SELECT ?\",\"params\":5}",
		 ALYX_E_BADJSON},
		{ALYX__FN_DB_EXEC, "{\"op\":\"upsert\",\"collection\":\"posts\","
		 "\"id\":\"x\",\"data\":{}}", ALYX_E_BADJSON},
		{ALYX__FN_DB_EXEC, "{\"op\":\"create\",\"collection\":\"posts\","
		 "\"data\":[]}", ALYX_E_BADJSON},
		{ALYX__FN_DB_EXEC, "{\"op\":\"update\",\"collection\":\"posts\","
		 "\"data\":{}}", ALYX_E_BADJSON},
		{ALYX__FN_DB_EXEC, "{\"op\":\"update\",\"collection\":\"posts\","
		 "\"id\":\"nope\",\"data\":{\"views\":{\"$raw\":\"views+1\"}}}",
		 ALYX_E_NOTFOUND},
		{ALYX__FN_DB_EXEC, "{\"op\":\"create\",\"collection\":\"posts\","
		 "\"data\":{\"title\":\"t\"},\"tx\":\"tx_9\"}",
		 ALYX_E_NOTFOUND},
		{ALYX__FN_DB_TX, "{\"op\":\"commit\"}", ALYX_E_BADJSON},
		{ALYX__FN_DB_TX, "{\"op\":\"commit\",\"tx\":\"tx_1\"}",
		 ALYX_E_NOTFOUND},
		{ALYX__FN_DB_TX, "{\"op\":\"nest\"}", ALYX_E_BADJSON},
		{ALYX__FN_DB_TX, "{\"op\":", ALYX_E_BADJSON},
	};
	alyx *a = db_project();
	alyx__fn_def d = {.name = "t"};
	alyx__fn_inv *inv = NULL;
	alyx__err err = {0};
	answer an = {0};
	size_t i;

	ASSERT_OK(alyx__fn_inv_begin(a, &d, 60000, &inv, &err));
	for (i = 0; i < ALYX_ARRAY_LEN(cases); i++) {
		int rc = run_one(a, inv, cases[i].route, cases[i].body, &an);

		if (rc != cases[i].rc ||
		    (cases[i].msg && !strstr(an.msg, cases[i].msg)))
			TH_FAIL("%s: %d (%s), expected %d", cases[i].body, rc,
				an.msg, cases[i].rc);
	}
	/* Nothing was written; the writer is free. */
	ASSERT_EQ(count_posts(a), 0);
	/* The refusal names the table; reading it is allowed. */
	ASSERT_EQ(run_one(a, inv, ALYX__FN_DB_EXEC,
			  "{\"sql\":\"DELETE FROM _alyx_changes\"}", &an),
		  ALYX_E_BADQUERY);
	ASSERT_CONTAINS(an.msg, "_alyx_changes is one of alyx's own tables");
	ASSERT_OK(run_one(a, inv, ALYX__FN_DB_EXEC,
			  "{\"sql\":\"SELECT count(*) AS n FROM "
			  "_alyx_changes\"}", &an));
	ASSERT_CONTAINS(an.body, "\"n\":");
	/* A transaction: begin twice, a call outside it, commit. */
	ASSERT_OK(run_one(a, inv, ALYX__FN_DB_TX, "{\"op\":\"begin\"}", &an));
	ASSERT_CONTAINS(an.body, "\"tx\":\"tx_1\"");
	ASSERT_EQ(run_one(a, inv, ALYX__FN_DB_TX, "{\"op\":\"begin\"}", &an),
		  ALYX_E_MISUSE);
	ASSERT_EQ(run_one(a, inv, ALYX__FN_DB_QUERY,
			  "{\"collection\":\"posts\"}", &an), ALYX_E_MISUSE);
	ASSERT_OK(run_one(a, inv, ALYX__FN_DB_EXEC,
			  "{\"sql\":\"INSERT INTO posts(id,title,slug) VALUES "
			  "('" P1 "','t','s')\",\"tx\":\"tx_1\"}", &an));
	ASSERT_CONTAINS(an.body, "\"changes\":1");
	/* Another thread does not see it before the commit (this one, in
	 * the transaction, does). */
	ASSERT_EQ(count_elsewhere(a), 0);
	ASSERT_EQ(count_posts(a), 1);
	ASSERT_OK(run_one(a, inv, ALYX__FN_DB_TX,
			  "{\"op\":\"commit\",\"tx\":\"tx_1\"}", &an));
	ASSERT_EQ(count_posts(a), 1);
	/* A get with a projection. */
	ASSERT_OK(run_one(a, inv, ALYX__FN_DB_QUERY,
			  "{\"collection\":\"posts\",\"id\":\"" P1 "\","
			  "\"fields\":[\"id\",\"title\"]}", &an));
	ASSERT_CONTAINS(an.body, "\"title\":\"t\"");
	ASSERT(!strstr(an.body, "slug"));
	ASSERT_OK(run_one(a, inv, ALYX__FN_DB_QUERY,
			  "{\"collection\":\"posts\",\"id\":\"" P1 "\","
			  "\"fields\":\"slug\"}", &an));
	ASSERT_CONTAINS(an.body, "\"slug\":\"s\"");
	alyx__fn_inv_end(inv);
	alyx__free(an.body);
	done(a);
}

TEST_MAIN()
