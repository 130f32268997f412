/* store.c: back-end independent helpers of the storage interface. */
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

void hs_token_clear(struct hs_token *t)
{
    if (!t)
        return;
    free(t->access_token);
    free(t->refresh_token);
    free(t->owner_type);
    memset(t, 0, sizeof *t);
}

void hs_token_copy(struct hs_token *dst, const struct hs_token *src)
{
    dst->access_token = hs_strdup(src->access_token);
    dst->refresh_token = hs_strdup(src->refresh_token);
    dst->owner_type = hs_strdup(src->owner_type);
    dst->expires_at = src->expires_at;
    dst->owner_id = src->owner_id;
    dst->generation = src->generation;
}

void hs_store_close(struct hs_store *s)
{
    if (s)
        s->ops->close(s);
}
