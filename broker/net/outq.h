/* outq.h - refcounted byte chunks: encode once, queue by reference.
 *
 * A chunk is immutable once queued. Fan-out queues the same chunk on many
 * connections (chunk_ref per queue); each connection drops its reference when
 * the bytes have been handed to the kernel. */
#ifndef HERALD_OUTQ_H
#define HERALD_OUTQ_H
#include <stddef.h>

struct chunk {
    unsigned refs;
    size_t len;
    char data[];
};

/* A new chunk with refs = 1 holding a copy of p (len bytes), or NULL. */
struct chunk *chunk_new(const void *p, size_t len);
/* A new chunk with refs = 1 and len bytes of uninitialized data to fill
 * before it is queued, or NULL. */
struct chunk *chunk_alloc(size_t len);
struct chunk *chunk_ref(struct chunk *c);
void chunk_unref(struct chunk *c);

#endif
