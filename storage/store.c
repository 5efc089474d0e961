/* store.c - opening and closing a store: the LMDB environment of one data directory, its
 * three databases and format check, the map-size gate, error translation and counters.
 *
 * One environment per data directory and per process (LMDB breaks its POSIX locks if a
 * process opens the same environment twice, so a second open in the same process is refused).
 * MDB_NOTLS ties reader slots to our pooled read txns, not to threads, so the lws thread can
 * keep reset txns across calls. The map grows on demand (writer.c); mdb_env_set_mapsize is
 * legal only while no txn of this process is alive, which the `gate` rwlock guarantees:
 * every txn runs with the gate held shared, a resize takes it exclusive.
 */
#include "store_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_MAP (64u * 1024u * 1024u)

/* ---- one open per environment per process ----------------------------------------------- */

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct reg {
    dev_t dev;
    ino_t ino;
    pid_t pid; /* a forked child inherits this table; only its own entries count */
    const rtlog_store *st;
} reg[64];

static int reg_add(const rtlog_store *st, const struct stat *sb)
{
    int rc = -1;
    pid_t me = getpid();
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < sizeof reg / sizeof reg[0]; i++)
        if (reg[i].st && reg[i].pid == me && reg[i].dev == sb->st_dev && reg[i].ino == sb->st_ino)
            goto out;
    for (size_t i = 0; i < sizeof reg / sizeof reg[0]; i++)
        if (!reg[i].st || reg[i].pid != me) {
            reg[i] = (struct reg){sb->st_dev, sb->st_ino, me, st};
            rc = 0;
            goto out;
        }
out:
    pthread_mutex_unlock(&reg_mu);
    return rc;
}

static void reg_del(const rtlog_store *st)
{
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < sizeof reg / sizeof reg[0]; i++)
        if (reg[i].st == st && reg[i].pid == getpid())
            reg[i].st = NULL;
    pthread_mutex_unlock(&reg_mu);
}

/* ---- errors ------------------------------------------------------------------------------- */

rtlog_err st_lmdb_err(rtlog_store *st, int rc, const char *what, rtlog_errinfo *ei)
{
    (void)st;
    switch (rc) {
    case ENOMEM:
        return rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "%s: out of memory", what);
    case ENOSPC:
    case EDQUOT:
        return rtlog_errinfo_set(ei, RTLOG_E_FULL, -1, NULL,
                                 "storage full: no space left on device (%s)", what);
    case MDB_READERS_FULL:
        return rtlog_errinfo_set(ei, RTLOG_E_IO, -1, NULL,
                                 "%s: all %u LMDB reader slots are in use (one per process that "
                                 "is reading at this moment: rtlog serve and each rtlog export, "
                                 "ls, stat or verify beside it)",
                                 what, (unsigned)ST_MAX_READERS);
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
        return rtlog_errinfo_set(ei, RTLOG_E_CORRUPT, -1, NULL, "%s: %s", what, mdb_strerror(rc));
    default:
        return rtlog_errinfo_set(ei, RTLOG_E_IO, -1, NULL, "%s: %s", what, mdb_strerror(rc));
    }
}

/* ---- map size ------------------------------------------------------------------------------ */

static size_t env_mapsize(MDB_env *env)
{
    MDB_envinfo info;
    if (mdb_env_info(env, &info))
        return 0;
    return info.me_mapsize;
}

int st_adopt_mapsize(rtlog_store *st)
{
    pthread_rwlock_wrlock(&st->gate);
    int rc = mdb_env_set_mapsize(st->env, 0);
    if (!rc)
        st->map_size = env_mapsize(st->env);
    size_t now = st->map_size;
    pthread_rwlock_unlock(&st->gate);
    pthread_mutex_lock(&st->stats_mu);
    st->stats.map_bytes = now;
    pthread_mutex_unlock(&st->stats_mu);
    return rc;
}

rtlog_err st_read_begin(rtlog_store *st, st_reader *r, rtlog_errinfo *ei)
{
    for (int tries = 0;; tries++) {
        pthread_rwlock_rdlock(&st->gate);
        int rc;
        if (r->txn) {
            rc = mdb_txn_renew(r->txn);
        } else {
            rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &r->txn);
            if (rc)
                r->txn = NULL;
        }
        if (!rc) {
            rc = r->cur ? mdb_cursor_renew(r->txn, r->cur)
                        : mdb_cursor_open(r->txn, st->dbi_events, &r->cur);
            if (!rc)
                return RTLOG_OK;
            mdb_txn_reset(r->txn);
            pthread_rwlock_unlock(&st->gate);
            return st_lmdb_err(st, rc, "mdb_cursor_open", ei);
        }
        /* A failed renew leaves the txn finished; start from a fresh one next time. */
        if (r->txn) {
            mdb_txn_abort(r->txn);
            r->txn = NULL;
        }
        pthread_rwlock_unlock(&st->gate);
        if (rc == MDB_MAP_RESIZED && tries < 8) {
            if ((rc = st_adopt_mapsize(st)) == 0)
                continue;
        }
        return st_lmdb_err(st, rc, "mdb_txn_begin(read)", ei);
    }
}

void st_read_end(rtlog_store *st, st_reader *r)
{
    mdb_txn_reset(r->txn);
    pthread_rwlock_unlock(&st->gate);
}

/* ---- open ----------------------------------------------------------------------------------- */

static int mkdir_p(const char *dir)
{
    char path[PATH_MAX];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof path)
        return ENAMETOOLONG;
    memcpy(path, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, 0755) && errno != EEXIST)
            return errno;
        path[i] = c;
    }
    struct stat sb;
    if (stat(dir, &sb))
        return errno;
    return S_ISDIR(sb.st_mode) ? 0 : ENOTDIR;
}

static rtlog_err put_u64(rtlog_store *st, MDB_txn *txn, const char *name, uint64_t v,
                         rtlog_errinfo *ei)
{
    uint8_t b[8];
    put_be64(b, v);
    MDB_val k = {strlen(name), (void *)name}, d = {8, b};
    int rc = mdb_put(txn, st->dbi_meta, &k, &d, 0);
    return rc ? st_lmdb_err(st, rc, "mdb_put(meta)", ei) : RTLOG_OK;
}

/* Open (and for a writable store on an empty environment, create) the three databases and
 * check the format. Runs once, before any other thread uses @st. */
static rtlog_err open_dbs(rtlog_store *st, const char *dir, rtlog_errinfo *ei)
{
    MDB_txn *txn = NULL;
    rtlog_err err = RTLOG_OK;
    int rc;
    for (int tries = 0;; tries++) {
        rc = mdb_txn_begin(st->env, NULL, st->readonly ? MDB_RDONLY : 0, &txn);
        if (rc != MDB_MAP_RESIZED || tries > 4)
            break;
        if ((rc = mdb_env_set_mapsize(st->env, 0)))
            break;
    }
    if (rc) {
        txn = NULL;
        err = st_lmdb_err(st, rc, "mdb_txn_begin", ei);
        goto fail;
    }

    rc = mdb_dbi_open(txn, "meta", 0, &st->dbi_meta);
    if (rc == MDB_NOTFOUND) {
        MDB_stat ms;
        MDB_dbi main_dbi;
        if ((rc = mdb_dbi_open(txn, NULL, 0, &main_dbi)) || (rc = mdb_stat(txn, main_dbi, &ms))) {
            err = st_lmdb_err(st, rc, "mdb_stat", ei);
            goto fail;
        }
        if (ms.ms_entries != 0) {
            err = rtlog_errinfo_set(ei, RTLOG_E_CORRUPT, -1, NULL,
                                    "%s holds an LMDB environment that is not an rtlog store", dir);
            goto fail;
        }
        if (st->readonly) { /* an environment whose creating txn never committed */
            err =
                rtlog_errinfo_set(ei, RTLOG_E_NOTFOUND, -1, NULL, "no rtlog store in %s yet", dir);
            goto fail;
        }
        /* A fresh environment: create the layout. */
        if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &st->dbi_meta)) ||
            (rc = mdb_dbi_open(txn, "streams", MDB_CREATE, &st->dbi_streams)) ||
            (rc = mdb_dbi_open(txn, "events", MDB_CREATE, &st->dbi_events))) {
            err = st_lmdb_err(st, rc, "mdb_dbi_open(create)", ei);
            goto fail;
        }
        uint8_t fb[4] = {0, 0, 0, ST_FORMAT};
        MDB_val k = {6, "format"}, d = {4, fb};
        if ((rc = mdb_put(txn, st->dbi_meta, &k, &d, 0))) {
            err = st_lmdb_err(st, rc, "mdb_put(meta)", ei);
            goto fail;
        }
        if ((err = put_u64(st, txn, "next_id", 1, ei)))
            goto fail;
    } else if (rc) {
        err = st_lmdb_err(st, rc, "mdb_dbi_open(meta)", ei);
        goto fail;
    } else {
        MDB_val k = {6, "format"}, d;
        rc = mdb_get(txn, st->dbi_meta, &k, &d);
        if (rc == MDB_NOTFOUND || (!rc && d.mv_size != 4)) {
            err = rtlog_errinfo_set(ei, RTLOG_E_CORRUPT, -1, NULL,
                                    "%s: not an rtlog store (no format record)", dir);
            goto fail;
        } else if (rc) {
            err = st_lmdb_err(st, rc, "mdb_get(format)", ei);
            goto fail;
        }
        uint8_t fb[4];
        memcpy(fb, d.mv_data, 4);
        uint32_t fmt = (uint32_t)fb[0] << 24 | (uint32_t)fb[1] << 16 | (uint32_t)fb[2] << 8 | fb[3];
        if (fmt != ST_FORMAT) {
            err = rtlog_errinfo_set(ei, RTLOG_E_CORRUPT, -1, NULL,
                                    "%s: store format %u, this rtlog reads format %u", dir, fmt,
                                    ST_FORMAT);
            goto fail;
        }
        if ((rc = mdb_dbi_open(txn, "streams", 0, &st->dbi_streams)) ||
            (rc = mdb_dbi_open(txn, "events", 0, &st->dbi_events))) {
            err = rc == MDB_NOTFOUND ? rtlog_errinfo_set(ei, RTLOG_E_CORRUPT, -1, NULL,
                                                         "%s: rtlog store lacks a database", dir)
                                     : st_lmdb_err(st, rc, "mdb_dbi_open", ei);
            goto fail;
        }
    }
    /* Committing (also a read txn) keeps the DBI handles for the env's lifetime. */
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc) {
        err = st_lmdb_err(st, rc, "mdb_txn_commit(open)", ei);
        goto fail;
    }
    return RTLOG_OK;
fail:
    if (txn)
        mdb_txn_abort(txn);
    return err;
}

rtlog_err rtlog_store_open(const rtlog_store_opts *o, rtlog_store **out, rtlog_errinfo *ei)
{
    if (!o || !o->dir || !o->dir[0] || !out)
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, NULL, "store open: no directory given");
    *out = NULL;
    rtlog_err err = RTLOG_OK;
    int rc;

    if (!o->readonly) {
        if ((rc = mkdir_p(o->dir)))
            return rtlog_errinfo_set(ei, RTLOG_E_IO, -1, NULL, "cannot create directory %s: %s",
                                     o->dir, strerror(rc));
    }
    char dpath[PATH_MAX];
    if ((size_t)snprintf(dpath, sizeof dpath, "%s/data.mdb", o->dir) >= sizeof dpath)
        return rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, NULL, "directory name too long");
    struct stat sb;
    int fresh = stat(dpath, &sb) != 0;
    if (o->readonly && fresh)
        return rtlog_errinfo_set(ei, RTLOG_E_NOTFOUND, -1, NULL, "no rtlog store in %s: %s", o->dir,
                                 strerror(errno));

    rtlog_store *st = calloc(1, sizeof *st);
    if (!st)
        return rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "out of memory");
    snprintf(st->dir, sizeof st->dir, "%s", o->dir);
    st->readonly = o->readonly != 0;
    st->nosync = o->nosync != 0;
    st->map_max = o->map_max_bytes;
    st->max_batch = o->max_batch_events ? o->max_batch_events : 65536u;
    st->qtail = &st->qhead;
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&st->gate, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&st->qmu, NULL);
    pthread_cond_init(&st->qcv, NULL);
    pthread_mutex_init(&st->pool_mu, NULL);
    pthread_mutex_init(&st->stats_mu, NULL);

    if ((rc = mdb_env_create(&st->env))) {
        st->env = NULL;
        err = st_lmdb_err(st, rc, "mdb_env_create", ei);
        goto fail;
    }
    /* Reader slots: with MDB_NOTLS a slot belongs to a pooled read txn, not to a thread or a
     * connection. rtlog serve reads only on its lws thread, one short txn at a time (DESIGN
     * invariant 3), so it holds a slot or two whatever its connection count; the rest are for
     * the CLI readers beside it. Slots of crashed readers are cleared at open and by the
     * writer (writer.c reader_sweep). */
    mdb_env_set_maxreaders(st->env, ST_MAX_READERS);
    mdb_env_set_maxdbs(st->env, 8);
    unsigned flags = MDB_NOTLS;
    if (st->readonly)
        flags |= MDB_RDONLY;
    if (st->nosync)
        flags |= MDB_NOSYNC;
    size_t want = o->map_bytes ? o->map_bytes : DEFAULT_MAP;
    if (st->map_max && want > st->map_max)
        want = st->map_max;
    /* A new environment records its first map size in its meta page: set it before. */
    if (fresh && !st->readonly)
        mdb_env_set_mapsize(st->env, want);
    if ((rc = mdb_env_open(st->env, o->dir, flags, 0644))) {
        err = rtlog_errinfo_set(ei, rc == ENOMEM ? RTLOG_E_NOMEM : RTLOG_E_IO, -1, NULL,
                                "cannot open store %s: %s", o->dir, mdb_strerror(rc));
        goto fail;
    }
    if (stat(dpath, &sb) || reg_add(st, &sb)) {
        err = rtlog_errinfo_set(ei, RTLOG_E_INVAL, -1, NULL,
                                "store %s is already open in this process", o->dir);
        mdb_env_close(st->env);
        st->env = NULL;
        goto fail;
    }
    int dead = 0;
    mdb_reader_check(st->env, &dead); /* slots of crashed readers */

    /* A data.mdb shorter than the pages its meta page says are in use (a truncated copy,
     * a full disk during a copy) would fault with SIGBUS on the first read of a missing
     * page: LMDB maps the file and trusts it. Refuse it here, where only the meta pages
     * at the start of the file have been read. */
    {
        MDB_envinfo info;
        MDB_stat es;
        if (mdb_env_info(st->env, &info) == 0 && mdb_env_stat(st->env, &es) == 0 &&
            (uint64_t)(info.me_last_pgno + 1) * es.ms_psize > (uint64_t)sb.st_size) {
            err = rtlog_errinfo_set(
                ei, RTLOG_E_CORRUPT, -1, NULL,
                "store %s is damaged: data.mdb has %lld bytes but its pages reach %llu bytes "
                "(a truncated file?)",
                o->dir, (long long)sb.st_size,
                (unsigned long long)(info.me_last_pgno + 1) * es.ms_psize);
            goto fail_reg;
        }
    }

    /* An existing store keeps at least the map it recorded (it grew there before); the
     * asked size only raises it, and never past map_max. */
    st->map_size = env_mapsize(st->env);
    if (!st->readonly) {
        if (want > st->map_size) {
            if ((rc = mdb_env_set_mapsize(st->env, want))) {
                err = st_lmdb_err(st, rc, "mdb_env_set_mapsize", ei);
                goto fail_reg;
            }
            st->map_size = env_mapsize(st->env);
        }
    }
    st->stats.map_bytes = st->map_size;

    if ((err = open_dbs(st, o->dir, ei)))
        goto fail_reg;

    if (!st->readonly) {
        st->wcctx = ZSTD_createCCtx();
        st->wdctx = ZSTD_createDCtx();
        st->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
        st->mdctx = EVP_MD_CTX_new();
        if (!st->wcctx || !st->wdctx || !st->sha256 || !st->mdctx ||
            ZSTD_isError(ZSTD_CCtx_setParameter(st->wcctx, ZSTD_c_compressionLevel, ZSTD_LEVEL))) {
            err = rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL,
                                    "cannot create zstd or SHA-256 contexts");
            goto fail_reg;
        }
        if (st_writer_start(st)) {
            err = rtlog_errinfo_set(ei, RTLOG_E_NOMEM, -1, NULL, "cannot start writer thread");
            goto fail_reg;
        }
    }
    *out = st;
    return RTLOG_OK;

fail_reg:
    reg_del(st);
fail:
    rtlog_store_close(st);
    return err;
}

void rtlog_store_close(rtlog_store *st)
{
    if (!st)
        return;
    st_writer_stop(st);
    st_pools_free(st);
    ZSTD_freeCCtx(st->wcctx);
    ZSTD_freeDCtx(st->wdctx);
    EVP_MD_CTX_free(st->mdctx);
    EVP_MD_free(st->sha256);
    rtlog_buf_free(&st->wraw);
    rtlog_buf_free(&st->wdec);
    rtlog_buf_free(&st->wscratch);
    rtlog_buf_free(&st->wblk);
    rtlog_buf_free(&st->wline);
    free(st->titems);
    free(st->group);
    free(st->wslots);
    free(st->wtab);
    free(st->notes);
    if (st->env) {
        mdb_env_close(st->env);
        reg_del(st);
    }
    pthread_rwlock_destroy(&st->gate);
    pthread_mutex_destroy(&st->qmu);
    pthread_cond_destroy(&st->qcv);
    pthread_mutex_destroy(&st->pool_mu);
    pthread_mutex_destroy(&st->stats_mu);
    free(st);
}

void rtlog_store_on_commit(rtlog_store *st, rtlog_commit_cb cb, void *ctx)
{
    pthread_mutex_lock(&st->qmu);
    st->on_commit = cb;
    st->on_commit_ctx = ctx;
    pthread_mutex_unlock(&st->qmu);
}

uint64_t rtlog_store_generation(rtlog_store *st)
{
    /* mdb_env_info() reads the meta pages inside the map, so it runs under the gate like a
     * txn would: a concurrent resize (exclusive gate) remaps them. No txn, no reader slot. */
    MDB_envinfo info;
    pthread_rwlock_rdlock(&st->gate);
    int rc = mdb_env_info(st->env, &info);
    pthread_rwlock_unlock(&st->gate);
    return rc ? 0 : (uint64_t)info.me_last_txnid;
}

void rtlog_store_get_stats(rtlog_store *st, rtlog_store_stats *out)
{
    pthread_mutex_lock(&st->stats_mu);
    *out = st->stats;
    pthread_mutex_unlock(&st->stats_mu);
}
