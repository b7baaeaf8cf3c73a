//! Acquirer statements (WeChat Pay and Alipay daily bills, the POS's settlement export) and
//! their matching against the journal (docs/reconciliation.md).
//!
//! Each layout is parsed into the same [`Entry`] list; [`match_day`] then compares it with
//! the journal and lists every [`Difference`] with its kind.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::journal::{Kind, OrderRow, State};
use crate::recon::signed_yuan;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// WeChat Pay merchant daily bill (交易账单, `bill_type=ALL`).
    Wechat,
    /// Alipay business detail file (业务明细, the daily bill download).
    Alipay,
    /// The POS's settlement export (docs/pos-protocol.md §8).
    Pos,
}

impl Source {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "wechat" | "weixin" | "wx" => Some(Source::Wechat),
            "alipay" | "zfb" => Some(Source::Alipay),
            "pos" => Some(Source::Pos),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A collection that stands.
    Payment,
    /// A collection the wallet reversed (WeChat `REVOKED`, POS `REVERSED`).
    Reversal,
    /// A refund done.
    Refund,
}

/// One line of a statement, in the common form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub kind: EntryKind,
    /// The wallet's number: transaction_id / trade_no (for a refund, of the collection it refunds
    /// when the layout gives no refund number of its own).
    pub pay_no: String,
    /// The merchant order number (out_trade_no); the POS reference of the collection.
    pub merchant_no: String,
    /// For a refund: the wallet's refund number, when the layout has one.
    pub refund_no: Option<String>,
    /// For a refund: the merchant refund number (out_refund_no); the POS reference of the refund.
    pub merchant_refund_no: Option<String>,
    pub amount_fen: i64,
    pub time: String,
    /// 1-based line number in the file.
    pub line: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StatementError {
    #[error("the file is neither UTF-8 nor GBK text")]
    Encoding,
    #[error("no header line with the columns {0} was found: is this the right kind of statement?")]
    NoHeader(String),
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
}

/// Which layout a statement has, told by its header line (the first 200 lines are looked at).
pub fn detect(bytes: &[u8]) -> Result<Source, StatementError> {
    let text = decode(bytes)?;
    for l in text.lines().take(200) {
        let c = cells(l);
        let layouts: [(Source, &[&str]); 3] =
            [(Source::Wechat, &WECHAT_COLS), (Source::Alipay, &ALIPAY_COLS), (Source::Pos, &POS_COLS)];
        if let Some((s, _)) = layouts.iter().find(|(_, cols)| Columns::find(&c, cols).is_some()) {
            return Ok(*s);
        }
    }
    Err(StatementError::NoHeader(
        "of a WeChat Pay bill (交易时间, 微信订单号...), an Alipay bill (支付宝交易号...) or the POS's export (time, reference...)"
            .into(),
    ))
}

/// Decodes a statement: UTF-8 (with or without BOM), else GBK as Alipay and Excel write it.
pub fn decode(bytes: &[u8]) -> Result<String, StatementError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Ok(s.to_string());
    }
    let (text, _, bad) = encoding_rs::GBK.decode(bytes);
    if bad {
        return Err(StatementError::Encoding);
    }
    Ok(text.into_owned())
}

/// Splits one CSV line (RFC 4180 quoting, by the csv crate), trimming WeChat's leading backtick
/// and spaces. The layouts' own rules (which line is the header, where the rows end) stay with
/// their parsers.
fn cells(line: &str) -> Vec<String> {
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(line.len() + 1)
        .from_reader(line.as_bytes());
    let mut rec = csv::StringRecord::new();
    match rd.read_record(&mut rec) {
        Ok(true) => rec.iter().map(|c| c.trim().trim_start_matches('`').trim().to_string()).collect(),
        // An empty line, or one the csv reader cannot read: one empty cell, found by no header.
        _ => vec![String::new()],
    }
}

/// Parses `12.50`, `-3.00`, `12.5`, `12` as fen.
pub fn parse_yuan(s: &str) -> Option<i64> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty()
        || int.len() > 12
        || frac.len() > 2
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let frac_fen: i64 = format!("{frac:0<2}").parse().ok()?;
    let fen = int.parse::<i64>().ok()? * 100 + frac_fen;
    Some(if neg { -fen } else { fen })
}

struct Columns(HashMap<String, usize>);

impl Columns {
    fn find(header: &[String], wanted: &[&str]) -> Option<Self> {
        let map: HashMap<String, usize> = header.iter().enumerate().map(|(i, h)| (h.clone(), i)).collect();
        wanted.iter().all(|w| map.contains_key(*w)).then_some(Columns(map))
    }
    fn get<'a>(&self, row: &'a [String], name: &str) -> &'a str {
        self.0.get(name).and_then(|i| row.get(*i)).map(String::as_str).unwrap_or("")
    }
}

fn header_error(wanted: &[&str]) -> StatementError {
    StatementError::NoHeader(wanted.join(", "))
}

fn amount(line: usize, col: &str, v: &str) -> Result<i64, StatementError> {
    parse_yuan(v).ok_or_else(|| StatementError::Line { line, reason: format!("{col} {v:?} is not an amount") })
}

const WECHAT_COLS: [&str; 9] = [
    "交易时间",
    "微信订单号",
    "商户订单号",
    "交易状态",
    "应结订单金额",
    "微信退款单号",
    "商户退款单号",
    "退款金额",
    "订单金额",
];

/// WeChat Pay's daily bill: a header line, one line per transaction with every cell prefixed by
/// a backtick, then `总交易单数,...` and a totals line. `交易状态` is `SUCCESS`, `REFUND` (a
/// refund line, carrying the refund numbers) or `REVOKED` (a reversed payment).
pub fn parse_wechat(text: &str) -> Result<Vec<Entry>, StatementError> {
    let mut lines = text.lines().enumerate();
    let cols = loop {
        let Some((_, l)) = lines.next() else { return Err(header_error(&WECHAT_COLS)) };
        if let Some(c) = Columns::find(&cells(l), &WECHAT_COLS) {
            break c;
        }
    };
    let mut out = Vec::new();
    for (i, l) in lines {
        let line = i + 1;
        if l.trim().is_empty() {
            continue;
        }
        let row = cells(l);
        if row.first().is_some_and(|c| c.starts_with("总")) {
            break;
        }
        let status = cols.get(&row, "交易状态");
        let kind = match status {
            "SUCCESS" => EntryKind::Payment,
            "REVOKED" => EntryKind::Reversal,
            "REFUND" => EntryKind::Refund,
            other => return Err(StatementError::Line { line, reason: format!("交易状态 {other:?} is not known") }),
        };
        if kind == EntryKind::Refund && !matches!(cols.get(&row, "退款状态"), "" | "SUCCESS") {
            // A refund still processing or failed moved no money (yet).
            continue;
        }
        let amount_fen = if kind == EntryKind::Refund {
            amount(line, "退款金额", cols.get(&row, "退款金额"))?.abs()
        } else {
            let settled = cols.get(&row, "订单金额");
            let v = if settled.is_empty() { cols.get(&row, "应结订单金额") } else { settled };
            amount(line, "订单金额", v)?
        };
        let opt = |k: &str| Some(cols.get(&row, k).to_string()).filter(|v| !v.is_empty() && v != "0");
        out.push(Entry {
            kind,
            pay_no: cols.get(&row, "微信订单号").to_string(),
            merchant_no: cols.get(&row, "商户订单号").to_string(),
            refund_no: (kind == EntryKind::Refund).then(|| opt("微信退款单号")).flatten(),
            merchant_refund_no: (kind == EntryKind::Refund).then(|| opt("商户退款单号")).flatten(),
            amount_fen,
            time: cols.get(&row, "交易时间").to_string(),
            line,
        });
    }
    Ok(out)
}

const ALIPAY_COLS: [&str; 6] =
    ["支付宝交易号", "商户订单号", "业务类型", "完成时间", "订单金额（元）", "退款批次号/请求号"];

/// Alipay's business detail file (GBK): `#` comment lines around a header line and one line per
/// business event. `业务类型` is `交易` (a payment) or `退款` (a refund, negative amount, carrying
/// the refund request number). A payment Alipay reversed appears as a full refund.
pub fn parse_alipay(text: &str) -> Result<Vec<Entry>, StatementError> {
    let mut lines = text.lines().enumerate();
    let cols = loop {
        let Some((_, l)) = lines.next() else { return Err(header_error(&ALIPAY_COLS)) };
        if l.starts_with('#') {
            continue;
        }
        if let Some(c) = Columns::find(&cells(l), &ALIPAY_COLS) {
            break c;
        }
    };
    let mut out = Vec::new();
    for (i, l) in lines {
        let line = i + 1;
        if l.starts_with('#') {
            if l.contains("结束") {
                break;
            }
            continue;
        }
        if l.trim().is_empty() {
            continue;
        }
        let row = cells(l);
        let kind = match cols.get(&row, "业务类型") {
            "交易" => EntryKind::Payment,
            "退款" => EntryKind::Refund,
            other => return Err(StatementError::Line { line, reason: format!("业务类型 {other:?} is not known") }),
        };
        let fen = amount(line, "订单金额（元）", cols.get(&row, "订单金额（元）"))?;
        let refund_req = cols.get(&row, "退款批次号/请求号");
        out.push(Entry {
            kind,
            pay_no: cols.get(&row, "支付宝交易号").to_string(),
            merchant_no: cols.get(&row, "商户订单号").to_string(),
            refund_no: None,
            merchant_refund_no: (kind == EntryKind::Refund && !refund_req.is_empty()).then(|| refund_req.to_string()),
            amount_fen: fen.abs(),
            time: cols.get(&row, "完成时间").to_string(),
            line,
        });
    }
    Ok(out)
}

const POS_COLS: [&str; 8] = ["time", "reference", "op", "status", "channel", "pay_no", "original", "amount_fen"];

/// The POS's settlement export (docs/pos-protocol.md §8): `time,reference,op,status,channel,
/// pay_no,original,amount_fen`. Only PAID, REVERSED and REFUNDED lines moved money.
pub fn parse_pos(text: &str) -> Result<Vec<Entry>, StatementError> {
    let mut lines = text.lines().enumerate();
    let cols = loop {
        let Some((_, l)) = lines.next() else { return Err(header_error(&POS_COLS)) };
        if let Some(c) = Columns::find(&cells(l), &POS_COLS) {
            break c;
        }
    };
    let mut by_ref: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    let mut refunds = Vec::new();
    for (i, l) in lines {
        let line = i + 1;
        if l.trim().is_empty() {
            continue;
        }
        let row = cells(l);
        let fen: i64 = cols.get(&row, "amount_fen").parse().map_err(|_| StatementError::Line {
            line,
            reason: format!("amount_fen {:?} is not a number of fen", cols.get(&row, "amount_fen")),
        })?;
        let reference = cols.get(&row, "reference").to_string();
        let pay_no = cols.get(&row, "pay_no").to_string();
        let time = cols.get(&row, "time").to_string();
        match (cols.get(&row, "op"), cols.get(&row, "status")) {
            ("SALE", st @ ("PAID" | "REVERSED")) => {
                by_ref.insert(reference.clone(), pay_no.clone());
                let kind = if st == "PAID" { EntryKind::Payment } else { EntryKind::Reversal };
                out.push(Entry {
                    kind,
                    pay_no,
                    merchant_no: reference,
                    refund_no: None,
                    merchant_refund_no: None,
                    amount_fen: fen,
                    time,
                    line,
                });
            }
            ("REFUND", "REFUNDED") => {
                refunds.push((cols.get(&row, "original").to_string(), reference, pay_no, fen, time, line))
            }
            ("SALE" | "REFUND", _) => {}
            (op, _) => return Err(StatementError::Line { line, reason: format!("op {op:?} is not SALE or REFUND") }),
        }
    }
    for (original, reference, refund_pay_no, fen, time, line) in refunds {
        out.push(Entry {
            kind: EntryKind::Refund,
            pay_no: by_ref.get(&original).cloned().unwrap_or_default(),
            merchant_no: original,
            refund_no: Some(refund_pay_no).filter(|v| !v.is_empty()),
            merchant_refund_no: Some(reference),
            amount_fen: fen,
            time,
            line,
        });
    }
    Ok(out)
}

pub fn parse(source: Source, bytes: &[u8]) -> Result<Vec<Entry>, StatementError> {
    let text = decode(bytes)?;
    match source {
        Source::Wechat => parse_wechat(&text),
        Source::Alipay => parse_alipay(&text),
        Source::Pos => parse_pos(&text),
    }
}

/// What kind of difference a statement line and the journal show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// The wallet has money movement the journal does not record as done: a payment with no
    /// HIS order, or one the HIS was told failed, was cancelled or reversed.
    MissingInJournal,
    /// The journal says collected (the HIS marked the order paid) and the statement has no payment.
    MissingInStatement,
    /// Both have it, with different amounts.
    AmountDiffers,
    /// The journal says refunded and the statement has no refund: it never reached finance.
    RefundMissing,
    /// The journal says collected and the wallet reversed the payment.
    ReversedAfterSuccess,
}

impl DiffKind {
    pub fn zh(self) -> &'static str {
        match self {
            DiffKind::MissingInJournal => "账单有、本系统无",
            DiffKind::MissingInStatement => "本系统有、账单无",
            DiffKind::AmountDiffers => "金额不一致",
            DiffKind::RefundMissing => "退款未到账单",
            DiffKind::ReversedAfterSuccess => "成功后被撤销",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub kind: DiffKind,
    pub order_no: Option<String>,
    pub refund_no: Option<String>,
    pub pay_no: Option<String>,
    pub merchant_no: Option<String>,
    pub journal_amount: Option<String>,
    pub statement_amount: Option<String>,
    pub journal_status: Option<String>,
    /// Line in the statement file.
    pub line: Option<usize>,
    pub detail: String,
    /// The journal order it concerns (`OrderRow::id` of the rows matched): the hub names its window by it.
    #[serde(skip)]
    pub order_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatchReport {
    pub date: String,
    pub source: Source,
    pub statement_lines: usize,
    pub matched: usize,
    pub differences: Vec<Difference>,
}

impl MatchReport {
    pub fn count(&self, k: DiffKind) -> usize {
        self.differences.iter().filter(|d| d.kind == k).count()
    }

    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "账单 / statement ({:?}, {}): {} lines, {} matched, {} differences",
            self.source,
            self.date,
            self.statement_lines,
            self.matched,
            self.differences.len()
        );
        for d in &self.differences {
            let _ = writeln!(s, "  {}", d.line_text());
        }
        s
    }
}

impl Difference {
    /// One line of a summary: kind, numbers, amounts, the line in the file, what to do.
    pub fn line_text(&self) -> String {
        let d = self;
        format!(
            "[{}] {} order {}{} merchant_no {} pay_no {} journal {} statement {}{}: {}",
            serde_json::to_value(d.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
            d.kind.zh(),
            d.order_no.as_deref().unwrap_or("-"),
            d.refund_no.as_deref().map(|r| format!(" refund {r}")).unwrap_or_default(),
            d.merchant_no.as_deref().unwrap_or("-"),
            d.pay_no.as_deref().unwrap_or("-"),
            d.journal_amount.as_deref().unwrap_or("-"),
            d.statement_amount.as_deref().unwrap_or("-"),
            d.line.map(|l| format!(" (line {l})")).unwrap_or_default(),
            d.detail
        )
    }
}

/// Matches a statement of `date` (`YYYY-MM-DD`) against the journal.
///
/// `day` holds the journal's orders of that day (these must all appear in the statement);
/// `around` holds the orders of the day before and after as well, so a statement line whose
/// order finished just across midnight on the other clock is found rather than reported.
pub fn match_day(date: &str, source: Source, entries: &[Entry], day: &[OrderRow], around: &[OrderRow]) -> MatchReport {
    // Index the journal by the numbers a statement can carry.
    let mut by_pay: HashMap<&str, &OrderRow> = HashMap::new();
    let mut by_ref: HashMap<&str, &OrderRow> = HashMap::new();
    for o in around.iter().chain(day) {
        if let Some(p) = o.pay_order_no.as_deref().filter(|p| !p.is_empty()) {
            by_pay.insert(p, o);
        }
        if let Some(r) = o.pos_ref.as_deref() {
            by_ref.insert(r, o);
        }
    }
    let channel_ok = |o: &OrderRow| match source {
        Source::Wechat => o.channel.as_deref() == Some("WECHAT"),
        Source::Alipay => o.channel.as_deref() == Some("ALIPAY"),
        Source::Pos => true,
    };
    let mut differences = Vec::new();
    let mut seen: HashSet<i64> = HashSet::new();
    let mut matched = 0;
    // Reversals and full refunds of a collection, to explain a journal REVERSED.
    let reversed_pay: HashSet<&str> = entries
        .iter()
        .filter(|e| e.kind == EntryKind::Reversal)
        .flat_map(|e| [e.pay_no.as_str(), e.merchant_no.as_str()])
        .collect();
    let mut refunded_total: HashMap<&str, i64> = HashMap::new();
    for e in entries.iter().filter(|e| e.kind == EntryKind::Refund) {
        *refunded_total.entry(e.pay_no.as_str()).or_default() += e.amount_fen;
        if !e.merchant_no.is_empty() {
            *refunded_total.entry(e.merchant_no.as_str()).or_default() += e.amount_fen;
        }
    }

    let diff = |kind, o: Option<&OrderRow>, e: Option<&Entry>, detail: String| Difference {
        kind,
        order_no: o.map(|o| o.order_no.clone()),
        refund_no: o.and_then(|o| o.refund_no.clone()),
        pay_no: o
            .and_then(|o| o.pay_order_no.clone())
            .or_else(|| e.map(|e| e.refund_no.clone().unwrap_or(e.pay_no.clone()))),
        merchant_no: e
            .map(|e| e.merchant_refund_no.clone().unwrap_or(e.merchant_no.clone()))
            .or_else(|| o.and_then(|o| o.pos_ref.clone())),
        journal_amount: o.map(|o| crate::engine::fmt_amount(o.amount_fen)),
        statement_amount: e
            .map(|e| signed_yuan(if e.kind == EntryKind::Refund { -e.amount_fen } else { e.amount_fen })),
        journal_status: o.map(|o| o.state.as_str().to_string()),
        line: e.map(|e| e.line),
        detail,
        order_id: o.map(|o| o.id),
    };

    for e in entries {
        match e.kind {
            EntryKind::Payment | EntryKind::Reversal => {
                let o = by_pay
                    .get(e.pay_no.as_str())
                    .or_else(|| by_ref.get(e.merchant_no.as_str()))
                    .copied()
                    .filter(|o| o.kind == Kind::Sale);
                let Some(o) = o else {
                    if e.kind == EntryKind::Payment {
                        differences.push(diff(
                            DiffKind::MissingInJournal,
                            None,
                            Some(e),
                            "a payment no HIS order knows of: find who was charged and refund or book it".into(),
                        ));
                    }
                    continue;
                };
                seen.insert(o.id);
                let amount_ok = o.amount_fen == e.amount_fen;
                match (e.kind, o.state) {
                    (EntryKind::Payment, State::Success) if amount_ok => matched += 1,
                    (EntryKind::Payment | EntryKind::Reversal, State::Success | State::Reversed) if !amount_ok => {
                        differences.push(diff(DiffKind::AmountDiffers, Some(o), Some(e), "amounts differ".into()))
                    }
                    (EntryKind::Reversal, State::Reversed) => matched += 1,
                    (EntryKind::Reversal, State::Success) => differences.push(diff(
                        DiffKind::ReversedAfterSuccess,
                        Some(o),
                        Some(e),
                        "the HIS was told paid; the wallet reversed the payment".into(),
                    )),
                    (EntryKind::Reversal, _) => matched += 1,
                    (EntryKind::Payment, State::Reversed) => {
                        // Alipay shows a reversal as the payment plus a full refund.
                        let back = refunded_total.get(e.pay_no.as_str()).copied().unwrap_or(0)
                            + refunded_total.get(e.merchant_no.as_str()).copied().unwrap_or(0);
                        if back >= e.amount_fen || reversed_pay.contains(e.pay_no.as_str()) {
                            matched += 1;
                        } else {
                            differences.push(diff(
                                DiffKind::MissingInJournal,
                                Some(o),
                                Some(e),
                                "the journal says reversed (money back); the statement says collected".into(),
                            ));
                        }
                    }
                    (_, st) => differences.push(diff(
                        DiffKind::MissingInJournal,
                        Some(o),
                        Some(e),
                        format!("the statement says collected; the HIS was told {}", st.as_str()),
                    )),
                }
            }
            EntryKind::Refund => {
                let o = e
                    .refund_no
                    .as_deref()
                    .and_then(|r| by_pay.get(r))
                    .or_else(|| e.merchant_refund_no.as_deref().and_then(|r| by_ref.get(r)))
                    .copied()
                    .filter(|o| o.kind == Kind::Refund);
                match o {
                    Some(o) => {
                        seen.insert(o.id);
                        if o.state != State::Refunded {
                            differences.push(diff(
                                DiffKind::MissingInJournal,
                                Some(o),
                                Some(e),
                                format!("the statement has the refund; the HIS was told {}", o.state.as_str()),
                            ));
                        } else if o.amount_fen.abs() != e.amount_fen {
                            differences.push(diff(
                                DiffKind::AmountDiffers,
                                Some(o),
                                Some(e),
                                "refund amounts differ".into(),
                            ));
                        } else {
                            matched += 1;
                        }
                    }
                    None => {
                        // A full refund of a collection the journal holds as REVERSED is that reversal.
                        let sale = by_pay
                            .get(e.pay_no.as_str())
                            .or_else(|| by_ref.get(e.merchant_no.as_str()))
                            .copied()
                            .filter(|o| o.kind == Kind::Sale);
                        if let Some(s) = sale.filter(|s| s.state == State::Reversed && s.amount_fen == e.amount_fen) {
                            seen.insert(s.id);
                            matched += 1;
                        } else {
                            differences.push(diff(
                                DiffKind::MissingInJournal,
                                sale,
                                Some(e),
                                "a refund no HIS refund order knows of".into(),
                            ));
                        }
                    }
                }
            }
        }
    }
    for o in day.iter().filter(|o| !seen.contains(&o.id) && channel_ok(o)) {
        match (o.kind, o.state) {
            (Kind::Sale, State::Success) => differences.push(diff(
                DiffKind::MissingInStatement,
                Some(o),
                None,
                "the HIS was told paid; the statement has no such payment".into(),
            )),
            (Kind::Refund, State::Refunded) => differences.push(diff(
                DiffKind::RefundMissing,
                Some(o),
                None,
                "the HIS was told refunded; the statement has no such refund".into(),
            )),
            _ => {}
        }
    }
    MatchReport { date: date.to_string(), source, statement_lines: entries.len(), matched, differences }
}

/// Reads a statement file and matches it against the journal's `date` (`YYYY-MM-DD`).
pub fn match_file(
    journal: &crate::journal::Journal,
    date: &str,
    source: Source,
    bytes: &[u8],
) -> Result<MatchReport, MatchError> {
    crate::recon::pos_day(date).map_err(|_| MatchError::BadDate(date.to_string()))?;
    let entries = parse(source, bytes)?;
    let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| MatchError::BadDate(date.into()))?;
    let fmt = |d: chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
    let day = journal.orders_of_day(date)?;
    let around = journal.orders_between(&fmt(d - chrono::Days::new(1)), &fmt(d + chrono::Days::new(1)))?;
    Ok(match_day(date, source, &entries, &day, &around))
}

#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    #[error("{0:?} is not a date of the form YYYY-MM-DD")]
    BadDate(String),
    #[error("statement: {0}")]
    Statement(#[from] StatementError),
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_amounts() {
        assert_eq!(parse_yuan("12.50"), Some(1250));
        assert_eq!(parse_yuan("-3.00"), Some(-300));
        assert_eq!(parse_yuan("0.5"), Some(50));
        assert_eq!(parse_yuan("7"), Some(700));
        assert_eq!(parse_yuan("1.234"), None);
        assert_eq!(parse_yuan("1,000.00"), None);
        assert_eq!(parse_yuan(""), None);
    }

    #[test]
    fn csv_cells_with_backticks_and_quotes() {
        assert_eq!(cells("`a,`b c,\"x,\"\"y\"\"\""), ["a", "b c", "x,\"y\""]);
    }

    #[test]
    fn gbk_is_decoded() {
        let (bytes, _, _) = encoding_rs::GBK.encode("#支付宝业务明细查询");
        assert_eq!(decode(&bytes).unwrap(), "#支付宝业务明细查询");
        assert_eq!(decode("\u{feff}abc".as_bytes()).unwrap(), "abc");
    }

    #[test]
    fn wrong_file_says_so() {
        let e = parse(Source::Wechat, b"foo,bar\n1,2\n").unwrap_err();
        assert!(matches!(e, StatementError::NoHeader(_)), "{e}");
        assert!(e.to_string().contains("微信订单号"));
    }

    #[test]
    fn the_layout_is_told_by_its_header() {
        let wechat = "微信支付账单\n交易时间,公众账号ID,商户号,微信订单号,商户订单号,交易状态,应结订单金额,微信退款单号,商户退款单号,退款金额,订单金额\n";
        assert_eq!(detect(wechat.as_bytes()), Ok(Source::Wechat));
        let (alipay, _, _) = encoding_rs::GBK.encode(
            "#支付宝业务明细查询\n支付宝交易号,商户订单号,业务类型,完成时间,订单金额（元）,退款批次号/请求号\n",
        );
        assert_eq!(detect(&alipay), Ok(Source::Alipay));
        let pos = "time,reference,op,status,channel,pay_no,original,amount_fen\n";
        assert_eq!(detect(pos.as_bytes()), Ok(Source::Pos));
        assert!(matches!(detect(b"foo,bar\n"), Err(StatementError::NoHeader(_))));
    }
}
