/*
 * d-log.c - the daemon's own log lines (start, stop, start-up errors) on
 * stderr, as JSON lines or logfmt like the server's request lines.  Each
 * line goes out in one write(), so lines from several threads never mix.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "d.h"

static int log_format = ALYX_LOG_JSON;

void d_log_init(int format)
{
	log_format = format;
}

static void add(char *buf, size_t cap, size_t *n, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void add(char *buf, size_t cap, size_t *n, const char *fmt, ...)
{
	va_list ap;

	if (*n >= cap)
		return;
	va_start(ap, fmt);
	int w = vsnprintf(buf + *n, cap - *n, fmt, ap);
	va_end(ap);
	if (w > 0)
		*n += (size_t)w < cap - *n ? (size_t)w : cap - *n - 1;
}

/* A JSON string (also a valid quoted logfmt value). */
static void add_str(char *buf, size_t cap, size_t *n, const char *s)
{
	add(buf, cap, n, "\"");
	for (; s && *s && *n + 8 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			add(buf, cap, n, "\\%c", c);
		else if (c == '\n')
			add(buf, cap, n, "\\n");
		else if (c < 0x20)
			add(buf, cap, n, "\\u%04x", c);
		else
			add(buf, cap, n, "%c", c);
	}
	add(buf, cap, n, "\"");
}

/* logfmt values are quoted only when they need it. */
static void add_val(char *buf, size_t cap, size_t *n, const char *v)
{
	bool quote = !*v;
	for (const char *p = v; *p; p++)
		if (*p == ' ' || *p == '"' || *p == '=' || *p == '\\' ||
		    (unsigned char)*p < 0x20)
			quote = true;
	if (log_format == ALYX_LOG_LOGFMT && !quote)
		add(buf, cap, n, "%s", v);
	else
		add_str(buf, cap, n, v);
}

static void begin(char *buf, size_t cap, size_t *n, const char *level,
		  const char *msg)
{
	struct timeval tv;
	struct tm tm;
	char ts[32];

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	if (log_format == ALYX_LOG_LOGFMT) {
		add(buf, cap, n, "ts=%s.%03dZ level=%s msg=", ts,
		    (int)(tv.tv_usec / 1000), level);
	} else {
		add(buf, cap, n, "{\"ts\":\"%s.%03dZ\",\"level\":\"%s\","
		    "\"msg\":", ts, (int)(tv.tv_usec / 1000), level);
	}
	add_val(buf, cap, n, msg);
}

static void kv(char *buf, size_t cap, size_t *n, const char *k,
	       const char *v)
{
	if (!k)
		return;
	if (log_format == ALYX_LOG_LOGFMT)
		add(buf, cap, n, " %s=", k);
	else
		add(buf, cap, n, ",\"%s\":", k);
	add_val(buf, cap, n, v ? v : "");
}

static void emit(char *buf, size_t cap, size_t n)
{
	if (log_format != ALYX_LOG_LOGFMT)
		add(buf, cap, &n, "}");
	add(buf, cap, &n, "\n");
	if (n && buf[n - 1] != '\n')
		buf[n - 1] = '\n';	/* truncated: still one line */
	ssize_t w;
	do
		w = write(2, buf, n);
	while (w < 0 && errno == EINTR);
}

void d_log(const char *level, const char *msg, const char *k1,
	   const char *v1, const char *k2, const char *v2)
{
	char buf[4096];
	size_t n = 0;

	begin(buf, sizeof(buf), &n, level, msg);
	kv(buf, sizeof(buf), &n, k1, v1);
	kv(buf, sizeof(buf), &n, k2, v2);
	emit(buf, sizeof(buf), n);
}

void d_log_int(const char *level, const char *msg, const char *k,
	       long long v)
{
	char buf[1024];
	size_t n = 0;

	begin(buf, sizeof(buf), &n, level, msg);
	if (log_format == ALYX_LOG_LOGFMT)
		add(buf, sizeof(buf), &n, " %s=%lld", k, v);
	else
		add(buf, sizeof(buf), &n, ",\"%s\":%lld", k, v);
	emit(buf, sizeof(buf), n);
}
