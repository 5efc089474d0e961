/* secret.h - sealing agents' task credentials for storage (AES-256-GCM, OpenSSL).
 *
 * CONTRACT "Agents": credentials are never written to disk in clear. The server seals the
 * `credentials` object of a task assignment before it reaches the store and opens it only
 * when it delivers that task to the agent itself while the task is open. The key is 32
 * bytes from configuration (`--secrets-key FILE`) or the data directory's `secrets-key`
 * (made on first start, mode 0600). Each seal uses a fresh random 96-bit nonce; the
 * associated data binds the sealed text to its stream and task, so a sealed value copied
 * into another task or agent does not open.
 * Envelope (what is stored, printable ASCII): "rtlog-sealed:v1:" base64(nonce ‖ ct ‖ tag).
 */
#ifndef RTLOG_SECRET_H
#define RTLOG_SECRET_H

#include <stddef.h>
#include <stdint.h>

#include "rtlog_buf.h"
#include "rtlog_err.h"

#define RTLOG_SECRET_KEY_BYTES 32
#define RTLOG_SECRET_PREFIX "rtlog-sealed:v1:"

/**
 * rtlog_secret_seal() - encrypt @plain and append its envelope to @out.
 * @key:   RTLOG_SECRET_KEY_BYTES bytes. @aad/@aad_len: associated data (not secret, not
 *         stored: the same bytes must be given to open). @plain/@len: bytes to seal.
 * @out:   appended to (NUL-terminated after the envelope; len excludes the NUL).
 * Errors: RTLOG_E_INVAL (NULL arguments, @len > 16 MiB), RTLOG_E_NOMEM, RTLOG_E_IO (the
 *         OS gave no random bytes, or OpenSSL failed). @out is unchanged on error.
 * Context: any thread.
 */
rtlog_err rtlog_secret_seal(const uint8_t key[RTLOG_SECRET_KEY_BYTES], const void *aad,
                            size_t aad_len, const void *plain, size_t len, rtlog_buf *out);

/**
 * rtlog_secret_open() - check and decrypt an envelope made by rtlog_secret_seal().
 * @env/@env_len: the envelope text; borrowed. @out: the plaintext is appended (plus a NUL
 *         not counted in len). The caller should OPENSSL_cleanse()/free it when done.
 * Errors: RTLOG_E_CORRUPT (not an envelope, bad base64, too short, or authentication failed:
 *         wrong key, wrong @aad, or altered bytes; nothing is appended), RTLOG_E_INVAL (NULL
 *         arguments), RTLOG_E_NOMEM.
 * Context: any thread.
 */
rtlog_err rtlog_secret_open(const uint8_t key[RTLOG_SECRET_KEY_BYTES], const void *aad,
                            size_t aad_len, const char *env, size_t env_len, rtlog_buf *out);

#endif
