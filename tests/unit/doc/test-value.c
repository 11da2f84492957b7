/* test-value.c - typed values: JSON/text in, storage form, JSON out. */
#include <math.h>

#include "harness.h"
#include "doc/doc.h"

static alyx__field fld(alyx__type t)
{
	alyx__field f;

	memset(&f, 0, sizeof(f));
	f.name = "f";
	f.type = t;
	return f;
}

/* Writes v in the boundary form of type t into a static buffer. */
static const char *show(alyx__type t, alyx__value *v)
{
	static char out[4096];
	alyx__field f = fld(t);
	alyx_buf b;

	alyx__buf_init(&b, 0);
	alyx__value_write(&b, &f, v);
	snprintf(out, sizeof(out), "%s", b.data ? b.data : "");
	alyx__buf_free(&b);
	alyx__value_clear(v);
	return out;
}

static const char *fail(const char *why)
{
	static char out[160];

	snprintf(out, sizeof(out), "ERR:%s", why);
	return out;
}

/* JSON text -> value -> JSON text; "ERR:<why>" on a refusal. */
static const char *rt(alyx__type t, const char *json)
{
	alyx__field f = fld(t);
	alyx__value v;
	char why[128];
	cJSON *j = cJSON_Parse(json);
	bool ok;

	if (!j)
		return "BADJSON";
	ok = alyx__value_from_json(&f, j, &v, why);
	cJSON_Delete(j);
	return ok ? show(t, &v) : fail(why);
}

/* Text -> value -> JSON text. */
static const char *rt_text(alyx__type t, const char *s)
{
	alyx__field f = fld(t);
	alyx__value v;
	char why[128];

	if (!alyx__value_from_text(&f, s, strlen(s), &v, why))
		return fail(why);
	return show(t, &v);
}

#define ERR(x) ASSERT(strncmp((x), "ERR:", 4) == 0)

TEST(uuid)
{
	ASSERT_STR_EQ(rt(ALYX_T_UUID,
			 "\"6F9619FF-8B86-D011-B42D-00C04FC964FF\""),
		      "\"6f9619ff-8b86-d011-b42d-00c04fc964ff\"");
	ERR(rt(ALYX_T_UUID, "\"not-a-uuid\""));
	ERR(rt(ALYX_T_UUID, "12"));
	ASSERT_STR_EQ(rt(ALYX_T_UUID, "null"), "null");
}

TEST(strings)
{
	ASSERT_STR_EQ(rt(ALYX_T_STRING, "\"h\\u00e9llo \\\"q\\\"\\n\""),
		      "\"h\xc3\xa9llo \\\"q\\\"\\n\"");
	ASSERT_STR_EQ(rt(ALYX_T_TEXT, "\"\""), "\"\"");
	ERR(rt(ALYX_T_STRING, "1"));
	ERR(rt(ALYX_T_STRING, "true"));
	/* cJSON passes raw invalid UTF-8 through; the value layer refuses. */
	ERR(rt(ALYX_T_STRING, "\"a\xff" "b\""));
	ASSERT_CONTAINS(rt(ALYX_T_TEXT, "\"\xc0\xaf\""), "UTF-8");
}

TEST(ints)
{
	ASSERT_STR_EQ(rt(ALYX_T_INT, "42"), "42");
	ASSERT_STR_EQ(rt(ALYX_T_INT, "-7"), "-7");
	ASSERT_STR_EQ(rt(ALYX_T_INT, "1.0"), "1");
	ASSERT_STR_EQ(rt(ALYX_T_INT, "9007199254740991"), "9007199254740991");
	ASSERT_STR_EQ(rt(ALYX_T_INT, "-9007199254740991"),
		      "-9007199254740991");
	ERR(rt(ALYX_T_INT, "9007199254740993"));
	ERR(rt(ALYX_T_INT, "9223372036854775808"));
	ERR(rt(ALYX_T_INT, "1e300"));
	ERR(rt(ALYX_T_INT, "1.5"));
	ERR(rt(ALYX_T_INT, "\"1\""));
	ERR(rt(ALYX_T_INT, "true"));
}

TEST(ints_from_text_full_range)
{
	ASSERT_STR_EQ(rt_text(ALYX_T_INT, "9223372036854775807"),
		      "9223372036854775807");
	ASSERT_STR_EQ(rt_text(ALYX_T_INT, "-9223372036854775808"),
		      "-9223372036854775808");
	ASSERT_CONTAINS(rt_text(ALYX_T_INT, "9223372036854775808"), "range");
	ASSERT_CONTAINS(rt_text(ALYX_T_INT, "-9223372036854775809"), "range");
	ASSERT_STR_EQ(rt_text(ALYX_T_INT, "1e3"), "1000");
	ERR(rt_text(ALYX_T_INT, "1.5"));
	ERR(rt_text(ALYX_T_INT, ""));
	ERR(rt_text(ALYX_T_INT, "12abc"));
	ERR(rt_text(ALYX_T_INT, " 12"));
}

TEST(floats)
{
	ASSERT_STR_EQ(rt(ALYX_T_FLOAT, "1.5"), "1.5");
	ASSERT_STR_EQ(rt(ALYX_T_FLOAT, "2"), "2.0");
	ASSERT_STR_EQ(rt(ALYX_T_FLOAT, "0.1"), "0.1");
	ASSERT_STR_EQ(rt(ALYX_T_FLOAT, "1e300"), "1e+300");
	ERR(rt(ALYX_T_FLOAT, "1e400"));
	ERR(rt(ALYX_T_FLOAT, "\"1.5\""));
	ASSERT_STR_EQ(rt_text(ALYX_T_FLOAT, "-2.25e2"), "-225.0");
	ERR(rt_text(ALYX_T_FLOAT, "nan"));
	ERR(rt_text(ALYX_T_FLOAT, "inf"));
	ERR(rt_text(ALYX_T_FLOAT, "1e999"));
	ERR(rt_text(ALYX_T_FLOAT, "0x10"));
}

TEST(bools)
{
	ASSERT_STR_EQ(rt(ALYX_T_BOOL, "true"), "true");
	ASSERT_STR_EQ(rt(ALYX_T_BOOL, "false"), "false");
	ERR(rt(ALYX_T_BOOL, "1"));
	ERR(rt(ALYX_T_BOOL, "\"true\""));
	ASSERT_STR_EQ(rt_text(ALYX_T_BOOL, "1"), "true");
	ASSERT_STR_EQ(rt_text(ALYX_T_BOOL, "false"), "false");
	ERR(rt_text(ALYX_T_BOOL, "yes"));
}

TEST(timestamps_normalised)
{
	ASSERT_STR_EQ(rt(ALYX_T_TIMESTAMP, "\"2026-01-02T03:04:05Z\""),
		      "\"2026-01-02T03:04:05.000Z\"");
	ASSERT_STR_EQ(rt(ALYX_T_TIMESTAMP, "\"2026-01-02T03:04:05.123456+02:00\""),
		      "\"2026-01-02T01:04:05.123Z\"");
	ASSERT_STR_EQ(rt(ALYX_T_TIMESTAMP, "\"2026-01-02\""),
		      "\"2026-01-02T00:00:00.000Z\"");
	ASSERT_STR_EQ(rt(ALYX_T_TIMESTAMP, "0"),
		      "\"1970-01-01T00:00:00.000Z\"");
	ASSERT_STR_EQ(rt(ALYX_T_TIMESTAMP, "1767323045006"),
		      "\"2026-01-02T03:04:05.006Z\"");
	ERR(rt(ALYX_T_TIMESTAMP, "\"2026-02-30\""));
	ERR(rt(ALYX_T_TIMESTAMP, "\"yesterday\""));
	ERR(rt(ALYX_T_TIMESTAMP, "1.5"));
	ERR(rt(ALYX_T_TIMESTAMP, "1e20"));
	ERR(rt(ALYX_T_TIMESTAMP, "true"));
	ASSERT_STR_EQ(rt_text(ALYX_T_TIMESTAMP, "2026-01-02 03:04:05"),
		      "\"2026-01-02T03:04:05.000Z\"");
	ASSERT_STR_EQ(rt_text(ALYX_T_TIMESTAMP, "1000"),
		      "\"1970-01-01T00:00:01.000Z\"");
}

TEST(json_values)
{
	ASSERT_STR_EQ(rt(ALYX_T_JSON, "{ \"a\" : [1, 2.5, \"x\", null, true] }"),
		      "{\"a\":[1,2.5,\"x\",null,true]}");
	ASSERT_STR_EQ(rt(ALYX_T_JSON, "\"s\""), "\"s\"");
	ASSERT_STR_EQ(rt(ALYX_T_JSON, "[]"), "[]");
	ERR(rt(ALYX_T_JSON, "[\"\xff\"]"));
	ASSERT_STR_EQ(rt_text(ALYX_T_JSON, "[1,2]"), "[1,2]");
	ASSERT_STR_EQ(rt_text(ALYX_T_JSON, "hello \"w\""),
		      "\"hello \\\"w\\\"\"");
}

TEST(json_depth_cap)
{
	char deep[400];
	int i;

	for (i = 0; i < 100; i++)
		deep[i] = '[';
	for (i = 0; i < 100; i++)
		deep[100 + i] = ']';
	deep[200] = '\0';
	ASSERT_CONTAINS(rt(ALYX_T_JSON, deep), "deeper");
	deep[0] = '\0';
	for (i = 0; i < ALYX_DOC_JSON_DEPTH; i++)
		deep[i] = '[';
	for (i = 0; i < ALYX_DOC_JSON_DEPTH; i++)
		deep[ALYX_DOC_JSON_DEPTH + i] = ']';
	deep[2 * ALYX_DOC_JSON_DEPTH] = '\0';
	ASSERT_STR_EQ(rt(ALYX_T_JSON, deep), deep);
}

TEST(blobs)
{
	ASSERT_STR_EQ(rt(ALYX_T_BLOB, "\"aGVsbG8=\""), "\"aGVsbG8=\"");
	ASSERT_STR_EQ(rt(ALYX_T_BLOB, "\"\""), "\"\"");
	ERR(rt(ALYX_T_BLOB, "\"@@@\""));
	ERR(rt(ALYX_T_BLOB, "[1]"));
}

TEST(huge_string_refused)
{
	size_t n = ALYX_DOC_MAX_STRING + 1;
	char *s = malloc(n + 3);
	alyx__field f = fld(ALYX_T_TEXT);
	alyx__value v;
	char why[128];
	cJSON *j;

	memset(s, 'a', n);
	ASSERT(!alyx__value_from_text(&f, s, n, &v, why));
	ASSERT_CONTAINS(why, "16 MiB");
	ASSERT(alyx__value_from_text(&f, s, n - 1, &v, why));
	ASSERT_EQ(v.n, n - 1);
	alyx__value_clear(&v);
	s[n] = '\0';
	j = cJSON_CreateString(s);
	ASSERT(!alyx__value_from_json(&f, j, &v, why));
	cJSON_Delete(j);
	free(s);
}

/* Round trip through a real SQLite column of every type. */
TEST(column_round_trip)
{
	static const struct {
		alyx__type t;
		const char *decl, *in, *out;
	} cases[] = {
		{ALYX_T_UUID, "TEXT", "\"6f9619ff-8b86-d011-b42d-00c04fc964ff\"",
		 "\"6f9619ff-8b86-d011-b42d-00c04fc964ff\""},
		{ALYX_T_STRING, "TEXT", "\"a\\tb\"", "\"a\\tb\""},
		{ALYX_T_INT, "INTEGER", "-9007199254740991",
		 "-9007199254740991"},
		{ALYX_T_FLOAT, "REAL", "3", "3.0"},
		{ALYX_T_FLOAT, "REAL", "-0.125", "-0.125"},
		{ALYX_T_BOOL, "INTEGER", "true", "true"},
		{ALYX_T_BOOL, "INTEGER", "false", "false"},
		{ALYX_T_TIMESTAMP, "TEXT", "\"2026-01-02T03:04:05.6Z\"",
		 "\"2026-01-02T03:04:05.600Z\""},
		{ALYX_T_JSON, "TEXT", "{\"k\":[1,{\"z\":null}]}",
		 "{\"k\":[1,{\"z\":null}]}"},
		{ALYX_T_BLOB, "BLOB", "\"AAEC/w==\"", "\"AAEC/w==\""},
		{ALYX_T_BLOB, "BLOB", "\"\"", "\"\""},
		{ALYX_T_TEXT, "TEXT", "null", "null"},
	};
	size_t k;
	sqlite3 *db;

	ASSERT_OK(sqlite3_open(":memory:", &db));
	for (k = 0; k < ALYX_ARRAY_LEN(cases); k++) {
		alyx__field f = fld(cases[k].t);
		alyx__value v, back;
		char why[128], sql[128];
		cJSON *j = cJSON_Parse(cases[k].in);
		sqlite3_stmt *st;
		alyx_buf b;

		snprintf(sql, sizeof(sql), "CREATE TABLE t%zu (c %s)", k,
			 cases[k].decl);
		ASSERT_OK(sqlite3_exec(db, sql, NULL, NULL, NULL));
		ASSERT(alyx__value_from_json(&f, j, &v, why));
		cJSON_Delete(j);
		snprintf(sql, sizeof(sql), "INSERT INTO t%zu VALUES (?)", k);
		ASSERT_OK(sqlite3_prepare_v2(db, sql, -1, &st, NULL));
		ASSERT_OK(alyx__value_bind(st, 1, &v));
		ASSERT_EQ(sqlite3_step(st), SQLITE_DONE);
		sqlite3_finalize(st);
		snprintf(sql, sizeof(sql), "SELECT c FROM t%zu", k);
		ASSERT_OK(sqlite3_prepare_v2(db, sql, -1, &st, NULL));
		ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
		alyx__buf_init(&b, 0);
		alyx__value_write_column(&b, &f, st, 0);
		ASSERT_STR_EQ(b.data, cases[k].out);
		ASSERT_OK(alyx__value_from_column(st, 0, &back));
		ASSERT_EQ(alyx__value_cmp(&v, &back), 0);
		alyx__buf_free(&b);
		alyx__value_clear(&back);
		alyx__value_clear(&v);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
}

/* Columns written by other tools still come out as valid JSON. */
TEST(foreign_column_values)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	alyx__field fj = fld(ALYX_T_JSON), fb = fld(ALYX_T_BOOL),
		    ft = fld(ALYX_T_TIMESTAMP), fs = fld(ALYX_T_STRING);
	alyx_buf b;

	ASSERT_OK(sqlite3_open(":memory:", &db));
	ASSERT_OK(sqlite3_prepare_v2(db,
		"SELECT '{bad', 2, 0, x'41ff', '[1, 2 ]'", -1, &st, NULL));
	ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
	alyx__buf_init(&b, 0);
	alyx__value_write_column(&b, &fj, st, 0);
	alyx__buf_addc(&b, ' ');
	alyx__value_write_column(&b, &fb, st, 1);
	alyx__buf_addc(&b, ' ');
	alyx__value_write_column(&b, &ft, st, 2);
	alyx__buf_addc(&b, ' ');
	alyx__value_write_column(&b, &fs, st, 3);
	alyx__buf_addc(&b, ' ');
	alyx__value_write_column(&b, &fj, st, 4);
	ASSERT_STR_EQ(b.data, "\"{bad\" true \"1970-01-01T00:00:00.000Z\" "
		      "\"Qf8=\" [1, 2 ]");
	alyx__buf_free(&b);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* The row writer (each value after its key, common values in one
 * reservation) writes exactly what the key and alyx__value_write_column
 * write, for every field type over typical and foreign column values. */
TEST(row_writer_matches_column_writer)
{
	static const alyx__type types[] = {
		ALYX_T_STRING, ALYX_T_TEXT, ALYX_T_INT, ALYX_T_FLOAT,
		ALYX_T_BOOL, ALYX_T_TIMESTAMP, ALYX_T_JSON, ALYX_T_BLOB,
		ALYX_T_UUID,
	};
	static const char keys[] = ",\"field\":\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
	sqlite3 *db;
	sqlite3_stmt *st;
	alyx_buf want, got;
	int ncol, c;

	ASSERT_OK(sqlite3_open(":memory:", &db));
	ASSERT_OK(sqlite3_prepare_v2(db,
		"SELECT NULL, 0, -42, 9007199254740993, 1.5, 'plain', "
		"'a\"quote', 'caf\xC3\xA9', 'bad\xFF', '', x'00ff', "
		"'[\"t1\",\"bench\"]', ' {\"a\": [1, 2.5e3, true, null]} ', "
		"'[\"caf\xC3\xA9\"]', '[\"\xFF\"]', '[1]\xC3\xA9', "
		"CAST(x'225c0022' AS TEXT), '\"\\u00e9\\n\"', '{bad', "
		"'2026-01-02T03:04:05.678Z', "
		"'00000000-0000-4000-8000-000000000001', "
		"'a string of more than sixteen bytes, plain', "
		"'a string of more than sixteen bytes\twith a tab'",
		-1, &st, NULL));
	ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
	ncol = sqlite3_column_count(st);
	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		alyx__field f = fld(types[t]);

		for (c = 0; c < ncol; c++) {
			alyx__colout o = {.f = &f, .col = c, .off = 0,
					  .len = (unsigned)strlen(keys)};

			alyx__buf_init(&want, 0);
			alyx__buf_init(&got, 0);
			alyx__buf_add(&want, keys, o.len);
			alyx__value_write_column(&want, &f, st, c);
			alyx__value_write_row(&got, &o, 1, keys, st);
			ASSERT_EQ(got.err, ALYX_OK);
			if (got.len != want.len ||
			    memcmp(got.data, want.data, want.len + 1))
				TH_FAIL("type %d column %d: %s != %s",
					(int)types[t], c, got.data, want.data);
			alyx__buf_free(&want);
			alyx__buf_free(&got);
		}
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* Stored JSON is written as it is only when it is JSON: UTF-8 checked
 * inside strings, no raw byte above 0x7F outside them, and a backslash
 * before a NUL byte is no escape. */
TEST(stored_json_checked)
{
	static const struct {
		const char *sql, *out;
	} cases[] = {
		{"'[\"caf\xC3\xA9\"]'", "[\"caf\xC3\xA9\"]"},
		{"'[\"\\u00e9\", \"a\\\\b\"]'", "[\"\\u00e9\", \"a\\\\b\"]"},
		{"'[\"\xFF\"]'", "\"[\\\"\xEF\xBF\xBD\\\"]\""},
		{"'[1]\xC3\xA9'", "\"[1]\xC3\xA9\""},
		{"'\xC3\xA9'", "\"\xC3\xA9\""},
		{"CAST(x'225c0022' AS TEXT)", "\"\\\"\\\\\\u0000\\\"\""},
		{"'\"abcdefghijklmnopqrstuvwxyz\"'",
		 "\"abcdefghijklmnopqrstuvwxyz\""},
		{"'\"abcdefghij\\\"klmnopqrstuvwxyz\"'",
		 "\"abcdefghij\\\"klmnopqrstuvwxyz\""},
		{"'\"abcdefghijklmnopqrstuvwxyz'", "\"\\\"abcdefghijklmnopqrstuvwxyz\""},
		{"'\"abc\\'", "\"\\\"abc\\\\\""},
		/* Strings in containers, each scanned in place. */
		{"'{\"a\":[\"x\",{\"b\":\"y\"}],\"c\":\"z\"}'",
		 "{\"a\":[\"x\",{\"b\":\"y\"}],\"c\":\"z\"}"},
		/* A high byte, then a plain word, an escape and more. */
		{"'[\"\xC3\xA9 abcdefghijklmnop\\n x\\u00e9y\"]'",
		 "[\"\xC3\xA9 abcdefghijklmnop\\n x\\u00e9y\"]"},
		/* A control byte after a high byte; a bad escape; a bad
		 * \\u; bad UTF-8 after an escape: written as strings. */
		{"CAST(x'5B22C3A901225D' AS TEXT)",
		 "\"[\\\"\xC3\xA9\\u0001\\\"]\""},
		{"'[\"a\\x\"]'", "\"[\\\"a\\\\x\\\"]\""},
		{"'[\"\\u12g4\"]'", "\"[\\\"\\\\u12g4\\\"]\""},
		{"CAST(x'5B225C6EC3225D' AS TEXT)",
		 "\"[\\\"\\\\n\xEF\xBF\xBD\\\"]\""},
		/* Plain strings of 15, 16 and 17 bytes (the short-string
		 * test covers 16), an escape or a high byte at the 16th,
		 * and a string the text ends inside. */
		{"'[\"abcdefghijklmno\",\"abcdefghijklmnop\","
		 "\"abcdefghijklmnopq\"]'",
		 "[\"abcdefghijklmno\",\"abcdefghijklmnop\","
		 "\"abcdefghijklmnopq\"]"},
		{"'[\"abcdefghijklmno\\n\",\"abcdefghijklmno\xC3\xA9\"]'",
		 "[\"abcdefghijklmno\\n\",\"abcdefghijklmno\xC3\xA9\"]"},
		{"'[\"ab\",\"cd'", "\"[\\\"ab\\\",\\\"cd\""},
		{"'[\"ab\",\"c\x01\"]'",
		 "\"[\\\"ab\\\",\\\"c\\u0001\\\"]\""},
	};
	alyx__field fj = fld(ALYX_T_JSON);
	sqlite3 *db;

	ASSERT_OK(sqlite3_open(":memory:", &db));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char sql[256];
		sqlite3_stmt *st;
		alyx_buf b;

		snprintf(sql, sizeof(sql), "SELECT %s", cases[i].sql);
		ASSERT_OK(sqlite3_prepare_v2(db, sql, -1, &st, NULL));
		ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
		alyx__buf_init(&b, 0);
		alyx__value_write_column(&b, &fj, st, 0);
		ASSERT_STR_EQ(b.data, cases[i].out);
		alyx__buf_free(&b);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
}

TEST(cmp_order)
{
	alyx__value n = {.kind = ALYX_V_NULL}, i1 = {.kind = ALYX_V_INT, .i = 1},
		    f15 = {.kind = ALYX_V_FLOAT, .f = 1.5},
		    big = {.kind = ALYX_V_INT, .i = INT64_MAX},
		    fbig = {.kind = ALYX_V_FLOAT, .f = 9223372036854775807.0},
		    ta = {.kind = ALYX_V_TEXT, .s = "a", .n = 1},
		    tab = {.kind = ALYX_V_TEXT, .s = "ab", .n = 2},
		    bl = {.kind = ALYX_V_BLOB, .s = "", .n = 0};

	ASSERT(alyx__value_cmp(&n, &i1) < 0);
	ASSERT(alyx__value_cmp(&i1, &f15) < 0);
	ASSERT(alyx__value_cmp(&f15, &i1) > 0);
	ASSERT(alyx__value_cmp(&big, &fbig) < 0);
	ASSERT(alyx__value_cmp(&f15, &ta) < 0);
	ASSERT(alyx__value_cmp(&ta, &tab) < 0);
	ASSERT(alyx__value_cmp(&tab, &bl) < 0);
	ASSERT_EQ(alyx__value_cmp(&ta, &ta), 0);
}

TEST(copy)
{
	alyx__value a = {.kind = ALYX_V_TEXT, .s = "xyz", .n = 3}, c;

	ASSERT_OK(alyx__value_copy(&c, &a));
	ASSERT(c.s != a.s);
	ASSERT_EQ(alyx__value_cmp(&a, &c), 0);
	alyx__value_clear(&c);
	ASSERT_EQ(c.kind, ALYX_V_NULL);
	ASSERT(c.s == NULL);
}

/* ---- randomised round trips ---- */

static unsigned long long rng_state = 0x9E3779B97F4A7C15ull;

static unsigned rnd(unsigned n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (unsigned)(rng_state % n);
}

/* Random valid UTF-8 with the characters JSON must escape. */
static void rnd_string(char *out, size_t cap)
{
	static const char *pieces[] = {
		"a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "\x01", "\x1f",
		"\x7f", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
		"\xef\xbf\xbf", "\xed\x9f\xbf", "</script>", "\\u0041"};
	size_t n = 0, k = rnd(12);

	out[0] = '\0';
	while (k--) {
		const char *p = pieces[rnd(ALYX_ARRAY_LEN(pieces))];

		if (n + strlen(p) + 1 >= cap)
			break;
		memcpy(out + n, p, strlen(p) + 1);
		n += strlen(p);
	}
}

static cJSON *rnd_json(int depth)
{
	char s[128];
	cJSON *j;
	int k, n;

	switch (rnd(depth > 4 ? 5 : 7)) {
	case 0: return cJSON_CreateNull();
	case 1: return cJSON_CreateBool(rnd(2));
	case 2:
		return cJSON_CreateNumber((double)((long long)rnd(1u << 30) *
			(long long)rnd(1u << 23) - (1ll << 50)));
	case 3:
		return cJSON_CreateNumber(((double)rnd(1u << 30) - 5e8) /
					  ((double)rnd(1000) + 1.5) *
					  pow(10, (int)rnd(40) - 20));
	case 4:
		rnd_string(s, sizeof(s));
		return cJSON_CreateString(s);
	case 5:
		j = cJSON_CreateArray();
		n = (int)rnd(5);
		for (k = 0; k < n; k++)
			cJSON_AddItemToArray(j, rnd_json(depth + 1));
		return j;
	default:
		j = cJSON_CreateObject();
		n = (int)rnd(5);
		for (k = 0; k < n; k++) {
			char key[64];

			rnd_string(key, 48);
			snprintf(key + strlen(key), 16, "%d", k);
			cJSON_AddItemToObject(j, key, rnd_json(depth + 1));
		}
		return j;
	}
}

/* from_json -> SQLite column -> write_column -> parse: the same JSON. */
TEST(random_json_and_strings_round_trip)
{
	sqlite3 *db;
	sqlite3_stmt *ins, *sel;
	alyx__field fj = fld(ALYX_T_JSON), fs = fld(ALYX_T_STRING);
	int i;

	ASSERT_OK(sqlite3_open(":memory:", &db));
	ASSERT_OK(sqlite3_exec(db, "CREATE TABLE t (j TEXT, s TEXT)", NULL,
			       NULL, NULL));
	ASSERT_OK(sqlite3_prepare_v2(db, "INSERT INTO t VALUES (?, ?)", -1,
				     &ins, NULL));
	ASSERT_OK(sqlite3_prepare_v2(db, "SELECT j, s FROM t", -1, &sel,
				     NULL));
	for (i = 0; i < 2000; i++) {
		cJSON *in = rnd_json(0), *str, *back;
		char s[128], why[128];
		alyx__value vj, vs;
		alyx_buf b;

		rnd_string(s, sizeof(s));
		str = cJSON_CreateString(s);
		ASSERT(alyx__value_from_json(&fj, in, &vj, why));
		ASSERT(alyx__value_from_json(&fs, str, &vs, why));
		ASSERT_OK(alyx__value_bind(ins, 1, &vj));
		ASSERT_OK(alyx__value_bind(ins, 2, &vs));
		ASSERT_EQ(sqlite3_step(ins), SQLITE_DONE);
		sqlite3_reset(ins);
		ASSERT_EQ(sqlite3_step(sel), SQLITE_ROW);
		alyx__buf_init(&b, 0);
		alyx__buf_addc(&b, '[');
		alyx__value_write_column(&b, &fj, sel, 0);
		alyx__buf_addc(&b, ',');
		alyx__value_write_column(&b, &fs, sel, 1);
		alyx__buf_addc(&b, ']');
		back = cJSON_Parse(b.data);
		ASSERT(back != NULL);
		if (cJSON_IsNull(in))
			ASSERT(cJSON_IsNull(cJSON_GetArrayItem(back, 0)));
		else if (!cJSON_Compare(in, cJSON_GetArrayItem(back, 0), 1))
			TH_FAIL("json round trip: %s", b.data);
		ASSERT_STR_EQ(cJSON_GetArrayItem(back, 1)->valuestring, s);
		sqlite3_reset(sel);
		ASSERT_OK(sqlite3_exec(db, "DELETE FROM t", NULL, NULL, NULL));
		cJSON_Delete(back);
		cJSON_Delete(in);
		cJSON_Delete(str);
		alyx__buf_free(&b);
		alyx__value_clear(&vj);
		alyx__value_clear(&vs);
	}
	sqlite3_finalize(ins);
	sqlite3_finalize(sel);
	sqlite3_close(db);
}

TEST_MAIN()
