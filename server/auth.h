/* auth.h - JWT verification, stream access patterns and token minting (server module).
 *
 * libjwt 1.10 decodes; everything it does not check is ours: the algorithm is pinned by
 * configuration (the token's header never chooses), `exp` is required, `nbf`/`iss`/`aud`
 * are checked, and the `rtlog` claim's `subscribe`/`publish` pattern arrays decide access.
 * Verified tokens are cached until they expire so asymmetric verification is paid once.
 * Used by the lws thread (verify) and by `rtlog token` (mint). Not thread-safe: one
 * rtlog_auth per thread.
 * Source: CONTRACT.md "Authentication and authorization (JWT)".
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

typedef struct rtlog_auth_opts {
    rtlog_jwt_alg alg;    /* the only algorithm accepted */
    const void *key;      /* HS256: the secret bytes; RS256/ES256: public key PEM; copied */
    size_t key_len;       /* bytes */
    const char *issuer;   /* NULL = not checked unless the token has iss (then any is ok);
                           * set = token must carry exactly this iss; copied */
    const char *audience; /* NULL = not checked; set = token aud (string or array) must
                           * contain it; copied */
    unsigned leeway_s;    /* clock skew allowed on exp/nbf, seconds; 0 = none */
    size_t cache_entries; /* verified-token cache size; 0 = 1024 */
} rtlog_auth_opts;

/**
 * rtlog_auth_new() - build a verifier. @out: owned, free with rtlog_auth_free().
 * Errors: RTLOG_E_INVAL (empty key, key that does not parse as the PEM the alg needs, or an
 *         RSA/EC key given for HS256 when it looks like a PEM), RTLOG_E_NOMEM.
 */
rtlog_err rtlog_auth_new(const rtlog_auth_opts *o, rtlog_auth **out, rtlog_errinfo *ei);
void rtlog_auth_free(rtlog_auth *a); /* NULL is a no-op */

/* Who a verified token speaks for. Owned by the rtlog_auth cache or by the caller as said. */
typedef struct rtlog_principal {
    char sub[128];     /* `sub` claim ("" if absent); safe to log */
    int64_t exp;       /* Unix seconds; the connection ends at exp + leeway */
    char **subscribe;  /* patterns: "workflow-runs/abc", "workflow-runs/*", "dashboard", "*" */
    size_t n_subscribe;
    char **publish;
    size_t n_publish;
} rtlog_principal;

/**
 * rtlog_auth_verify() - verify a compact JWS at time @now (Unix seconds).
 * @token/@len: borrowed. @out: a copy the caller owns, free with rtlog_principal_free().
 * Errors: RTLOG_E_UNAUTH for every failure (bad syntax, wrong alg, bad signature, expired,
 *         not yet valid, wrong iss/aud, missing exp, malformed rtlog claim): one answer so
 *         there is no oracle; @ei->text holds the reason for the server log (never the
 *         token). RTLOG_E_NOMEM.
 * Headers kid/jku/x5u/jwk are ignored: nothing is ever read or fetched because of them.
 */
rtlog_err rtlog_auth_verify(rtlog_auth *a, const char *token, size_t len, int64_t now,
                            rtlog_principal **out, rtlog_errinfo *ei);

void rtlog_principal_free(rtlog_principal *p); /* NULL is a no-op */

/**
 * rtlog_principal_can() - does @p grant @stream (canonical name) for subscribing
 * (@publish = 0) or publishing (@publish = 1)? A pattern is an exact name, "<kind>/*" (any
 * id of that kind), or "*". An `agents/<id>` subscribe grant also allows publishing
 * (reporting) on that agent stream. Returns 1 or 0.
 */
int rtlog_principal_can(const rtlog_principal *p, int publish, const char *stream);

typedef struct rtlog_mint_opts {
    rtlog_jwt_alg alg;              /* HS256 with a secret; RS256/ES256 with a private PEM */
    const void *key;                /* borrowed */
    size_t key_len;
    const char *sub;                /* NULL = "rtlog-cli" */
    const char *const *subscribe;   /* patterns; borrowed */
    size_t n_subscribe;
    const char *const *publish;
    size_t n_publish;
    int64_t ttl_s;                  /* exp = now + ttl_s; must be > 0 */
    const char *issuer;             /* NULL = no iss */
    const char *audience;           /* NULL = no aud */
    int64_t now;                    /* Unix seconds (iat) */
} rtlog_mint_opts;

/**
 * rtlog_auth_mint() - sign a token. @out: malloc'd NUL-terminated token, caller frees.
 * Errors: RTLOG_E_INVAL (no key, ttl <= 0, bad pattern), RTLOG_E_NOMEM.
 */
rtlog_err rtlog_auth_mint(const rtlog_mint_opts *o, char **out, rtlog_errinfo *ei);

/**
 * rtlog_auth_secret_load_or_create() - the data directory's HS256 secret: read
 * DIR/jwt-secret, or create it (32 random bytes from the OS, file mode 0600) on first use.
 * @out/@len: malloc'd bytes, caller frees. @created: out (may be NULL), 1 if made now.
 * Errors: RTLOG_E_IO (unreadable, wrong permissions: @ei says which), RTLOG_E_NOMEM.
 */
rtlog_err rtlog_auth_secret_load_or_create(const char *dir, uint8_t **out, size_t *len,
                                           int *created, rtlog_errinfo *ei);

/* "HS256" | "RS256" | "ES256" -> alg; 0 for anything else (case-sensitive). */
rtlog_jwt_alg rtlog_jwt_alg_parse(const char *s);

#endif
