//! The C ABI, declared in `include/hisbridge.h`. Every function is blocking, thread-safe, and
//! never lets a panic cross into the caller.

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

unsafe fn text<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the caller passes a NUL-terminated string (hisbridge.h).
    unsafe { CStr::from_ptr(p) }.to_str().ok()
}

unsafe fn put(out: *mut c_char, size: c_int, s: &str) -> bool {
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

/// Loads the shared key file and remembers the bridge's socket port.
///
/// # Safety
/// `key_file` must be a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn hisbridge_init(key_file: *const c_char, port: c_int) -> c_int {
    guard(|| {
        // SAFETY: as documented above.
        let Some(path) = (unsafe { text(key_file) }) else { return HB_ERR_ARGUMENT };
        if !(1..=65535).contains(&port) {
            return HB_ERR_ARGUMENT;
        }
        match hisbridge_message::keyfile::load(std::path::Path::new(path)) {
            Ok(k) => {
                *STATE.lock().unwrap_or_else(|e| e.into_inner()) = Some((k, port as u16));
                HB_OK
            }
            Err(_) => HB_ERR_KEY,
        }
    })
}

fn run(ins: &Instruction, response: *mut c_char, size: c_int, timeout_ms: c_int) -> c_int {
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
                    return if unsafe { put(response, size, &last) } { HB_OK } else { HB_ERR_BUFFER };
                }
            }
            Ok(None) => break,
            Err(_) => return HB_ERR_IO,
        }
    }
    // SAFETY: as above.
    if unsafe { put(response, size, &last) } {
        HB_PENDING
    } else {
        HB_ERR_BUFFER
    }
}

/// Sends one instruction (order, refund, query or cancel) as the JSON of docs/his-interface.md
/// §3.1, without `sent_at` (added here), and waits up to `timeout_ms` for its final result, which
/// is written to `response` as JSON (§3.3).
///
/// # Safety
/// `request_json` must be NUL-terminated; `response` must have room for `response_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn hisbridge_trans(
    request_json: *const c_char,
    response: *mut c_char,
    response_size: c_int,
    timeout_ms: c_int,
) -> c_int {
    guard(|| {
        // SAFETY: as documented above.
        let Some(req) = (unsafe { text(request_json) }) else { return HB_ERR_ARGUMENT };
        if response.is_null() || response_size < MIN_RESPONSE {
            return HB_ERR_BUFFER;
        }
        let mut v: serde_json::Value = match serde_json::from_str(req) {
            Ok(v) => v,
            Err(e) => {
                let msg = format!("{{\"error_code\":\"E_FORMAT\",\"error\":{:?}}}", e.to_string());
                // SAFETY: as documented above.
                unsafe { put(response, response_size, &msg) };
                return HB_ERR_REQUEST;
            }
        };
        if let Some(m) = v.as_object_mut() {
            m.entry("v").or_insert(1.into());
            m.entry("sent_at").or_insert(chrono::Local::now().to_rfc3339().into());
        }
        match Instruction::parse(v.to_string().as_bytes()) {
            Ok(ins) => run(&ins, response, response_size, timeout_ms),
            Err(e) => {
                let msg = format!("{{\"error_code\":{:?},\"error\":{:?}}}", e.code().as_str(), e.to_string());
                // SAFETY: as documented above.
                unsafe { put(response, response_size, &msg) };
                HB_ERR_REQUEST
            }
        }
    })
}

unsafe fn ask(
    kind: InstructionKind,
    terminal_id: *const c_char,
    order_no: *const c_char,
    refund_no: *const c_char,
    response: *mut c_char,
    size: c_int,
    timeout_ms: c_int,
) -> c_int {
    // SAFETY: the caller passes NUL-terminated strings or NULL for refund_no.
    let (Some(t), Some(o)) = (unsafe { text(terminal_id) }, unsafe { text(order_no) }) else {
        return HB_ERR_ARGUMENT;
    };
    let r = unsafe { text(refund_no) }.filter(|s| !s.is_empty());
    let mut v = serde_json::json!({"v": 1, "type": if kind == InstructionKind::Query { "query" } else { "cancel" },
        "terminal_id": t, "order_no": o, "sent_at": chrono::Local::now().to_rfc3339()});
    if let Some(r) = r {
        v["refund_no"] = r.into();
    }
    match Instruction::parse(v.to_string().as_bytes()) {
        Ok(ins) => run(&ins, response, size, timeout_ms),
        Err(_) => HB_ERR_REQUEST,
    }
}

/// The current (or, within `timeout_ms`, final) result of an order.
///
/// # Safety
/// Strings NUL-terminated (`refund_no` may be NULL); `response` has room for `response_size`.
#[no_mangle]
pub unsafe extern "C" fn hisbridge_query(
    terminal_id: *const c_char,
    order_no: *const c_char,
    refund_no: *const c_char,
    response: *mut c_char,
    response_size: c_int,
    timeout_ms: c_int,
) -> c_int {
    // SAFETY: forwarded as documented.
    guard(|| unsafe {
        ask(InstructionKind::Query, terminal_id, order_no, refund_no, response, response_size, timeout_ms)
    })
}

/// Cancels an order that is not finished and waits for its final result.
///
/// # Safety
/// As for [`hisbridge_query`].
#[no_mangle]
pub unsafe extern "C" fn hisbridge_cancel(
    terminal_id: *const c_char,
    order_no: *const c_char,
    refund_no: *const c_char,
    response: *mut c_char,
    response_size: c_int,
    timeout_ms: c_int,
) -> c_int {
    // SAFETY: forwarded as documented.
    guard(|| unsafe {
        ask(InstructionKind::Cancel, terminal_id, order_no, refund_no, response, response_size, timeout_ms)
    })
}

/// A static description of a return code.
#[no_mangle]
pub extern "C" fn hisbridge_strerror(code: c_int) -> *const c_char {
    let s: &'static CStr = match code {
        HB_OK => c"final result in response",
        HB_PENDING => c"no final result yet: do NOT charge again; query the order later",
        HB_ERR_NOT_INITIALISED => c"hisbridge_init was not called",
        HB_ERR_KEY => c"the key file cannot be read or is not valid",
        HB_ERR_CONNECT => c"cannot connect to HIS Bridge on 127.0.0.1 (is it running, is the port right?)",
        HB_ERR_REQUEST => c"the request is not valid; response holds the reason",
        HB_ERR_BUFFER => c"the response buffer is NULL or smaller than 4096 bytes; nothing was sent",
        HB_ERR_IO => c"the connection to HIS Bridge broke; query the order",
        HB_ERR_ARGUMENT => c"a NULL or invalid argument",
        _ => c"internal error",
    };
    s.as_ptr()
}
