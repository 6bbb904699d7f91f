/* cli_rest.c - the REST side of the command-line clients: connection
 * options, one blocking request on libcurl's easy interface, problem+json
 * rendering and small JSON readers (docs/cli.md, docs/rest-api.md).
 *
 * Blocking is right here: each command does one thing at a time and exits.
 * The easy handle is reused between requests, so curl keeps the connection
 * alive across them. Answers are collected into a struct buf capped at
 * CLI_MAX_BODY: a bigger answer aborts the transfer (a connection failure). */
#include "cli_rest.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

void cli_rest_init(struct cli_rest *c, const char *prog)
{
    memset(c, 0, sizeof(*c));
    c->prog = prog;
    c->url = CLI_DEFAULT_URL;
    c->token = getenv("HERALD_TOKEN");
}

void cli_rest_usage(FILE *f, bool with_xmpp)
{
    fprintf(f, "Connection (REST, docs/rest-api.md):\n"
               "  --url URL        the server's HTTP listener (default " CLI_DEFAULT_URL ",\n"
               "                   Herald's [http] port; https://HOST:5281 for TLS)\n"
               "  --token TOKEN    bearer token from 'herald token create' (default:\n"
               "                   the HERALD_TOKEN environment variable)\n"
               "  --cacert FILE    trust the CA certificate(s) in FILE for TLS\n"
               "  --insecure       TLS without verifying the certificate\n");
    if (with_xmpp)
        fprintf(f, "Connection (XMPP, instead of REST; chosen by --jid):\n"
                   "  --jid JID        the account to log in as (local@domain)\n"
                   "  --password PW    its password (default: the HERALD_PASSWORD\n"
                   "                   environment variable)\n"
                   "  --host HOST      server to connect to (default: the JID's domain)\n"
                   "  --port N         its client port (default 5222)\n"
                   "  --service JID    the pubsub service (default pubsub.DOMAIN)\n"
                   "                   STARTTLS is required; the certificate must name the\n"
                   "                   JID's domain and verify (--cacert, or --insecure);\n"
                   "                   SASL PLAIN over that TLS\n");
    else
        fprintf(f, "  (no XMPP transport for this command: --jid etc. are refused)\n");
}

int cli_rest_option(struct cli_rest *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char **field = NULL;
    if (strcmp(a, "--url") == 0)
        field = &c->url;
    else if (strcmp(a, "--token") == 0)
        field = &c->token;
    else if (strcmp(a, "--cacert") == 0)
        field = &c->cacert;
    else if (strcmp(a, "--jid") == 0)
        field = &c->jid;
    else if (strcmp(a, "--password") == 0)
        field = &c->password;
    else if (strcmp(a, "--host") == 0)
        field = &c->host;
    else if (strcmp(a, "--service") == 0)
        field = &c->service;
    else if (strcmp(a, "--insecure") == 0 || strcmp(a, "-k") == 0) {
        c->insecure = true;
        return 1;
    } else if (strcmp(a, "--port") == 0) {
        char *end;
        long p = *i + 1 < argc ? strtol(argv[*i + 1], &end, 10) : -1;
        if (p < 1 || p > 65535 || *end != '\0') {
            fprintf(stderr, "%s: --port takes a port number\n", c->prog);
            return -1;
        }
        c->port = (int)p;
        ++*i;
        return 1;
    }
    if (field == NULL)
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "%s: %s needs a value\n", c->prog, a);
        return -1;
    }
    *field = argv[++*i];
    return 1;
}

int cli_rest_only(struct cli_rest *c)
{
    if (c->jid || c->password || c->host || c->port || c->service) {
        fprintf(stderr,
                "%s: no XMPP transport for this command (--jid, --password, --host, --port, "
                "--service are for 'herald pub' and 'herald sub'); use --url and --token (REST)\n",
                c->prog);
        return CLI_USAGE;
    }
    return 0;
}

int cli_rest_open(struct cli_rest *c)
{
    if (c->token == NULL || c->token[0] == '\0') {
        fprintf(stderr,
                "%s: no token: give --token or set HERALD_TOKEN "
                "(make one with 'herald token create --jid JID')\n",
                c->prog);
        return CLI_USAGE;
    }
    if (strncmp(c->url, "http://", 7) != 0 && strncmp(c->url, "https://", 8) != 0) {
        fprintf(stderr, "%s: --url must start with http:// or https:// (got '%s')\n", c->prog,
                c->url);
        return CLI_USAGE;
    }
    size_t n = strlen(c->url);
    while (n > 0 && c->url[n - 1] == '/')
        n--;
    if (n >= sizeof(c->url_buf)) {
        fprintf(stderr, "%s: --url is too long\n", c->prog);
        return CLI_USAGE;
    }
    memcpy(c->url_buf, c->url, n);
    c->url_buf[n] = '\0';
    c->url = c->url_buf;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || (c->curl = curl_easy_init()) == NULL) {
        fprintf(stderr, "%s: cannot initialise libcurl\n", c->prog);
        return CLI_CONNECT;
    }
    return 0;
}

void cli_rest_close(struct cli_rest *c)
{
    if (c->curl) {
        curl_easy_cleanup(c->curl);
        c->curl = NULL;
        curl_global_cleanup();
    }
}

void cli_rest_segment(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            buf_putc(b, (char)*p);
        } else {
            buf_putc(b, '%');
            buf_putc(b, hex[*p >> 4]);
            buf_putc(b, hex[*p & 15]);
        }
    }
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    struct buf *b = ud;
    buf_append(b, data, size * n);
    return buf_ok(b) ? size * n : 0; /* 0 aborts: over CLI_MAX_BODY */
}

bool cli_rest_easy(struct cli_rest *c, const char *url, struct curl_slist *hdrs)
{
    CURL *e = c->curl;
    bool ok = true;
    curl_easy_reset(e);
    c->errbuf[0] = '\0';
    CLI_SETOPT(ok, e, CURLOPT_URL, url);
    CLI_SETOPT(ok, e, CURLOPT_HTTPHEADER, hdrs);
    CLI_SETOPT(ok, e, CURLOPT_ERRORBUFFER, c->errbuf);
    CLI_SETOPT(ok, e, CURLOPT_NOSIGNAL, 1L);
    CLI_SETOPT(ok, e, CURLOPT_CONNECTTIMEOUT, 10L);
    if (c->cacert)
        CLI_SETOPT(ok, e, CURLOPT_CAINFO, c->cacert);
    if (c->insecure) {
        CLI_SETOPT(ok, e, CURLOPT_SSL_VERIFYPEER, 0L);
        CLI_SETOPT(ok, e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    return ok;
}

int cli_rest_request(struct cli_rest *c, const char *method, const char *path, const char *ctype,
                     const char *body, size_t body_len, long *status, struct buf *resp)
{
    struct curl_slist *hdrs = NULL, *h;
    struct buf url, auth, ct;
    int ret = CLI_CONNECT;
    buf_init(&url, 0);
    buf_init(&auth, 0);
    buf_init(&ct, 0);
    buf_puts(&url, c->url);
    buf_puts(&url, path);
    buf_printf(&auth, "Authorization: Bearer %s", c->token);
    if (ctype)
        buf_printf(&ct, "Content-Type: %s", ctype);
    if (buf_nul(&url) != 0 || buf_nul(&auth) != 0 || buf_nul(&ct) != 0) {
        fprintf(stderr, "%s: out of memory\n", c->prog);
        goto done;
    }
    if ((h = curl_slist_append(hdrs, auth.data)) == NULL)
        goto oom;
    hdrs = h;
    if ((h = curl_slist_append(hdrs, "Accept: application/json")) == NULL)
        goto oom;
    hdrs = h;
    if (ctype) {
        if ((h = curl_slist_append(hdrs, ct.data)) == NULL)
            goto oom;
        hdrs = h;
    }
    CURL *e = c->curl;
    buf_reset(resp);
    resp->max = CLI_MAX_BODY;
    bool ok = cli_rest_easy(c, url.data, hdrs);
    CLI_SETOPT(ok, e, CURLOPT_CUSTOMREQUEST, method);
    CLI_SETOPT(ok, e, CURLOPT_WRITEFUNCTION, on_body);
    CLI_SETOPT(ok, e, CURLOPT_WRITEDATA, resp);
    CLI_SETOPT(ok, e, CURLOPT_TIMEOUT, 60L);
    if (body) {
        CLI_SETOPT(ok, e, CURLOPT_POSTFIELDS, body);
        CLI_SETOPT(ok, e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    } else if (strcmp(method, "POST") == 0) {
        CLI_SETOPT(ok, e, CURLOPT_POSTFIELDS, "");
        CLI_SETOPT(ok, e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    }
    if (strcmp(method, "GET") == 0)
        CLI_SETOPT(ok, e, CURLOPT_HTTPGET, 1L);
    if (!ok) {
        fprintf(stderr, "%s: libcurl refused an option of the request\n", c->prog);
        goto done;
    }
    CURLcode cc = curl_easy_perform(e);
    if (cc != CURLE_OK) {
        fprintf(stderr, "%s: %s %s: %s\n", c->prog, method, url.data,
                c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc));
        goto done;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    if (buf_nul(resp) != 0)
        goto oom;
    ret = 0;
    goto done;
oom:
    fprintf(stderr, "%s: out of memory\n", c->prog);
done:
    curl_slist_free_all(hdrs);
    buf_free(&url);
    buf_free(&auth);
    buf_free(&ct);
    return ret;
}

int cli_rest_refused(struct cli_rest *c, long status, const struct buf *resp)
{
    yajl_val v = NULL;
    char err[128];
    if (resp->len && resp->data[0] == '{')
        v = yajl_tree_parse(resp->data, err, sizeof(err));
    const char *title = cli_json_str(v, "title"), *detail = cli_json_str(v, "detail");
    if (title && detail)
        fprintf(stderr, "%s: %ld %s: %s\n", c->prog, status, title, detail);
    else if (title)
        fprintf(stderr, "%s: %ld %s\n", c->prog, status, title);
    else
        fprintf(stderr, "%s: the server answered %ld%s%.200s\n", c->prog, status,
                resp->len ? ": " : "", resp->len ? resp->data : "");
    yajl_tree_free(v);
    return CLI_REFUSED;
}

yajl_val cli_json_parse(struct cli_rest *c, const struct buf *body)
{
    char err[256];
    yajl_val v = body->len ? yajl_tree_parse(body->data, err, sizeof(err)) : NULL;
    if (v == NULL)
        fprintf(stderr, "%s: the server's answer is not JSON\n", c->prog);
    return v;
}

const char *cli_json_str(yajl_val v, const char *key)
{
    const char *path[] = {key, NULL};
    yajl_val s = v ? yajl_tree_get(v, path, yajl_t_string) : NULL;
    return s ? YAJL_GET_STRING(s) : NULL;
}

long long cli_json_int(yajl_val v, const char *key)
{
    const char *path[] = {key, NULL};
    yajl_val n = v ? yajl_tree_get(v, path, yajl_t_number) : NULL;
    return n && YAJL_IS_INTEGER(n) ? YAJL_GET_INTEGER(n) : -1;
}

unsigned long long cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000u + (unsigned long long)ts.tv_nsec / 1000000u;
}
