/*
 * master_key.h — the master keys of paperclip.master_key_file
 *
 * The file holds one or more keys, one per line as 64 hex digits; the first
 * is the current key (it encrypts), every key decrypts.  A key is known by
 * its id, a keyed BLAKE2b digest of the key itself, so a version's key_id
 * names exactly one key and a wrong key can never be mistaken for a
 * tampered ciphertext.  The keys are read once per backend into
 * sodium_malloc'd memory and re-read only when the GUC or the file changes.
 */
#ifndef PCR_MASTER_KEY_H
#define PCR_MASTER_KEY_H

#include "pcr.h"

#define PCR_KEY_BYTES		32		/* master key and derived subkeys */
#define PCR_KEY_ID_LEN		16		/* hex digits of a key id */
#define PCR_MAX_MASTER_KEYS 16

/* Subkeys derived from one master key (the master key itself is not kept). */
typedef struct PcrMasterKey
{
	char		id[PCR_KEY_ID_LEN + 1];
	unsigned char aead_key[PCR_KEY_BYTES];	/* xchacha20poly1305 */
	unsigned char fingerprint_key[PCR_KEY_BYTES];	/* keyed BLAKE2b */
} PcrMasterKey;

/*
 * The current key; loads the file if needed.  Raises 55000 when no key file
 * is configured or it cannot be used (missing, group/other-accessible,
 * malformed).
 */
extern const PcrMasterKey *PcrMasterKeyCurrent(void);

/*
 * The loaded key with this id, or NULL; loads the file if needed (55000 as
 * above).  For speed it trusts a stat() of the file made less than half a
 * second ago; PcrMasterKeyCurrent always re-checks.
 */
extern const PcrMasterKey *PcrMasterKeyFind(const char *key_id);

#endif							/* PCR_MASTER_KEY_H */
