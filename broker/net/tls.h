/* tls.h - TLS as a byte filter (OpenSSL with memory BIOs).
 *
 * The connection feeds ciphertext in and pulls plaintext out; plaintext to
 * send goes in and ciphertext comes out for the socket. No socket is touched
 * here. tls_ensure_cert() makes a self-signed certificate on first start. */
#ifndef HERALD_TLS_H
#define HERALD_TLS_H
#include <stdbool.h>
#include <stddef.h>

struct ssl_ctx_st;
struct x509_st;
struct tls;

/* Creates <data_dir>/tls/{cert,key}.pem for domain if absent (EC P-256,
 * subjectAltName DNS:domain, DNS:localhost, IP:127.0.0.1, IP:::1, 10 years;
 * an existing pair is kept as it is). Fills the two paths (malloc'd, caller
 * frees). Returns 0 or HERALD_E*. */
int tls_ensure_cert(const char *data_dir, const char *domain, char **cert_path, char **key_path);
/* A server context (TLS 1.2+) with this certificate and key, or NULL (logged). */
struct ssl_ctx_st *tls_ctx_new(const char *cert_path, const char *key_path);
void tls_ctx_free(struct ssl_ctx_st *ctx);

/* Applies [tls] min_version ("TLSv1.2"/"TLSv1.3"), ciphers (TLS 1.2 list)
 * and ciphersuites (TLS 1.3) to a context; NULL lists keep OpenSSL's.
 * Returns 0 or -1 (logged: a list OpenSSL does not accept). */
int tls_ctx_policy(struct ssl_ctx_st *ctx, const char *min_version, const char *ciphers,
                   const char *ciphersuites);
/* Asks peers for a certificate and verifies it against ca_file (NULL: the
 * default store, which honours SSL_CERT_FILE / SSL_CERT_DIR) and, if given,
 * the CRL in crl_file; a certificate that does not verify does not fail the
 * handshake: tls_peer_verified says so afterwards (SASL EXTERNAL decides).
 * any_purpose: a peer server's certificate need not carry the clientAuth
 * extended key usage (public CAs issue serverAuth-only ones; servers present
 * them as clients on s2s). share: a context whose trust store (loaded
 * with the same CA file) is used instead of loading it again. Returns 0 or
 * -1 (logged). */
int tls_ctx_verify_peers(struct ssl_ctx_st *ctx, const char *ca_file, const char *crl_file,
                         bool any_purpose, struct ssl_ctx_st *share);
/* A client context (outgoing s2s) presenting cert/key, verifying servers as
 * tls_ctx_verify_peers does, or NULL (logged). */
struct ssl_ctx_st *tls_client_ctx_new(const char *cert_path, const char *key_path,
                                      const char *ca_file);

struct tls *tls_new(struct ssl_ctx_st *ctx);
/* The client side of a handshake to server name sni (sent as SNI). The
 * ClientHello is ready in the output at once. */
struct tls *tls_new_client(struct ssl_ctx_st *ctx, const char *sni);
/* After the handshake: the peer presented a certificate that verified (with
 * the context's CA and CRL); why not in *why (static text) when false. */
bool tls_peer_verified(struct tls *t, const char **why);
/* The peer's certificate (borrowed), or NULL. */
struct x509_st *tls_peer_cert(struct tls *t);
void tls_free(struct tls *t);
/* The handshake is done: application data may be written. */
bool tls_established(struct tls *t);
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

/* tls_cert.c: what a verified certificate says about its holder.
 * RFC 6125 / XEP-0178 §3: does it name domain (a DNS or SRV-ID or
 * id-on-xmppAddr subjectAltName, or with no DNS name the CN)? */
bool tls_cert_names_domain(struct x509_st *cert, const char *domain);
/* The client identity for SASL EXTERNAL: mode "xmppaddr" (every
 * id-on-xmppAddr otherName), "cn" (the subject's common names) or "email"
 * (rfc822Name SANs and emailAddress). Calls fn for each, up to 16. */
void tls_cert_identities(struct x509_st *cert, const char *mode,
                         void (*fn)(void *ud, const char *id), void *ud);
