/* listener.c - accepts client connections and hands them to the session layer. */
#include "listener.h"

#include "conn.h"
#include "errors.h"
#include "herald.h"
#include "log.h"
#include "session.h"

static void on_connection(uv_stream_t *server, int status)
{
    struct herald *h = server->data;
    if (status < 0) {
        log_warn("c2s", "accept failed: %s", uv_strerror(status));
        return;
    }
    struct conn *c = conn_accept(h, server);
    if (c != NULL)
        session_accept(h, c);
}

int listener_start(struct herald *h)
{
    const struct config *cfg = h->cfg;
    struct sockaddr_storage addr;
    int rc = uv_ip4_addr(cfg->c2s_bind, cfg->c2s_port, (struct sockaddr_in *)&addr);
    if (rc != 0)
        rc = uv_ip6_addr(cfg->c2s_bind, cfg->c2s_port, (struct sockaddr_in6 *)&addr);
    if (rc != 0) {
        log_error("c2s", "bad listen address %s", cfg->c2s_bind);
        return HERALD_EINVAL;
    }
    if ((rc = uv_tcp_init(h->loop, &h->c2s_listener)) != 0)
        goto fail;
    h->c2s_listener.data = h;
    h->listening = true;
    if ((rc = uv_tcp_bind(&h->c2s_listener, (struct sockaddr *)&addr, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&h->c2s_listener, 511, on_connection)) != 0)
        goto fail;
    return 0;
fail:
    log_error("c2s", "cannot listen on %s port %d: %s", cfg->c2s_bind, cfg->c2s_port,
              uv_strerror(rc));
    return HERALD_EIO;
}

void listener_stop(struct herald *h)
{
    if (h->listening && !uv_is_closing((uv_handle_t *)&h->c2s_listener))
        uv_close((uv_handle_t *)&h->c2s_listener, NULL);
    h->listening = false;
}
