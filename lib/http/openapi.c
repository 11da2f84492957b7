/*
 * openapi.c - GET /api/openapi.json: an OpenAPI 3.1 document generated
 * from the applied schema (alyx_schema_json(), the canonical form), with
 * a component schema per collection (types, nullable as a type union,
 * enum, formats, lengths, bounds), the REST routes with their parameters
 * and error responses.  Built with cJSON (not a hot path) and cached per
 * schema text.
 */
#include <string.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/handle.h"
#include "http/http.h"

static cJSON *ref(const char *where, const char *name)
{
	cJSON *o = cJSON_CreateObject();
	char *r = alyx__asprintf("#/components/%s/%s", where, name);

	if (o && r)
		cJSON_AddStringToObject(o, "$ref", r);
	alyx__free(r);
	return o;
}

static cJSON *json_content(cJSON *schema)
{
	cJSON *c = cJSON_CreateObject();
	cJSON *m = cJSON_AddObjectToObject(c, "application/json");

	cJSON_AddItemToObject(m, "schema", schema);
	return c;
}

static void add_response(cJSON *responses, const char *status,
			 const char *component)
{
	cJSON_AddItemToObject(responses, status, ref("responses", component));
}

static void add_ok(cJSON *responses, const char *status, const char *desc,
		   cJSON *schema)
{
	cJSON *r = cJSON_AddObjectToObject(responses, status);

	cJSON_AddStringToObject(r, "description", desc);
	if (schema)
		cJSON_AddItemToObject(r, "content", json_content(schema));
}

/* "posts" -> "Posts" for operation ids. */
static char *pascal(const char *name)
{
	char *s = alyx__asprintf("%s", name);
	bool up = true;
	size_t o = 0;

	if (!s)
		return NULL;
	for (size_t i = 0; s[i]; i++) {
		if (s[i] == '_') {
			up = true;
			continue;
		}
		s[o++] = up && s[i] >= 'a' && s[i] <= 'z' ? (char)(s[i] - 32)
							 : s[i];
		up = false;
	}
	s[o] = '\0';
	return s;
}

/* The JSON Schema of one field as documents carry it. */
static cJSON *field_schema(const cJSON *f)
{
	cJSON *o = cJSON_CreateObject();
	const char *type = cJSON_GetStringValue(
		cJSON_GetObjectItemCaseSensitive(f, "type"));
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(f, "validate");
	bool nullable = cJSON_IsTrue(
		cJSON_GetObjectItemCaseSensitive(f, "nullable"));
	const char *jt = NULL, *fmt = NULL;

	if (!type)
		type = "json";
	if (!strcmp(type, "uuid")) {
		jt = "string";
		fmt = "uuid";
	} else if (!strcmp(type, "string") || !strcmp(type, "text")) {
		jt = "string";
	} else if (!strcmp(type, "int")) {
		jt = "integer";
		fmt = "int64";
	} else if (!strcmp(type, "float")) {
		jt = "number";
		fmt = "double";
	} else if (!strcmp(type, "bool")) {
		jt = "boolean";
	} else if (!strcmp(type, "timestamp")) {
		jt = "string";
		fmt = "date-time";
	} else if (!strcmp(type, "blob")) {
		jt = "string";
		cJSON_AddStringToObject(o, "contentEncoding", "base64");
	}
	/* json: any value, so no "type". */
	if (jt) {
		if (nullable) {
			cJSON *ta = cJSON_AddArrayToObject(o, "type");
			cJSON_AddItemToArray(ta, cJSON_CreateString(jt));
			cJSON_AddItemToArray(ta, cJSON_CreateString("null"));
		} else {
			cJSON_AddStringToObject(o, "type", jt);
		}
	}
	const cJSON *vf = cJSON_GetObjectItemCaseSensitive(v, "format");
	if (cJSON_IsString(vf)) {
		if (!strcmp(vf->valuestring, "email"))
			fmt = "email";
		else if (!strcmp(vf->valuestring, "url"))
			fmt = "uri";
		else if (!strcmp(vf->valuestring, "uuid"))
			fmt = "uuid";
	}
	if (fmt)
		cJSON_AddStringToObject(o, "format", fmt);
	static const struct {
		const char *from, *to;
	} num[] = {
		{"minLength", "minLength"}, {"maxLength", "maxLength"},
		{"min", "minimum"}, {"max", "maximum"},
	};
	for (size_t i = 0; i < ALYX_ARRAY_LEN(num); i++) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(v,
								 num[i].from);
		if (cJSON_IsNumber(n))
			cJSON_AddNumberToObject(o, num[i].to, n->valuedouble);
	}
	const cJSON *pat = cJSON_GetObjectItemCaseSensitive(v, "pattern");
	if (cJSON_IsString(pat))
		cJSON_AddStringToObject(o, "pattern", pat->valuestring);
	const cJSON *en = cJSON_GetObjectItemCaseSensitive(v, "enum");
	if (cJSON_IsArray(en)) {
		cJSON *e = cJSON_Duplicate(en, true);
		if (e && nullable)
			cJSON_AddItemToArray(e, cJSON_CreateNull());
		cJSON_AddItemToObject(o, "enum", e);
	}
	const cJSON *def = cJSON_GetObjectItemCaseSensitive(f, "default");
	if (def) {
		if (cJSON_IsString(def) && (!strcmp(type, "uuid") ||
					    !strcmp(type, "timestamp")) &&
		    (!strcmp(def->valuestring, "auto") ||
		     !strcmp(def->valuestring, "now")))
			cJSON_AddStringToObject(o, "x-alyx-default",
						def->valuestring);
		else
			cJSON_AddItemToObject(o, "default",
					      cJSON_Duplicate(def, true));
	}
	const cJSON *refs = cJSON_GetObjectItemCaseSensitive(f, "references");
	if (cJSON_IsString(refs)) {
		char *d = alyx__asprintf("References %s.", refs->valuestring);
		if (d)
			cJSON_AddStringToObject(o, "description", d);
		alyx__free(d);
		cJSON_AddStringToObject(o, "x-alyx-references",
					refs->valuestring);
	}
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f, "primary")))
		cJSON_AddBoolToObject(o, "x-alyx-primary", true);
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f, "unique")))
		cJSON_AddBoolToObject(o, "x-alyx-unique", true);
	return o;
}

/* Document, create-input and update-input schemas of one collection. */
static void coll_schemas(cJSON *schemas, const char *name,
			 const cJSON *coll)
{
	const cJSON *fields = cJSON_GetObjectItemCaseSensitive(coll, "fields");
	cJSON *doc = cJSON_CreateObject(), *in = cJSON_CreateObject(),
	      *up = cJSON_CreateObject();
	cJSON *dprops, *iprops, *uprops, *dreq, *ireq;
	const cJSON *f;

	cJSON_AddStringToObject(doc, "type", "object");
	cJSON_AddStringToObject(in, "type", "object");
	cJSON_AddStringToObject(up, "type", "object");
	dprops = cJSON_AddObjectToObject(doc, "properties");
	iprops = cJSON_AddObjectToObject(in, "properties");
	uprops = cJSON_AddObjectToObject(up, "properties");
	dreq = cJSON_AddArrayToObject(doc, "required");
	ireq = cJSON_AddArrayToObject(in, "required");
	cJSON_ArrayForEach(f, fields) {
		bool internal = cJSON_IsTrue(
			cJSON_GetObjectItemCaseSensitive(f, "internal"));
		bool nullable = cJSON_IsTrue(
			cJSON_GetObjectItemCaseSensitive(f, "nullable"));
		bool has_def = cJSON_GetObjectItemCaseSensitive(f, "default");
		if (!internal) {
			cJSON_AddItemToObject(dprops, f->string,
					      field_schema(f));
			cJSON_AddItemToArray(dreq,
					     cJSON_CreateString(f->string));
		}
		cJSON_AddItemToObject(iprops, f->string, field_schema(f));
		cJSON_AddItemToObject(uprops, f->string, field_schema(f));
		if (!nullable && !has_def)
			cJSON_AddItemToArray(ireq,
					     cJSON_CreateString(f->string));
	}
	cJSON *exp = cJSON_AddObjectToObject(dprops, "expand");
	cJSON_AddStringToObject(exp, "type", "object");
	cJSON_AddStringToObject(exp, "description",
		"Referenced documents, present when expand= asked for them.");
	cJSON_AddBoolToObject(in, "additionalProperties", false);
	cJSON_AddBoolToObject(up, "additionalProperties", false);

	char *pn = pascal(name);
	char *in_name = alyx__asprintf("%sCreate", pn ? pn : name);
	char *up_name = alyx__asprintf("%sUpdate", pn ? pn : name);
	char *list_name = alyx__asprintf("%sList", pn ? pn : name);
	cJSON *list = cJSON_CreateObject();
	cJSON_AddStringToObject(list, "type", "object");
	cJSON *lp = cJSON_AddObjectToObject(list, "properties");
	cJSON *docs = cJSON_AddObjectToObject(lp, "docs");
	cJSON_AddStringToObject(docs, "type", "array");
	cJSON_AddItemToObject(docs, "items", ref("schemas", pn ? pn : name));
	cJSON *tot = cJSON_AddObjectToObject(lp, "total");
	cJSON_AddStringToObject(tot, "type", "integer");
	cJSON_AddStringToObject(tot, "description",
				"Present when total=true was asked.");
	cJSON *next = cJSON_AddObjectToObject(lp, "next");
	cJSON_AddStringToObject(next, "type", "string");
	cJSON_AddStringToObject(next, "description",
		"Cursor for after=, present when more documents remain.");
	cJSON *lreq = cJSON_AddArrayToObject(list, "required");
	cJSON_AddItemToArray(lreq, cJSON_CreateString("docs"));

	cJSON_AddItemToObject(schemas, pn ? pn : name, doc);
	if (in_name)
		cJSON_AddItemToObject(schemas, in_name, in);
	else
		cJSON_Delete(in);
	if (up_name)
		cJSON_AddItemToObject(schemas, up_name, up);
	else
		cJSON_Delete(up);
	if (list_name)
		cJSON_AddItemToObject(schemas, list_name, list);
	else
		cJSON_Delete(list);
	alyx__free(pn);
	alyx__free(in_name);
	alyx__free(up_name);
	alyx__free(list_name);
}

static cJSON *op(cJSON *path_item, const char *method, const char *id,
		 const char *tag, const char *summary)
{
	cJSON *o = cJSON_AddObjectToObject(path_item, method);

	cJSON_AddStringToObject(o, "operationId", id);
	if (tag) {
		cJSON *t = cJSON_AddArrayToObject(o, "tags");
		cJSON_AddItemToArray(t, cJSON_CreateString(tag));
	}
	cJSON_AddStringToObject(o, "summary", summary);
	return o;
}

static void add_params(cJSON *o, const char *const *names, size_t n)
{
	cJSON *p = cJSON_AddArrayToObject(o, "parameters");

	for (size_t i = 0; i < n; i++)
		cJSON_AddItemToArray(p, ref("parameters", names[i]));
}

static void json_body(cJSON *o, const char *schema)
{
	cJSON *rb = cJSON_AddObjectToObject(o, "requestBody");

	cJSON_AddBoolToObject(rb, "required", true);
	cJSON_AddItemToObject(rb, "content",
			      json_content(ref("schemas", schema)));
}

/* 200 with `schema` plus the errors of a read. */
static void read_responses(cJSON *o, const char *desc, cJSON *schema)
{
	cJSON *r = cJSON_AddObjectToObject(o, "responses");

	add_ok(r, "200", desc, schema);
	add_response(r, "400", "BadRequest");
	add_response(r, "401", "Unauthorized");
	add_response(r, "404", "NotFound");
	add_response(r, "500", "InternalError");
}

static void write_errors(cJSON *resp)
{
	add_response(resp, "400", "BadRequest");
	add_response(resp, "401", "Unauthorized");
	add_response(resp, "403", "Forbidden");
	add_response(resp, "404", "NotFound");
	add_response(resp, "409", "Conflict");
	add_response(resp, "413", "TooLarge");
	add_response(resp, "415", "UnsupportedMediaType");
	add_response(resp, "422", "ValidationError");
	add_response(resp, "500", "InternalError");
	add_response(resp, "503", "Unavailable");
}

static void coll_paths(cJSON *paths, const char *name, const cJSON *coll)
{
	static const char *const list_params[] = {
		"filter", "sort", "limit", "offset", "after", "expand",
		"fields", "total"
	};
	static const char *const get_params[] = {"expand", "fields"};
	char *pn = pascal(name);
	const char *P = pn ? pn : name;
	char *p1 = alyx__asprintf("/api/collections/%s", name);
	char *p2 = alyx__asprintf("/api/collections/%s/{id}", name);
	char *ids[5], *sums[5];

	ids[0] = alyx__asprintf("list%s", P);
	ids[1] = alyx__asprintf("create%s", P);
	ids[2] = alyx__asprintf("get%s", P);
	ids[3] = alyx__asprintf("update%s", P);
	ids[4] = alyx__asprintf("delete%s", P);
	sums[0] = alyx__asprintf("List or query %s", name);
	sums[1] = alyx__asprintf("Create a document in %s", name);
	sums[2] = alyx__asprintf("Get one document of %s", name);
	sums[3] = alyx__asprintf("Update fields of a document of %s", name);
	sums[4] = alyx__asprintf("Delete a document of %s", name);
	for (int i = 0; i < 5; i++)
		if (!ids[i] || !sums[i])
			goto out;
	if (!p1 || !p2)
		goto out;

	cJSON *a = cJSON_AddObjectToObject(paths, p1);
	cJSON *o = op(a, "get", ids[0], name, sums[0]);
	add_params(o, list_params, ALYX_ARRAY_LEN(list_params));
	cJSON *r;
	char *ln = alyx__asprintf("%sList", P), *cn = alyx__asprintf("%sCreate",
								     P),
	     *un = alyx__asprintf("%sUpdate", P);
	read_responses(o, "The matching documents.",
		       ref("schemas", ln ? ln : P));

	o = op(a, "post", ids[1], name, sums[1]);
	json_body(o, cn ? cn : P);
	r = cJSON_AddObjectToObject(o, "responses");
	add_ok(r, "201", "The stored document.", ref("schemas", P));
	write_errors(r);

	cJSON *b = cJSON_AddObjectToObject(paths, p2);
	cJSON *bp = cJSON_AddArrayToObject(b, "parameters");
	cJSON *idp = cJSON_CreateObject();
	cJSON_AddStringToObject(idp, "name", "id");
	cJSON_AddStringToObject(idp, "in", "path");
	cJSON_AddBoolToObject(idp, "required", true);
	cJSON_AddStringToObject(idp, "description", "The primary key.");
	const cJSON *f, *pk = NULL;
	cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(coll,
							       "fields"))
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f,
								  "primary")))
			pk = f;
	cJSON *pks = pk ? field_schema(pk) : cJSON_CreateObject();
	if (!pk)
		cJSON_AddStringToObject(pks, "type", "string");
	cJSON_AddItemToObject(idp, "schema", pks);
	cJSON_AddItemToArray(bp, idp);

	o = op(b, "get", ids[2], name, sums[2]);
	add_params(o, get_params, ALYX_ARRAY_LEN(get_params));
	read_responses(o, "The document.", ref("schemas", P));

	o = op(b, "patch", ids[3], name, sums[3]);
	json_body(o, un ? un : P);
	r = cJSON_AddObjectToObject(o, "responses");
	add_ok(r, "200", "The updated document.", ref("schemas", P));
	write_errors(r);

	o = op(b, "delete", ids[4], name, sums[4]);
	r = cJSON_AddObjectToObject(o, "responses");
	add_ok(r, "204", "Deleted.", NULL);
	add_response(r, "401", "Unauthorized");
	add_response(r, "403", "Forbidden");
	add_response(r, "404", "NotFound");
	add_response(r, "409", "Conflict");
	add_response(r, "500", "InternalError");
	add_response(r, "503", "Unavailable");
	alyx__free(ln);
	alyx__free(cn);
	alyx__free(un);
out:
	for (int i = 0; i < 5; i++) {
		alyx__free(ids[i]);
		alyx__free(sums[i]);
	}
	alyx__free(p1);
	alyx__free(p2);
	alyx__free(pn);
}

static void query_param(cJSON *params, const char *name, const char *type,
			const char *desc, bool explode)
{
	cJSON *p = cJSON_AddObjectToObject(params, name);

	cJSON_AddStringToObject(p, "name", name);
	cJSON_AddStringToObject(p, "in", "query");
	cJSON_AddStringToObject(p, "description", desc);
	if (explode) {
		cJSON *s = cJSON_AddObjectToObject(p, "schema");
		cJSON_AddStringToObject(s, "type", "array");
		cJSON *it = cJSON_AddObjectToObject(s, "items");
		cJSON_AddStringToObject(it, "type", "string");
		cJSON_AddStringToObject(p, "style", "form");
		cJSON_AddBoolToObject(p, "explode", true);
	} else {
		cJSON *s = cJSON_AddObjectToObject(p, "schema");
		cJSON_AddStringToObject(s, "type", type);
		if (!strcmp(type, "integer"))
			cJSON_AddNumberToObject(s, "minimum", 0);
	}
}

static void components_common(cJSON *comp)
{
	cJSON *params = cJSON_AddObjectToObject(comp, "parameters");
	query_param(params, "filter", "string",
		"field:op:value, repeatable (ANDed); op is eq ne gt gte lt "
		"lte like in contains; `in` takes a comma list; values are "
		"URL-decoded.  See docs/queries.md.", true);
	query_param(params, "sort", "string",
		"Comma-separated fields; a leading '-' sorts descending.",
		false);
	query_param(params, "limit", "integer", "Page size.", false);
	query_param(params, "offset", "integer", "Documents to skip.", false);
	query_param(params, "after", "string",
		"Cursor from a previous answer's `next`.", false);
	query_param(params, "expand", "string",
		"Comma-separated reference fields to expand; dotted paths "
		"nest (post_id.author_id).", false);
	query_param(params, "fields", "string",
		"Comma-separated fields to return.", false);
	query_param(params, "total", "boolean",
		"true to count every matching document.", false);

	cJSON *schemas = cJSON_GetObjectItemCaseSensitive(comp, "schemas");
	cJSON *err = cJSON_CreateObject();
	cJSON_AddStringToObject(err, "type", "object");
	cJSON *ep = cJSON_AddObjectToObject(err, "properties");
	cJSON *e = cJSON_AddObjectToObject(ep, "error");
	cJSON_AddStringToObject(e, "type", "object");
	cJSON *eprops = cJSON_AddObjectToObject(e, "properties");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(eprops, "code"),
				"type", "string");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(eprops, "message"),
				"type", "string");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(eprops, "details"),
				"type", "object");
	cJSON *ereq = cJSON_AddArrayToObject(e, "required");
	cJSON_AddItemToArray(ereq, cJSON_CreateString("code"));
	cJSON_AddItemToArray(ereq, cJSON_CreateString("message"));
	cJSON_AddItemToArray(ereq, cJSON_CreateString("details"));
	cJSON_AddStringToObject(cJSON_AddObjectToObject(ep, "request_id"),
				"type", "string");
	cJSON *tsp = cJSON_AddObjectToObject(ep, "timestamp");
	cJSON_AddStringToObject(tsp, "type", "string");
	cJSON_AddStringToObject(tsp, "format", "date-time");
	cJSON *req = cJSON_AddArrayToObject(err, "required");
	cJSON_AddItemToArray(req, cJSON_CreateString("error"));
	cJSON_AddItemToArray(req, cJSON_CreateString("request_id"));
	cJSON_AddItemToArray(req, cJSON_CreateString("timestamp"));
	cJSON_AddItemToObject(schemas, "Error", err);

	static const struct {
		const char *name, *desc;
	} resp[] = {
		{"BadRequest", "Bad query or body (INVALID_QUERY, "
			       "INVALID_JSON, BAD_REQUEST)."},
		{"Unauthorized", "A bad, expired or forged Bearer token "
				 "(never treated as anonymous)."},
		{"Forbidden", "The collection's rule (or, without one, the "
			      "caller not being an admin) denies the write."},
		{"NotFound", "Unknown collection, document or route, or a "
			     "document the read rule hides."},
		{"Conflict", "Unique or foreign-key conflict."},
		{"TooLarge", "The request body exceeds the server's limit."},
		{"UnsupportedMediaType", "The body is not application/json."},
		{"ValidationError", "Validation failed; details.fields lists "
				    "every failing field."},
		{"InternalError", "A fault inside the server (logged with the "
				  "request id)."},
		{"Unavailable", "The server is shutting down or the database "
				"is busy."},
	};
	/* Data routes take an optional Bearer access token (anonymous
	 * without one); the collection rules decide (docs/rules.md). */
	cJSON *sec = cJSON_AddObjectToObject(comp, "securitySchemes");
	cJSON *bearer = cJSON_AddObjectToObject(sec, "bearerAuth");
	cJSON_AddStringToObject(bearer, "type", "http");
	cJSON_AddStringToObject(bearer, "scheme", "bearer");
	cJSON_AddStringToObject(bearer, "bearerFormat", "JWT");
	cJSON *responses = cJSON_AddObjectToObject(comp, "responses");
	for (size_t i = 0; i < ALYX_ARRAY_LEN(resp); i++) {
		cJSON *r = cJSON_AddObjectToObject(responses, resp[i].name);
		cJSON_AddStringToObject(r, "description", resp[i].desc);
		cJSON_AddItemToObject(r, "content",
				      json_content(ref("schemas", "Error")));
	}
}

static void fixed_paths(cJSON *paths)
{
	static const struct {
		const char *path, *id, *summary, *type;
	} fixed[] = {
		{"/", "serverInfo", "Name and version", "application/json"},
		{"/health", "health", "Health and database check",
		 "application/json"},
		{"/health/live", "healthLive", "Liveness", "application/json"},
		{"/health/ready", "healthReady",
		 "Readiness (503 while shutting down)", "application/json"},
		{"/health/stats", "healthStats", "Server statistics",
		 "application/json"},
		{"/metrics", "metrics", "Prometheus metrics",
		 "text/plain"},
		{"/api/openapi.json", "openapi", "This document",
		 "application/json"},
	};
	for (size_t i = 0; i < ALYX_ARRAY_LEN(fixed); i++) {
		cJSON *p = cJSON_AddObjectToObject(paths, fixed[i].path);
		cJSON *o = op(p, "get", fixed[i].id, "server",
			      fixed[i].summary);
		cJSON *r = cJSON_AddObjectToObject(o, "responses");
		cJSON *ok = cJSON_AddObjectToObject(r, "200");
		cJSON_AddStringToObject(ok, "description", fixed[i].summary);
		cJSON *c = cJSON_AddObjectToObject(ok, "content");
		cJSON *m = cJSON_AddObjectToObject(c, fixed[i].type);
		cJSON *s = cJSON_AddObjectToObject(m, "schema");
		cJSON_AddStringToObject(s, "type",
			strcmp(fixed[i].type, "text/plain") ? "object"
							    : "string");
		if (!strcmp(fixed[i].path, "/health/ready"))
			add_response(r, "503", "Unavailable");
	}

	cJSON *b = cJSON_AddObjectToObject(paths, "/api/batch");
	cJSON *o = op(b, "post", "batch", "batch",
		      "Several writes in one transaction, all or nothing");
	cJSON *rb = cJSON_AddObjectToObject(o, "requestBody");
	cJSON_AddBoolToObject(rb, "required", true);
	cJSON *s = cJSON_CreateObject();
	cJSON_AddStringToObject(s, "type", "object");
	cJSON *sp = cJSON_AddObjectToObject(s, "properties");
	cJSON *rq = cJSON_AddObjectToObject(sp, "requests");
	cJSON_AddStringToObject(rq, "type", "array");
	cJSON *it = cJSON_AddObjectToObject(rq, "items");
	cJSON_AddStringToObject(it, "type", "object");
	cJSON *ip = cJSON_AddObjectToObject(it, "properties");
	cJSON *me = cJSON_AddObjectToObject(ip, "method");
	cJSON *en = cJSON_AddArrayToObject(me, "enum");
	cJSON_AddItemToArray(en, cJSON_CreateString("POST"));
	cJSON_AddItemToArray(en, cJSON_CreateString("PATCH"));
	cJSON_AddItemToArray(en, cJSON_CreateString("DELETE"));
	cJSON_AddStringToObject(cJSON_AddObjectToObject(ip, "url"), "type",
				"string");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(ip, "body"), "type",
				"object");
	cJSON *ir = cJSON_AddArrayToObject(it, "required");
	cJSON_AddItemToArray(ir, cJSON_CreateString("method"));
	cJSON_AddItemToArray(ir, cJSON_CreateString("url"));
	cJSON *sr = cJSON_AddArrayToObject(s, "required");
	cJSON_AddItemToArray(sr, cJSON_CreateString("requests"));
	cJSON_AddItemToObject(rb, "content", json_content(s));
	cJSON *r = cJSON_AddObjectToObject(o, "responses");
	cJSON *res = cJSON_CreateObject();
	cJSON_AddStringToObject(res, "type", "object");
	cJSON *rp = cJSON_AddObjectToObject(res, "properties");
	cJSON *results = cJSON_AddObjectToObject(rp, "results");
	cJSON_AddStringToObject(results, "type", "array");
	add_ok(r, "200", "Every request's result, in order.", res);
	write_errors(r);
}

static char *build(const char *schema_json, bool auth, alyx__err *err)
{
	cJSON *schema = cJSON_Parse(schema_json), *doc = NULL;
	char *out = NULL;

	if (!schema) {
		alyx__err_set(err, ALYX_E_INTERNAL, NULL,
			      "the applied schema is not valid JSON");
		goto out;
	}
	doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, "openapi", "3.1.0");
	cJSON *info = cJSON_AddObjectToObject(doc, "info");
	cJSON_AddStringToObject(info, "title", "Alyx REST API");
	cJSON_AddStringToObject(info, "version", alyx_version_string());
	cJSON_AddStringToObject(info, "description",
		"Generated from the project's applied schema.");
	/* Every operation: anonymous ({}) or a Bearer token. */
	cJSON *security = cJSON_AddArrayToObject(doc, "security");
	cJSON_AddItemToArray(security, cJSON_CreateObject());
	cJSON *bsec = cJSON_CreateObject();
	cJSON_AddItemToObject(bsec, "bearerAuth", cJSON_CreateArray());
	cJSON_AddItemToArray(security, bsec);
	cJSON *paths = cJSON_AddObjectToObject(doc, "paths");
	cJSON *comp = cJSON_AddObjectToObject(doc, "components");
	cJSON *schemas = cJSON_AddObjectToObject(comp, "schemas");
	components_common(comp);
	fixed_paths(paths);
	if (auth)
		alyx__openapi_auth(paths, comp);
	const cJSON *c;
	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(schema,
							       "collections")) {
		coll_schemas(schemas, c->string, c);
		coll_paths(paths, c->string, c);
	}
	out = cJSON_PrintUnformatted(doc);
	if (!out)
		alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
out:
	cJSON_Delete(schema);
	cJSON_Delete(doc);
	if (out) {
		/* cJSON allocates with malloc; hand back an alyx__ copy. */
		char *copy = alyx__strdup(out);
		cJSON_free(out);
		out = copy;
		if (!out)
			alyx__err_set(err, ALYX_E_NOMEM, NULL,
				      "out of memory");
	}
	return out;
}

int alyx__openapi(alyx_server *s, char **out, alyx__err *err)
{
	char *schema = NULL;
	int rc;

	*out = NULL;
	rc = alyx_schema_json(s->a, &schema);
	if (rc != ALYX_OK)
		return alyx__err_set(err, rc, NULL, "%s", alyx_errmsg(s->a));
	pthread_mutex_lock(&s->oa_mu);
	if (!s->oa_schema || strcmp(s->oa_schema, schema)) {
		char *doc = build(schema, s->a->cfg->auth.enabled, err);
		if (doc) {
			alyx__free(s->oa_doc);
			alyx__free(s->oa_schema);
			s->oa_doc = doc;
			s->oa_schema = alyx__strdup(schema);
			if (!s->oa_schema) {
				alyx__free(s->oa_doc);
				s->oa_doc = NULL;
			}
		}
	}
	if (s->oa_doc)
		*out = alyx__strdup(s->oa_doc);
	pthread_mutex_unlock(&s->oa_mu);
	alyx_free(schema);
	if (!*out && !err->code)
		alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	return *out ? ALYX_OK : err->code;
}
