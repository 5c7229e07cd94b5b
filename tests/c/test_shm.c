/*
 * tests/c/test_shm.c: flinq/array_shmseg.h and flinq/array_shmwait.h, and flinq/records.h
 * in a segment shared by processes.
 *
 *   1. segments: create, refuse an existing name, attach elsewhere and see
 *      the same bytes, unlink (mappings survive, attaching fails), unmap;
 *   2. shmwait in one process: a wait times out, a notify with no waiter
 *      costs nothing, a sleeping thread is woken;
 *   3. 2 producer processes (each attaching by name, so the ring sits at
 *      another address in each) and 2 consumer threads of the parent move
 *      N records (FLINQ_C_ITEMS / 10, default 1M) through a 500-slot ring,
 *      sleeping on the ring's shmwait words when it is full or empty: every
 *      record exactly once, in order per producer.
 */
#define _DEFAULT_SOURCE /* syscall() for flinq/array_shmwait.h (Python.h defines _GNU_SOURCE) */
#include "check.h"

#include <pthread.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flinq/records.h"
#include "flinq/array_shmseg.h"
#include "flinq/array_shmwait.h"

#define NPROD 2
#define NCONS 2
#define RING_CAP 500
#define MAX_RUN 50
#define WAIT_NS 100000000 /* re-check at least every 100 ms */

static char g_name[FLQ_SHM_NAME_MAX];

static void unit_segments(void)
{
    void *a = NULL, *b = NULL;
    uint64_t size = 0;
    CHECK_EQ(flq_shm_create(g_name, 10000, &a), 0);
    CHECK_EQ(flq_shm_create(g_name, 10000, &b), EEXIST);
    CHECK_EQ(flq_shm_attach(g_name, &b, &size), 0);
    CHECK_EQ(size, 10000);
    CHECK(a != b);
    CHECK_EQ(((unsigned char *)b)[9999], 0); /* zero-filled */
    memcpy(a, "flinq", 6);
    CHECK(memcmp(b, "flinq", 6) == 0);
    CHECK_EQ(flq_shm_unlink(g_name), 0);
    CHECK_EQ(flq_shm_unlink(g_name), ENOENT);
    ((char *)b)[0] = 'F';
    CHECK(((char *)a)[0] == 'F'); /* the mappings outlive the name */
    void *c = NULL;
    CHECK_EQ(flq_shm_attach(g_name, &c, &size), ENOENT);
    CHECK_EQ(flq_shm_unmap(a, 10000), 0);
    CHECK_EQ(flq_shm_unmap(b, 10000), 0);
    CHECK_EQ(flq_shm_create(g_name, 0, &a), EINVAL);
    printf("  unit: create/attach/unlink/unmap ok\n");
}

static uint32_t g_epoch, g_waiters;
static atomic_int g_flag;

static void *sleeper(void *arg)
{
    (void)arg;
    flq_shmwait w = {&g_epoch, &g_waiters};
    while (!atomic_load(&g_flag)) {
        uint32_t key = flq_shmwait_prepare(w);
        if (atomic_load(&g_flag))
            flq_shmwait_cancel(w);
        else
            flq_shmwait_wait(w, key, -1); /* no limit: only a notify ends it */
    }
    return NULL;
}

static void unit_wait(void)
{
    flq_shmwait w = {&g_epoch, &g_waiters};
    uint32_t key = flq_shmwait_prepare(w);
    double t0 = now_sec();
    CHECK_EQ(flq_shmwait_wait(w, key, 20000000), 1);
    CHECK(now_sec() - t0 >= 0.015);
    CHECK_EQ(g_waiters, 0);
    flq_shmwait_notify(w, 1);
    CHECK_EQ(g_epoch, 0); /* nobody waited: the epoch did not move */

    pthread_t t;
    CHECK(pthread_create(&t, NULL, sleeper, NULL) == 0);
    while (__atomic_load_n(&g_waiters, __ATOMIC_RELAXED) == 0)
        usleep(1000);
    usleep(20000);
    atomic_store(&g_flag, 1);
    flq_shmwait_notify(w, 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK_EQ(g_waiters, 0);
    printf("  unit: wait times out, notify wakes a sleeper ok\n");
}

/* ---------------------------------------------------- processes and threads */

typedef struct {
    uint64_t producer;
    uint64_t seq;
} rec;

static uint64_t g_per_producer;
static flq_records *g_ring;
static uint8_t *g_seen[NPROD];

static flq_shmwait items_of(flq_records *r) { return (flq_shmwait){&r->items_epoch, &r->items_waiters}; }
static flq_shmwait room_of(flq_records *r) { return (flq_shmwait){&r->room_epoch, &r->room_waiters}; }

static int produce(uint64_t id)
{
    void *addr = NULL;
    uint64_t size = 0;
    if (flq_shm_attach(g_name, &addr, &size) != 0 || flq_records_check(addr, size) != 0)
        return 2;
    flq_records *r = (flq_records *)addr;
    uint64_t seed = 99 + id;
    rec buf[MAX_RUN];
    uint64_t s = 0;
    while (s < g_per_producer) {
        uint64_t m = rng_range(&seed, 1, MAX_RUN);
        if (m > g_per_producer - s)
            m = g_per_producer - s;
        for (uint64_t k = 0; k < m; k++)
            buf[k] = (rec){id, s + k};
        while (!flq_records_try_put(r, buf, m)) {
            uint32_t key = flq_shmwait_prepare(room_of(r));
            if (flq_records_room(r) >= m)
                flq_shmwait_cancel(room_of(r));
            else
                flq_shmwait_wait(room_of(r), key, WAIT_NS);
        }
        flq_shmwait_notify(items_of(r), m > 1);
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
            uint32_t key = flq_shmwait_prepare(items_of(r));
            if (flq_records_size(r) || flq_records_state(r) != FLQ_RECORDS_OPEN)
                flq_shmwait_cancel(items_of(r));
            else
                flq_shmwait_wait(items_of(r), key, WAIT_NS);
            continue;
        }
        flq_shmwait_notify(room_of(r), 1);
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
    uint64_t size = flq_records_block_size(sizeof(rec), RING_CAP);
    void *addr = NULL;
    CHECK_EQ(flq_shm_create(g_name, size, &addr), 0);
    if (addr == NULL)
        return;
    g_ring = flq_records_init(addr, sizeof(rec), RING_CAP);
    CHECK(g_ring != NULL);
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
    flq_shmwait_notify(items_of(g_ring), 1);
    uint64_t total = 0;
    for (int i = 0; i < NCONS; i++) {
        CHECK(pthread_join(threads[i], NULL) == 0);
        total += args[i].got;
    }
    double dt = now_sec() - t0;
    uint64_t missing = 0, dup = 0;
    for (int p = 0; p < NPROD; p++) {
        for (uint64_t s = 0; s < g_per_producer; s++) {
            missing += g_seen[p][s] == 0;
            dup += g_seen[p][s] > 1;
        }
        free(g_seen[p]);
    }
    CHECK_EQ(total, NPROD * g_per_producer);
    CHECK_EQ(missing, 0);
    CHECK_EQ(dup, 0);
    CHECK_EQ(flq_records_size(g_ring), 0);
    printf("  %d producer processes / %d consumer threads, %" PRIu64 " records: %" PRIu64 " missing, %" PRIu64
           " duplicated; %.3fs\n",
           NPROD, NCONS, NPROD * g_per_producer, missing, dup, dt);
    CHECK_EQ(flq_shm_unlink(g_name), 0);
    CHECK_EQ(flq_shm_unmap(addr, size), 0);
}

int main(void)
{
    snprintf(g_name, sizeof g_name, "/flinq-test-shm-%ld", (long)getpid());
    uint64_t records = items_from_env(10000000) / 10;
    printf("test_shm: segment %s, ring capacity %d, %" PRIu64 " records\n", g_name, RING_CAP, records);
    unit_segments();
    unit_wait();
    processes_phase(records);
    flq_shm_unlink(g_name); /* in case a check failed before the unlink */
    return check_report("test_shm");
}
