/* SPDX-License-Identifier: MIT */
/* addr.h — where a bus lives: its directory, its id, its names. */
#ifndef BUS_ADDR_H
#define BUS_ADDR_H

#include <stddef.h>

/* The per-user bus: $XDG_RUNTIME_DIR/bus, else /tmp/bus-UID. */
int addr_per_user(char *buf, size_t size);
/* $BUS_ADDRESS if set (and not empty), else the per-user bus. */
int addr_default(char *buf, size_t size);
/* A bus's id: 16 hex digits of FNV-1a-64 over its directory's real path. */
void addr_bus_id(const char *real_dir, char out[17]);

#endif
