/*
 * tools/mount/errno.c - rpctls-mount: NFS status to errno, as a kernel NFS
 * client returns them.
 */
#include "mount.h"

#include <errno.h>

/* ---- NFS status -> errno, as a kernel NFS client returns them ----------------- */

static const struct {
    uint32_t nfs;
    int err;
} errtab[] = {
    {NFS3ERR_PERM, EPERM},       {NFS3ERR_NOENT, ENOENT},     {NFS3ERR_IO, EIO},
    {NFS3ERR_NXIO, ENXIO},       {NFS3ERR_ACCES, EACCES},     {NFS3ERR_EXIST, EEXIST},
    {NFS3ERR_XDEV, EXDEV},       {NFS3ERR_NODEV, ENODEV},     {NFS3ERR_NOTDIR, ENOTDIR},
    {NFS3ERR_ISDIR, EISDIR},     {NFS3ERR_INVAL, EINVAL},     {NFS3ERR_FBIG, EFBIG},
    {NFS3ERR_NOSPC, ENOSPC},     {NFS3ERR_ROFS, EROFS},       {NFS3ERR_MLINK, EMLINK},
    {NFS3ERR_NAMETOOLONG, ENAMETOOLONG}, {NFS3ERR_NOTEMPTY, ENOTEMPTY}, {NFS3ERR_DQUOT, EDQUOT},
    {NFS3ERR_STALE, ESTALE},     {NFS3ERR_REMOTE, EREMOTE},
    /* Linux returns kernel-internal codes for these (EBADHANDLE, ENOTSUPP,
     * ...), which user space cannot name; the nearest user-space errno: */
    {NFS3ERR_BADHANDLE, ESTALE}, {NFS3ERR_NOT_SYNC, EIO},     {NFS3ERR_BAD_COOKIE, EIO},
    {NFS3ERR_NOTSUPP, EOPNOTSUPP}, {NFS3ERR_TOOSMALL, EIO},   {NFS3ERR_SERVERFAULT, EREMOTEIO},
    {NFS3ERR_BADTYPE, EINVAL},   {NFS3ERR_JUKEBOX, EAGAIN},
};

/* status: 0, an NFS status (> 0) or a negative errno from the RPC layer. */
int to_errno(int status)
{
    if (status == 0)
        return 0;
    if (status > 0) {
        for (size_t i = 0; i < sizeof errtab / sizeof errtab[0]; i++)
            if (errtab[i].nfs == (uint32_t)status)
                return errtab[i].err;
        return EIO;
    }
    switch (-status) {
    case EACCES:       /* AUTH_ERROR */
    case ENOMEM:
    case ENAMETOOLONG: /* also a name over 255 bytes in a READDIRPLUS reply */
    case EINVAL:
    case ELOOP:        /* a READDIRPLUS cookie loop (as the Linux client) */
        return -status;
    default:
        return EIO;    /* timeouts (soft), lost server, undecodable replies */
    }
}
