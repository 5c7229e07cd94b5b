/* A disk whose flushes take a fixed time, for measuring group commit.
 *
 * This VM's fdatasync latency drifts by 2x within a minute, which hides
 * what a change to the sync commit path does. Preloaded into a measurement
 * whose store lives on tmpfs, this makes every fsync() and fdatasync() a
 * sleep of FIXED_FSYNC_US microseconds (default 300) and nothing else: the
 * data reaches no disk, so use it for timing only, never for a store you
 * keep.
 *
 *   gcc -O2 -Wall -Wextra -shared -fPIC -o /tmp/fixed_fsync.so tools/fixed_fsync.c
 *   TMPDIR=/dev/shm FIXED_FSYNC_US=300 LD_PRELOAD=/tmp/fixed_fsync.so \
 *       python tools/measure_durable.py sync
 *
 * Concurrency: each call sleeps in its own thread; nothing is shared but
 * the environment variable, read at every call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <time.h>

static void sleep_fixed(void) {
    const char *text = getenv("FIXED_FSYNC_US");
    long micros = text ? atol(text) : 300;
    struct timespec left = {micros / 1000000, (micros % 1000000) * 1000};
    while (nanosleep(&left, &left) != 0 && errno == EINTR) {
    }
}

int fsync(int fd) {
    (void)fd;
    sleep_fixed();
    return 0;
}

int fdatasync(int fd) {
    (void)fd;
    sleep_fixed();
    return 0;
}
