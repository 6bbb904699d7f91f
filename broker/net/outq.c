/* outq.c - refcounted chunks. The loop is single-threaded: plain counters. */
#include "outq.h"

#include <stdlib.h>
#include <string.h>

struct chunk *chunk_alloc(size_t len)
{
    struct chunk *c = malloc(sizeof(*c) + len);
    if (c == NULL)
        return NULL;
    c->refs = 1;
    c->len = len;
    return c;
}

struct chunk *chunk_new(const void *p, size_t len)
{
    struct chunk *c = chunk_alloc(len);
    if (c != NULL && len)
        memcpy(c->data, p, len);
    return c;
}

struct chunk *chunk_ref(struct chunk *c)
{
    c->refs++;
    return c;
}

void chunk_unref(struct chunk *c)
{
    if (c != NULL && --c->refs == 0)
        free(c);
}
