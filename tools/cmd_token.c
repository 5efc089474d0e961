/* cmd_token.c - `rtlog token`: mint a JWT for rtlog's API and print it on stdout.
 *
 * The signing key is, by default, the data directory's HS256 secret, read or created by
 * the same function `rtlog serve` uses (rtlog_auth_secret_load_or_create), so a token
 * minted here verifies against a server started on the same --data with no key configured.
 * `--jwt-alg RS256|ES256 --jwt-key FILE` signs with a private PEM instead. Stdout carries
 * the token and a newline and nothing else, so `TOKEN=$(rtlog token ...)` works; notes go
 * to stderr. The token itself never appears in an error message.
 * Source: CONTRACT.md "Tools" and "Authentication and authorization (JWT)".
 */
#include "cmds.h"

#include "auth.h"

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_DATA_DIR "./rtlog-data"
#define DEFAULT_TTL      3600
#define MAX_TTL          315360000LL /* ten years: a larger value is a typo (ms for s) */

static void token_usage(FILE *f)
{
    fputs(
        "usage: rtlog token [--data DIR] [--sub NAME] [--subscribe PATTERN]...\n"
        "                   [--publish PATTERN]... [--ttl SECONDS] [--iss X] [--aud X]\n"
        "                   [--jwt-alg ALG --jwt-key FILE]\n"
        "\n"
        "Print a signed JWT for rtlog's WebSocket, SSE and ingest API on stdout (the token\n"
        "and a newline, nothing else).\n"
        "\n"
        "  --data DIR           data directory whose HS256 secret signs the token\n"
        "                       (default " DEFAULT_DATA_DIR "; environment RTLOG_DATA; the flag\n"
        "                       wins). DIR/jwt-secret is created\n"
        "                       (mode 0600) if missing: the same file `rtlog serve` uses.\n"
        "  --sub NAME           subject (default rtlog-cli); the server logs it and\n"
        "                       counts connections per subject\n"
        "  --subscribe PATTERN  allow subscribing to PATTERN; repeatable\n"
        "  --publish PATTERN    allow publishing (ingest) to PATTERN; repeatable\n"
        "  --ttl SECONDS        lifetime, 1..315360000 (default 3600)\n"
        "  --iss X              iss claim (must equal the server's --jwt-iss, if set)\n"
        "  --aud X              aud claim (must equal the server's --jwt-aud, if set)\n"
        "  --jwt-alg ALG        HS256 | RS256 | ES256; use with --jwt-key\n"
        "  --jwt-key FILE       signing key instead of the data directory's secret:\n"
        "                       RS256/ES256: a PEM private key (unencrypted);\n"
        "                       HS256: a hex secret file like DIR/jwt-secret (mode 0600)\n"
        "  -h, --help           this text\n"
        "\n"
        "PATTERN is \"*\" (everything), \"dashboard\", \"<kind>/*\" or \"<kind>/<id>\", kind one\n"
        "of workflow-runs, deployment-jobs, agents. An \"agents/<id>\" subscribe grant also\n"
        "lets that agent report on its own stream.\n"
        "With no --subscribe and no --publish the token grants \"*\" for both (full access)\n"
        "and a note on stderr says so.\n"
        "\n"
        "Example: rtlog token --sub viewer-1 --subscribe 'workflow-runs/*' --ttl 600\n"
        "Exit status: 0 ok, 1 failure (key or secret file), 2 usage error.\n",
        f);
}

static int token_usage_error(const char *msg, const char *arg)
{
    if (arg)
        fprintf(stderr, "rtlog token: %s: %s\n", msg, arg);
    else
        fprintf(stderr, "rtlog token: %s\n", msg);
    fputs("Try 'rtlog token --help'.\n", stderr);
    return 2;
}

static int parse_ttl(const char *s, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || v <= 0 || v > MAX_TTL)
        return -1;
    *out = (int64_t)v;
    return 0;
}

int rtlog_cmd_token(int argc, char **argv)
{
    enum { O_DATA = 256, O_SUB, O_SUBSCRIBE, O_PUBLISH, O_TTL, O_ISS, O_AUD, O_ALG, O_KEY };
    static const struct option longopts[] = {
        {"data", required_argument, NULL, O_DATA},
        {"sub", required_argument, NULL, O_SUB},
        {"subscribe", required_argument, NULL, O_SUBSCRIBE},
        {"publish", required_argument, NULL, O_PUBLISH},
        {"ttl", required_argument, NULL, O_TTL},
        {"iss", required_argument, NULL, O_ISS},
        {"aud", required_argument, NULL, O_AUD},
        {"jwt-alg", required_argument, NULL, O_ALG},
        {"jwt-key", required_argument, NULL, O_KEY},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *data = NULL, *sub = NULL, *iss = NULL, *aud = NULL;
    const char *alg_name = NULL, *key_file = NULL;
    int64_t ttl = DEFAULT_TTL;
    /* Every pattern is one argument, so argc bounds how many there can be. */
    const char **subs = calloc((size_t)argc + 1, sizeof *subs);
    const char **pubs = calloc((size_t)argc + 1, sizeof *pubs);
    size_t ns = 0, np = 0;
    int rc = 2;
    if (!subs || !pubs) {
        fputs("rtlog token: out of memory\n", stderr);
        rc = 1;
        goto out;
    }

    optind = 0; /* GNU: full re-initialisation, so the dispatcher may call us after others */
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, "+h", longopts, NULL);
        if (c == -1)
            break;
        switch (c) {
        case O_DATA:
            data = optarg;
            break;
        case O_SUB:
            sub = optarg;
            break;
        case O_SUBSCRIBE:
            subs[ns++] = optarg;
            break;
        case O_PUBLISH:
            pubs[np++] = optarg;
            break;
        case O_TTL:
            if (parse_ttl(optarg, &ttl) != 0) {
                rc = token_usage_error("--ttl needs a number of seconds, 1..315360000", optarg);
                goto out;
            }
            break;
        case O_ISS:
            iss = optarg;
            break;
        case O_AUD:
            aud = optarg;
            break;
        case O_ALG:
            alg_name = optarg;
            break;
        case O_KEY:
            key_file = optarg;
            break;
        case 'h':
            token_usage(stdout);
            rc = fflush(stdout) == 0 ? 0 : 1;
            goto out;
        default:
            rc = token_usage_error("unknown option or missing value", argv[optind - 1]);
            goto out;
        }
    }
    if (optind < argc) {
        rc = token_usage_error("unexpected argument", argv[optind]);
        goto out;
    }
    rtlog_jwt_alg alg = RTLOG_JWT_HS256;
    if (alg_name && !(alg = rtlog_jwt_alg_parse(alg_name))) {
        rc = token_usage_error("--jwt-alg must be HS256, RS256 or ES256", alg_name);
        goto out;
    }
    if (key_file && !alg_name) {
        rc = token_usage_error("--jwt-key needs --jwt-alg (HS256, RS256 or ES256)", NULL);
        goto out;
    }
    if (alg != RTLOG_JWT_HS256 && !key_file) {
        rc = token_usage_error("--jwt-alg RS256/ES256 needs --jwt-key PRIVATE_PEM_FILE", NULL);
        goto out;
    }
    static const char *const everything[] = {"*"};
    static const uint8_t check_key[RTLOG_JWT_MIN_SECRET]; /* zeros: only to check arguments */
    if (ns == 0 && np == 0) {
        fputs("rtlog token: note: no --subscribe/--publish given; the token grants \"*\" "
              "(full access) for both\n",
              stderr);
    }

    rtlog_mint_opts m = {
        .alg = RTLOG_JWT_HS256,
        .key = check_key,
        .key_len = sizeof check_key,
        .sub = sub,
        .subscribe = ns || np ? subs : everything,
        .n_subscribe = ns || np ? ns : 1,
        .publish = ns || np ? pubs : everything,
        .n_publish = ns || np ? np : 1,
        .ttl_s = ttl,
        .issuer = iss,
        .audience = aud,
        .now = (int64_t)time(NULL),
    };
    /* Check the arguments (patterns, sub, iss/aud) with a throwaway key first: a typo is a
     * usage error (exit 2) and must not create a secret file as a side effect. */
    char *tok = NULL;
    rtlog_errinfo ei = {0};
    rtlog_err err = rtlog_auth_mint(&m, &tok, &ei);
    free(tok);
    tok = NULL;
    if (err != RTLOG_OK) {
        fprintf(stderr, "rtlog token: %s\n", ei.text[0] ? ei.text : rtlog_strerror(err));
        rc = err == RTLOG_E_INVAL ? 2 : 1;
        goto out;
    }

    uint8_t *key = NULL;
    size_t key_len = 0;
    int created = 0;
    if (!key_file && !data) {
        /* the rule of every subcommand (cli_util.h): --data, else $RTLOG_DATA, else the
         * default; not linked from cli_util.c so `token` needs no store library */
        const char *env = getenv("RTLOG_DATA");
        data = env && *env ? env : DEFAULT_DATA_DIR;
    }
    err = key_file ? rtlog_auth_key_load(key_file, alg, &key, &key_len, &ei)
                   : rtlog_auth_secret_load_or_create(data, &key, &key_len, &created, &ei);
    if (err != RTLOG_OK) {
        fprintf(stderr, "rtlog token: %s\n", ei.text[0] ? ei.text : rtlog_strerror(err));
        rc = 1;
        goto out;
    }
    if (created)
        fprintf(stderr, "rtlog token: created a new HS256 secret in %s/jwt-secret\n", data);

    m.alg = alg;
    m.key = key;
    m.key_len = key_len;
    err = rtlog_auth_mint(&m, &tok, &ei);
    explicit_bzero(key, key_len);
    free(key);
    if (err != RTLOG_OK) {
        fprintf(stderr, "rtlog token: %s\n", ei.text[0] ? ei.text : rtlog_strerror(err));
        rc = 1; /* the arguments passed above: the key is what failed */
        goto out;
    }
    printf("%s\n", tok);
    explicit_bzero(tok, strlen(tok));
    free(tok);
    rc = fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
    if (rc)
        fputs("rtlog token: cannot write to stdout\n", stderr);
out:
    free(subs);
    free(pubs);
    return rc;
}
