/* test-auth.c - passwords, tokens, rate limits, accounts and sessions
 * (lib/auth). */
#include <pthread.h>
#include <time.h>

#include <jwt.h>
#include <openssl/evp.h>

#include "../../api/api-util.h"
#include "auth/auth.h"
#include "core/handle.h"

#define SECRET "0123456789abcdef0123456789abcdef-test"
#define GOOD_PW "Correct-Horse-9"

/* ---- helpers ---- */

static const char cfg_yaml[] =
	"database:\n  path: data/alyx.db\n"
	"auth:\n  jwt:\n    secret: \"" SECRET "\"\n    issuer: alyx-test\n"
	"    access_ttl: 15m\n    refresh_ttl: %s\n"
	"  password:\n    min_length: 8\n    require_uppercase: true\n"
	"    require_number: true\n"
	"  rate_limit:\n    login: %s\n    register: %s\n"
	"    password_reset: 1000/hour\n";

/* A project with the given refresh_ttl and rates; the blog schema is
 * applied when `blog`.  Hashing runs at a low cost (tests only). */
static alyx *open_proj(char **dir_out, bool blog, const char *refresh_ttl,
		       const char *login_rate, const char *register_rate)
{
	char *dir = make_project(0), path[600], cfg[2048], *yaml, *plan = NULL;
	alyx *a = NULL;

	alyx__auth_set_cost(1, 64);
	snprintf(cfg, sizeof(cfg), cfg_yaml, refresh_ttl, login_rate,
		 register_rate);
	snprintf(path, sizeof(path), "%s/alyx.yaml", dir);
	spit(path, cfg);
	if (alyx_open(dir, ALYX_OPEN_CREATE, &a))
		TH_FAIL("open: %s", alyx_errmsg(NULL));
	if (blog) {
		yaml = slurp(FIXTURES_DIR "/blog/schema.yaml");
		ASSERT(yaml != NULL);
		if (alyx_apply_schema(a, yaml, (size_t)-1, "schema.yaml", 0,
				      &plan))
			TH_FAIL("apply: %s", alyx_errmsg(a));
		free(yaml);
		alyx_free(plan);
	}
	*dir_out = dir;
	return a;
}

static alyx *open_default(char **dir, bool blog)
{
	return open_proj(dir, blog, "7d", "1000/minute", "1000/minute");
}

/* A string member of a JSON object (strdup'd), "" when missing. */
static char *jstr(const char *json, const char *k1, const char *k2)
{
	cJSON *j = cJSON_Parse(json), *v;
	char *s;

	ASSERT(j != NULL);
	v = cJSON_GetObjectItem(j, k1);
	if (k2)
		v = cJSON_GetObjectItem(v, k2);
	s = strdup(cJSON_IsString(v) ? v->valuestring : "");
	cJSON_Delete(j);
	return s;
}

static char *reg(alyx *a, const char *email, const char *extra)
{
	char body[512], *out = NULL;

	snprintf(body, sizeof(body),
		 "{\"email\":\"%s\",\"password\":\"" GOOD_PW "\"%s}", email,
		 extra ? extra : "");
	if (alyx_auth_register(a, body, (size_t)-1, &out))
		TH_FAIL("register %s: %s %s", email, alyx_errmsg(a),
			alyx_errdetails(a));
	return out;
}

static char *refresh_body(const char *tok)
{
	char *b = malloc(strlen(tok) + 32);

	ASSERT(b != NULL);
	sprintf(b, "{\"refresh_token\":\"%s\"}", tok);
	return b;
}

static void b64url(const char *s, char *out)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrs"
				"tuvwxyz0123456789-_";
	size_t n = strlen(s), i, o = 0;

	for (i = 0; i < n; i += 3) {
		unsigned v = (unsigned char)s[i] << 16;

		if (i + 1 < n)
			v |= (unsigned char)s[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)s[i + 2];
		out[o++] = t[(v >> 18) & 63];
		out[o++] = t[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = t[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = t[v & 63];
	}
	out[o] = '\0';
}

static alyx__config *load_cfg(void)
{
	char tmpl[] = "/tmp/alyx-auth-cfg-XXXXXX", path[300], cfg[2048];
	alyx__config *c = NULL;
	alyx__err err = {0};
	char *dir = mkdtemp(tmpl);

	ASSERT(dir != NULL);
	snprintf(cfg, sizeof(cfg), cfg_yaml, "7d", "5/minute", "3/minute");
	snprintf(path, sizeof(path), "%s/alyx.yaml", dir);
	spit(path, cfg);
	ASSERT_OK(alyx__config_load(path, &c, &err));
	unlink(path);
	rmdir(dir);
	return c;
}

static double clock_ms(clockid_t id)
{
	struct timespec t;

	clock_gettime(id, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static double now_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

/* ---- email webhooks ---- */

/* The example of the Standard Webhooks documents: secret
 * whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, the id and timestamp below and
 * the body {"test": 2432232314}. */
TEST(webhook_signature_standard_example)
{
	unsigned char *key;
	size_t klen;
	alyx_buf b;

	ASSERT(alyx__base64_dec("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 32, &key,
				&klen));
	alyx__buf_init(&b, 0);
	ASSERT_EQ(alyx__webhook_sign(key, klen, "msg_p5jXN8AQM9LWM0D4loKWxJek",
				     1614265330, "{\"test\": 2432232314}", &b),
		  ALYX_OK);
	ASSERT_STR_EQ(b.data, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	/* Another body, id or time signs differently. */
	alyx__buf_free(&b);
	alyx__buf_init(&b, 0);
	ASSERT_EQ(alyx__webhook_sign(key, klen, "msg_p5jXN8AQM9LWM0D4loKWxJek",
				     1614265331, "{\"test\": 2432232314}", &b),
		  ALYX_OK);
	ASSERT(strcmp(b.data, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	       != 0);
	alyx__buf_free(&b);
	alyx__free(key);
}

/* ---- passwords ---- */

TEST(argon2id_hash_and_verify)
{
	char h1[ALYX_AUTH_HASH_MAX], h2[ALYX_AUTH_HASH_MAX];
	alyx__err err = {0};
	double t0, c0;

	alyx__auth_set_cost(0, 0);	/* the real cost */
	t0 = now_ms();
	c0 = clock_ms(CLOCK_PROCESS_CPUTIME_ID);
	ASSERT_OK(alyx__pw_hash("s3cret-Pass", 11, h1, &err));
	fprintf(stderr, "argon2id m=%d KiB t=%d p=%d: %.1f ms per hash "
		"(%.1f ms CPU)\n", ALYX_AUTH_ARGON2_M_KIB, ALYX_AUTH_ARGON2_T,
		ALYX_AUTH_ARGON2_P, now_ms() - t0,
		clock_ms(CLOCK_PROCESS_CPUTIME_ID) - c0);
	ASSERT_CONTAINS(h1, "$argon2id$v=19$m=19456,t=3,p=1$");
	ASSERT_OK(alyx__pw_hash("s3cret-Pass", 11, h2, &err));
	ASSERT(strcmp(h1, h2) != 0);	/* fresh salt each time */
	ASSERT(alyx__pw_verify(h1, "s3cret-Pass", 11));
	ASSERT(alyx__pw_verify(h2, "s3cret-Pass", 11));
	ASSERT(!alyx__pw_verify(h1, "s3cret-Pasz", 11));
	ASSERT(!alyx__pw_verify(h1, "s3cret-Pass", 10));
	ASSERT(!alyx__pw_verify("$argon2i$v=19$m=8,t=1,p=1$AAAA$AAAA",
				"x", 1));
	ASSERT(!alyx__pw_verify("garbage", "x", 1));
	ASSERT(!alyx__pw_verify(NULL, "x", 1));
	ASSERT_EQ(alyx__pw_hash("x", ALYX_AUTH_PASSWORD_MAX + 1, h1, &err),
		  ALYX_E_TOOBIG);
	alyx__err_clear(&err);
}

static char *policy(alyx__config *c, const char *pw)
{
	alyx__fielderrs fe;
	char *d;

	alyx__fielderrs_init(&fe);
	alyx__pw_policy(c, pw, strlen(pw), &fe);
	d = alyx__fielderrs_take(&fe);
	alyx__fielderrs_free(&fe);
	return d;
}

TEST(password_policy)
{
	alyx__config *c = load_cfg();
	char *d;

	ASSERT(policy(c, GOOD_PW) == NULL);
	d = policy(c, "short1A");
	ASSERT_CONTAINS(d, "\"min_length\"");
	alyx__free(d);
	d = policy(c, "lowercase-only");
	ASSERT_CONTAINS(d, "\"uppercase\"");
	ASSERT_CONTAINS(d, "\"number\"");
	alyx__free(d);
	/* Characters, not bytes: 8 two-byte letters pass min_length. */
	d = policy(c, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		      "A1");
	ASSERT(d == NULL);
	c->auth.password.require_special = true;
	d = policy(c, "Abcdefg12");
	ASSERT_CONTAINS(d, "\"special\"");
	alyx__free(d);
	alyx__config_free(c);
}

/* ---- access tokens ---- */

TEST(jwt_round_trip_and_claims)
{
	alyx__config *c = load_cfg();
	alyx__err err = {0};
	char *tok = NULL, *sub = NULL, *dot, payload[512];
	unsigned char *raw = NULL;
	size_t n, plen;

	ASSERT_OK(alyx__jwt_issue(c, "user-1", "admin", 1000000, &tok, &err));
	ASSERT_OK(alyx__jwt_verify(c, tok, 1000001, &sub, &err));
	ASSERT_STR_EQ(sub, "user-1");
	alyx__free(sub);
	/* The payload carries iss, sub, role, iat, exp = iat + 15m. */
	dot = strchr(tok, '.');
	plen = strcspn(dot + 1, ".");
	ASSERT(plen < sizeof(payload) - 4);
	memcpy(payload, dot + 1, plen);
	for (n = 0; n < plen; n++)
		payload[n] = payload[n] == '-' ? '+'
			     : payload[n] == '_' ? '/' : payload[n];
	while (plen % 4)
		payload[plen++] = '=';
	payload[plen] = '\0';
	ASSERT(alyx__base64_dec(payload, plen, &raw, &n));
	raw[n] = '\0';
	ASSERT_CONTAINS((char *)raw, "\"iss\":\"alyx-test\"");
	ASSERT_CONTAINS((char *)raw, "\"role\":\"admin\"");
	ASSERT_CONTAINS((char *)raw, "\"exp\":1000900");
	ASSERT_CONTAINS((char *)raw, "\"iat\":1000000");
	alyx__free(raw);
	alyx__free(tok);
	alyx__config_free(c);
}

TEST(jwt_rejects_forged_expired_wrong_issuer_and_none)
{
	alyx__config *c = load_cfg();
	alyx__err err = {0};
	char *good = NULL, *other = NULL, *sub = NULL, *secret;
	char hdr[128], pl[256], tok[1024], *bad;
	int64_t now = 2000000;

	ASSERT_OK(alyx__jwt_issue(c, "u", "user", now, &good, &err));
	/* Signed with another key. */
	secret = c->auth.jwt.secret;
	c->auth.jwt.secret = (char *)"another-secret-another-secret-xx!";
	ASSERT_OK(alyx__jwt_issue(c, "u", "admin", now, &other, &err));
	c->auth.jwt.secret = secret;
	ASSERT_EQ(alyx__jwt_verify(c, other, now, &sub, &err),
		  ALYX_E_UNAUTHORIZED);
	ASSERT(sub == NULL);
	/* A payload swapped under a valid signature. */
	bad = strdup(good);
	memcpy(strchr(bad, '.') + 1, strchr(other, '.') + 1,
	       strcspn(strchr(other, '.') + 1, "."));
	ASSERT_EQ(alyx__jwt_verify(c, bad, now, &sub, &err),
		  ALYX_E_UNAUTHORIZED);
	free(bad);
	/* A flipped signature character. */
	bad = strdup(good);
	bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';
	ASSERT_EQ(alyx__jwt_verify(c, bad, now, &sub, &err),
		  ALYX_E_UNAUTHORIZED);
	free(bad);
	/* Expired: exp = now + 900. */
	ASSERT_EQ(alyx__jwt_verify(c, good, now + 900, &sub, &err),
		  ALYX_E_UNAUTHORIZED);
	ASSERT_CONTAINS(err.msg, "expired");
	ASSERT_OK(alyx__jwt_verify(c, good, now + 899, &sub, &err));
	alyx__free(sub);
	sub = NULL;
	/* Wrong issuer. */
	c->auth.jwt.issuer[0] = 'X';
	ASSERT_EQ(alyx__jwt_verify(c, good, now, &sub, &err),
		  ALYX_E_UNAUTHORIZED);
	ASSERT_CONTAINS(err.msg, "issuer");
	c->auth.jwt.issuer[0] = 'a';
	/* alg: none, with and without a signature part. */
	b64url("{\"alg\":\"none\",\"typ\":\"JWT\"}", hdr);
	b64url("{\"iss\":\"alyx-test\",\"sub\":\"u\",\"role\":\"admin\","
	       "\"exp\":9999999999}", pl);
	snprintf(tok, sizeof(tok), "%s.%s.", hdr, pl);
	ASSERT_EQ(alyx__jwt_verify(c, tok, now, &sub, &err),
		  ALYX_E_UNAUTHORIZED);
	snprintf(tok, sizeof(tok), "%s.%s", hdr, pl);
	ASSERT_EQ(alyx__jwt_verify(c, tok, now, &sub, &err),
		  ALYX_E_UNAUTHORIZED);
	/* alg: none with the valid token's signature attached. */
	snprintf(tok, sizeof(tok), "%s.%s.%s", hdr, pl,
		 strrchr(good, '.') + 1);
	ASSERT_EQ(alyx__jwt_verify(c, tok, now, &sub, &err),
		  ALYX_E_UNAUTHORIZED);
	/* Garbage, empty, NULL, oversized. */
	ASSERT_EQ(alyx__jwt_verify(c, "a.b.c", now, &sub, &err),
		  ALYX_E_UNAUTHORIZED);
	ASSERT_EQ(alyx__jwt_verify(c, "", now, &sub, &err),
		  ALYX_E_UNAUTHORIZED);
	ASSERT_EQ(alyx__jwt_verify(c, NULL, now, &sub, &err),
		  ALYX_E_UNAUTHORIZED);
	bad = calloc(1, ALYX_AUTH_JWT_MAX + 2);
	memset(bad, 'a', ALYX_AUTH_JWT_MAX + 1);
	ASSERT_EQ(alyx__jwt_verify(c, bad, now, &sub, &err),
		  ALYX_E_UNAUTHORIZED);
	free(bad);
	ASSERT(sub == NULL);
	alyx__err_clear(&err);
	alyx__free(good);
	alyx__free(other);
	alyx__config_free(c);
}

TEST(jwt_rejects_other_hmac_algorithms)
{
	alyx__config *c = load_cfg();
	alyx__err err = {0};
	char *sub = NULL, *tok;
	jwt_t *j = NULL;

	/* HS512 with the right key is still refused: HS256 only. */
	ASSERT_OK(jwt_new(&j));
	ASSERT_OK(jwt_set_alg(j, JWT_ALG_HS512,
			      (const unsigned char *)SECRET, strlen(SECRET)));
	ASSERT_OK(jwt_add_grant(j, "iss", "alyx-test"));
	ASSERT_OK(jwt_add_grant(j, "sub", "u"));
	ASSERT_OK(jwt_add_grant_int(j, "exp", 9999999999L));
	tok = jwt_encode_str(j);
	ASSERT(tok != NULL);
	ASSERT_EQ(alyx__jwt_verify(c, tok, 1000, &sub, &err),
		  ALYX_E_UNAUTHORIZED);
	ASSERT_CONTAINS(err.msg, "HS256");
	free(tok);
	jwt_free(j);
	alyx__err_clear(&err);
	alyx__config_free(c);
}

TEST(jwt_secret_must_be_32_bytes)
{
	alyx__config *c = load_cfg();
	alyx__err err = {0};
	char *tok = NULL, *secret = c->auth.jwt.secret;

	c->auth.jwt.secret = (char *)"short";
	ASSERT_EQ(alyx__jwt_issue(c, "u", "user", 1, &tok, &err),
		  ALYX_E_CONFIG);
	ASSERT(tok == NULL);
	c->auth.jwt.secret = (char *)"";
	ASSERT_EQ(alyx__jwt_check_secret(c, &err), ALYX_E_CONFIG);
	c->auth.jwt.secret = secret;
	alyx__err_clear(&err);
	alyx__config_free(c);
}

TEST(refresh_tokens_are_random_base64url)
{
	char t1[44], h1[65], t2[44], h2[65], h[65];
	alyx__err err = {0};
	size_t i;

	ASSERT_OK(alyx__refresh_new(t1, h1, &err));
	ASSERT_OK(alyx__refresh_new(t2, h2, &err));
	ASSERT_EQ(strlen(t1), 43);
	for (i = 0; i < 43; i++)
		ASSERT(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrs"
			      "tuvwxyz0123456789-_", t1[i]) != NULL);
	ASSERT(strcmp(t1, t2) != 0);
	alyx__sha256_hex(t1, 43, h);
	ASSERT_STR_EQ(h, h1);
}

/* ---- rate limits ---- */

TEST(rate_limit_window)
{
	alyx__ratelimit rl;
	alyx__rate r = {5, 60000};
	int64_t t = 1000000;
	int i;

	ASSERT_OK(alyx__rl_init(&rl));
	for (i = 0; i < 5; i++)
		ASSERT_EQ(alyx__rl_hit(&rl, &r, "login|ip|1.2.3.4", t + i), 0);
	ASSERT_EQ(alyx__rl_hit(&rl, &r, "login|ip|1.2.3.4", t + 10), 60);
	ASSERT_EQ(alyx__rl_hit(&rl, &r, "login|ip|1.2.3.4", t + 59001), 1);
	/* Other keys are independent. */
	ASSERT_EQ(alyx__rl_hit(&rl, &r, "login|ip|1.2.3.5", t + 10), 0);
	/* The window reopens. */
	ASSERT_EQ(alyx__rl_hit(&rl, &r, "login|ip|1.2.3.4", t + 60000), 0);
	/* A zero rate allows everything. */
	r.count = 0;
	ASSERT_EQ(alyx__rl_hit(&rl, &r, "login|ip|1.2.3.4", t + 60001), 0);
	alyx__rl_free(&rl);
}

TEST(rate_limit_bounded_memory)
{
	alyx__ratelimit rl;
	alyx__rate r = {1, 60000};
	char key[64];
	int i;

	ASSERT_OK(alyx__rl_init(&rl));
	for (i = 0; i < ALYX_RL_MAX_KEYS + 100; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		ASSERT_EQ(alyx__rl_hit(&rl, &r, key, 1000), 0);
		ASSERT(rl.n_keys <= ALYX_RL_MAX_KEYS);
	}
	alyx__rl_free(&rl);
}

static alyx__ratelimit shared_rl;
static atomic_int allowed;

static void *hammer(void *arg)
{
	alyx__rate r = {50, 60000};
	int i;

	(void)arg;
	for (i = 0; i < 200; i++)
		if (alyx__rl_hit(&shared_rl, &r, "register|email|x@y.io",
				 5000) == 0)
			atomic_fetch_add(&allowed, 1);
	return NULL;
}

TEST(rate_limit_is_thread_safe)
{
	pthread_t th[4];
	int i;

	ASSERT_OK(alyx__rl_init(&shared_rl));
	for (i = 0; i < 4; i++)
		ASSERT_OK(pthread_create(&th[i], NULL, hammer, NULL));
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	ASSERT_EQ(atomic_load(&allowed), 50);
	alyx__rl_free(&shared_rl);
}

/* ---- accounts ---- */

TEST(register_creates_account_and_users_document)
{
	char *dir, *out, *id, *doc = NULL, *s;
	alyx *a = open_default(&dir, true);
	alyx_ctx *ctx = NULL;

	out = reg(a, "Ann@Example.com", ",\"name\":\"Ann\"");
	s = jstr(out, "token_type", NULL);
	ASSERT_STR_EQ(s, "Bearer");
	free(s);
	ASSERT_CONTAINS(out, "\"expires_in\":900");
	id = jstr(out, "user", "id");
	ASSERT(alyx__uuid_valid(id, strlen(id)));
	s = jstr(out, "user", "email");
	ASSERT_STR_EQ(s, "ann@example.com");	/* normalised */
	free(s);
	s = jstr(out, "user", "name");
	ASSERT_STR_EQ(s, "Ann");
	free(s);
	s = jstr(out, "user", "role");
	ASSERT_STR_EQ(s, "user");
	free(s);
	ASSERT_CONTAINS(out, "\"verified\":false");
	ASSERT(strstr(out, "password") == NULL);
	ASSERT(strstr(out, "argon2") == NULL);
	/* The users document has the account's id. */
	ASSERT_OK(alyx_doc_get(a, NULL, "users", id, NULL, &doc));
	ASSERT_CONTAINS(doc, "\"name\":\"Ann\"");
	ASSERT_CONTAINS(doc, "\"role\":\"user\"");
	alyx_free(doc);
	/* The access token gives a context with the account's data. */
	s = jstr(out, "access_token", NULL);
	ASSERT_OK(alyx_ctx_from_token(a, s, &ctx));
	ASSERT_STR_EQ(ctx->user_id, id);
	ASSERT_STR_EQ(ctx->email, "ann@example.com");
	ASSERT_STR_EQ(ctx->role, "user");
	ASSERT(!ctx->verified);
	alyx_ctx_free(ctx);
	ctx = NULL;
	/* ... also with a "Bearer " prefix. */
	{
		char bearer[4200];

		snprintf(bearer, sizeof(bearer), "Bearer %s", s);
		ASSERT_OK(alyx_ctx_from_token(a, bearer, &ctx));
	}
	ASSERT_OK(alyx_auth_me(a, ctx, &doc));
	ASSERT_CONTAINS(doc, id);
	ASSERT_CONTAINS(doc, "\"name\":\"Ann\"");
	alyx_free(doc);
	alyx_ctx_free(ctx);
	ASSERT_EQ(alyx_auth_me(a, NULL, &doc), ALYX_E_UNAUTHORIZED);
	ASSERT(doc == NULL);
	free(s);
	free(id);
	alyx_free(out);
	alyx_close(a);
	remove_project(dir);
}

TEST(register_refuses_bad_input_and_changes_nothing)
{
	char *dir, *out = NULL, *q = NULL;
	alyx *a = open_default(&dir, true);

	ASSERT_EQ(alyx_auth_register(a, "{\"email\":\"r@x.io\",\"password\":\""
				     GOOD_PW "\",\"role\":\"admin\"}",
				     (size_t)-1, &out),
		  ALYX_E_VALIDATION);
	ASSERT_CONTAINS(alyx_errdetails(a), "\"read_only\"");
	ASSERT_CONTAINS(alyx_errdetails(a), "\"role\"");
	ASSERT_EQ(alyx_auth_register(a, "{\"email\":\"r@x.io\",\"password\":\""
				     GOOD_PW "\",\"verified\":true}",
				     (size_t)-1, &out),
		  ALYX_E_VALIDATION);
	ASSERT_EQ(alyx_auth_register(a, "{\"email\":\"r@x.io\",\"password\":\""
				     GOOD_PW "\",\"id\":\"8c9c1c1e-3a5e-4b4e-9b"
				     "7a-1d2c3b4a5f60\"}",
				     (size_t)-1, &out),
		  ALYX_E_VALIDATION);
	ASSERT_EQ(alyx_auth_register(a, "{\"email\":\"r@x.io\",\"password\":"
				     "\"weak\"}", (size_t)-1, &out),
		  ALYX_E_VALIDATION);
	ASSERT_CONTAINS(alyx_errdetails(a), "\"min_length\"");
	ASSERT_EQ(alyx_auth_register(a, "{\"email\":\"not-an-email\","
				     "\"password\":\"" GOOD_PW "\"}",
				     (size_t)-1, &out),
		  ALYX_E_VALIDATION);
	ASSERT_CONTAINS(alyx_errdetails(a), "\"email\"");
	ASSERT_EQ(alyx_auth_register(a, "{\"password\":\"" GOOD_PW "\"}",
				     (size_t)-1, &out),
		  ALYX_E_VALIDATION);
	/* A users-collection field that fails its own validation. */
	ASSERT_EQ(alyx_auth_register(a, "{\"email\":\"r@x.io\",\"password\":\""
				     GOOD_PW "\",\"name\":42}",
				     (size_t)-1, &out),
		  ALYX_E_VALIDATION);
	ASSERT_CONTAINS(alyx_errdetails(a), "\"name\"");
	ASSERT_EQ(alyx_auth_register(a, "[1]", (size_t)-1, &out),
		  ALYX_E_BADJSON);
	ASSERT_EQ(alyx_auth_register(a, "{", (size_t)-1, &out),
		  ALYX_E_BADJSON);
	ASSERT(out == NULL);
	ASSERT_OK(alyx_query_str(a, NULL, "users", "total=true", &q));
	ASSERT_CONTAINS(q, "\"total\":0");
	alyx_free(q);
	/* Duplicate email: CONFLICT, whatever the case. */
	alyx_free(reg(a, "dup@x.io", NULL));
	ASSERT_EQ(alyx_auth_register(a, "{\"email\":\"DUP@x.io\",\"password\":"
				     "\"" GOOD_PW "\"}", (size_t)-1, &out),
		  ALYX_E_CONFLICT);
	ASSERT_OK(alyx_query_str(a, NULL, "users", "total=true", &q));
	ASSERT_CONTAINS(q, "\"total\":1");
	alyx_free(q);
	alyx_close(a);
	remove_project(dir);
}

TEST(register_without_users_collection)
{
	char *dir, *out = NULL;
	alyx *a = open_default(&dir, false);

	ASSERT_EQ(alyx_auth_register(a, "{\"email\":\"n@x.io\",\"password\":\""
				     GOOD_PW "\",\"name\":\"N\"}",
				     (size_t)-1, &out),
		  ALYX_E_VALIDATION);
	ASSERT_CONTAINS(alyx_errdetails(a), "\"unknown_field\"");
	out = reg(a, "n@x.io", NULL);
	ASSERT_CONTAINS(out, "\"email\":\"n@x.io\"");
	ASSERT_CONTAINS(out, "\"role\":\"user\"");
	ASSERT_CONTAINS(out, "\"created_at\":\"");
	alyx_free(out);
	alyx_close(a);
	remove_project(dir);
}

TEST(no_secret_no_tokens)
{
	char *dir = make_project(0), *out = NULL;
	alyx *a = NULL;

	ASSERT_OK(alyx_open(dir, ALYX_OPEN_CREATE, &a));
	ASSERT_EQ(alyx_auth_register(a, "{\"email\":\"s@x.io\",\"password\":\""
				     GOOD_PW "\"}", (size_t)-1, &out),
		  ALYX_E_CONFIG);
	ASSERT_CONTAINS(alyx_errmsg(a), "auth.jwt.secret");
	ASSERT_EQ(alyx_auth_login(a, "{\"email\":\"s@x.io\",\"password\":\""
				  GOOD_PW "\"}", (size_t)-1, &out),
		  ALYX_E_CONFIG);
	alyx_close(a);
	remove_project(dir);
}

static int login(alyx *a, const char *email, const char *pw, char **out)
{
	char body[512];

	snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"%s\"}",
		 email, pw);
	return alyx_auth_login(a, body, (size_t)-1, out);
}

#define N_TIMED 9

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return (a > b) - (a < b);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2];
}

TEST(login_and_no_user_enumeration)
{
	char *dir, *out = NULL, msg_wrong[512], msg_unknown[512], *id, *uid;
	alyx *a = open_proj(&dir, true, "7d", "1000/minute", "1000/minute");
	double t_wrong[N_TIMED], t_unknown[N_TIMED], t0, mw, mu;
	int i;

	alyx__auth_set_cost(2, 4096);	/* measurable */
	out = reg(a, "lee@x.io", NULL);
	id = jstr(out, "user", "id");
	alyx_free(out);
	ASSERT_OK(login(a, "LEE@x.io", GOOD_PW, &out));
	uid = jstr(out, "user", "id");
	ASSERT_STR_EQ(uid, id);
	free(uid);
	ASSERT_CONTAINS(out, "\"refresh_token\":\"");
	alyx_free(out);
	/* Warm the dummy hash, then compare. */
	ASSERT_EQ(login(a, "nobody@x.io", "x", &out), ALYX_E_UNAUTHORIZED);
	for (i = 0; i < N_TIMED; i++) {
		t0 = now_ms();
		ASSERT_EQ(login(a, "lee@x.io", "Wrong-Pass-1", &out),
			  ALYX_E_UNAUTHORIZED);
		t_wrong[i] = now_ms() - t0;
		snprintf(msg_wrong, sizeof(msg_wrong), "%s|%s", alyx_errmsg(a),
			 alyx_errdetails(a));
		t0 = now_ms();
		ASSERT_EQ(login(a, "nobody@x.io", "Wrong-Pass-1", &out),
			  ALYX_E_UNAUTHORIZED);
		t_unknown[i] = now_ms() - t0;
		snprintf(msg_unknown, sizeof(msg_unknown), "%s|%s",
			 alyx_errmsg(a), alyx_errdetails(a));
		ASSERT_STR_EQ(msg_wrong, msg_unknown);
	}
	ASSERT(out == NULL);
	mw = median(t_wrong, N_TIMED);
	mu = median(t_unknown, N_TIMED);
	fprintf(stderr, "median: wrong password %.1f ms, unknown email "
		"%.1f ms\n", mw, mu);
	/* Same argon2id work: medians within a factor of 3 either way (an
	 * unknown email without the dummy verify would be ~100x faster). */
	ASSERT(mu > mw / 3 && mu < mw * 3);
	/* Missing fields are a validation error, not a hint. */
	ASSERT_EQ(alyx_auth_login(a, "{\"email\":\"lee@x.io\"}", (size_t)-1,
				  &out), ALYX_E_VALIDATION);
	ASSERT_EQ(login(a, "not-an-email", GOOD_PW, &out),
		  ALYX_E_UNAUTHORIZED);
	free(id);
	alyx_close(a);
	remove_project(dir);
}

TEST(refresh_rotates_and_reuse_revokes_the_family)
{
	char *dir, *out, *r1, *r2, *r3, *b1, *b2, *b3, *acc, *other, *bo;
	alyx *a = open_default(&dir, true);
	alyx_ctx *ctx = NULL;

	out = reg(a, "rot@x.io", NULL);
	r1 = jstr(out, "refresh_token", NULL);
	alyx_free(out);
	/* A second, independent session of the same user. */
	ASSERT_OK(login(a, "rot@x.io", GOOD_PW, &out));
	other = jstr(out, "refresh_token", NULL);
	alyx_free(out);
	b1 = refresh_body(r1);
	ASSERT_OK(alyx_auth_refresh(a, b1, (size_t)-1, &out));
	r2 = jstr(out, "refresh_token", NULL);
	acc = jstr(out, "access_token", NULL);
	ASSERT(strcmp(r1, r2) != 0);
	ASSERT_OK(alyx_ctx_from_token(a, acc, &ctx));
	alyx_ctx_free(ctx);
	alyx_free(out);
	b2 = refresh_body(r2);
	ASSERT_OK(alyx_auth_refresh(a, b2, (size_t)-1, &out));
	r3 = jstr(out, "refresh_token", NULL);
	alyx_free(out);
	/* r1 again: reuse.  The family (r3 too) is revoked. */
	ASSERT_EQ(alyx_auth_refresh(a, b1, (size_t)-1, &out),
		  ALYX_E_UNAUTHORIZED);
	ASSERT_CONTAINS(alyx_errdetails(a), "reused");
	ASSERT(out == NULL);
	b3 = refresh_body(r3);
	ASSERT_EQ(alyx_auth_refresh(a, b3, (size_t)-1, &out),
		  ALYX_E_UNAUTHORIZED);
	ASSERT_EQ(alyx_auth_refresh(a, b2, (size_t)-1, &out),
		  ALYX_E_UNAUTHORIZED);
	/* The other session is untouched. */
	bo = refresh_body(other);
	ASSERT_OK(alyx_auth_refresh(a, bo, (size_t)-1, &out));
	alyx_free(out);
	/* Unknown and malformed tokens. */
	ASSERT_EQ(alyx_auth_refresh(a, "{\"refresh_token\":\"nope\"}",
				    (size_t)-1, &out), ALYX_E_UNAUTHORIZED);
	ASSERT_EQ(alyx_auth_refresh(a, "{}", (size_t)-1, &out),
		  ALYX_E_VALIDATION);
	ASSERT_EQ(alyx_auth_refresh(a, "{\"refresh_token\":5}", (size_t)-1,
				    &out), ALYX_E_VALIDATION);
	free(r1); free(r2); free(r3); free(b1); free(b2); free(b3);
	free(acc); free(other); free(bo);
	alyx_close(a);
	remove_project(dir);
}

TEST(logout_revokes_the_session)
{
	char *dir, *out, *r, *b;
	alyx *a = open_default(&dir, true);

	out = reg(a, "out@x.io", NULL);
	r = jstr(out, "refresh_token", NULL);
	alyx_free(out);
	b = refresh_body(r);
	ASSERT_OK(alyx_auth_logout(a, b, (size_t)-1));
	ASSERT_EQ(alyx_auth_refresh(a, b, (size_t)-1, &out),
		  ALYX_E_UNAUTHORIZED);
	ASSERT_EQ(alyx_auth_logout(a, b, (size_t)-1), ALYX_E_UNAUTHORIZED);
	free(r);
	free(b);
	alyx_close(a);
	remove_project(dir);
}

TEST(expired_refresh_token)
{
	char *dir, *out, *r, *b;
	alyx *a = open_proj(&dir, false, "1s", "1000/minute", "1000/minute");

	out = reg(a, "exp@x.io", NULL);
	r = jstr(out, "refresh_token", NULL);
	alyx_free(out);
	b = refresh_body(r);
	usleep(1100 * 1000);
	ASSERT_EQ(alyx_auth_refresh(a, b, (size_t)-1, &out),
		  ALYX_E_UNAUTHORIZED);
	ASSERT(out == NULL);
	free(r);
	free(b);
	alyx_close(a);
	remove_project(dir);
}

TEST(rate_limits_on_register_and_login)
{
	char *dir, *out = NULL, body[256], *ret;
	alyx *a = open_proj(&dir, false, "7d", "5/minute", "3/minute");
	int i;
	cJSON *d;

	/* Per email (the C API has no client address): the third attempt
	 * for one email is the last. */
	alyx_free(reg(a, "r0@x.io", NULL));
	for (i = 0; i < 2; i++)
		ASSERT_EQ(alyx_auth_register(a, "{\"email\":\"r0@x.io\","
					     "\"password\":\"" GOOD_PW "\"}",
					     (size_t)-1, &out),
			  ALYX_E_CONFLICT);
	ASSERT_EQ(alyx_auth_register(a, "{\"email\":\"r0@x.io\",\"password\":"
				     "\"" GOOD_PW "\"}", (size_t)-1, &out),
		  ALYX_E_RATELIMIT);
	ASSERT_CONTAINS(alyx_errdetails(a), "\"retry_after\":");
	/* Per client address, through the call the server makes. */
	for (i = 0; i < 3; i++) {
		snprintf(body, sizeof(body), "{\"email\":\"r%d@x.io\","
			 "\"password\":\"" GOOD_PW "\"}", i + 1);
		ASSERT_OK(alyx__auth_register(a, body, (size_t)-1, "10.0.0.1",
					      &out));
		alyx_free(out);
	}
	ASSERT_EQ(alyx__auth_register(a, "{\"email\":\"r9@x.io\","
				      "\"password\":\"" GOOD_PW "\"}",
				      (size_t)-1, "10.0.0.1", &out),
		  ALYX_E_RATELIMIT);
	ASSERT(out == NULL);
	/* The C API has no client address: per email only.  Five logins
	 * for one email, then 429 even with the right password. */
	for (i = 0; i < 5; i++) {
		ASSERT_EQ(login(a, "r0@x.io", i < 4 ? "Wrong-1a" : GOOD_PW,
				&out), i < 4 ? ALYX_E_UNAUTHORIZED : ALYX_OK);
		alyx_free(out);
		out = NULL;
	}
	ASSERT_EQ(login(a, "r0@x.io", GOOD_PW, &out), ALYX_E_RATELIMIT);
	d = cJSON_Parse(alyx_errdetails(a));
	ASSERT(cJSON_GetObjectItem(d, "retry_after")->valueint >= 59);
	ASSERT(cJSON_GetObjectItem(d, "retry_after")->valueint <= 60);
	cJSON_Delete(d);
	/* Case does not get around it. */
	ASSERT_EQ(login(a, "R0@X.io", GOOD_PW, &out), ALYX_E_RATELIMIT);
	/* Another email is fine; per-IP limits apply through the internal
	 * call the server uses. */
	ASSERT_OK(login(a, "r1@x.io", GOOD_PW, &out));
	alyx_free(out);
	for (i = 0; i < 5; i++) {
		snprintf(body, sizeof(body), "{\"email\":\"ip%d@x.io\","
			 "\"password\":\"x\"}", i);
		ASSERT_EQ(alyx__auth_login(a, body, (size_t)-1, "10.0.0.9",
					   &out), ALYX_E_UNAUTHORIZED);
	}
	ASSERT_EQ(alyx__auth_login(a, "{\"email\":\"ip9@x.io\",\"password\":"
				   "\"x\"}", (size_t)-1, "10.0.0.9", &out),
		  ALYX_E_RATELIMIT);
	ret = (char *)alyx_errdetails(a);
	ASSERT_CONTAINS(ret, "retry_after");
	ASSERT_EQ(alyx__auth_login(a, "{\"email\":\"ip9@x.io\",\"password\":"
				   "\"x\"}", (size_t)-1, "10.0.0.10", &out),
		  ALYX_E_UNAUTHORIZED);
	alyx_close(a);
	remove_project(dir);
}

TEST(create_user_admin_and_deleted_account)
{
	char *dir, *out = NULL, *id, *acc, *doc = NULL;
	alyx *a = open_default(&dir, true);
	alyx_ctx *ctx = NULL;

	ASSERT_OK(alyx_auth_create_user(a, "{\"email\":\"root@x.io\","
					"\"password\":\"" GOOD_PW "\"}",
					(size_t)-1, "admin", &out));
	ASSERT_CONTAINS(out, "\"role\":\"admin\"");
	ASSERT_CONTAINS(out, "\"verified\":true");
	ASSERT(strstr(out, "access_token") == NULL);
	id = jstr(out, "id", NULL);
	alyx_free(out);
	ASSERT_OK(alyx_doc_get(a, NULL, "users", id, NULL, &doc));
	ASSERT_CONTAINS(doc, "\"role\":\"admin\"");
	alyx_free(doc);
	ASSERT_EQ(alyx_auth_create_user(a, "{}", 2, NULL, &out),
		  ALYX_E_MISUSE);
	ASSERT_OK(login(a, "root@x.io", GOOD_PW, &out));
	acc = jstr(out, "access_token", NULL);
	alyx_free(out);
	ASSERT_OK(alyx_ctx_from_token(a, acc, &ctx));
	ASSERT_STR_EQ(ctx->role, "admin");
	ASSERT(ctx->verified);
	{
		cJSON *j = alyx__ctx_auth_json(ctx);
		char *s = cJSON_PrintUnformatted(j);

		ASSERT_CONTAINS(s, "\"role\":\"admin\"");
		ASSERT_CONTAINS(s, "\"verified\":true");
		cJSON_free(s);
		cJSON_Delete(j);
	}
	alyx_ctx_free(ctx);
	ctx = NULL;
	/* The account read is a cached statement: a second read of the same
	 * token sees the same account. */
	ASSERT_OK(alyx_ctx_from_token(a, acc, &ctx));
	ASSERT_STR_EQ(ctx->role, "admin");
	alyx_ctx_free(ctx);
	ctx = NULL;
	/* A deleted account's token no longer gives a context (the cached
	 * statement sees the delete), and says why. */
	ASSERT_OK(alyx__exec(a->wdb, "DELETE FROM _alyx_users", &(alyx__err){0}));
	ASSERT_EQ(alyx_ctx_from_token(a, acc, &ctx), ALYX_E_UNAUTHORIZED);
	ASSERT(ctx == NULL);
	ASSERT_CONTAINS(alyx_errmsg(a), "no longer exists");
	ASSERT_EQ(alyx_ctx_from_token(a, acc, &ctx), ALYX_E_UNAUTHORIZED);
	ASSERT_EQ(alyx_ctx_from_token(a, "garbage", &ctx),
		  ALYX_E_UNAUTHORIZED);
	ASSERT_EQ(alyx_ctx_from_token(a, NULL, &ctx), ALYX_E_UNAUTHORIZED);
	free(acc);
	free(id);
	alyx_close(a);
	remove_project(dir);
}

/* Every allocation of register, login, refresh, ctx and me fails in
 * turn: each call fails with NOMEM (never a crash, a leak under ASan or a
 * misreported error) or succeeds, and the handle keeps working.  Without
 * a users collection: the document layer has its own fault tests. */
TEST(allocation_failures)
{
	char *dir, *out = NULL, *r, *b, *acc, body[256];
	alyx *a = open_default(&dir, false);
	alyx_ctx *ctx = NULL;
	int n, rc, ok = 0;

	out = reg(a, "base@x.io", NULL);
	r = jstr(out, "refresh_token", NULL);
	acc = jstr(out, "access_token", NULL);
	alyx_free(out);
	for (n = 1; n < 400; n++) {
		snprintf(body, sizeof(body), "{\"email\":\"f%d@x.io\","
			 "\"password\":\"" GOOD_PW "\"}", n);
		alyx__fail_alloc_after(n);
		rc = alyx_auth_register(a, body, (size_t)-1, &out);
		alyx__fail_alloc_after(0);
		if (rc != ALYX_OK && rc != ALYX_E_NOMEM)
			TH_FAIL("register n=%d: %s %s", n, alyx_errmsg(a), alyx_errdetails(a));
		ASSERT((rc == ALYX_OK) == (out != NULL));
		alyx_free(out);
		out = NULL;
		alyx__fail_alloc_after(n);
		rc = login(a, "base@x.io", GOOD_PW, &out);
		alyx__fail_alloc_after(0);
		ASSERT(rc == ALYX_OK || rc == ALYX_E_NOMEM);
		alyx_free(out);
		out = NULL;
		alyx__fail_alloc_after(n);
		rc = alyx_ctx_from_token(a, acc, &ctx);
		if (rc == ALYX_OK)
			rc = alyx_auth_me(a, ctx, &out);
		alyx__fail_alloc_after(0);
		ASSERT(rc == ALYX_OK || rc == ALYX_E_NOMEM);
		alyx_ctx_free(ctx);
		ctx = NULL;
		alyx_free(out);
		out = NULL;
		b = refresh_body(r);
		alyx__fail_alloc_after(n);
		rc = alyx_auth_refresh(a, b, (size_t)-1, &out);
		alyx__fail_alloc_after(0);
		free(b);
		ASSERT(rc == ALYX_OK || rc == ALYX_E_NOMEM);
		if (rc == ALYX_OK) {
			/* Rotated: carry on with the new token. */
			free(r);
			r = jstr(out, "refresh_token", NULL);
			ok++;
		}
		alyx_free(out);
		out = NULL;
	}
	ASSERT(ok > 0);
	/* Still consistent: the latest token refreshes. */
	b = refresh_body(r);
	ASSERT_OK(alyx_auth_refresh(a, b, (size_t)-1, &out));
	alyx_free(out);
	free(b);
	free(r);
	free(acc);
	alyx_close(a);
	remove_project(dir);
}

/* ---- one-time tokens, verification, reset, OAuth state ---- */

TEST(b64url_vectors)
{
	char out[16];

	ASSERT_EQ(alyx__b64url((const unsigned char *)"", 0, out), 0);
	ASSERT_STR_EQ(out, "");
	alyx__b64url((const unsigned char *)"f", 1, out);
	ASSERT_STR_EQ(out, "Zg");
	alyx__b64url((const unsigned char *)"fo", 2, out);
	ASSERT_STR_EQ(out, "Zm8");
	alyx__b64url((const unsigned char *)"foo", 3, out);
	ASSERT_STR_EQ(out, "Zm9v");
	alyx__b64url((const unsigned char *)"\xfb\xff", 2, out);
	ASSERT_STR_EQ(out, "-_8");
}

/* Runs f inside a write transaction on a's writer. */
static int in_tx(alyx *a, int (*f)(alyx *, void *), void *arg)
{
	alyx__err err = {0};
	alyx__wtx t = {0};
	int rc = alyx__auth_tables(a, &err);

	if (rc == ALYX_OK)
		rc = alyx__wtx_begin(a, &t, &err);
	if (rc != ALYX_OK)
		return rc;
	rc = f(a, arg);
	alyx__wtx_end(&t, rc == ALYX_OK || rc == ALYX_E_NOTFOUND, &err);
	alyx__err_clear(&err);
	return rc;
}

struct otok_args {
	const char *kind, *uid, *data;
	int64_t ttl;
	char tok[44];
	char *got_uid, *got_data;
};

static int do_new(alyx *a, void *p)
{
	struct otok_args *o = p;
	alyx__err err = {0};
	int rc = alyx__otok_new(a, o->kind, o->uid, o->data, o->ttl, o->tok,
				NULL, &err);

	alyx__err_clear(&err);
	return rc;
}

static int do_take(alyx *a, void *p)
{
	struct otok_args *o = p;
	alyx__err err = {0};
	int rc = alyx__otok_take(a, o->kind, o->tok, &o->got_uid,
				 &o->got_data, &err);

	alyx__err_clear(&err);
	return rc;
}

static int count_rows(alyx *a, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int n = -1;

	if (sqlite3_prepare_v2(a->wdb, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return n;
}

TEST(one_time_token_store)
{
	char *dir, hash[65], sql[200];
	alyx *a = open_default(&dir, false);
	struct otok_args o = {.kind = "reset", .uid = "u1", .data = "d1",
			      .ttl = 60000};

	ASSERT_OK(in_tx(a, do_new, &o));
	ASSERT_EQ(strlen(o.tok), 43);
	/* Only the hash is stored. */
	alyx__sha256_hex(o.tok, strlen(o.tok), hash);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM _alyx_auth_tokens "
		 "WHERE token_hash='%s' AND kind='reset'", hash);
	ASSERT_EQ(count_rows(a, sql), 1);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM _alyx_auth_tokens "
		 "WHERE token_hash='%s'", o.tok);
	ASSERT_EQ(count_rows(a, sql), 0);
	/* Another kind does not take it. */
	o.kind = "verify";
	ASSERT_EQ(in_tx(a, do_take, &o), ALYX_E_NOTFOUND);
	ASSERT(o.got_uid == NULL);
	o.kind = "reset";
	ASSERT_OK(in_tx(a, do_take, &o));
	ASSERT_STR_EQ(o.got_uid, "u1");
	ASSERT_STR_EQ(o.got_data, "d1");
	alyx__free(o.got_uid);
	alyx__free(o.got_data);
	/* Single use. */
	ASSERT_EQ(in_tx(a, do_take, &o), ALYX_E_NOTFOUND);
	/* A NULL user and data read back as "". */
	o.uid = o.data = NULL;
	ASSERT_OK(in_tx(a, do_new, &o));
	ASSERT_OK(in_tx(a, do_take, &o));
	ASSERT_STR_EQ(o.got_uid, "");
	alyx__free(o.got_uid);
	alyx__free(o.got_data);
	/* Expired: never taken, and swept by the next new token. */
	o.ttl = 1;
	ASSERT_OK(in_tx(a, do_new, &o));
	{
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	ASSERT_EQ(in_tx(a, do_take, &o), ALYX_E_NOTFOUND);
	ASSERT_EQ(count_rows(a, "SELECT count(*) FROM _alyx_auth_tokens"), 1);
	o.ttl = 60000;
	ASSERT_OK(in_tx(a, do_new, &o));
	ASSERT_EQ(count_rows(a, "SELECT count(*) FROM _alyx_auth_tokens"), 1);
	/* Garbage and oversized tokens are simply unknown. */
	snprintf(o.tok, sizeof(o.tok), "%s", "not-a-token");
	ASSERT_EQ(in_tx(a, do_take, &o), ALYX_E_NOTFOUND);
	alyx_close(a);
	remove_project(dir);
}

static const char users_verified_schema[] =
	"version: 1\ncollections:\n  users:\n    fields:\n"
	"      id: {type: uuid, primary: true, default: auto}\n"
	"      email: {type: string}\n"
	"      name: {type: string, nullable: true}\n"
	"      verified: {type: bool, default: false}\n";

/* The token of a link (the part after "token="), strdup'd. */
static char *link_token(const alyx__link *l)
{
	const char *t = strstr(l->link, "token=");

	ASSERT(t != NULL);
	return strdup(t + 6);
}

static alyx__link *request(alyx *a, bool reset, const char *email)
{
	char body[200];
	alyx__link *l = NULL;

	snprintf(body, sizeof(body), "{\"email\":\"%s\"}", email);
	ASSERT_OK(alyx__auth_request_link(a, reset, body, (size_t)-1, "1.2.3.4",
					  &l));
	return l;
}

TEST(email_verification_and_password_reset)
{
	char *dir, *out = NULL, *tok, *r, body[300];
	alyx *a = open_default(&dir, false);
	alyx__link *l;

	ASSERT_OK(alyx_apply_schema(a, users_verified_schema, (size_t)-1,
				    NULL, 0, NULL));
	out = reg(a, "ver@x.io", NULL);
	r = jstr(out, "refresh_token", NULL);
	alyx_free(out);
	/* Unknown emails: no link, same answer. */
	ASSERT(request(a, false, "nobody@x.io") == NULL);
	ASSERT_OK(alyx_auth_request_verification(a, "{\"email\":"
		  "\"nobody@x.io\"}", (size_t)-1));
	ASSERT_EQ(alyx_auth_request_verification(a, "{\"email\":\"x\"}",
						 (size_t)-1),
		  ALYX_E_VALIDATION);
	l = request(a, false, "VER@x.io");
	ASSERT(l != NULL);
	ASSERT_STR_EQ(l->type, "email_verification");
	ASSERT_STR_EQ(l->email, "ver@x.io");
	ASSERT(strncmp(l->link, "/verify-email?token=", 20) == 0);
	ASSERT_CONTAINS(l->payload, "\"type\":\"email_verification\"");
	tok = link_token(l);
	ASSERT_CONTAINS(l->payload, tok);
	alyx__link_free(l);
	snprintf(body, sizeof(body), "{\"token\":\"%s\"}", tok);
	ASSERT_OK(alyx_auth_verify(a, body, (size_t)-1, &out));
	ASSERT_CONTAINS(out, "\"verified\":true");
	alyx_free(out);
	ASSERT_EQ(count_rows(a, "SELECT count(*) FROM users WHERE "
			     "verified=1"), 1);
	ASSERT_EQ(alyx_auth_verify(a, body, (size_t)-1, &out),
		  ALYX_E_VALIDATION);
	ASSERT_CONTAINS(alyx_errdetails(a), "\"code\":\"invalid\"");
	free(tok);
	/* Verified already: no new link. */
	ASSERT(request(a, false, "ver@x.io") == NULL);

	/* Reset: policy first (the token survives a refused password). */
	l = request(a, true, "ver@x.io");
	tok = link_token(l);
	alyx__link_free(l);
	snprintf(body, sizeof(body), "{\"token\":\"%s\",\"password\":\"weak\"}",
		 tok);
	ASSERT_EQ(alyx_auth_confirm_password_reset(a, body, (size_t)-1),
		  ALYX_E_VALIDATION);
	snprintf(body, sizeof(body), "{\"token\":\"%s\",\"password\":"
		 "\"New-Pass-123\"}", tok);
	ASSERT_OK(alyx_auth_confirm_password_reset(a, body, (size_t)-1));
	ASSERT_EQ(alyx_auth_confirm_password_reset(a, body, (size_t)-1),
		  ALYX_E_VALIDATION);
	free(tok);
	ASSERT_EQ(login(a, "ver@x.io", GOOD_PW, &out), ALYX_E_UNAUTHORIZED);
	ASSERT_OK(login(a, "ver@x.io", "New-Pass-123", &out));
	alyx_free(out);
	/* The old session is gone. */
	tok = refresh_body(r);
	ASSERT_EQ(alyx_auth_refresh(a, tok, (size_t)-1, &out),
		  ALYX_E_UNAUTHORIZED);
	free(tok);
	free(r);
	/* The trusted link for the CLI. */
	ASSERT_OK(alyx_auth_reset_link(a, "Ver@X.io", &out));
	ASSERT_CONTAINS(out, "\"link\":\"/reset-password?token=");
	alyx_free(out);
	ASSERT_EQ(alyx_auth_reset_link(a, "no@x.io", &out), ALYX_E_NOTFOUND);
	ASSERT_EQ(alyx_auth_reset_link(a, "bad", &out), ALYX_E_VALIDATION);
	alyx_close(a);
	remove_project(dir);
}

TEST(password_reset_rate_limit)
{
	char *dir = make_project(0), path[600];
	alyx__link *l = NULL;
	alyx *a = NULL;

	snprintf(path, sizeof(path), "%s/alyx.yaml", dir);
	spit(path, "database:\n  path: data/alyx.db\nauth:\n  jwt:\n"
	     "    secret: \"" SECRET "\"\n");
	ASSERT_OK(alyx_open(dir, ALYX_OPEN_CREATE, &a));

	/* The default 3/hour per address (and per email). */
	for (int i = 0; i < 3; i++) {
		char body[64];

		snprintf(body, sizeof(body), "{\"email\":\"r%d@x.io\"}", i);
		ASSERT_OK(alyx__auth_request_link(a, true, body, (size_t)-1,
						  "9.9.9.9", &l));
	}
	ASSERT_EQ(alyx__auth_request_link(a, true, "{\"email\":\"r9@x.io\"}",
					  (size_t)-1, "9.9.9.9", &l),
		  ALYX_E_RATELIMIT);
	ASSERT_CONTAINS(alyx_errdetails(a), "retry_after");
	/* Per email through the C API. */
	for (int i = 0; i < 3; i++)
		ASSERT_OK(alyx_auth_request_password_reset(
			a, "{\"email\":\"same@x.io\"}", (size_t)-1));
	ASSERT_EQ(alyx_auth_request_password_reset(
			  a, "{\"email\":\"same@x.io\"}", (size_t)-1),
		  ALYX_E_RATELIMIT);
	alyx_close(a);
	remove_project(dir);
}

static int read_state(alyx *a, void *p)
{
	struct otok_args *o = p;
	sqlite3_stmt *st = NULL;
	char hash[65];

	alyx__sha256_hex(o->tok, strlen(o->tok), hash);
	if (sqlite3_prepare_v2(a->wdb, "SELECT data FROM _alyx_auth_tokens "
			       "WHERE token_hash=? AND kind='oauth'", -1, &st,
			       NULL) != SQLITE_OK)
		return ALYX_E_INTERNAL;
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		o->got_data = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return o->got_data ? ALYX_OK : ALYX_E_NOTFOUND;
}

TEST(oauth_state_and_pkce)
{
	char *dir = make_project(0), path[600], *out = NULL, *url, *state;
	char *verifier, expect[64], want[80];
	unsigned char md[32];
	struct otok_args o = {0};
	alyx *a = NULL;

	alyx__auth_set_cost(1, 64);
	snprintf(path, sizeof(path), "%s/alyx.yaml", dir);
	spit(path, "database:\n  path: data/alyx.db\nauth:\n  jwt:\n"
	     "    secret: \"" SECRET "\"\n  oauth:\n    state_ttl: 1s\n"
	     "    github: {client_id: cid, client_secret: csec, auth_url: "
	     "'https://gh.test/authorize?x=1'}\n");
	ASSERT_OK(alyx_open(dir, ALYX_OPEN_CREATE, &a));
	ASSERT_OK(alyx_auth_providers(a, &out));
	ASSERT_STR_EQ(out, "{\"providers\":[{\"name\":\"github\",\"url\":"
		      "\"/api/auth/oauth/github\"}]}");
	alyx_free(out);
	ASSERT_EQ(alyx_auth_oauth_start(a, "google", "https://x/cb", &out),
		  ALYX_E_NOTFOUND);
	ASSERT_EQ(alyx_auth_oauth_start(a, "github", NULL, &out),
		  ALYX_E_MISUSE);
	ASSERT_OK(alyx_auth_oauth_start(a, "github", "https://api.x/cb?a=b",
					&out));
	url = jstr(out, "url", NULL);
	state = jstr(out, "state", NULL);
	alyx_free(out);
	{
		static const char pre[] =
			"https://gh.test/authorize?x=1&response_type=code"
			"&client_id=cid&redirect_uri=https%3A%2F%2Fapi.x%2Fcb"
			"%3Fa%3Db&scope=user%3Aemail&state=";

		if (strncmp(url, pre, strlen(pre)) != 0)
			TH_FAIL("url: %s", url);
	}
	ASSERT_CONTAINS(url, "&code_challenge_method=S256");
	/* The challenge is the S256 of the verifier kept server-side. */
	snprintf(o.tok, sizeof(o.tok), "%s", state);
	ASSERT_OK(in_tx(a, read_state, &o));
	ASSERT_CONTAINS(o.got_data, "\"provider\":\"github\"");
	ASSERT_CONTAINS(o.got_data, "\"redirect_uri\":\"https://api.x/cb?a=b\"");
	verifier = jstr(o.got_data, "verifier", NULL);
	ASSERT_EQ(strlen(verifier), 43);
	ASSERT(strstr(url, verifier) == NULL);
	EVP_Digest(verifier, strlen(verifier), md, NULL, EVP_sha256(), NULL);
	alyx__b64url(md, 32, expect);
	snprintf(want, sizeof(want), "code_challenge=%s&", expect);
	ASSERT_CONTAINS(url, want);
	free(o.got_data);
	/* A forged state fails before any network request; a spent one
	 * too; an expired one too. */
	ASSERT_EQ(alyx_auth_oauth_callback(a, "github", "code", "forged", &out),
		  ALYX_E_UNAUTHORIZED);
	ASSERT_CONTAINS(alyx_errdetails(a), "\"reason\":\"state\"");
	o.kind = "oauth";
	ASSERT_OK(in_tx(a, do_take, &o));
	alyx__free(o.got_uid);
	alyx__free(o.got_data);
	ASSERT_EQ(alyx_auth_oauth_callback(a, "github", "code", state, &out),
		  ALYX_E_UNAUTHORIZED);
	ASSERT_EQ(alyx_auth_oauth_callback(a, "nope", "code", state, &out),
		  ALYX_E_NOTFOUND);
	free(url);
	free(state);
	free(verifier);
	ASSERT_OK(alyx_auth_oauth_start(a, "github", "https://api.x/cb", &out));
	state = jstr(out, "state", NULL);
	alyx_free(out);
	{
		struct timespec ts = {1, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	ASSERT_EQ(alyx_auth_oauth_callback(a, "github", "code", state, &out),
		  ALYX_E_UNAUTHORIZED);
	free(state);
	/* At most 10000 sign-ins in progress (anyone may start one). */
	ASSERT_EQ(sqlite3_exec(a->wdb, "WITH RECURSIVE n(i) AS (SELECT 1 "
			       "UNION ALL SELECT i + 1 FROM n WHERE i < 10000) "
			       "INSERT INTO _alyx_auth_tokens(token_hash, kind, "
			       "expires_at) SELECT 'h' || i, 'oauth', "
			       "9000000000000 FROM n", NULL, NULL, NULL),
		  SQLITE_OK);
	ASSERT_EQ(alyx_auth_oauth_start(a, "github", "https://api.x/cb", &out),
		  ALYX_E_UNAVAILABLE);
	ASSERT_CONTAINS(alyx_errmsg(a), "too many sign-ins");
	ASSERT_EQ(sqlite3_exec(a->wdb, "DELETE FROM _alyx_auth_tokens WHERE "
			       "token_hash = 'h1'", NULL, NULL, NULL),
		  SQLITE_OK);
	ASSERT_OK(alyx_auth_oauth_start(a, "github", "https://api.x/cb", &out));
	alyx_free(out);
	alyx_close(a);
	remove_project(dir);
}

/* Every allocation failure in the link and OAuth-state paths is NOMEM
 * (never a crash, leak or a wrong error), and the store stays usable. */
TEST(link_allocation_failures)
{
	char *dir, *out = NULL, *tok, body[300];
	alyx *a = open_default(&dir, false);
	alyx__link *l = NULL;
	int n, rc, ok = 0;

	ASSERT_OK(alyx_apply_schema(a, users_verified_schema, (size_t)-1,
				    NULL, 0, NULL));
	out = reg(a, "oom@x.io", NULL);
	alyx_free(out);
	for (n = 1; n < 300; n++) {
		alyx__fail_alloc_after(n);
		rc = alyx__auth_request_link(a, true, "{\"email\":\"oom@x.io\"}",
					     (size_t)-1, NULL, &l);
		alyx__fail_alloc_after(0);
		if (rc != ALYX_OK && rc != ALYX_E_NOMEM)
			TH_FAIL("request n=%d: %s %s", n, alyx_errname(rc),
				alyx_errmsg(a));
		if (rc != ALYX_OK) {
			ASSERT(l == NULL);
			continue;
		}
		ASSERT(l != NULL);
		tok = link_token(l);
		alyx__link_free(l);
		l = NULL;
		snprintf(body, sizeof(body), "{\"token\":\"%s\",\"password\":"
			 "\"New-Pass-123\"}", tok);
		free(tok);
		alyx__fail_alloc_after(n);
		rc = alyx_auth_confirm_password_reset(a, body, (size_t)-1);
		alyx__fail_alloc_after(0);
		if (rc != ALYX_OK && rc != ALYX_E_NOMEM)
			TH_FAIL("confirm n=%d: %s %s", n, alyx_errname(rc),
				alyx_errmsg(a));
		ok += rc == ALYX_OK;
		alyx__fail_alloc_after(n);
		rc = alyx_auth_oauth_start(a, "github", "https://x/cb", &out);
		alyx__fail_alloc_after(0);
		ASSERT(rc == ALYX_E_NOTFOUND || rc == ALYX_E_NOMEM);
		alyx__fail_alloc_after(n);
		rc = alyx_auth_reset_link(a, "oom@x.io", &out);
		alyx__fail_alloc_after(0);
		ASSERT(rc == ALYX_OK || rc == ALYX_E_NOMEM);
		ASSERT((rc == ALYX_OK) == (out != NULL));
		alyx_free(out);
		out = NULL;
	}
	ASSERT(ok > 0);
	l = request(a, true, "oom@x.io");
	ASSERT(l != NULL);
	alyx__link_free(l);
	alyx_close(a);
	remove_project(dir);
}

TEST(auth_turned_off)
{
	char *dir = make_project(0), path[600], *out = NULL;
	alyx_ctx *ctx = NULL;
	alyx *a = NULL;

	snprintf(path, sizeof(path), "%s/alyx.yaml", dir);
	spit(path, "database:\n  path: data/alyx.db\nauth:\n  enabled: false\n"
	     "  jwt:\n    secret: \"" SECRET "\"\n");
	ASSERT_OK(alyx_open(dir, ALYX_OPEN_CREATE, &a));
	ASSERT_EQ(alyx_auth_register(a, "{\"email\":\"s@x.io\",\"password\":\""
				     GOOD_PW "\"}", (size_t)-1, &out),
		  ALYX_E_NOTFOUND);
	ASSERT_CONTAINS(alyx_errmsg(a), "turned off");
	ASSERT_EQ(alyx_auth_providers(a, &out), ALYX_E_NOTFOUND);
	ASSERT_EQ(alyx_auth_request_password_reset(a, "{\"email\":\"s@x.io\"}",
						   (size_t)-1),
		  ALYX_E_NOTFOUND);
	ASSERT_EQ(alyx_ctx_from_token(a, "Bearer a.b.c", &ctx),
		  ALYX_E_UNAUTHORIZED);
	alyx_close(a);
	remove_project(dir);
}

TEST_MAIN()
