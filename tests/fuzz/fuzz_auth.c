/* fuzz_auth.c - libFuzzer target for the first thing an unauthenticated client controls:
 * the bearer token (?token=, Authorization, or the WebSocket first message
 * {"type":"auth","token":...}) as verified by rtlog_auth_verify() with an HS256 verifier.
 *
 * The first input byte picks how the rest arrives:
 *   mode 0: raw token bytes (syntax, base64url, header checks, libjwt on junk);
 *   mode 1: a WS text message, read the way ws.c handle_message() reads it before auth
 *           (jansson with JSON_REJECT_DUPLICATES, "type" == "auth", "token" a string; that
 *           function is static in ws.c, so the same four steps are repeated here);
 *   mode 2: "<header JSON>\n<claims JSON>" that this harness encodes and signs with the
 *           verifier's own secret, so the fuzzer reaches what a random token never can:
 *           libjwt's decode and every claim rule (exp/nbf/iss/aud/sub/rtlog patterns).
 * Bit 0x10 picks the verifier that also pins iss and aud. Every verification runs twice
 * (the second answer comes from the token cache) and both must agree. A granted principal
 * must satisfy auth.h: printable sub <= 127 bytes, exp beyond now - leeway, and each exact
 * subscribe pattern grants its stream. Corpus: corpus/auth/.
 */
#include "auth.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_auth: property failed: %s (line %d)\n", #c, __LINE__);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define NOW    1767225600 /* 2026-01-01T00:00:00Z: fixed so a run is reproducible */
#define LEEWAY 30

static const char secret[] = "fuzz-secret-0123456789abcdef-0123456789"; /* 39 bytes */

static rtlog_auth *verifier(int pinned)
{
    static rtlog_auth *v[2]; /* built once; live for the process (not a leak: reachable) */
    if (!v[pinned]) {
        rtlog_auth_opts o = {
            .alg = RTLOG_JWT_HS256,
            .key = secret,
            .key_len = sizeof secret - 1,
            .issuer = pinned ? "rtlog-fuzz" : NULL,
            .audience = pinned ? "rtlog" : NULL,
            .leeway_s = LEEWAY,
            .cache_entries = 8, /* small: evictions happen within a run */
        };
        rtlog_errinfo ei;
        CHECK(rtlog_auth_new(&o, &v[pinned], &ei) == RTLOG_OK);
    }
    return v[pinned];
}

static void check_principal(const rtlog_principal *p)
{
    size_t sl = strnlen(p->sub, sizeof p->sub);
    CHECK(sl < sizeof p->sub);
    for (size_t i = 0; i < sl; i++)
        CHECK((unsigned char)p->sub[i] >= 0x20 && p->sub[i] != 0x7f);
    CHECK(p->exp > (int64_t)NOW - LEEWAY);
    for (size_t i = 0; i < p->n_subscribe; i++) {
        const char *pat = p->subscribe[i];
        CHECK(pat && pat[0]);
        if (!strchr(pat, '*'))
            CHECK(rtlog_principal_can(p, 0, pat) == 1);
    }
    for (size_t i = 0; i < p->n_publish; i++)
        CHECK(p->publish[i] && p->publish[i][0]);
    CHECK(rtlog_principal_can(p, 0, NULL) == 0); /* auth.h: NULL gives 0 */
    /* "<kind>/" "*" never reaches "dashboard" nor an id with '/'; only "*" does (auth.h) */
    int star = 0, dash = 0;
    for (size_t i = 0; i < p->n_subscribe; i++) {
        star = star || !strcmp(p->subscribe[i], "*");
        dash = dash || !strcmp(p->subscribe[i], "dashboard");
    }
    CHECK(rtlog_principal_can(p, 0, "dashboard") == (star || dash));
    CHECK(rtlog_principal_can(p, 0, "workflow-runs/a/b") == star);
}

static void verify(int pinned, const char *tok, size_t len)
{
    rtlog_auth *a = verifier(pinned);
    rtlog_principal *p1 = NULL, *p2 = NULL;
    rtlog_errinfo e1, e2;
    rtlog_err r1 = rtlog_auth_verify(a, tok, len, NOW, &p1, &e1);
    CHECK(r1 == RTLOG_OK || r1 == RTLOG_E_UNAUTH);
    CHECK((r1 == RTLOG_OK) == (p1 != NULL));
    rtlog_err r2 = rtlog_auth_verify(a, tok, len, NOW, &p2, &e2);
    CHECK(r2 == r1);
    if (r1 == RTLOG_OK) {
        check_principal(p1);
        CHECK(!strcmp(p1->sub, p2->sub) && p1->exp == p2->exp);
        CHECK(p1->n_subscribe == p2->n_subscribe && p1->n_publish == p2->n_publish);
        for (size_t i = 0; i < p1->n_subscribe; i++)
            CHECK(!strcmp(p1->subscribe[i], p2->subscribe[i]));
    } else {
        CHECK(e1.text[0] != '\0');
    }
    rtlog_principal_free(p1);
    rtlog_principal_free(p2);
}

/* The pre-auth branch of ws.c handle_message(). */
static void ws_first_message(int pinned, const char *msg, size_t len)
{
    json_error_t je;
    json_t *m = json_loadb(msg, len, JSON_REJECT_DUPLICATES, &je);
    const char *type = NULL;
    if (m && json_is_object(m))
        type = json_string_value(json_object_get(m, "type"));
    if (type && !strcmp(type, "auth")) {
        json_t *t = json_object_get(m, "token");
        if (json_is_string(t))
            verify(pinned, json_string_value(t), json_string_length(t));
    }
    json_decref(m);
}

static size_t b64url(const uint8_t *in, size_t n, char *out)
{
    static const char al[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = al[v >> 18 & 63];
        out[o++] = al[v >> 12 & 63];
        out[o++] = al[v >> 6 & 63];
        out[o++] = al[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = al[v >> 18 & 63];
        out[o++] = al[v >> 12 & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = al[v >> 18 & 63];
        out[o++] = al[v >> 12 & 63];
        out[o++] = al[v >> 6 & 63];
    }
    return o;
}

static void signed_token(int pinned, const uint8_t *in, size_t n)
{
    static const char def_hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    const uint8_t *nl = memchr(in, '\n', n);
    const uint8_t *h = (const uint8_t *)def_hdr, *c = in;
    size_t hl = sizeof def_hdr - 1, cl = n;
    if (nl) {
        h = in;
        hl = (size_t)(nl - in);
        c = nl + 1;
        cl = n - hl - 1;
    }
    if (hl + cl > 6000) /* the token would be over RTLOG_JWT_MAX_TOKEN anyway */
        return;
    size_t cap = (hl + cl) * 4 / 3 + 64;
    char *tok = malloc(cap);
    CHECK(tok);
    size_t t = b64url(h, hl, tok);
    tok[t++] = '.';
    t += b64url(c, cl, tok + t);
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned ml = 0;
    CHECK(HMAC(EVP_sha256(), secret, (int)(sizeof secret - 1), (const uint8_t *)tok, t, mac,
               &ml) != NULL);
    tok[t++] = '.';
    t += b64url(mac, ml, tok + t);
    CHECK(t <= cap);
    verify(pinned, tok, t);
    free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    int pinned = (mode & 0x10) != 0;
    size_t n = size - 1;
    char *s = malloc(n ? n : 1); /* exactly sized: a read past the token is an ASan error */
    if (!s)
        return 0;
    memcpy(s, data + 1, n);
    switch ((mode & 0x0f) % 3) {
    case 0: verify(pinned, s, n); break;
    case 1: ws_first_message(pinned, s, n); break;
    default: signed_token(pinned, (const uint8_t *)s, n); break;
    }
    free(s);
    return 0;
}
