/* jpeg.c: the sandbox's photos. A minimal baseline JPEG encoder (JFIF, YCbCr 4:4:4, the example
 * quantisation and Huffman tables of ITU T.81 Annex K) drawing a small picture of a house whose
 * colours and layout derive from the image's rng_seed. Real JPEG bytes matter: the sync service
 * stores photos and a browser shows them, so a placeholder that no decoder accepts would hide bugs.
 * No image library is needed for 96x64 pixels. */
#include "world.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"
#include "rng.h"

#define IMG_W   96
#define IMG_H   64
#define QUALITY 85

/* Zig-zag position -> natural (row-major) index in an 8x8 block. */
static const unsigned char zigzag[64] = {
    0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,  12, 19, 26, 33, 40, 48,
    41, 34, 27, 20, 13, 6,  7,  14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23,
    30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
};

/* Annex K.1 and K.2, natural order. */
static const unsigned char q_luma[64] = {
    16, 11, 10, 16, 24,  40,  51,  61,  12, 12, 14, 19, 26,  58,  60,  55,
    14, 13, 16, 24, 40,  57,  69,  56,  14, 17, 22, 29, 51,  87,  80,  62,
    18, 22, 37, 56, 68,  109, 103, 77,  24, 35, 55, 64, 81,  104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
};
static const unsigned char q_chroma[64] = {
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99,
    99, 99, 47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
};

/* Annex K.3: code counts per length 1..16, then the symbols in code order. */
static const unsigned char dc_luma_bits[16] = {0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0};
static const unsigned char dc_chroma_bits[16] = {0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0};
static const unsigned char dc_vals[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
static const unsigned char ac_luma_bits[16] = {0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d};
static const unsigned char ac_luma_vals[162] = {
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61,
    0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52,
    0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25,
    0x26, 0x27, 0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45,
    0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64,
    0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83,
    0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
    0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6,
    0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3,
    0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8,
    0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
};
static const unsigned char ac_chroma_bits[16] = {0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77};
static const unsigned char ac_chroma_vals[162] = {
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61,
    0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33,
    0x52, 0xf0, 0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18,
    0x19, 0x1a, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44,
    0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63,
    0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a,
    0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97,
    0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4,
    0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca,
    0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7,
    0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
};

struct huff {
    unsigned short code[256];
    unsigned char len[256]; /* 0: symbol not in the table */
};

/* Annex C: canonical codes from the counts per length. */
static void huff_build(struct huff *h, const unsigned char *bits, const unsigned char *vals)
{
    memset(h, 0, sizeof *h);
    unsigned code = 0;
    size_t k = 0;
    for (int l = 1; l <= 16; l++) {
        for (int i = 0; i < bits[l - 1]; i++, k++) {
            h->code[vals[k]] = (unsigned short)code++;
            h->len[vals[k]] = (unsigned char)l;
        }
        code <<= 1;
    }
}

struct bitw {
    struct hs_buf *out;
    uint32_t acc;
    int n;
};

static void put_bits(struct bitw *w, unsigned code, int len)
{
    for (int i = len - 1; i >= 0; i--) {
        w->acc = (w->acc << 1) | ((code >> i) & 1u);
        if (++w->n == 8) {
            unsigned char byte = (unsigned char)w->acc;
            (void)hs_buf_append(w->out, &byte, 1);
            if (byte == 0xFF) /* byte stuffing: 0xFF in entropy-coded data is followed by 0 */
                (void)hs_buf_append(w->out, "", 1);
            w->acc = 0;
            w->n = 0;
        }
    }
}

static void flush_bits(struct bitw *w)
{
    if (w->n > 0)
        put_bits(w, 0x7F, 8 - w->n); /* pad the last byte with 1-bits (F.1.2.3) */
}

static void put_sym(struct bitw *w, const struct huff *h, unsigned sym)
{
    if (h->len[sym] == 0)
        abort(); /* every symbol of categories 0..11 is in the Annex K tables */
    put_bits(w, h->code[sym], h->len[sym]);
}

/* Magnitude category and the value bits of a coefficient (F.1.2.1). */
static int category(int v, unsigned *bits)
{
    int a = v < 0 ? -v : v, n = 0;
    while (a >> n)
        n++;
    *bits = (unsigned)(v < 0 ? v - 1 : v) & ((1u << n) - 1u);
    return n;
}

/* cosv[x][u] = cos((2x + 1) u pi / 16), the DCT basis. */
static void dct_basis(float cosv[8][8])
{
    for (int x = 0; x < 8; x++)
        for (int u = 0; u < 8; u++)
            cosv[x][u] = (float)cos((2 * x + 1) * u * M_PI / 16.0);
}

/* A straightforward separable float DCT (A.3.3): 12 blocks of 8x8 per component are too few for a
 * fast DCT to matter. */
static void encode_block(struct bitw *w, float cosv[8][8], const float *px, const unsigned char *q,
                         const struct huff *dc, const struct huff *ac, int *pred)
{
    float tmp[64], coef[64];
    for (int y = 0; y < 8; y++) /* rows */
        for (int u = 0; u < 8; u++) {
            float s = 0;
            for (int x = 0; x < 8; x++)
                s += (px[y * 8 + x] - 128.0f) * cosv[x][u];
            tmp[y * 8 + u] = s * (u == 0 ? (float)M_SQRT1_2 : 1.0f) / 2.0f;
        }
    for (int u = 0; u < 8; u++) /* columns */
        for (int v = 0; v < 8; v++) {
            float s = 0;
            for (int y = 0; y < 8; y++)
                s += tmp[y * 8 + u] * cosv[y][v];
            coef[v * 8 + u] = s * (v == 0 ? (float)M_SQRT1_2 : 1.0f) / 2.0f;
        }
    int zz[64];
    for (int k = 0; k < 64; k++)
        zz[k] = (int)lrintf(coef[zigzag[k]] / (float)q[zigzag[k]]);

    unsigned bits;
    int diff = zz[0] - *pred;
    *pred = zz[0];
    int n = category(diff, &bits);
    put_sym(w, dc, (unsigned)n);
    put_bits(w, bits, n);
    int run = 0;
    for (int k = 1; k < 64; k++) {
        if (zz[k] == 0) {
            run++;
            continue;
        }
        while (run > 15) {
            put_sym(w, ac, 0xF0); /* ZRL: sixteen zeros */
            run -= 16;
        }
        n = category(zz[k], &bits);
        put_sym(w, ac, (unsigned)(run << 4 | n));
        put_bits(w, bits, n);
        run = 0;
    }
    if (run > 0)
        put_sym(w, ac, 0x00); /* EOB */
}

static void scaled_table(const unsigned char *base, unsigned char *out)
{
    int scale = QUALITY < 50 ? 5000 / QUALITY : 200 - QUALITY * 2; /* the IJG quality curve */
    for (int i = 0; i < 64; i++) {
        int v = (base[i] * scale + 50) / 100;
        out[i] = (unsigned char)(v < 1 ? 1 : v > 255 ? 255 : v);
    }
}

/* ---- the picture ---- */

struct rgb {
    float r, g, b;
};

static void fill(struct rgb *img, int x0, int y0, int x1, int y1, struct rgb c)
{
    for (int y = y0 < 0 ? 0 : y0; y < y1 && y < IMG_H; y++)
        for (int x = x0 < 0 ? 0 : x0; x < x1 && x < IMG_W; x++)
            img[y * IMG_W + x] = c;
}

static struct rgb pick_color(struct sb_rng *r, const float (*palette)[3], size_t n)
{
    const float *c = palette[sb_rng_below(r, (uint32_t)n)];
    float jit = (float)sb_rng_uniform(r, -12, 12);
    return (struct rgb){c[0] + jit, c[1] + jit, c[2] + jit};
}

static void draw(struct rgb *img, uint32_t seed)
{
    static const float walls[][3] = {{232, 222, 200}, {190, 200, 210}, {170, 120, 90},
                                     {240, 240, 235}, {120, 140, 120}, {210, 180, 140}};
    static const float roofs[][3] = {{70, 70, 75}, {110, 60, 50}, {60, 70, 90}, {90, 85, 80}};
    struct sb_rng r;
    sb_rng_init(&r, sb_mix64(seed));
    int horizon = 38 + sb_rng_range(&r, -4, 6);
    float dusk = (float)sb_rng_uniform(&r, 0, 0.5);
    for (int y = 0; y < IMG_H; y++)
        for (int x = 0; x < IMG_W; x++) {
            float t = (float)y / (float)horizon;
            struct rgb c;
            if (y < horizon)
                c = (struct rgb){90 + 120 * t + 80 * dusk, 150 + 70 * t, 230 - 30 * t - 60 * dusk};
            else
                c = (struct rgb){70 + (float)(x % 7), 130 + 20 * (float)(y - horizon) / 26.0f, 60};
            img[y * IMG_W + x] = c;
        }
    int hw = sb_rng_range(&r, 36, 56), hh = sb_rng_range(&r, 16, 22);
    int x0 = sb_rng_range(&r, 6, IMG_W - hw - 6), base = horizon + sb_rng_range(&r, 10, 16);
    int top = base - hh;
    struct rgb wall = pick_color(&r, walls, sizeof walls / sizeof walls[0]);
    struct rgb roof = pick_color(&r, roofs, sizeof roofs / sizeof roofs[0]);
    fill(img, x0, top, x0 + hw, base, wall);
    int peak = sb_rng_range(&r, 10, 16), over = 3;
    for (int y = 0; y < peak; y++) { /* a gable roof: a triangle over the walls */
        int half = (hw / 2 + over) * (y + 1) / peak;
        fill(img, x0 + hw / 2 - half, top - peak + y, x0 + hw / 2 + half, top - peak + y + 1, roof);
    }
    struct rgb trim = {245, 245, 245}, glass = {150, 190, 220}, door = {120, 70, 40};
    int dx = x0 + sb_rng_range(&r, 4, hw - 10);
    fill(img, dx - 1, base - 12, dx + 7, base, trim);
    fill(img, dx, base - 11, dx + 6, base, door);
    for (int k = 0; k < 3; k++) {
        int wx = x0 + 3 + k * (hw - 10) / 2;
        if (wx + 7 > dx - 1 && wx < dx + 8)
            continue; /* no window over the door */
        fill(img, wx - 1, top + 3, wx + 7, top + 10, trim);
        fill(img, wx, top + 4, wx + 6, top + 9, glass);
    }
    if (sb_rng_chance(&r, 0.7)) { /* a tree */
        int tx = x0 + hw + 8 < IMG_W - 6 ? x0 + hw + 8 : x0 - 10;
        fill(img, tx, base - 10, tx + 3, base, (struct rgb){90, 60, 30});
        for (int y = -9; y <= 9; y++)
            for (int x = -9; x <= 9; x++)
                if (x * x + y * y <= 81)
                    fill(img, tx + 1 + x, base - 20 + y, tx + 2 + x, base - 19 + y,
                         (struct rgb){40, 110 + (float)(y * 2), 50});
    }
}

/* ---- the file ---- */

static void put_u16(struct hs_buf *b, unsigned v)
{
    unsigned char x[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    (void)hs_buf_append(b, x, 2);
}

static void put_marker(struct hs_buf *b, unsigned marker, unsigned payload_len)
{
    put_u16(b, 0xFF00u | marker);
    put_u16(b, payload_len + 2);
}

static void put_dht(struct hs_buf *b, unsigned class_id, const unsigned char *bits,
                    const unsigned char *vals)
{
    unsigned n = 0;
    for (int i = 0; i < 16; i++)
        n += bits[i];
    put_marker(b, 0xC4, 1 + 16 + n);
    unsigned char c = (unsigned char)class_id;
    (void)hs_buf_append(b, &c, 1);
    (void)hs_buf_append(b, bits, 16);
    (void)hs_buf_append(b, vals, n);
}

unsigned char *sb_jpeg_bytes(const struct sb_image *img, size_t *len)
{
    struct rgb *px = hs_malloc(sizeof *px * IMG_W * IMG_H);
    draw(px, img->rng_seed);

    unsigned char ql[64], qc[64];
    scaled_table(q_luma, ql);
    scaled_table(q_chroma, qc);
    struct huff dcl, dcc, acl, acc;
    huff_build(&dcl, dc_luma_bits, dc_vals);
    huff_build(&dcc, dc_chroma_bits, dc_vals);
    huff_build(&acl, ac_luma_bits, ac_luma_vals);
    huff_build(&acc, ac_chroma_bits, ac_chroma_vals);

    struct hs_buf b;
    hs_buf_init(&b, 1u << 20);
    put_u16(&b, 0xFFD8); /* SOI */
    put_marker(&b, 0xE0, 14);
    (void)hs_buf_append(&b, "JFIF\0\x01\x01\x00\x00\x01\x00\x01\x00\x00", 14);
    static const char comment[] = "hover-sandbox photo";
    put_marker(&b, 0xFE, sizeof comment - 1);
    (void)hs_buf_append(&b, comment, sizeof comment - 1);
    for (unsigned t = 0; t < 2; t++) {
        put_marker(&b, 0xDB, 65);
        unsigned char id = (unsigned char)t;
        (void)hs_buf_append(&b, &id, 1);
        const unsigned char *q = t == 0 ? ql : qc;
        for (int k = 0; k < 64; k++)
            (void)hs_buf_append(&b, &q[zigzag[k]], 1);
    }
    put_marker(&b, 0xC0, 6 + 3 * 3); /* SOF0: baseline, 8-bit, 3 components, no subsampling */
    static const unsigned char sof[] = {
        8, IMG_H >> 8, IMG_H & 0xFF, IMG_W >> 8, IMG_W & 0xFF, 3, 1, 0x11, 0, 2, 0x11,
        1, 3,          0x11,         1};
    (void)hs_buf_append(&b, sof, sizeof sof);
    put_dht(&b, 0x00, dc_luma_bits, dc_vals);
    put_dht(&b, 0x10, ac_luma_bits, ac_luma_vals);
    put_dht(&b, 0x01, dc_chroma_bits, dc_vals);
    put_dht(&b, 0x11, ac_chroma_bits, ac_chroma_vals);
    put_marker(&b, 0xDA, 1 + 3 * 2 + 3);
    static const unsigned char sos[] = {3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0};
    (void)hs_buf_append(&b, sos, sizeof sos);

    float cosv[8][8];
    dct_basis(cosv);
    struct bitw w = {&b, 0, 0};
    int pred[3] = {0, 0, 0};
    float blk[3][64];
    for (int by = 0; by < IMG_H; by += 8)
        for (int bx = 0; bx < IMG_W; bx += 8) {
            for (int y = 0; y < 8; y++)
                for (int x = 0; x < 8; x++) {
                    struct rgb c = px[(by + y) * IMG_W + bx + x];
                    float R = c.r < 0 ? 0 : c.r > 255 ? 255 : c.r;
                    float G = c.g < 0 ? 0 : c.g > 255 ? 255 : c.g;
                    float B = c.b < 0 ? 0 : c.b > 255 ? 255 : c.b;
                    blk[0][y * 8 + x] = 0.299f * R + 0.587f * G + 0.114f * B;
                    blk[1][y * 8 + x] = -0.168736f * R - 0.331264f * G + 0.5f * B + 128.0f;
                    blk[2][y * 8 + x] = 0.5f * R - 0.418688f * G - 0.081312f * B + 128.0f;
                }
            encode_block(&w, cosv, blk[0], ql, &dcl, &acl, &pred[0]);
            encode_block(&w, cosv, blk[1], qc, &dcc, &acc, &pred[1]);
            encode_block(&w, cosv, blk[2], qc, &dcc, &acc, &pred[2]);
        }
    flush_bits(&w);
    put_u16(&b, 0xFFD9); /* EOI */
    free(px);
    return (unsigned char *)hs_buf_take(&b, len);
}
