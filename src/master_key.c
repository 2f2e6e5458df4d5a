/*
 * master_key.c — loading the master keys of paperclip.master_key_file
 *
 * Keys are loaded lazily, once per backend, into one sodium_malloc'd keyring
 * (guarded pages, mlocked, read-only between loads).  A call checks that the
 * GUC still names the same file and that the file's stat() is unchanged
 * (secret_resolve trusts a stat() younger than 0.5 s without a system call);
 * the file is read again only when one of them changed.  Nothing
 * here ever creates a key: scripts/pcr-keygen does, on an operator's command.
 *
 * No key material, and no path to a key file for non-superusers (the GUC is
 * superuser-only), ever reaches a message.
 */
#include "pcr.h"
#include "master_key.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/timestamp.h"

#define PCR_KEY_FILE_MAX	65536	/* a key file is a few lines */
#define PCR_KDF_CONTEXT		"pcrsecrt"	/* crypto_kdf_CONTEXTBYTES == 8 */
#define PCR_KDF_AEAD_ID		1
#define PCR_KDF_FINGERPRINT_ID 2
#define PCR_KEY_ID_MESSAGE	"paperclip_runtime key id"

typedef struct PcrKeyring
{
	int			nkeys;
	PcrMasterKey keys[PCR_MAX_MASTER_KEYS];
} PcrKeyring;

/* sodium_malloc'd once per backend; read-only except while loading */
static PcrKeyring *keyring = NULL;
static bool keyring_valid = false;
static char *keyring_path = NULL;	/* malloc'd copy of the GUC value */
static struct stat keyring_stat;
static TimestampTz keyring_checked_at = 0;

/* how long resolving trusts the last stat() of the key file */
#define PCR_KEY_RECHECK_USECS	(USECS_PER_SEC / 2)

static void
key_error(const char *msg, const char *path, const char *hint) pg_attribute_noreturn();

/* 55000; the path only in the detail, and only for superusers */
static void
key_error(const char *msg, const char *path, const char *hint)
{
	ereport(ERROR,
			(errcode(PCR_ERRCODE_WRONG_STATE),
			 errmsg("%s", msg),
			 (path && superuser()) ? errdetail("Key file: \"%s\".", path) : 0,
			 hint ? errhint("%s", hint) : 0,
			 errhidestmt(true)));
}

static bool
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
		a->st_size == b->st_size &&
		a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
		a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static void
keyring_forget(void)
{
	keyring_valid = false;
	if (keyring != NULL)
	{
		sodium_mprotect_readwrite(keyring);
		sodium_memzero(keyring, sizeof(PcrKeyring));
		sodium_mprotect_readonly(keyring);
	}
}

/* Derive one key's id and subkeys into slot; zeroes the master key copy it made. */
static void
derive_key(const unsigned char master[PCR_KEY_BYTES], PcrMasterKey *slot)
{
	unsigned char id[PCR_KEY_ID_LEN / 2];

	if (crypto_generichash(id, sizeof(id),
						   (const unsigned char *) PCR_KEY_ID_MESSAGE, strlen(PCR_KEY_ID_MESSAGE),
						   master, PCR_KEY_BYTES) != 0)
		elog(ERROR, "crypto_generichash failed");
	sodium_bin2hex(slot->id, sizeof(slot->id), id, sizeof(id));
	if (crypto_kdf_derive_from_key(slot->aead_key, PCR_KEY_BYTES, PCR_KDF_AEAD_ID,
								   PCR_KDF_CONTEXT, master) != 0 ||
		crypto_kdf_derive_from_key(slot->fingerprint_key, PCR_KEY_BYTES, PCR_KDF_FINGERPRINT_ID,
								   PCR_KDF_CONTEXT, master) != 0)
		elog(ERROR, "crypto_kdf_derive_from_key failed");
}

/*
 * Parse the file's text into the (writable) keyring: blank lines and lines
 * starting with '#' are skipped, every other line is one key.
 */
static void
parse_keys(char *text, Size len, const char *path)
{
	unsigned char master[PCR_KEY_BYTES];
	char	   *line = text;
	char	   *end = text + len;
	int			lineno = 0;

	while (line < end)
	{
		char	   *eol = memchr(line, '\n', end - line);
		char	   *next = eol ? eol + 1 : end;
		char	   *s = line;
		char	   *e = eol ? eol : end;
		size_t		bin_len = 0;
		const char *hex_end = NULL;

		lineno++;
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
			e--;
		line = next;
		if (s == e || *s == '#')
			continue;

		if (e - s != 2 * PCR_KEY_BYTES ||
			sodium_hex2bin(master, sizeof(master), s, e - s, NULL, &bin_len, &hex_end) != 0 ||
			bin_len != PCR_KEY_BYTES || hex_end != e)
		{
			sodium_memzero(master, sizeof(master));
			key_error(psprintf("line %d of the master key file is not a key of 64 hex digits", lineno),
					  path, "Create key files with pcr-keygen.");
		}
		if (keyring->nkeys == PCR_MAX_MASTER_KEYS)
		{
			sodium_memzero(master, sizeof(master));
			key_error(psprintf("the master key file holds more than %d keys", PCR_MAX_MASTER_KEYS),
					  path, "Re-encrypt with paperclip.secret_reencrypt_all() and remove old keys.");
		}
		derive_key(master, &keyring->keys[keyring->nkeys]);
		sodium_memzero(master, sizeof(master));
		for (int i = 0; i < keyring->nkeys; i++)
			if (strcmp(keyring->keys[i].id, keyring->keys[keyring->nkeys].id) == 0)
				key_error(psprintf("line %d of the master key file repeats key \"%s\"",
								   lineno, keyring->keys[i].id), path, NULL);
		keyring->nkeys++;
	}
	if (keyring->nkeys == 0)
		key_error("the master key file holds no key", path, "Create key files with pcr-keygen.");
}

/* Read and check the file, then fill the keyring; on error the keyring is left empty. */
static void
load_keyring(const char *path)
{
	int			fd;
	struct stat st;
	char	   *buf;
	volatile ssize_t got = 0;

	if (keyring == NULL)
	{
		if (sodium_init() < 0)
			elog(ERROR, "could not initialise libsodium");
		keyring = sodium_malloc(sizeof(PcrKeyring));
		if (keyring == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
							errmsg("could not allocate protected memory for the master keys")));
		sodium_memzero(keyring, sizeof(PcrKeyring));
		sodium_mprotect_readonly(keyring);
	}
	keyring_forget();

	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
		key_error("could not open the master key file", path,
				  "The file must exist and be readable by the server's operating-system user.");
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
	{
		CloseTransientFile(fd);
		key_error("the master key file is not a regular file", path, NULL);
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
	{
		CloseTransientFile(fd);
		key_error("the master key file is accessible by group or others", path,
				  "Make it readable by its owner only (chmod 0600).");
	}
	if (st.st_size > PCR_KEY_FILE_MAX)
	{
		CloseTransientFile(fd);
		key_error("the master key file is too large", path, NULL);
	}

	buf = palloc(st.st_size + 1);
	while (got < st.st_size)
	{
		ssize_t		n = read(fd, buf + got, st.st_size - got);

		if (n <= 0)
		{
			if (n < 0 && errno == EINTR)
				continue;
			sodium_memzero(buf, st.st_size + 1);
			CloseTransientFile(fd);
			key_error("could not read the master key file", path, NULL);
		}
		got += n;
	}
	CloseTransientFile(fd);

	sodium_mprotect_readwrite(keyring);
	PG_TRY();
	{
		parse_keys(buf, got, path);
	}
	PG_CATCH();
	{
		/* a partly parsed keyring is never used: wipe it with the text */
		sodium_memzero(keyring, sizeof(PcrKeyring));
		sodium_mprotect_readonly(keyring);
		sodium_memzero(buf, st.st_size + 1);
		PG_RE_THROW();
	}
	PG_END_TRY();
	sodium_mprotect_readonly(keyring);
	sodium_memzero(buf, st.st_size + 1);
	pfree(buf);

	if (keyring_path == NULL || strcmp(keyring_path, path) != 0)
	{
		char	   *copy = strdup(path);

		if (copy == NULL)
		{
			keyring_forget();
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
		}
		free(keyring_path);
		keyring_path = copy;
	}
	keyring_stat = st;
	keyring_valid = true;
}

/*
 * The loaded keyring, (re)loading it when the GUC or the file changed.  With
 * recheck false (decrypting), a file that was stat()ed less than half a
 * second ago is trusted without a system call, so a changed file is seen
 * up to that much later by decryption only; encryption and re-encryption
 * always re-check.
 */
static const PcrKeyring *
current_keyring(bool recheck)
{
	const char *path = pcr_master_key_file;
	struct stat st;
	TimestampTz now;

	if (path == NULL || path[0] == '\0')
	{
		keyring_forget();
		key_error("no master key is configured", NULL,
				  "Create a key file with pcr-keygen and set paperclip.master_key_file to its path.");
	}
	now = GetCurrentTimestamp();
	if (!recheck && keyring_valid && strcmp(path, keyring_path) == 0 &&
		now >= keyring_checked_at && now - keyring_checked_at < PCR_KEY_RECHECK_USECS)
		return keyring;
	if (stat(path, &st) != 0)
	{
		keyring_forget();
		key_error("could not access the master key file", path,
				  "The file must exist and be readable by the server's operating-system user.");
	}
	if (!keyring_valid || strcmp(path, keyring_path) != 0 || !same_file(&st, &keyring_stat))
		load_keyring(path);
	keyring_checked_at = now;
	return keyring;
}

const PcrMasterKey *
PcrMasterKeyCurrent(void)
{
	return &current_keyring(true)->keys[0];
}

const PcrMasterKey *
PcrMasterKeyFind(const char *key_id)
{
	const PcrKeyring *ring = current_keyring(false);

	if (key_id == NULL)
		return NULL;
	for (int i = 0; i < ring->nkeys; i++)
		if (strcmp(ring->keys[i].id, key_id) == 0)
			return &ring->keys[i];
	return NULL;
}
