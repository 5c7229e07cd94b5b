/*
 * flinq/shmseg.h: named shared-memory segments that several processes map,
 * with a self-describing header, and the process facts (own pid, is a pid
 * alive) that shared structures need to survive a dead process.
 *
 * Concurrency contract
 *   - flq_shm_create runs in ONE process, which fills the kind-specific part
 *     of the segment and then calls flq_shm_publish; until then no other
 *     process can know the segment's name (callers hand the name out only
 *     after publish), so the header is never read half-written by a
 *     well-behaved peer.
 *   - flq_shm_attach and flq_shm_check may run in any number of processes at
 *     any time. check never trusts the segment: it validates magic, version,
 *     kind and size against what the file really holds before a caller
 *     follows any offset in it, so a corrupted or foreign segment is
 *     refused, never followed.
 *   - flq_shm_unlink removes the name only; every mapping stays valid until
 *     its process unmaps it (POSIX shm semantics). The creator unlinks.
 *   - flq_shm_populate may run in any process at any time, on memory others
 *     use concurrently: it maps pages in, and changes no byte.
 *
 * Layout
 *   The first 64 bytes of every segment are a flq_shm_header. Everything
 *   after it belongs to the kind (FLQ_SHM_KIND_*), which records the
 *   parameters it needs to locate its parts in header.params, so that an
 *   attaching process recomputes the same layout. The segment holds no
 *   pointers, only offsets: each process maps it at its own address.
 *
 * Memory-order argument
 *   The creator writes the header and the kind's initial state with plain
 *   stores, then stores header.ready with release; an attacher loads ready
 *   with acquire before it reads anything else, so it sees the initial
 *   state whole.
 *
 * Platforms: POSIX shm_open + mmap. On Windows every function reports
 * ENOSYS (flq_shm_supported() is 0) so that the header still compiles.
 * Pure C, no Python.h.
 */
#ifndef FLINQ_SHMSEG_H
#define FLINQ_SHMSEG_H

#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>

#include "atomic.h"

#if !defined(_WIN32)
#  include <fcntl.h>
#  include <signal.h>
#  include <sys/mman.h>
#  include <sys/stat.h>
#  include <sys/types.h>
#  include <unistd.h>
#endif

#define FLQ_SHM_MAGIC UINT64_C(0x4d48535f514e494c) /* "LINQ_SHM" read as little-endian bytes */
#define FLQ_SHM_VERSION 1u
#define FLQ_SHM_READY 0x52454459u                 /* "READ" */

/* Kinds of segment. A kind owns everything after the header. */
#define FLQ_SHM_KIND_MESSAGES 1u /* flinq/shmring.h: lanes of byte records */
#define FLQ_SHM_KIND_ARRAY 2u    /* reserved: fixed-size records of one dtype */

/* Results of flq_shm_check. */
#define FLQ_SHM_OK 0
#define FLQ_SHM_BAD_MAGIC 1   /* not a flinq segment, or corrupted */
#define FLQ_SHM_BAD_VERSION 2 /* a flinq segment of another format version */
#define FLQ_SHM_BAD_KIND 3    /* a flinq segment of another kind */
#define FLQ_SHM_BAD_SIZE 4    /* the header's size disagrees with the file */
#define FLQ_SHM_NOT_READY 5   /* the creator died before publishing it */

typedef struct flq_shm_header {
    uint64_t magic;       /* FLQ_SHM_MAGIC */
    uint32_t version;     /* FLQ_SHM_VERSION */
    uint32_t kind;        /* FLQ_SHM_KIND_* */
    uint64_t total_bytes; /* size of the whole segment, header included */
    uint32_t creator_pid; /* the process that unlinks the name at close */
    uint32_t ready;       /* FLQ_SHM_READY once initialised (release) */
    uint64_t params[4];   /* the kind's layout parameters, fixed at create */
} flq_shm_header;

/* The header fills exactly one cache line; kinds start on the next. */
typedef char flq_shm__header_is_64_bytes[sizeof(flq_shm_header) == 64 ? 1 : -1];

FLQ_INLINE int flq_shm_supported(void)
{
#if defined(_WIN32)
    return 0;
#else
    return 1;
#endif
}

/* This process's id (0 on platforms without one). */
FLQ_INLINE uint32_t flq_shm_pid(void)
{
#if defined(_WIN32)
    return 0;
#else
    return (uint32_t)getpid();
#endif
}

/* Whether process pid may still run. EPERM means it exists under another
 * user; only ESRCH proves it is gone. Pid 0 is "nobody" and never alive. */
FLQ_INLINE int flq_shm_pid_alive(uint32_t pid)
{
    if (pid == 0)
        return 0;
#if defined(_WIN32)
    return 1;
#else
    return kill((pid_t)pid, 0) == 0 || errno != ESRCH;
#endif
}

/* Create the segment `name` ("/..." as shm_open wants) of `size` bytes,
 * zero-filled and (on Linux) with every page reserved, and map it at
 * *base. Fails with EEXIST when the name is taken. Returns 0 or an errno
 * value; on failure nothing is left behind. With fd_out, the segment's file
 * descriptor stays open there (to hand to a child process: it maps the
 * segment even after the name is gone); else it is closed. */
static inline int flq_shm_create(const char *name, uint64_t size, void **base, int *fd_out)
{
#if defined(_WIN32)
    (void)name; (void)size; (void)base; (void)fd_out;
    return ENOSYS;
#else
    if (size < sizeof(flq_shm_header) || size > (uint64_t)(SIZE_MAX / 2))
        return EINVAL;
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return errno;
    int err = 0;
    if (ftruncate(fd, (off_t)size) != 0) {
        err = errno;
#  if defined(__linux__)
    /* Reserve the pages now: a full tmpfs then fails here with ENOSPC,
     * rather than with SIGBUS in whichever process first touches a page. */
    } else if ((err = posix_fallocate(fd, 0, (off_t)size)) != 0) {
        ;
#  endif
    } else {
        void *p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            err = errno;
        else
            *base = p;
    }
    if (err || fd_out == NULL)
        close(fd);
    else
        *fd_out = fd;
    if (err)
        shm_unlink(name);
    return err;
#endif
}

/* Fill the header of a segment made by flq_shm_create (the kind has set up
 * its part already) and make it visible to attachers. */
FLQ_INLINE void flq_shm_publish(void *base, uint32_t kind, uint64_t size, const uint64_t params[4])
{
    flq_shm_header *h = (flq_shm_header *)base;
    h->magic = FLQ_SHM_MAGIC;
    h->version = FLQ_SHM_VERSION;
    h->kind = kind;
    h->total_bytes = size;
    h->creator_pid = flq_shm_pid();
    for (int i = 0; i < 4; i++)
        h->params[i] = params[i];
    /* release: the header and the kind's initial state above are visible
     * to any process that reads ready with acquire. */
    flq_store_u32_release(&h->ready, FLQ_SHM_READY);
}

/* Map the segment open as fd at *base; *size receives the size of the
 * file. Returns 0 or an errno value; fd stays open. The caller must
 * flq_shm_check the mapping before using it. */
static inline int flq_shm_map_fd(int fd, void **base, uint64_t *size)
{
#if defined(_WIN32)
    (void)fd; (void)base; (void)size;
    return ENOSYS;
#else
    int err = 0;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        err = errno;
    } else if ((uint64_t)st.st_size < sizeof(flq_shm_header)) {
        err = EPROTO; /* too small to hold a header: not ours */
    } else {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            err = errno;
        } else {
            *base = p;
            *size = (uint64_t)st.st_size;
        }
    }
    return err;
#endif
}

/* Map the existing segment `name` as flq_shm_map_fd does (ENOENT: no such
 * segment). fd_out as in flq_shm_create. */
static inline int flq_shm_attach(const char *name, void **base, uint64_t *size, int *fd_out)
{
#if defined(_WIN32)
    (void)name; (void)base; (void)size; (void)fd_out;
    return ENOSYS;
#else
    int fd = shm_open(name, O_RDWR, 0);
    if (fd < 0)
        return errno;
    int err = flq_shm_map_fd(fd, base, size);
    if (err || fd_out == NULL)
        close(fd);
    else
        *fd_out = fd;
    return err;
#endif
}

/* Validate a mapping of `size` bytes as a published segment of `kind`.
 * Returns FLQ_SHM_OK or one of the FLQ_SHM_BAD_* / NOT_READY codes. */
FLQ_INLINE int flq_shm_check(const void *base, uint64_t size, uint32_t kind)
{
    const flq_shm_header *h = (const flq_shm_header *)base;
    /* acquire: pairs with flq_shm_publish, so the fields below are whole. */
    uint32_t ready = flq_load_u32_acquire(&h->ready);
    if (h->magic != FLQ_SHM_MAGIC)
        return FLQ_SHM_BAD_MAGIC;
    if (h->version != FLQ_SHM_VERSION)
        return FLQ_SHM_BAD_VERSION;
    if (ready != FLQ_SHM_READY)
        return FLQ_SHM_NOT_READY;
    if (h->kind != kind)
        return FLQ_SHM_BAD_KIND;
    if (h->total_bytes != size)
        return FLQ_SHM_BAD_SIZE;
    return FLQ_SHM_OK;
}

FLQ_INLINE void flq_shm_unmap(void *base, uint64_t size)
{
#if defined(_WIN32)
    (void)base; (void)size;
#else
    munmap(base, (size_t)size);
#endif
}

#if defined(__linux__)
/* Linux 5.14: fault the range's pages in writable, as writes would, without
 * writing. Spelled out for builds whose headers predate it or hide madvise
 * (strict -std=c11 without _DEFAULT_SOURCE). */
#  ifndef MADV_POPULATE_WRITE
#    define MADV_POPULATE_WRITE 23
#  endif
extern int madvise(void *addr, size_t length, int advice);
#endif

/* Map every page of [base, base + size) (page-aligned base) into this
 * process's page tables now, so that the first copies through them take no
 * page faults (about a microsecond per 4 KiB page in a VM; a child of fork()
 * inherits a shared mapping without its page tables). Returns 0, or an errno
 * value where the kernel cannot (older than Linux 5.14, other systems):
 * then pages fault in on first use, as usual. */
FLQ_INLINE int flq_shm_populate(void *base, uint64_t size)
{
#if defined(__linux__)
    return madvise(base, (size_t)size, MADV_POPULATE_WRITE) == 0 ? 0 : errno;
#else
    (void)base; (void)size;
    return ENOSYS;
#endif
}

/* Close a descriptor kept by flq_shm_create or flq_shm_attach. */
FLQ_INLINE void flq_shm_close_fd(int fd)
{
#if !defined(_WIN32)
    if (fd >= 0)
        close(fd);
#else
    (void)fd;
#endif
}

/* Remove the name; returns 0 or an errno value. Mappings stay valid. */
FLQ_INLINE int flq_shm_unlink(const char *name)
{
#if defined(_WIN32)
    (void)name;
    return ENOSYS;
#else
    return shm_unlink(name) == 0 ? 0 : errno;
#endif
}

#endif /* FLINQ_SHMSEG_H */
