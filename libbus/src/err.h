/* SPDX-License-Identifier: MIT */
/* err.h — the thread-local detail behind a negative errno. Slow paths only. */
#ifndef BUS_ERR_H
#define BUS_ERR_H

#include <errno.h>

/* Record a one-line detail for bus_errmsg() and return -err (err > 0). */
int bus_err(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Forget the detail (a call that succeeded). */
void bus_err_clear(void);

#define BUS_EXPORT __attribute__((visibility("default")))

#endif
