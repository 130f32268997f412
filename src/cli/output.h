/* output.h: how jobs look on a terminal and in --json. The JSON keys are a contract with scripts
 * and the CRM side: add keys, never rename them. */
#ifndef HS_CLI_OUTPUT_H
#define HS_CLI_OUTPUT_H

#include <jansson.h>
#include <stdio.h>

#include "hoversync.h"

/* The job as the CLI's JSON: id, name, reconstruction_state, external_identifier, org_id,
 * archived, created_at, updated_at, completed_at, address{}, customer{}, models[] (id, name,
 * state, deliverable, deliverable_id, complete, artifacts[] (kind, url), images[] (id, url)). */
json_t *out_job_json(const struct hs_job *j);
/* A one-line address: "4312 Meadow Drive, Santa Maria, CA 93455". Caller frees. */
char *out_address_line(const struct hs_address *a);
/* Prints JSON followed by a newline. */
void out_print_json(FILE *f, json_t *j);
/* Writes s into a column of `width` display cells: cut with "…" when longer, padded with spaces
 * when shorter. Counts UTF-8 sequences as one cell and never splits one. */
void out_cell(FILE *f, const char *s, int width);

#endif
