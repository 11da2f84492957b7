/*
 * C tests of the CLI's building blocks: alyx_yaml_to_json() (public API,
 * used by `alyx db seed file.yaml`) and the CLI's small JSON reader and
 * re-indenter (cli/json.c).
 */
#include <alyx.h>

#include "harness.h"
#include "json.h"

static char *y2j(const char *yaml)
{
	char *out = NULL;
	int rc = alyx_yaml_to_json(NULL, yaml, (size_t)-1, "t.yaml", &out);

	if (rc != ALYX_OK)
		return NULL;
	return out;
}

#define ASSERT_Y2J(yaml, json)                                          \
	do {                                                            \
		char *got_ = y2j(yaml);                                 \
		ASSERT(got_ != NULL);                                   \
		ASSERT_STR_EQ(got_, json);                              \
		alyx_free(got_);                                        \
	} while (0)

TEST(yaml_scalars_follow_the_core_schema)
{
	ASSERT_Y2J("a: 1\nb: -7\nc: +3\nd: 007\ne: 0x1F\nf: 0o17\n",
		   "{\"a\":1,\"b\":-7,\"c\":3,\"d\":7,\"e\":31,\"f\":15}");
	ASSERT_Y2J("[1.5, .5, 2e3, -1.25E-2, 1., .inf, .nan, 1e]",
		   "[1.5,0.5,2000.0,-0.0125,1.0,\".inf\",\".nan\",\"1e\"]");
	ASSERT_Y2J("[~, null, Null, NULL, true, False, TRUE, yes, no, on]",
		   "[null,null,null,null,true,false,true,\"yes\",\"no\","
		   "\"on\"]");
	ASSERT_Y2J("- \"1\"\n- '2'\n- !!str 3\n- ! 4\n- 1-2\n- 0x\n-\n",
		   "[\"1\",\"2\",\"3\",\"4\",\"1-2\",\"0x\",null]");
	ASSERT_Y2J("k:\n", "{\"k\":null}");
	ASSERT_Y2J("", "null");
	ASSERT_Y2J("99999999999999999999", "1e+20");
}

TEST(yaml_structures)
{
	ASSERT_Y2J("users:\n  - email: a@b.c\n    tags: [x, y]\n"
		   "    meta: {k: v, n: [1, {z: 2}]}\n  - {}\nposts: []\n",
		   "{\"users\":[{\"email\":\"a@b.c\",\"tags\":[\"x\",\"y\"],"
		   "\"meta\":{\"k\":\"v\",\"n\":[1,{\"z\":2}]}},{}],"
		   "\"posts\":[]}");
	/* Keys are always strings; text is escaped. */
	ASSERT_Y2J("1: \"a\\\"b\"\ntrue: |\n  two\n  lines\n",
		   "{\"1\":\"a\\\"b\",\"true\":\"two\\nlines\\n\"}");
	ASSERT_Y2J("--- [1]\n...\n", "[1]");
}

TEST(yaml_errors_name_the_place)
{
	char *out = (char *)1;
	int rc;

	rc = alyx_yaml_to_json(NULL, "a: [1, 2\nb: 3\n", (size_t)-1,
			       "seed.yaml", &out);
	ASSERT_EQ(rc, ALYX_E_BADJSON);
	ASSERT(out == NULL);
	ASSERT_EQ(alyx_errcode(NULL), ALYX_E_BADJSON);
	ASSERT(strncmp(alyx_errmsg(NULL), "seed.yaml:", 10) == 0);
	ASSERT(strstr(alyx_errdetails(NULL), "\"line\":") != NULL);

	rc = alyx_yaml_to_json(NULL, "a: &x 1\nb: *x\n", (size_t)-1, NULL,
			       &out);
	ASSERT_EQ(rc, ALYX_E_BADJSON);
	ASSERT(strstr(alyx_errmsg(NULL), "alias") != NULL);
	rc = alyx_yaml_to_json(NULL, "--- 1\n--- 2\n", (size_t)-1, NULL, &out);
	ASSERT_EQ(rc, ALYX_E_BADJSON);
	rc = alyx_yaml_to_json(NULL, "{[1]: 2}", (size_t)-1, NULL, &out);
	ASSERT_EQ(rc, ALYX_E_BADJSON);
	rc = alyx_yaml_to_json(NULL, "a: \xff\n", (size_t)-1, NULL, &out);
	ASSERT_EQ(rc, ALYX_E_BADJSON);
	rc = alyx_yaml_to_json(NULL, NULL, 0, NULL, &out);
	ASSERT_EQ(rc, ALYX_E_MISUSE);
	{
		char deep[200];

		memset(deep, '[', 100);
		memset(deep + 100, ']', 100);
		rc = alyx_yaml_to_json(NULL, deep, sizeof(deep), NULL, &out);
		ASSERT_EQ(rc, ALYX_E_TOOBIG);
	}
	/* A success clears the error. */
	ASSERT_Y2J("1", "1");
	ASSERT_EQ(alyx_errcode(NULL), ALYX_OK);
}

TEST(json_reader)
{
	const char *t = "{\"a\":[1,-2.5e1,\"x\\u00e9\\ud83d\\ude00\\n\"],"
			"\"b\":{\"c\":true,\"d\":null},\"e\":false}";
	cj *v = cj_parse(t, strlen(t));
	const cj *a;

	ASSERT(v != NULL);
	a = cj_get(v, "a");
	ASSERT_EQ(cj_count(a), 3);
	ASSERT_STR_EQ(cj_text(a->kid), "1");
	ASSERT(a->kid->next->num == -25.0);
	ASSERT_STR_EQ(a->kid->next->next->str,
		      "x\xc3\xa9\xf0\x9f\x98\x80\n");
	ASSERT(cj_gettrue(cj_get(v, "b"), "c"));
	ASSERT_STR_EQ(cj_text(cj_get(cj_get(v, "b"), "d")), "null");
	ASSERT(!cj_gettrue(v, "e"));
	ASSERT(cj_get(v, "zz") == NULL);
	ASSERT(cj_getstr(v, "e") == NULL);
	cj_free(v);

	static const char *bad[] = {"", "{", "[1,]", "{\"a\" 1}", "tru",
				    "\"abc", "[1] 2", "{1:2}", "\"\\x\"",
				    "-", "01x", "\"a\tb\""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = cj_parse(bad[i], strlen(bad[i]));
		if (v)
			TH_FAIL("accepted bad JSON: %s", bad[i]);
	}
	{
		char deep[1200];

		memset(deep, '[', 600);
		memset(deep + 600, ']', 600);
		ASSERT(cj_parse(deep, sizeof(deep)) == NULL);
	}
}

TEST(json_pretty_printer)
{
	const char *t = "{\"a\":[1,{\"b\":\"x,{}:[\\\"\"}],\"e\":{},\"f\":[ ]}";
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	cj_print(f, t, strlen(t), true);
	fclose(f);
	ASSERT_STR_EQ(buf, "{\n"
			   "  \"a\": [\n"
			   "    1,\n"
			   "    {\n"
			   "      \"b\": \"x,{}:[\\\"\"\n"
			   "    }\n"
			   "  ],\n"
			   "  \"e\": {},\n"
			   "  \"f\": []\n"
			   "}\n");
	free(buf);
}

TEST_MAIN()
