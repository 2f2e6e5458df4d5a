/*
 * secret_crypto.c — sealing and opening one secret version (libsodium)
 *
 * Plaintext only ever lives in buffers this file or its caller zeroes; the
 * material it produces is safe to store, log and copy.
 */
#include "pcr.h"
#include "secret_crypto.h"
#include "jsonb_util.h"

#include <sodium.h>

#include "common/base64.h"
#include "utils/memutils.h"

#define PCR_AD_PREFIX "paperclip_runtime secret v1"
#define PCR_AD_LEN (sizeof(PCR_AD_PREFIX) - 1 + 2 * UUID_LEN + 4 + PCR_KEY_ID_LEN)
#define PCR_NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define PCR_TAG_BYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
#define PCR_FINGERPRINT_BYTES 32

/* prefix || company || secret || version (big-endian) || key id */
static void
build_ad(unsigned char *ad, const PcrMasterKey *key, const pg_uuid_t *company,
		 const pg_uuid_t *secret, int32 version)
{
	unsigned char *p = ad;
	uint32		v = (uint32) version;

	memcpy(p, PCR_AD_PREFIX, sizeof(PCR_AD_PREFIX) - 1);
	p += sizeof(PCR_AD_PREFIX) - 1;
	memcpy(p, company->data, UUID_LEN);
	p += UUID_LEN;
	memcpy(p, secret->data, UUID_LEN);
	p += UUID_LEN;
	*p++ = (unsigned char) (v >> 24);
	*p++ = (unsigned char) (v >> 16);
	*p++ = (unsigned char) (v >> 8);
	*p++ = (unsigned char) v;
	memcpy(p, key->id, PCR_KEY_ID_LEN);
}

static char *
to_base64(const unsigned char *bin, size_t len)
{
	size_t		b64len = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char	   *b64 = palloc(b64len);

	sodium_bin2base64(b64, b64len, bin, len, sodium_base64_VARIANT_ORIGINAL);
	return b64;
}

/* Decode a base64 JSON string field; false when absent or not base64. */
static bool
from_base64(Jsonb *material, const char *field, unsigned char **bin, size_t *len)
{
	JsonbValue	v;
	size_t		maxlen;
	int			n;

	if (PcrJsonbGet(material, field, &v) == NULL || v.type != jbvString)
		return false;
	maxlen = (size_t) v.val.string.len / 4 * 3 + 3;
	*bin = palloc(maxlen);
	/* what PcrSecretSeal writes: PostgreSQL's own (fast) decoder */
	n = pg_b64_decode(v.val.string.val, v.val.string.len, (char *) *bin, (int) maxlen);
	if (n >= 0)
	{
		*len = (size_t) n;
		return true;
	}
	/* whitespace tolerated: PostgreSQL's encode(…, 'base64') wraps lines */
	return sodium_base642bin(*bin, maxlen, v.val.string.val, v.val.string.len,
							 " \r\n", len, NULL, sodium_base64_VARIANT_ORIGINAL) == 0;
}

static char *
fingerprint(const PcrMasterKey *key, const pg_uuid_t *company, const char *value, Size len)
{
	crypto_generichash_state st;
	unsigned char digest[PCR_FINGERPRINT_BYTES];
	char	   *hex = palloc(2 * PCR_FINGERPRINT_BYTES + 1);

	crypto_generichash_init(&st, key->fingerprint_key, PCR_KEY_BYTES, sizeof(digest));
	crypto_generichash_update(&st, company->data, UUID_LEN);
	crypto_generichash_update(&st, (const unsigned char *) value, len);
	crypto_generichash_final(&st, digest, sizeof(digest));
	sodium_memzero(&st, sizeof(st));
	sodium_bin2hex(hex, 2 * PCR_FINGERPRINT_BYTES + 1, digest, sizeof(digest));
	return hex;
}

PcrSealed
PcrSecretSeal(const PcrMasterKey *key, const pg_uuid_t *company,
			  const pg_uuid_t *secret, int32 version, const char *value, Size len)
{
	unsigned char ad[PCR_AD_LEN];
	unsigned char nonce[PCR_NONCE_BYTES];
	unsigned char *ct;
	unsigned long long ctlen;
	PcrJsonbBuilder b;
	PcrSealed	sealed;

	if (len > MaxAllocSize - PCR_TAG_BYTES - VARHDRSZ - 1)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("secret value is too long"),
				 errhidestmt(true)));

	build_ad(ad, key, company, secret, version);
	randombytes_buf(nonce, sizeof(nonce));
	ct = palloc(len + PCR_TAG_BYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &ctlen,
											   (const unsigned char *) value, len,
											   ad, sizeof(ad), NULL, nonce, key->aead_key);

	PcrJbBegin(&b);
	PcrJbAddText(&b, "alg", PCR_SECRET_ALG);
	PcrJbAddText(&b, "nonce", to_base64(nonce, sizeof(nonce)));
	PcrJbAddText(&b, "ciphertext", to_base64(ct, (size_t) ctlen));
	sealed.material = PcrJbFinish(&b);
	sealed.fingerprint = fingerprint(key, company, value, len);
	pfree(ct);
	return sealed;
}

PcrOpenResult
PcrSecretOpen(const PcrMasterKey *key, const pg_uuid_t *company,
			  const pg_uuid_t *secret, int32 version, Jsonb *material,
			  MemoryContext mcxt, Size offset, char **out, Size *len)
{
	unsigned char ad[PCR_AD_LEN];
	unsigned char *nonce = NULL;
	unsigned char *ct = NULL;
	size_t		nonce_len = 0;
	size_t		ct_len = 0;
	char	   *alg;
	char	   *buf;
	unsigned long long plain_len;

	alg = PcrJsonbGetText(material, "alg");
	if (alg == NULL || strcmp(alg, PCR_SECRET_ALG) != 0 ||
		!from_base64(material, "nonce", &nonce, &nonce_len) || nonce_len != PCR_NONCE_BYTES ||
		!from_base64(material, "ciphertext", &ct, &ct_len) || ct_len < PCR_TAG_BYTES)
		return PCR_OPEN_MALFORMED;

	build_ad(ad, key, company, secret, version);
	buf = MemoryContextAlloc(mcxt, offset + (ct_len - PCR_TAG_BYTES) + 1);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt((unsigned char *) buf + offset, &plain_len, NULL,
												   ct, ct_len, ad, sizeof(ad),
												   nonce, key->aead_key) != 0)
	{
		pfree(buf);
		return PCR_OPEN_AUTH_FAILED;
	}
	buf[offset + plain_len] = '\0';
	*out = buf;
	*len = (Size) plain_len;
	return PCR_OPEN_OK;
}
