/*
 * fuzz-schema.c - libFuzzer target for the schema parser (schema.yaml and
 * the canonical JSON form), the diff and the SQL generator.
 *
 * Beyond "does not crash or leak", each input checks invariants:
 *  - a refused schema has a "schema.yaml:L:C: " message and JSON details;
 *  - an accepted one round-trips through canonical JSON byte for byte,
 *    diffs to nothing against itself, and its CREATE TABLE, indexes and
 *    change-feed triggers all execute in SQLite;
 *  - an input holding two schemas split by a "#~~~" line is also diffed
 *    both ways, and the plan JSON must parse.
 * Anything else calls abort(), which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "schema/schema.h"

#define CHECK(x)                                                        \
	do {                                                            \
		if (!(x)) {                                             \
			fprintf(stderr, "fuzz-schema: check failed: %s\n", \
				#x);                                    \
			abort();                                        \
		}                                                       \
	} while (0)

static void check_error(const alyx__err *err, const char *prefix)
{
	cJSON *d;

	CHECK(err->code == ALYX_E_SCHEMA || err->code == ALYX_E_TOOBIG ||
	      err->code == ALYX_E_NOMEM || err->code == ALYX_E_BADJSON);
	if (err->code == ALYX_E_SCHEMA) {
		CHECK(strncmp(err->msg, prefix, strlen(prefix)) == 0);
		CHECK(err->details != NULL);
		d = cJSON_Parse(err->details);
		CHECK(d && cJSON_IsNumber(cJSON_GetObjectItem(d, "line")));
		cJSON_Delete(d);
	}
}

static void exec_ok(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	CHECK(sql != NULL);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		fprintf(stderr, "fuzz-schema: SQL failed: %s\n%s\n", msg, sql);
		abort();
	}
}

static void check_sql(const alyx__schema *s)
{
	sqlite3 *db = NULL;
	size_t i;

	CHECK(sqlite3_open(":memory:", &db) == SQLITE_OK);
	exec_ok(db, "CREATE TABLE _alyx_changes (id INTEGER PRIMARY KEY, "
		"collection TEXT NOT NULL, operation TEXT NOT NULL, doc_id "
		"TEXT NOT NULL, changed_fields TEXT, timestamp TEXT NOT NULL, "
		"processed INTEGER NOT NULL DEFAULT 0)");
	for (i = 0; i < s->n_colls; i++) {
		char *t = alyx__sql_create_table(&s->colls[i], NULL);
		char *ix = alyx__sql_create_indexes(&s->colls[i]);
		char *tr = alyx__sql_triggers(&s->colls[i]);

		exec_ok(db, t);
		exec_ok(db, ix);
		exec_ok(db, tr);
		alyx__free(t);
		alyx__free(ix);
		alyx__free(tr);
	}
	sqlite3_close(db);
}

static void check_diff(const alyx__schema *a, const alyx__schema *b)
{
	alyx__plan *p = NULL;
	alyx__err err = {0};
	char *j;
	cJSON *parsed;

	CHECK(alyx__schema_diff(a, b, &p, &err) == ALYX_OK);
	j = alyx__plan_to_json(p);
	CHECK(j != NULL);
	parsed = cJSON_Parse(j);
	CHECK(parsed != NULL);
	cJSON_Delete(parsed);
	if (a == b)
		CHECK(p->n_changes == 0);
	alyx__free(j);
	alyx__plan_free(p);
}

static alyx__schema *check_one(const char *text, size_t len)
{
	alyx__schema *s = NULL, *s2 = NULL;
	alyx__err err = {0};
	char *j1, *j2;

	if (alyx__schema_parse(text, len, NULL, &s, &err) != ALYX_OK) {
		check_error(&err, "schema.yaml:");
		alyx__err_clear(&err);
		return NULL;
	}
	j1 = alyx__schema_to_json(s);
	CHECK(j1 != NULL);
	if (alyx__schema_from_json(j1, &s2, &err) != ALYX_OK) {
		fprintf(stderr, "fuzz-schema: JSON did not re-parse: %s\n%s\n",
			err.msg, j1);
		abort();
	}
	j2 = alyx__schema_to_json(s2);
	CHECK(j2 && strcmp(j1, j2) == 0);
	check_diff(s, s);
	check_diff(NULL, s);
	check_sql(s);
	alyx__free(j1);
	alyx__free(j2);
	alyx__schema_free(s2);
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	const char *split;
	alyx__schema *a, *b;
	alyx__err err = {0};

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	split = strstr(text, "\n#~~~\n");
	if (split) {
		size_t la = (size_t)(split - text) + 1;

		a = check_one(text, la);
		b = check_one(text + la + 5, size - la - 5);
		if (a && b) {
			check_diff(a, b);
			check_diff(b, a);
		}
		alyx__schema_free(a);
		alyx__schema_free(b);
	} else {
		alyx__schema_free(check_one(text, size));
	}
	/* The JSON form goes through cJSON and the same validator. */
	if (size && text[0] == '{') {
		a = NULL;
		if (alyx__schema_from_json(text, &a, &err) != ALYX_OK) {
			check_error(&err, "schema.json:");
			alyx__err_clear(&err);
		} else {
			check_sql(a);
		}
		alyx__schema_free(a);
	}
	free(text);
	return 0;
}
