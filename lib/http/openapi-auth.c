/*
 * openapi-auth.c - the /api/auth/... routes in the OpenAPI document
 * (openapi.c calls alyx__openapi_auth when authentication is on).
 * Table-driven: one row per route; schemas are small objects described
 * by "name:type" lists (every listed property required).
 */
#include <string.h>

#include <cjson/cJSON.h>

#include "http/http.h"

static cJSON *ref_to(const char *kind, const char *name)
{
	char buf[128];
	cJSON *o = cJSON_CreateObject();

	snprintf(buf, sizeof(buf), "#/components/%s/%s", kind, name);
	cJSON_AddStringToObject(o, "$ref", buf);
	return o;
}

static cJSON *content_of(cJSON *schema, const char *type)
{
	cJSON *c = cJSON_CreateObject();

	cJSON_AddItemToObject(cJSON_AddObjectToObject(c, type), "schema",
			      schema);
	return c;
}

/* {"type":"object","properties":{...},"required":[...]} from
 * "a:string,b:integer,c:object,d:boolean" (a trailing '?' on the type:
 * optional). */
static cJSON *object_of(const char *spec, bool open)
{
	cJSON *s = cJSON_CreateObject();
	cJSON *props, *req;
	char buf[256], *save = NULL, *tok;

	cJSON_AddStringToObject(s, "type", "object");
	props = cJSON_AddObjectToObject(s, "properties");
	req = cJSON_AddArrayToObject(s, "required");
	snprintf(buf, sizeof(buf), "%s", spec);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':'), *q;
		bool optional;

		if (!colon)
			continue;
		*colon = '\0';
		q = strchr(colon + 1, '?');
		optional = q != NULL;
		if (q)
			*q = '\0';
		cJSON_AddStringToObject(cJSON_AddObjectToObject(props, tok),
					"type", colon + 1);
		if (!optional)
			cJSON_AddItemToArray(req, cJSON_CreateString(tok));
	}
	cJSON_AddBoolToObject(s, "additionalProperties", open);
	return s;
}

static const struct {
	const char *name, *spec;
	bool open;
} auth_schemas[] = {
	{"AuthUser", "id:string,email:string,role:string,verified:boolean",
	 true},
	{"TokenReply", "access_token:string,refresh_token:string,"
		       "token_type:string,expires_in:integer,user:object",
	 false},
	{"RegisterRequest", "email:string,password:string", true},
	{"LoginRequest", "email:string,password:string", false},
	{"RefreshRequest", "refresh_token:string", false},
	{"EmailRequest", "email:string", false},
	{"VerifyRequest", "token:string", false},
	{"PasswordResetConfirm", "token:string,password:string", false},
	{"Accepted", "message:string", false},
	{"Providers", "providers:array", false},
	{"OAuthStart", "url:string,state:string", false},
};

static const struct {
	const char *name, *desc;
} responses[] = {
	{"Unauthorized", "Missing, invalid or expired credentials "
			 "(UNAUTHORIZED; WWW-Authenticate: Bearer)."},
	{"RateLimited", "Too many attempts (RATE_LIMITED; Retry-After "
			"header, details.retry_after)."},
	{"ProviderTimeout", "The OAuth provider did not answer in time "
			    "(TIMEOUT)."},
};

static const struct route {
	const char *path, *method, *id, *summary, *body;
	const char *status, *desc, *schema;	/* success */
	const char *errors;	/* error statuses */
	const char *query;	/* query parameter names */
	bool bearer, redirect;
} routes[] = {
	{"/api/auth/register", "post", "authRegister",
	 "Create an account (and its users document)", "RegisterRequest",
	 "201", "Signed in", "TokenReply", "400 409 415 422 429", NULL},
	{"/api/auth/login", "post", "authLogin", "Sign in with a password",
	 "LoginRequest", "200", "Signed in", "TokenReply",
	 "400 401 415 422 429", NULL},
	{"/api/auth/refresh", "post", "authRefresh",
	 "Rotate the refresh token", "RefreshRequest", "200", "New tokens",
	 "TokenReply", "400 401 415 422", NULL},
	{"/api/auth/logout", "post", "authLogout",
	 "Revoke the refresh token's session", "RefreshRequest", "204",
	 "Signed out", NULL, "400 401 415 422", NULL},
	{"/api/auth/me", "get", "authMe", "The signed-in user", NULL, "200",
	 "The user", "AuthUser", "401", NULL, true},
	{"/api/auth/request-verification", "post", "authRequestVerification",
	 "Send an email verification link (same answer for unknown emails)",
	 "EmailRequest", "202", "Accepted", "Accepted", "400 415 422 429",
	 NULL},
	{"/api/auth/verify", "post", "authVerify",
	 "Mark the email verified with a one-time token", "VerifyRequest",
	 "200", "The user", "AuthUser", "400 415 422", NULL},
	{"/api/auth/request-password-reset", "post",
	 "authRequestPasswordReset",
	 "Send a password reset link (same answer for unknown emails)",
	 "EmailRequest", "202", "Accepted", "Accepted", "400 415 422 429",
	 NULL},
	{"/api/auth/confirm-password-reset", "post",
	 "authConfirmPasswordReset",
	 "Set a new password with a one-time token; revokes every session",
	 "PasswordResetConfirm", "204", "Password changed", NULL,
	 "400 415 422", NULL},
	{"/api/auth/providers", "get", "authProviders",
	 "The configured OAuth providers", NULL, "200", "Providers",
	 "Providers", "", NULL},
	{"/api/auth/oauth/{provider}", "get", "authOAuthStart",
	 "Redirect to the provider (state and PKCE S256)", NULL, "302",
	 "Redirect to the provider's authorize URL (Location)", "OAuthStart",
	 "404", "provider", false, true},
	{"/api/auth/oauth/{provider}/callback", "get", "authOAuthCallback",
	 "The provider's redirect back: code exchange, sign-in", NULL, "200",
	 "Signed in (or, with auth.oauth.frontend_url, 302 to it with the "
	 "tokens in the fragment)", "TokenReply", "401 404 409 422 503 504",
	 "provider code state error", false, true},
};

static const char *error_component(const char *status)
{
	static const struct {
		const char *status, *name;
	} map[] = {
		{"400", "BadRequest"}, {"401", "Unauthorized"},
		{"404", "NotFound"}, {"409", "Conflict"},
		{"415", "UnsupportedMediaType"}, {"422", "ValidationError"},
		{"429", "RateLimited"}, {"503", "Unavailable"},
		{"504", "ProviderTimeout"},
	};

	for (size_t i = 0; i < ALYX_ARRAY_LEN(map); i++)
		if (!strcmp(map[i].status, status))
			return map[i].name;
	return "InternalError";
}

static void add_route(cJSON *paths, const struct route *rt)
{
	cJSON *p = cJSON_GetObjectItemCaseSensitive(paths, rt->path);
	cJSON *o, *r, *ok, *tags;
	char errs[64], *save = NULL, *st;

	if (!p)
		p = cJSON_AddObjectToObject(paths, rt->path);
	o = cJSON_AddObjectToObject(p, rt->method);
	cJSON_AddStringToObject(o, "operationId", rt->id);
	cJSON_AddStringToObject(o, "summary", rt->summary);
	tags = cJSON_AddArrayToObject(o, "tags");
	cJSON_AddItemToArray(tags, cJSON_CreateString("auth"));
	if (rt->bearer) {
		cJSON *sec = cJSON_AddArrayToObject(o, "security");
		cJSON *one = cJSON_CreateObject();

		cJSON_AddArrayToObject(one, "bearerAuth");
		cJSON_AddItemToArray(sec, one);
	}
	if (rt->query) {
		cJSON *ps = cJSON_AddArrayToObject(o, "parameters");
		char q[64], *qs = NULL, *name;

		snprintf(q, sizeof(q), "%s", rt->query);
		for (name = strtok_r(q, " ", &qs); name;
		     name = strtok_r(NULL, " ", &qs)) {
			cJSON *pa = cJSON_CreateObject();
			bool in_path = !strcmp(name, "provider");

			cJSON_AddStringToObject(pa, "name", name);
			cJSON_AddStringToObject(pa, "in",
						in_path ? "path" : "query");
			cJSON_AddBoolToObject(pa, "required", in_path);
			cJSON_AddStringToObject(
				cJSON_AddObjectToObject(pa, "schema"), "type",
				"string");
			if (in_path) {
				cJSON *en = cJSON_AddArrayToObject(
					cJSON_GetObjectItemCaseSensitive(
						pa, "schema"), "enum");
				cJSON_AddItemToArray(en,
					cJSON_CreateString("github"));
				cJSON_AddItemToArray(en,
					cJSON_CreateString("google"));
			}
			cJSON_AddItemToArray(ps, pa);
		}
	}
	if (rt->body) {
		cJSON *rb = cJSON_AddObjectToObject(o, "requestBody");

		cJSON_AddBoolToObject(rb, "required", true);
		cJSON_AddItemToObject(rb, "content",
				      content_of(ref_to("schemas", rt->body),
						 "application/json"));
	}
	r = cJSON_AddObjectToObject(o, "responses");
	ok = cJSON_AddObjectToObject(r, rt->status);
	cJSON_AddStringToObject(ok, "description", rt->desc);
	if (rt->schema)
		cJSON_AddItemToObject(ok, "content",
				      content_of(ref_to("schemas", rt->schema),
						 "application/json"));
	if (rt->redirect && strcmp(rt->status, "302")) {
		cJSON *red = cJSON_AddObjectToObject(r, "302");

		cJSON_AddStringToObject(red, "description",
			"With auth.oauth.frontend_url: to it, with "
			"#access_token=...&refresh_token=... or "
			"#error=...&error_description=...");
	}
	snprintf(errs, sizeof(errs), "%s", rt->errors);
	for (st = strtok_r(errs, " ", &save); st;
	     st = strtok_r(NULL, " ", &save))
		cJSON_AddItemToObject(r, st,
				      ref_to("responses", error_component(st)));
	cJSON_AddItemToObject(r, "500", ref_to("responses", "InternalError"));
}

void alyx__openapi_auth(cJSON *paths, cJSON *comp)
{
	cJSON *schemas = cJSON_GetObjectItemCaseSensitive(comp, "schemas");
	cJSON *resp = cJSON_GetObjectItemCaseSensitive(comp, "responses");
	cJSON *sec = cJSON_GetObjectItemCaseSensitive(comp, "securitySchemes");

	if (!schemas)
		schemas = cJSON_AddObjectToObject(comp, "schemas");
	if (!resp)
		resp = cJSON_AddObjectToObject(comp, "responses");
	if (!sec)
		sec = cJSON_AddObjectToObject(comp, "securitySchemes");
	if (!cJSON_GetObjectItemCaseSensitive(sec, "bearerAuth")) {
		cJSON *b = cJSON_AddObjectToObject(sec, "bearerAuth");

		cJSON_AddStringToObject(b, "type", "http");
		cJSON_AddStringToObject(b, "scheme", "bearer");
		cJSON_AddStringToObject(b, "bearerFormat", "JWT");
	}
	for (size_t i = 0; i < ALYX_ARRAY_LEN(auth_schemas); i++)
		cJSON_AddItemToObject(schemas, auth_schemas[i].name,
				      object_of(auth_schemas[i].spec,
						auth_schemas[i].open));
	for (size_t i = 0; i < ALYX_ARRAY_LEN(responses); i++) {
		cJSON *r;

		if (cJSON_GetObjectItemCaseSensitive(resp, responses[i].name))
			continue;
		r = cJSON_AddObjectToObject(resp, responses[i].name);
		cJSON_AddStringToObject(r, "description", responses[i].desc);
		cJSON_AddItemToObject(r, "content",
				      content_of(ref_to("schemas", "Error"),
						 "application/json"));
	}
	for (size_t i = 0; i < ALYX_ARRAY_LEN(routes); i++)
		add_route(paths, &routes[i]);
}
