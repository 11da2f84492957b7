/*
 * container.c - the container runner: a Docker Engine API client (Docker,
 * or Podman's compatible service) over its unix socket with libcurl, and
 * the lifecycle of the long-lived containers that pool.c uses as
 * executors (docs/functions.md, "Container runner").
 *
 * A container runs the same executor as process mode.  It talks to
 * libalyx over a unix socket in a small per-container directory that is
 * bind-mounted at /run/alyx: libalyx listens on /run/alyx/s, the executor
 * connects to it (ALYX_PROTO_SOCKET) once it started, and the one
 * connection then carries the line protocol both ways.  So the Engine
 * API is used only for the lifecycle (create, start, inspect, logs,
 * delete): never a container start or an exec per call.
 *
 * Every container is labelled dev.alyx.fn=1 and dev.alyx.owner=
 * host/pid/start-time; containers whose owner process is gone (a crashed
 * alyxd) are removed when the engine is first reached.
 *
 * Stopping is deferred: alyx__box_stop() only queues the container, and
 * alyx__engine_reap() (called without pool locks) deletes the queued
 * ones, so no pool lock is held across an Engine API request.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>
#include <signal.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "core/config.h"
#include "functions/functions.h"

/* The Engine API version spoken (Docker 20.10+, Podman 3+ compat). */
#define API_PREFIX "/v1.41"
/* Engine answers are small (inspect is the largest); cap them. */
#define MAX_ANSWER (4u << 20)
/* Lifecycle requests; a start waits for the executor separately. */
#define API_TIMEOUT_MS 60000
/* Where the socket directory appears inside the container. */
#define RUN_DIR_IN "/run/alyx"

struct alyx__box {
	alyx__engine *e;
	char id[80];		/* the engine's container id */
	char *dir;		/* host directory of the protocol socket */
	alyx__box *next;
};

struct alyx__engine {
	const alyx__config *cfg;
	char *socket;
	char owner[320];	/* host/pid/start-time */
	pthread_mutex_t mu;
	bool ready;		/* reached, leftovers removed */
	bool image_ok[ALYX__RT_COUNT];
	char *run_dir;		/* /tmp/alyx-ctr-<pid>-XXXXXX */
	alyx__box *dead;	/* queued by alyx__box_stop */
};

/* Container names and socket directories are unique per process. */
static atomic_llong box_seq;

/* ---- the owner label ---- */

/* The start time of process pid (field 22 of /proc/pid/stat), or 0. */
static unsigned long long proc_start(long pid)
{
	char path[64], buf[1024], *p;
	unsigned long long v = 0;
	ssize_t n;
	int fd, i;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	/* After "(comm)": state is field 3, starttime field 22. */
	for (i = 2; p && i < 22; i++)
		p = strchr(p + 1, ' ');
	if (p)
		v = strtoull(p + 1, NULL, 10);
	return v;
}

static void owner_of_self(char *out, size_t n)
{
	char host[256] = "";

	gethostname(host, sizeof(host) - 1);
	snprintf(out, n, "%s/%ld/%llu", host, (long)getpid(),
		 proc_start((long)getpid()));
}

/* True when `owner` names a process of this host that no longer runs. */
static bool owner_gone(const char *owner, const char *self)
{
	const char *s1 = strchr(self, '/'), *o1 = strchr(owner, '/');
	char *end;
	long pid;
	unsigned long long start;

	if (!s1 || !o1 || s1 - self != o1 - owner ||
	    strncmp(self, owner, (size_t)(s1 - self)))
		return false;	/* another host's (or a foreign label) */
	pid = strtol(o1 + 1, &end, 10);
	if (*end != '/' || pid <= 0)
		return false;
	start = strtoull(end + 1, NULL, 10);
	return proc_start(pid) != start;
}

/* ---- Engine API requests ---- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	alyx_buf *b = ud;

	alyx__buf_add(b, p, size * n);
	return b->err ? 0 : size * n;
}

/* Why the engine could not be reached, in words a user can act on. */
static int unreachable(alyx__engine *e, CURLcode cc, const char *ebuf,
		       alyx__err *err)
{
	struct stat st;

	if (stat(e->socket, &st) != 0)
		return alyx__err_set(err, ALYX_E_UNAVAILABLE, NULL,
				     "container engine socket %s: %s (start "
				     "Docker, or `podman system service "
				     "unix://%s`; alyx.yaml "
				     "functions.container_socket)", e->socket,
				     strerror(errno), e->socket);
	if (!S_ISSOCK(st.st_mode))
		return alyx__err_set(err, ALYX_E_UNAVAILABLE, NULL,
				     "container engine socket %s is not a "
				     "socket (alyx.yaml "
				     "functions.container_socket)", e->socket);
	if (access(e->socket, R_OK | W_OK) != 0)
		return alyx__err_set(err, ALYX_E_UNAVAILABLE, NULL,
				     "container engine socket %s: %s",
				     e->socket, strerror(errno));
	return alyx__err_set(err, ALYX_E_UNAVAILABLE, NULL,
			     "cannot reach the container engine at %s (is it "
			     "running?): %s", e->socket, ebuf[0] ? ebuf :
			     curl_easy_strerror(cc));
}

/* One request: `method` `path` (below /v1.41) with an optional JSON
 * body.  On success *status is the HTTP status and out (when not NULL)
 * holds the answer. */
static int api(alyx__engine *e, const char *method, const char *path,
	       const char *body, long *status, alyx_buf *out, alyx__err *err)
{
	char url[1024], ebuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdr = NULL;
	alyx_buf sink;
	CURL *c;
	CURLcode cc;
	int rc = ALYX_OK;

	*status = 0;
	alyx__buf_init(&sink, MAX_ANSWER);
	if (!out)
		out = &sink;
	c = curl_easy_init();
	if (!c) {
		rc = alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
		goto out;
	}
	snprintf(url, sizeof(url), "http://engine" API_PREFIX "%s", path);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, e->socket);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)API_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	if (body || !strcmp(method, "POST")) {
		hdr = curl_slist_append(hdr, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE,
				 (long)(body ? strlen(body) : 0));
	}
	cc = curl_easy_perform(c);
	if (cc == CURLE_WRITE_ERROR && out->err == ALYX_E_TOOBIG) {
		rc = alyx__err_set(err, ALYX_E_TOOBIG, NULL,
				   "container engine: %s %s: the answer is "
				   "larger than %u bytes", method, path,
				   MAX_ANSWER);
		goto out;
	}
	if (cc == CURLE_WRITE_ERROR) {
		rc = alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
		goto out;
	}
	if (cc != CURLE_OK) {
		rc = unreachable(e, cc, ebuf, err);
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
out:
	curl_slist_free_all(hdr);
	if (c)
		curl_easy_cleanup(c);
	alyx__buf_free(&sink);
	return rc;
}

/* An error answer of the engine, with its message ({"message":...}). */
static int refused(const char *what, long status, const alyx_buf *ans,
		   alyx__err *err)
{
	cJSON *j = ans && ans->len ? cJSON_ParseWithLength(ans->data,
							    ans->len) : NULL;
	cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
	int rc;

	rc = alyx__err_set(err, ALYX_E_UNAVAILABLE, NULL,
			   "container engine refused to %s: HTTP %ld: %.300s",
			   what, status, cJSON_IsString(m) ? m->valuestring :
			   ans && ans->len ? ans->data : "(no message)");
	cJSON_Delete(j);
	return rc;
}

/* Deletes container id (killing it first), retrying while the engine
 * answers something else than 204 or 404 (podman can race a delete
 * right after the container's connection closed). */
static void delete_container(alyx__engine *e, const char *id)
{
	char path[160];
	long st = 0;
	int i;

	snprintf(path, sizeof(path), "/containers/%s?force=1&v=1", id);
	for (i = 0; i < 3; i++) {
		alyx__err err = {0};

		if (api(e, "DELETE", path, NULL, &st, NULL, &err) != ALYX_OK) {
			alyx__err_clear(&err);
			return;		/* the engine is gone */
		}
		if (st == 204 || st == 404)
			return;
		{
			struct timespec ts = {0, 50000000};

			nanosleep(&ts, NULL);
		}
	}
}

/* Removes the containers left by alyx processes of this host that are
 * gone (e->mu held). */
static void remove_leftovers(alyx__engine *e)
{
	static const char filt[] =
		"/containers/json?all=1&filters=%7B%22label%22%3A%5B%22"
		"dev.alyx.fn%3D1%22%5D%7D";
	alyx__err err = {0};
	alyx_buf ans;
	cJSON *root = NULL, *c;
	long st;

	alyx__buf_init(&ans, MAX_ANSWER);
	if (api(e, "GET", filt, NULL, &st, &ans, &err) != ALYX_OK ||
	    st != 200)
		goto out;
	root = cJSON_ParseWithLength(ans.data, ans.len);
	cJSON_ArrayForEach(c, root) {
		cJSON *id = cJSON_GetObjectItemCaseSensitive(c, "Id");
		cJSON *lab = cJSON_GetObjectItemCaseSensitive(c, "Labels");
		cJSON *own = cJSON_GetObjectItemCaseSensitive(lab,
							      "dev.alyx.owner");

		if (cJSON_IsString(id) && cJSON_IsString(own) &&
		    strlen(id->valuestring) < 80 &&
		    owner_gone(own->valuestring, e->owner))
			delete_container(e, id->valuestring);
	}
out:
	cJSON_Delete(root);
	alyx__buf_free(&ans);
	alyx__err_clear(&err);
}

/* Removes the socket directories (/tmp/alyx-ctr-<pid>-*) of processes
 * that no longer run: each holds at most numbered directories with one
 * socket each. */
static void remove_stale_dirs(void)
{
	DIR *d = opendir("/tmp"), *sub;
	struct dirent *de, *se;
	char path[PATH_MAX], sock[PATH_MAX];

	if (!d)
		return;
	while ((de = readdir(d))) {
		char *end;
		long pid;

		if (strncmp(de->d_name, "alyx-ctr-", 9))
			continue;
		pid = strtol(de->d_name + 9, &end, 10);
		if (*end != '-' || pid <= 0 || kill((pid_t)pid, 0) == 0 ||
		    errno != ESRCH)
			continue;
		snprintf(path, sizeof(path), "/tmp/%s", de->d_name);
		sub = opendir(path);
		while (sub && (se = readdir(sub))) {
			if (se->d_name[0] == '.')
				continue;
			snprintf(sock, sizeof(sock), "%s/%s/s", path,
				 se->d_name);
			unlink(sock);
			snprintf(sock, sizeof(sock), "%s/%s", path,
				 se->d_name);
			rmdir(sock);
		}
		if (sub)
			closedir(sub);
		rmdir(path);
	}
	closedir(d);
}

/* Reaches the engine once (ping), then removes leftovers and makes the
 * socket directory (e->mu held). */
static int ensure_ready(alyx__engine *e, alyx__err *err)
{
	char tmpl[64];
	alyx_buf ans;
	long st;
	int rc;

	if (e->ready)
		return ALYX_OK;
	alyx__buf_init(&ans, 4096);
	rc = api(e, "GET", "/_ping", NULL, &st, &ans, err);
	if (rc == ALYX_OK && st != 200)
		rc = refused("answer a ping", st, &ans, err);
	alyx__buf_free(&ans);
	if (rc != ALYX_OK)
		return rc;
	remove_leftovers(e);
	remove_stale_dirs();
	/* Short: the socket's path must fit sun_path (108 bytes). */
	snprintf(tmpl, sizeof(tmpl), "/tmp/alyx-ctr-%ld-XXXXXX",
		 (long)getpid());
	if (!mkdtemp(tmpl))
		return alyx__err_set(err, ALYX_E_IO, NULL, "cannot make %s: %s",
				     tmpl, strerror(errno));
	chmod(tmpl, 0711);	/* a container's non-root user reaches
				 * its own directory, lists none */
	e->run_dir = alyx__strdup(tmpl);
	if (!e->run_dir) {
		rmdir(tmpl);
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	}
	e->ready = true;
	return ALYX_OK;
}

/* Checks once per runtime that its image exists (e->mu held). */
static int check_image(alyx__engine *e, int rt, const char *image,
		       alyx__err *err)
{
	char path[600];
	alyx_buf ans;
	long st;
	int rc;

	if (e->image_ok[rt])
		return ALYX_OK;
	if (strlen(image) > 256 || strchr(image, '?') || strchr(image, '#') ||
	    strchr(image, ' '))
		return alyx__err_set(err, ALYX_E_CONFIG, NULL,
				     "functions.%s.image '%.64s' is not an "
				     "image name", alyx__fn_runtime_name(rt),
				     image);
	snprintf(path, sizeof(path), "/images/%s/json", image);
	alyx__buf_init(&ans, MAX_ANSWER);
	rc = api(e, "GET", path, NULL, &st, &ans, err);
	if (rc == ALYX_OK && st == 404)
		rc = alyx__err_set(err, ALYX_E_UNAVAILABLE, NULL,
				   "container image %s (functions.%s.image) "
				   "is not in the engine at %s: build it with "
				   "runtimes/build-images.sh", image,
				   alyx__fn_runtime_name(rt), e->socket);
	else if (rc == ALYX_OK && st != 200)
		rc = refused("inspect the image", st, &ans, err);
	alyx__buf_free(&ans);
	if (rc == ALYX_OK)
		e->image_ok[rt] = true;
	return rc;
}

/* ---- the engine ---- */

int alyx__engine_new(const alyx__config *cfg, alyx__engine **out,
		     alyx__err *err)
{
	alyx__engine *e = alyx__calloc(1, sizeof(*e));

	*out = NULL;
	if (!e)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	e->cfg = cfg;
	e->socket = alyx__strdup(cfg->functions.container_socket);
	if (!e->socket) {
		alyx__free(e);
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	}
	owner_of_self(e->owner, sizeof(e->owner));
	pthread_mutex_init(&e->mu, NULL);
	*out = e;
	return ALYX_OK;
}

static void box_free(alyx__box *b)
{
	char path[PATH_MAX];

	if (b->dir) {
		snprintf(path, sizeof(path), "%s/s", b->dir);
		unlink(path);
		rmdir(b->dir);
		alyx__free(b->dir);
	}
	alyx__free(b);
}

void alyx__engine_reap(alyx__engine *e)
{
	alyx__box *b, *next;

	if (!e)
		return;
	pthread_mutex_lock(&e->mu);
	b = e->dead;
	e->dead = NULL;
	pthread_mutex_unlock(&e->mu);
	for (; b; b = next) {
		next = b->next;
		if (b->id[0])
			delete_container(e, b->id);
		box_free(b);
	}
}

void alyx__engine_free(alyx__engine *e)
{
	if (!e)
		return;
	alyx__engine_reap(e);
	if (e->run_dir)
		rmdir(e->run_dir);
	alyx__free(e->run_dir);
	alyx__free(e->socket);
	pthread_mutex_destroy(&e->mu);
	alyx__free(e);
}

void alyx__box_stop(alyx__box *b)
{
	alyx__engine *e;

	if (!b)
		return;
	e = b->e;
	pthread_mutex_lock(&e->mu);
	b->next = e->dead;
	e->dead = b;
	pthread_mutex_unlock(&e->mu);
}

/* ---- one container ---- */

static void json_strs(alyx_buf *b, const char *const *v, int n)
{
	int i;

	alyx__buf_addc(b, '[');
	for (i = 0; i < n; i++) {
		if (i)
			alyx__buf_addc(b, ',');
		alyx__json_strz(b, v[i]);
	}
	alyx__buf_addc(b, ']');
}

static int64_t hard_limit(int res, int64_t dflt)
{
	struct rlimit rl;

	if (getrlimit(res, &rl) != 0 || rl.rlim_max == RLIM_INFINITY)
		return dflt;
	return (int64_t)rl.rlim_max;
}

/* The create request of a container for spec, whose socket directory is
 * `dir` (see docs/functions.md for every field). */
static char *create_body(alyx__engine *e, const alyx__box_spec *s,
			 const char *dir)
{
	const alyx__config *cfg = e->cfg;
	const alyx__fn_runtime *rc = s->runtime == ALYX__RT_PYTHON ?
				     &cfg->functions.python :
				     &cfg->functions.node;
	char heap[64], exe[PATH_MAX], bind[3][PATH_MAX + 16];
	const char *cmd[8], *binds[3];
	int nc = 0;
	int64_t nofile = hard_limit(RLIMIT_NOFILE, 65536);
	int64_t nproc = hard_limit(RLIMIT_NPROC, 65536);
	alyx_buf b;

	/* Never above the host's hard limits: rootful podman would raise
	 * both to 1048576, which fails where CAP_SYS_RESOURCE is missing.
	 * nproc stays at 4096 at most, as podman lowers its own to 32768
	 * (and PidsLimit bounds a container's processes anyway). */
	if (nofile > 1048576)
		nofile = 1048576;
	if (nproc > 4096)
		nproc = 4096;
	if (s->runtime == ALYX__RT_NODE) {
		snprintf(heap, sizeof(heap), "--max-old-space-size=%lld",
			 (long long)(s->memory >> 20));
		snprintf(exe, sizeof(exe), "%s/node/executor.mjs", s->rt_dir);
		cmd[nc++] = heap;
		cmd[nc++] = "--no-warnings";
		cmd[nc++] = "--experimental-default-type=module";
	} else {
		snprintf(exe, sizeof(exe), "%s/python/executor.py", s->rt_dir);
		cmd[nc++] = "-I";
		cmd[nc++] = "-B";
	}
	cmd[nc++] = exe;
	snprintf(bind[0], sizeof(bind[0]), "%s:%s:ro", s->fn_dir, s->fn_dir);
	snprintf(bind[1], sizeof(bind[1]), "%s:%s:ro", s->rt_dir, s->rt_dir);
	snprintf(bind[2], sizeof(bind[2]), "%s:" RUN_DIR_IN, dir);
	binds[0] = bind[0];
	binds[1] = bind[1];
	binds[2] = bind[2];
	alyx__buf_init(&b, 0);
	alyx__buf_adds(&b, "{\"Image\":");
	alyx__json_strz(&b, rc->image);
	alyx__buf_adds(&b, s->runtime == ALYX__RT_NODE ?
		       ",\"Entrypoint\":[\"node\"]" :
		       ",\"Entrypoint\":[\"python3\"]");
	alyx__buf_adds(&b, ",\"Cmd\":");
	json_strs(&b, cmd, nc);
	alyx__buf_adds(&b, ",\"Env\":[\"ALYX_PROTO_SOCKET=" RUN_DIR_IN "/s\","
		       "\"HOME=/tmp\",\"LANG=C.UTF-8\",\"ALYX_SDK_MOUNTED=0\",");
	alyx__buf_addf(&b, "\"ALYX_MAX_OUTPUT=%u\",", ALYX__FN_MAX_OUTPUT);
	{
		char *fd = alyx__asprintf("ALYX_FUNCTIONS_DIR=%s", s->fn_dir);

		alyx__json_strz(&b, fd);
		alyx__free(fd);
	}
	alyx__buf_adds(&b, "],\"WorkingDir\":\"/tmp\"");
	if (cfg->functions.container.user[0]) {
		alyx__buf_adds(&b, ",\"User\":");
		alyx__json_strz(&b, cfg->functions.container.user);
	}
	alyx__buf_adds(&b, ",\"Labels\":{\"dev.alyx.fn\":\"1\","
		       "\"dev.alyx.runtime\":");
	alyx__json_strz(&b, alyx__fn_runtime_name(s->runtime));
	alyx__buf_adds(&b, ",\"dev.alyx.owner\":");
	alyx__json_strz(&b, e->owner);
	alyx__buf_adds(&b, "},\"HostConfig\":{\"Binds\":");
	json_strs(&b, binds, 3);
	alyx__buf_addf(&b, ",\"NetworkMode\":\"%s\"",
		       s->network ? "bridge" : "none");
	alyx__buf_addf(&b, ",\"Memory\":%lld,\"MemorySwap\":%lld",
		       (long long)s->memory, (long long)s->memory);
	{
		/* Docker refuses more CPUs than the host has. */
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		double cpus = rc->cpu_limit;

		if (ncpu > 0 && cpus > (double)ncpu)
			cpus = (double)ncpu;
		alyx__buf_addf(&b, ",\"NanoCpus\":%lld",
			       (long long)(cpus * 1e9));
	}
	alyx__buf_addf(&b, ",\"PidsLimit\":%d",
		       cfg->functions.container.pids_limit);
	alyx__buf_adds(&b, ",\"ReadonlyRootfs\":true,\"Tmpfs\":{\"/tmp\":"
		       "\"rw,nosuid,nodev,size=64m\"}");
	alyx__buf_addf(&b, ",\"Ulimits\":[{\"Name\":\"nofile\",\"Soft\":%lld,"
		       "\"Hard\":%lld},{\"Name\":\"nproc\",\"Soft\":%lld,"
		       "\"Hard\":%lld}]", (long long)nofile, (long long)nofile,
		       (long long)nproc, (long long)nproc);
	alyx__buf_adds(&b, ",\"CapDrop\":[\"ALL\"],\"SecurityOpt\":"
		       "[\"no-new-privileges\"]}}");
	return alyx__buf_take(&b);
}

/* The last lines of the container's output (for a start that failed):
 * the log stream's 8-byte frame headers are dropped. */
static char *log_tail(alyx__engine *e, const char *id)
{
	char path[200];
	alyx_buf ans, text;
	alyx__err err = {0};
	size_t i = 0;
	long st;

	snprintf(path, sizeof(path), "/containers/%s/logs?stdout=1&stderr=1"
		 "&tail=8", id);
	alyx__buf_init(&ans, MAX_ANSWER);
	alyx__buf_init(&text, 0);
	if (api(e, "GET", path, NULL, &st, &ans, &err) == ALYX_OK &&
	    st == 200) {
		while (i + 8 <= ans.len && (ans.data[i] == 1 ||
					    ans.data[i] == 2) &&
		       !ans.data[i + 1] && !ans.data[i + 2] &&
		       !ans.data[i + 3]) {
			const unsigned char *h =
				(const unsigned char *)ans.data + i;
			size_t n = (size_t)h[4] << 24 | (size_t)h[5] << 16 |
				   (size_t)h[6] << 8 | h[7];

			i += 8;
			if (n > ans.len - i)
				n = ans.len - i;
			alyx__buf_add(&text, ans.data + i, n);
			i += n;
		}
		if (i < ans.len)	/* a TTY container: raw text */
			alyx__buf_add(&text, ans.data + i, ans.len - i);
	}
	alyx__err_clear(&err);
	alyx__buf_free(&ans);
	while (text.len && (text.data[text.len - 1] == '\n' ||
			    text.data[text.len - 1] == ' '))
		text.len--;
	for (i = 0; i < text.len; i++)
		if (text.data[i] == '\n')
			text.data[i] = ' ';
	alyx__buf_addc(&text, '\0');
	return alyx__buf_take(&text);
}

/* The container's State: running, exit code, killed for memory.
 * Returns false when it could not be inspected. */
static bool inspect_state(alyx__engine *e, const char *id, bool *running,
			  int *code, bool *oom)
{
	char path[160];
	alyx_buf ans;
	alyx__err err = {0};
	cJSON *root = NULL, *s;
	long st;
	bool ok = false;

	snprintf(path, sizeof(path), "/containers/%s/json", id);
	alyx__buf_init(&ans, MAX_ANSWER);
	if (api(e, "GET", path, NULL, &st, &ans, &err) == ALYX_OK &&
	    st == 200) {
		root = cJSON_ParseWithLength(ans.data, ans.len);
		s = cJSON_GetObjectItemCaseSensitive(root, "State");
		if (cJSON_IsObject(s)) {
			cJSON *r = cJSON_GetObjectItemCaseSensitive(s,
								    "Running");
			cJSON *c = cJSON_GetObjectItemCaseSensitive(s,
								    "ExitCode");
			cJSON *o = cJSON_GetObjectItemCaseSensitive(s,
								    "OOMKilled");

			*running = cJSON_IsTrue(r);
			*code = cJSON_IsNumber(c) ? c->valueint : -1;
			*oom = cJSON_IsTrue(o);
			ok = true;
		}
	}
	cJSON_Delete(root);
	alyx__buf_free(&ans);
	alyx__err_clear(&err);
	return ok;
}

void alyx__box_exit_text(alyx__box *b, char *out, size_t n)
{
	alyx__engine *e = b->e;
	int64_t until = alyx__mono_ms() + 1000;
	bool running = true, oom = false;
	int code = -1;

	/* The connection's EOF comes before the engine notices the exit. */
	while (inspect_state(e, b->id, &running, &code, &oom) && running &&
	       alyx__mono_ms() < until) {
		struct timespec ts = {0, 20000000};

		nanosleep(&ts, NULL);
	}
	if (running)
		snprintf(out, n, "closed its connection");
	else if (oom)
		snprintf(out, n, "was killed for using more memory than its "
			 "limit (container exit status %d)", code);
	else if (code >= 128)
		snprintf(out, n, "was killed by signal %d", code - 128);
	else
		snprintf(out, n, "exited with status %d", code);
}

/* Listens on dir/s for the executor (mode 0666: the container's user
 * may be anyone). */
static int listen_on(const char *dir, alyx__err *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/s", dir) >=
	    sizeof(sa.sun_path))
		return alyx__err_set(err, ALYX_E_IO, NULL, "socket path %s/s "
				     "is too long", dir), -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    chmod(sa.sun_path, 0666) != 0 || listen(fd, 1) != 0) {
		alyx__err_set(err, ALYX_E_IO, NULL, "cannot listen on %s: %s",
			      sa.sun_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Waits for the executor of container id to connect to lfd; checks the
 * container every 200 ms so one that exits fails at once. */
static int await_executor(alyx__engine *e, const alyx__box_spec *s,
			  const char *id, int lfd, int *fd, alyx__err *err)
{
	int64_t start = alyx__mono_ms(), timeout =
		e->cfg->functions.container.start_timeout_ms;
	int64_t next_check = start + 200;

	for (;;) {
		struct pollfd pf = {lfd, POLLIN, 0};
		int64_t now = alyx__mono_ms(), wait;
		bool running = true, oom = false;
		int code = -1;

		*fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (*fd >= 0)
			return ALYX_OK;
		if (errno != EAGAIN && errno != EINTR)
			return alyx__err_set(err, ALYX_E_IO, NULL, "accept: %s",
					     strerror(errno));
		if (now - start >= timeout)
			return alyx__err_set(err, ALYX_E_UNAVAILABLE, NULL,
					     "the %s container did not connect "
					     "within %lld ms (alyx.yaml "
					     "functions.container."
					     "start_timeout)",
					     alyx__fn_runtime_name(s->runtime),
					     (long long)timeout);
		if (now >= next_check) {
			next_check = now + 200;
			if (inspect_state(e, id, &running, &code, &oom) &&
			    !running && poll(&pf, 1, 0) <= 0) {
				char *tail = log_tail(e, id);
				int rc = alyx__err_set(err, ALYX_E_UNAVAILABLE,
					NULL, "the %s container (image %s) "
					"exited with status %d before its "
					"executor connected: %.300s",
					alyx__fn_runtime_name(s->runtime),
					s->runtime == ALYX__RT_PYTHON ?
					e->cfg->functions.python.image :
					e->cfg->functions.node.image, code,
					tail && tail[0] ? tail : "(no output)");

				alyx__free(tail);
				return rc;
			}
		}
		wait = next_check - now;
		if (start + timeout - now < wait)
			wait = start + timeout - now;
		poll(&pf, 1, (int)(wait > 0 ? wait : 1));
	}
}

int alyx__box_start(alyx__engine *e, const alyx__box_spec *s,
		    alyx__box **out, int *fd, alyx__err *err)
{
	const alyx__fn_runtime *rc_cfg = s->runtime == ALYX__RT_PYTHON ?
					 &e->cfg->functions.python :
					 &e->cfg->functions.node;
	long long seq = atomic_fetch_add(&box_seq, 1) + 1;
	char path[200], *body = NULL;
	alyx__box *b = NULL;
	alyx_buf ans;
	cJSON *root = NULL, *id;
	long st;
	int rc, lfd = -1;

	*out = NULL;
	*fd = -1;
	alyx__buf_init(&ans, MAX_ANSWER);
	if (strchr(s->fn_dir, ':') || strchr(s->rt_dir, ':'))
		return alyx__err_set(err, ALYX_E_CONFIG, NULL,
				     "the container runner cannot mount %s: "
				     "its path has a ':'", strchr(s->fn_dir,
				     ':') ? s->fn_dir : s->rt_dir);
	pthread_mutex_lock(&e->mu);
	rc = ensure_ready(e, err);
	if (rc == ALYX_OK)
		rc = check_image(e, s->runtime, rc_cfg->image, err);
	pthread_mutex_unlock(&e->mu);
	if (rc != ALYX_OK)
		goto out;
	b = alyx__calloc(1, sizeof(*b));
	if (b)
		b->e = e;
	if (b)
		b->dir = alyx__asprintf("%s/%lld", e->run_dir, seq);
	if (!b || !b->dir) {
		rc = alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
		goto out;
	}
	if (mkdir(b->dir, 0711) != 0) {
		rc = alyx__err_set(err, ALYX_E_IO, NULL, "cannot make %s: %s",
				   b->dir, strerror(errno));
		alyx__free(b->dir);
		b->dir = NULL;
		goto out;
	}
	lfd = listen_on(b->dir, err);
	if (lfd < 0) {
		rc = err->code;
		goto out;
	}
	body = create_body(e, s, b->dir);
	if (!body) {
		rc = alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
		goto out;
	}
	snprintf(path, sizeof(path), "/containers/create?name=alyx-fn-%ld-%lld",
		 (long)getpid(), seq);
	rc = api(e, "POST", path, body, &st, &ans, err);
	if (rc != ALYX_OK)
		goto out;
	if (st != 201) {
		rc = refused("create a container", st, &ans, err);
		goto out;
	}
	root = cJSON_ParseWithLength(ans.data, ans.len);
	id = cJSON_GetObjectItemCaseSensitive(root, "Id");
	if (!cJSON_IsString(id) || !id->valuestring[0] ||
	    strlen(id->valuestring) >= sizeof(b->id) ||
	    strchr(id->valuestring, '/') || strchr(id->valuestring, '?')) {
		rc = alyx__err_set(err, ALYX_E_UNAVAILABLE, NULL,
				   "container engine: create answered without "
				   "a container id");
		goto out;
	}
	snprintf(b->id, sizeof(b->id), "%s", id->valuestring);
	snprintf(path, sizeof(path), "/containers/%s/start", b->id);
	alyx__buf_reset(&ans);
	rc = api(e, "POST", path, NULL, &st, &ans, err);
	if (rc == ALYX_OK && st != 204 && st != 304)
		rc = refused("start a container", st, &ans, err);
	if (rc == ALYX_OK)
		rc = await_executor(e, s, b->id, lfd, fd, err);
out:
	if (lfd >= 0)
		close(lfd);
	if (b && b->dir) {
		snprintf(path, sizeof(path), "%s/s", b->dir);
		unlink(path);	/* connected (or failed): no one else */
	}
	if (rc != ALYX_OK && b) {
		alyx__box_stop(b);
		alyx__engine_reap(e);
		b = NULL;
	}
	*out = b;
	cJSON_Delete(root);
	alyx__buf_free(&ans);
	alyx__free(body);
	return rc;
}
