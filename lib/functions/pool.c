/*
 * pool.c - warm pools of executor processes and one invocation.
 *
 * A pool is keyed by (runtime, network, memory): bubblewrap's network
 * namespace and the memory limit are per process, so functions that
 * differ in these use different executors.  Each pool keeps its workers
 * in a list under the state's mutex; an invocation takes an idle worker
 * (or starts one while below max_instances, or waits on the pool's
 * condition variable within the queue bound), does its pipe I/O without
 * any lock, and gives the worker back.  A worker that timed out, died,
 * sent too much or broke the protocol is killed (its whole process
 * group) and replaced.
 *
 * Worker fds: the child reads requests on fd 0 and writes responses on
 * fd 3 (ALYX_PROTO_FD=3); its fd 1 is the host's stderr, so a function's
 * own writes to stdout cannot corrupt the protocol.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "auth/auth.h"
#include "core/config.h"
#include "core/handle.h"
#include "functions/fn-paths.h"
#include "functions/functions.h"

#define MAX_ARGS 96

typedef struct worker {
	pid_t pid;
	int in_fd;		/* requests: the child's fd 0 */
	int out_fd;		/* responses: the child's fd 3 */
	bool busy;
	int64_t last_used;	/* monotonic ms */
	int64_t calls;
	alyx__box *box;		/* container runner: its container */
	int64_t gen;		/* of functions/_shared when started */
	struct worker *next;
} worker;

typedef struct pool {
	int runtime;
	bool network;
	int64_t memory;
	const alyx__fn_runtime *cfg;
	worker *workers;
	int n;			/* workers alive */
	int waiting;		/* callers waiting for a worker */
	int64_t started, replaced;
	pthread_cond_t cv;
	struct pool *next;
} pool;

struct alyx__fn {
	alyx *a;
	const alyx__config *cfg;
	alyx__fn_reg *reg;
	char *fn_dir;		/* absolute functions directory */
	char *rt_dir;		/* runtimes directory */
	char *interp[ALYX__RT_COUNT];	/* resolved interpreter paths */
	bool interp_tried[ALYX__RT_COUNT];	/* resolved on first spawn */
	char *interp_err[ALYX__RT_COUNT];
	char *bwrap;		/* NULL: no sandbox */
	char *farm;		/* no sandbox: a temporary directory with
				 * node_modules/@alyx/functions and functions/
				 * as symlinks, for node --preserve-symlinks */
	alyx__engine *engine;	/* container runner (else NULL) */
	pthread_mutex_t mu;
	pool *pools;
	int64_t seq;
	alyx__fn_logbook *logs;	/* per-function logs (logs.c) */
};

/* ---- helpers ---- */

static char *find_in_path(const char *prog)
{
	const char *p = getenv("PATH");
	char buf[PATH_MAX];

	if (strchr(prog, '/'))
		return access(prog, X_OK) == 0 ? realpath(prog, NULL) : NULL;
	if (!p || !*p)
		p = "/usr/local/bin:/usr/bin:/bin";
	while (*p) {
		const char *e = strchr(p, ':');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (n && n + strlen(prog) + 2 < sizeof(buf)) {
			memcpy(buf, p, n);
			buf[n] = '/';
			memcpy(buf + n + 1, prog, strlen(prog) + 1);
			if (access(buf, X_OK) == 0)
				return realpath(buf, NULL);
		}
		p += n + (e ? 1 : 0);
	}
	return NULL;
}

/* libc's realpath allocates with malloc: copy into alyx__ memory. */
static char *own(char *p)
{
	char *s = alyx__strdup(p);

	free(p);	/* check-style: allow (from realpath) */
	return s;
}

static bool is_script(const char *path)
{
	char hb[2] = {0};
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool r;

	if (fd < 0)
		return false;
	r = read(fd, hb, 2) == 2 && hb[0] == '#' && hb[1] == '!';
	close(fd);
	return r;
}

/* Runs argv and reads the first line it prints (a wrapper script such as
 * a pyenv shim is asked for the real interpreter once). */
static char *first_line_of(char *const argv[])
{
	int p[2];
	pid_t pid;
	char buf[PATH_MAX];
	size_t n = 0;
	ssize_t r;
	int st;

	if (pipe2(p, O_CLOEXEC) != 0)
		return NULL;
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return NULL;
	}
	if (pid == 0) {
		dup2(p[1], 1);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	while (n + 1 < sizeof(buf) &&
	       ((r = read(p[0], buf + n, sizeof(buf) - 1 - n)) > 0 ||
		(r < 0 && errno == EINTR)))
		if (r > 0)
			n += (size_t)r;
	close(p[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !buf[0])
		return NULL;
	return alyx__strdup(buf);
}

/* The interpreter of runtime rt: $ALYX_NODE / $ALYX_PYTHON, else node /
 * python3 from PATH, resolved to the real binary. */
static char *resolve_interp(int rt)
{
	const char *env = getenv(rt == ALYX__RT_NODE ? "ALYX_NODE" :
				 "ALYX_PYTHON");
	const char *prog = env && *env ? env :
			   rt == ALYX__RT_NODE ? "node" : "python3";
	char *path = find_in_path(prog);
	char *real;

	if (!path)
		return NULL;
	path = own(path);
	if (!path || !is_script(path))
		return path;
	{
		char *argv[] = {path, "-c",
				"import sys; print(sys.executable)", NULL};

		real = rt == ALYX__RT_PYTHON ? first_line_of(argv) : NULL;
	}
	alyx__free(path);
	if (real) {
		char *r = realpath(real, NULL);

		alyx__free(real);
		return r ? own(r) : NULL;
	}
	return NULL;
}

/* resolve_interp() remembered for the process (asking a shim costs a
 * whole interpreter start): keyed by the override and PATH. */
static pthread_mutex_t interp_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char *key;
	char *path;
} interp_cache[ALYX__RT_COUNT];

static char *interp_cached(int rt)
{
	const char *env = getenv(rt == ALYX__RT_NODE ? "ALYX_NODE" :
				 "ALYX_PYTHON");
	const char *path_env = getenv("PATH");
	char *key = alyx__asprintf("%s\n%s", env ? env : "",
				   path_env ? path_env : "");
	char *r = NULL;

	if (!key)
		return NULL;
	pthread_mutex_lock(&interp_mu);
	if (!interp_cache[rt].key || strcmp(interp_cache[rt].key, key)) {
		alyx__free(interp_cache[rt].key);
		alyx__free(interp_cache[rt].path);
		interp_cache[rt].key = key;
		interp_cache[rt].path = resolve_interp(rt);
		key = NULL;
	}
	r = alyx__strdup(interp_cache[rt].path);
	pthread_mutex_unlock(&interp_mu);
	alyx__free(key);
	return r;
}

static char *runtimes_dir(void)
{
	const char *env = getenv("ALYX_RUNTIMES_DIR");
	const char *cands[] = {env, ALYX__RUNTIMES_SRC, ALYX__RUNTIMES_INST};
	size_t i;

	for (i = 0; i < ALYX_ARRAY_LEN(cands); i++) {
		char probe[PATH_MAX];

		if (!cands[i] || !*cands[i])
			continue;
		snprintf(probe, sizeof(probe), "%s/node/executor.mjs",
			 cands[i]);
		if (access(probe, R_OK) == 0) {
			char *r = realpath(cands[i], NULL);

			return r ? own(r) : NULL;
		}
	}
	return NULL;
}

/* ---- state ---- */

/* Without a sandbox Node finds "@alyx/functions" through a link farm:
 * <farm>/node_modules/@alyx/functions -> the SDK and <farm>/functions ->
 * the functions directory; the executor imports functions through the
 * latter with --preserve-symlinks, so Node's own lookup climbs to
 * <farm>/node_modules (no module hooks, which cost a thread and some
 * 50-100 ms of start-up).  NULL when it cannot be made (hooks then). */
static char *farm_paths(const char *farm, int i)
{
	static const char *const rel[] = {"functions",
		"node_modules/@alyx/functions", "node_modules/@alyx",
		"node_modules", ""};

	return alyx__asprintf("%s%s%s", farm, *rel[i] ? "/" : "", rel[i]);
}

static void farm_remove(char *farm)
{
	char *p;
	int i;

	if (!farm)
		return;
	for (i = 0; i < 5; i++) {
		p = farm_paths(farm, i);
		if (p && (i < 2 ? unlink(p) : rmdir(p)) != 0 &&
		    errno != ENOENT) {
			/* left behind in the temporary directory */
		}
		alyx__free(p);
	}
	alyx__free(farm);
}

static char *farm_make(const char *rt_dir, const char *fn_dir)
{
	const char *tmp = getenv("TMPDIR");
	char *farm = alyx__asprintf("%s/alyx-fnlink-XXXXXX",
				    tmp && *tmp ? tmp : "/tmp");
	char *sdk = alyx__asprintf("%s/node/node_modules/@alyx/functions",
				   rt_dir);
	char *p[4] = {0};
	bool ok;
	int i;

	if (!farm || !sdk || !mkdtemp(farm)) {
		alyx__free(farm);
		alyx__free(sdk);
		return NULL;
	}
	for (i = 0; i < 4; i++)
		p[i] = farm_paths(farm, i);
	ok = p[0] && p[1] && p[2] && p[3] && mkdir(p[3], 0700) == 0 &&
	     mkdir(p[2], 0700) == 0 && symlink(sdk, p[1]) == 0 &&
	     symlink(fn_dir, p[0]) == 0;
	for (i = 0; i < 4; i++)
		alyx__free(p[i]);
	alyx__free(sdk);
	if (!ok) {
		farm_remove(farm);
		return NULL;
	}
	return farm;
}

static int fn_new(alyx *a, struct alyx__fn **out, alyx__err *err)
{
	struct alyx__fn *fn;
	char *dir;
	int rc = ALYX_OK;

	*out = NULL;
	fn = alyx__calloc(1, sizeof(*fn));
	if (!fn)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	fn->a = a;
	fn->cfg = a->cfg;
	pthread_mutex_init(&fn->mu, NULL);
	dir = a->cfg->functions.dir[0] == '/' ?
	      alyx__strdup(a->cfg->functions.dir) :
	      alyx__path_join(a->dir, a->cfg->functions.dir);
	if (!dir) {
		rc = alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
		goto out;
	}
	{
		char *r = realpath(dir, NULL);

		if (r) {
			alyx__free(dir);
			dir = own(r);
		}
	}
	fn->fn_dir = dir;
	fn->logs = alyx__fn_logbook_new();
	if (!fn->logs) {
		rc = alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
		goto out;
	}
	rc = alyx__fn_reg_new(dir, a->cfg, &fn->reg, err);
	if (rc != ALYX_OK)
		goto out;
	fn->rt_dir = runtimes_dir();
	if (!strcmp(a->cfg->functions.runner, "container")) {
		rc = alyx__engine_new(a->cfg, &fn->engine, err);
		if (rc != ALYX_OK)
			goto out;
	} else if (strcmp(a->cfg->functions.sandbox, "none") != 0) {
		char *b = find_in_path("bwrap");

		fn->bwrap = b ? own(b) : NULL;
	}
	if (!fn->bwrap && fn->rt_dir &&
	    !strcmp(a->cfg->functions.runner, "process"))
		fn->farm = farm_make(fn->rt_dir, fn->fn_dir);
out:
	if (rc != ALYX_OK) {
		alyx__fn_free(fn);
		return rc;
	}
	*out = fn;
	return ALYX_OK;
}

static void worker_kill(pool *p, worker *w)
{
	worker **pp;
	int st;

	if (w->pid > 0) {
		kill(-w->pid, SIGKILL);
		kill(w->pid, SIGKILL);
		while (waitpid(w->pid, &st, 0) < 0 && errno == EINTR)
			;
	}
	if (w->in_fd >= 0)
		close(w->in_fd);
	if (w->out_fd >= 0)
		close(w->out_fd);
	alyx__box_stop(w->box);
	for (pp = &p->workers; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	p->n--;
	alyx__free(w);
}

void alyx__fn_free(struct alyx__fn *fn)
{
	pool *p, *pn;
	int i;

	if (!fn)
		return;
	for (p = fn->pools; p; p = pn) {
		pn = p->next;
		while (p->workers)
			worker_kill(p, p->workers);
		pthread_cond_destroy(&p->cv);
		alyx__free(p);
	}
	alyx__engine_free(fn->engine);
	alyx__fn_reg_free(fn->reg);
	alyx__fn_logbook_free(fn->logs);
	for (i = 0; i < ALYX__RT_COUNT; i++)
		alyx__free(fn->interp[i]);
	alyx__free(fn->bwrap);
	farm_remove(fn->farm);
	alyx__free(fn->rt_dir);
	alyx__free(fn->fn_dir);
	pthread_mutex_destroy(&fn->mu);
	alyx__free(fn);
}

int alyx__fn_get(alyx *a, struct alyx__fn **out, alyx__err *err)
{
	struct alyx__fn *fn = atomic_load(&a->fn), *expect = NULL;
	int rc;

	if (fn) {
		*out = fn;
		return ALYX_OK;
	}
	rc = fn_new(a, &fn, err);
	if (rc != ALYX_OK)
		return rc;
	if (!atomic_compare_exchange_strong(&a->fn, &expect, fn)) {
		alyx__fn_free(fn);
		fn = expect;
	}
	*out = fn;
	return ALYX_OK;
}

/* ---- spawning ---- */

/* Adds the bubblewrap arguments (see docs/functions.md, "Sandbox"). */
static int sandbox_args(struct alyx__fn *fn, const pool *p, const char **av,
			int n, char **own_strs, int *n_own)
{
	static const char *const sys_dirs[] = {"/bin", "/lib", "/lib32",
					       "/lib64", "/sbin"};
	static const char *const etc_files[] = {
		"/etc/ld.so.cache", "/etc/resolv.conf", "/etc/hosts",
		"/etc/nsswitch.conf", "/etc/ssl", "/etc/ca-certificates",
		"/etc/localtime", "/etc/alternatives"};
	const char *interp = fn->interp[p->runtime];
	size_t i;

#define ARG(s) (av[n++] = (s))
	/* No --die-with-parent: it is bound to the thread that forked (any
	 * caller's thread, which may exit while the executor serves
	 * others).  An executor exits when its stdin closes instead. */
	ARG(fn->bwrap);
	ARG("--unshare-all");
	if (p->network)
		ARG("--share-net");
	ARG("--ro-bind");
	ARG("/usr");
	ARG("/usr");
	for (i = 0; i < ALYX_ARRAY_LEN(sys_dirs); i++) {
		struct stat st;
		char target[PATH_MAX];
		ssize_t tn;

		if (lstat(sys_dirs[i], &st) != 0)
			continue;
		if (S_ISLNK(st.st_mode)) {
			tn = readlink(sys_dirs[i], target, sizeof(target) - 1);
			if (tn <= 0)
				continue;
			target[tn] = '\0';
			own_strs[*n_own] = alyx__strdup(target);
			if (!own_strs[*n_own])
				return -1;
			ARG("--symlink");
			ARG(own_strs[(*n_own)++]);
			ARG(sys_dirs[i]);
		} else if (S_ISDIR(st.st_mode)) {
			ARG("--ro-bind");
			ARG(sys_dirs[i]);
			ARG(sys_dirs[i]);
		}
	}
	for (i = 0; i < ALYX_ARRAY_LEN(etc_files); i++) {
		if (access(etc_files[i], F_OK) != 0)
			continue;
		ARG("--ro-bind");
		ARG(etc_files[i]);
		ARG(etc_files[i]);
	}
	/* An interpreter outside /usr (pyenv, nvm): its prefix, read-only. */
	if (strncmp(interp, "/usr/", 5) != 0) {
		char *pre = alyx__strdup(interp), *s;

		if (!pre)
			return -1;
		for (int up = 0; up < 2; up++) {
			s = strrchr(pre, '/');
			if (s && s != pre)
				*s = '\0';
		}
		own_strs[(*n_own)++] = pre;
		ARG("--ro-bind");
		ARG(pre);
		ARG(pre);
	}
	ARG("--proc");
	ARG("/proc");
	ARG("--dev");
	ARG("/dev");
	ARG("--tmpfs");
	ARG("/tmp");
	ARG("--ro-bind");
	ARG(fn->rt_dir);
	ARG(fn->rt_dir);
	if (p->runtime == ALYX__RT_NODE) {
		/* "@alyx/functions" resolves by Node's own lookup, which
		 * ends at /node_modules: cheaper than module hooks. */
		char *nm = alyx__asprintf("%s/node/node_modules", fn->rt_dir);

		if (!nm)
			return -1;
		own_strs[(*n_own)++] = nm;
		ARG("--ro-bind");
		ARG(nm);
		ARG("/node_modules");
	}
	ARG("--ro-bind");
	ARG(fn->fn_dir);
	ARG(fn->fn_dir);
	ARG("--chdir");
	ARG("/tmp");
	ARG("--");
#undef ARG
	return n;
}

/* Starts one container for pool p (fn->mu held on entry and exit, but
 * released while the container starts: the worker is in the pool
 * meanwhile, busy, so the pool's count includes it). */
static int spawn_box(struct alyx__fn *fn, pool *p, worker **out,
		     alyx__err *err)
{
	alyx__box_spec spec = {p->runtime, p->network, p->memory, fn->fn_dir,
			       fn->rt_dir};
	worker *w;
	int rc, fd;

	if (!fn->rt_dir)
		return alyx__err_set(err, ALYX_E_UNAVAILABLE, NULL,
				     "the function runtimes directory was not "
				     "found (set $ALYX_RUNTIMES_DIR)");
	w = alyx__calloc(1, sizeof(*w));
	if (!w)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	w->pid = -1;
	w->in_fd = w->out_fd = -1;
	w->busy = true;
	w->next = p->workers;
	p->workers = w;
	p->n++;
	pthread_mutex_unlock(&fn->mu);
	rc = alyx__box_start(fn->engine, &spec, &w->box, &fd, err);
	pthread_mutex_lock(&fn->mu);
	if (rc == ALYX_OK) {
		w->in_fd = fd;
		w->out_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		if (w->out_fd < 0)
			rc = alyx__err_set(err, ALYX_E_IO, NULL, "dup: %s",
					   strerror(errno));
	}
	if (rc != ALYX_OK) {
		worker_kill(p, w);
		pthread_cond_signal(&p->cv);
		return rc;
	}
	w->busy = false;
	w->last_used = alyx__mono_ms();
	p->started++;
	*out = w;
	return ALYX_OK;
}

/* Starts one executor for pool p (fn->mu held).  Does not wait for it to
 * be ready: the first request waits in the pipe while it starts. */
static int spawn(struct alyx__fn *fn, pool *p, worker **out, alyx__err *err)
{
	const char *av[MAX_ARGS];
	char *own_strs[16] = {0}, *envp[10] = {0};
	char exe[PATH_MAX], heap[64];
	int n = 0, n_own = 0, req[2] = {-1, -1}, res[2] = {-1, -1}, rc, i;
	struct rlimit rl;
	bool set_as = false;
	worker *w = NULL;
	pid_t pid;

	*out = NULL;
	if (fn->engine)
		return spawn_box(fn, p, out, err);
	if (!fn->interp_tried[p->runtime]) {
		fn->interp[p->runtime] = interp_cached(p->runtime);
		fn->interp_tried[p->runtime] = true;
	}
	if (!fn->interp[p->runtime])
		return alyx__err_set(err, ALYX_E_UNAVAILABLE, NULL,
				     "no %s interpreter found (PATH or $%s)",
				     p->runtime == ALYX__RT_NODE ? "node" :
				     "python3", p->runtime == ALYX__RT_NODE ?
				     "ALYX_NODE" : "ALYX_PYTHON");
	if (!fn->rt_dir)
		return alyx__err_set(err, ALYX_E_UNAVAILABLE, NULL,
				     "the function runtimes directory was not "
				     "found (set $ALYX_RUNTIMES_DIR)");
	if (!fn->bwrap && !strcmp(fn->cfg->functions.sandbox, "bwrap"))
		return alyx__err_set(err, ALYX_E_UNAVAILABLE, NULL,
				     "functions.sandbox is bwrap but bwrap is "
				     "not installed");
	if (fn->bwrap) {
		n = sandbox_args(fn, p, av, 0, own_strs, &n_own);
		if (n < 0) {
			rc = alyx__err_set(err, ALYX_E_NOMEM, NULL,
					   "out of memory");
			goto out;
		}
	}
	av[n++] = fn->interp[p->runtime];
	if (p->runtime == ALYX__RT_NODE) {
		/* V8 reserves far more address space than it uses, so node
		 * gets a heap limit rather than RLIMIT_AS. */
		snprintf(heap, sizeof(heap), "--max-old-space-size=%lld",
			 (long long)(p->memory >> 20));
		av[n++] = heap;
		av[n++] = "--no-warnings";
		if (fn->farm && !fn->bwrap)
			av[n++] = "--preserve-symlinks";
		/* Function .js files are ES modules without a package.json. */
		av[n++] = "--experimental-default-type=module";
		snprintf(exe, sizeof(exe), "%s/node/executor.mjs",
			 fn->rt_dir);
	} else {
		av[n++] = "-I";
		av[n++] = "-B";
		snprintf(exe, sizeof(exe), "%s/python/executor.py",
			 fn->rt_dir);
		rl.rlim_cur = rl.rlim_max = (rlim_t)p->memory;
		set_as = true;
	}
	av[n++] = exe;
	av[n] = NULL;
	envp[0] = alyx__strdup("PATH=/usr/local/bin:/usr/bin:/bin");
	envp[1] = alyx__strdup("HOME=/tmp");
	envp[2] = alyx__strdup("LANG=C.UTF-8");
	envp[3] = alyx__strdup("ALYX_PROTO_FD=3");
	envp[4] = alyx__asprintf("ALYX_FUNCTIONS_DIR=%s", fn->fn_dir);
	envp[5] = alyx__asprintf("ALYX_MAX_OUTPUT=%u", ALYX__FN_MAX_OUTPUT);
	/* Where functions find "@alyx/functions": the executor imports the
	 * SDK from the same URL, so both share one instance (one DbError). */
	envp[6] = fn->bwrap ? alyx__strdup("ALYX_SDK_URL=file:///node_modules/"
					   "@alyx/functions/index.mjs") :
		  fn->farm ? alyx__asprintf("ALYX_SDK_URL=file://%s/node_modules/"
					    "@alyx/functions/index.mjs",
					    fn->farm) :
		  alyx__strdup("ALYX_SDK_URL=");
	envp[7] = fn->farm && !fn->bwrap ?
		  alyx__asprintf("ALYX_FUNCTIONS_LINK=%s/functions", fn->farm) :
		  alyx__strdup("ALYX_FUNCTIONS_LINK=");
	for (i = 0; i < 8; i++)
		if (!envp[i]) {
			rc = alyx__err_set(err, ALYX_E_NOMEM, NULL,
					   "out of memory");
			goto out;
		}
	w = alyx__calloc(1, sizeof(*w));
	if (!w || pipe2(req, O_CLOEXEC) != 0 || pipe2(res, O_CLOEXEC) != 0) {
		rc = alyx__err_set(err, w ? ALYX_E_IO : ALYX_E_NOMEM, NULL,
				   "cannot start an executor: %s",
				   w ? strerror(errno) : "out of memory");
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		rc = alyx__err_set(err, ALYX_E_UNAVAILABLE, NULL,
				   "cannot start an executor: fork: %s",
				   strerror(errno));
		goto out;
	}
	if (pid == 0) {
		/* The child: only async-signal-safe calls until exec. */
		int r0 = fcntl(req[0], F_DUPFD, 10);
		int r3 = fcntl(res[1], F_DUPFD, 10);
		sigset_t all;

		setpgid(0, 0);
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (r0 < 0 || r3 < 0 || dup2(r0, 0) < 0 || dup2(2, 1) < 0 ||
		    dup2(r3, 3) < 0)
			_exit(126);
		close_range(4, ~0U, 0);
		if (set_as)
			setrlimit(RLIMIT_AS, &rl);
		execve(av[0], (char *const *)av, envp);
		_exit(127);
	}
	setpgid(pid, pid);	/* either side may win the race */
	close(req[0]);
	close(res[1]);
	req[0] = res[1] = -1;
	w->pid = pid;
	w->in_fd = req[1];
	w->out_fd = res[0];
	req[1] = res[0] = -1;
	fcntl(w->in_fd, F_SETFL, O_NONBLOCK);
	fcntl(w->out_fd, F_SETFL, O_NONBLOCK);
	w->last_used = alyx__mono_ms();
	w->next = p->workers;
	p->workers = w;
	p->n++;
	p->started++;
	*out = w;
	w = NULL;
	rc = ALYX_OK;
out:
	for (i = 0; i < 2; i++) {
		if (req[i] >= 0)
			close(req[i]);
		if (res[i] >= 0)
			close(res[i]);
	}
	alyx__free(w);
	for (i = 0; i < n_own; i++)
		alyx__free(own_strs[i]);
	for (i = 0; i < 10; i++)
		alyx__free(envp[i]);
	return rc;
}

/* The pool for (runtime, network, memory), made with its min_warm
 * executors on first use (fn->mu held). */
static pool *pool_get(struct alyx__fn *fn, const alyx__fn_def *d,
		      alyx__err *err)
{
	pool *p;
	int i;

	for (p = fn->pools; p; p = p->next)
		if (p->runtime == d->runtime && p->network == d->network &&
		    p->memory == d->memory)
			return p;
	p = alyx__calloc(1, sizeof(*p));
	if (!p) {
		alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
		return NULL;
	}
	p->runtime = d->runtime;
	p->network = d->network;
	p->memory = d->memory;
	p->cfg = d->runtime == ALYX__RT_PYTHON ?
		 &fn->cfg->functions.python : &fn->cfg->functions.node;
	pthread_cond_init(&p->cv, NULL);
	p->next = fn->pools;
	fn->pools = p;
	for (i = 0; i < p->cfg->min_warm; i++) {
		worker *w;
		alyx__err e2 = {0};

		if (spawn(fn, p, &w, &e2) != ALYX_OK) {
			alyx__err_clear(&e2);
			break;
		}
		w->gen = d->gen;
	}
	return p;
}

/* Stops idle executors beyond min_warm that have been idle longer than
 * idle_timeout (fn->mu held). */
static void reap_idle(pool *p, int64_t now)
{
	worker *w, *next;

	for (w = p->workers; w && p->n > p->cfg->min_warm; w = next) {
		next = w->next;
		if (!w->busy && now - w->last_used >= p->cfg->idle_timeout_ms)
			worker_kill(p, w);
	}
}

static void abs_deadline(struct timespec *ts, int64_t ms_from_now)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms_from_now / 1000;
	ts->tv_nsec += (ms_from_now % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Takes a worker for d (fn->mu held on entry and exit). */
static int acquire(struct alyx__fn *fn, pool *p, const alyx__fn_def *d,
		   worker **out, alyx__err *err)
{
	int64_t deadline = alyx__mono_ms() + d->timeout_ms;
	int queue_max = p->cfg->max_instances * ALYX__FN_QUEUE_FACTOR;
	bool queued = false;
	int rc = ALYX_OK;

	*out = NULL;
	reap_idle(p, alyx__mono_ms());
	for (;;) {
		worker *w, *next;
		struct timespec ts;
		int64_t left;

		for (w = p->workers; w; w = next) {
			next = w->next;
			if (w->busy)
				continue;
			if (w->gen >= d->gen)
				break;
			/* functions/_shared changed since it started: its
			 * cached helpers are stale. */
			worker_kill(p, w);
			p->replaced++;
		}
		if (!w && p->n < p->cfg->max_instances) {
			rc = spawn(fn, p, &w, err);
			if (rc != ALYX_OK)
				break;
			w->gen = d->gen;
		}
		if (w) {
			w->busy = true;
			*out = w;
			break;
		}
		if (!queued && p->waiting >= queue_max) {
			rc = alyx__err_set(err, ALYX_E_UNAVAILABLE, NULL,
					   "function %s: all %d %s executors "
					   "are busy and %d calls are "
					   "already waiting", d->name,
					   p->cfg->max_instances,
					   alyx__fn_runtime_name(p->runtime),
					   p->waiting);
			break;
		}
		left = deadline - alyx__mono_ms();
		if (left <= 0) {
			rc = alyx__err_set(err, ALYX_E_UNAVAILABLE, NULL,
					   "function %s: no %s executor became "
					   "free within %lld ms", d->name,
					   alyx__fn_runtime_name(p->runtime),
					   (long long)d->timeout_ms);
			break;
		}
		if (!queued) {
			p->waiting++;
			queued = true;
		}
		abs_deadline(&ts, left);
		pthread_cond_timedwait(&p->cv, &fn->mu, &ts);
	}
	if (queued)
		p->waiting--;
	return rc;
}

/* ---- pipe I/O ---- */

/* Writes all of s to fd before the deadline.  SIGPIPE is blocked on
 * this thread for the write, and a SIGPIPE it raised is consumed, so a
 * dead executor is an EPIPE, never a signal to the host. */
int alyx__fn_write_all(int fd, const char *s, size_t n, int64_t deadline,
		       bool *timed_out)
{
	sigset_t pipe_set, old;
	int rc = 0;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	while (n) {
		ssize_t w = write(fd, s, n);

		if (w > 0) {
			s += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd pf = {fd, POLLOUT, 0};
			int64_t left = deadline - alyx__mono_ms();

			if (left <= 0) {
				*timed_out = true;
				rc = -1;
				break;
			}
			poll(&pf, 1, (int)(left > INT_MAX ? INT_MAX : left));
			continue;
		}
		if (w < 0 && errno == EPIPE) {
			sigset_t pending;
			struct timespec zero = {0, 0};

			sigpending(&pending);
			if (sigismember(&pending, SIGPIPE) &&
			    !sigismember(&old, SIGPIPE))
				sigtimedwait(&pipe_set, NULL, &zero);
		}
		rc = -1;
		break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

#define IO_OK ALYX__IO_OK
#define IO_TIMEOUT ALYX__IO_TIMEOUT
#define IO_EOF ALYX__IO_EOF
#define IO_TOOBIG ALYX__IO_TOOBIG

/* ---- one invocation ---- */

/* The request line: {"request_id","function","file","input",
 * "context":{"auth","env"}} followed by '\n'.  `input` was checked to be
 * a JSON object; line breaks (whitespace outside strings in valid JSON)
 * become spaces so the request stays one line. */
static char *request_line(const alyx__fn_def *d, const char *rid,
			  const char *input, size_t len, const char *auth,
			  const alyx__fn_inv *inv)
{
	alyx_buf b;
	size_t i, start;

	alyx__buf_init(&b, 0);
	alyx__buf_adds(&b, "{\"request_id\":");
	alyx__json_strz(&b, rid);
	alyx__buf_adds(&b, ",\"function\":");
	alyx__json_strz(&b, d->name);
	alyx__buf_adds(&b, ",\"file\":");
	alyx__json_strz(&b, d->file);
	alyx__buf_adds(&b, ",\"input\":");
	start = b.len;
	alyx__buf_add(&b, input, len);
	if (!b.err)
		for (i = start; i < b.len; i++)
			if (b.data[i] == '\n' || b.data[i] == '\r')
				b.data[i] = ' ';
	alyx__buf_adds(&b, ",\"context\":{\"auth\":");
	alyx__buf_adds(&b, auth ? auth : "null");
	alyx__buf_adds(&b, ",\"env\":");
	alyx__buf_adds(&b, d->env_json);
	alyx__fn_inv_context(inv, &b);
	alyx__buf_adds(&b, "}}\n");
	return alyx__buf_take(&b);
}

/* Waits up to 500 ms for pid to exit by itself, then kills what is left
 * of its process group and reaps it; *st is its wait status.  The leader
 * is reaped only after the group kill (WNOWAIT keeps the zombie, and with
 * it the group id, reserved until then). */
static void reap_exited(pid_t pid, int *st)
{
	int64_t until = alyx__mono_ms() + 500;

	for (;;) {
		siginfo_t si;
		int r;

		memset(&si, 0, sizeof(si));
		r = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT);
		if ((r == 0 && si.si_pid == pid) || (r < 0 && errno != EINTR))
			break;
		if (alyx__mono_ms() >= until)
			break;
		if (r == 0) {
			struct timespec ts = {0, 2000000};

			nanosleep(&ts, NULL);
		}
	}
	kill(-pid, SIGKILL);
	while (waitpid(pid, st, 0) < 0 && errno == EINTR)
		;
}

static void exit_text(int st, char *out, size_t n)
{
	if (WIFSIGNALED(st))
		snprintf(out, n, "was killed by signal %d", WTERMSIG(st));
	else if (WIFEXITED(st))
		snprintf(out, n, "exited with status %d", WEXITSTATUS(st));
	else
		snprintf(out, n, "stopped");
}

/* Maps a response line to the call's result. */
static int take_response(const alyx__fn_def *d, const char *rid,
			 char *line, size_t len, char **out, bool *kill_it,
			 alyx__err *err)
{
	cJSON *root = cJSON_ParseWithLength(line, len);
	cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "request_id");
	cJSON *ok = cJSON_GetObjectItemCaseSensitive(root, "success");
	cJSON *e, *code, *msg, *det, *logs;
	const char *c;
	char *dj = NULL, *lj = NULL;
	alyx_buf b;
	int rc;

	if (!cJSON_IsObject(root) || !cJSON_IsString(id) ||
	    strcmp(id->valuestring, rid) || !cJSON_IsBool(ok)) {
		*kill_it = true;
		cJSON_Delete(root);
		return alyx__err_set(err, ALYX_E_INTERNAL, NULL,
				     "function %s: the executor broke the "
				     "protocol (bad response line)", d->name);
	}
	if (cJSON_IsTrue(ok)) {
		cJSON_Delete(root);
		*out = line;
		return ALYX_OK;
	}
	e = cJSON_GetObjectItemCaseSensitive(root, "error");
	code = cJSON_GetObjectItemCaseSensitive(e, "code");
	msg = cJSON_GetObjectItemCaseSensitive(e, "message");
	det = cJSON_GetObjectItemCaseSensitive(e, "details");
	logs = cJSON_GetObjectItemCaseSensitive(root, "logs");
	c = cJSON_IsString(code) ? code->valuestring : "FUNCTION_ERROR";
	if (cJSON_IsObject(det))
		dj = cJSON_PrintUnformatted(det);
	if (cJSON_IsArray(logs))
		lj = cJSON_PrintUnformatted(logs);
	if (!strcmp(c, "OUT_OF_MEMORY"))
		*kill_it = true;	/* do not trust that heap again */
	alyx__buf_init(&b, 0);
	if (!strcmp(c, "VALIDATION_ERROR") && dj) {
		/* {"fields":[...]} as every validation error, plus logs. */
		alyx__buf_adds(&b, dj);
		if (b.len >= 2 && lj) {
			b.len--;
			alyx__buf_adds(&b, b.len > 1 ? ",\"logs\":" :
				       "\"logs\":");
			alyx__buf_adds(&b, lj);
			alyx__buf_addc(&b, '}');
		}
		rc = ALYX_E_VALIDATION;
	} else {
		alyx__buf_adds(&b, "{\"function\":");
		alyx__json_strz(&b, d->name);
		alyx__buf_adds(&b, ",\"code\":");
		alyx__json_strz(&b, c);
		alyx__buf_adds(&b, ",\"details\":");
		alyx__buf_adds(&b, dj ? dj : "{}");
		alyx__buf_adds(&b, ",\"logs\":");
		alyx__buf_adds(&b, lj ? lj : "[]");
		alyx__buf_adds(&b, ",\"request_id\":");
		alyx__json_strz(&b, rid);
		alyx__buf_addc(&b, '}');
		rc = !strcmp(c, "OUTPUT_TOO_LARGE") ? ALYX_E_TOOBIG :
		     ALYX_E_FUNCTION;
	}
	alyx__err_setd(err, rc, alyx__buf_take(&b), "function %s: %s: %.300s",
		       d->name, c, cJSON_IsString(msg) ? msg->valuestring :
		       "failed");
	if (!err->details)
		err->code = rc = ALYX_E_NOMEM;
	cJSON_free(dj);
	cJSON_free(lj);
	cJSON_Delete(root);
	alyx__free(line);
	return rc;
}

static char *details_of(const alyx__fn_def *d, const char *extra)
{
	alyx_buf b;

	alyx__buf_init(&b, 0);
	alyx__buf_adds(&b, "{\"function\":");
	alyx__json_strz(&b, d->name);
	if (extra)
		alyx__buf_adds(&b, extra);
	alyx__buf_addc(&b, '}');
	return alyx__buf_take(&b);
}

int alyx__fn_call(struct alyx__fn *fn, const alyx__fn_def *d,
		  const char *input, size_t len, const char *auth, char **out,
		  alyx__err *err)
{
	char rid[48], *req = NULL, extra[160];
	alyx__fn_inv *inv = NULL;
	worker *w = NULL;
	pool *p;
	alyx_buf line;
	bool timed_out = false, kill_it = false;
	int64_t deadline;
	int rc, io;

	*out = NULL;
	alyx__buf_init(&line, (size_t)ALYX__FN_MAX_OUTPUT * 4);
	pthread_mutex_lock(&fn->mu);
	snprintf(rid, sizeof(rid), "req_%lld_%d", (long long)++fn->seq,
		 (int)getpid());
	pthread_mutex_unlock(&fn->mu);
	/* The token lives while the call may wait for an executor and
	 * run; it is revoked when the call ends. */
	rc = alyx__fn_inv_begin(fn->a, d, 2 * d->timeout_ms + 1000, &inv,
				err);
	if (rc != ALYX_OK)
		goto out;
	req = request_line(d, rid, input, len, auth, inv);
	if (!req) {
		rc = alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
		goto out;
	}
	for (int attempt = 0;; attempt++) {
		pthread_mutex_lock(&fn->mu);
		p = pool_get(fn, d, err);
		rc = p ? acquire(fn, p, d, &w, err) : err->code;
		pthread_mutex_unlock(&fn->mu);
		if (rc != ALYX_OK)
			goto out;
		deadline = alyx__mono_ms() + d->timeout_ms;
		if (alyx__fn_write_all(w->in_fd, req, strlen(req), deadline,
				       &timed_out) == 0) {
			io = alyx__fn_converse(inv, w->in_fd, w->out_fd,
					       &line, deadline);
			break;
		}
		io = timed_out ? IO_TIMEOUT : IO_EOF;
		if (timed_out || attempt > 0)
			break;
		/* The executor died while idle (its stdin is closed): the
		 * request never reached it, so another executor takes it. */
		pthread_mutex_lock(&fn->mu);
		worker_kill(p, w);
		p->replaced++;
		w = NULL;
		pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&fn->mu);
	}
	switch (io) {
	case IO_OK: {
		size_t n = line.len;

		rc = take_response(d, rid, alyx__buf_take(&line), n, out,
				   &kill_it, err);
		break;
	}
	case IO_TIMEOUT:
		kill_it = true;
		snprintf(extra, sizeof(extra), ",\"timeout_ms\":%lld",
			 (long long)d->timeout_ms);
		rc = alyx__err_setd(err, ALYX_E_TIMEOUT,
				    details_of(d, extra),
				    "function %s ran longer than its timeout "
				    "of %lld ms (its executor was stopped)",
				    d->name, (long long)d->timeout_ms);
		break;
	case IO_TOOBIG:
		kill_it = true;
		snprintf(extra, sizeof(extra), ",\"limit\":%u",
			 ALYX__FN_MAX_OUTPUT);
		rc = alyx__err_setd(err, ALYX_E_TOOBIG, details_of(d, extra),
				    "function %s: the response is larger than "
				    "%u bytes (its executor was stopped)",
				    d->name, ALYX__FN_MAX_OUTPUT * 4);
		break;
	default: {
		int st = 0;
		char how[64];

		/* EOF: the executor died (exit, crash, memory limit); give
		 * it a moment to finish exiting so its status is its own,
		 * then stop whatever is left of its process group. */
		if (w->box) {
			alyx__box_exit_text(w->box, how, sizeof(how));
		} else {
			reap_exited(w->pid, &st);
			w->pid = -1;
			exit_text(st, how, sizeof(how));
		}
		kill_it = true;
		snprintf(extra, sizeof(extra),
			 ",\"code\":\"EXECUTOR_EXITED\",\"memory\":%lld",
			 (long long)d->memory);
		rc = alyx__err_setd(err, ALYX_E_FUNCTION, details_of(d, extra),
				    "function %s: its executor %s before "
				    "answering (the function exited, crashed "
				    "or exceeded its memory limit of %lld MiB)",
				    d->name, how, (long long)(d->memory >> 20));
		break;
	}
	}
out:
	if (w) {
		pthread_mutex_lock(&fn->mu);
		if (kill_it) {
			worker *fresh;
			alyx__err e2 = {0};

			worker_kill(p, w);
			p->replaced++;
			/* A fresh executor replaces it (started now, so the
			 * next call does not pay the start-up). */
			if (spawn(fn, p, &fresh, &e2) == ALYX_OK)
				fresh->gen = d->gen;
			alyx__err_clear(&e2);
		} else {
			w->busy = false;
			w->calls++;
			w->last_used = alyx__mono_ms();
		}
		pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&fn->mu);
	}
	alyx__fn_inv_end(inv);
	alyx__free(req);
	alyx__buf_free(&line);
	alyx__engine_reap(fn->engine);	/* containers stopped meanwhile */
	return rc;
}

void alyx__fn_pools_json(struct alyx__fn *fn, alyx_buf *b)
{
	pool *p;
	bool first = true;

	pthread_mutex_lock(&fn->mu);
	alyx__buf_addc(b, '[');
	for (p = fn->pools; p; p = p->next) {
		worker *w;
		int busy = 0;

		for (w = p->workers; w; w = w->next)
			busy += w->busy;
		if (!first)
			alyx__buf_addc(b, ',');
		first = false;
		alyx__buf_addf(b, "{\"runtime\":\"%s\",\"network\":%s,"
			       "\"memory\":%lld,\"instances\":%d,\"busy\":%d,"
			       "\"waiting\":%d,\"started\":%lld,"
			       "\"replaced\":%lld,\"min_warm\":%d,"
			       "\"max_instances\":%d}",
			       alyx__fn_runtime_name(p->runtime),
			       p->network ? "true" : "false",
			       (long long)p->memory, p->n, busy, p->waiting,
			       (long long)p->started, (long long)p->replaced,
			       p->cfg->min_warm, p->cfg->max_instances);
	}
	alyx__buf_addc(b, ']');
	pthread_mutex_unlock(&fn->mu);
}

const char *alyx__fn_sandbox(struct alyx__fn *fn)
{
	return fn->engine ? "container" : fn->bwrap ? "bwrap" : "none";
}

alyx__fn_reg *alyx__fn_registry(struct alyx__fn *fn)
{
	return fn->reg;
}

alyx__fn_logbook *alyx__fn_logbook_of(struct alyx__fn *fn)
{
	return fn->logs;
}
