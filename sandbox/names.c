/* names.c: the sandbox generator's word lists; see names.h. The cities are real, with ZIP ranges,
 * area codes and coordinates that belong to them. */
#include "names.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const struct sb_city sb_cities[] = {
    {"Santa Maria", "CA", 93454, 93458, 805, 34.9530, -120.4357},
    {"San Luis Obispo", "CA", 93401, 93405, 805, 35.2828, -120.6596},
    {"Ventura", "CA", 93001, 93004, 805, 34.2746, -119.2290},
    {"Sacramento", "CA", 95811, 95838, 916, 38.5816, -121.4944},
    {"Fresno", "CA", 93701, 93728, 559, 36.7378, -119.7871},
    {"Boise", "ID", 83702, 83716, 208, 43.6150, -116.2023},
    {"Portland", "ME", 4101, 4103, 207, 43.6591, -70.2568},
    {"Asheville", "NC", 28801, 28806, 828, 35.5951, -82.5515},
    {"Raleigh", "NC", 27601, 27617, 919, 35.7796, -78.6382},
    {"Madison", "WI", 53703, 53719, 608, 43.0731, -89.4012},
    {"Burlington", "VT", 5401, 5408, 802, 44.4759, -73.2121},
    {"Lancaster", "PA", 17601, 17603, 717, 40.0379, -76.3055},
    {"Pittsburgh", "PA", 15201, 15244, 412, 40.4406, -79.9959},
    {"Phoenix", "AZ", 85003, 85054, 602, 33.4484, -112.0740},
    {"Tucson", "AZ", 85701, 85750, 520, 32.2226, -110.9747},
    {"Scottsdale", "AZ", 85250, 85262, 480, 33.4942, -111.9261},
    {"Columbus", "OH", 43201, 43235, 614, 39.9612, -82.9988},
    {"Toledo", "OH", 43604, 43623, 419, 41.6528, -83.5379},
    {"Austin", "TX", 78701, 78759, 512, 30.2672, -97.7431},
    {"Denver", "CO", 80202, 80239, 303, 39.7392, -104.9903},
    {"Reno", "NV", 89501, 89523, 775, 39.5296, -119.8138},
    {"Las Vegas", "NV", 89101, 89149, 702, 36.1699, -115.1398},
    {"Salt Lake City", "UT", 84101, 84121, 801, 40.7608, -111.8910},
    {"Albuquerque", "NM", 87101, 87123, 505, 35.0844, -106.6504},
    {"Spokane", "WA", 99201, 99224, 509, 47.6588, -117.4260},
    {"Tacoma", "WA", 98402, 98422, 253, 47.2529, -122.4443},
    {"Eugene", "OR", 97401, 97405, 541, 44.0521, -123.0868},
    {"Bend", "OR", 97701, 97703, 541, 44.0582, -121.3153},
    {"Billings", "MT", 59101, 59106, 406, 45.7833, -108.5007},
    {"Bozeman", "MT", 59715, 59718, 406, 45.6770, -111.0429},
    {"Cheyenne", "WY", 82001, 82009, 307, 41.1400, -104.8202},
    {"Omaha", "NE", 68102, 68164, 402, 41.2565, -95.9345},
    {"Lincoln", "NE", 68502, 68528, 402, 40.8136, -96.7026},
    {"Des Moines", "IA", 50309, 50322, 515, 41.5868, -93.6250},
    {"Kansas City", "MO", 64105, 64157, 816, 39.0997, -94.5786},
    {"Wichita", "KS", 67202, 67235, 316, 37.6872, -97.3301},
    {"Tulsa", "OK", 74103, 74137, 918, 36.1540, -95.9928},
    {"Oklahoma City", "OK", 73102, 73170, 405, 35.4676, -97.5164},
    {"Little Rock", "AR", 72201, 72227, 501, 34.7465, -92.2896},
    {"Memphis", "TN", 38103, 38141, 901, 35.1495, -90.0490},
    {"Nashville", "TN", 37201, 37221, 615, 36.1627, -86.7816},
    {"Knoxville", "TN", 37902, 37938, 865, 35.9606, -83.9207},
    {"Louisville", "KY", 40202, 40245, 502, 38.2527, -85.7585},
    {"Lexington", "KY", 40502, 40517, 859, 38.0406, -84.5037},
    {"Indianapolis", "IN", 46204, 46260, 317, 39.7684, -86.1581},
    {"Fort Wayne", "IN", 46802, 46845, 260, 41.0793, -85.1394},
    {"Grand Rapids", "MI", 49503, 49548, 616, 42.9634, -85.6681},
    {"Ann Arbor", "MI", 48103, 48109, 734, 42.2808, -83.7430},
    {"Rochester", "NY", 14604, 14626, 585, 43.1566, -77.6088},
    {"Albany", "NY", 12202, 12211, 518, 42.6526, -73.7562},
    {"Hartford", "CT", 6103, 6120, 860, 41.7658, -72.6734},
    {"Providence", "RI", 2903, 2909, 401, 41.8240, -71.4128},
    {"Worcester", "MA", 1602, 1610, 508, 42.2626, -71.8023},
    {"Manchester", "NH", 3101, 3109, 603, 42.9956, -71.4548},
    {"Richmond", "VA", 23219, 23236, 804, 37.5407, -77.4360},
    {"Charleston", "SC", 29401, 29414, 843, 32.7765, -79.9311},
    {"Savannah", "GA", 31401, 31419, 912, 32.0809, -81.0912},
    {"Atlanta", "GA", 30303, 30350, 404, 33.7490, -84.3880},
    {"Birmingham", "AL", 35203, 35244, 205, 33.5186, -86.8104},
    {"Jacksonville", "FL", 32202, 32258, 904, 30.3322, -81.6557},
    {"Tampa", "FL", 33602, 33629, 813, 27.9506, -82.4572},
    {"Orlando", "FL", 32801, 32839, 407, 28.5383, -81.3792},
    {"Baton Rouge", "LA", 70801, 70817, 225, 30.4515, -91.1871},
    {"Minneapolis", "MN", 55401, 55419, 612, 44.9778, -93.2650},
    {"Saint Paul", "MN", 55101, 55119, 651, 44.9537, -93.0900},
    {"Sioux Falls", "SD", 57103, 57110, 605, 43.5446, -96.7311},
    {"Fargo", "ND", 58102, 58104, 701, 46.8772, -96.7898},
};
const size_t sb_n_cities = COUNT(sb_cities);

const char *const sb_first_names[] = {
    "James",     "Mary",     "Robert",    "Patricia",  "John",    "Jennifer",  "Michael",
    "Linda",     "David",    "Elizabeth", "William",   "Barbara", "Richard",   "Susan",
    "Joseph",    "Jessica",  "Thomas",    "Sarah",     "Charles", "Karen",     "Daniel",
    "Lisa",      "Matthew",  "Nancy",     "Anthony",   "Betty",   "Mark",      "Sandra",
    "Donald",    "Ashley",   "Steven",    "Emily",     "Paul",    "Donna",     "Andrew",
    "Michelle",  "Joshua",   "Carol",     "Kenneth",   "Amanda",  "Kevin",     "Melissa",
    "Brian",     "Deborah",  "George",    "Stephanie", "Timothy", "Rebecca",   "Ronald",
    "Laura",     "Jason",    "Sharon",    "Edward",    "Cynthia", "Jeffrey",   "Kathleen",
    "Ryan",      "Amy",      "Jacob",     "Angela",    "Gary",    "Shirley",   "Nicholas",
    "Anna",      "Eric",     "Brenda",    "Jonathan",  "Pamela",  "Stephen",   "Emma",
    "Larry",     "Nicole",   "Justin",    "Helen",     "Scott",   "Samantha",  "Brandon",
    "Katherine", "Benjamin", "Christine", "Samuel",    "Debra",   "Gregory",   "Rachel",
    "Alexander", "Carolyn",  "Patrick",   "Janet",     "Frank",   "Maria",     "Raymond",
    "Olivia",    "Jack",     "Heather",   "Dennis",    "Diane",   "Tyler",     "Julie",
    "Aaron",     "Joyce",    "Jose",      "Victoria",  "Adam",    "Kelly",     "Nathan",
    "Christina", "Henry",    "Lauren",    "Zachary",   "Joan",    "Douglas",   "Evelyn",
    "Peter",     "Sophia",   "Kyle",      "Judith",    "Noah",    "Megan",     "Ethan",
    "Andrea",    "Jeremy",   "Cheryl",    "Walter",    "Hannah",  "Christian", "Jacqueline",
    "Keith",     "Martha",   "Dana",      "Jordan",    "Morgan",  "Casey",     "Taylor",
    "Riley",     "Avery",    "Quinn",
};
const size_t sb_n_first_names = COUNT(sb_first_names);

const char *const sb_last_names[] = {
    "Smith",     "Johnson",   "Williams",   "Brown",     "Jones",      "Garcia",    "Miller",
    "Davis",     "Rodriguez", "Martinez",   "Hernandez", "Lopez",      "Gonzalez",  "Wilson",
    "Anderson",  "Thomas",    "Taylor",     "Moore",     "Jackson",    "Martin",    "Lee",
    "Perez",     "Thompson",  "White",      "Harris",    "Sanchez",    "Clark",     "Ramirez",
    "Lewis",     "Robinson",  "Walker",     "Young",     "Allen",      "King",      "Wright",
    "Scott",     "Torres",    "Nguyen",     "Hill",      "Flores",     "Green",     "Adams",
    "Nelson",    "Baker",     "Hall",       "Rivera",    "Campbell",   "Mitchell",  "Carter",
    "Roberts",   "Gomez",     "Phillips",   "Evans",     "Turner",     "Diaz",      "Parker",
    "Cruz",      "Edwards",   "Collins",    "Reyes",     "Stewart",    "Morris",    "Morales",
    "Murphy",    "Cook",      "Rogers",     "Gutierrez", "Ortiz",      "Morgan",    "Cooper",
    "Peterson",  "Bailey",    "Reed",       "Kelly",     "Howard",     "Ramos",     "Kim",
    "Cox",       "Ward",      "Richardson", "Watson",    "Brooks",     "Chavez",    "Wood",
    "James",     "Bennett",   "Gray",       "Mendoza",   "Ruiz",       "Hughes",    "Price",
    "Alvarez",   "Castillo",  "Sanders",    "Patel",     "Myers",      "Long",      "Ross",
    "Foster",    "Jimenez",   "Powell",     "Jenkins",   "Perry",      "Russell",   "Sullivan",
    "Bell",      "Coleman",   "Butler",     "Henderson", "Barnes",     "Gonzales",  "Fisher",
    "Vasquez",   "Simmons",   "Romero",     "Jordan",    "Patterson",  "Alexander", "Hamilton",
    "Graham",    "Reynolds",  "Griffin",    "Wallace",   "Moreno",     "West",      "Cole",
    "Hayes",     "Bryant",    "Herrera",    "Gibson",    "Ellis",      "Tran",      "Medina",
    "Aguilar",   "Stevens",   "Murray",     "Ford",      "Castro",     "Marshall",  "Owens",
    "Harrison",  "Fernandez", "McDonald",   "Woods",     "Washington", "Kennedy",   "Wells",
    "Vargas",    "Henry",     "Chen",       "Freeman",   "Webb",       "Tucker",    "Guzman",
    "Burns",     "Crawford",  "Olson",      "Simpson",   "Porter",     "Hunter",    "Gordon",
    "Mendez",    "Silva",     "Shaw",       "Snyder",    "Mason",      "Dixon",     "Munoz",
    "Hunt",      "Hicks",     "Holmes",     "Palmer",    "Wagner",     "Black",     "Robertson",
    "Boyd",      "Rose",      "Stone",      "Salazar",   "Fox",        "Warren",    "Mills",
    "Meyer",     "Rice",      "Schmidt",    "Garza",     "Daniels",    "Ferguson",  "Nichols",
    "Whitfield", "Lindqvist", "Okafor",     "Novak",     "Kowalski",   "Brennan",   "Yamamoto",
};
const size_t sb_n_last_names = COUNT(sb_last_names);

const char *const sb_street_names[] = {
    "Meadow",     "Oak",          "Maple",        "Cedar",       "Pine",          "Elm",
    "Willow",     "Birch",        "Aspen",        "Juniper",     "Sycamore",      "Magnolia",
    "Hickory",    "Chestnut",     "Walnut",       "Spruce",      "Poplar",        "Cypress",
    "Laurel",     "Dogwood",      "Highland",     "Ridge",       "Valley",        "Lake",
    "River",      "Hill",         "Park",         "Forest",      "Sunset",        "Sunrise",
    "Orchard",    "Harbor",       "Mill",         "Church",      "Main",          "Washington",
    "Lincoln",    "Jefferson",    "Madison",      "Franklin",    "Adams",         "Jackson",
    "Monroe",     "Union",        "Liberty",      "Spring",      "Summit",        "Prospect",
    "Grant",      "Hawthorne",    "Brookside",    "Fairview",    "Greenwood",     "Lakeview",
    "Hillcrest",  "Woodland",     "Country Club", "Old Mill",    "Stonegate",     "Fox Hollow",
    "Quail Run",  "Deer Creek",   "Bluebird",     "Cardinal",    "Heather",       "Primrose",
    "Rosewood",   "Silver Creek", "Timber",       "Windmill",    "Canyon",        "Mesa",
    "Vista",      "Arroyo",       "Prairie",      "Meadowlark",  "Evergreen",     "Beacon",
    "Bayview",    "Kingston",     "Chapel",       "School",      "Mountain View", "Cherry",
    "Peach Tree", "Mulberry",     "Redwood",      "Sequoia",     "Cottonwood",    "Sagebrush",
    "Holly",      "Ivy",          "Clover",       "Wildflower",  "Foxglove",      "Riverside",
    "Creekside",  "Lakeshore",    "Bridge",       "Station",     "Market",        "Academy",
    "2nd",        "3rd",          "4th",          "5th",         "7th",           "10th",
    "12th",       "Cambridge",    "Oxford",       "Sheffield",   "Windsor",       "Hampton",
    "Carriage",   "Saddle",       "Stagecoach",   "Wagon Wheel", "Horseshoe",     "Ranch",
};
const size_t sb_n_street_names = COUNT(sb_street_names);

const char *const sb_street_suffixes[] = {
    "Street", "Avenue", "Drive",     "Lane",  "Road",    "Court",   "Way",
    "Place",  "Circle", "Boulevard", "Trail", "Terrace", "Parkway", "Loop",
};
const size_t sb_n_street_suffixes = COUNT(sb_street_suffixes);

const char *const sb_structures[] = {
    "Detached Garage", "Shed", "Workshop", "Barn", "Pool House", "Guest House", "Carport", "Studio",
};
const size_t sb_n_structures = COUNT(sb_structures);

const char *const sb_mail_domains[] = {
    "example.com", "example.net", "example.org", "mail.example", "inbox.example",
};
const size_t sb_n_mail_domains = COUNT(sb_mail_domains);

const char *const sb_project_kinds[] = {
    "Roof Replacement",   "Siding Estimate", "Storm Damage",    "Insurance Claim", "Gutters",
    "Window Replacement", "Reroof",          "Hail Inspection", "Exterior Paint",  "Full Exterior",
};
const size_t sb_n_project_kinds = COUNT(sb_project_kinds);

const struct sb_room_def sb_rooms_main[] = {
    {"Living Room", 1.8}, {"Kitchen", 1.4},     {"Dining Room", 1.1}, {"Foyer", 0.4},
    {"Half Bath", 0.25},  {"Family Room", 1.5}, {"Laundry", 0.4},     {"Office", 0.8},
    {"Mudroom", 0.35},    {"Pantry", 0.2},
};
const size_t sb_n_rooms_main = COUNT(sb_rooms_main);

const struct sb_room_def sb_rooms_upper[] = {
    {"Primary Bedroom", 1.6}, {"Primary Bath", 0.6}, {"Bedroom 2", 1.1}, {"Hallway", 0.5},
    {"Bathroom 2", 0.45},     {"Bedroom 3", 1.0},    {"Bedroom 4", 1.0}, {"Loft", 0.9},
    {"Closet", 0.25},         {"Linen Closet", 0.1},
};
const size_t sb_n_rooms_upper = COUNT(sb_rooms_upper);

const struct sb_room_def sb_rooms_basement[] = {
    {"Recreation Room", 2.0}, {"Utility Room", 0.6},  {"Storage", 0.7},
    {"Bathroom 3", 0.4},      {"Guest Bedroom", 1.0}, {"Media Room", 1.4},
};
const size_t sb_n_rooms_basement = COUNT(sb_rooms_basement);
