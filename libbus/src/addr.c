/* SPDX-License-Identifier: MIT */
/* addr.c — bus directories, bus ids, and the name rule. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "err.h"
#include "proto.h"

static int put(char *buf, size_t size, const char *a, const char *b)
{
	int n = snprintf(buf, size, "%s%s", a, b);

	if (n < 0 || (size_t)n >= size)
		return bus_err(ENAMETOOLONG, "bus address '%s%s' is too long", a, b);
	return 0;
}

int addr_per_user(char *buf, size_t size)
{
	const char *x = getenv("XDG_RUNTIME_DIR");
	char tmp[64];

	if (x && *x == '/')
		return put(buf, size, x, "/bus");
	snprintf(tmp, sizeof(tmp), "/tmp/bus-%u", (unsigned)geteuid());
	return put(buf, size, tmp, "");
}

int addr_default(char *buf, size_t size)
{
	const char *a = getenv("BUS_ADDRESS");

	if (a && *a)
		return put(buf, size, a, "");
	return addr_per_user(buf, size);
}

void addr_bus_id(const char *real_dir, char out[17])
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (const unsigned char *p = (const unsigned char *)real_dir; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ull;
	}
	snprintf(out, 17, "%016llx", (unsigned long long)h);
}

int proto_name_check(const char *s, uint32_t len, const char *what)
{
	if (len == 0)
		return bus_err(EINVAL, "%s name is empty", what);
	if (len > PROTO_NAME_MAX)
		return bus_err(EINVAL, "%s name is %u bytes; at most %u are allowed", what, len,
			       PROTO_NAME_MAX);
	if (s[0] == '.')
		return bus_err(EINVAL, "%s name '%.*s' starts with a dot; names are "
			       "[A-Za-z0-9._-] with no leading dot and no '..'", what, (int)len, s);
	for (uint32_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '_' || c == '-')
			continue;
		if (c == '.') {
			if (i + 1 < len && s[i + 1] == '.')
				return bus_err(EINVAL, "%s name '%.*s' contains '..'; names are "
					       "[A-Za-z0-9._-] with no leading dot and no '..'",
					       what, (int)len, s);
			continue;
		}
		if (c >= 0x20 && c < 0x7f)
			return bus_err(EINVAL, "%s name '%.*s' contains '%c'; names are "
				       "[A-Za-z0-9._-] with no leading dot and no '..'", what,
				       (int)len, s, c);
		return bus_err(EINVAL, "%s name contains byte 0x%02x at offset %u; names are "
			       "[A-Za-z0-9._-] with no leading dot and no '..'", what, c, i);
	}
	return 0;
}
