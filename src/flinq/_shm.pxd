# Cython declarations of flinq's shared-memory headers (include/flinq/shm*.h;
# their full API is exercised by tests/c/test_shmring.c). Every function here
# is pure C and safe to call without the GIL; the concurrency contract of
# each structure is stated in its header.

from libc.stdint cimport int64_t, uint32_t, uint64_t


cdef extern from "flinq/shmseg.h" nogil:
    ctypedef struct flq_shm_header:
        uint64_t magic
        uint32_t version
        uint32_t kind
        uint64_t total_bytes
        uint32_t creator_pid
        uint32_t ready
        uint64_t params[4]
    uint32_t FLQ_SHM_VERSION
    uint32_t FLQ_SHM_KIND_MESSAGES
    uint32_t FLQ_SHM_KIND_ARRAY
    int FLQ_SHM_OK
    int FLQ_SHM_BAD_MAGIC
    int FLQ_SHM_BAD_VERSION
    int FLQ_SHM_BAD_KIND
    int FLQ_SHM_BAD_SIZE
    int FLQ_SHM_NOT_READY
    int flq_shm_supported()
    uint32_t flq_shm_pid()
    int flq_shm_pid_alive(uint32_t pid)
    int flq_shm_create(const char *name, uint64_t size, void **base, int *fd_out)
    void flq_shm_publish(void *base, uint32_t kind, uint64_t size, const uint64_t *params)
    int flq_shm_map_fd(int fd, void **base, uint64_t *size)
    int flq_shm_attach(const char *name, void **base, uint64_t *size, int *fd_out)
    void flq_shm_close_fd(int fd)
    int flq_shm_check(const void *base, uint64_t size, uint32_t kind)
    void flq_shm_unmap(void *base, uint64_t size)
    int flq_shm_populate(void *base, uint64_t size)
    int flq_shm_unlink(const char *name)


cdef extern from "flinq/shmwait.h" nogil:
    ctypedef struct flq_shm_wait:
        uint32_t seq
        uint32_t waiters
    int flq_shm_wait_supported()
    uint32_t flq_shm_wait_prepare(flq_shm_wait *w)
    void flq_shm_wait_cancel(flq_shm_wait *w)
    int flq_shm_wait_sleep(flq_shm_wait *w, uint32_t key, int64_t timeout_ns)
    void flq_shm_wait_notify(flq_shm_wait *w, int all)
    int flq_shm_wait_has_waiters(const flq_shm_wait *w)
    void flq_shm_relax()
    void flq_shm_yield()


cdef extern from "flinq/shmring.h" nogil:
    ctypedef struct flq_mq_ctl:
        flq_shm_wait not_empty
        flq_shm_wait not_full
        uint64_t lanes_used
        uint64_t maxsize
        uint64_t flights_used
        uint64_t next_reap_ns
        uint64_t visibility_ns
    ctypedef struct flq_mq_lane:
        uint64_t head
        uint64_t tail
        uint64_t data_tail
        uint64_t owner
    ctypedef struct flq_mq:
        flq_mq_ctl *ctl
        uint64_t nlanes
        uint64_t nflights
        uint64_t slots
        uint64_t data_bytes
    ctypedef struct flq_mq_stage:
        uint64_t tail
        uint64_t data_tail
        uint64_t published
    ctypedef struct flq_mq_rec:
        const unsigned char *body
        uint32_t len
        uint32_t kind
    int flq_mq_params_valid(uint64_t nlanes, uint64_t nflights, uint64_t slots, uint64_t data_bytes)
    uint64_t flq_mq_segment_bytes(uint64_t nlanes, uint64_t nflights, uint64_t slots,
                                  uint64_t data_bytes)
    void flq_mq_view(flq_mq *q, void *base, uint64_t nlanes, uint64_t nflights, uint64_t slots,
                     uint64_t data_bytes)
    flq_mq_lane *flq_mq_lane_at(const flq_mq *q, uint64_t i)
    uint64_t flq_mq_lanes_used(const flq_mq *q)
    int64_t flq_mq_claim_lane(flq_mq *q, uint64_t pid, int (*alive)(uint32_t pid) noexcept nogil)
    void flq_mq_stage_begin(flq_mq_lane *lane, flq_mq_stage *st)
    unsigned char *flq_mq_stage_record(flq_mq *q, flq_mq_lane *lane, flq_mq_stage *st,
                                       uint64_t len, uint32_t kind)
    uint64_t flq_mq_publish(flq_mq_lane *lane, flq_mq_stage *st)
    uint64_t flq_mq_head(flq_mq_lane *lane)
    uint64_t flq_mq_ready(flq_mq_lane *lane, uint64_t head)
    int flq_mq_read(const flq_mq *q, flq_mq_lane *lane, uint64_t idx, flq_mq_rec *rec)
    int flq_mq_take(flq_mq_lane *lane, uint64_t *head, uint64_t n)
    void flq_mq_copy_out(void *dst, const unsigned char *body, size_t n)
    void flq_mq_copy_in(unsigned char *body, const void *src, size_t n)
    uint64_t flq_mq_size(const flq_mq *q)
    uint64_t flq_mq_lane_owner(flq_mq_lane *lane)


cdef extern from "flinq/shmflight.h" nogil:
    uint32_t FLQ_FLIGHT_PENDING
    uint32_t FLQ_FLIGHT_RESERVED
    uint32_t FLQ_FLIGHT_SETTLED
    uint32_t FLQ_FLIGHT_REQUEUING
    uint32_t FLQ_FLIGHT_HDR_BYTES
    ctypedef struct flq_flight_hdr:
        uint64_t state
        uint64_t deadline
    uint64_t flq_flight_state(uint32_t tag, uint32_t pid, uint64_t idx)
    uint32_t flq_flight_tag(uint64_t state)
    flq_mq_lane *flq_flight_lane_at(const flq_mq *q, uint64_t i)
    uint64_t flq_flight_lanes_used(const flq_mq *q)
    int64_t flq_flight_claim_lane(flq_mq *q, uint64_t pid,
                                  int (*alive)(uint32_t pid) noexcept nogil, int *adopted)
    flq_flight_hdr *flq_flight_hdr_at(const flq_mq *q, flq_mq_lane *lane, uint64_t idx,
                                      flq_mq_rec *rec)
    unsigned char *flq_flight_stage(flq_mq *q, flq_mq_lane *lane, flq_mq_stage *st, uint64_t len,
                                    uint32_t kind, uint64_t *idx)
    void flq_flight_mark(flq_flight_hdr *h, uint64_t idx, uint32_t tag, uint64_t deadline)
    int flq_flight_cas(flq_flight_hdr *h, uint64_t *expected, uint64_t idx, uint32_t tag,
                       uint32_t pid)
    int flq_flight_find(const flq_mq *q, flq_mq_lane *lane, uint64_t now, int orphaned,
                        int (*alive)(uint32_t pid) noexcept nogil, uint64_t *idx, uint64_t *state)
    uint64_t flq_flight_reclaim(const flq_mq *q, flq_mq_lane *lane)
    int flq_flight_reap_due(flq_mq *q, uint64_t now, uint64_t interval_ns)
    uint64_t flq_flight_unsettled(const flq_mq *q, flq_mq_lane *lane)
