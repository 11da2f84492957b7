/*
 * fuzz-rules.c - libFuzzer target for the CEL engine: lexer, parser,
 * macro expansion, evaluator, the Alyx rule check and SQL push-down.
 *
 * The input is CEL source.  Beyond "does not crash, leak or recurse
 * without bound", each input checks invariants:
 *  - a refused expression has an ALYX_E_RULE/ALYX_E_TOOBIG error whose
 *    message starts with "line:col: " and whose details are JSON;
 *  - evaluation (with variables x, y, z bound) ends within the step and
 *    memory budgets, and its result can be formatted;
 *  - as an Alyx rule over a small collection, the pushed-down SQL selects
 *    exactly the rows that evaluation allows (or a superset when it says
 *    it is inexact), checked on a few rows in an in-memory SQLite table.
 * Anything else calls abort(), which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "rules/rules.h"

#define CHECK(x)                                                        \
	do {                                                            \
		if (!(x)) {                                             \
			fprintf(stderr, "fuzz-rules: check failed: %s\n", \
				#x);                                    \
			abort();                                        \
		}                                                       \
	} while (0)

static alyx__field fields[] = {
	{.name = "id", .type = ALYX_T_UUID, .primary = true},
	{.name = "title", .type = ALYX_T_STRING, .nullable = true},
	{.name = "n", .type = ALYX_T_INT, .nullable = true},
	{.name = "f", .type = ALYX_T_FLOAT, .nullable = true},
	{.name = "b", .type = ALYX_T_BOOL, .nullable = true},
	{.name = "t", .type = ALYX_T_TIMESTAMP, .nullable = true},
};
static alyx__collection coll = {.name = "c", .fields = fields,
				.n_fields = 6};

static const char *rows[] = {
	"{\"id\":\"r1\",\"title\":\"Hello\",\"n\":3,\"f\":0.5,\"b\":true,"
	"\"t\":\"2024-01-01T00:00:00.000Z\"}",
	"{\"id\":\"r2\",\"title\":\"\",\"n\":-7,\"f\":2,\"b\":false,"
	"\"t\":\"2023-06-30T12:30:00.250Z\"}",
	"{\"id\":\"r3\",\"title\":null,\"n\":null,\"f\":null,\"b\":null,"
	"\"t\":null}",
	"{\"id\":\"r4\",\"title\":\"\u00e9z\",\"n\":0,\"f\":-1.5,\"b\":true,"
	"\"t\":\"1999-12-31T23:59:59.999Z\"}",
};
#define NROWS 4

static sqlite3 *db;
static cJSON *row_json[NROWS];
static cJSON *auth, *req;

static void setup(void)
{
	sqlite3_stmt *st;

	if (db)
		return;
	CHECK(sqlite3_open(":memory:", &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db, "CREATE TABLE c (\"id\" TEXT, \"title\" TEXT,"
			   " \"n\" INTEGER, \"f\" REAL, \"b\" INTEGER, "
			   "\"t\" TEXT)", NULL, NULL, NULL) == SQLITE_OK);
	CHECK(sqlite3_prepare_v2(db, "INSERT INTO c VALUES (?,?,?,?,?,?)", -1,
				 &st, NULL) == SQLITE_OK);
	for (int i = 0; i < NROWS; i++) {
		row_json[i] = cJSON_Parse(rows[i]);
		for (int k = 0; k < 6; k++) {
			cJSON *v = cJSON_GetObjectItem(row_json[i],
						       fields[k].name);
			if (cJSON_IsNull(v))
				sqlite3_bind_null(st, k + 1);
			else if (cJSON_IsBool(v))
				sqlite3_bind_int(st, k + 1, cJSON_IsTrue(v));
			else if (cJSON_IsString(v))
				sqlite3_bind_text(st, k + 1, v->valuestring,
						  -1, SQLITE_STATIC);
			else if (k == 2)
				sqlite3_bind_int64(st, k + 1,
						   (int64_t)v->valuedouble);
			else
				sqlite3_bind_double(st, k + 1, v->valuedouble);
		}
		CHECK(sqlite3_step(st) == SQLITE_DONE);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	auth = cJSON_Parse("{\"id\":\"r1\",\"role\":\"user\",\"verified\":true,"
			   "\"metadata\":{\"k\":[1,2]}}");
	req = cJSON_Parse("{\"method\":\"GET\",\"ip\":\"::1\","
			  "\"time\":\"2024-01-01T00:00:00Z\"}");
}

static void check_error(const alyx__err *err)
{
	int line, col;

	CHECK(err->code == ALYX_E_RULE || err->code == ALYX_E_TOOBIG ||
	      err->code == ALYX_E_NOMEM);
	if (err->code != ALYX_E_NOMEM && err->details) {
		CHECK(sscanf(err->msg, "%d:%d: ", &line, &col) == 2);
		CHECK(line >= 1 && col >= 1);
		cJSON *d = cJSON_Parse(err->details);
		CHECK(d != NULL);
		cJSON_Delete(d);
	}
}

static void plain_eval(const char *src, size_t len)
{
	static const char *vars[] = {"x", "y", "z.w"};
	alyx__cel_val list[3] = {alyx__cel_int(1), alyx__cel_str("a", 1),
				 alyx__cel_double(2.5)};
	alyx__cel_val kv[4] = {alyx__cel_str("k", 1), alyx__cel_int(7),
			       alyx__cel_int(3), alyx__cel_list(list, 3)};
	alyx__cel_val vals[3] = {alyx__cel_map(kv, 2), alyx__cel_list(list, 3),
				 alyx__cel_timestamp(1700000000, 5)};
	alyx__cel_opts o = {.container = "z", .vars = vars, .n_vars = 3};
	alyx__cel_prog *p = NULL;
	alyx__err err = {0};
	alyx__cel_run run;

	if (alyx__cel_compile(src, len, &o, &p, &err) != ALYX_OK) {
		check_error(&err);
		alyx__err_clear(&err);
		return;
	}
	alyx__cel_run_init(&run);
	run.max_steps = 20000;
	run.max_bytes = 1u << 20;
	alyx__cel_val v = alyx__cel_eval(p, vals, &run);
	CHECK(run.steps <= run.max_steps + 1);
	CHECK(run.used <= run.max_bytes);
	alyx_buf b;
	alyx__buf_init(&b, 1u << 16);
	alyx__cel_val_format(&b, &v);
	alyx__buf_free(&b);
	alyx__cel_run_free(&run);
	alyx__cel_prog_free(p);
}

static void bind_value(sqlite3_stmt *st, int i, const alyx__value *v)
{
	switch (v->kind) {
	case ALYX_V_INT: sqlite3_bind_int64(st, i, v->i); break;
	case ALYX_V_FLOAT: sqlite3_bind_double(st, i, v->f); break;
	case ALYX_V_TEXT:
		sqlite3_bind_text(st, i, v->s, (int)v->n, SQLITE_TRANSIENT);
		break;
	default: sqlite3_bind_null(st, i);
	}
}

static void rule_checks(const char *src, size_t len)
{
	alyx__rule *r = NULL;
	alyx__err err = {0};
	alyx_buf sql;
	alyx__value *binds = NULL;
	size_t nb = 0;
	bool exact;
	int sel[NROWS] = {0};

	if (alyx__rule_compile(src, len, &coll, &r, &err) != ALYX_OK) {
		check_error(&err);
		alyx__err_clear(&err);
		return;
	}
	if (alyx__rule_check(r, &coll, &err) != ALYX_OK)
		check_error(&err);
	alyx__err_clear(&err);

	alyx__buf_init(&sql, 1u << 20);
	alyx__buf_adds(&sql, "SELECT rowid FROM c WHERE ");
	int rc = alyx__rule_to_sql(r, &coll, auth, req, &sql, &binds, &nb,
				   &exact, &err);
	alyx__err_clear(&err);
	if (rc == ALYX_OK) {
		sqlite3_stmt *st;
		CHECK(sqlite3_prepare_v2(db, sql.data, -1, &st, NULL) ==
		      SQLITE_OK);
		CHECK(sqlite3_bind_parameter_count(st) == (int)nb);
		for (size_t i = 0; i < nb; i++)
			bind_value(st, (int)i + 1, &binds[i]);
		while (sqlite3_step(st) == SQLITE_ROW)
			sel[sqlite3_column_int(st, 0) - 1] = 1;
		sqlite3_finalize(st);
	} else {
		CHECK(rc == ALYX_E_NOMEM || rc == ALYX_E_TOOBIG);
	}
	for (int i = 0; i < NROWS; i++) {
		alyx__rule_ctx ctx = {auth, row_json[i], req};
		alyx__rule_result res = alyx__rule_eval(r, &ctx, &err);
		if (res == ALYX_RULE_ERROR)
			CHECK(err.code == ALYX_E_RULE ||
			      err.code == ALYX_E_TOOBIG);
		alyx__err_clear(&err);
		if (rc != ALYX_OK)
			continue;
		if (exact)
			CHECK((res == ALYX_RULE_ALLOW) == (sel[i] == 1));
		else if (res == ALYX_RULE_ALLOW)
			CHECK(sel[i] == 1);
	}
	alyx__rule_binds_free(binds, nb);
	alyx__buf_free(&sql);
	alyx__rule_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *src = (const char *)data;

	setup();
	plain_eval(src, size);
	rule_checks(src, size);
	return 0;
}
