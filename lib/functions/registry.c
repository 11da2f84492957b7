/*
 * registry.c - discovery of the functions/ directory (.js, .mjs and .py
 * files) and their optional manifests (name.yaml): name, runtime,
 * timeout, memory, env, network.
 *
 * The directory is rescanned when its mtime changes and at least every
 * ALYX__FN_RESCAN_MS, so new, removed and re-configured functions are
 * seen without a restart (code edits are picked up by the executors,
 * which reload a module whose file changed).
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "functions/functions.h"

#define MAX_FUNCTIONS 1024
#define MAX_MANIFEST (64u << 10)

struct alyx__fn_reg {
	pthread_mutex_t mu;
	char *dir;			/* absolute functions directory */
	const alyx__config *cfg;
	alyx__fn_def *defs;
	size_t n;
	int64_t scanned_ms;		/* monotonic; 0 = never */
	struct timespec dir_mtime;
	bool racy;			/* the directory changed just before
					 * the scan (within a coarse timestamp
					 * tick): scan again next time */
	uint64_t shared_stamp;		/* of functions/_shared (below) */
	int64_t gen;			/* times it changed */
};

void alyx__fn_def_clear(alyx__fn_def *d)
{
	alyx__free(d->name);
	alyx__free(d->file);
	alyx__free(d->env_json);
	alyx__free(d->error);
	memset(d, 0, sizeof(*d));
}

const char *alyx__fn_runtime_name(int rt)
{
	return rt == ALYX__RT_PYTHON ? "python" : "node";
}

static const alyx__fn_runtime *rt_cfg(const alyx__config *cfg, int rt)
{
	return rt == ALYX__RT_PYTHON ? &cfg->functions.python :
				       &cfg->functions.node;
}

char *alyx__fn_expand_env(const char *s, bool *bad)
{
	alyx_buf b;

	*bad = false;
	alyx__buf_init(&b, 1u << 20);
	while (*s) {
		const char *end, *dflt, *v;
		char name[256];
		size_t n;

		if (s[0] != '$' || s[1] != '{') {
			alyx__buf_addc(&b, *s++);
			continue;
		}
		end = strchr(s + 2, '}');
		if (!end) {
			*bad = true;
			alyx__buf_free(&b);
			return NULL;
		}
		dflt = strstr(s + 2, ":-");
		if (dflt && dflt > end)
			dflt = NULL;
		n = (size_t)((dflt ? dflt : end) - (s + 2));
		if (n == 0 || n >= sizeof(name)) {
			*bad = true;
			alyx__buf_free(&b);
			return NULL;
		}
		memcpy(name, s + 2, n);
		name[n] = '\0';
		v = getenv(name);
		if (v && *v)
			alyx__buf_adds(&b, v);
		else if (dflt)
			alyx__buf_add(&b, dflt + 2, (size_t)(end - dflt - 2));
		s = end + 1;
	}
	if (!b.data)
		alyx__buf_add(&b, "", 0);
	return alyx__buf_take(&b);
}

static bool name_ok(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') ||
		      (s[n] >= 'A' && s[n] <= 'Z') ||
		      (s[n] >= '0' && s[n] <= '9') || s[n] == '_' ||
		      s[n] == '-'))
			return false;
	return n > 0 && n <= 64 && s[0] != '_' && s[0] != '-';
}

/* Applies manifest `path` to d; on a problem sets d->error (the function
 * stays listed with status "error"). */
static void read_manifest(alyx__fn_def *d, const char *path, int ext_rt)
{
	alyx__err err = {0};
	char *text = NULL, *json = NULL, *why = NULL;
	size_t len;
	cJSON *root = NULL, *it;
	alyx_buf env;

	alyx__buf_init(&env, 1u << 20);
	if (alyx__read_file(path, MAX_MANIFEST, &text, &len, &err) != ALYX_OK) {
		why = alyx__strdup(err.msg);
		goto out;
	}
	if (alyx_yaml_to_json(NULL, text, len, path, &json) != ALYX_OK) {
		why = alyx__strdup(alyx_errmsg(NULL));
		goto out;
	}
	root = cJSON_Parse(json);
	if (cJSON_IsNull(root))
		goto out;	/* an empty manifest */
	if (!cJSON_IsObject(root)) {
		why = alyx__asprintf("%s: must be a mapping", path);
		goto out;
	}
	cJSON_ArrayForEach(it, root) {
		const char *k = it->string;

		if (!strcmp(k, "name")) {
			if (!cJSON_IsString(it) || !name_ok(it->valuestring)) {
				why = alyx__asprintf("%s: name must be 1-64 "
						     "letters, digits, _ or -",
						     path);
				goto out;
			}
			alyx__free(d->name);
			d->name = alyx__strdup(it->valuestring);
		} else if (!strcmp(k, "runtime")) {
			int rt = -1;

			if (cJSON_IsString(it) && !strcmp(it->valuestring,
							  "node"))
				rt = ALYX__RT_NODE;
			else if (cJSON_IsString(it) &&
				 !strcmp(it->valuestring, "python"))
				rt = ALYX__RT_PYTHON;
			if (rt < 0) {
				why = alyx__asprintf("%s: runtime must be "
						     "node or python", path);
				goto out;
			}
			if (rt != ext_rt) {
				why = alyx__asprintf("%s: runtime %s does not "
						     "match the file %s", path,
						     it->valuestring, d->file);
				goto out;
			}
		} else if (!strcmp(k, "timeout")) {
			int64_t ms;

			if (!cJSON_IsString(it) ||
			    !alyx__parse_duration_ms(it->valuestring, &ms) ||
			    ms <= 0 || ms > 3600000) {
				why = alyx__asprintf("%s: timeout must be a "
						     "duration like 500ms or "
						     "30s (at most 1h)", path);
				goto out;
			}
			d->timeout_ms = ms;
		} else if (!strcmp(k, "memory")) {
			int64_t sz;

			if (!cJSON_IsString(it) ||
			    !alyx__parse_size(it->valuestring, &sz) ||
			    sz < (16 << 20) || sz > ((int64_t)64 << 30)) {
				why = alyx__asprintf("%s: memory must be a "
						     "size like 256mb (16mb "
						     "to 64gb)", path);
				goto out;
			}
			d->memory = sz;
		} else if (!strcmp(k, "network")) {
			if (!cJSON_IsBool(it)) {
				why = alyx__asprintf("%s: network must be "
						     "true or false", path);
				goto out;
			}
			d->network = cJSON_IsTrue(it);
		} else if (!strcmp(k, "env")) {
			cJSON *e;
			bool first = true;

			if (!cJSON_IsObject(it) && !cJSON_IsNull(it)) {
				why = alyx__asprintf("%s: env must be a "
						     "mapping", path);
				goto out;
			}
			alyx__buf_addc(&env, '{');
			cJSON_ArrayForEach(e, it) {
				char *v = NULL, num[64];
				bool bad = false;

				if (cJSON_IsString(e)) {
					v = alyx__fn_expand_env(e->valuestring,
								&bad);
				} else if (cJSON_IsNumber(e) ||
					   cJSON_IsBool(e)) {
					if (cJSON_IsBool(e))
						snprintf(num, sizeof(num), "%s",
							 cJSON_IsTrue(e) ?
							 "true" : "false");
					else
						snprintf(num, sizeof(num),
							 "%.17g",
							 e->valuedouble);
					v = alyx__strdup(num);
				} else {
					bad = true;
				}
				if (!v) {
					why = alyx__asprintf("%s: env.%s must "
						"be a string (${VAR} and "
						"${VAR:-default} expand)",
						path, e->string);
					goto out;
				}
				if (!first)
					alyx__buf_addc(&env, ',');
				first = false;
				alyx__json_strz(&env, e->string);
				alyx__buf_addc(&env, ':');
				alyx__json_strz(&env, v);
				alyx__free(v);
			}
			alyx__buf_addc(&env, '}');
		} else {
			why = alyx__asprintf("%s: unknown key \"%s\" (name, "
					     "runtime, timeout, memory, env, "
					     "network)", path, k);
			goto out;
		}
	}
	if (env.len) {
		alyx__free(d->env_json);
		d->env_json = alyx__buf_take(&env);
	}
out:
	if (why || (!d->name || !d->env_json)) {
		if (!why && (!d->name || !d->env_json))
			why = alyx__strdup("out of memory");
		alyx__free(d->error);
		d->error = why;
	}
	alyx__buf_free(&env);
	cJSON_Delete(root);
	alyx_free(json);
	alyx__free(text);
	alyx__err_clear(&err);
}

static int def_cmp(const void *x, const void *y)
{
	return strcmp(((const alyx__fn_def *)x)->name,
		      ((const alyx__fn_def *)y)->name);
}

/* Scans r->dir into a new list (r->mu held). */
static int scan(alyx__fn_reg *r, alyx__err *err)
{
	DIR *dh;
	struct dirent *de;
	alyx__fn_def *defs = NULL;
	size_t n = 0, i;
	int rc = ALYX_OK;

	dh = opendir(r->dir);
	if (!dh) {
		if (errno != ENOENT)
			return alyx__err_set(err, ALYX_E_IO, NULL,
					     "cannot read %s: %s", r->dir,
					     strerror(errno));
		goto swap;	/* no functions directory: no functions */
	}
	defs = alyx__calloc(MAX_FUNCTIONS, sizeof(*defs));
	if (!defs) {
		closedir(dh);
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	}
	while ((de = readdir(dh)) && n < MAX_FUNCTIONS) {
		const char *dot = strrchr(de->d_name, '.');
		alyx__fn_def *d = &defs[n];
		char *base, *yaml;
		struct stat st;
		int rt;

		if (de->d_name[0] == '_' || de->d_name[0] == '.' || !dot)
			continue;	/* _shared/ and hidden files */
		if (!strcmp(dot, ".js") || !strcmp(dot, ".mjs"))
			rt = ALYX__RT_NODE;
		else if (!strcmp(dot, ".py"))
			rt = ALYX__RT_PYTHON;
		else
			continue;
		base = alyx__strndup(de->d_name, (size_t)(dot - de->d_name));
		d->file = alyx__path_join(r->dir, de->d_name);
		if (!base || !d->file) {
			alyx__free(base);
			rc = alyx__err_set(err, ALYX_E_NOMEM, NULL,
					   "out of memory");
			break;
		}
		if (stat(d->file, &st) != 0 || !S_ISREG(st.st_mode)) {
			alyx__free(base);
			alyx__fn_def_clear(d);
			continue;
		}
		d->name = base;
		d->runtime = rt;
		d->timeout_ms = rt_cfg(r->cfg, rt)->exec_timeout_ms;
		d->memory = rt_cfg(r->cfg, rt)->memory_limit;
		d->env_json = alyx__strdup("{}");
		if (!name_ok(base))
			d->error = alyx__asprintf("%s: a function name is 1-64 "
						  "letters, digits, _ or -",
						  d->file);
		yaml = alyx__asprintf("%s/%s.yaml", r->dir, base);
		if (yaml && stat(yaml, &st) != 0) {
			alyx__free(yaml);
			yaml = alyx__asprintf("%s/%s.yml", r->dir, base);
			if (yaml && stat(yaml, &st) != 0) {
				alyx__free(yaml);
				yaml = NULL;
			}
		}
		if (yaml && !d->error)
			read_manifest(d, yaml, rt);
		alyx__free(yaml);
		if (!d->env_json || !d->name) {
			alyx__fn_def_clear(d);
			rc = alyx__err_set(err, ALYX_E_NOMEM, NULL,
					   "out of memory");
			break;
		}
		n++;
	}
	closedir(dh);
	if (rc != ALYX_OK) {
		for (i = 0; i < n; i++)
			alyx__fn_def_clear(&defs[i]);
		alyx__free(defs);
		return rc;
	}
	qsort(defs, n, sizeof(*defs), def_cmp);
	/* Two files with one name (a.js and a.py): both are errors. */
	for (i = 0; i + 1 < n; i++) {
		if (strcmp(defs[i].name, defs[i + 1].name))
			continue;
		for (size_t j = i; j <= i + 1; j++) {
			alyx__free(defs[j].error);
			defs[j].error = alyx__asprintf("function %s is defined "
						       "by both %s and %s",
						       defs[i].name,
						       defs[i].file,
						       defs[i + 1].file);
		}
	}
swap:
	for (i = 0; i < r->n; i++)
		alyx__fn_def_clear(&r->defs[i]);
	alyx__free(r->defs);
	r->defs = defs;
	r->n = n;
	return ALYX_OK;
}

/* FNV-1a over the names, sizes and mtimes of everything under dir (at
 * most 8 levels, 4096 entries; hidden entries, __pycache__ and
 * node_modules skipped): changes when a shared helper is edited, added
 * or removed. */
static void stamp_tree(const char *dir, int depth, int *budget,
		       uint64_t *h)
{
	DIR *d = depth < 8 ? opendir(dir) : NULL;
	struct dirent *e;

	while (d && (e = readdir(d)) && (*budget)-- > 0) {
		char path[PATH_MAX];
		struct stat st;
		const unsigned char *p;
		int64_t v[3];
		size_t i;

		if (e->d_name[0] == '.' || !strcmp(e->d_name, "__pycache__") ||
		    !strcmp(e->d_name, "node_modules"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (lstat(path, &st) != 0)
			continue;
		v[0] = (int64_t)st.st_size;
		v[1] = (int64_t)st.st_mtim.tv_sec;
		v[2] = (int64_t)st.st_mtim.tv_nsec;
		for (p = (const unsigned char *)path; *p; p++)
			*h = (*h ^ *p) * 1099511628211ull;
		for (p = (const unsigned char *)v, i = 0; i < sizeof(v);
		     i++)
			*h = (*h ^ p[i]) * 1099511628211ull;
		if (S_ISDIR(st.st_mode))
			stamp_tree(path, depth + 1, budget, h);
	}
	if (d)
		closedir(d);
}

static void check_shared(alyx__fn_reg *r)
{
	char path[PATH_MAX];
	uint64_t h = 14695981039346656037ull;
	int budget = 4096;

	snprintf(path, sizeof(path), "%s/_shared", r->dir);
	stamp_tree(path, 0, &budget, &h);
	if (r->scanned_ms && h != r->shared_stamp)
		r->gen++;
	r->shared_stamp = h;
}

/* Rescans when due (r->mu held). */
static int refresh(alyx__fn_reg *r, alyx__err *err)
{
	struct stat st;
	int64_t now = alyx__mono_ms();
	bool changed;

	if (stat(r->dir, &st) != 0)
		memset(&st, 0, sizeof(st));
	changed = st.st_mtim.tv_sec != r->dir_mtime.tv_sec ||
		  st.st_mtim.tv_nsec != r->dir_mtime.tv_nsec;
	if (r->scanned_ms && !changed && !r->racy &&
	    now - r->scanned_ms < ALYX__FN_RESCAN_MS)
		return ALYX_OK;
	if (scan(r, err) != ALYX_OK)
		return err->code;
	check_shared(r);
	r->scanned_ms = now;
	r->dir_mtime = st.st_mtim;
	r->racy = alyx__now_ms() - ((int64_t)st.st_mtim.tv_sec * 1000 +
				    st.st_mtim.tv_nsec / 1000000) < 50;
	return ALYX_OK;
}

int alyx__fn_reg_new(const char *dir, const alyx__config *cfg,
		     alyx__fn_reg **out, alyx__err *err)
{
	alyx__fn_reg *r = alyx__calloc(1, sizeof(*r));

	*out = NULL;
	if (!r || !(r->dir = alyx__strdup(dir))) {
		alyx__free(r);
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	}
	r->cfg = cfg;
	pthread_mutex_init(&r->mu, NULL);
	*out = r;
	return ALYX_OK;
}

void alyx__fn_reg_free(alyx__fn_reg *r)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; i < r->n; i++)
		alyx__fn_def_clear(&r->defs[i]);
	alyx__free(r->defs);
	alyx__free(r->dir);
	pthread_mutex_destroy(&r->mu);
	alyx__free(r);
}

static const alyx__fn_def *find(alyx__fn_reg *r, const char *name)
{
	size_t lo = 0, hi = r->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(name, r->defs[mid].name);

		if (c == 0)
			return &r->defs[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

int alyx__fn_lookup(alyx__fn_reg *r, const char *name, alyx__fn_def *d,
		    alyx__err *err)
{
	const alyx__fn_def *s;
	int rc;

	memset(d, 0, sizeof(*d));
	pthread_mutex_lock(&r->mu);
	rc = refresh(r, err);
	if (rc != ALYX_OK)
		goto out;
	s = find(r, name);
	if (!s) {
		alyx_buf b;

		alyx__buf_init(&b, 4096);
		alyx__buf_adds(&b, "{\"function\":");
		alyx__json_str(&b, name, strnlen(name, 200));
		alyx__buf_addc(&b, '}');
		rc = alyx__err_setd(err, ALYX_E_NOTFOUND, alyx__buf_take(&b),
				    "no function named \"%.200s\" in %s", name,
				    r->dir);
		goto out;
	}
	*d = *s;
	d->gen = r->gen;
	d->name = alyx__strdup(s->name);
	d->file = alyx__strdup(s->file);
	d->env_json = alyx__strdup(s->env_json);
	d->error = alyx__strdup(s->error);
	if (!d->name || !d->file || !d->env_json || (s->error && !d->error)) {
		alyx__fn_def_clear(d);
		rc = alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	}
out:
	pthread_mutex_unlock(&r->mu);
	return rc;
}

void alyx__fn_reg_json(alyx__fn_reg *r, alyx_buf *b)
{
	alyx__err err = {0};
	size_t i;

	pthread_mutex_lock(&r->mu);
	refresh(r, &err);
	alyx__buf_addc(b, '[');
	for (i = 0; i < r->n; i++) {
		const alyx__fn_def *d = &r->defs[i];

		if (i)
			alyx__buf_addc(b, ',');
		alyx__buf_adds(b, "{\"name\":");
		alyx__json_strz(b, d->name);
		alyx__buf_adds(b, ",\"runtime\":");
		alyx__json_strz(b, alyx__fn_runtime_name(d->runtime));
		alyx__buf_adds(b, ",\"file\":");
		alyx__json_strz(b, d->file);
		alyx__buf_addf(b, ",\"timeout_ms\":%lld,\"memory\":%lld,"
			       "\"network\":%s,\"status\":\"%s\"",
			       (long long)d->timeout_ms, (long long)d->memory,
			       d->network ? "true" : "false",
			       d->error ? "error" : "ready");
		if (d->error) {
			alyx__buf_adds(b, ",\"error\":");
			alyx__json_strz(b, d->error);
		}
		alyx__buf_addc(b, '}');
	}
	alyx__buf_addc(b, ']');
	pthread_mutex_unlock(&r->mu);
	alyx__err_clear(&err);
}
