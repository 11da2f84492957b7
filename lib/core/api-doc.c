/* api-doc.c - the public document, batch and query functions. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/access.h"
#include "core/handle.h"
#include "doc/doc.h"
#include "query/query.h"

#define BATCH_MAX_REQUESTS 1000
#define ID_MAX 1024

/* Sets *out to NULL and checks it (every public function with an OUT). */
static int check_out(char **out, alyx__err *err)
{
	if (!out)
		return alyx__misuse(err, "out");
	*out = NULL;
	return ALYX_OK;
}

/* Drops what a failed read appended to b, and the sticky error it set
 * (b had none: the callers check before appending). */
static void buf_back(alyx_buf *b, size_t mark)
{
	if (b->data && mark <= b->len) {
		b->len = mark;
		b->data[mark] = '\0';
	}
	b->err = ALYX_OK;
}

/* The error of a result buffer that hit its cap (`toobig`) or ran out
 * of memory. */
static int buf_err(const alyx_buf *b, const char *toobig, alyx__err *err)
{
	return alyx__err_set(err, b->err, NULL, "%s", b->err == ALYX_E_TOOBIG
			     ? toobig : "out of memory");
}

static int check_id(const char *id, alyx__err *err)
{
	if (!id)
		return alyx__misuse(err, "id");
	if (!*id || strlen(id) > ID_MAX)
		return alyx__err_set(err, ALYX_E_NOTFOUND, NULL,
				     "document id is empty or longer than %d "
				     "bytes", ID_MAX);
	return ALYX_OK;
}

/* ---- single writes (the caller holds a write transaction) ---- */

/*
 * One create (id NULL) or update under the caller's rules, on the writer
 * connection: the rule check (create: on the prepared document; update:
 * on the stored one), the write, and the result cut to its primary key
 * when the caller may not read it.  `row` is prepared from `body`.
 */
static int guarded_write(alyx *a, const alyx__caller *k,
			 const alyx__collection *c, const char *id,
			 const cJSON *body, const alyx__row *row,
			 alyx_buf *out, alyx__err *err)
{
	cJSON *doc = NULL;
	size_t mark = out->len;
	int rc;

	if (id)
		rc = alyx__access_stored(k, a->wdb, c, id, ALYX_RULE_UPDATE,
					 body, err);
	else
		rc = alyx__access_create(k, c, row, body,
					 alyx__caller_system(k) ? NULL : &doc,
					 err);
	if (rc != ALYX_OK)
		goto out;
	if (id)
		rc = alyx__doc_update(a->wdb, c, id, row, out, err);
	else
		rc = alyx__doc_insert(a->wdb, c, row, out, err);
	if (rc == ALYX_OK && !alyx__caller_system(k))
		rc = alyx__access_result(k, a->wdb, c, id, doc, out, mark,
					 err);
out:
	cJSON_Delete(doc);
	return rc;
}

static int do_write(alyx *a, const alyx__caller *k,
		    const alyx__collection *c, const char *id,
		    const cJSON *body, alyx_buf *out, alyx__err *err)
{
	alyx__row row = {0};
	int rc = alyx__access_body(k, c, body, err);

	if (rc == ALYX_OK)
		rc = alyx__doc_prepare(c, body,
				       id ? ALYX_DOC_UPDATE : ALYX_DOC_CREATE,
				       &row, err);
	if (rc == ALYX_OK)
		rc = guarded_write(a, k, c, id, body, &row, out, err);
	alyx__row_free(&row);
	return rc;
}

static int do_delete(alyx *a, const alyx__caller *k,
		     const alyx__collection *c, const char *id,
		     alyx__err *err)
{
	int rc = alyx__access_stored(k, a->wdb, c, id, ALYX_RULE_DELETE, NULL,
				     err);

	if (rc == ALYX_OK)
		rc = alyx__doc_delete(a->wdb, c, id, err);
	return rc;
}

void alyx__write_free(alyx__prepared *p)
{
	if (p->row) {
		alyx__row_free(p->row);
		alyx__free(p->row);
	}
	cJSON_Delete(p->body);
	alyx__snap_put(p->snap);
	memset(p, 0, sizeof(*p));
}

int alyx__write_prepare(alyx *a, const alyx_ctx *ctx, const char *collection,
			bool update, const char *json, size_t len,
			alyx__prepared *p)
{
	alyx__err err = {0};
	alyx__caller k;
	int rc;

	memset(p, 0, sizeof(*p));
	p->update = update;
	rc = alyx__caller_init(&k, ctx, &err);
	if (rc == ALYX_OK)
		rc = alyx__enter(a, &err);
	if (rc != ALYX_OK)
		goto out;
	p->snap = alyx__snap_get(a);
	rc = alyx__coll_find(p->snap, collection, &p->c, &err);
	if (rc == ALYX_OK)
		rc = alyx__json_parse(a, json, len, "json", &p->body, &err);
	if (rc == ALYX_OK)
		rc = alyx__access_body(&k, p->c, p->body, &err);
	if (rc == ALYX_OK && !(p->row = alyx__calloc(1, sizeof(*p->row))))
		rc = alyx__err_set(&err, ALYX_E_NOMEM, NULL, "out of memory");
	if (rc == ALYX_OK)
		rc = alyx__doc_prepare(p->c, p->body,
				       update ? ALYX_DOC_UPDATE
					      : ALYX_DOC_CREATE,
				       p->row, &err);
out:
	if (rc != ALYX_OK)
		alyx__write_free(p);
	alyx__caller_free(&k);
	return alyx__finish(a, &err);
}

/* True if `s` is still the handle's schema snapshot. */
static bool snap_current(alyx *a, const alyx__snap *s)
{
	alyx__snap *now = alyx__snap_get(a);
	bool same = now == s;

	alyx__snap_put(now);
	return same;
}

int alyx__write_run(alyx *a, const alyx_ctx *ctx, alyx__prepared *p,
		    const char *collection, const char *id, const char *json,
		    size_t len, char **out)
{
	alyx__err err = {0};
	alyx__caller k;
	alyx__wtx t = {0};
	alyx_buf b;
	int rc;

	alyx__buf_init(&b, 0);
	/* The stored document is the body's fields and the generated ones:
	 * room for it in one allocation instead of doubling up from 64
	 * bytes, reallocations the writer thread, which every write waits
	 * for, spent ~4 % of its time on. */
	if (len < ((size_t)1 << 20))
		alyx__buf_reserve(&b, len + 256);
	rc = alyx__caller_init(&k, ctx, &err);
	if (rc == ALYX_OK)
		rc = check_out(out, &err);
	if (rc == ALYX_OK)
		rc = alyx__enter(a, &err);
	if (rc == ALYX_OK && p->update)
		rc = check_id(id, &err);
	if (rc == ALYX_OK && (!p->row || !snap_current(a, p->snap))) {
		/* The schema changed since the document was checked (or it
		 * never was): check it again against the new one. */
		alyx__write_free(p);
		rc = alyx__write_prepare(a, ctx, collection, id != NULL, json,
					 len, p);
		if (rc != ALYX_OK) {
			/* reported by prepare */
			alyx__buf_free(&b);
			alyx__caller_free(&k);
			return rc;
		}
	}
	if (rc == ALYX_OK)
		rc = alyx__wtx_begin(a, &t, &err);
	if (rc != ALYX_OK)
		goto out;
	rc = guarded_write(a, &k, p->c, id, p->body, p->row, &b, &err);
	rc = alyx__wtx_end(&t, rc == ALYX_OK, &err);
	if (rc == ALYX_OK && b.err)
		rc = alyx__err_set(&err, b.err, NULL, "document too large");
	if (rc == ALYX_OK)
		*out = alyx__buf_take(&b);
out:
	alyx__buf_free(&b);
	alyx__caller_free(&k);
	return alyx__finish(a, &err);
}

/* Creates or updates (id != NULL) one document from JSON text: validated
 * before taking the writer, so a bad document costs no lock. */
static int write_one(alyx *a, const alyx_ctx *ctx, const char *collection,
		     const char *id, const char *json, size_t len, char **out)
{
	alyx__prepared p;
	alyx__err err = {0};
	int rc;

	rc = check_out(out, &err);
	if (rc == ALYX_OK)
		rc = alyx__enter(a, &err);
	if (rc == ALYX_OK && id)
		rc = check_id(id, &err);
	if (rc != ALYX_OK)
		return alyx__finish(a, &err);
	rc = alyx__write_prepare(a, ctx, collection, id != NULL, json, len,
				 &p);
	if (rc == ALYX_OK)
		rc = alyx__write_run(a, ctx, &p, collection, id, json, len,
				     out);
	alyx__write_free(&p);
	return rc;
}

ALYX_API int alyx_doc_create(alyx *a, const alyx_ctx *ctx,
			     const char *collection, const char *json,
			     size_t len, char **out)
{
	return write_one(a, ctx, collection, NULL, json, len, out);
}

ALYX_API int alyx_doc_update(alyx *a, const alyx_ctx *ctx,
			     const char *collection, const char *id,
			     const char *json, size_t len, char **out)
{
	alyx__err err = {0};

	if (!id) {
		if (out)
			*out = NULL;
		alyx__misuse(&err, "id");
		return alyx__finish(a, &err);
	}
	return write_one(a, ctx, collection, id, json, len, out);
}

ALYX_API int alyx_doc_delete(alyx *a, const alyx_ctx *ctx,
			     const char *collection, const char *id)
{
	alyx__err err = {0};
	alyx__caller k;
	alyx__snap *snap = NULL;
	const alyx__collection *c;
	alyx__wtx t = {0};
	int rc;

	rc = alyx__caller_init(&k, ctx, &err);
	if (rc == ALYX_OK)
		rc = alyx__enter(a, &err);
	if (rc == ALYX_OK)
		rc = check_id(id, &err);
	if (rc != ALYX_OK)
		goto out;
	snap = alyx__snap_get(a);
	rc = alyx__coll_find(snap, collection, &c, &err);
	if (rc == ALYX_OK)
		rc = alyx__wtx_begin(a, &t, &err);
	if (rc != ALYX_OK)
		goto out;
	rc = do_delete(a, &k, c, id, &err);
	alyx__wtx_end(&t, rc == ALYX_OK, &err);
out:
	alyx__snap_put(snap);
	alyx__caller_free(&k);
	return alyx__finish(a, &err);
}

/* ---- reads ---- */

static void url_encode(alyx_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
		    ch == '.' || ch == '~') {
			alyx__buf_addc(b, (char)ch);
		} else {
			alyx__buf_addc(b, '%');
			alyx__buf_addc(b, hex[ch >> 4]);
			alyx__buf_addc(b, hex[ch & 15]);
		}
	}
}

/* alyx_doc_get's opts may only carry expand= and fields=. */
static int check_get_opts(const char *opts, alyx__err *err)
{
	const char *p = opts;

	while (*p) {
		size_t n = strcspn(p, "&");
		size_t k = strcspn(p, "=&");

		if (n && !((k == 6 && strncmp(p, "expand", 6) == 0) ||
			   (k == 6 && strncmp(p, "fields", 6) == 0))) {
			char key[64];

			snprintf(key, sizeof(key), "%.*s",
				 (int)(k < 63 ? k : 63), p);
			return alyx__err_setd(
				err, ALYX_E_BADQUERY,
				alyx__asprintf("{\"param\":\"%s\"}",
					       alyx__ident_valid(key) ? key
								      : "?"),
				"alyx_doc_get accepts only expand= and "
				"fields= options");
		}
		p += n;
		if (*p == '&')
			p++;
	}
	return ALYX_OK;
}

/* How the caller reads collection c (run_for, get_direct): nothing (the
 * rule lets nobody read), everything (the system), or under rule *r with
 * the request context *req (made here; the caller deletes it). */
enum { READ_NONE, READ_ALL, READ_RULED };

static int read_access(const alyx__caller *k, const alyx__collection *c,
		       const alyx__rule **r, cJSON **req, int *how,
		       alyx__err *err)
{
	bool nomem = false;

	*req = NULL;
	switch (alyx__access_mode(k, c, ALYX_RULE_READ, r)) {
	case ALYX_ACC_NONE:
		*how = READ_NONE;
		return ALYX_OK;
	case ALYX_ACC_ALL:
		if (alyx__caller_system(k)) {
			*how = READ_ALL;
			return ALYX_OK;
		}
		break;
	default:
		break;
	}
	*how = READ_RULED;
	*req = alyx__access_request(k, *r, "GET", NULL, &nomem);
	return nomem ? alyx__err_set(err, ALYX_E_NOMEM, NULL,
				     "out of memory") : ALYX_OK;
}

/*
 * Runs a parsed query for the caller: the system unrestricted; others
 * under the collection's read rule pushed into the SQL (ruled.c), or
 * nothing at all when there is no rule and the caller is not an admin.
 * Expanded documents meet their own collection's read rule.
 */
static int run_for(const alyx__caller *k, const alyx__query *q,
		   const alyx__rd *rd, alyx_buf *out, alyx__err *err)
{
	static const alyx__sqlcond none = {"0", NULL, 0};
	alyx__query_opts o = {.cache = rd->qc};
	const alyx__rule *r;
	cJSON *req;
	bool tx;
	int rc, how;

	rc = read_access(k, q->coll, &r, &req, &how, err);
	if (rc != ALYX_OK)
		return rc;
	if (how == READ_NONE)
		o.extra = &none;
	if (how != READ_RULED)
		return alyx__query_run(rd->db, q, &o, out, err);
	/* The per-row fallback reads in several statements: one snapshot. */
	tx = !rd->pass;
	rc = tx ? alyx__tx_begin(rd->db, false, err) : ALYX_OK;
	if (rc == ALYX_OK)
		rc = alyx__query_run_ruled(rd->db, q, r, k->auth, req, rd->qc,
					   out, err);
	if (tx)
		alyx__tx_rollback(rd->db);
	cJSON_Delete(req);
	return rc;
}

/* The usual get under a read rule (no options): the rule pushed into
 * the get's own statement when it translates to SQL exactly (*done), with
 * the access decisions of run_for; otherwise nothing is read. */
static int get_direct(const alyx__caller *k, const alyx__collection *c,
		      const alyx__value *pk, const alyx__rd *rd,
		      alyx_buf *out, bool *done, bool *found,
		      alyx__err *err)
{
	const alyx__rule *r;
	cJSON *req;
	int rc, how;

	*done = *found = false;
	rc = read_access(k, c, &r, &req, &how, err);
	if (rc != ALYX_OK)
		return rc;
	if (how == READ_NONE) {
		*done = true;	/* nobody reads: no document */
		return ALYX_OK;
	}
	/* r is NULL for those who read everything. */
	rc = alyx__query_get_ruled(rd->db, c, pk, r, k->auth, req, out, done,
				   found, err);
	cJSON_Delete(req);
	return rc;
}

/* A get with options, or of a caller who may not read every document:
 * without options under a rule that translates exactly, get_direct;
 * otherwise the query filter=<pk>:eq:<id>&limit=1[&opts] through the
 * query module, its page cut down to the one document. */
static int get_with_opts(const alyx__caller *k, alyx__snap *snap,
			 const alyx__collection *c, const char *id,
			 const char *opts, const alyx__rd *rd, alyx_buf *out,
			 alyx__err *err)
{
	static const char head[] = "{\"docs\":[";
	alyx__query *q = NULL;
	alyx__value pk = {0};
	size_t mark = out->len, start, end;
	alyx_buf qs;
	char why[128];
	int rc;

	alyx__buf_init(&qs, 0);
	rc = check_get_opts(opts, err);
	if (rc != ALYX_OK)
		goto out;
	/* An id the primary key could never hold names no document. */
	if (!alyx__doc_pk_value(c, id, &pk, why)) {
		rc = strcmp(why, ALYX_DOC_WHY_NOMEM)
			     ? alyx__doc_not_found(c, id, err)
			     : alyx__err_set(err, ALYX_E_NOMEM, NULL,
					     "out of memory");
		goto out;
	}
	if (!*opts) {
		bool done, found;

		rc = get_direct(k, c, &pk, rd, out, &done, &found, err);
		if (rc == ALYX_OK && done && !found)
			rc = alyx__doc_not_found(c, id, err);
		if (rc != ALYX_OK || done)
			goto out;
		/* A rule evaluated per row: the query form, made directly. */
		rc = alyx__query_by_pk(snap->schema, c, &pk, &q, err);
	} else {
		alyx__buf_adds(&qs, "filter=");
		alyx__buf_adds(&qs, c->fields[c->pk].name);
		alyx__buf_adds(&qs, ":eq:");
		url_encode(&qs, id);
		alyx__buf_adds(&qs, "&limit=1&");
		alyx__buf_adds(&qs, opts);
		rc = qs.err ? alyx__err_set(err, qs.err, NULL,
					    "options too long") :
			alyx__query_parse_str(snap->schema, c, qs.data, &q,
					      err);
	}
	/* The page is written in place, then cut down to its document. */
	if (rc == ALYX_OK)
		rc = run_for(k, q, rd, out, err);
	if (rc != ALYX_OK)
		goto out;
	start = mark + sizeof(head) - 1;
	end = out->len;
	if (end < start + 1 ||
	    memcmp(out->data + mark, head, sizeof(head) - 1) != 0) {
		rc = alyx__err_set(err, ALYX_E_INTERNAL, NULL,
				   "unexpected query result");
		goto out;
	}
	if (out->data[start] == ']') {
		rc = alyx__doc_not_found(c, id, err);
		goto out;
	}
	/* The document is the one array element: from after '[' to the
	 * array's closing ']' (the object ends with '}' just before it). */
	while (end > start && out->data[end - 1] != ']')
		end--;
	if (end <= start + 1) {
		rc = alyx__err_set(err, ALYX_E_INTERNAL, NULL,
				   "unexpected query result");
		goto out;
	}
	memmove(out->data + mark, out->data + start, end - 1 - start);
	out->len = mark + (end - 1 - start);
	out->data[out->len] = '\0';
out:
	alyx__value_clear(&pk);
	alyx__query_free(q);
	alyx__buf_free(&qs);
	return rc;
}

/* Whether the caller may read every document of c: the system, an admin
 * where there is no read rule, anyone where the rule is `true`.  Such a
 * get is one primary-key read (internal fields left out, as always for
 * alyx__doc_read without with_internal). */
static bool reads_all(const alyx__caller *k, const alyx__collection *c)
{
	return alyx__access_open(k, c, ALYX_RULE_READ);
}

/* The common start of a read: handle, schema snapshot, collection. */
static int read_begin(alyx *a, const char *collection, alyx__snap **snap,
		      const alyx__collection **c, alyx__err *err)
{
	int rc = alyx__enter(a, err);

	if (rc != ALYX_OK)
		return rc;
	*snap = alyx__snap_get(a);
	return alyx__coll_find(*snap, collection, c, err);
}

/* alyx_doc_get appending the document to `b` (the HTTP replies write it
 * straight behind their headers); on failure b is as it was. */
int alyx__doc_get_buf(alyx *a, const alyx_ctx *ctx, const char *collection,
		      const char *id, const char *opts, alyx_buf *b)
{
	alyx__err err = {0};
	alyx__caller k;
	alyx__snap *snap = NULL;
	const alyx__collection *c;
	alyx__rd rd = {0};
	size_t mark = b->len;
	int rc;

	rc = alyx__caller_init(&k, ctx, &err);
	if (rc == ALYX_OK)
		rc = read_begin(a, collection, &snap, &c, &err);
	if (rc == ALYX_OK)
		rc = check_id(id, &err);
	if (rc == ALYX_OK)
		rc = alyx__reader_get(a, &rd, &err);
	if (rc != ALYX_OK)
		goto out;
	if ((opts && *opts) || !reads_all(&k, c))
		rc = get_with_opts(&k, snap, c, id, opts ? opts : "", &rd, b,
				   &err);
	else
		rc = alyx__doc_read(rd.db, c, id, false, b, &err);
	alyx__reader_put(a, &rd);
	if (rc == ALYX_OK && b->err)
		rc = buf_err(b, "document too large", &err);
out:
	if (rc != ALYX_OK)
		buf_back(b, mark);
	alyx__snap_put(snap);
	alyx__caller_free(&k);
	return alyx__finish(a, &err);
}

/* The public reads return a new string: out_begin checks `out` and
 * starts the buffer the *_buf form appends to, out_end hands it over. */
static int out_begin(alyx *a, char **out, alyx_buf *b)
{
	alyx__err err = {0};

	alyx__buf_init(b, 0);
	if (check_out(out, &err) != ALYX_OK)
		return alyx__finish(a, &err);
	return ALYX_OK;
}

static int out_end(int rc, alyx_buf *b, char **out)
{
	if (rc == ALYX_OK)
		*out = alyx__buf_take(b);
	alyx__buf_free(b);
	return rc;
}

ALYX_API int alyx_doc_get(alyx *a, const alyx_ctx *ctx,
			  const char *collection, const char *id,
			  const char *opts, char **out)
{
	alyx_buf b;
	int rc = out_begin(a, out, &b);

	if (rc == ALYX_OK)
		rc = out_end(alyx__doc_get_buf(a, ctx, collection, id, opts,
					       &b), &b, out);
	return rc;
}

/* Runs a parsed query of any form (decoded REST parameters when n_args,
 * else the REST string qs, else json; then exec), appending the result to
 * `b`; on failure b is as it was. */
static int run_query(alyx *a, const alyx_ctx *ctx, const char *collection,
		     const char *qs, const char *json,
		     const alyx__qarg *args, size_t n_args, alyx_buf *b)
{
	alyx__err err = {0};
	alyx__caller k;
	alyx__snap *snap = NULL;
	const alyx__collection *c;
	alyx__query *q = NULL;
	cJSON *j = NULL;
	alyx__rd rd = {0};
	size_t mark = b->len;
	int rc;

	rc = alyx__caller_init(&k, ctx, &err);
	if (rc == ALYX_OK)
		rc = read_begin(a, collection, &snap, &c, &err);
	if (rc != ALYX_OK)
		goto out;
	if (n_args) {
		if (alyx__qargs_len(args, n_args) > a->max_body + 1)
			rc = alyx__err_set(&err, ALYX_E_TOOBIG, NULL,
					   "query string is larger than %zu "
					   "bytes", a->max_body);
		else
			rc = alyx__query_parse_args(snap->schema, c, args,
						    n_args, &q, &err);
	} else if (qs) {
		if (strnlen(qs, a->max_body + 1) > a->max_body)
			rc = alyx__err_set(&err, ALYX_E_TOOBIG, NULL,
					   "query string is larger than %zu "
					   "bytes", a->max_body);
		else
			rc = alyx__query_parse_str(snap->schema, c, qs, &q,
						   &err);
	} else {
		if (json)
			rc = alyx__json_parse(a, json, (size_t)-1, "query_json",
					      &j, &err);
		else if (!(j = cJSON_CreateObject()))
			rc = alyx__err_set(&err, ALYX_E_NOMEM, NULL,
					   "out of memory");
		if (rc == ALYX_OK)
			rc = alyx__query_parse_json(snap->schema, c, j, &q,
						    &err);
	}
	if (rc == ALYX_OK)
		rc = alyx__reader_get(a, &rd, &err);
	if (rc != ALYX_OK)
		goto out;
	rc = run_for(&k, q, &rd, b, &err);
	alyx__reader_put(a, &rd);
	if (rc == ALYX_OK && b->err)
		rc = buf_err(b, "query result too large", &err);
out:
	if (rc != ALYX_OK)
		buf_back(b, mark);
	alyx__query_free(q);
	cJSON_Delete(j);
	alyx__snap_put(snap);
	alyx__caller_free(&k);
	return alyx__finish(a, &err);
}

static int query_out(alyx *a, const alyx_ctx *ctx, const char *collection,
		     const char *qs, const char *json, char **out)
{
	alyx_buf b;
	int rc = out_begin(a, out, &b);

	if (rc == ALYX_OK)
		rc = out_end(run_query(a, ctx, collection, qs, json, NULL, 0,
				       &b), &b, out);
	return rc;
}

int alyx__query_str_buf(alyx *a, const alyx_ctx *ctx, const char *collection,
			const char *qs, alyx_buf *b)
{
	return run_query(a, ctx, collection, qs ? qs : "", NULL, NULL, 0, b);
}

int alyx__query_args_buf(alyx *a, const alyx_ctx *ctx,
			 const char *collection, const alyx__qarg *args,
			 size_t n, alyx_buf *b)
{
	return run_query(a, ctx, collection, "", NULL, args, n, b);
}

ALYX_API int alyx_query_str(alyx *a, const alyx_ctx *ctx,
			    const char *collection, const char *qs,
			    char **out)
{
	return query_out(a, ctx, collection, qs ? qs : "", NULL, out);
}

ALYX_API int alyx_query(alyx *a, const alyx_ctx *ctx, const char *collection,
			const char *query_json, char **out)
{
	return query_out(a, ctx, collection, NULL, query_json, out);
}

/* ---- batch ---- */

enum { M_POST, M_PATCH, M_DELETE };

/* Parses "/api/collections/:name[/:id]" into name and (decoded) id. */
static int parse_url(const char *url, char **name, char **id, alyx__err *err)
{
	static const char prefix[] = "/api/collections/";
	const char *p, *slash;
	size_t idlen;

	*name = *id = NULL;
	if (strncmp(url, prefix, sizeof(prefix) - 1) != 0 ||
	    strpbrk(url, "?#"))
		return alyx__err_set(err, ALYX_E_BADJSON,
				     "{\"field\":\"url\"}",
				     "url must be /api/collections/:name"
				     "[/:id]");
	p = url + sizeof(prefix) - 1;
	slash = strchr(p, '/');
	*name = alyx__strndup(p, slash ? (size_t)(slash - p) : strlen(p));
	if (!*name)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	if (!slash)
		return ALYX_OK;
	p = slash + 1;
	if (*p && !strchr(p, '/') &&
	    !alyx__url_decode(p, strlen(p), id, &idlen) && errno == ENOMEM)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	if (!*p || strchr(p, '/') || !*id)
		return alyx__err_set(err, ALYX_E_BADJSON,
				     "{\"field\":\"url\"}",
				     "bad document id in url");
	return ALYX_OK;
}

static int batch_one(alyx *a, const alyx__caller *k, alyx__snap *snap,
		     const cJSON *req, alyx_buf *res, alyx__err *err)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(req, "method");
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(req, "url");
	const cJSON *body = cJSON_GetObjectItemCaseSensitive(req, "body");
	const alyx__collection *c;
	char *name = NULL, *id = NULL;
	int method, status, rc;

	if (!cJSON_IsObject(req) || !cJSON_IsString(m) || !cJSON_IsString(u))
		return alyx__err_set(err, ALYX_E_BADJSON, NULL,
				     "each request needs \"method\" and "
				     "\"url\" strings");
	if (strcmp(m->valuestring, "POST") == 0)
		method = M_POST;
	else if (strcmp(m->valuestring, "PATCH") == 0)
		method = M_PATCH;
	else if (strcmp(m->valuestring, "DELETE") == 0)
		method = M_DELETE;
	else
		return alyx__err_set(err, ALYX_E_BADJSON,
				     "{\"field\":\"method\"}",
				     "method must be POST, PATCH or DELETE");
	rc = parse_url(u->valuestring, &name, &id, err);
	if (rc == ALYX_OK && (method == M_POST) != (id == NULL))
		rc = alyx__err_set(err, ALYX_E_BADJSON, "{\"field\":\"url\"}",
				   method == M_POST
					   ? "POST takes a collection url"
					   : "PATCH and DELETE take a "
					     "document url");
	if (rc == ALYX_OK && method != M_DELETE && !cJSON_IsObject(body))
		rc = alyx__err_set(err, ALYX_E_BADJSON, "{\"field\":\"body\"}",
				   "body must be a JSON object");
	if (rc == ALYX_OK)
		rc = alyx__coll_find(snap, name, &c, err);
	if (rc != ALYX_OK)
		goto out;
	status = method == M_POST ? 201 : method == M_PATCH ? 200 : 204;
	alyx__buf_addf(res, "{\"status\":%d,\"body\":", status);
	if (method != M_DELETE)
		rc = do_write(a, k, c, method == M_PATCH ? id : NULL, body, res,
			      err);
	else if ((rc = do_delete(a, k, c, id, err)) == ALYX_OK)
		alyx__buf_adds(res, "null");
	alyx__buf_addc(res, '}');
out:
	alyx__free(name);
	alyx__free(id);
	return rc;
}

ALYX_API int alyx_batch(alyx *a, const alyx_ctx *ctx, const char *json,
			size_t len, char **out)
{
	alyx__err err = {0};
	alyx__caller k;
	alyx__snap *snap = NULL;
	const cJSON *reqs, *r;
	cJSON *in = NULL;
	alyx__wtx t = {0};
	alyx_buf b;
	int rc, i = 0;

	alyx__buf_init(&b, 0);
	rc = alyx__caller_init(&k, ctx, &err);
	if (rc == ALYX_OK)
		rc = check_out(out, &err);
	if (rc == ALYX_OK)
		rc = alyx__enter(a, &err);
	if (rc == ALYX_OK)
		rc = alyx__json_parse(a, json, len, "json", &in, &err);
	if (rc != ALYX_OK)
		goto out;
	reqs = cJSON_GetObjectItemCaseSensitive(in, "requests");
	if (!cJSON_IsArray(reqs)) {
		rc = alyx__err_set(&err, ALYX_E_BADJSON,
				   "{\"field\":\"requests\"}",
				   "a batch is {\"requests\":[...]}");
		goto out;
	}
	if (cJSON_GetArraySize(reqs) > BATCH_MAX_REQUESTS) {
		rc = alyx__err_set(&err, ALYX_E_TOOBIG,
				   "{\"field\":\"requests\"}",
				   "a batch holds at most %d requests",
				   BATCH_MAX_REQUESTS);
		goto out;
	}
	snap = alyx__snap_get(a);
	rc = alyx__wtx_begin(a, &t, &err);
	if (rc != ALYX_OK)
		goto out;
	alyx__buf_adds(&b, "{\"results\":[");
	cJSON_ArrayForEach(r, reqs) {
		if (i)
			alyx__buf_addc(&b, ',');
		rc = batch_one(a, &k, snap, r, &b, &err);
		if (rc != ALYX_OK)
			break;
		i++;
	}
	alyx__buf_adds(&b, "]}");
	if (rc == ALYX_OK && b.err)
		rc = alyx__err_set(&err, b.err, NULL, "batch result too large");
	if (rc != ALYX_OK && err.code != ALYX_OK) {
		char idx[24], msg[sizeof(err.msg)], *d;

		snprintf(idx, sizeof(idx), "%d", i);
		snprintf(msg, sizeof(msg), "%s", err.msg);
		d = alyx__details_prepend(err.details, "index", idx);
		alyx__err_setd(&err, err.code, d, "request %d: %.480s", i,
			       msg);
	}
	rc = alyx__wtx_end(&t, rc == ALYX_OK, &err);
	if (rc == ALYX_OK)
		*out = alyx__buf_take(&b);
out:
	cJSON_Delete(in);
	alyx__snap_put(snap);
	alyx__buf_free(&b);
	alyx__caller_free(&k);
	return alyx__finish(a, &err);
}
