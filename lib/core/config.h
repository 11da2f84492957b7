/*
 * config.h - the project configuration, alyx.yaml (docs/config.md).
 *
 * Loaded once by alyx_open() and immutable afterwards, so it may be read
 * from any thread.  Every section and key is optional; what is missing
 * gets the default shown in docs/config.md (the seed plan's values).
 * Durations are kept in milliseconds and sizes in bytes.
 */
#ifndef ALYX_CONFIG_H
#define ALYX_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

/* "5/minute": at most `count` events per `window_ms`. */
typedef struct alyx__rate {
	int count;
	int64_t window_ms;
} alyx__rate;

typedef struct alyx__oauth_provider {
	bool enabled;		/* client_id and client_secret are set */
	char *client_id;	/* "" when unset */
	char *client_secret;	/* "" when unset */
	char **scopes;
	size_t n_scopes;
	char *auth_url;		/* endpoint overrides; the provider's */
	char *token_url;	/* public endpoints by default */
	char *userinfo_url;
	char *emails_url;	/* GitHub's verified-email list; "" for
				 * none (Google's userinfo has the flag) */
} alyx__oauth_provider;

/* Pool settings of one function runtime (node, python). */
typedef struct alyx__fn_runtime {
	int min_warm;
	int max_instances;
	int64_t idle_timeout_ms;
	int64_t exec_timeout_ms;
	int64_t memory_limit;	/* bytes */
	double cpu_limit;	/* cores */
	char *image;		/* container runner: the runtime's image */
} alyx__fn_runtime;

typedef struct alyx__config {
	char *file;		/* the file loaded, or NULL (defaults) */
	struct {
		char *host;		/* 127.0.0.1 */
		int port;		/* 8090 */
		int threads;		/* 0 = one per core */
		char *tls_cert;		/* NULL: plain HTTP */
		char *tls_key;
		char **cors_origins;	/* none by default */
		size_t n_cors_origins;
		int64_t max_body;	/* 1 MiB */
		int64_t max_header;	/* 8 KiB */
		int64_t request_timeout_ms; /* 10 s */
		char *loop;		/* "poll", "ev" or NULL (server's
					 * choice) */
	} server;
	struct {
		char *path;		/* data/alyx.db, relative to the
					 * project directory */
		int cache_size_mb;	/* 64 */
		int64_t cache_size;	/* the PRAGMA cache_size value:
					 * -(cache_size_mb * 1024) KiB */
		int busy_timeout_ms;	/* 5000 */
	} database;
	struct {
		bool enabled;		/* true; false: no accounts or tokens,
					 * no secret needed (docs/auth.md) */
		struct {
			char *secret;	/* "" when unset; else >= 32 chars */
			int64_t access_ttl_ms;	/* 15m */
			int64_t refresh_ttl_ms;	/* 7d */
			char *issuer;		/* "alyx" */
		} jwt;
		struct {
			int min_length;		/* 8 */
			bool require_uppercase;
			bool require_number;
			bool require_special;
		} password;
		struct {
			alyx__oauth_provider github;
			alyx__oauth_provider google;
			char *redirect_url;	/* NULL: derived by the
						 * server; "{provider}" is
						 * replaced */
			char *frontend_url;	/* NULL: the callback answers
						 * the token JSON */
			int64_t timeout_ms;	/* 10s per provider request */
			int64_t state_ttl_ms;	/* 10m */
		} oauth;
		struct {
			char *webhook;		/* NULL: links go to the dev
						 * log only */
			int64_t webhook_timeout_ms;	/* 5s */
			/* whsec_<base64>: the key that signs each POST
			 * (Standard Webhooks); NULL: unsigned */
			char *webhook_secret;
			unsigned char *webhook_key;	/* decoded */
			size_t webhook_key_len;
			char *verify_url;	/* "/verify-email" */
			char *reset_url;	/* "/reset-password" */
			int64_t verify_ttl_ms;	/* 24h */
			int64_t reset_ttl_ms;	/* 1h */
		} email;
		struct {
			alyx__rate login;	   /* 5/minute */
			alyx__rate register_;	   /* 3/minute */
			alyx__rate password_reset; /* 3/hour */
			alyx__rate oauth;	   /* 10/minute: sign-in
						    * starts per address */
		} rate_limit;
	} auth;
	struct {
		bool enabled;		/* true */
		char *dir;		/* "functions" */
		char *runner;		/* "process" or "container" */
		char *sandbox;		/* "auto", "bwrap" or "none" */
		char *container_socket;	/* /var/run/docker.sock */
		int64_t tx_timeout_ms;	/* 5 s: a function's transaction
					 * waits and stays open at most
					 * this long */
		struct {
			int pids_limit;		/* 128 per container */
			int64_t start_timeout_ms; /* 30 s */
			char *user;		/* "": the image's user */
		} container;
		alyx__fn_runtime node;
		alyx__fn_runtime python;
	} functions;
	struct {
		int poll_interval_ms;	/* 50: external-write detection */
		int max_connections;	/* 10000 */
		int max_subscriptions;	/* 100 per connection */
		int snapshot_limit;	/* 1000 documents */
		int64_t change_retention_ms; /* 24h of _alyx_changes */
		int64_t max_message;	/* 64 KiB: a client message */
		int64_t send_queue;	/* 4 MiB: unsent bytes per connection */
		int64_t idle_timeout_ms; /* 60s without subscriptions */
		int64_t ping_interval_ms; /* 30s: keepalive pings */
		int64_t token_check_ms;	/* 30s: tokens checked again */
	} realtime;
	struct {
		bool watch;		/* true */
		bool admin_ui;		/* true */
		char **generate;	/* client languages regenerated on
					 * schema change */
		size_t n_generate;
		char *generate_output;	/* "generated" */
	} dev;
	struct {
		char *level;		/* debug, info, warn, error */
		char *format;		/* json or logfmt */
	} log;
} alyx__config;

/*
 * Loads the configuration.  `path` is an alyx.yaml file, or a project
 * directory (its alyx.yaml is read if it exists, else the defaults
 * apply), or NULL for the defaults.  ${NAME} and ${NAME:-default} in
 * values are replaced from the environment (docs/config.md).  Errors:
 * ALYX_E_CONFIG with "alyx.yaml:line:col: message" and details
 * {"file","line","column","key"}; ALYX_E_NOTFOUND/ALYX_E_IO if a named
 * file cannot be read; ALYX_E_TOOBIG over 1 MiB; ALYX_E_NOMEM.
 */
int alyx__config_load(const char *path, alyx__config **out, alyx__err *err);
void alyx__config_free(alyx__config *cfg);
/* The effective configuration as JSON (durations as integer
 * milliseconds, sizes as integer bytes, rates as "5/minute"); with
 * mask_secrets, set secrets read "********".  Caller frees. */
char *alyx__config_to_json(const alyx__config *cfg, bool mask_secrets);

/* Value parsers used by the loader (and function manifests):
 * durations "500ms", "30s", "15m", "2h", "7d"; sizes "512", "64kb",
 * "256mb", "1gb" (binary units); rates "5/minute".  False if malformed. */
bool alyx__parse_duration_ms(const char *s, int64_t *out);
bool alyx__parse_size(const char *s, int64_t *out);
bool alyx__parse_rate(const char *s, alyx__rate *out);

#endif
