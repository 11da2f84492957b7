/* time.c - clocks and ISO-8601 timestamps (always UTC, millisecond). */
#include <ctype.h>
#include <string.h>
#include <time.h>

#include "util.h"

int64_t alyx__now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t alyx__mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's
 * days_from_civil algorithm, written out here). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	*y = (int64_t)yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y += *m <= 2;
}

void alyx__iso8601_ms(int64_t ms, char out[25])
{
	int64_t days = ms / 86400000, rem = ms % 86400000, y;
	unsigned mo, d, secs, msec;

	if (rem < 0) {
		rem += 86400000;
		days--;
	}
	civil_from_days(days, &y, &mo, &d);
	secs = (unsigned)(rem / 1000);
	msec = (unsigned)(rem % 1000);
	if (y < 0 || y > 9999)
		y = y < 0 ? 0 : 9999;
	/* Fixed-width formatting without snprintf on the hot path. */
	out[0] = (char)('0' + y / 1000);
	out[1] = (char)('0' + y / 100 % 10);
	out[2] = (char)('0' + y / 10 % 10);
	out[3] = (char)('0' + y % 10);
	out[4] = '-';
	out[5] = (char)('0' + mo / 10);
	out[6] = (char)('0' + mo % 10);
	out[7] = '-';
	out[8] = (char)('0' + d / 10);
	out[9] = (char)('0' + d % 10);
	out[10] = 'T';
	out[11] = (char)('0' + secs / 36000);
	out[12] = (char)('0' + secs / 3600 % 10);
	out[13] = ':';
	out[14] = (char)('0' + secs % 3600 / 600);
	out[15] = (char)('0' + secs % 3600 / 60 % 10);
	out[16] = ':';
	out[17] = (char)('0' + secs % 60 / 10);
	out[18] = (char)('0' + secs % 10);
	out[19] = '.';
	out[20] = (char)('0' + msec / 100);
	out[21] = (char)('0' + msec / 10 % 10);
	out[22] = (char)('0' + msec % 10);
	out[23] = 'Z';
	out[24] = '\0';
}

static bool digits(const char *s, size_t n, size_t at, size_t cnt, int *v)
{
	size_t i;

	if (at + cnt > n)
		return false;
	*v = 0;
	for (i = 0; i < cnt; i++) {
		if (!isdigit((unsigned char)s[at + i]))
			return false;
		*v = *v * 10 + (s[at + i] - '0');
	}
	return true;
}

bool alyx__parse_iso8601(const char *s, size_t n, int64_t *ms)
{
	int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0, oh = 0, om = 0;
	size_t i;
	int sign = 1, fd = 0;
	static const int mdays[] = {31, 28, 31, 30, 31, 30,
				    31, 31, 30, 31, 30, 31};
	int maxd;

	if (!digits(s, n, 0, 4, &y) || n < 10 || s[4] != '-' ||
	    !digits(s, n, 5, 2, &mo) || s[7] != '-' ||
	    !digits(s, n, 8, 2, &d))
		return false;
	if (mo < 1 || mo > 12 || d < 1)
		return false;
	maxd = mdays[mo - 1];
	if (mo == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		maxd = 29;
	if (d > maxd)
		return false;
	i = 10;
	if (i < n) {
		if (s[i] != 'T' && s[i] != 't' && s[i] != ' ')
			return false;
		if (!digits(s, n, i + 1, 2, &h) || i + 3 >= n ||
		    s[i + 3] != ':' || !digits(s, n, i + 4, 2, &mi))
			return false;
		i += 6;
		if (i < n && s[i] == ':') {
			if (!digits(s, n, i + 1, 2, &sec))
				return false;
			i += 3;
			if (i < n && s[i] == '.') {
				i++;
				while (i < n && isdigit((unsigned char)s[i])) {
					if (fd < 3) {
						frac = frac * 10 + (s[i] - '0');
						fd++;
					}
					i++;
				}
				if (fd == 0)
					return false;
				while (fd < 3) {
					frac *= 10;
					fd++;
				}
			}
		}
		if (h > 23 || mi > 59 || sec > 60)
			return false;
		if (i < n) {
			if (s[i] == 'Z' || s[i] == 'z') {
				i++;
			} else if (s[i] == '+' || s[i] == '-') {
				sign = s[i] == '-' ? -1 : 1;
				if (!digits(s, n, i + 1, 2, &oh) ||
				    i + 3 >= n || s[i + 3] != ':' ||
				    !digits(s, n, i + 4, 2, &om))
					return false;
				if (oh > 23 || om > 59)
					return false;
				i += 6;
			} else {
				return false;
			}
		}
		if (i != n)
			return false;
	}
	if (sec == 60)
		sec = 59;
	*ms = ((days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
		h * 3600 + mi * 60 + sec -
		sign * (oh * 3600 + om * 60)) *
	       1000) + frac;
	return true;
}
