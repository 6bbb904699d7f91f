/* buf.h - a growable byte buffer with a hard cap.
 *
 * Used to serialize XML and build outgoing frames. Every append checks the
 * cap; once an append fails the buffer is marked failed and further appends
 * are no-ops, so callers check once at the end (buf_ok). The caller owns
 * b->data and frees it with buf_free (or takes it with buf_take). */
#ifndef HERALD_BUF_H
#define HERALD_BUF_H
#include <stddef.h>
#include <stdbool.h>

struct buf {
    char *data;
    size_t len, cap;
    size_t max;   /* 0 = default cap (64 MiB) */
    bool failed;
};

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
/* Goes back to the first len bytes (len <= b->len) and clears a failure:
 * only for a caller that saw the buffer ok when it was len bytes long, and
 * wants to write what followed differently. */
void buf_truncate(struct buf *b, size_t len);
bool buf_ok(const struct buf *b);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s with XML escaping for text (&, <, >) or attribute values
 * (also ' and "). */
void buf_xml_text(struct buf *b, const char *s, size_t n);
void buf_xml_attr(struct buf *b, const char *s, size_t n);
/* Sized attribute escaping for callers that write into memory of the exact
 * size (fan-out envelopes): the escaped length of s, and the escaped bytes
 * written at out (returns the end). */
size_t xml_attr_len(const char *s, size_t n);
char *xml_attr_put(char *out, const char *s, size_t n);
/* Appends the RFC 4648 base64 encoding of n bytes. */
void buf_base64(struct buf *b, const void *p, size_t n);
/* Strict RFC 4648 base64 decode (padding required, no whitespace). out must
 * hold 3 * (len / 4) bytes. Returns the decoded length or -1. */
long base64_decode(const char *in, size_t len, unsigned char *out);
/* The value of a hexadecimal digit, or -1. */
int hex_value(char c);
/* Makes data a C string (a NUL after len, len unchanged; data is non-NULL
 * afterwards). Returns 0, or -1 if the buffer has failed. */
int buf_nul(struct buf *b);
/* Takes ownership of the bytes (NUL-terminated); the buffer becomes empty. */
char *buf_take(struct buf *b, size_t *len);

#endif
