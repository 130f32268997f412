/* profile.h: the artifact profile: which of the artifacts a complete model offers a sync
 * downloads. The others are recorded (kind and Hover URL, "not fetched") and downloaded on first
 * use (GET /files/models/{id}/{kind}, `hoversync fetch`).
 *
 * A profile is a comma list of names:
 *   - artifact kinds as the store names them (mapping.c keys them by their path in Show Job):
 *     measurements.pdf, measurements.json (the summarized JSON), measurements.full_json, ...;
 *   - images:none, images:first, images:all;
 *   - default: what a CRM record shows: the PDF, the one measurements JSON version the
 *     measurement columns are extracted from (summarized, else sketch, else full JSON), and the
 *     first image;
 *   - all: everything the model offers (what every sync fetched before profiles existed).
 * The effective profile of a sync: its connection's (stored, `hoversync connections
 * set-artifacts`), else the installation's --artifacts. */
#ifndef HS_SYNC_PROFILE_H
#define HS_SYNC_PROFILE_H

#include <stdbool.h>
#include <stdint.h>

#include "hoversync.h"

#define HS_PROFILE_DEFAULT "default"

enum hs_profile_images { HS_IMAGES_NONE, HS_IMAGES_FIRST, HS_IMAGES_ALL };

struct hs_profile {
    bool all;
    bool extracted; /* the measurements JSON the columns come from */
    uint32_t kinds; /* bit i: hs_profile_kinds[i] */
    enum hs_profile_images images;
};

/* The artifact kinds a profile may name, NULL-terminated. */
extern const char *const hs_profile_kinds[];

/* Parses a comma list; HS_ERR_INVALID with a message naming the valid names when a name is
 * unknown or the list is empty. Images not named: none. */
int hs_profile_parse(const char *list, struct hs_profile *out, struct hs_error *err);

/* True when a sync of model m downloads its artifact `kind` (an artifact of m->artifacts). */
bool hs_profile_wants_artifact(const struct hs_profile *p, const struct hs_model *m,
                               const char *kind);
/* True when a sync downloads m's image at index i of m->images. */
bool hs_profile_wants_image(const struct hs_profile *p, const struct hs_model *m, size_t i);

/* The kind of m's artifacts the measurement columns are extracted from (the summarized JSON,
 * else the sketch JSON, else the full JSON), or NULL when it offers none; borrowed from m. */
const char *hs_profile_extraction_kind(const struct hs_model *m);

struct hs_store;
/* The profile list a sync for connection_key follows: the connection's stored one, else
 * dflt (NULL: "default"). New; the caller frees. A store that cannot be read gives dflt
 * (logged). */
char *hs_profile_of(struct hs_store *store, const char *connection_key, const char *dflt);

#endif
