/* log.h - log lines to stderr: "2026-11-25T14:52:37.123Z info  c2s: text".
 * One global level (the only process-wide state besides OpenSSL/SASL's own). */
#ifndef HERALD_LOG_H
#define HERALD_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level lvl);
/* Parses "debug|info|warn|error"; returns -1 if unknown. */
int log_level_parse(const char *s);
void log_msg(enum log_level lvl, const char *area, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(area, ...) log_msg(LOG_DEBUG, area, __VA_ARGS__)
#define log_info(area, ...) log_msg(LOG_INFO, area, __VA_ARGS__)
#define log_warn(area, ...) log_msg(LOG_WARN, area, __VA_ARGS__)
#define log_error(area, ...) log_msg(LOG_ERROR, area, __VA_ARGS__)

#endif
