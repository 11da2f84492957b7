/*
 * alyx.c - CEL access rules in Alyx: compile once over the variables auth,
 * doc and request; build those variables from JSON (typed by the
 * collection's schema); evaluate to allow/deny/error; type-check a rule
 * against a collection.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rules/rules-int.h"

static const char *const rule_vars[] = {"auth", "doc", "request"};

/* Records the doc fields the rule reads; false on NOMEM. */
static bool collect_used(alyx__rule *r, const cel_node *n,
			 const cel_node *parent)
{
	if (n->kind == N_VAR && n->slot == ALYX_RULE_VAR_REQUEST)
		r->uses_request = true;
	if (n->kind == N_VAR && n->slot == ALYX_RULE_VAR_DOC) {
		if (!parent || (parent->kind != N_SELECT &&
				parent->kind != N_HAS)) {
			r->doc_whole = true;
			return true;
		}
		for (size_t i = 0; i < r->n_used; i++)
			if (strlen(r->used[i].name) == parent->name_len &&
			    !memcmp(r->used[i].name, parent->name,
				    parent->name_len))
				return true;
		rule_field *nu = alyx__realloc(r->used, (r->n_used + 1) *
							       sizeof(*nu));
		if (!nu)
			return false;
		r->used = nu;
		nu[r->n_used].name = alyx__strndup(parent->name,
						   parent->name_len);
		if (!nu[r->n_used].name)
			return false;
		nu[r->n_used].type = (alyx__type)-1;
		for (size_t i = 0; i < r->n_fields; i++)
			if (!strcmp(r->fields[i].name, nu[r->n_used].name))
				nu[r->n_used].type = r->fields[i].type;
		r->n_used++;
		return true;
	}
	for (size_t i = 0; i < n->n; i++)
		if (n->a[i] && !collect_used(r, n->a[i], n))
			return false;
	return true;
}

int alyx__rule_compile(const char *src, size_t len,
		       const alyx__collection *c, alyx__rule **out,
		       alyx__err *err)
{
	alyx__rule *r;
	alyx__cel_opts o = {
		.vars = rule_vars,
		.n_vars = ALYX_ARRAY_LEN(rule_vars),
		.max_src = ALYX_RULE_MAX_SRC,
	};
	int rc;

	*out = NULL;
	r = alyx__calloc(1, sizeof(*r));
	if (!r)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	pthread_mutex_init(&r->memo_mu, NULL);
	rc = alyx__cel_compile(src, len, &o, &r->prog, err);
	if (rc != ALYX_OK) {
		alyx__rule_free(r);
		return rc;
	}
	if (c) {
		r->fields = alyx__calloc(c->n_fields ? c->n_fields : 1,
					 sizeof(*r->fields));
		if (!r->fields) {
			alyx__rule_free(r);
			return alyx__err_set(err, ALYX_E_NOMEM, NULL,
					     "out of memory");
		}
		for (size_t i = 0; i < c->n_fields; i++) {
			r->fields[i].name = alyx__strdup(c->fields[i].name);
			r->fields[i].type = c->fields[i].type;
			if (!r->fields[i].name) {
				r->n_fields = i;
				alyx__rule_free(r);
				return alyx__err_set(err, ALYX_E_NOMEM, NULL,
						     "out of memory");
			}
		}
		r->n_fields = c->n_fields;
		r->typed = true;
	}
	if (!collect_used(r, r->prog->root, NULL)) {
		alyx__rule_free(r);
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	}
	r->always = r->prog->root->kind == N_LIT &&
		    r->prog->root->lit.k == ALYX_CEL_BOOL &&
		    r->prog->root->lit.v.b;
	*out = r;
	return ALYX_OK;
}

void alyx__rule_free(alyx__rule *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_fields; i++)
		alyx__free(r->fields[i].name);
	alyx__free(r->fields);
	for (size_t i = 0; i < r->n_used; i++)
		alyx__free(r->used[i].name);
	alyx__free(r->used);
	alyx__cel_prog_free(r->prog);
	alyx__rule_memo_free(r);
	pthread_mutex_destroy(&r->memo_mu);
	alyx__free(r);
}

const char *alyx__rule_src(const alyx__rule *r)
{
	return alyx__cel_prog_src(r->prog, NULL);
}

bool alyx__rule_always(const alyx__rule *r)
{
	return r && r->always;
}

/* ---- JSON -> CEL ---- */

static int json_generic(const cJSON *j, alyx__cel_run *run,
			alyx__cel_val *out, int depth);

static int mk_map(alyx__cel_run *run, size_t n, alyx__cel_val **kv)
{
	*kv = alyx__cel_alloc(run, (2 * n + 1) * sizeof(**kv));
	return *kv ? ALYX_OK : ALYX_E_TOOBIG;
}

static alyx__cel_val number_val(const cJSON *j)
{
	double d = j->valuedouble;

	if (d == trunc(d) && d >= -9223372036854775808.0 &&
	    d < 9223372036854775808.0)
		return alyx__cel_int((int64_t)d);
	return alyx__cel_double(d);
}

/*
 * Duplicate JSON keys: the first wins.  Small objects check the keys
 * placed so far linearly; larger ones (a request body with many keys)
 * through a hash of them, so conversion stays linear.
 */
typedef struct keyset {
	uint32_t *slot;		/* index + 1 of the entry, 0 = empty */
	size_t mask;
} keyset;

static uint32_t key_hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

static int keyset_init(keyset *ks, alyx__cel_run *run, size_t n)
{
	size_t cap = 32;

	ks->slot = NULL;
	ks->mask = 0;
	if (n <= 16)
		return ALYX_OK;
	while (cap < 2 * n)
		cap *= 2;
	ks->slot = alyx__cel_alloc(run, cap * sizeof(*ks->slot));
	if (!ks->slot)
		return ALYX_E_TOOBIG;
	memset(ks->slot, 0, cap * sizeof(*ks->slot));
	ks->mask = cap - 1;
	return ALYX_OK;
}

/* Puts `key` at kv[2n] unless kv[0..n) has it already. */
static bool put_keyval(keyset *ks, alyx__cel_val *kv, size_t n,
		       alyx__cel_val key)
{
	if (!ks->slot) {
		alyx__cel_val m = alyx__cel_map(kv, n);
		if (cel_map_get(&m, &key))
			return false;
		kv[2 * n] = key;
		return true;
	}
	size_t h = key_hash(key.v.s, key.n) & ks->mask;
	while (ks->slot[h]) {
		const alyx__cel_val *k = &kv[2 * (ks->slot[h] - 1)];
		if (k->n == key.n && !memcmp(k->v.s, key.v.s, key.n))
			return false;
		h = (h + 1) & ks->mask;
	}
	ks->slot[h] = (uint32_t)n + 1;
	kv[2 * n] = key;
	return true;
}

static bool put_key(keyset *ks, alyx__cel_val *kv, size_t n,
		    const cJSON *it)
{
	return put_keyval(ks, kv, n, alyx__cel_str(it->string,
						   strlen(it->string)));
}

static int json_generic(const cJSON *j, alyx__cel_run *run,
			alyx__cel_val *out, int depth)
{
	size_t n = 0;
	const cJSON *it;
	alyx__cel_val *kv;
	int rc;

	if (depth > 64)
		return ALYX_E_TOOBIG;
	if (!j || cJSON_IsNull(j)) {
		*out = alyx__cel_null();
	} else if (cJSON_IsBool(j)) {
		*out = alyx__cel_bool(cJSON_IsTrue(j));
	} else if (cJSON_IsNumber(j)) {
		*out = number_val(j);
	} else if (cJSON_IsString(j)) {
		*out = alyx__cel_str(j->valuestring, strlen(j->valuestring));
	} else if (cJSON_IsArray(j)) {
		cJSON_ArrayForEach(it, j) n++;
		kv = alyx__cel_alloc(run, (n + 1) * sizeof(*kv));
		if (!kv)
			return ALYX_E_TOOBIG;
		n = 0;
		cJSON_ArrayForEach(it, j) {
			rc = json_generic(it, run, &kv[n++], depth + 1);
			if (rc)
				return rc;
		}
		*out = alyx__cel_list(kv, n);
	} else if (cJSON_IsObject(j)) {
		keyset ks;
		cJSON_ArrayForEach(it, j) n++;
		if ((rc = mk_map(run, n, &kv)) || (rc = keyset_init(&ks, run, n)))
			return rc;
		n = 0;
		cJSON_ArrayForEach(it, j) {
			if (!put_key(&ks, kv, n, it))
				continue;
			rc = json_generic(it, run, &kv[2 * n + 1], depth + 1);
			if (rc)
				return rc;
			n++;
		}
		*out = alyx__cel_map(kv, n);
	} else {
		*out = alyx__cel_null();
	}
	return ALYX_OK;
}

/* A timestamp from ISO text or epoch milliseconds; false if neither. */
static bool json_time(const cJSON *j, alyx__cel_val *out)
{
	int64_t s, ms;
	int32_t ns;

	if (cJSON_IsString(j)) {
		size_t n = strlen(j->valuestring);
		if (alyx__cel_parse_timestamp(j->valuestring, n, &s, &ns)) {
			*out = alyx__cel_timestamp(s, ns);
			return true;
		}
		if (!alyx__parse_iso8601(j->valuestring, n, &ms))
			return false;
	} else if (cJSON_IsNumber(j)) {
		if (!(j->valuedouble >= (double)CEL_TS_MIN * 1000 &&
		      j->valuedouble <= (double)CEL_TS_MAX * 1000))
			return false;
		ms = (int64_t)j->valuedouble;
	} else {
		return false;
	}
	if (ms < CEL_TS_MIN * 1000 || ms > CEL_TS_MAX * 1000 + 999)
		return false;
	s = ms / 1000;
	ns = (int32_t)(ms % 1000) * 1000000;
	if (ns < 0) {
		ns += 1000000000;
		s--;
	}
	*out = alyx__cel_timestamp(s, ns);
	return true;
}

/* One document field by its schema type. */
static int field_val(alyx__type t, const cJSON *j, alyx__cel_run *run,
		     alyx__cel_val *out)
{
	if (!j || cJSON_IsNull(j)) {
		*out = alyx__cel_null();
		return ALYX_OK;
	}
	switch (t) {
	case ALYX_T_TIMESTAMP:
		if (json_time(j, out))
			return ALYX_OK;
		break;
	case ALYX_T_FLOAT:
		if (cJSON_IsNumber(j)) {
			*out = alyx__cel_double(j->valuedouble);
			return ALYX_OK;
		}
		break;
	case ALYX_T_BOOL:
		if (cJSON_IsNumber(j)) {	/* stored form 0/1 */
			*out = alyx__cel_bool(j->valuedouble != 0);
			return ALYX_OK;
		}
		break;
	case ALYX_T_BLOB:
		if (cJSON_IsString(j)) {
			unsigned char *d;
			size_t dn;
			const char *s = j->valuestring;
			if (!alyx__base64_dec(s, strlen(s), &d, &dn))
				break;
			char *c = alyx__cel_alloc(run, dn + 1);
			if (!c) {
				alyx__free(d);
				return ALYX_E_TOOBIG;
			}
			memcpy(c, d, dn);
			alyx__free(d);
			*out = alyx__cel_bytes(c, dn);
			return ALYX_OK;
		}
		break;
	default:
		break;
	}
	return json_generic(j, run, out, 1);
}

static int doc_val(const alyx__rule *r, const alyx__collection *c,
		   const cJSON *j, alyx__cel_run *run, alyx__cel_val *out)
{
	size_t n = 0;
	const cJSON *it;
	alyx__cel_val *kv;
	int rc;

	if (r && !r->doc_whole && cJSON_IsObject(j)) {
		/* only the fields the rule reads */
		if ((rc = mk_map(run, r->n_used, &kv)))
			return rc;
		for (size_t i = 0; i < r->n_used; i++) {
			it = cJSON_GetObjectItemCaseSensitive(j,
							      r->used[i].name);
			if (!it)
				continue;
			kv[2 * n] = alyx__cel_str(it->string,
						  strlen(it->string));
			rc = (int)r->used[i].type >= 0 ?
				     field_val(r->used[i].type, it, run,
					       &kv[2 * n + 1]) :
				     json_generic(it, run, &kv[2 * n + 1], 1);
			if (rc)
				return rc;
			n++;
		}
		*out = alyx__cel_map(kv, n);
		return ALYX_OK;
	}
	if (!cJSON_IsObject(j) || (!r && !c) || (r && !r->typed))
		return json_generic(j, run, out, 0);
	keyset ks;
	cJSON_ArrayForEach(it, j) n++;
	if ((rc = mk_map(run, n, &kv)) || (rc = keyset_init(&ks, run, n)))
		return rc;
	n = 0;
	cJSON_ArrayForEach(it, j) {
		int ft = -1;
		if (!put_key(&ks, kv, n, it))
			continue;
		if (r) {
			for (size_t i = 0; i < r->n_fields; i++)
				if (!strcmp(r->fields[i].name, it->string)) {
					ft = (int)r->fields[i].type;
					break;
				}
		} else {
			const alyx__field *f = cel_coll_field(
				c, it->string);
			if (f)
				ft = (int)f->type;
		}
		rc = ft >= 0 ? field_val((alyx__type)ft, it, run,
					 &kv[2 * n + 1]) :
			       json_generic(it, run, &kv[2 * n + 1], 1);
		if (rc)
			return rc;
		n++;
	}
	*out = alyx__cel_map(kv, n);
	return ALYX_OK;
}

int alyx__rule_json_val(const cJSON *j, const alyx__collection *c,
			alyx__cel_run *run, alyx__cel_val *out)
{
	return doc_val(NULL, c, j, run, out);
}

const alyx__field *cel_coll_field(const alyx__collection *c,
					 const char *name)
{
	for (size_t i = 0; c && i < c->n_fields; i++)
		if (!strcmp(c->fields[i].name, name))
			return &c->fields[i];
	return NULL;
}

/* Appends the keys of object j not yet in kv[0..n) and finishes the map
 * (kv has room for n + the members of j). */
static int add_rest(const cJSON *j, alyx__cel_run *run, alyx__cel_val *kv,
		    size_t n, alyx__cel_val *out)
{
	const cJSON *it;
	keyset ks;
	size_t total = n;
	int rc;

	cJSON_ArrayForEach(it, j) total++;
	if ((rc = keyset_init(&ks, run, total)))
		return rc;
	if (ks.slot) {
		size_t placed = n;
		for (size_t i = 0; i < placed; i++)
			put_keyval(&ks, kv, i, kv[2 * i]);
	}
	cJSON_ArrayForEach(it, j) {
		if (!put_key(&ks, kv, n, it))
			continue;
		if ((rc = json_generic(it, run, &kv[2 * n + 1], 1)))
			return rc;
		n++;
	}
	*out = alyx__cel_map(kv, n);
	return ALYX_OK;
}

/* auth: null, or a map that always has id, email, role, verified and
 * metadata (missing ones are null / false / {}), plus any other keys. */
int alyx__rule_auth_val(const cJSON *j, alyx__cel_run *run,
			alyx__cel_val *out)
{
	static const char *const keys[] = {"id", "email", "role", "verified",
					   "metadata"};
	alyx__cel_val *kv;
	size_t n = 0, extra = 0;
	const cJSON *it;
	int rc;

	if (!j || !cJSON_IsObject(j)) {
		*out = alyx__cel_null();
		return ALYX_OK;
	}
	cJSON_ArrayForEach(it, j) extra++;
	if ((rc = mk_map(run, extra + ALYX_ARRAY_LEN(keys), &kv)))
		return rc;
	for (size_t i = 0; i < ALYX_ARRAY_LEN(keys); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
		kv[2 * n] = alyx__cel_str(keys[i], strlen(keys[i]));
		if (i == 3 && !cJSON_IsBool(v)) {
			kv[2 * n + 1] = alyx__cel_bool(
				cJSON_IsNumber(v) && v->valuedouble != 0);
		} else if (i == 4 && !cJSON_IsObject(v)) {
			kv[2 * n + 1] = alyx__cel_map(NULL, 0);
		} else if ((rc = json_generic(v, run, &kv[2 * n + 1], 1))) {
			return rc;
		}
		n++;
	}
	return add_rest(j, run, kv, n, out);
}

/* request: a map with method, ip, time (timestamp) and body (map or
 * null), plus any other keys given. */
int alyx__rule_request_val(const cJSON *j, alyx__cel_run *run,
			   alyx__cel_val *out)
{
	static const char *const keys[] = {"method", "ip", "time", "body"};
	alyx__cel_val *kv;
	size_t n = 0, extra = 0;
	const cJSON *it;
	int rc;

	if (j && !cJSON_IsObject(j))
		j = NULL;
	cJSON_ArrayForEach(it, j) extra++;
	if ((rc = mk_map(run, extra + ALYX_ARRAY_LEN(keys), &kv)))
		return rc;
	for (size_t i = 0; i < ALYX_ARRAY_LEN(keys); i++) {
		const cJSON *v = j ? cJSON_GetObjectItemCaseSensitive(
					     j, keys[i]) :
				     NULL;
		kv[2 * n] = alyx__cel_str(keys[i], strlen(keys[i]));
		if (i == 2) {
			if (!json_time(v, &kv[2 * n + 1])) {
				int64_t ms = alyx__now_ms();
				kv[2 * n + 1] = alyx__cel_timestamp(
					ms / 1000,
					(int32_t)(ms % 1000) * 1000000);
			}
		} else if ((rc = json_generic(v, run, &kv[2 * n + 1], 1))) {
			return rc;
		}
		n++;
	}
	return add_rest(j, run, kv, n, out);
}

/* ---- evaluation ---- */

static void set_eval_err(const alyx__rule *r, alyx__err *err, int pos,
			 const char *msg)
{
	int line = 0, col = 0;
	size_t len;
	const char *src = alyx__cel_prog_src(r->prog, &len);

	if (!err)
		return;
	if (pos >= 0)
		alyx__cel_linecol(src, len, pos, &line, &col);
	alyx__err_setd(err, ALYX_E_RULE,
		       pos >= 0 ? alyx__asprintf("{\"line\":%d,\"column\":%d}",
						 line, col) :
				  NULL,
		       "%d:%d: %s", line, col, msg);
}

alyx__rule_result alyx__rule_eval_vals(const alyx__rule *r,
				       const alyx__cel_val vars[3],
				       alyx__cel_run *run, alyx__err *err)
{
	alyx__cel_val v;

	if (run->max_steps > ALYX_RULE_MAX_STEPS)
		run->max_steps = ALYX_RULE_MAX_STEPS;
	v = alyx__cel_eval(r->prog, vars, run);
	if (v.k == ALYX_CEL_BOOL)
		return v.v.b ? ALYX_RULE_ALLOW : ALYX_RULE_DENY;
	if (v.k == ALYX_CEL_ERROR)
		set_eval_err(r, err, v.v.e->pos, v.v.e->msg);
	else
		set_eval_err(r, err, 0, "rule result is not a bool");
	return ALYX_RULE_ERROR;
}

alyx__rule_result alyx__rule_eval(const alyx__rule *r,
				  const alyx__rule_ctx *ctx, alyx__err *err)
{
	alyx__cel_run run;
	alyx__cel_val vars[3];
	alyx__rule_result res;
	int rc;

	alyx__cel_run_init(&run);
	run.max_steps = ALYX_RULE_MAX_STEPS;
	rc = alyx__rule_auth_val(ctx ? ctx->auth : NULL, &run, &vars[0]);
	if (!rc)
		rc = doc_val(r, NULL, ctx ? ctx->doc : NULL, &run, &vars[1]);
	if (!rc)
		rc = alyx__rule_request_val(ctx ? ctx->request : NULL, &run,
					    &vars[2]);
	if (rc) {
		if (err)
			alyx__err_set(err, rc, NULL,
				      "rule input too large to evaluate");
		alyx__cel_run_free(&run);
		return ALYX_RULE_ERROR;
	}
	res = alyx__rule_eval_vals(r, vars, &run, err);
	alyx__cel_run_free(&run);
	return res;
}

/* ---- a collection's rules ---- */

static const char *const op_names[ALYX_RULE_COUNT] = {"create", "read",
						       "update", "delete"};

int alyx__rules_build(const alyx__collection *c,
		      alyx__rule *out[ALYX_RULE_COUNT], alyx__err *err)
{
	alyx__err e = {0};
	int rc = ALYX_OK;

	for (int op = 0; op < ALYX_RULE_COUNT; op++)
		out[op] = NULL;
	for (int op = 0; op < ALYX_RULE_COUNT && !rc; op++) {
		const char *src = c->rules[op];
		if (!src)
			continue;
		rc = alyx__rule_compile(src, strlen(src), c, &out[op], &e);
		if (!rc)
			rc = alyx__rule_check(out[op], c, &e);
		if (!rc)
			continue;
		/* "L:C: msg" within the rule -> the schema file position */
		int l = 1, col = 1;
		const char *msg = e.msg;
		if (sscanf(e.msg, "%d:%d: ", &l, &col) == 2) {
			msg = strchr(e.msg, ' ');
			msg = msg ? msg + 1 : e.msg;
		}
		int fl = c->rule_line[op] > 0 ? c->rule_line[op] + l - 1 : l;
		int fc = c->rule_line[op] > 0 && l == 1 ?
				 c->rule_col[op] + col - 1 : col;
		alyx_buf d;
		alyx__buf_init(&d, 4096);
		alyx__buf_adds(&d, "{\"collection\":");
		alyx__json_strz(&d, c->name);
		alyx__buf_addf(&d, ",\"operation\":\"%s\",\"line\":%d,"
			       "\"column\":%d,\"rule_line\":%d,"
			       "\"rule_column\":%d,\"message\":", op_names[op],
			       fl, fc, l, col);
		alyx__json_strz(&d, msg);
		alyx__buf_addc(&d, '}');
		rc = alyx__err_setd(err, e.code == ALYX_E_RULE ? ALYX_E_SCHEMA :
							       e.code,
				    alyx__buf_take(&d),
				    "%d:%d: rule %s.%s: %s", fl, fc,
				    c->name ? c->name : "?", op_names[op], msg);
		alyx__err_clear(&e);
	}
	if (rc)
		for (int op = 0; op < ALYX_RULE_COUNT; op++) {
			alyx__rule_free(out[op]);
			out[op] = NULL;
		}
	return rc;
}
