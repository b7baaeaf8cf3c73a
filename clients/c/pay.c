/* HIS Bridge sample in C over the C ABI library (hisbridge.h): the calls an HIS makes.
 *   cc -I ../../crates/client/include pay.c -L <dir of the library> -lhisbridge_client -o pay
 *   ./pay KEYFILE PORT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "hisbridge.h"

static char rsp[4096];

static int expect(int rc, int want_rc, const char *want_status, const char *what) {
    printf("%-34s rc=%d %s\n", what, rc, rsp);
    if (rc != want_rc || (want_status && !strstr(rsp, want_status))) {
        fprintf(stderr, "FAILED: %s: %s\n", what, hisbridge_strerror(rc));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    char req[512], order[32], slow[40];
    int bad = 0;
    if (argc != 3) {
        fprintf(stderr, "usage: %s KEYFILE PORT\n", argv[0]);
        return 2;
    }
    if (hisbridge_init(argv[1], atoi(argv[2])) != HB_OK) {
        fprintf(stderr, "init failed\n");
        return 1;
    }
    snprintf(order, sizeof order, "C%ld", (long)time(NULL));

    snprintf(req, sizeof req, "{\"type\":\"order\",\"terminal_id\":\"W01\",\"order_no\":\"%s\",\"amount\":\"+12.30\"}", order);
    bad |= expect(hisbridge_trans(req, rsp, sizeof rsp, 60000), HB_OK, "\"SUCCESS\"", "collect +12.30");

    snprintf(req, sizeof req, "{\"type\":\"order\",\"terminal_id\":\"W01\",\"order_no\":\"%s\",\"refund_no\":\"R1\",\"amount\":\"-2.30\"}", order);
    bad |= expect(hisbridge_trans(req, rsp, sizeof rsp, 60000), HB_OK, "\"REFUNDED\"", "refund -2.30");

    bad |= expect(hisbridge_query("W01", order, NULL, rsp, sizeof rsp, 10000), HB_OK, "\"SUCCESS\"", "query");

    /* The patient does not scan (the simulator's .94 rule): the call returns PENDING, which is
     * not a failure; the cashier cancels. */
    snprintf(slow, sizeof slow, "%sS", order);
    snprintf(req, sizeof req, "{\"type\":\"order\",\"terminal_id\":\"W01\",\"order_no\":\"%s\",\"amount\":\"+5.94\"}", slow);
    bad |= expect(hisbridge_trans(req, rsp, sizeof rsp, 1500), HB_PENDING, "\"PROCESSING\"", "collect, patient away");
    bad |= expect(hisbridge_cancel("W01", slow, NULL, rsp, sizeof rsp, 30000), HB_OK, "\"CANCELLED\"", "cancel");

    bad |= expect(hisbridge_trans("{\"type\":\"order\",\"terminal_id\":\"W01\",\"order_no\":\"X\",\"amount\":\"12\"}",
                                  rsp, sizeof rsp, 1000), HB_ERR_REQUEST, "E_AMOUNT", "bad amount");
    puts(bad ? "c sample: FAILED" : "c sample: ok");
    return bad;
}
