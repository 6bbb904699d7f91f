/* arena.c - bump allocator: a list of blocks, newest first. */
#include "arena.h"

#include <stdlib.h>
#include <string.h>
#include <stdint.h>

#define ARENA_BLOCK 2048u     /* first block; most stanzas fit */
#define ARENA_KEEP 2048u      /* a reset keeps one block up to this size */

struct arena_block {
    struct arena_block *next;
    size_t cap, used;
    max_align_t data[];
};

void arena_init(struct arena *a)
{
    a->head = NULL;
    a->total = 0;
}

void *arena_alloc(struct arena *a, size_t n)
{
    size_t need = (n + 7u) & ~(size_t)7u;
    struct arena_block *b = a->head;
    if (n > SIZE_MAX / 2)
        return NULL;
    if (b == NULL || b->cap - b->used < need) {
        size_t cap = ARENA_BLOCK;
        if (b != NULL && b->cap * 2 > cap)
            cap = b->cap * 2;
        if (cap < need)
            cap = need;
        b = malloc(sizeof(*b) + cap);
        if (b == NULL)
            return NULL;
        b->next = a->head;
        b->cap = cap;
        b->used = 0;
        a->head = b;
        a->total += cap;
    }
    void *p = (char *)b->data + b->used;
    b->used += need;
    memset(p, 0, n);
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t len)
{
    char *p = arena_alloc(a, len + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *arena_strdup(struct arena *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

void arena_reset(struct arena *a)
{
    struct arena_block *keep = NULL;
    struct arena_block *b = a->head;
    while (b != NULL) {
        struct arena_block *next = b->next;
        if (keep == NULL && b->cap <= ARENA_KEEP)
            keep = b;
        else
            free(b);
        b = next;
    }
    a->head = keep;
    a->total = 0;
    if (keep != NULL) {
        keep->next = NULL;
        keep->used = 0;
        a->total = keep->cap;
    }
}

void arena_free(struct arena *a)
{
    struct arena_block *b = a->head;
    while (b != NULL) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->total = 0;
}
