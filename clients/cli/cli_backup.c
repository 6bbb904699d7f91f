/* cli_backup.c - `herald backup FILE` and `herald restore FILE`: a copy of
 * the data directory's LMDB store, and putting one back (docs/cli.md).
 *
 * backup opens the store read-only beside a running server (LMDB allows
 * several processes on one environment) and writes a compacted copy from
 * one read snapshot (store_backup_fd): consistent while the server keeps
 * writing, and never blocking it. The copy runs in a thread writing into a
 * pipe; this thread moves the bytes to FILE.tmp-PID, says how far it got on
 * stderr once a second, then fsyncs and renames it to FILE, so FILE is
 * either the previous file or a whole backup.
 *
 * restore refuses while a server runs on the data directory: a server holds
 * DIR/herald.lock shared for its lifetime (server.c), restore takes it
 * exclusive (flock(2), store_lock_dir) for the whole replacement. The
 * kernel drops a lock when its process ends, even by kill -9, so a crashed
 * server never blocks a restore; and unlike LMDB's reader table, which only
 * lists processes inside a read transaction at that moment, the lock covers
 * a server that is idle. The backup is checked (an LMDB file holding
 * Herald's schema version) before anything is touched, copied next to the
 * store, checked again, and renamed over data.mdb. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli_clients.h"
#include "config.h"
#include "errors.h"
#include "store.h"

#define COPY_CHUNK (1u << 20)

void cli_backup_usage(FILE *f)
{
    fprintf(f, "Usage: herald backup FILE [--force] [--data-dir DIR | --config FILE]\n"
               "\n"
               "Writes a compacted copy of the data directory's LMDB store (data.mdb) to\n"
               "FILE. Safe while the server runs: the copy is one consistent snapshot and\n"
               "does not stop the server's writes. FILE is written as FILE.tmp-PID and\n"
               "renamed when complete; progress goes to stderr once a second. '-' writes\n"
               "to standard output.\n"
               "\n"
               "  --force          replace FILE if it exists\n"
               "  --data-dir DIR   data directory (default from the config, ./herald-data)\n"
               "  --config FILE    read settings from FILE\n"
               "  -h, --help       show this help\n"
               "\n"
               "Only the store is copied: accounts, tokens, nodes, items, subscriptions,\n"
               "rosters, archives. The TLS certificate and key in the data directory are\n"
               "not (copy them yourself, or let the server make a new self-signed one).\n"
               "In cluster mode it copies this instance's store only.\n"
               "\n"
               "Exit status: 0 written; 1 failed (the reason on stderr); 2 usage.\n"
               "\n"
               "Example:\n"
               "  herald backup /var/backups/herald-$(date +%%F).mdb --data-dir /var/lib/herald\n");
}

void cli_restore_usage(FILE *f)
{
    fprintf(f, "Usage: herald restore FILE [--force] [--data-dir DIR | --config FILE]\n"
               "\n"
               "Puts a backup made by 'herald backup' back as the data directory's store.\n"
               "Refuses while a server uses the data directory (a server holds\n"
               "DIR/herald.lock), and refuses to replace an existing store without\n"
               "--force. FILE is checked first (an LMDB file with Herald's schema\n"
               "version), copied to DIR/data.mdb.restore (progress on stderr once a\n"
               "second), checked again, then renamed over DIR/data.mdb. Start the server\n"
               "afterwards. Single-instance only: refused in cluster mode.\n"
               "\n"
               "  --force          replace the store that is there\n"
               "  --data-dir DIR   data directory (default from the config, ./herald-data)\n"
               "  --config FILE    read settings from FILE\n"
               "  -h, --help       show this help\n"
               "\n"
               "Exit status: 0 restored; 1 refused or failed (the reason on stderr);\n"
               "2 usage.\n"
               "\n"
               "Example:\n"
               "  herald restore /var/backups/herald-2026-12-06.mdb --data-dir /var/lib/herald\n");
}

static int parse_args(const char *prog, int argc, char **argv, const char **file, bool *force)
{
    *file = NULL;
    *force = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--force") == 0) {
            *force = true;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "%s: unknown option %s\n", prog, argv[i]);
            return 2;
        } else if (*file == NULL) {
            *file = argv[i];
        } else {
            fprintf(stderr, "%s: unexpected argument %s\n", prog, argv[i]);
            return 2;
        }
    }
    if (*file == NULL) {
        fprintf(stderr, "%s: give the FILE\nRun '%s --help' for the options.\n", prog, prog);
        return 2;
    }
    return 0;
}

/* Like the other data-directory commands (cli_open_store): the default
 * directory is relative to the working directory, so say which it is. */
static void say_dir(const char *prog, const struct config *cfg)
{
    if (cfg->data_dir_origin == NULL)
        fprintf(stderr, "%s: using data directory %s (default; --data-dir to change)\n", prog,
                cfg->data_dir);
    else if (strcmp(cfg->data_dir_origin, "--data-dir") != 0)
        fprintf(stderr, "%s: using data directory %s (from %s; --data-dir to change)\n", prog,
                cfg->data_dir, cfg->data_dir_origin);
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

/* fsync of the directory holding path, so that a rename in it is durable. */
static int sync_dir_of(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else if ((size_t)(slash - path) < sizeof(dir))
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    else
        return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static unsigned long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000u + (unsigned long long)ts.tv_nsec / 1000000u;
}

/* Moves everything from in to out, saying how far on stderr once a second
 * (total 0: unknown). 0, or -1 with errno. */
static int pump(const char *prog, int in, int out, unsigned long long total)
{
    char *chunk = malloc(COPY_CHUNK);
    if (chunk == NULL)
        return -1;
    unsigned long long done = 0, started = now_ms(), shown = started;
    int rc = -1;
    for (;;) {
        ssize_t n = read(in, chunk, COPY_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto done;
        if (n == 0)
            break;
        if (write_all(out, chunk, (size_t)n) != 0)
            goto done;
        done += (unsigned long long)n;
        unsigned long long t = now_ms();
        if (t - shown >= 1000) {
            shown = t;
            if (total)
                fprintf(stderr, "%s: %llu of %llu MiB (%.0f%%)\n", prog, done >> 20, total >> 20,
                        100.0 * (double)done / (double)total);
            else
                fprintf(stderr, "%s: %llu MiB so far\n", prog, done >> 20);
        }
    }
    rc = 0;
done:
    free(chunk);
    return rc;
}

struct copier {
    struct store *st;
    int fd; /* the pipe's write end: closed by the thread when done */
    int rc;
};

static void *copy_thread(void *ud)
{
    struct copier *c = ud;
    c->rc = store_backup_fd(c->st, c->fd);
    close(c->fd);
    c->fd = -1;
    return NULL;
}

int cli_backup(struct config *cfg, int argc, char **argv)
{
    const char *file;
    bool force;
    int rc = parse_args("herald backup", argc, argv, &file, &force);
    if (rc != 0)
        return rc;
    signal(SIGPIPE, SIG_IGN); /* a closed pipe is an error return, not death */
    say_dir("herald backup", cfg);
    bool to_stdout = strcmp(file, "-") == 0;
    struct stat sb;
    char mdb[4096], tmp[4096];
    if ((size_t)snprintf(mdb, sizeof(mdb), "%s/data.mdb", cfg->data_dir) >= sizeof(mdb) ||
        (size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", file, (long)getpid()) >= sizeof(tmp)) {
        fprintf(stderr, "herald backup: path too long\n");
        return 2;
    }
    if (stat(mdb, &sb) != 0) {
        fprintf(stderr, "herald backup: %s holds no store (%s: %s)\n", cfg->data_dir, mdb,
                strerror(errno));
        return 1;
    }
    if (!to_stdout && !force && stat(file, &sb) == 0) {
        fprintf(stderr, "herald backup: %s exists; --force replaces it\n", file);
        return 1;
    }
    struct store *st = NULL;
    struct store_opts so = {.map_size = cfg->map_size_mb << 20,
                            .max_map_size = cfg->max_map_size_mb << 20,
                            .read_only = true};
    if ((rc = store_open(&st, cfg->data_dir, &so)) != 0) {
        fprintf(stderr, "herald backup: cannot open the store in %s: %s\n", cfg->data_dir,
                herald_strerror(rc));
        return 1;
    }
    int ret = 1, out = -1, pfd[2] = {-1, -1};
    bool thread_started = false;
    pthread_t th;
    struct copier cp = {.st = st, .fd = -1, .rc = 0};
    out = to_stdout ? STDOUT_FILENO : open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        fprintf(stderr, "herald backup: cannot create %s: %s\n", tmp, strerror(errno));
        goto done;
    }
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        fprintf(stderr, "herald backup: pipe: %s\n", strerror(errno));
        goto done;
    }
    cp.fd = pfd[1];
    pfd[1] = -1;
    if (pthread_create(&th, NULL, copy_thread, &cp) != 0) {
        close(cp.fd);
        fprintf(stderr, "herald backup: cannot start the copy thread\n");
        goto done;
    }
    thread_started = true;
    int prc = pump("herald backup", pfd[0], out, 0);
    int perr = errno;
    /* Closing the read end makes a copy still writing fail (EPIPE; SIGPIPE
     * is ignored below) rather than block forever. */
    close(pfd[0]);
    pfd[0] = -1;
    pthread_join(th, NULL);
    thread_started = false;
    if (prc != 0) {
        fprintf(stderr, "herald backup: writing %s: %s\n", to_stdout ? "stdout" : tmp,
                strerror(perr));
        goto done;
    }
    if (cp.rc != 0) {
        fprintf(stderr, "herald backup: the copy of %s failed: %s\n", mdb, herald_strerror(cp.rc));
        goto done;
    }
    if (to_stdout) {
        ret = 0;
        goto done;
    }
    if (fsync(out) != 0 || close(out) != 0) {
        out = -1;
        fprintf(stderr, "herald backup: writing %s: %s\n", tmp, strerror(errno));
        goto done;
    }
    out = -1;
    uint32_t version;
    if ((rc = store_backup_check(tmp, &version)) != 0) {
        fprintf(stderr, "herald backup: the copy %s does not check out: %s\n", tmp,
                herald_strerror(rc));
        goto done;
    }
    if (rename(tmp, file) != 0 || sync_dir_of(file) != 0) {
        fprintf(stderr, "herald backup: cannot rename %s to %s: %s\n", tmp, file, strerror(errno));
        goto done;
    }
    if (stat(file, &sb) == 0)
        fprintf(stderr, "herald backup: wrote %s (%lld bytes, schema version %u)\n", file,
                (long long)sb.st_size, (unsigned)version);
    ret = 0;
done:
    if (thread_started) {
        if (pfd[0] >= 0)
            close(pfd[0]);
        pfd[0] = -1;
        pthread_join(th, NULL);
    }
    if (pfd[0] >= 0)
        close(pfd[0]);
    if (out >= 0 && !to_stdout)
        close(out);
    if (ret != 0 && !to_stdout)
        unlink(tmp);
    store_close(st);
    return ret;
}

int cli_restore(struct config *cfg, int argc, char **argv)
{
    const char *file;
    bool force;
    int rc = parse_args("herald restore", argc, argv, &file, &force);
    if (rc != 0)
        return rc;
    if (cfg->cluster_name) {
        fprintf(stderr, "herald restore: not in cluster mode (an instance's store follows the "
                        "cluster log; see docs/cluster.md)\n");
        return 1;
    }
    say_dir("herald restore", cfg);
    const char *dir = cfg->data_dir;
    char mdb[4096], part[4096], lockmdb[4096];
    if ((size_t)snprintf(mdb, sizeof(mdb), "%s/data.mdb", dir) >= sizeof(mdb) ||
        (size_t)snprintf(part, sizeof(part), "%s/data.mdb.restore", dir) >= sizeof(part) ||
        (size_t)snprintf(lockmdb, sizeof(lockmdb), "%s/lock.mdb", dir) >= sizeof(lockmdb)) {
        fprintf(stderr, "herald restore: path too long\n");
        return 2;
    }
    struct stat sb;
    uint32_t version;
    if (stat(file, &sb) != 0) {
        fprintf(stderr, "herald restore: %s: %s\n", file, strerror(errno));
        return 1;
    }
    if ((rc = store_backup_check(file, &version)) != 0) {
        if (rc == HERALD_ESCHEMA && version)
            fprintf(stderr,
                    "herald restore: %s has schema version %u; this herald knows up to %u\n", file,
                    (unsigned)version, STORE_SCHEMA_VERSION);
        else
            fprintf(stderr, "herald restore: %s is not a Herald backup (%s)\n", file,
                    rc == HERALD_ESCHEMA ? "no Herald schema record" : "not an LMDB file");
        return 1;
    }
    unsigned long long total = (unsigned long long)sb.st_size;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "herald restore: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    int lock = store_lock_dir(dir, true);
    if (lock == HERALD_ECONFLICT) {
        fprintf(stderr,
                "herald restore: a server is running on %s (it holds %s/herald.lock); "
                "stop it first\n",
                dir, dir);
        return 1;
    }
    if (lock < 0) {
        fprintf(stderr, "herald restore: cannot lock %s/herald.lock\n", dir);
        return 1;
    }
    int ret = 1, in = -1, out = -1;
    if (stat(mdb, &sb) == 0 && !force) {
        fprintf(stderr, "herald restore: %s already holds a store (%s); --force replaces it\n", dir,
                mdb);
        goto done;
    }
    if ((in = open(file, O_RDONLY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "herald restore: %s: %s\n", file, strerror(errno));
        goto done;
    }
    unlink(part); /* left by an interrupted restore: we hold the lock */
    if ((out = open(part, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
        fprintf(stderr, "herald restore: cannot create %s: %s\n", part, strerror(errno));
        goto done;
    }
    if (pump("herald restore", in, out, total) != 0 || fsync(out) != 0) {
        fprintf(stderr, "herald restore: copying %s to %s: %s\n", file, part, strerror(errno));
        goto done;
    }
    if (close(out) != 0) {
        out = -1;
        fprintf(stderr, "herald restore: writing %s: %s\n", part, strerror(errno));
        goto done;
    }
    out = -1;
    if ((rc = store_backup_check(part, &version)) != 0) {
        fprintf(stderr, "herald restore: the copy %s does not check out: %s\n", part,
                herald_strerror(rc));
        goto done;
    }
    /* The old environment's reader table describes the old file; no server
     * holds it (we have the lock), so it goes and the next opener makes a
     * fresh one. */
    if (unlink(lockmdb) != 0 && errno != ENOENT) {
        fprintf(stderr, "herald restore: cannot remove %s: %s\n", lockmdb, strerror(errno));
        goto done;
    }
    if (rename(part, mdb) != 0 || sync_dir_of(mdb) != 0) {
        fprintf(stderr, "herald restore: cannot rename %s to %s: %s\n", part, mdb, strerror(errno));
        goto done;
    }
    fprintf(stderr, "herald restore: restored %s into %s (%llu bytes, schema version %u)\n", file,
            dir, total, (unsigned)version);
    ret = 0;
done:
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    if (ret != 0)
        unlink(part);
    close(lock);
    return ret;
}
