/*
 * api.c - the public functions API: alyx_invoke(), alyx_functions_json().
 */
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "auth/auth.h"
#include "core/config.h"
#include "core/handle.h"
#include "functions/functions.h"

static double mono_ms_f(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int enabled(alyx *a, alyx__err *err)
{
	if (!a->cfg->functions.enabled)
		return alyx__err_set(err, ALYX_E_UNAVAILABLE, NULL,
				     "functions are disabled (alyx.yaml "
				     "functions.enabled)");
	return ALYX_OK;
}

ALYX_API int alyx_invoke(alyx *a, const alyx_ctx *ctx, const char *name,
			 const char *input_json, size_t len, char **out)
{
	alyx__err err = {0};
	alyx__fn_def d = {0};
	struct alyx__fn *fn;
	cJSON *input = NULL, *auth = NULL;
	char *auth_text = NULL;
	int rc;

	if (out)
		*out = NULL;
	rc = alyx__enter(a, &err);
	if (rc != ALYX_OK)
		goto out;
	if (!name || !out) {
		rc = alyx__err_set(&err, ALYX_E_MISUSE, NULL,
				   "alyx_invoke: name and out are required");
		goto out;
	}
	rc = enabled(a, &err);
	if (rc != ALYX_OK)
		goto out;
	if (!input_json) {
		input_json = "{}";
		len = 2;
	} else if (len == (size_t)-1) {
		len = strlen(input_json);
	}
	rc = alyx__json_parse(a, input_json, len, "function input", &input,
			      &err);
	if (rc != ALYX_OK)
		goto out;
	if (!cJSON_IsObject(input)) {
		rc = alyx__err_set(&err, ALYX_E_BADJSON, NULL,
				   "function input must be a JSON object");
		goto out;
	}
	rc = alyx__fn_get(a, &fn, &err);
	if (rc != ALYX_OK)
		goto out;
	rc = alyx__fn_lookup(alyx__fn_registry(fn), name, &d, &err);
	if (rc != ALYX_OK)
		goto out;
	if (d.error) {
		rc = alyx__err_set(&err, ALYX_E_CONFIG, NULL, "function %s: %s",
				   d.name, d.error);
		goto out;
	}
	if (ctx && ctx->user_id) {	/* anonymous: no auth */
		auth = alyx__ctx_auth_json(ctx);
		auth_text = auth ? cJSON_PrintUnformatted(auth) : NULL;
		if (!auth_text) {
			rc = alyx__err_set(&err, ALYX_E_NOMEM, NULL,
					   "out of memory");
			goto out;
		}
	}
	{
		double t0 = mono_ms_f();

		rc = alyx__fn_call(fn, &d, input_json, len, auth_text, out,
				   &err);
		alyx__fn_log_call(alyx__fn_logbook_of(fn), d.name, rc, err.msg,
				  rc == ALYX_OK ? *out : err.details,
				  mono_ms_f() - t0);
	}
out:
	cJSON_free(auth_text);
	cJSON_Delete(auth);
	cJSON_Delete(input);
	alyx__fn_def_clear(&d);
	return alyx__finish(a, &err);
}

ALYX_API int alyx_functions_json(alyx *a, char **out)
{
	alyx__err err = {0};
	struct alyx__fn *fn;
	alyx_buf b;
	int rc;

	if (out)
		*out = NULL;
	alyx__buf_init(&b, 0);
	rc = alyx__enter(a, &err);
	if (rc == ALYX_OK && !out)
		rc = alyx__err_set(&err, ALYX_E_MISUSE, NULL,
				   "alyx_functions_json: out is required");
	if (rc == ALYX_OK)
		rc = alyx__fn_get(a, &fn, &err);
	if (rc != ALYX_OK)
		goto out;
	alyx__buf_adds(&b, "{\"enabled\":");
	alyx__json_bool(&b, a->cfg->functions.enabled);
	alyx__buf_adds(&b, ",\"runner\":");
	alyx__json_strz(&b, a->cfg->functions.runner);
	alyx__buf_adds(&b, ",\"sandbox\":");
	alyx__json_strz(&b, alyx__fn_sandbox(fn));
	alyx__buf_adds(&b, ",\"functions\":");
	alyx__fn_reg_json(alyx__fn_registry(fn), &b);
	alyx__buf_adds(&b, ",\"pools\":");
	alyx__fn_pools_json(fn, &b);
	alyx__buf_addc(&b, '}');
	*out = alyx__buf_take(&b);
	if (!*out)
		rc = alyx__err_set(&err, ALYX_E_NOMEM, NULL, "out of memory");
out:
	alyx__buf_free(&b);
	return alyx__finish(a, &err);
}

ALYX_API int alyx_function_logs_json(alyx *a, const char *name, char **out)
{
	alyx__err err = {0};
	alyx__fn_def d = {0};
	struct alyx__fn *fn;
	alyx_buf b;
	int rc;

	if (out)
		*out = NULL;
	alyx__buf_init(&b, 0);
	rc = alyx__enter(a, &err);
	if (rc == ALYX_OK && (!out || !name))
		rc = alyx__err_set(&err, ALYX_E_MISUSE, NULL,
				   "alyx_function_logs_json: name and out "
				   "are required");
	if (rc == ALYX_OK)
		rc = alyx__fn_get(a, &fn, &err);
	if (rc == ALYX_OK)
		rc = alyx__fn_lookup(alyx__fn_registry(fn), name, &d, &err);
	if (rc != ALYX_OK)
		goto out;
	alyx__fn_logs_json(alyx__fn_logbook_of(fn), d.name, &b);
	*out = alyx__buf_take(&b);
	if (!*out)
		rc = alyx__err_set(&err, ALYX_E_NOMEM, NULL, "out of memory");
out:
	alyx__fn_def_clear(&d);
	alyx__buf_free(&b);
	return alyx__finish(a, &err);
}
