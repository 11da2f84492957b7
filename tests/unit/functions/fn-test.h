/*
 * fn-test.h - helpers of the functions tests: a scratch project with a
 * functions/ directory, files written into it, invocations parsed.
 */
#ifndef ALYX_FN_TEST_H
#define ALYX_FN_TEST_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alyx.h"
#include "harness.h"

static char proj[256];

static void spit(const char *rel, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", proj, rel);
	f = fopen(path, "wb");
	ASSERT(f != NULL);
	ASSERT_EQ(fwrite(text, 1, strlen(text), f), strlen(text));
	fclose(f);
}

/* A fresh project with `yaml` as alyx.yaml and an empty functions/. */
static alyx *project(const char *yaml)
{
	char tmpl[] = "/tmp/alyx-fn-XXXXXX", path[512];
	alyx *a = NULL;

	ASSERT(mkdtemp(tmpl) != NULL);
	snprintf(proj, sizeof(proj), "%s", tmpl);
	snprintf(path, sizeof(path), "%s/functions", proj);
	ASSERT_EQ(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/functions/_shared", proj);
	ASSERT_EQ(mkdir(path, 0755), 0);
	spit("alyx.yaml", yaml ? yaml :
	     "functions:\n"
	     "  node: {min_warm: 0, max_instances: 2, exec_timeout: 10s}\n"
	     "  python: {min_warm: 0, max_instances: 2, exec_timeout: 10s}\n");
	if (alyx_open(proj, ALYX_OPEN_CREATE, &a) != ALYX_OK)
		TH_FAIL("open: %s", alyx_errmsg(NULL));
	return a;
}

static void done(alyx *a)
{
	char cmd[600];

	alyx_close(a);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", proj);
	ASSERT_EQ(system(cmd), 0);
}

static bool have(const char *prog)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", prog);
	return system(cmd) == 0;
}

#define NEED(prog)                                                      \
	do {                                                            \
		if (!have(prog)) {                                      \
			printf("  skip: %s is not installed\n", prog); \
			SKIP(prog " is not installed");                 \
		}                                                       \
	} while (0)

/* Invokes and parses the response; returns the status. */
static int call(alyx *a, const alyx_ctx *ctx, const char *name,
		const char *input, cJSON **res)
{
	char *out = NULL;
	int rc = alyx_invoke(a, ctx, name, input, (size_t)-1, &out);

	*res = NULL;
	if (rc == ALYX_OK) {
		ASSERT(out != NULL);
		*res = cJSON_Parse(out);
		ASSERT(*res != NULL);
	} else {
		ASSERT(out == NULL);
	}
	alyx_free(out);
	return rc;
}

static cJSON *output(cJSON *res)
{
	ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(res, "success")));
	return cJSON_GetObjectItem(res, "output");
}

static const char *str(cJSON *o, const char *k)
{
	cJSON *v = cJSON_GetObjectItem(o, k);

	ASSERT(cJSON_IsString(v));
	return v->valuestring;
}

/* The error details' "code" (function failures). */
static void details_code(alyx *a, const char *code)
{
	cJSON *d = cJSON_Parse(alyx_errdetails(a));

	ASSERT(d != NULL);
	ASSERT_STR_EQ(str(d, "code"), code);
	cJSON_Delete(d);
}

#endif
