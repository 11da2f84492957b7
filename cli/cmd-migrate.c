/*
 * cmd-migrate.c - `alyx migrate status|apply|rollback [n]|create <name>`
 * and the plan's flag forms (--status, --apply, --rollback [n],
 * --create <name>).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "json.h"

static const char usage[] =
"Usage: alyx migrate [status|apply|rollback [n]|create <name>] [options]\n"
"\n"
"Actions (the flag forms --status, --apply, --rollback [n] and\n"
"--create <name> are the same):\n"
"  status          list applied and pending migration files and the\n"
"                  changes schema.yaml would make (the default action)\n"
"  apply           apply every pending migration file, each in its own\n"
"                  transaction, then schema.yaml's safe changes; a\n"
"                  destructive change is refused with the list of what\n"
"                  needs a migration file (exit 5) and nothing changes\n"
"  rollback [n]    undo the last n applied migrations (default 1)\n"
"  create <name>   write migrations/NNN_<name>.yaml from a template\n"
"\n"
"Options:\n"
"  -C, --dir DIR   the project directory (default: the current one)\n"
"      --json      print libalyx's JSON answer instead of a summary\n"
"  -h, --help      show this help\n";

enum { A_NONE, A_STATUS, A_APPLY, A_ROLLBACK, A_CREATE, N_ACTIONS };

static const struct cli_opt opts[] = {
	CLI_COMMON_OPTS,
	{"status", 0, ARG_NONE, A_STATUS},
	{"apply", 0, ARG_NONE, A_APPLY},
	{"rollback", 0, ARG_INLINE, A_ROLLBACK},
	{"create", 0, ARG_REQUIRED, A_CREATE},
	{0},
};

static const char *const action_names[N_ACTIONS] = {
	[A_STATUS] = "status",
	[A_APPLY] = "apply",
	[A_ROLLBACK] = "rollback",
	[A_CREATE] = "create",
};

/* A migration entry as its file name ("002_rename_user_name.yaml"), or
 * version and name. */
static void print_migration(const char *prefix, const cj *m,
			    const char *suffix)
{
	const char *file = cj_getstr(m, "file");
	const char *name = cj_getstr(m, "name");
	const cj *ver = cj_get(m, "version");

	if (file) {
		const char *slash = strrchr(file, '/');

		printf("%s%s%s\n", prefix, slash ? slash + 1 : file, suffix);
		return;
	}
	printf("%s%s%s%s%s\n", prefix, ver ? cj_text(ver) : "",
	       ver && name ? "_" : "", name ? name : "", suffix);
}

/* One line per schema change: "+ ..." when safe, "! ..." when it needs a
 * migration file. */
static void print_changes(const cj *changes)
{
	for (const cj *c = changes ? changes->kid : NULL; c; c = c->next) {
		const cj *safe = cj_get(c, "safe");
		const char *desc = cj_getstr(c, "description");
		bool destructive = safe && safe->type == CJ_BOOL && !safe->b;

		if (desc && cli_has_marker(desc)) {
			printf("  %s%s\n", desc,
			       destructive ? " (needs a migration file)" : "");
		} else if (desc) {
			printf("  %c %s%s\n", destructive ? '!' : '+', desc,
			       destructive ? " (needs a migration file)" : "");
		} else {
			printf("  %c %s %s%s%s\n", destructive ? '!' : '+',
			       cj_getstr(c, "op") ? cj_getstr(c, "op") : "",
			       cj_getstr(c, "collection") ?
				       cj_getstr(c, "collection") : "",
			       cj_getstr(c, "field") ? "." : "",
			       cj_getstr(c, "field") ?
				       cj_getstr(c, "field") : "");
		}
	}
}

/* The schema part of an answer: "schema_changes", "changes" or a nested
 * plan {"schema":{"changes":[...]}}. */
static const cj *schema_changes(const cj *r)
{
	const cj *c = cj_get(r, "schema_changes");

	if (!c)
		c = cj_get(r, "changes");
	if (!c)
		c = cj_get(cj_get(r, "schema"), "changes");
	if (!c)
		c = cj_get(cj_get(r, "plan"), "changes");
	return c && c->type == CJ_ARR ? c : NULL;
}

/* An empty database: apply creates schema.yaml's collections as a whole;
 * list them from the file. */
static void print_baseline(const struct cli *g, alyx *a)
{
	char path[PATH_MAX], *yaml = NULL, *json = NULL;
	size_t len = 0;
	cj *s = NULL;
	const cj *colls;

	snprintf(path, sizeof(path), "%s/schema.yaml", alyx_project_dir(a));
	if (cli_read_file(g, path, &yaml, &len) != CLI_OK)
		return;
	if (yaml && alyx_yaml_to_json(a, yaml, len, NULL, &json) == ALYX_OK)
		s = cj_parse(json, strlen(json));
	colls = cj_get(s, "collections");
	printf("schema.yaml: not applied yet; 'alyx migrate apply' creates "
	       "%zu collection%s", cj_count(colls),
	       cj_count(colls) == 1 ? "" : "s");
	for (const cj *c = colls ? colls->kid : NULL; c; c = c->next)
		printf("%s%s", c == colls->kid ? ": " : ", ", c->key);
	printf("\n");
	cj_free(s);
	alyx_free(json);
	free(yaml);
}

static void print_status(const struct cli *g, alyx *a, const cj *r)
{
	const cj *applied = cj_get(r, "applied");
	const cj *pending = cj_get(r, "pending");
	const cj *changes = schema_changes(r);
	bool broken = false;

	printf("Database: %s\n", alyx_db_path(a));
	if (cj_count(applied) + cj_count(pending) == 0)
		printf("No migration files.\n");
	else
		printf("Migrations:\n");
	for (const cj *m = applied ? applied->kid : NULL; m; m = m->next) {
		char suffix[160];

		snprintf(suffix, sizeof(suffix), "  applied %s%s",
			 cj_getstr(m, "applied_at") ?
				 cj_getstr(m, "applied_at") : "",
			 cj_gettrue(m, "modified") ?
				 "  MODIFIED since it was applied" : "");
		print_migration("  ", m, suffix);
	}
	for (const cj *m = pending ? pending->kid : NULL; m; m = m->next) {
		print_migration("  ", m, "  pending");
		if (cj_getstr(m, "error")) {
			printf("      ! %s\n", cj_getstr(m, "error"));
			broken = true;
		}
	}
	if (cj_gettrue(r, "baseline")) {
		print_baseline(g, a);
	} else if (broken) {
		printf("schema.yaml: not compared until the pending migrations "
		       "load.\n");
	} else if (!cj_get(r, "schema") ||
		   cj_get(r, "schema")->type == CJ_NULL) {
		printf("schema.yaml: none.\n");
	} else if (cj_count(changes) == 0) {
		printf("schema.yaml: up to date.\n");
	} else {
		printf("schema.yaml: %zu change%s not applied yet:\n",
		       cj_count(changes), cj_count(changes) == 1 ? "" : "s");
		print_changes(changes);
	}
}

static void print_apply(alyx *a, const cj *r)
{
	const cj *applied = cj_get(r, "applied");
	const cj *changes = schema_changes(r);
	bool baseline = cj_gettrue(r, "baseline");

	if (baseline) {
		/* An empty database: schema.yaml was created as a whole. */
		char *sj = NULL;
		cj *s = NULL;
		const cj *colls;

		if (alyx_schema_json(a, &sj) == ALYX_OK)
			s = cj_parse(sj, strlen(sj));
		colls = cj_get(s, "collections");
		printf("Created %s from schema.yaml: %zu collection%s",
		       alyx_db_path(a), cj_count(colls),
		       cj_count(colls) == 1 ? "" : "s");
		for (const cj *c = colls ? colls->kid : NULL; c; c = c->next)
			printf("%s%s", c == colls->kid ? " (" : ", ", c->key);
		printf("%s\n", cj_count(colls) ? ")" : "");
		cj_free(s);
		alyx_free(sj);
	}
	if (applied && applied->type == CJ_ARR)
		for (const cj *m = applied->kid; m; m = m->next)
			print_migration("Applied ", m, "");
	if (cj_count(changes)) {
		printf("Applied %zu schema change%s:\n", cj_count(changes),
		       cj_count(changes) == 1 ? "" : "s");
		print_changes(changes);
	}
	if (!baseline && cj_count(applied) == 0 && cj_count(changes) == 0)
		printf("Nothing to apply: the database is up to date.\n");
}

static void print_rollback(const cj *r)
{
	const cj *list = cj_get(r, "rolled_back");

	if (!list)
		list = cj_get(r, "reverted");
	if (cj_count(list) == 0) {
		printf("Nothing to roll back.\n");
		return;
	}
	for (const cj *m = list->kid; m; m = m->next)
		print_migration("Rolled back ", m, "");
}

static int parse_count(struct cli *g, const char *s, int *n)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < 1 || v > INT_MAX)
		return cli_usage_error(g, "rollback count must be a positive "
				       "number, not '%s'", s);
	*n = (int)v;
	return CLI_CONTINUE;
}

int cmd_migrate(struct cli *g, int argc, char **argv)
{
	struct cli_parser p;
	const char *arg, *name = NULL, *count = NULL;
	alyx *a = NULL;
	char *out = NULL;
	cj *r = NULL;
	int action = A_NONE, id, rc, n = 1;

	g->usage = usage;
	cli_parser_init(&p, g, argc, argv, opts);
	while ((id = cli_next(&p, &arg)) != OPT_END) {
		rc = CLI_CONTINUE;
		if (id == OPT_POS) {
			int by_name = action != A_NONE ? A_NONE :
				cli_action_find(action_names, N_ACTIONS, arg);

			if (by_name != A_NONE)
				action = by_name;
			else if (action == A_ROLLBACK && !count)
				count = arg;
			else if (action == A_CREATE && !name)
				name = arg;
			else if (action == A_NONE)
				return cli_usage_error(g, "unknown action '%s'",
						       arg);
			else
				return cli_usage_error(g,
					"unexpected argument '%s'", arg);
		} else if (id > 0) {
			rc = cli_action_set(g, action_names, &action, id);
			if (id == A_ROLLBACK && arg)
				count = arg;
			if (id == A_CREATE)
				name = arg;
		} else {
			rc = cli_common(g, id, arg);
		}
		if (rc != CLI_CONTINUE)
			return rc;
	}
	if (action == A_NONE)
		action = A_STATUS;
	if (action == A_CREATE && !name)
		return cli_usage_error(g, "create needs a migration name");
	if (count && (rc = parse_count(g, count, &n)) != CLI_CONTINUE)
		return rc;

	rc = cli_open(g, ALYX_OPEN_CREATE, &a);
	if (rc != CLI_OK)
		return rc;
	switch (action) {
	case A_STATUS: rc = alyx_migrate_status(a, &out); break;
	case A_APPLY: rc = alyx_migrate_apply(a, &out); break;
	case A_ROLLBACK: rc = alyx_migrate_rollback(a, n, &out); break;
	default: rc = alyx_migrate_create(a, name, &out); break;
	}
	if (rc != ALYX_OK) {
		rc = cli_lib_error(g, a, rc);
		goto out;
	}
	rc = CLI_OK;
	if (g->json) {
		cli_print_json(out, false);
		goto out;
	}
	r = cj_parse(out, strlen(out));
	if (!r) {
		cli_print_json(out, true);
		goto out;
	}
	switch (action) {
	case A_STATUS: print_status(g, a, r); break;
	case A_APPLY: print_apply(a, r); break;
	case A_ROLLBACK: print_rollback(r); break;
	default:
		printf("Created %s\n", cj_getstr(r, "path") ?
			cj_getstr(r, "path") : out);
		break;
	}
out:
	cj_free(r);
	alyx_free(out);
	alyx_close(a);
	return rc;
}
