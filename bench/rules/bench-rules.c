/*
 * bench-rules.c - evaluations per second of the seed plan's example rules
 * (SEED-PLAN.md §Schema File Format and §CEL Rule Engine) against one
 * document, beside hand-written C doing the same comparisons, in the same
 * run.  Two pairs:
 *
 *  values  the compiled rule on pre-built CEL values (what a list query
 *          does per row after converting the row once), against a C
 *          function doing the same field lookups and comparisons on the
 *          same values;
 *  json    alyx__rule_eval from cJSON inputs (conversion included, what a
 *          single-document request does), against a C function reading
 *          the same cJSON objects.
 *
 * Prints absolute figures and the ratio CEL / hand-written (target >= 25%).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "rules/rules.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static alyx__field post_fields[] = {
	{.name = "id", .type = ALYX_T_UUID, .primary = true},
	{.name = "title", .type = ALYX_T_STRING},
	{.name = "slug", .type = ALYX_T_STRING},
	{.name = "content", .type = ALYX_T_TEXT},
	{.name = "excerpt", .type = ALYX_T_STRING, .nullable = true},
	{.name = "author_id", .type = ALYX_T_UUID},
	{.name = "published", .type = ALYX_T_BOOL},
	{.name = "published_at", .type = ALYX_T_TIMESTAMP, .nullable = true},
	{.name = "tags", .type = ALYX_T_JSON, .nullable = true},
	{.name = "view_count", .type = ALYX_T_INT},
	{.name = "created_at", .type = ALYX_T_TIMESTAMP},
	{.name = "updated_at", .type = ALYX_T_TIMESTAMP},
};
static alyx__collection posts = {.name = "posts", .fields = post_fields,
				 .n_fields = 12};

static const char *doc_json =
	"{\"id\":\"7f1c9a0e-5d3b-4c1e-9f0a-2b6d8e4c1a35\",\"title\":\"Hello\","
	"\"slug\":\"hello\",\"content\":\"Lorem ipsum dolor sit amet\","
	"\"excerpt\":null,\"author_id\":\"0b5e2f7a-1c4d-4e8f-a9b3-6d2c1e0f7a48\","
	"\"published\":false,\"published_at\":null,\"tags\":[\"c\",\"cel\"],"
	"\"view_count\":42,\"created_at\":\"2026-01-02T03:04:05.678Z\","
	"\"updated_at\":\"2026-01-02T03:04:05.678Z\"}";
static const char *auth_json =
	"{\"id\":\"0b5e2f7a-1c4d-4e8f-a9b3-6d2c1e0f7a48\",\"email\":"
	"\"ann@example.com\",\"role\":\"user\",\"verified\":true,"
	"\"metadata\":{}}";
static const char *req_json =
	"{\"method\":\"POST\",\"ip\":\"127.0.0.1\",\"time\":"
	"\"2026-01-02T03:04:05Z\",\"body\":{\"title\":\"A title\"}}";

/* ---- hand-written equivalents on CEL values ---- */

static const alyx__cel_val *get(const alyx__cel_val *m, const char *k)
{
	size_t n = strlen(k);
	if (m->k != ALYX_CEL_MAP)
		return NULL;
	for (size_t i = 0; i < m->n; i++) {
		const alyx__cel_val *key = &m->v.l[2 * i];
		if (key->k == ALYX_CEL_STRING && key->n == n &&
		    !memcmp(key->v.s, k, n))
			return &m->v.l[2 * i + 1];
	}
	return NULL;
}

static bool str_eq(const alyx__cel_val *a, const alyx__cel_val *b)
{
	return a && b && a->k == ALYX_CEL_STRING && b->k == ALYX_CEL_STRING &&
	       a->n == b->n && !memcmp(a->v.s, b->v.s, a->n);
}

static bool str_is(const alyx__cel_val *a, const char *s)
{
	return a && a->k == ALYX_CEL_STRING && a->n == strlen(s) &&
	       !memcmp(a->v.s, s, a->n);
}

static bool is_true(const alyx__cel_val *a)
{
	return a && a->k == ALYX_CEL_BOOL && a->v.b;
}

static size_t utf8_len(const alyx__cel_val *s)
{
	size_t c = 0;
	for (size_t i = 0; i < s->n; i++)
		c += ((unsigned char)s->v.s[i] & 0xC0) != 0x80;
	return c;
}

static int h_published(const alyx__cel_val *v)
{
	return is_true(get(&v[1], "published"));
}

static int h_update(const alyx__cel_val *v)
{
	return str_eq(get(&v[0], "id"), get(&v[1], "author_id"));
}

static int h_delete(const alyx__cel_val *v)
{
	return str_is(get(&v[0], "role"), "admin");
}

static int h_create(const alyx__cel_val *v)
{
	const alyx__cel_val *id = get(&v[0], "id");
	if (!id || id->k == ALYX_CEL_NULL)
		return 0;
	if (!is_true(get(&v[0], "verified")))
		return 0;
	const alyx__cel_val *b = get(&v[2], "body");
	const alyx__cel_val *t = b ? get(b, "title") : NULL;
	return t && t->k == ALYX_CEL_STRING && utf8_len(t) <= 200;
}

static int h_read(const alyx__cel_val *v)
{
	return h_published(v) || h_update(v) || h_delete(v);
}

static int h_users_read(const alyx__cel_val *v)
{
	return str_eq(get(&v[0], "id"), get(&v[1], "id")) || h_delete(v);
}

/* ---- hand-written equivalents on cJSON ---- */

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int j_published(const cJSON *a, const cJSON *d, const cJSON *r)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "published"));
}

static int j_update(const cJSON *a, const cJSON *d, const cJSON *r)
{
	const char *x = jstr(a, "id"), *y = jstr(d, "author_id");
	return x && y && !strcmp(x, y);
}

static int j_delete(const cJSON *a, const cJSON *d, const cJSON *r)
{
	const char *x = jstr(a, "role");
	return x && !strcmp(x, "admin");
}

static int j_create(const cJSON *a, const cJSON *d, const cJSON *r)
{
	if (!jstr(a, "id") ||
	    !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "verified")))
		return 0;
	const char *t = jstr(cJSON_GetObjectItemCaseSensitive(r, "body"),
			     "title");
	if (!t)
		return 0;
	size_t c = 0;
	for (const char *p = t; *p; p++)
		c += ((unsigned char)*p & 0xC0) != 0x80;
	return c <= 200;
}

static int j_read(const cJSON *a, const cJSON *d, const cJSON *r)
{
	return j_published(a, d, r) || j_update(a, d, r) || j_delete(a, d, r);
}

static int j_users_read(const cJSON *a, const cJSON *d, const cJSON *r)
{
	const char *x = jstr(a, "id"), *y = jstr(d, "id");
	return (x && y && !strcmp(x, y)) || j_delete(a, d, r);
}

static const struct {
	const char *name, *src;
	int (*hv)(const alyx__cel_val *);
	int (*hj)(const cJSON *, const cJSON *, const cJSON *);
} cases[] = {
	{"posts.read", "doc.published == true || auth.id == doc.author_id || "
	 "auth.role == 'admin'", h_read, j_read},
	{"posts.update", "auth.id == doc.author_id", h_update, j_update},
	{"posts.delete", "auth.role == 'admin'", h_delete, j_delete},
	{"read published", "doc.published == true", h_published, j_published},
	{"users.read", "auth.id == doc.id || auth.role == 'admin'",
	 h_users_read, j_users_read},
	{"create (complex)", "auth.id != null && \n auth.verified == true &&\n"
	 " size(request.body.title) <= 200\n", h_create, j_create},
};

#define SECONDS 0.4

int main(void)
{
	cJSON *a = cJSON_Parse(auth_json), *d = cJSON_Parse(doc_json),
	      *q = cJSON_Parse(req_json);
	alyx__cel_run conv, run;
	alyx__cel_val vars[3];
	volatile long sink = 0;
	double worst = 1e9;

	alyx__cel_run_init(&conv);
	alyx__rule_auth_val(a, &conv, &vars[0]);
	alyx__rule_json_val(d, &posts, &conv, &vars[1]);
	alyx__rule_request_val(q, &conv, &vars[2]);
	alyx__cel_run_init(&run);

	printf("%-18s %14s %14s %7s   %14s %14s %7s\n", "rule",
	       "cel/s (values)", "C/s (values)", "ratio", "cel/s (json)",
	       "C/s (json)", "ratio");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		alyx__rule *r = NULL;
		alyx__err err = {0};
		long n;
		double t0, cel_v, c_v, cel_j, c_j;
		alyx__rule_ctx ctx = {a, d, q};

		if (alyx__rule_compile(cases[i].src, strlen(cases[i].src),
				       &posts, &r, &err)) {
			fprintf(stderr, "%s: %s\n", cases[i].name, err.msg);
			return 1;
		}
		/* same answers */
		int want = cases[i].hv(vars);
		if ((alyx__rule_eval_vals(r, vars, &run, NULL) ==
		     ALYX_RULE_ALLOW) != want ||
		    (alyx__rule_eval(r, &ctx, NULL) == ALYX_RULE_ALLOW) !=
			    want ||
		    cases[i].hj(a, d, q) != want) {
			fprintf(stderr, "%s: results differ\n", cases[i].name);
			return 1;
		}
		alyx__cel_run_reset(&run);

		t0 = now();
		for (n = 0; now() - t0 < SECONDS;)
			for (int k = 0; k < 10000; k++, n++) {
				sink += alyx__rule_eval_vals(r, vars, &run,
							     NULL);
				alyx__cel_run_reset(&run);
			}
		cel_v = (double)n / (now() - t0);
		t0 = now();
		for (n = 0; now() - t0 < SECONDS;)
			for (int k = 0; k < 10000; k++, n++)
				sink += cases[i].hv(vars);
		c_v = (double)n / (now() - t0);
		t0 = now();
		for (n = 0; now() - t0 < SECONDS;)
			for (int k = 0; k < 1000; k++, n++)
				sink += alyx__rule_eval(r, &ctx, NULL);
		cel_j = (double)n / (now() - t0);
		t0 = now();
		for (n = 0; now() - t0 < SECONDS;)
			for (int k = 0; k < 10000; k++, n++)
				sink += cases[i].hj(a, d, q);
		c_j = (double)n / (now() - t0);
		printf("%-18s %14.0f %14.0f %6.1f%%   %14.0f %14.0f %6.1f%%\n",
		       cases[i].name, cel_v, c_v, 100 * cel_v / c_v, cel_j, c_j,
		       100 * cel_j / c_j);
		if (cel_v / c_v < worst)
			worst = cel_v / c_v;
		alyx__rule_free(r);
	}
	printf("worst ratio on values: %.1f%% of hand-written (target 25%%)\n",
	       100 * worst);
	alyx__cel_run_free(&run);
	alyx__cel_run_free(&conv);
	cJSON_Delete(a);
	cJSON_Delete(d);
	cJSON_Delete(q);
	return (int)(sink & 0);
}
