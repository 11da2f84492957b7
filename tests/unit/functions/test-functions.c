/*
 * test-functions.c - functions end to end through alyx_invoke(): the
 * real executors (runtimes/node, runtimes/python) in warm pools, input
 * validation, failures (throw, endless loop, endless allocation, exit,
 * huge output), the queue bound, hot reload and the bubblewrap sandbox.
 * A runtime whose interpreter is missing is skipped with the reason.
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fn-test.h"

#include "auth/auth.h"
#include "functions/functions.h"
#include "util/util.h"

/* ---- the seed's createPost, both runtimes ---- */

static const char create_post_js[] =
	"import { defineFunction } from \"@alyx/functions\";\n"
	"import { slugify } from \"./_shared/slug.js\";\n"
	"export default defineFunction({\n"
	"  input: {\n"
	"    title: { type: \"string\", required: true, maxLength: 200 },\n"
	"    content: { type: \"string\", required: true },\n"
	"    tags: { type: \"array\", items: \"string\", optional: true },\n"
	"  },\n"
	"  output: { id: { type: \"string\" }, slug: { type: \"string\" } },\n"
	"  async handler(input, ctx) {\n"
	"    if (!ctx.auth) throw new Error(\"Authentication required\");\n"
	"    const slug = slugify(input.title);\n"
	"    ctx.log.info(\"Post created\", { authorId: ctx.auth.id });\n"
	"    console.log(\"console goes to logs\");\n"
	"    process.stdout.write(\"stray stdout is not the protocol\\n\");\n"
	"    return { id: \"post_1\", slug, author: ctx.auth.id,\n"
	"             tags: input.tags || [], key: ctx.env.API_KEY };\n"
	"  },\n"
	"});\n";

static const char slug_js[] =
	"export function slugify(t) {\n"
	"  return t.toLowerCase().replace(/[^a-z0-9]+/g, \"-\")\n"
	"          .replace(/^-|-$/g, \"\");\n"
	"}\n";

static const char create_post_py[] =
	"import sys\n"
	"from alyx_functions import define_function\n"
	"from _shared.slug import slugify\n"
	"\n"
	"@define_function(input={\n"
	"    \"title\": {\"type\": \"string\", \"required\": True,\n"
	"              \"maxLength\": 200},\n"
	"    \"content\": {\"type\": \"string\", \"required\": True},\n"
	"    \"tags\": {\"type\": \"array\", \"items\": \"string\",\n"
	"             \"optional\": True},\n"
	"})\n"
	"async def handler(input, ctx):\n"
	"    if not ctx.auth:\n"
	"        raise Exception(\"Authentication required\")\n"
	"    ctx.log.info(\"Post created\", {\"authorId\": ctx.auth[\"id\"]})\n"
	"    print(\"console goes to logs\")\n"
	"    sys.__stdout__.write(\"stray stdout is not the protocol\\n\")\n"
	"    sys.__stdout__.flush()\n"
	"    return {\"id\": \"post_1\", \"slug\": slugify(input[\"title\"]),\n"
	"            \"author\": ctx.auth[\"id\"],\n"
	"            \"tags\": input.get(\"tags\") or [],\n"
	"            \"key\": ctx.env.get(\"API_KEY\")}\n";

static const char slug_py[] =
	"import re\n"
	"def slugify(t):\n"
	"    return re.sub(r\"[^a-z0-9]+\", \"-\", t.lower()).strip(\"-\")\n";

static void create_post(const char *name)
{
	alyx *a = project(NULL);
	struct alyx_ctx user = {.user_id = "user_123",
				.email = "user@example.com", .role = "user",
				.verified = true};
	cJSON *res, *out, *logs, *l;
	bool saw_info = false, saw_console = false;
	char manifest[256];

	setenv("ALYX_TEST_FN_KEY", "sk-test", 1);
	spit("functions/createPost.js", create_post_js);
	spit("functions/_shared/slug.js", slug_js);
	spit("functions/createPostPy.py", create_post_py);
	spit("functions/_shared/__init__.py", "");
	spit("functions/_shared/slug.py", slug_py);
	snprintf(manifest, sizeof(manifest),
		 "name: %s\nenv:\n  API_KEY: ${ALYX_TEST_FN_KEY}\n"
		 "  OTHER: ${ALYX_TEST_UNSET:-dflt}\n", name);
	spit(!strcmp(name, "createPost") ? "functions/createPost.yaml" :
	     "functions/createPostPy.yaml", manifest);

	ASSERT_OK(call(a, &user, name,
		       "{\"title\":\"Hello World!\",\n\"content\":\"My first "
		       "post\",\"tags\":[\"a\",\"b\"]}", &res));
	out = output(res);
	ASSERT_STR_EQ(str(out, "slug"), "hello-world");
	ASSERT_STR_EQ(str(out, "author"), "user_123");
	ASSERT_STR_EQ(str(out, "key"), "sk-test");
	ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(out, "tags")), 2);
	ASSERT(cJSON_IsNumber(cJSON_GetObjectItem(res, "duration_ms")));
	ASSERT(cJSON_IsString(cJSON_GetObjectItem(res, "request_id")));
	logs = cJSON_GetObjectItem(res, "logs");
	cJSON_ArrayForEach(l, logs) {
		cJSON *data = cJSON_GetObjectItem(l, "data");

		if (!strcmp(str(l, "message"), "Post created")) {
			ASSERT_STR_EQ(str(l, "level"), "info");
			ASSERT_STR_EQ(str(data, "authorId"), "user_123");
			saw_info = true;
		}
		if (!strcmp(str(l, "message"), "console goes to logs"))
			saw_console = true;
	}
	ASSERT(saw_info);
	ASSERT(saw_console);
	cJSON_Delete(res);

	/* No auth: the function's own error. */
	ASSERT_EQ(call(a, NULL, name, "{\"title\":\"x\",\"content\":\"y\"}",
		       &res), ALYX_E_FUNCTION);
	ASSERT_CONTAINS(alyx_errmsg(a), "Authentication required");
	details_code(a, "FUNCTION_ERROR");

	/* Warm: the same executor answers many calls. */
	for (int i = 0; i < 20; i++) {
		ASSERT_OK(call(a, &user, name,
			       "{\"title\":\"T\",\"content\":\"c\"}", &res));
		cJSON_Delete(res);
	}
	{
		char *j = NULL;
		cJSON *o, *p;

		ASSERT_OK(alyx_functions_json(a, &j));
		o = cJSON_Parse(j);
		p = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "pools"), 0);
		ASSERT_EQ(cJSON_GetObjectItem(p, "started")->valueint, 1);
		cJSON_Delete(o);
		alyx_free(j);
	}
	done(a);
}

TEST(node_create_post)
{
	NEED("node");
	create_post("createPost");
}

TEST(python_create_post)
{
	NEED("python3");
	create_post("createPostPy");
}

/* ---- validation, lookup, listing ---- */

static void validation(const char *file, const char *code)
{
	alyx *a = project(NULL);
	cJSON *res, *d, *f;
	char *names = NULL;

	spit(file, code);
	ASSERT_EQ(call(a, NULL, "v", "{\"title\":5,\"n\":0,\"tags\":[\"a\",1],"
		       "\"long\":\"abcdef\"}", &res), ALYX_E_VALIDATION);
	d = cJSON_Parse(alyx_errdetails(a));
	ASSERT(d != NULL);
	cJSON_ArrayForEach(f, cJSON_GetObjectItem(d, "fields")) {
		char *s = alyx__asprintf("%s%s:%s ", names ? names : "",
					 str(f, "field"), str(f, "code"));

		alyx__free(names);
		names = s;
	}
	ASSERT_STR_EQ(names, "title:type content:required n:min "
		      "tags[1]:type long:max_length ");
	alyx__free(names);
	cJSON_Delete(d);

	ASSERT_EQ(call(a, NULL, "v", "[1]", &res), ALYX_E_BADJSON);
	ASSERT_EQ(call(a, NULL, "v", "{\"title\":", &res), ALYX_E_BADJSON);
	ASSERT_EQ(call(a, NULL, "nope", "{}", &res), ALYX_E_NOTFOUND);
	ASSERT_OK(call(a, NULL, "v", "{\"title\":\"t\",\"content\":\"c\","
		       "\"n\":3}", &res));
	ASSERT_EQ(output(res)->valueint, 3);
	cJSON_Delete(res);
	done(a);
}

TEST(node_validation)
{
	NEED("node");
	validation("functions/v.mjs",
		   "import { defineFunction } from \"@alyx/functions\";\n"
		   "export default defineFunction({\n"
		   "  input: { title: { type: \"string\", required: true },\n"
		   "    content: { type: \"string\", required: true },\n"
		   "    n: { type: \"int\", min: 1, max: 9 },\n"
		   "    tags: { type: \"array\", items: \"string\" },\n"
		   "    long: { type: \"string\", maxLength: 3 } },\n"
		   "  handler: (input) => input.n,\n"
		   "});\n");
}

TEST(python_validation)
{
	NEED("python3");
	validation("functions/v.py",
		   "from alyx_functions import define_function\n"
		   "@define_function(input={\n"
		   "  \"title\": {\"type\": \"string\", \"required\": True},\n"
		   "  \"content\": {\"type\": \"string\", \"required\": True},\n"
		   "  \"n\": {\"type\": \"int\", \"min\": 1, \"max\": 9},\n"
		   "  \"tags\": {\"type\": \"array\", \"items\": \"string\"},\n"
		   "  \"long\": {\"type\": \"string\", \"maxLength\": 3}})\n"
		   "def handler(input, ctx):\n"
		   "    return input[\"n\"]\n");
}

TEST(listing_and_manifests)
{
	alyx *a = project(NULL);
	char *j = NULL;
	cJSON *o, *fns, *f, *res;
	int n = 0;

	spit("functions/a.js", "export default 1;\n");
	spit("functions/b.py", "x = 1\n");
	spit("functions/b.yaml", "timeout: 500ms\nmemory: 64mb\n"
	     "network: true\n");
	spit("functions/bad.js", "export default 1;\n");
	spit("functions/bad.yaml", "timeout: soon\n");
	spit("functions/wrong.py", "x = 1\n");
	spit("functions/wrong.yaml", "runtime: node\n");
	spit("functions/_shared/helper.js", "export const x = 1;\n");
	spit("functions/notes.txt", "not a function\n");
	ASSERT_OK(alyx_functions_json(a, &j));
	o = cJSON_Parse(j);
	ASSERT(o != NULL);
	ASSERT_STR_EQ(str(o, "runner"), "process");
	fns = cJSON_GetObjectItem(o, "functions");
	cJSON_ArrayForEach(f, fns) {
		const char *name = str(f, "name");

		n++;
		if (!strcmp(name, "a")) {
			ASSERT_STR_EQ(str(f, "runtime"), "node");
			ASSERT_STR_EQ(str(f, "status"), "ready");
			ASSERT_EQ(cJSON_GetObjectItem(f, "timeout_ms")->valueint,
				  10000);
		} else if (!strcmp(name, "b")) {
			ASSERT_STR_EQ(str(f, "runtime"), "python");
			ASSERT_EQ(cJSON_GetObjectItem(f, "timeout_ms")->valueint,
				  500);
			ASSERT_EQ(cJSON_GetObjectItem(f, "memory")->valuedouble,
				  64.0 * 1024 * 1024);
			ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(f, "network")));
		} else {
			ASSERT_STR_EQ(str(f, "status"), "error");
			ASSERT_CONTAINS(str(f, "error"), !strcmp(name, "bad") ?
					"timeout" : "does not match");
		}
	}
	ASSERT_EQ(n, 4);
	cJSON_Delete(o);
	alyx_free(j);
	ASSERT_EQ(call(a, NULL, "bad", "{}", &res), ALYX_E_CONFIG);
	ASSERT_CONTAINS(alyx_errmsg(a), "timeout");
	done(a);
}

/* timeout_ms of function `name` in the listing; -1 when not listed. */
static int listed_timeout(alyx *a, const char *name)
{
	char *j = NULL;
	cJSON *o, *f;
	int t = -1;

	ASSERT_OK(alyx_functions_json(a, &j));
	o = cJSON_Parse(j);
	cJSON_ArrayForEach(f, cJSON_GetObjectItem(o, "functions"))
		if (!strcmp(str(f, "name"), name))
			t = cJSON_GetObjectItem(f, "timeout_ms")->valueint;
	cJSON_Delete(o);
	alyx_free(j);
	return t;
}

TEST(directory_changes_are_seen)
{
	alyx *a = project(NULL);
	char path[600];

	ASSERT_EQ(listed_timeout(a, "late"), -1);
	spit("functions/late.js", "export default { handler: () => 1 };\n");
	ASSERT_EQ(listed_timeout(a, "late"), 10000);	/* new file: at once */
	spit("functions/late.yaml", "timeout: 2s\n");
	ASSERT_EQ(listed_timeout(a, "late"), 2000);
	spit("functions/late.yaml", "timeout: 3s\n");	/* same inode */
	usleep((ALYX__FN_RESCAN_MS + 200) * 1000);
	ASSERT_EQ(listed_timeout(a, "late"), 3000);
	snprintf(path, sizeof(path), "%s/functions/late.js", proj);
	ASSERT_EQ(unlink(path), 0);
	ASSERT_EQ(listed_timeout(a, "late"), -1);
	done(a);
}

/* ---- failures ---- */

TEST(node_throws_with_code)
{
	alyx *a;
	cJSON *res, *d;

	NEED("node");
	a = project(NULL);
	spit("functions/t.js",
	     "import { defineFunction, FunctionError } from "
	     "\"@alyx/functions\";\n"
	     "export default defineFunction({ handler(input, ctx) {\n"
	     "  ctx.log.warn(\"about to fail\");\n"
	     "  if (input.plain) throw new Error(\"plain failure\");\n"
	     "  throw new FunctionError(\"NOT_ALLOWED\", \"no posts today\",\n"
	     "                          { day: \"sunday\" });\n"
	     "}});\n");
	ASSERT_EQ(call(a, NULL, "t", "{}", &res), ALYX_E_FUNCTION);
	ASSERT_STR_EQ(alyx_errname(alyx_errcode(a)), "FUNCTION_ERROR");
	ASSERT_CONTAINS(alyx_errmsg(a), "no posts today");
	d = cJSON_Parse(alyx_errdetails(a));
	ASSERT_STR_EQ(str(d, "code"), "NOT_ALLOWED");
	ASSERT_STR_EQ(str(cJSON_GetObjectItem(d, "details"), "day"), "sunday");
	ASSERT_STR_EQ(str(cJSON_GetArrayItem(cJSON_GetObjectItem(d, "logs"),
					     0), "message"), "about to fail");
	cJSON_Delete(d);
	ASSERT_EQ(call(a, NULL, "t", "{\"plain\":true}", &res),
		  ALYX_E_FUNCTION);
	details_code(a, "FUNCTION_ERROR");
	done(a);
}

TEST(python_throws_with_code)
{
	alyx *a;
	cJSON *res;

	NEED("python3");
	a = project(NULL);
	spit("functions/t.py",
	     "from alyx_functions import define_function, FunctionError\n"
	     "@define_function()\n"
	     "def handler(input, ctx):\n"
	     "    if input.get(\"plain\"):\n"
	     "        raise ValueError(\"plain failure\")\n"
	     "    raise FunctionError(\"NOT_ALLOWED\", \"no posts today\")\n");
	ASSERT_EQ(call(a, NULL, "t", "{}", &res), ALYX_E_FUNCTION);
	details_code(a, "NOT_ALLOWED");
	ASSERT_EQ(call(a, NULL, "t", "{\"plain\":true}", &res),
		  ALYX_E_FUNCTION);
	ASSERT_CONTAINS(alyx_errmsg(a), "plain failure");
	done(a);
}

/* The pool's "replaced" counter. */
static int replaced(alyx *a)
{
	char *j = NULL;
	cJSON *o, *p;
	int n = 0;

	ASSERT_OK(alyx_functions_json(a, &j));
	o = cJSON_Parse(j);
	cJSON_ArrayForEach(p, cJSON_GetObjectItem(o, "pools"))
		n += cJSON_GetObjectItem(p, "replaced")->valueint;
	cJSON_Delete(o);
	alyx_free(j);
	return n;
}

/* Calls `bad` (expecting rc, and the details code and a part of the
 * message when given), then `ok` must still answer, on a fresh
 * executor. */
static void broken_then_fine(alyx *a, const char *bad, const char *input,
			     int rc, const char *code, const char *msg,
			     const char *ok)
{
	cJSON *res;
	int before = replaced(a);

	ASSERT_EQ(call(a, NULL, bad, input, &res), rc);
	if (code)
		details_code(a, code);
	if (msg)
		ASSERT_CONTAINS(alyx_errmsg(a), msg);
	ASSERT_EQ(replaced(a), before + 1);
	ASSERT_OK(call(a, NULL, ok, "{}", &res));
	ASSERT_STR_EQ(output(res)->valuestring, "fine");
	cJSON_Delete(res);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

TEST(node_timeout_replaces_executor)
{
	alyx *a;
	cJSON *res;
	int64_t t0;

	NEED("node");
	a = project(NULL);
	spit("functions/ok.js", "export default { handler: () => \"fine\" };\n");
	spit("functions/spin.js", "export default { handler() { for (;;); } };\n");
	spit("functions/spin.yaml", "timeout: 700ms\n");
	ASSERT_OK(call(a, NULL, "ok", "{}", &res));	/* warm */
	cJSON_Delete(res);
	t0 = now_ms();
	broken_then_fine(a, "spin", "{}", ALYX_E_TIMEOUT, NULL,
			 "longer than its timeout of 700 ms", "ok");
	ASSERT(now_ms() - t0 < 5000);
	done(a);
}

TEST(python_timeout_replaces_executor)
{
	alyx *a;

	NEED("python3");
	a = project(NULL);
	spit("functions/ok.py", "from alyx_functions import define_function\n"
	     "@define_function()\ndef handler(i, c):\n    return \"fine\"\n");
	spit("functions/spin.py", "from alyx_functions import define_function\n"
	     "@define_function()\ndef handler(i, c):\n    while True: pass\n");
	spit("functions/spin.yaml", "timeout: 700ms\n");
	broken_then_fine(a, "spin", "{}", ALYX_E_TIMEOUT, NULL, NULL, "ok");
	done(a);
}

TEST(node_memory_limit)
{
	alyx *a;

	NEED("node");
	a = project(NULL);
	spit("functions/ok.js", "export default { handler: () => \"fine\" };\n");
	spit("functions/hog.js", "export default { handler() {\n"
	     "  const keep = [];\n"
	     "  for (;;) keep.push(new Array(1e5).fill({ x: 1 }));\n"
	     "} };\n");
	spit("functions/hog.yaml", "memory: 64mb\ntimeout: 20s\n");
	broken_then_fine(a, "hog", "{}", ALYX_E_FUNCTION, "EXECUTOR_EXITED",
			 "memory limit of 64 MiB", "ok");
	done(a);
}

TEST(python_memory_limit)
{
	alyx *a;

	NEED("python3");
	a = project(NULL);
	spit("functions/ok.py", "from alyx_functions import define_function\n"
	     "@define_function()\ndef handler(i, c):\n    return \"fine\"\n");
	spit("functions/hog.py", "from alyx_functions import define_function\n"
	     "@define_function()\ndef handler(i, c):\n"
	     "    keep = []\n"
	     "    while True: keep.append(bytearray(1 << 20))\n");
	spit("functions/hog.yaml", "memory: 128mb\ntimeout: 20s\n");
	broken_then_fine(a, "hog", "{}", ALYX_E_FUNCTION, "OUT_OF_MEMORY",
			 NULL, "ok");
	done(a);
}

TEST(exit_replaces_executor)
{
	alyx *a = project(NULL);

	spit("functions/ok.js", "export default { handler: () => \"fine\" };\n");
	spit("functions/quit.js", "export default { handler() {\n"
	     "  process.exit(3); } };\n");
	spit("functions/quitpy.py", "import sys\n"
	     "from alyx_functions import define_function\n"
	     "@define_function()\ndef handler(i, c):\n    sys.exit(3)\n");
	if (have("node")) {
		broken_then_fine(a, "quit", "{}", ALYX_E_FUNCTION,
				 "EXECUTOR_EXITED", "exited with status 3",
				 "ok");
	} else {
		printf("  skip part: node is not installed\n");
	}
	if (have("python3") && have("node")) {
		broken_then_fine(a, "quitpy", "{}", ALYX_E_FUNCTION,
				 "EXECUTOR_EXITED", "exited with status 3",
				 "ok");
	} else {
		printf("  skip part: python3 or node is not installed\n");
	}
	done(a);
}

TEST(huge_output)
{
	alyx *a;
	cJSON *res;

	NEED("node");
	a = project(NULL);
	spit("functions/ok.js", "export default { handler: () => \"fine\" };\n");
	/* The executor refuses the response itself... */
	spit("functions/big.js", "export default { handler() {\n"
	     "  return \"x\".repeat(5e6); } };\n");
	ASSERT_EQ(call(a, NULL, "big", "{}", &res), ALYX_E_TOOBIG);
	details_code(a, "OUTPUT_TOO_LARGE");
	ASSERT_EQ(replaced(a), 0);
	/* ...and bytes pushed straight at the protocol channel are capped
	 * by libalyx, which stops that executor. */
	spit("functions/flood.js", "import fs from \"node:fs\";\n"
	     "export default { handler() {\n"
	     "  const b = Buffer.alloc(1 << 20, 120);\n"
	     "  for (let i = 0; i < 8; i++) fs.writeSync(3, b);\n"
	     "  return 1; } };\n");
	broken_then_fine(a, "flood", "{}", ALYX_E_TOOBIG, NULL,
			 "its executor was stopped", "ok");
	done(a);
}

/* ---- concurrency ---- */

struct racer {
	alyx *a;
	pthread_barrier_t *bar;
	int rc;
};

static void *race(void *p)
{
	struct racer *r = p;
	char *out = NULL;

	pthread_barrier_wait(r->bar);
	r->rc = alyx_invoke(r->a, NULL, "slow", "{}", 2, &out);
	alyx_free(out);
	return NULL;
}

TEST(queue_bound_then_unavailable)
{
	enum { N = 1 + ALYX__FN_QUEUE_FACTOR + 2 };
	alyx *a;
	pthread_t th[N];
	struct racer r[N];
	pthread_barrier_t bar;
	cJSON *res;
	int ok = 0, unavailable = 0, i;

	NEED("python3");
	a = project("functions:\n"
		    "  python: {min_warm: 1, max_instances: 1, "
		    "exec_timeout: 20s}\n");
	spit("functions/slow.py", "import time\n"
	     "from alyx_functions import define_function\n"
	     "@define_function()\ndef handler(i, c):\n"
	     "    time.sleep(0.4)\n    return 1\n");
	ASSERT_OK(call(a, NULL, "slow", "{}", &res));	/* warm */
	cJSON_Delete(res);
	pthread_barrier_init(&bar, NULL, N);
	for (i = 0; i < N; i++) {
		r[i] = (struct racer){a, &bar, -1};
		ASSERT_EQ(pthread_create(&th[i], NULL, race, &r[i]), 0);
	}
	for (i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		ok += r[i].rc == ALYX_OK;
		unavailable += r[i].rc == ALYX_E_UNAVAILABLE;
	}
	pthread_barrier_destroy(&bar);
	/* One runs, QUEUE_FACTOR x max_instances wait their turn, the
	 * rest are refused at once. */
	ASSERT_EQ(ok, 1 + ALYX__FN_QUEUE_FACTOR);
	ASSERT_EQ(unavailable, 2);
	done(a);
}

/* An executor started by a thread that then exits keeps serving. */
static void *call_once(void *p)
{
	struct racer *r = p;
	char *out = NULL;

	r->rc = alyx_invoke(r->a, NULL, "slow", "{}", 2, &out);
	alyx_free(out);
	return NULL;
}

TEST(executor_outlives_spawning_thread)
{
	alyx *a;
	pthread_t th;
	struct racer r;
	cJSON *res;

	NEED("python3");
	a = project("functions:\n"
		    "  python: {min_warm: 0, max_instances: 1}\n");
	spit("functions/slow.py", "from alyx_functions import define_function\n"
	     "@define_function()\ndef handler(i, c):\n    return 1\n");
	r = (struct racer){a, NULL, -1};
	ASSERT_EQ(pthread_create(&th, NULL, call_once, &r), 0);
	pthread_join(th, NULL);
	ASSERT_OK(r.rc);
	usleep(100000);
	ASSERT_OK(call(a, NULL, "slow", "{}", &res));
	cJSON_Delete(res);
	ASSERT_EQ(replaced(a), 0);
	done(a);
}

/* The pool's "started" counter and live instances. */
static void pool_counts(alyx *a, int *started, int *instances)
{
	char *j = NULL;
	cJSON *o, *p;

	ASSERT_OK(alyx_functions_json(a, &j));
	o = cJSON_Parse(j);
	p = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "pools"), 0);
	ASSERT(p != NULL);
	*started = cJSON_GetObjectItem(p, "started")->valueint;
	*instances = cJSON_GetObjectItem(p, "instances")->valueint;
	cJSON_Delete(o);
	alyx_free(j);
}

static void idle(int min_warm, int started_after)
{
	char yaml[200];
	alyx *a;
	cJSON *res;
	int started, instances;

	snprintf(yaml, sizeof(yaml), "functions:\n  python: {min_warm: %d, "
		 "max_instances: 2, idle_timeout: 200ms}\n", min_warm);
	a = project(yaml);
	spit("functions/f.py", "from alyx_functions import define_function\n"
	     "@define_function()\ndef handler(i, c):\n    return 1\n");
	ASSERT_OK(call(a, NULL, "f", "{}", &res));
	cJSON_Delete(res);
	pool_counts(a, &started, &instances);
	ASSERT_EQ(started, 1);
	ASSERT_EQ(instances, 1);
	usleep(400000);
	ASSERT_OK(call(a, NULL, "f", "{}", &res));
	cJSON_Delete(res);
	pool_counts(a, &started, &instances);
	ASSERT_EQ(started, started_after);
	ASSERT_EQ(instances, 1);
	done(a);
}

TEST(idle_executors_beyond_min_warm_are_stopped)
{
	NEED("python3");
	idle(0, 2);	/* stopped when idle, a new one for the next call */
	idle(1, 1);	/* min_warm keeps it */
}

/* An executor that dies while idle: the next call is not lost. */
TEST(idle_executor_death_is_retried)
{
	alyx *a;
	cJSON *res;

	NEED("node");
	a = project("functions:\n"
		    "  node: {min_warm: 0, max_instances: 1}\n");
	spit("functions/f.js", "export default { handler(input) {\n"
	     "  if (input.die) setTimeout(() => process.exit(0), 20);\n"
	     "  return 1; } };\n");
	ASSERT_OK(call(a, NULL, "f", "{\"die\":true}", &res));
	cJSON_Delete(res);
	usleep(300000);
	ASSERT_OK(call(a, NULL, "f", "{}", &res));
	ASSERT_EQ(output(res)->valueint, 1);
	cJSON_Delete(res);
	ASSERT_EQ(replaced(a), 1);
	done(a);
}

/* ---- hot reload ---- */

static void reload(const char *file, const char *v1, const char *v2)
{
	alyx *a = project(NULL);
	cJSON *res;

	spit(file, v1);
	ASSERT_OK(call(a, NULL, "r", "{}", &res));
	ASSERT_EQ(output(res)->valueint, 1);
	cJSON_Delete(res);
	ASSERT_OK(call(a, NULL, "r", "{}", &res));
	ASSERT_EQ(output(res)->valueint, 1);
	cJSON_Delete(res);
	spit(file, v2);
	ASSERT_OK(call(a, NULL, "r", "{}", &res));
	ASSERT_EQ(output(res)->valueint, 22);
	cJSON_Delete(res);
	ASSERT_EQ(replaced(a), 0);
	done(a);
}

TEST(node_hot_reload)
{
	NEED("node");
	reload("functions/r.js", "export default { handler: () => 1 };\n",
	       "export default {\n  handler: () => 22,\n};\n");
}

TEST(python_hot_reload)
{
	NEED("python3");
	reload("functions/r.py", "from alyx_functions import define_function\n"
	       "@define_function()\ndef handler(i, c):\n    return 1\n",
	       "from alyx_functions import define_function\n"
	       "@define_function()\ndef handler(i, c):\n    return 22 # v2\n");
}

/* An edited _shared helper: the call in flight finishes on the old code,
 * the next one runs on a fresh executor with the new helper. */
struct slow_call {
	alyx *a;
	int rc;
	int v;
};

static void *slow_call_main(void *p)
{
	struct slow_call *sc = p;
	cJSON *res;

	sc->rc = call(sc->a, NULL, "s", "{\"ms\":600}", &res);
	if (sc->rc == ALYX_OK)
		sc->v = output(res)->valueint;
	cJSON_Delete(res);
	return NULL;
}

static void shared_reload(const char *helper, const char *v1, const char *v2,
			  const char *fn_file, const char *fn_code)
{
	alyx *a = project(NULL);
	struct slow_call sc = {0};
	pthread_t th;
	cJSON *res;

	spit(helper, v1);
	spit(fn_file, fn_code);
	ASSERT_OK(call(a, NULL, "s", "{\"ms\":0}", &res));
	ASSERT_EQ(output(res)->valueint, 1);
	cJSON_Delete(res);
	sc.a = a;
	ASSERT_OK(pthread_create(&th, NULL, slow_call_main, &sc));
	usleep(200000);
	spit(helper, v2);
	spit("functions/touch.txt", "x");	/* the directory changed */
	ASSERT_OK(pthread_join(th, NULL));
	ASSERT_OK(sc.rc);
	ASSERT_EQ(sc.v, 1);
	ASSERT_OK(call(a, NULL, "s", "{\"ms\":0}", &res));
	ASSERT_EQ(output(res)->valueint, 22);
	cJSON_Delete(res);
	ASSERT_EQ(replaced(a), 1);
	done(a);
}

TEST(node_shared_helper_reload)
{
	NEED("node");
	shared_reload("functions/_shared/v.js", "export const v = 1;\n",
		      "export const v = 22;\n", "functions/s.js",
		      "import { v } from \"./_shared/v.js\";\n"
		      "export default { async handler(input) {\n"
		      "  await new Promise((r) => setTimeout(r, input.ms));\n"
		      "  return v; } };\n");
}

TEST(python_shared_helper_reload)
{
	NEED("python3");
	shared_reload("functions/_shared/v.py", "v = 1\n", "v = 22\n",
		      "functions/s.py",
		      "import time\nfrom _shared.v import v\n"
		      "from alyx_functions import define_function\n"
		      "@define_function()\ndef handler(i, c):\n"
		      "    time.sleep(i['ms'] / 1000)\n    return v\n");
}

/* ---- sandbox ---- */

static const char escape_js[] =
	"import fs from \"node:fs\";\n"
	"import net from \"node:net\";\n"
	"function tryRead(p) {\n"
	"  try { fs.readFileSync(p); return \"read\"; }\n"
	"  catch (e) { return e.code; } }\n"
	"function tryWrite(p) {\n"
	"  try { fs.writeFileSync(p, \"x\"); return \"wrote\"; }\n"
	"  catch (e) { return e.code; } }\n"
	"function tryConnect(port) {\n"
	"  return new Promise((res) => {\n"
	"    const s = net.connect(port, \"127.0.0.1\");\n"
	"    s.on(\"connect\", () => { s.destroy(); res(\"connected\"); });\n"
	"    s.on(\"error\", (e) => res(e.code)); }); }\n"
	"export default { async handler(input) {\n"
	"  return { secret: tryRead(input.secret),\n"
	"           shadow: tryRead(\"/etc/shadow\"),\n"
	"           own: tryRead(input.own),\n"
	"           write: tryWrite(input.own),\n"
	"           tmp: tryWrite(\"/tmp/scratch\"),\n"
	"           net: await tryConnect(input.port) }; } };\n";

static const char escape_py[] =
	"import socket\n"
	"from alyx_functions import define_function\n"
	"def try_read(p):\n"
	"    try:\n"
	"        open(p, 'rb').read()\n"
	"        return 'read'\n"
	"    except OSError as e:\n"
	"        return type(e).__name__\n"
	"def try_connect(port):\n"
	"    try:\n"
	"        socket.create_connection(('127.0.0.1', port), 2).close()\n"
	"        return 'connected'\n"
	"    except OSError as e:\n"
	"        return type(e).__name__\n"
	"@define_function()\n"
	"def handler(i, c):\n"
	"    return {'secret': try_read(i['secret']),\n"
	"            'own': try_read(i['own']),\n"
	"            'net': try_connect(i['port'])}\n";

TEST(sandbox_refuses_escapes)
{
	char stmpl[] = "/tmp/alyx-secret-XXXXXX", secret[300], input[700];
	char own[300], cmd[400];
	struct sockaddr_in sa = {0};
	socklen_t sl = sizeof(sa);
	int lfd;
	alyx *a;
	cJSON *res, *o;

	if (!have("bwrap"))
		SKIP("bwrap is not installed (functions run unsandboxed)");
	NEED("node");
	a = project(NULL);
	ASSERT(mkdtemp(stmpl) != NULL);
	snprintf(secret, sizeof(secret), "%s/secret.txt", stmpl);
	{
		FILE *f = fopen(secret, "w");

		ASSERT(f != NULL);
		fputs("top secret\n", f);
		fclose(f);
	}
	snprintf(own, sizeof(own), "%s/functions/escape.js", proj);
	spit("functions/escape.js", escape_js);
	spit("functions/netok.js", escape_js);
	spit("functions/netok.yaml", "network: true\n");
	spit("functions/escapepy.py", escape_py);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ASSERT_EQ(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ASSERT_EQ(listen(lfd, 8), 0);
	ASSERT_EQ(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
	snprintf(input, sizeof(input),
		 "{\"secret\":\"%s\",\"own\":\"%s\",\"port\":%d}", secret, own,
		 ntohs(sa.sin_port));

	ASSERT_OK(call(a, NULL, "escape", input, &res));
	o = output(res);
	ASSERT_STR_EQ(str(o, "secret"), "ENOENT");
	ASSERT_STR_EQ(str(o, "shadow"), "ENOENT");
	ASSERT_STR_EQ(str(o, "own"), "read");	/* its own code: visible */
	ASSERT_STR_EQ(str(o, "write"), "EROFS");	/* read-only */
	ASSERT_STR_EQ(str(o, "tmp"), "wrote");	/* private /tmp */
	ASSERT(strcmp(str(o, "net"), "connected") != 0);
	cJSON_Delete(res);

	/* network: true in the manifest: the host's loopback is reachable. */
	ASSERT_OK(call(a, NULL, "netok", input, &res));
	ASSERT_STR_EQ(str(output(res), "net"), "connected");
	ASSERT_STR_EQ(str(output(res), "secret"), "ENOENT");
	cJSON_Delete(res);

	if (have("python3")) {
		ASSERT_OK(call(a, NULL, "escapepy", input, &res));
		o = output(res);
		ASSERT_STR_EQ(str(o, "secret"), "FileNotFoundError");
		ASSERT_STR_EQ(str(o, "own"), "read");
		ASSERT(strcmp(str(o, "net"), "connected") != 0);
		cJSON_Delete(res);
	}
	close(lfd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", stmpl);
	ASSERT_EQ(system(cmd), 0);
	done(a);
}

TEST_MAIN()
