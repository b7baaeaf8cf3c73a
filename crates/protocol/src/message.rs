//! Application messages carried in frame payloads (docs/pos-protocol.md §4).
//!
//! A payload is UTF-8 text: `SEQ|COMMAND[|key=value]*`. `SEQ` is four decimal digits added by the
//! link layer ([`crate::link`]); this module handles the `COMMAND[|key=value]*` part.

use std::fmt;

/// Why a payload could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("payload is not UTF-8")]
    NotUtf8,
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    #[error("field {0:?} is not of the form key=value")]
    BadField(String),
    #[error("command {command} lacks field {field}")]
    MissingField { command: &'static str, field: &'static str },
    #[error("field {field} has an invalid value {value:?}")]
    BadValue { field: &'static str, value: String },
}

/// Wallet behind a payment (§4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Wechat,
    Alipay,
    Other,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Wechat => "WECHAT",
            Channel::Alipay => "ALIPAY",
            Channel::Other => "OTHER",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "WECHAT" => Channel::Wechat,
            "ALIPAY" => Channel::Alipay,
            "OTHER" => Channel::Other,
            _ => return None,
        })
    }
}

/// Progress of a transaction on the POS (§4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The POS shows the amount and waits for the patient's payment code.
    WaitScan,
    /// The code was scanned; the wallet asks the patient to confirm or enter a password.
    UserPaying,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::WaitScan => "WAIT_SCAN",
            Stage::UserPaying => "USER_PAYING",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "WAIT_SCAN" => Some(Stage::WaitScan),
            "USER_PAYING" => Some(Stage::UserPaying),
            _ => None,
        }
    }
}

/// State of a transaction as the POS reports it in RESULT (§4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnStatus {
    /// Collection succeeded.
    Paid,
    /// Refund succeeded.
    Refunded,
    /// Definitively failed; no money moved.
    Failed,
    /// Cancelled before payment; no money moved.
    Cancelled,
    /// Cancelled after the wallet had taken the money: the money went back.
    Reversed,
    /// Still in progress (QUERY answer).
    InProgress,
    /// The POS has no transaction with this reference (QUERY answer).
    NotFound,
}

impl TxnStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TxnStatus::Paid => "PAID",
            TxnStatus::Refunded => "REFUNDED",
            TxnStatus::Failed => "FAILED",
            TxnStatus::Cancelled => "CANCELLED",
            TxnStatus::Reversed => "REVERSED",
            TxnStatus::InProgress => "IN_PROGRESS",
            TxnStatus::NotFound => "NOT_FOUND",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PAID" => TxnStatus::Paid,
            "REFUNDED" => TxnStatus::Refunded,
            "FAILED" => TxnStatus::Failed,
            "CANCELLED" => TxnStatus::Cancelled,
            "REVERSED" => TxnStatus::Reversed,
            "IN_PROGRESS" => TxnStatus::InProgress,
            "NOT_FOUND" => TxnStatus::NotFound,
            _ => return None,
        })
    }
    /// Whether the status ends the transaction.
    pub fn is_final(self) -> bool {
        !matches!(self, TxnStatus::InProgress)
    }
}

/// Kind of the transaction a RESULT is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnKind {
    Sale,
    Refund,
}

impl TxnKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TxnKind::Sale => "SALE",
            TxnKind::Refund => "REFUND",
        }
    }
}

/// A transaction outcome reported by the POS.
#[derive(Clone, PartialEq, Eq)]
pub struct TxnResult {
    pub reference: String,
    /// `op`: required for every status but `NOT_FOUND` (the POS has no transaction to name).
    pub kind: Option<TxnKind>,
    pub status: TxnStatus,
    pub channel: Option<Channel>,
    /// Payment-system order number (WeChat transaction_id / Alipay trade_no), or refund id.
    pub pay_order_no: Option<String>,
    pub amount_fen: Option<u64>,
    /// POS clock, `YYYYMMDDhhmmss`.
    pub time: Option<String>,
    pub code: Option<String>,
    pub message: Option<String>,
}

impl fmt::Debug for TxnResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxnResult")
            .field("reference", &self.reference)
            .field("kind", &self.kind)
            .field("status", &self.status)
            .field("channel", &self.channel)
            .field("amount_fen", &self.amount_fen)
            .field("code", &self.code)
            .finish_non_exhaustive()
    }
}

/// One channel's line in the POS's day totals (§4.6): what the POS collected and refunded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelTotals {
    pub channel: Channel,
    /// Collections that stand (PAID, not reversed).
    pub sales: u64,
    pub sales_fen: u64,
    /// Refunds done (REFUNDED).
    pub refunds: u64,
    pub refunds_fen: u64,
}

/// The POS's totals for one day of its own clock (§4.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PosTotals {
    /// `YYYYMMDD`.
    pub date: String,
    pub lines: Vec<ChannelTotals>,
}

impl PosTotals {
    pub fn line(&self, channel: Channel) -> ChannelTotals {
        self.lines.iter().copied().find(|l| l.channel == channel).unwrap_or(ChannelTotals {
            channel,
            sales: 0,
            sales_fen: 0,
            refunds: 0,
            refunds_fen: 0,
        })
    }
}

/// Whether `s` is a `YYYYMMDD` date.
pub fn is_day(s: &str) -> bool {
    s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Messages from the bridge to the POS (§4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Hello {
        proto: u32,
    },
    Ping,
    Info,
    Sale {
        reference: String,
        amount_fen: u64,
        description: Option<String>,
    },
    Refund {
        reference: String,
        original: String,
        amount_fen: u64,
    },
    Cancel {
        reference: String,
    },
    Query {
        reference: String,
    },
    /// The day's totals by channel (`date` is `YYYYMMDD`, the POS's own calendar).
    Totals {
        date: String,
    },
}

impl Request {
    /// Whether this request moves money (at most one at a time per POS).
    pub fn is_money(&self) -> bool {
        matches!(self, Request::Sale { .. } | Request::Refund { .. })
    }
    pub fn reference(&self) -> Option<&str> {
        match self {
            Request::Sale { reference, .. }
            | Request::Refund { reference, .. }
            | Request::Cancel { reference }
            | Request::Query { reference } => Some(reference),
            _ => None,
        }
    }
}

/// Messages from the POS to the bridge (§4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Hello {
        device_id: String,
        version: String,
        model: String,
    },
    Pong,
    Info {
        device_id: String,
        version: String,
        model: String,
        time: String,
    },
    Event {
        reference: String,
        stage: Stage,
    },
    Result(TxnResult),
    /// The POS refuses a money command while another transaction runs.
    Busy {
        reference: String,
        current: String,
    },
    /// The POS could not understand a command.
    Error {
        code: String,
        message: String,
    },
    Totals(PosTotals),
}

/// Removes the characters the payload syntax reserves from a free-text value.
pub fn clean_text(s: &str) -> String {
    s.chars().map(|c| if c == '|' || c.is_control() { ' ' } else { c }).collect()
}

struct Writer(String);

impl Writer {
    fn new(cmd: &str) -> Self {
        Writer(cmd.to_string())
    }
    fn field(mut self, k: &str, v: impl fmt::Display) -> Self {
        self.0.push('|');
        self.0.push_str(k);
        self.0.push('=');
        self.0.push_str(&clean_text(&v.to_string()));
        self
    }
    fn opt(self, k: &str, v: Option<impl fmt::Display>) -> Self {
        match v {
            Some(v) => self.field(k, v),
            None => self,
        }
    }
}

struct Fields<'a> {
    command: &'static str,
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Fields<'a> {
    fn get(&self, k: &str) -> Option<&'a str> {
        self.pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| *v)
    }
    fn req(&self, k: &'static str) -> Result<&'a str, MessageError> {
        self.get(k).ok_or(MessageError::MissingField { command: self.command, field: k })
    }
    fn string(&self, k: &'static str) -> Result<String, MessageError> {
        self.req(k).map(str::to_string)
    }
    fn number(&self, k: &'static str) -> Result<u64, MessageError> {
        let v = self.req(k)?;
        parse_digits(v).ok_or(MessageError::BadValue { field: k, value: v.to_string() })
    }
    fn opt_number(&self, k: &'static str) -> Result<Option<u64>, MessageError> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => parse_digits(v).map(Some).ok_or(MessageError::BadValue { field: k, value: v.to_string() }),
        }
    }
    fn day(&self, k: &'static str) -> Result<String, MessageError> {
        let v = self.req(k)?;
        if !is_day(v) {
            return Err(MessageError::BadValue { field: k, value: v.to_string() });
        }
        Ok(v.to_string())
    }
    fn opt_string(&self, k: &str) -> Option<String> {
        self.get(k).filter(|v| !v.is_empty()).map(str::to_string)
    }
}

fn parse_digits(v: &str) -> Option<u64> {
    if v.is_empty() || v.len() > 12 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// A command name and its `key=value` pairs.
type Parts<'a> = (&'a str, Vec<(&'a str, &'a str)>);

fn split(text: &str) -> Result<Parts<'_>, MessageError> {
    let mut parts = text.split('|');
    let cmd = parts.next().unwrap_or_default();
    let mut pairs = Vec::new();
    for p in parts {
        let (k, v) = p.split_once('=').ok_or_else(|| MessageError::BadField(p.to_string()))?;
        if k.is_empty() {
            return Err(MessageError::BadField(p.to_string()));
        }
        pairs.push((k, v));
    }
    Ok((cmd, pairs))
}

fn command_name(cmd: &str, known: &[&'static str]) -> Result<&'static str, MessageError> {
    known
        .iter()
        .copied()
        .find(|k| *k == cmd)
        .ok_or_else(|| MessageError::UnknownCommand(cmd.chars().take(32).collect()))
}

impl Request {
    pub fn encode(&self) -> String {
        match self {
            Request::Hello { proto } => Writer::new("HELLO").field("proto", proto),
            Request::Ping => Writer::new("PING"),
            Request::Info => Writer::new("INFO"),
            Request::Sale { reference, amount_fen, description } => Writer::new("SALE")
                .field("ref", reference)
                .field("amount", amount_fen)
                .opt("desc", description.as_ref()),
            Request::Refund { reference, original, amount_fen } => {
                Writer::new("REFUND").field("ref", reference).field("orig", original).field("amount", amount_fen)
            }
            Request::Cancel { reference } => Writer::new("CANCEL").field("ref", reference),
            Request::Query { reference } => Writer::new("QUERY").field("ref", reference),
            Request::Totals { date } => Writer::new("TOTALS").field("date", date),
        }
        .0
    }

    pub fn decode(payload: &[u8]) -> Result<Self, MessageError> {
        let text = std::str::from_utf8(payload).map_err(|_| MessageError::NotUtf8)?;
        let (cmd, pairs) = split(text)?;
        let command = command_name(cmd, &["HELLO", "PING", "INFO", "SALE", "REFUND", "CANCEL", "QUERY", "TOTALS"])?;
        let f = Fields { command, pairs };
        Ok(match command {
            "HELLO" => Request::Hello { proto: f.number("proto")? as u32 },
            "PING" => Request::Ping,
            "INFO" => Request::Info,
            "SALE" => Request::Sale {
                reference: f.string("ref")?,
                amount_fen: f.number("amount")?,
                description: f.opt_string("desc"),
            },
            "REFUND" => Request::Refund {
                reference: f.string("ref")?,
                original: f.string("orig")?,
                amount_fen: f.number("amount")?,
            },
            "CANCEL" => Request::Cancel { reference: f.string("ref")? },
            "TOTALS" => Request::Totals { date: f.day("date")? },
            _ => Request::Query { reference: f.string("ref")? },
        })
    }
}

impl Reply {
    pub fn encode(&self) -> String {
        match self {
            Reply::Hello { device_id, version, model } => {
                Writer::new("HELLO").field("device", device_id).field("ver", version).field("model", model)
            }
            Reply::Pong => Writer::new("PONG"),
            Reply::Info { device_id, version, model, time } => Writer::new("INFO")
                .field("device", device_id)
                .field("ver", version)
                .field("model", model)
                .field("time", time),
            Reply::Event { reference, stage } => {
                Writer::new("EVENT").field("ref", reference).field("stage", stage.as_str())
            }
            Reply::Result(r) => Writer::new("RESULT")
                .field("ref", &r.reference)
                .opt("op", r.kind.map(TxnKind::as_str))
                .field("status", r.status.as_str())
                .opt("channel", r.channel.map(Channel::as_str))
                .opt("pay_no", r.pay_order_no.as_ref())
                .opt("amount", r.amount_fen)
                .opt("time", r.time.as_ref())
                .opt("code", r.code.as_ref())
                .opt("msg", r.message.as_ref()),
            Reply::Busy { reference, current } => Writer::new("BUSY").field("ref", reference).field("current", current),
            Reply::Error { code, message } => Writer::new("ERROR").field("code", code).field("msg", message),
            Reply::Totals(t) => t.lines.iter().fold(Writer::new("TOTALS").field("date", &t.date), |w, l| {
                w.field(l.channel.as_str(), format_args!("{}/{}/{}/{}", l.sales, l.sales_fen, l.refunds, l.refunds_fen))
            }),
        }
        .0
    }

    pub fn decode(payload: &[u8]) -> Result<Self, MessageError> {
        let text = std::str::from_utf8(payload).map_err(|_| MessageError::NotUtf8)?;
        let (cmd, pairs) = split(text)?;
        let command = command_name(cmd, &["HELLO", "PONG", "INFO", "EVENT", "RESULT", "BUSY", "ERROR", "TOTALS"])?;
        let f = Fields { command, pairs };
        Ok(match command {
            "HELLO" => Reply::Hello {
                device_id: f.string("device")?,
                version: f.string("ver")?,
                model: f.opt_string("model").unwrap_or_default(),
            },
            "PONG" => Reply::Pong,
            "INFO" => Reply::Info {
                device_id: f.string("device")?,
                version: f.string("ver")?,
                model: f.opt_string("model").unwrap_or_default(),
                time: f.opt_string("time").unwrap_or_default(),
            },
            "EVENT" => {
                let v = f.req("stage")?;
                Reply::Event {
                    reference: f.string("ref")?,
                    stage: Stage::parse(v).ok_or(MessageError::BadValue { field: "stage", value: v.into() })?,
                }
            }
            "RESULT" => {
                let st = f.req("status")?;
                let status =
                    TxnStatus::parse(st).ok_or(MessageError::BadValue { field: "status", value: st.into() })?;
                // A NOT_FOUND names no transaction, so it may leave `op` out.
                let kind = match (f.get("op"), status) {
                    (None | Some(""), TxnStatus::NotFound) => None,
                    (None, _) => return Err(MessageError::MissingField { command: f.command, field: "op" }),
                    (Some("SALE"), _) => Some(TxnKind::Sale),
                    (Some("REFUND"), _) => Some(TxnKind::Refund),
                    (Some(op), _) => return Err(MessageError::BadValue { field: "op", value: op.into() }),
                };
                let channel = match f.get("channel") {
                    None | Some("") => None,
                    Some(c) => {
                        Some(Channel::parse(c).ok_or(MessageError::BadValue { field: "channel", value: c.into() })?)
                    }
                };
                Reply::Result(TxnResult {
                    reference: f.string("ref")?,
                    kind,
                    status,
                    channel,
                    pay_order_no: f.opt_string("pay_no"),
                    amount_fen: f.opt_number("amount")?,
                    time: f.opt_string("time"),
                    code: f.opt_string("code"),
                    message: f.opt_string("msg"),
                })
            }
            "BUSY" => Reply::Busy { reference: f.string("ref")?, current: f.string("current")? },
            "TOTALS" => {
                let mut lines = Vec::new();
                for (k, v) in &f.pairs {
                    let Some(channel) = Channel::parse(k) else { continue };
                    let bad = || MessageError::BadValue { field: "totals", value: v.to_string() };
                    let n: Vec<u64> =
                        v.split('/').map(|p| parse_digits(p).ok_or_else(bad)).collect::<Result<_, _>>()?;
                    let [sales, sales_fen, refunds, refunds_fen] = n[..] else { return Err(bad()) };
                    if lines.iter().any(|l: &ChannelTotals| l.channel == channel) {
                        return Err(bad());
                    }
                    lines.push(ChannelTotals { channel, sales, sales_fen, refunds, refunds_fen });
                }
                Reply::Totals(PosTotals { date: f.day("date")?, lines })
            }
            _ => Reply::Error { code: f.string("code")?, message: f.opt_string("msg").unwrap_or_default() },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_match_the_spec_text() {
        let cases = [
            (Request::Hello { proto: 1 }, "HELLO|proto=1"),
            (Request::Ping, "PING"),
            (Request::Info, "INFO"),
            (
                Request::Sale {
                    reference: "2026112600017.1".into(),
                    amount_fen: 1250,
                    description: Some("门诊缴费".into()),
                },
                "SALE|ref=2026112600017.1|amount=1250|desc=门诊缴费",
            ),
            (
                Request::Refund { reference: "A1@R1.1".into(), original: "A1.1".into(), amount_fen: 300 },
                "REFUND|ref=A1@R1.1|orig=A1.1|amount=300",
            ),
            (Request::Cancel { reference: "A1.1".into() }, "CANCEL|ref=A1.1"),
            (Request::Query { reference: "A1.1".into() }, "QUERY|ref=A1.1"),
            (Request::Totals { date: "20261126".into() }, "TOTALS|date=20261126"),
        ];
        for (req, text) in cases {
            assert_eq!(req.encode(), text);
            assert_eq!(Request::decode(text.as_bytes()).unwrap(), req);
        }
    }

    #[test]
    fn replies_round_trip() {
        let cases = [
            "HELLO|device=POS-0001|ver=1.2.0|model=SIM",
            "PONG",
            "INFO|device=POS-0001|ver=1.2.0|model=SIM|time=20261126120000",
            "EVENT|ref=A1.1|stage=USER_PAYING",
            "RESULT|ref=A1.1|op=SALE|status=PAID|channel=WECHAT|pay_no=4200001|amount=1250|time=20261126120001",
            "RESULT|ref=A1.1|op=SALE|status=FAILED|code=NOTENOUGH|msg=余额不足",
            "BUSY|ref=A2.1|current=A1.1",
            "ERROR|code=BAD_COMMAND|msg=unknown",
            "TOTALS|date=20261126|WECHAT=3/3750/1/300|ALIPAY=0/0/0/0",
            "TOTALS|date=20261126",
        ];
        for text in cases {
            let r = Reply::decode(text.as_bytes()).unwrap();
            assert_eq!(r.encode(), text);
        }
    }

    #[test]
    fn decode_errors_are_exact() {
        assert_eq!(Request::decode(&[0xff, 0xfe]), Err(MessageError::NotUtf8));
        assert_eq!(Request::decode(b"PAY|ref=1"), Err(MessageError::UnknownCommand("PAY".into())));
        assert_eq!(
            Request::decode(b"SALE|ref=1"),
            Err(MessageError::MissingField { command: "SALE", field: "amount" })
        );
        assert_eq!(
            Request::decode(b"SALE|ref=1|amount=-5"),
            Err(MessageError::BadValue { field: "amount", value: "-5".into() })
        );
        assert_eq!(Request::decode(b"SALE|ref"), Err(MessageError::BadField("ref".into())));
        assert_eq!(
            Reply::decode(b"RESULT|ref=1|op=SALE|status=MAYBE"),
            Err(MessageError::BadValue { field: "status", value: "MAYBE".into() })
        );
    }

    #[test]
    fn totals_lines_are_checked() {
        let Reply::Totals(t) = Reply::decode(b"TOTALS|date=20261126|ALIPAY=2/2000/1/500|x=1").unwrap() else {
            panic!("not totals")
        };
        assert_eq!(t.line(Channel::Alipay).refunds_fen, 500);
        assert_eq!(t.line(Channel::Wechat).sales, 0, "a channel the POS leaves out had nothing");
        for bad in [
            "TOTALS|date=2026-11-26",
            "TOTALS|date=20261126|WECHAT=1/2/3",
            "TOTALS|date=20261126|WECHAT=1/2/3/-4",
            "TOTALS|date=20261126|WECHAT=1/2/3/4|WECHAT=1/2/3/4",
        ] {
            assert!(Reply::decode(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(Request::decode(b"TOTALS").is_err());
    }

    #[test]
    fn free_text_cannot_break_the_syntax() {
        let req = Request::Sale { reference: "A".into(), amount_fen: 1, description: Some("a|b\nc".into()) };
        assert_eq!(req.encode(), "SALE|ref=A|amount=1|desc=a b c");
    }
}
