/*
 * cli.h - what the `alyx` command files share: exit codes, the global
 * options, option parsing, error reporting and small file helpers.
 *
 * The CLI is a thin door onto libalyx (STYLE.md §12): it links only the
 * public library through <alyx.h>, parses arguments, calls the API as
 * the trusted system (ctx NULL) and prints the answer.
 */
#ifndef CLI_H
#define CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <alyx.h>

/* Exit codes; documented in docs/cli.md.  Scripts may rely on them. */
enum cli_exit {
	CLI_OK = 0,		/* success */
	CLI_FAIL = 1,		/* the operation failed (I/O, busy, ...) */
	CLI_USAGE = 2,		/* bad command line */
	CLI_NOPROJECT = 3,	/* --dir is not an Alyx project */
	CLI_BADPROJECT = 4,	/* alyx.yaml or schema.yaml is invalid */
	CLI_MIGRATION = 5,	/* a change needs a migration file, a
				 * migration failed, or an applied one was
				 * edited */
	CLI_BADINPUT = 6,	/* bad query, JSON, document or data file */
	CLI_NOTFOUND = 7,	/* unknown collection, document or file */
	CLI_CONFLICT = 8	/* unique/foreign-key conflict, or the thing
				 * to create exists already */
};

/* Global options, valid before or after the command name. */
struct cli {
	const char *dir;	/* --dir: the project directory (".") */
	bool json;		/* --json: machine-readable output */
	const char *cmd;	/* the command ("migrate"), for messages */
	const char *usage;	/* its help text */
};

/* ---- option parsing ---- */

enum {
	OPT_END = 0,		/* no more arguments */
	OPT_POS = -1,		/* a positional argument (in *arg) */
	OPT_ERR = -2,		/* reported already; exit CLI_USAGE */
	OPT_HELP = -3,		/* --help / -h */
	OPT_DIR = -4,		/* --dir DIR */
	OPT_JSON = -5		/* --json */
};

enum { ARG_NONE, ARG_REQUIRED, ARG_INLINE /* optional, as --opt=value */ };

struct cli_opt {
	const char *name;	/* long name without "--" */
	char short_name;	/* or 0 */
	int has_arg;		/* ARG_* */
	int id;			/* > 0, or one of the OPT_* above */
};

/* The options every command accepts (put first in each table). */
#define CLI_COMMON_OPTS \
	{"help", 'h', ARG_NONE, OPT_HELP}, \
	{"dir", 'C', ARG_REQUIRED, OPT_DIR}, \
	{"json", 0, ARG_NONE, OPT_JSON}

struct cli_parser {
	int argc;
	char **argv;
	int i;			/* next argument */
	bool only_pos;		/* after "--" */
	const struct cli_opt *opts;	/* ends with a NULL name */
	struct cli *g;
};

void cli_parser_init(struct cli_parser *p, struct cli *g, int argc,
		     char **argv, const struct cli_opt *opts);
/* The next option's id (with its argument in *arg), OPT_POS with the
 * argument, OPT_END, or OPT_ERR (the error is printed). */
int cli_next(struct cli_parser *p, const char **arg);
/* Handles OPT_HELP, OPT_DIR and OPT_JSON.  Returns -1 if `id` is not one
 * of them, CLI_OK after --help (the caller exits 0), or 1000 to go on. */
#define CLI_CONTINUE 1000
int cli_common(struct cli *g, int id, const char *arg);
/* Parses a whole command line with only common options and positionals
 * (up to max_pos of them, stored in pos[]).  Returns CLI_CONTINUE, or an
 * exit code. */
int cli_parse_simple(struct cli *g, int argc, char **argv, const char **pos,
		     int min_pos, int max_pos, int *npos);

/* Commands with actions (`migrate apply`, `db --seed f`): names[i] is
 * action i's name, names[0] is unused (no action yet).  find returns the
 * action named `arg`, or 0; set records action `a` and refuses a second,
 * different one (CLI_USAGE), else returns CLI_CONTINUE. */
int cli_action_find(const char *const *names, int n, const char *arg);
int cli_action_set(const struct cli *g, const char *const *names,
		   int *action, int a);

/* ---- errors (all go to stderr) ---- */

/* Prints "alyx: USAGE_ERROR: <message>" and a hint; returns CLI_USAGE. */
int cli_usage_error(const struct cli *g, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Prints "alyx: <name>: <message>" (or its JSON form with --json) and
 * returns `exit_code`. */
int cli_error(const struct cli *g, int exit_code, const char *name,
	      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Prints the last libalyx error of `a` (NULL after a failed alyx_open)
 * with its details, and returns the exit code for status `rc`. */
int cli_lib_error(const struct cli *g, const alyx *a, int rc);
/* The exit code for a libalyx status. */
int cli_exit_code(int rc);

/* ---- projects and files ---- */

/* Opens the project of --dir.  Exits CLI_NOPROJECT when the directory
 * has neither alyx.yaml nor schema.yaml.  Returns CLI_OK or an exit
 * code (the error is printed). */
int cli_open(const struct cli *g, unsigned flags, alyx **out);
/* Reads a whole file ("-" = stdin) into a NUL-terminated malloc'd
 * buffer.  Prints the error and returns an exit code on failure. */
int cli_read_file(const struct cli *g, const char *path, char **out,
		  size_t *len);
/* Writes `len` bytes to `path` ("-" = stdout); same error handling. */
int cli_write_file(const struct cli *g, const char *path, const char *data,
		   size_t len);
/* Appends "&name=value" (no '&' when f is still empty) to a query
 * string, URL-encoding the value; with `list`, commas stay as the list
 * separators and each item is encoded. */
void cli_qs_add(FILE *f, const char *name, const char *value, bool list);
/* Writes `s` URL-encoded (RFC 3986 unreserved characters stay; commas
 * too with `list`). */
void cli_url_encode(FILE *f, const char *s, bool list);
/* True when a change description from libalyx starts with its own
 * marker ("+ Added field ...", "! Changed type ..."). */
bool cli_has_marker(const char *desc);
/* Writes `s` as a quoted, escaped JSON string. */
void cli_json_str(FILE *f, const char *s);
/* Prints a libalyx JSON answer to stdout, re-indented if `pretty`. */
void cli_print_json(const char *json, bool pretty);

/* ---- commands ---- */
int cmd_init(struct cli *g, int argc, char **argv);
int cmd_migrate(struct cli *g, int argc, char **argv);
int cmd_db(struct cli *g, int argc, char **argv);
int cmd_query(struct cli *g, int argc, char **argv);
int cmd_doc(struct cli *g, int argc, char **argv);
int cmd_auth(struct cli *g, int argc, char **argv);
int cmd_dev(struct cli *g, int argc, char **argv);
int cmd_serve(struct cli *g, int argc, char **argv);

#endif
