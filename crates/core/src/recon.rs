//! Reconciliation: the day's transactions and totals, built from the journal
//! (docs/his-interface.md §8).
//!
//! A final order belongs to the local day its outcome became known (`finished_at`); an order
//! still open belongs to the day it arrived and is listed as an open item on every report
//! until it is resolved. Open items are reported, never waited for.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use hisbridge_protocol::{Channel, PosTotals};
use serde::{Serialize, Serializer};

use crate::amount::yuan;
use crate::envelope::{Direction, Key};
use crate::journal::{Journal, JournalError, Kind, OrderRow, State};

fn ser_yuan<S: Serializer>(fen: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&signed_yuan(*fen))
}

/// `12.50`, `-3.00`: yuan with two decimals, a minus sign only when negative.
pub fn signed_yuan(fen: i64) -> String {
    let y = yuan(fen.unsigned_abs());
    if fen < 0 {
        format!("-{y}")
    } else {
        y
    }
}

/// Sums for one channel, one terminal, or the whole day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// The channel (`WECHAT`, `ALIPAY`, `OTHER`), the terminal ID, or `ALL`.
    pub key: String,
    /// Collections that stand (SUCCESS).
    pub sales: u64,
    #[serde(serialize_with = "ser_yuan", rename = "sales_amount")]
    pub sales_fen: i64,
    /// Refunds done (REFUNDED).
    pub refunds: u64,
    #[serde(serialize_with = "ser_yuan", rename = "refunds_amount")]
    pub refunds_fen: i64,
    /// Collected minus refunded.
    #[serde(serialize_with = "ser_yuan", rename = "net_amount")]
    pub net_fen: i64,
    /// Collections cancelled after payment: the money went back (REVERSED).
    pub reversed: u64,
    #[serde(serialize_with = "ser_yuan", rename = "reversed_amount")]
    pub reversed_fen: i64,
    /// Definitively not paid (FAILED, CANCELLED).
    pub failed: u64,
    pub cancelled: u64,
    /// Outcome not final yet (open items of the day).
    pub open: u64,
}

impl Totals {
    pub fn new(key: &str) -> Self {
        Totals { key: key.to_string(), ..Default::default() }
    }

    pub fn add(&mut self, o: &OrderRow) {
        let fen = o.amount_fen.abs();
        match o.state {
            State::Success => {
                self.sales += 1;
                self.sales_fen += fen;
            }
            State::Refunded => {
                self.refunds += 1;
                self.refunds_fen += fen;
            }
            State::Reversed => {
                self.reversed += 1;
                self.reversed_fen += fen;
            }
            State::Failed => self.failed += 1,
            State::Cancelled => self.cancelled += 1,
            _ => self.open += 1,
        }
        self.net_fen = self.sales_fen - self.refunds_fen;
    }
}

/// One transaction in the report: a collection or a refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Txn {
    pub order_no: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_no: Option<String>,
    /// `SALE` or `REFUND`.
    pub kind: &'static str,
    pub terminal_id: String,
    pub device_id: Option<String>,
    pub channel: Option<String>,
    /// Signed like the instruction: `+12.50` collects, `-3.00` refunds.
    pub amount: String,
    /// The status the HIS was told (docs/his-interface.md §3.4).
    pub status: crate::his::Status,
    /// WeChat transaction_id / Alipay trade_no; for a refund, the wallet's refund number.
    pub pay_order_no: Option<String>,
    /// The merchant order number the POS used with the wallet (out_trade_no / out_refund_no).
    pub merchant_order_no: Option<String>,
    /// For a collection: what has been refunded of it so far (any day).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refunded: Option<String>,
    pub error_code: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
    #[serde(skip)]
    pub amount_fen: i64,
}

impl Txn {
    fn of(o: &OrderRow, refunded: &HashMap<String, i64>) -> Self {
        Txn {
            order_no: o.order_no.clone(),
            refund_no: o.refund_no.clone(),
            kind: o.kind.as_str(),
            terminal_id: o.terminal_id.clone(),
            device_id: o.device_id.clone(),
            channel: o.channel.clone(),
            amount: crate::engine::fmt_amount(o.amount_fen),
            status: o.state.his_status(),
            pay_order_no: o.pay_order_no.clone(),
            merchant_order_no: o.pos_ref.clone(),
            refunded: (o.kind == Kind::Sale && o.state == State::Success)
                .then(|| yuan(refunded.get(&o.order_no).copied().unwrap_or(0).max(0) as u64)),
            error_code: o.error_code.clone(),
            created_at: o.created_at.clone(),
            finished_at: o.finished_at.clone(),
            amount_fen: o.amount_fen,
        }
    }
}

/// Collections and refunds of one hour, by channel (the dashboard's chart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HourLine {
    pub hour: u8,
    pub channel: String,
    pub sales: u64,
    #[serde(serialize_with = "ser_yuan", rename = "sales_amount")]
    pub sales_fen: i64,
    pub refunds: u64,
    #[serde(serialize_with = "ser_yuan", rename = "refunds_amount")]
    pub refunds_fen: i64,
}

/// The bridge's journal against the POS's own totals, one line per channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PosLine {
    pub channel: String,
    pub journal_sales: u64,
    pub pos_sales: u64,
    #[serde(serialize_with = "ser_yuan")]
    pub journal_sales_amount: i64,
    #[serde(serialize_with = "ser_yuan")]
    pub pos_sales_amount: i64,
    pub journal_refunds: u64,
    pub pos_refunds: u64,
    #[serde(serialize_with = "ser_yuan")]
    pub journal_refunds_amount: i64,
    #[serde(serialize_with = "ser_yuan")]
    pub pos_refunds_amount: i64,
    pub matches: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PosCheck {
    /// When the POS answered TOTALS.
    pub fetched_at: String,
    pub lines: Vec<PosLine>,
    /// Channels whose figures differ.
    pub differences: usize,
}

/// One day's reconciliation (the HIS file's plaintext, the CSV, the terminal summary and the
/// dashboard all come from this).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayReport {
    pub v: u32,
    /// Always `reconciliation`.
    pub kind: &'static str,
    /// `YYYY-MM-DD`, local.
    pub date: String,
    pub device_id: String,
    pub generated_at: String,
    pub totals: Totals,
    pub by_channel: Vec<Totals>,
    pub by_terminal: Vec<Totals>,
    pub by_hour: Vec<HourLine>,
    pub transactions: Vec<Txn>,
    /// Orders whose outcome is still open (this day or earlier): they need attention, and
    /// block nothing.
    pub open_items: Vec<Txn>,
    /// Instructions refused before they became orders.
    pub rejected: i64,
    /// The POS's totals, when the bridge has them for this day.
    pub pos: Option<PosCheck>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0:?} is not a date of the form YYYY-MM-DD")]
    BadDate(String),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot write the reconciliation file: {0}")]
    Write(#[from] std::io::Error),
}

/// Checks a `YYYY-MM-DD` date and returns it as the POS's `YYYYMMDD`.
pub fn pos_day(date: &str) -> Result<String, ReportError> {
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .ok()
        .filter(|d| d.format("%Y-%m-%d").to_string() == date)
        .map(|d| d.format("%Y%m%d").to_string())
        .ok_or_else(|| ReportError::BadDate(date.to_string()))
}

fn hour_of(ts: &str) -> u8 {
    ts.get(11..13).and_then(|h| h.parse().ok()).filter(|h| *h < 24).unwrap_or(0)
}

fn channel_key(o: &OrderRow) -> &str {
    o.channel.as_deref().filter(|c| !c.is_empty()).unwrap_or("NONE")
}

impl DayReport {
    /// Builds the report of `date` (`YYYY-MM-DD`) from the journal.
    pub fn build(journal: &Journal, date: &str, device_id: &str) -> Result<Self, ReportError> {
        let pos_date = pos_day(date)?;
        let rows = journal.orders_of_day(date)?;
        let refunded = journal.refunded_for_day(date)?;
        let open = journal.open_items(date)?;
        let rejected = journal.rejects_of_day(date)?;
        let pos = journal.pos_totals(&pos_date)?;
        Ok(Self::from_rows(date, device_id, &rows, &open, &refunded, rejected, pos))
    }

    /// The pure part of [`DayReport::build`].
    pub fn from_rows(
        date: &str,
        device_id: &str,
        rows: &[OrderRow],
        open: &[OrderRow],
        refunded: &HashMap<String, i64>,
        rejected: i64,
        pos: Option<(PosTotals, String)>,
    ) -> Self {
        let mut totals = Totals::new("ALL");
        let mut by_channel: BTreeMap<&str, Totals> = BTreeMap::new();
        let mut by_terminal: BTreeMap<&str, Totals> = BTreeMap::new();
        let mut by_hour: BTreeMap<(u8, &str), HourLine> = BTreeMap::new();
        for o in rows.iter().filter(|o| o.state.is_final()) {
            totals.add(o);
            by_terminal.entry(&o.terminal_id).or_insert_with(|| Totals::new(&o.terminal_id)).add(o);
            // Orders that moved no money have no channel; they count in ALL and by terminal.
            if matches!(o.state, State::Success | State::Refunded | State::Reversed) || o.channel.is_some() {
                let c = channel_key(o);
                by_channel.entry(c).or_insert_with(|| Totals::new(c)).add(o);
            }
            if matches!(o.state, State::Success | State::Refunded) {
                let h = hour_of(o.finished_at.as_deref().unwrap_or(&o.created_at));
                let c = channel_key(o);
                let line = by_hour.entry((h, c)).or_insert_with(|| HourLine {
                    hour: h,
                    channel: c.to_string(),
                    sales: 0,
                    sales_fen: 0,
                    refunds: 0,
                    refunds_fen: 0,
                });
                if o.state == State::Success {
                    line.sales += 1;
                    line.sales_fen += o.amount_fen.abs();
                } else {
                    line.refunds += 1;
                    line.refunds_fen += o.amount_fen.abs();
                }
            }
        }
        // Open orders of the day show in the totals' `open` count; their list is `open_items`.
        for o in rows.iter().filter(|o| !o.state.is_final()) {
            totals.add(o);
            by_terminal.entry(&o.terminal_id).or_insert_with(|| Totals::new(&o.terminal_id)).add(o);
        }
        let pos = pos.map(|(t, fetched_at)| {
            let mut channels: Vec<Channel> = vec![Channel::Wechat, Channel::Alipay];
            for l in &t.lines {
                if !channels.contains(&l.channel) {
                    channels.push(l.channel);
                }
            }
            if by_channel.contains_key(Channel::Other.as_str()) && !channels.contains(&Channel::Other) {
                channels.push(Channel::Other);
            }
            let lines: Vec<PosLine> = channels
                .into_iter()
                .map(|c| {
                    let j = by_channel.get(c.as_str()).cloned().unwrap_or_default();
                    let p = t.line(c);
                    let mut l = PosLine {
                        channel: c.as_str().to_string(),
                        journal_sales: j.sales,
                        pos_sales: p.sales,
                        journal_sales_amount: j.sales_fen,
                        pos_sales_amount: p.sales_fen as i64,
                        journal_refunds: j.refunds,
                        pos_refunds: p.refunds,
                        journal_refunds_amount: j.refunds_fen,
                        pos_refunds_amount: p.refunds_fen as i64,
                        matches: false,
                    };
                    l.matches = l.journal_sales == l.pos_sales
                        && l.journal_sales_amount == l.pos_sales_amount
                        && l.journal_refunds == l.pos_refunds
                        && l.journal_refunds_amount == l.pos_refunds_amount;
                    l
                })
                .collect();
            PosCheck { fetched_at, differences: lines.iter().filter(|l| !l.matches).count(), lines }
        });
        DayReport {
            v: 1,
            kind: "reconciliation",
            date: date.to_string(),
            device_id: device_id.to_string(),
            generated_at: crate::journal::now_str(),
            totals,
            by_channel: by_channel.into_values().collect(),
            by_terminal: by_terminal.into_values().collect(),
            by_hour: by_hour.into_values().collect(),
            transactions: rows.iter().map(|o| Txn::of(o, refunded)).collect(),
            open_items: open.iter().map(|o| Txn::of(o, refunded)).collect(),
            rejected,
            pos,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("report serializes")
    }

    /// The finance CSV: UTF-8 with a byte-order mark (Excel opens it as UTF-8), a transactions
    /// table, then totals by channel and by terminal, each after one empty line.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("\u{feff}");
        out.push_str(
            "完成时间(finished_at),HIS订单号(order_no),退款单号(refund_no),类型(kind),终端(terminal_id),\
             设备(device_id),渠道(channel),金额(amount),状态(status),支付单号(pay_order_no),\
             商户单号(merchant_order_no),已退款(refunded),错误码(error_code),创建时间(created_at)\r\n",
        );
        for t in self.transactions.iter() {
            let status = serde_json::to_value(t.status).ok().and_then(|v| v.as_str().map(str::to_string));
            let cells = [
                t.finished_at.as_deref().unwrap_or(""),
                &t.order_no,
                t.refund_no.as_deref().unwrap_or(""),
                t.kind,
                &t.terminal_id,
                t.device_id.as_deref().unwrap_or(""),
                t.channel.as_deref().unwrap_or(""),
                &t.amount,
                status.as_deref().unwrap_or(""),
                t.pay_order_no.as_deref().unwrap_or(""),
                t.merchant_order_no.as_deref().unwrap_or(""),
                t.refunded.as_deref().unwrap_or(""),
                t.error_code.as_deref().unwrap_or(""),
                &t.created_at,
            ];
            push_row(&mut out, &cells);
        }
        for (title, lines) in [("渠道(channel)", &self.by_channel), ("终端(terminal_id)", &self.by_terminal)] {
            out.push_str("\r\n");
            out.push_str(&format!(
                "{title},收款笔数(sales),收款金额(sales_amount),退款笔数(refunds),退款金额(refunds_amount),\
                 净额(net_amount),撤销笔数(reversed),撤销金额(reversed_amount),失败(failed),取消(cancelled),未决(open)\r\n"
            ));
            for l in lines.iter().chain(std::iter::once(&self.totals)) {
                let cells = [
                    l.key.clone(),
                    l.sales.to_string(),
                    signed_yuan(l.sales_fen),
                    l.refunds.to_string(),
                    signed_yuan(l.refunds_fen),
                    signed_yuan(l.net_fen),
                    l.reversed.to_string(),
                    signed_yuan(l.reversed_fen),
                    l.failed.to_string(),
                    l.cancelled.to_string(),
                    l.open.to_string(),
                ];
                push_row(&mut out, &cells.iter().map(String::as_str).collect::<Vec<_>>());
            }
        }
        out
    }

    /// The terminal summary of `hisbridge report`.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "对账日 / Day: {}    设备 / Device: {}", self.date, self.device_id);
        let _ = writeln!(
            s,
            "{:<10} {:>6} {:>14} {:>6} {:>14} {:>14} {:>6} {:>6}",
            "channel", "sales", "collected", "refnd", "refunded", "net", "revd", "open"
        );
        for l in self.by_channel.iter().chain(std::iter::once(&self.totals)) {
            let _ = writeln!(
                s,
                "{:<10} {:>6} {:>14} {:>6} {:>14} {:>14} {:>6} {:>6}",
                l.key,
                l.sales,
                signed_yuan(l.sales_fen),
                l.refunds,
                signed_yuan(l.refunds_fen),
                signed_yuan(l.net_fen),
                l.reversed,
                l.open
            );
        }
        let _ = writeln!(
            s,
            "transactions {}, failed {}, cancelled {}, refused instructions {}",
            self.transactions.len(),
            self.totals.failed,
            self.totals.cancelled,
            self.rejected
        );
        match &self.pos {
            None => {
                let _ = writeln!(s, "POS 汇总 / POS totals: not fetched for this day");
            }
            Some(p) if p.differences == 0 => {
                let _ = writeln!(s, "POS 汇总一致 / POS totals match (fetched {})", p.fetched_at);
            }
            Some(p) => {
                let _ = writeln!(s, "POS 汇总不一致 / POS totals DIFFER (fetched {}):", p.fetched_at);
                for l in p.lines.iter().filter(|l| !l.matches) {
                    let _ = writeln!(
                        s,
                        "  {}: journal {} sales {} / {} refunds {}; POS {} sales {} / {} refunds {}",
                        l.channel,
                        l.journal_sales,
                        signed_yuan(l.journal_sales_amount),
                        l.journal_refunds,
                        signed_yuan(l.journal_refunds_amount),
                        l.pos_sales,
                        signed_yuan(l.pos_sales_amount),
                        l.pos_refunds,
                        signed_yuan(l.pos_refunds_amount)
                    );
                }
            }
        }
        if self.open_items.is_empty() {
            let _ = writeln!(s, "未决订单 / open items: none");
        } else {
            let _ = writeln!(
                s,
                "未决订单 / OPEN ITEMS ({}): outcome not known yet, resolved by query",
                self.open_items.len()
            );
            for t in &self.open_items {
                let _ = writeln!(
                    s,
                    "  {} {} {} {:?} since {}",
                    t.order_no,
                    t.refund_no.as_deref().unwrap_or(""),
                    t.amount,
                    t.status,
                    t.created_at
                );
            }
        }
        s
    }
}

fn push_row(out: &mut String, cells: &[&str]) {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&csv_cell(c));
    }
    out.push_str("\r\n");
}

/// Quotes a cell when needed, and defuses text a spreadsheet would run as a formula.
pub fn csv_cell(c: &str) -> String {
    let c = if c.starts_with(['=', '+', '-', '@']) && c.parse::<f64>().is_err() { format!("'{c}") } else { c.into() };
    if c.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", c.replace('"', "\"\""))
    } else {
        c
    }
}

/// File name of a day's reconciliation file (`RECON-YYYYMMDD.res`, encrypted) and CSV.
pub fn file_names(date: &str) -> Result<(String, String), ReportError> {
    let d = pos_day(date)?;
    Ok((format!("RECON-{d}.{}", crate::folders::RESULT_EXT), format!("RECON-{d}.csv")))
}

/// Writes the encrypted file (and the CSV when a folder is given) atomically; returns the paths.
pub fn write_files(
    report: &DayReport,
    key: &Key,
    folder: &Path,
    csv_folder: Option<&Path>,
) -> Result<Vec<PathBuf>, ReportError> {
    let (res, csv) = file_names(&report.date)?;
    std::fs::create_dir_all(folder)?;
    let sealed = key.seal(Direction::ToHis, report.to_json().as_bytes());
    let mut out = vec![crate::folders::write_atomic(folder, &res, sealed.as_bytes())?];
    if let Some(dir) = csv_folder {
        std::fs::create_dir_all(dir)?;
        out.push(crate::folders::write_atomic(dir, &csv, report.to_csv().as_bytes())?);
    }
    Ok(out)
}

/// Asks the running engine for the POS's totals of `date` (`YYYY-MM-DD`); they are journaled
/// when they arrive.
pub async fn fetch_pos_totals(
    control: &tokio::sync::mpsc::Sender<crate::engine::Control>,
    date: &str,
) -> Result<PosTotals, String> {
    let day = pos_day(date).map_err(|e| e.to_string())?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    control
        .send(crate::engine::Control::PosTotals { date: day, reply: tx })
        .await
        .map_err(|_| "the bridge is not running".to_string())?;
    match tokio::time::timeout(std::time::Duration::from_secs(30), rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err("the bridge stopped".into()),
        Err(_) => Err("the POS did not answer in 30 s (a payment may be in progress)".into()),
    }
}

/// Which day's file is due at `now`: today once the configured time has passed, else yesterday.
pub fn due_day(now: chrono::NaiveDateTime, at: chrono::NaiveTime) -> chrono::NaiveDate {
    if now.time() >= at {
        now.date()
    } else {
        now.date() - chrono::Days::new(1)
    }
}

/// Fetches the POS totals (best effort), builds the day's report and writes its files.
pub async fn produce(
    cfg: &crate::config::Reconciliation,
    journal_path: &Path,
    key: &Key,
    device_id: &str,
    control: &tokio::sync::mpsc::Sender<crate::engine::Control>,
    date: &str,
) -> Result<(DayReport, Vec<PathBuf>), ReportError> {
    if let Err(e) = fetch_pos_totals(control, date).await {
        tracing::warn!(date, error = %e, "reconciliation without fresh POS totals");
    }
    let journal = Journal::open(journal_path)?;
    let report = DayReport::build(&journal, date, device_id)?;
    let paths = write_files(&report, key, &cfg.folder, cfg.csv_folder.as_deref())?;
    Ok((report, paths))
}

/// The scheduler: writes each day's file once its time has passed, catching up after the
/// bridge was down at that time. A day before the journal's first order gets no file.
pub async fn schedule(
    cfg: crate::config::Reconciliation,
    journal_path: PathBuf,
    key: std::sync::Arc<Key>,
    device_id: String,
    control: tokio::sync::mpsc::Sender<crate::engine::Control>,
) {
    loop {
        let date = due_day(chrono::Local::now().naive_local(), cfg.at).format("%Y-%m-%d").to_string();
        let (name, _) = file_names(&date).expect("a formatted date");
        // The file's presence first: the journal is opened only when a file is due.
        let wanted = !cfg.folder.join(&name).exists() && {
            let first = Journal::open(&journal_path).and_then(|j| j.first_day());
            matches!(&first, Ok(Some(f)) if *f <= date)
        };
        if wanted {
            match produce(&cfg, &journal_path, &key, &device_id, &control, &date).await {
                Ok((r, paths)) => tracing::info!(
                    date,
                    transactions = r.transactions.len(),
                    open_items = r.open_items.len(),
                    file = %paths[0].display(),
                    "reconciliation file written"
                ),
                Err(e) => tracing::error!(date, error = %e, "cannot write the reconciliation file"),
            }
            // A day's report of a busy hospital is tens of MB while it is built: give it back.
            crate::diag::release_memory();
        }
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_day_turns_at_the_configured_time() {
        let at = chrono::NaiveTime::from_hms_opt(23, 50, 0).unwrap();
        let t = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
        assert_eq!(due_day(t("2026-11-26 23:49"), at).to_string(), "2026-11-25");
        assert_eq!(due_day(t("2026-11-26 23:50"), at).to_string(), "2026-11-26");
        assert_eq!(due_day(t("2026-11-27 00:10"), at).to_string(), "2026-11-26");
    }

    #[test]
    fn dates_are_checked() {
        assert_eq!(pos_day("2026-11-26").unwrap(), "20261126");
        for bad in ["2026-11-31", "20261126", "2026-1-26", "", "2026-11-26x"] {
            assert!(pos_day(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("-3.00"), "-3.00");
        assert_eq!(csv_cell("+12.50"), "+12.50");
    }
}
