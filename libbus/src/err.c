/* SPDX-License-Identifier: MIT */
/* err.c — the thread-local detail behind a negative errno (bus_errmsg). */
#include <stdarg.h>
#include <stdio.h>

#include "bus.h"
#include "err.h"
#include "proto.h"

/* As large as the error text busd may send (PROTO_ERR_MAX): a message that
 * says what to do (a limit and how to raise it, a path) must not lose its
 * end on the way to the user. */
static _Thread_local char errbuf[PROTO_ERR_MAX];

int bus_err(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	va_end(ap);
	return -err;
}

void bus_err_clear(void)
{
	errbuf[0] = '\0';
}

BUS_EXPORT const char *bus_errmsg(void)
{
	return errbuf;
}

BUS_EXPORT const char *bus_version(void)
{
#define S2(x) #x
#define S(x) S2(x)
	return S(BUS_VERSION_MAJOR) "." S(BUS_VERSION_MINOR) "." S(BUS_VERSION_PATCH);
}
