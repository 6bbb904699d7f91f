/* test_arena.c - the bump allocator (arena.c) and the growable buffer (buf.c).
 *
 * The arena hands out 8-byte aligned zeroed memory, grows by blocks, and keeps
 * one small block across resets; the checks below cover alignment, zeroing,
 * large requests, strndup, reuse after reset and many small allocations. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "buf.h"
#include "test.h"

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != 0)
            return false;
    return true;
}

static void test_alignment(void)
{
    struct arena a;
    arena_init(&a);
    for (size_t n = 0; n < 100; n++) {
        void *p = arena_alloc(&a, n);
        CHECK(p != NULL);
        CHECK_EQ_INT((uintptr_t)p % 8, 0);
    }
    arena_free(&a);
}

static void test_zeroed(void)
{
    struct arena a;
    arena_init(&a);
    /* Dirty memory, reset, and allocate again: the same block is reused and
     * must come back zeroed. */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 20; i++) {
            size_t n = 17 + (size_t)i * 13;
            unsigned char *p = arena_alloc(&a, n);
            CHECK(p != NULL);
            if (p == NULL)
                break;
            CHECK(all_zero(p, n));
            memset(p, 0xA5, n);
        }
        arena_reset(&a);
    }
    arena_free(&a);
}

static void test_large(void)
{
    struct arena a;
    arena_init(&a);
    char *small = arena_alloc(&a, 10);
    CHECK(small != NULL);
    memcpy(small, "123456789", 10);
    size_t big = 1u << 20;
    unsigned char *p = arena_alloc(&a, big);
    CHECK(p != NULL);
    if (p) {
        CHECK_EQ_INT((uintptr_t)p % 8, 0);
        CHECK(all_zero(p, big));
        memset(p, 1, big); /* ASan catches any short block */
    }
    CHECK(a.total >= big);
    /* Earlier allocations are untouched by growth. */
    CHECK_EQ_STR(small, "123456789");
    /* Absurd sizes fail cleanly instead of wrapping. */
    CHECK(arena_alloc(&a, SIZE_MAX) == NULL);
    CHECK(arena_alloc(&a, SIZE_MAX - 7) == NULL);
    CHECK(arena_alloc(&a, SIZE_MAX / 2 + 1) == NULL);
    /* The arena still works after a refused request. */
    char *after = arena_strdup(&a, "still fine");
    CHECK_EQ_STR(after, "still fine");
    arena_free(&a);
    CHECK(a.head == NULL);
    CHECK_EQ_INT(a.total, 0);
}

static void test_strndup(void)
{
    struct arena a;
    arena_init(&a);
    char *s = arena_strndup(&a, "hello world", 5);
    CHECK_EQ_STR(s, "hello");
    char *e = arena_strndup(&a, "xyz", 0);
    CHECK_EQ_STR(e, "");
    const char with_nul[] = {'a', '\0', 'b'};
    char *n = arena_strndup(&a, with_nul, 3);
    CHECK(n != NULL);
    if (n) {
        CHECK_EQ_MEM(n, 3, with_nul, 3);
        CHECK_EQ_INT(n[3], 0);
    }
    char *d = arena_strdup(&a, "dup");
    CHECK_EQ_STR(d, "dup");
    CHECK(d != s);
    arena_free(&a);
}

static void test_reset_reuse(void)
{
    struct arena a;
    arena_init(&a);
    for (int round = 0; round < 50; round++) {
        /* Each round allocates well past the first block, then resets. */
        char *keep[64];
        for (int i = 0; i < 64; i++) {
            char tmp[32];
            snprintf(tmp, sizeof(tmp), "r%d-i%d", round, i);
            keep[i] = arena_strdup(&a, tmp);
            CHECK(keep[i] != NULL);
            if (i % 16 == 0)
                CHECK(arena_alloc(&a, 3000) != NULL);
        }
        for (int i = 0; i < 64; i++) {
            char tmp[32];
            snprintf(tmp, sizeof(tmp), "r%d-i%d", round, i);
            CHECK_EQ_STR(keep[i], tmp);
        }
        arena_reset(&a);
        /* A reset keeps at most one small block. */
        CHECK(a.total <= 2048);
        if (a.head)
            CHECK_EQ_INT(a.total, 2048);
    }
    /* Reset on an empty arena and twice in a row is harmless. */
    struct arena b;
    arena_init(&b);
    arena_reset(&b);
    arena_reset(&b);
    CHECK_EQ_INT(b.total, 0);
    CHECK(arena_strdup(&b, "x") != NULL);
    arena_reset(&b);
    arena_reset(&b);
    CHECK(arena_strdup(&b, "y") != NULL);
    arena_free(&b);
    arena_free(&a);
}

static void test_many(void)
{
    struct arena a;
    arena_init(&a);
    enum { N = 100000 };
    uint32_t **ptrs = malloc(N * sizeof(*ptrs));
    CHECK(ptrs != NULL);
    if (ptrs == NULL)
        return;
    for (uint32_t i = 0; i < N; i++) {
        ptrs[i] = arena_alloc(&a, sizeof(uint32_t) * (1 + i % 5));
        if (ptrs[i] == NULL) {
            CHECK(ptrs[i] != NULL);
            break;
        }
        ptrs[i][0] = i;
    }
    unsigned bad = 0;
    for (uint32_t i = 0; i < N; i++)
        bad += (ptrs[i] == NULL || ptrs[i][0] != i);
    CHECK_EQ_INT(bad, 0);
    free(ptrs);
    arena_free(&a);
}

static void test_buf(void)
{
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "abc");
    buf_putc(&b, '-');
    buf_printf(&b, "%d:%s", 42, "x");
    CHECK(buf_ok(&b));
    CHECK_EQ_MEM(b.data, b.len, "abc-42:x", 8);
    CHECK_EQ_INT(b.data[b.len], 0);
    buf_reset(&b);
    buf_xml_text(&b, "a&b<c>d'e\"f\tg\nh\ri", 17);
    CHECK_EQ_STR(b.data, "a&amp;b&lt;c&gt;d'e\"f\tg\nh&#13;i");
    buf_reset(&b);
    buf_xml_attr(&b, "a&b<c>d'e\"f\tg\nh\ri", 17);
    CHECK_EQ_STR(b.data, "a&amp;b&lt;c&gt;d&apos;e&quot;f&#9;g&#10;h&#13;i");
    buf_free(&b);

    /* The cap: a failed append is sticky and leaves the content alone. */
    buf_init(&b, 10);
    buf_puts(&b, "0123456789");
    CHECK(buf_ok(&b));
    buf_putc(&b, 'x');
    CHECK(!buf_ok(&b));
    CHECK_EQ_INT(b.len, 10);
    buf_puts(&b, "");
    buf_printf(&b, "%s", "");
    CHECK(!buf_ok(&b));
    size_t len = 99;
    CHECK(buf_take(&b, &len) == NULL);
    buf_free(&b);

    buf_init(&b, 0);
    buf_printf(&b, "%0300d", 7); /* grows past the first allocation */
    CHECK_EQ_INT(b.len, 300);
    char *t = buf_take(&b, &len);
    CHECK_EQ_INT(len, 300);
    CHECK(t != NULL && t[299] == '7' && t[300] == '\0');
    free(t);
    CHECK(b.data == NULL && b.len == 0);
    t = buf_take(&b, &len); /* empty buffer: an empty string */
    CHECK(t != NULL && len == 0 && t[0] == '\0');
    free(t);
    buf_free(&b);
}

TEST_MAIN(TEST_CASE(test_alignment), TEST_CASE(test_zeroed), TEST_CASE(test_large),
          TEST_CASE(test_strndup), TEST_CASE(test_reset_reuse), TEST_CASE(test_many),
          TEST_CASE(test_buf))
