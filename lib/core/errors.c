/* errors.c - stable error names and the per-thread, per-handle last error. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"

static const struct {
	const char *name;
	const char *text;
} codes[] = {
	[ALYX_OK] = {"OK", "success"},
	[ALYX_E_MISUSE] = {"MISUSE", "library used incorrectly"},
	[ALYX_E_NOMEM] = {"OUT_OF_MEMORY", "out of memory"},
	[ALYX_E_IO] = {"IO_ERROR", "input/output error"},
	[ALYX_E_CONFIG] = {"CONFIG_ERROR", "invalid configuration"},
	[ALYX_E_SCHEMA] = {"SCHEMA_ERROR", "invalid schema"},
	[ALYX_E_MIGRATION] = {"MIGRATION_REQUIRED",
			      "change needs a migration file or failed"},
	[ALYX_E_NOTFOUND] = {"NOT_FOUND", "not found"},
	[ALYX_E_VALIDATION] = {"VALIDATION_ERROR", "validation failed"},
	[ALYX_E_CONFLICT] = {"CONFLICT", "unique or foreign-key conflict"},
	[ALYX_E_BADQUERY] = {"INVALID_QUERY", "invalid query"},
	[ALYX_E_BADJSON] = {"INVALID_JSON", "invalid JSON input"},
	[ALYX_E_TOOBIG] = {"TOO_LARGE", "input or result too large"},
	[ALYX_E_FORBIDDEN] = {"FORBIDDEN", "access denied by rule"},
	[ALYX_E_UNAUTHORIZED] = {"UNAUTHORIZED", "authentication required"},
	[ALYX_E_INTERNAL] = {"INTERNAL_ERROR", "internal error"},
	[ALYX_E_BUSY] = {"BUSY", "database busy"},
	[ALYX_E_RULE] = {"RULE_ERROR", "access rule error"},
	[ALYX_E_RATELIMIT] = {"RATE_LIMITED", "too many requests"},
	[ALYX_E_UNAVAILABLE] = {"UNAVAILABLE", "resource unavailable"},
	[ALYX_E_TIMEOUT] = {"TIMEOUT", "operation timed out"},
	[ALYX_E_CHECKSUM] = {"CHECKSUM_MISMATCH",
			     "applied migration was modified"},
	[ALYX_E_EXISTS] = {"ALREADY_EXISTS", "already exists"},
	[ALYX_E_UNSUPPORTED] = {"UNSUPPORTED", "not supported by this build"},
	[ALYX_E_FUNCTION] = {"FUNCTION_ERROR", "function failed"},
};

ALYX_API const char *alyx_errname(int code)
{
	if (code < 0 || (size_t)code >= ALYX_ARRAY_LEN(codes) ||
	    !codes[code].name)
		return "UNKNOWN_ERROR";
	return codes[code].name;
}

ALYX_API const char *alyx_strerror(int code)
{
	if (code < 0 || (size_t)code >= ALYX_ARRAY_LEN(codes) ||
	    !codes[code].text)
		return "unknown error";
	return codes[code].text;
}

/* One slot per thread; it remembers which handle it belongs to, so a
 * thread switching between handles never reads another handle's error. */
static _Thread_local struct {
	const alyx *handle;
	int code;
	char msg[512];
	char *details;
} last;

/* The details of a thread's last error are heap memory: a thread that
 * exits (an HTTP service thread) frees them through this key's
 * destructor, which runs while the thread's _Thread_local data is still
 * there. */
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static void thread_exit(void *unused)
{
	alyx__free(last.details);
	last.details = NULL;
}

static void exit_key_init(void)
{
	pthread_key_create(&exit_key, thread_exit);
}

static void keep_details(char *details)
{
	last.details = details;
	if (details) {
		pthread_once(&exit_once, exit_key_init);
		pthread_setspecific(exit_key, &last);
	}
}

int alyx__report(const alyx *a, const alyx__err *e)
{
	last.handle = a;
	last.code = e->code;
	if (e->code == ALYX_OK) {
		last.msg[0] = '\0';
	} else if (e->msg[0]) {
		snprintf(last.msg, sizeof(last.msg), "%s", e->msg);
	} else {
		snprintf(last.msg, sizeof(last.msg), "%s",
			 alyx_strerror(e->code));
	}
	alyx__free(last.details);
	keep_details(e->details ? alyx__strdup(e->details) : NULL);
	return e->code;
}

void alyx__report_ok(const alyx *a)
{
	last.handle = a;
	last.code = ALYX_OK;
	last.msg[0] = '\0';
	alyx__free(last.details);
	last.details = NULL;
}

ALYX_API int alyx_errcode(const alyx *a)
{
	return last.handle == a ? last.code : ALYX_OK;
}

ALYX_API const char *alyx_errmsg(const alyx *a)
{
	return last.handle == a ? last.msg : "";
}

ALYX_API const char *alyx_errdetails(const alyx *a)
{
	if (last.handle != a || !last.details)
		return "{}";
	return last.details;
}

ALYX_API char *alyx_error_json(const alyx *a)
{
	alyx_buf b;
	int code = alyx_errcode(a);

	alyx__buf_init(&b, 0);
	alyx__buf_adds(&b, "{\"code\":");
	alyx__json_strz(&b, alyx_errname(code));
	alyx__buf_adds(&b, ",\"message\":");
	alyx__json_strz(&b, alyx_errmsg(a));
	alyx__buf_adds(&b, ",\"details\":");
	alyx__buf_adds(&b, alyx_errdetails(a));
	alyx__buf_addc(&b, '}');
	return alyx__buf_take(&b);
}

ALYX_API uint32_t alyx_version(void)
{
	return ALYX_VERSION_NUM;
}

ALYX_API const char *alyx_version_string(void)
{
	return ALYX_VERSION_STRING;
}
