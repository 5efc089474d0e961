/* test_auth.c - rtlog_auth_verify/mint/principal_can against hand-built tokens.
 *
 * Attack tokens are assembled here byte by byte (base64url header and payload, signatures
 * computed with OpenSSL EVP: HMAC, RSA PKCS#1 v1.5, ECDSA raw R||S) so the test does not
 * trust libjwt to produce them. Keys (RSA-2048, EC P-256 and a few wrong ones) are made
 * at start in memory. Every rejection must be RTLOG_E_UNAUTH with a reason text that holds
 * no segment of the token. Source: CONTRACT.md "Authentication and authorization (JWT)",
 * handed.md C13 (alg/key confusion), C14 (exp/nbf), C15 (no token in messages), C16.
 */
#include "auth.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jwt.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#define NOW    ((int64_t)1700000000)
#define SECRET "0123456789abcdef0123456789abcdef" /* 32 bytes */

static struct {
    EVP_PKEY *rsa, *rsa_other, *rsa_small, *ec, *ec_other, *ec384;
    char *rsa_pub, *rsa_priv, *rsa_other_pub, *rsa_small_pub;
    char *ec_pub, *ec_priv, *ec384_pub, *ec384_priv, *rsa_priv_enc;
} K;

/* ---- token assembly -------------------------------------------------------------------- */

static char *b64url(const void *data, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = data;
    char *out = malloc(n * 4 / 3 + 4);
    assert_non_null(out);
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
    }
    out[o] = '\0';
    return out;
}

/* "b64(header).b64(payload)" */
static char *signing_input(const char *hdr, const char *payload)
{
    char *h = b64url(hdr, strlen(hdr)), *p = b64url(payload, strlen(payload));
    size_t n = strlen(h) + strlen(p) + 2;
    char *s = malloc(n);
    assert_non_null(s);
    snprintf(s, n, "%s.%s", h, p);
    free(h);
    free(p);
    return s;
}

static char *join(const char *si, const char *sig)
{
    size_t n = strlen(si) + strlen(sig) + 2;
    char *t = malloc(n);
    assert_non_null(t);
    snprintf(t, n, "%s.%s", si, sig);
    return t;
}

/* Token with a literal signature segment ("" gives "h.p."). */
static char *tok_raw(const char *hdr, const char *payload, const char *sig)
{
    char *si = signing_input(hdr, payload);
    char *t = join(si, sig);
    free(si);
    return t;
}

static char *tok_hmac_md(const char *hdr, const char *payload, const void *key, size_t kl,
                         const char *md)
{
    char *si = signing_input(hdr, payload);
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t ml = 0;
    /* An empty HMAC key is legal (and is attack C13 c); pass a valid pointer for it. */
    assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, md, NULL, kl ? key : "", kl,
                              (const unsigned char *)si, strlen(si), mac, sizeof mac, &ml));
    char *sig = b64url(mac, ml);
    char *t = join(si, sig);
    free(si);
    free(sig);
    return t;
}

static char *tok_hs(const char *hdr, const char *payload, const void *key, size_t kl)
{
    return tok_hmac_md(hdr, payload, key, kl, "SHA256");
}

/* RS* (PKCS#1 v1.5) or ES* (raw R||S) with @md, chosen from the key type. */
static char *tok_pk_md(const char *hdr, const char *payload, EVP_PKEY *k, const EVP_MD *md)
{
    char *si = signing_input(hdr, payload);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_non_null(ctx);
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, md, NULL, k), 1);
    size_t sl = 0;
    assert_int_equal(EVP_DigestSign(ctx, NULL, &sl, (const unsigned char *)si, strlen(si)), 1);
    unsigned char *der = malloc(sl);
    assert_non_null(der);
    assert_int_equal(EVP_DigestSign(ctx, der, &sl, (const unsigned char *)si, strlen(si)), 1);
    EVP_MD_CTX_free(ctx);
    char *sig;
    if (EVP_PKEY_is_a(k, "EC")) {
        const unsigned char *p = der;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sl);
        assert_non_null(es);
        int half = (EVP_PKEY_get_bits(k) + 7) / 8;
        unsigned char raw[2 * 66];
        assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, half), half);
        assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + half, half), half);
        ECDSA_SIG_free(es);
        sig = b64url(raw, (size_t)(2 * half));
    } else {
        sig = b64url(der, sl);
    }
    free(der);
    char *t = join(si, sig);
    free(si);
    free(sig);
    return t;
}

static char *tok_pk(const char *hdr, const char *payload, EVP_PKEY *k)
{
    return tok_pk_md(hdr, payload, k, EVP_sha256());
}

/* A payload with the usual claims; @extra is appended inside the object (may be ""). */
static char *claims(int64_t exp, const char *extra)
{
    char *s = malloc(1024 + strlen(extra));
    assert_non_null(s);
    sprintf(s,
            "{\"sub\":\"user-1\",\"exp\":%lld,\"rtlog\":{\"subscribe\":[\"workflow-runs/run-0001\","
            "\"dashboard\"],\"publish\":[\"workflow-runs/*\"]}%s}",
            (long long)exp, extra);
    return s;
}

/* ---- keys -------------------------------------------------------------------------------- */

static char *pem_of(EVP_PKEY *k, int priv, const EVP_CIPHER *enc)
{
    BIO *b = BIO_new(BIO_s_mem());
    assert_non_null(b);
    if (priv)
        assert_int_equal(PEM_write_bio_PrivateKey(b, k, enc, enc ? (unsigned char *)"pass" : NULL,
                                                  enc ? 4 : 0, NULL, NULL),
                         1);
    else
        assert_int_equal(PEM_write_bio_PUBKEY(b, k), 1);
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    BIO_free(b);
    return s;
}

static int setup_keys(void **state)
{
    (void)state;
    K.rsa = EVP_RSA_gen(2048);
    K.rsa_other = EVP_RSA_gen(2048);
    K.rsa_small = EVP_RSA_gen(1024);
    K.ec = EVP_EC_gen("P-256");
    K.ec_other = EVP_EC_gen("P-256");
    K.ec384 = EVP_EC_gen("P-384");
    if (!K.rsa || !K.rsa_other || !K.rsa_small || !K.ec || !K.ec_other || !K.ec384)
        return -1;
    K.rsa_pub = pem_of(K.rsa, 0, NULL);
    K.rsa_priv = pem_of(K.rsa, 1, NULL);
    K.rsa_priv_enc = pem_of(K.rsa, 1, EVP_aes_256_cbc());
    K.rsa_other_pub = pem_of(K.rsa_other, 0, NULL);
    K.rsa_small_pub = pem_of(K.rsa_small, 0, NULL);
    K.ec_pub = pem_of(K.ec, 0, NULL);
    K.ec_priv = pem_of(K.ec, 1, NULL);
    K.ec384_pub = pem_of(K.ec384, 0, NULL);
    K.ec384_priv = pem_of(K.ec384, 1, NULL);
    return 0;
}

static int teardown_keys(void **state)
{
    (void)state;
    EVP_PKEY *keys[] = {K.rsa, K.rsa_other, K.rsa_small, K.ec, K.ec_other, K.ec384};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        EVP_PKEY_free(keys[i]);
    char *s[] = {K.rsa_pub, K.rsa_priv,  K.rsa_other_pub, K.rsa_small_pub, K.ec_pub,
                 K.ec_priv, K.ec384_pub, K.ec384_priv,    K.rsa_priv_enc};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        free(s[i]);
    return 0;
}

/* ---- verifier helpers -------------------------------------------------------------------- */

static rtlog_auth *verifier(rtlog_jwt_alg alg, const char *iss, const char *aud, unsigned leeway,
                            size_t cache)
{
    rtlog_auth_opts o = {
        .alg = alg, .issuer = iss, .audience = aud, .leeway_s = leeway, .cache_entries = cache};
    if (alg == RTLOG_JWT_HS256) {
        o.key = SECRET;
        o.key_len = strlen(SECRET);
    } else if (alg == RTLOG_JWT_RS256) {
        o.key = K.rsa_pub;
        o.key_len = strlen(K.rsa_pub);
    } else {
        o.key = K.ec_pub;
        o.key_len = strlen(K.ec_pub);
    }
    rtlog_auth *a = NULL;
    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_auth_new(&o, &a, &ei), RTLOG_OK);
    assert_non_null(a);
    return a;
}

/* True if @hay contains @len bytes of @needle starting anywhere (needle not NUL-ended). */
static int contains(const char *hay, const char *needle, size_t len)
{
    if (len == 0)
        return 0;
    for (const char *h = hay; *h; h++)
        if (strlen(h) >= len && !memcmp(h, needle, len))
            return 1;
    return 0;
}

/* The reason must hold no part of the token: the whole token, and each of its segments
 * that is long enough to be recognisable (a 2-char "AA" would match ordinary words). */
static void assert_text_clean(const char *text, const char *tok, size_t len)
{
    if (len >= 6)
        assert_false(contains(text, tok, len));
    const char *seg = tok;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || tok[i] == '.') {
            size_t sl = (size_t)(tok + i - seg);
            if (sl >= 6)
                assert_false(contains(text, seg, sl));
            seg = tok + i + 1;
        }
    }
}

static void expect_unauth_n(rtlog_auth *a, const char *tok, size_t len, int64_t now,
                            const char *want_reason)
{
    rtlog_principal *p = (rtlog_principal *)0x1;
    rtlog_errinfo ei = {0};
    rtlog_err rc = rtlog_auth_verify(a, tok, len, now, &p, &ei);
    if (rc != RTLOG_E_UNAUTH)
        fail_msg("token accepted or wrong error %d (len %zu)", (int)rc, len);
    assert_null(p);
    assert_int_equal(ei.code, RTLOG_E_UNAUTH);
    assert_true(ei.text[0] != '\0');
    assert_text_clean(ei.text, tok, len);
    if (want_reason && strcmp(ei.text, want_reason) != 0)
        fail_msg("reason \"%s\", expected \"%s\"", ei.text, want_reason);
}

static void expect_unauth(rtlog_auth *a, const char *tok, int64_t now, const char *want_reason)
{
    expect_unauth_n(a, tok, strlen(tok), now, want_reason);
}

/* Same, and frees @tok. */
static void reject_free(rtlog_auth *a, char *tok, const char *want_reason)
{
    expect_unauth(a, tok, NOW, want_reason);
    free(tok);
}

static rtlog_principal *expect_ok(rtlog_auth *a, const char *tok, int64_t now)
{
    rtlog_principal *p = NULL;
    rtlog_errinfo ei = {0};
    rtlog_err rc = rtlog_auth_verify(a, tok, strlen(tok), now, &p, &ei);
    if (rc != RTLOG_OK)
        fail_msg("valid token refused: %s", ei.text);
    assert_non_null(p);
    return p;
}

static void accept_free(rtlog_auth *a, char *tok)
{
    rtlog_principal_free(expect_ok(a, tok, NOW));
    free(tok);
}

/* ---- valid tokens ------------------------------------------------------------------------ */

static void check_usual_principal(const rtlog_principal *p)
{
    assert_string_equal(p->sub, "user-1");
    assert_int_equal(p->exp, NOW + 600);
    assert_int_equal(p->n_subscribe, 2);
    assert_string_equal(p->subscribe[0], "workflow-runs/run-0001");
    assert_string_equal(p->subscribe[1], "dashboard");
    assert_int_equal(p->n_publish, 1);
    assert_string_equal(p->publish[0], "workflow-runs/*");
}

static void test_valid_tokens(void **state)
{
    (void)state;
    char *c = claims(NOW + 600, "");
    struct {
        rtlog_jwt_alg alg;
        char *tok;
    } cases[] = {
        {RTLOG_JWT_HS256, tok_hs("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", c, SECRET, strlen(SECRET))},
        {RTLOG_JWT_HS256, tok_hs("{\"alg\":\"HS256\"}", c, SECRET, strlen(SECRET))},
        {RTLOG_JWT_HS256, tok_hs("{\"typ\":\"jwt\",\"alg\":\"HS256\"}", c, SECRET, strlen(SECRET))},
        {RTLOG_JWT_RS256, tok_pk("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", c, K.rsa)},
        {RTLOG_JWT_ES256, tok_pk("{\"alg\":\"ES256\",\"typ\":\"JWT\"}", c, K.ec)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rtlog_auth *a = verifier(cases[i].alg, NULL, NULL, 0, 0);
        rtlog_principal *p = expect_ok(a, cases[i].tok, NOW);
        check_usual_principal(p);
        rtlog_principal_free(p);
        rtlog_auth_free(a);
        free(cases[i].tok);
    }
    free(c);
}

/* A verifier given the private key PEM keeps only its public half and works the same. */
static void test_verifier_from_private_pem(void **state)
{
    (void)state;
    const char *pems[] = {K.rsa_priv, K.ec_priv};
    EVP_PKEY *keys[] = {K.rsa, K.ec};
    rtlog_jwt_alg algs[] = {RTLOG_JWT_RS256, RTLOG_JWT_ES256};
    const char *hdrs[] = {"{\"alg\":\"RS256\"}", "{\"alg\":\"ES256\"}"};
    char *c = claims(NOW + 600, "");
    for (size_t i = 0; i < 2; i++) {
        rtlog_auth_opts o = {.alg = algs[i], .key = pems[i], .key_len = strlen(pems[i])};
        rtlog_auth *a = NULL;
        assert_int_equal(rtlog_auth_new(&o, &a, NULL), RTLOG_OK);
        accept_free(a, tok_pk(hdrs[i], c, keys[i]));
        reject_free(a, tok_pk(hdrs[i], c, i ? K.ec_other : K.rsa_other), "bad signature");
        rtlog_auth_free(a);
    }
    free(c);
}

/* ---- C13: algorithm and key confusion --------------------------------------------------- */

static void test_alg_none(void **state)
{
    (void)state;
    char *c = claims(NOW + 600, "");
    const char *hdrs[] = {
        "{\"alg\":\"none\",\"typ\":\"JWT\"}",
        "{\"alg\":\"None\"}",
        "{\"alg\":\"NONE\"}",
        "{\"alg\":\"nOnE\"}",
        "{\"alg\":\"none \"}",
        "{\"alg\":\"\"}",
        "{\"typ\":\"JWT\"}",
        "{}",
        "{\"alg\":null}",
        "{\"alg\":[\"HS256\"]}",
        "{\"alg\":1}",
        "{\"alg\":\"hs256\"}",
        "{\"alg\":\"HS256 \"}",
    };
    const char *sigs[] = {"", "AA", "c2ln"};
    rtlog_jwt_alg algs[] = {RTLOG_JWT_HS256, RTLOG_JWT_RS256, RTLOG_JWT_ES256};
    for (size_t v = 0; v < 3; v++) {
        rtlog_auth *a = verifier(algs[v], NULL, NULL, 0, 0);
        for (size_t h = 0; h < sizeof hdrs / sizeof hdrs[0]; h++) {
            for (size_t s = 0; s < 3; s++)
                reject_free(a, tok_raw(hdrs[h], c, sigs[s]), NULL);
            /* no third segment at all */
            char *si = signing_input(hdrs[h], c);
            expect_unauth(a, si, NOW, NULL);
            free(si);
        }
        reject_free(a, tok_raw("{\"alg\":\"none\"}", c, ""), NULL);
        rtlog_auth_free(a);
    }
    /* The reason for alg none with a signature is the alg, decided before libjwt. */
    rtlog_auth *a = verifier(RTLOG_JWT_RS256, NULL, NULL, 0, 0);
    reject_free(a, tok_raw("{\"alg\":\"none\"}", c, "AA"), "algorithm not allowed");
    reject_free(a, tok_raw("{\"alg\":\"none\"}", c, ""), "token has no signature");
    rtlog_auth_free(a);
    free(c);
}

/* HS256 HMAC'd with the bytes of our public key: libjwt alone accepts it (the control
 * below documents that the attack token is well formed); our pin must refuse it. */
static void test_hs256_with_public_key(void **state)
{
    (void)state;
    char *c = claims(NOW + 600, "");
    const char *hs = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    struct {
        rtlog_jwt_alg alg;
        const char *pem;
        EVP_PKEY *k;
    } v[] = {{RTLOG_JWT_RS256, K.rsa_pub, K.rsa}, {RTLOG_JWT_ES256, K.ec_pub, K.ec}};
    for (size_t i = 0; i < 2; i++) {
        rtlog_auth *a = verifier(v[i].alg, NULL, NULL, 0, 0);
        size_t pl = strlen(v[i].pem);
        char *t = tok_hs(hs, c, v[i].pem, pl);

        /* Control: libjwt 1.10.2 by itself accepts this token with the PEM as "key". */
        jwt_t *j = NULL;
        assert_int_equal(jwt_decode(&j, t, (const unsigned char *)v[i].pem, (int)pl), 0);
        assert_int_equal(jwt_get_alg(j), JWT_ALG_HS256);
        jwt_free(j);

        reject_free(a, t, "algorithm not allowed");
        reject_free(a, tok_hs(hs, c, v[i].pem, pl - 1), NULL); /* PEM without its newline */
        reject_free(a, tok_hs(hs, c, v[i].pem, pl + 1), NULL); /* PEM with its NUL */
        unsigned char *der = NULL;
        int dl = i2d_PUBKEY(v[i].k, &der);
        assert_true(dl > 0);
        reject_free(a, tok_hs(hs, c, der, (size_t)dl), NULL); /* DER bytes */
        OPENSSL_free(der);
        reject_free(a, tok_hs(hs, c, "", 0), NULL); /* empty HMAC key (C13 c) */
        rtlog_auth_free(a);
    }
    /* Empty-key HMAC against an HS256 verifier: a plain bad signature. */
    rtlog_auth *a = verifier(RTLOG_JWT_HS256, NULL, NULL, 0, 0);
    reject_free(a, tok_hs(hs, c, "", 0), "bad signature");
    reject_free(a, tok_hs(hs, c, SECRET, strlen(SECRET) - 1), "bad signature");
    /* Other HMAC sizes with the right secret: not the configured alg. */
    reject_free(a, tok_hmac_md("{\"alg\":\"HS384\"}", c, SECRET, strlen(SECRET), "SHA384"),
                "algorithm not allowed");
    reject_free(a, tok_hmac_md("{\"alg\":\"HS512\"}", c, SECRET, strlen(SECRET), "SHA512"),
                "algorithm not allowed");
    rtlog_auth_free(a);
    free(c);
}

static void test_signature_tampering(void **state)
{
    (void)state;
    char *c = claims(NOW + 600, "");
    char *c2 = claims(NOW + 999999, "");
    struct {
        rtlog_jwt_alg alg;
        const char *hdr;
        EVP_PKEY *k, *other;
    } v[] = {{RTLOG_JWT_RS256, "{\"alg\":\"RS256\"}", K.rsa, K.rsa_other},
             {RTLOG_JWT_ES256, "{\"alg\":\"ES256\"}", K.ec, K.ec_other}};
    for (size_t i = 0; i < 2; i++) {
        rtlog_auth *a = verifier(v[i].alg, NULL, NULL, 0, 0);
        char *good = tok_pk(v[i].hdr, c, v[i].k);
        char *last_dot = strrchr(good, '.');

        /* signature removed: "h.p." and "h.p" */
        char *t = strndup(good, (size_t)(last_dot - good + 1));
        expect_unauth(a, t, NOW, "token has no signature");
        t[last_dot - good] = '\0';
        expect_unauth(a, t, NOW, "malformed token");
        free(t);
        /* signature "AA" */
        char *si = strndup(good, (size_t)(last_dot - good));
        reject_free(a, join(si, "AA"), "bad signature");
        /* signature from another key of the same type */
        reject_free(a, tok_pk(v[i].hdr, c, v[i].other), "bad signature");
        /* payload swapped after signing (longer exp), signature kept */
        char *forged_si = signing_input(v[i].hdr, c2);
        reject_free(a, join(forged_si, last_dot + 1), "bad signature");
        free(forged_si);
        /* one signature character changed */
        t = strdup(good);
        char *sc = strrchr(t, '.') + 5;
        *sc = *sc == 'A' ? 'B' : 'A';
        reject_free(a, t, "bad signature");
        free(si);
        accept_free(a, good); /* control */
        rtlog_auth_free(a);
    }
    free(c);
    free(c2);
}

static void test_cross_algorithm(void **state)
{
    (void)state;
    char *c = claims(NOW + 600, "");
    rtlog_auth *rs = verifier(RTLOG_JWT_RS256, NULL, NULL, 0, 0);
    rtlog_auth *es = verifier(RTLOG_JWT_ES256, NULL, NULL, 0, 0);
    rtlog_auth *hs = verifier(RTLOG_JWT_HS256, NULL, NULL, 0, 0);
    /* ES256 against an RS256 configuration, and the reverse (C13 g) */
    reject_free(rs, tok_pk("{\"alg\":\"ES256\"}", c, K.ec), "algorithm not allowed");
    reject_free(es, tok_pk("{\"alg\":\"RS256\"}", c, K.rsa), "algorithm not allowed");
    /* a lying header: RS256 signature labelled ES256 and the reverse */
    reject_free(es, tok_pk("{\"alg\":\"ES256\"}", c, K.rsa), "bad signature");
    reject_free(rs, tok_pk("{\"alg\":\"RS256\"}", c, K.ec), "bad signature");
    /* RS384/ES384 with the right key: not the pinned alg */
    reject_free(rs, tok_pk_md("{\"alg\":\"RS384\"}", c, K.rsa, EVP_sha384()),
                "algorithm not allowed");
    reject_free(rs, tok_pk_md("{\"alg\":\"PS256\"}", c, K.rsa, EVP_sha256()),
                "algorithm not allowed");
    /* ES256 header over a P-384 key's signature */
    reject_free(es, tok_pk("{\"alg\":\"ES256\"}", c, K.ec384), "bad signature");
    /* asymmetric tokens against the HS256 verifier */
    reject_free(hs, tok_pk("{\"alg\":\"RS256\"}", c, K.rsa), "algorithm not allowed");
    reject_free(hs, tok_pk("{\"alg\":\"ES256\"}", c, K.ec), "algorithm not allowed");
    rtlog_auth_free(rs);
    rtlog_auth_free(es);
    rtlog_auth_free(hs);
    free(c);
}

/* kid/jku/x5u/jwk never choose a key: correctly signed tokens carrying them pass (they are
 * ignored), tokens signed with the key they point at fail, and a 10 KB kid is too long. */
static void test_kid_and_key_headers(void **state)
{
    (void)state;
    char *c = claims(NOW + 600, "");
    rtlog_auth *rs = verifier(RTLOG_JWT_RS256, NULL, NULL, 0, 0);
    rtlog_auth *hs = verifier(RTLOG_JWT_HS256, NULL, NULL, 0, 0);
    const char *rs_hdrs[] = {
        "{\"alg\":\"RS256\",\"kid\":\"../../../../dev/null\"}",
        "{\"alg\":\"RS256\",\"kid\":\"' OR '1'='1\"}",
        "{\"alg\":\"RS256\",\"jku\":\"http://127.0.0.1:9/jwks.json\"}",
        "{\"alg\":\"RS256\",\"x5u\":\"http://127.0.0.1:9/cert.pem\"}",
        "{\"alg\":\"RS256\",\"jwk\":{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}}",
    };
    for (size_t i = 0; i < sizeof rs_hdrs / sizeof rs_hdrs[0]; i++) {
        accept_free(rs, tok_pk(rs_hdrs[i], c, K.rsa));
        reject_free(rs, tok_pk(rs_hdrs[i], c, K.rsa_other), "bad signature");
    }
    /* kid pointing at an empty file, HMAC'd with the empty key */
    reject_free(hs, tok_hs("{\"alg\":\"HS256\",\"kid\":\"../../../../dev/null\"}", c, "", 0),
                "bad signature");
    reject_free(rs, tok_hs("{\"alg\":\"HS256\",\"kid\":\"../../../../dev/null\"}", c, "", 0),
                "algorithm not allowed");
    /* 10 KB kid */
    char *hdr = malloc(10 * 1024 + 64);
    assert_non_null(hdr);
    strcpy(hdr, "{\"alg\":\"RS256\",\"kid\":\"");
    size_t n = strlen(hdr);
    memset(hdr + n, 'k', 10 * 1024);
    strcpy(hdr + n + 10 * 1024, "\"}");
    reject_free(rs, tok_pk(hdr, c, K.rsa), "token too long");
    free(hdr);
    rtlog_auth_free(rs);
    rtlog_auth_free(hs);
    free(c);
}

/* ---- header and syntax ------------------------------------------------------------------ */

static void test_header_rules(void **state)
{
    (void)state;
    char *c = claims(NOW + 600, "");
    rtlog_auth *a = verifier(RTLOG_JWT_HS256, NULL, NULL, 0, 0);
#define HS(h) tok_hs(h, c, SECRET, strlen(SECRET))
    reject_free(a, HS("{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}"),
                "critical header extensions not supported");
    reject_free(a, HS("{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}"), "token type is not JWT");
    reject_free(a, HS("{\"alg\":\"HS256\",\"typ\":7}"), "token type is not JWT");
    reject_free(a, HS("{\"alg\":\"HS256\",\"alg\":\"HS256\"}"), "malformed token header");
    reject_free(a, HS("{\"alg\":\"RS256\",\"alg\":\"HS256\"}"), "malformed token header");
    reject_free(a, HS("[\"HS256\"]"), "malformed token header");
    reject_free(a, HS("\"HS256\""), "malformed token header");
    reject_free(a, HS("{\"alg\":\"HS256\""), "malformed token header");
    reject_free(a, HS(""), "malformed token");
    accept_free(a, HS("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"cty\":\"x\",\"x-extra\":[1,2]}"));
#undef HS
    rtlog_auth_free(a);
    free(c);
}

static void test_garbage(void **state)
{
    (void)state;
    rtlog_auth *a = verifier(RTLOG_JWT_HS256, NULL, NULL, 0, 0);
    char *c = claims(NOW + 600, "");
    char *good = tok_hs("{\"alg\":\"HS256\"}", c, SECRET, strlen(SECRET));
    const char *fixed[] = {"",
                           ".",
                           "..",
                           "...",
                           "a",
                           "a.b",
                           "a.b.c",
                           "a.b.c.d",
                           "not a token",
                           "eyJ.eyJ.sig",
                           "null",
                           "{\"alg\":\"none\"}",
                           "\xff\xfe.\x01.\x80",
                           "....................."};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        expect_unauth(a, fixed[i], NOW, NULL);
    expect_unauth_n(a, NULL, 0, NOW, "no token");

    char buf[4096];
    const char *wrap[][2] = {{"Bearer ", ""}, {"", " "},  {" ", ""}, {"", "."},  {"", ".AA"},
                             {".", ""},       {"", "\n"}, {"", "="}, {"", "%3D"}};
    for (size_t i = 0; i < sizeof wrap / sizeof wrap[0]; i++) {
        snprintf(buf, sizeof buf, "%s%s%s", wrap[i][0], good, wrap[i][1]);
        expect_unauth(a, buf, NOW, NULL);
    }
    /* a NUL inside the given length, then junk: the whole length is the token */
    size_t gl = strlen(good);
    memcpy(buf, good, gl + 1);
    memcpy(buf + gl + 1, "junk", 5);
    expect_unauth_n(a, buf, gl + 5, NOW, "malformed token");
    /* standard base64 characters in place of base64url ones */
    snprintf(buf, sizeof buf, "%s", good);
    for (char *p = buf; *p; p++)
        if (*p == '-' || *p == '_')
            *p = *p == '-' ? '+' : '/';
    if (strcmp(buf, good) != 0)
        expect_unauth(a, buf, NOW, "malformed token");
    /* header segment with non-canonical trailing bits: "e30" is "{}", "e31" is not canonical */
    reject_free(a, join("e31.e30", "AA"), "malformed token header");

    /* deterministic pseudo-random strings, printable and binary */
    uint32_t x = 12345;
    for (int n = 0; n < 300; n++) {
        size_t len = 1 + (size_t)(n * 7 % 400);
        for (size_t i = 0; i < len; i++) {
            x = x * 1103515245u + 12345u;
            unsigned char ch = (unsigned char)(x >> 16);
            buf[i] = (char)(n % 2 ? ch : "ab.Z9-_."[ch % 8]);
        }
        buf[len] = '\0';
        expect_unauth_n(a, buf, len, NOW, NULL);
    }
    accept_free(a, good); /* control */
    free(c);
    rtlog_auth_free(a);
}

/* Every single-character change of a valid HS256 token is refused (header, payload or
 * signature: HMAC is compared as text, and our base64url decoding is canonical). */
static void test_every_mutation_refused(void **state)
{
    (void)state;
    rtlog_auth *a = verifier(RTLOG_JWT_HS256, NULL, NULL, 0, 0);
    char *c = claims(NOW + 600, "");
    char *good = tok_hs("{\"alg\":\"HS256\"}", c, SECRET, strlen(SECRET));
    size_t n = strlen(good);
    char *t = malloc(n + 1);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++) {
        if (good[i] == '.')
            continue;
        const char subst[] = {'A', 'g', '-', '.'};
        for (size_t s = 0; s < sizeof subst; s++) {
            if (subst[s] == good[i])
                continue;
            memcpy(t, good, n + 1);
            t[i] = subst[s];
            expect_unauth(a, t, NOW, NULL);
        }
    }
    free(t);
    accept_free(a, good);
    free(c);
    rtlog_auth_free(a);
}

/* 8 KiB cap: the largest validly signed token under the cap passes, one over it fails. */
static void test_length_cap(void **state)
{
    (void)state;
    rtlog_auth *a = verifier(RTLOG_JWT_HS256, NULL, NULL, 0, 0);
    char *pad = malloc(10 * 1024);
    assert_non_null(pad);
    int seen_ok = 0, seen_big = 0;
    for (size_t n = 5900; n < 6300 && !seen_big; n++) {
        strcpy(pad, ",\"pad\":\"");
        memset(pad + 8, 'x', n);
        strcpy(pad + 8 + n, "\"");
        char *c = claims(NOW + 600, pad);
        char *t = tok_hs("{\"alg\":\"HS256\"}", c, SECRET, strlen(SECRET));
        size_t tl = strlen(t);
        if (tl <= RTLOG_JWT_MAX_TOKEN && tl >= RTLOG_JWT_MAX_TOKEN - 2) {
            rtlog_principal_free(expect_ok(a, t, NOW));
            seen_ok = 1;
        } else if (tl > RTLOG_JWT_MAX_TOKEN) {
            expect_unauth(a, t, NOW, "token too long");
            seen_big = 1;
        }
        free(t);
        free(c);
    }
    assert_true(seen_ok && seen_big);
    /* 9 KB */
    memset(pad, 'e', 9 * 1024);
    pad[9 * 1024] = '\0';
    expect_unauth(a, pad, NOW, "token too long");
    free(pad);
    rtlog_auth_free(a);
}

/* ---- C14: exp / nbf ---------------------------------------------------------------------- */

static char *hs_payload(const char *payload)
{
    return tok_hs("{\"alg\":\"HS256\"}", payload, SECRET, strlen(SECRET));
}

static void test_exp_nbf(void **state)
{
    (void)state;
    rtlog_auth *a = verifier(RTLOG_JWT_HS256, NULL, NULL, 60, 0);
    char p[512];
#define EXP(e) (snprintf(p, sizeof p, "{\"sub\":\"u\",\"exp\":%s}", e), hs_payload(p))
#define EXPN(v)                                                                                    \
    (snprintf(p, sizeof p, "{\"sub\":\"u\",\"exp\":%lld}", (long long)(v)), hs_payload(p))
    reject_free(a, EXPN(NOW - 61), "token expired"); /* beyond the leeway (C14 a) */
    reject_free(a, EXPN(NOW - 60), "token expired"); /* exp <= now - leeway */
    accept_free(a, EXPN(NOW - 59));
    accept_free(a, EXPN(NOW - 30)); /* inside the leeway (C14 b) */
    accept_free(a, EXPN(INT64_MAX));
    reject_free(a, EXPN(-1), "token expired");
    reject_free(a, EXPN(0), "token expired");
    reject_free(a, EXP("\"9999999999\""), "exp is not an integer"); /* C14 d */
    reject_free(a, EXP("1.7e10"), "exp is not an integer");
    reject_free(a, EXP("1700000600.0"), "exp is not an integer");
    reject_free(a, EXP("true"), "exp is not an integer"); /* C14 e */
    reject_free(a, EXP("false"), "exp is not an integer");
    reject_free(a, EXP("null"), "exp is not an integer");
    reject_free(a, EXP("[]"), "exp is not an integer");
    reject_free(a, EXP("{}"), "exp is not an integer");
    reject_free(a, EXP("[1800000000]"), "exp is not an integer");
    reject_free(a, hs_payload("{\"sub\":\"u\"}"), "token has no exp"); /* C14 f */
    reject_free(a, hs_payload("{}"), "token has no exp");
    reject_free(a, hs_payload("{\"sub\":\"u\",\"exp\":1800000000,\"exp\":1800000001}"),
                "malformed token payload");
#undef EXP
#undef EXPN
#define NBF(v)                                                                                     \
    (snprintf(p, sizeof p, "{\"exp\":%lld,\"nbf\":%s}", (long long)(NOW + 600), v), hs_payload(p))
    char v[64];
    snprintf(v, sizeof v, "%lld", (long long)(NOW + 3600));
    reject_free(a, NBF(v), "token not yet valid"); /* C14 c */
    snprintf(v, sizeof v, "%lld", (long long)(NOW + 61));
    reject_free(a, NBF(v), "token not yet valid");
    snprintf(v, sizeof v, "%lld", (long long)(NOW + 60));
    accept_free(a, NBF(v));
    snprintf(v, sizeof v, "%lld", (long long)(NOW + 30));
    accept_free(a, NBF(v));
    snprintf(v, sizeof v, "%lld", (long long)(NOW - 30));
    accept_free(a, NBF(v));
    reject_free(a, NBF("\"1\""), "nbf is not an integer");
    reject_free(a, NBF("1.5"), "nbf is not an integer");
    reject_free(a, NBF("null"), "nbf is not an integer");
#undef NBF
    rtlog_auth_free(a);

    /* No leeway: the token is valid strictly before exp. */
    a = verifier(RTLOG_JWT_HS256, NULL, NULL, 0, 0);
    char *t = hs_payload("{\"exp\":1700000001}");
    rtlog_principal_free(expect_ok(a, t, NOW));
    expect_unauth(a, t, NOW + 1, "token expired");
    free(t);
    rtlog_auth_free(a);
}

/* ---- iss / aud / sub / rtlog --------------------------------------------------------------- */

static void test_iss_aud(void **state)
{
    (void)state;
    rtlog_auth *a = verifier(RTLOG_JWT_HS256, "https://issuer.example", "rtlog", 0, 0);
    char p[512];
#define CL(extra)                                                                                  \
    (snprintf(p, sizeof p, "{\"exp\":%lld%s}", (long long)(NOW + 600), extra), hs_payload(p))
    accept_free(a, CL(",\"iss\":\"https://issuer.example\",\"aud\":\"rtlog\""));
    accept_free(a, CL(",\"iss\":\"https://issuer.example\",\"aud\":[\"other\",\"rtlog\"]"));
    reject_free(a, CL(",\"iss\":\"https://issuer.example\",\"aud\":[\"other\"]"), "wrong audience");
    reject_free(a, CL(",\"iss\":\"https://issuer.example\",\"aud\":[]"), "wrong audience");
    reject_free(a, CL(",\"iss\":\"https://issuer.example\",\"aud\":\"other\""), "wrong audience");
    reject_free(a, CL(",\"iss\":\"https://issuer.example\",\"aud\":\"rtlog \""), "wrong audience");
    reject_free(a, CL(",\"iss\":\"https://issuer.example\""), "wrong audience");
    reject_free(a, CL(",\"iss\":\"https://issuer.example\",\"aud\":5"), "wrong audience");
    reject_free(a, CL(",\"iss\":\"https://issuer.example\",\"aud\":[\"rtlog\",5]"),
                "malformed aud claim");
    reject_free(a, CL(",\"iss\":\"https://evil.example\",\"aud\":\"rtlog\""), "wrong issuer");
    reject_free(a, CL(",\"iss\":\"HTTPS://ISSUER.EXAMPLE\",\"aud\":\"rtlog\""), "wrong issuer");
    reject_free(a, CL(",\"iss\":\"https://issuer.example/\",\"aud\":\"rtlog\""), "wrong issuer");
    reject_free(a, CL(",\"aud\":\"rtlog\""), "wrong issuer");
    reject_free(a, CL(",\"iss\":5,\"aud\":\"rtlog\""), "iss is not a string");
    rtlog_auth_free(a);

    a = verifier(RTLOG_JWT_HS256, NULL, NULL, 0, 0); /* nothing configured */
    accept_free(a, CL(",\"iss\":\"anyone\",\"aud\":[\"x\",7]"));
    accept_free(a, CL(""));
    reject_free(a, CL(",\"iss\":[\"anyone\"]"), "iss is not a string");
#undef CL
    rtlog_auth_free(a);
}

static void test_rtlog_claim_and_sub(void **state)
{
    (void)state;
    rtlog_auth *a = verifier(RTLOG_JWT_HS256, NULL, NULL, 0, 0);
    char p[1024];
#define CL(extra)                                                                                  \
    (snprintf(p, sizeof p, "{\"exp\":%lld%s}", (long long)(NOW + 600), extra), hs_payload(p))
    const char *bad[] = {
        ",\"rtlog\":\"*\"",
        ",\"rtlog\":[]",
        ",\"rtlog\":null",
        ",\"rtlog\":{\"subscribe\":\"dashboard\"}",
        ",\"rtlog\":{\"subscribe\":[1]}",
        ",\"rtlog\":{\"subscribe\":[null]}",
        ",\"rtlog\":{\"subscribe\":[[\"dashboard\"]]}",
        ",\"rtlog\":{\"publish\":{}}",
        ",\"rtlog\":{\"subscribe\":[\"bogus/x\"]}",
        ",\"rtlog\":{\"subscribe\":[\"workflow-runs/\"]}",
        ",\"rtlog\":{\"subscribe\":[\"workflow-runs\"]}",
        ",\"rtlog\":{\"subscribe\":[\"workflow-runs/a b\"]}",
        ",\"rtlog\":{\"subscribe\":[\"workflow-runs/a/b\"]}",
        ",\"rtlog\":{\"subscribe\":[\"workflow-runs/*x\"]}",
        ",\"rtlog\":{\"subscribe\":[\"workflow-runs/**\"]}",
        ",\"rtlog\":{\"subscribe\":[\"\"]}",
        ",\"rtlog\":{\"subscribe\":[\"**\"]}",
        ",\"rtlog\":{\"subscribe\":[\"dashboard/*\"]}",
        ",\"rtlog\":{\"publish\":[\"Dashboard\"]}",
        ",\"rtlog\":{\"publish\":[\"dashboard\",\"agents/\"]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        reject_free(a, CL(bad[i]), "malformed rtlog claim");
    /* id of 128 bytes passes, 129 fails */
    char ext[512], id[160];
    memset(id, 'a', 129);
    id[128] = '\0';
    snprintf(ext, sizeof ext, ",\"rtlog\":{\"subscribe\":[\"agents/%s\"]}", id);
    accept_free(a, CL(ext));
    id[128] = 'a';
    id[129] = '\0';
    snprintf(ext, sizeof ext, ",\"rtlog\":{\"subscribe\":[\"agents/%s\"]}", id);
    reject_free(a, CL(ext), "malformed rtlog claim");

    /* no rtlog claim, or an empty one: a valid token with no access (-> forbidden) */
    const char *empty[] = {"", ",\"rtlog\":{}", ",\"rtlog\":{\"subscribe\":[],\"x\":1}"};
    for (size_t i = 0; i < 3; i++) {
        char *t = CL(empty[i]);
        rtlog_principal *pr = expect_ok(a, t, NOW);
        assert_int_equal(pr->n_subscribe + pr->n_publish, 0);
        assert_string_equal(pr->sub, "");
        assert_false(rtlog_principal_can(pr, 0, "dashboard"));
        assert_false(rtlog_principal_can(pr, 1, "agents/a"));
        rtlog_principal_free(pr);
        free(t);
    }

    /* sub: 127 bytes ok, 128 refused (never truncated into someone else's name) */
    char sub[200];
    memset(sub, 's', 128);
    sub[127] = '\0';
    snprintf(ext, sizeof ext, ",\"sub\":\"%s\"", sub);
    char *t = CL(ext);
    rtlog_principal *pr = expect_ok(a, t, NOW);
    assert_string_equal(pr->sub, sub);
    rtlog_principal_free(pr);
    free(t);
    sub[127] = 's';
    sub[128] = '\0';
    snprintf(ext, sizeof ext, ",\"sub\":\"%s\"", sub);
    reject_free(a, CL(ext), "sub is not a short printable string");
    reject_free(a, CL(",\"sub\":\"user-1\\nFAKE-LOG-LINE\""),
                "sub is not a short printable string");
    reject_free(a, CL(",\"sub\":\"user\\u0000x\""), "malformed token payload");
    reject_free(a, CL(",\"sub\":5"), "sub is not a short printable string");
    reject_free(a, hs_payload("[1800000000]"), "malformed token payload");
    reject_free(a, hs_payload("not json"), "malformed token payload");
#undef CL
    rtlog_auth_free(a);
}

/* ---- access patterns --------------------------------------------------------------------- */

static void test_pattern_matrix(void **state)
{
    (void)state;
    char *subs[] = {"workflow-runs/*", "dashboard", "agents/agent-a", "deployment-jobs/job-1"};
    char *pubs[] = {"workflow-runs/run-1"};
    rtlog_principal p = {.sub = "u",
                         .exp = NOW,
                         .subscribe = subs,
                         .n_subscribe = 4,
                         .publish = pubs,
                         .n_publish = 1};
    struct {
        int publish;
        const char *stream;
        int want;
    } m[] = {
        {0, "workflow-runs/run-0001", 1},
        {0, "workflow-runs/x", 1},
        {0, "workflow-runs/", 0},
        {0, "workflow-runs", 0},
        {0, "workflow-runs/a/b", 0},
        {0, "workflow-runsX/a", 0},
        {0, "deployment-jobs/job-1", 1},
        {0, "deployment-jobs/job-2", 0},
        {0, "deployment-jobs/job-10", 0},
        {0, "deployment-jobs/JOB-1", 0},
        {0, "deployment-jobs/job-", 0},
        {0, "dashboard", 1},
        {0, "dashboard/x", 0},
        {0, "dashboardx", 0},
        {0, "agents/agent-a", 1},
        {0, "agents/agent-b", 0},
        {0, "agents/agent-a/x", 0},
        {0, "", 0},
        {1, "workflow-runs/run-1", 1},
        {1, "workflow-runs/run-2", 0},
        {1, "workflow-runs/run-10", 0},
        {1, "agents/agent-a", 1}, /* own agent stream */
        {1, "agents/agent-b", 0},
        {1, "dashboard", 0},
        {1, "deployment-jobs/job-1", 0},
        {1, "agents/agent-aa", 0},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (rtlog_principal_can(&p, m[i].publish, m[i].stream) != m[i].want)
            fail_msg("can(%s, %s) != %d", m[i].publish ? "publish" : "subscribe", m[i].stream,
                     m[i].want);

    char *star[] = {"*"};
    char *agents_star[] = {"agents/*"};
    rtlog_principal all_sub = {.subscribe = star, .n_subscribe = 1};
    assert_true(rtlog_principal_can(&all_sub, 0, "workflow-runs/a"));
    assert_true(rtlog_principal_can(&all_sub, 0, "dashboard"));
    assert_true(rtlog_principal_can(&all_sub, 0, "agents/b"));
    assert_false(rtlog_principal_can(&all_sub, 1, "agents/b")); /* "*" viewer is no agent */
    assert_false(rtlog_principal_can(&all_sub, 1, "workflow-runs/a"));
    rtlog_principal all_pub = {.publish = star, .n_publish = 1};
    assert_true(rtlog_principal_can(&all_pub, 1, "deployment-jobs/j"));
    assert_true(rtlog_principal_can(&all_pub, 1, "dashboard"));
    assert_false(rtlog_principal_can(&all_pub, 0, "dashboard"));
    rtlog_principal ag = {.subscribe = agents_star, .n_subscribe = 1};
    assert_true(rtlog_principal_can(&ag, 0, "agents/b"));
    assert_false(rtlog_principal_can(&ag, 1, "agents/b"));
    assert_false(rtlog_principal_can(&ag, 0, "workflow-runs/b"));
    assert_false(rtlog_principal_can(NULL, 0, "dashboard"));
    assert_false(rtlog_principal_can(&p, 0, NULL));
}

/* ---- cache ------------------------------------------------------------------------------- */

static char *hs_sub(const char *sub, int64_t exp, const char *extra)
{
    char p[512];
    snprintf(p, sizeof p, "{\"sub\":\"%s\",\"exp\":%lld%s}", sub, (long long)exp, extra);
    return hs_payload(p);
}

static void test_cache(void **state)
{
    (void)state;
    rtlog_auth *a = verifier(RTLOG_JWT_HS256, NULL, NULL, 0, 2);
    rtlog_auth_stats st;
    char *t1 = hs_sub("one", NOW + 600, ",\"rtlog\":{\"subscribe\":[\"dashboard\"]}");
    char *t2 = hs_sub("two", NOW + 600, "");
    char *t3 = hs_sub("three", NOW + 600, "");

    /* same token twice: second answer from the cache, each caller owns its own copy */
    rtlog_principal *p1 = expect_ok(a, t1, NOW);
    rtlog_principal *p2 = expect_ok(a, t1, NOW + 1);
    rtlog_auth_get_stats(a, &st);
    assert_int_equal(st.verified, 2);
    assert_int_equal(st.cache_hits, 1);
    assert_int_equal(st.cached, 1);
    assert_ptr_not_equal(p1, p2);
    rtlog_principal_free(p1);
    assert_string_equal(p2->sub, "one");
    assert_int_equal(p2->n_subscribe, 1);
    assert_string_equal(p2->subscribe[0], "dashboard");
    rtlog_principal_free(p2);

    /* expired while cached: refused and forgotten */
    expect_unauth(a, t1, NOW + 600, "token expired");
    rtlog_auth_get_stats(a, &st);
    assert_int_equal(st.cached, 0);
    assert_int_equal(st.rejected, 1);
    expect_unauth(a, t1, NOW + 601, "token expired");

    /* LRU of 2: t1 t2 t3 -> t1 evicted */
    rtlog_principal_free(expect_ok(a, t1, NOW));
    rtlog_principal_free(expect_ok(a, t2, NOW));
    rtlog_principal_free(expect_ok(a, t3, NOW));
    rtlog_auth_get_stats(a, &st);
    uint64_t hits = st.cache_hits;
    assert_int_equal(st.cached, 2);
    rtlog_principal_free(expect_ok(a, t3, NOW)); /* hit; t2 is now least recent */
    rtlog_principal_free(expect_ok(a, t1, NOW)); /* miss; evicts t2 */
    rtlog_principal_free(expect_ok(a, t3, NOW)); /* hit */
    rtlog_principal_free(expect_ok(a, t2, NOW)); /* miss; evicts t1, not the used t3 */
    rtlog_principal_free(expect_ok(a, t3, NOW)); /* hit */
    rtlog_auth_get_stats(a, &st);
    assert_int_equal(st.cache_hits, hits + 3);
    assert_int_equal(st.cached, 2);

    /* a rejected token is never cached */
    char *bad = tok_hs("{\"alg\":\"HS256\"}", "{\"exp\":1800000000}", "x", 1);
    expect_unauth(a, bad, NOW, "bad signature");
    expect_unauth(a, bad, NOW, "bad signature");
    free(bad);

    /* nbf is checked again on a hit (a clock that went back) */
    char *tn = hs_sub("n", NOW + 600, ",\"nbf\":1700000010");
    rtlog_principal_free(expect_ok(a, tn, NOW + 20));
    expect_unauth(a, tn, NOW, "token not yet valid");
    rtlog_principal_free(expect_ok(a, tn, NOW + 30));
    free(tn);
    free(t1);
    free(t2);
    free(t3);
    rtlog_auth_free(a);

    /* RS256: the expensive path is taken once */
    a = verifier(RTLOG_JWT_RS256, NULL, NULL, 0, 0);
    char *c = claims(NOW + 600, "");
    char *t = tok_pk("{\"alg\":\"RS256\"}", c, K.rsa);
    for (int i = 0; i < 3; i++)
        rtlog_principal_free(expect_ok(a, t, NOW));
    rtlog_auth_get_stats(a, &st);
    assert_int_equal(st.verified, 3);
    assert_int_equal(st.cache_hits, 2);
    free(t);
    free(c);
    rtlog_auth_free(a);
}

/* ---- configuration ------------------------------------------------------------------------- */

static void new_fails(rtlog_jwt_alg alg, const void *key, size_t kl)
{
    rtlog_auth_opts o = {.alg = alg, .key = key, .key_len = kl};
    rtlog_auth *a = (rtlog_auth *)0x1;
    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_auth_new(&o, &a, &ei), RTLOG_E_INVAL);
    assert_null(a);
    assert_true(ei.text[0] != '\0');
}

static void test_new_rejects_bad_keys(void **state)
{
    (void)state;
    new_fails(RTLOG_JWT_HS256, NULL, 32);
    new_fails(RTLOG_JWT_HS256, SECRET, 0);
    new_fails(RTLOG_JWT_HS256, SECRET, 31);
    new_fails(RTLOG_JWT_HS256, K.rsa_pub, strlen(K.rsa_pub)); /* an RSA key as HMAC secret */
    new_fails(RTLOG_JWT_HS256, K.ec_priv, strlen(K.ec_priv));
    new_fails(RTLOG_JWT_RS256, K.ec_pub, strlen(K.ec_pub));
    new_fails(RTLOG_JWT_RS256, K.rsa_small_pub, strlen(K.rsa_small_pub));
    new_fails(RTLOG_JWT_RS256, SECRET, strlen(SECRET));
    new_fails(RTLOG_JWT_RS256, K.rsa_pub, 40); /* truncated PEM */
    new_fails(RTLOG_JWT_RS256, K.rsa_priv_enc, strlen(K.rsa_priv_enc));
    new_fails(RTLOG_JWT_ES256, K.rsa_pub, strlen(K.rsa_pub));
    new_fails(RTLOG_JWT_ES256, K.ec384_pub, strlen(K.ec384_pub));
    new_fails(RTLOG_JWT_ES256, K.ec384_priv, strlen(K.ec384_priv));
    new_fails((rtlog_jwt_alg)0, SECRET, strlen(SECRET));
    new_fails((rtlog_jwt_alg)99, SECRET, strlen(SECRET));

    rtlog_auth_opts o = {
        .alg = RTLOG_JWT_HS256, .key = SECRET, .key_len = 32, .cache_entries = (1u << 20) + 1};
    rtlog_auth *a = NULL;
    assert_int_equal(rtlog_auth_new(&o, &a, NULL), RTLOG_E_INVAL);
    o.cache_entries = 1;
    assert_int_equal(rtlog_auth_new(&o, &a, NULL), RTLOG_OK);
    rtlog_auth_free(a);
    rtlog_auth_free(NULL);
    rtlog_principal_free(NULL);

    assert_int_equal(rtlog_jwt_alg_parse("HS256"), RTLOG_JWT_HS256);
    assert_int_equal(rtlog_jwt_alg_parse("RS256"), RTLOG_JWT_RS256);
    assert_int_equal(rtlog_jwt_alg_parse("ES256"), RTLOG_JWT_ES256);
    assert_int_equal(rtlog_jwt_alg_parse("hs256"), 0);
    assert_int_equal(rtlog_jwt_alg_parse("none"), 0);
    assert_int_equal(rtlog_jwt_alg_parse("HS384"), 0);
    assert_int_equal(rtlog_jwt_alg_parse(""), 0);
    assert_int_equal(rtlog_jwt_alg_parse(NULL), 0);
    assert_string_equal(rtlog_jwt_alg_name(RTLOG_JWT_ES256), "ES256");
}

/* ---- minting ----------------------------------------------------------------------------- */

static void test_mint_roundtrip(void **state)
{
    (void)state;
    const char *subs[] = {"agents/agent-7", "workflow-runs/*"};
    const char *pubs[] = {"deployment-jobs/job-1"};
    struct {
        rtlog_jwt_alg alg;
        const char *key;
        const char *hdr_alg;
    } v[] = {{RTLOG_JWT_HS256, SECRET, "HS256"},
             {RTLOG_JWT_RS256, K.rsa_priv, "RS256"},
             {RTLOG_JWT_ES256, K.ec_priv, "ES256"}};
    for (size_t i = 0; i < 3; i++) {
        rtlog_mint_opts m = {.alg = v[i].alg,
                             .key = v[i].key,
                             .key_len = strlen(v[i].key),
                             .sub = "agent-7",
                             .subscribe = subs,
                             .n_subscribe = 2,
                             .publish = pubs,
                             .n_publish = 1,
                             .ttl_s = 300,
                             .issuer = "rtlog-test",
                             .audience = "rtlog",
                             .now = NOW};
        char *tok = NULL;
        rtlog_errinfo ei = {0};
        assert_int_equal(rtlog_auth_mint(&m, &tok, &ei), RTLOG_OK);
        assert_non_null(tok);

        rtlog_auth *a = verifier(v[i].alg, "rtlog-test", "rtlog", 0, 0);
        rtlog_principal *p = expect_ok(a, tok, NOW);
        assert_string_equal(p->sub, "agent-7");
        assert_int_equal(p->exp, NOW + 300);
        assert_int_equal(p->n_subscribe, 2);
        assert_string_equal(p->subscribe[1], "workflow-runs/*");
        assert_int_equal(p->n_publish, 1);
        assert_true(rtlog_principal_can(p, 1, "agents/agent-7"));
        assert_true(rtlog_principal_can(p, 1, "deployment-jobs/job-1"));
        assert_false(rtlog_principal_can(p, 1, "agents/agent-8"));
        rtlog_principal_free(p);
        expect_unauth(a, tok, NOW + 300, "token expired");
        rtlog_auth_free(a);

        /* header and claims as libjwt reads them */
        jwt_t *j = NULL;
        assert_int_equal(jwt_decode(&j, tok, NULL, 0), 0);
        assert_string_equal(jwt_get_header(j, "alg"), v[i].hdr_alg);
        assert_string_equal(jwt_get_header(j, "typ"), "JWT");
        assert_int_equal(jwt_get_grant_int(j, "iat"), NOW);
        assert_string_equal(jwt_get_grant(j, "iss"), "rtlog-test");
        assert_string_equal(jwt_get_grant(j, "aud"), "rtlog");
        jwt_free(j);

        /* a verifier expecting another issuer refuses it */
        a = verifier(v[i].alg, "someone-else", NULL, 0, 0);
        expect_unauth(a, tok, NOW, "wrong issuer");
        rtlog_auth_free(a);
        free(tok);
    }

    /* defaults: sub "rtlog-cli", no iss/aud, empty arrays */
    rtlog_mint_opts m = {
        .alg = RTLOG_JWT_HS256, .key = SECRET, .key_len = 32, .ttl_s = 1, .now = NOW};
    char *tok = NULL;
    assert_int_equal(rtlog_auth_mint(&m, &tok, NULL), RTLOG_OK);
    rtlog_auth *a = verifier(RTLOG_JWT_HS256, NULL, NULL, 0, 0);
    rtlog_principal *p = expect_ok(a, tok, NOW);
    assert_string_equal(p->sub, "rtlog-cli");
    assert_int_equal(p->exp, NOW + 1);
    assert_int_equal(p->n_subscribe + p->n_publish, 0);
    rtlog_principal_free(p);
    rtlog_auth_free(a);
    free(tok);
}

static void mint_fails(const rtlog_mint_opts *m)
{
    char *tok = (char *)0x1;
    rtlog_errinfo ei = {0};
    assert_int_equal(rtlog_auth_mint(m, &tok, &ei), RTLOG_E_INVAL);
    assert_null(tok);
    assert_true(ei.text[0] != '\0');
}

static void test_mint_rejects(void **state)
{
    (void)state;
    const char *good[] = {"dashboard"};
    const char *bad1[] = {"dashboard", "nope"};
    const char *bad2[] = {"workflow-runs/*x"};
    const char *bad3[] = {NULL};
    rtlog_mint_opts base = {.alg = RTLOG_JWT_HS256,
                            .key = SECRET,
                            .key_len = 32,
                            .subscribe = good,
                            .n_subscribe = 1,
                            .ttl_s = 60,
                            .now = NOW};
    rtlog_mint_opts m = base;
    char *tok = NULL;
    assert_int_equal(rtlog_auth_mint(&m, &tok, NULL), RTLOG_OK); /* control */
    free(tok);

    m = base, m.ttl_s = 0, mint_fails(&m);
    m = base, m.ttl_s = -5, mint_fails(&m);
    m = base, m.now = INT64_MAX - 10, mint_fails(&m);
    m = base, m.subscribe = bad1, m.n_subscribe = 2, mint_fails(&m);
    m = base, m.publish = bad2, m.n_publish = 1, mint_fails(&m);
    m = base, m.publish = bad3, m.n_publish = 1, mint_fails(&m);
    m = base, m.key = NULL, mint_fails(&m);
    m = base, m.key_len = 0, mint_fails(&m);
    m = base, m.key_len = 31, mint_fails(&m);
    m = base, m.key = K.rsa_priv, m.key_len = strlen(K.rsa_priv), mint_fails(&m);
    m = base, m.alg = RTLOG_JWT_RS256, m.key = K.ec_priv, m.key_len = strlen(K.ec_priv),
    mint_fails(&m);
    m = base, m.alg = RTLOG_JWT_RS256, m.key = K.rsa_pub, m.key_len = strlen(K.rsa_pub),
    mint_fails(&m);
    /* encrypted key: refused without prompting for a passphrase */
    m = base, m.alg = RTLOG_JWT_RS256, m.key = K.rsa_priv_enc, m.key_len = strlen(K.rsa_priv_enc),
    mint_fails(&m);
    m = base, m.alg = RTLOG_JWT_ES256, m.key = K.rsa_priv, m.key_len = strlen(K.rsa_priv),
    mint_fails(&m);
    m = base, m.alg = RTLOG_JWT_ES256, m.key = K.ec384_priv, m.key_len = strlen(K.ec384_priv),
    mint_fails(&m);
    m = base, m.alg = (rtlog_jwt_alg)0, mint_fails(&m);
    m = base, m.sub = "line\nbreak", mint_fails(&m);
    char longsub[200];
    memset(longsub, 'x', 128);
    longsub[128] = '\0';
    m = base, m.sub = longsub, mint_fails(&m);
    m = base, m.issuer = "\xff\xfe", mint_fails(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_tokens),
        cmocka_unit_test(test_verifier_from_private_pem),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_hs256_with_public_key),
        cmocka_unit_test(test_signature_tampering),
        cmocka_unit_test(test_cross_algorithm),
        cmocka_unit_test(test_kid_and_key_headers),
        cmocka_unit_test(test_header_rules),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_every_mutation_refused),
        cmocka_unit_test(test_length_cap),
        cmocka_unit_test(test_exp_nbf),
        cmocka_unit_test(test_iss_aud),
        cmocka_unit_test(test_rtlog_claim_and_sub),
        cmocka_unit_test(test_pattern_matrix),
        cmocka_unit_test(test_cache),
        cmocka_unit_test(test_new_rejects_bad_keys),
        cmocka_unit_test(test_mint_roundtrip),
        cmocka_unit_test(test_mint_rejects),
    };
    return cmocka_run_group_tests(tests, setup_keys, teardown_keys);
}
