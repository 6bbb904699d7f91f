/* test_conn.c - the connection layer's flow control (conn.c): the read
 * budget per loop turn, the hard bound of the write queue, and pacing
 * (a producer waiting for a recipient's queue, released when it drains or
 * closes, and unlinked when the producer itself closes).
 *
 * Real sockets on loopback and a real libuv loop, but no server: the test
 * plays the prepare handle itself (conn_flush_all) so that it decides where
 * a loop turn ends. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "conn.h"
#include "errors.h"
#include "herald.h"
#include "test.h"

#define MAXC 4

struct rec {
    size_t bytes;     /* input delivered to the handler */
    bool closed;
};

struct fix {
    uv_loop_t loop;
    struct config cfg;
    struct herald *h;
    uv_tcp_t server;
    struct conn *conns[MAXC];
    struct rec recs[MAXC];
    int clients[MAXC];
    unsigned n;
};

static void on_data(void *ud, const char *data, size_t len)
{
    struct rec *r = ud;
    r->bytes += len;
}

static void on_close(void *ud)
{
    struct rec *r = ud;
    r->closed = true;
}

static const struct conn_handler handler = {.on_data = on_data, .on_close = on_close};

static void on_connection(uv_stream_t *srv, int status)
{
    struct fix *f = srv->data;
    if (status < 0 || f->n >= MAXC)
        return;
    struct conn *c = conn_accept(f->h, srv);
    if (c == NULL)
        return;
    f->conns[f->n] = c;
    if (conn_start(c, &handler, &f->recs[f->n]) == 0)
        f->n++;
}

static int setup(struct fix *f, size_t outq, size_t budget)
{
    memset(f, 0, sizeof(*f));
    if (uv_loop_init(&f->loop) != 0)
        return -1;
    f->cfg.max_outq_bytes = outq;
    f->cfg.max_read_per_turn = budget;
    f->h = calloc(1, sizeof(*f->h));
    if (f->h == NULL)
        return -1;
    f->h->loop = &f->loop;
    f->h->cfg = &f->cfg;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(&f->loop, &f->server);
    f->server.data = f;
    if (uv_tcp_bind(&f->server, (struct sockaddr *)&a, 0) != 0 ||
        uv_listen((uv_stream_t *)&f->server, 8, on_connection) != 0)
        return -1;
    return 0;
}

/* A client connected and accepted; returns its index or -1. */
static int connect_one(struct fix *f)
{
    struct sockaddr_in a;
    int len = sizeof(a);
    if (uv_tcp_getsockname(&f->server, (struct sockaddr *)&a, &len) != 0)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        return -1;
    unsigned want = f->n + 1;
    for (int i = 0; i < 100 && f->n < want; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    if (f->n < want) {
        close(fd);
        return -1;
    }
    f->clients[f->n - 1] = fd;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return (int)f->n - 1;
}

/* Writes len bytes from the client side (the kernel buffers them). */
static size_t client_write(int fd, size_t len)
{
    static char buf[16384];
    size_t done = 0;
    while (done < len) {
        size_t n = len - done < sizeof(buf) ? len - done : sizeof(buf);
        ssize_t w = write(fd, buf, n);
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    return done;
}

/* One loop turn without the prepare handle: reads what is ready. */
static void poll_turn(struct fix *f)
{
    for (int i = 0; i < 5; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void teardown(struct fix *f)
{
    for (unsigned i = 0; i < f->n; i++) {
        if (!f->recs[i].closed)
            conn_close(f->conns[i], false);
        close(f->clients[i]);
    }
    uv_close((uv_handle_t *)&f->server, NULL);
    for (int i = 0; i < 100 && uv_run(&f->loop, UV_RUN_NOWAIT) != 0; i++)
        ;
    CHECK_EQ_INT(uv_loop_close(&f->loop), 0);
    free(f->h);
}

/* At most the budget is handled per turn; the next turn reads on. */
static void test_read_budget_per_turn(void)
{
    struct fix f;
    if (setup(&f, 1 << 20, 16384) != 0 || connect_one(&f) != 0) {
        CHECK(!"setup");
        return;
    }
    CHECK(client_write(f.clients[0], 100000) >= 65536);
    poll_turn(&f);
    CHECK_EQ_INT(f.recs[0].bytes, 16384);
    CHECK(!f.conns[0]->reading);
    poll_turn(&f); /* still the same turn: nothing more */
    CHECK_EQ_INT(f.recs[0].bytes, 16384);
    conn_flush_all(f.h); /* the prepare: a new turn */
    CHECK(f.conns[0]->reading);
    poll_turn(&f);
    CHECK_EQ_INT(f.recs[0].bytes, 32768);
    teardown(&f);
}

/* The soft bound does not refuse; the hard bound does. */
static void test_hard_bound(void)
{
    struct fix f;
    if (setup(&f, 16384, 65536) != 0 || connect_one(&f) != 0) {
        CHECK(!"setup");
        return;
    }
    struct conn *c = f.conns[0];
    CHECK_EQ_INT(c->q_hard, 16384); /* conn_accept: hard = soft */
    conn_set_limits(c, c->q_max, 1000);   /* never below the soft bound */
    CHECK_EQ_INT(c->q_hard, 16384);
    conn_set_limits(c, c->q_max, 32768);
    static char data[20000];
    CHECK_EQ_INT(conn_send(c, data, sizeof(data), 0), 0); /* past soft: queued */
    CHECK_EQ_INT(c->q_bytes, sizeof(data));
    CHECK_EQ_INT(conn_send(c, data, sizeof(data), 0), HERALD_ELIMIT);
    CHECK_EQ_INT(c->q_bytes, sizeof(data));
    CHECK_EQ_INT(conn_send(c, data, sizeof(data), CONN_SEND_FORCE), 0);
    teardown(&f);
}

/* Three connections with a 16 KiB soft bound. */
static int setup3(struct fix *f)
{
    if (setup(f, 16384, 65536) != 0)
        return -1;
    for (int i = 0; i < 3; i++)
        if (connect_one(f) != i)
            return -1;
    return 0;
}

/* A producer waits for one recipient; a drain releases it. */
static void test_pacing_released_by_drain(void)
{
    struct fix f;
    if (setup3(&f) != 0) {
        CHECK(!"setup");
        return;
    }
    struct conn *p = f.conns[0], *r = f.conns[1], *other = f.conns[2];
    static char data[20000];
    conn_set_limits(r, r->q_max, 65536);
    CHECK_EQ_INT(conn_send(r, data, sizeof(data), 0), 0);
    conn_wait_for(p, r);
    CHECK(p->waiting_on == r && r->waiters == p && !p->reading);
    conn_wait_for(p, other); /* one recipient at a time */
    CHECK(p->waiting_on == r && other->waiters == NULL);
    conn_wait_for(r, r); /* not on oneself */
    CHECK(r->waiting_on == NULL);
    client_write(f.clients[0], 1000);
    poll_turn(&f);
    CHECK_EQ_INT(f.recs[0].bytes, 0); /* p is not read while it waits */
    conn_flush_all(f.h);             /* r's 20 kB go to the kernel */
    for (int i = 0; i < 100 && r->q_bytes > 0; i++)
        uv_run(&f.loop, UV_RUN_NOWAIT);
    CHECK_EQ_INT(r->q_bytes, 0);
    CHECK(p->waiting_on == NULL && r->waiters == NULL && p->reading);
    poll_turn(&f);
    CHECK_EQ_INT(f.recs[0].bytes, 1000);
    teardown(&f);
}

/* A recipient that closes releases its waiters; a producer that closes
 * leaves the recipient's list. */
static void test_pacing_and_close(void)
{
    struct fix f;
    if (setup3(&f) != 0) {
        CHECK(!"setup");
        return;
    }
    struct conn *p1 = f.conns[0], *p2 = f.conns[1], *r = f.conns[2];
    conn_wait_for(p1, r);
    conn_wait_for(p2, r);
    CHECK(r->waiters == p2 && p2->wait_next == p1 && p1->wait_prev == p2);
    conn_close(p2, false);
    CHECK(r->waiters == p1 && p1->wait_prev == NULL && p1->wait_next == NULL);
    conn_close(r, true); /* a draining close releases too */
    CHECK(r->waiters == NULL && p1->waiting_on == NULL && p1->reading);
    conn_wait_for(p1, r); /* a closing recipient takes no waiters */
    CHECK(p1->waiting_on == NULL);
    teardown(&f);
}

TEST_MAIN(TEST_CASE(test_read_budget_per_turn), TEST_CASE(test_hard_bound),
          TEST_CASE(test_pacing_released_by_drain), TEST_CASE(test_pacing_and_close))
