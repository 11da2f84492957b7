/*
 * harness.h - the small test harness of Alyx's C tests.
 *
 *   #include "harness.h"
 *   TEST(name) { ASSERT_EQ(1 + 1, 2); ASSERT_STR_EQ(s, "x"); }
 *   TEST_MAIN()
 *
 * Each test runs in a forked child with a timeout (default 60 s,
 * ALYX_TEST_TIMEOUT overrides), so a crash fails one test, not the run.
 * `prog --no-fork --filter=NAME` runs tests in-process (for gdb); the
 * filter is a substring.  A test may call SKIP("reason").  The run ends
 * with the line "N passed, N failed, N skipped" and exits 1 on a failure.
 * Assertions print both values.  Tests must close what they open so leak
 * checkers stay quiet.
 */
#ifndef ALYX_TEST_HARNESS_H
#define ALYX_TEST_HARNESS_H

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef void (*th_fn)(void);
struct th_test {
	const char *name;
	th_fn fn;
};

#define TH_MAX 1024
static struct th_test th_tests[TH_MAX];
static int th_count;
static int th_failed_here;

#define TH_SKIP_EXIT 77

#define TEST(name)                                                      \
	static void test_##name(void);                                  \
	__attribute__((constructor)) static void th_reg_##name(void)    \
	{                                                               \
		if (th_count < TH_MAX)                                  \
			th_tests[th_count++] =                          \
				(struct th_test){#name, test_##name};   \
	}                                                               \
	static void test_##name(void)

#define TH_FAIL(...)                                                    \
	do {                                                            \
		fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);       \
		fprintf(stderr, __VA_ARGS__);                           \
		fprintf(stderr, "\n");                                  \
		th_failed_here = 1;                                     \
		th_abort();                                             \
	} while (0)

#define SKIP(reason)                                                    \
	do {                                                            \
		fprintf(stderr, "  skipped: %s\n", reason);             \
		th_skip();                                              \
	} while (0)

#define ASSERT(c)                                                       \
	do {                                                            \
		if (!(c))                                               \
			TH_FAIL("assertion failed: %s", #c);            \
	} while (0)

#define ASSERT_EQ(a, b)                                                 \
	do {                                                            \
		intmax_t th_a = (intmax_t)(a), th_b = (intmax_t)(b);    \
		if (th_a != th_b)                                       \
			TH_FAIL("%s == %s: %jd != %jd", #a, #b, th_a,   \
				th_b);                                  \
	} while (0)

#define ASSERT_NE(a, b)                                                 \
	do {                                                            \
		intmax_t th_a = (intmax_t)(a), th_b = (intmax_t)(b);    \
		if (th_a == th_b)                                       \
			TH_FAIL("%s != %s: both %jd", #a, #b, th_a);    \
	} while (0)

#define ASSERT_OK(rc) ASSERT_EQ((rc), 0)

#define ASSERT_STR_EQ(a, b)                                             \
	do {                                                            \
		const char *th_a = (a), *th_b = (b);                    \
		if (!th_a || !th_b || strcmp(th_a, th_b) != 0)          \
			TH_FAIL("%s == %s:\n    got:  %s\n    want: %s", \
				#a, #b, th_a ? th_a : "(null)",         \
				th_b ? th_b : "(null)");                \
	} while (0)

#define ASSERT_CONTAINS(hay, needle)                                    \
	do {                                                            \
		const char *th_h = (hay), *th_n = (needle);             \
		if (!th_h || !strstr(th_h, th_n))                       \
			TH_FAIL("%s does not contain \"%s\":\n    %s", \
				#hay, th_n, th_h ? th_h : "(null)");    \
	} while (0)

static int th_forked = 1;

#if defined(__SANITIZE_ADDRESS__)
int __lsan_do_recoverable_leak_check(void);
static int th_leak_check(void)
{
	return __lsan_do_recoverable_leak_check();
}
#else
static int th_leak_check(void)
{
	return 0;
}
#endif

__attribute__((unused)) static void th_abort(void)
{
	if (th_forked)
		_exit(1);
	/* In --no-fork mode a failure ends the run where it happened. */
	abort();
}

__attribute__((unused)) static void th_skip(void)
{
	if (th_forked)
		_exit(TH_SKIP_EXIT);
	exit(TH_SKIP_EXIT);
}

static int th_run_one(const struct th_test *t, int timeout)
{
	pid_t pid;
	int status = 0;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		alarm((unsigned)timeout);
		t->fn();
		fflush(stdout);
		/* _exit skips LeakSanitizer's exit-time check: run it here so
		 * a test that leaks fails. */
		if (th_leak_check() != 0)
			th_failed_here = 1;
		_exit(th_failed_here ? 1 : 0);
	}
	if (waitpid(pid, &status, 0) < 0)
		return 1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "  killed by signal %d%s\n", WTERMSIG(status),
			WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
	}
	return 1;
}

static int th_main(int argc, char **argv)
{
	const char *filter = NULL, *env = getenv("ALYX_TEST_TIMEOUT");
	int i, passed = 0, failed = 0, skipped = 0;
	int timeout = env ? atoi(env) : 60;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--no-fork") == 0)
			th_forked = 0;
		else if (strncmp(argv[i], "--filter=", 9) == 0)
			filter = argv[i] + 9;
	}
	for (i = 0; i < th_count; i++) {
		const struct th_test *t = &th_tests[i];
		int rc;

		if (filter && !strstr(t->name, filter))
			continue;
		if (th_forked) {
			rc = th_run_one(t, timeout);
		} else {
			t->fn();
			rc = 0;
		}
		if (rc == 0) {
			passed++;
			printf("ok      %s\n", t->name);
		} else if (rc == TH_SKIP_EXIT) {
			skipped++;
			printf("skip    %s\n", t->name);
		} else {
			failed++;
			printf("FAIL    %s\n", t->name);
		}
		fflush(stdout);
	}
	printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
	return failed ? 1 : 0;
}

#define TEST_MAIN()                                                     \
	int main(int argc, char **argv)                                 \
	{                                                               \
		return th_main(argc, argv);                             \
	}

#endif
