/* arena.h - a bump allocator freed as a whole.
 *
 * Each parsed stanza (and later each HTTP request) lives in one arena: the
 * parser allocates its element tree here and the whole tree goes away with one
 * arena_reset() after dispatch. Anything that must outlive the stanza is copied
 * out explicitly. The arena keeps its first block across resets so that a busy
 * stream does not malloc per stanza; a block over the keep size is released. */
#ifndef HERALD_ARENA_H
#define HERALD_ARENA_H
#include <stddef.h>

struct arena_block;

struct arena {
    struct arena_block *head; /* newest block first */
    size_t total;             /* bytes held in blocks (for limits and metrics) */
};

void arena_init(struct arena *a);
/* Returns 8-byte aligned zeroed memory owned by the arena, or NULL. */
void *arena_alloc(struct arena *a, size_t n);
/* Copies len bytes and adds a NUL. Returns NULL on allocation failure. */
char *arena_strndup(struct arena *a, const char *s, size_t len);
char *arena_strdup(struct arena *a, const char *s);
/* Frees everything allocated so far, keeping one small block for reuse. */
void arena_reset(struct arena *a);
/* Frees everything. */
void arena_free(struct arena *a);

#endif
