/*
 * test-rules.c - lib/rules: parser (precedence, literals, escapes,
 * comments, whitespace, errors with positions), evaluator edge cases,
 * limits, the Alyx variables and the schema check.
 */
#include <pthread.h>
#include <string.h>

#include "harness.h"
#include "rules/rules.h"

/* Compiles and evaluates src with no variables; returns the formatted
 * result ("3", "true", "\"s\"", "error: ...", or "compile: ..."). */
static const char *E(const char *src)
{
	static char out[1024];
	alyx__cel_prog *p = NULL;
	alyx__err err = {0};
	alyx__cel_run run;
	alyx_buf b;

	if (alyx__cel_compile(src, strlen(src), NULL, &p, &err)) {
		snprintf(out, sizeof(out), "compile: %s", err.msg);
		alyx__err_clear(&err);
		return out;
	}
	alyx__cel_run_init(&run);
	alyx__cel_val v = alyx__cel_eval(p, NULL, &run);
	alyx__buf_init(&b, sizeof(out) - 1);
	alyx__cel_val_format(&b, &v);
	snprintf(out, sizeof(out), "%s", b.data ? b.data : "(too long)");
	alyx__buf_free(&b);
	alyx__cel_run_free(&run);
	alyx__cel_prog_free(p);
	return out;
}

static bool starts(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

TEST(precedence)
{
	ASSERT_STR_EQ(E("1 + 2 * 3"), "7");
	ASSERT_STR_EQ(E("(1 + 2) * 3"), "9");
	ASSERT_STR_EQ(E("10 - 4 - 3"), "3");
	ASSERT_STR_EQ(E("100 / 10 / 5"), "2");
	ASSERT_STR_EQ(E("5 % 3 * 2"), "4");
	ASSERT_STR_EQ(E("-2 * 3"), "-6");
	ASSERT_STR_EQ(E("--2"), "2");
	ASSERT_STR_EQ(E("!true == false"), "true");
	ASSERT_STR_EQ(E("!!true"), "true");
	ASSERT_STR_EQ(E("true || false && false"), "true");
	ASSERT_STR_EQ(E("(true || false) && false"), "false");
	ASSERT_STR_EQ(E("1 < 2 == true"), "true");
	ASSERT_STR_EQ(E("1 + 1 in [2, 3]"), "true");
	ASSERT_STR_EQ(E("true ? 1 : false ? 2 : 3"), "1");
	ASSERT_STR_EQ(E("false ? 1 : false ? 2 : 3"), "3");
	ASSERT_STR_EQ(E("1 < 2 && 2 < 3 ? 'y' : 'n'"), "\"y\"");
	ASSERT_STR_EQ(E("[1, 2, 3][1] * 2"), "4");
	ASSERT_STR_EQ(E("{'a': {'b': 5}}.a.b + 1"), "6");
	ASSERT_STR_EQ(E("-9223372036854775808"), "-9223372036854775808");
	ASSERT_STR_EQ(E("0x10 + 0x10 == 32u"), "true");
}

TEST(literals_and_escapes)
{
	ASSERT_STR_EQ(E("size('\\n')"), "1");
	ASSERT_STR_EQ(E("size(r'\\n')"), "2");
	ASSERT_STR_EQ(E("size('''a\nb''')"), "3");
	ASSERT_STR_EQ(E("size(b'\\xff\\377')"), "2");
	ASSERT_STR_EQ(E("size('\\u00e9')"), "1");
	ASSERT_STR_EQ(E("size(bytes('\\u00e9'))"), "2");
	ASSERT_STR_EQ(E("'\\U0001F600' == '\xF0\x9F\x98\x80'"), "true");
	ASSERT_STR_EQ(E("\"\\\"q\\\"\""), "\"\\\"q\\\"\"");
	ASSERT_STR_EQ(E("1.5e3"), "1500");
	ASSERT_STR_EQ(E("type(1.0)"), "double");
	ASSERT_STR_EQ(E("type(1u)"), "uint");
	ASSERT_STR_EQ(E("null == null"), "true");
	ASSERT_STR_EQ(E("{'content-type': 1}.`content-type`"), "1");
	ASSERT_STR_EQ(E("[1, 2, ]"), "[1, 2]");
	ASSERT(starts(E("'\\q'"), "compile: 1:2: unknown escape"));
	ASSERT(starts(E("'abc"), "compile: 1:1: unterminated string"));
	ASSERT(starts(E("'a\nb'"), "compile: 1:3: newline"));
	ASSERT(starts(E("'\\ud800'"), "compile: 1:2: invalid unicode"));
	ASSERT(starts(E("18446744073709551616u"), "compile: 1:1: integer"));
	ASSERT(starts(E("9223372036854775808"), "compile: 1:1: integer"));
}

TEST(comments_and_whitespace)
{
	ASSERT_STR_EQ(E("1 + // one\n 2"), "3");
	ASSERT_STR_EQ(E("// leading\n\t1\r\n+\f2 // trailing"), "3");
	ASSERT_STR_EQ(E("  \n\n  true  \n"), "true");
	ASSERT(starts(E("// only a comment"), "compile: 1:18: unexpected end"));
}

TEST(parse_errors_have_positions)
{
	ASSERT(starts(E("1 +"), "compile: 1:4: unexpected end"));
	ASSERT(starts(E("x = 1"), "compile: 1:3: unexpected character '='"));
	ASSERT(starts(E("true &&\n  (1 +)"), "compile: 2:7: unexpected ')'"));
	ASSERT(starts(E("[1, 2"), "compile: 1:6: unexpected end"));
	ASSERT(starts(E("{'a' 1}"), "compile: 1:6: unexpected '1'"));
	ASSERT(starts(E("a.b("), "compile: 1:5: unexpected end"));
	ASSERT(starts(E("if"), "compile: 1:1: reserved identifier"));
	ASSERT(starts(E("has(a)"), "compile: 1:5: invalid argument to has"));
	ASSERT(starts(E("[1].all(1, true)"), "compile: 1:9: argument is not"));
	ASSERT(starts(E("1 2"), "compile: 1:3: unexpected '2'"));
	ASSERT(starts(E("a & b"), "compile: 1:3: unexpected character '&'"));
	ASSERT(starts(E("Msg{a: 1}"), "compile: 1:4: message construction"));
}

TEST(eval_errors_and_absorption)
{
	ASSERT(starts(E("1 / 0"), "error: division by zero"));
	ASSERT(starts(E("1 % 0"), "error: modulus by zero"));
	ASSERT(starts(E("9223372036854775807 + 1"), "error: integer overflow"));
	ASSERT(starts(E("-9223372036854775808 / -1"), "error: integer overflow"));
	ASSERT(starts(E("0u - 1u"), "error: unsigned integer overflow"));
	ASSERT(starts(E("1 + 1u"), "error: no such overload"));
	ASSERT(starts(E("1 < 'a'"), "error: no such overload"));
	ASSERT_STR_EQ(E("false && 1 / 0 == 1"), "false");
	ASSERT_STR_EQ(E("1 / 0 == 1 && false"), "false");
	ASSERT_STR_EQ(E("1 / 0 == 1 || true"), "true");
	ASSERT_STR_EQ(E("true || 1 / 0 == 1"), "true");
	ASSERT(starts(E("1 / 0 == 1 || false"), "error: division by zero"));
	ASSERT(starts(E("x || false"), "error: undeclared reference to 'x'"));
	ASSERT_STR_EQ(E("[1, 2].exists(x, x / 0 == 1 || x == 2)"), "true");
	ASSERT_STR_EQ(E("[0, 1].all(x, 1 / x > 5)"), "false");
	ASSERT(starts(E("{'a': 1}.b"), "error: no such key: 'b'"));
	ASSERT(starts(E("[1][5]"), "error: index out of range"));
	ASSERT(starts(E("{1: 1, 1.0: 2}"), "error: unsupported key type"));
	ASSERT(starts(E("{1: 1, 1u: 2}"), "error: Failed with repeated key"));
}

TEST(eval_semantics)
{
	ASSERT_STR_EQ(E("1 == 1.0 && 1u == 1 && [1] == [1.0]"), "true");
	ASSERT_STR_EQ(E("{'a': 1} == {'a': 1.0}"), "true");
	ASSERT_STR_EQ(E("1 == 'a'"), "false");
	ASSERT_STR_EQ(E("2 > 1.5 && 1u < 2.5 && -1 < 0u"), "true");
	ASSERT_STR_EQ(E("0.0 / 0.0 == 0.0 / 0.0"), "false");
	ASSERT_STR_EQ(E("has({'a': 1}.a) && !has({'a': 1}.b)"), "true");
	ASSERT_STR_EQ(E("'hello'.contains('ell') && 'hello'.startsWith('he')"),
		      "true");
	ASSERT_STR_EQ(E("'hello'.endsWith('lo') && size('héllo') == 5"),
		      "true");
	ASSERT_STR_EQ(E("'abc-123'.matches('^[a-z]+-\\\\d+$')"), "true");
	ASSERT_STR_EQ(E("matches('x', 'y')"), "false");
	ASSERT(starts(E("'a'.matches('(')"), "error: invalid regular"));
	ASSERT_STR_EQ(E("[1, 2, 3].map(x, x * 2)"), "[2, 4, 6]");
	ASSERT_STR_EQ(E("[1, 2, 3].map(x, x > 1, x * 10)"), "[20, 30]");
	ASSERT_STR_EQ(E("[1, 2, 3].filter(x, x != 2)"), "[1, 3]");
	ASSERT_STR_EQ(E("[1, 2, 3].exists_one(x, x > 2)"), "true");
	ASSERT_STR_EQ(E("{'a': 1, 'b': 2}.all(k, k in ['a', 'b'])"), "true");
	ASSERT_STR_EQ(E("[[1], [2]].all(l, l.all(x, x > 0))"), "true");
	ASSERT_STR_EQ(E("'ab' + 'cd' == 'abcd' && [1] + [2] == [1, 2]"),
		      "true");
	ASSERT_STR_EQ(E("string(1e6)"), "\"1e+06\"");
	ASSERT_STR_EQ(E("string(0.1)"), "\"0.1\"");
	ASSERT_STR_EQ(E("int('-42') + int(3.9)"), "-39");
	ASSERT(starts(E("int(1e19)"), "error: int range"));
	ASSERT(starts(E("uint(-1)"), "error: uint range"));
	ASSERT_STR_EQ(E("dyn(1) == 1 && type(dyn('a')) == string"), "true");
}

TEST(eval_edges)
{
	ASSERT_STR_EQ(E("[10, 20][1u] + [10, 20][1.0]"), "40");
	ASSERT(starts(E("[10, 20][1.5]"), "error: no such overload"));
	ASSERT(starts(E("[10, 20][-1]"), "error: index out of range"));
	ASSERT_STR_EQ(E("2.0 in [1, 2] && 2u in {2: 'x'} && !(3.5 in {3: 1})"),
		      "true");
	ASSERT_STR_EQ(E("{true: 1, 'a': 2}['a'] + {true: 1}[true]"), "3");
	ASSERT_STR_EQ(E("b'abc' < b'abd' && 'a' < 'ab' && false < true"),
		      "true");
	ASSERT_STR_EQ(E("9223372036854775807 == 9223372036854775807.0"),
		      "true");
	ASSERT_STR_EQ(E("1.0 / 0.0 > 9223372036854775807"), "true");
	ASSERT(starts(E("[1] < [2]"), "error: no such overload"));
	ASSERT(starts(E("null < 1"), "error: no such overload"));
	ASSERT_STR_EQ(E("null == false || [] == {}"), "false");
	ASSERT_STR_EQ(E("type(duration('1s')) == google.protobuf.Duration"),
		      "true");
	ASSERT(starts(E("1.timestamp"), "error: type 'int' does not support"));
	ASSERT(starts(E("true ? 1 / 0 : 2"), "error: division by zero"));
	ASSERT_STR_EQ(E("false ? 1 / 0 : 2"), "2");
	ASSERT(starts(E("1 ? 2 : 3"), "error: no such overload"));
	ASSERT(starts(E("'a'.size(1)"), "error: no such overload"));
	ASSERT(starts(E("'abc'.contains(1)"), "error: no such overload"));
	ASSERT(starts(E("[1, 'a'].exists_one(x, x)"), "error: predicate"));
	ASSERT(starts(E("[1].filter(x, 1)"), "error: filter result"));
	ASSERT(starts(E("1.all(x, true)"), "error: expression of type 'int'"));
	ASSERT_STR_EQ(E("string(b'ok')"), "\"ok\"");
	ASSERT(starts(E("string(b'\xff')"), "error: invalid UTF-8"));
	ASSERT(starts(E("bool('yes')"), "error: Type conversion error"));
	ASSERT(starts(E("double('1.5x')"), "error: cannot convert"));
	ASSERT_STR_EQ(E("double('-inf') < 0.0"), "true");
}

TEST(time)
{
	ASSERT_STR_EQ(E("timestamp('2024-03-10T12:00:00Z') + duration('1h30m')"),
		      "timestamp(\"2024-03-10T13:30:00Z\")");
	ASSERT_STR_EQ(E("timestamp('2024-03-10T12:00:00+02:00').getHours()"),
		      "10");
	ASSERT_STR_EQ(E("timestamp('2024-07-01T12:00:00Z')"
			".getHours('Europe/Paris')"), "14");
	ASSERT_STR_EQ(E("timestamp('2024-01-01T12:00:00Z')"
			".getHours('Europe/Paris')"), "13");
	ASSERT_STR_EQ(E("timestamp('2024-01-01T00:30:00Z')"
			".getHours('-02:30')"), "22");
	ASSERT_STR_EQ(E("timestamp('2024-01-01T00:30:00Z')"
			".getDayOfYear('-02:30')"), "364");
	ASSERT_STR_EQ(E("timestamp('2024-12-31T00:00:00Z').getDayOfYear()"),
		      "365");
	ASSERT_STR_EQ(E("timestamp('2024-03-10T00:00:00Z').getDayOfWeek()"),
		      "0");
	ASSERT(starts(E("timestamp('2024-01-01T00:00:00Z').getHours('Mars/Base')"),
		      "error: unknown time zone"));
	ASSERT(starts(E("timestamp('2024-01-01T00:00:00Z').getHours('../etc')"),
		      "error: unknown time zone"));
	/* after the TZif files' last transition: the footer's POSIX rule */
	ASSERT_STR_EQ(E("timestamp('2050-07-01T12:00:00Z')"
			".getHours('America/New_York')"), "8");
	ASSERT_STR_EQ(E("timestamp('2050-01-01T12:00:00Z')"
			".getHours('America/New_York')"), "7");
	ASSERT_STR_EQ(E("timestamp('2060-01-01T00:00:00Z')"
			".getHours('Australia/Sydney')"), "11");
	ASSERT_STR_EQ(E("timestamp('2060-07-01T00:00:00Z')"
			".getHours('Australia/Sydney')"), "10");
	ASSERT_STR_EQ(E("timestamp('2090-07-01T00:00:00Z')"
			".getMinutes('Asia/Kathmandu')"), "45");
	ASSERT_STR_EQ(E("duration('-1.5s')"), "duration(\"-1.5s\")");
	ASSERT_STR_EQ(E("duration('2h').getMinutes()"), "120");
	ASSERT_STR_EQ(E("timestamp('2024-01-02T00:00:00Z') - "
			"timestamp('2024-01-01T00:00:00Z') == duration('24h')"),
		      "true");
	ASSERT_STR_EQ(E("string(timestamp('2024-01-01T00:00:00.120Z'))"),
		      "\"2024-01-01T00:00:00.12Z\"");
	ASSERT(starts(E("timestamp('2024-02-30T00:00:00Z')"), "error: invalid"));
	ASSERT(starts(E("duration('1d')"), "error: invalid duration"));
}

TEST(limit_deep_nesting)
{
	size_t n = 10000;
	char *s = malloc(2 * n + 2);
	memset(s, '(', n);
	s[n] = '1';
	memset(s + n + 1, ')', n);
	s[2 * n + 1] = 0;
	ASSERT(starts(E(s), "compile: 1:"));
	ASSERT_CONTAINS(E(s), "nesting exceeds");
	/* the same with lists, unary operators and member chains */
	memset(s, '[', n);
	s[n] = 0;
	ASSERT_CONTAINS(E(s), "nesting exceeds");
	memset(s, '-', n);
	s[n] = 'x';
	s[n + 1] = 0;
	ASSERT_CONTAINS(E(s), "nesting exceeds");
	for (size_t i = 0; i < n; i++)
		memcpy(s + 2 * i, "!a", 2);
	s[2 * n] = 0;
	ASSERT(starts(E(s), "compile:"));
	free(s);
}

/* Expressions at the nesting limit, compiled and evaluated on a thread
 * with a 2 MiB stack (enough under ASan; about 256 KiB without). */
static char *nest(const char *pre, const char *mid, const char *post, int n)
{
	alyx_buf b;

	alyx__buf_init(&b, 0);
	for (int i = 0; i < n; i++)
		alyx__buf_adds(&b, pre);
	alyx__buf_adds(&b, mid);
	for (int i = 0; i < n; i++)
		alyx__buf_adds(&b, post);
	return alyx__buf_take(&b);
}

static void *deep_worker(void *arg)
{
	int *ok = arg;
	const int n = ALYX_CEL_MAX_DEPTH - 2;
	char *srcs[] = {
		nest("int(", "1", ")", n), nest("[", "1", "]", n),
		nest("(1 + ", "1", ")", n), nest("true && (", "true", ")", n),
		nest("{'a': ", "1", "}", n), nest("-(", "1", ")", n),
		nest("[1].all(x, ", "true", ")", 60),
	};
	*ok = 1;
	for (size_t i = 0; i < ALYX_ARRAY_LEN(srcs); i++) {
		alyx__cel_prog *p = NULL;
		alyx__err err = {0};
		alyx__cel_run run;
		if (alyx__cel_compile(srcs[i], strlen(srcs[i]), NULL, &p,
				      &err) != ALYX_OK) {
			fprintf(stderr, "  %zu: %s\n", i, err.msg);
			*ok = 0;
		} else {
			alyx__cel_run_init(&run);
			alyx__cel_val v = alyx__cel_eval(p, NULL, &run);
			if (v.k == ALYX_CEL_ERROR)
				*ok = 0;
			alyx__cel_run_free(&run);
		}
		alyx__err_clear(&err);
		alyx__cel_prog_free(p);
		alyx__free(srcs[i]);
	}
	return NULL;
}

TEST(limit_depth_fits_a_thread_stack)
{
	pthread_attr_t attr;
	pthread_t t;
	int ok = 0;
	ASSERT_EQ(pthread_attr_init(&attr), 0);
	ASSERT_EQ(pthread_attr_setstacksize(&attr, 2u << 20), 0);
	ASSERT_EQ(pthread_create(&t, &attr, deep_worker, &ok), 0);
	ASSERT_EQ(pthread_join(t, NULL), 0);
	pthread_attr_destroy(&attr);
	ASSERT_EQ(ok, 1);
}

TEST(limit_long_chains)
{
	/* left-deep chains are bounded by depth; && / || are balanced */
	size_t n = 5000;
	char *s = malloc(n * 9 + 16);
	size_t o = 0;
	for (size_t i = 0; i < n; i++)
		o += (size_t)sprintf(s + o, "%s1", i ? " + " : "");
	ASSERT_CONTAINS(E(s), "nesting exceeds");
	o = 0;
	for (size_t i = 0; i < n; i++)
		o += (size_t)sprintf(s + o, "%strue", i ? " && " : "");
	ASSERT_STR_EQ(E(s), "true");
	o = 0;
	for (size_t i = 0; i < 2000; i++)
		o += (size_t)sprintf(s + o, "%sa", i ? "." : "");
	ASSERT(starts(E(s), "compile:"));
	free(s);
}

TEST(limit_source_size)
{
	size_t n = ALYX_CEL_MAX_SRC + 10;
	char *s = malloc(n + 1);
	alyx__cel_prog *p = NULL;
	alyx__err err = {0};
	memset(s, ' ', n);
	s[0] = '1';
	s[n] = 0;
	ASSERT_EQ(alyx__cel_compile(s, n, NULL, &p, &err), ALYX_E_TOOBIG);
	ASSERT(p == NULL);
	alyx__err_clear(&err);
	free(s);
}

TEST(limit_cost_and_memory)
{
	const char *src = "[0,1,2,3,4,5,6,7,8,9].all(a, [0,1,2,3,4,5,6,7,8,9]"
			  ".all(b, [0,1,2,3,4,5,6,7,8,9].all(c, [0,1,2,3,4,5,"
			  "6,7,8,9].all(d, a + b + c + d >= 0))))";
	alyx__cel_prog *p = NULL;
	alyx__err err = {0};
	alyx__cel_run run;
	ASSERT_OK(alyx__cel_compile(src, strlen(src), NULL, &p, &err));
	alyx__cel_run_init(&run);
	alyx__cel_val v = alyx__cel_eval(p, NULL, &run);
	ASSERT_EQ(v.k, ALYX_CEL_BOOL);
	alyx__cel_run_reset(&run);
	run.max_steps = 5000;
	v = alyx__cel_eval(p, NULL, &run);
	ASSERT_EQ(v.k, ALYX_CEL_ERROR);
	ASSERT_CONTAINS(v.v.e->msg, "cost limit");
	alyx__cel_run_free(&run);
	alyx__cel_prog_free(p);

	/* building lists and strings hits the run's memory cap */
	src = "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,"
	      "23,24,25,26,27,28,29].map(i, [0,1,2,3,4,5,6,7,8,9].map(j, "
	      "'abcdefghij' + 'abcdefghij'))";
	ASSERT_OK(alyx__cel_compile(src, strlen(src), NULL, &p, &err));
	alyx__cel_run_init(&run);
	run.max_bytes = 4096;
	v = alyx__cel_eval(p, NULL, &run);
	ASSERT_EQ(v.k, ALYX_CEL_ERROR);
	ASSERT_CONTAINS(v.v.e->msg, "memory limit");
	alyx__cel_run_free(&run);
	alyx__cel_prog_free(p);
}

TEST(limit_cost_counts_scans)
{
	/* 5000 iterations of a 5000-element scan: too much work, although
	 * it visits few nodes */
	static alyx__cel_val big[5000];
	const char *vars[] = {"big"};
	alyx__cel_opts o = {.vars = vars, .n_vars = 1};
	alyx__cel_prog *p = NULL;
	alyx__err err = {0};
	alyx__cel_run run;
	const char *src = "big.all(x, x in big)";

	for (int i = 0; i < 5000; i++)
		big[i] = alyx__cel_int(i);
	alyx__cel_val v = alyx__cel_list(big, 5000);
	ASSERT_OK(alyx__cel_compile(src, strlen(src), &o, &p, &err));
	alyx__cel_run_init(&run);
	alyx__cel_val r = alyx__cel_eval(p, &v, &run);
	ASSERT_EQ(r.k, ALYX_CEL_ERROR);
	ASSERT_CONTAINS(r.v.e->msg, "cost limit");
	alyx__cel_run_reset(&run);
	v.n = 500;	/* 500 x 500 is fine */
	r = alyx__cel_eval(p, &v, &run);
	ASSERT_EQ(r.k, ALYX_CEL_BOOL);
	alyx__cel_run_free(&run);
	alyx__cel_prog_free(p);
}

TEST(variables_and_containers)
{
	const char *vars[] = {"x", "a.b.c", "ns.y"};
	alyx__cel_opts o = {.container = "ns", .vars = vars, .n_vars = 3};
	alyx__cel_val vals[3] = {alyx__cel_int(7), alyx__cel_str("q", 1),
				 alyx__cel_bool(true)};
	alyx__cel_prog *p = NULL;
	alyx__err err = {0};
	alyx__cel_run run;
	const char *src = "x == 7 && a.b.c == 'q' && y && [1].all(x, x == 1)";

	ASSERT_OK(alyx__cel_compile(src, strlen(src), &o, &p, &err));
	alyx__cel_run_init(&run);
	alyx__cel_val v = alyx__cel_eval(p, vals, &run);
	ASSERT_EQ(v.k, ALYX_CEL_BOOL);
	ASSERT(v.v.b);
	alyx__cel_run_free(&run);
	alyx__cel_prog_free(p);
}

/* ---- Alyx ---- */

static alyx__field post_fields[] = {
	{.name = "id", .type = ALYX_T_UUID, .primary = true},
	{.name = "title", .type = ALYX_T_STRING},
	{.name = "author_id", .type = ALYX_T_UUID},
	{.name = "published", .type = ALYX_T_BOOL},
	{.name = "published_at", .type = ALYX_T_TIMESTAMP, .nullable = true},
	{.name = "view_count", .type = ALYX_T_INT},
	{.name = "score", .type = ALYX_T_FLOAT},
	{.name = "tags", .type = ALYX_T_JSON, .nullable = true},
};
static alyx__collection posts = {.name = "posts", .fields = post_fields,
				 .n_fields = 8};

static const char *post_json =
	"{\"id\":\"p1\",\"title\":\"Hello\",\"author_id\":\"u1\","
	"\"published\":false,\"published_at\":\"2024-05-01T10:00:00.000Z\","
	"\"view_count\":12,\"score\":2,\"tags\":[\"a\",\"b\"]}";

static int run_rule(const char *src, const char *auth, const char *doc,
		    const char *req, char *msg)
{
	alyx__rule *r = NULL;
	alyx__err err = {0};
	cJSON *a = auth ? cJSON_Parse(auth) : NULL;
	cJSON *d = doc ? cJSON_Parse(doc) : NULL;
	cJSON *q = req ? cJSON_Parse(req) : NULL;
	alyx__rule_ctx ctx = {a, d, q};
	int res;

	if (alyx__rule_compile(src, strlen(src), &posts, &r, &err)) {
		if (msg)
			snprintf(msg, 600, "%s", err.msg);
		alyx__err_clear(&err);
		res = -2;
		goto out;
	}
	res = alyx__rule_eval(r, &ctx, &err);
	if (msg)
		snprintf(msg, 600, "%s", err.code ? err.msg : "");
	alyx__err_clear(&err);
out:
	alyx__rule_free(r);
	cJSON_Delete(a);
	cJSON_Delete(d);
	cJSON_Delete(q);
	return res;
}

#define USER "{\"id\":\"u1\",\"email\":\"a@b.c\",\"role\":\"user\"," \
	     "\"verified\":true,\"metadata\":{\"plan\":\"pro\"}}"
#define ADMIN "{\"id\":\"u9\",\"role\":\"admin\"}"

TEST(alyx_seed_rules)
{
	const char *read = "doc.published == true || auth.id == doc.author_id"
			   " || auth.role == 'admin'";
	char msg[600];

	ASSERT_EQ(run_rule(read, USER, post_json, NULL, msg), ALYX_RULE_ALLOW);
	ASSERT_EQ(run_rule(read, ADMIN, post_json, NULL, msg), ALYX_RULE_ALLOW);
	ASSERT_EQ(run_rule(read, "{\"id\":\"u2\"}", post_json, NULL, msg),
		  ALYX_RULE_DENY);
	/* unauthenticated: auth is null, auth.id is an error -> deny */
	ASSERT_EQ(run_rule(read, NULL, post_json, NULL, msg),
		  ALYX_RULE_ERROR);
	ASSERT_CONTAINS(msg, "1:30:");
	ASSERT_EQ(run_rule("auth == null", NULL, NULL, NULL, msg),
		  ALYX_RULE_ALLOW);
	ASSERT_EQ(run_rule("auth != null && auth.verified == true && "
			   "size(request.body.title) <= 200",
			   USER, NULL,
			   "{\"method\":\"POST\",\"body\":{\"title\":\"hi\"}}",
			   msg), ALYX_RULE_ALLOW);
	ASSERT_EQ(run_rule("auth.metadata.plan == 'pro' && "
			   "auth.email.endsWith('@b.c')", USER, NULL, NULL,
			   msg), ALYX_RULE_ALLOW);
	/* missing auth keys are filled: role null, verified false */
	ASSERT_EQ(run_rule("auth.role == null && !auth.verified && "
			   "auth.metadata == {}", "{\"id\":\"x\"}", NULL, NULL,
			   msg), ALYX_RULE_ALLOW);
}

TEST(alyx_doc_types)
{
	char msg[600];

	ASSERT_EQ(run_rule("doc.published_at < timestamp('2025-01-01T00:00:00Z')"
			   " && doc.published_at.getFullYear() == 2024",
			   NULL, post_json, NULL, msg), ALYX_RULE_ALLOW);
	ASSERT_EQ(run_rule("doc.published_at < request.time", NULL, post_json,
			   "{\"time\":\"2024-06-01T00:00:00Z\"}", msg),
		  ALYX_RULE_ALLOW);
	ASSERT_EQ(run_rule("type(doc.score) == double && doc.view_count > 10 "
			   "&& 'a' in doc.tags", NULL, post_json, NULL, msg),
		  ALYX_RULE_ALLOW);
	ASSERT_EQ(run_rule("request.method == 'GET' && request.ip == '::1' && "
			   "request.time > timestamp('2020-01-01T00:00:00Z')",
			   NULL, NULL, "{\"method\":\"GET\",\"ip\":\"::1\"}",
			   msg), ALYX_RULE_ALLOW);
	ASSERT_EQ(run_rule("doc.title", NULL, post_json, NULL, msg),
		  ALYX_RULE_ERROR);
	ASSERT_CONTAINS(msg, "not a bool");
	ASSERT_EQ(run_rule("doc.nope == 1", NULL, post_json, NULL, msg),
		  ALYX_RULE_ERROR);
	ASSERT_CONTAINS(msg, "1:4: no such key: 'nope'");
	ASSERT_EQ(run_rule("doc.title ==", NULL, post_json, NULL, msg), -2);
	ASSERT_CONTAINS(msg, "1:13:");
}

TEST(alyx_large_and_duplicate_keys)
{
	/* 20000 keys plus duplicates: linear conversion, first key wins */
	alyx_buf b;
	char msg[600];
	alyx__buf_init(&b, 0);
	alyx__buf_adds(&b, "{\"body\":{");
	for (int i = 0; i < 20000; i++)
		alyx__buf_addf(&b, "%s\"k%d\":%d", i ? "," : "", i, i);
	alyx__buf_adds(&b, ",\"k5\":-1,\"k19999\":-1},\"method\":\"GET\","
		       "\"method\":\"PUT\"}");
	ASSERT_EQ(run_rule("request.body.k5 == 5 && request.body.k19999 == "
			   "19999 && size(request.body) == 20000 && "
			   "request.method == 'GET'", NULL, NULL, b.data, msg),
		  ALYX_RULE_ALLOW);
	ASSERT_EQ(run_rule("auth.role == 'a'", "{\"role\":\"a\",\"role\":\"b\","
			   "\"x\":1,\"x\":2}", NULL, NULL, msg),
		  ALYX_RULE_ALLOW);
	alyx__buf_free(&b);
}

static const char *check(const char *src)
{
	static char out[1200];
	alyx__rule *r = NULL;
	alyx__err err = {0};

	if (alyx__rule_compile(src, strlen(src), &posts, &r, &err)) {
		snprintf(out, sizeof(out), "compile: %s", err.msg);
	} else if (alyx__rule_check(r, &posts, &err)) {
		snprintf(out, sizeof(out), "%s %s", err.msg,
			 err.details ? err.details : "");
	} else {
		snprintf(out, sizeof(out), "ok");
	}
	alyx__err_clear(&err);
	alyx__rule_free(r);
	return out;
}

TEST(alyx_check)
{
	ASSERT_STR_EQ(check("doc.published == true || auth.id == "
			    "doc.author_id || auth.role == 'admin'"), "ok");
	ASSERT_STR_EQ(check("doc.view_count > 10 && doc.score < 2.5 && "
			    "doc.published_at == null"), "ok");
	ASSERT_STR_EQ(check("doc.published_at < request.time"), "ok");
	ASSERT_STR_EQ(check("doc.tags.exists(t, t == 'x')"), "ok");
	ASSERT_STR_EQ(check("doc.titel == 'x'"),
		      "1:4: unknown field 'titel' in collection 'posts' "
		      "{\"line\":1,\"column\":4,\"field\":\"titel\"}");
	ASSERT_STR_EQ(check("true &&\n  doc.published == 'yes'"),
		      "2:17: cannot compare bool with string "
		      "{\"line\":2,\"column\":17,\"field\":\"published\"}");
	ASSERT_CONTAINS(check("doc.view_count > 'x'"),
			"1:16: cannot compare int with string");
	ASSERT_CONTAINS(check("doc.published_at > '2024-01-01'"),
			"cannot compare google.protobuf.Timestamp with string");
	ASSERT_CONTAINS(check("doc.title in [1, 2]"),
			"cannot compare string with int");
	ASSERT_CONTAINS(check("auth.name == 'x'"), "unknown auth field 'name'");
	ASSERT_CONTAINS(check("request.path == 'x'"),
			"unknown request field 'path'");
	ASSERT_CONTAINS(check("user.id == 'x'"),
			"undeclared reference to 'user'");
	ASSERT_CONTAINS(check("doc.view_count + 1"), "must be a bool");
	ASSERT_CONTAINS(check("has(doc.nope)"), "unknown field 'nope'");
	ASSERT_CONTAINS(check("frobnicate(doc.id)"), "unknown function");
}

TEST(alyx_eval_vals_no_alloc_reuse)
{
	/* the hot path: convert once, evaluate many times with one run */
	const char *src = "doc.published == true || auth.id == doc.author_id";
	alyx__rule *r = NULL;
	alyx__err err = {0};
	alyx__cel_run conv, run;
	alyx__cel_val vars[3];
	cJSON *a = cJSON_Parse(USER), *d = cJSON_Parse(post_json);

	ASSERT_OK(alyx__rule_compile(src, strlen(src), &posts, &r, &err));
	alyx__cel_run_init(&conv);
	ASSERT_OK(alyx__rule_auth_val(a, &conv, &vars[0]));
	ASSERT_OK(alyx__rule_json_val(d, &posts, &conv, &vars[1]));
	ASSERT_OK(alyx__rule_request_val(NULL, &conv, &vars[2]));
	alyx__cel_run_init(&run);
	for (int i = 0; i < 1000; i++) {
		ASSERT_EQ(alyx__rule_eval_vals(r, vars, &run, &err),
			  ALYX_RULE_ALLOW);
		ASSERT(run.chunks == NULL);	/* stayed in the inline block */
		alyx__cel_run_reset(&run);
	}
	alyx__cel_run_free(&run);
	alyx__cel_run_free(&conv);
	alyx__rule_free(r);
	cJSON_Delete(a);
	cJSON_Delete(d);
}

TEST(alyx_rules_build)
{
	alyx__collection c = posts;
	alyx__rule *rs[ALYX_RULE_COUNT];
	alyx__err err = {0};

	c.rules[ALYX_RULE_READ] = "doc.published == true || auth.role == "
				  "'admin'";
	c.rules[ALYX_RULE_DELETE] = "auth.role == 'admin'";
	c.rule_line[ALYX_RULE_READ] = 40;
	c.rule_col[ALYX_RULE_READ] = 13;
	ASSERT_OK(alyx__rules_build(&c, rs, &err));
	ASSERT(rs[ALYX_RULE_CREATE] == NULL && rs[ALYX_RULE_READ] != NULL);
	ASSERT(rs[ALYX_RULE_DELETE] != NULL);
	for (int i = 0; i < ALYX_RULE_COUNT; i++)
		alyx__rule_free(rs[i]);

	c.rules[ALYX_RULE_READ] = "doc.published == 'yes'";
	ASSERT_EQ(alyx__rules_build(&c, rs, &err), ALYX_E_SCHEMA);
	ASSERT_STR_EQ(err.msg, "40:27: rule posts.read: cannot compare bool "
		      "with string");
	ASSERT_CONTAINS(err.details, "\"operation\":\"read\"");
	ASSERT_CONTAINS(err.details, "\"rule_column\":15");
	for (int i = 0; i < ALYX_RULE_COUNT; i++)
		ASSERT(rs[i] == NULL);
	alyx__err_clear(&err);

	c.rules[ALYX_RULE_READ] = NULL;
	c.rules[ALYX_RULE_UPDATE] = "auth.id ==\n  doc.author_id &&";
	ASSERT_EQ(alyx__rules_build(&c, rs, &err), ALYX_E_SCHEMA);
	ASSERT_CONTAINS(err.msg, "2:19: rule posts.update: unexpected end");
	alyx__err_clear(&err);
}

TEST_MAIN()
