/*
 * config.c - alyx.yaml: ${ENV} expansion, loading with libcyaml, typed
 * validation with file:line:col errors, defaults, and the JSON view.
 *
 * Loading runs in three steps:
 *  1. A libyaml pass over the text records where every key and value is
 *     (by key path, e.g. "auth.jwt.access_ttl"), refuses unknown keys with
 *     a suggestion (the known keys come from the libcyaml schema below),
 *     refuses anchors and aliases, and expands ${NAME} / ${NAME:-default}
 *     inside each scalar value.
 *  2. Each expanded scalar is written back as a double-quoted YAML string
 *     on the same line, so a value can never inject YAML structure and
 *     every line number stays valid.
 *  3. libcyaml maps the text onto the raw structures (every leaf a string,
 *     every section optional), and the values are then typed, range-checked
 *     and defaulted here, with errors located through the step-1 table.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <cyaml/cyaml.h>
#include <openssl/crypto.h>
#include <yaml.h>

#include "core/config.h"
#include "schema/schema.h"

#define CONFIG_MAX_BYTES ((size_t)1 << 20)
#define CONFIG_MAX_DEPTH 16
#define CONFIG_MAX_NODES 4096
#define CONFIG_MAX_LIST 64
#define PATH_LEN 192

/* ---- value parsers ---- */

static bool parse_uint(const char *s, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno == ERANGE || *end || v > max)
		return false;
	*out = v;
	return true;
}

/* A non-negative decimal number followed by a unit from `units`. */
static bool number_unit(const char *s, const char *const *units,
			const int64_t *mult, size_t n, int64_t *out)
{
	char *end;
	double v;
	size_t i;

	if (!s || !((*s >= '0' && *s <= '9') || *s == '.'))
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno || !isfinite(v) || v < 0)
		return false;
	while (*end == ' ')
		end++;
	for (i = 0; i < n; i++) {
		if (strcasecmp(end, units[i]) == 0) {
			double r = v * (double)mult[i];

			if (r > 9.0e18)
				return false;
			*out = (int64_t)llround(r);
			return true;
		}
	}
	return false;
}

bool alyx__parse_duration_ms(const char *s, int64_t *out)
{
	static const char *const u[] = {"ms", "s", "m", "h", "d"};
	static const int64_t m[] = {1, 1000, 60000, 3600000, 86400000};

	return number_unit(s, u, m, ALYX_ARRAY_LEN(u), out);
}

bool alyx__parse_size(const char *s, int64_t *out)
{
	static const char *const u[] = {"", "b", "k", "kb", "kib", "m", "mb",
					"mib", "g", "gb", "gib"};
	static const int64_t K = 1024, M = 1024 * 1024, G = 1024 * 1024 * 1024;
	static const int64_t m[] = {1, 1, K, K, K, M, M, M, G, G, G};

	return number_unit(s, u, m, ALYX_ARRAY_LEN(u), out);
}

bool alyx__parse_rate(const char *s, alyx__rate *out)
{
	static const char *const u[] = {"second", "minute", "hour", "day",
					"s", "m", "h", "d"};
	static const int64_t m[] = {1000, 60000, 3600000, 86400000,
				    1000, 60000, 3600000, 86400000};
	const char *slash = s ? strchr(s, '/') : NULL;
	char num[24];
	int64_t n;
	size_t i;

	if (!slash || (size_t)(slash - s) >= sizeof(num))
		return false;
	memcpy(num, s, (size_t)(slash - s));
	num[slash - s] = '\0';
	if (!parse_uint(num, 1000000, &n) || n < 1)
		return false;
	for (i = 0; i < ALYX_ARRAY_LEN(u); i++) {
		if (strcmp(slash + 1, u[i]) == 0) {
			out->count = (int)n;
			out->window_ms = m[i];
			return true;
		}
	}
	return false;
}

/* ---- raw structures (what libcyaml fills: every leaf a string) ---- */

typedef struct raw_tls { char *cert, *key; } raw_tls;
typedef struct raw_cors { char **origins; unsigned origins_count; } raw_cors;
typedef struct raw_server {
	char *host, *port, *threads;
	raw_tls *tls;
	raw_cors *cors;
	char *max_body, *max_header, *request_timeout, *loop;
} raw_server;
typedef struct raw_database {
	char *path, *cache_size_mb, *busy_timeout_ms;
} raw_database;
typedef struct raw_jwt {
	char *secret, *access_ttl, *refresh_ttl, *issuer;
} raw_jwt;
typedef struct raw_password {
	char *min_length, *require_uppercase, *require_number,
		*require_special;
} raw_password;
typedef struct raw_provider {
	char *client_id, *client_secret;
	char **scopes;
	unsigned scopes_count;
	char *auth_url, *token_url, *userinfo_url, *emails_url;
} raw_provider;
typedef struct raw_oauth {
	raw_provider *github, *google;
	char *redirect_url, *frontend_url, *timeout, *state_ttl;
} raw_oauth;
typedef struct raw_email {
	char *webhook, *webhook_timeout, *webhook_secret, *verify_url,
		*reset_url, *verify_ttl, *reset_ttl;
} raw_email;
typedef struct raw_rate {
	char *login, *register_, *password_reset, *oauth;
} raw_rate;
typedef struct raw_auth {
	char *enabled;
	raw_jwt *jwt;
	raw_password *password;
	raw_oauth *oauth;
	raw_email *email;
	raw_rate *rate_limit;
} raw_auth;
typedef struct raw_runtime {
	char *min_warm, *max_instances, *idle_timeout, *exec_timeout,
		*memory_limit, *cpu_limit, *image;
} raw_runtime;
typedef struct raw_container {
	char *pids_limit, *start_timeout, *user;
} raw_container;
typedef struct raw_functions {
	char *enabled, *dir, *runner, *sandbox, *container_socket,
		*transaction_timeout;
	raw_container *container;
	raw_runtime *node, *python;
} raw_functions;
typedef struct raw_realtime {
	char *poll_interval_ms, *max_connections, *max_subscriptions,
		*snapshot_limit, *change_retention, *max_message, *send_queue,
		*idle_timeout, *ping_interval, *token_check;
} raw_realtime;
typedef struct raw_dev {
	char *watch, *admin_ui;
	char **generate;
	unsigned generate_count;
	char *generate_output;
} raw_dev;
typedef struct raw_log { char *level, *format; } raw_log;
typedef struct raw_top {
	raw_server *server;
	raw_database *database;
	raw_auth *auth;
	raw_functions *functions;
	raw_realtime *realtime;
	raw_dev *dev;
	raw_log *log;
} raw_top;

#define OPT (CYAML_FLAG_OPTIONAL | CYAML_FLAG_POINTER)
#define STR(k, T, m) CYAML_FIELD_STRING_PTR(k, OPT, T, m, 0, CYAML_UNLIMITED)
/* An empty or null (~, null) section or list is the same as a missing
 * one. */
#define MAP(k, T, m, f) \
	CYAML_FIELD_MAPPING_PTR(k, OPT | CYAML_FLAG_POINTER_NULL_STR, T, m, f)
#define LIST(k, T, m) \
	CYAML_FIELD_SEQUENCE(k, OPT | CYAML_FLAG_POINTER_NULL_STR, T, m, \
			     &str_entry, 0, CONFIG_MAX_LIST)

static const cyaml_schema_value_t str_entry = {
	CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 0, CYAML_UNLIMITED),
};
static const cyaml_schema_field_t tls_f[] = {
	STR("cert", raw_tls, cert), STR("key", raw_tls, key), CYAML_FIELD_END
};
static const cyaml_schema_field_t cors_f[] = {
	LIST("origins", raw_cors, origins), CYAML_FIELD_END
};
static const cyaml_schema_field_t server_f[] = {
	STR("host", raw_server, host),
	STR("port", raw_server, port),
	STR("threads", raw_server, threads),
	MAP("tls", raw_server, tls, tls_f),
	MAP("cors", raw_server, cors, cors_f),
	STR("max_body", raw_server, max_body),
	STR("max_header", raw_server, max_header),
	STR("request_timeout", raw_server, request_timeout),
	STR("loop", raw_server, loop),
	CYAML_FIELD_END
};
static const cyaml_schema_field_t database_f[] = {
	STR("path", raw_database, path),
	STR("cache_size_mb", raw_database, cache_size_mb),
	STR("busy_timeout_ms", raw_database, busy_timeout_ms),
	CYAML_FIELD_END
};
static const cyaml_schema_field_t jwt_f[] = {
	STR("secret", raw_jwt, secret),
	STR("access_ttl", raw_jwt, access_ttl),
	STR("refresh_ttl", raw_jwt, refresh_ttl),
	STR("issuer", raw_jwt, issuer),
	CYAML_FIELD_END
};
static const cyaml_schema_field_t password_f[] = {
	STR("min_length", raw_password, min_length),
	STR("require_uppercase", raw_password, require_uppercase),
	STR("require_number", raw_password, require_number),
	STR("require_special", raw_password, require_special),
	CYAML_FIELD_END
};
static const cyaml_schema_field_t provider_f[] = {
	STR("client_id", raw_provider, client_id),
	STR("client_secret", raw_provider, client_secret),
	LIST("scopes", raw_provider, scopes),
	STR("auth_url", raw_provider, auth_url),
	STR("token_url", raw_provider, token_url),
	STR("userinfo_url", raw_provider, userinfo_url),
	STR("emails_url", raw_provider, emails_url),
	CYAML_FIELD_END
};
static const cyaml_schema_field_t oauth_f[] = {
	MAP("github", raw_oauth, github, provider_f),
	MAP("google", raw_oauth, google, provider_f),
	STR("redirect_url", raw_oauth, redirect_url),
	STR("frontend_url", raw_oauth, frontend_url),
	STR("timeout", raw_oauth, timeout),
	STR("state_ttl", raw_oauth, state_ttl),
	CYAML_FIELD_END
};
static const cyaml_schema_field_t email_f[] = {
	STR("webhook", raw_email, webhook),
	STR("webhook_timeout", raw_email, webhook_timeout),
	STR("webhook_secret", raw_email, webhook_secret),
	STR("verify_url", raw_email, verify_url),
	STR("reset_url", raw_email, reset_url),
	STR("verify_ttl", raw_email, verify_ttl),
	STR("reset_ttl", raw_email, reset_ttl),
	CYAML_FIELD_END
};
static const cyaml_schema_field_t rate_f[] = {
	STR("login", raw_rate, login),
	STR("register", raw_rate, register_),
	STR("password_reset", raw_rate, password_reset),
	STR("oauth", raw_rate, oauth),
	CYAML_FIELD_END
};
static const cyaml_schema_field_t auth_f[] = {
	STR("enabled", raw_auth, enabled),
	MAP("jwt", raw_auth, jwt, jwt_f),
	MAP("password", raw_auth, password, password_f),
	MAP("oauth", raw_auth, oauth, oauth_f),
	MAP("email", raw_auth, email, email_f),
	MAP("rate_limit", raw_auth, rate_limit, rate_f),
	CYAML_FIELD_END
};
static const cyaml_schema_field_t runtime_f[] = {
	STR("min_warm", raw_runtime, min_warm),
	STR("max_instances", raw_runtime, max_instances),
	STR("idle_timeout", raw_runtime, idle_timeout),
	STR("exec_timeout", raw_runtime, exec_timeout),
	STR("memory_limit", raw_runtime, memory_limit),
	STR("cpu_limit", raw_runtime, cpu_limit),
	STR("image", raw_runtime, image),
	CYAML_FIELD_END
};
static const cyaml_schema_field_t container_f[] = {
	STR("pids_limit", raw_container, pids_limit),
	STR("start_timeout", raw_container, start_timeout),
	STR("user", raw_container, user),
	CYAML_FIELD_END
};
static const cyaml_schema_field_t functions_f[] = {
	STR("enabled", raw_functions, enabled),
	STR("dir", raw_functions, dir),
	STR("runner", raw_functions, runner),
	STR("sandbox", raw_functions, sandbox),
	STR("container_socket", raw_functions, container_socket),
	STR("transaction_timeout", raw_functions, transaction_timeout),
	MAP("container", raw_functions, container, container_f),
	MAP("node", raw_functions, node, runtime_f),
	MAP("python", raw_functions, python, runtime_f),
	CYAML_FIELD_END
};
static const cyaml_schema_field_t realtime_f[] = {
	STR("poll_interval_ms", raw_realtime, poll_interval_ms),
	STR("max_connections", raw_realtime, max_connections),
	STR("max_subscriptions", raw_realtime, max_subscriptions),
	STR("snapshot_limit", raw_realtime, snapshot_limit),
	STR("change_retention", raw_realtime, change_retention),
	STR("max_message", raw_realtime, max_message),
	STR("send_queue", raw_realtime, send_queue),
	STR("idle_timeout", raw_realtime, idle_timeout),
	STR("ping_interval", raw_realtime, ping_interval),
	STR("token_check", raw_realtime, token_check),
	CYAML_FIELD_END
};
static const cyaml_schema_field_t dev_f[] = {
	STR("watch", raw_dev, watch),
	STR("admin_ui", raw_dev, admin_ui),
	LIST("generate", raw_dev, generate),
	STR("generate_output", raw_dev, generate_output),
	CYAML_FIELD_END
};
static const cyaml_schema_field_t log_f[] = {
	STR("level", raw_log, level), STR("format", raw_log, format),
	CYAML_FIELD_END
};
static const cyaml_schema_field_t top_f[] = {
	MAP("server", raw_top, server, server_f),
	MAP("database", raw_top, database, database_f),
	MAP("auth", raw_top, auth, auth_f),
	MAP("functions", raw_top, functions, functions_f),
	MAP("realtime", raw_top, realtime, realtime_f),
	MAP("dev", raw_top, dev, dev_f),
	MAP("log", raw_top, log, log_f),
	CYAML_FIELD_END
};
static const cyaml_schema_value_t top_schema = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, raw_top, top_f),
};

/* ---- load context, positions and errors ---- */

typedef struct pos {
	char path[PATH_LEN];
	int kline, kcol;	/* the key */
	int vline, vcol;	/* its value */
} pos;

typedef struct repl {
	size_t start, end;	/* byte range of the scalar in the text */
	char *text;		/* replacement (a double-quoted scalar) */
} repl;

typedef struct lctx {
	const char *file;	/* for messages: the base name */
	const char *text;
	size_t len;
	alyx__err *err;
	pos *pos;
	size_t n_pos, cap_pos;
	repl *repl;
	size_t n_repl, cap_repl;
	size_t *line_start;	/* byte offset of each line */
	size_t n_lines;
	alyx_buf log;		/* libcyaml's messages */
} lctx;

static int cfg_err_at(lctx *c, int line, int col, const char *key,
		      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int cfg_err_at(lctx *c, int line, int col, const char *key,
		      const char *fmt, ...)
{
	char msg[400];
	alyx_buf d;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	alyx__buf_init(&d, 0);
	alyx__buf_adds(&d, "{\"file\":");
	alyx__json_strz(&d, c->file);
	alyx__buf_adds(&d, ",\"line\":");
	alyx__json_i64(&d, line);
	alyx__buf_adds(&d, ",\"column\":");
	alyx__json_i64(&d, col);
	alyx__buf_adds(&d, ",\"key\":");
	alyx__json_strz(&d, key);
	alyx__buf_addc(&d, '}');
	return alyx__err_setd(c->err, ALYX_E_CONFIG, alyx__buf_take(&d),
			      "%s:%d:%d: %s", c->file, line, col, msg);
}

static const pos *find_pos(const lctx *c, const char *path)
{
	size_t i;

	for (i = 0; i < c->n_pos; i++)
		if (strcmp(c->pos[i].path, path) == 0)
			return &c->pos[i];
	return NULL;
}

/* An error about the value at `path` ("server.port"). */
static int verr(lctx *c, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int verr(lctx *c, const char *path, const char *fmt, ...)
{
	const pos *p = find_pos(c, path);
	char msg[360];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return cfg_err_at(c, p ? p->vline : 0, p ? p->vcol : 0, path, "%s: %s",
			  path, msg);
}

static int nomem(lctx *c)
{
	return alyx__err_set(c->err, ALYX_E_NOMEM, NULL, "out of memory");
}

/* ---- step 1: positions, unknown keys, ${ENV} ---- */

/* Expands ${NAME} and ${NAME:-default}; "$${" is a literal "${".  On a
 * malformed reference returns false with a reason in why. */
static bool expand_env(const char *s, alyx_buf *out, const char **why)
{
	const char *p = s;

	while (*p) {
		const char *close, *name, *dflt = NULL, *v;
		size_t nlen, i;

		if (p[0] == '$' && p[1] == '$' && p[2] == '{') {
			alyx__buf_adds(out, "${");
			p += 3;
			continue;
		}
		if (!(p[0] == '$' && p[1] == '{')) {
			alyx__buf_addc(out, *p++);
			continue;
		}
		name = p + 2;
		close = strchr(name, '}');
		if (!close) {
			*why = "'${' without a closing '}'";
			return false;
		}
		for (nlen = 0; name + nlen < close; nlen++) {
			if (name[nlen] == ':' && name[nlen + 1] == '-') {
				dflt = name + nlen + 2;
				break;
			}
		}
		if (nlen == 0 || nlen > 128) {
			*why = "empty or too long variable name in ${...}";
			return false;
		}
		for (i = 0; i < nlen; i++) {
			char ch = name[i];

			if (!((ch >= 'A' && ch <= 'Z') ||
			      (ch >= 'a' && ch <= 'z') || ch == '_' ||
			      (i > 0 && ch >= '0' && ch <= '9'))) {
				*why = "bad variable name in ${...} (use "
				       "letters, digits and _, or "
				       "${NAME:-default})";
				return false;
			}
		}
		{
			char nm[129];

			memcpy(nm, name, nlen);
			nm[nlen] = '\0';
			v = getenv(nm);
		}
		if ((!v || !*v) && dflt)
			alyx__buf_add(out, dflt, (size_t)(close - dflt));
		else if (v)
			alyx__buf_adds(out, v);
		p = close + 1;
	}
	return true;
}

/* `s` as a one-line YAML double-quoted scalar. */
static void yaml_quote(alyx_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;

	alyx__buf_addc(b, '"');
	for (p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\') {
			alyx__buf_addc(b, '\\');
			alyx__buf_addc(b, (char)*p);
		} else if (*p < 0x20 || *p == 0x7F) {
			alyx__buf_adds(b, "\\x");
			alyx__buf_addc(b, hex[*p >> 4]);
			alyx__buf_addc(b, hex[*p & 15]);
		} else {
			alyx__buf_addc(b, (char)*p);
		}
	}
	alyx__buf_addc(b, '"');
}

static bool index_lines(lctx *c)
{
	size_t i, n = 1;

	for (i = 0; i < c->len; i++)
		if (c->text[i] == '\n' ||
		    (c->text[i] == '\r' && (i + 1 >= c->len ||
					    c->text[i + 1] != '\n')))
			n++;
	c->line_start = alyx__calloc(n, sizeof(size_t));
	if (!c->line_start)
		return false;
	c->n_lines = 1;
	for (i = 0; i < c->len; i++)
		if (c->text[i] == '\n' ||
		    (c->text[i] == '\r' && (i + 1 >= c->len ||
					    c->text[i + 1] != '\n')))
			c->line_start[c->n_lines++] = i + 1;
	return true;
}

/* libyaml marks count characters; this turns one into a byte offset. */
static size_t mark_offset(const lctx *c, const yaml_mark_t *m)
{
	size_t off, col = 0;

	if (m->line >= c->n_lines)
		return c->len;
	off = c->line_start[m->line];
	while (off < c->len && col < m->column) {
		off++;
		while (off < c->len &&
		       ((unsigned char)c->text[off] & 0xC0) == 0x80)
			off++;
		col++;
	}
	return off;
}

typedef struct frame {
	bool map;
	bool want_key;
	const cyaml_schema_field_t *fields;	/* map: known keys */
	const cyaml_schema_value_t *entry;	/* seq: item schema */
	const cyaml_schema_value_t *val;	/* map: current value's */
	char path[PATH_LEN];
	char key_path[PATH_LEN];		/* map: current key's */
	unsigned idx;
} frame;

static int unknown_key(lctx *c, const frame *f, const char *key,
		       const yaml_mark_t *m)
{
	const cyaml_schema_field_t *fl, *best = NULL;
	size_t d, bestd = 3;
	char known[300] = "";
	size_t kn = 0;

	for (fl = f->fields; fl->key; fl++) {
		d = alyx__edit_distance(key, fl->key);
		if (d < bestd) {
			bestd = d;
			best = fl;
		}
		kn += (size_t)snprintf(known + kn, kn < sizeof(known) ?
					sizeof(known) - kn : 0, "%s%s",
					kn ? ", " : "", fl->key);
	}
	if (best)
		return cfg_err_at(c, (int)m->line + 1, (int)m->column + 1, key,
				  "unknown key '%.64s'%s%s (did you mean "
				  "'%s'?)", key, f->path[0] ? " in " : "",
				  f->path, best->key);
	return cfg_err_at(c, (int)m->line + 1, (int)m->column + 1, key,
			  "unknown key '%.64s'%s%s (known: %s)", key,
			  f->path[0] ? " in " : "", f->path, known);
}

static pos *add_pos(lctx *c, const char *path)
{
	pos *p;

	if (c->n_pos == c->cap_pos) {
		size_t ncap = c->cap_pos ? c->cap_pos * 2 : 64;
		pos *v = alyx__realloc(c->pos, ncap * sizeof(*v));

		if (!v)
			return NULL;
		c->pos = v;
		c->cap_pos = ncap;
	}
	p = &c->pos[c->n_pos++];
	memset(p, 0, sizeof(*p));
	snprintf(p->path, sizeof(p->path), "%s", path);
	return p;
}

static int expand_scalar(lctx *c, const yaml_event_t *ev, const char *path)
{
	const char *v = (const char *)ev->data.scalar.value, *why = NULL;
	alyx_buf out, q;
	repl *r;

	if (!strstr(v, "${"))
		return ALYX_OK;
	if (ev->start_mark.line != ev->end_mark.line)
		return cfg_err_at(c, (int)ev->start_mark.line + 1,
				  (int)ev->start_mark.column + 1, path,
				  "%s: ${...} is only expanded in one-line "
				  "values", path);
	alyx__buf_init(&out, CONFIG_MAX_BYTES);
	if (!expand_env(v, &out, &why)) {
		alyx__buf_free(&out);
		return cfg_err_at(c, (int)ev->start_mark.line + 1,
				  (int)ev->start_mark.column + 1, path,
				  "%s: %s", path, why);
	}
	if (out.err) {
		int e = out.err;

		alyx__buf_free(&out);
		return e == ALYX_E_NOMEM ? nomem(c) :
			alyx__err_set(c->err, ALYX_E_TOOBIG, NULL,
				      "%s: %s: expanded value is too large",
				      c->file, path);
	}
	alyx__buf_init(&q, CONFIG_MAX_BYTES * 4);
	yaml_quote(&q, out.data ? out.data : "");
	alyx__buf_free(&out);
	if (c->n_repl == c->cap_repl) {
		size_t ncap = c->cap_repl ? c->cap_repl * 2 : 16;
		repl *nv = alyx__realloc(c->repl, ncap * sizeof(*nv));

		if (!nv) {
			alyx__buf_free(&q);
			return nomem(c);
		}
		c->repl = nv;
		c->cap_repl = ncap;
	}
	r = &c->repl[c->n_repl];
	r->start = mark_offset(c, &ev->start_mark);
	r->end = mark_offset(c, &ev->end_mark);
	r->text = alyx__buf_take(&q);
	if (!r->text)
		return nomem(c);
	c->n_repl++;
	return ALYX_OK;
}

static int scan(lctx *c)
{
	yaml_parser_t p;
	yaml_event_t ev;
	frame st[CONFIG_MAX_DEPTH];
	int depth = 0, rc = ALYX_OK;
	size_t nodes = 0;
	bool done = false;

	if (!yaml_parser_initialize(&p))
		return nomem(c);
	yaml_parser_set_input_string(&p, (const unsigned char *)c->text,
				     c->len);
	while (!done && rc == ALYX_OK) {
		const yaml_mark_t *m = &ev.start_mark;
		bool scalar, start;
		const char *anchor = NULL;
		char path[PATH_LEN] = "";
		const cyaml_schema_value_t *schema = NULL;
		frame *top;

		if (!yaml_parser_parse(&p, &ev)) {
			rc = cfg_err_at(c, (int)p.problem_mark.line + 1,
					(int)p.problem_mark.column + 1, NULL,
					"YAML syntax error: %s%s%s",
					p.problem ? p.problem : "?",
					p.context ? " " : "",
					p.context ? p.context : "");
			break;
		}
		scalar = ev.type == YAML_SCALAR_EVENT;
		start = ev.type == YAML_MAPPING_START_EVENT ||
			ev.type == YAML_SEQUENCE_START_EVENT;
		if (scalar)
			anchor = (const char *)ev.data.scalar.anchor;
		else if (ev.type == YAML_MAPPING_START_EVENT)
			anchor = (const char *)ev.data.mapping_start.anchor;
		else if (ev.type == YAML_SEQUENCE_START_EVENT)
			anchor = (const char *)ev.data.sequence_start.anchor;
		if (ev.type == YAML_STREAM_END_EVENT)
			done = true;
		if (ev.type == YAML_ALIAS_EVENT || anchor) {
			rc = cfg_err_at(c, (int)m->line + 1,
					(int)m->column + 1, NULL,
					"YAML anchors and aliases are not "
					"supported");
			goto next;
		}
		if (ev.type == YAML_MAPPING_END_EVENT ||
		    ev.type == YAML_SEQUENCE_END_EVENT) {
			if (depth > 0)
				depth--;
			goto next;
		}
		if (!scalar && !start)
			goto next;
		if (++nodes > CONFIG_MAX_NODES) {
			rc = alyx__err_set(c->err, ALYX_E_TOOBIG, NULL,
					   "%s: too many values", c->file);
			goto next;
		}
		top = depth ? &st[depth - 1] : NULL;
		if (!top) {
			/* The document root. */
			if (ev.type != YAML_MAPPING_START_EVENT &&
			    !(scalar && ev.data.scalar.length == 0)) {
				rc = cfg_err_at(c, (int)m->line + 1,
						(int)m->column + 1, NULL,
						"alyx.yaml must be a mapping "
						"of sections (server, "
						"database, auth, ...)");
				goto next;
			}
			schema = &top_schema;
		} else if (top->map && top->want_key) {
			const cyaml_schema_field_t *fl;
			const char *key = scalar ?
				(const char *)ev.data.scalar.value : NULL;
			pos *ps;

			if (!scalar) {
				rc = cfg_err_at(c, (int)m->line + 1,
						(int)m->column + 1, NULL,
						"keys must be plain names");
				goto next;
			}
			top->want_key = false;
			top->val = NULL;
			{
				char kp[PATH_LEN];

				snprintf(kp, sizeof(kp), "%s%s%.64s",
					 top->path, top->path[0] ? "." : "",
					 key);
				memcpy(top->key_path, kp, sizeof(kp));
			}
			if (find_pos(c, top->key_path)) {
				rc = cfg_err_at(c, (int)m->line + 1,
						(int)m->column + 1,
						top->key_path,
						"duplicate key '%.64s'", key);
				goto next;
			}
			if (top->fields) {
				for (fl = top->fields; fl->key; fl++)
					if (!strcmp(fl->key, key))
						break;
				if (!fl->key) {
					rc = unknown_key(c, top, key, m);
					goto next;
				}
				top->val = &fl->value;
			}
			ps = add_pos(c, top->key_path);
			if (!ps) {
				rc = nomem(c);
				goto next;
			}
			ps->kline = (int)m->line + 1;
			ps->kcol = (int)m->column + 1;
			goto next;
		} else if (top->map) {
			top->want_key = true;
			snprintf(path, sizeof(path), "%s", top->key_path);
			schema = top->val;
		} else {
			snprintf(path, sizeof(path), "%s[%u]", top->path,
				 top->idx++);
			schema = top->entry;
		}
		if (top) {
			pos *ps = find_pos(c, path) ?
				(pos *)find_pos(c, path) : add_pos(c, path);

			if (!ps) {
				rc = nomem(c);
				goto next;
			}
			ps->vline = (int)m->line + 1;
			ps->vcol = (int)m->column + 1;
		}
		if (scalar) {
			if (top)
				rc = expand_scalar(c, &ev, path);
			goto next;
		}
		if (depth >= CONFIG_MAX_DEPTH) {
			rc = cfg_err_at(c, (int)m->line + 1,
					(int)m->column + 1, path,
					"nesting is too deep");
			goto next;
		}
		memset(&st[depth], 0, sizeof(st[depth]));
		st[depth].map = ev.type == YAML_MAPPING_START_EVENT;
		st[depth].want_key = true;
		snprintf(st[depth].path, PATH_LEN, "%s", path);
		if (schema && st[depth].map && schema->type == CYAML_MAPPING)
			st[depth].fields = schema->mapping.fields;
		if (schema && !st[depth].map && schema->type == CYAML_SEQUENCE)
			st[depth].entry = schema->sequence.entry;
		depth++;
next:
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	return rc;
}

/* ---- step 2: the rewritten text ---- */

static char *rewrite(lctx *c, int *buf_err)
{
	alyx_buf b;
	size_t at = 0, i;
	char *out;

	alyx__buf_init(&b, CONFIG_MAX_BYTES * 8);
	for (i = 0; i < c->n_repl; i++) {
		const repl *r = &c->repl[i];

		alyx__buf_add(&b, c->text + at, r->start - at);
		alyx__buf_adds(&b, r->text);
		at = r->end;
	}
	alyx__buf_add(&b, c->text + at, c->len - at);
	*buf_err = b.err;
	out = alyx__buf_take(&b);
	alyx__buf_free(&b);
	return out;
}

/* ---- step 3: libcyaml ---- */

static void cy_log(cyaml_log_t level, void *ctx, const char *fmt,
		   va_list args)
{
	lctx *c = ctx;

	if (level >= CYAML_LOG_ERROR)
		alyx__buf_vaddf(&c->log, fmt, args);
}

static void *cy_mem(void *ctx, void *ptr, size_t size)
{
	if (size == 0) {
		alyx__free(ptr);
		return NULL;
	}
	return alyx__realloc(ptr, size);
}

static const cyaml_config_t *cy_config(lctx *c, cyaml_config_t *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->log_fn = cy_log;
	cfg->log_ctx = c;
	cfg->mem_fn = cy_mem;
	cfg->log_level = CYAML_LOG_ERROR;
	cfg->flags = CYAML_CFG_NO_ALIAS;
	return cfg;
}

/* The key path from libcyaml's backtrace, innermost entry first:
 * "in sequence entry '2'", "in mapping field 'origins'", "in mapping
 * field 'cors'" -> "cors.origins[1]". */
static void key_path_of(const char *log, char *out, size_t size)
{
	const char *parts[CONFIG_MAX_DEPTH];
	int np = 0, i;
	const char *p = log;
	size_t n = 0;

	while (np < CONFIG_MAX_DEPTH && (p = strstr(p, "  in ")) != NULL) {
		p += 5;
		if (!strncmp(p, "mapping field '", 15) ||
		    !strncmp(p, "sequence entry '", 16))
			parts[np++] = p;
	}
	out[0] = '\0';
	for (i = np - 1; i >= 0 && n < size; i--) {
		bool seq = parts[i][0] == 's';
		const char *name = strchr(parts[i], '\'') + 1;
		size_t len = strcspn(name, "'");
		long idx = seq ? strtol(name, NULL, 10) - 1 : 0;

		if (seq)
			n += (size_t)snprintf(out + n, size - n, "[%ld]", idx);
		else
			n += (size_t)snprintf(out + n, size - n, "%s%.*s",
					      n ? "." : "", (int)len, name);
	}
}

/* Turns libcyaml's log ("Load: <problem>\nLoad: Backtrace:\n  in mapping
 * field 'port' (line: 2, column: 9)\n...") into a located error. */
static int cyaml_error(lctx *c, cyaml_err_t e)
{
	const char *log = c->log.data ? c->log.data : "";
	const char *first = strstr(log, "Load: ");
	const char *bt = strstr(log, "(line: ");
	char problem[200] = "", path[PATH_LEN];
	int line = 0, col = 0;
	size_t n;

	if (first) {
		first += 6;
		n = strcspn(first, "\n");
		snprintf(problem, sizeof(problem), "%.*s", (int)n, first);
	}
	if (bt)
		sscanf(bt, "(line: %d, column: %d)", &line, &col);
	if (e == CYAML_ERR_OOM)
		return nomem(c);
	key_path_of(log, path, sizeof(path));
	return cfg_err_at(c, line, col, path[0] ? path : NULL, "%s%s%s",
			  path, path[0] ? ": " : "",
			  problem[0] ? problem : cyaml_strerror(e));
}

/* ---- typing, ranges and defaults ---- */

typedef struct tctx {
	lctx *l;
	alyx__config *cfg;
	int rc;
} tctx;

static void set_str(tctx *t, char **dst, const char *raw, const char *dflt)
{
	if (t->rc != ALYX_OK)
		return;
	*dst = alyx__strdup(raw ? raw : dflt);
	if (!*dst && (raw || dflt))
		t->rc = nomem(t->l);
}

static void get_int(tctx *t, const char *path, const char *raw, int64_t min,
		    int64_t max, int64_t dflt, int64_t *out)
{
	int64_t v;

	*out = dflt;
	if (t->rc != ALYX_OK || !raw)
		return;
	if (!parse_uint(raw, INT64_MAX, &v) || v < min || v > max) {
		t->rc = verr(t->l, path, "expected a whole number from %lld "
			     "to %lld, got '%.64s'", (long long)min,
			     (long long)max, raw);
		return;
	}
	*out = v;
}

static int int_of(tctx *t, const char *path, const char *raw, int min,
		  int max, int dflt)
{
	int64_t v;

	get_int(t, path, raw, min, max, dflt, &v);
	return (int)v;
}

static bool get_bool(tctx *t, const char *path, const char *raw, bool dflt)
{
	if (t->rc != ALYX_OK || !raw)
		return dflt;
	if (!strcmp(raw, "true") || !strcmp(raw, "yes") || !strcmp(raw, "on"))
		return true;
	if (!strcmp(raw, "false") || !strcmp(raw, "no") || !strcmp(raw, "off"))
		return false;
	t->rc = verr(t->l, path, "expected true or false, got '%.64s'", raw);
	return dflt;
}

static int64_t get_duration(tctx *t, const char *path, const char *raw,
			    int64_t min_ms, int64_t dflt)
{
	int64_t v;

	if (t->rc != ALYX_OK || !raw)
		return dflt;
	if (!alyx__parse_duration_ms(raw, &v) || v < min_ms) {
		char least[48] = "";

		if (min_ms > 1)
			snprintf(least, sizeof(least), " (at least %lld ms)",
				 (long long)min_ms);
		else if (min_ms == 1)
			snprintf(least, sizeof(least), " (above zero)");
		t->rc = verr(t->l, path, "expected a duration like 500ms, "
			     "30s, 15m, 2h or 7d%s, got '%.64s'", least, raw);
		return dflt;
	}
	return v;
}

static int64_t get_size(tctx *t, const char *path, const char *raw,
			int64_t min, int64_t dflt)
{
	int64_t v;

	if (t->rc != ALYX_OK || !raw)
		return dflt;
	if (!alyx__parse_size(raw, &v) || v < min) {
		t->rc = verr(t->l, path, "expected a size like 512kb, 256mb "
			     "or 1gb (at least %lld bytes), got '%.64s'",
			     (long long)min, raw);
		return dflt;
	}
	return v;
}

static void get_rate(tctx *t, const char *path, const char *raw,
		     int count, int64_t window, alyx__rate *out)
{
	out->count = count;
	out->window_ms = window;
	if (t->rc != ALYX_OK || !raw)
		return;
	if (!alyx__parse_rate(raw, out))
		t->rc = verr(t->l, path, "expected a rate like 5/minute "
			     "(second, minute, hour, day), got '%.64s'", raw);
}

static void get_choice(tctx *t, const char *path, const char *raw,
		       const char *const *choices, size_t n, char **out)
{
	size_t i;
	char list[120] = "";

	if (t->rc != ALYX_OK)
		return;
	if (!raw) {
		set_str(t, out, choices[0], NULL);
		return;
	}
	for (i = 0; i < n; i++) {
		if (!strcmp(raw, choices[i])) {
			set_str(t, out, raw, NULL);
			return;
		}
		snprintf(list + strlen(list), sizeof(list) - strlen(list),
			 "%s%s", i ? ", " : "", choices[i]);
	}
	t->rc = verr(t->l, path, "expected one of %s, got '%.64s'", list, raw);
}

static void get_list(tctx *t, char **raw, unsigned n, const char *const *dflt,
		     char ***out, size_t *nout)
{
	size_t i, count = raw ? n : 0;

	if (t->rc != ALYX_OK)
		return;
	if (!raw)
		while (dflt && dflt[count])
			count++;
	*out = alyx__calloc(count + 1, sizeof(char *));
	if (!*out) {
		t->rc = nomem(t->l);
		return;
	}
	for (i = 0; i < count; i++) {
		(*out)[i] = alyx__strdup(raw ? raw[i] : dflt[i]);
		if (!(*out)[i]) {
			t->rc = nomem(t->l);
			return;
		}
		*nout = i + 1;
	}
}

static void type_server(tctx *t, const raw_server *r)
{
	static const raw_server none;
	static const char *const loops[] = {"poll", "ev"};
	__typeof__(t->cfg->server) *s = &t->cfg->server;
	int64_t v;

	if (!r)
		r = &none;
	set_str(t, &s->host, r->host, "127.0.0.1");
	if (t->rc == ALYX_OK && !*s->host)
		t->rc = verr(t->l, "server.host", "must not be empty");
	get_int(t, "server.port", r->port, 0, 65535, 8090, &v);
	s->port = (int)v;
	s->threads = int_of(t, "server.threads", r->threads, 0, 64, 0);
	if (r->tls) {
		set_str(t, &s->tls_cert, r->tls->cert, NULL);
		set_str(t, &s->tls_key, r->tls->key, NULL);
		if (t->rc == ALYX_OK && (!s->tls_cert) != (!s->tls_key))
			t->rc = verr(t->l, "server.tls", "set both cert and "
				     "key, or neither");
	}
	get_list(t, r->cors ? r->cors->origins : NULL,
		 r->cors ? r->cors->origins_count : 0, NULL, &s->cors_origins,
		 &s->n_cors_origins);
	s->max_body = get_size(t, "server.max_body", r->max_body, 1024,
			       1 << 20);
	s->max_header = get_size(t, "server.max_header", r->max_header, 1024,
				 8 << 10);
	s->request_timeout_ms = get_duration(t, "server.request_timeout",
					     r->request_timeout, 1, 10000);
	if (r->loop)
		get_choice(t, "server.loop", r->loop, loops, 2, &s->loop);
}

static void type_database(tctx *t, const raw_database *r)
{
	static const raw_database none;
	__typeof__(t->cfg->database) *d = &t->cfg->database;

	if (!r)
		r = &none;
	set_str(t, &d->path, r->path, "data/alyx.db");
	if (t->rc == ALYX_OK && !*d->path)
		t->rc = verr(t->l, "database.path", "must not be empty");
	d->cache_size_mb = int_of(t, "database.cache_size_mb",
				  r->cache_size_mb, 1, 65536, 64);
	d->cache_size = -(int64_t)d->cache_size_mb * 1024;
	d->busy_timeout_ms = int_of(t, "database.busy_timeout_ms",
				    r->busy_timeout_ms, 0, 600000, 5000);
}

static void type_provider(tctx *t, const char *name, const raw_provider *r,
			  alyx__oauth_provider *p, const char *const *scopes,
			  const char *const *urls)
{
	static const raw_provider none;
	char path[64];

	if (!r)
		r = &none;
	set_str(t, &p->client_id, r->client_id, "");
	set_str(t, &p->client_secret, r->client_secret, "");
	get_list(t, r->scopes, r->scopes_count, scopes, &p->scopes,
		 &p->n_scopes);
	set_str(t, &p->auth_url, r->auth_url, urls[0]);
	set_str(t, &p->token_url, r->token_url, urls[1]);
	set_str(t, &p->userinfo_url, r->userinfo_url, urls[2]);
	set_str(t, &p->emails_url, r->emails_url, urls[3]);
	if (t->rc != ALYX_OK)
		return;
	p->enabled = *p->client_id && *p->client_secret;
	if ((*p->client_id != '\0') != (*p->client_secret != '\0')) {
		snprintf(path, sizeof(path), "auth.oauth.%s.%s", name,
			 *p->client_id ? "client_secret" : "client_id");
		if (!find_pos(t->l, path))
			snprintf(path, sizeof(path), "auth.oauth.%s", name);
		t->rc = verr(t->l, path, "set both client_id and "
			     "client_secret, or neither");
	}
}

/* "" (e.g. an unset ${VAR}) is the same as a missing key. */
static void empty_is_unset(char **s)
{
	if (*s && !**s) {
		alyx__free(*s);
		*s = NULL;
	}
}

/* auth.email.webhook_secret: the Standard Webhooks form, whsec_ and the
 * base64 of 24 to 64 key bytes (what its libraries take on the receiving
 * side), decoded once here. */
static void webhook_key(tctx *t, const char *s, unsigned char **key,
			size_t *len)
{
	static const char pre[] = "whsec_";
	size_t n = strlen(s);

	if (strncmp(s, pre, sizeof(pre) - 1)) {
		t->rc = verr(t->l, "auth.email.webhook_secret", "expected "
			     "whsec_ and the base64 of 24 to 64 random bytes "
			     "(e.g. whsec_$(openssl rand -base64 32))");
		return;
	}
	s += sizeof(pre) - 1;
	n -= sizeof(pre) - 1;
	errno = 0;
	if (!alyx__base64_dec(s, n, key, len)) {
		if (errno == ENOMEM)
			t->rc = ALYX_E_NOMEM;
		else
			t->rc = verr(t->l, "auth.email.webhook_secret",
				     "the text after whsec_ is not base64");
		return;
	}
	if (*len < 24 || *len > 64)
		t->rc = verr(t->l, "auth.email.webhook_secret", "must hold 24 "
			     "to 64 key bytes (it holds %zu)", *len);
}

static void type_auth(tctx *t, const raw_auth *r)
{
	static const raw_auth none;
	static const raw_jwt njwt;
	static const raw_password npw;
	static const raw_oauth noauth;
	static const raw_rate nrate;
	static const raw_email nemail;
	static const char *const gh_scopes[] = {"user:email", NULL};
	static const char *const gg_scopes[] = {"email", "profile", NULL};
	static const char *const gh_urls[] = {
		"https://github.com/login/oauth/authorize",
		"https://github.com/login/oauth/access_token",
		"https://api.github.com/user",
		"https://api.github.com/user/emails",
	};
	static const char *const gg_urls[] = {
		"https://accounts.google.com/o/oauth2/v2/auth",
		"https://oauth2.googleapis.com/token",
		"https://openidconnect.googleapis.com/v1/userinfo",
		"",
	};
	__typeof__(t->cfg->auth) *a = &t->cfg->auth;
	const raw_jwt *j;
	const raw_password *pw;
	const raw_oauth *o;
	const raw_rate *rl;
	const raw_email *em;

	if (!r)
		r = &none;
	em = r->email ? r->email : &nemail;
	a->enabled = get_bool(t, "auth.enabled", r->enabled, true);
	j = r->jwt ? r->jwt : &njwt;
	pw = r->password ? r->password : &npw;
	o = r->oauth ? r->oauth : &noauth;
	rl = r->rate_limit ? r->rate_limit : &nrate;
	set_str(t, &a->jwt.secret, j->secret, "");
	if (t->rc == ALYX_OK && *a->jwt.secret && strlen(a->jwt.secret) < 32)
		t->rc = verr(t->l, "auth.jwt.secret", "must be at least 32 "
			     "characters (it is %zu)", strlen(a->jwt.secret));
	a->jwt.access_ttl_ms = get_duration(t, "auth.jwt.access_ttl",
					    j->access_ttl, 1000, 15 * 60000);
	a->jwt.refresh_ttl_ms = get_duration(t, "auth.jwt.refresh_ttl",
					     j->refresh_ttl, 1000,
					     7 * 86400000LL);
	set_str(t, &a->jwt.issuer, j->issuer, "alyx");
	a->password.min_length = int_of(t, "auth.password.min_length",
					 pw->min_length, 1, 1024, 8);
	a->password.require_uppercase = get_bool(
		t, "auth.password.require_uppercase", pw->require_uppercase,
		false);
	a->password.require_number = get_bool(
		t, "auth.password.require_number", pw->require_number, false);
	a->password.require_special = get_bool(
		t, "auth.password.require_special", pw->require_special,
		false);
	type_provider(t, "github", o->github, &a->oauth.github, gh_scopes,
		      gh_urls);
	type_provider(t, "google", o->google, &a->oauth.google, gg_scopes,
		      gg_urls);
	set_str(t, &a->oauth.redirect_url, o->redirect_url, NULL);
	set_str(t, &a->oauth.frontend_url, o->frontend_url, NULL);
	a->oauth.timeout_ms = get_duration(t, "auth.oauth.timeout", o->timeout,
					   100, 10000);
	a->oauth.state_ttl_ms = get_duration(t, "auth.oauth.state_ttl",
					     o->state_ttl, 1000, 600000);
	set_str(t, &a->email.webhook, em->webhook, NULL);
	a->email.webhook_timeout_ms = get_duration(
		t, "auth.email.webhook_timeout", em->webhook_timeout, 100,
		5000);
	set_str(t, &a->email.verify_url, em->verify_url, "/verify-email");
	set_str(t, &a->email.reset_url, em->reset_url, "/reset-password");
	a->email.verify_ttl_ms = get_duration(t, "auth.email.verify_ttl",
					      em->verify_ttl, 1000, 86400000);
	a->email.reset_ttl_ms = get_duration(t, "auth.email.reset_ttl",
					     em->reset_ttl, 1000, 3600000);
	empty_is_unset(&a->oauth.redirect_url);
	empty_is_unset(&a->oauth.frontend_url);
	empty_is_unset(&a->email.webhook);
	if (t->rc == ALYX_OK && a->email.webhook &&
	    strncmp(a->email.webhook, "http://", 7) &&
	    strncmp(a->email.webhook, "https://", 8))
		t->rc = verr(t->l, "auth.email.webhook", "expected an http:// "
			     "or https:// URL, got '%.64s'", a->email.webhook);
	set_str(t, &a->email.webhook_secret, em->webhook_secret, NULL);
	empty_is_unset(&a->email.webhook_secret);
	if (t->rc == ALYX_OK && a->email.webhook_secret)
		webhook_key(t, a->email.webhook_secret, &a->email.webhook_key,
			    &a->email.webhook_key_len);
	get_rate(t, "auth.rate_limit.login", rl->login, 5, 60000,
		 &a->rate_limit.login);
	get_rate(t, "auth.rate_limit.register", rl->register_, 3, 60000,
		 &a->rate_limit.register_);
	get_rate(t, "auth.rate_limit.password_reset", rl->password_reset, 3,
		 3600000, &a->rate_limit.password_reset);
	get_rate(t, "auth.rate_limit.oauth", rl->oauth, 10, 60000,
		 &a->rate_limit.oauth);
}

static void type_runtime(tctx *t, const char *lang, const raw_runtime *r,
			 alyx__fn_runtime *rt)
{
	static const raw_runtime none;
	char path[80];

	if (!r)
		r = &none;
#define P(k) (snprintf(path, sizeof(path), "functions.%s.%s", lang, k), path)
	rt->min_warm = int_of(t, P("min_warm"), r->min_warm, 0, 1024, 1);
	rt->max_instances = int_of(t, P("max_instances"), r->max_instances, 1,
				   1024, 10);
	rt->idle_timeout_ms = get_duration(t, P("idle_timeout"),
					   r->idle_timeout, 0, 60000);
	rt->exec_timeout_ms = get_duration(t, P("exec_timeout"),
					   r->exec_timeout, 1, 30000);
	rt->memory_limit = get_size(t, P("memory_limit"), r->memory_limit,
				    16 << 20, 256 << 20);
	rt->cpu_limit = 1.0;
	if (t->rc == ALYX_OK && r->cpu_limit) {
		char *end;
		double d = strtod(r->cpu_limit, &end);

		if (*end || end == r->cpu_limit || !(d > 0 && d <= 1024))
			t->rc = verr(t->l, P("cpu_limit"), "expected a number "
				     "of cores above 0, got '%.64s'",
				     r->cpu_limit);
		else
			rt->cpu_limit = d;
	}
	set_str(t, &rt->image, r->image, strcmp(lang, "node") ?
		"alyx-python:local" : "alyx-node:local");
	if (t->rc == ALYX_OK && rt->min_warm > rt->max_instances)
		t->rc = verr(t->l, P("min_warm"), "min_warm %d is more than "
			     "max_instances %d", rt->min_warm,
			     rt->max_instances);
#undef P
}

static void type_rest(tctx *t, const raw_top *r)
{
	static const raw_functions nf;
	static const raw_container nct;
	static const raw_realtime nrt;
	static const raw_dev ndev;
	static const raw_log nlog;
	static const char *const runners[] = {"process", "container"};
	static const char *const sandboxes[] = {"auto", "bwrap", "none"};
	static const char *const levels[] = {"info", "debug", "warn",
					     "error"};
	static const char *const formats[] = {"json", "logfmt"};
	static const char *const langs[] = {"typescript", "go", "python"};
	alyx__config *c = t->cfg;
	const raw_functions *f = r->functions ? r->functions : &nf;
	const raw_realtime *rt = r->realtime ? r->realtime : &nrt;
	const raw_dev *d = r->dev ? r->dev : &ndev;
	const raw_log *lg = r->log ? r->log : &nlog;
	size_t i, j;

	c->functions.enabled = get_bool(t, "functions.enabled", f->enabled,
					true);
	set_str(t, &c->functions.dir, f->dir, "functions");
	get_choice(t, "functions.runner", f->runner, runners, 2,
		   &c->functions.runner);
	get_choice(t, "functions.sandbox", f->sandbox, sandboxes, 3,
		   &c->functions.sandbox);
	set_str(t, &c->functions.container_socket, f->container_socket,
		"/var/run/docker.sock");
	{
		const raw_container *ct = f->container ? f->container : &nct;

		c->functions.container.pids_limit = int_of(t,
			"functions.container.pids_limit", ct->pids_limit, 16,
			1 << 20, 128);
		c->functions.container.start_timeout_ms = get_duration(t,
			"functions.container.start_timeout", ct->start_timeout,
			100, 30000);
		set_str(t, &c->functions.container.user, ct->user, "");
	}
	/* A function's transaction holds the writer: other processes'
	 * writers wait for it up to the busy timeout, so a bound set here
	 * may not be longer (the default stays 5 s whatever the busy
	 * timeout, as before the setting existed). */
	c->functions.tx_timeout_ms = get_duration(t,
		"functions.transaction_timeout", f->transaction_timeout, 100,
		5000);
	if (t->rc == ALYX_OK && f->transaction_timeout &&
	    c->functions.tx_timeout_ms > c->database.busy_timeout_ms)
		t->rc = verr(t->l, "functions.transaction_timeout", "%lld ms "
			     "is more than database.busy_timeout_ms (%lld): "
			     "other writers would give up waiting for it",
			     (long long)c->functions.tx_timeout_ms,
			     (long long)c->database.busy_timeout_ms);
	type_runtime(t, "node", f->node, &c->functions.node);
	type_runtime(t, "python", f->python, &c->functions.python);

	c->realtime.poll_interval_ms = int_of(t, "realtime.poll_interval_ms",
					      rt->poll_interval_ms, 1, 60000,
					      50);
	c->realtime.max_connections = int_of(t, "realtime.max_connections",
					     rt->max_connections, 1, 1000000,
					     10000);
	c->realtime.max_subscriptions = int_of(t, "realtime.max_subscriptions",
					       rt->max_subscriptions, 1,
					       100000, 100);
	c->realtime.snapshot_limit = int_of(t, "realtime.snapshot_limit",
					    rt->snapshot_limit, 1, 100000,
					    1000);
	c->realtime.change_retention_ms = get_duration(
		t, "realtime.change_retention", rt->change_retention, 1000,
		86400000);
	c->realtime.max_message = get_size(t, "realtime.max_message",
					   rt->max_message, 1024, 64 * 1024);
	c->realtime.send_queue = get_size(t, "realtime.send_queue",
					  rt->send_queue, 4096,
					  4 * 1024 * 1024);
	c->realtime.idle_timeout_ms = get_duration(
		t, "realtime.idle_timeout", rt->idle_timeout, 100, 60000);
	c->realtime.ping_interval_ms = get_duration(
		t, "realtime.ping_interval", rt->ping_interval, 100, 30000);
	c->realtime.token_check_ms = get_duration(
		t, "realtime.token_check", rt->token_check, 100, 30000);

	c->dev.watch = get_bool(t, "dev.watch", d->watch, true);
	c->dev.admin_ui = get_bool(t, "dev.admin_ui", d->admin_ui, true);
	get_list(t, d->generate, d->generate_count, NULL, &c->dev.generate,
		 &c->dev.n_generate);
	for (i = 0; t->rc == ALYX_OK && i < c->dev.n_generate; i++) {
		char path[40];

		for (j = 0; j < ALYX_ARRAY_LEN(langs); j++)
			if (!strcmp(c->dev.generate[i], langs[j]))
				break;
		snprintf(path, sizeof(path), "dev.generate[%zu]", i);
		if (j == ALYX_ARRAY_LEN(langs))
			t->rc = verr(t->l, path, "expected typescript, go or "
				     "python, got '%.64s'", c->dev.generate[i]);
	}
	set_str(t, &c->dev.generate_output, d->generate_output, "generated");

	get_choice(t, "log.level", lg->level, levels, 4, &c->log.level);
	get_choice(t, "log.format", lg->format, formats, 2, &c->log.format);
}

static int type_all(lctx *l, const raw_top *r, alyx__config *cfg)
{
	static const raw_top none;
	tctx t = {l, cfg, ALYX_OK};

	if (!r)
		r = &none;
	type_server(&t, r->server);
	type_database(&t, r->database);
	type_auth(&t, r->auth);
	type_rest(&t, r);
	return t.rc;
}

/* ---- entry points ---- */

static int load_text(const char *file, const char *text, size_t len,
		     alyx__config *cfg, alyx__err *err)
{
	lctx c;
	cyaml_config_t cc;
	raw_top *raw = NULL;
	char *expanded = NULL;
	const char *base = strrchr(file, '/');
	cyaml_err_t e;
	size_t i;
	int rc;

	memset(&c, 0, sizeof(c));
	c.file = base ? base + 1 : file;
	c.text = text;
	c.len = len;
	c.err = err;
	alyx__buf_init(&c.log, 64 << 10);
	if (len > CONFIG_MAX_BYTES) {
		rc = alyx__err_set(err, ALYX_E_TOOBIG, NULL,
				   "%s is larger than %zu bytes", c.file,
				   CONFIG_MAX_BYTES);
		goto out;
	}
	if (!index_lines(&c)) {
		rc = nomem(&c);
		goto out;
	}
	rc = scan(&c);
	if (rc != ALYX_OK)
		goto out;
	expanded = rewrite(&c, &rc);
	if (!expanded) {
		rc = rc == ALYX_E_NOMEM ? nomem(&c) :
			alyx__err_set(err, ALYX_E_TOOBIG, NULL,
				      "%s: expanded text is too large",
				      c.file);
		goto out;
	}
	/* libcyaml refuses an empty document; that is all defaults. */
	if (c.n_pos > 0) {
		e = cyaml_load_data((const uint8_t *)expanded,
				    strlen(expanded), cy_config(&c, &cc),
				    &top_schema, (cyaml_data_t **)&raw, NULL);
		if (e != CYAML_OK) {
			rc = cyaml_error(&c, e);
			goto out;
		}
	}
	rc = type_all(&c, raw, cfg);
out:
	if (raw)
		cyaml_free(cy_config(&c, &cc), &top_schema, raw, 0);
	alyx__free(expanded);
	for (i = 0; i < c.n_repl; i++)
		alyx__free(c.repl[i].text);
	alyx__free(c.repl);
	alyx__free(c.pos);
	alyx__free(c.line_start);
	alyx__buf_free(&c.log);
	return rc;
}

int alyx__config_load(const char *path, alyx__config **out, alyx__err *err)
{
	alyx__config *cfg = NULL;
	char *file = NULL, *text = NULL;
	size_t len = 0;
	struct stat st;
	int rc = ALYX_OK;

	*out = NULL;
	cfg = alyx__calloc(1, sizeof(*cfg));
	if (!cfg)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	if (path && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		file = alyx__path_join(path, "alyx.yaml");
		if (!file) {
			rc = alyx__err_set(err, ALYX_E_NOMEM, NULL,
					   "out of memory");
			goto out;
		}
		if (stat(file, &st) != 0) {
			alyx__free(file);
			file = NULL;
		}
	} else if (path) {
		file = alyx__strdup(path);
		if (!file) {
			rc = alyx__err_set(err, ALYX_E_NOMEM, NULL,
					   "out of memory");
			goto out;
		}
	}
	if (file) {
		rc = alyx__read_file(file, CONFIG_MAX_BYTES, &text, &len, err);
		if (rc != ALYX_OK)
			goto out;
	}
	rc = load_text(file ? file : "alyx.yaml", text ? text : "",
		       text ? len : 0, cfg, err);
	if (rc == ALYX_OK) {
		cfg->file = file;
		file = NULL;
	}
out:
	alyx__free(text);
	alyx__free(file);
	if (rc != ALYX_OK) {
		alyx__config_free(cfg);
		return rc;
	}
	*out = cfg;
	return ALYX_OK;
}

static void free_list(char **v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		alyx__free(v[i]);
	alyx__free(v);
}

static void free_provider(alyx__oauth_provider *p)
{
	alyx__free(p->client_id);
	alyx__free(p->client_secret);
	free_list(p->scopes, p->n_scopes);
	alyx__free(p->auth_url);
	alyx__free(p->token_url);
	alyx__free(p->userinfo_url);
	alyx__free(p->emails_url);
}

void alyx__config_free(alyx__config *c)
{
	if (!c)
		return;
	alyx__free(c->file);
	alyx__free(c->server.host);
	alyx__free(c->server.tls_cert);
	alyx__free(c->server.tls_key);
	free_list(c->server.cors_origins, c->server.n_cors_origins);
	alyx__free(c->server.loop);
	alyx__free(c->database.path);
	alyx__free(c->auth.jwt.secret);
	alyx__free(c->auth.jwt.issuer);
	free_provider(&c->auth.oauth.github);
	free_provider(&c->auth.oauth.google);
	alyx__free(c->auth.oauth.redirect_url);
	alyx__free(c->auth.oauth.frontend_url);
	alyx__free(c->auth.email.webhook);
	alyx__free(c->auth.email.webhook_secret);
	if (c->auth.email.webhook_key)
		OPENSSL_cleanse(c->auth.email.webhook_key,
				c->auth.email.webhook_key_len);
	alyx__free(c->auth.email.webhook_key);
	alyx__free(c->auth.email.verify_url);
	alyx__free(c->auth.email.reset_url);
	alyx__free(c->functions.dir);
	alyx__free(c->functions.runner);
	alyx__free(c->functions.sandbox);
	alyx__free(c->functions.container_socket);
	alyx__free(c->functions.container.user);
	alyx__free(c->functions.node.image);
	alyx__free(c->functions.python.image);
	free_list(c->dev.generate, c->dev.n_generate);
	alyx__free(c->dev.generate_output);
	alyx__free(c->log.level);
	alyx__free(c->log.format);
	alyx__free(c);
}

/* ---- JSON ---- */

static void jkey(alyx_buf *b, bool *first, const char *k)
{
	if (!*first)
		alyx__buf_addc(b, ',');
	*first = false;
	alyx__json_strz(b, k);
	alyx__buf_addc(b, ':');
}

static void jstr(alyx_buf *b, bool *first, const char *k, const char *v)
{
	jkey(b, first, k);
	alyx__json_strz(b, v);
}

static void jint(alyx_buf *b, bool *first, const char *k, int64_t v)
{
	jkey(b, first, k);
	alyx__json_i64(b, v);
}

static void jbool(alyx_buf *b, bool *first, const char *k, bool v)
{
	jkey(b, first, k);
	alyx__json_bool(b, v);
}

static void jsecret(alyx_buf *b, bool *first, const char *k, const char *v,
		    bool mask)
{
	jstr(b, first, k, mask && v && *v ? "********" : v);
}

static void jlist(alyx_buf *b, bool *first, const char *k, char **v,
		  size_t n)
{
	size_t i;

	jkey(b, first, k);
	alyx__buf_addc(b, '[');
	for (i = 0; i < n; i++) {
		if (i)
			alyx__buf_addc(b, ',');
		alyx__json_strz(b, v[i]);
	}
	alyx__buf_addc(b, ']');
}

static void jrate(alyx_buf *b, bool *first, const char *k,
		  const alyx__rate *r)
{
	const char *unit = r->window_ms == 1000 ? "second" :
			   r->window_ms == 60000 ? "minute" :
			   r->window_ms == 3600000 ? "hour" : "day";

	jkey(b, first, k);
	alyx__buf_addf(b, "\"%d/%s\"", r->count, unit);
}

static void jprovider(alyx_buf *b, bool *first, const char *k,
		      const alyx__oauth_provider *p, bool mask)
{
	bool f = true;

	jkey(b, first, k);
	alyx__buf_addc(b, '{');
	jbool(b, &f, "enabled", p->enabled);
	jstr(b, &f, "client_id", p->client_id);
	jsecret(b, &f, "client_secret", p->client_secret, mask);
	jlist(b, &f, "scopes", p->scopes, p->n_scopes);
	jstr(b, &f, "auth_url", p->auth_url);
	jstr(b, &f, "token_url", p->token_url);
	jstr(b, &f, "userinfo_url", p->userinfo_url);
	jstr(b, &f, "emails_url", p->emails_url);
	alyx__buf_addc(b, '}');
}

static void jruntime(alyx_buf *b, bool *first, const char *k,
		     const alyx__fn_runtime *r)
{
	bool f = true;

	jkey(b, first, k);
	alyx__buf_addc(b, '{');
	jint(b, &f, "min_warm", r->min_warm);
	jint(b, &f, "max_instances", r->max_instances);
	jint(b, &f, "idle_timeout", r->idle_timeout_ms);
	jint(b, &f, "exec_timeout", r->exec_timeout_ms);
	jint(b, &f, "memory_limit", r->memory_limit);
	jkey(b, &f, "cpu_limit");
	alyx__json_f64(b, r->cpu_limit);
	jstr(b, &f, "image", r->image);
	alyx__buf_addc(b, '}');
}

char *alyx__config_to_json(const alyx__config *c, bool mask)
{
	alyx_buf b;
	bool top = true, f, g;

	if (!c)
		return NULL;
	alyx__buf_init(&b, 0);
	alyx__buf_addc(&b, '{');

	jkey(&b, &top, "server");
	f = true;
	alyx__buf_addc(&b, '{');
	jstr(&b, &f, "host", c->server.host);
	jint(&b, &f, "port", c->server.port);
	jint(&b, &f, "threads", c->server.threads);
	jkey(&b, &f, "tls");
	g = true;
	alyx__buf_addc(&b, '{');
	/* Unset TLS files are left out rather than null: readers treat a
	 * present key as a path. */
	if (c->server.tls_cert)
		jstr(&b, &g, "cert", c->server.tls_cert);
	if (c->server.tls_key)
		jstr(&b, &g, "key", c->server.tls_key);
	alyx__buf_adds(&b, "},\"cors\":{");
	g = true;
	jlist(&b, &g, "origins", c->server.cors_origins,
	      c->server.n_cors_origins);
	alyx__buf_addc(&b, '}');
	jint(&b, &f, "max_body", c->server.max_body);
	jint(&b, &f, "max_header", c->server.max_header);
	jint(&b, &f, "request_timeout", c->server.request_timeout_ms);
	if (c->server.loop)
		jstr(&b, &f, "loop", c->server.loop);
	alyx__buf_addc(&b, '}');

	jkey(&b, &top, "database");
	f = true;
	alyx__buf_addc(&b, '{');
	jstr(&b, &f, "path", c->database.path);
	jint(&b, &f, "cache_size_mb", c->database.cache_size_mb);
	jint(&b, &f, "busy_timeout_ms", c->database.busy_timeout_ms);
	alyx__buf_addc(&b, '}');

	jkey(&b, &top, "auth");
	alyx__buf_adds(&b, "{\"enabled\":");
	alyx__json_bool(&b, c->auth.enabled);
	alyx__buf_adds(&b, ",\"jwt\":{");
	f = true;
	jsecret(&b, &f, "secret", c->auth.jwt.secret, mask);
	jint(&b, &f, "access_ttl", c->auth.jwt.access_ttl_ms);
	jint(&b, &f, "refresh_ttl", c->auth.jwt.refresh_ttl_ms);
	jstr(&b, &f, "issuer", c->auth.jwt.issuer);
	alyx__buf_adds(&b, "},\"password\":{");
	f = true;
	jint(&b, &f, "min_length", c->auth.password.min_length);
	jbool(&b, &f, "require_uppercase", c->auth.password.require_uppercase);
	jbool(&b, &f, "require_number", c->auth.password.require_number);
	jbool(&b, &f, "require_special", c->auth.password.require_special);
	alyx__buf_adds(&b, "},\"oauth\":{");
	f = true;
	jprovider(&b, &f, "github", &c->auth.oauth.github, mask);
	jprovider(&b, &f, "google", &c->auth.oauth.google, mask);
	if (c->auth.oauth.redirect_url)
		jstr(&b, &f, "redirect_url", c->auth.oauth.redirect_url);
	if (c->auth.oauth.frontend_url)
		jstr(&b, &f, "frontend_url", c->auth.oauth.frontend_url);
	jint(&b, &f, "timeout", c->auth.oauth.timeout_ms);
	jint(&b, &f, "state_ttl", c->auth.oauth.state_ttl_ms);
	alyx__buf_adds(&b, "},\"email\":{");
	f = true;
	if (c->auth.email.webhook)
		jstr(&b, &f, "webhook", c->auth.email.webhook);
	jint(&b, &f, "webhook_timeout", c->auth.email.webhook_timeout_ms);
	if (c->auth.email.webhook_secret)
		jsecret(&b, &f, "webhook_secret", c->auth.email.webhook_secret,
			mask);
	jstr(&b, &f, "verify_url", c->auth.email.verify_url);
	jstr(&b, &f, "reset_url", c->auth.email.reset_url);
	jint(&b, &f, "verify_ttl", c->auth.email.verify_ttl_ms);
	jint(&b, &f, "reset_ttl", c->auth.email.reset_ttl_ms);
	alyx__buf_adds(&b, "},\"rate_limit\":{");
	f = true;
	jrate(&b, &f, "login", &c->auth.rate_limit.login);
	jrate(&b, &f, "register", &c->auth.rate_limit.register_);
	jrate(&b, &f, "password_reset", &c->auth.rate_limit.password_reset);
	jrate(&b, &f, "oauth", &c->auth.rate_limit.oauth);
	alyx__buf_adds(&b, "}}");

	jkey(&b, &top, "functions");
	f = true;
	alyx__buf_addc(&b, '{');
	jbool(&b, &f, "enabled", c->functions.enabled);
	jstr(&b, &f, "dir", c->functions.dir);
	jstr(&b, &f, "runner", c->functions.runner);
	jstr(&b, &f, "sandbox", c->functions.sandbox);
	jstr(&b, &f, "container_socket", c->functions.container_socket);
	jint(&b, &f, "transaction_timeout", c->functions.tx_timeout_ms);
	jkey(&b, &f, "container");
	g = true;
	alyx__buf_addc(&b, '{');
	jint(&b, &g, "pids_limit", c->functions.container.pids_limit);
	jint(&b, &g, "start_timeout",
	     c->functions.container.start_timeout_ms);
	jstr(&b, &g, "user", c->functions.container.user);
	alyx__buf_addc(&b, '}');
	jruntime(&b, &f, "node", &c->functions.node);
	jruntime(&b, &f, "python", &c->functions.python);
	alyx__buf_addc(&b, '}');

	jkey(&b, &top, "realtime");
	f = true;
	alyx__buf_addc(&b, '{');
	jint(&b, &f, "poll_interval_ms", c->realtime.poll_interval_ms);
	jint(&b, &f, "max_connections", c->realtime.max_connections);
	jint(&b, &f, "max_subscriptions", c->realtime.max_subscriptions);
	jint(&b, &f, "snapshot_limit", c->realtime.snapshot_limit);
	jint(&b, &f, "change_retention", c->realtime.change_retention_ms);
	jint(&b, &f, "max_message", c->realtime.max_message);
	jint(&b, &f, "send_queue", c->realtime.send_queue);
	jint(&b, &f, "idle_timeout", c->realtime.idle_timeout_ms);
	jint(&b, &f, "ping_interval", c->realtime.ping_interval_ms);
	jint(&b, &f, "token_check", c->realtime.token_check_ms);
	alyx__buf_addc(&b, '}');

	jkey(&b, &top, "dev");
	f = true;
	alyx__buf_addc(&b, '{');
	jbool(&b, &f, "watch", c->dev.watch);
	jbool(&b, &f, "admin_ui", c->dev.admin_ui);
	jlist(&b, &f, "generate", c->dev.generate, c->dev.n_generate);
	jstr(&b, &f, "generate_output", c->dev.generate_output);
	alyx__buf_addc(&b, '}');

	jkey(&b, &top, "log");
	f = true;
	alyx__buf_addc(&b, '{');
	jstr(&b, &f, "level", c->log.level);
	jstr(&b, &f, "format", c->log.format);
	alyx__buf_adds(&b, "}}");
	return alyx__buf_take(&b);
}
