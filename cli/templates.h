/*
 * templates.h - the project templates of `alyx init`, embedded at build
 * time from cli/templates/ by cli/embed-templates.py.
 */
#ifndef CLI_TEMPLATES_H
#define CLI_TEMPLATES_H

#include <stddef.h>

struct cli_template {
	const char *path;	/* "common/alyx.yaml", "blog/schema.yaml" */
	const char *data;	/* the file's bytes, NUL-terminated */
	size_t len;		/* without the NUL */
};

/* Ends with an entry whose path is NULL. */
extern const struct cli_template cli_templates[];

#endif
