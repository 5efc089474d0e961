/* secret.c - AES-256-GCM envelopes for credentials (see secret.h). All cryptography is
 * OpenSSL's EVP interface; this file only frames nonce, ciphertext and tag. */
#include "secret.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/err.h>
#include <string.h>

#define NONCE_BYTES 12
#define TAG_BYTES 16
#define PLAIN_MAX (16u << 20)

rtlog_err rtlog_secret_seal(const uint8_t key[RTLOG_SECRET_KEY_BYTES], const void *aad,
                            size_t aad_len, const void *plain, size_t len, rtlog_buf *out)
{
    if (!key || (!aad && aad_len) || (!plain && len) || !out || len > PLAIN_MAX ||
        aad_len > INT32_MAX)
        return RTLOG_E_INVAL;
    size_t raw_len = NONCE_BYTES + len + TAG_BYTES;
    uint8_t *raw = malloc(raw_len);
    if (!raw)
        return RTLOG_E_NOMEM;
    rtlog_err rc = RTLOG_E_IO;
    EVP_CIPHER_CTX *cx = EVP_CIPHER_CTX_new();
    int n = 0;
    if (!cx || RAND_bytes(raw, NONCE_BYTES) != 1 ||
        EVP_EncryptInit_ex(cx, EVP_aes_256_gcm(), NULL, key, raw) != 1 ||
        (aad_len && EVP_EncryptUpdate(cx, NULL, &n, aad, (int)aad_len) != 1) ||
        (len && EVP_EncryptUpdate(cx, raw + NONCE_BYTES, &n, plain, (int)len) != 1) ||
        EVP_EncryptFinal_ex(cx, raw + NONCE_BYTES + len, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_GCM_GET_TAG, TAG_BYTES, raw + NONCE_BYTES + len) != 1)
        goto out;
    size_t pre = strlen(RTLOG_SECRET_PREFIX), b64 = 4 * ((raw_len + 2) / 3);
    size_t old = out->len;
    rc = rtlog_buf_reserve(out, pre + b64 + 1);
    if (rc != RTLOG_OK)
        goto out;
    memcpy(out->p + old, RTLOG_SECRET_PREFIX, pre);
    int w = EVP_EncodeBlock((unsigned char *)out->p + old + pre, raw, (int)raw_len);
    if (w < 0) {
        rc = RTLOG_E_IO;
        goto out;
    }
    out->len = old + pre + (size_t)w;
    out->p[out->len] = '\0';
    rc = RTLOG_OK;
out:
    if (rc == RTLOG_E_IO)
        ERR_clear_error();
    EVP_CIPHER_CTX_free(cx);
    OPENSSL_cleanse(raw, raw_len);
    free(raw);
    return rc;
}

rtlog_err rtlog_secret_open(const uint8_t key[RTLOG_SECRET_KEY_BYTES], const void *aad,
                            size_t aad_len, const char *env, size_t env_len, rtlog_buf *out)
{
    if (!key || (!aad && aad_len) || !env || !out || aad_len > INT32_MAX)
        return RTLOG_E_INVAL;
    size_t pre = strlen(RTLOG_SECRET_PREFIX);
    if (env_len < pre || memcmp(env, RTLOG_SECRET_PREFIX, pre) != 0)
        return RTLOG_E_CORRUPT;
    const char *b = env + pre;
    size_t bl = env_len - pre;
    if (bl == 0 || bl % 4 != 0 || bl > 4 * ((PLAIN_MAX + NONCE_BYTES + TAG_BYTES + 2) / 3))
        return RTLOG_E_CORRUPT;
    for (size_t i = 0; i < bl; i++) {
        unsigned char c = (unsigned char)b[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/' || (c == '=' && i + 2 >= bl)))
            return RTLOG_E_CORRUPT;
    }
    size_t cap = bl / 4 * 3;
    uint8_t *raw = malloc(cap);
    if (!raw)
        return RTLOG_E_NOMEM;
    int d = EVP_DecodeBlock(raw, (const unsigned char *)b, (int)bl);
    rtlog_err rc = RTLOG_E_CORRUPT;
    EVP_CIPHER_CTX *cx = NULL;
    if (d < 0)
        goto out;
    /* EVP_DecodeBlock counts the '=' padding as zero bytes: take them off */
    size_t raw_len = (size_t)d - (b[bl - 1] == '=') - (b[bl - 2] == '=');
    if (raw_len < NONCE_BYTES + TAG_BYTES)
        goto out;
    /* Only the canonical encoding is accepted: base64 leaves unused bits in the last
     * character, and an envelope that differs from what seal wrote, even where it decodes to
     * the same bytes, is not the stored value. Re-encode and compare. */
    {
        unsigned char *re = malloc(bl + 1);
        if (!re) {
            rc = RTLOG_E_NOMEM;
            goto out;
        }
        int w = EVP_EncodeBlock(re, raw, (int)raw_len);
        int same = w == (int)bl && memcmp(re, b, bl) == 0;
        free(re);
        if (!same)
            goto out;
    }
    size_t len = raw_len - NONCE_BYTES - TAG_BYTES;
    size_t old = out->len;
    if ((rc = rtlog_buf_reserve(out, len + 1)) != RTLOG_OK)
        goto out;
    rc = RTLOG_E_CORRUPT;
    int n = 0;
    cx = EVP_CIPHER_CTX_new();
    if (!cx || EVP_DecryptInit_ex(cx, EVP_aes_256_gcm(), NULL, key, raw) != 1 ||
        (aad_len && EVP_DecryptUpdate(cx, NULL, &n, aad, (int)aad_len) != 1) ||
        (len && EVP_DecryptUpdate(cx, (unsigned char *)out->p + old, &n, raw + NONCE_BYTES,
                                  (int)len) != 1) ||
        EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_GCM_SET_TAG, TAG_BYTES, raw + NONCE_BYTES + len) != 1 ||
        EVP_DecryptFinal_ex(cx, (unsigned char *)out->p + old + len, &n) != 1) {
        OPENSSL_cleanse(out->p + old, len);
        ERR_clear_error();
        goto out;
    }
    out->len = old + len;
    out->p[out->len] = '\0';
    rc = RTLOG_OK;
out:
    EVP_CIPHER_CTX_free(cx);
    OPENSSL_cleanse(raw, cap);
    free(raw);
    return rc;
}
