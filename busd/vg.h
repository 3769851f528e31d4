/* SPDX-License-Identifier: MIT */
/*
 * vg.h — tell valgrind's memcheck what the kernel reads and writes for busd
 * through io_uring. Valgrind wraps io_uring_enter() but not the operations
 * an SQE carries: without these it takes every received request for the
 * uninitialised contents of a fresh malloc() block, and it never checks what
 * busd sends. Compiled in only with -DBUS_VALGRIND (make valgrind, which has
 * the valgrind headers); otherwise they are nothing.
 */
#ifndef BUSD_VG_H
#define BUSD_VG_H

#ifdef BUS_VALGRIND
#include <valgrind/memcheck.h>
/* p is handed to the kernel to fill: what it held is gone. */
#define VG_KERNEL_FILLS(p, n)	((void)VALGRIND_MAKE_MEM_UNDEFINED((p), (n)))
/* The kernel wrote n bytes at p (a receive or read completed). */
#define VG_KERNEL_WROTE(p, n)	((void)VALGRIND_MAKE_MEM_DEFINED((p), (n)))
/* The kernel will read n bytes at p (a send or write): all must be set. */
#define VG_KERNEL_READS(p, n)	((void)VALGRIND_CHECK_MEM_IS_DEFINED((p), (n)))
#else
#define VG_KERNEL_FILLS(p, n)	((void)0)
#define VG_KERNEL_WROTE(p, n)	((void)0)
#define VG_KERNEL_READS(p, n)	((void)0)
#endif

#endif
