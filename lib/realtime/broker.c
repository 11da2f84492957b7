/*
 * broker.c - live queries over the change feed (docs/realtime.md).
 *
 * A subscription is a parsed query plus its window: the documents the
 * subscriber holds, in the query's order (at most `limit` of them).  A
 * batch reads every change of _alyx_changes after the last one seen, in
 * one read transaction (snapshot S), re-reads each changed document once
 * at S and updates the window of every candidate subscription; at the end
 * of the batch each touched window is compared with what it was before
 * the batch, and the difference goes out as one delta.  After a batch
 * every window equals a fresh query's result at S.
 *
 * Candidates for a changed document: the subscriptions indexed under one
 * of its field values (those whose filter is an AND of conditions with an
 * `eq` on an indexable field), the per-collection fallback list (all
 * other filters), and the subscriptions that hold the document in their
 * window (it may have stopped matching).  Subscriptions with `expand`
 * re-run their query when a collection they read changes.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/access.h"
#include "core/config.h"
#include "core/handle.h"
#include "doc/doc.h"
#include "realtime/realtime.h"
#include "realtime/rt-int.h"

#define FEED_BATCH 1024		/* changes read per statement */
#define MAX_SUBS 100000		/* subscriptions per handle */
#define PRUNE_MAX_INTERVAL_MS 60000
#define REPLAY_MAX_IDS 10000	/* changed documents a resume replays */

/* A document as read, shared by every window holding it and every
 * touch remembering it (reference-counted, under rt->mu); printed once. */
typedef struct rdoc {
	int refs;
	cJSON *j;
	char *text;		/* compact JSON, made on first use */
} rdoc;

/* A document of a window. */
typedef struct entry {
	char *id;
	rdoc *d;
} entry;

/* A document touched during the current batch, as it was before. */
typedef struct touch {
	char *id;
	rdoc *old;		/* the document when it was in the window at
				 * the start of the batch, else NULL */
} touch;

typedef struct msg {
	struct msg *next;
	size_t len;
	char json[];
} msg;

/* Per collection: who to look at when one of its documents changes. */
typedef struct rcoll {
	char *name;
	size_t n_subs;		/* subscriptions on this collection */
	alyx__subvec fallback;	/* filters the index cannot serve */
	alyx__hmap eq;		/* "field\0Tvalue" -> subscriptions */
	struct eqfield {
		char *name;
		size_t refs;
	} *eqf;
	size_t n_eqf;
	alyx__hmap holders;	/* doc id -> subscriptions holding it */
} rcoll;

/*
 * A live query and its window.  Subscriptions with the same collection,
 * schema and query text (and no "total") share one view: the window is
 * kept once and each delta is built once, then addressed to each of them.
 */
typedef struct view {
	char *key;		/* in rt->views, or NULL (not shared) */
	char *qtext;		/* the query JSON (for a schema change) */
	int64_t load_at;	/* change id of the last full load */
	alyx__subvec subs;	/* the subscriptions reading it */
	alyx__snap *snap;
	alyx__query *q;
	rcoll *rc;
	char *eq_key;		/* index key, NULL: fallback list */
	size_t eq_klen;
	const char *eq_field;	/* borrowed from the query's schema */
	char **reads;		/* expand: every collection read */
	size_t n_reads;
	entry *w;
	size_t n, cap;
	bool complete;		/* the window holds every matching doc */
	touch *t;		/* this batch's touched documents */
	size_t nt, tcap;
	bool need_refresh;
	bool need_tail;		/* read what follows the window's last */
	bool dirty;
	bool failed;
	uint64_t stamp;
	/* Access: whose view this is (docs/realtime.md, "Read rules"). */
	bool sys;		/* ctx NULL: the system, no rules */
	bool admin;		/* signed in with role admin */
	int acc;		/* ALYX_ACC_* for reads of the collection */
	const alyx__rule *rule;	/* its read rule (owned by v->snap) */
	cJSON *auth;		/* auth as the rules see it; NULL: anonymous */
	char *ip;		/* request.ip */
	cJSON *req;		/* the `request` variable, or NULL */
} view;

struct alyx_sub {
	struct alyx__rt *rt;
	char id[32];
	int refs;
	bool dead;
	alyx_sub_cb cb;
	void *ud;
	void (*destroy)(void *);
	view *v;
	msg *mq, *mq_tail;
	struct alyx_sub *next, *prev;
};

struct alyx__rt {
	alyx *a;
	pthread_mutex_t mu;
	pthread_mutex_t dmu;	/* one dispatch at a time */
	int efd;
	sqlite3 *db;
	int64_t last_id;	/* last change processed */
	int64_t data_version;
	int64_t next_poll, next_prune;
	int poll_ms;
	int64_t retention_ms;
	uint64_t stamp, seq;
	atomic_bool resync;	/* re-run every view (alyx__rt_resync) */
	alyx__snap *bound;	/* the schema the views were parsed with */
	size_t n_subs;
	alyx_sub *subs;
	alyx__hmap colls;	/* name -> rcoll */
	alyx__hmap views;	/* shared views by key */
	alyx__subvec expanders;	/* subscriptions with expand */
	alyx__subvec dirty;	/* touched in the current batch */
	alyx__hmap seen;	/* "coll\0id" processed in this batch */
};

/* ---- small helpers ---- */

static int nomem(alyx__err *err)
{
	return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
}

/* The primary key of a document as text ("5" for int keys). */
static char *doc_id(const alyx__collection *c, const cJSON *doc)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(
		doc, c->fields[c->pk].name);

	if (cJSON_IsString(v))
		return alyx__strdup(v->valuestring);
	if (cJSON_IsNumber(v))
		return alyx__asprintf("%lld", (long long)v->valuedouble);
	return NULL;
}

/* Index key "field\0T<text>" or "field\0I<int>" of a JSON value; false
 * when the value is not indexable (then no eq condition can match). */
static bool json_key(const char *field, const cJSON *v, alyx_buf *k)
{
	alyx__buf_reset(k);
	alyx__buf_add(k, field, strlen(field) + 1);
	if (cJSON_IsString(v)) {
		alyx__buf_addc(k, 'T');
		alyx__buf_adds(k, v->valuestring);
	} else if (cJSON_IsBool(v)) {
		alyx__buf_adds(k, cJSON_IsTrue(v) ? "I1" : "I0");
	} else if (cJSON_IsNumber(v) && v->valuedouble == trunc(v->valuedouble)
		   && fabs(v->valuedouble) < 9.2e18) {
		alyx__buf_addf(k, "I%lld", (long long)v->valuedouble);
	} else {
		return false;
	}
	return !k->err;
}

static bool indexable(const alyx__filter *f, const alyx__collection *c)
{
	alyx__type t;

	if (f->kind != ALYX_F_COND || f->op != ALYX_OP_EQ || f->n_vals != 1)
		return false;
	t = c->fields[f->field].type;
	if (t == ALYX_T_STRING || t == ALYX_T_TEXT || t == ALYX_T_UUID)
		return f->vals[0].kind == ALYX_V_TEXT;
	if (t == ALYX_T_INT || t == ALYX_T_BOOL)
		return f->vals[0].kind == ALYX_V_INT;
	return false;
}

/* The first indexable eq condition of a top-level AND (or a lone one). */
static const alyx__filter *eq_cond(const alyx__query *q)
{
	const alyx__filter *f = q->where;
	size_t i;

	if (!f)
		return NULL;
	if (f->kind == ALYX_F_COND)
		return indexable(f, q->coll) ? f : NULL;
	if (f->kind != ALYX_F_AND)
		return NULL;
	for (i = 0; i < f->n_kids; i++)
		if (indexable(f->kids[i], q->coll))
			return f->kids[i];
	return NULL;
}

static void msg_push(alyx_sub *s, alyx_buf *b)
{
	msg *m;

	if (b->err || s->dead)
		return;
	m = alyx__malloc(sizeof(*m) + b->len + 1);
	if (!m)
		return;
	m->next = NULL;
	m->len = b->len;
	memcpy(m->json, b->data, b->len);
	m->json[b->len] = '\0';
	if (s->mq_tail)
		s->mq_tail->next = m;
	else
		s->mq = m;
	s->mq_tail = m;
}

static void msg_free_all(alyx_sub *s)
{
	msg *m, *next;

	for (m = s->mq; m; m = next) {
		next = m->next;
		alyx__free(m);
	}
	s->mq = s->mq_tail = NULL;
}

static void wake(struct alyx__rt *rt)
{
	uint64_t one = 1;
	ssize_t r;

	do
		r = write(rt->efd, &one, sizeof(one));
	while (r < 0 && errno == EINTR);
}

/* ---- shared documents ---- */

/* Takes ownership of j (freed on failure). */
static rdoc *rdoc_new(cJSON *j)
{
	rdoc *d = j ? alyx__calloc(1, sizeof(*d)) : NULL;

	if (!d) {
		cJSON_Delete(j);
		return NULL;
	}
	d->refs = 1;
	d->j = j;
	return d;
}

static rdoc *rdoc_ref(rdoc *d)
{
	d->refs++;
	return d;
}

static void rdoc_put(rdoc *d)
{
	if (d && --d->refs == 0) {
		cJSON_Delete(d->j);
		if (d->text)
			cJSON_free(d->text);
		alyx__free(d);
	}
}

/* Appends the document's compact JSON (printed once per document). */
static void add_rdoc(alyx_buf *b, rdoc *d)
{
	if (!d->text && !(d->text = cJSON_PrintUnformatted(d->j))) {
		b->err = b->err ? b->err : ALYX_E_NOMEM;
		return;
	}
	alyx__buf_adds(b, d->text);
}

/* ---- access ---- */

/* Sets the view's access to collection c for its caller (at subscribe and
 * after a schema change): the read rule decides for everyone but the
 * system; without one only admins read, others see nothing. */
static int view_access(view *v, const alyx__collection *c, alyx__err *err)
{
	struct alyx_ctx who = {.ip = v->ip};
	alyx__caller k = {.ctx = v->sys ? NULL : &who, .auth = v->auth,
			  .admin = v->admin};
	bool oom;

	cJSON_Delete(v->req);
	v->req = NULL;
	v->acc = alyx__access_mode(&k, c, ALYX_RULE_READ, &v->rule);
	if (v->acc != ALYX_ACC_RULE)
		return ALYX_OK;
	v->req = alyx__access_request(&k, v->rule, "GET", NULL, &oom);
	return oom ? nomem(err) : ALYX_OK;
}

/* The caller of a subscription (ctx copied: it may go after
 * alyx_subscribe returns) and its access to c, into w. */
static int caller_of(const alyx_ctx *ctx, const alyx__collection *c,
		     view *w, alyx__err *err)
{
	alyx__caller k;
	int rc;

	w->sys = !ctx;
	if (ctx) {
		rc = alyx__caller_init(&k, ctx, err);
		if (rc != ALYX_OK)
			return rc;
		w->admin = k.admin;
		if ((k.auth && !(w->auth = cJSON_Duplicate(k.auth, true))) ||
		    (ctx->ip && !(w->ip = alyx__strdup(ctx->ip))))
			rc = nomem(err);
		alyx__caller_free(&k);
		if (rc != ALYX_OK)
			return rc;
	}
	return view_access(w, c, err);
}

/* May the view's caller read `doc` (its read rule)? */
static bool view_allows(const view *v, const cJSON *doc)
{
	alyx__rule_ctx rc;

	if (v->acc == ALYX_ACC_ALL)
		return true;
	if (v->acc == ALYX_ACC_NONE)
		return false;
	rc.auth = v->auth;
	rc.doc = doc;
	rc.request = v->req;
	return alyx__rule_eval(v->rule, &rc, NULL) == ALYX_RULE_ALLOW;
}

/* Runs q (the view's query or its tail) for the view's caller, inside
 * the caller's read transaction on the broker's connection: as
 * alyx_query() would answer that caller. */
static int view_run(struct alyx__rt *rt, const view *v, const alyx__query *q,
		    alyx_buf *out, alyx__err *err)
{
	static const alyx__sqlcond none = {"0", NULL, 0};
	alyx__query_opts o = {.extra = &none};

	if (v->sys)
		return alyx__query_run(rt->db, q, NULL, out, err);
	if (v->acc == ALYX_ACC_NONE)
		return alyx__query_run(rt->db, q, &o, out, err);
	/* A rule, or an admin without one: expanded documents still meet
	 * their own collection's read rule. */
	return alyx__query_run_ruled(rt->db, q, v->rule, v->auth, v->req,
				     NULL, out, err);
}

/* ---- windows ---- */

static ssize_t win_find(const view *s, const char *id)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->w[i].id, id) == 0)
			return (ssize_t)i;
	return -1;
}

/* Where `doc` goes in the window (binary search by the query's order). */
static size_t win_pos(const view *s, const cJSON *doc)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (alyx__query_doc_cmp(s->q, s->w[mid].d->j, doc) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Remembers how `id` was at the start of the batch (once per batch):
 * as it is in the window now, or absent when `absent`. */
static bool touch_as(struct alyx__rt *rt, view *s, const char *id,
		     bool absent)
{
	ssize_t i = absent ? -1 : win_find(s, id);
	size_t k;
	touch *t;

	for (k = 0; k < s->nt; k++)
		if (strcmp(s->t[k].id, id) == 0)
			return true;
	if (s->nt == s->tcap) {
		size_t nc = s->tcap ? s->tcap * 2 : 8;

		t = alyx__realloc(s->t, nc * sizeof(*t));
		if (!t)
			return false;
		s->t = t;
		s->tcap = nc;
	}
	t = &s->t[s->nt];
	t->id = alyx__strdup(id);
	if (!t->id)
		return false;
	t->old = i >= 0 ? rdoc_ref(s->w[i].d) : NULL;
	s->nt++;
	if (!s->dirty) {
		if (!alyx__subvec_add(&rt->dirty, s))
			return false;
		s->dirty = true;
	}
	return true;
}

static bool touch_id(struct alyx__rt *rt, view *s, const char *id)
{
	return touch_as(rt, s, id, false);
}

static void win_remove(view *s, size_t i)
{
	alyx__hmap_sub_del(&s->rc->holders, s->w[i].id, strlen(s->w[i].id),
			   s);
	alyx__free(s->w[i].id);
	rdoc_put(s->w[i].d);
	memmove(&s->w[i], &s->w[i + 1], (s->n - i - 1) * sizeof(*s->w));
	s->n--;
}

/* Inserts (takes `id` and the reference `d`) at position i. */
static bool win_insert(view *s, size_t i, char *id, rdoc *d)
{
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 8;
		entry *nw = alyx__realloc(s->w, nc * sizeof(*nw));

		if (!nw)
			goto fail;
		s->w = nw;
		s->cap = nc;
	}
	if (!alyx__hmap_sub_add(&s->rc->holders, id, strlen(id), s))
		goto fail;
	memmove(&s->w[i + 1], &s->w[i], (s->n - i) * sizeof(*s->w));
	s->w[i].id = id;
	s->w[i].d = d;
	s->n++;
	return true;
fail:
	alyx__free(id);
	rdoc_put(d);
	return false;
}

static void win_clear(view *s)
{
	while (s->n)
		win_remove(s, s->n - 1);
}

static void touches_clear(view *s)
{
	size_t k;

	for (k = 0; k < s->nt; k++) {
		alyx__free(s->t[k].id);
		rdoc_put(s->t[k].old);
	}
	s->nt = 0;
}

/*
 * Runs the subscription's query on the broker connection and replaces
 * the window with its documents.  *out_json (may be NULL) receives the
 * query's output object ({"docs":..,"total":..}).
 */
static int win_load(struct alyx__rt *rt, view *s, cJSON **out_json,
		    alyx__err *err)
{
	const cJSON *docs, *d;
	cJSON *res = NULL;
	alyx_buf b;
	int rc;

	alyx__buf_init(&b, 0);
	rc = view_run(rt, s, s->q, &b, err);
	if (rc == ALYX_OK && b.err)
		rc = alyx__err_set(err, b.err, NULL, "snapshot too large");
	if (rc == ALYX_OK) {
		alyx__buf_addc(&b, '\0');
		res = cJSON_Parse(b.data);
		if (!res)
			rc = nomem(err);
	}
	alyx__buf_free(&b);
	if (rc != ALYX_OK)
		return rc;
	win_clear(s);
	docs = cJSON_GetObjectItemCaseSensitive(res, "docs");
	cJSON_ArrayForEach(d, docs) {
		char *id = doc_id(s->q->coll, d);
		rdoc *dup = rdoc_new(cJSON_Duplicate(d, true));

		if (!id || !dup) {
			alyx__free(id);
			rdoc_put(dup);
			rc = nomem(err);
			break;
		}
		if (!win_insert(s, s->n, id, dup)) {
			rc = nomem(err);
			break;
		}
	}
	s->complete = s->n < (size_t)s->q->limit;
	if (rc == ALYX_OK && out_json)
		*out_json = res;
	else
		cJSON_Delete(res);
	return rc;
}

/* ---- subscriptions: registration in the indexes ---- */

static void rcoll_free(void *p)
{
	rcoll *rc = p;
	size_t i;

	if (!rc)
		return;
	alyx__subvec_free(&rc->fallback);
	alyx__hmap_clear(&rc->eq, alyx__subvec_destroy);
	alyx__hmap_clear(&rc->holders, alyx__subvec_destroy);
	for (i = 0; i < rc->n_eqf; i++)
		alyx__free(rc->eqf[i].name);
	alyx__free(rc->eqf);
	alyx__free(rc->name);
	alyx__free(rc);
}

static rcoll *rcoll_get(struct alyx__rt *rt, const char *name)
{
	rcoll *rc = alyx__hmap_get(&rt->colls, name, strlen(name));

	if (rc)
		return rc;
	rc = alyx__calloc(1, sizeof(*rc));
	if (!rc || !(rc->name = alyx__strdup(name)) ||
	    !alyx__hmap_put(&rt->colls, name, strlen(name), rc)) {
		if (rc)
			alyx__free(rc->name);
		alyx__free(rc);
		return NULL;
	}
	return rc;
}

static bool eqf_ref(rcoll *rc, const char *field, int delta)
{
	size_t i;
	struct eqfield *nf;

	for (i = 0; i < rc->n_eqf; i++) {
		if (strcmp(rc->eqf[i].name, field) != 0)
			continue;
		rc->eqf[i].refs += (size_t)delta;
		if (rc->eqf[i].refs == 0) {
			alyx__free(rc->eqf[i].name);
			rc->eqf[i] = rc->eqf[--rc->n_eqf];
		}
		return true;
	}
	if (delta < 0)
		return true;
	nf = alyx__realloc(rc->eqf, (rc->n_eqf + 1) * sizeof(*nf));
	if (!nf)
		return false;
	rc->eqf = nf;
	nf[rc->n_eqf].name = alyx__strdup(field);
	if (!nf[rc->n_eqf].name)
		return false;
	nf[rc->n_eqf++].refs = 1;
	return true;
}

/* Adds every collection an expand path reads to s->reads. */
static bool reads_add(view *s, const char *name)
{
	char **nr;
	size_t i;

	for (i = 0; i < s->n_reads; i++)
		if (strcmp(s->reads[i], name) == 0)
			return true;
	nr = alyx__realloc(s->reads, (s->n_reads + 1) * sizeof(*nr));
	if (!nr)
		return false;
	s->reads = nr;
	return (nr[s->n_reads] = alyx__strdup(name)) && ++s->n_reads;
}

static bool expand_reads(view *s)
{
	size_t i;

	for (i = 0; i < s->q->n_expand; i++) {
		const alyx__collection *c = s->q->coll;
		const char *p = s->q->expand[i];

		while (c && *p) {
			const char *dot = strchr(p, '.');
			size_t n = dot ? (size_t)(dot - p) : strlen(p), k;
			const alyx__collection *next = NULL;

			for (k = 0; k < c->n_fields; k++) {
				const alyx__field *f = &c->fields[k];

				if (strlen(f->name) == n &&
				    memcmp(f->name, p, n) == 0 &&
				    f->ref_collection) {
					next = alyx__schema_coll(
						s->snap->schema,
						f->ref_collection);
					break;
				}
			}
			if (next && !reads_add(s, next->name))
				return false;
			c = next;
			p = dot ? dot + 1 : p + n;
		}
	}
	return true;
}

/* Puts a view in the candidate indexes of its collection (s->rc). */
static int view_index(struct alyx__rt *rt, view *s, alyx__err *err)
{
	const alyx__filter *f = eq_cond(s->q);
	rcoll *rc = s->rc;

	if (s->q->n_expand) {
		if (!expand_reads(s) || !alyx__subvec_add(&rt->expanders, s))
			return nomem(err);
	}
	if (f) {
		alyx_buf k;
		const alyx__field *fd = &s->q->coll->fields[f->field];

		alyx__buf_init(&k, 0);
		alyx__buf_add(&k, fd->name, strlen(fd->name) + 1);
		if (f->vals[0].kind == ALYX_V_TEXT) {
			alyx__buf_addc(&k, 'T');
			alyx__buf_add(&k, f->vals[0].s, f->vals[0].n);
		} else {
			alyx__buf_addf(&k, "I%lld", (long long)f->vals[0].i);
		}
		if (k.err) {
			alyx__buf_free(&k);
			return nomem(err);
		}
		s->eq_klen = k.len;
		s->eq_key = alyx__buf_take(&k);
		if (!s->eq_key)
			return nomem(err);
		s->eq_field = fd->name;
		if (!eqf_ref(rc, fd->name, 1)) {
			alyx__free(s->eq_key);
			s->eq_key = NULL;
			return nomem(err);
		}
		if (!alyx__hmap_sub_add(&rc->eq, s->eq_key, s->eq_klen, s))
			return nomem(err);
	} else if (!alyx__subvec_add(&rc->fallback, s)) {
		return nomem(err);
	}
	return ALYX_OK;
}

/* ... and takes it out of them (holders and the collection stay). */
static void view_unindex(struct alyx__rt *rt, view *s)
{
	size_t i;

	alyx__subvec_del(&rt->expanders, s);
	for (i = 0; i < s->n_reads; i++)
		alyx__free(s->reads[i]);
	alyx__free(s->reads);
	s->reads = NULL;
	s->n_reads = 0;
	if (s->eq_key) {
		alyx__hmap_sub_del(&s->rc->eq, s->eq_key, s->eq_klen, s);
		eqf_ref(s->rc, s->eq_field, -1);
		alyx__free(s->eq_key);
		s->eq_key = NULL;
	} else {
		alyx__subvec_del(&s->rc->fallback, s);
	}
}

static int sub_register(struct alyx__rt *rt, view *s, alyx__err *err)
{
	rcoll *rc = rcoll_get(rt, s->q->coll->name);

	if (!rc)
		return nomem(err);
	s->rc = rc;
	rc->n_subs++;
	return view_index(rt, s, err);
}

static void view_unshare(struct alyx__rt *rt, view *s)
{
	if (s->key && alyx__hmap_get(&rt->views, s->key, strlen(s->key)) == s)
		alyx__hmap_del(&rt->views, s->key, strlen(s->key));
	alyx__free(s->key);
	s->key = NULL;
}

/* Takes s out of every index and list (under rt->mu); idempotent. */
/* Takes a view out of every index and frees it (under rt->mu). */
static void view_free(struct alyx__rt *rt, view *s)
{
	rcoll *rc = s->rc;
	size_t i;

	win_clear(s);
	touches_clear(s);
	if (s->dirty)
		alyx__subvec_del(&rt->dirty, s);
	if (rc) {
		view_unindex(rt, s);
		if (--rc->n_subs == 0)
			rcoll_free(alyx__hmap_del(&rt->colls, rc->name,
						  strlen(rc->name)));
	}
	view_unshare(rt, s);
	alyx__free(s->qtext);
	cJSON_Delete(s->auth);
	cJSON_Delete(s->req);
	alyx__free(s->ip);
	alyx__subvec_free(&s->subs);
	alyx__free(s->w);
	alyx__free(s->t);
	alyx__free(s->eq_key);
	for (i = 0; i < s->n_reads; i++)
		alyx__free(s->reads[i]);
	alyx__free(s->reads);
	alyx__query_free(s->q);
	alyx__snap_put(s->snap);
	alyx__free(s);
}

/* Detaches a subscription from its view and the list of all (under
 * rt->mu); the view goes with its last subscription. */
static void sub_detach(struct alyx__rt *rt, alyx_sub *sub)
{
	view *v = sub->v;

	if (v) {
		alyx__subvec_del(&v->subs, sub);
		if (v->subs.n == 0)
			view_free(rt, v);
		sub->v = NULL;
	}
	if (sub->prev)
		sub->prev->next = sub->next;
	else if (rt->subs == sub)
		rt->subs = sub->next;
	if (sub->next)
		sub->next->prev = sub->prev;
	sub->next = sub->prev = NULL;
}

/* Drops a reference; the last one frees (destroy runs without rt->mu). */
static void sub_unref(alyx_sub *sub)
{
	if (--sub->refs > 0)
		return;
	msg_free_all(sub);
	if (sub->destroy)
		sub->destroy(sub->ud);
	alyx__free(sub);
}

/* ---- batches ---- */

/* A view whose window could not be kept (out of memory, a read failing):
 * each of its subscriptions gets one error message and nothing more.  It
 * stays in the indexes (skipped) until they are all unsubscribed; new
 * subscriptions do not join it. */
static void sub_fail(struct alyx__rt *rt, view *s, const alyx__err *e)
{
	alyx_buf b;
	size_t i;

	alyx__buf_init(&b, 0);
	for (i = 0; i < s->subs.n; i++) {
		alyx_sub *sub = s->subs.v[i];

		alyx__buf_reset(&b);
		alyx__buf_adds(&b, "{\"subscription_id\":");
		alyx__json_strz(&b, sub->id);
		alyx__buf_adds(&b, ",\"error\":{\"code\":");
		alyx__json_strz(&b, alyx_errname(e->code));
		alyx__buf_adds(&b, ",\"message\":");
		alyx__json_strz(&b, e->msg);
		alyx__buf_adds(&b, "}}");
		msg_push(sub, &b);
	}
	alyx__buf_free(&b);
	s->failed = true;
	view_unshare(rt, s);
	win_clear(s);
	touches_clear(s);
}

static void mark_refresh(struct alyx__rt *rt, view *s)
{
	if (!s->need_refresh) {
		s->need_refresh = true;
		if (!s->dirty && alyx__subvec_add(&rt->dirty, s))
			s->dirty = true;
	}
}

/* Brings s's window up to date for one document (doc: its state at the
 * batch's snapshot, NULL if gone).  Returns false when out of memory. */
static bool apply(struct alyx__rt *rt, view *s, const char *id,
		  rdoc *rd)
{
	const cJSON *doc = rd ? rd->j : NULL;
	bool match, was_in;
	ssize_t i;
	size_t pos;
	char *idc;

	if (s->need_refresh || s->failed)
		return true;
	if (s->q->n_expand) {
		mark_refresh(rt, s);
		return true;
	}
	match = doc && alyx__filter_match(s->q->coll, s->q->where, doc) &&
		view_allows(s, doc);
	i = win_find(s, id);
	if (i >= 0 && match &&
	    (s->w[i].d == rd || cJSON_Compare(s->w[i].d->j, doc, true)))
		return true;
	if (i < 0 && !match)
		return true;
	if (!touch_id(rt, s, id))
		return false;
	was_in = i >= 0;
	if (was_in)
		win_remove(s, (size_t)i);
	/*
	 * The window stays a prefix of the result: a document that leaves
	 * it, or sorts after the last one kept, is out; what follows the
	 * last one is read once at the end of the batch (win_tail).
	 */
	if (!match) {
		if (!s->complete)
			s->need_tail = true;
		return true;
	}
	if (!s->complete &&
	    (s->n == 0 ||
	     alyx__query_doc_cmp(s->q, doc, s->w[s->n - 1].d->j) > 0)) {
		if (was_in)
			s->need_tail = true;
		return true;
	}
	pos = win_pos(s, doc);
	idc = alyx__strdup(id);
	if (!idc)
		return false;
	if (!win_insert(s, pos, idc, rdoc_ref(rd)))
		return false;
	if (s->n > (size_t)s->q->limit) {
		/* Pushes the last one out. */
		if (!touch_id(rt, s, s->w[s->n - 1].id))
			return false;
		win_remove(s, s->n - 1);
		s->complete = false;
	}
	return true;
}

/* Candidates for one changed document, each applied once.  They are
 * collected first: applying changes the holders sets. */
static int apply_all(struct alyx__rt *rt, rcoll *rc, const char *id,
		     rdoc *rd, alyx__err *err)
{
	const alyx__subvec *lists[64];
	alyx__subvec cand = {0};
	size_t nl = 0, i, k;
	uint64_t stamp = ++rt->stamp;
	alyx_buf key;
	int r = ALYX_OK;

	alyx__buf_init(&key, 0);
	lists[nl++] = &rc->fallback;
	lists[nl] = alyx__hmap_get(&rc->holders, id, strlen(id));
	if (lists[nl])
		nl++;
	for (i = 0; rd && i < rc->n_eqf && nl < 64; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(
			rd->j, rc->eqf[i].name);

		if (json_key(rc->eqf[i].name, v, &key) &&
		    (lists[nl] = alyx__hmap_get(&rc->eq, key.data, key.len)))
			nl++;
	}
	alyx__buf_free(&key);
	for (i = 0; i < nl && r == ALYX_OK; i++) {
		for (k = 0; k < lists[i]->n && r == ALYX_OK; k++) {
			view *s = lists[i]->v[k];

			if (s->stamp == stamp)
				continue;
			s->stamp = stamp;
			if (!alyx__subvec_add(&cand, s))
				r = nomem(err);
		}
	}
	for (k = 0; k < cand.n && r == ALYX_OK; k++)
		if (!apply(rt, cand.v[k], id, rd))
			sub_fail(rt, cand.v[k], &(alyx__err){
				.code = ALYX_E_NOMEM, .msg = "out of memory"});
	alyx__subvec_free(&cand);
	return r;
}

static int process_change(struct alyx__rt *rt, alyx__snap *snap,
			  const char *coll, const char *id, alyx__err *err)
{
	const alyx__collection *c;
	rcoll *rc;
	cJSON *doc = NULL;
	rdoc *rd = NULL;
	alyx_buf b;
	size_t i, k, cl = strlen(coll);
	int r;

	for (i = 0; i < rt->expanders.n; i++) {
		view *s = rt->expanders.v[i];

		for (k = 0; k < s->n_reads; k++)
			if (strcmp(s->reads[k], coll) == 0)
				mark_refresh(rt, s);
	}
	rc = alyx__hmap_get(&rt->colls, coll, cl);
	if (!rc)
		return ALYX_OK;
	/* Once per document and batch. */
	alyx__buf_init(&b, 0);
	alyx__buf_add(&b, coll, cl + 1);
	alyx__buf_adds(&b, id);
	if (b.err) {
		alyx__buf_free(&b);
		return nomem(err);
	}
	if (alyx__hmap_get(&rt->seen, b.data, b.len)) {
		alyx__buf_free(&b);
		return ALYX_OK;
	}
	if (!alyx__hmap_put(&rt->seen, b.data, b.len, rt)) {
		alyx__buf_free(&b);
		return nomem(err);
	}
	alyx__buf_reset(&b);
	c = alyx__schema_coll(snap->schema, coll);
	r = c ? alyx__doc_read(rt->db, c, id, false, &b, err) : ALYX_E_NOTFOUND;
	if (r == ALYX_OK && !b.err) {
		alyx__buf_addc(&b, '\0');
		doc = cJSON_Parse(b.data);
		if (!doc)
			r = nomem(err);
	} else if (r == ALYX_OK) {
		r = nomem(err);
	} else if (r == ALYX_E_NOTFOUND) {
		alyx__err_clear(err);
		r = ALYX_OK;
	}
	alyx__buf_free(&b);
	if (r == ALYX_OK && doc && !(rd = rdoc_new(doc)))
		r = nomem(err);
	if (r == ALYX_OK)
		r = apply_all(rt, rc, id, rd, err);
	else if (!rd)
		cJSON_Delete(doc);
	rdoc_put(rd);
	return r;
}

/* The delta of one touched subscription; clears its batch state. */
static void emit_delta(struct alyx__rt *rt, view *s, int64_t change_id)
{
	alyx_buf ins, upd, del, b;
	size_t k;
	int ni = 0, nu = 0, nd = 0;

	alyx__buf_init(&ins, 0);
	alyx__buf_init(&upd, 0);
	alyx__buf_init(&del, 0);
	alyx__buf_init(&b, 0);
	for (k = 0; k < s->nt; k++) {
		ssize_t i = win_find(s, s->t[k].id);
		rdoc *cur = i >= 0 ? s->w[i].d : NULL, *old = s->t[k].old;

		if (old && !cur) {
			alyx__buf_adds(&del, nd++ ? "," : "");
			alyx__json_strz(&del, s->t[k].id);
		} else if (!old && cur) {
			alyx__buf_adds(&ins, ni++ ? "," : "");
			add_rdoc(&ins, cur);
		} else if (cur && old != cur &&
			   !cJSON_Compare(old->j, cur->j, true)) {
			alyx__buf_adds(&upd, nu++ ? "," : "");
			add_rdoc(&upd, cur);
		}
	}
	if (ni + nu + nd) {
		/* The changes once, then one message per subscriber. */
		alyx__buf_adds(&b, ",\"changes\":{\"inserts\":[");
		alyx__buf_add(&b, ins.data, ins.len);
		alyx__buf_adds(&b, "],\"updates\":[");
		alyx__buf_add(&b, upd.data, upd.len);
		alyx__buf_adds(&b, "],\"deletes\":[");
		alyx__buf_add(&b, del.data, del.len);
		alyx__buf_addf(&b, "]},\"change_id\":%lld}",
			       (long long)change_id);
		if (ins.err || upd.err || del.err || b.err) {
			sub_fail(rt, s, &(alyx__err){.code = ALYX_E_NOMEM,
						     .msg = "out of memory"});
		} else {
			size_t i;

			for (i = 0; i < s->subs.n; i++) {
				alyx_sub *sub = s->subs.v[i];

				alyx__buf_reset(&ins);
				alyx__buf_adds(&ins, "{\"subscription_id\":");
				alyx__json_strz(&ins, sub->id);
				alyx__buf_add(&ins, b.data, b.len);
				msg_push(sub, &ins);
			}
		}
	}
	alyx__buf_free(&ins);
	alyx__buf_free(&upd);
	alyx__buf_free(&del);
	alyx__buf_free(&b);
	touches_clear(s);
}

/*
 * Fills an incomplete window up to its limit with the documents that
 * follow its last one: the page query with that document's sort key
 * values as keyset (inside the batch's read transaction).  Documents read
 * here were not in the window at the start of the batch unless touched.
 */
static int win_tail(struct alyx__rt *rt, view *s, alyx__err *err)
{
	alyx__value *after = NULL;
	alyx__query q2 = *s->q;
	const cJSON *docs, *d;
	cJSON *res = NULL;
	alyx_buf b;
	size_t k;
	int rc = ALYX_OK;

	if (s->complete || s->n >= (size_t)s->q->limit)
		return ALYX_OK;
	q2.limit = s->q->limit - (int64_t)s->n;
	q2.offset = 0;
	q2.after = NULL;
	q2.total = false;
	q2.after_vals = NULL;
	q2.n_after = 0;
	if (s->n) {
		const cJSON *last = s->w[s->n - 1].d->j;

		after = alyx__calloc(s->q->n_sort, sizeof(*after));
		if (!after)
			return nomem(err);
		for (k = 0; k < s->q->n_sort; k++) {
			const alyx__field *f =
				&s->q->coll->fields[s->q->sort[k].field];
			const cJSON *v =
				cJSON_GetObjectItemCaseSensitive(last, f->name);
			char why[128];

			if (v && !cJSON_IsNull(v) &&
			    !alyx__value_from_json(f, v, &after[k], why))
				rc = alyx__err_set(err, ALYX_E_INTERNAL, NULL,
						   "window key: %s", why);
		}
		q2.after_vals = after;
		q2.n_after = s->q->n_sort;
	}
	alyx__buf_init(&b, 0);
	if (rc == ALYX_OK)
		rc = view_run(rt, s, &q2, &b, err);
	if (rc == ALYX_OK && b.err)
		rc = nomem(err);
	if (rc == ALYX_OK) {
		alyx__buf_addc(&b, '\0');
		if (!(res = cJSON_Parse(b.data)))
			rc = nomem(err);
	}
	alyx__buf_free(&b);
	docs = cJSON_GetObjectItemCaseSensitive(res, "docs");
	cJSON_ArrayForEach(d, docs) {
		char *id = doc_id(s->q->coll, d);
		rdoc *rd = rdoc_new(cJSON_Duplicate(d, true));

		if (!id || !rd || !touch_as(rt, s, id, true)) {
			alyx__free(id);
			rdoc_put(rd);
			rc = nomem(err);
			break;
		}
		if (!win_insert(s, s->n, id, rd)) {
			rc = nomem(err);
			break;
		}
	}
	if (rc == ALYX_OK)
		s->complete = s->n < (size_t)s->q->limit;
	cJSON_Delete(res);
	if (after)
		for (k = 0; k < s->q->n_sort; k++)
			alyx__value_clear(&after[k]);
	alyx__free(after);
	return rc;
}

/* Ends a batch: refreshes what needs it, emits every delta. */
static void batch_end(struct alyx__rt *rt, int64_t change_id)
{
	size_t i;

	for (i = 0; i < rt->dirty.n; i++) {
		view *s = rt->dirty.v[i];
		alyx__err e = {0};
		size_t k;

		if (s->need_refresh && !s->failed) {
			bool ok = true;

			/* Every document it holds may change. */
			for (k = 0; k < s->n && ok; k++)
				ok = touch_id(rt, s, s->w[k].id);
			if (!ok)
				alyx__err_set(&e, ALYX_E_NOMEM, NULL,
					      "out of memory");
			if (ok && win_load(rt, s, NULL, &e) == ALYX_OK) {
				/* ... and so may every document it holds now;
				 * one not touched yet was not held before. */
				for (k = 0; k < s->n && ok; k++)
					ok = touch_as(rt, s, s->w[k].id, true);
				if (!ok)
					alyx__err_set(&e, ALYX_E_NOMEM, NULL,
						      "out of memory");
			}
			if (e.code != ALYX_OK)
				sub_fail(rt, s, &e);
			alyx__err_clear(&e);
		} else if (s->need_tail && !s->failed) {
			if (win_tail(rt, s, &e) != ALYX_OK)
				sub_fail(rt, s, &e);
			alyx__err_clear(&e);
		}
		s->need_refresh = false;
		s->need_tail = false;
		s->dirty = false;
		if (!s->failed)
			emit_delta(rt, s, change_id);
		else
			touches_clear(s);
	}
	rt->dirty.n = 0;
	alyx__hmap_clear(&rt->seen, NULL);
}

/*
 * After a schema change: parses each view's query again against the new
 * schema `snap`, indexes it again and re-runs it in this batch.  A query
 * the new schema refuses ends its view with an error.
 */
static void rebind(struct alyx__rt *rt, alyx__snap *snap)
{
	alyx_sub *sub;

	if (rt->bound == snap)
		return;
	for (sub = rt->subs; sub; sub = sub->next) {
		view *v = sub->v;
		const alyx__collection *c;
		alyx__query *q = NULL;
		alyx__err e = {0};
		cJSON *j;

		if (!v || v->failed || v->snap == snap)
			continue;
		c = alyx__schema_coll(snap->schema, v->rc->name);
		j = v->qtext ? cJSON_Parse(v->qtext) : NULL;
		if (!c)
			alyx__err_set(&e, ALYX_E_NOTFOUND, NULL,
				      "collection '%.200s' no longer exists",
				      v->rc->name);
		else if (!j)
			nomem(&e);
		else
			alyx__query_parse_json(snap->schema, c, j, &q, &e);
		cJSON_Delete(j);
		if (e.code == ALYX_OK) {
			view_unindex(rt, v);
			view_unshare(rt, v);
			alyx__query_free(v->q);
			v->q = q;
			v->q->total = false;
			alyx__snap_put(v->snap);
			atomic_fetch_add(&snap->refs, 1);
			v->snap = snap;
			if (view_access(v, c, &e) == ALYX_OK &&
			    view_index(rt, v, &e) == ALYX_OK)
				mark_refresh(rt, v);
		}
		if (e.code != ALYX_OK)
			sub_fail(rt, v, &e);
		alyx__err_clear(&e);
	}
	alyx__snap_put(rt->bound);
	atomic_fetch_add(&snap->refs, 1);
	rt->bound = snap;
}

/*
 * Processes every change after rt->last_id (under rt->mu).  A failure of
 * the feed itself (I/O, busy) leaves last_id where it was: the next
 * dispatch retries.
 */
static int process_feed(struct alyx__rt *rt, alyx__err *err)
{
	static const char sql[] = "SELECT id, collection, doc_id FROM "
				   "_alyx_changes WHERE id > ? ORDER BY id "
				   "LIMIT ?";
	sqlite3_stmt *st = NULL;
	alyx__snap *snap = NULL;
	int64_t last = rt->last_id;
	int rc, src, rows;

	rc = alyx__tx_begin(rt->db, false, err);
	if (rc != ALYX_OK)
		return rc;
	/* Kept on the connection: one dispatch per group commit, and
	 * parsing the statement each time cost more than reading the rows. */
	src = alyx__stmt_get(rt->db, sql, &st);
	if (src != SQLITE_OK) {
		rc = alyx__conn_err(rt->db, src, "change feed", err);
		goto out;
	}
	snap = alyx__snap_get(rt->a);
	rebind(rt, snap);
	if (atomic_exchange(&rt->resync, false)) {
		alyx_sub *sub;

		for (sub = rt->subs; sub; sub = sub->next)
			if (sub->v && !sub->v->failed)
				mark_refresh(rt, sub->v);
	}
	do {
		rows = 0;
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, last);
		sqlite3_bind_int(st, 2, FEED_BATCH);
		while (rc == ALYX_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
			const char *coll = (const char *)sqlite3_column_text(st, 1);
			const char *id = (const char *)sqlite3_column_text(st, 2);

			last = sqlite3_column_int64(st, 0);
			rows++;
			if (rt->n_subs && coll && id)
				rc = process_change(rt, snap, coll, id, err);
		}
		if (rc == ALYX_OK && src != SQLITE_DONE && src != SQLITE_ROW)
			rc = alyx__conn_err(rt->db, src, "change feed", err);
	} while (rc == ALYX_OK && rows == FEED_BATCH);
	if (rc == ALYX_OK) {
		if (last > rt->last_id || rt->dirty.n)
			batch_end(rt, last);
		rt->last_id = last;
	} else {
		/* Windows already moved keep their touches; emitting them
		 * now keeps every subscriber consistent with its window. */
		batch_end(rt, rt->last_id);
	}
out:
	if (st)
		alyx__stmt_put(st);
	alyx__snap_put(snap);
	alyx__tx_rollback(rt->db);
	return rc;
}

/* The newest and the oldest change id of the feed (0 when empty). */
static int feed_bounds(sqlite3 *db, int64_t *max, int64_t *min,
		       alyx__err *err)
{
	sqlite3_stmt *st = NULL;
	int src, rc = ALYX_OK;

	*max = *min = 0;
	src = sqlite3_prepare_v2(db, "SELECT coalesce(max(id),0), "
				 "coalesce(min(id),0) FROM _alyx_changes",
				 -1, &st, NULL);
	if (src == SQLITE_OK)
		src = sqlite3_step(st);
	if (src != SQLITE_ROW) {
		rc = alyx__conn_err(db, src, "change feed", err);
	} else {
		*max = sqlite3_column_int64(st, 0);
		*min = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	return rc;
}

static int64_t data_version(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	if (sqlite3_prepare_v2(db, "PRAGMA data_version", -1, &st, NULL) ==
	    SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* ---- the broker ---- */

void alyx__rt_notify(alyx *a)
{
	struct alyx__rt *rt = atomic_load_explicit(&a->rt,
						   memory_order_acquire);

	if (rt)
		wake(rt);
}

void alyx__rt_resync(alyx *a)
{
	struct alyx__rt *rt = atomic_load_explicit(&a->rt,
						   memory_order_acquire);

	if (rt) {
		atomic_store(&rt->resync, true);
		wake(rt);
	}
}

void alyx__rt_free(struct alyx__rt *rt)
{
	if (!rt)
		return;
	while (rt->subs) {
		alyx_sub *sub = rt->subs;

		sub_detach(rt, sub);
		sub->dead = true;
		sub_unref(sub);
	}
	alyx__hmap_clear(&rt->views, NULL);
	alyx__snap_put(rt->bound);
	alyx__hmap_clear(&rt->colls, rcoll_free);
	alyx__hmap_clear(&rt->seen, NULL);
	alyx__subvec_free(&rt->expanders);
	alyx__subvec_free(&rt->dirty);
	alyx__conn_close(rt->db);
	if (rt->efd >= 0)
		close(rt->efd);
	pthread_mutex_destroy(&rt->mu);
	pthread_mutex_destroy(&rt->dmu);
	alyx__free(rt);
}

static int rt_get(alyx *a, struct alyx__rt **out, alyx__err *err)
{
	struct alyx__rt *rt = atomic_load_explicit(&a->rt,
						   memory_order_acquire);
	struct alyx__rt *expected = NULL;
	alyx__conn_opts o;
	int rc;

	*out = rt;
	if (rt)
		return ALYX_OK;
	rt = alyx__calloc(1, sizeof(*rt));
	if (!rt)
		return nomem(err);
	rt->a = a;
	rt->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pthread_mutex_init(&rt->mu, NULL);
	pthread_mutex_init(&rt->dmu, NULL);
	if (rt->efd < 0) {
		rc = alyx__err_set(err, ALYX_E_IO, NULL, "eventfd: %s",
				   strerror(errno));
		goto fail;
	}
	o = a->copts;
	o.create = false;
	o.reader = true;
	rc = alyx__conn_open(a->db_path, &o, &rt->db, err);
	if (rc != ALYX_OK)
		goto fail;
	rt->poll_ms = a->cfg->realtime.poll_interval_ms > 0
			      ? a->cfg->realtime.poll_interval_ms : 50;
	rt->retention_ms = a->cfg->realtime.change_retention_ms;
	{
		int64_t min;

		rc = feed_bounds(rt->db, &rt->last_id, &min, err);
	}
	if (rc != ALYX_OK)
		goto fail;
	rt->data_version = data_version(rt->db);
	rt->next_poll = alyx__mono_ms() + rt->poll_ms;
	rt->next_prune = alyx__mono_ms();
	if (!atomic_compare_exchange_strong(&a->rt, &expected, rt)) {
		alyx__rt_free(rt);
		*out = expected;
		return ALYX_OK;
	}
	*out = rt;
	return ALYX_OK;
fail:
	alyx__rt_free(rt);
	return rc;
}

/* ---- public API ---- */

/* Takes "since" out of the query object: -1 when absent. */
static int take_since(cJSON *q, int64_t *since, alyx__err *err)
{
	cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(q, "since");
	int rc = ALYX_OK;

	*since = -1;
	if (!v)
		return ALYX_OK;
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 ||
	    v->valuedouble != trunc(v->valuedouble) ||
	    v->valuedouble > 9007199254740991.0)
		rc = alyx__err_set(err, ALYX_E_BADQUERY,
				   "{\"param\":\"since\"}",
				   "since must be a change id (an integer >= 0)");
	else
		*since = (int64_t)v->valuedouble;
	cJSON_Delete(v);
	return rc;
}

static int check_query(const alyx__query *q, alyx__err *err)
{
	const char *p = q->offset ? "offset" : q->after ? "after"
			: q->fields ? "fields" : NULL;

	if (!p)
		return ALYX_OK;
	return alyx__err_setd(err, ALYX_E_BADQUERY,
			      alyx__asprintf("{\"param\":\"%s\"}", p),
			      "a subscription cannot use '%s' (a live query "
			      "is the first page, whole documents)", p);
}

/* Did the feed keep every change after `since`, for a state at change
 * `at`?  (min: the oldest change the feed holds, 0 when empty.) */
static bool reaches_back(int64_t since, int64_t at, int64_t min)
{
	return since <= at && (since == at || (min > 0 && min <= since + 1));
}

/* One document changed after `since`, for a resume. */
typedef struct rchange {
	char *id;
	bool created;		/* its first change after `since` made it */
} rchange;

typedef struct replay {
	rchange *c;
	size_t n, cap;
	size_t existed;		/* how many existed at `since` */
	bool others;		/* an expanded collection changed */
	alyx__hmap seen;	/* doc id -> 1 */
} replay;

static void replay_free(replay *r)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		alyx__free(r->c[i].id);
	alyx__free(r->c);
	alyx__hmap_clear(&r->seen, NULL);
}

/* A text column of one row (NULL when no row), for the checks below. */
static char *text_of(sqlite3 *db, const char *sql, int64_t arg, int *src)
{
	sqlite3_stmt *st = NULL;
	char *t = NULL;

	*src = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (*src == SQLITE_OK) {
		if (arg >= 0)
			sqlite3_bind_int64(st, 1, arg);
		*src = sqlite3_step(st);
	}
	if (*src == SQLITE_ROW && sqlite3_column_text(st, 0)) {
		t = alyx__strdup((const char *)sqlite3_column_text(st, 0));
		*src = t ? SQLITE_DONE : SQLITE_NOMEM;
	} else if (*src == SQLITE_ROW) {
		*src = SQLITE_DONE;
	}
	sqlite3_finalize(st);
	return t;
}

/*
 * Collects, inside the snapshot's read transaction, the documents of v's
 * collection changed in (since, at] (docs/realtime.md, "Resume").  Sets
 * *ok to false when a replay cannot be proved equal to a snapshot: the
 * row `since` is gone, a schema was applied after it, or more documents
 * changed than the window's limit leaves room for (or REPLAY_MAX_IDS,
 * most of them made after `since`: memory stays bounded).
 */
static int replay_collect(struct alyx__rt *rt, const view *v, int64_t since,
			  int64_t at, replay *r, bool *ok, alyx__err *err)
{
	static const char rows[] = "SELECT collection, operation, doc_id "
				   "FROM _alyx_changes WHERE id > ? AND "
				   "id <= ? ORDER BY id";
	sqlite3_stmt *st = NULL;
	char *t_since, *t_schema;
	int src, rc = ALYX_OK;
	size_t k;

	*ok = false;
	t_since = text_of(rt->db, "SELECT timestamp FROM _alyx_changes "
			  "WHERE id = ?", since, &src);
	if (src != SQLITE_DONE)
		return alyx__conn_err(rt->db, src, "change feed", err);
	if (!t_since)
		return ALYX_OK;
	t_schema = text_of(rt->db, "SELECT max(applied_at) FROM _alyx_schema",
			   -1, &src);
	if (src != SQLITE_DONE) {
		alyx__free(t_since);
		return alyx__conn_err(rt->db, src, "schema", err);
	}
	*ok = !t_schema || strcmp(t_schema, t_since) < 0;
	alyx__free(t_since);
	alyx__free(t_schema);
	if (!*ok)
		return ALYX_OK;
	src = sqlite3_prepare_v2(rt->db, rows, -1, &st, NULL);
	if (src != SQLITE_OK)
		return alyx__conn_err(rt->db, src, "change feed", err);
	sqlite3_bind_int64(st, 1, since);
	sqlite3_bind_int64(st, 2, at);
	while (*ok && (src = sqlite3_step(st)) == SQLITE_ROW) {
		const char *coll = (const char *)sqlite3_column_text(st, 0);
		const char *op = (const char *)sqlite3_column_text(st, 1);
		const char *id = (const char *)sqlite3_column_text(st, 2);
		rchange *c;

		if (!coll || !op || !id)
			continue;
		/* (An expand path may read the collection itself.) */
		for (k = 0; k < v->n_reads && !r->others; k++)
			if (strcmp(v->reads[k], coll) == 0)
				r->others = true;
		if (strcmp(coll, v->rc->name) != 0)
			continue;
		if (alyx__hmap_get(&r->seen, id, strlen(id)))
			continue;
		if (r->n == r->cap) {
			size_t nc = r->cap ? r->cap * 2 : 16;

			c = alyx__realloc(r->c, nc * sizeof(*c));
			if (!c) {
				rc = nomem(err);
				break;
			}
			r->c = c;
			r->cap = nc;
		}
		c = &r->c[r->n];
		c->created = strcmp(op, "INSERT") == 0;
		if (!(c->id = alyx__strdup(id)) ||
		    !alyx__hmap_put(&r->seen, c->id, strlen(c->id), r)) {
			alyx__free(c->id);
			rc = nomem(err);
			break;
		}
		r->n++;
		r->existed += !c->created;
		/* The client's window at `since` held every match only if
		 * they were at most `limit`: the unchanged ones (all in
		 * today's complete window) plus those changed since. */
		if (v->n + r->existed > (size_t)v->q->limit ||
		    r->n > REPLAY_MAX_IDS)
			*ok = false;
	}
	if (rc == ALYX_OK && src != SQLITE_DONE && src != SQLITE_ROW)
		rc = alyx__conn_err(rt->db, src, "change feed", err);
	sqlite3_finalize(st);
	return rc;
}

/*
 * The resume delta of `sub` from the view's window at `at`: a changed
 * document it holds is an insert when made after `since`, else an update
 * (the client may or may not hold it); one it does not hold is a delete
 * unless made after `since` (the client never had it).  With an expanded
 * collection changed, every document held is an update.
 */
static void replay_msg(alyx_buf *b, const alyx_sub *sub, const view *v,
		       const replay *r, int64_t at)
{
	static const char *const part[] = {"inserts", "updates", "deletes"};
	size_t i, k;
	int p, n;

	alyx__buf_adds(b, "{\"subscription_id\":");
	alyx__json_strz(b, sub->id);
	alyx__buf_adds(b, ",\"resumed\":true,\"changes\":{");
	for (p = 0; p < 3; p++) {
		alyx__buf_addf(b, "%s\"%s\":[", p ? "," : "", part[p]);
		n = 0;
		for (k = 0; k < r->n; k++) {
			ssize_t w = win_find(v, r->c[k].id);

			if (p == 2 && w < 0 && !r->c[k].created) {
				alyx__buf_adds(b, n++ ? "," : "");
				alyx__json_strz(b, r->c[k].id);
			} else if (p < 2 && w >= 0 &&
				   r->c[k].created == (p == 0)) {
				alyx__buf_adds(b, n++ ? "," : "");
				add_rdoc(b, v->w[w].d);
			}
		}
		for (i = 0; p == 1 && r->others && i < v->n; i++) {
			if (alyx__hmap_get(&r->seen, v->w[i].id,
					   strlen(v->w[i].id)))
				continue;
			alyx__buf_adds(b, n++ ? "," : "");
			add_rdoc(b, v->w[i].d);
		}
		alyx__buf_addc(b, ']');
	}
	alyx__buf_addf(b, "},\"change_id\":%lld}", (long long)at);
}

/*
 * Queues the snapshot of `sub` (under rt->mu).  A new view (`fresh`) is
 * loaded here, in a read transaction newer than the last batch; a shared
 * one already holds its window at max(load_at, last_id).
 */
static int snapshot(struct alyx__rt *rt, alyx_sub *sub, bool fresh,
		    int64_t since, alyx__err *err)
{
	view *v = sub->v;
	cJSON *res = NULL;
	const cJSON *total = NULL;
	int64_t max = 0, min = 0, at;
	replay r = {0};
	bool replay_ok = false;
	alyx_buf b;
	size_t i;
	int rc;

	alyx__buf_init(&b, 0);
	rc = alyx__tx_begin(rt->db, false, err);
	if (rc != ALYX_OK)
		return rc;
	rc = feed_bounds(rt->db, &max, &min, err);
	if (rc == ALYX_OK && fresh) {
		rc = win_load(rt, v, &res, err);
		v->load_at = max;
		/* The only subscription: the changes up to its snapshot
		 * concern nobody, no need to read them again. */
		if (rt->n_subs == 0 && max > rt->last_id)
			rt->last_id = max;
	}
	/* The window is the state at `at`: live deltas continue from it,
	 * so a replay of the feed up to `at` leaves no gap and no twice. */
	at = v->load_at > rt->last_id ? v->load_at : rt->last_id;
	if (res)
		total = cJSON_GetObjectItemCaseSensitive(res, "total");
	if (rc == ALYX_OK && since >= 0 && reaches_back(since, at, min) &&
	    v->complete && !cJSON_IsNumber(total))
		rc = replay_collect(rt, v, since, at, &r, &replay_ok, err);
	alyx__tx_rollback(rt->db);
	if (rc != ALYX_OK)
		goto out;
	/* Later deltas need no total. */
	v->q->total = false;
	if (replay_ok) {
		replay_msg(&b, sub, v, &r, at);
		goto push;
	}
	alyx__buf_adds(&b, "{\"subscription_id\":");
	alyx__json_strz(&b, sub->id);
	alyx__buf_adds(&b, ",\"docs\":[");
	for (i = 0; i < v->n; i++) {
		if (i)
			alyx__buf_addc(&b, ',');
		add_rdoc(&b, v->w[i].d);
	}
	alyx__buf_addc(&b, ']');
	if (cJSON_IsNumber(total))
		alyx__buf_addf(&b, ",\"total\":%lld",
			       (long long)total->valuedouble);
	alyx__buf_addf(&b, ",\"change_id\":%lld", (long long)at);
	if (since >= 0)
		alyx__buf_addf(&b, ",\"resync\":%s",
			       reaches_back(since, at, min) ? "false"
							    : "true");
	alyx__buf_addc(&b, '}');
push:
	if (b.err) {
		rc = nomem(err);
		goto out;
	}
	msg_push(sub, &b);
	if (!sub->mq)
		rc = nomem(err);
out:
	replay_free(&r);
	cJSON_Delete(res);
	alyx__buf_free(&b);
	return rc;
}

/* The sharing key of a query: collection, schema snapshot, the query
 * text as parsed and the caller as the rules see it (auth, and request
 * when the rule reads it); NULL (not shared) when it asks for a total. */
static char *view_key(const alyx__snap *snap, const alyx__collection *c,
		      const alyx__query *q, const cJSON *j, const view *w)
{
	char *text, *auth = NULL, *req = NULL, *key = NULL;

	if (q->total || !(text = cJSON_PrintUnformatted(j)))
		return NULL;
	if ((!w->auth || (auth = cJSON_PrintUnformatted(w->auth))) &&
	    (!w->req || (req = cJSON_PrintUnformatted(w->req))))
		key = alyx__asprintf("%s|%p|%s|%c|%s|%s", c->name,
				     (const void *)snap, text,
				     w->sys ? 'S' : w->admin ? 'A' : 'U',
				     auth ? auth : "null", req ? req : "");
	cJSON_free(text);
	cJSON_free(auth);
	cJSON_free(req);
	return key;
}

ALYX_API int alyx_subscribe(alyx *a, const alyx_ctx *ctx,
			    const char *collection, const char *query_json,
			    alyx_sub_cb cb, void *user_data,
			    void (*destroy)(void *), alyx_sub **out)
{
	alyx__err err = {0};
	struct alyx__rt *rt = NULL;
	const alyx__collection *c;
	alyx__snap *snap = NULL;
	alyx__query *q = NULL;
	alyx_sub *sub = NULL;
	view *v = NULL;
	char *key = NULL;
	cJSON *j = NULL;
	int64_t since = -1;
	bool locked = false, fresh = false;
	view who = {0};
	int rc;

	if (out)
		*out = NULL;
	rc = alyx__enter(a, &err);
	if (rc == ALYX_OK && !out)
		rc = alyx__misuse(&err, "out");
	if (rc == ALYX_OK && !cb)
		rc = alyx__misuse(&err, "cb");
	if (rc != ALYX_OK)
		goto out;
	snap = alyx__snap_get(a);
	rc = alyx__coll_find(snap, collection, &c, &err);
	if (rc != ALYX_OK)
		goto out;
	if (query_json)
		rc = alyx__json_parse(a, query_json, (size_t)-1, "query_json",
				      &j, &err);
	else if (!(j = cJSON_CreateObject()))
		rc = nomem(&err);
	if (rc == ALYX_OK && !cJSON_IsObject(j))
		rc = alyx__err_set(&err, ALYX_E_BADJSON,
				   "{\"argument\":\"query_json\"}",
				   "query_json must be a JSON object");
	if (rc == ALYX_OK)
		rc = take_since(j, &since, &err);
	if (rc == ALYX_OK)
		rc = alyx__query_parse_json(snap->schema, c, j, &q, &err);
	if (rc == ALYX_OK)
		rc = check_query(q, &err);
	if (rc == ALYX_OK)
		rc = caller_of(ctx, c, &who, &err);
	if (rc == ALYX_OK)
		rc = rt_get(a, &rt, &err);
	if (rc == ALYX_OK && !(sub = alyx__calloc(1, sizeof(*sub))))
		rc = nomem(&err);
	if (rc != ALYX_OK)
		goto out;
	key = view_key(snap, c, q, j, &who);
	sub->refs = 1;
	sub->rt = rt;
	pthread_mutex_lock(&rt->mu);
	locked = true;
	if (rt->n_subs >= MAX_SUBS) {
		rc = alyx__err_set(&err, ALYX_E_TOOBIG, NULL,
				   "too many subscriptions (at most %d)",
				   MAX_SUBS);
		goto out;
	}
	snprintf(sub->id, sizeof(sub->id), "sub_%llu",
		 (unsigned long long)++rt->seq);
	v = key ? alyx__hmap_get(&rt->views, key, strlen(key)) : NULL;
	if (!v) {
		fresh = true;
		v = alyx__calloc(1, sizeof(*v));
		if (!v) {
			rc = nomem(&err);
			goto out;
		}
		v->snap = snap;
		v->q = q;
		snap = NULL;
		q = NULL;
		v->sys = who.sys;
		v->admin = who.admin;
		v->acc = who.acc;
		v->rule = who.rule;
		v->auth = who.auth;
		v->ip = who.ip;
		v->req = who.req;
		who.auth = who.req = NULL;
		who.ip = NULL;
		{
			char *t = cJSON_PrintUnformatted(j);

			v->qtext = t ? alyx__strdup(t) : NULL;
			cJSON_free(t);
		}
		rc = sub_register(rt, v, &err);
		if (rc == ALYX_OK && key) {
			if (alyx__hmap_put(&rt->views, key, strlen(key), v)) {
				v->key = key;
				key = NULL;
			} else {
				rc = nomem(&err);
			}
		}
	}
	if (rc == ALYX_OK && !alyx__subvec_add(&v->subs, sub))
		rc = nomem(&err);
	if (rc == ALYX_OK) {
		sub->v = v;
		rc = snapshot(rt, sub, fresh, since, &err);
	}
	if (rc != ALYX_OK) {
		alyx__subvec_del(&v->subs, sub);
		if (v->subs.n == 0)
			view_free(rt, v);
		sub->v = NULL;
		goto out;
	}
	sub->cb = cb;
	sub->ud = user_data;
	sub->destroy = destroy;
	sub->next = rt->subs;
	if (rt->subs)
		rt->subs->prev = sub;
	rt->subs = sub;
	rt->n_subs++;
	*out = sub;
	sub = NULL;
	wake(rt);
out:
	if (locked)
		pthread_mutex_unlock(&rt->mu);
	if (sub)
		sub_unref(sub);
	alyx__free(key);
	alyx__query_free(q);
	alyx__snap_put(snap);
	cJSON_Delete(j);
	cJSON_Delete(who.auth);
	cJSON_Delete(who.req);
	alyx__free(who.ip);
	return alyx__finish(a, &err);
}

ALYX_API const char *alyx_sub_id(const alyx_sub *s)
{
	return s ? s->id : NULL;
}

ALYX_API void alyx_unsubscribe(alyx_sub *s)
{
	struct alyx__rt *rt;

	if (!s || s->dead)
		return;
	rt = s->rt;
	pthread_mutex_lock(&rt->mu);
	s->dead = true;
	sub_detach(rt, s);
	rt->n_subs--;
	msg_free_all(s);
	if (s->refs > 1) {
		/* A dispatch is delivering to it: it frees after. */
		s->refs--;
		pthread_mutex_unlock(&rt->mu);
		return;
	}
	pthread_mutex_unlock(&rt->mu);
	sub_unref(s);
}

ALYX_API int alyx_get_fd(alyx *a)
{
	alyx__err err = {0};
	struct alyx__rt *rt = NULL;
	int rc = alyx__enter(a, &err);

	if (rc == ALYX_OK)
		rc = rt_get(a, &rt, &err);
	alyx__finish(a, &err);
	return rc == ALYX_OK ? rt->efd : -1;
}

ALYX_API int alyx_next_timeout_ms(alyx *a)
{
	alyx__err err = {0};
	struct alyx__rt *rt = NULL;
	int64_t now, next = -1;
	int rc = alyx__enter(a, &err);

	if (rc == ALYX_OK)
		rc = rt_get(a, &rt, &err);
	alyx__finish(a, &err);
	if (rc != ALYX_OK)
		return -1;
	pthread_mutex_lock(&rt->mu);
	if (rt->n_subs)
		next = rt->next_poll;
	if (a->wdb && rt->retention_ms > 0 &&
	    (next < 0 || rt->next_prune < next))
		next = rt->next_prune;
	pthread_mutex_unlock(&rt->mu);
	if (next < 0)
		return -1;
	now = alyx__mono_ms();
	return next <= now ? 0 : (int)(next - now > 3600000 ? 3600000
							     : next - now);
}

/* Deletes changes older than the retention that the broker has seen. */
static int prune(struct alyx__rt *rt, int64_t upto, alyx__err *err)
{
	alyx *a = rt->a;
	char cutoff[25];
	sqlite3_stmt *st = NULL;
	alyx__wtx t;
	int rc, src;

	alyx__iso8601_ms(alyx__now_ms() - rt->retention_ms, cutoff);
	/* Most runs find nothing: ask the broker's reader first, so the
	 * writer (and a wake-up of every broker) is only taken for work. */
	src = sqlite3_prepare_v2(rt->db, "SELECT 1 FROM _alyx_changes WHERE "
				 "id <= ? AND timestamp < ? LIMIT 1", -1, &st,
				 NULL);
	if (src == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, upto);
		sqlite3_bind_text(st, 2, cutoff, -1, SQLITE_STATIC);
		src = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	st = NULL;
	if (src == SQLITE_DONE)
		return ALYX_OK;
	if (src != SQLITE_ROW)
		return alyx__conn_err(rt->db, src, "prune change feed", err);
	rc = alyx__wtx_begin(a, &t, err);
	if (rc != ALYX_OK)
		return rc;
	src = sqlite3_prepare_v2(a->wdb, "DELETE FROM _alyx_changes WHERE "
				 "id <= ? AND timestamp < ?", -1, &st, NULL);
	if (src == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, upto);
		sqlite3_bind_text(st, 2, cutoff, -1, SQLITE_STATIC);
		src = sqlite3_step(st);
	}
	if (src != SQLITE_DONE && src != SQLITE_OK)
		rc = alyx__conn_err(a->wdb, src, "prune change feed", err);
	sqlite3_finalize(st);
	return alyx__wtx_end(&t, rc == ALYX_OK, err);
}

typedef struct delivery {
	alyx_sub *s;
	msg *m;
} delivery;

ALYX_API int alyx_dispatch(alyx *a)
{
	alyx__err err = {0};
	struct alyx__rt *rt = NULL;
	delivery *dl = NULL;
	size_t n = 0, cap = 0, i;
	bool woke, poll_due, prune_due = false;
	int64_t now, upto = 0;
	uint64_t cnt;
	alyx_sub *s;
	int rc = alyx__enter(a, &err);

	if (rc == ALYX_OK)
		rc = rt_get(a, &rt, &err);
	if (rc != ALYX_OK)
		goto out;
	pthread_mutex_lock(&rt->dmu);
	pthread_mutex_lock(&rt->mu);
	woke = read(rt->efd, &cnt, sizeof(cnt)) == (ssize_t)sizeof(cnt);
	now = alyx__mono_ms();
	poll_due = now >= rt->next_poll;
	if (poll_due) {
		int64_t v = data_version(rt->db);

		rt->next_poll = now + rt->poll_ms;
		if (v != rt->data_version) {
			rt->data_version = v;
			woke = true;
		}
	}
	if (woke)
		rc = process_feed(rt, &err);
	if (a->wdb && rt->retention_ms > 0 && now >= rt->next_prune) {
		int64_t every = rt->retention_ms / 4;

		if (every > PRUNE_MAX_INTERVAL_MS)
			every = PRUNE_MAX_INTERVAL_MS;
		if (every < 1000)
			every = 1000;
		rt->next_prune = now + every;
		prune_due = true;
		upto = rt->last_id;
	}
	/* Take every queued message, in order, with a reference on its
	 * subscription, and deliver without the lock. */
	for (s = rt->subs; s; s = s->next) {
		while (s->mq) {
			msg *m = s->mq;

			if (n == cap) {
				size_t nc = cap ? cap * 2 : 16;
				delivery *nd = alyx__realloc(dl,
							     nc * sizeof(*nd));

				if (!nd)
					break;
				dl = nd;
				cap = nc;
			}
			s->mq = m->next;
			if (!s->mq)
				s->mq_tail = NULL;
			s->refs++;
			dl[n].s = s;
			dl[n++].m = m;
		}
		if (s->mq)
			break;
	}
	pthread_mutex_unlock(&rt->mu);
	for (i = 0; i < n; i++) {
		if (!dl[i].s->dead)
			dl[i].s->cb(dl[i].m->json, dl[i].m->len, dl[i].s->ud);
		alyx__free(dl[i].m);
	}
	if (n) {
		pthread_mutex_lock(&rt->mu);
		for (i = 0; i < n; i++) {
			if (dl[i].s->refs > 1) {
				dl[i].s->refs--;
				dl[i].s = NULL;
			}
		}
		pthread_mutex_unlock(&rt->mu);
		/* The last reference (unsubscribed meanwhile): free outside
		 * the lock, destroy may do anything. */
		for (i = 0; i < n; i++)
			if (dl[i].s)
				sub_unref(dl[i].s);
	}
	alyx__free(dl);
	if (prune_due && rc == ALYX_OK)
		rc = prune(rt, upto, &err);
	pthread_mutex_unlock(&rt->dmu);
out:
	return alyx__finish(a, &err);
}
