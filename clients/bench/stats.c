/* stats.c — small utilities of herald-bench: a growable byte buffer, a
 * log-linear latency histogram (64 sub-buckets per power of two, so any
 * percentile is within about 1.6 % of the true value, in constant memory),
 * readers for a process's CPU time and resident set size from /proc, and base64
 * for SASL PLAIN. */
#include "bench.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* ---- byte buffer ---- */

int bbuf_reserve(struct bbuf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra) {
        if (cap > SIZE_MAX / 2)
            return -1;
        cap *= 2;
    }
    char *d = realloc(b->data, cap);
    if (!d)
        return -1;
    b->data = d;
    b->cap = cap;
    return 0;
}

int bbuf_append(struct bbuf *b, const char *s, size_t n)
{
    if (bbuf_reserve(b, n + 1) != 0)
        return -1;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int bbuf_puts(struct bbuf *b, const char *s)
{
    return bbuf_append(b, s, strlen(s));
}

int bbuf_printf(struct bbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || bbuf_reserve(b, (size_t)n + 1) != 0)
        return -1;
    va_start(ap, fmt);
    int m = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (m != n)
        return -1;
    b->len += (size_t)n;
    return 0;
}

void bbuf_free(struct bbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ---- histogram ---- */

/* Values below 2*HIST_SUB are exact; above, each power of two [2^k, 2^(k+1))
 * is cut into HIST_SUB equal buckets. */
static unsigned hist_index(uint64_t v)
{
    if (v < 2 * HIST_SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - 6; /* v >> shift is in [64, 128) */
    unsigned idx = (shift + 1) * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
    return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

/* The largest value that falls into bucket idx. */
static uint64_t hist_value(unsigned idx)
{
    if (idx < 2 * HIST_SUB)
        return idx;
    unsigned shift = idx / HIST_SUB - 1;
    uint64_t m = (uint64_t)(idx % HIST_SUB) + HIST_SUB;
    return ((m + 1) << shift) - 1;
}

void hist_add(struct hist *h, uint64_t ns)
{
    h->b[hist_index(ns)]++;
    h->count++;
    h->sum += ns;
    if (ns > h->max)
        h->max = ns;
}

uint64_t hist_pct(const struct hist *h, double p)
{
    if (h->count == 0)
        return 0;
    uint64_t want = (uint64_t)(p * (double)h->count + 0.999999);
    if (want < 1)
        want = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= want) {
            uint64_t v = hist_value(i);
            return v < h->max ? v : h->max;
        }
    }
    return h->max;
}

/* ---- /proc ---- */

void proc_sample(int pid, struct procstat *out)
{
    char path[64], buf[4096];
    memset(out, 0, sizeof *out);
    if (pid <= 0)
        return;

    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and parentheses: fields
     * are counted from the last ')'. utime and stime are fields 14 and 15. */
    char *p = strrchr(buf, ')');
    if (!p)
        return;
    p++;
    unsigned long long ut = 0, st = 0;
    int field = 2;
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        field++;
        if (field == 14)
            ut = strtoull(tok, NULL, 10);
        else if (field == 15) {
            st = strtoull(tok, NULL, 10);
            break;
        }
    }
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0)
        hz = 100;
    out->cpu_s = (double)(ut + st) / (double)hz;

    snprintf(path, sizeof path, "/proc/%d/status", pid);
    f = fopen(path, "r");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            out->rss_kib = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    out->ok = 1;
}

void proc_sample_set(const int *pids, int n, struct procstat *out)
{
    memset(out, 0, sizeof *out);
    if (n <= 0)
        return;
    if (n > BENCH_MAX_PIDS)
        n = BENCH_MAX_PIDS;
    out->ok = 1;
    out->n = n;
    for (int i = 0; i < n; i++) {
        struct procstat one;
        proc_sample(pids[i], &one);
        if (!one.ok)
            out->ok = 0;
        out->each_cpu_s[i] = one.cpu_s;
        out->cpu_s += one.cpu_s;
        out->rss_kib += one.rss_kib;
    }
}

double self_cpu_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- base64 ---- */

int base64_encode(const unsigned char *in, size_t n, char *out, size_t cap)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t need = (n + 2) / 3 * 4 + 1;
    if (cap < need)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tbl[v & 63] : '=';
    }
    out[o] = '\0';
    return 0;
}
