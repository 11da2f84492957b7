/*
 * fetch.c - outbound HTTP with libcurl (email webhooks, OAuth token
 * exchange and user info).  Blocking, with a bounded total time: callers
 * run it on their own thread, never on a server service thread
 * (lib/http/outbound.c).
 */
#include <pthread.h>
#include <string.h>

#include <curl/curl.h>

#include "alyx.h"
#include "auth/auth.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
	alyx_buf *b = ud;

	alyx__buf_add(b, p, size * n);
	return b->err ? 0 : size * n;	/* 0 stops the transfer */
}

int alyx__fetch(const char *method, const char *url,
		const char *const *headers, const char *body,
		int64_t timeout_ms, long *status, alyx_buf *out,
		alyx__err *err)
{
	char ua[64], cerr[CURL_ERROR_SIZE] = "";
	struct curl_slist *h = NULL, *nh;
	CURL *c = NULL;
	CURLcode cr;
	int rc = ALYX_OK;

	*status = 0;
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK || !(c = curl_easy_init()))
		return alyx__err_set(err, ALYX_E_INTERNAL, NULL,
				     "libcurl could not be initialised");
	for (size_t i = 0; headers && headers[i]; i++) {
		nh = curl_slist_append(h, headers[i]);
		if (!nh) {
			rc = alyx__err_set(err, ALYX_E_NOMEM, NULL,
					   "out of memory");
			goto out;
		}
		h = nh;
	}
	snprintf(ua, sizeof(ua), "alyx/%s", alyx_version_string());
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, ua);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	if (!strcmp(method, "POST")) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
	}
	cr = curl_easy_perform(c);
	if (cr == CURLE_OPERATION_TIMEDOUT) {
		rc = alyx__err_set(err, ALYX_E_TIMEOUT, NULL,
				   "%s timed out after %lld ms", url,
				   (long long)timeout_ms);
	} else if (cr == CURLE_WRITE_ERROR && out->err) {
		rc = alyx__err_set(err, ALYX_E_TOOBIG, NULL,
				   "the answer of %s is too large", url);
	} else if (cr != CURLE_OK) {
		rc = alyx__err_set(err, ALYX_E_UNAVAILABLE, NULL, "%s: %s", url,
				   cerr[0] ? cerr : curl_easy_strerror(cr));
	} else {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	}
out:
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return rc;
}
