/* Test aid for running Rust-built Windows programs under Wine 8, which has no
 * bcryptprimitives.dll: Rust's std imports ProcessPrng from it. Never shipped. */
#include <windows.h>
#include <ntsecapi.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    return RtlGenRandom(data, (ULONG)len);
}
