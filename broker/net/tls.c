/* tls.c - OpenSSL server side over memory BIOs, and the first-start
 * self-signed certificate. */
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errors.h"
#include "log.h"

struct tls {
    SSL *ssl;
    BIO *rbio, *wbio;  /* owned by ssl */
    char err[160];
};

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int write_pem(const char *path, EVP_PKEY *key, X509 *cert)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, key ? 0600 : 0644);
    if (fd < 0)
        return -1;
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        return -1;
    }
    int ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)
                 : PEM_write_X509(f, cert);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        ok = 0;
    fclose(f);
    return ok ? 0 : -1;
}

/* Appends one subjectAltName entry: an IP address when name parses as one
 * (RFC 5280 §4.2.1.6: clients match IP literals only against iPAddress
 * entries), a DNS name otherwise. Returns 0, or -1 on allocation failure. */
static int add_san(GENERAL_NAMES *gens, const char *name)
{
    GENERAL_NAME *gn = GENERAL_NAME_new();
    if (gn == NULL)
        return -1;
    ASN1_OCTET_STRING *ip = a2i_IPADDRESS(name);
    if (ip != NULL) {
        GENERAL_NAME_set0_value(gn, GEN_IPADD, ip);
    } else {
        ERR_clear_error(); /* not an IP literal: not an error */
        ASN1_IA5STRING *dns = ASN1_IA5STRING_new();
        if (dns == NULL || ASN1_STRING_set(dns, name, -1) != 1) {
            ASN1_IA5STRING_free(dns);
            GENERAL_NAME_free(gn);
            return -1;
        }
        GENERAL_NAME_set0_value(gn, GEN_DNS, dns);
    }
    if (sk_GENERAL_NAME_push(gens, gn) <= 0) {
        GENERAL_NAME_free(gn);
        return -1;
    }
    return 0;
}

static bool is_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return false;
    return true;
}

/* The names a client may use to reach this server on its own machine or by
 * its domain: curl, Node and Go check https://127.0.0.1/ against an IP SAN
 * and https://localhost/ against a DNS SAN, and ignore the CN entirely. */
static GENERAL_NAMES *self_signed_sans(const char *domain)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    if (gens == NULL)
        return NULL;
    int rc = 0;
    /* A dNSName is IA5 (ASCII); an internationalized domain would need its
     * A-label form, which we do not compute: the CN still names it. */
    if (is_ascii(domain))
        rc = add_san(gens, domain);
    else
        log_warn("tls", "domain %s is not ASCII: not added as a DNS subjectAltName", domain);
    static const char *const local[] = {"localhost", "127.0.0.1", "::1"};
    for (size_t i = 0; rc == 0 && i < sizeof(local) / sizeof(local[0]); i++)
        if (strcmp(local[i], domain) != 0)
            rc = add_san(gens, local[i]);
    if (rc != 0) {
        GENERAL_NAMES_free(gens);
        return NULL;
    }
    return gens;
}

static int make_self_signed(const char *domain, const char *cert_path, const char *key_path)
{
    int rc = HERALD_EIO;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    GENERAL_NAMES *sans = NULL;
    if (key == NULL || x == NULL)
        goto done;
    X509_set_version(x, 2);
    unsigned char serial[16];
    BIGNUM *bn = NULL;
    if (RAND_bytes(serial, sizeof(serial)) != 1)
        goto done;
    serial[0] &= 0x7f;
    bn = BN_bin2bn(serial, sizeof(serial), NULL);
    if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL) {
        BN_free(bn);
        goto done;
    }
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"Herald", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)domain, -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, key);
    sans = self_signed_sans(domain);
    if (sans == NULL ||
        X509_add1_ext_i2d(x, NID_subject_alt_name, sans, 0, X509V3_ADD_DEFAULT) != 1)
        goto done;
    if (!X509_sign(x, key, EVP_sha256()))
        goto done;
    if (write_pem(key_path, key, NULL) != 0 || write_pem(cert_path, NULL, x) != 0)
        goto done;
    rc = 0;
done:
    if (rc != 0)
        log_error("tls", "cannot create a self-signed certificate at %s: %s", cert_path,
                  ERR_reason_error_string(ERR_get_error()) ? ERR_reason_error_string(ERR_peek_last_error())
                                                            : strerror(errno));
    GENERAL_NAMES_free(sans);
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}

int tls_ensure_cert(const char *data_dir, const char *domain, char **cert_path, char **key_path)
{
    char *dir = path_join(data_dir, "tls");
    *cert_path = dir ? path_join(dir, "cert.pem") : NULL;
    *key_path = dir ? path_join(dir, "key.pem") : NULL;
    int rc = 0;
    if (dir == NULL || *cert_path == NULL || *key_path == NULL) {
        rc = HERALD_ENOMEM;
        goto done;
    }
    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
        log_error("tls", "cannot create %s: %s", data_dir, strerror(errno));
        rc = HERALD_EIO;
        goto done;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        log_error("tls", "cannot create %s: %s", dir, strerror(errno));
        rc = HERALD_EIO;
        goto done;
    }
    if (access(*cert_path, R_OK) == 0 && access(*key_path, R_OK) == 0)
        goto done;
    rc = make_self_signed(domain, *cert_path, *key_path);
    if (rc == 0)
        log_info("tls", "generated a self-signed certificate for %s at %s", domain, *cert_path);
done:
    free(dir);
    if (rc != 0) {
        free(*cert_path);
        free(*key_path);
        *cert_path = *key_path = NULL;
    }
    return rc;
}

int tls_ctx_policy(SSL_CTX *ctx, const char *min_version, const char *ciphers,
                   const char *ciphersuites)
{
    int v = min_version && strcmp(min_version, "TLSv1.3") == 0 ? TLS1_3_VERSION : TLS1_2_VERSION;
    if (SSL_CTX_set_min_proto_version(ctx, v) != 1 ||
        (ciphers && SSL_CTX_set_cipher_list(ctx, ciphers) != 1) ||
        (ciphersuites && SSL_CTX_set_ciphersuites(ctx, ciphersuites) != 1)) {
        log_error("tls", "tls.ciphers / tls.ciphersuites not accepted by OpenSSL: %s",
                  ERR_reason_error_string(ERR_get_error()));
        return -1;
    }
    return 0;
}

/* Verification runs to the end whatever it finds: the result is read with
 * SSL_get_verify_result once the handshake is done. */
static int verify_keep_going(int ok, X509_STORE_CTX *st)
{
    (void)ok;
    (void)st;
    return 1;
}

static int load_trust(SSL_CTX *ctx, const char *ca_file, const char *crl_file)
{
    int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                     : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        log_error("tls", "cannot load CA certificates %s: %s", ca_file ? ca_file : "(default store)",
                  ERR_reason_error_string(ERR_get_error()));
        return -1;
    }
    if (crl_file == NULL)
        return 0;
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    X509_LOOKUP *lk = X509_STORE_add_lookup(store, X509_LOOKUP_file());
    if (lk == NULL || X509_load_crl_file(lk, crl_file, X509_FILETYPE_PEM) < 1) {
        log_error("tls", "cannot load the CRL %s: %s", crl_file,
                  ERR_reason_error_string(ERR_get_error()));
        return -1;
    }
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    return 0;
}

int tls_ctx_verify_peers(SSL_CTX *ctx, const char *ca_file, const char *crl_file,
                         bool any_purpose, SSL_CTX *share)
{
    /* A store already loaded (the default one holds every system CA: some
     * hundred million instructions to read) is shared, not read again. */
    if (share != NULL)
        SSL_CTX_set1_cert_store(ctx, SSL_CTX_get_cert_store(share));
    else if (load_trust(ctx, ca_file, crl_file) != 0)
        return -1;
    if (any_purpose && SSL_CTX_set_purpose(ctx, X509_PURPOSE_ANY) != 1)
        return -1;
    if (ca_file) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);
        if (names)
            SSL_CTX_set_client_CA_list(ctx, names);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_keep_going);
    return 0;
}

SSL_CTX *tls_client_ctx_new(const char *cert_path, const char *key_path, const char *ca_file)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1 ||
        load_trust(ctx, ca_file, NULL) != 0) {
        log_error("tls", "cannot set up the s2s client context (%s): %s", cert_path,
                  ERR_reason_error_string(ERR_get_error()));
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_keep_going);
    return ctx;
}

SSL_CTX *tls_ctx_new(const char *cert_path, const char *key_path)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Idle sessions should cost little: drop read/write buffers when empty. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        log_error("tls", "cannot load certificate %s / key %s: %s", cert_path, key_path,
                  ERR_reason_error_string(ERR_get_error()));
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

void tls_ctx_free(SSL_CTX *ctx) { SSL_CTX_free(ctx); }

static struct tls *tls_alloc(SSL_CTX *ctx)
{
    struct tls *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->ssl = SSL_new(ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
        SSL_free(t->ssl);
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        free(t);
        return NULL;
    }
    BIO_set_mem_eof_return(t->rbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    return t;
}

struct tls *tls_new(SSL_CTX *ctx)
{
    struct tls *t = tls_alloc(ctx);
    if (t)
        SSL_set_accept_state(t->ssl);
    return t;
}

struct tls *tls_new_client(SSL_CTX *ctx, const char *sni)
{
    struct tls *t = tls_alloc(ctx);
    if (t == NULL)
        return NULL;
    SSL_set_connect_state(t->ssl);
    if (SSL_set_tlsext_host_name(t->ssl, sni) != 1) {
        tls_free(t);
        return NULL;
    }
    int rc = SSL_do_handshake(t->ssl);
    if (rc <= 0 && SSL_get_error(t->ssl, rc) != SSL_ERROR_WANT_READ) {
        tls_free(t);
        return NULL;
    }
    return t;
}

bool tls_peer_verified(struct tls *t, const char **why)
{
    if (SSL_get0_peer_certificate(t->ssl) == NULL) {
        *why = "no certificate";
        return false;
    }
    long v = SSL_get_verify_result(t->ssl);
    *why = v == X509_V_OK ? "" : X509_verify_cert_error_string(v);
    return v == X509_V_OK;
}

bool tls_established(struct tls *t) { return SSL_is_init_finished(t->ssl); }

X509 *tls_peer_cert(struct tls *t) { return SSL_get0_peer_certificate(t->ssl); }

void tls_free(struct tls *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl);
    free(t);
}

int tls_feed(struct tls *t, const char *data, size_t len)
{
    return BIO_write(t->rbio, data, (int)len) == (int)len ? 0 : -1;
}

static void record_error(struct tls *t)
{
    unsigned long e = ERR_get_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(t->err, sizeof(t->err), "%s", r ? r : "TLS connection closed");
    ERR_clear_error();
}

int tls_read(struct tls *t, char *out, size_t cap)
{
    int n = SSL_read(t->ssl, out, (int)cap);
    if (n > 0)
        return n;
    int e = SSL_get_error(t->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    record_error(t);
    return -1;
}

int tls_write(struct tls *t, const char *data, size_t len)
{
    while (len > 0) {
        int n = SSL_write(t->ssl, data, len > (1u << 30) ? (1 << 30) : (int)len);
        if (n <= 0) {
            record_error(t);
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

void tls_close_notify(struct tls *t)
{
    /* Sends our alert; we do not wait for the peer's (the socket closes). */
    if (SSL_is_init_finished(t->ssl))
        SSL_shutdown(t->ssl);
    ERR_clear_error();
}

size_t tls_pending(struct tls *t) { return BIO_ctrl_pending(t->wbio); }

size_t tls_take(struct tls *t, char *out, size_t cap)
{
    int n = BIO_read(t->wbio, out, (int)cap);
    return n > 0 ? (size_t)n : 0;
}

const char *tls_error(struct tls *t) { return t->err[0] ? t->err : "TLS error"; }

const char *tls_version(struct tls *t)
{
    return SSL_is_init_finished(t->ssl) ? SSL_get_version(t->ssl) : "";
}
