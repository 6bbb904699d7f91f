/* pubsub_form.h - XEP-0004 data forms of the pubsub XMPP edge: submitted
 * forms become (var, values) fields for the service, and configurations
 * and subscription options become forms. The only place pubsub's forms
 * meet XML. */
#ifndef HERALD_PUBSUB_FORM_H
#define HERALD_PUBSUB_FORM_H
#include <stdbool.h>
#include <stddef.h>

#include "pubsub.h"

struct arena;
struct xnode;

/* The FORM_TYPE of a data form, or NULL. */
const char *ps_form_type(struct arena *a, const struct xnode *x);
/* The first value of field var, or NULL when the field is absent. */
const char *ps_form_value(struct arena *a, const struct xnode *x, const char *var);
/* The fields of a submitted form (FORM_TYPE left out), every <value/> of
 * each, allocated from a. A form of type 'cancel' has no fields. Returns 0
 * or HERALD_ENOMEM. */
int ps_form_fields(struct arena *a, const struct xnode *x, struct ps_field **out, size_t *n);

/* The pubsub#node_config form (type form) for c (§8.2.1, §8.3). */
struct xnode *ps_form_config(struct arena *a, const struct ps_config *c);
/* The pubsub#meta-data form (type result) of a node for disco#info (§5.4). */
struct xnode *ps_form_metadata(struct arena *a, const struct ps_node_info *n,
                               const struct ps_caps *caps);
/* The pubsub#subscribe_options form (type form) (§6.3.2, §6.4). */
struct xnode *ps_form_sub_options(struct arena *a, const struct ps_sub_opts *o);

#endif
