/*
 * api-util.h - helpers of the public-API tests: a throw-away project
 * directory made from tests/fixtures/blog, and small JSON probes.
 * Uses only <alyx.h> (and cJSON for reading results).
 */
#ifndef ALYX_API_UTIL_H
#define ALYX_API_UTIL_H

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <alyx.h>

#include "harness.h"

#ifndef FIXTURES_DIR
#error "FIXTURES_DIR must be defined by meson"
#endif

__attribute__((unused)) static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *s;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	s = malloc((size_t)n + 1);
	if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
		free(s);
		s = NULL;
	}
	if (s)
		s[n] = '\0';
	fclose(f);
	return s;
}

__attribute__((unused)) static void spit(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");

	ASSERT(f != NULL);
	ASSERT_EQ(fwrite(text, 1, strlen(text), f), strlen(text));
	fclose(f);
}

/* A fresh project directory with the fixture's alyx.yaml (and, when
 * `with_schema`, schema.yaml).  Returns a malloc'd path. */
__attribute__((unused)) static char *make_project(int with_schema)
{
	char tmpl[] = "/tmp/alyx-api-XXXXXX", path[512];
	char *dir = mkdtemp(tmpl), *text;

	ASSERT(dir != NULL);
	dir = strdup(dir);
	text = slurp(FIXTURES_DIR "/blog/alyx.yaml");
	ASSERT(text != NULL);
	snprintf(path, sizeof(path), "%s/alyx.yaml", dir);
	spit(path, text);
	free(text);
	if (with_schema) {
		text = slurp(FIXTURES_DIR "/blog/schema.yaml");
		ASSERT(text != NULL);
		snprintf(path, sizeof(path), "%s/schema.yaml", dir);
		spit(path, text);
		free(text);
	}
	return dir;
}

__attribute__((unused)) static void remove_project(char *dir)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ASSERT_EQ(system(cmd), 0);
	free(dir);
}

/* Opens a new project with the blog schema applied. */
__attribute__((unused)) static alyx *open_blog(char **dir_out)
{
	char *dir = make_project(1), *yaml, *plan = NULL;
	alyx *a = NULL;

	ASSERT_OK(alyx_open(dir, ALYX_OPEN_CREATE, &a));
	yaml = slurp(FIXTURES_DIR "/blog/schema.yaml");
	ASSERT(yaml != NULL);
	if (alyx_apply_schema(a, yaml, (size_t)-1, "schema.yaml", 0, &plan))
		TH_FAIL("apply: %s %s", alyx_errmsg(a), alyx_errdetails(a));
	free(yaml);
	alyx_free(plan);
	*dir_out = dir;
	return a;
}

/* Creates a document and returns its "id" (malloc'd). */
__attribute__((unused)) static char *create_id(alyx *a, const char *coll,
					       const char *json)
{
	char *out = NULL, *id;
	cJSON *j;

	if (alyx_doc_create(a, NULL, coll, json, (size_t)-1, &out) != 0)
		TH_FAIL("create %s %s: %s %s", coll, json, alyx_errmsg(a),
			alyx_errdetails(a));
	j = cJSON_Parse(out);
	ASSERT(j != NULL);
	ASSERT(cJSON_IsString(cJSON_GetObjectItem(j, "id")));
	id = strdup(cJSON_GetObjectItem(j, "id")->valuestring);
	cJSON_Delete(j);
	alyx_free(out);
	return id;
}

/* Number of elements of the array `key` in JSON text. */
__attribute__((unused)) static int count_in(const char *json, const char *key)
{
	cJSON *j = cJSON_Parse(json);
	int n;

	ASSERT(j != NULL);
	n = cJSON_GetArraySize(cJSON_GetObjectItem(j, key));
	cJSON_Delete(j);
	return n;
}

#endif
