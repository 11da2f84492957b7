/*
 * cmd-query.c - `alyx query <collection> [--filter f:op:v ...]`: builds the
 * REST query string and prints alyx_query_str()'s answer.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
"Usage: alyx query <collection> [options]\n"
"\n"
"Prints {\"docs\":[...]} (plus \"total\" with --total, and \"next\", a cursor\n"
"for --after, when more documents remain) as JSON, exactly as\n"
"GET /api/collections/<collection> would answer.  The CLI is trusted: no\n"
"access rule applies.\n"
"\n"
"Options:\n"
"  -f, --filter F:OP:V   keep documents whose field F compares to V with OP:\n"
"                        eq ne gt gte lt lte like in contains (in takes a\n"
"                        comma list); repeat to AND several filters\n"
"  -s, --sort FIELDS     sort keys, comma-separated; -field is descending\n"
"  -l, --limit N         at most N documents\n"
"      --offset N        skip the first N documents\n"
"      --after CURSOR    continue after a \"next\" cursor (deep pages stay fast)\n"
"  -e, --expand PATHS    inline referenced documents (author_id,\n"
"                        post_id.author_id), comma-separated\n"
"      --fields FIELDS   return only these fields, comma-separated\n"
"      --total           also count every matching document\n"
"  -p, --pretty          indent the JSON\n"
"  -C, --dir DIR         the project directory (default: the current one)\n"
"  -h, --help            show this help\n"
"\n"
"Example: alyx query posts --filter published:eq:true --sort=-created_at \\\n"
"           --limit 10 --expand author_id --total --pretty\n";

enum { O_FILTER = 1, O_SORT, O_LIMIT, O_OFFSET, O_AFTER, O_EXPAND, O_FIELDS,
       O_TOTAL, O_PRETTY };

static const struct cli_opt opts[] = {
	CLI_COMMON_OPTS,
	{"filter", 'f', ARG_REQUIRED, O_FILTER},
	{"sort", 's', ARG_REQUIRED, O_SORT},
	{"limit", 'l', ARG_REQUIRED, O_LIMIT},
	{"offset", 0, ARG_REQUIRED, O_OFFSET},
	{"after", 0, ARG_REQUIRED, O_AFTER},
	{"expand", 'e', ARG_REQUIRED, O_EXPAND},
	{"fields", 0, ARG_REQUIRED, O_FIELDS},
	{"total", 0, ARG_NONE, O_TOTAL},
	{"pretty", 'p', ARG_NONE, O_PRETTY},
	{0},
};

/* "field:op:value": each part is encoded on its own, so the colons stay
 * separators (and the commas of an `in` list).  Anything else is passed
 * encoded whole, so libalyx reports the malformed filter itself. */
static void add_filter(FILE *qs, const char *f)
{
	const char *c1 = strchr(f, ':');
	const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;

	if (!c2) {
		cli_qs_add(qs, "filter", f, false);
		return;
	}
	char field[256], op[32];

	snprintf(field, sizeof(field), "%.*s", (int)(c1 - f), f);
	snprintf(op, sizeof(op), "%.*s", (int)(c2 - c1 - 1), c1 + 1);
	cli_qs_add(qs, "filter", field, false);
	fputc(':', qs);
	cli_url_encode(qs, op, false);
	fputc(':', qs);
	cli_url_encode(qs, c2 + 1, strcmp(op, "in") == 0);
}

int cmd_query(struct cli *g, int argc, char **argv)
{
	struct cli_parser p;
	const char *arg, *coll = NULL;
	char *qs = NULL, *out = NULL;
	size_t qslen = 0;
	alyx *a = NULL;
	FILE *f;
	bool pretty = false;
	int id, rc = CLI_OK;

	g->usage = usage;
	f = open_memstream(&qs, &qslen);
	if (!f)
		return cli_error(g, CLI_FAIL, "OUT_OF_MEMORY", "query");
	cli_parser_init(&p, g, argc, argv, opts);
	while ((id = cli_next(&p, &arg)) != OPT_END) {
		switch (id) {
		case OPT_POS:
			if (coll) {
				rc = cli_usage_error(g, "unexpected argument "
						     "'%s'", arg);
				goto out;
			}
			coll = arg;
			break;
		case O_FILTER: add_filter(f, arg); break;
		case O_SORT: cli_qs_add(f, "sort", arg, true); break;
		case O_LIMIT: cli_qs_add(f, "limit", arg, false); break;
		case O_OFFSET: cli_qs_add(f, "offset", arg, false); break;
		case O_AFTER: cli_qs_add(f, "after", arg, false); break;
		case O_EXPAND: cli_qs_add(f, "expand", arg, true); break;
		case O_FIELDS: cli_qs_add(f, "fields", arg, true); break;
		case O_TOTAL: cli_qs_add(f, "total", "true", false); break;
		case O_PRETTY: pretty = true; break;
		default:
			rc = cli_common(g, id, arg);
			if (rc != CLI_CONTINUE)
				goto out;
			rc = CLI_OK;
			break;
		}
	}
	if (!coll) {
		rc = cli_usage_error(g, "missing the collection to query");
		goto out;
	}
	fclose(f);
	f = NULL;
	rc = cli_open(g, 0, &a);
	if (rc != CLI_OK)
		goto out;
	rc = alyx_query_str(a, NULL, coll, qs, &out);
	if (rc != ALYX_OK) {
		rc = cli_lib_error(g, a, rc);
		goto out;
	}
	cli_print_json(out, pretty);
	rc = CLI_OK;
out:
	if (f)
		fclose(f);
	free(qs);
	alyx_free(out);
	alyx_close(a);
	return rc;
}
