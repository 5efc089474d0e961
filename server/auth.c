/* auth.c - JWT verification, the verified-token cache, access patterns, minting and the
 * data directory's HS256 secret.
 *
 * libjwt 1.10.2 lets the token header choose the algorithm and checks no claims, so this
 * file wraps it: the header is base64url-decoded and parsed with jansson first and its
 * `alg` must equal the configured one before libjwt sees the token (so an RSA public key
 * PEM can never be used as an HMAC secret, and `none` never reaches it); jwt_decode always
 * gets a non-NULL key; its result is pinned again; then the payload (the bytes libjwt just
 * verified) is parsed with duplicate keys refused and every claim is checked with its JSON
 * type (exp must be an integer, not a string or a float). Verified tokens are remembered by
 * SHA-256 in a bounded LRU so an RS256/ES256 check (~300 us) is paid once per token; a
 * cached entry is still checked against the clock on every use.
 * Source: CONTRACT.md "Authentication and authorization (JWT)"; handed.md C13-C16;
 * notes/dependencies.md section 4.
 */
#include "auth.h"

#include "rtlog_schema.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#define DIGEST_LEN      32u
#define NIL             UINT32_MAX
#define CACHE_DEFAULT   1024u
#define CACHE_MAX       (1u << 20)
#define KEY_FILE_MAX    (64u * 1024u) /* a PEM key file; anything bigger is not a key */
#define SECRET_FILE_MAX 4096u
#define SECRET_BYTES    32u
#define SECRET_NAME     "jwt-secret"

/* One verified token. Entries live in one array; `prev`/`next` chain the LRU list (head =
 * most recently used), `hnext` chains a hash bucket or, while unused, the free list. */
typedef struct cache_entry {
    uint8_t digest[DIGEST_LEN];
    int64_t exp;
    int64_t nbf;
    bool has_nbf;
    rtlog_principal *p; /* owned */
    uint32_t prev, next, hnext;
} cache_entry;

struct rtlog_auth {
    rtlog_jwt_alg alg;
    jwt_alg_t jwt_alg;
    unsigned char *key; /* HS256: secret bytes; RS/ES: SPKI PEM text, NUL-terminated */
    size_t key_len;     /* bytes passed to jwt_decode (PEM: without the NUL) */
    char *issuer;       /* NULL = not checked */
    char *audience;     /* NULL = not checked */
    int64_t leeway;
    EVP_MD *sha256; /* fetched once: the digest runs on every verify */

    cache_entry *ent;
    uint32_t cap, count;
    uint32_t *bucket;
    uint32_t nbucket; /* power of two */
    uint32_t head, tail, free_list;

    rtlog_auth_stats st;
};

/* ---- small helpers ----------------------------------------------------------------------- */

static rtlog_err reject(rtlog_auth *a, rtlog_errinfo *ei, const char *reason)
{
    /* Reasons are constant strings: nothing taken from the token may reach a log line. */
    if (a)
        a->st.rejected++;
    return rtlog_errinfo_set(ei, RTLOG_E_UNAUTH, -1, NULL, "%s", reason);
}

static rtlog_err inval(rtlog_errinfo *ei, const char *reason)
{
    return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, NULL, "%s", reason);
}

static int64_t sat_sub(int64_t x, int64_t y)
{
    int64_t r;
    return __builtin_sub_overflow(x, y, &r) ? INT64_MIN : r;
}

static int64_t sat_add(int64_t x, int64_t y)
{
    int64_t r;
    return __builtin_add_overflow(x, y, &r) ? INT64_MAX : r;
}

static jwt_alg_t to_jwt_alg(rtlog_jwt_alg alg)
{
    switch (alg) {
    case RTLOG_JWT_HS256:
        return JWT_ALG_HS256;
    case RTLOG_JWT_RS256:
        return JWT_ALG_RS256;
    case RTLOG_JWT_ES256:
        return JWT_ALG_ES256;
    }
    return JWT_ALG_INVAL;
}

rtlog_jwt_alg rtlog_jwt_alg_parse(const char *s)
{
    if (!s)
        return (rtlog_jwt_alg)0;
    if (!strcmp(s, "HS256"))
        return RTLOG_JWT_HS256;
    if (!strcmp(s, "RS256"))
        return RTLOG_JWT_RS256;
    if (!strcmp(s, "ES256"))
        return RTLOG_JWT_ES256;
    return (rtlog_jwt_alg)0;
}

const char *rtlog_jwt_alg_name(rtlog_jwt_alg alg)
{
    switch (alg) {
    case RTLOG_JWT_HS256:
        return "HS256";
    case RTLOG_JWT_RS256:
        return "RS256";
    case RTLOG_JWT_ES256:
        return "ES256";
    }
    return "";
}

/* Strict base64url (RFC 7515 2: no padding, no whitespace) with canonical trailing bits, so
 * one token text has exactly one decoding: ours and libjwt's cannot disagree. */
static int b64url_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* @out must hold n * 3 / 4 + 3 bytes. Returns 0 or -1 (not base64url). */
static int b64url_decode(const char *s, size_t n, unsigned char *out, size_t *out_len)
{
    if (n % 4 == 1)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_val((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1u;
        }
    }
    if (acc != 0) /* leftover bits must be zero (canonical encoding) */
        return -1;
    *out_len = o;
    return 0;
}

static bool has_ctl(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return true;
    }
    return false;
}

static bool sub_valid(const char *s, size_t n)
{
    return n < sizeof(((rtlog_principal *)0)->sub) && !has_ctl(s, n) && !memchr(s, '\0', n);
}

/* ---- patterns ------------------------------------------------------------------------------ */

static const char *const kinds[] = {"workflow-runs", "deployment-jobs", "agents"};

static bool id_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '-';
}

/* The grammar of a grant: "*" | "dashboard" | <kind> "/" "*" | <kind> "/" <id>, id as in
 * CONTRACT "Streams and event ids". Checked when minting and when verifying, so a typo in a
 * grant is a loud failure rather than a grant that silently matches nothing. */
static bool pattern_valid(const char *s, size_t n)
{
    if (n == 1 && s[0] == '*')
        return true;
    if (n == 9 && !memcmp(s, "dashboard", 9))
        return true;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        size_t kl = strlen(kinds[k]);
        if (n < kl + 2 || memcmp(s, kinds[k], kl) != 0 || s[kl] != '/')
            continue;
        const char *id = s + kl + 1;
        size_t il = n - kl - 1;
        if (il == 1 && id[0] == '*')
            return true;
        if (il > RTLOG_ID_MAX)
            return false;
        for (size_t i = 0; i < il; i++)
            if (!id_char((unsigned char)id[i]))
                return false;
        return true;
    }
    return false;
}

static bool pattern_match(const char *pat, const char *stream)
{
    if (!strcmp(pat, "*"))
        return true;
    size_t pl = strlen(pat);
    if (pl >= 2 && pat[pl - 2] == '/' && pat[pl - 1] == '*') {
        /* "<kind>/" "*": same "<kind>/" prefix, then a non-empty id with no further '/'. */
        if (strncmp(stream, pat, pl - 1) != 0)
            return false;
        const char *id = stream + pl - 1;
        return id[0] != '\0' && !strchr(id, '/');
    }
    return !strcmp(pat, stream);
}

int rtlog_principal_grants(const rtlog_principal *p, int publish, const char *stream)
{
    if (!p || !stream)
        return 0;
    char *const *pats = publish ? p->publish : p->subscribe;
    size_t n = publish ? p->n_publish : p->n_subscribe;
    for (size_t i = 0; i < n; i++)
        if (pattern_match(pats[i], stream))
            return 1;
    return 0;
}

int rtlog_principal_is_agent(const rtlog_principal *p, const char *stream)
{
    if (!p || !stream || strncmp(stream, "agents/", 7) != 0)
        return 0;
    for (size_t i = 0; i < p->n_subscribe; i++)
        if (!strchr(p->subscribe[i], '*') && !strcmp(p->subscribe[i], stream))
            return 1;
    return 0;
}

int rtlog_principal_can(const rtlog_principal *p, int publish, const char *stream)
{
    /* An agent's own stream: the exact subscribe grant lets it report there (CONTRACT).
     * Wildcards do not, so a viewer with "*" cannot speak as any agent. */
    return rtlog_principal_grants(p, publish, stream) ||
           (publish && rtlog_principal_is_agent(p, stream));
}

/* ---- principals ---------------------------------------------------------------------------- */

/* One allocation: the struct, then both pointer arrays, then the strings. A principal is
 * handed across to the server and copied out of the cache; one free() ends it. */
static rtlog_principal *principal_make(const char *sub, int64_t exp, const char *const *subs,
                                       size_t ns, const char *const *pubs, size_t np)
{
    size_t total = sizeof(rtlog_principal) + (ns + np) * sizeof(char *);
    for (size_t i = 0; i < ns; i++)
        total += strlen(subs[i]) + 1;
    for (size_t i = 0; i < np; i++)
        total += strlen(pubs[i]) + 1;
    rtlog_principal *p = malloc(total);
    if (!p)
        return NULL;
    memset(p, 0, sizeof *p);
    snprintf(p->sub, sizeof p->sub, "%s", sub ? sub : "");
    p->exp = exp;
    char **arr = (char **)(p + 1);
    char *str = (char *)(arr + ns + np);
    p->subscribe = arr;
    p->n_subscribe = ns;
    p->publish = arr + ns;
    p->n_publish = np;
    for (size_t i = 0; i < ns + np; i++) {
        const char *s = i < ns ? subs[i] : pubs[i - ns];
        size_t l = strlen(s) + 1;
        memcpy(str, s, l);
        arr[i] = str;
        str += l;
    }
    return p;
}

static rtlog_principal *principal_dup(const rtlog_principal *p)
{
    return principal_make(p->sub, p->exp, (const char *const *)p->subscribe, p->n_subscribe,
                          (const char *const *)p->publish, p->n_publish);
}

void rtlog_principal_free(rtlog_principal *p)
{
    free(p);
}

/* ---- cache --------------------------------------------------------------------------------- */

static uint32_t bucket_of(const rtlog_auth *a, const uint8_t *d)
{
    uint32_t h = (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;
    return h & (a->nbucket - 1u);
}

static uint32_t cache_find(const rtlog_auth *a, const uint8_t *d)
{
    for (uint32_t i = a->bucket[bucket_of(a, d)]; i != NIL; i = a->ent[i].hnext)
        if (CRYPTO_memcmp(a->ent[i].digest, d, DIGEST_LEN) == 0)
            return i;
    return NIL;
}

static void lru_unlink(rtlog_auth *a, uint32_t i)
{
    cache_entry *e = &a->ent[i];
    if (e->prev != NIL)
        a->ent[e->prev].next = e->next;
    else
        a->head = e->next;
    if (e->next != NIL)
        a->ent[e->next].prev = e->prev;
    else
        a->tail = e->prev;
    e->prev = e->next = NIL;
}

static void lru_push_front(rtlog_auth *a, uint32_t i)
{
    cache_entry *e = &a->ent[i];
    e->prev = NIL;
    e->next = a->head;
    if (a->head != NIL)
        a->ent[a->head].prev = i;
    a->head = i;
    if (a->tail == NIL)
        a->tail = i;
}

static void cache_remove(rtlog_auth *a, uint32_t i)
{
    cache_entry *e = &a->ent[i];
    uint32_t *link = &a->bucket[bucket_of(a, e->digest)];
    while (*link != i)
        link = &a->ent[*link].hnext;
    *link = e->hnext;
    lru_unlink(a, i);
    free(e->p);
    e->p = NULL;
    e->hnext = a->free_list;
    a->free_list = i;
    a->count--;
}

/* Takes ownership of @p. The least recently used entry makes room when full. */
static void cache_insert(rtlog_auth *a, const uint8_t *d, rtlog_principal *p, bool has_nbf,
                         int64_t nbf)
{
    if (a->free_list == NIL)
        cache_remove(a, a->tail);
    uint32_t i = a->free_list;
    cache_entry *e = &a->ent[i];
    a->free_list = e->hnext;
    memcpy(e->digest, d, DIGEST_LEN);
    e->p = p;
    e->exp = p->exp;
    e->has_nbf = has_nbf;
    e->nbf = nbf;
    uint32_t b = bucket_of(a, d);
    e->hnext = a->bucket[b];
    a->bucket[b] = i;
    lru_push_front(a, i);
    a->count++;
}

/* The clock rules, shared by a fresh verification and a cache hit. NULL when ok. */
static const char *time_check(const rtlog_auth *a, int64_t exp, bool has_nbf, int64_t nbf,
                              int64_t now)
{
    if (exp <= sat_sub(now, a->leeway))
        return "token expired";
    if (has_nbf && nbf > sat_add(now, a->leeway))
        return "token not yet valid";
    return NULL;
}

void rtlog_auth_get_stats(const rtlog_auth *a, rtlog_auth_stats *out)
{
    *out = a->st;
    out->cached = a->count;
}

/* ---- keys ---------------------------------------------------------------------------------- */

/* Never prompt on a terminal for a passphrase (OpenSSL's default callback would). */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* Does @pkey fit @alg? RS256: RSA (not RSA-PSS) >= 2048 bits. ES256: EC on P-256 (libjwt
 * sizes the raw R||S signature from the key's curve, so a P-384 key would change what
 * "ES256" means). */
static rtlog_err key_fits(rtlog_jwt_alg alg, EVP_PKEY *pkey, rtlog_errinfo *ei)
{
    if (alg == RTLOG_JWT_RS256) {
        if (!EVP_PKEY_is_a(pkey, "RSA"))
            return inval(ei, "RS256 needs an RSA key");
        if (EVP_PKEY_get_bits(pkey) < 2048)
            return inval(ei, "RS256 needs an RSA key of at least 2048 bits");
        return RTLOG_OK;
    }
    if (!EVP_PKEY_is_a(pkey, "EC"))
        return inval(ei, "ES256 needs an EC key on P-256");
    char group[64];
    size_t gl = 0;
    if (EVP_PKEY_get_group_name(pkey, group, sizeof group, &gl) != 1 ||
        (strcmp(group, "prime256v1") != 0 && strcasecmp(group, "P-256") != 0))
        return inval(ei, "ES256 needs an EC key on P-256");
    return RTLOG_OK;
}

static EVP_PKEY *pem_read(const void *pem, size_t len, bool want_private)
{
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    if (!b)
        return NULL;
    EVP_PKEY *k = want_private ? PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL)
                               : PEM_read_bio_PUBKEY(b, NULL, no_passphrase, NULL);
    BIO_free(b);
    /* lws shares this thread's OpenSSL error queue: leave nothing behind for it. */
    ERR_clear_error();
    return k;
}

/* The verify key for RS/ES as canonical SubjectPublicKeyInfo PEM, the one form libjwt's
 * PEM_read_bio_PUBKEY reads. Accepts a public key PEM or a private key PEM (public half). */
static rtlog_err public_pem(rtlog_jwt_alg alg, const void *key, size_t len, unsigned char **out,
                            size_t *out_len, rtlog_errinfo *ei)
{
    if (len > KEY_FILE_MAX)
        return inval(ei, "key is too large to be a PEM key");
    EVP_PKEY *pkey = pem_read(key, len, false);
    if (!pkey)
        pkey = pem_read(key, len, true);
    if (!pkey)
        return inval(ei, "key is not a PEM public key (BEGIN PUBLIC KEY) or private key");
    rtlog_err rc = key_fits(alg, pkey, ei);
    BIO *b = NULL;
    if (rc == RTLOG_OK) {
        b = BIO_new(BIO_s_mem());
        if (!b || PEM_write_bio_PUBKEY(b, pkey) != 1) {
            rc = rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "cannot encode public key");
        } else {
            char *data = NULL;
            long dl = BIO_get_mem_data(b, &data);
            *out = malloc((size_t)dl + 1);
            if (!*out) {
                rc = rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory");
            } else {
                memcpy(*out, data, (size_t)dl);
                (*out)[dl] = '\0';
                *out_len = (size_t)dl;
            }
        }
    }
    BIO_free(b);
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    return rc;
}

static bool looks_like_pem(const void *key, size_t len)
{
    return memmem(key, len, "-----BEGIN", 10) != NULL;
}

/* ---- verifier ------------------------------------------------------------------------------ */

rtlog_err rtlog_auth_new(const rtlog_auth_opts *o, rtlog_auth **out, rtlog_errinfo *ei)
{
    if (!o || !out)
        return inval(ei, "no options");
    *out = NULL;
    jwt_alg_t jalg = to_jwt_alg(o->alg);
    if (jalg == JWT_ALG_INVAL)
        return inval(ei, "unknown JWT algorithm (HS256, RS256 or ES256)");
    if (!o->key || o->key_len == 0)
        return inval(ei, "no JWT key");
    size_t cap = o->cache_entries ? o->cache_entries : CACHE_DEFAULT;
    if (cap > CACHE_MAX)
        return inval(ei, "cache_entries is larger than 1048576");

    rtlog_auth *a = calloc(1, sizeof *a);
    if (!a)
        return rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory");
    a->alg = o->alg;
    a->jwt_alg = jalg;
    a->leeway = (int64_t)o->leeway_s;
    a->head = a->tail = NIL;

    rtlog_err rc;
    if (o->alg == RTLOG_JWT_HS256) {
        if (o->key_len < RTLOG_JWT_MIN_SECRET) {
            rc = inval(ei, "HS256 secret is shorter than 32 bytes");
            goto fail;
        }
        if (looks_like_pem(o->key, o->key_len)) {
            /* An RSA/EC key must never become an HMAC secret (handed.md C13). */
            rc = inval(ei, "HS256 needs a secret, not a PEM key");
            goto fail;
        }
        if (o->key_len > INT_MAX) {
            rc = inval(ei, "HS256 secret is too large");
            goto fail;
        }
        a->key = malloc(o->key_len);
        if (!a->key) {
            rc = rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory");
            goto fail;
        }
        memcpy(a->key, o->key, o->key_len);
        a->key_len = o->key_len;
    } else {
        rc = public_pem(o->alg, o->key, o->key_len, &a->key, &a->key_len, ei);
        if (rc != RTLOG_OK)
            goto fail;
    }

    if ((o->issuer && !(a->issuer = strdup(o->issuer))) ||
        (o->audience && !(a->audience = strdup(o->audience))))
        goto nomem;
    a->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!a->sha256)
        goto nomem;

    a->cap = (uint32_t)cap;
    a->nbucket = 1;
    while (a->nbucket < a->cap * 2u)
        a->nbucket <<= 1;
    a->ent = calloc(a->cap, sizeof *a->ent);
    a->bucket = malloc(a->nbucket * sizeof *a->bucket);
    if (!a->ent || !a->bucket)
        goto nomem;
    for (uint32_t i = 0; i < a->nbucket; i++)
        a->bucket[i] = NIL;
    for (uint32_t i = 0; i < a->cap; i++)
        a->ent[i].hnext = i + 1 < a->cap ? i + 1 : NIL;
    a->free_list = 0;
    *out = a;
    return RTLOG_OK;

nomem:
    rc = rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory");
fail:
    rtlog_auth_free(a);
    return rc;
}

void rtlog_auth_free(rtlog_auth *a)
{
    if (!a)
        return;
    if (a->ent)
        for (uint32_t i = 0; i < a->cap; i++)
            free(a->ent[i].p);
    free(a->ent);
    free(a->bucket);
    if (a->key)
        OPENSSL_clear_free(a->key, a->key_len);
    free(a->issuer);
    free(a->audience);
    EVP_MD_free(a->sha256);
    free(a);
}

/* The JOSE header, parsed by us before libjwt: the configured alg exactly, no `crit`
 * (RFC 7515 4.1.11: we understand no extensions), typ absent or "JWT" (libjwt refuses any
 * other typ; saying so here gives the log a clear reason). kid/jku/x5u/jwk are ignored. */
static const char *header_check(const rtlog_auth *a, const unsigned char *h, size_t hl)
{
    json_error_t jerr;
    json_t *hdr = json_loadb((const char *)h, hl, JSON_REJECT_DUPLICATES, &jerr);
    const char *why = NULL;
    if (!hdr || !json_is_object(hdr)) {
        why = "malformed token header";
        goto out;
    }
    json_t *alg = json_object_get(hdr, "alg");
    const char *want = rtlog_jwt_alg_name(a->alg);
    if (!json_is_string(alg) || json_string_length(alg) != strlen(want) ||
        memcmp(json_string_value(alg), want, strlen(want)) != 0) {
        why = "algorithm not allowed";
        goto out;
    }
    if (json_object_get(hdr, "crit")) {
        why = "critical header extensions not supported";
        goto out;
    }
    json_t *typ = json_object_get(hdr, "typ");
    if (typ && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT") != 0))
        why = "token type is not JWT";
out:
    json_decref(hdr);
    return why;
}

static const char *patterns_get(json_t *rt, const char *name, json_t **arr)
{
    *arr = json_object_get(rt, name);
    if (!*arr)
        return NULL;
    if (!json_is_array(*arr))
        return "malformed rtlog claim";
    size_t i;
    json_t *v;
    json_array_foreach(*arr, i, v)
    {
        if (!json_is_string(v) || !pattern_valid(json_string_value(v), json_string_length(v)))
            return "malformed rtlog claim";
    }
    return NULL;
}

static const char *aud_check(const rtlog_auth *a, json_t *aud)
{
    if (!a->audience)
        return NULL;
    size_t wl = strlen(a->audience);
    if (json_is_string(aud))
        return json_string_length(aud) == wl && !memcmp(json_string_value(aud), a->audience, wl)
                   ? NULL
                   : "wrong audience";
    if (!json_is_array(aud))
        return "wrong audience";
    size_t i;
    json_t *v;
    bool found = false;
    json_array_foreach(aud, i, v)
    {
        if (!json_is_string(v))
            return "malformed aud claim";
        if (json_string_length(v) == wl && !memcmp(json_string_value(v), a->audience, wl))
            found = true;
    }
    return found ? NULL : "wrong audience";
}

/* Every claim rule. On success *@out is a new principal and *@has_nbf and *@nbf are set. */
static rtlog_err claims_check(rtlog_auth *a, json_t *c, int64_t now, rtlog_principal **out,
                              bool *has_nbf, int64_t *nbf, rtlog_errinfo *ei)
{
    json_t *exp = json_object_get(c, "exp");
    if (!exp)
        return reject(a, ei, "token has no exp");
    if (!json_is_integer(exp)) /* "9999999999", 1.7e9, true, null, [] */
        return reject(a, ei, "exp is not an integer");
    json_t *jnbf = json_object_get(c, "nbf");
    if (jnbf && !json_is_integer(jnbf))
        return reject(a, ei, "nbf is not an integer");
    *has_nbf = jnbf != NULL;
    *nbf = jnbf ? (int64_t)json_integer_value(jnbf) : 0;
    const char *why = time_check(a, (int64_t)json_integer_value(exp), *has_nbf, *nbf, now);
    if (why)
        return reject(a, ei, why);

    json_t *iss = json_object_get(c, "iss");
    if (iss && !json_is_string(iss))
        return reject(a, ei, "iss is not a string");
    if (a->issuer && (!iss || json_string_length(iss) != strlen(a->issuer) ||
                      memcmp(json_string_value(iss), a->issuer, strlen(a->issuer)) != 0))
        return reject(a, ei, "wrong issuer");
    if ((why = aud_check(a, json_object_get(c, "aud"))))
        return reject(a, ei, why);

    json_t *sub = json_object_get(c, "sub");
    if (sub &&
        (!json_is_string(sub) || !sub_valid(json_string_value(sub), json_string_length(sub))))
        return reject(a, ei, "sub is not a short printable string");

    json_t *rt = json_object_get(c, "rtlog");
    json_t *subs = NULL, *pubs = NULL;
    if (rt) {
        if (!json_is_object(rt))
            return reject(a, ei, "malformed rtlog claim");
        if ((why = patterns_get(rt, "subscribe", &subs)) ||
            (why = patterns_get(rt, "publish", &pubs)))
            return reject(a, ei, why);
    }
    size_t ns = subs ? json_array_size(subs) : 0, np = pubs ? json_array_size(pubs) : 0;
    const char **tmp = malloc((ns + np + 1) * sizeof *tmp);
    if (!tmp)
        return rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory");
    for (size_t i = 0; i < ns; i++)
        tmp[i] = json_string_value(json_array_get(subs, i));
    for (size_t i = 0; i < np; i++)
        tmp[ns + i] = json_string_value(json_array_get(pubs, i));
    *out = principal_make(sub ? json_string_value(sub) : "", (int64_t)json_integer_value(exp), tmp,
                          ns, tmp + ns, np);
    free(tmp);
    if (!*out)
        return rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory");
    return RTLOG_OK;
}

rtlog_err rtlog_auth_verify(rtlog_auth *a, const char *token, size_t len, int64_t now,
                            rtlog_principal **out, rtlog_errinfo *ei)
{
    if (!a || !out)
        return inval(ei, "no verifier");
    *out = NULL;
    if (!token || len == 0)
        return reject(a, ei, "no token");
    if (len > RTLOG_JWT_MAX_TOKEN)
        return reject(a, ei, "token too long");

    uint8_t digest[DIGEST_LEN];
    if (EVP_Digest(token, len, digest, NULL, a->sha256, NULL) != 1) {
        ERR_clear_error();
        return rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "SHA-256 failed");
    }
    uint32_t hit = cache_find(a, digest);
    if (hit != NIL) {
        cache_entry *e = &a->ent[hit];
        const char *why = time_check(a, e->exp, e->has_nbf, e->nbf, now);
        if (why) {
            if (e->exp <= sat_sub(now, a->leeway)) /* expired for good: forget it */
                cache_remove(a, hit);
            return reject(a, ei, why);
        }
        if (!(*out = principal_dup(e->p)))
            return rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory");
        lru_unlink(a, hit);
        lru_push_front(a, hit);
        a->st.cache_hits++;
        a->st.verified++;
        return RTLOG_OK;
    }

    /* Syntax: exactly three non-empty base64url segments. libjwt needs a C string; the
     * borrowed bytes need not be one (and must not hide a NUL). */
    char tok[RTLOG_JWT_MAX_TOKEN + 1];
    memcpy(tok, token, len);
    tok[len] = '\0';
    const char *d1 = memchr(tok, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
    if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)))
        return reject(a, ei, "malformed token");
    size_t hl = (size_t)(d1 - tok), pl = (size_t)(d2 - d1 - 1), sl = len - (size_t)(d2 + 1 - tok);
    if (hl == 0 || pl == 0)
        return reject(a, ei, "malformed token");
    if (sl == 0)
        return reject(a, ei, "token has no signature");
    for (size_t i = 0; i < len; i++)
        if (tok[i] != '.' && b64url_val((unsigned char)tok[i]) < 0)
            return reject(a, ei, "malformed token");

    unsigned char json[RTLOG_JWT_MAX_TOKEN];
    size_t jl;
    if (b64url_decode(tok, hl, json, &jl) != 0)
        return reject(a, ei, "malformed token header");
    const char *why = header_check(a, json, jl);
    if (why)
        return reject(a, ei, why);

    /* The payload bytes are the ones the signature covers; parse them ourselves so each
     * claim keeps its JSON type and duplicate claims are refused, not silently merged.
     * Parsed before libjwt (which would report a bad payload as a bad signature), but not
     * one claim is looked at until the signature has been checked. */
    if (b64url_decode(d1 + 1, pl, json, &jl) != 0)
        return reject(a, ei, "malformed token payload");
    json_error_t jerr;
    json_t *claims = json_loadb((const char *)json, jl, JSON_REJECT_DUPLICATES, &jerr);
    if (!claims || !json_is_object(claims)) {
        json_decref(claims);
        return reject(a, ei, "malformed token payload");
    }

    /* Only now does libjwt see the token, always with our key (never NULL: with NULL it
     * accepts anything). */
    jwt_t *j = NULL;
    int jrc = jwt_decode(&j, tok, a->key, (int)a->key_len);
    ERR_clear_error();
    jwt_alg_t got = j ? jwt_get_alg(j) : JWT_ALG_INVAL;
    jwt_free(j);
    if (jrc == ENOMEM) {
        json_decref(claims);
        return rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory");
    }
    if (jrc != 0 || got != a->jwt_alg) {
        json_decref(claims);
        return reject(a, ei, jrc != 0 ? "bad signature" : "algorithm not allowed");
    }

    rtlog_principal *p = NULL;
    bool has_nbf = false;
    int64_t nbf = 0;
    rtlog_err rc = claims_check(a, claims, now, &p, &has_nbf, &nbf, ei);
    json_decref(claims);
    if (rc != RTLOG_OK)
        return rc;
    if (!(*out = principal_dup(p))) {
        free(p);
        return rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory");
    }
    cache_insert(a, digest, p, has_nbf, nbf);
    a->st.verified++;
    return RTLOG_OK;
}

/* ---- minting ------------------------------------------------------------------------------- */

static rtlog_err put_patterns(json_t *obj, const char *name, const char *const *pats, size_t n,
                              rtlog_errinfo *ei)
{
    json_t *arr = json_array();
    if (!arr || json_object_set_new(obj, name, arr) != 0)
        return rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (!pats || !pats[i] || !pattern_valid(pats[i], strlen(pats[i])))
            return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, NULL,
                                     "bad %s pattern: want \"*\", \"dashboard\", "
                                     "\"<kind>/*\" or \"<kind>/<id>\"",
                                     name);
        if (json_array_append_new(arr, json_string(pats[i])) != 0)
            return rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory");
    }
    return RTLOG_OK;
}

static rtlog_err put_str(json_t *obj, const char *name, const char *s, rtlog_errinfo *ei)
{
    json_t *v = json_string(s);
    if (!v) /* jansson refuses invalid UTF-8 */
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, NULL, "%s is not valid UTF-8", name);
    if (json_object_set_new(obj, name, v) != 0)
        return rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory");
    return RTLOG_OK;
}

static rtlog_err mint_key_check(const rtlog_mint_opts *o, rtlog_errinfo *ei)
{
    if (!o->key || o->key_len == 0)
        return inval(ei, "no signing key");
    if (o->key_len > INT_MAX)
        return inval(ei, "signing key is too large");
    if (o->alg == RTLOG_JWT_HS256) {
        if (o->key_len < RTLOG_JWT_MIN_SECRET)
            return inval(ei, "HS256 secret is shorter than 32 bytes");
        if (looks_like_pem(o->key, o->key_len))
            return inval(ei, "HS256 needs a secret, not a PEM key");
        return RTLOG_OK;
    }
    if (o->key_len > KEY_FILE_MAX)
        return inval(ei, "key is too large to be a PEM key");
    EVP_PKEY *pkey = pem_read(o->key, o->key_len, true);
    if (!pkey)
        return inval(ei, "signing key is not an unencrypted PEM private key");
    rtlog_err rc = key_fits(o->alg, pkey, ei);
    EVP_PKEY_free(pkey);
    return rc;
}

rtlog_err rtlog_auth_mint(const rtlog_mint_opts *o, char **out, rtlog_errinfo *ei)
{
    if (!o || !out)
        return inval(ei, "no options");
    *out = NULL;
    jwt_alg_t jalg = to_jwt_alg(o->alg);
    if (jalg == JWT_ALG_INVAL)
        return inval(ei, "unknown JWT algorithm (HS256, RS256 or ES256)");
    rtlog_err rc = mint_key_check(o, ei);
    if (rc != RTLOG_OK)
        return rc;
    int64_t exp;
    if (o->ttl_s <= 0 || __builtin_add_overflow(o->now, o->ttl_s, &exp))
        return inval(ei, "ttl must be a positive number of seconds");
    const char *sub = o->sub ? o->sub : "rtlog-cli";
    if (!sub_valid(sub, strlen(sub)))
        return inval(ei, "sub must be at most 127 bytes without control characters");

    json_t *claims = json_object(), *rt = json_object();
    char *text = NULL;
    jwt_t *j = NULL;
    if (!claims || !rt || json_object_set_new(claims, "rtlog", rt) != 0) {
        if (!claims)
            json_decref(rt);
        rc = rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory");
        goto done;
    }
    /* Built with jansson (json_int_t is 64-bit) rather than jwt_add_grant_int (long). */
    if ((rc = put_str(claims, "sub", sub, ei)) ||
        json_object_set_new(claims, "iat", json_integer((json_int_t)o->now)) ||
        json_object_set_new(claims, "exp", json_integer((json_int_t)exp)) ||
        (o->issuer && (rc = put_str(claims, "iss", o->issuer, ei))) ||
        (o->audience && (rc = put_str(claims, "aud", o->audience, ei))) ||
        (rc = put_patterns(rt, "subscribe", o->subscribe, o->n_subscribe, ei)) ||
        (rc = put_patterns(rt, "publish", o->publish, o->n_publish, ei))) {
        if (rc == RTLOG_OK)
            rc = rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory");
        goto done;
    }
    if (!(text = json_dumps(claims, JSON_COMPACT)) || jwt_new(&j) != 0 ||
        jwt_add_grants_json(j, text) != 0) {
        rc = rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory");
        goto done;
    }
    if (jwt_set_alg(j, jalg, o->key, (int)o->key_len) != 0) {
        rc = inval(ei, "libjwt refused the key");
        goto done;
    }
    if (!(*out = jwt_encode_str(j))) {
        rc = errno == ENOMEM ? rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory")
                             : inval(ei, "libjwt could not sign with this key");
        goto done;
    }
    rc = RTLOG_OK;
done:
    ERR_clear_error();
    jwt_free(j);
    free(text);
    json_decref(claims);
    return rc;
}

/* ---- key and secret files ------------------------------------------------------------------ */

static rtlog_err io_err(rtlog_errinfo *ei, const char *what, const char *path)
{
    return rtlog_errinfo_set(ei, RTLOG_E_IO, -1, NULL, "%s %s: %s", what, path, strerror(errno));
}

/* Reads a whole small regular file. @secret: refuse group/other access (ssh's rule). */
static rtlog_err read_small(const char *path, size_t max, bool secret, unsigned char **out,
                            size_t *out_len, rtlog_errinfo *ei)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return io_err(ei, "cannot open", path);
    struct stat st;
    rtlog_err rc = RTLOG_OK;
    unsigned char *buf = NULL;
    if (fstat(fd, &st) != 0) {
        rc = io_err(ei, "cannot stat", path);
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = rtlog_errinfo_set(ei, RTLOG_E_IO, -1, NULL, "%s is not a regular file", path);
        goto done;
    }
    if (secret && (st.st_mode & 077)) {
        rc = rtlog_errinfo_set(ei, RTLOG_E_IO, -1, NULL,
                               "%s is accessible by group/others (mode %04o); refusing to use "
                               "it: run chmod 600 %s",
                               path, (unsigned)(st.st_mode & 07777), path);
        goto done;
    }
    if ((uint64_t)st.st_size > max) {
        rc = rtlog_errinfo_set(ei, RTLOG_E_IO, -1, NULL, "%s is larger than %zu bytes", path, max);
        goto done;
    }
    buf = malloc(max + 1);
    if (!buf) {
        rc = rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory");
        goto done;
    }
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, max + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = io_err(ei, "cannot read", path);
            goto done;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max) {
            rc = rtlog_errinfo_set(ei, RTLOG_E_IO, -1, NULL, "%s is larger than %zu bytes", path,
                                   max);
            goto done;
        }
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    buf = NULL;
done:
    if (buf)
        OPENSSL_clear_free(buf, max + 1);
    close(fd);
    return rc;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Hex text (trailing whitespace allowed, >= 64 digits) -> raw bytes in place. */
static rtlog_err hex_secret(const char *path, unsigned char *buf, size_t *len, rtlog_errinfo *ei)
{
    size_t n = *len;
    while (n > 0 &&
           (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        n--;
    bool ok = n % 2 == 0 && n >= 2 * RTLOG_JWT_MIN_SECRET;
    for (size_t i = 0; ok && i < n; i++)
        ok = hexval(buf[i]) >= 0;
    if (!ok)
        return rtlog_errinfo_set(ei, RTLOG_E_IO, -1, NULL,
                                 "%s must hold at least 64 hex digits (an HS256 secret)", path);
    for (size_t i = 0; i < n / 2; i++)
        buf[i] = (unsigned char)(hexval(buf[2 * i]) << 4 | hexval(buf[2 * i + 1]));
    OPENSSL_cleanse(buf + n / 2, *len - n / 2);
    *len = n / 2;
    return RTLOG_OK;
}

static rtlog_err read_secret(const char *path, uint8_t **out, size_t *len, rtlog_errinfo *ei)
{
    unsigned char *buf = NULL;
    size_t n = 0;
    rtlog_err rc = read_small(path, SECRET_FILE_MAX, true, &buf, &n, ei);
    if (rc != RTLOG_OK)
        return rc;
    if ((rc = hex_secret(path, buf, &n, ei)) != RTLOG_OK) {
        OPENSSL_clear_free(buf, SECRET_FILE_MAX + 1);
        return rc;
    }
    *out = buf;
    *len = n;
    return RTLOG_OK;
}

rtlog_err rtlog_auth_key_load(const char *path, rtlog_jwt_alg alg, uint8_t **out, size_t *len,
                              rtlog_errinfo *ei)
{
    if (!path || !out || !len || to_jwt_alg(alg) == JWT_ALG_INVAL)
        return inval(ei, "no key file or unknown algorithm");
    *out = NULL;
    *len = 0;
    if (alg == RTLOG_JWT_HS256)
        return read_secret(path, out, len, ei);
    return read_small(path, KEY_FILE_MAX, false, out, len, ei);
}

/* mkdir -p with mode 0700 for each part made here; existing parts are left as they are. */
static rtlog_err mkdir_p(const char *dir, rtlog_errinfo *ei)
{
    char *p = strdup(dir);
    if (!p)
        return rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory");
    rtlog_err rc = RTLOG_OK;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0700) == 0) {
            /* A umask may have taken our own write bit; the secret goes in here next. */
            if (chmod(p, 0700) != 0) {
                rc = io_err(ei, "cannot chmod directory", p);
                break;
            }
        } else if (errno != EEXIST) {
            rc = io_err(ei, "cannot create directory", p);
            break;
        }
        *s = c;
        if (c == '\0')
            break;
    }
    struct stat st;
    if (rc == RTLOG_OK && (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)))
        rc = rtlog_errinfo_set(ei, RTLOG_E_IO, -1, NULL, "%s is not a directory", dir);
    free(p);
    return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes a fresh secret under a temporary name, then link()s it into place: link fails if
 * the name exists, so two first starts never overwrite each other's secret and a reader
 * never sees a half-written file. 1 = made, 0 = someone else's is there, -1 = error. */
static int secret_create(const char *dir, const char *name, const char *path,
                         uint8_t raw[SECRET_BYTES], rtlog_errinfo *ei)
{
    uint8_t salt[8];
    if (RAND_bytes(raw, SECRET_BYTES) != 1 || RAND_bytes(salt, sizeof salt) != 1) {
        ERR_clear_error();
        rtlog_errinfo_set(ei, RTLOG_E_IO, -1, NULL, "no random bytes from the OS");
        return -1;
    }
    char hex[2 * SECRET_BYTES + 2];
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < SECRET_BYTES; i++) {
        hex[2 * i] = digits[raw[i] >> 4];
        hex[2 * i + 1] = digits[raw[i] & 15];
    }
    hex[2 * SECRET_BYTES] = '\n';
    hex[2 * SECRET_BYTES + 1] = '\0';

    char tmp[PATH_MAX];
    int n =
        snprintf(tmp, sizeof tmp, "%s/.%s.%02x%02x%02x%02x%02x%02x%02x%02x.tmp", dir, name,
                 salt[0], salt[1], salt[2], salt[3], salt[4], salt[5], salt[6], salt[7]);
    int ret = -1;
    if (n < 0 || (size_t)n >= sizeof tmp) {
        rtlog_errinfo_set(ei, RTLOG_E_IO, -1, NULL, "data directory path is too long");
        goto out;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        io_err(ei, "cannot create", tmp);
        goto out;
    }
    /* A umask could have removed our own read bit: say 0600 explicitly. */
    if (fchmod(fd, 0600) != 0 || write_all(fd, hex, 2 * SECRET_BYTES + 1) != 0 || fsync(fd) != 0) {
        io_err(ei, "cannot write", tmp);
        close(fd);
        unlink(tmp);
        goto out;
    }
    close(fd);
    int lrc = link(tmp, path);
    int lerr = errno;
    unlink(tmp);
    if (lrc != 0 && lerr == EEXIST) {
        ret = 0;
        goto out;
    }
    if (lrc != 0) {
        errno = lerr;
        io_err(ei, "cannot create", path);
        goto out;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) { /* make the new name durable too */
        (void)fsync(dfd);
        close(dfd);
    }
    ret = 1;
out:
    OPENSSL_cleanse(hex, sizeof hex);
    return ret;
}

rtlog_err rtlog_auth_secret_load_or_create(const char *dir, uint8_t **out, size_t *len,
                                           int *created, rtlog_errinfo *ei)
{
    return rtlog_auth_named_secret_load_or_create(dir, SECRET_NAME, out, len, created, ei);
}

rtlog_err rtlog_auth_named_secret_load_or_create(const char *dir, const char *name, uint8_t **out,
                                                 size_t *len, int *created, rtlog_errinfo *ei)
{
    if (!dir || !*dir || !name || !*name || strchr(name, '/') || !out || !len)
        return inval(ei, "no data directory");
    *out = NULL;
    *len = 0;
    if (created)
        *created = 0;
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path)
        return rtlog_errinfo_set(ei, RTLOG_E_IO, -1, NULL, "data directory path is too long");
    rtlog_err rc = mkdir_p(dir, ei);
    if (rc != RTLOG_OK)
        return rc;

    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT) {
        uint8_t raw[SECRET_BYTES];
        int made = secret_create(dir, name, path, raw, ei);
        if (made == 1) {
            *out = malloc(SECRET_BYTES);
            if (!*out) {
                OPENSSL_cleanse(raw, sizeof raw);
                return rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory");
            }
            memcpy(*out, raw, SECRET_BYTES);
            OPENSSL_cleanse(raw, sizeof raw);
            *len = SECRET_BYTES;
            if (created)
                *created = 1;
            return RTLOG_OK;
        }
        OPENSSL_cleanse(raw, sizeof raw);
        if (made < 0)
            return RTLOG_E_IO;
        /* made == 0: another process created it first; read theirs. */
    }
    return read_secret(path, out, len, ei);
}
