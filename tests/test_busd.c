/* SPDX-License-Identifier: MIT */
/* test_busd.c — busd lifecycle, leases and cursors through libbus. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "bus.h"
#include "t_busd.h"
#include "t_util.h"

TestSuite(busd, .init = t_init, .fini = t_fini, .timeout = 60);

Test(busd, starts_serves_and_stops_cleanly)
{
	struct t_busd d;
	struct bus *b;

	cr_assert_eq(t_busd_start(&d, NULL), 0);
	cr_assert_eq(bus_connect(d.dir, &b), 0, "%s", bus_errmsg());
	cr_assert_eq(bus_ping(b), 0, "%s", bus_errmsg());
	bus_disconnect(b);
	cr_assert_eq(t_busd_stop(&d), 0);
	cr_assert_eq(t_count_files(d.dir, "busd.sock"), 0, "the socket is removed on SIGTERM");
	cr_assert_eq(bus_connect(d.dir, &b), -ENOENT);
	cr_assert(strstr(bus_errmsg(), "no busd is running"), "%s", bus_errmsg());
}
