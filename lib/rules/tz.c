/*
 * tz.c - UTC offsets for CEL's timestamp getters: fixed offsets
 * ("+11:00", "-02:30", "02:00") and IANA zone names read from the TZif
 * files under /usr/share/zoneinfo.  The files are parsed here (no
 * setenv("TZ")/localtime, which are not thread-safe); parsed zones are
 * cached for the process's life behind a mutex and never change.
 * Instants after a file's last transition follow the POSIX TZ rule in
 * the file's footer ("CET-1CEST,M3.5.0,M10.5.0/3"); without one, the last
 * transition's offset stays.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules/rules-int.h"

#define TZ_DIR "/usr/share/zoneinfo/"
#define TZ_CACHE 64

/* One end of a POSIX TZ daylight-saving rule. */
typedef struct tzdate {
	char kind;		/* 'M' month.week.day, 'J' Julian 1..365
				 * without Feb 29, 'N' zero-based day */
	int m, w, d;		/* 'M' */
	int day;		/* 'J' / 'N' */
	int32_t secs;		/* local time of day of the change */
} tzdate;

typedef struct tzrule {
	bool has;		/* a footer rule was parsed */
	bool dst;		/* it has daylight saving time */
	int32_t std_off, dst_off;	/* seconds east of UTC */
	tzdate start, end;
} tzrule;

typedef struct tzone {
	char name[64];
	size_t n;		/* transitions */
	int64_t *at;		/* transition times */
	int32_t *off;		/* offset in effect from at[i] */
	int32_t before;		/* offset before the first transition */
	tzrule rule;		/* after the last transition */
} tzone;

/* ---- POSIX TZ strings (the TZif footer) ---- */

static const char *tz_name(const char *p)
{
	if (*p == '<') {
		while (*p && *p != '>')
			p++;
		return *p ? p + 1 : NULL;
	}
	const char *st = p;
	while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))
		p++;
	return p - st >= 3 ? p : NULL;
}

/* [+-]hh[:mm[:ss]] -> seconds; NULL on a syntax error. */
static const char *tz_time(const char *p, int32_t *out)
{
	int sign = 1, v[3] = {0, 0, 0};

	if (*p == '+' || *p == '-') {
		sign = *p == '-' ? -1 : 1;
		p++;
	}
	for (int i = 0; i < 3; i++) {
		if (i && *p != ':')
			break;
		if (i)
			p++;
		if (*p < '0' || *p > '9')
			return NULL;
		while (*p >= '0' && *p <= '9')
			v[i] = v[i] * 10 + (*p++ - '0');
		if (v[i] > 167)
			return NULL;
	}
	*out = sign * (v[0] * 3600 + v[1] * 60 + v[2]);
	return p;
}

static const char *tz_num(const char *p, int *out)
{
	if (*p < '0' || *p > '9')
		return NULL;
	*out = 0;
	while (*p >= '0' && *p <= '9' && *out < 1000)
		*out = *out * 10 + (*p++ - '0');
	return p;
}

static const char *tz_date(const char *p, tzdate *d)
{
	if (*p == 'M') {
		d->kind = 'M';
		if (!(p = tz_num(p + 1, &d->m)) || *p++ != '.' ||
		    !(p = tz_num(p, &d->w)) || *p++ != '.' ||
		    !(p = tz_num(p, &d->d)))
			return NULL;
		if (d->m < 1 || d->m > 12 || d->w < 1 || d->w > 5 || d->d > 6)
			return NULL;
	} else {
		d->kind = *p == 'J' ? 'J' : 'N';
		if (*p == 'J')
			p++;
		if (!(p = tz_num(p, &d->day)) || d->day > 365)
			return NULL;
	}
	d->secs = 7200;
	if (*p == '/' && !(p = tz_time(p + 1, &d->secs)))
		return NULL;
	return p;
}

static bool tz_rule_parse(const char *p, tzrule *r)
{
	int32_t o;

	memset(r, 0, sizeof(*r));
	if (!(p = tz_name(p)) || !(p = tz_time(p, &o)))
		return false;
	r->std_off = -o;	/* POSIX offsets are west-positive */
	if (!*p) {
		r->has = true;
		return true;
	}
	if (!(p = tz_name(p)))
		return false;
	r->dst_off = r->std_off + 3600;
	if (*p && *p != ',') {
		if (!(p = tz_time(p, &o)))
			return false;
		r->dst_off = -o;
	}
	if (*p++ != ',' || !(p = tz_date(p, &r->start)) || *p++ != ',' ||
	    !(p = tz_date(p, &r->end)) || *p)
		return false;
	r->has = r->dst = true;
	return true;
}

static bool leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Seconds since the epoch of local midnight starting the rule's day in
 * year y, plus its time of day: local seconds, to convert with the
 * offset in effect before the change. */
static int64_t tz_date_local(const tzdate *d, int64_t y)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
				    30, 31};
	int64_t days;

	if (d->kind == 'M') {
		int64_t first = cel_days(y, d->m, 1);
		int wd = (int)(((first + 4) % 7 + 7) % 7);
		int dim = mdays[d->m - 1] + (d->m == 2 && leap(y));
		int dom = 1 + (d->d - wd + 7) % 7 + 7 * (d->w - 1);
		while (dom > dim)
			dom -= 7;
		days = first + dom - 1;
	} else if (d->kind == 'J') {
		days = cel_days(y, 1, 1) + d->day - 1;
		if (leap(y) && d->day >= 60)
			days++;
	} else {
		days = cel_days(y, 1, 1) + d->day;
	}
	return days * 86400 + d->secs;
}

static int32_t tz_rule_offset(const tzrule *r, int64_t t)
{
	int64_t y, local = t + r->std_off;
	int m, d;

	if (!r->dst)
		return r->std_off;
	cel_civil(local >= 0 ? local / 86400 : (local - 86399) / 86400, &y,
		  &m, &d);
	int64_t start = tz_date_local(&r->start, y) - r->std_off;
	int64_t end = tz_date_local(&r->end, y) - r->dst_off;
	bool in_dst = start < end ? (t >= start && t < end) :
				    (t >= start || t < end);
	return in_dst ? r->dst_off : r->std_off;
}

static pthread_mutex_t tz_lock = PTHREAD_MUTEX_INITIALIZER;
static tzone *tz_cache[TZ_CACHE];
static size_t tz_count;

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static bool name_ok(const char *s, size_t n)
{
	if (n == 0 || n >= 64 || s[0] == '/')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-' ||
		      c == '+' || c == '/'))
			return false;
		if (c == '/' && i + 1 < n && s[i + 1] == '.')
			return false;
	}
	return true;
}

static tzone *tz_load(const char *name, size_t nlen)
{
	char path[128];
	char *data = NULL;
	size_t len = 0;
	alyx__err err = {0};
	tzone *z = NULL;
	const unsigned char *p;
	size_t tsize = 4;

	snprintf(path, sizeof(path), TZ_DIR "%.*s", (int)nlen, name);
	if (alyx__read_file(path, 1 << 20, &data, &len, &err) != ALYX_OK) {
		alyx__err_clear(&err);
		return NULL;
	}
	p = (const unsigned char *)data;
	if (len < 44 || memcmp(p, "TZif", 4))
		goto out;
	for (int pass = 0; pass < 2; pass++) {
		uint32_t isut = be32(p + 20), isstd = be32(p + 24),
			 leap = be32(p + 28), timecnt = be32(p + 32),
			 typecnt = be32(p + 36), charcnt = be32(p + 40);
		size_t body = (size_t)timecnt * tsize + timecnt +
			      (size_t)typecnt * 6 + charcnt +
			      (size_t)leap * (tsize + 4) + isstd + isut;
		if ((size_t)(p - (const unsigned char *)data) + 44 + body > len)
			goto out;
		if (pass == 0 && p[4] >= '2') {
			/* skip the 32-bit block and read the 64-bit one */
			p += 44 + body;
			if ((size_t)(p - (const unsigned char *)data) + 44 >
				    len ||
			    memcmp(p, "TZif", 4))
				goto out;
			tsize = 8;
			continue;
		}
		if (typecnt == 0)
			goto out;
		const unsigned char *times = p + 44;
		const unsigned char *idx = times + (size_t)timecnt * tsize;
		const unsigned char *types = idx + timecnt;
		z = alyx__calloc(1, sizeof(*z));
		if (!z)
			goto out;
		z->at = alyx__calloc(timecnt ? timecnt : 1, sizeof(int64_t));
		z->off = alyx__calloc(timecnt ? timecnt : 1, sizeof(int32_t));
		if (!z->at || !z->off) {
			alyx__free(z->at);
			alyx__free(z->off);
			alyx__free(z);
			z = NULL;
			goto out;
		}
		z->n = timecnt;
		for (uint32_t i = 0; i < timecnt; i++) {
			z->at[i] = tsize == 8 ? be64(times + 8 * i) :
						(int32_t)be32(times + 4 * i);
			uint8_t ti = idx[i] < typecnt ? idx[i] : 0;
			z->off[i] = (int32_t)be32(types + 6 * ti);
		}
		/* before the first transition: the first standard type */
		z->before = (int32_t)be32(types);
		for (uint32_t i = 0; i < typecnt; i++)
			if (!types[6 * i + 4]) {
				z->before = (int32_t)be32(types + 6 * i);
				break;
			}
		memcpy(z->name, name, nlen);
		z->name[nlen] = 0;
		/* the footer: "\n<POSIX TZ>\n" after the v2+ data block */
		if (tsize == 8) {
			const char *f = (const char *)p + 44 + body;
			const char *end = data + len;
			if (f < end && *f == '\n') {
				const char *nl = memchr(f + 1, '\n',
							(size_t)(end - f - 1));
				if (nl && nl - f - 1 < 120) {
					char rule[128];
					memcpy(rule, f + 1, (size_t)(nl - f - 1));
					rule[nl - f - 1] = 0;
					tz_rule_parse(rule, &z->rule);
				}
			}
		}
		break;
	}
out:
	alyx__free(data);
	return z;
}

static bool fixed_offset(const char *s, size_t n, int32_t *off)
{
	int sign = 1;
	size_t i = 0;

	if (n && (s[0] == '+' || s[0] == '-')) {
		sign = s[0] == '-' ? -1 : 1;
		i = 1;
	}
	if (n - i != 5 || s[i + 2] != ':')
		return false;
	for (size_t k = i; k < n; k++)
		if (k != i + 2 && (s[k] < '0' || s[k] > '9'))
			return false;
	int h = (s[i] - '0') * 10 + (s[i + 1] - '0');
	int m = (s[i + 3] - '0') * 10 + (s[i + 4] - '0');
	if (h > 23 || m > 59)
		return false;
	*off = sign * (h * 3600 + m * 60);
	return true;
}

bool cel_tz_offset(const char *name, size_t n, int64_t t, int32_t *off)
{
	tzone *z = NULL;

	if (fixed_offset(name, n, off))
		return true;
	if ((n == 3 && !memcmp(name, "UTC", 3)) ||
	    (n == 1 && name[0] == 'Z')) {
		*off = 0;
		return true;
	}
	if (!name_ok(name, n))
		return false;
	pthread_mutex_lock(&tz_lock);
	for (size_t i = 0; i < tz_count; i++)
		if (strlen(tz_cache[i]->name) == n &&
		    !memcmp(tz_cache[i]->name, name, n)) {
			z = tz_cache[i];
			break;
		}
	if (!z) {
		z = tz_load(name, n);
		if (z && tz_count < TZ_CACHE) {
			tz_cache[tz_count++] = z;
		} else if (z) {
			/* cache full: answer, then drop */
			pthread_mutex_unlock(&tz_lock);
			goto lookup_owned;
		}
	}
	pthread_mutex_unlock(&tz_lock);
	if (!z)
		return false;
lookup_owned:;
	/* binary search for the last transition <= t */
	size_t lo = 0, hi = z->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (z->at[mid] <= t)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == z->n && z->rule.has)
		*off = tz_rule_offset(&z->rule, t);
	else
		*off = lo == 0 ? z->before : z->off[lo - 1];
	if (tz_count >= TZ_CACHE) {
		bool cached = false;
		pthread_mutex_lock(&tz_lock);
		for (size_t i = 0; i < tz_count; i++)
			cached |= tz_cache[i] == z;
		pthread_mutex_unlock(&tz_lock);
		if (!cached) {
			alyx__free(z->at);
			alyx__free(z->off);
			alyx__free(z);
		}
	}
	return true;
}
