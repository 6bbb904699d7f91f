/* store_pep.c - what storage keeps of PEP (XEP-0163) and deletes with its
 * account.
 *
 * PEP nodes are ordinary pubsub records (store_pubsub.c) whose name in
 * "nodes" is 0x01 owner-bare-JID 0x01 node-name (docs/storage-layout.md):
 * an account's nodes are therefore one key range of "nodes", and deleting
 * the account deletes each of them with its items, subscriptions and
 * affiliations (store_node_del), in the account's transaction. */
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "store.h"
#include "store_impl.h"

struct doomed {
    char *prefix;
    size_t prefix_len;
    char **names;
    uint64_t *ids;
    size_t n, cap;
};

static int collect(void *ud, const char *name, const struct store_node *sn)
{
    struct doomed *d = ud;
    if (strncmp(name, d->prefix, d->prefix_len) != 0)
        return 0;
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 16;
        char **names = realloc(d->names, cap * sizeof(*names));
        if (names != NULL)
            d->names = names;
        uint64_t *ids = names ? realloc(d->ids, cap * sizeof(*ids)) : NULL;
        if (ids == NULL)
            return HERALD_ENOMEM;
        d->ids = ids;
        d->cap = cap;
    }
    if ((d->names[d->n] = strdup(name)) == NULL)
        return HERALD_ENOMEM;
    d->ids[d->n++] = sn->id;
    return 0;
}

int store_pep_forget_account(struct store_txn *t, const char *bare)
{
    struct doomed d = {NULL, 0, NULL, NULL, 0, 0};
    size_t bl = strlen(bare);
    int rc = HERALD_ENOMEM;
    if ((d.prefix = malloc(bl + 3)) == NULL)
        goto done;
    d.prefix[0] = '\x01';
    memcpy(d.prefix + 1, bare, bl);
    d.prefix[bl + 1] = '\x01';
    d.prefix[bl + 2] = '\0';
    d.prefix_len = bl + 2;
    /* Collected first: deleting under the walk's cursor is not allowed. */
    rc = store_node_each(t, collect, &d);
    for (size_t i = 0; rc == 0 && i < d.n; i++)
        rc = store_node_del(t, d.names[i], d.ids[i]);
done:
    for (size_t i = 0; i < d.n; i++)
        free(d.names[i]);
    free(d.names);
    free(d.ids);
    free(d.prefix);
    return rc;
}
