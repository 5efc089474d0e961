/* auth.h - JWT verification, stream access patterns and token minting (server module).
 *
 * libjwt 1.10 decodes; everything it does not check is ours: the algorithm is pinned by
 * configuration (the token's header never chooses), `exp` is required, `nbf`/`iss`/`aud`
 * are checked, and the `rtlog` claim's `subscribe`/`publish` pattern arrays decide access.
 * Verified tokens are cached until they expire so asymmetric verification is paid once.
 * Used by the lws thread (verify) and by `rtlog token` (mint). Not thread-safe: one
 * rtlog_auth per thread.
 * Source: CONTRACT.md "Authentication and authorization (JWT)"; handed.md C13-C16.
 */
#ifndef RTLOG_AUTH_H
#define RTLOG_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "rtlog_err.h"

typedef struct rtlog_auth rtlog_auth; /* opaque */

typedef enum rtlog_jwt_alg {
    RTLOG_JWT_HS256 = 1,
    RTLOG_JWT_RS256,
    RTLOG_JWT_ES256,
} rtlog_jwt_alg;

#define RTLOG_JWT_MAX_TOKEN  8192 /* bytes; a longer token is refused before any parsing */
#define RTLOG_JWT_MIN_SECRET 32   /* bytes of an HS256 secret (RFC 7518 3.2: >= hash size) */

typedef struct rtlog_auth_opts {
    rtlog_jwt_alg alg;    /* the only algorithm accepted */
    const void *key;      /* HS256: the secret bytes (>= 32); RS256/ES256: PEM text of the
                           * public key ("BEGIN PUBLIC KEY"; a private key PEM also works,
                           * only its public half is kept). Copied. */
    size_t key_len;       /* bytes */
    const char *issuer;   /* NULL = not checked (a token's iss, if any, must be a string);
                           * set = token must carry exactly this iss; copied */
    const char *audience; /* NULL = not checked; set = token aud (string or array of
                           * strings) must contain it; copied */
    unsigned leeway_s;    /* clock skew allowed on exp/nbf, seconds; 0 = none */
    size_t cache_entries; /* verified-token cache size; 0 = 1024; at most 1048576 */
} rtlog_auth_opts;

/**
 * rtlog_auth_new() - build a verifier. @o: borrowed for the call (everything is copied).
 * @out: owned, free with rtlog_auth_free().
 * Key rules: HS256 needs >= RTLOG_JWT_MIN_SECRET bytes and refuses anything that looks like
 * a PEM (an RSA/EC key can never become an HMAC secret); RS256 needs an RSA key of >= 2048
 * bits; ES256 needs an EC key on P-256.
 * Errors: RTLOG_E_INVAL (unknown alg, empty or short key, key that does not parse as the
 *         PEM the alg needs, wrong key type/size/curve, a PEM given for HS256; @ei says
 *         which), RTLOG_E_NOMEM.
 */
rtlog_err rtlog_auth_new(const rtlog_auth_opts *o, rtlog_auth **out, rtlog_errinfo *ei);
void rtlog_auth_free(rtlog_auth *a); /* NULL is a no-op */

/* Who a verified token speaks for. The caller owns what rtlog_auth_verify() returns and
 * frees it with rtlog_principal_free() (one allocation holds the struct, arrays, strings). */
typedef struct rtlog_principal {
    char sub[128];    /* `sub` claim ("" if absent); <= 127 bytes, no control characters,
                       * so it is safe to log */
    int64_t exp;      /* Unix seconds; the connection ends at exp + leeway */
    char **subscribe; /* patterns: "workflow-runs/abc", "workflow-runs/" "*",
                       * "dashboard", "*" */
    size_t n_subscribe;
    char **publish;
    size_t n_publish;
} rtlog_principal;

/**
 * rtlog_auth_verify() - verify a compact JWS at time @now (Unix seconds).
 * @token/@len: borrowed; need not be NUL-terminated. @out: a copy the caller owns, free
 * with rtlog_principal_free().
 * Order: length cap (RTLOG_JWT_MAX_TOKEN), cache (SHA-256 of the token; a hit is checked
 * again for exp/nbf at @now), syntax, header `alg` == the configured alg exactly (before
 * any signature work), `crit` refused, libjwt signature check, alg checked again, claims:
 * `exp` integer required and `exp > now - leeway`; `nbf` (integer, optional)
 * `<= now + leeway`; iss/aud per the opts; `sub` optional string <= 127 bytes without
 * control characters; `rtlog` optional object whose optional `subscribe`/`publish` are
 * arrays of valid patterns (see rtlog_principal_can()). No `rtlog` claim = no access.
 * Errors: RTLOG_E_UNAUTH for every failure (bad syntax, wrong alg, bad signature, expired,
 *         not yet valid, wrong iss/aud, missing exp, malformed rtlog claim): one answer so
 *         there is no oracle; @ei->text holds the reason for the server log (never the
 *         token nor any byte taken from it), e.g. "token expired", "bad signature",
 *         "algorithm not allowed", "token too long". RTLOG_E_NOMEM (a 500, not a 401).
 *         RTLOG_E_INVAL only for a NULL @a or @out (a caller bug).
 * Headers kid/jku/x5u/jwk are ignored: nothing is ever read or fetched because of them.
 */
rtlog_err rtlog_auth_verify(rtlog_auth *a, const char *token, size_t len, int64_t now,
                            rtlog_principal **out, rtlog_errinfo *ei);

void rtlog_principal_free(rtlog_principal *p); /* NULL is a no-op */

/**
 * rtlog_principal_can() - does @p grant @stream (canonical name) for subscribing
 * (@publish = 0) or publishing (@publish = 1)? A pattern is an exact name, "<kind>/" "*"
 * (matches "<kind>/<id>" for any non-empty id without '/', never "dashboard"), or "*"
 * (everything). An exact `agents/<id>` subscribe grant also allows publishing (reporting)
 * on that agent stream; wildcard subscribe grants ("agents/" "*", "*") do not.
 * Comparison is byte-exact (ids are case-sensitive). @p or @stream NULL gives 0.
 * Returns 1 or 0.
 */
int rtlog_principal_can(const rtlog_principal *p, int publish, const char *stream);

/* rtlog_principal_grants() - like rtlog_principal_can() but by the patterns alone, without
 * the agent rule: assigning or cancelling an agent's tasks needs a real publish grant
 * (the orchestrator's), never just the agent's own subscribe grant. Returns 1 or 0. */
int rtlog_principal_grants(const rtlog_principal *p, int publish, const char *stream);

/* rtlog_principal_is_agent() - is @p the agent of @stream ("agents/<id>"): does it hold
 * exactly that name (no wildcard) in `subscribe`? Only such a connection is sent the
 * credentials of that agent's open tasks (CONTRACT "Agents"). Returns 1 or 0. */
int rtlog_principal_is_agent(const rtlog_principal *p, const char *stream);

/* Counters for /metrics and tests. */
typedef struct rtlog_auth_stats {
    uint64_t verified;   /* successful rtlog_auth_verify() calls (cache hits included) */
    uint64_t cache_hits; /* of those, answered from the cache without libjwt */
    uint64_t rejected;   /* RTLOG_E_UNAUTH answers */
    size_t cached;       /* entries in the cache now */
} rtlog_auth_stats;

/* rtlog_auth_get_stats() - copy the counters of @a into @out (both non-NULL). */
void rtlog_auth_get_stats(const rtlog_auth *a, rtlog_auth_stats *out);

typedef struct rtlog_mint_opts {
    rtlog_jwt_alg alg; /* HS256 with a secret; RS256/ES256 with a private PEM */
    const void *key;   /* borrowed for the call */
    size_t key_len;
    const char *sub;              /* NULL = "rtlog-cli"; <= 127 bytes, no control chars */
    const char *const *subscribe; /* patterns; borrowed */
    size_t n_subscribe;
    const char *const *publish;
    size_t n_publish;
    int64_t ttl_s;        /* exp = now + ttl_s; must be > 0 */
    const char *issuer;   /* NULL = no iss */
    const char *audience; /* NULL = no aud */
    int64_t now;          /* Unix seconds (iat) */
} rtlog_mint_opts;

/**
 * rtlog_auth_mint() - sign a token with claims sub, iat, exp, [iss], [aud],
 * rtlog: {subscribe: [...], publish: [...]} (header alg + typ "JWT").
 * @out: malloc'd NUL-terminated token, caller frees with free().
 * Errors: RTLOG_E_INVAL (unknown alg, no key, HS256 secret shorter than
 *         RTLOG_JWT_MIN_SECRET, private key that does not parse / is encrypted / does not
 *         fit the alg, ttl <= 0 or overflowing, bad pattern, bad sub), RTLOG_E_NOMEM.
 */
rtlog_err rtlog_auth_mint(const rtlog_mint_opts *o, char **out, rtlog_errinfo *ei);

/**
 * rtlog_auth_secret_load_or_create() - the data directory's HS256 secret: read
 * DIR/jwt-secret, or create it on first use: DIR is made (mkdir -p, new parts mode 0700),
 * 32 random bytes from the OS (RAND_bytes) are written as 64 hex digits and a newline to a
 * temporary file opened O_CREAT|O_EXCL mode 0600, fsync'd, then linked into place so a
 * concurrent reader never sees a partial file (if another process won the race, its secret
 * is read and returned).
 * @out/@len: malloc'd raw secret bytes (not the hex), caller frees with free().
 * @created: out (may be NULL), 1 if made now.
 * Errors: RTLOG_E_INVAL (@dir NULL or empty); RTLOG_E_IO (cannot create/read, file
 *         readable or writable by group/others, content not >= 64 hex digits: @ei says
 *         which and how to fix it), RTLOG_E_NOMEM.
 */
rtlog_err rtlog_auth_secret_load_or_create(const char *dir, uint8_t **out, size_t *len,
                                           int *created, rtlog_errinfo *ei);

/**
 * rtlog_auth_named_secret_load_or_create() - the same for another secret of the data
 * directory, DIR/@name (e.g. "secrets-key", the key that seals agents' credentials).
 * @name: a file name, no '/'. Same format, permissions, errors and ownership as above.
 */
rtlog_err rtlog_auth_named_secret_load_or_create(const char *dir, const char *name, uint8_t **out,
                                                 size_t *len, int *created, rtlog_errinfo *ei);

/**
 * rtlog_auth_key_load() - read the key file given as `--jwt-key FILE` for @alg, for both
 * `rtlog serve` (verify key) and `rtlog token` (signing key).
 * HS256: the file has the jwt-secret format (hex digits, optional trailing whitespace,
 *        >= 64 digits) and must not be accessible by group/others; @out gets raw bytes.
 * RS256/ES256: PEM text, returned as is (max 64 KiB) with a NUL after the @len bytes.
 * @out/@len: malloc'd, caller frees with free().
 * Errors: RTLOG_E_INVAL (NULL path, unknown alg), RTLOG_E_IO (unreadable, too big, bad
 *         permissions or content; @ei says which), RTLOG_E_NOMEM.
 */
rtlog_err rtlog_auth_key_load(const char *path, rtlog_jwt_alg alg, uint8_t **out, size_t *len,
                              rtlog_errinfo *ei);

/* "HS256" | "RS256" | "ES256" -> alg; 0 for anything else (case-sensitive; NULL gives 0). */
rtlog_jwt_alg rtlog_jwt_alg_parse(const char *s);

/* rtlog_jwt_alg_name() - the JWS name of @alg ("HS256", ...); "" for anything else. */
const char *rtlog_jwt_alg_name(rtlog_jwt_alg alg);

#endif
