//! HIS messages inside the envelope (docs/his-interface.md §3): instructions in, results out.

use serde::{Deserialize, Serialize};

use crate::amount::{Amount, AmountError};

/// Longest order or refund number (WeChat Pay's out_trade_no is at most 32 characters).
pub const MAX_NO_LEN: usize = 32;

/// Why an instruction was refused. Each maps to one stable error code for the HIS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstructionError {
    #[error("message is not UTF-8 JSON: {0}")]
    Json(String),
    #[error("unsupported message version {0} (expected 1)")]
    Version(u64),
    #[error("unknown message type {0:?} (expected order, query or cancel)")]
    Type(String),
    #[error("field {0} is missing")]
    Missing(&'static str),
    #[error("field {field} is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("amount {value:?} is invalid: {error}")]
    Amount { value: String, error: AmountError },
    #[error("a refund (negative amount) needs refund_no")]
    RefundWithoutNumber,
    #[error("refund_no is only allowed with a negative amount")]
    RefundNumberOnCollection,
}

impl InstructionError {
    pub fn code(&self) -> ErrorCode {
        match self {
            InstructionError::Amount { .. } => ErrorCode::Amount,
            InstructionError::Json(_) | InstructionError::Version(_) | InstructionError::Type(_) => ErrorCode::Format,
            _ => ErrorCode::Field,
        }
    }
}

/// What the HIS asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstructionKind {
    /// Collect (amount > 0) or refund (amount < 0).
    Order,
    /// Send back the current result of an order.
    Query,
    /// Cancel an order that is not finished.
    Cancel,
}

/// A validated HIS instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub kind: InstructionKind,
    pub terminal_id: String,
    pub order_no: String,
    pub refund_no: Option<String>,
    /// Present for `Order` only.
    pub amount: Option<Amount>,
    pub operator: Option<String>,
    pub description: Option<String>,
    /// When the HIS wrote the message (required; checked against the replay window). `None`
    /// only in instructions built locally: [`Instruction::to_json`] then stamps the current time.
    pub sent_at: Option<chrono::DateTime<chrono::FixedOffset>>,
}

impl Instruction {
    /// The journal key: `order_no` for a collection, `order_no@refund_no` for a refund.
    pub fn key(&self) -> String {
        order_key(&self.order_no, self.refund_no.as_deref())
    }
}

pub fn order_key(order_no: &str, refund_no: Option<&str>) -> String {
    match refund_no {
        Some(r) => format!("{order_no}@{r}"),
        None => order_no.to_string(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstruction {
    v: Option<u64>,
    #[serde(rename = "type")]
    kind: Option<String>,
    terminal_id: Option<String>,
    order_no: Option<String>,
    refund_no: Option<String>,
    amount: Option<String>,
    operator: Option<String>,
    description: Option<String>,
    sent_at: Option<String>,
}

/// Checks an order/refund/terminal number: 1-32 characters of `A-Z a-z 0-9 _ -`.
pub fn check_number(field: &'static str, v: &str) -> Result<(), InstructionError> {
    if v.is_empty() {
        return Err(InstructionError::Missing(field));
    }
    if v.len() > MAX_NO_LEN {
        return Err(InstructionError::Invalid { field, reason: format!("longer than {MAX_NO_LEN} characters") });
    }
    if !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(InstructionError::Invalid { field, reason: "only A-Z a-z 0-9 _ - are allowed".into() });
    }
    Ok(())
}

fn check_text(field: &'static str, v: Option<String>, max: usize) -> Result<Option<String>, InstructionError> {
    match v {
        None => Ok(None),
        Some(s) if s.chars().count() > max => {
            Err(InstructionError::Invalid { field, reason: format!("longer than {max} characters") })
        }
        Some(s) if s.chars().any(char::is_control) => {
            Err(InstructionError::Invalid { field, reason: "contains control characters".into() })
        }
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => Ok(Some(s)),
    }
}

/// The order number from a message that failed validation, when it can be read at all.
/// `sent_at` (§3.1): RFC 3339 (`2026-11-26T10:00:00+08:00`, fractions of a second allowed, `Z`
/// for UTC), and also the offset without a colon (`+0800`) that Java's `Z` pattern and .NET's
/// `zzz` variants write, and a space instead of `T`. The offset is required: a local time
/// without one is ambiguous.
pub fn parse_sent_at(s: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t);
    }
    let t = s.replacen(' ', "T", 1);
    ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%:z"]
        .iter()
        .find_map(|f| chrono::DateTime::parse_from_str(&t, f).ok())
}

pub fn salvage_order_no(plaintext: &[u8]) -> Option<String> {
    salvage(plaintext).order_no
}

/// What a refusal echoes of an instruction that could not be taken (§3.3): each of its fields
/// that is itself well formed, whatever else is wrong with the instruction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Echo {
    pub terminal_id: Option<String>,
    pub order_no: Option<String>,
    pub refund_no: Option<String>,
    /// Normalised (`+12.5` is echoed `+12.50`).
    pub amount: Option<String>,
}

pub fn salvage(plaintext: &[u8]) -> Echo {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(plaintext) else { return Echo::default() };
    let number = |name: &'static str| {
        v.get(name).and_then(|x| x.as_str()).filter(|s| check_number(name, s).is_ok()).map(str::to_string)
    };
    Echo {
        terminal_id: number("terminal_id"),
        order_no: number("order_no"),
        refund_no: number("refund_no"),
        amount: v.get("amount").and_then(|x| x.as_str()).and_then(|a| Amount::parse(a).ok()).map(|a| a.to_string()),
    }
}

impl Echo {
    pub fn of(ins: &Instruction) -> Echo {
        Echo {
            terminal_id: Some(ins.terminal_id.clone()),
            order_no: Some(ins.order_no.clone()),
            refund_no: ins.refund_no.clone(),
            amount: ins.amount.map(|a| a.to_string()),
        }
    }
}

impl Instruction {
    pub fn parse(plaintext: &[u8]) -> Result<Self, InstructionError> {
        let raw: RawInstruction =
            serde_json::from_slice(plaintext).map_err(|e| InstructionError::Json(e.to_string()))?;
        match raw.v {
            None => return Err(InstructionError::Missing("v")),
            Some(1) => {}
            Some(v) => return Err(InstructionError::Version(v)),
        }
        let kind = match raw.kind.as_deref() {
            None => return Err(InstructionError::Missing("type")),
            Some("order") => InstructionKind::Order,
            Some("query") => InstructionKind::Query,
            Some("cancel") => InstructionKind::Cancel,
            Some(other) => return Err(InstructionError::Type(other.chars().take(32).collect())),
        };
        let terminal_id = raw.terminal_id.ok_or(InstructionError::Missing("terminal_id"))?;
        check_number("terminal_id", &terminal_id)?;
        let order_no = raw.order_no.ok_or(InstructionError::Missing("order_no"))?;
        check_number("order_no", &order_no)?;
        if let Some(r) = &raw.refund_no {
            check_number("refund_no", r)?;
        }
        let amount = match (kind, raw.amount) {
            (InstructionKind::Order, None) => return Err(InstructionError::Missing("amount")),
            (InstructionKind::Order, Some(a)) => Some(
                Amount::parse(&a)
                    .map_err(|error| InstructionError::Amount { value: a.chars().take(40).collect(), error })?,
            ),
            (_, Some(_)) => {
                return Err(InstructionError::Invalid { field: "amount", reason: "only allowed in an order".into() })
            }
            (_, None) => None,
        };
        if let Some(a) = amount {
            match (a.is_refund(), raw.refund_no.is_some()) {
                (true, false) => return Err(InstructionError::RefundWithoutNumber),
                (false, true) => return Err(InstructionError::RefundNumberOnCollection),
                _ => {}
            }
        }
        let sent_at = raw.sent_at.ok_or(InstructionError::Missing("sent_at"))?;
        let sent_at = parse_sent_at(&sent_at).ok_or_else(|| InstructionError::Invalid {
            field: "sent_at",
            reason: "not an RFC 3339 time with its offset, e.g. 2026-11-26T10:00:00+08:00 (or +0800)".into(),
        })?;
        Ok(Instruction {
            sent_at: Some(sent_at),
            kind,
            terminal_id,
            order_no,
            refund_no: raw.refund_no,
            amount,
            operator: check_text("operator", raw.operator, 32)?,
            description: check_text("description", raw.description, 64)?,
        })
    }

    /// The JSON an HIS would send for this instruction (the test client and the docs use it).
    pub fn to_json(&self) -> String {
        let kind = match self.kind {
            InstructionKind::Order => "order",
            InstructionKind::Query => "query",
            InstructionKind::Cancel => "cancel",
        };
        let sent_at = self.sent_at.unwrap_or_else(|| chrono::Local::now().fixed_offset());
        let mut v = serde_json::json!({
            "v": 1,
            "type": kind,
            "terminal_id": self.terminal_id,
            "order_no": self.order_no,
            "sent_at": sent_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
        });
        let m = v.as_object_mut().expect("object");
        if let Some(r) = &self.refund_no {
            m.insert("refund_no".into(), r.clone().into());
        }
        if let Some(a) = self.amount {
            m.insert("amount".into(), a.to_string().into());
        }
        if let Some(o) = &self.operator {
            m.insert("operator".into(), o.clone().into());
        }
        if let Some(d) = &self.description {
            m.insert("description".into(), d.clone().into());
        }
        v.to_string()
    }
}

/// Status reported to the HIS (docs/his-interface.md §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Collected.
    Success,
    /// Refund done.
    Refunded,
    /// Definitively not paid; no money moved. The HIS may send the same order again.
    Failed,
    /// Cancelled before payment; no money moved.
    Cancelled,
    /// Cancelled after payment: the money went back to the patient.
    Reversed,
    /// The instruction was refused before reaching the POS; nothing was charged.
    Rejected,
    /// Taken by the POS; the final result follows.
    Processing,
    /// The outcome is not known yet; the bridge is finding out. Never charge again meanwhile.
    Unknown,
}

impl Status {
    pub fn is_final(self) -> bool {
        !matches!(self, Status::Processing | Status::Unknown)
    }
}

/// Stable error codes (docs/his-interface.md §3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    #[serde(rename = "E_ENVELOPE")]
    Envelope,
    #[serde(rename = "E_KEY_ID")]
    KeyId,
    #[serde(rename = "E_DECRYPT")]
    Decrypt,
    #[serde(rename = "E_DIRECTION")]
    Direction,
    #[serde(rename = "E_FORMAT")]
    Format,
    #[serde(rename = "E_FIELD")]
    Field,
    #[serde(rename = "E_AMOUNT")]
    Amount,
    #[serde(rename = "E_TERMINAL")]
    Terminal,
    #[serde(rename = "E_FILE_NAME")]
    FileName,
    #[serde(rename = "E_CONFLICT")]
    Conflict,
    #[serde(rename = "E_NOT_FOUND")]
    NotFound,
    #[serde(rename = "E_REFUND_ORIGINAL")]
    RefundOriginal,
    #[serde(rename = "E_REFUND_EXCEEDS")]
    RefundExceeds,
    #[serde(rename = "E_PAYMENT_DECLINED")]
    Declined,
    #[serde(rename = "E_REFUND_FAILED")]
    RefundFailed,
    #[serde(rename = "E_POS_NOT_RECEIVED")]
    PosNotReceived,
    #[serde(rename = "E_POS_BUSY")]
    PosBusy,
    #[serde(rename = "E_POS_UNAVAILABLE")]
    PosUnavailable,
    #[serde(rename = "E_TIMEOUT")]
    Timeout,
    #[serde(rename = "E_CANCELLED")]
    Cancelled,
    #[serde(rename = "E_POS_CANCELLED")]
    PosCancelled,
    #[serde(rename = "E_NOT_CANCELLABLE")]
    NotCancellable,
    #[serde(rename = "E_STALE")]
    Stale,
    #[serde(rename = "E_REPLAY")]
    Replay,
    #[serde(rename = "E_PAUSED")]
    Paused,
    #[serde(rename = "E_JOURNAL")]
    Journal,
    #[serde(rename = "E_NOT_ALLOWED")]
    NotAllowed,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Envelope => "E_ENVELOPE",
            ErrorCode::KeyId => "E_KEY_ID",
            ErrorCode::Decrypt => "E_DECRYPT",
            ErrorCode::Direction => "E_DIRECTION",
            ErrorCode::Format => "E_FORMAT",
            ErrorCode::Field => "E_FIELD",
            ErrorCode::Amount => "E_AMOUNT",
            ErrorCode::Terminal => "E_TERMINAL",
            ErrorCode::FileName => "E_FILE_NAME",
            ErrorCode::Conflict => "E_CONFLICT",
            ErrorCode::NotFound => "E_NOT_FOUND",
            ErrorCode::RefundOriginal => "E_REFUND_ORIGINAL",
            ErrorCode::RefundExceeds => "E_REFUND_EXCEEDS",
            ErrorCode::Declined => "E_PAYMENT_DECLINED",
            ErrorCode::RefundFailed => "E_REFUND_FAILED",
            ErrorCode::PosNotReceived => "E_POS_NOT_RECEIVED",
            ErrorCode::PosBusy => "E_POS_BUSY",
            ErrorCode::PosUnavailable => "E_POS_UNAVAILABLE",
            ErrorCode::Timeout => "E_TIMEOUT",
            ErrorCode::Cancelled => "E_CANCELLED",
            ErrorCode::PosCancelled => "E_POS_CANCELLED",
            ErrorCode::NotCancellable => "E_NOT_CANCELLABLE",
            ErrorCode::Stale => "E_STALE",
            ErrorCode::Replay => "E_REPLAY",
            ErrorCode::Paused => "E_PAUSED",
            ErrorCode::Journal => "E_JOURNAL",
            ErrorCode::NotAllowed => "E_NOT_ALLOWED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }

    /// A short explanation in Simplified Chinese, for the cashier and the HIS screen.
    pub fn zh(self) -> &'static str {
        match self {
            ErrorCode::Envelope => "报文格式错误，不是有效的加密报文",
            ErrorCode::KeyId => "密钥编号不符",
            ErrorCode::Decrypt => "解密失败：密钥错误或报文被篡改",
            ErrorCode::Direction => "报文方向错误（结果报文不能作为指令）",
            ErrorCode::Format => "报文内容格式错误",
            ErrorCode::Field => "字段缺失或不合法",
            ErrorCode::Amount => "金额格式错误",
            ErrorCode::Terminal => "未登记的收费终端",
            ErrorCode::FileName => "文件名不合法",
            ErrorCode::Conflict => "订单号重复但金额或终端不同",
            ErrorCode::NotFound => "查无此订单",
            ErrorCode::RefundOriginal => "退款找不到已支付的原订单",
            ErrorCode::RefundExceeds => "退款金额超过可退金额",
            ErrorCode::Declined => "支付失败",
            ErrorCode::RefundFailed => "退款失败，钱包未退款",
            ErrorCode::PosNotReceived => "POS未收到该笔交易，未扣款，可重新发起",
            ErrorCode::PosBusy => "POS正在处理其他交易",
            ErrorCode::PosUnavailable => "POS未连接或设备号不符，订单未发送，未扣款，请到其他窗口或稍后重发",
            ErrorCode::Timeout => "患者未在规定时间内完成支付，交易已撤销",
            ErrorCode::Cancelled => "交易已取消",
            ErrorCode::PosCancelled => "交易已在POS上撤销，未扣款",
            ErrorCode::NotCancellable => "订单已完成，不能取消",
            ErrorCode::Stale => "报文已过期或HIS与本机时钟相差过大",
            ErrorCode::Replay => "重复报文（重放），已拒收",
            ErrorCode::Paused => "该收费窗口已暂停收款，请稍后再试或到其他窗口",
            ErrorCode::Journal => "本机收费记录无法写入，本窗口暂停收款，请联系信息科",
            ErrorCode::NotAllowed => "该收费终端无权撤销或退款其他终端的订单",
        }
    }
}

/// The result message for the HIS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultMessage {
    pub v: u32,
    #[serde(rename = "type")]
    pub kind: String,
    pub device_id: String,
    pub terminal_id: Option<String>,
    pub order_no: Option<String>,
    pub refund_no: Option<String>,
    pub pay_order_no: Option<String>,
    pub status: Status,
    pub channel: Option<String>,
    pub amount: Option<String>,
    pub finished_at: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub error_message_en: Option<String>,
    /// Socket channel only (§7): the `type` of the instruction this line answers (`order`,
    /// `query`, `cancel`), so a cancel's answer is told from the order's result on one connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// Socket channel only: the message id (the envelope's nonce, hex) of that instruction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<String>,
}

impl ResultMessage {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("serializable")
    }
    pub fn parse(plaintext: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(plaintext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `s` with a `sent_at` added (the field every real message carries).
    fn parse(s: &str) -> Result<Instruction, InstructionError> {
        let s = s.replacen('{', r#"{"sent_at":"2026-11-26T10:00:00+08:00","#, 1);
        Instruction::parse(s.as_bytes())
    }

    #[test]
    fn parses_order_refund_query_cancel() {
        let o = parse(
            r#"{"v":1,"type":"order","terminal_id":"W01","order_no":"A1","amount":"+12.50","description":"门诊缴费"}"#,
        )
        .unwrap();
        assert_eq!(o.amount.unwrap().fen(), 1250);
        assert_eq!(o.key(), "A1");
        let r =
            parse(r#"{"v":1,"type":"order","terminal_id":"W01","order_no":"A1","refund_no":"R1","amount":"-3.00"}"#)
                .unwrap();
        assert_eq!(r.key(), "A1@R1");
        assert_eq!(Instruction::parse(r.to_json().as_bytes()).unwrap(), r);
        assert_eq!(
            parse(r#"{"v":1,"type":"query","terminal_id":"W01","order_no":"A1"}"#).unwrap().kind,
            InstructionKind::Query
        );
        assert_eq!(
            parse(r#"{"v":1,"type":"cancel","terminal_id":"W01","order_no":"A1"}"#).unwrap().kind,
            InstructionKind::Cancel
        );
    }

    #[test]
    fn refuses_bad_instructions_exactly() {
        use InstructionError::*;
        assert!(matches!(parse("not json"), Err(Json(_))));
        assert_eq!(
            Instruction::parse(br#"{"v":1,"type":"query","terminal_id":"W","order_no":"A"}"#),
            Err(Missing("sent_at"))
        );
        assert!(matches!(
            parse(r#"{"sent_at":"yesterday","v":1,"type":"query","terminal_id":"W","order_no":"A"}"#),
            Err(Json(_))
        ));
        assert!(matches!(parse(r#"{"v":1,"type":"order","extra":1}"#), Err(Json(_))));
        assert_eq!(parse(r#"{"type":"order"}"#), Err(Missing("v")));
        assert_eq!(parse(r#"{"v":2,"type":"order"}"#), Err(Version(2)));
        assert_eq!(parse(r#"{"v":1,"type":"pay"}"#), Err(Type("pay".into())));
        assert_eq!(parse(r#"{"v":1,"type":"order","order_no":"A"}"#), Err(Missing("terminal_id")));
        assert_eq!(
            parse(r#"{"v":1,"type":"order","terminal_id":"W","order_no":"../x","amount":"+1"}"#),
            Err(Invalid { field: "order_no", reason: "only A-Z a-z 0-9 _ - are allowed".into() })
        );
        assert_eq!(
            parse(r#"{"v":1,"type":"order","terminal_id":"W","order_no":"A","amount":"+1e3"}"#),
            Err(Amount { value: "+1e3".into(), error: AmountError::BadCharacter })
        );
        assert_eq!(
            parse(r#"{"v":1,"type":"order","terminal_id":"W","order_no":"A","amount":"-1"}"#),
            Err(RefundWithoutNumber)
        );
        assert_eq!(
            parse(r#"{"v":1,"type":"order","terminal_id":"W","order_no":"A","refund_no":"R","amount":"+1"}"#),
            Err(RefundNumberOnCollection)
        );
        assert_eq!(salvage_order_no(br#"{"v":1,"order_no":"A7","amount":"x"}"#), Some("A7".into()));
    }

    #[test]
    fn sent_at_as_his_languages_write_it() {
        let want = chrono::DateTime::parse_from_rfc3339("2026-11-26T10:00:00+08:00").unwrap();
        for text in [
            "2026-11-26T10:00:00+08:00",
            "2026-11-26T10:00:00.000+08:00",
            "2026-11-26T10:00:00+0800",
            "2026-11-26T10:00:00.000+0800",
            "2026-11-26 10:00:00+08:00",
            "2026-11-26T02:00:00Z",
        ] {
            assert_eq!(parse_sent_at(text), Some(want), "{text}");
        }
        for bad in ["2026-11-26T10:00:00", "2026-11-26", "yesterday", "2026-11-26T10:00:00 CST"] {
            assert_eq!(parse_sent_at(bad), None, "{bad}");
        }
    }
}
