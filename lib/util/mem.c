/* mem.c - the one allocator seam of libalyx, with a fault-injection hook. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static atomic_long fail_after;

void alyx__fail_alloc_after(long n)
{
	atomic_store(&fail_after, n);
}

/* An injected failure sets errno as a failing malloc() does. */
static bool should_fail(void)
{
	long n = atomic_load(&fail_after);

	if (n <= 0)
		return false;
	n = atomic_fetch_sub(&fail_after, 1);
	if (n != 1)
		return false;
	errno = ENOMEM;
	return true;
}

void *alyx__malloc(size_t n)
{
	if (should_fail())
		return NULL;
	return malloc(n ? n : 1);
}

void *alyx__calloc(size_t n, size_t size)
{
	if (should_fail())
		return NULL;
	return calloc(n ? n : 1, size ? size : 1);
}

void *alyx__realloc(void *p, size_t n)
{
	if (should_fail())
		return NULL;
	return realloc(p, n ? n : 1);
}

void alyx__free(void *p)
{
	int saved = errno;

	free(p);
	errno = saved;
}

char *alyx__strndup(const char *s, size_t n)
{
	char *d;

	if (!s)
		return NULL;
	d = alyx__malloc(n + 1);
	if (!d)
		return NULL;
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

char *alyx__strdup(const char *s)
{
	return s ? alyx__strndup(s, strlen(s)) : NULL;
}

char *alyx__asprintf(const char *fmt, ...)
{
	va_list ap;
	alyx_buf b;

	alyx__buf_init(&b, 0);
	va_start(ap, fmt);
	alyx__buf_vaddf(&b, fmt, ap);
	va_end(ap);
	return alyx__buf_take(&b);
}

/* Public releaser for memory handed out by the API. */
ALYX_API void alyx_free(void *p)
{
	alyx__free(p);
}
