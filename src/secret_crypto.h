/*
 * secret_crypto.h — sealing and opening one secret version
 *
 * A version's material is {"alg": "xchacha20poly1305-ietf", "nonce": <base64>,
 * "ciphertext": <base64>}: a random nonce per version, and associated data
 * binding company id, secret id, version and key id, so material copied onto
 * another row does not decrypt.  The fingerprint is a BLAKE2b digest keyed
 * with a subkey of the master key, over the company id and the value.
 */
#ifndef PCR_SECRET_CRYPTO_H
#define PCR_SECRET_CRYPTO_H

#include "pcr.h"
#include "master_key.h"

#define PCR_SECRET_ALG "xchacha20poly1305-ietf"

typedef enum PcrOpenResult
{
	PCR_OPEN_OK,
	PCR_OPEN_MALFORMED,			/* material is not what PcrSecretSeal writes */
	PCR_OPEN_AUTH_FAILED		/* ciphertext, nonce or binding altered */
} PcrOpenResult;

typedef struct PcrSealed
{
	Jsonb	   *material;
	char	   *fingerprint;	/* hex */
} PcrSealed;

/* Encrypt value (len bytes) for (company, secret, version) under key. */
extern PcrSealed PcrSecretSeal(const PcrMasterKey *key, const pg_uuid_t *company,
							   const pg_uuid_t *secret, int32 version,
							   const char *value, Size len);

/*
 * Decrypt material into a buffer allocated in context mcxt with `offset`
 * spare bytes in front (room for a varlena header) and a NUL after the
 * plaintext.  On PCR_OPEN_OK *out points at the buffer and *len is the
 * plaintext length; otherwise nothing is allocated.
 */
extern PcrOpenResult PcrSecretOpen(const PcrMasterKey *key, const pg_uuid_t *company,
								   const pg_uuid_t *secret, int32 version, Jsonb *material,
								   MemoryContext mcxt, Size offset, char **out, Size *len);

#endif							/* PCR_SECRET_CRYPTO_H */
