/*
 * cmd-init.c - `alyx init [name] --template basic|blog|saas`: creates a
 * project directory from one of the templates embedded in the binary.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "templates.h"

static const char usage[] =
"Usage: alyx init [name] [--template basic|blog|saas]\n"
"\n"
"Creates a project: alyx.yaml, schema.yaml, migrations/, functions/ and a\n"
".gitignore.  <name> is the new directory (relative to --dir); without it\n"
"the --dir directory itself (default: the current one) is initialised.\n"
"The directory must not exist yet or be empty.\n"
"\n"
"Options:\n"
"  -t, --template T    basic (a to-do list, the default), blog (the users,\n"
"                      posts and comments of the Alyx plan) or saas\n"
"                      (organisations, members and projects)\n"
"  -C, --dir DIR       where to create <name> (default: the current one)\n"
"      --json          print {\"path\",\"template\",\"files\"} as JSON\n"
"  -h, --help          show this help\n"
"\n"
"Then: cd <name> && alyx migrate apply\n";

enum { OPT_TEMPLATE = 1 };

static const struct cli_opt opts[] = {
	CLI_COMMON_OPTS,
	{"template", 't', ARG_REQUIRED, OPT_TEMPLATE},
	{0},
};

/* True if some embedded file lives under "<name>/". */
static bool template_exists(const char *name)
{
	size_t n = strlen(name);

	if (strcmp(name, "common") == 0)
		return false;
	for (const struct cli_template *t = cli_templates; t->path; t++)
		if (strncmp(t->path, name, n) == 0 && t->path[n] == '/')
			return true;
	return false;
}

/* 0 if `path` does not exist or is an empty directory, else an errno
 * (EEXIST for a non-empty directory or another kind of file). */
static int check_target(const char *path)
{
	struct stat st;
	DIR *d;
	struct dirent *e;
	int rc = 0;

	if (stat(path, &st) != 0)
		return errno == ENOENT ? 0 : errno;
	if (!S_ISDIR(st.st_mode))
		return EEXIST;
	d = opendir(path);
	if (!d)
		return errno;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") != 0 &&
		    strcmp(e->d_name, "..") != 0) {
			rc = EEXIST;
			break;
		}
	}
	closedir(d);
	return rc;
}

/* mkdir -p */
static int make_dirs(const char *path)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;

			*p = '\0';
			if (mkdir(buf, 0755) != 0 && errno != EEXIST)
				return errno;
			*p = c;
			if (c == '\0')
				break;
		}
	}
	return 0;
}

/* Writes a template file, with "{{name}}" replaced by the project name. */
static int write_template(const char *path, const struct cli_template *t,
			  const char *name)
{
	static const char mark[] = "{{name}}";
	const char *p = t->data, *end = t->data + t->len;
	FILE *f;
	int fd, rc = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return errno;
	f = fdopen(fd, "w");
	if (!f) {
		rc = errno;
		close(fd);
		return rc;
	}
	while (p < end) {
		const char *m = strstr(p, mark);

		if (!m || m >= end) {
			fwrite(p, 1, (size_t)(end - p), f);
			break;
		}
		fwrite(p, 1, (size_t)(m - p), f);
		/* The name lands in a YAML comment: no control characters. */
		for (const char *c = name; *c; c++)
			fputc((unsigned char)*c < 0x20 ? '_' : *c, f);
		p = m + sizeof(mark) - 1;
	}
	if (ferror(f))
		rc = EIO;
	if (fclose(f) != 0 && rc == 0)
		rc = errno;
	return rc;
}

/* Creates one file of the project (relative path `rel`), or with t NULL
 * the directory `rel` (ending in '/'). */
static int create_file(const struct cli *g, const char *dir, const char *rel,
		       const struct cli_template *t, const char *name)
{
	char path[PATH_MAX];
	char *slash;
	int err;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, rel) >=
	    sizeof(path))
		return cli_error(g, CLI_FAIL, "IO_ERROR", "path too long: %s/%s",
				 dir, rel);
	slash = strrchr(path, '/');
	*slash = '\0';
	err = make_dirs(path);
	*slash = '/';
	if (err == 0 && t)
		err = write_template(path, t, name);
	if (err != 0)
		return cli_error(g, CLI_FAIL, "IO_ERROR", "cannot create '%s': %s",
				 path, strerror(err));
	return CLI_OK;
}

static const char *base_name(const char *path, char *buf, size_t size)
{
	char abs[PATH_MAX];
	const char *b;
	size_t n;

	if (realpath(path, abs))
		path = abs;
	n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	snprintf(buf, size, "%.*s", (int)n, path);
	b = strrchr(buf, '/');
	return b && b[1] ? b + 1 : buf;
}

static void print_result(const struct cli *g, const char *dir,
			 const char *tmpl, const char *files[], size_t n)
{
	if (g->json) {
		printf("{\"path\":");
		cli_json_str(stdout, dir);
		printf(",\"template\":");
		cli_json_str(stdout, tmpl);
		printf(",\"files\":[");
		for (size_t i = 0; i < n; i++) {
			if (i)
				putchar(',');
			cli_json_str(stdout, files[i]);
		}
		printf("]}\n");
		return;
	}
	printf("Created the %s project in %s\n", tmpl, dir);
	for (size_t i = 0; i < n; i++)
		printf("  %s\n", files[i]);
	printf("\nNext:\n");
	if (strcmp(dir, ".") != 0)
		printf("  cd %s\n", dir);
	printf("  alyx migrate apply     # create the database from schema.yaml\n");
	printf("  alyx query <collection> --pretty\n");
}

int cmd_init(struct cli *g, int argc, char **argv)
{
	struct cli_parser p;
	const char *arg, *name = NULL, *tmpl = "basic";
	const char *files[32];
	const char *proj;
	char target[PATH_MAX], namebuf[PATH_MAX];
	size_t nfiles = 0;
	int id, rc, err;

	g->usage = usage;
	cli_parser_init(&p, g, argc, argv, opts);
	while ((id = cli_next(&p, &arg)) != OPT_END) {
		if (id == OPT_POS) {
			if (name)
				return cli_usage_error(g,
					"unexpected argument '%s'", arg);
			name = arg;
		} else if (id == OPT_TEMPLATE) {
			tmpl = arg;
		} else if ((rc = cli_common(g, id, arg)) != CLI_CONTINUE) {
			return rc;
		}
	}
	if (!template_exists(tmpl))
		return cli_usage_error(g, "unknown template '%s' (choose basic, "
				       "blog or saas)", tmpl);
	if (name && !*name)
		return cli_usage_error(g, "the project name is empty");
	if (!name || name[0] == '/' || strcmp(g->dir, ".") == 0)
		snprintf(target, sizeof(target), "%s", name ? name : g->dir);
	else
		snprintf(target, sizeof(target), "%s/%s", g->dir, name);

	err = check_target(target);
	if (err == EEXIST)
		return cli_error(g, CLI_CONFLICT, "ALREADY_EXISTS",
				 "'%s' exists and is not an empty directory; "
				 "nothing was changed", target);
	if (err == 0)
		err = make_dirs(target);
	if (err != 0)
		return cli_error(g, CLI_FAIL, "IO_ERROR", "cannot create '%s': %s",
				 target, strerror(err));
	proj = base_name(target, namebuf, sizeof(namebuf));

	for (const struct cli_template *t = cli_templates; t->path; t++) {
		const char *slash = strchr(t->path, '/');
		size_t plen = (size_t)(slash - t->path);

		if (!((plen == 6 && strncmp(t->path, "common", 6) == 0) ||
		      (plen == strlen(tmpl) &&
		       strncmp(t->path, tmpl, plen) == 0)))
			continue;
		rc = create_file(g, target, slash + 1, t, proj);
		if (rc != CLI_OK)
			return rc;
		if (nfiles < sizeof(files) / sizeof(files[0]) - 1)
			files[nfiles++] = slash + 1;
	}
	rc = create_file(g, target, "migrations/", NULL, NULL);
	if (rc != CLI_OK)
		return rc;
	files[nfiles++] = "migrations/";
	print_result(g, target, tmpl, files, nfiles);
	return CLI_OK;
}
