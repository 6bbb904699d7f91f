/* console.c - serves the web console (docs/web.md) at /console/:
 * the files of api/console/ as compiled into the binary (the table
 * herald_console_files, made by cmake/embed_files.cmake), looked up by
 * exact name. /console redirects to /console/, which is index.html.
 *
 * The page is a client of the REST API like any other, so this file only
 * serves bytes, with headers that keep a browser from doing more with
 * them than showing the page: a Content-Security-Policy that allows
 * scripts, styles and requests from this origin only (no inline script,
 * no framing), X-Content-Type-Options: nosniff, and a type per file. */
#include "console.h"

#include <http_parser.h>
#include <string.h>

#include "http.h"

#define PREFIX "/console"
#define PREFIX_LEN (sizeof(PREFIX) - 1)

/* Every console answer carries these (http_respond adds Cache-Control:
 * no-store, so a browser never keeps a console older than the binary). */
#define CONSOLE_HEADERS                                                                            \
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "           \
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "              \
    "frame-ancestors 'none'\r\n"                                                                   \
    "X-Content-Type-Options: nosniff\r\n"                                                          \
    "Referrer-Policy: no-referrer\r\n"

static const struct {
    const char *suffix;
    const char *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},      {".md", "text/plain; charset=utf-8"},
    {"LICENSE", "text/plain; charset=utf-8"},
};

static const char *type_of(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        size_t sl = strlen(types[i].suffix);
        if (n >= sl && memcmp(name + n - sl, types[i].suffix, sl) == 0)
            return types[i].type;
    }
    return "application/octet-stream";
}

/* The embedded file called name (name_len bytes, not NUL-terminated), or
 * NULL. */
static const struct console_file *find_file(const char *name, size_t name_len)
{
    for (size_t i = 0; i < herald_console_files_count; i++) {
        const struct console_file *f = &herald_console_files[i];
        if (strlen(f->name) == name_len && memcmp(f->name, name, name_len) == 0)
            return f;
    }
    return NULL;
}

bool console_dispatch(struct http_conn *hc, const struct http_req *req)
{
    const char *path = req->path;
    size_t plen = req->path_len;
    if (plen < PREFIX_LEN || memcmp(path, PREFIX, PREFIX_LEN) != 0 ||
        (plen > PREFIX_LEN && path[PREFIX_LEN] != '/'))
        return false;
    if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
        http_problem_h(hc, 405, NULL, NULL, "the console is read with GET (or HEAD) only",
                       "Allow: GET, HEAD\r\n");
        return true;
    }
    if (plen == PREFIX_LEN) {
        /* Relative URLs in the page (console.js, vendor/...) resolve
         * against the directory, so the page lives at /console/. */
        static const char moved[] = "the console is at /console/\n";
        http_respond(hc, 301, "text/plain; charset=utf-8", "Location: /console/\r\n", moved,
                     sizeof(moved) - 1);
        return true;
    }
    const char *name = path + PREFIX_LEN + 1;
    size_t name_len = plen - PREFIX_LEN - 1;
    const struct console_file *f =
        name_len == 0 ? find_file("index.html", 10) : find_file(name, name_len);
    if (f == NULL) {
        http_problem(hc, 404, NULL, NULL, "the console has no such file");
        return true;
    }
    http_respond(hc, 200, type_of(f->name), CONSOLE_HEADERS, (const char *)f->data, f->len);
    return true;
}
