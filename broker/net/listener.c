/* listener.c - accepts client connections and hands them to the session layer. */
#include "listener.h"

#include "conn.h"
#include "errors.h"
#include "herald.h"
#include "log.h"
#include "session.h"
#include "http.h"
#include "component.h"
#include "s2s.h"

/* Accepts one connection and gives it to take (logged under area on failure). */
static void accept_with(uv_stream_t *server, int status, const char *area,
                        void (*take)(struct herald *h, struct conn *c))
{
    struct herald *h = server->data;
    if (status < 0) {
        log_warn(area, "accept failed: %s", uv_strerror(status));
        return;
    }
    struct conn *c = conn_accept(h, server);
    if (c != NULL)
        take(h, c);
}

static void on_connection(uv_stream_t *server, int status)
{
    accept_with(server, status, "c2s", session_accept);
}

static void on_s2s_connection(uv_stream_t *server, int status)
{
    accept_with(server, status, "s2s", s2s_accept);
}

static void on_component_connection(uv_stream_t *server, int status)
{
    accept_with(server, status, "component", component_accept);
}

static void take_http(struct herald *h, struct conn *c) { http_accept(h, c, false); }
static void take_https(struct herald *h, struct conn *c) { http_accept(h, c, true); }

/* The HTTPS listener starts TLS at the first byte. */
static void on_http_connection(uv_stream_t *server, int status)
{
    accept_with(server, status, "http", take_http);
}

static void on_https_connection(uv_stream_t *server, int status)
{
    accept_with(server, status, "http", take_https);
}

static int listen_on(struct herald *h, uv_tcp_t *tcp, bool *flag, const char *area,
                     const char *bind, int port, uv_connection_cb cb)
{
    struct sockaddr_storage addr;
    int rc = uv_ip4_addr(bind, port, (struct sockaddr_in *)&addr);
    if (rc != 0)
        rc = uv_ip6_addr(bind, port, (struct sockaddr_in6 *)&addr);
    if (rc != 0) {
        log_error(area, "bad listen address %s", bind);
        return HERALD_EINVAL;
    }
    if ((rc = uv_tcp_init(h->loop, tcp)) != 0)
        goto fail;
    tcp->data = h;
    *flag = true;
    if ((rc = uv_tcp_bind(tcp, (struct sockaddr *)&addr, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)tcp, 511, cb)) != 0)
        goto fail;
    return 0;
fail:
    log_error(area, "cannot listen on %s port %d: %s", bind, port, uv_strerror(rc));
    return HERALD_EIO;
}

int listener_start(struct herald *h)
{
    const struct config *cfg = h->cfg;
    int rc = listen_on(h, &h->c2s_listener, &h->listening, "c2s", cfg->c2s_bind, cfg->c2s_port,
                       on_connection);
    if (rc == 0 && cfg->http_port != 0)
        rc = listen_on(h, &h->http_listener, &h->http_listening, "http", cfg->http_bind,
                       cfg->http_port, on_http_connection);
    if (rc == 0 && cfg->https_port != 0)
        rc = listen_on(h, &h->https_listener, &h->https_listening, "http", cfg->http_bind,
                       cfg->https_port, on_https_connection);
    if (rc == 0 && cfg->s2s_port != 0)
        rc = listen_on(h, &h->s2s_listener, &h->s2s_listening, "s2s",
                       cfg->s2s_bind ? cfg->s2s_bind : cfg->c2s_bind, cfg->s2s_port,
                       on_s2s_connection);
    if (rc == 0 && cfg->components_port != 0 && cfg->components != NULL)
        rc = listen_on(h, &h->components_listener, &h->components_listening, "component",
                       cfg->components_bind ? cfg->components_bind : cfg->c2s_bind,
                       cfg->components_port, on_component_connection);
    return rc;
}

void listener_stop(struct herald *h)
{
    if (h->listening && !uv_is_closing((uv_handle_t *)&h->c2s_listener))
        uv_close((uv_handle_t *)&h->c2s_listener, NULL);
    if (h->http_listening && !uv_is_closing((uv_handle_t *)&h->http_listener))
        uv_close((uv_handle_t *)&h->http_listener, NULL);
    if (h->https_listening && !uv_is_closing((uv_handle_t *)&h->https_listener))
        uv_close((uv_handle_t *)&h->https_listener, NULL);
    if (h->s2s_listening && !uv_is_closing((uv_handle_t *)&h->s2s_listener))
        uv_close((uv_handle_t *)&h->s2s_listener, NULL);
    if (h->components_listening && !uv_is_closing((uv_handle_t *)&h->components_listener))
        uv_close((uv_handle_t *)&h->components_listener, NULL);
    h->listening = h->http_listening = h->https_listening = false;
    h->s2s_listening = h->components_listening = false;
}
