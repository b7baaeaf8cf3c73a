/*
 * hisbridge.h: the HIS side of HIS Bridge, for HIS written in C, Delphi, PowerBuilder or C#.
 * Library: hisbridge_client.dll (Windows) / libhisbridge_client.so (Linux).
 *
 * One blocking call per instruction, like a MIS-POS bank DLL. The library encrypts (AES-256-GCM,
 * HB1 envelope), talks to HIS Bridge on 127.0.0.1:<port>, decrypts the answer and returns the
 * result JSON of docs/his-interface.md section 3.3. Strings are UTF-8, NUL-terminated; every
 * function taking or giving text has an ...A twin taking and giving GBK (code page 936, the ANSI
 * code page of a Chinese Windows), for PowerBuilder, Delphi and VB6 programs.
 * Two builds: x86\hisbridge_client.dll for 32-bit programs (functions are __stdcall, exported
 * undecorated; hisbridge_client.def makes a C import library) and x64\hisbridge_client.dll for
 * 64-bit ones. The full chapter, with declarations per language: docs/his-interface.md section 9.
 * All functions are thread-safe. `response` must be at least 4096 bytes (always enough); a
 * smaller or NULL buffer is refused with HB_ERR_BUFFER before anything is sent.
 *
 * When a call fails after the instruction was sent (HB_PENDING, HB_ERR_IO), the order may be
 * running or paid: never charge again and never send it under a new order number. Call
 * hisbridge_query for it (or send the same instruction again: it is idempotent) until a final
 * result comes.
 */
#ifndef HISBRIDGE_H
#define HISBRIDGE_H

#ifdef _WIN32
#define HB_API __declspec(dllimport)
#define HB_CALL __stdcall
#else
#define HB_API
#define HB_CALL
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define HB_OK 0                    /* a final result is in response */
#define HB_PENDING 1               /* no final result within timeout_ms: response holds the last
                                      state (PROCESSING/UNKNOWN). NOT a failure: never charge again;
                                      call hisbridge_query later */
#define HB_ERR_NOT_INITIALISED (-1)
#define HB_ERR_KEY (-2)            /* key file unreadable or invalid */
#define HB_ERR_CONNECT (-3)        /* HIS Bridge not listening on 127.0.0.1:port */
#define HB_ERR_REQUEST (-4)        /* request invalid (not JSON: E_FORMAT); nothing was sent;
                                      response holds {"error_code":..,"error":..} */
#define HB_ERR_BUFFER (-5)         /* response NULL or under 4096 bytes: nothing was sent */
#define HB_ERR_IO (-6)             /* connection broke: query the order */
#define HB_ERR_ARGUMENT (-7)
#define HB_ERR_INTERNAL (-8)

/* Once at start: the shared key file (key_id = "...", key = "<base64>") and the socket port. */
HB_API int HB_CALL hisbridge_init(const char *key_file, int port);
HB_API int HB_CALL hisbridge_initA(const char *key_file, int port);

/* An order, refund, query or cancel as JSON, e.g.
 *   {"type":"order","terminal_id":"W01","order_no":"202611260001","amount":"+12.50"}
 *   {"type":"order","terminal_id":"W01","order_no":"202611260001","refund_no":"R1","amount":"-3.00"}
 * ("v" and "sent_at" are added when missing). Waits up to timeout_ms for the final result. */
HB_API int HB_CALL hisbridge_trans(const char *request_json, char *response, int response_size, int timeout_ms);
HB_API int HB_CALL hisbridge_transA(const char *request_json, char *response, int response_size, int timeout_ms);

/* The same without JSON: a collection (amount "+12.50", refund_no NULL) or a refund (refund_no
 * "R1", amount "-3.00"); description and operator may be NULL. */
HB_API int HB_CALL hisbridge_pay(const char *terminal_id, const char *order_no, const char *refund_no,
                                 const char *amount, const char *description, const char *operator_name,
                                 char *response, int response_size, int timeout_ms);
HB_API int HB_CALL hisbridge_payA(const char *terminal_id, const char *order_no, const char *refund_no,
                                  const char *amount, const char *description, const char *operator_name,
                                  char *response, int response_size, int timeout_ms);

/* The order's result (refund_no may be NULL). */
HB_API int HB_CALL hisbridge_query(const char *terminal_id, const char *order_no, const char *refund_no,
                                   char *response, int response_size, int timeout_ms);
HB_API int HB_CALL hisbridge_queryA(const char *terminal_id, const char *order_no, const char *refund_no,
                                    char *response, int response_size, int timeout_ms);

/* Cancel an order that is not finished; waits for its final result. */
HB_API int HB_CALL hisbridge_cancel(const char *terminal_id, const char *order_no, const char *refund_no,
                                    char *response, int response_size, int timeout_ms);
HB_API int HB_CALL hisbridge_cancelA(const char *terminal_id, const char *order_no, const char *refund_no,
                                     char *response, int response_size, int timeout_ms);

/* One field of a response ("status", "pay_order_no", "error_message", ...) as text, for
 * languages without a JSON parser; an absent or null field gives "". HB_ERR_BUFFER if out is too
 * small. */
HB_API int HB_CALL hisbridge_get(const char *response_json, const char *name, char *out, int out_size);
HB_API int HB_CALL hisbridge_getA(const char *response_json, const char *name, char *out, int out_size);

/* A static English description of a return code. */
HB_API const char *HB_CALL hisbridge_strerror(int code);

#ifdef __cplusplus
}
#endif
#endif
