/* Big reads copied by two threads: see _parcopy.c. */
#ifndef PYMEMFLOW_PARCOPY_H
#define PYMEMFLOW_PARCOPY_H

#include <stddef.h>
#include <stdint.h>

#define PAR_MIN (256u << 10) /* bytes: a smaller read is copied by the calling thread alone */
#define PAR_UNIT (64u << 10) /* bytes: the unit the threads claim (longer pieces are cut) */

/* One copy: n bytes from src (an address of this process, or of process ``pid`` given to par_copy) to dst. */
typedef struct {
    unsigned char *dst;
    uintptr_t src;
    size_t n;
} ParUnit;

typedef struct {
    ParUnit *u;
    size_t n, cap;
} ParList;

/* 1 when a read of ``total`` bytes is worth a second thread (big enough, not disabled). */
int par_worth(uint64_t total);
/* Room for the units of ``pieces`` pieces of ``total`` bytes in all; -1 when out of memory. */
int par_list_init(ParList *l, size_t pieces, uint64_t total);
/* Add one piece, cut into PAR_UNIT units; -1 when it does not fit (more than par_list_init was told). */
int par_list_add(ParList *l, unsigned char *dst, uintptr_t src, uint64_t n);
void par_list_free(ParList *l);
/* Copy every unit, the calling thread and the worker claiming units in turn; 0 when all were copied.
 * pid > 0: src addresses are in that process (process_vm_readv). Needs no GIL: the caller may drop it. */
int par_copy(const ParList *l, long pid);

#endif
