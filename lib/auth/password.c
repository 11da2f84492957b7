/* password.c - argon2id hashing and the password policy. */
#include <argon2.h>
#include <string.h>

#include "auth/auth.h"

#define SALT_LEN 16
#define HASH_LEN 32

static uint32_t cost_t = ALYX_AUTH_ARGON2_T;
static uint32_t cost_m = ALYX_AUTH_ARGON2_M_KIB;

void alyx__auth_set_cost(uint32_t t, uint32_t m_kib)
{
	cost_t = t ? t : ALYX_AUTH_ARGON2_T;
	cost_m = m_kib ? m_kib : ALYX_AUTH_ARGON2_M_KIB;
}

int alyx__pw_hash(const char *pw, size_t n, char out[ALYX_AUTH_HASH_MAX],
		  alyx__err *err)
{
	unsigned char salt[SALT_LEN];
	int rc;

	out[0] = '\0';
	if (n > ALYX_AUTH_PASSWORD_MAX)
		return alyx__err_set(err, ALYX_E_TOOBIG, NULL,
				     "password longer than %d bytes",
				     ALYX_AUTH_PASSWORD_MAX);
	if (!alyx__random(salt, sizeof(salt)))
		return alyx__err_set(err, ALYX_E_INTERNAL, NULL,
				     "no random bytes for a password salt");
	rc = argon2id_hash_encoded(cost_t, cost_m, ALYX_AUTH_ARGON2_P, pw, n,
				   salt, sizeof(salt), HASH_LEN, out,
				   ALYX_AUTH_HASH_MAX);
	if (rc == ARGON2_MEMORY_ALLOCATION_ERROR)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL,
				     "out of memory hashing a password");
	if (rc != ARGON2_OK)
		return alyx__err_set(err, ALYX_E_INTERNAL, NULL,
				     "argon2id: %s", argon2_error_message(rc));
	return ALYX_OK;
}

bool alyx__pw_verify(const char *encoded, const char *pw, size_t n)
{
	if (!encoded || n > ALYX_AUTH_PASSWORD_MAX ||
	    strncmp(encoded, "$argon2id$", 10) != 0)
		return false;
	return argon2id_verify(encoded, pw, n) == ARGON2_OK;
}

const cJSON *alyx__pw_field(const alyx__config *cfg, const cJSON *body,
			    alyx__fielderrs *fe)
{
	const cJSON *pw = cJSON_GetObjectItemCaseSensitive(body, "password");

	if (!cJSON_IsString(pw)) {
		alyx__fielderrs_add(fe, "password", pw ? "type" : "required",
				    "a password string is required");
		return NULL;
	}
	alyx__pw_policy(cfg, pw->valuestring, strlen(pw->valuestring), fe);
	return pw;
}

void alyx__pw_policy(const alyx__config *cfg, const char *pw, size_t n,
		     alyx__fielderrs *fe)
{
	bool upper = false, digit = false, special = false;
	size_t chars = 0, i;

	if (n > ALYX_AUTH_PASSWORD_MAX) {
		alyx__fielderrs_add(fe, "password", "max_length",
				    "must be at most %d bytes",
				    ALYX_AUTH_PASSWORD_MAX);
		return;
	}
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)pw[i];

		if ((ch & 0xc0) != 0x80)
			chars++;
		if (ch >= 'A' && ch <= 'Z')
			upper = true;
		else if (ch >= '0' && ch <= '9')
			digit = true;
		else if (!(ch >= 'a' && ch <= 'z'))
			special = true;
	}
	if ((int64_t)chars < cfg->auth.password.min_length)
		alyx__fielderrs_add(fe, "password", "min_length",
				    "must be at least %d characters",
				    cfg->auth.password.min_length);
	if (cfg->auth.password.require_uppercase && !upper)
		alyx__fielderrs_add(fe, "password", "uppercase",
				    "must contain an upper-case letter");
	if (cfg->auth.password.require_number && !digit)
		alyx__fielderrs_add(fe, "password", "number",
				    "must contain a digit");
	if (cfg->auth.password.require_special && !special)
		alyx__fielderrs_add(fe, "password", "special",
				    "must contain a character that is not a "
				    "letter or digit");
}
