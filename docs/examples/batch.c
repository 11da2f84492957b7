/*
 * batch.c - an atomic batch of writes and the change feed.
 * Run: ./batch DIR (DIR is created if missing).
 */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include <alyx.h>

static const char schema[] =
	"version: 1\n"
	"collections:\n"
	"  tasks:\n"
	"    fields:\n"
	"      id: {type: string, primary: true}\n"
	"      done: {type: bool, default: false}\n";

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "batch-project";
	char *out = NULL;
	alyx *a = NULL;
	int rc;

	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return 1;
	if (alyx_open(dir, ALYX_OPEN_CREATE, &a) != ALYX_OK ||
	    alyx_apply_schema(a, schema, (size_t)-1, NULL, 0, NULL) != ALYX_OK ||
	    alyx_db_reset(a) != ALYX_OK) {
		fprintf(stderr, "setup: %s\n", alyx_errmsg(a));
		alyx_close(a);
		return 1;
	}
	/* All or nothing: the duplicate id (request 2) undoes requests 0-1. */
	rc = alyx_batch(a, NULL,
			"{\"requests\":["
			"{\"method\":\"POST\",\"url\":\"/api/collections/tasks\","
			"\"body\":{\"id\":\"a\"}},"
			"{\"method\":\"POST\",\"url\":\"/api/collections/tasks\","
			"\"body\":{\"id\":\"b\"}},"
			"{\"method\":\"POST\",\"url\":\"/api/collections/tasks\","
			"\"body\":{\"id\":\"a\"}}]}",
			(size_t)-1, &out);
	printf("batch 1: %s %s\n", alyx_errname(rc), alyx_errdetails(a));

	rc = alyx_batch(a, NULL,
			"{\"requests\":["
			"{\"method\":\"POST\",\"url\":\"/api/collections/tasks\","
			"\"body\":{\"id\":\"a\"}},"
			"{\"method\":\"PATCH\",\"url\":\"/api/collections/tasks/a\","
			"\"body\":{\"done\":true}}]}",
			(size_t)-1, &out);
	if (rc == ALYX_OK)
		printf("batch 2: %s\n", out);
	alyx_free(out);

	/* Every committed write is in the change feed, oldest first. */
	if (alyx_changes(a, 0, 100, &out) == ALYX_OK)
		printf("changes: %s\n", out);
	alyx_free(out);
	alyx_close(a);
	return rc == ALYX_OK ? 0 : 1;
}
