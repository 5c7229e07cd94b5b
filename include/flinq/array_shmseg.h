/*
 * flinq/array_shmseg.h: named shared-memory segments (POSIX shm_open + mmap).
 *
 * Concurrency contract
 *   The functions keep no state of their own: any thread may call any of them
 *   at any time. A segment is mapped read-write and shared, so every process
 *   that maps it sees the others' stores (what it holds must be address-free
 *   and use lock-free atomics: see flinq/records.h). Unmapping a segment
 *   while another thread of the same process still uses the mapping is the
 *   caller's error; unlinking is not: mappings outlive the name.
 *
 * Names follow shm_open: a leading '/', no other '/', at most
 * FLQ_SHM_NAME_MAX bytes with the terminating NUL. Segments are created with
 * mode 0600 (the creating user only) and O_EXCL, so an existing name is
 * never taken over.
 *
 * Every function returns 0 or an errno value; nothing else is reported.
 * Only POSIX systems have these segments: elsewhere every call returns
 * ENOSYS. Pure C, no Python.h.
 */
#ifndef FLINQ_ARRAY_SHMSEG_H
#define FLINQ_ARRAY_SHMSEG_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#define FLQ_SHM_NAME_MAX 64

#if defined(__unix__) || defined(__APPLE__)
#  include <fcntl.h>
#  include <sys/mman.h>
#  include <sys/stat.h>
#  include <unistd.h>

/* Create the segment `name` of `size` bytes (zero-filled) and map it. */
static inline int flq_shm_create(const char *name, uint64_t size, void **addr)
{
    if (size == 0 || size > (uint64_t)SIZE_MAX || (uint64_t)(off_t)size != size)
        return EINVAL;
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return errno;
    int err = 0;
    if (ftruncate(fd, (off_t)size) != 0) {
        err = errno;
    } else {
        void *p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            err = errno;
        else
            *addr = p;
    }
    close(fd); /* the mapping keeps the segment */
    if (err)
        shm_unlink(name);
    return err;
}

/* Map the existing segment `name` whole; its size goes to *size. */
static inline int flq_shm_attach(const char *name, void **addr, uint64_t *size)
{
    int fd = shm_open(name, O_RDWR, 0);
    if (fd < 0)
        return errno;
    int err = 0;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        err = errno;
    } else if (st.st_size <= 0) {
        err = EINVAL; /* created but not sized yet, or not ours */
    } else {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            err = errno;
        } else {
            *addr = p;
            *size = (uint64_t)st.st_size;
        }
    }
    close(fd);
    return err;
}

static inline int flq_shm_unmap(void *addr, uint64_t size)
{
    return munmap(addr, (size_t)size) == 0 ? 0 : errno;
}

/* Remove the name; processes that mapped the segment keep their mapping. */
static inline int flq_shm_unlink(const char *name)
{
    return shm_unlink(name) == 0 ? 0 : errno;
}

#else /* no POSIX shared memory */

static inline int flq_shm_create(const char *name, uint64_t size, void **addr)
{
    (void)name, (void)size, (void)addr;
    return ENOSYS;
}
static inline int flq_shm_attach(const char *name, void **addr, uint64_t *size)
{
    (void)name, (void)addr, (void)size;
    return ENOSYS;
}
static inline int flq_shm_unmap(void *addr, uint64_t size)
{
    (void)addr, (void)size;
    return ENOSYS;
}
static inline int flq_shm_unlink(const char *name)
{
    (void)name;
    return ENOSYS;
}
#endif

#endif /* FLINQ_ARRAY_SHMSEG_H */
