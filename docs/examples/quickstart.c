/*
 * quickstart.c - open a project, apply a schema, write and query
 * documents, read an error.  Build: cc quickstart.c $(pkg-config --cflags
 * --libs alyx).  Run: ./quickstart DIR (DIR is created if missing).
 */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include <alyx.h>

static const char schema[] =
	"version: 1\n"
	"collections:\n"
	"  notes:\n"
	"    fields:\n"
	"      id: {type: uuid, primary: true, default: auto}\n"
	"      title: {type: string, minLength: 1, maxLength: 100}\n"
	"      stars: {type: int, default: 0}\n"
	"      created_at: {type: timestamp, default: now}\n";

static int fail(alyx *a, const char *what)
{
	/* The error triple of the last failing call on this thread. */
	fprintf(stderr, "%s: %s (%s) %s\n", what,
		alyx_errname(alyx_errcode(a)), alyx_errmsg(a),
		alyx_errdetails(a));
	alyx_close(a);
	return 1;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "quickstart-project";
	char *plan = NULL, *doc = NULL, *list = NULL;
	alyx *a = NULL;

	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		perror(dir);
		return 1;
	}
	/* CREATE makes data/alyx.db; without alyx.yaml defaults apply. */
	if (alyx_open(dir, ALYX_OPEN_CREATE, &a) != ALYX_OK)
		return fail(NULL, "open");
	printf("linked with libalyx %s, database %s\n", alyx_version_string(),
	       alyx_db_path(a));

	/* Safe changes apply at once; the plan says what happened. */
	if (alyx_apply_schema(a, schema, (size_t)-1, "schema.yaml", 0,
			      &plan) != ALYX_OK)
		return fail(a, "apply_schema");
	printf("plan: %s\n", plan);
	alyx_free(plan);	/* every char * out of libalyx: alyx_free */

	if (alyx_doc_create(a, NULL, "notes", "{\"title\":\"hello\"}",
			    (size_t)-1, &doc) != ALYX_OK)
		return fail(a, "create");
	printf("created: %s\n", doc);
	alyx_free(doc);

	/* A bad document: every failing field is reported. */
	if (alyx_doc_create(a, NULL, "notes",
			    "{\"title\":\"\",\"stars\":\"many\"}", (size_t)-1,
			    &doc) == ALYX_E_VALIDATION)
		printf("refused: %s\n", alyx_errdetails(a));

	if (alyx_query_str(a, NULL, "notes",
			   "filter=stars:gte:0&sort=-created_at&limit=5"
			   "&total=true",
			   &list) != ALYX_OK)
		return fail(a, "query");
	printf("query: %s\n", list);
	alyx_free(list);
	alyx_close(a);
	return 0;
}
