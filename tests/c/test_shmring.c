/*
 * tests/c/test_shmring.c: flinq/shmseg.h, flinq/shmwait.h, flinq/shmring.h.
 *
 *   1. segments: create / attach / check; a foreign magic, another version,
 *      another kind, a wrong size and an unpublished segment are refused;
 *      attaching a missing name fails with ENOENT;
 *   2. the wait word: prepare / cancel / notify / sleep protocol, timeouts,
 *      and a wake-up across fork()ed processes with no timeout;
 *   3. lanes, single thread: FIFO, full lane (slots and bytes), records that
 *      would wrap go to the next lap, a stale descriptor is refused;
 *   4. threads: 3 producer lanes x 3 consumers, variable-length records,
 *      batches; every record exactly once, whole, in order per producer;
 *   5. processes: the same with fork()ed producers and consumers;
 *   6. SIGKILL: producer processes killed at random points; the survivors
 *      never hang, a new producer adopts the dead one's lane, every record
 *      whose publish was reported arrives exactly once, none arrives torn;
 *      then consumers are killed too (at-most-once: no duplicates);
 *   7. reservations (shmflight.h): the state protocol and reclaim in one
 *      thread; then a reserving process killed at random points while it
 *      reserves and acks: every message was acked or comes back, none is
 *      lost.
 */
/* MAP_ANONYMOUS for the test's shared bookkeeping; the headers need only POSIX. */
#define _DEFAULT_SOURCE 1
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flinq/shmflight.h"
#include "flinq/shmring.h"

#define MAX_PRODUCERS 64
#define MAX_LEN 600

static int always_alive(uint32_t pid) { (void)pid; return 1; }

/* ------------------------------------------------------------ helpers */

typedef struct shared_state {
    _Atomic uint64_t taken;                       /* records consumed, all consumers */
    _Atomic uint64_t published[MAX_PRODUCERS];    /* per producer: publish reported */
    _Atomic uint32_t stop;                        /* consumers: stop when set */
    _Atomic uint64_t torn;                        /* records whose body did not verify */
    _Atomic uint64_t out_of_order;                /* per-producer order broken */
} shared_state;

static void *shared_alloc(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED);
    memset(p, 0, n);
    return p;
}

/* A queue in a fresh shm segment whose name is already unlinked. */
static void *make_queue(flq_mq *q, uint64_t nlanes, uint64_t slots, uint64_t data, uint64_t *size)
{
    char name[64];
    snprintf(name, sizeof name, "/flinq-ctest-%d", (int)getpid());
    *size = flq_mq_segment_bytes(nlanes, 0, slots, data);
    CHECK(*size != 0);
    void *base = NULL;
    CHECK_EQ(flq_shm_create(name, *size, &base, NULL), 0);
    uint64_t params[4] = {nlanes, slots, data, 0};
    flq_mq_view(q, base, nlanes, 0, slots, data);
    flq_shm_publish(base, FLQ_SHM_KIND_MESSAGES, *size, params);
    CHECK_EQ(flq_shm_unlink(name), 0);
    return base;
}

static uint32_t rec_len(uint32_t p, uint32_t seq, uint32_t big)
{
    if (big && seq % 97 == 0)
        return big;
    return 8 + (seq * 37u + p * 11u) % (MAX_LEN - 8);
}

static unsigned char rec_byte(uint32_t p, uint32_t seq, uint32_t i)
{
    return (unsigned char)(p * 31u + seq * 7u + i);
}

static void fill(unsigned char *buf, uint32_t p, uint32_t seq, uint32_t len)
{
    memcpy(buf, &p, 4);
    memcpy(buf + 4, &seq, 4);
    for (uint32_t i = 8; i < len; i++)
        buf[i] = rec_byte(p, seq, i);
}

/* Verify a copied-out record; returns its (producer, seq). */
static int verify(const unsigned char *buf, uint32_t len, uint32_t kind, uint32_t big,
                  uint32_t *p_out, uint32_t *seq_out)
{
    if (len < 8)
        return 0;
    uint32_t p, seq;
    memcpy(&p, buf, 4);
    memcpy(&seq, buf + 4, 4);
    if (p >= MAX_PRODUCERS || len != rec_len(p, seq, big) || kind != 1 + seq % 3)
        return 0;
    for (uint32_t i = 8; i < len; i++)
        if (buf[i] != rec_byte(p, seq, i))
            return 0;
    *p_out = p;
    *seq_out = seq;
    return 1;
}

/* Producer: publish `count` records as producer p, `batch` per publication.
 * progress (may be NULL) is stored after each publication. */
static void produce(flq_mq *q, uint64_t pid, int (*alive)(uint32_t), uint32_t p, uint32_t first,
                    uint32_t count, uint32_t batch, uint32_t big, _Atomic uint64_t *progress)
{
    int64_t li = flq_mq_claim_lane(q, pid, alive);
    CHECK(li >= 0);
    if (li < 0)
        return;
    flq_mq_lane *lane = flq_mq_lane_at(q, (uint64_t)li);
    unsigned char buf[1 << 16];
    flq_mq_stage st;
    uint32_t seq = first, end = first + count;
    while (seq < end) {
        flq_mq_stage_begin(lane, &st);
        uint32_t staged = 0;
        while (seq < end && staged < batch) {
            uint32_t len = rec_len(p, seq, big);
            unsigned char *body = flq_mq_stage_record(q, lane, &st, len, 1 + seq % 3);
            if (body == NULL)
                break;
            fill(buf, p, seq, len);
            flq_mq_copy_in(body, buf, len);
            staged++;
            seq++;
        }
        if (staged) {
            flq_mq_publish(lane, &st);
            flq_shm_wait_notify(&q->ctl->not_empty, staged > 1);
            if (progress)
                atomic_store(progress, seq);
            continue;
        }
        /* Full: sleep until a consumer makes room (re-check after prepare). */
        uint32_t key = flq_shm_wait_prepare(&q->ctl->not_full);
        if (flq_mq_stage_record(q, lane, &st, rec_len(p, seq, big), 1 + seq % 3) != NULL)
            flq_shm_wait_cancel(&q->ctl->not_full); /* staged one we will redo */
        else
            flq_shm_wait_sleep(&q->ctl->not_full, key, 20 * 1000 * 1000);
    }
}

/* Consumer: take records until shared->taken reaches total or stop is set.
 * seen[p * per + seq] counts deliveries. */
static void consume(flq_mq *q, shared_state *sh, _Atomic uint32_t *seen, uint32_t per,
                    uint64_t total, uint32_t big, uint32_t max_batch)
{
    static _Thread_local unsigned char bufs[8][1 << 16];
    int64_t last[MAX_PRODUCERS];
    for (int i = 0; i < MAX_PRODUCERS; i++)
        last[i] = -1;
    uint64_t start_lane = 0;
    while (atomic_load(&sh->taken) < total && !atomic_load(&sh->stop)) {
        int found = 0;
        uint64_t used = flq_mq_lanes_used(q);
        for (uint64_t k = 0; k < used && !found; k++) {
            flq_mq_lane *lane = flq_mq_lane_at(q, (start_lane + k) % used);
            uint64_t head = flq_mq_head(lane);
            for (;;) {
                uint64_t ready = flq_mq_ready(lane, head);
                if (ready == 0)
                    break;
                uint64_t n = ready < max_batch ? ready : max_batch;
                flq_mq_rec recs[8];
                int stale = 0;
                for (uint64_t i = 0; i < n; i++) {
                    if (flq_mq_read(q, lane, head + i, &recs[i]) != 0) {
                        stale = 1;
                        break;
                    }
                    flq_mq_copy_out(bufs[i], recs[i].body, recs[i].len);
                }
                if (stale) {
                    head = flq_mq_head(lane);
                    continue;
                }
                if (!flq_mq_take(lane, &head, n))
                    continue; /* lost the race: discard the copies */
                flq_shm_wait_notify(&q->ctl->not_full, 1);
                for (uint64_t i = 0; i < n; i++) {
                    uint32_t p, seq;
                    if (!verify(bufs[i], recs[i].len, recs[i].kind, big, &p, &seq)) {
                        atomic_fetch_add(&sh->torn, 1);
                        continue;
                    }
                    if ((int64_t)seq <= last[p])
                        atomic_fetch_add(&sh->out_of_order, 1);
                    last[p] = seq;
                    if ((uint64_t)p * per + seq < (uint64_t)MAX_PRODUCERS * per)
                        atomic_fetch_add(&seen[(uint64_t)p * per + seq], 1);
                }
                atomic_fetch_add(&sh->taken, n);
                found = 1;
                start_lane++;
                break;
            }
        }
        if (found)
            continue;
        uint32_t key = flq_shm_wait_prepare(&q->ctl->not_empty);
        if (flq_mq_size(q) != 0 || atomic_load(&sh->taken) >= total || atomic_load(&sh->stop))
            flq_shm_wait_cancel(&q->ctl->not_empty);
        else
            flq_shm_wait_sleep(&q->ctl->not_empty, key, 20 * 1000 * 1000);
    }
    /* Let sleeping peers see the end. */
    flq_shm_wait_notify(&q->ctl->not_empty, 1);
}

/* ------------------------------------------------------- 1. segments */

static void test_segments(void)
{
    char name[64];
    snprintf(name, sizeof name, "/flinq-ctest-seg-%d", (int)getpid());
    uint64_t size = flq_mq_segment_bytes(2, 0, 64, 4096);
    void *base = NULL, *other = NULL;
    uint64_t osize = 0;
    CHECK_EQ(flq_shm_create(name, size, &base, NULL), 0);
    CHECK_EQ(flq_shm_create(name, size, &other, NULL), EEXIST);
    /* Before publish: not ready, whatever else it holds. */
    int fd = -1;
    CHECK_EQ(flq_shm_attach(name, &other, &osize, &fd), 0);
    CHECK(fd >= 0);
    CHECK_EQ(osize, size);
    CHECK(flq_shm_check(other, osize, FLQ_SHM_KIND_MESSAGES) != FLQ_SHM_OK);
    uint64_t params[4] = {2, 64, 4096, 0};
    flq_shm_publish(base, FLQ_SHM_KIND_MESSAGES, size, params);
    CHECK_EQ(flq_shm_check(other, osize, FLQ_SHM_KIND_MESSAGES), FLQ_SHM_OK);
    CHECK_EQ(flq_shm_check(other, osize, FLQ_SHM_KIND_ARRAY), FLQ_SHM_BAD_KIND);
    CHECK_EQ(flq_shm_check(other, osize - 64, FLQ_SHM_KIND_MESSAGES), FLQ_SHM_BAD_SIZE);
    flq_shm_header *h = (flq_shm_header *)base;
    CHECK_EQ(((flq_shm_header *)other)->creator_pid, (uint32_t)getpid());
    CHECK_EQ(((flq_shm_header *)other)->params[2], 4096);
    h->version = FLQ_SHM_VERSION + 1;
    CHECK_EQ(flq_shm_check(other, osize, FLQ_SHM_KIND_MESSAGES), FLQ_SHM_BAD_VERSION);
    h->version = FLQ_SHM_VERSION;
    h->magic ^= 1;
    CHECK_EQ(flq_shm_check(other, osize, FLQ_SHM_KIND_MESSAGES), FLQ_SHM_BAD_MAGIC);
    h->magic ^= 1;
    CHECK_EQ(flq_shm_check(other, osize, FLQ_SHM_KIND_MESSAGES), FLQ_SHM_OK);
    flq_shm_unmap(other, osize);
    CHECK_EQ(flq_shm_unlink(name), 0);
    CHECK_EQ(flq_shm_attach(name, &other, &osize, NULL), ENOENT);
    /* The descriptor still maps it without the name. */
    void *again = NULL;
    uint64_t asize = 0;
    CHECK_EQ(flq_shm_map_fd(fd, &again, &asize), 0);
    CHECK_EQ(asize, size);
    CHECK_EQ(flq_shm_check(again, asize, FLQ_SHM_KIND_MESSAGES), FLQ_SHM_OK);
    flq_shm_unmap(again, asize);
    close(fd);
    CHECK_EQ(flq_shm_unlink(name), ENOENT);
    /* The creator's mapping outlives the name. */
    CHECK_EQ(flq_shm_check(base, size, FLQ_SHM_KIND_MESSAGES), FLQ_SHM_OK);
    flq_shm_unmap(base, size);

    CHECK(flq_mq_segment_bytes(0, 0, 64, 4096) == 0);
    CHECK(flq_mq_segment_bytes(1, 0, 63, 4096) == 0);
    CHECK(flq_mq_segment_bytes(1, 0, 64, 4000) == 0);
    CHECK(flq_mq_segment_bytes(1, 4097, 64, 4096) == 0);
    CHECK(flq_mq_segment_bytes(4096, 4096, UINT64_C(1) << 32, UINT32_MAX - 63 - 31) == 0);
    CHECK(flq_mq_segment_bytes(1, 1, 64, 4096) > flq_mq_segment_bytes(1, 0, 64, 4096));
    CHECK(flq_shm_pid_alive(flq_shm_pid()));
    CHECK(!flq_shm_pid_alive(0));
}

/* ---------------------------------------------------- 2. wait word */

static void test_wait(void)
{
    flq_shm_wait *w = shared_alloc(sizeof *w * 2);
    CHECK(flq_shm_wait_supported());
    uint32_t key = flq_shm_wait_prepare(w);
    CHECK(flq_shm_wait_has_waiters(w));
    flq_shm_wait_cancel(w);
    CHECK(!flq_shm_wait_has_waiters(w));
    uint32_t seq = w->seq;
    flq_shm_wait_notify(w, 0); /* nobody counted in: no bump */
    CHECK_EQ(w->seq, seq);
    key = flq_shm_wait_prepare(w);
    flq_shm_wait_notify(w, 0);
    CHECK_EQ(flq_shm_wait_sleep(w, key, -1), 0); /* would hang if lost */
    key = flq_shm_wait_prepare(w);
    double t0 = now_sec();
    CHECK_EQ(flq_shm_wait_sleep(w, key, 30 * 1000 * 1000), 1);
    CHECK(now_sec() - t0 >= 0.025);
    CHECK(!flq_shm_wait_has_waiters(w));

    /* Across processes: the child sleeps with no timeout until the parent
     * sets a flag and notifies; 200 round trips. */
    _Atomic uint32_t *flag = shared_alloc(sizeof *flag);
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        for (uint32_t i = 1; i <= 200; i++) {
            for (;;) {
                uint32_t k = flq_shm_wait_prepare(&w[0]);
                if (atomic_load(flag) >= i) {
                    flq_shm_wait_cancel(&w[0]);
                    break;
                }
                flq_shm_wait_sleep(&w[0], k, -1);
            }
            flq_shm_wait_notify(&w[1], 0);
        }
        _exit(0);
    }
    for (uint32_t i = 1; i <= 200; i++) {
        atomic_store(flag, i);
        flq_shm_wait_notify(&w[0], 0);
        /* wait for the child's acknowledgement via w[1] */
        for (;;) {
            uint32_t k = flq_shm_wait_prepare(&w[1]);
            if (w[0].waiters == 0 && atomic_load(flag) == i) {
                flq_shm_wait_cancel(&w[1]);
                break;
            }
            flq_shm_wait_sleep(&w[1], k, 1000 * 1000);
        }
    }
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    munmap(w, sizeof *w * 2);
    munmap((void *)flag, sizeof *flag);
}

/* ------------------------------------------------ 3. single thread */

static void test_single(void)
{
    flq_mq q;
    uint64_t size;
    void *base = make_queue(&q, 2, 8, 256, &size);
    CHECK_EQ(flq_mq_claim_lane(&q, 7, always_alive), 0);
    CHECK_EQ(flq_mq_claim_lane(&q, 7, always_alive), 0); /* same process: same lane */
    CHECK_EQ(flq_mq_claim_lane(&q, 8, always_alive), 1);
    CHECK_EQ(flq_mq_claim_lane(&q, 9, always_alive), -1); /* all lanes live */
    CHECK_EQ(flq_mq_lanes_used(&q), 2);
    flq_mq_lane *lane = flq_mq_lane_at(&q, 0);
    flq_mq_stage st;
    unsigned char buf[256];

    /* bytes bound: 100 + 100 fit in 256 (rounded to 104 each), a third not */
    flq_mq_stage_begin(lane, &st);
    unsigned char *a = flq_mq_stage_record(&q, lane, &st, 100, 1);
    unsigned char *b = flq_mq_stage_record(&q, lane, &st, 100, 2);
    CHECK(a != NULL && b != NULL && b == a + 104);
    memset(buf, 'a', 100);
    flq_mq_copy_in(a, buf, 100);
    memset(buf, 'b', 100);
    flq_mq_copy_in(b, buf, 100);
    CHECK(flq_mq_stage_record(&q, lane, &st, 100, 3) == NULL);
    CHECK_EQ(flq_mq_size(&q), 0); /* staged is not visible */
    CHECK_EQ(flq_mq_publish(lane, &st), 2);
    CHECK_EQ(flq_mq_size(&q), 2);

    uint64_t head = flq_mq_head(lane);
    CHECK_EQ(flq_mq_ready(lane, head), 2);
    flq_mq_rec rec = {NULL, 0, 0};
    CHECK_EQ(flq_mq_read(&q, lane, head, &rec), 0);
    CHECK_EQ(rec.len, 100);
    CHECK_EQ(rec.kind, 1);
    flq_mq_copy_out(buf, rec.body, rec.len);
    CHECK(buf[0] == 'a' && buf[99] == 'a');
    uint64_t stale = head;
    CHECK(flq_mq_take(lane, &head, 1));
    CHECK(!flq_mq_take(lane, &stale, 1)); /* another consumer took it first */
    CHECK_EQ(stale, 1);

    /* A 100-byte record does not fit after byte 208: it goes to the next
     * lap's start, which the first (taken) record freed. */
    flq_mq_stage_begin(lane, &st);
    unsigned char *c = flq_mq_stage_record(&q, lane, &st, 100, 3);
    CHECK(c == a);
    CHECK_EQ(flq_mq_publish(lane, &st), 1);
    head = flq_mq_head(lane);
    CHECK_EQ(flq_mq_ready(lane, head), 2);
    CHECK_EQ(flq_mq_read(&q, lane, head, &rec), 0);
    CHECK(rec.kind == 2 && rec.body == b);
    CHECK_EQ(flq_mq_read(&q, lane, head + 1, &rec), 0);
    CHECK(rec.kind == 3 && rec.body == a);
    CHECK(flq_mq_take(lane, &head, 2));
    CHECK_EQ(flq_mq_size(&q), 0);

    /* Empty lane: a record as large as the data area fits. */
    flq_mq_stage_begin(lane, &st);
    CHECK(flq_mq_stage_record(&q, lane, &st, 256, 1) != NULL);
    CHECK(flq_mq_stage_record(&q, lane, &st, 1, 1) == NULL);
    flq_mq_publish(lane, &st);
    head = flq_mq_head(lane);
    CHECK(flq_mq_take(lane, &head, 1));

    /* slots bound: 8 descriptors per lane */
    flq_mq_stage_begin(lane, &st);
    for (int i = 0; i < 8; i++)
        CHECK(flq_mq_stage_record(&q, lane, &st, 0, 1) != NULL);
    CHECK(flq_mq_stage_record(&q, lane, &st, 0, 1) == NULL);
    CHECK_EQ(flq_mq_publish(lane, &st), 8);
    head = flq_mq_head(lane);
    CHECK(flq_mq_take(lane, &head, 8));

    /* a descriptor that points out of range is refused */
    flq_mq_stage_begin(lane, &st);
    CHECK(flq_mq_stage_record(&q, lane, &st, 8, 1) != NULL);
    flq_mq_publish(lane, &st);
    head = flq_mq_head(lane);
    flq_mq_slot *slot = &flq_mq__slots(lane)[head & 7];
    uint64_t saved = slot->meta;
    slot->meta = 300 | ((uint64_t)1 << 32);
    CHECK_EQ(flq_mq_read(&q, lane, head, &rec), -1);
    slot->meta = 8; /* kind 0 */
    CHECK_EQ(flq_mq_read(&q, lane, head, &rec), -1);
    slot->meta = saved;
    CHECK_EQ(flq_mq_read(&q, lane, head, &rec), 0);
    flq_shm_unmap(base, size);
}

/* ----------------------------------------------------- 4. threads */

typedef struct thread_ctx {
    flq_mq *q;
    shared_state *sh;
    _Atomic uint32_t *seen;
    uint32_t p, per, batch;
    uint64_t total;
} thread_ctx;

static void *producer_thread(void *arg)
{
    thread_ctx *c = arg;
    produce(c->q, 100 + c->p, always_alive, c->p, 0, c->per, c->batch, 0, NULL);
    return NULL;
}

static void *consumer_thread(void *arg)
{
    thread_ctx *c = arg;
    consume(c->q, c->sh, c->seen, c->per, c->total, 0, c->batch);
    return NULL;
}

static void check_all_once(_Atomic uint32_t *seen, uint32_t producers, uint32_t per, shared_state *sh)
{
    uint64_t missing = 0, twice = 0;
    for (uint64_t i = 0; i < (uint64_t)producers * per; i++) {
        uint32_t n = atomic_load(&seen[i]);
        missing += n == 0;
        twice += n > 1;
    }
    CHECK_EQ(missing, 0);
    CHECK_EQ(twice, 0);
    CHECK_EQ(atomic_load(&sh->torn), 0);
    CHECK_EQ(atomic_load(&sh->out_of_order), 0);
}

static void test_threads(uint32_t per)
{
    enum { P = 3, C = 3 };
    flq_mq q;
    uint64_t size;
    void *base = make_queue(&q, P, 256, 16384, &size);
    shared_state *sh = shared_alloc(sizeof *sh);
    _Atomic uint32_t *seen = shared_alloc(sizeof(uint32_t) * P * per);
    thread_ctx ctx[P + C];
    pthread_t th[P + C];
    for (uint32_t i = 0; i < P + C; i++) {
        ctx[i] = (thread_ctx){&q, sh, seen, i < P ? i : 0, per, 1 + i % 4, (uint64_t)P * per};
        CHECK(pthread_create(&th[i], NULL, i < P ? producer_thread : consumer_thread, &ctx[i]) == 0);
    }
    for (int i = 0; i < P + C; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ(atomic_load(&sh->taken), (uint64_t)P * per);
    CHECK_EQ(flq_mq_size(&q), 0);
    check_all_once(seen, P, per, sh);
    flq_shm_unmap(base, size);
    munmap(sh, sizeof *sh);
    munmap((void *)seen, sizeof(uint32_t) * P * per);
}

/* --------------------------------------------------- 5. processes */

static void wait_children(pid_t *pids, int n)
{
    for (int i = 0; i < n; i++) {
        int status = 0;
        CHECK(waitpid(pids[i], &status, 0) == pids[i]);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
}

static void test_processes(uint32_t per)
{
    enum { P = 2, C = 2 };
    const uint32_t big = 3000; /* every 97th record is large: laps wrap often */
    flq_mq q;
    uint64_t size;
    void *base = make_queue(&q, 4, 512, 32768, &size);
    shared_state *sh = shared_alloc(sizeof *sh);
    _Atomic uint32_t *seen = shared_alloc(sizeof(uint32_t) * P * per);
    pid_t pids[P + C];
    for (uint32_t i = 0; i < P + C; i++) {
        pids[i] = fork();
        CHECK(pids[i] >= 0);
        if (pids[i] == 0) {
            if (i < P)
                produce(&q, flq_shm_pid(), flq_shm_pid_alive, i, 0, per, 1 + i * 15, big, NULL);
            else
                consume(&q, sh, seen, per, (uint64_t)P * per, big, 1 + (i % 2) * 7);
            _exit(atomic_load(&check_failures) ? 1 : 0);
        }
    }
    wait_children(pids, P + C);
    CHECK_EQ(atomic_load(&sh->taken), (uint64_t)P * per);
    check_all_once(seen, P, per, sh);
    flq_shm_unmap(base, size);
    munmap(sh, sizeof *sh);
    munmap((void *)seen, sizeof(uint32_t) * P * per);
}

/* ----------------------------------------------------- 6. SIGKILL */

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static pid_t spawn_consumer(flq_mq *q, shared_state *sh, _Atomic uint32_t *seen, uint32_t per, uint32_t batch)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        consume(q, sh, seen, per, UINT64_MAX, 0, batch);
        _exit(0);
    }
    return pid;
}

/* Producers (one at a time per lane, 2 lanes) are killed at random moments
 * and replaced; with kill_consumers, consumers are killed too. */
static void test_kills(uint32_t kills, int kill_consumers, uint64_t seed)
{
    const uint32_t per = 1u << 20; /* seq space per producer incarnation */
    flq_mq q;
    uint64_t size;
    void *base = make_queue(&q, 2, 64, 8192, &size);
    shared_state *sh = shared_alloc(sizeof *sh);
    uint32_t incarnations = kills + 2;
    CHECK(incarnations <= MAX_PRODUCERS);
    size_t seen_bytes = sizeof(uint32_t) * (size_t)incarnations * per;
    _Atomic uint32_t *seen = shared_alloc(seen_bytes);
    pid_t consumers[2], producers[2];
    uint32_t next_p = 0;
    for (int i = 0; i < 2; i++)
        consumers[i] = spawn_consumer(&q, sh, seen, per, 1 + i * 7);
    for (int i = 0; i < 2; i++) {
        uint32_t p = next_p++;
        producers[i] = fork();
        if (producers[i] == 0) {
            produce(&q, flq_shm_pid(), flq_shm_pid_alive, p, 0, per - 1, 1 + p % 5, 0, &sh->published[p]);
            _exit(0);
        }
    }
    uint32_t producer_of[2] = {0, 1};
    for (uint32_t k = 0; k < kills; k++) {
        sleep_us((long)rng_range(&seed, 200, 20000));
        int victim_consumer = kill_consumers && (k % 3 == 2);
        int i = (int)(rng_next(&seed) & 1);
        if (victim_consumer) {
            kill(consumers[i], SIGKILL);
            waitpid(consumers[i], NULL, 0);
            consumers[i] = spawn_consumer(&q, sh, seen, per, 1 + i * 7);
            continue;
        }
        kill(producers[i], SIGKILL);
        waitpid(producers[i], NULL, 0); /* reaped: its pid is gone, the lane adoptable */
        uint32_t p = next_p++;
        producer_of[i] = p;
        producers[i] = fork();
        if (producers[i] == 0) {
            produce(&q, flq_shm_pid(), flq_shm_pid_alive, p, 0, per - 1, 1 + p % 5, 0, &sh->published[p]);
            _exit(0);
        }
    }
    /* Let the last producers run a little, then stop them too, and let the
     * consumers drain what was published. */
    sleep_us(20000);
    for (int i = 0; i < 2; i++) {
        kill(producers[i], SIGKILL);
        waitpid(producers[i], NULL, 0);
    }
    (void)producer_of;
    double t0 = now_sec();
    while (flq_mq_size(&q) != 0 && now_sec() - t0 < 30.0)
        sleep_us(1000);
    CHECK_EQ(flq_mq_size(&q), 0); /* survivors drained everything: nobody hung */
    atomic_store(&sh->stop, 1);
    flq_shm_wait_notify(&q.ctl->not_empty, 1);
    wait_children(consumers, 2);
    CHECK(flq_mq_lanes_used(&q) <= 2);

    uint64_t missing = 0, twice = 0, published = 0;
    for (uint32_t p = 0; p < next_p; p++) {
        uint64_t upto = atomic_load(&sh->published[p]);
        published += upto;
        for (uint64_t s = 0; s < per; s++) {
            uint32_t n = atomic_load(&seen[(uint64_t)p * per + s]);
            twice += n > 1;
            if (s < upto && n == 0)
                missing++;
        }
    }
    CHECK(published > 0);
    CHECK_EQ(twice, 0);
    CHECK_EQ(atomic_load(&sh->torn), 0);
    CHECK_EQ(atomic_load(&sh->out_of_order), 0);
    if (!kill_consumers)
        CHECK_EQ(missing, 0);
    printf("  kills=%u consumers-too=%d: %" PRIu64 " published, %" PRIu64 " lost to killed consumers\n",
           kills, kill_consumers, published, missing);
    flq_shm_unmap(base, size);
    munmap(sh, sizeof *sh);
    munmap((void *)seen, seen_bytes);
}

/* ------------------------------------------------- 7. reservations */

/* Reserve the oldest record of any producer lane into flight lane fl (the
 * shmflight.h protocol). Returns 1 with *fidx, or 0 when nothing is there. */
static int reserve_one(flq_mq *q, flq_mq_lane *fl, uint64_t deadline, uint64_t *fidx)
{
    for (uint64_t i = 0; i < flq_mq_lanes_used(q); i++) {
        flq_mq_lane *lane = flq_mq_lane_at(q, i);
        uint64_t head = flq_mq_head(lane);
        while (flq_mq_ready(lane, head) != 0) {
            flq_mq_rec rec = {NULL, 0, 0};
            if (flq_mq_read(q, lane, head, &rec) != 0) {
                head = flq_mq_head(lane);
                continue;
            }
            flq_mq_stage st;
            flq_flight_reclaim(q, fl);
            flq_mq_stage_begin(fl, &st);
            unsigned char *body = flq_flight_stage(q, fl, &st, rec.len, rec.kind, fidx);
            if (body == NULL)
                return 0; /* flight lane full */
            flq_mq_copy_out(body, rec.body, rec.len);
            flq_mq_publish(fl, &st);
            flq_mq_rec frec = {NULL, 0, 0};
            flq_flight_hdr *h = flq_flight_hdr_at(q, fl, *fidx, &frec);
            if (flq_mq_take(lane, &head, 1)) {
                flq_flight_mark(h, *fidx, FLQ_FLIGHT_RESERVED, deadline);
                return 1;
            }
            flq_flight_mark(h, *fidx, FLQ_FLIGHT_SETTLED, 0);
        }
    }
    return 0;
}

/* Put record idx of flight lane fl back through producer lane out. */
static int requeue_one(flq_mq *q, flq_mq_lane *fl, uint64_t idx, uint64_t state, flq_mq_lane *out, uint32_t pid)
{
    flq_mq_rec rec = {NULL, 0, 0};
    flq_flight_hdr *h = flq_flight_hdr_at(q, fl, idx, &rec);
    if (h == NULL || !flq_flight_cas(h, &state, idx, FLQ_FLIGHT_REQUEUING, pid))
        return 0;
    flq_mq_stage st;
    flq_mq_stage_begin(out, &st);
    uint32_t len = rec.len - FLQ_FLIGHT_HDR_BYTES;
    unsigned char *body = flq_mq_stage_record(q, out, &st, len, rec.kind);
    CHECK(body != NULL);
    if (body == NULL)
        return 0;
    flq_mq_copy_out(body, rec.body + FLQ_FLIGHT_HDR_BYTES, len);
    flq_mq_publish(out, &st);
    uint64_t mine = flq_flight_state(FLQ_FLIGHT_REQUEUING, pid, idx);
    CHECK(flq_flight_cas(h, &mine, idx, FLQ_FLIGHT_SETTLED, 0));
    return 1;
}

static uint32_t record_seq(flq_mq_rec *rec, uint32_t skip)
{
    uint32_t seq;
    memcpy(&seq, rec->body + skip, 4);
    return seq;
}

static void put_seq(flq_mq *q, flq_mq_lane *lane, uint32_t seq)
{
    flq_mq_stage st;
    flq_mq_stage_begin(lane, &st);
    unsigned char *body = flq_mq_stage_record(q, lane, &st, 4, 1);
    CHECK(body != NULL);
    flq_mq_copy_in(body, &seq, 4);
    flq_mq_publish(lane, &st);
}

static void test_flight_protocol(void)
{
    char name[64];
    snprintf(name, sizeof name, "/flinq-ctest-flight-%d", (int)getpid());
    uint64_t size = flq_mq_segment_bytes(2, 2, 16, 1024);
    void *base = NULL;
    CHECK_EQ(flq_shm_create(name, size, &base, NULL), 0);
    CHECK_EQ(flq_shm_unlink(name), 0);
    flq_mq q;
    flq_mq_view(&q, base, 2, 2, 16, 1024);
    int adopted = 1;
    CHECK_EQ(flq_flight_claim_lane(&q, 7, always_alive, &adopted), 0);
    CHECK(!adopted);
    CHECK_EQ(flq_flight_lanes_used(&q), 1);
    flq_mq_lane *out = flq_mq_lane_at(&q, flq_mq_claim_lane(&q, 7, always_alive));
    flq_mq_lane *fl = flq_flight_lane_at(&q, 0);
    for (uint32_t i = 0; i < 3; i++)
        put_seq(&q, out, i);

    uint64_t a, b, c, idx, state;
    CHECK(reserve_one(&q, fl, 1000, &a));
    CHECK(reserve_one(&q, fl, 5000, &b));
    CHECK(reserve_one(&q, fl, 5000, &c));
    CHECK(!reserve_one(&q, fl, 5000, &idx)); /* queue empty */
    CHECK_EQ(flq_mq_size(&q), 0);
    CHECK_EQ(flq_flight_unsettled(&q, fl), 3);
    CHECK_EQ(flq_mq_lane_owner(fl), 7);
    /* Nothing expired at t=999; a has at t=1000. */
    CHECK(!flq_flight_find(&q, fl, 999, 0, always_alive, &idx, &state));
    CHECK(flq_flight_find(&q, fl, 1000, 0, always_alive, &idx, &state));
    CHECK_EQ(idx, a);
    /* ack b: RESERVED -> SETTLED; a second ack fails */
    flq_mq_rec rec = {NULL, 0, 0};
    flq_flight_hdr *hb = flq_flight_hdr_at(&q, fl, b, &rec);
    uint64_t s = flq_flight_state(FLQ_FLIGHT_RESERVED, 0, b);
    CHECK(flq_flight_cas(hb, &s, b, FLQ_FLIGHT_SETTLED, 0));
    s = flq_flight_state(FLQ_FLIGHT_RESERVED, 0, b);
    CHECK(!flq_flight_cas(hb, &s, b, FLQ_FLIGHT_SETTLED, 0));
    CHECK_EQ(flq_flight_tag(s), FLQ_FLIGHT_SETTLED);
    /* a stale index never matches (no ABA) */
    s = flq_flight_state(FLQ_FLIGHT_SETTLED, 0, b + 16);
    CHECK(!flq_flight_cas(hb, &s, b + 16, FLQ_FLIGHT_PENDING, 0));
    CHECK_EQ(flq_flight_unsettled(&q, fl), 2);
    /* b is settled but a is still in flight: nothing to reclaim yet */
    CHECK_EQ(flq_flight_reclaim(&q, fl), 0);
    /* requeue a (expired): it is back in the queue with its kind */
    CHECK(requeue_one(&q, fl, idx, state, out, 7));
    CHECK_EQ(flq_mq_size(&q), 1);
    CHECK_EQ(flq_flight_reclaim(&q, fl), 2); /* a and b */
    uint64_t head = flq_mq_head(out);
    CHECK(flq_mq_read(&q, out, head, &rec) == 0 && record_seq(&rec, 0) == 0);
    /* a dead owner: c (RESERVED, not expired) comes back at once */
    CHECK(flq_flight_find(&q, fl, 0, 1, always_alive, &idx, &state));
    CHECK_EQ(idx, c);
    CHECK(requeue_one(&q, fl, idx, state, out, 8));
    CHECK(!requeue_one(&q, fl, idx, state, out, 9)); /* only once */
    CHECK_EQ(flq_flight_reclaim(&q, fl), 1);
    CHECK_EQ(flq_mq_size(&q), 2);
    flq_shm_unmap(base, size);
}

static int never_alive(uint32_t pid) { (void)pid; return 0; }

/* A reserving process (reserve, record, ack; some it keeps) killed at random
 * points; the parent then takes the dead one's lane back and requeues. */
static void test_flight_kills(uint32_t kills, uint64_t seed)
{
    const uint32_t total = 20000;
    flq_mq q;
    uint64_t size;
    char name[64];
    snprintf(name, sizeof name, "/flinq-ctest-fk-%d", (int)getpid());
    size = flq_mq_segment_bytes(2, 2, 1024, 16384);
    void *base = NULL;
    CHECK_EQ(flq_shm_create(name, size, &base, NULL), 0);
    CHECK_EQ(flq_shm_unlink(name), 0);
    flq_mq_view(&q, base, 2, 2, 1024, 16384);
    _Atomic uint32_t *acked = shared_alloc(sizeof(uint32_t) * total);
    uint32_t *delivered = calloc(total, sizeof(uint32_t));
    flq_mq_lane *out = flq_mq_lane_at(&q, flq_mq_claim_lane(&q, flq_shm_pid(), flq_shm_pid_alive));
    uint32_t next = 0, done = 0;
    uint64_t duplicates = 0;
    for (uint32_t k = 0; k < kills; k++) {
        /* keep ~500 messages queued for the reserver */
        while (next < total && flq_mq_size(&q) < 500)
            put_seq(&q, out, next++);
        pid_t child = fork();
        CHECK(child >= 0);
        if (child == 0) {
            int adopted;
            int64_t li = flq_flight_claim_lane(&q, flq_shm_pid(), flq_shm_pid_alive, &adopted);
            if (li < 0)
                _exit(3);
            flq_mq_lane *fl = flq_flight_lane_at(&q, (uint64_t)li);
            uint64_t fidx;
            uint64_t n = 0;
            while (reserve_one(&q, fl, UINT64_MAX, &fidx)) {
                if (++n % 5 == 0)
                    continue; /* kept in flight: only the kill returns it */
                flq_mq_rec rec = {NULL, 0, 0};
                flq_flight_hdr *h = flq_flight_hdr_at(&q, fl, fidx, &rec);
                atomic_fetch_add(&acked[record_seq(&rec, FLQ_FLIGHT_HDR_BYTES)], 1);
                uint64_t s = flq_flight_state(FLQ_FLIGHT_RESERVED, 0, fidx);
                flq_flight_cas(h, &s, fidx, FLQ_FLIGHT_SETTLED, 0);
            }
            for (;;)
                sleep_us(1000); /* wait for the kill */
        }
        sleep_us((long)rng_range(&seed, 50, 3000));
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        /* Requeue every flight record of the dead reserver. */
        for (uint64_t i = 0; i < flq_flight_lanes_used(&q); i++) {
            flq_mq_lane *fl = flq_flight_lane_at(&q, i);
            uint64_t idx, state;
            while (flq_flight_find(&q, fl, 0, 0, flq_shm_pid_alive, &idx, &state))
                CHECK(requeue_one(&q, fl, idx, state, out, flq_shm_pid()));
        }
    }
    /* Drain: what remains is delivered to the parent (at most once each). */
    do {
        while (next < total && flq_mq_size(&q) < 500)
            put_seq(&q, out, next++);
        for (uint64_t i = 0; i < flq_mq_lanes_used(&q); i++) {
            flq_mq_lane *lane = flq_mq_lane_at(&q, i);
            uint64_t head = flq_mq_head(lane);
            while (flq_mq_ready(lane, head)) {
                flq_mq_rec rec = {NULL, 0, 0};
                CHECK(flq_mq_read(&q, lane, head, &rec) == 0);
                delivered[record_seq(&rec, 0)]++;
                CHECK(flq_mq_take(lane, &head, 1));
            }
        }
    } while (next < total);
    for (uint32_t i = 0; i < total; i++) {
        uint32_t n = acked[i] + delivered[i];
        if (n == 0)
            done++; /* lost */
        duplicates += n > 1;
    }
    CHECK_EQ(done, 0);
    CHECK(duplicates <= kills); /* at most one per kill, by the protocol */
    CHECK(never_alive(1) == 0);
    printf("  reservation kills=%u: %" PRIu64 " delivered twice\n", kills, duplicates);
    free(delivered);
    munmap((void *)acked, sizeof(uint32_t) * total);
    flq_shm_unmap(base, size);
}

int main(void)
{
    uint64_t items = items_from_env(10000000);
    uint32_t per = (uint32_t)(items / 40 < 1000 ? 1000 : items / 40);
    test_segments();
    test_wait();
    test_single();
    test_threads(per);
    test_processes(per);
    test_kills(30, 0, 42);
    test_kills(30, 1, 7);
    test_flight_protocol();
    test_flight_kills(40, 99);
    return check_report("test_shmring");
}
