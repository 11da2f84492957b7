/* misc.c - ids, randomness, hashing, base64, URL decoding, files, names. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "util.h"

bool alyx__random(void *p, size_t n)
{
	return RAND_bytes(p, (int)n) == 1;
}

/*
 * Random bytes for document ids (alyx__uuid_v7_pooled; secrets such as
 * session ids keep calling the CSPRNG directly), drawn 512 bytes at a
 * time per thread (one RAND_bytes call per 32 ids: each call costs about as much
 * as the rest of an id).  A forked child drops the parent's unused bytes
 * (pthread_atfork runs in the one thread the child has), so the two
 * processes never hand out the same id.
 */
#define ID_POOL 512
static _Thread_local struct {
	unsigned char b[ID_POOL];
	size_t used;	/* 0 on a new thread: refill */
	bool full;
} id_pool;
static pthread_once_t id_pool_once = PTHREAD_ONCE_INIT;

static void id_pool_drop(void)
{
	explicit_bzero(&id_pool, sizeof(id_pool));
}

static void id_pool_init(void)
{
	pthread_atfork(NULL, NULL, id_pool_drop);
}

static bool id_random(unsigned char r[16])
{
	pthread_once(&id_pool_once, id_pool_init);
	if (!id_pool.full || id_pool.used + 16 > ID_POOL) {
		id_pool.full = false;
		if (!alyx__random(id_pool.b, ID_POOL))
			return false;
		id_pool.full = true;
		id_pool.used = 0;
	}
	memcpy(r, id_pool.b + id_pool.used, 16);
	/* Used bytes never stay in memory. */
	explicit_bzero(id_pool.b + id_pool.used, 16);
	id_pool.used += 16;
	return true;
}

/* Fills r from the CSPRNG result `ok` or, should OpenSSL fail to seed,
 * straight from the kernel rather than produce a weak id. */
static void random_or_kernel(unsigned char r[16], bool ok)
{
	if (!ok) {
		int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

		if (fd < 0 || read(fd, r, 16) != 16)
			memset(r, 0, 16);
		if (fd >= 0)
			close(fd);
	}
}

static void uuid_format(unsigned char r[16], int version, char out[37])
{
	static const char hex[] = "0123456789abcdef";
	int i, j = 0;

	r[6] = (unsigned char)((r[6] & 0x0F) | (version << 4));
	r[8] = (unsigned char)((r[8] & 0x3F) | 0x80);
	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[j++] = '-';
		out[j++] = hex[r[i] >> 4];
		out[j++] = hex[r[i] & 15];
	}
	out[j] = '\0';
}

void alyx__uuid_v4(char out[37])
{
	unsigned char r[16];

	random_or_kernel(r, alyx__random(r, sizeof(r)));
	uuid_format(r, 4, out);
}

/*
 * RFC 9562 version 7: 48 bits of Unix time in milliseconds, then (method
 * 3 of its section 6.2) 12 bits of sub-millisecond time in 1/4096 ms
 * steps, then 62 random bits.  The 60 time bits of one thread never
 * repeat or go back (a tick already used, or a clock stepped back, takes
 * the last value plus one: section 6.2's monotonic counter), so ids made
 * by one thread sort in the order they were made, and ids of different
 * threads interleave by time.  New ids thus land at the right-hand edge
 * of a primary-key index, a few pages per commit, instead of on a random
 * page each (what a version-4 id costs on a large table).
 */
static _Thread_local uint64_t v7_last;

void alyx__uuid_v7_pooled(char out[37])
{
	unsigned char r[16];
	struct timespec ts;
	uint64_t t;

	random_or_kernel(r, id_random(r));
	clock_gettime(CLOCK_REALTIME, &ts);
	t = ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000) << 12 |
	    ((uint64_t)(ts.tv_nsec % 1000000) << 12) / 1000000;
	if (t <= v7_last)
		t = v7_last + 1;
	v7_last = t;
	for (int i = 0; i < 6; i++)
		r[i] = (unsigned char)(t >> (52 - 8 * i));
	r[6] = (unsigned char)((t >> 8) & 0x0F);
	r[7] = (unsigned char)t;
	uuid_format(r, 7, out);
}

bool alyx__uuid_valid(const char *s, size_t n)
{
	size_t i;

	if (n != 36)
		return false;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!isxdigit((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}

void alyx__hex(const void *p, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = p;
	size_t i;

	for (i = 0; i < n; i++) {
		out[i * 2] = hex[s[i] >> 4];
		out[i * 2 + 1] = hex[s[i] & 15];
	}
	out[2 * n] = '\0';
}

void alyx__sha256_hex(const void *p, size_t n, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;

	EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL);
	alyx__hex(md, 32, out);
}

bool alyx__hmac_sha256(const void *key, size_t klen, const void *p,
		       size_t n, unsigned char out[32])
{
	unsigned int mdlen = 0;

	if (klen > INT_MAX)
		return false;
	return HMAC(EVP_sha256(), key, (int)klen, p, n, out, &mdlen) &&
	       mdlen == 32;
}

static const char b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void alyx__base64_enc(alyx_buf *b, const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t i;
	char q[4];

	for (i = 0; i + 2 < n; i += 3) {
		q[0] = b64[s[i] >> 2];
		q[1] = b64[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
		q[2] = b64[((s[i + 1] & 15) << 2) | (s[i + 2] >> 6)];
		q[3] = b64[s[i + 2] & 63];
		alyx__buf_add(b, q, 4);
	}
	if (i < n) {
		q[0] = b64[s[i] >> 2];
		if (i + 1 < n) {
			q[1] = b64[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
			q[2] = b64[(s[i + 1] & 15) << 2];
		} else {
			q[1] = b64[(s[i] & 3) << 4];
			q[2] = '=';
		}
		q[3] = '=';
		alyx__buf_add(b, q, 4);
	}
}

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

bool alyx__base64_dec(const char *s, size_t n, unsigned char **out,
		      size_t *outlen)
{
	unsigned char *d;
	size_t i, o = 0, pad = 0;
	unsigned acc = 0;
	int bits = 0, v;

	while (n > 0 && s[n - 1] == '=' && pad < 2) {
		n--;
		pad++;
	}
	if ((n + pad) % 4 == 1)
		return false;
	d = alyx__malloc(n * 3 / 4 + 3);
	if (!d)
		return false;
	for (i = 0; i < n; i++) {
		v = b64val((unsigned char)s[i]);
		if (v < 0) {
			alyx__free(d);
			return false;
		}
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			d[o++] = (unsigned char)(acc >> bits);
		}
	}
	*out = d;
	*outlen = o;
	return true;
}

bool alyx__url_decode(const char *s, size_t n, char **out, size_t *outlen)
{
	char *d = alyx__malloc(n + 1);
	size_t i, o = 0;

	if (!d) {
		errno = ENOMEM;
		return false;
	}
	for (i = 0; i < n; i++) {
		if (s[i] == '%') {
			int h = i + 2 < n ? alyx__hexval((unsigned char)s[i + 1]) : -1;
			int l = i + 2 < n ? alyx__hexval((unsigned char)s[i + 2]) : -1;

			if (h < 0 || l < 0) {
				alyx__free(d);
				errno = EINVAL;
				return false;
			}
			d[o++] = (char)(h * 16 + l);
			i += 2;
		} else if (s[i] == '+') {
			d[o++] = ' ';
		} else {
			d[o++] = s[i];
		}
	}
	d[o] = '\0';
	*out = d;
	*outlen = o;
	return true;
}

int alyx__read_file(const char *path, size_t max, char **out, size_t *len,
		    alyx__err *err)
{
	FILE *f = fopen(path, "rb");
	alyx_buf b;
	char tmp[8192];
	size_t n;

	*out = NULL;
	if (len)
		*len = 0;
	if (!f) {
		int e = errno;

		return alyx__err_set(err,
				     e == ENOENT ? ALYX_E_NOTFOUND : ALYX_E_IO,
				     NULL, "%s: %s", path, strerror(e));
	}
	alyx__buf_init(&b, max);
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		alyx__buf_add(&b, tmp, n);
	if (ferror(f)) {
		fclose(f);
		alyx__buf_free(&b);
		return alyx__err_set(err, ALYX_E_IO, NULL, "%s: read error",
				     path);
	}
	fclose(f);
	if (b.err) {
		int code = b.err;

		alyx__buf_free(&b);
		return alyx__err_set(err, code, NULL,
				     "%s: file is larger than %zu bytes", path,
				     max);
	}
	if (len)
		*len = b.len;
	*out = alyx__buf_take(&b);
	if (!*out)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	return ALYX_OK;
}

int alyx__write_file(const char *path, const void *p, size_t n,
		     alyx__err *err)
{
	char *tmp = alyx__asprintf("%s.tmp%ld", path, (long)getpid());
	FILE *f;
	int rc = ALYX_OK;

	if (!tmp)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	f = fopen(tmp, "wb");
	if (!f) {
		rc = alyx__err_set(err, ALYX_E_IO, NULL, "%s: %s", tmp,
				   strerror(errno));
		goto out;
	}
	if (fwrite(p, 1, n, f) != n || fflush(f) != 0 ||
	    fsync(fileno(f)) != 0) {
		rc = alyx__err_set(err, ALYX_E_IO, NULL, "%s: %s", tmp,
				   strerror(errno));
		fclose(f);
		unlink(tmp);
		goto out;
	}
	fclose(f);
	if (rename(tmp, path) != 0) {
		rc = alyx__err_set(err, ALYX_E_IO, NULL, "%s: %s", path,
				   strerror(errno));
		unlink(tmp);
	}
out:
	alyx__free(tmp);
	return rc;
}

int alyx__mkdirs(const char *path, int mode, alyx__err *err)
{
	char *p = alyx__strdup(path);
	char *s;
	int rc = ALYX_OK;

	if (!p)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	for (s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST) {
			rc = alyx__err_set(err, ALYX_E_IO, NULL, "%s: %s", p,
					   strerror(errno));
			goto out;
		}
		*s = '/';
	}
	if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST)
		rc = alyx__err_set(err, ALYX_E_IO, NULL, "%s: %s", p,
				   strerror(errno));
out:
	alyx__free(p);
	return rc;
}

char *alyx__path_join(const char *a, const char *b)
{
	size_t la;

	if (!a || !*a || b[0] == '/')
		return alyx__strdup(b);
	la = strlen(a);
	return alyx__asprintf("%s%s%s", a, a[la - 1] == '/' ? "" : "/", b);
}

/* Identifier bytes: 2 may start one (ASCII letter, '_'), 1 may follow
 * (also a digit).  A table rather than isalpha()/isalnum(): the document
 * layer checks every field name of a collection on each read and write,
 * and those go through the locale. */
static const unsigned char ident_class[256] = {
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1,
	['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
	['_'] = 2,
	['A'] = 2, ['B'] = 2, ['C'] = 2, ['D'] = 2, ['E'] = 2, ['F'] = 2,
	['G'] = 2, ['H'] = 2, ['I'] = 2, ['J'] = 2, ['K'] = 2, ['L'] = 2,
	['M'] = 2, ['N'] = 2, ['O'] = 2, ['P'] = 2, ['Q'] = 2, ['R'] = 2,
	['S'] = 2, ['T'] = 2, ['U'] = 2, ['V'] = 2, ['W'] = 2, ['X'] = 2,
	['Y'] = 2, ['Z'] = 2,
	['a'] = 2, ['b'] = 2, ['c'] = 2, ['d'] = 2, ['e'] = 2, ['f'] = 2,
	['g'] = 2, ['h'] = 2, ['i'] = 2, ['j'] = 2, ['k'] = 2, ['l'] = 2,
	['m'] = 2, ['n'] = 2, ['o'] = 2, ['p'] = 2, ['q'] = 2, ['r'] = 2,
	['s'] = 2, ['t'] = 2, ['u'] = 2, ['v'] = 2, ['w'] = 2, ['x'] = 2,
	['y'] = 2, ['z'] = 2,
};

bool alyx__ident_valid(const char *s)
{
	size_t i;

	if (!s || ident_class[(unsigned char)s[0]] != 2)
		return false;
	for (i = 1; s[i]; i++) {
		if (i >= 63 || !ident_class[(unsigned char)s[i]])
			return false;
	}
	return true;
}

void alyx__sql_ident(alyx_buf *b, const char *name)
{
	const char *p = name;
	size_t n;

	alyx__buf_addc(b, '"');
	for (;;) {
		/* Runs up to a '"' (doubled) in one append each. */
		n = strcspn(p, "\"");
		alyx__buf_add(b, p, n);
		if (!p[n])
			break;
		alyx__buf_add(b, "\"\"", 2);
		p += n + 1;
	}
	alyx__buf_addc(b, '"');
}
