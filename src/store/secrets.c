/* secrets.c: sealing secrets at rest with AES-256-GCM (secrets.h). */
#include "store/secrets.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/str.h"

#define PREFIX       "hs1:"
#define PREFIX_LEN   4
#define NONCE_BYTES  12
#define TAG_BYTES    16
#define SEALED_MAX   (64u * 1024u) /* tokens and secrets are short: anything longer is damage */
#define KEY_ID_LABEL "hoversync secret key id"

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

/* Decodes base64 (either alphabet, padding optional) of n characters into out (room for
 * n * 3 / 4 bytes); the length, or -1 when it is not base64. */
static long b64_decode(const char *in, size_t n, unsigned char *out)
{
    while (n && in[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return -1;
    long len = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value(in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[len++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return len;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool parse_hex(const char *s, size_t n, unsigned char *out)
{
    if (n != 2 * HS_SECRET_KEY_BYTES)
        return false;
    for (size_t i = 0; i < HS_SECRET_KEY_BYTES; i++) {
        int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (unsigned char)(hi * 16 + lo);
    }
    return true;
}

int hs_secret_key_parse(const char *text, struct hs_secret_key *out, struct hs_error *err)
{
    static const char want[] = "32 random bytes as 64 hex digits or as base64 (for example the "
                               "output of `openssl rand -base64 32`)";
    const char *s = text ? text : "";
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    struct hs_secret_key k;
    memset(&k, 0, sizeof k);
    bool ok = parse_hex(s, n, k.k);
    if (!ok && n <= 64) {
        unsigned char buf[48];
        long len = b64_decode(s, n, buf);
        ok = len == HS_SECRET_KEY_BYTES;
        if (ok)
            memcpy(k.k, buf, HS_SECRET_KEY_BYTES);
        OPENSSL_cleanse(buf, sizeof buf);
    }
    if (!ok) {
        OPENSSL_cleanse(&k, sizeof k);
        return hs_fail(err, HS_ERR_INVALID, "HOVERSYNC_ENCRYPTION_KEY must be %s", want);
    }
    unsigned char zero[HS_SECRET_KEY_BYTES] = {0};
    if (CRYPTO_memcmp(k.k, zero, sizeof zero) == 0) {
        OPENSSL_cleanse(&k, sizeof k);
        return hs_fail(err, HS_ERR_INVALID, "HOVERSYNC_ENCRYPTION_KEY is all zeros: it must be %s",
                       want);
    }
    unsigned char md[32], in[sizeof KEY_ID_LABEL + HS_SECRET_KEY_BYTES];
    unsigned int mdn = 0;
    memcpy(in, KEY_ID_LABEL, sizeof KEY_ID_LABEL);
    memcpy(in + sizeof KEY_ID_LABEL, k.k, HS_SECRET_KEY_BYTES);
    if (EVP_Digest(in, sizeof in, md, &mdn, EVP_sha256(), NULL) != 1)
        abort(); /* libcrypto without SHA-256 is not a state to run in */
    OPENSSL_cleanse(in, sizeof in);
    hs_hex(md, 4, k.id);
    *out = k;
    OPENSSL_cleanse(&k, sizeof k);
    return HS_OK;
}

void hs_secret_free(char *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

void hs_secret_key_clear(struct hs_secret_key *k)
{
    if (k)
        OPENSSL_cleanse(k, sizeof *k);
}

bool hs_secret_is_sealed(const char *stored)
{
    return stored && strncmp(stored, PREFIX, PREFIX_LEN) == 0;
}

bool hs_secret_key_id(const char *stored, char id[9])
{
    if (!hs_secret_is_sealed(stored) || strlen(stored) < PREFIX_LEN + 9 ||
        stored[PREFIX_LEN + 8] != ':')
        return false;
    for (size_t i = 0; i < 8; i++)
        if (hex_value(stored[PREFIX_LEN + i]) < 0)
            return false;
    memcpy(id, stored + PREFIX_LEN, 8);
    id[8] = '\0';
    return true;
}

int hs_secret_seal(const struct hs_secret_key *k, const char *clear, const char *aad, char **out,
                   struct hs_error *err)
{
    *out = NULL;
    if (!clear)
        return HS_OK;
    size_t n = strlen(clear);
    if (n > SEALED_MAX)
        return hs_fail(err, HS_ERR_TOOBIG, "a secret over %u bytes", SEALED_MAX);
    size_t raw_len = NONCE_BYTES + n + TAG_BYTES;
    unsigned char *raw = hs_malloc(raw_len);
    int rc = HS_OK, len = 0, fin = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx || RAND_bytes(raw, NONCE_BYTES) != 1 ||
        EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, k->k, raw) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &len, (const unsigned char *)aad, (int)strlen(aad)) != 1 ||
        EVP_EncryptUpdate(ctx, raw + NONCE_BYTES, &len, (const unsigned char *)clear, (int)n) !=
            1 ||
        EVP_EncryptFinal_ex(ctx, raw + NONCE_BYTES + len, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_BYTES, raw + NONCE_BYTES + n) != 1) {
        rc = hs_fail(err, HS_ERR_INTERNAL, "cannot encrypt a secret (OpenSSL)");
        goto out;
    }
    size_t b64_len = 4 * ((raw_len + 2) / 3);
    char *s = hs_malloc(PREFIX_LEN + 9 + b64_len + 1);
    memcpy(s, PREFIX, PREFIX_LEN);
    memcpy(s + PREFIX_LEN, k->id, 8);
    s[PREFIX_LEN + 8] = ':';
    EVP_EncodeBlock((unsigned char *)s + PREFIX_LEN + 9, raw, (int)raw_len);
    *out = s;
out:
    EVP_CIPHER_CTX_free(ctx);
    OPENSSL_cleanse(raw, raw_len);
    free(raw);
    return rc;
}

int hs_secret_open(const struct hs_secret_key *k, const char *stored, const char *aad, char **out,
                   struct hs_error *err)
{
    *out = NULL;
    if (!stored)
        return HS_OK;
    if (!hs_secret_is_sealed(stored)) {
        *out = hs_strdup(stored);
        return HS_OK;
    }
    char id[9];
    size_t n = strlen(stored);
    if (!hs_secret_key_id(stored, id) || n > SEALED_MAX)
        return hs_fail(err, HS_ERR_DB, "a stored secret (%s) is damaged: not in the sealed form",
                       aad);
    if (!k)
        return hs_fail(err, HS_ERR_DB,
                       "the store's secrets are encrypted (key %s): set HOVERSYNC_ENCRYPTION_KEY",
                       id);
    if (strcmp(id, k->id) != 0)
        return hs_fail(err, HS_ERR_DB,
                       "a stored secret (%s) is encrypted under key %s, but "
                       "HOVERSYNC_ENCRYPTION_KEY is key %s: wrong key",
                       aad, id, k->id);
    const char *b64 = stored + PREFIX_LEN + 9;
    size_t b64_n = n - PREFIX_LEN - 9;
    unsigned char *raw = hs_malloc(b64_n * 3 / 4 + 3);
    long raw_len = b64_decode(b64, b64_n, raw);
    int rc = HS_OK, len = 0, fin = 0;
    unsigned char *clear = NULL;
    EVP_CIPHER_CTX *ctx = NULL;
    size_t ct_len = 0;
    if (raw_len < NONCE_BYTES + TAG_BYTES) {
        rc = hs_fail(err, HS_ERR_DB, "a stored secret (%s) is damaged: too short", aad);
        goto out;
    }
    ct_len = (size_t)raw_len - NONCE_BYTES - TAG_BYTES;
    clear = hs_malloc(ct_len + 1);
    ctx = EVP_CIPHER_CTX_new();
    if (!ctx || EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, k->k, raw) != 1 ||
        EVP_DecryptUpdate(ctx, NULL, &len, (const unsigned char *)aad, (int)strlen(aad)) != 1 ||
        EVP_DecryptUpdate(ctx, clear, &len, raw + NONCE_BYTES, (int)ct_len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_BYTES, raw + NONCE_BYTES + ct_len) !=
            1 ||
        EVP_DecryptFinal_ex(ctx, clear + len, &fin) != 1) {
        rc = hs_fail(err, HS_ERR_DB,
                     "a stored secret (%s) does not decrypt under key %s: damaged, or moved "
                     "from its place",
                     aad, k->id);
        goto out;
    }
    clear[ct_len] = '\0';
    if (memchr(clear, '\0', ct_len)) {
        rc = hs_fail(err, HS_ERR_DB, "a stored secret (%s) is damaged: not text", aad);
        goto out;
    }
    *out = (char *)clear;
    clear = NULL;
out:
    EVP_CIPHER_CTX_free(ctx);
    if (clear) {
        OPENSSL_cleanse(clear, ct_len + 1);
        free(clear);
    }
    OPENSSL_cleanse(raw, b64_n * 3 / 4 + 3);
    free(raw);
    return rc;
}

void hs_secret_token_places(const char *key, char *access, char *refresh, size_t n)
{
    (void)snprintf(access, n, "oauth_tokens.access_token:%s", key);
    (void)snprintf(refresh, n, "oauth_tokens.refresh_token:%s", key);
}

void hs_secret_webhook_place(const char *id, char *aad, size_t n)
{
    (void)snprintf(aad, n, "webhooks.hmac_secret:%s", id);
}

void hs_secret_flow_places(const char *id, char *access, char *refresh, size_t n)
{
    (void)snprintf(access, n, "connect_flows.access_token:%s", id);
    (void)snprintf(refresh, n, "connect_flows.refresh_token:%s", id);
}
