/* util.c - option parsing, error reporting and file helpers of the CLI. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "json.h"

/* Files the CLI reads (seed data, documents) are capped like libalyx's
 * own inputs. */
#define MAX_FILE (256u << 20)

/* ---- option parsing ---- */

void cli_parser_init(struct cli_parser *p, struct cli *g, int argc,
		     char **argv, const struct cli_opt *opts)
{
	p->argc = argc;
	p->argv = argv;
	p->i = 1;
	p->only_pos = false;
	p->opts = opts;
	p->g = g;
}

static const struct cli_opt *find_long(const struct cli_opt *o,
				       const char *name, size_t n)
{
	for (; o->name; o++)
		if (strlen(o->name) == n && strncmp(o->name, name, n) == 0)
			return o;
	return NULL;
}

int cli_next(struct cli_parser *p, const char **arg)
{
	const struct cli_opt *o = NULL;
	const char *a, *inline_val = NULL;

	*arg = NULL;
	if (p->i >= p->argc)
		return OPT_END;
	a = p->argv[p->i++];
	if (p->only_pos || a[0] != '-' || a[1] == '\0') {
		*arg = a;
		return OPT_POS;
	}
	if (strcmp(a, "--") == 0) {
		p->only_pos = true;
		return cli_next(p, arg);
	}
	if (a[1] == '-') {
		const char *eq = strchr(a + 2, '=');
		size_t n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);

		o = find_long(p->opts, a + 2, n);
		if (eq)
			inline_val = eq + 1;
	} else if (a[1] >= '0' && a[1] <= '9') {
		/* A negative number is a value, not an option. */
		*arg = a;
		return OPT_POS;
	} else if (a[2] == '\0') {
		for (const struct cli_opt *s = p->opts; s->name; s++)
			if (s->short_name == a[1])
				o = s;
	}
	if (!o) {
		cli_usage_error(p->g, "unknown option '%s'", a);
		return OPT_ERR;
	}
	if (o->has_arg != ARG_REQUIRED) {
		if (inline_val && o->has_arg == ARG_INLINE)
			*arg = inline_val;
		else if (inline_val) {
			cli_usage_error(p->g, "option '--%s' takes no value",
					o->name);
			return OPT_ERR;
		}
		return o->id;
	}
	if (inline_val) {
		*arg = inline_val;
	} else if (p->i < p->argc) {
		*arg = p->argv[p->i++];
	} else {
		cli_usage_error(p->g, "option '%s' needs a value", a);
		return OPT_ERR;
	}
	return o->id;
}

int cli_common(struct cli *g, int id, const char *arg)
{
	switch (id) {
	case OPT_HELP:
		fputs(g->usage, stdout);
		return CLI_OK;
	case OPT_DIR:
		g->dir = arg;
		return CLI_CONTINUE;
	case OPT_JSON:
		g->json = true;
		return CLI_CONTINUE;
	case OPT_ERR:
		return CLI_USAGE;
	default:
		return -1;
	}
}

int cli_parse_simple(struct cli *g, int argc, char **argv, const char **pos,
		     int min_pos, int max_pos, int *npos)
{
	static const struct cli_opt opts[] = {CLI_COMMON_OPTS, {0}};
	struct cli_parser p;
	const char *arg;
	int id, rc;

	*npos = 0;
	cli_parser_init(&p, g, argc, argv, opts);
	while ((id = cli_next(&p, &arg)) != OPT_END) {
		if (id == OPT_POS) {
			if (*npos >= max_pos)
				return cli_usage_error(g,
					"unexpected argument '%s'", arg);
			pos[(*npos)++] = arg;
			continue;
		}
		rc = cli_common(g, id, arg);
		if (rc != CLI_CONTINUE)
			return rc;
	}
	if (*npos < min_pos)
		return cli_usage_error(g, "missing argument");
	return CLI_CONTINUE;
}

int cli_action_find(const char *const *names, int n, const char *arg)
{
	for (int i = 1; i < n; i++)
		if (strcmp(arg, names[i]) == 0)
			return i;
	return 0;
}

int cli_action_set(const struct cli *g, const char *const *names,
		   int *action, int a)
{
	if (*action != 0 && *action != a)
		return cli_usage_error(g, "choose one action (%s or %s)",
				       names[*action], names[a]);
	*action = a;
	return CLI_CONTINUE;
}

/* ---- errors ---- */

void cli_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void verror(const struct cli *g, const char *name, const char *fmt,
		   va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (g && g->json) {
		fputs("{\"error\":{\"code\":", stderr);
		cli_json_str(stderr, name);
		fputs(",\"message\":", stderr);
		cli_json_str(stderr, msg);
		fputs(",\"details\":{}}}\n", stderr);
	} else {
		fprintf(stderr, "alyx: %s: %s\n", name, msg);
	}
}

int cli_usage_error(const struct cli *g, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verror(g, "USAGE_ERROR", fmt, ap);
	va_end(ap);
	if (g && !g->json)
		fprintf(stderr, "Run 'alyx %s%s--help' for usage.\n",
			g->cmd ? g->cmd : "", g->cmd ? " " : "");
	return CLI_USAGE;
}

int cli_error(const struct cli *g, int exit_code, const char *name,
	      const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verror(g, name, fmt, ap);
	va_end(ap);
	return exit_code;
}

int cli_exit_code(int rc)
{
	switch (rc) {
	case ALYX_OK:
		return CLI_OK;
	case ALYX_E_MISUSE:	/* a bad argument, e.g. a migration name */
		return CLI_USAGE;
	case ALYX_E_CONFIG:
	case ALYX_E_SCHEMA:
		return CLI_BADPROJECT;
	case ALYX_E_MIGRATION:
	case ALYX_E_CHECKSUM:
		return CLI_MIGRATION;
	case ALYX_E_BADQUERY:
	case ALYX_E_BADJSON:
	case ALYX_E_VALIDATION:
	case ALYX_E_TOOBIG:
		return CLI_BADINPUT;
	case ALYX_E_NOTFOUND:
		return CLI_NOTFOUND;
	case ALYX_E_CONFLICT:
	case ALYX_E_EXISTS:
		return CLI_CONFLICT;
	default:
		return CLI_FAIL;
	}
}

bool cli_has_marker(const char *desc)
{
	return desc[0] && strchr("+-!~", desc[0]) && desc[1] == ' ';
}

/* One line per item of a details array: changes, field errors, ... */
static void print_detail_item(const cj *it)
{
	const char *desc, *field, *msg;

	if (it->type != CJ_OBJ) {
		fprintf(stderr, "  - %s\n", cj_text(it));
		return;
	}
	desc = cj_getstr(it, "description");
	field = cj_getstr(it, "field");
	msg = cj_getstr(it, "message");
	if (desc && cli_has_marker(desc))
		fprintf(stderr, "  %s\n", desc);
	else if (desc)
		fprintf(stderr, "  - %s\n", desc);
	else if (field && msg)
		fprintf(stderr, "  - %s: %s\n", field, msg);
	else if (msg)
		fprintf(stderr, "  - %s\n", msg);
	else {
		fputs("  -", stderr);
		for (const cj *m = it->kid; m; m = m->next)
			fprintf(stderr, " %s=%s", m->key, cj_text(m));
		fputc('\n', stderr);
	}
}

/* Details for humans: arrays become bullet lists, scalars "key: value";
 * anything else is shown as the raw JSON. */
static void print_details(const char *details)
{
	cj *d;

	if (!details || !*details || strcmp(details, "{}") == 0)
		return;
	d = cj_parse(details, strlen(details));
	if (!d || d->type != CJ_OBJ) {
		fprintf(stderr, "  details: %s\n", details);
		cj_free(d);
		return;
	}
	for (const cj *m = d->kid; m; m = m->next) {
		if (m->type == CJ_ARR) {
			if (!m->kid)
				continue;
			fprintf(stderr, "  %s:\n", m->key);
			for (const cj *it = m->kid; it; it = it->next)
				print_detail_item(it);
		} else if (m->type == CJ_OBJ) {
			fprintf(stderr, "  details: %s\n", details);
			break;
		} else {
			fprintf(stderr, "  %s: %s\n", m->key, cj_text(m));
		}
	}
	cj_free(d);
}

int cli_lib_error(const struct cli *g, const alyx *a, int rc)
{
	int code = alyx_errcode(a);

	/* The status returned is authoritative; the handle's record only
	 * adds the message and details when it describes this failure. */
	if (code != rc)
		code = rc;
	if (g && g->json) {
		char *ej = alyx_error_json(a);

		if (ej && alyx_errcode(a) == rc)
			fprintf(stderr, "{\"error\":%s}\n", ej);
		else
			fprintf(stderr,
				"{\"error\":{\"code\":\"%s\",\"message\":\"%s\","
				"\"details\":{}}}\n",
				alyx_errname(rc), alyx_strerror(rc));
		alyx_free(ej);
	} else if (alyx_errcode(a) == rc) {
		fprintf(stderr, "alyx: %s: %s\n", alyx_errname(code),
			alyx_errmsg(a));
		print_details(alyx_errdetails(a));
	} else {
		fprintf(stderr, "alyx: %s: %s\n", alyx_errname(code),
			alyx_strerror(code));
	}
	return cli_exit_code(rc);
}

/* ---- projects and files ---- */

static bool file_exists(const char *dir, const char *name)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int cli_open(const struct cli *g, unsigned flags, alyx **out)
{
	struct stat st;
	int rc;

	*out = NULL;
	if (stat(g->dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return cli_error(g, CLI_NOPROJECT, "NOT_A_PROJECT",
				 "'%s' is not a directory", g->dir);
	if (!file_exists(g->dir, "alyx.yaml") &&
	    !file_exists(g->dir, "schema.yaml"))
		return cli_error(g, CLI_NOPROJECT, "NOT_A_PROJECT",
				 "'%s' has no alyx.yaml or schema.yaml "
				 "(create a project with 'alyx init')",
				 g->dir);
	rc = alyx_open(g->dir, flags, out);
	if (rc != ALYX_OK) {
		int code = cli_lib_error(g, NULL, rc);

		if (rc == ALYX_E_NOTFOUND && !(flags & ALYX_OPEN_CREATE) &&
		    !g->json)
			fprintf(stderr, "Run 'alyx migrate apply' to create the "
				"database from schema.yaml.\n");
		return code;
	}
	return CLI_OK;
}

int cli_read_file(const struct cli *g, const char *path, char **out,
		  size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0;
	int rc = CLI_OK;

	*out = NULL;
	*len = 0;
	if (!f)
		return cli_error(g, errno == ENOENT ? CLI_NOTFOUND : CLI_FAIL,
				 errno == ENOENT ? "NOT_FOUND" : "IO_ERROR",
				 "cannot open '%s': %s", path,
				 strerror(errno));
	for (;;) {
		size_t got;

		if (cap - n < 4096 + 1) {
			char *nb;

			cap = cap ? cap * 2 : 65536;
			nb = realloc(buf, cap);
			if (!nb) {
				rc = cli_error(g, CLI_FAIL, "OUT_OF_MEMORY",
					       "reading '%s'", path);
				goto out;
			}
			buf = nb;
		}
		got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
		if (n > MAX_FILE) {
			rc = cli_error(g, CLI_BADINPUT, "TOO_LARGE",
				       "'%s' is larger than %u MiB", path,
				       MAX_FILE >> 20);
			goto out;
		}
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		rc = cli_error(g, CLI_FAIL, "IO_ERROR", "cannot read '%s': %s",
			       path, strerror(errno));
		goto out;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	buf = NULL;
out:
	free(buf);
	if (f != stdin)
		fclose(f);
	return rc;
}

int cli_write_file(const struct cli *g, const char *path, const char *data,
		   size_t len)
{
	bool to_stdout = strcmp(path, "-") == 0;
	char tmp[PATH_MAX];
	FILE *f;
	int ok;

	/* A file is written beside its final name and renamed into place,
	 * so a failed dump never leaves half a file behind. */
	if (!to_stdout && (size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-%ld",
					   path, (long)getpid()) >= sizeof(tmp))
		return cli_error(g, CLI_FAIL, "IO_ERROR", "path too long: %s",
				 path);
	f = to_stdout ? stdout : fopen(tmp, "wb");
	if (!f)
		return cli_error(g, CLI_FAIL, "IO_ERROR",
				 "cannot create '%s': %s", path,
				 strerror(errno));
	ok = fwrite(data, 1, len, f) == len;
	ok = (to_stdout ? fflush(f) : fclose(f)) == 0 && ok;
	if (ok && !to_stdout)
		ok = rename(tmp, path) == 0;
	if (!ok) {
		int e = errno;

		if (!to_stdout)
			unlink(tmp);
		return cli_error(g, CLI_FAIL, "IO_ERROR",
				 "cannot write '%s': %s", path, strerror(e));
	}
	return CLI_OK;
}

void cli_url_encode(FILE *f, const char *s, bool list)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		    c == '.' || c == '~' || (list && c == ','))
			fputc(c, f);
		else
			fprintf(f, "%%%c%c", hex[c >> 4], hex[c & 15]);
	}
}

void cli_qs_add(FILE *f, const char *name, const char *value, bool list)
{
	if (ftell(f) > 0)
		fputc('&', f);
	fprintf(f, "%s=", name);
	cli_url_encode(f, value, list);
}

void cli_print_json(const char *json, bool pretty)
{
	cj_print(stdout, json, strlen(json), pretty);
}
