# A named shared-memory segment mapped into this process (include/flinq/shmseg.h),
# for the extension modules that keep a structure in one: flinq._array
# (ArrayQueue(shared=True)) and flinq._process (ProcessQueue). They cimport
# it from here; its code lives in _segment.pyx.

from libc.stdint cimport uint32_t, uint64_t

from flinq._shm cimport flq_shm_header


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
