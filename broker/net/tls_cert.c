/* tls_cert.c - what a certificate says about who holds it (RFC 6125,
 * RFC 6120 §13.7.1.4 id-on-xmppAddr, XEP-0178). Only called for a
 * certificate that verified; the strings it hands out are checked again by
 * the caller (JID preparation) before they name anybody. */
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tls.h"

#define OID_XMPPADDR "1.3.6.1.5.5.7.8.5"
#define OID_SRVNAME "1.3.6.1.5.5.7.8.7"
#define MAX_IDS 16

/* The UTF8String of an otherName SAN with the given OID into out, or false. */
static bool other_name(const GENERAL_NAME *gn, const char *oid, char *out, size_t cap)
{
    if (gn->type != GEN_OTHERNAME)
        return false;
    char txt[64];
    if (OBJ_obj2txt(txt, sizeof(txt), gn->d.otherName->type_id, 1) <= 0 || strcmp(txt, oid) != 0)
        return false;
    const ASN1_TYPE *v = gn->d.otherName->value;
    if (v == NULL || (v->type != V_ASN1_UTF8STRING && v->type != V_ASN1_IA5STRING))
        return false;
    const ASN1_STRING *str = v->value.asn1_string;
    int n = ASN1_STRING_length(str);
    if (n <= 0 || (size_t)n >= cap || memchr(ASN1_STRING_get0_data(str), 0, (size_t)n))
        return false;
    memcpy(out, ASN1_STRING_get0_data(str), (size_t)n);
    out[n] = '\0';
    return true;
}

bool tls_cert_names_domain(X509 *cert, const char *domain)
{
    /* A DNS-ID, with RFC 6125 §6.4.3 wildcards in the left-most label only;
     * with no DNS SAN at all OpenSSL falls back to the CN. */
    if (X509_check_host(cert, domain, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) == 1)
        return true;
    GENERAL_NAMES *sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    bool found = false;
    char v[1024];
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans) && !found; i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
        /* An id-on-xmppAddr of the bare domain (RFC 6120 §13.7.1.4), or an
         * SRV-ID "_xmpp-server.domain" (RFC 6125 §6.5.1). */
        if (other_name(gn, OID_XMPPADDR, v, sizeof(v)))
            found = strcasecmp(v, domain) == 0;
        else if (other_name(gn, OID_SRVNAME, v, sizeof(v)))
            found = strncmp(v, "_xmpp-server.", 13) == 0 && strcasecmp(v + 13, domain) == 0;
    }
    GENERAL_NAMES_free(sans);
    return found;
}

void tls_cert_identities(X509 *cert, const char *mode, void (*fn)(void *ud, const char *id),
                         void *ud)
{
    char v[1024];
    unsigned n = 0;
    if (strcmp(mode, "cn") == 0) {
        const X509_NAME *subj = X509_get_subject_name(cert);
        for (int i = -1; n < MAX_IDS &&
                         (i = X509_NAME_get_index_by_NID(subj, NID_commonName, i)) >= 0;) {
            const ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i));
            unsigned char *utf8 = NULL;
            int len = ASN1_STRING_to_UTF8(&utf8, s);
            if (len > 0 && (size_t)len < sizeof(v) && memchr(utf8, 0, (size_t)len) == NULL) {
                memcpy(v, utf8, (size_t)len);
                v[len] = '\0';
                fn(ud, v);
                n++;
            }
            OPENSSL_free(utf8);
        }
        return;
    }
    bool email = strcmp(mode, "email") == 0;
    GENERAL_NAMES *sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans) && n < MAX_IDS; i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
        if (email && gn->type == GEN_EMAIL) {
            const ASN1_STRING *s = gn->d.rfc822Name;
            int len = ASN1_STRING_length(s);
            if (len > 0 && (size_t)len < sizeof(v) &&
                memchr(ASN1_STRING_get0_data(s), 0, (size_t)len) == NULL) {
                memcpy(v, ASN1_STRING_get0_data(s), (size_t)len);
                v[len] = '\0';
                fn(ud, v);
                n++;
            }
        } else if (!email && other_name(gn, OID_XMPPADDR, v, sizeof(v))) {
            fn(ud, v);
            n++;
        }
    }
    GENERAL_NAMES_free(sans);
}
