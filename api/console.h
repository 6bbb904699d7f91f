/* console.h - the web console at /console/ (docs/web.md): static
 * files from api/console/, compiled into the binary at build time by
 * cmake/embed_files.cmake, answered by console.c. The page itself talks
 * to the REST API, /metrics and the event streams like any other client:
 * the server side is only these files. */
#ifndef HERALD_CONSOLE_H
#define HERALD_CONSOLE_H
#include <stdbool.h>
#include <stddef.h>

struct http_conn;
struct http_req;

/* One embedded file: name relative to api/console/ ("index.html",
 * "vendor/uPlot.min.css"), its bytes (static, NUL after the last one, not
 * counted in len). */
struct console_file {
    const char *name;
    const unsigned char *data;
    size_t len;
};

/* The generated table (console_files.c in the build directory). */
extern const struct console_file herald_console_files[];
extern const size_t herald_console_files_count;

/* Answers a request whose path is /console or under /console/: the
 * redirect to /console/, an embedded file (GET and HEAD), 404 or 405 as
 * problem+json. False, having answered nothing, for any other path. */
bool console_dispatch(struct http_conn *hc, const struct http_req *req);

#endif
