/* log.c - timestamped, levelled log lines on stderr. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static enum log_level min_level = LOG_INFO;
static const char *names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level lvl) { min_level = lvl; }

int log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, names[i]) == 0)
            return i;
    if (strcasecmp(s, "warning") == 0)
        return LOG_WARN;
    return -1;
}

uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

__attribute__((format(printf, 3, 0))) static void log_v(enum log_level lvl, const char *area,
                                                     const char *fmt, va_list ap)
{
    struct timespec ts;
    struct tm tm;
    char when[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    char line[2048];
    int n = snprintf(line, sizeof(line), "%s.%03ldZ %-5s %s: ", when, ts.tv_nsec / 1000000L,
                     names[lvl], area);
    if (n < 0 || (size_t)n >= sizeof(line))
        n = 0;
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    /* One write per line so concurrent writers do not interleave. */
    size_t len = strlen(line);
    if (len < sizeof(line) - 1)
        line[len++] = '\n';
    else
        line[sizeof(line) - 2] = '\n', len = sizeof(line) - 1;
    fwrite(line, 1, len, stderr);
}

void log_msg(enum log_level lvl, const char *area, const char *fmt, ...)
{
    if (lvl < min_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_v(lvl, area, fmt, ap);
    va_end(ap);
}

void log_limited(struct log_limit *l, enum log_level lvl, const char *area, const char *fmt, ...)
{
    if (lvl < min_level)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (ts.tv_sec - l->window >= LOG_LIMIT_WINDOW_S) {
        if (l->suppressed)
            log_msg(lvl, area, "%lu similar lines suppressed in the last %d s", l->suppressed,
                    LOG_LIMIT_WINDOW_S);
        l->window = ts.tv_sec;
        l->lines = 0;
        l->suppressed = 0;
    }
    if (l->lines >= LOG_LIMIT_BURST) {
        l->suppressed++;
        return;
    }
    l->lines++;
    va_list ap;
    va_start(ap, fmt);
    log_v(lvl, area, fmt, ap);
    va_end(ap);
}
