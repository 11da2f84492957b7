/*
 * reply.c - writing a reply: status line and headers built by hand into
 * the thread's buffer after LWS_PRE bytes, the body copied behind them,
 * one lws_write() (one send() up to pt_serv_buf_size), then the request
 * log line and metrics.  The error envelope and the mapping from libalyx
 * codes to HTTP statuses live here too.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "http/http.h"

const char *alyx__status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

int alyx__http_status(int code)
{
	switch (code) {
	case ALYX_OK: return 200;
	case ALYX_E_NOTFOUND: return 404;
	case ALYX_E_VALIDATION: return 422;
	case ALYX_E_CONFLICT:
	case ALYX_E_EXISTS: return 409;
	case ALYX_E_BADQUERY:
	case ALYX_E_BADJSON: return 400;
	case ALYX_E_TOOBIG: return 413;
	case ALYX_E_FORBIDDEN: return 403;
	case ALYX_E_UNAUTHORIZED: return 401;
	case ALYX_E_RATELIMIT: return 429;
	case ALYX_E_BUSY:
	case ALYX_E_UNAVAILABLE: return 503;
	case ALYX_E_TIMEOUT: return 504;
	case ALYX_E_UNSUPPORTED: return 501;
	default: return 500;	/* MISUSE, NOMEM, IO, CONFIG, SCHEMA, ... */
	}
}

static void finish_log(alyx__svc *t, alyx__req *r, int status, size_t bytes,
		       int64_t dur_us)
{
	alyx_server *s = t->srv;
	alyx_buf *b = &t->scratch;
	char ms[32];

	if (s->log_fd < 0 && !s->log_cb)
		return;
	alyx__buf_reset(b);
	alyx__log_begin(s, b, "info", "request");
	alyx__log_kv(s, b, "method", alyx__method_name(r->method));
	alyx__log_kv(s, b, "path", r->path ? r->path : "");
	alyx__log_kvi(s, b, "status", status);
	alyx__log_kvi(s, b, "bytes", (int64_t)bytes);
	snprintf(ms, sizeof(ms), "%.3f", (double)dur_us / 1000.0);
	if (s->log_format == ALYX_LOG_LOGFMT)
		alyx__buf_addf(b, " duration_ms=%s", ms);
	else
		alyx__buf_addf(b, ",\"duration_ms\":%s", ms);
	alyx__log_kv(s, b, "request_id", r->rid);
	alyx__log_end(s, b);
	alyx__srv_log(s, t, ALYX_LOG_INFO, b);
}

/* The Date header value, formatted once per second per thread. */
static const char *http_date(alyx__svc *t)
{
	time_t now = time(NULL);

	if (now != t->date_sec) {
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(t->date, sizeof(t->date), "%a, %d %b %Y %H:%M:%S GMT",
			 &tm);
		t->date_sec = now;
	}
	return t->date;
}

/* The status line and headers of a reply with a body of `len` bytes,
 * appended to b. */
static void head_write(alyx__svc *t, alyx__req *r, alyx_buf *b, int status,
		       const char *ctype, size_t len, const char *extra)
{
	/* Appended piece by piece: no printf on the path of every reply. */
	char code[4] = {(char)('0' + status / 100 % 10),
			(char)('0' + status / 10 % 10),
			(char)('0' + status % 10), ' '};
	alyx__buf_add(b, "HTTP/1.1 ", 9);
	alyx__buf_add(b, code, 4);
	alyx__buf_adds(b, alyx__status_text(status));
	if (ctype) {
		alyx__buf_add(b, "\r\nContent-Type: ", 16);
		alyx__buf_adds(b, ctype);
	}
	alyx__buf_add(b, "\r\nContent-Length: ", 18);
	alyx__json_i64(b, (int64_t)len);
	alyx__buf_add(b, "\r\nX-Request-Id: ", 16);
	alyx__buf_adds(b, r->rid);
	alyx__buf_add(b, "\r\nDate: ", 8);
	alyx__buf_adds(b, http_date(t));
	alyx__buf_add(b, "\r\n", 2);
	if (r->cors && r->origin) {
		alyx__buf_adds(b, "Access-Control-Allow-Origin: ");
		alyx__buf_adds(b, r->origin);
		alyx__buf_adds(b, "\r\nVary: Origin\r\n"
			       "Access-Control-Expose-Headers: X-Request-Id\r\n");
	}
	if (extra)
		alyx__buf_adds(b, extra);
	if (r->closing)
		alyx__buf_adds(b, "Connection: close\r\n");
	alyx__buf_adds(b, "\r\n");
}

/* Sends t->out from `start` (LWS_PRE bytes of headroom before it) whose
 * last `len` bytes are the body, then records, logs and completes the
 * request.  A buffer that ran out of memory hangs up instead. */
static int send_finish(alyx__svc *t, alyx__req *r, int status, size_t start,
		       size_t len)
{
	alyx_server *s = t->srv;
	alyx_buf *b = &t->out;
	int n;

	bool oom = b->err != 0;
	const char *sent_body = oom ? "" : b->data + b->len - len;
	size_t sent_len = oom ? 0 : len;
	if (oom) {
		/* Even the headers did not fit in memory: hang up. */
		alyx__buf_free(b);
		alyx__buf_init(b, 0);
		r->closing = true;
		n = -1;
	} else {
		n = alyx__req_write(r, (unsigned char *)b->data + start,
				    b->len - start, true);
	}

	int64_t dur = lws_now_usecs() - r->t0_us;
	/* A HEAD's body was not sent (alyx__req_write). */
	size_t out = r->method == M_HEAD ? 0 : len;
	alyx__metrics_record(&t->metrics, r->route, r->method, status, dur,
			     out);
	finish_log(t, r, status, out, dur);
	if (status >= 500 && status != 503) {
		alyx_buf *lb = &t->scratch;
		alyx__buf_reset(lb);
		alyx__log_begin(s, lb, "error", "request failed");
		alyx__log_kvi(s, lb, "status", status);
		alyx__log_kv(s, lb, "request_id", r->rid);
		alyx__buf_adds(lb, s->log_format == ALYX_LOG_LOGFMT
				   ? " body=" : ",\"body\":");
		alyx__json_str(lb, sent_body, sent_len);
		alyx__log_end(s, lb);
		alyx__srv_log(s, t, ALYX_LOG_ERROR, lb);
	}
	r->state = RS_DONE;
	if (r->counted) {
		r->counted = false;
		atomic_fetch_sub(&s->inflight, 1);
	}
	if (n < 0 || r->closing)
		return -1;
	/* Last: this may free `r` (lws re-binds the transaction). */
	return alyx__req_completed(r);
}

int alyx__reply(alyx__svc *t, alyx__req *r, int status, const char *ctype,
		const char *body, size_t len, const char *extra)
{
	alyx_buf *b = &t->out;
	/* LWS_PRE bytes of headroom that lws_write() may use. */
	static const char pre[LWS_PRE];

	alyx__buf_reset(b);
	alyx__buf_add(b, pre, LWS_PRE);
	head_write(t, r, b, status, ctype, len, extra);
	if (len)
		alyx__buf_add(b, body, len);
	return send_finish(t, r, status, LWS_PRE, len);
}

alyx_buf *alyx__reply_body_begin(alyx__svc *t)
{
	static const char room[ALYX_REPLY_BODY_AT];

	alyx__buf_reset(&t->out);
	alyx__buf_add(&t->out, room, sizeof(room));
	return &t->out;
}

int alyx__reply_in_place(alyx__svc *t, alyx__req *r, int status,
			 const char *ctype)
{
	alyx_buf *b = &t->out, *h = &t->scratch;
	size_t at = ALYX_REPLY_BODY_AT, len;

	if (b->err || b->len < at)	/* the body did not fit in memory */
		return alyx__reply_error(t, r, 500, "OUT_OF_MEMORY",
					 "out of memory", NULL);
	len = b->len - at;
	alyx__buf_reset(h);
	head_write(t, r, h, status, ctype, len, NULL);
	if (h->err)
		b->err = h->err;
	else if (h->len > at - LWS_PRE) {
		/* A head longer than the room (a long CORS origin): move
		 * the body up to make space. */
		size_t more = h->len - (at - LWS_PRE);

		if (alyx__buf_grow(b, more)) {
			memmove(b->data + at + more, b->data + at, len);
			b->len += more;
			at += more;
		}
	}
	if (!b->err)
		memcpy(b->data + at - h->len, h->data, h->len);
	return send_finish(t, r, status, at - h->len, len);
}

static void envelope(alyx_buf *b, const char *code, const char *msg,
		     const char *details, const char *rid)
{
	char ts[25];

	alyx__iso8601_ms(alyx__now_ms(), ts);
	alyx__buf_adds(b, "{\"error\":{\"code\":");
	alyx__json_strz(b, code);
	alyx__buf_adds(b, ",\"message\":");
	alyx__json_strz(b, msg ? msg : "");
	alyx__buf_adds(b, ",\"details\":");
	/* details is JSON object text produced by libalyx (or by us). */
	alyx__buf_adds(b, details && *details ? details : "{}");
	alyx__buf_adds(b, "},\"request_id\":");
	alyx__json_strz(b, rid);
	alyx__buf_addf(b, ",\"timestamp\":\"%s\"}", ts);
}

int alyx__reply_error_h(alyx__svc *t, alyx__req *r, int status,
			const char *code, const char *msg, const char *details,
			const char *extra)
{
	alyx_buf eb;
	int n;

	alyx__buf_init(&eb, 0);
	envelope(&eb, code, msg, details, r->rid);
	if (eb.err) {
		alyx__buf_free(&eb);
		r->closing = true;
		return alyx__reply(t, r, 500, NULL, NULL, 0, NULL);
	}
	n = alyx__reply(t, r, status, "application/json", eb.data, eb.len,
			extra);
	alyx__buf_free(&eb);
	return n;
}

int alyx__reply_error(alyx__svc *t, alyx__req *r, int status,
		      const char *code, const char *msg, const char *details)
{
	return alyx__reply_error_h(t, r, status, code, msg, details, NULL);
}

int alyx__reply_core_error(alyx__svc *t, alyx__req *r)
{
	alyx *a = t->srv->a;
	int code = alyx_errcode(a);

	if (code == ALYX_OK)
		code = ALYX_E_INTERNAL;
	return alyx__reply_error(t, r, alyx__http_status(code),
				 alyx_errname(code), alyx_errmsg(a),
				 alyx_errdetails(a));
}

int alyx__reply_job_error(alyx__svc *t, alyx__req *r, alyx__job *j)
{
	return alyx__reply_error(t, r, alyx__http_status(j->rc),
				 alyx_errname(j->rc), j->err_msg,
				 j->err_details);
}
