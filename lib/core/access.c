/*
 * access.c - collection rules on every door: who may create, read,
 * update and delete what (access.h, docs/rules.md "Enforcement").
 */
#include <string.h>

#include "core/access.h"

static const char *const op_names[ALYX_RULE_COUNT] = {"create", "read",
						       "update", "delete"};
static const char *const op_methods[ALYX_RULE_COUNT] = {"POST", "GET",
							 "PATCH", "DELETE"};

int alyx__caller_init(alyx__caller *k, const struct alyx_ctx *ctx,
		      alyx__err *err)
{
	memset(k, 0, sizeof(*k));
	k->ctx = ctx;
	if (!ctx || !ctx->user_id)
		return ALYX_OK;
	k->admin = ctx->role && !strcmp(ctx->role, "admin");
	if (ctx->auth) {
		k->auth = ctx->auth;
		return ALYX_OK;
	}
	k->own = alyx__ctx_auth_json(ctx);
	if (!k->own)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	k->auth = k->own;
	return ALYX_OK;
}

void alyx__caller_free(alyx__caller *k)
{
	cJSON_Delete(k->own);
	k->own = NULL;
	k->auth = NULL;
}

int alyx__access_mode(const alyx__caller *k, const alyx__collection *c,
		      int op, const alyx__rule **rule)
{
	*rule = NULL;
	if (alyx__caller_system(k))
		return ALYX_ACC_ALL;
	if (c->programs[op]) {
		*rule = c->programs[op];
		return ALYX_ACC_RULE;
	}
	return k->admin ? ALYX_ACC_ALL : ALYX_ACC_NONE;
}

bool alyx__access_open(const alyx__caller *k, const alyx__collection *c,
		       int op)
{
	const alyx__rule *r;

	switch (alyx__access_mode(k, c, op, &r)) {
	case ALYX_ACC_ALL:
		return true;
	case ALYX_ACC_RULE:
		return alyx__rule_always(r);
	default:
		return false;
	}
}

cJSON *alyx__access_request(const alyx__caller *k, const alyx__rule *r,
			    const char *method, const cJSON *body,
			    bool *nomem)
{
	const char *ip = k->ctx ? k->ctx->ip : NULL;
	cJSON *j;

	*nomem = false;
	/* A rule that never names `request` needs none (a mention in a
	 * string literal only costs building it). */
	if (!r || !strstr(alyx__rule_src(r), "request"))
		return NULL;
	j = cJSON_CreateObject();
	if (!j || !cJSON_AddStringToObject(j, "method", method) ||
	    !(ip ? cJSON_AddStringToObject(j, "ip", ip) != NULL
		 : cJSON_AddNullToObject(j, "ip") != NULL) ||
	    !(body ? cJSON_AddItemReferenceToObject(j, "body",
						    (cJSON *)body) != 0
		   : cJSON_AddNullToObject(j, "body") != NULL)) {
		cJSON_Delete(j);
		*nomem = true;
		return NULL;
	}
	return j;
}

bool alyx__access_allows(const alyx__caller *k, const alyx__collection *c,
			 int op, const cJSON *doc, const cJSON *body,
			 bool *nomem)
{
	const alyx__rule *r;
	alyx__rule_ctx rc;
	cJSON *req;
	bool ok;

	*nomem = false;
	switch (alyx__access_mode(k, c, op, &r)) {
	case ALYX_ACC_ALL:
		return true;
	case ALYX_ACC_NONE:
		return false;
	default:
		break;
	}
	req = alyx__access_request(k, r, op_methods[op], body, nomem);
	if (*nomem)
		return false;
	rc.auth = k->auth;
	rc.doc = doc;
	rc.request = req;
	ok = alyx__rule_eval(r, &rc, NULL) == ALYX_RULE_ALLOW;
	cJSON_Delete(req);
	return ok;
}

int alyx__access_denied(const alyx__collection *c, int op, bool has_rule,
			alyx__err *err)
{
	alyx_buf d;

	alyx__buf_init(&d, 0);
	alyx__buf_adds(&d, "{\"collection\":");
	alyx__json_strz(&d, c->name);
	alyx__buf_addf(&d, ",\"operation\":\"%s\"}", op_names[op]);
	if (has_rule)
		return alyx__err_setd(err, ALYX_E_FORBIDDEN, alyx__buf_take(&d),
				      "the %s rule of '%s' denies this",
				      op_names[op], c->name);
	return alyx__err_setd(err, ALYX_E_FORBIDDEN, alyx__buf_take(&d),
			      "'%s' has no %s rule: only admins may %s",
			      c->name, op_names[op], op_names[op]);
}

static int nomem_err(alyx__err *err)
{
	return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
}

int alyx__access_body(const alyx__caller *k, const alyx__collection *c,
		      const cJSON *body, alyx__err *err)
{
	alyx__fielderrs fe;
	const cJSON *it;
	char *d;

	if (alyx__caller_system(k) || !cJSON_IsObject(body))
		return ALYX_OK;
	alyx__fielderrs_init(&fe);
	cJSON_ArrayForEach(it, body) {
		for (size_t i = 0; i < c->n_fields; i++)
			if (c->fields[i].internal &&
			    !strcmp(c->fields[i].name, it->string))
				alyx__fielderrs_add(&fe, it->string, "internal",
						    "internal fields are "
						    "written by trusted code "
						    "only");
	}
	if (!fe.count) {
		alyx__fielderrs_free(&fe);
		return ALYX_OK;
	}
	d = alyx__fielderrs_take(&fe);
	alyx__fielderrs_free(&fe);
	if (!d)
		return nomem_err(err);
	return alyx__err_setd(err, ALYX_E_VALIDATION, d,
			      "the document names internal fields");
}

/* The prepared row as a document (fields the write sets). */
static cJSON *row_doc(const alyx__collection *c, const alyx__row *row)
{
	alyx_buf b;
	cJSON *j = NULL;
	bool first = true;

	alyx__buf_init(&b, 0);
	alyx__buf_addc(&b, '{');
	for (size_t i = 0; i < c->n_fields && i < row->n; i++) {
		if (!row->set[i])
			continue;
		if (!first)
			alyx__buf_addc(&b, ',');
		first = false;
		alyx__json_strz(&b, c->fields[i].name);
		alyx__buf_addc(&b, ':');
		alyx__value_write(&b, &c->fields[i], &row->vals[i]);
	}
	alyx__buf_addc(&b, '}');
	if (!b.err)
		j = cJSON_ParseWithLength(b.data, b.len);
	alyx__buf_free(&b);
	return j;
}

int alyx__access_create(const alyx__caller *k, const alyx__collection *c,
			const alyx__row *row, const cJSON *body,
			cJSON **doc_out, alyx__err *err)
{
	const alyx__rule *r;
	int mode = alyx__access_mode(k, c, ALYX_RULE_CREATE, &r);
	cJSON *doc;
	bool nomem, ok;

	if (doc_out)
		*doc_out = NULL;
	if (mode == ALYX_ACC_NONE)
		return alyx__access_denied(c, ALYX_RULE_CREATE, false, err);
	/* Nothing to evaluate (no rule applies, or it is `true`) and, if
	 * the caller wants the document for its read rule, that one is
	 * open too: skip building it. */
	if (alyx__access_open(k, c, ALYX_RULE_CREATE) &&
	    (!doc_out || alyx__access_open(k, c, ALYX_RULE_READ)))
		return ALYX_OK;
	doc = row_doc(c, row);
	if (!doc)
		return nomem_err(err);
	ok = alyx__access_allows(k, c, ALYX_RULE_CREATE, doc, body, &nomem);
	if (!ok) {
		cJSON_Delete(doc);
		return nomem ? nomem_err(err)
			     : alyx__access_denied(c, ALYX_RULE_CREATE, true,
						   err);
	}
	if (doc_out)
		*doc_out = doc;
	else
		cJSON_Delete(doc);
	return ALYX_OK;
}

/* The stored document with internal fields, or NULL with err set. */
static cJSON *stored_doc(sqlite3 *db, const alyx__collection *c,
			 const char *id, alyx__err *err)
{
	alyx_buf b;
	cJSON *j = NULL;

	alyx__buf_init(&b, 0);
	if (alyx__doc_read(db, c, id, true, &b, err) == ALYX_OK) {
		if (!b.err)
			j = cJSON_ParseWithLength(b.data, b.len);
		if (!j)
			nomem_err(err);
	}
	alyx__buf_free(&b);
	return j;
}

int alyx__access_stored(const alyx__caller *k, sqlite3 *db,
			const alyx__collection *c, const char *id, int op,
			const cJSON *body, alyx__err *err)
{
	const alyx__rule *r;
	int mode = alyx__access_mode(k, c, op, &r), rc = ALYX_OK;
	cJSON *doc;
	bool nomem;

	if (mode == ALYX_ACC_ALL)
		return ALYX_OK;
	doc = stored_doc(db, c, id, err);
	if (!doc)
		return err->code;
	if (alyx__access_allows(k, c, op, doc, body, &nomem))
		goto out;
	if (nomem) {
		rc = nomem_err(err);
		goto out;
	}
	/* Denied: a document the caller cannot see does not exist for it. */
	if (!alyx__access_allows(k, c, ALYX_RULE_READ, doc, NULL, &nomem) &&
	    !nomem) {
		rc = alyx__doc_not_found(c, id, err);
		goto out;
	}
	rc = nomem ? nomem_err(err)
		   : alyx__access_denied(c, op, mode == ALYX_ACC_RULE, err);
out:
	cJSON_Delete(doc);
	return rc;
}

int alyx__access_result(const alyx__caller *k, sqlite3 *db,
			const alyx__collection *c, const char *id,
			const cJSON *doc, alyx_buf *out, size_t mark,
			alyx__err *err)
{
	const alyx__rule *r;
	const alyx__field *pkf = &c->fields[c->pk];
	int mode = alyx__access_mode(k, c, ALYX_RULE_READ, &r);
	cJSON *own = NULL;
	const cJSON *pk;
	bool nomem = false, ok = false;
	char *pkjson = NULL;

	if (alyx__access_open(k, c, ALYX_RULE_READ))
		return ALYX_OK;
	if (!doc) {
		own = stored_doc(db, c, id, err);
		if (!own)
			return err->code;
		doc = own;
	}
	if (mode == ALYX_ACC_RULE)
		ok = alyx__access_allows(k, c, ALYX_RULE_READ, doc, NULL,
					 &nomem);
	if (ok || nomem) {
		cJSON_Delete(own);
		return nomem ? nomem_err(err) : ALYX_OK;
	}
	/* The key as stored (the written result always carries it). */
	cJSON_Delete(own);
	own = out->err ? NULL
		       : cJSON_ParseWithLength(out->data + mark,
					       out->len - mark);
	pk = cJSON_GetObjectItemCaseSensitive(own, pkf->name);
	pkjson = pk ? cJSON_PrintUnformatted(pk) : NULL;
	cJSON_Delete(own);
	if (!pkjson)
		return out->err ? alyx__err_set(err, out->err, NULL,
						"document too large")
				: nomem_err(err);
	out->len = mark;
	if (out->data)
		out->data[mark] = '\0';
	alyx__buf_addc(out, '{');
	alyx__json_strz(out, pkf->name);
	alyx__buf_addc(out, ':');
	alyx__buf_adds(out, pkjson);
	alyx__buf_addc(out, '}');
	cJSON_free(pkjson);
	return ALYX_OK;
}
