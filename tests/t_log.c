/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "t_log.h"
#include "t_util.h"

int t_file_read(const char *path, uint8_t **buf, size_t *len)
{
	struct stat st;
	size_t done = 0;
	uint8_t *b;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*buf = NULL;
	*len = 0;
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !(b = malloc((size_t)st.st_size + 1))) {
		int e = errno ? errno : ENOMEM;

		close(fd);
		return -e;
	}
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, b + done, (size_t)st.st_size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	close(fd);
	b[done] = 0;
	*buf = b;
	*len = done;
	return 0;
}

int t_file_write(const char *path, const void *buf, size_t len)
{
	size_t done = 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0)
		return -errno;
	while (done < len) {
		ssize_t n = write(fd, (const uint8_t *)buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : ENOSPC;

			close(fd);
			return -e;
		}
		done += (size_t)n;
	}
	return close(fd) < 0 ? -errno : 0;
}

int t_file_count(const char *path, const char *needle)
{
	uint8_t *buf;
	size_t len;
	int n = 0;

	if (t_file_read(path, &buf, &len) < 0)
		return 0;
	for (const char *p = (const char *)buf; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	free(buf);
	return n;
}

int t_file_wait_count(const char *path, const char *needle, int n, int timeout_ms)
{
	uint64_t end = t_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	int c;

	while ((c = t_file_count(path, needle)) < n && t_now_ns() < end)
		t_nap_us(5000);
	return c;
}

uint32_t t_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
	}
	return ~crc;
}

uint64_t t_rec_size(uint32_t len)
{
	return (24ull + len + 7) & ~7ull;  /* u32 len, u32 type, u64 seq, u64 ts; pad to 8 */
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int t_log_chunks(const uint8_t *buf, size_t len, struct t_chunk *out, int max)
{
	uint64_t off = 64;  /* the file header */
	int n = 0;

	while (off < len) {
		const uint8_t *h = buf + off;
		uint64_t clen;

		/* magic "CHNK" at 0, count at 8, first_seq at 16, len at 40 */
		if (len - off < 64 || le32(h) != 0x4b4e4843u)
			return -1;
		clen = le64(h + 40);
		if (clen % 8 || clen > len - off - 64)
			return -1;
		if (n < max)
			out[n] = (struct t_chunk){ off, off + 64 + clen, le64(h + 16), le32(h + 8) };
		n++;
		off += 64 + clen;
	}
	return n;
}

void t_seg_name(char *buf, size_t size, uint64_t first_seq)
{
	snprintf(buf, size, "%020llu.log", (unsigned long long)first_seq);
}
