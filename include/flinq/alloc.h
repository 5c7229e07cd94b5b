/*
 * flinq/alloc.h: where flinq's structures get their memory.
 *
 * The includer may define FLQ_MALLOC, FLQ_REALLOC and FLQ_FREE (all three)
 * before including any flinq header; they default to the C library's. The
 * Python extension routes them to PyMem_RawMalloc and friends, so that
 * tracemalloc sees a queue's memory like any other object's. They must be
 * callable from any thread without other locks.
 *
 * Pure C, no Python.h.
 */
#ifndef FLINQ_ALLOC_H
#define FLINQ_ALLOC_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#ifndef FLQ_MALLOC
#  define FLQ_MALLOC malloc
#  define FLQ_REALLOC realloc
#  define FLQ_FREE free
#endif

/* Memory aligned to `align` (a power of two), released by flq_aligned_free.
 * The block returned by FLQ_MALLOC is remembered just below the aligned one,
 * which keeps this portable to every allocator and compiler. */
static inline void *flq_aligned_alloc(size_t size, size_t align)
{
    char *raw = (char *)FLQ_MALLOC(size + align + sizeof(void *));
    if (raw == NULL)
        return NULL;
    uintptr_t start = (uintptr_t)(raw + sizeof(void *));
    char *aligned = (char *)((start + align - 1) & ~(uintptr_t)(align - 1));
    ((void **)aligned)[-1] = raw;
    return aligned;
}

static inline void flq_aligned_free(void *p)
{
    if (p != NULL)
        FLQ_FREE(((void **)p)[-1]);
}

#endif /* FLINQ_ALLOC_H */
