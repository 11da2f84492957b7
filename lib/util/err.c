/* err.c - error triples (code, message, details) and field-error lists. */
#include <stdio.h>
#include <string.h>

#include "util.h"

void alyx__err_clear(alyx__err *e)
{
	alyx__free(e->details);
	e->details = NULL;
	e->code = ALYX_OK;
	e->msg[0] = '\0';
}

static void vset(alyx__err *e, int code, char *details, const char *fmt,
		 va_list ap)
{
	alyx__free(e->details);
	e->code = code;
	e->details = details;
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
}

int alyx__err_set(alyx__err *e, int code, const char *details_json,
		  const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vset(e, code, alyx__strdup(details_json), fmt, ap);
	va_end(ap);
	return code;
}

int alyx__err_setd(alyx__err *e, int code, char *details, const char *fmt,
		   ...)
{
	va_list ap;

	va_start(ap, fmt);
	vset(e, code, details, fmt, ap);
	va_end(ap);
	return code;
}

void alyx__err_move(alyx__err *dst, alyx__err *src)
{
	alyx__free(dst->details);
	*dst = *src;
	src->details = NULL;
	src->code = ALYX_OK;
	src->msg[0] = '\0';
}

void alyx__fielderrs_init(alyx__fielderrs *fe)
{
	alyx__buf_init(&fe->buf, 1 << 20);
	fe->count = 0;
}

void alyx__fielderrs_add(alyx__fielderrs *fe, const char *field,
			 const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	alyx__buf_adds(&fe->buf, fe->count ? "," : "{\"fields\":[");
	alyx__buf_adds(&fe->buf, "{\"field\":");
	alyx__json_strz(&fe->buf, field);
	alyx__buf_adds(&fe->buf, ",\"code\":");
	alyx__json_strz(&fe->buf, code);
	alyx__buf_adds(&fe->buf, ",\"message\":");
	alyx__json_strz(&fe->buf, msg);
	alyx__buf_addc(&fe->buf, '}');
	fe->count++;
}

char *alyx__fielderrs_take(alyx__fielderrs *fe)
{
	if (!fe->count)
		return NULL;
	alyx__buf_adds(&fe->buf, "]}");
	fe->count = 0;
	return alyx__buf_take(&fe->buf);
}

void alyx__fielderrs_free(alyx__fielderrs *fe)
{
	alyx__buf_free(&fe->buf);
	fe->count = 0;
}
