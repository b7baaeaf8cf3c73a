//! Hospital-wide reports from the hub: the day across every window, and the merchant's bill
//! matched against every window's journal (`hisbridge hub report`).
//!
//! The hub's orders are read back as [`OrderRow`]s, so the totals and the bill's matching are
//! the single PC's own ([`crate::recon::DayReport::from_rows`], [`crate::statement::match_day`]):
//! one meaning of "collected", "refunded" and each kind of difference everywhere.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::{Client, HubError, Result};
use crate::journal::{CancelledBy, Kind, OrderRow, State};
use crate::recon::{DayReport, HourLine, Totals};
use crate::statement::{Difference, Entry, Source};

/// One order on the hub, with the window it was taken at.
#[derive(Debug, Clone)]
pub struct HubOrder {
    pub window: String,
    pub journal_id: String,
    pub row: OrderRow,
}

/// The local UTC offset the report is written in (the hospital's: the PC running it).
fn offset() -> (String, i32) {
    let secs = chrono::Local::now().offset().local_minus_utc();
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.abs();
    (format!("{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60), secs)
}

/// Orders whose day lies in `from..=to` (`YYYY-MM-DD`), every window's. Each gets an `id`
/// unique within the result (the journal's own ids repeat across windows).
pub async fn orders_between(client: &Client, from: &str, to: &str) -> Result<Vec<HubOrder>> {
    let (off, secs) = offset();
    let ts =
        |c: &str| format!("to_char({c} AT TIME ZONE make_interval(secs => $3), 'YYYY-MM-DD\"T\"HH24:MI:SS.MS') || $4");
    let sql = format!(
        "SELECT COALESCE(w.window_name, j.bridge::text), o.journal_id, o.key, o.order_no, o.refund_no, o.terminal_id, \
           o.kind, o.amount_fen, o.description, o.operator, o.state, o.attempt, o.pos_ref, o.orig_pos_ref, o.device_id, \
           o.pay_order_no, o.channel, o.pos_code, o.pos_message, o.error_code, o.cancelled_by, {}, {}, {}, {} \
         FROM hisbridge.orders o JOIN hisbridge.journals j USING (journal_id) \
           LEFT JOIN hisbridge.windows w USING (journal_id) \
         WHERE o.day BETWEEN $1::text::date AND $2::text::date ORDER BY o.created_at, o.journal_id, o.order_id",
        ts("o.created_at"),
        ts("o.updated_at"),
        ts("o.sent_at"),
        ts("o.finished_at"),
    );
    let rows = client.query(&sql, &[&from, &to, &(secs as f64), &off]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let state: String = r.get(10);
        let kind: String = r.get(6);
        let cancelled_by: Option<String> = r.get(20);
        out.push(HubOrder {
            window: r.get(0),
            journal_id: r.get(1),
            row: OrderRow {
                id: i as i64 + 1,
                key: r.get(2),
                order_no: r.get(3),
                refund_no: r.get(4),
                terminal_id: r.get(5),
                kind: if kind == "REFUND" { Kind::Refund } else { Kind::Sale },
                amount_fen: r.get(7),
                description: r.get(8),
                operator: r.get(9),
                state: State::parse(&state)
                    .ok_or_else(|| HubError::Other(format!("the hub holds an unknown state {state:?}")))?,
                attempt: r.get::<_, i32>(11) as i64,
                pos_ref: r.get(12),
                orig_pos_ref: r.get(13),
                device_id: r.get(14),
                pay_order_no: r.get(15),
                channel: r.get(16),
                pos_code: r.get(17),
                pos_message: r.get(18),
                error_code: r.get(19),
                created_at: r.get(21),
                updated_at: r.get(22),
                sent_at: r.get(23),
                finished_at: r.get(24),
                result_written_at: None,
                cancelled_by: cancelled_by.as_deref().and_then(CancelledBy::parse),
                pos_evidence: None,
            },
        });
    }
    Ok(out)
}

/// Open orders of every window up to `day` (any day before, too: an unknown outcome from last
/// week is still open).
pub async fn open_items(client: &Client, day: &str) -> Result<Vec<HubOrder>> {
    let rows = client
        .query(
            "SELECT COALESCE(w.window_name, j.bridge::text), o.journal_id, o.day::text FROM hisbridge.orders o \
               JOIN hisbridge.journals j USING (journal_id) LEFT JOIN hisbridge.windows w USING (journal_id) \
             WHERE o.state NOT IN ('SUCCESS','REFUNDED','FAILED','CANCELLED','REVERSED') AND o.day <= $1::text::date \
             GROUP BY 1, 2, 3",
            &[&day],
        )
        .await?;
    // Few: read each open day's orders and keep the open ones.
    let mut days: Vec<String> = rows.iter().map(|r| r.get::<_, String>(2)).collect();
    days.sort();
    days.dedup();
    let mut out = Vec::new();
    for d in days {
        out.extend(orders_between(client, &d, &d).await?.into_iter().filter(|o| !o.row.state.is_final()));
    }
    Ok(out)
}

/// One window's day.
#[derive(Debug, Clone, Serialize)]
pub struct WindowDay {
    pub window: String,
    pub journal_id: String,
    pub totals: Totals,
}

/// An order still open, with its window.
#[derive(Debug, Clone, Serialize)]
pub struct OpenItem {
    pub window: String,
    pub order_no: String,
    pub refund_no: Option<String>,
    pub terminal_id: String,
    pub amount: String,
    pub state: String,
    pub created_at: String,
}

/// The day across all windows.
#[derive(Debug, Clone, Serialize)]
pub struct HubDay {
    pub date: String,
    pub generated_at: String,
    pub windows: usize,
    pub totals: Totals,
    pub by_window: Vec<WindowDay>,
    pub by_channel: Vec<Totals>,
    pub by_terminal: Vec<Totals>,
    pub by_hour: Vec<HourLine>,
    pub open_items: Vec<OpenItem>,
}

impl HubDay {
    pub fn from_orders(date: &str, day: &[HubOrder], open: &[HubOrder]) -> Self {
        let rows: Vec<OrderRow> = day.iter().map(|o| o.row.clone()).collect();
        let all = DayReport::from_rows(date, "ALL", &rows, &[], &HashMap::new(), 0, None);
        let mut by_window: BTreeMap<(&str, &str), Totals> = BTreeMap::new();
        for o in day {
            by_window.entry((&o.window, &o.journal_id)).or_insert_with(|| Totals::new(&o.window)).add(&o.row);
        }
        let open_items = open
            .iter()
            .map(|o| OpenItem {
                window: o.window.clone(),
                order_no: o.row.order_no.clone(),
                refund_no: o.row.refund_no.clone(),
                terminal_id: o.row.terminal_id.clone(),
                amount: crate::engine::fmt_amount(o.row.amount_fen),
                state: o.row.state.as_str().to_string(),
                created_at: o.row.created_at.clone(),
            })
            .collect();
        HubDay {
            date: date.to_string(),
            generated_at: crate::journal::now_str(),
            windows: by_window.len(),
            totals: all.totals,
            by_window: by_window
                .into_iter()
                .map(|((w, j), totals)| WindowDay { window: w.to_string(), journal_id: j.to_string(), totals })
                .collect(),
            by_channel: all.by_channel,
            by_terminal: all.by_terminal,
            by_hour: all.by_hour,
            open_items,
        }
    }

    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let y = crate::recon::signed_yuan;
        let mut s = String::new();
        let _ = writeln!(s, "全院对账日 / Hospital day: {}    窗口 / windows: {}", self.date, self.windows);
        let head = |s: &mut String, first: &str| {
            let _ = writeln!(
                s,
                "{:<16} {:>6} {:>14} {:>6} {:>14} {:>14} {:>6} {:>6}",
                first, "sales", "collected", "refnd", "refunded", "net", "revd", "open"
            );
        };
        let line = |s: &mut String, l: &Totals| {
            let _ = writeln!(
                s,
                "{:<16} {:>6} {:>14} {:>6} {:>14} {:>14} {:>6} {:>6}",
                l.key,
                l.sales,
                y(l.sales_fen),
                l.refunds,
                y(l.refunds_fen),
                y(l.net_fen),
                l.reversed,
                l.open
            );
        };
        head(&mut s, "window");
        for w in &self.by_window {
            line(&mut s, &w.totals);
        }
        let _ = writeln!(s);
        head(&mut s, "channel");
        for l in self.by_channel.iter().chain(std::iter::once(&self.totals)) {
            line(&mut s, l);
        }
        let _ = writeln!(s);
        head(&mut s, "terminal");
        for l in &self.by_terminal {
            line(&mut s, l);
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<6} {:<8} {:>6} {:>14} {:>6} {:>14}",
            "hour", "channel", "sales", "collected", "refnd", "refunded"
        );
        for h in &self.by_hour {
            let _ = writeln!(
                s,
                "{:<6} {:<8} {:>6} {:>14} {:>6} {:>14}",
                format!("{:02}:00", h.hour),
                h.channel,
                h.sales,
                y(h.sales_fen),
                h.refunds,
                y(h.refunds_fen)
            );
        }
        let _ = writeln!(s);
        if self.open_items.is_empty() {
            let _ = writeln!(s, "未结 / open items: none");
        } else {
            let _ = writeln!(s, "未结 / open items: {}", self.open_items.len());
            for o in &self.open_items {
                let _ = writeln!(
                    s,
                    "  {} order {}{} {} {} (terminal {}, since {})",
                    o.window,
                    o.order_no,
                    o.refund_no.as_deref().map(|r| format!(" refund {r}")).unwrap_or_default(),
                    o.amount,
                    o.state,
                    o.terminal_id,
                    o.created_at
                );
            }
        }
        s
    }
}

/// The day's report across every window.
pub async fn day(client: &Client, date: &str) -> Result<HubDay> {
    crate::recon::pos_day(date).map_err(|e| HubError::Other(e.to_string()))?;
    let orders = orders_between(client, date, date).await?;
    let open = open_items(client, date).await?;
    Ok(HubDay::from_orders(date, &orders, &open))
}

/// A difference, with the window whose journal it concerns (None: no window has the entry).
#[derive(Debug, Clone, Serialize)]
pub struct HubDifference {
    pub window: Option<String>,
    #[serde(flatten)]
    pub difference: Difference,
}

#[derive(Debug, Clone, Serialize)]
pub struct HubMatch {
    pub date: String,
    pub source: Source,
    pub statement_lines: usize,
    pub matched: usize,
    pub windows: usize,
    pub differences: Vec<HubDifference>,
}

impl HubMatch {
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "全院账单 / hospital statement ({:?}, {}): {} lines, {} matched, {} differences, {} windows",
            self.source,
            self.date,
            self.statement_lines,
            self.matched,
            self.differences.len(),
            self.windows
        );
        for d in &self.differences {
            let _ = writeln!(s, "  {}: {}", d.window.as_deref().unwrap_or("(no window)"), d.difference.line_text());
        }
        s
    }
}

/// Matches a merchant's bill of `date` against every window's journal on the hub.
pub fn match_orders(date: &str, source: Source, entries: &[Entry], day: &[HubOrder], around: &[HubOrder]) -> HubMatch {
    // `around` holds the day and its neighbours; the day's own rows are found in it by identity.
    let around_rows: Vec<OrderRow> = around.iter().map(|o| o.row.clone()).collect();
    let keys: std::collections::HashSet<(&str, &str)> =
        day.iter().map(|o| (o.journal_id.as_str(), o.row.key.as_str())).collect();
    let day_rows: Vec<OrderRow> = around
        .iter()
        .filter(|o| keys.contains(&(o.journal_id.as_str(), o.row.key.as_str())))
        .map(|o| o.row.clone())
        .collect();
    let window_of: HashMap<i64, &str> = around.iter().map(|o| (o.row.id, o.window.as_str())).collect();
    let m = crate::statement::match_day(date, source, entries, &day_rows, &around_rows);
    let windows = day.iter().map(|o| o.journal_id.as_str()).collect::<std::collections::HashSet<_>>().len();
    HubMatch {
        date: m.date,
        source: m.source,
        statement_lines: m.statement_lines,
        matched: m.matched,
        windows,
        differences: m
            .differences
            .into_iter()
            .map(|d| HubDifference {
                window: d.order_id.and_then(|id| window_of.get(&id).map(|w| w.to_string())),
                difference: d,
            })
            .collect(),
    }
}

/// Reads the hub's orders around `date` and matches the bill; records the result on the hub
/// when `record` (a login in `hisbridge_finance` may; others get the match without the record).
pub async fn statement(
    client: &Client,
    date: &str,
    source: Source,
    bytes: &[u8],
    name: &str,
    record: bool,
) -> Result<(HubMatch, Option<String>)> {
    let entries = crate::statement::parse(source, bytes).map_err(|e| HubError::Other(format!("statement: {e}")))?;
    let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .map_err(|_| HubError::Other(format!("{date:?} is not a date of the form YYYY-MM-DD")))?;
    let fmt = |d: chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
    let around = orders_between(client, &fmt(d - chrono::Days::new(1)), &fmt(d + chrono::Days::new(1))).await?;
    let day: Vec<HubOrder> = around
        .iter()
        .filter(|o| o.row.finished_at.as_deref().unwrap_or(&o.row.created_at).starts_with(date))
        .cloned()
        .collect();
    let m = match_orders(date, source, &entries, &day, &around);
    let mut note = None;
    if record {
        let diffs = serde_json::to_string(&m.differences).unwrap_or_else(|_| "[]".into());
        let source_name =
            serde_json::to_value(source).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        let res = client
            .execute(
                "INSERT INTO hisbridge.reconciliations (day, source, statement, matched, differences) \
                 VALUES ($1::text::date, $2, $3, $4::bigint::int, $5::text::jsonb)",
                &[&date, &source_name, &name, &(m.matched as i64), &diffs],
            )
            .await;
        match res {
            Ok(_) => {}
            Err(e) => {
                let e = HubError::from(e);
                if e.is_permission() {
                    note = Some("not recorded on the hub: this login is not in hisbridge_finance".to_string());
                } else {
                    return Err(e);
                }
            }
        }
    }
    Ok((m, note))
}
