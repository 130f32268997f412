/* names.h: the word lists the sandbox generator draws from (names, streets, cities, structures,
 * rooms). Plain data in names.c so that gen.c reads as the rules of the world only. Internal. */
#ifndef HS_SANDBOX_NAMES_H
#define HS_SANDBOX_NAMES_H

#include <stddef.h>

/* A real US city with its own ZIP range, telephone area code and centre, so that the parts of a
 * generated address agree with each other. */
struct sb_city {
    const char *city;
    const char *region; /* USPS state code */
    int zip_lo, zip_hi;
    int area_code;
    double lat, lon;
};

extern const struct sb_city sb_cities[];
extern const size_t sb_n_cities;

extern const char *const sb_first_names[];
extern const size_t sb_n_first_names;
extern const char *const sb_last_names[];
extern const size_t sb_n_last_names;

extern const char *const sb_street_names[];
extern const size_t sb_n_street_names;
extern const char *const sb_street_suffixes[];
extern const size_t sb_n_street_suffixes;

/* Secondary exterior structures (the first model of an exterior job is always "House"). */
extern const char *const sb_structures[];
extern const size_t sb_n_structures;

/* Mail domains of homeowners (reserved .example names: nothing generated can reach a real inbox).
 */
extern const char *const sb_mail_domains[];
extern const size_t sb_n_mail_domains;

/* Job name endings after "<Last> - " ("Roof Replacement"). */
extern const char *const sb_project_kinds[];
extern const size_t sb_n_project_kinds;

/* Rooms of a main floor, an upper floor and a basement, for sketches and interiors, most
 * essential first. The weight is a room's typical share of its floor relative to the others, so
 * that a half bath does not come out as large as a living room. */
struct sb_room_def {
    const char *name;
    double weight;
};
extern const struct sb_room_def sb_rooms_main[];
extern const size_t sb_n_rooms_main;
extern const struct sb_room_def sb_rooms_upper[];
extern const size_t sb_n_rooms_upper;
extern const struct sb_room_def sb_rooms_basement[];
extern const size_t sb_n_rooms_basement;

#endif
