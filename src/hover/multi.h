/* multi.h: one thread driving a libcurl multi handle, shared by every transfer of the process.
 *
 * The curl transport (transport_curl.c) hands each easy handle to the loop and blocks until the
 * transfer ends: many threads can wait on Hover at once (several requests of one connection,
 * parallel downloads), and connections are reused across all of them (the multi handle owns the
 * connection and DNS caches). Callbacks of a transfer (headers, body) run on the loop's thread
 * while its submitter waits.
 *
 * Stopping cancels what is in flight (the waiters get HS_ERR_BUSY) and refuses new transfers, so
 * that a process stops without waiting for a slow upstream. */
#ifndef HS_HOVER_MULTI_H
#define HS_HOVER_MULTI_H

#include <curl/curl.h>
#include <stdint.h>

struct hs_curl_multi;

/* A loop with its own multi handle and thread (started on its first transfer); NULL when libcurl
 * cannot make a multi handle. */
struct hs_curl_multi *hs_curl_multi_new(void);
/* Cancels what is in flight, stops the thread and frees the loop. Accepts NULL. */
void hs_curl_multi_free(struct hs_curl_multi *m);
/* Cancels every transfer in flight and refuses new ones from now on (the thread stays until
 * free). Safe from any thread, twice too. */
void hs_curl_multi_stop(struct hs_curl_multi *m);

/* Runs one transfer on the loop and waits for its end. The easy handle must carry its own
 * timeout (CURLOPT_TIMEOUT_MS): the wait gives up after wait_ms (> 0) as a last resort and then
 * removes the transfer (CURLE_OPERATION_TIMEDOUT). Returns the transfer's CURLcode, or
 * CURLE_ABORTED_BY_CALLBACK with *stopped set when the loop stopped before the transfer ended.
 * The handle is the caller's again when this returns. */
CURLcode hs_curl_multi_perform(struct hs_curl_multi *m, CURL *easy, int64_t wait_ms, int *stopped);

/* The process's loop, created on first use (never NULL unless libcurl fails). */
struct hs_curl_multi *hs_curl_multi_default(void);
/* Stops and frees the process's loop, if it was made (before curl_global_cleanup). */
void hs_curl_multi_default_shutdown(void);

#endif
