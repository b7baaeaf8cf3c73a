//! What the monitoring page and `hisbridge hub windows` show: every window as the hub last heard
//! it, the day's totals, and the latest reconciliation. Read only.

use serde::Serialize;

use super::{Client, Result};

/// A window as its last heartbeat said it; `silent` when the next heartbeat is overdue.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WindowState {
    pub window: String,
    pub journal_id: String,
    pub host: String,
    pub device_id: String,
    pub version: String,
    /// `ready`, `handshaking`, `closed`, `wrong_device`.
    pub pos_link: String,
    pub pos_detail: Option<String>,
    pub paused: bool,
    pub open_items: i32,
    pub unknown_items: i32,
    pub attention: serde_json::Value,
    pub behind_events: i64,
    pub heartbeat_secs: i32,
    /// Local time of the last heartbeat (the hub's clock).
    pub last_heartbeat: String,
    /// Seconds since, by the hub's clock (no PC's clock enters into it).
    pub age_secs: i64,
    pub silent: bool,
    /// Today's collected and refunded amounts at this window, in fen.
    pub collected_fen: i64,
    pub refunded_fen: i64,
    pub sales: i64,
}

/// A heartbeat is overdue when it is half an interval late (and 2 s for the page's own refresh).
pub fn is_silent(age_secs: i64, heartbeat_secs: i32) -> bool {
    age_secs * 2 > heartbeat_secs as i64 * 3 + 4
}

pub async fn windows(client: &Client) -> Result<Vec<WindowState>> {
    let secs = chrono::Local::now().offset().local_minus_utc() as f64;
    let rows = client
        .query(
            "SELECT w.window_name, w.journal_id, w.host, w.device_id, w.version, w.pos_link, w.pos_detail, w.paused, \
               w.open_items, w.unknown_items, w.attention::text, w.behind_events, w.heartbeat_secs, \
               to_char(w.last_heartbeat AT TIME ZONE make_interval(secs => $1), 'YYYY-MM-DD HH24:MI:SS'), \
               floor(extract(epoch FROM now() - w.last_heartbeat))::bigint, \
               COALESCE(t.collected, 0)::bigint, COALESCE(t.refunded, 0)::bigint, COALESCE(t.sales, 0)::bigint \
             FROM hisbridge.windows w LEFT JOIN ( \
               SELECT journal_id, sum(amount_fen) FILTER (WHERE state = 'SUCCESS') AS collected, \
                 sum(-amount_fen) FILTER (WHERE state = 'REFUNDED') AS refunded, \
                 count(*) FILTER (WHERE state = 'SUCCESS') AS sales \
               FROM hisbridge.orders WHERE day = (now() AT TIME ZONE make_interval(secs => $1))::date GROUP BY journal_id \
             ) t USING (journal_id) ORDER BY w.window_name, w.journal_id",
            &[&secs],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let age: i64 = r.get(14);
            let hb: i32 = r.get(12);
            let attention: String = r.get(10);
            WindowState {
                window: r.get(0),
                journal_id: r.get(1),
                host: r.get(2),
                device_id: r.get(3),
                version: r.get(4),
                pos_link: r.get(5),
                pos_detail: r.get(6),
                paused: r.get(7),
                open_items: r.get(8),
                unknown_items: r.get(9),
                attention: serde_json::from_str(&attention).unwrap_or(serde_json::Value::Null),
                behind_events: r.get(11),
                heartbeat_secs: hb,
                last_heartbeat: r.get(13),
                age_secs: age,
                silent: is_silent(age, hb),
                collected_fen: r.get(15),
                refunded_fen: r.get(16),
                sales: r.get(17),
            }
        })
        .collect())
}

pub fn render_windows(w: &[WindowState]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<16} {:<12} {:<13} {:>7} {:>6} {:>7} {:>7} {:>14}",
        "window", "device", "POS", "paused", "open", "unknown", "heard", "collected"
    );
    for x in w {
        let pos = if x.silent { "SILENT".to_string() } else { x.pos_link.clone() };
        let _ = writeln!(
            s,
            "{:<16} {:<12} {:<13} {:>7} {:>6} {:>7} {:>6}s {:>14}",
            x.window,
            x.device_id,
            pos,
            if x.paused { "yes" } else { "no" },
            x.open_items,
            x.unknown_items,
            x.age_secs,
            crate::recon::signed_yuan(x.collected_fen)
        );
    }
    if w.is_empty() {
        let _ = writeln!(s, "(no window has sent a heartbeat yet)");
    }
    s
}

/// The latest recorded match of a merchant's bill.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LatestReconciliation {
    pub day: String,
    pub source: String,
    pub statement: String,
    pub run_at: String,
    pub run_by: String,
    pub matched: i32,
    pub differences: serde_json::Value,
}

/// Everything the page shows, in one read.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Overview {
    pub generated_at: String,
    pub today: String,
    pub windows: Vec<WindowState>,
    pub collected_fen: i64,
    pub refunded_fen: i64,
    pub sales: i64,
    pub open_items: i64,
    pub unknown_items: i64,
    pub silent: usize,
    pub reconciliations: Vec<LatestReconciliation>,
}

pub async fn overview(client: &Client) -> Result<Overview> {
    let windows = windows(client).await?;
    let secs = chrono::Local::now().offset().local_minus_utc() as f64;
    let recon = client
        .query(
            "SELECT DISTINCT ON (source) day::text, source, statement, \
               to_char(run_at AT TIME ZONE make_interval(secs => $1), 'YYYY-MM-DD HH24:MI:SS'), run_by::text, matched, \
               differences::text \
             FROM hisbridge.reconciliations ORDER BY source, day DESC, run_at DESC",
            &[&secs],
        )
        .await?;
    let reconciliations = recon
        .iter()
        .map(|r| {
            let d: String = r.get(6);
            LatestReconciliation {
                day: r.get(0),
                source: r.get(1),
                statement: r.get(2),
                run_at: r.get(3),
                run_by: r.get(4),
                matched: r.get(5),
                differences: serde_json::from_str(&d).unwrap_or(serde_json::Value::Null),
            }
        })
        .collect();
    Ok(Overview {
        generated_at: crate::journal::now_str(),
        today: chrono::Local::now().format("%Y-%m-%d").to_string(),
        collected_fen: windows.iter().map(|w| w.collected_fen).sum(),
        refunded_fen: windows.iter().map(|w| w.refunded_fen).sum(),
        sales: windows.iter().map(|w| w.sales).sum(),
        open_items: windows.iter().map(|w| w.open_items as i64).sum(),
        unknown_items: windows.iter().map(|w| w.unknown_items as i64).sum(),
        silent: windows.iter().filter(|w| w.silent).count(),
        windows,
        reconciliations,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_window_is_silent_half_an_interval_late() {
        use super::is_silent;
        assert!(!is_silent(30, 30));
        assert!(!is_silent(47, 30));
        assert!(is_silent(48, 30));
        assert!(!is_silent(9, 5));
        assert!(is_silent(10, 5));
    }
}
