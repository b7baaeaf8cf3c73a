//! The C ABI, declared in `include/hisbridge.h`. Every function is blocking, thread-safe, and
//! never lets a panic cross into the caller.
//!
//! Calling convention: `extern "system"`, which is `__stdcall` on 32-bit Windows (what
//! PowerBuilder, Delphi, VB6 and .NET's `DllImport` expect by default; exported undecorated) and
//! the one C convention everywhere else (64-bit Windows, Linux). Strings are UTF-8; each entry
//! point taking or giving text has an `...A` twin for GBK (code page 936), the ANSI code page of a
//! Chinese Windows.

use std::ffi::{c_char, c_int, CStr};
use std::panic::catch_unwind;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hisbridge_message::envelope::Key;
use hisbridge_message::his::{Instruction, InstructionKind};

use crate::SocketClient;

/// A final result is in `response`.
pub const HB_OK: c_int = 0;
/// No final result within the time-out: `response` holds the last state seen (PROCESSING or
/// UNKNOWN) or is empty. The order is NOT failed: never charge again; query it later.
pub const HB_PENDING: c_int = 1;
pub const HB_ERR_NOT_INITIALISED: c_int = -1;
pub const HB_ERR_KEY: c_int = -2;
pub const HB_ERR_CONNECT: c_int = -3;
pub const HB_ERR_REQUEST: c_int = -4;
pub const HB_ERR_BUFFER: c_int = -5;
pub const HB_ERR_IO: c_int = -6;
pub const HB_ERR_ARGUMENT: c_int = -7;
pub const HB_ERR_INTERNAL: c_int = -8;

static STATE: Mutex<Option<(Key, u16)>> = Mutex::new(None);

/// The smallest response buffer taken: every result fits in it. Checked before anything is
/// sent, so a call refused for its buffer never reached the POS.
pub const MIN_RESPONSE: c_int = 4096;

/// The strings of one call, in the caller's encoding.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Enc {
    Utf8,
    Gbk,
}

unsafe fn text(p: *const c_char, enc: Enc) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the caller passes a NUL-terminated string (hisbridge.h).
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    match enc {
        Enc::Utf8 => std::str::from_utf8(bytes).ok().map(str::to_string),
        Enc::Gbk => encoding_rs::GBK.decode_without_bom_handling_and_without_replacement(bytes).map(|c| c.into_owned()),
    }
}

/// `s` (JSON or plain text) in the caller's encoding. For GBK, a character GBK lacks is written as
/// a JSON `\uXXXX` escape, which only occurs inside JSON strings here.
fn encoded(s: &str, enc: Enc) -> Vec<u8> {
    match enc {
        Enc::Utf8 => s.as_bytes().to_vec(),
        Enc::Gbk => {
            let mut out = Vec::with_capacity(s.len());
            let mut buf = [0u8; 4];
            for ch in s.chars() {
                if ch.is_ascii() {
                    out.push(ch as u8);
                    continue;
                }
                let (bytes, _, unmappable) = encoding_rs::GBK.encode(ch.encode_utf8(&mut buf));
                if unmappable {
                    let mut units = [0u16; 2];
                    for u in ch.encode_utf16(&mut units) {
                        out.extend_from_slice(format!("\\u{u:04x}").as_bytes());
                    }
                } else {
                    out.extend_from_slice(&bytes);
                }
            }
            out
        }
    }
}

unsafe fn put_enc(out: *mut c_char, size: c_int, s: &str, enc: Enc) -> bool {
    let bytes = encoded(s, enc);
    let s = bytes.as_slice();
    if out.is_null() || size <= 0 || s.len() + 1 > size as usize {
        if !out.is_null() && size > 0 {
            // SAFETY: `out` has room for at least one byte.
            unsafe { *out = 0 };
        }
        return false;
    }
    // SAFETY: `out` has room for `size` bytes, checked above.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), out as *mut u8, s.len());
        *out.add(s.len()) = 0;
    }
    true
}

fn guard(f: impl FnOnce() -> c_int + std::panic::UnwindSafe) -> c_int {
    catch_unwind(f).unwrap_or(HB_ERR_INTERNAL)
}

unsafe fn init(key_file: *const c_char, port: c_int, enc: Enc) -> c_int {
    // SAFETY: as documented on the entry points.
    let Some(path) = (unsafe { text(key_file, enc) }) else { return HB_ERR_ARGUMENT };
    if !(1..=65535).contains(&port) {
        return HB_ERR_ARGUMENT;
    }
    match hisbridge_message::keyfile::load(std::path::Path::new(&path)) {
        Ok(k) => {
            *STATE.lock().unwrap_or_else(|e| e.into_inner()) = Some((k, port as u16));
            HB_OK
        }
        Err(_) => HB_ERR_KEY,
    }
}

/// Loads the shared key file and remembers the bridge's socket port.
///
/// # Safety
/// `key_file` must be a NUL-terminated string.
#[no_mangle]
pub unsafe extern "system" fn hisbridge_init(key_file: *const c_char, port: c_int) -> c_int {
    // SAFETY: forwarded as documented.
    guard(|| unsafe { init(key_file, port, Enc::Utf8) })
}

/// [`hisbridge_init`] with the path in GBK.
///
/// # Safety
/// As for [`hisbridge_init`].
#[no_mangle]
pub unsafe extern "system" fn hisbridge_initA(key_file: *const c_char, port: c_int) -> c_int {
    // SAFETY: forwarded as documented.
    guard(|| unsafe { init(key_file, port, Enc::Gbk) })
}

fn run(ins: &Instruction, response: *mut c_char, size: c_int, timeout_ms: c_int, enc: Enc) -> c_int {
    if response.is_null() || size < MIN_RESPONSE {
        return HB_ERR_BUFFER;
    }
    let Some((key, port)) = STATE.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
        return HB_ERR_NOT_INITIALISED;
    };
    let Ok(mut client) = SocketClient::connect(port, key) else { return HB_ERR_CONNECT };
    if client.send(ins).is_err() {
        return HB_ERR_IO;
    }
    let timeout = Duration::from_millis(timeout_ms.max(1) as u64);
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < timeout {
        let left = timeout.saturating_sub(start.elapsed()).max(Duration::from_millis(1));
        match client.next(left) {
            Ok(Some(r)) => {
                let mine = r.order_no.as_deref() == Some(ins.order_no.as_str()) && r.refund_no == ins.refund_no;
                if r.order_no.is_some() && !mine {
                    continue;
                }
                last = r.to_json();
                if r.status.is_final() {
                    // SAFETY: the caller's buffer of `size` bytes (hisbridge.h).
                    return if unsafe { put_enc(response, size, &last, enc) } { HB_OK } else { HB_ERR_BUFFER };
                }
            }
            Ok(None) => break,
            Err(_) => return HB_ERR_IO,
        }
    }
    // SAFETY: as above.
    if unsafe { put_enc(response, size, &last, enc) } {
        HB_PENDING
    } else {
        HB_ERR_BUFFER
    }
}

/// Parses, completes (`v`, `sent_at`) and sends an instruction given as JSON.
unsafe fn trans(request: Option<String>, response: *mut c_char, size: c_int, timeout_ms: c_int, enc: Enc) -> c_int {
    let Some(req) = request else { return HB_ERR_ARGUMENT };
    if response.is_null() || size < MIN_RESPONSE {
        return HB_ERR_BUFFER;
    }
    let refuse = |code: &str, why: String| {
        let msg = serde_json::json!({ "error_code": code, "error": why }).to_string();
        // SAFETY: the caller's buffer, checked above.
        unsafe { put_enc(response, size, &msg, enc) };
        HB_ERR_REQUEST
    };
    let mut v: serde_json::Value = match serde_json::from_str(&req) {
        Ok(v) => v,
        Err(e) => return refuse("E_FORMAT", e.to_string()),
    };
    if let Some(m) = v.as_object_mut() {
        m.entry("v").or_insert(1.into());
        m.entry("sent_at").or_insert(chrono::Local::now().to_rfc3339().into());
    }
    match Instruction::parse(v.to_string().as_bytes()) {
        Ok(ins) => run(&ins, response, size, timeout_ms, enc),
        Err(e) => refuse(e.code().as_str(), e.to_string()),
    }
}

/// Sends one instruction (order, refund, query or cancel) as the JSON of docs/his-interface.md
/// §3.1, without `sent_at` (added here), and waits up to `timeout_ms` for its final result, which
/// is written to `response` as JSON (§3.3).
///
/// # Safety
/// `request_json` must be NUL-terminated; `response` must have room for `response_size` bytes.
#[no_mangle]
pub unsafe extern "system" fn hisbridge_trans(
    request_json: *const c_char,
    response: *mut c_char,
    response_size: c_int,
    timeout_ms: c_int,
) -> c_int {
    // SAFETY: forwarded as documented.
    guard(|| unsafe { trans(text(request_json, Enc::Utf8), response, response_size, timeout_ms, Enc::Utf8) })
}

/// [`hisbridge_trans`] with the request and the response in GBK.
///
/// # Safety
/// As for [`hisbridge_trans`].
#[no_mangle]
pub unsafe extern "system" fn hisbridge_transA(
    request_json: *const c_char,
    response: *mut c_char,
    response_size: c_int,
    timeout_ms: c_int,
) -> c_int {
    // SAFETY: forwarded as documented.
    guard(|| unsafe { trans(text(request_json, Enc::Gbk), response, response_size, timeout_ms, Enc::Gbk) })
}

/// A text argument that may be NULL or empty (left out of the instruction).
unsafe fn opt(p: *const c_char, enc: Enc) -> Result<Option<String>, ()> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded.
    match unsafe { text(p, enc) } {
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => Ok(Some(s)),
        None => Err(()),
    }
}

#[allow(clippy::too_many_arguments)]
unsafe fn pay(
    terminal_id: *const c_char,
    order_no: *const c_char,
    refund_no: *const c_char,
    amount: *const c_char,
    description: *const c_char,
    operator: *const c_char,
    response: *mut c_char,
    size: c_int,
    timeout_ms: c_int,
    enc: Enc,
) -> c_int {
    // SAFETY: the caller passes NUL-terminated strings, or NULL where hisbridge.h allows it.
    let fields = unsafe {
        (
            text(terminal_id, enc),
            text(order_no, enc),
            opt(refund_no, enc),
            text(amount, enc),
            opt(description, enc),
            opt(operator, enc),
        )
    };
    let (Some(t), Some(o), Ok(r), Some(a), Ok(d), Ok(op)) = fields else { return HB_ERR_ARGUMENT };
    let mut v = serde_json::json!({ "v": 1, "type": "order", "terminal_id": t, "order_no": o, "amount": a });
    for (k, val) in [("refund_no", r), ("description", d), ("operator", op)] {
        if let Some(val) = val {
            v[k] = val.into();
        }
    }
    // SAFETY: forwarded.
    unsafe { trans(Some(v.to_string()), response, size, timeout_ms, enc) }
}

/// A collection (`amount` "+12.50") or, with `refund_no`, a refund ("-3.00"), without building
/// JSON: `description` and `operator` may be NULL. Waits for the final result as
/// [`hisbridge_trans`] does.
///
/// # Safety
/// Strings NUL-terminated (`refund_no`, `description`, `operator` may be NULL); `response` has
/// room for `response_size` bytes.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "system" fn hisbridge_pay(
    terminal_id: *const c_char,
    order_no: *const c_char,
    refund_no: *const c_char,
    amount: *const c_char,
    description: *const c_char,
    operator: *const c_char,
    response: *mut c_char,
    response_size: c_int,
    timeout_ms: c_int,
) -> c_int {
    // SAFETY: forwarded as documented.
    guard(|| unsafe {
        pay(
            terminal_id,
            order_no,
            refund_no,
            amount,
            description,
            operator,
            response,
            response_size,
            timeout_ms,
            Enc::Utf8,
        )
    })
}

/// [`hisbridge_pay`] with every string, and the response, in GBK.
///
/// # Safety
/// As for [`hisbridge_pay`].
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "system" fn hisbridge_payA(
    terminal_id: *const c_char,
    order_no: *const c_char,
    refund_no: *const c_char,
    amount: *const c_char,
    description: *const c_char,
    operator: *const c_char,
    response: *mut c_char,
    response_size: c_int,
    timeout_ms: c_int,
) -> c_int {
    // SAFETY: forwarded as documented.
    guard(|| unsafe {
        pay(
            terminal_id,
            order_no,
            refund_no,
            amount,
            description,
            operator,
            response,
            response_size,
            timeout_ms,
            Enc::Gbk,
        )
    })
}

#[allow(clippy::too_many_arguments)]
unsafe fn ask(
    kind: InstructionKind,
    terminal_id: *const c_char,
    order_no: *const c_char,
    refund_no: *const c_char,
    response: *mut c_char,
    size: c_int,
    timeout_ms: c_int,
    enc: Enc,
) -> c_int {
    // SAFETY: the caller passes NUL-terminated strings or NULL for refund_no.
    let (Some(t), Some(o), Ok(r)) =
        (unsafe { text(terminal_id, enc) }, unsafe { text(order_no, enc) }, unsafe { opt(refund_no, enc) })
    else {
        return HB_ERR_ARGUMENT;
    };
    let mut v = serde_json::json!({"v": 1, "type": if kind == InstructionKind::Query { "query" } else { "cancel" },
        "terminal_id": t, "order_no": o});
    if let Some(r) = r {
        v["refund_no"] = r.into();
    }
    // SAFETY: forwarded.
    unsafe { trans(Some(v.to_string()), response, size, timeout_ms, enc) }
}

/// The current (or, within `timeout_ms`, final) result of an order.
///
/// # Safety
/// Strings NUL-terminated (`refund_no` may be NULL); `response` has room for `response_size`.
#[no_mangle]
pub unsafe extern "system" fn hisbridge_query(
    terminal_id: *const c_char,
    order_no: *const c_char,
    refund_no: *const c_char,
    response: *mut c_char,
    response_size: c_int,
    timeout_ms: c_int,
) -> c_int {
    // SAFETY: forwarded as documented.
    guard(|| unsafe {
        ask(InstructionKind::Query, terminal_id, order_no, refund_no, response, response_size, timeout_ms, Enc::Utf8)
    })
}

/// [`hisbridge_query`] in GBK.
///
/// # Safety
/// As for [`hisbridge_query`].
#[no_mangle]
pub unsafe extern "system" fn hisbridge_queryA(
    terminal_id: *const c_char,
    order_no: *const c_char,
    refund_no: *const c_char,
    response: *mut c_char,
    response_size: c_int,
    timeout_ms: c_int,
) -> c_int {
    // SAFETY: forwarded as documented.
    guard(|| unsafe {
        ask(InstructionKind::Query, terminal_id, order_no, refund_no, response, response_size, timeout_ms, Enc::Gbk)
    })
}

/// Cancels an order that is not finished and waits for its final result.
///
/// # Safety
/// As for [`hisbridge_query`].
#[no_mangle]
pub unsafe extern "system" fn hisbridge_cancel(
    terminal_id: *const c_char,
    order_no: *const c_char,
    refund_no: *const c_char,
    response: *mut c_char,
    response_size: c_int,
    timeout_ms: c_int,
) -> c_int {
    // SAFETY: forwarded as documented.
    guard(|| unsafe {
        ask(InstructionKind::Cancel, terminal_id, order_no, refund_no, response, response_size, timeout_ms, Enc::Utf8)
    })
}

/// [`hisbridge_cancel`] in GBK.
///
/// # Safety
/// As for [`hisbridge_query`].
#[no_mangle]
pub unsafe extern "system" fn hisbridge_cancelA(
    terminal_id: *const c_char,
    order_no: *const c_char,
    refund_no: *const c_char,
    response: *mut c_char,
    response_size: c_int,
    timeout_ms: c_int,
) -> c_int {
    // SAFETY: forwarded as documented.
    guard(|| unsafe {
        ask(InstructionKind::Cancel, terminal_id, order_no, refund_no, response, response_size, timeout_ms, Enc::Gbk)
    })
}

unsafe fn get(json: *const c_char, name: *const c_char, out: *mut c_char, size: c_int, enc: Enc) -> c_int {
    // SAFETY: NUL-terminated strings (hisbridge.h).
    let (Some(json), Some(name)) = (unsafe { text(json, enc) }, unsafe { text(name, enc) }) else {
        return HB_ERR_ARGUMENT;
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&json) else { return HB_ERR_ARGUMENT };
    let value = match v.get(&name) {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    // SAFETY: the caller's buffer of `size` bytes.
    if unsafe { put_enc(out, size, &value, enc) } {
        HB_OK
    } else {
        HB_ERR_BUFFER
    }
}

/// Copies one field of a result (`status`, `pay_order_no`, `error_message`, ...) into `out` as
/// text, for languages without a JSON parser: an absent or null field gives an empty string.
///
/// # Safety
/// `response_json` and `name` NUL-terminated; `out` has room for `out_size` bytes.
#[no_mangle]
pub unsafe extern "system" fn hisbridge_get(
    response_json: *const c_char,
    name: *const c_char,
    out: *mut c_char,
    out_size: c_int,
) -> c_int {
    // SAFETY: forwarded as documented.
    guard(|| unsafe { get(response_json, name, out, out_size, Enc::Utf8) })
}

/// [`hisbridge_get`] in GBK (the response of an `...A` call).
///
/// # Safety
/// As for [`hisbridge_get`].
#[no_mangle]
pub unsafe extern "system" fn hisbridge_getA(
    response_json: *const c_char,
    name: *const c_char,
    out: *mut c_char,
    out_size: c_int,
) -> c_int {
    // SAFETY: forwarded as documented.
    guard(|| unsafe { get(response_json, name, out, out_size, Enc::Gbk) })
}

/// A static description of a return code (ASCII: the same in UTF-8 and GBK).
#[no_mangle]
pub extern "system" fn hisbridge_strerror(code: c_int) -> *const c_char {
    let s: &'static CStr = match code {
        HB_OK => c"final result in response",
        HB_PENDING => c"no final result yet: do NOT charge again; query the order later",
        HB_ERR_NOT_INITIALISED => c"hisbridge_init was not called",
        HB_ERR_KEY => c"the key file cannot be read or is not valid",
        HB_ERR_CONNECT => c"cannot connect to HIS Bridge on 127.0.0.1 (is it running, is the port right?)",
        HB_ERR_REQUEST => c"the request is not valid; response holds the reason",
        HB_ERR_BUFFER => c"the response buffer is NULL or too small (4096 bytes for a result); nothing was sent",
        HB_ERR_IO => c"the connection to HIS Bridge broke; query the order",
        HB_ERR_ARGUMENT => c"a NULL or invalid argument (or text not in the function's encoding)",
        _ => c"internal error",
    };
    s.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gbk_in_and_out() {
        let gbk = encoding_rs::GBK.encode("门诊缴费").0.into_owned();
        let mut z = gbk.clone();
        z.push(0);
        // SAFETY: a NUL-terminated buffer.
        assert_eq!(unsafe { text(z.as_ptr() as *const c_char, Enc::Gbk) }.as_deref(), Some("门诊缴费"));
        assert_eq!(encoded("{\"a\":\"门诊\"}", Enc::Gbk), [b"{\"a\":\"".as_slice(), &gbk[..4], b"\"}"].concat());
        // A character GBK lacks becomes a JSON escape; the JSON still reads back the same.
        let out = encoded("{\"a\":\"x😀\"}", Enc::Gbk);
        let back: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(back["a"], "x😀");
    }

    #[test]
    fn get_copies_one_field_as_text() {
        let json = c"{\"status\":\"SUCCESS\",\"amount\":\"+1.00\",\"n\":3,\"error_code\":null}";
        let mut out = [0 as c_char; 32];
        for (name, want) in [(c"status", "SUCCESS"), (c"n", "3"), (c"error_code", ""), (c"missing", "")] {
            // SAFETY: NUL-terminated strings and a 32-byte buffer.
            let rc = unsafe { hisbridge_get(json.as_ptr(), name.as_ptr(), out.as_mut_ptr(), 32) };
            assert_eq!(rc, HB_OK);
            // SAFETY: written NUL-terminated above.
            assert_eq!(unsafe { CStr::from_ptr(out.as_ptr()) }.to_str().unwrap(), want);
        }
        // SAFETY: as above, with a buffer too small.
        assert_eq!(unsafe { hisbridge_get(json.as_ptr(), c"status".as_ptr(), out.as_mut_ptr(), 4) }, HB_ERR_BUFFER);
    }
}
