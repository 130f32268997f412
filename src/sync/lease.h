/* lease.h: the leases of this process's sync runs.
 *
 * A sync_runs row holds a lease (unix ms) that its process renews while the run goes on: one
 * heartbeat thread per process renews every held run a quarter of a lease before it ends,
 * whatever the run is doing (a long download, a wait on Hover's rate limit). A process killed
 * with -9 renews nothing, so its runs' leases lapse, and any process sharing the store, on any
 * machine, marks them "interrupted" when it finds them (store runs_interrupt_lapsed): the lease
 * time in the store decides, never a PID. Clocks of machines sharing a store must agree to well
 * within a lease. */
#ifndef HS_SYNC_LEASE_H
#define HS_SYNC_LEASE_H

#include <stdint.h>

#include "hoversync.h"
#include "store/records.h"

#define HS_RUN_LEASE_DEFAULT_MS 60000

/* The lease length of the runs this process starts from now on (--run-lease). */
void hs_run_lease_configure(int64_t lease_ms);
int64_t hs_run_lease_ms(void);

/* The lease end of a run starting or renewed now. */
int64_t hs_run_lease_until(void);

/* Starts / stops renewing run_id in store (the first hold starts the heartbeat thread). Call
 * them with no store transaction open in the calling thread: the heartbeat writes to the
 * store while it holds the list of runs. drop returns once no renewal of the run is under way,
 * so the store may be closed after the last drop. */
void hs_run_lease_hold(struct hs_store *s, int64_t run_id);
void hs_run_lease_drop(struct hs_store *s, int64_t run_id);

/* Marks every run whose lease lapsed interrupted (logged when there were some); out (may be
 * NULL) gets the counts. */
int hs_run_lease_sweep(struct hs_store *s, struct hs_run_counts *out, struct hs_error *err);

#endif
