/* fuzz_cluster_entry.c - libFuzzer target for the cluster log's entry
 * decoder (broker/cluster/entry.c), which reads whatever the NATS stream
 * holds. Any input is decoded without reading out of bounds (ASan); an
 * accepted input encodes back to exactly its bytes (the format has one
 * encoding per entry), which decodes to the same fields again. Any
 * violation aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cl_entry *e = malloc(sizeof(*e));
    char *store = NULL;
    if (e == NULL)
        return 0;
    if (cl_entry_decode(data, size, e, &store) == 0) {
        uint8_t *again = NULL;
        size_t len = 0;
        if (cl_entry_encode(e, &again, &len) != 0 || len != size || memcmp(again, data, size) != 0) {
            fprintf(stderr, "fuzz_cluster_entry: an accepted entry does not encode back to "
                            "its bytes (%zu vs %zu)\n", len, size);
            abort();
        }
        free(again);
        free(store);
    }
    free(e);
    return 0;
}
