/*
 * main.c - `alyx`, the developer CLI: global options and dispatch.
 *
 * Each command lives in its own cli/cmd-*.c file and talks to the project
 * only through the public libalyx API.
 */
#include <string.h>

#include "cli.h"

static const char usage[] =
"Usage: alyx [--dir DIR] [--json] <command> [options]\n"
"\n"
"Commands:\n"
"  init [name]         create a project from a template (basic, blog, saas)\n"
"  dev                 apply schema.yaml and run the server in the foreground\n"
"  serve               run the server in the foreground (schema as applied)\n"
"  migrate <action>    status, apply, rollback [n], create <name>\n"
"  db <action>         seed <file>, dump <file>, reset\n"
"  query <collection>  query a collection and print the documents as JSON\n"
"  doc <action>        create, get, update or delete one document\n"
"  auth <action>       create-admin <email>, reset-password <email>\n"
"  help [command]      show the help of a command\n"
"  version             show the versions of alyx and libalyx\n"
"\n"
"Global options (also accepted after the command):\n"
"  -C, --dir DIR       the project directory (default: the current one)\n"
"      --json          machine-readable output; errors as JSON on stderr\n"
"  -h, --help          show this help\n"
"  -V, --version       show the versions of alyx and libalyx\n"
"\n"
"Exit codes: 0 ok, 1 operation failed, 2 usage error, 3 not a project,\n"
"4 invalid alyx.yaml or schema.yaml, 5 migration required or failed,\n"
"6 bad input (query, JSON, document), 7 not found, 8 conflict or exists.\n"
"Run 'alyx <command> --help' for a command's options.\n";

static const struct {
	const char *name;
	int (*run)(struct cli *g, int argc, char **argv);
} commands[] = {
	{"init", cmd_init},
	{"dev", cmd_dev},
	{"serve", cmd_serve},
	{"migrate", cmd_migrate},
	{"db", cmd_db},
	{"query", cmd_query},
	{"doc", cmd_doc},
	{"auth", cmd_auth},
};

static const char version_usage[] =
"Usage: alyx version\n"
"\n"
"Prints the version of alyx, of the libalyx headers it was compiled with\n"
"and of the libalyx it runs with (the same as alyx --version).\n";

static int print_version(void)
{
	printf("alyx %s (compiled with libalyx %s, linked with libalyx %s)\n",
	       ALYX_VERSION_STRING, ALYX_VERSION_STRING,
	       alyx_version_string());
	return CLI_OK;
}

static int run_command(struct cli *g, const char *name, int argc,
		       char **argv)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(commands[i].name, name) == 0) {
			g->cmd = name;
			return commands[i].run(g, argc, argv);
		}
	}
	return cli_usage_error(g, "unknown command '%s'", name);
}

static int help(struct cli *g, int argc, char **argv)
{
	char *hargv[3];

	if (argc < 2) {
		fputs(usage, stdout);
		return CLI_OK;
	}
	hargv[0] = argv[1];
	hargv[1] = (char *)"--help";
	hargv[2] = NULL;
	return run_command(g, argv[1], 2, hargv);
}

int main(int argc, char **argv)
{
	struct cli g = {.dir = ".", .usage = usage};
	int i;

	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (a[0] != '-')
			break;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(usage, stdout);
			return CLI_OK;
		} else if (strcmp(a, "-V") == 0 ||
			   strcmp(a, "--version") == 0) {
			return print_version();
		} else if (strcmp(a, "--json") == 0) {
			g.json = true;
		} else if (strcmp(a, "-C") == 0 || strcmp(a, "--dir") == 0) {
			if (++i >= argc)
				return cli_usage_error(&g,
					"option '%s' needs a value", a);
			g.dir = argv[i];
		} else if (strncmp(a, "--dir=", 6) == 0) {
			g.dir = a + 6;
		} else {
			return cli_usage_error(&g, "unknown option '%s'", a);
		}
	}
	if (i >= argc) {
		fputs(usage, stderr);
		return CLI_USAGE;
	}
	if (strcmp(argv[i], "help") == 0)
		return help(&g, argc - i, argv + i);
	if (strcmp(argv[i], "version") == 0) {
		const char *pos[1];
		int rc, npos;

		g.cmd = "version";
		g.usage = version_usage;
		rc = cli_parse_simple(&g, argc - i, argv + i, pos, 0, 0, &npos);
		return rc == CLI_CONTINUE ? print_version() : rc;
	}
	return run_command(&g, argv[i], argc - i, argv + i);
}
