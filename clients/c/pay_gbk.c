/* HIS Bridge sample in C as a 32-bit (or 64-bit) Windows HIS calls it: the GBK entry points
 * (...A), no JSON built or parsed by hand (hisbridge_payA, hisbridge_getA).
 *   i686-w64-mingw32-dlltool -d hisbridge_client.def -l libhisbridge_client.a -k
 *   i686-w64-mingw32-gcc -I ../../crates/client/include pay_gbk.c libhisbridge_client.a -o pay_gbk.exe
 *   pay_gbk.exe KEYFILE PORT
 * The source is ASCII; the Chinese text is written as GBK bytes, as a program compiled for code
 * page 936 has it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "hisbridge.h"

#define GBK_OUTPATIENT "\xc3\xc5\xd5\xef\xbd\xc9\xb7\xd1" /* 门诊缴费 */
#define GBK_ZHANGSAN "\xd5\xc5\xc8\xfd"                   /* 张三 */
#define GBK_CANCELLED "\xbd\xbb\xd2\xd7\xd2\xd1\xc8\xa1\xcf\xfb" /* 交易已取消 */

static char rsp[4096];

/* One field of the last response (two buffers in turn: two fields in one printf). */
static const char *field(const char *name) {
    static char out[2][512];
    static int turn;
    char *o = out[turn ^= 1];
    if (hisbridge_getA(rsp, name, o, sizeof out[0]) != HB_OK) return "(get failed)";
    return o;
}

static int expect(int rc, int want_rc, const char *want_status, const char *what) {
    printf("%-30s rc=%d status=%s pay_order_no=%s\n", what, rc, field("status"), field("pay_order_no"));
    if (rc != want_rc || (want_status && strcmp(field("status"), want_status) != 0)) {
        fprintf(stderr, "FAILED: %s: rc %d (%s): %s\n", what, rc, hisbridge_strerror(rc), rsp);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    char order[32], slow[40];
    int bad = 0;
    if (argc != 3) {
        fprintf(stderr, "usage: %s KEYFILE PORT\n", argv[0]);
        return 2;
    }
    printf("pointer size %d bytes\n", (int)sizeof(void *));
    if (hisbridge_initA(argv[1], atoi(argv[2])) != HB_OK) {
        fprintf(stderr, "init failed\n");
        return 1;
    }
    snprintf(order, sizeof order, "G%ld%d", (long)time(NULL), (int)sizeof(void *));

    bad |= expect(hisbridge_payA("W01", order, NULL, "+12.30", GBK_OUTPATIENT, GBK_ZHANGSAN, rsp, sizeof rsp, 60000),
                  HB_OK, "SUCCESS", "collect +12.30 (GBK text)");
    bad |= expect(hisbridge_payA("W01", order, "R1", "-2.30", GBK_OUTPATIENT, GBK_ZHANGSAN, rsp, sizeof rsp, 60000),
                  HB_OK, "REFUNDED", "refund -2.30");
    bad |= expect(hisbridge_queryA("W01", order, NULL, rsp, sizeof rsp, 10000), HB_OK, "SUCCESS", "query");
    if (strcmp(field("amount"), "+12.30") != 0) {
        fprintf(stderr, "FAILED: amount %s\n", field("amount"));
        bad = 1;
    }

    /* The patient does not scan (the simulator's .94 rule): PENDING is not a failure; cancel. */
    snprintf(slow, sizeof slow, "%sS", order);
    bad |= expect(hisbridge_payA("W01", slow, NULL, "+5.94", GBK_OUTPATIENT, NULL, rsp, sizeof rsp, 1500),
                  HB_PENDING, "PROCESSING", "collect, patient away");
    bad |= expect(hisbridge_cancelA("W01", slow, NULL, rsp, sizeof rsp, 30000), HB_OK, "CANCELLED", "cancel");
    /* The Chinese reason comes back in GBK. */
    if (!strstr(field("error_message"), GBK_CANCELLED)) {
        fprintf(stderr, "FAILED: error_message is not GBK: %s\n", rsp);
        bad = 1;
    }
    /* Text that is not GBK is refused before anything is sent. */
    bad |= expect(hisbridge_payA("W01", "X1", NULL, "+1.00", "\x80\xff", NULL, rsp, sizeof rsp, 1000),
                  HB_ERR_ARGUMENT, NULL, "not GBK");
    puts(bad ? "pay_gbk: FAILED" : "pay_gbk: all ok");
    return bad;
}
