/* tls.h - TLS as a byte filter (OpenSSL with memory BIOs).
 *
 * The connection feeds ciphertext in and pulls plaintext out; plaintext to
 * send goes in and ciphertext comes out for the socket. No socket is touched
 * here. tls_ensure_cert() makes a self-signed certificate on first start. */
#ifndef HERALD_TLS_H
#define HERALD_TLS_H
#include <stddef.h>

struct ssl_ctx_st;
struct tls;

/* Creates <data_dir>/tls/{cert,key}.pem for domain if absent (EC P-256,
 * subjectAltName DNS:domain, DNS:localhost, IP:127.0.0.1, IP:::1, 10 years;
 * an existing pair is kept as it is). Fills the two paths (malloc'd, caller
 * frees). Returns 0 or HERALD_E*. */
int tls_ensure_cert(const char *data_dir, const char *domain, char **cert_path, char **key_path);
/* A server context (TLS 1.2+) with this certificate and key, or NULL (logged). */
struct ssl_ctx_st *tls_ctx_new(const char *cert_path, const char *key_path);
void tls_ctx_free(struct ssl_ctx_st *ctx);

struct tls *tls_new(struct ssl_ctx_st *ctx);
void tls_free(struct tls *t);
/* Gives ciphertext from the socket. Returns 0 or -1 (out of memory). */
int tls_feed(struct tls *t, const char *data, size_t len);
/* Reads decrypted bytes: >0 bytes, 0 when more input is needed, -1 on a TLS
 * error or close_notify (the connection must be closed). */
int tls_read(struct tls *t, char *out, size_t cap);
/* Encrypts plaintext into the output BIO. Returns 0 or -1. */
int tls_write(struct tls *t, const char *data, size_t len);
/* Queues the close_notify alert (RFC 8446 §6.1) for the socket. */
void tls_close_notify(struct tls *t);
/* Ciphertext waiting for the socket, and taking it. */
size_t tls_pending(struct tls *t);
size_t tls_take(struct tls *t, char *out, size_t cap);
/* Short description of the last TLS error, for logs. */
const char *tls_error(struct tls *t);
/* Negotiated protocol version ("TLSv1.3"), or "" before the handshake. */
const char *tls_version(struct tls *t);

#endif
