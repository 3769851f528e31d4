/* SPDX-License-Identifier: MIT */
/* crc32c.h — CRC-32C (Castagnoli), as used by iSCSI, ext4 and SCTP. */
#ifndef BUS_CRC32C_H
#define BUS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC: crc32c(0, ...) starts one; feed the result back in to
 * extend it over more bytes. crc32c(0, "123456789", 9) == 0xe3069283. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

#endif
