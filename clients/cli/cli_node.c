/* cli_node.c - `herald node create|list|info|config|delete|purge`: manage
 * pubsub nodes over the REST API (docs/cli.md, docs/rest-api.md).
 *
 * Human-readable output by default; --json prints the server's JSON (for
 * list: every page joined into one {"nodes": [...]} document). Node
 * configuration goes in as --set FIELD=VALUE, FIELD being a pubsub#
 * field name with or without its prefix; the same field given twice makes
 * a list-valued field. Values are sent as JSON strings, which the bridge
 * accepts for every field type. */
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>

#include "cli_clients.h"
#include "cli_rest.h"

#define NODE_MAX_SETS 64 /* the bridge's own bound on fields per request */

void cli_node_usage(FILE *f)
{
    fprintf(f, "Usage: herald node create [NODE] [--set FIELD=VALUE]... [OPTIONS]\n"
               "       herald node list [OPTIONS]\n"
               "       herald node info NODE [OPTIONS]\n"
               "       herald node config NODE [--set FIELD=VALUE]... [OPTIONS]\n"
               "       herald node delete NODE [OPTIONS]\n"
               "       herald node purge NODE [OPTIONS]\n"
               "\n"
               "Manages pubsub nodes over the REST API (the token needs the 'manage'\n"
               "scope for create, config --set, delete and purge).\n"
               "\n"
               "  create   make a node (without NODE the server picks a name, printed)\n"
               "  list     every node the token's JID may see, one per line:\n"
               "           NAME TYPE ITEMS (follows the pages to the end)\n"
               "  info     a node's metadata and configuration\n"
               "  config   show the configuration; with --set, change it (owner only)\n"
               "  delete   delete the node and its items (subscribers are notified)\n"
               "  purge    delete every item of the node\n"
               "\n"
               "  --set FIELD=VALUE  a configuration field (pubsub#max_items or\n"
               "                   max_items; Herald's own fields by their full names,\n"
               "                   e.g. herald#max_publish_rate); repeat a field for a\n"
               "                   list value\n"
               "  --json           print the server's JSON instead of text\n"
               "  -h, --help       show this help\n"
               "\n");
    cli_rest_usage(f, false);
    fprintf(f, "\n"
               "Exit status: 0 done; 1 the server refused (problem+json on stderr);\n"
               "2 usage; 3 no answer (connection failure).\n"
               "\n"
               "Examples:\n"
               "  herald node create grid/feeder-7 --set max_items=100 --set access_model=open\n"
               "  herald node list --json | jq -r '.nodes[].node'\n"
               "  herald node config grid/feeder-7 --set max_items=10\n"
               "  herald node purge grid/feeder-7 && herald node delete grid/feeder-7\n");
}

struct set {
    const char *key;
    size_t key_len;
    const char *value;
};

/* {"node": NAME, "config": {...}} (name may be NULL) into out. */
static int config_body(const char *name, const struct set *sets, int nsets, struct buf *out)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (g == NULL)
        return -1;
    yajl_gen_config(g, yajl_gen_validate_utf8, 1);
    int rc = 0;
    yajl_gen_map_open(g);
    if (name) {
        yajl_gen_string(g, (const unsigned char *)"node", 4);
        rc |= yajl_gen_string(g, (const unsigned char *)name, strlen(name));
    }
    if (nsets) {
        yajl_gen_string(g, (const unsigned char *)"config", 6);
        yajl_gen_map_open(g);
        for (int i = 0; i < nsets; i++) {
            int same = 0, first = -1;
            for (int j = 0; j < nsets; j++) {
                if (sets[j].key_len == sets[i].key_len &&
                    memcmp(sets[j].key, sets[i].key, sets[i].key_len) == 0) {
                    same++;
                    if (first < 0)
                        first = j;
                }
            }
            if (first != i)
                continue; /* written with its first occurrence */
            rc |= yajl_gen_string(g, (const unsigned char *)sets[i].key, sets[i].key_len);
            if (same > 1)
                yajl_gen_array_open(g);
            for (int j = i; j < nsets; j++)
                if (sets[j].key_len == sets[i].key_len &&
                    memcmp(sets[j].key, sets[i].key, sets[i].key_len) == 0)
                    rc |= yajl_gen_string(g, (const unsigned char *)sets[j].value,
                                          strlen(sets[j].value));
            if (same > 1)
                yajl_gen_array_close(g);
        }
        yajl_gen_map_close(g);
    }
    yajl_gen_map_close(g);
    const unsigned char *text;
    size_t len;
    if (rc != 0 || yajl_gen_get_buf(g, &text, &len) != yajl_gen_status_ok) {
        yajl_gen_free(g);
        return -1;
    }
    buf_append(out, text, len);
    yajl_gen_free(g);
    return buf_nul(out);
}

static void print_value(yajl_val v)
{
    if (YAJL_IS_STRING(v)) {
        printf("%s", YAJL_GET_STRING(v));
    } else if (YAJL_IS_NUMBER(v)) {
        printf("%s", YAJL_GET_NUMBER(v));
    } else if (YAJL_IS_TRUE(v)) {
        printf("true");
    } else if (YAJL_IS_FALSE(v)) {
        printf("false");
    } else if (YAJL_IS_NULL(v)) {
        printf("-");
    } else if (YAJL_IS_ARRAY(v)) {
        for (size_t i = 0; i < v->u.array.len; i++) {
            if (i)
                printf(",");
            print_value(v->u.array.values[i]);
        }
    } else {
        printf("{...}");
    }
}

static void print_config(yajl_val node)
{
    const char *path[] = {"config", NULL};
    yajl_val cfg = yajl_tree_get(node, path, yajl_t_object);
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->u.object.len; i++) {
        printf("  %-28s ", cfg->u.object.keys[i]);
        print_value(cfg->u.object.values[i]);
        printf("\n");
    }
}

static void print_node(yajl_val v, bool config_only)
{
    if (!config_only) {
        const char *keys[] = {"node", "type", "created", "items", "affiliation"};
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            const char *path[] = {keys[i], NULL};
            yajl_val f = yajl_tree_get(v, path, yajl_t_any);
            if (f == NULL)
                continue;
            printf("%-12s ", keys[i]);
            print_value(f);
            printf("\n");
        }
        printf("config:\n");
    }
    print_config(v);
}

/* Every page of GET /v1/nodes, printed as it comes (text) or gathered into
 * one document (--json). */
static int node_list(struct cli_rest *c, bool json)
{
    struct buf path, resp;
    char next[32] = "";
    bool first = true;
    int ret = CLI_OK;
    buf_init(&path, 0);
    buf_init(&resp, CLI_MAX_BODY);
    if (json)
        printf("{\"nodes\":[");
    for (;;) {
        buf_reset(&path);
        buf_puts(&path, "/v1/nodes");
        if (next[0])
            buf_printf(&path, "?after=%s", next);
        if (buf_nul(&path) != 0) {
            ret = CLI_CONNECT;
            break;
        }
        long status = 0;
        if ((ret = cli_rest_request(c, "GET", path.data, NULL, NULL, 0, &status, &resp)) != 0)
            break;
        if (status != 200) {
            ret = cli_rest_refused(c, status, &resp);
            break;
        }
        yajl_val v = cli_json_parse(c, &resp);
        const char *pn[] = {"nodes", NULL}, *px[] = {"next", NULL};
        yajl_val nodes = v ? yajl_tree_get(v, pn, yajl_t_array) : NULL;
        if (nodes == NULL) {
            yajl_tree_free(v);
            ret = CLI_REFUSED;
            break;
        }
        for (size_t i = 0; i < nodes->u.array.len; i++) {
            yajl_val n = nodes->u.array.values[i];
            const char *name = cli_json_str(n, "node"), *type = cli_json_str(n, "type");
            if (json) {
                /* Re-generated from the parsed value: one compact object. */
                yajl_gen g = yajl_gen_alloc(NULL);
                const unsigned char *t;
                size_t tl;
                if (g == NULL)
                    continue;
                yajl_gen_map_open(g);
                yajl_gen_string(g, (const unsigned char *)"node", 4);
                yajl_gen_string(g, (const unsigned char *)(name ? name : ""),
                                name ? strlen(name) : 0);
                yajl_gen_string(g, (const unsigned char *)"type", 4);
                yajl_gen_string(g, (const unsigned char *)(type ? type : ""),
                                type ? strlen(type) : 0);
                yajl_gen_string(g, (const unsigned char *)"items", 5);
                yajl_gen_integer(g, cli_json_int(n, "items"));
                yajl_gen_map_close(g);
                if (yajl_gen_get_buf(g, &t, &tl) == yajl_gen_status_ok)
                    printf("%s%.*s", first ? "" : ",", (int)tl, (const char *)t);
                yajl_gen_free(g);
            } else {
                printf("%s\t%s\t%lld\n", name ? name : "?", type ? type : "?",
                       cli_json_int(n, "items"));
            }
            first = false;
        }
        yajl_val nx = yajl_tree_get(v, px, yajl_t_any);
        next[0] = '\0';
        if (nx && YAJL_IS_STRING(nx))
            snprintf(next, sizeof(next), "%s", YAJL_GET_STRING(nx));
        yajl_tree_free(v);
        if (next[0] == '\0')
            break;
    }
    if (json)
        printf("]}\n");
    buf_free(&path);
    buf_free(&resp);
    return ret;
}

int cli_node(int argc, char **argv)
{
    struct cli_rest c;
    struct set sets[NODE_MAX_SETS];
    int nsets = 0, ret = CLI_USAGE;
    const char *action = NULL, *node = NULL;
    bool json = false;
    struct buf path, body, resp;
    cli_rest_init(&c, "herald node");
    buf_init(&path, 0);
    buf_init(&body, 0);
    buf_init(&resp, CLI_MAX_BODY);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int o = cli_rest_option(&c, argc, argv, &i);
        if (o < 0)
            goto done;
        if (o > 0)
            continue;
        if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--set") == 0 && i + 1 < argc) {
            const char *kv = argv[++i], *eq = strchr(kv, '=');
            if (eq == NULL || eq == kv) {
                fprintf(stderr, "herald node: --set takes FIELD=VALUE (got '%s')\n", kv);
                goto done;
            }
            if (nsets == NODE_MAX_SETS) {
                fprintf(stderr, "herald node: at most %d --set options\n", NODE_MAX_SETS);
                goto done;
            }
            sets[nsets++] = (struct set){kv, (size_t)(eq - kv), eq + 1};
        } else if (a[0] == '-') {
            fprintf(stderr, "herald node: unknown option %s (or it needs a value)\n", a);
            goto done;
        } else if (action == NULL) {
            action = a;
        } else if (node == NULL) {
            node = a;
        } else {
            fprintf(stderr, "herald node: unexpected argument %s\n", a);
            goto done;
        }
    }
    static const char *const actions[] = {"create", "list", "info", "config", "delete", "purge"};
    size_t k;
    for (k = 0; action && k < sizeof(actions) / sizeof(actions[0]); k++)
        if (strcmp(action, actions[k]) == 0)
            break;
    if (action == NULL || k == sizeof(actions) / sizeof(actions[0])) {
        if (action)
            fprintf(stderr, "herald node: unknown action '%s'\n", action);
        fprintf(stderr, "Usage: herald node create|list|info|config|delete|purge ...\n"
                        "Run 'herald node --help' for the options.\n");
        goto done;
    }
    bool create = k == 0, list = k == 1, config = k == 3, del = k == 4; /* 2: info */
    if (!create && !list && node == NULL) {
        fprintf(stderr, "herald node %s: give the NODE\n", action);
        goto done;
    }
    if (list && node) {
        fprintf(stderr, "herald node list: unexpected argument %s\n", node);
        goto done;
    }
    if (nsets && !create && !config) {
        fprintf(stderr, "herald node %s: --set is for create and config\n", action);
        goto done;
    }
    if ((ret = cli_rest_only(&c)) != 0 || (ret = cli_rest_open(&c)) != 0)
        goto done;
    if (list) {
        ret = node_list(&c, json);
        goto done;
    }
    const char *method = "GET";
    buf_puts(&path, "/v1/nodes");
    if (!create) {
        buf_putc(&path, '/');
        cli_rest_segment(&path, node);
    }
    if (create) {
        method = "POST";
    } else if (config && nsets) {
        method = "PATCH";
    } else if (del) {
        method = "DELETE";
    } else if (k == 5) {
        method = "POST";
        buf_puts(&path, "/purge");
    }
    if ((create || (config && nsets)) && config_body(create ? node : NULL, sets, nsets, &body)) {
        fprintf(stderr, "herald node: a node name or value is not valid UTF-8\n");
        ret = CLI_USAGE;
        goto done;
    }
    if (buf_nul(&path) != 0) {
        fprintf(stderr, "herald node: out of memory\n");
        ret = CLI_CONNECT;
        goto done;
    }
    long status = 0;
    if ((ret = cli_rest_request(&c, method, path.data, body.len ? "application/json" : NULL,
                                body.len ? body.data : NULL, body.len, &status, &resp)) != 0)
        goto done;
    if (status < 200 || status > 299) {
        ret = cli_rest_refused(&c, status, &resp);
        goto done;
    }
    ret = CLI_OK;
    if (status == 204) {
        fprintf(stderr, "herald node: %s %s\n", del ? "deleted" : "purged", node);
        goto done;
    }
    if (json) {
        printf("%s\n", resp.data);
        goto done;
    }
    yajl_val v = cli_json_parse(&c, &resp);
    if (v == NULL) {
        ret = CLI_REFUSED;
        goto done;
    }
    if (create)
        printf("%s\n", cli_json_str(v, "node") ? cli_json_str(v, "node") : "?");
    else
        print_node(v, config);
    yajl_tree_free(v);
done:
    cli_rest_close(&c);
    buf_free(&path);
    buf_free(&body);
    buf_free(&resp);
    return ret;
}
