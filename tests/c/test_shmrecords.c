/*
 * tests/c/test_shmrecords.c: flinq/records.h in a segment shared by
 * processes, as ArrayQueue(shared=True) keeps it: a flinq/shmseg.h segment
 * of kind FLQ_SHM_KIND_ARRAY with the ring after a metadata page, sleepers
 * on the ring header's flinq/shmwait.h words.
 *
 * 2 producer processes (each attaching by name and checking the header, so
 * the ring sits at another address in each) and 2 consumer threads of the
 * parent move N records (FLINQ_C_ITEMS / 10, default 1M) through a
 * 500-slot ring, sleeping on the ring's wait words when it is full or
 * empty: every record exactly once, in order per producer. Each producer
 * maps the segment's pages in (flq_shm_populate) at attach and again
 * halfway, while the others use them. The segment
 * and wait-word functions on their own are tested by test_shmring.c.
 */
#define _DEFAULT_SOURCE /* syscall() for flinq/shmwait.h (Python.h defines _GNU_SOURCE) */
#include "check.h"

#include <pthread.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flinq/records.h"
#include "flinq/shmseg.h"
#include "flinq/shmwait.h"

#define NPROD 2
#define NCONS 2
#define RING_CAP 500
#define MAX_RUN 50
#define WAIT_NS 100000000 /* re-check at least every 100 ms */
#define RING_AT 4096      /* the ring's offset: after the header and a metadata page */

static char g_name[64];

/* ---------------------------------------------------- processes and threads */

typedef struct {
    uint64_t producer;
    uint64_t seq;
} rec;

static uint64_t g_per_producer;
static flq_records *g_ring;
static uint8_t *g_seen[NPROD];

static int produce(uint64_t id)
{
    void *addr = NULL;
    uint64_t size = 0;
    if (flq_shm_attach(g_name, &addr, &size, NULL) != 0)
        return 2;
    if (flq_shm_check(addr, size, FLQ_SHM_KIND_ARRAY) != FLQ_SHM_OK
        || ((flq_shm_header *)addr)->params[3] != RING_AT
        || flq_records_check((char *)addr + RING_AT, size - RING_AT) != 0)
        return 3;
    if (flq_shm_populate(addr, size) != 0)
        return 4;
    flq_records *r = (flq_records *)((char *)addr + RING_AT);
    uint64_t seed = 99 + id;
    rec buf[MAX_RUN];
    uint64_t s = 0;
    while (s < g_per_producer) {
        uint64_t m = rng_range(&seed, 1, MAX_RUN);
        if (m > g_per_producer - s)
            m = g_per_producer - s;
        /* Halfway, map every page in again while the other producer writes
         * and the consumers read: it must change no byte (the consumers
         * check every record). */
        if (s <= g_per_producer / 2 && g_per_producer / 2 < s + m && flq_shm_populate(addr, size) != 0)
            return 4;
        for (uint64_t k = 0; k < m; k++)
            buf[k] = (rec){id, s + k};
        while (!flq_records_try_put(r, buf, m)) {
            uint32_t key = flq_shm_wait_prepare(&r->room);
            if (flq_records_room(r) >= m)
                flq_shm_wait_cancel(&r->room);
            else
                flq_shm_wait_sleep(&r->room, key, WAIT_NS);
        }
        flq_shm_wait_notify(&r->items, m > 1);
        s += m;
    }
    flq_shm_unmap(addr, size);
    return 0;
}

typedef struct {
    uint64_t got;
    uint64_t seed;
} consumer_arg;

static void *consume(void *arg)
{
    consumer_arg *c = (consumer_arg *)arg;
    flq_records *r = g_ring;
    rec buf[MAX_RUN];
    uint64_t last[NPROD] = {0};
    int any[NPROD] = {0};
    for (;;) {
        /* the state is read before the claim: a claim that then finds
         * nothing after the shutdown proves every record was taken. */
        uint32_t state = flq_records_state(r);
        uint64_t k = flq_records_try_get(r, buf, rng_range(&c->seed, 1, MAX_RUN));
        if (k == 0) {
            if (state != FLQ_RECORDS_OPEN)
                break;
            uint32_t key = flq_shm_wait_prepare(&r->items);
            if (flq_records_size(r) || flq_records_state(r) != FLQ_RECORDS_OPEN)
                flq_shm_wait_cancel(&r->items);
            else
                flq_shm_wait_sleep(&r->items, key, WAIT_NS);
            continue;
        }
        flq_shm_wait_notify(&r->room, 1);
        for (uint64_t j = 0; j < k; j++) {
            uint64_t p = buf[j].producer, s = buf[j].seq;
            if (p >= NPROD || s >= g_per_producer) {
                CHECK(p < NPROD && s < g_per_producer);
                continue;
            }
            if (any[p] && s <= last[p])
                CHECK(s > last[p]);
            any[p] = 1;
            last[p] = s;
            g_seen[p][s]++;
        }
        c->got += k;
    }
    return NULL;
}

static void processes_phase(uint64_t records)
{
    g_per_producer = records / NPROD;
    uint64_t size = RING_AT + flq_records_block_size(sizeof(rec), RING_CAP);
    void *addr = NULL;
    CHECK_EQ(flq_shm_create(g_name, size, &addr, NULL), 0);
    if (addr == NULL)
        return;
    g_ring = flq_records_init((char *)addr + RING_AT, sizeof(rec), RING_CAP);
    CHECK(g_ring != NULL);
    uint64_t params[4] = {sizeof(rec), RING_CAP, 0, RING_AT};
    flq_shm_publish(addr, FLQ_SHM_KIND_ARRAY, size, params);
    for (int p = 0; p < NPROD; p++)
        g_seen[p] = (uint8_t *)calloc((size_t)g_per_producer, 1);

    double t0 = now_sec();
    pid_t pids[NPROD];
    for (int p = 0; p < NPROD; p++) { /* fork before any thread starts */
        fflush(stdout);
        pids[p] = fork();
        CHECK(pids[p] >= 0);
        if (pids[p] == 0)
            _exit(produce((uint64_t)p));
    }
    consumer_arg args[NCONS];
    pthread_t threads[NCONS];
    for (int i = 0; i < NCONS; i++) {
        args[i] = (consumer_arg){0, 7 + (uint64_t)i};
        CHECK(pthread_create(&threads[i], NULL, consume, &args[i]) == 0);
    }
    for (int p = 0; p < NPROD; p++) {
        int status = -1;
        CHECK(waitpid(pids[p], &status, 0) == pids[p]);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    flq_records_set_state(g_ring, FLQ_RECORDS_SHUTDOWN);
    flq_shm_wait_notify(&g_ring->items, 1);
    uint64_t total = 0;
    for (int i = 0; i < NCONS; i++) {
        CHECK(pthread_join(threads[i], NULL) == 0);
        total += args[i].got;
    }
    double dt = now_sec() - t0;
    uint64_t missing, dup;
    tally_seen(g_seen, NPROD, g_per_producer, &missing, &dup);
    CHECK_EQ(total, NPROD * g_per_producer);
    CHECK_EQ(missing, 0);
    CHECK_EQ(dup, 0);
    CHECK_EQ(flq_records_size(g_ring), 0);
    printf("  %d producer processes / %d consumer threads, %" PRIu64 " records: %" PRIu64 " missing, %" PRIu64
           " duplicated; %.3fs\n",
           NPROD, NCONS, NPROD * g_per_producer, missing, dup, dt);
    CHECK_EQ(flq_shm_unlink(g_name), 0);
    flq_shm_unmap(addr, size);
}

int main(void)
{
    snprintf(g_name, sizeof g_name, "/flinq-test-shmrecords-%ld", (long)getpid());
    uint64_t records = items_from_env(10000000) / 10;
    printf("test_shmrecords: segment %s, ring capacity %d, %" PRIu64 " records\n", g_name, RING_CAP, records);
    processes_phase(records);
    flq_shm_unlink(g_name); /* in case a check failed before the unlink */
    return check_report("test_shmrecords");
}
