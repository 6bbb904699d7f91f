/* log.h - log lines to stderr: "2026-11-25T14:52:37.123Z info  c2s: text".
 * One global level (the only process-wide state besides OpenSSL/SASL's own). */
#ifndef HERALD_LOG_H
#define HERALD_LOG_H
#include <stdint.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level lvl);
/* Parses "debug|info|warn|error"; returns -1 if unknown. */
int log_level_parse(const char *s);
void log_msg(enum log_level lvl, const char *area, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A budget for lines an attacker can cause at will (failed logins, refused
 * connections): at most LOG_LIMIT_BURST lines per LOG_LIMIT_WINDOW_S seconds
 * per call site; the first line of the next window says how many were
 * dropped. Usage: static struct log_limit lim; log_limited(&lim, LOG_WARN,
 * "sasl", "...", ...). Zero-initialized. */
#define LOG_LIMIT_BURST 10
#define LOG_LIMIT_WINDOW_S 10
struct log_limit {
    long long window;       /* monotonic second the current window began */
    unsigned lines;         /* written in this window */
    unsigned long suppressed;
};
void log_limited(struct log_limit *l, enum log_level lvl, const char *area, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The wall clock in unix milliseconds (what log lines are stamped with). */
uint64_t wall_ms(void);

#define log_debug(area, ...) log_msg(LOG_DEBUG, area, __VA_ARGS__)
#define log_info(area, ...) log_msg(LOG_INFO, area, __VA_ARGS__)
#define log_warn(area, ...) log_msg(LOG_WARN, area, __VA_ARGS__)
#define log_error(area, ...) log_msg(LOG_ERROR, area, __VA_ARGS__)

#endif
