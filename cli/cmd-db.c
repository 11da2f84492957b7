/*
 * cmd-db.c - `alyx db seed <file>`, `alyx db dump <file>`, `alyx db
 * reset` (and the plan's flag forms --seed, --dump, --reset).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "json.h"

static const char usage[] =
"Usage: alyx db seed <file> | dump <file> | reset [--force] [options]\n"
"\n"
"Actions (the flag forms --seed <file>, --dump <file> and --reset are the\n"
"same):\n"
"  seed <file>     write the documents of <file> in one transaction (all or\n"
"                  nothing): an object mapping each collection to an array\n"
"                  of documents, {\"users\":[{...}],\"posts\":[{...}]}.  JSON,\n"
"                  or YAML when the name ends in .yaml or .yml; '-' reads\n"
"                  standard input (YAML unless it starts with '{')\n"
"  dump <file>     write every collection's documents in the same format\n"
"                  (JSON, indented); '-' writes to standard output\n"
"  reset           delete every document of every collection and the\n"
"                  change feed (the schema stays); asks for confirmation\n"
"                  on a terminal, and needs --force otherwise\n"
"\n"
"Options:\n"
"  -f, --force     reset without asking\n"
"  -C, --dir DIR   the project directory (default: the current one)\n"
"      --json      print libalyx's JSON answer instead of a summary\n"
"  -h, --help      show this help\n";

enum { A_NONE, A_SEED, A_DUMP, A_RESET, O_FORCE };

static const struct cli_opt opts[] = {
	CLI_COMMON_OPTS,
	{"seed", 0, ARG_REQUIRED, A_SEED},
	{"dump", 0, ARG_REQUIRED, A_DUMP},
	{"reset", 0, ARG_NONE, A_RESET},
	{"force", 'f', ARG_NONE, O_FORCE},
	{0},
};

/* Indexed by action; O_FORCE ends the actions. */
static const char *const action_names[O_FORCE] = {
	[A_SEED] = "seed",
	[A_DUMP] = "dump",
	[A_RESET] = "reset",
};

static bool is_yaml(const char *path, const char *text)
{
	size_t n = strlen(path);

	if (strcmp(path, "-") == 0) {
		text += strspn(text, " \t\r\n");
		return *text != '{';
	}
	return (n > 5 && strcmp(path + n - 5, ".yaml") == 0) ||
	       (n > 4 && strcmp(path + n - 4, ".yml") == 0);
}

static int seed(struct cli *g, alyx *a, const char *path)
{
	char *text = NULL, *json = NULL, *out = NULL;
	size_t len;
	cj *r = NULL;
	int rc;

	rc = cli_read_file(g, path, &text, &len);
	if (rc != CLI_OK)
		return rc;
	if (is_yaml(path, text)) {
		rc = alyx_yaml_to_json(a, text, len, path, &json);
		if (rc != ALYX_OK) {
			rc = cli_lib_error(g, a, rc);
			goto out;
		}
	}
	rc = alyx_db_seed(a, json ? json : text, json ? strlen(json) : len,
			  &out);
	if (rc != ALYX_OK) {
		rc = cli_lib_error(g, a, rc);
		if (!g->json)
			fprintf(stderr, "Nothing was written.\n");
		goto out;
	}
	rc = CLI_OK;
	if (g->json) {
		cli_print_json(out, false);
		goto out;
	}
	r = cj_parse(out, strlen(out));
	{
		const cj *ins = cj_get(r, "inserted");
		long total = 0;

		for (const cj *c = ins ? ins->kid : NULL; c; c = c->next)
			total += c->type == CJ_NUM ? (long)c->num : 0;
		printf("Seeded %ld document%s from %s", total,
		       total == 1 ? "" : "s", path);
		for (const cj *c = ins ? ins->kid : NULL; c; c = c->next)
			printf("%s%s %s", c == ins->kid ? ": " : ", ", c->key,
			       cj_text(c));
		printf("\n");
	}
out:
	cj_free(r);
	alyx_free(out);
	alyx_free(json);
	free(text);
	return rc;
}

static int dump(struct cli *g, alyx *a, const char *path)
{
	char *out = NULL;
	char *tmp = NULL;
	size_t len = 0;
	FILE *mem;
	int rc;

	rc = alyx_db_dump(a, &out);
	if (rc != ALYX_OK)
		return cli_lib_error(g, a, rc);
	/* Indented, so a dump reads well and diffs well. */
	mem = open_memstream(&tmp, &len);
	if (!mem) {
		alyx_free(out);
		return cli_error(g, CLI_FAIL, "OUT_OF_MEMORY", "dumping");
	}
	cj_print(mem, out, strlen(out), true);
	fclose(mem);
	alyx_free(out);
	rc = cli_write_file(g, path, tmp, len);
	if (rc == CLI_OK && strcmp(path, "-") != 0 && !g->json)
		printf("Dumped the database to %s\n", path);
	free(tmp);
	return rc;
}

static int reset(struct cli *g, alyx *a, bool force)
{
	int rc;

	if (!force) {
		char answer[16] = "";

		if (!isatty(STDIN_FILENO))
			return cli_usage_error(g, "reset deletes every "
				"document; pass --force to confirm when not "
				"on a terminal");
		fprintf(stderr, "This deletes every document in %s.\n"
			"Type 'yes' to continue: ", alyx_db_path(a));
		fflush(stderr);
		if (!fgets(answer, sizeof(answer), stdin) ||
		    strcmp(answer, "yes\n") != 0)
			return cli_error(g, CLI_FAIL, "ABORTED",
					 "reset cancelled; nothing changed");
	}
	rc = alyx_db_reset(a);
	if (rc != ALYX_OK)
		return cli_lib_error(g, a, rc);
	if (g->json)
		printf("{\"reset\":true}\n");
	else
		printf("Deleted every document in %s\n", alyx_db_path(a));
	return CLI_OK;
}

int cmd_db(struct cli *g, int argc, char **argv)
{
	struct cli_parser p;
	const char *arg, *file = NULL;
	alyx *a = NULL;
	bool force = false;
	int action = A_NONE, id, rc;

	g->usage = usage;
	cli_parser_init(&p, g, argc, argv, opts);
	while ((id = cli_next(&p, &arg)) != OPT_END) {
		int next = A_NONE;

		if (id == O_FORCE) {
			force = true;
			continue;
		}
		if (id == OPT_POS) {
			if (action == A_NONE)
				next = cli_action_find(action_names, O_FORCE,
						       arg);
			if (next == A_NONE && action == A_NONE)
				return cli_usage_error(g, "unknown action '%s'",
						       arg);
			if (next == A_NONE) {
				if (action == A_RESET || file)
					return cli_usage_error(g,
						"unexpected argument '%s'",
						arg);
				file = arg;
				continue;
			}
		} else if (id > 0) {
			next = id;
			file = arg;
		} else {
			rc = cli_common(g, id, arg);
			if (rc != CLI_CONTINUE)
				return rc;
			continue;
		}
		if (action != A_NONE)	/* even the same one twice */
			return cli_usage_error(g, "choose one action (%s or "
					       "%s)", action_names[action],
					       action_names[next]);
		action = next;
	}
	if (action == A_NONE)
		return cli_usage_error(g, "missing action (seed, dump or "
				       "reset)");
	if (action != A_RESET && !file)
		return cli_usage_error(g, "%s needs a file ('-' for standard "
				       "%s)", action_names[action],
				       action == A_SEED ? "input" : "output");
	rc = cli_open(g, action == A_DUMP ? 0 : ALYX_OPEN_CREATE, &a);
	if (rc != CLI_OK)
		return rc;
	switch (action) {
	case A_SEED: rc = seed(g, a, file); break;
	case A_DUMP: rc = dump(g, a, file); break;
	default: rc = reset(g, a, force); break;
	}
	alyx_close(a);
	return rc;
}
