/*
 * fh.c - NFSv3 file handles of the rpctls server.
 *
 * Layout (NFSD_FH_LEN = 40 bytes, integers big-endian):
 *   [0]      version (1)
 *   [1..3]   zero
 *   [4..11]  export id: HMAC-SHA256(key, "rpctls-nfsd export " + path)[0..8)
 *   [12..19] inode number
 *   [20..23] inode generation (FS_IOC_GETVERSION; 0 when unknown)
 *   [24..39] HMAC-SHA256(key, bytes [0..24))[0..16)
 * A handle can only be made with the key, so a client cannot name an inode
 * the server never gave it a handle for (such as one outside the export):
 * anything with a wrong length, version, export id or tag is BADHANDLE.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "nfs3/nfsd_int.h"

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int mkdir_p(const char *dir)
{
    char buf[PATH_MAX];
    size_t n = strlen(dir);

    if (n == 0 || n >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return -errno;
        buf[i] = c;
    }
    return 0;
}

static int read_key(int fd, uint8_t key[NFSD_FH_KEYLEN])
{
    uint8_t buf[NFSD_FH_KEYLEN + 1];
    size_t got = 0;

    while (got < sizeof(buf)) {
        ssize_t r = read(fd, buf + got, sizeof(buf) - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    if (got != NFSD_FH_KEYLEN)
        return -EINVAL;
    memcpy(key, buf, NFSD_FH_KEYLEN);
    OPENSSL_cleanse(buf, sizeof(buf));
    return 0;
}

int nfs3__fh_key_load(const char *state_dir, uint8_t key[NFSD_FH_KEYLEN], char *err, size_t errlen)
{
    char path[PATH_MAX];
    int fd, ret;

    ret = mkdir_p(state_dir);
    if (ret != 0) {
        snprintf(err, errlen, "state directory %s: %s", state_dir, strerror(-ret));
        return ret;
    }
    if ((size_t)snprintf(path, sizeof(path), "%s/fh.key", state_dir) >= sizeof(path)) {
        snprintf(err, errlen, "state directory %s: name too long", state_dir);
        return -ENAMETOOLONG;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0) {
            ret = read_key(fd, key);
            close(fd);
            if (ret != 0)
                snprintf(err, errlen, "%s: %s", path,
                         ret == -EINVAL ? "not a 32-byte key (remove it to make a new one)" : strerror(-ret));
            return ret;
        }
        if (errno != ENOENT) {
            ret = -errno;
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            return ret;
        }
        /* First start: write the key to a temporary file and link it in
         * place, so a concurrent start never sees half a key. */
        char tmp[PATH_MAX + 16];
        snprintf(tmp, sizeof(tmp), "%s.%ld", path, (long)getpid());
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
            ret = -errno;
            snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
            return ret;
        }
        if (RAND_bytes(key, NFSD_FH_KEYLEN) != 1) {
            close(fd);
            unlink(tmp);
            snprintf(err, errlen, "no random bytes for the handle key");
            return -EIO;
        }
        ret = write(fd, key, NFSD_FH_KEYLEN) == NFSD_FH_KEYLEN && fsync(fd) == 0 ? 0 : -EIO;
        close(fd);
        if (ret == 0 && link(tmp, path) != 0)
            ret = errno == EEXIST ? 1 : -errno;
        unlink(tmp);
        if (ret < 0) {
            snprintf(err, errlen, "%s: cannot write the handle key: %s", path, strerror(-ret));
            return ret;
        }
        if (ret == 0)
            return 0;
        /* Someone else made it first: read theirs. */
    }
    snprintf(err, errlen, "%s: cannot read or create the handle key", path);
    return -EIO;
}

static int hmac(const uint8_t key[NFSD_FH_KEYLEN], const void *data, size_t len, uint8_t out[32])
{
    unsigned int outlen = 32;

    if (HMAC(EVP_sha256(), key, NFSD_FH_KEYLEN, data, len, out, &outlen) == NULL || outlen != 32)
        return -EIO;
    return 0;
}

int nfs3__fh_init(struct nfsd_fhctx *k, const uint8_t key[NFSD_FH_KEYLEN], const char *export_path)
{
    static const char label[] = "rpctls-nfsd export ";
    char buf[sizeof(label) + PATH_MAX];
    uint8_t mac[32];
    int n;

    memcpy(k->key, key, NFSD_FH_KEYLEN);
    n = snprintf(buf, sizeof(buf), "%s%s", label, export_path);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return -ENAMETOOLONG;
    if (hmac(k->key, buf, (size_t)n, mac) != 0)
        return -EIO;
    memcpy(k->export_id, mac, sizeof(k->export_id));
    return 0;
}

void nfs3__fh_make(const struct nfsd_fhctx *k, uint64_t ino, uint32_t gen, struct nfs3_fh *out)
{
    _Static_assert(NFSD_FH_LEN == 24 + NFSD_FH_TAGLEN,
                   "handle layout: 1 version + 3 zero + 8 export id + 8 inode + 4 generation, then the tag");
    _Static_assert(NFSD_FH_LEN <= NFS3_FHSIZE, "our handles must fit an NFSv3 nfs_fh3 (64 bytes, RFC 1813)");
    _Static_assert(NFSD_FH_TAGLEN <= 32, "the tag is a prefix of an HMAC-SHA-256 (32 bytes)");
    _Static_assert(sizeof(k->export_id) == 8, "the export id fills bytes 4..11 of the handle");
    uint8_t mac[32];

    memset(out, 0, sizeof(*out));
    out->len = NFSD_FH_LEN;
    out->data[0] = NFSD_FH_VERSION;
    memcpy(out->data + 4, k->export_id, 8);
    put_be64(out->data + 12, ino);
    put_be32(out->data + 20, gen);
    if (hmac(k->key, out->data, 24, mac) != 0)
        memset(mac, 0, sizeof(mac)); /* cannot happen with OpenSSL's SHA-256; the handle then never verifies */
    memcpy(out->data + 24, mac, NFSD_FH_TAGLEN);
}

int nfs3__fh_parse(const struct nfsd_fhctx *k, const struct nfs3_fh *fh, uint64_t *ino, uint32_t *gen)
{
    uint8_t mac[32];

    if (fh->len != NFSD_FH_LEN || fh->data[0] != NFSD_FH_VERSION)
        return -NFSD_EBADHANDLE;
    if (hmac(k->key, fh->data, 24, mac) != 0)
        return -NFSD_EBADHANDLE;
    /* Constant time: no timing oracle to forge a tag byte by byte. */
    if (CRYPTO_memcmp(mac, fh->data + 24, NFSD_FH_TAGLEN) != 0)
        return -NFSD_EBADHANDLE;
    if (fh->data[1] != 0 || fh->data[2] != 0 || fh->data[3] != 0 || memcmp(fh->data + 4, k->export_id, 8) != 0)
        return -NFSD_EBADHANDLE;
    *ino = get_be64(fh->data + 12);
    *gen = get_be32(fh->data + 20);
    return 0;
}

int nfs3__fh_export_id(const uint8_t key[NFSD_FH_KEYLEN], const struct nfs3_fh *fh, uint8_t id[8])
{
    uint8_t mac[32];

    if (fh->len != NFSD_FH_LEN || fh->data[0] != NFSD_FH_VERSION)
        return -NFSD_EBADHANDLE;
    if (fh->data[1] != 0 || fh->data[2] != 0 || fh->data[3] != 0)
        return -NFSD_EBADHANDLE;
    if (hmac(key, fh->data, 24, mac) != 0 || CRYPTO_memcmp(mac, fh->data + 24, NFSD_FH_TAGLEN) != 0)
        return -NFSD_EBADHANDLE;
    memcpy(id, fh->data + 4, 8);
    return 0;
}

int nfs3_srv_default_state_dir(char *buf, size_t len)
{
    const char *x = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    int n;

    if (x != NULL && x[0] == '/')
        n = snprintf(buf, len, "%s/rpctls-nfsd", x);
    else if (geteuid() == 0)
        n = snprintf(buf, len, "/var/lib/rpctls-nfsd");
    else if (home != NULL && home[0] == '/')
        n = snprintf(buf, len, "%s/.local/state/rpctls-nfsd", home);
    else
        return -ENOENT;
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}
