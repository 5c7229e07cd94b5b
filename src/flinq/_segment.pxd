# The Python side of flinq's shared-memory layer, for the extension modules
# that keep a structure in shared memory: flinq._array (ArrayQueue(shared=True))
# and flinq._process (ProcessQueue). A named segment mapped into this process
# (include/flinq/shmseg.h), and sleeping on a wait word in it
# (include/flinq/shmwait.h). They cimport it from here; its code lives in
# _segment.pyx.

from libc.stdint cimport int64_t, uint32_t, uint64_t

from flinq._shm cimport flq_shm_header, flq_shm_wait


cdef class Segment:
    cdef void *base
    cdef readonly uint64_t size
    cdef readonly str name
    cdef readonly int fd
    cdef object _unlink
    cdef object __weakref__

    cdef const flq_shm_header *header(self)


cdef Segment create_segment(str name, bytes path, uint64_t size)
cdef Segment attach_segment(str name, bytes path, uint32_t kind, str what)
cdef Segment map_segment_fd(int fd, str name, uint32_t kind, str what)
cdef bint spin_before_sleep(int64_t *spin_until, int *polls, int64_t deadline) noexcept nogil
cdef int sleep_on_shm(flq_shm_wait *w, uint32_t key, int64_t deadline, bint every_thread) except -1
