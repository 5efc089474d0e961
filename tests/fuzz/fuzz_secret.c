/* fuzz_secret.c - libFuzzer target for the sealed-credentials envelope (server/secret.c):
 * what the server opens when it delivers an agent's task comes from the store, so a damaged
 * or forged value must be refused (RTLOG_E_CORRUPT), never crash or read past its bounds.
 * The input is split at its first NUL into associated data and envelope text; besides
 * opening it, every input is sealed and must open again to the same bytes under the same
 * associated data, and not under a different one. Corpus: corpus/secret/.
 */
#include "secret.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_secret: property failed: %s (line %d)\n", #c, __LINE__);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const uint8_t key[RTLOG_SECRET_KEY_BYTES] = {
    0x4b, 0x21, 0x9e, 0x03, 0x77, 0x10, 0xc2, 0x5d, 0x8a, 0x64, 0x3f, 0xee, 0x01, 0x92, 0x5b, 0x7c,
    0x2d, 0xa0, 0x18, 0xf6, 0x43, 0x0b, 0xd9, 0x6e, 0x35, 0x81, 0xcc, 0x57, 0x14, 0xb8, 0x29, 0x90};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t al = nul ? (size_t)(nul - data) : 0;
    const uint8_t *rest = nul ? nul + 1 : data;
    size_t rl = size - (size_t)(rest - data);
    /* exact-size copies so ASan sees a read one past the end */
    char *env = malloc(rl ? rl : 1);
    CHECK(env);
    memcpy(env, rest, rl);
    rtlog_buf out = {0};
    rtlog_err rc = rtlog_secret_open(key, data, al, env, rl, &out);
    CHECK(rc == RTLOG_OK || rc == RTLOG_E_CORRUPT);
    if (rc != RTLOG_OK)
        CHECK(out.len == 0);
    rtlog_buf_free(&out);

    rtlog_buf sealed = {0};
    CHECK(rtlog_secret_seal(key, data, al, env, rl, &sealed) == RTLOG_OK);
    CHECK(rtlog_secret_open(key, data, al, sealed.p, sealed.len, &out) == RTLOG_OK);
    CHECK(out.len == rl && (rl == 0 || memcmp(out.p, env, rl) == 0));
    rtlog_buf_clear(&out);
    CHECK(rtlog_secret_open(key, "other", 5, sealed.p, sealed.len, &out) == RTLOG_E_CORRUPT ||
          (al == 5 && !memcmp(data, "other", 5)));
    rtlog_buf_free(&out);
    rtlog_buf_free(&sealed);
    free(env);
    return 0;
}
