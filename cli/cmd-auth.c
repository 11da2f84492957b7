/*
 * cmd-auth.c - `alyx auth create-admin <email>`: an administrator account
 * (role admin, email verified), password from a prompt or standard input;
 * `alyx auth reset-password <email>`: prints a one-time password reset
 * link (nothing is sent).
 */
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "json.h"

#define PW_MAX 1024

static const char usage[] =
"Usage: alyx auth create-admin <email> [--password-stdin]\n"
"       alyx auth reset-password <email>\n"
"\n"
"reset-password prints a one-time link to set a new password for the\n"
"account (alyx.yaml auth.email.reset_url with ?token=..., valid for\n"
"auth.email.reset_ttl; a newer link replaces it).  Nothing is sent.\n"
"\n"
"create-admin:\n"
"Creates an account with the role admin and its email marked verified\n"
"(and, when the schema has a users collection, its users document).  The\n"
"password must satisfy alyx.yaml auth.password.  Without\n"
"--password-stdin the password is asked twice on the terminal, without\n"
"echo.\n"
"\n"
"Options:\n"
"      --password-stdin  read the password from the first line of standard\n"
"                        input\n"
"  -C, --dir DIR         the project directory (default: the current one)\n"
"      --json            print the new user as JSON\n"
"  -h, --help            show this help\n";

enum { O_STDIN = 1 };

static const struct cli_opt opts[] = {
	CLI_COMMON_OPTS,
	{"password-stdin", 0, ARG_NONE, O_STDIN},
	{0},
};

/* One line from `f` without its line end; false on EOF, error or a line
 * longer than PW_MAX. */
static bool read_line(FILE *f, char buf[PW_MAX + 2])
{
	size_t n;

	if (!fgets(buf, PW_MAX + 2, f))
		return false;
	n = strcspn(buf, "\r\n");
	if (n > PW_MAX)
		return false;
	buf[n] = '\0';
	return true;
}

/* Asks on /dev/tty with echo off. */
static bool prompt(const char *what, char buf[PW_MAX + 2])
{
	struct termios old, raw;
	FILE *tty = fopen("/dev/tty", "r+");
	bool ok;

	if (!tty)
		return false;
	fprintf(tty, "%s", what);
	fflush(tty);
	if (tcgetattr(fileno(tty), &old) != 0) {
		fclose(tty);
		return false;
	}
	raw = old;
	raw.c_lflag &= ~(tcflag_t)ECHO;
	tcsetattr(fileno(tty), TCSAFLUSH, &raw);
	ok = read_line(tty, buf);
	tcsetattr(fileno(tty), TCSAFLUSH, &old);
	fputc('\n', tty);
	fclose(tty);
	return ok;
}

static int get_password(struct cli *g, bool from_stdin, char pw[PW_MAX + 2])
{
	char again[PW_MAX + 2];
	int rc = CLI_OK;

	if (from_stdin) {
		if (!read_line(stdin, pw))
			return cli_error(g, CLI_BADINPUT, "BAD_INPUT",
					 "no password line on standard input "
					 "(at most %d bytes)", PW_MAX);
		return CLI_OK;
	}
	if (!isatty(STDIN_FILENO))
		return cli_usage_error(g, "no terminal to ask the password "
				       "on; use --password-stdin");
	if (!prompt("Password: ", pw) || !prompt("Again: ", again))
		return cli_error(g, CLI_FAIL, "IO_ERROR",
				 "could not read the password");
	if (strcmp(pw, again) != 0)
		rc = cli_error(g, CLI_BADINPUT, "BAD_INPUT",
			       "the passwords differ");
	memset(again, 0, sizeof(again));
	return rc;
}

/* reset-password: the link on stdout (the whole answer with --json). */
static int reset_link(struct cli *g, alyx *a, const char *email)
{
	char *out = NULL;
	cj *o = NULL;
	int rc = alyx_auth_reset_link(a, email, &out);

	if (rc != ALYX_OK)
		return cli_lib_error(g, a, rc);
	if (g->json) {
		cli_print_json(out, false);
	} else {
		o = cj_parse(out, strlen(out));
		printf("%s\n", cj_getstr(o, "link") ? cj_getstr(o, "link")
						      : "");
		fprintf(stderr, "One-time password reset link for %s, valid "
			"until %s.\n", cj_getstr(o, "email") ? cj_getstr(o, "email")
			: email, cj_getstr(o, "expires_at")
			? cj_getstr(o, "expires_at") : "?");
	}
	cj_free(o);
	alyx_free(out);
	return CLI_OK;
}

int cmd_auth(struct cli *g, int argc, char **argv)
{
	struct cli_parser p;
	const char *arg, *pos[2];
	char pw[PW_MAX + 2] = "", *body = NULL, *out = NULL;
	bool from_stdin = false;
	size_t len = 0;
	alyx *a = NULL;
	FILE *f;
	int id, rc, npos = 0;

	g->usage = usage;
	cli_parser_init(&p, g, argc, argv, opts);
	while ((id = cli_next(&p, &arg)) != OPT_END) {
		if (id == OPT_POS) {
			if (npos == 2)
				return cli_usage_error(g, "unexpected argument "
						       "'%s'", arg);
			pos[npos++] = arg;
		} else if (id == O_STDIN) {
			from_stdin = true;
		} else {
			rc = cli_common(g, id, arg);
			if (rc != CLI_CONTINUE)
				return rc;
		}
	}
	if (npos == 0)
		return cli_usage_error(g, "missing action (create-admin, "
				       "reset-password)");
	if (strcmp(pos[0], "create-admin") != 0 &&
	    strcmp(pos[0], "reset-password") != 0)
		return cli_usage_error(g, "unknown action '%s'", pos[0]);
	if (npos < 2)
		return cli_usage_error(g, "%s needs the email", pos[0]);
	if (pos[0][0] == 'r' && from_stdin)
		return cli_usage_error(g, "--password-stdin is for "
				       "create-admin");
	rc = cli_open(g, 0, &a);
	if (rc != CLI_OK)
		goto out;
	if (pos[0][0] == 'r') {
		rc = reset_link(g, a, pos[1]);
		goto out;
	}
	rc = get_password(g, from_stdin, pw);
	if (rc != CLI_OK)
		goto out;
	f = open_memstream(&body, &len);
	if (!f) {
		rc = cli_error(g, CLI_FAIL, "OUT_OF_MEMORY", "out of memory");
		goto out;
	}
	fputs("{\"email\":", f);
	cli_json_str(f, pos[1]);
	fputs(",\"password\":", f);
	cli_json_str(f, pw);
	fputc('}', f);
	fclose(f);
	rc = alyx_auth_create_user(a, body, len, "admin", &out);
	if (rc != ALYX_OK) {
		rc = cli_lib_error(g, a, rc);
		goto out;
	}
	rc = CLI_OK;
	if (g->json)
		cli_print_json(out, false);
	else
		printf("Created admin %s\n", pos[1]);
out:
	memset(pw, 0, sizeof(pw));
	if (body)
		memset(body, 0, len);
	free(body);
	alyx_free(out);
	alyx_close(a);
	return rc;
}
