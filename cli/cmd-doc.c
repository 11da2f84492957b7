/*
 * cmd-doc.c - `alyx doc create|get|update|delete <collection> [id]`: one
 * document at a time, for scripts.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
"Usage: alyx doc create <collection> --data JSON\n"
"       alyx doc get <collection> <id> [--expand PATHS] [--fields FIELDS]\n"
"       alyx doc update <collection> <id> --data JSON\n"
"       alyx doc delete <collection> <id>\n"
"\n"
"Writes or reads one document as the trusted system (no access rule\n"
"applies) and prints the stored document as JSON.  Every failing field of\n"
"a write is reported (exit 6).\n"
"\n"
"Options:\n"
"  -d, --data DATA     the document (create) or the fields to change\n"
"                      (update): JSON text, @FILE to read a file, or - for\n"
"                      standard input\n"
"  -e, --expand PATHS  inline referenced documents (get)\n"
"      --fields FIELDS return only these fields (get)\n"
"  -p, --pretty        indent the JSON\n"
"  -C, --dir DIR       the project directory (default: the current one)\n"
"      --json          for delete: print {\"deleted\":ID}\n"
"  -h, --help          show this help\n";

enum { A_NONE, A_CREATE, A_GET, A_UPDATE, A_DELETE,
       O_DATA, O_EXPAND, O_FIELDS, O_PRETTY };

static const struct cli_opt opts[] = {
	CLI_COMMON_OPTS,
	{"data", 'd', ARG_REQUIRED, O_DATA},
	{"expand", 'e', ARG_REQUIRED, O_EXPAND},
	{"fields", 0, ARG_REQUIRED, O_FIELDS},
	{"pretty", 'p', ARG_NONE, O_PRETTY},
	{0},
};

/* Indexed by action; O_DATA ends the actions. */
static const char *const action_names[O_DATA] = {
	[A_CREATE] = "create",
	[A_GET] = "get",
	[A_UPDATE] = "update",
	[A_DELETE] = "delete",
};

struct doc_args {
	int action;
	const char *coll, *id, *data, *expand, *fields;
	bool pretty;
};

static int parse(struct cli *g, int argc, char **argv, struct doc_args *d)
{
	struct cli_parser p;
	const char *arg, *pos[3];
	int id, rc, npos = 0;

	cli_parser_init(&p, g, argc, argv, opts);
	while ((id = cli_next(&p, &arg)) != OPT_END) {
		switch (id) {
		case OPT_POS:
			if (npos == 3)
				return cli_usage_error(g, "unexpected argument "
						       "'%s'", arg);
			pos[npos++] = arg;
			break;
		case O_DATA: d->data = arg; break;
		case O_EXPAND: d->expand = arg; break;
		case O_FIELDS: d->fields = arg; break;
		case O_PRETTY: d->pretty = true; break;
		default:
			rc = cli_common(g, id, arg);
			if (rc != CLI_CONTINUE)
				return rc;
		}
	}
	if (npos == 0)
		return cli_usage_error(g, "missing action (create, get, "
				       "update or delete)");
	d->action = cli_action_find(action_names, O_DATA, pos[0]);
	if (d->action == A_NONE)
		return cli_usage_error(g, "unknown action '%s'", pos[0]);
	if (npos < 2)
		return cli_usage_error(g, "missing the collection");
	d->coll = pos[1];
	if (d->action == A_CREATE && npos > 2)
		return cli_usage_error(g, "create takes no id; put it in "
				       "--data");
	if (d->action != A_CREATE && npos < 3)
		return cli_usage_error(g, "%s needs the document id",
				       action_names[d->action]);
	d->id = npos > 2 ? pos[2] : NULL;
	if ((d->action == A_CREATE || d->action == A_UPDATE) && !d->data)
		return cli_usage_error(g, "%s needs --data",
				       action_names[d->action]);
	if ((d->action != A_CREATE && d->action != A_UPDATE) && d->data)
		return cli_usage_error(g, "%s takes no --data",
				       action_names[d->action]);
	return CLI_CONTINUE;
}

/* --data: literal JSON, @file or - (stdin). */
static int load_data(struct cli *g, const char *data, char **buf,
		     const char **text, size_t *len)
{
	int rc;

	*buf = NULL;
	if (data[0] == '@' || strcmp(data, "-") == 0) {
		rc = cli_read_file(g, data[0] == '@' ? data + 1 : data, buf,
				   len);
		*text = *buf;
		return rc;
	}
	*text = data;
	*len = strlen(data);
	return CLI_OK;
}

static char *get_opts(const struct doc_args *d)
{
	char *qs = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&qs, &len);

	if (!f)
		return NULL;
	if (d->expand)
		cli_qs_add(f, "expand", d->expand, true);
	if (d->fields)
		cli_qs_add(f, "fields", d->fields, true);
	fclose(f);
	return qs;
}

int cmd_doc(struct cli *g, int argc, char **argv)
{
	struct doc_args d = {0};
	alyx *a = NULL;
	char *buf = NULL, *out = NULL, *qs = NULL;
	const char *text = NULL;
	size_t len = 0;
	int rc;

	g->usage = usage;
	rc = parse(g, argc, argv, &d);
	if (rc != CLI_CONTINUE)
		return rc;
	if (d.data && (rc = load_data(g, d.data, &buf, &text, &len)) != CLI_OK)
		return rc;
	rc = cli_open(g, 0, &a);
	if (rc != CLI_OK)
		goto out;
	switch (d.action) {
	case A_CREATE:
		rc = alyx_doc_create(a, NULL, d.coll, text, len, &out);
		break;
	case A_GET:
		qs = get_opts(&d);
		if (!qs) {
			rc = ALYX_E_NOMEM;
			break;
		}
		rc = alyx_doc_get(a, NULL, d.coll, d.id, qs, &out);
		break;
	case A_UPDATE:
		rc = alyx_doc_update(a, NULL, d.coll, d.id, text, len, &out);
		break;
	default:
		rc = alyx_doc_delete(a, NULL, d.coll, d.id);
		break;
	}
	if (rc != ALYX_OK) {
		rc = cli_lib_error(g, a, rc);
		goto out;
	}
	rc = CLI_OK;
	if (out) {
		cli_print_json(out, d.pretty);
	} else if (g->json) {
		fputs("{\"deleted\":", stdout);
		cli_json_str(stdout, d.id);
		fputs("}\n", stdout);
	} else {
		printf("Deleted %s %s\n", d.coll, d.id);
	}
out:
	free(qs);
	free(buf);
	alyx_free(out);
	alyx_close(a);
	return rc;
}
