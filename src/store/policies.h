/* policies.h: per-connection auto-sync policies (store.h): which jobs of an org background work
 * syncs. */
#ifndef HS_STORE_POLICIES_H
#define HS_STORE_POLICIES_H

#include "store/store.h"

struct hs_policy_ops {
    /* "all" (the default, also when none is stored), "linked" (only jobs already linked to a
     * CRM record: an external identifier or a selection), "none". *policy: caller frees. */
    int (*policy_get)(struct hs_store *s, const char *connection_key, char **policy,
                      struct hs_error *err);
    /* HS_ERR_INVALID for any other value. */
    int (*policy_put)(struct hs_store *s, const char *connection_key, const char *policy,
                      struct hs_error *err);
};

#endif
