/*
 * bench-auth.c - what authentication costs, in one run.
 *
 *   bench-auth [N_LOGIN]
 *
 *   login          alyx_auth_login (JSON, rate limit, account lookup,
 *                  argon2id verify, new session, JWT) | bare
 *                  argon2id_verify of the same hash: login can be no
 *                  faster than its hash
 *   refresh        alyx_auth_refresh (rotation: 3 writes, a JWT)
 *   token check    alyx_ctx_from_token (HS256 verify + account read) |
 *                  alyx_doc_get of the users document: the cost a
 *                  request's authentication adds beside a small read
 * Prints ops/s of wall and CPU time (the CPU figure is the stable one on
 * a shared machine) and the ratios.
 */
#include <argon2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "core/handle.h"

#define PW "Correct-Horse-9"

typedef struct stamp {
	double wall, cpu;
} stamp;

static double clk(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static stamp now(void)
{
	stamp s = {clk(CLOCK_MONOTONIC), clk(CLOCK_PROCESS_CPUTIME_ID)};

	return s;
}

static stamp rate(int n, stamp t0)
{
	stamp t = now(), r;

	r.wall = n / (t.wall - t0.wall);
	r.cpu = n / (t.cpu - t0.cpu);
	return r;
}

static void show(const char *what, stamp r)
{
	printf("%-34s %10.1f /s wall %10.1f /s CPU\n", what, r.wall, r.cpu);
}

static void die(alyx *a, const char *what)
{
	fprintf(stderr, "bench-auth: %s: %s %s\n", what, alyx_errmsg(a),
		alyx_errdetails(a));
	exit(1);
}

static char *member(const char *json, const char *k1, const char *k2)
{
	cJSON *j = cJSON_Parse(json), *v = cJSON_GetObjectItem(j, k1);
	char *s;

	if (k2)
		v = cJSON_GetObjectItem(v, k2);
	s = strdup(cJSON_IsString(v) ? v->valuestring : "");
	cJSON_Delete(j);
	return s;
}

static alyx *open_project(char *dir)
{
	static const char cfg[] =
		"database:\n  path: data/alyx.db\n"
		"auth:\n  jwt:\n    secret: \"bench-secret-0123456789abcdef-xyz\"\n"
		"  rate_limit:\n    login: 1000000/minute\n"
		"    register: 1000000/minute\n";
	char path[600], *yaml = NULL, *plan = NULL;
	alyx__err err = {0};
	size_t n;
	alyx *a = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "%s/alyx.yaml", dir);
	f = fopen(path, "w");
	if (!f || fputs(cfg, f) < 0 || fclose(f) != 0)
		exit(1);
	if (alyx_open(dir, ALYX_OPEN_CREATE, &a))
		die(NULL, "open");
	if (alyx__read_file(FIXTURES_DIR "/blog/schema.yaml", 1 << 20, &yaml,
			    &n, &err))
		exit(1);
	if (alyx_apply_schema(a, yaml, n, "schema.yaml", 0, &plan))
		die(a, "apply");
	alyx__free(yaml);
	alyx_free(plan);
	return a;
}

/* One get in a loop, inside a read pass as on a server thread. */
static stamp time_gets(alyx *a, const alyx_ctx *ctx, const char *coll,
		       const char *id, int n)
{
	char *out = NULL;
	stamp t0;
	int i;

	alyx__read_pass_begin(a);
	t0 = now();
	for (i = 0; i < n; i++) {
		if (alyx_doc_get(a, ctx, coll, id, NULL, &out))
			die(a, "get under rules");
		alyx_free(out);
	}
	t0 = rate(n, t0);
	alyx__read_pass_end(a);
	return t0;
}

static stamp time_lists(alyx *a, const alyx_ctx *ctx, const char *qs,
			int n)
{
	char *out = NULL;
	stamp t0;
	int i;

	alyx__read_pass_begin(a);
	t0 = now();
	for (i = 0; i < n; i++) {
		if (alyx_query_str(a, ctx, "posts", qs, &out))
			die(a, "list under rules");
		alyx_free(out);
	}
	t0 = rate(n, t0);
	alyx__read_pass_end(a);
	return t0;
}

/* list-20 of one author's 200 posts (2/3 published) by -created_at. */
static void lists_under_rules(alyx *a, const alyx_ctx *user,
			      const char *uid, int n)
{
	char *out = NULL, qs[256];
	alyx_buf b;
	int i;

	alyx__buf_init(&b, 0);
	alyx__buf_adds(&b, "{\"posts\":[");
	for (i = 0; i < 200; i++)
		alyx__buf_addf(&b, "%s{\"title\":\"P%d\",\"slug\":\"p%d\","
			       "\"content\":\"c\",\"author_id\":\"%s\","
			       "\"published\":%s,\"created_at\":"
			       "\"2026-01-%02dT00:00:%02d.000Z\"}",
			       i ? "," : "", i, i, uid,
			       i % 3 ? "true" : "false", 1 + i % 28, i % 60);
	alyx__buf_adds(&b, "]}");
	if (alyx_db_seed(a, b.data, b.len, &out))
		die(a, "seed");
	alyx_free(out);
	alyx__buf_free(&b);
	snprintf(qs, sizeof(qs), "filter=author_id:eq:%s&sort=-created_at"
		 "&limit=20", uid);
	printf("list-20 of one author's 200 posts, CPU µs per list:\n");
	printf("  system (no rules)                  %6.2f\n",
	       1e6 / time_lists(a, NULL, qs, n).cpu);
	printf("  anonymous, 3-way rule              %6.2f\n",
	       1e6 / time_lists(a, alyx_ctx_anonymous(), qs, n).cpu);
	printf("  signed-in author, 3-way rule       %6.2f\n",
	       1e6 / time_lists(a, user, qs, n).cpu);
}

/* The cost of enforcement on a get by id (issue 5): the system (no
 * rules), the anonymous context on a `read: "true"` collection
 * (comments) and on posts' 3-way rule, and a signed-in user on posts. */
static void gets_under_rules(alyx *a, const alyx_ctx *user, const char *uid,
			     int n)
{
	char body[512], *out = NULL, *pid, *cid;
	stamp sys_c, anon_c, sys_p, anon_p, user_p;

	snprintf(body, sizeof(body),
		 "{\"title\":\"T\",\"slug\":\"t\",\"content\":\"c\","
		 "\"author_id\":\"%s\",\"published\":true}", uid);
	if (alyx_doc_create(a, NULL, "posts", body, (size_t)-1, &out))
		die(a, "post");
	pid = member(out, "id", NULL);
	alyx_free(out);
	snprintf(body, sizeof(body),
		 "{\"post_id\":\"%s\",\"author_id\":\"%s\","
		 "\"content\":\"c\"}", pid, uid);
	if (alyx_doc_create(a, NULL, "comments", body, (size_t)-1, &out))
		die(a, "comment");
	cid = member(out, "id", NULL);
	alyx_free(out);
	sys_c = time_gets(a, NULL, "comments", cid, n);
	anon_c = time_gets(a, alyx_ctx_anonymous(), "comments", cid, n);
	sys_p = time_gets(a, NULL, "posts", pid, n);
	anon_p = time_gets(a, alyx_ctx_anonymous(), "posts", pid, n);
	user_p = time_gets(a, user, "posts", pid, n);
	printf("get by id under rules (in a read pass), CPU µs per get:\n");
	printf("  comments, system (no rules)        %6.2f\n", 1e6 / sys_c.cpu);
	printf("  comments, anonymous, read \"true\"  %6.2f\n",
	       1e6 / anon_c.cpu);
	printf("  posts, system (no rules)           %6.2f\n", 1e6 / sys_p.cpu);
	printf("  posts, anonymous, 3-way rule       %6.2f\n", 1e6 / anon_p.cpu);
	printf("  posts, signed-in user, 3-way rule  %6.2f\n", 1e6 / user_p.cpu);
	free(pid);
	free(cid);
	lists_under_rules(a, user, uid, n / 10);
}

int main(int argc, char **argv)
{
	int n_login = argc > 1 ? atoi(argv[1]) : 40, n_fast = 3000, i;
	char tmpl[] = "/tmp/alyx-bench-auth-XXXXXX", *dir = mkdtemp(tmpl);
	char *out = NULL, *uid, *acc, *tok, body[256], hash[ALYX_AUTH_HASH_MAX];
	alyx__err err = {0};
	alyx_ctx *ctx = NULL;
	stamp t0, r_login, r_bare, r_ctx, r_get;
	alyx *a;

	if (!dir || n_login < 1)
		return 2;
	a = open_project(dir);
	if (alyx_auth_register(a, "{\"email\":\"b@x.io\",\"password\":\"" PW
			       "\",\"name\":\"B\"}", (size_t)-1, &out))
		die(a, "register");
	uid = member(out, "user", "id");
	acc = member(out, "access_token", NULL);
	tok = member(out, "refresh_token", NULL);
	alyx_free(out);
	printf("argon2id m=%d KiB t=%d p=%d; %d logins, %d fast ops\n",
	       ALYX_AUTH_ARGON2_M_KIB, ALYX_AUTH_ARGON2_T, ALYX_AUTH_ARGON2_P,
	       n_login, n_fast);

	if (alyx__pw_hash(PW, strlen(PW), hash, &err))
		return 1;
	t0 = now();
	for (i = 0; i < n_login; i++)
		if (argon2id_verify(hash, PW, strlen(PW)) != ARGON2_OK)
			return 1;
	r_bare = rate(n_login, t0);
	t0 = now();
	for (i = 0; i < n_login; i++) {
		if (alyx_auth_login(a, "{\"email\":\"b@x.io\",\"password\":\""
				    PW "\"}", (size_t)-1, &out))
			die(a, "login");
		alyx_free(out);
	}
	r_login = rate(n_login, t0);
	show("bare argon2id_verify", r_bare);
	show("alyx_auth_login", r_login);
	printf("  login / bare verify: %.2f (CPU %.2f); %.1f ms CPU per "
	       "login\n", r_login.wall / r_bare.wall, r_login.cpu / r_bare.cpu,
	       1000.0 / r_login.cpu);

	t0 = now();
	for (i = 0; i < n_fast / 10; i++) {
		snprintf(body, sizeof(body), "{\"refresh_token\":\"%s\"}", tok);
		if (alyx_auth_refresh(a, body, (size_t)-1, &out))
			die(a, "refresh");
		free(tok);
		tok = member(out, "refresh_token", NULL);
		alyx_free(out);
	}
	show("alyx_auth_refresh", rate(n_fast / 10, t0));

	t0 = now();
	for (i = 0; i < n_fast; i++) {
		if (alyx_doc_get(a, NULL, "users", uid, NULL, &out))
			die(a, "get");
		alyx_free(out);
	}
	r_get = rate(n_fast, t0);
	t0 = now();
	for (i = 0; i < n_fast; i++) {
		if (alyx_ctx_from_token(a, acc, &ctx))
			die(a, "ctx");
		alyx_ctx_free(ctx);
	}
	r_ctx = rate(n_fast, t0);
	show("alyx_doc_get (users, by id)", r_get);
	show("alyx_ctx_from_token", r_ctx);
	printf("  get+token check / get alone: %.2f (CPU %.2f)\n",
	       1.0 / (1.0 + r_get.wall / r_ctx.wall),
	       1.0 / (1.0 + r_get.cpu / r_ctx.cpu));
	if (alyx_ctx_from_token(a, acc, &ctx))
		die(a, "ctx");
	gets_under_rules(a, ctx, uid, n_fast * 3);
	alyx_ctx_free(ctx);
	free(uid);
	free(acc);
	free(tok);
	alyx_close(a);
	snprintf(body, sizeof(body), "rm -rf '%s'", dir);
	return system(body) == 0 ? 0 : 1;
}
