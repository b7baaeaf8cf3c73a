//! The dashboard's command layer: plain functions over the core, so they are tested with a
//! temp journal and no window. The `#[tauri::command]` wrappers in main.rs only unpack state.

use hisbridge_core::bridge::Bridge;
use hisbridge_core::config::Config;
use hisbridge_core::engine::OrderAction;
use hisbridge_core::journal::Journal;
use hisbridge_core::recon::{self, DayReport};

/// Today's local date, `YYYY-MM-DD`.
pub fn today() -> String {
    chrono::Local::now().format("%Y-%m-%d").to_string()
}

/// The day's report: orders, totals by channel and terminal, the hourly chart, open items and
/// the POS's totals (as last fetched). Reads the journal on a connection of its own.
pub fn day_report(cfg: &Config, date: Option<&str>) -> Result<DayReport, String> {
    let date = date.map(str::to_string).unwrap_or_else(today);
    recon::pos_day(&date).map_err(|e| e.to_string())?;
    let journal = Journal::open(&cfg.journal).map_err(|e| e.to_string())?;
    DayReport::build(&journal, &date, &cfg.pos.device_id).map_err(|e| e.to_string())
}

pub fn parse_action(action: &str) -> Result<OrderAction, String> {
    match action {
        "query" => Ok(OrderAction::Query),
        "cancel" => Ok(OrderAction::Cancel),
        "rewrite" => Ok(OrderAction::Rewrite),
        other => Err(format!("unknown action {other:?}")),
    }
}

/// A cashier's action on one order; answers with the order's state after it.
pub async fn order_action(bridge: &Bridge, key: &str, action: &str) -> Result<String, String> {
    let a = parse_action(action)?;
    bridge.order_action(key, a).await.map(|s| s.as_str().to_string())
}

/// Asks the POS for the day's totals (journaled), then returns the day's report with them.
pub async fn check_pos_totals(bridge: &Bridge, cfg: &Config, date: Option<&str>) -> Result<DayReport, String> {
    let date = date.map(str::to_string).unwrap_or_else(today);
    recon::fetch_pos_totals(&bridge.control, &date).await?;
    day_report(cfg, Some(&date))
}

/// Writes the day's reconciliation file (and CSV where configured) now; returns the paths.
pub fn write_reconciliation(cfg: &Config, date: Option<&str>) -> Result<Vec<String>, String> {
    let report = day_report(cfg, date)?;
    let key = hisbridge_core::keyfile::load(&cfg.key_file).map_err(|e| e.to_string())?;
    let paths = recon::write_files(&report, &key, &cfg.reconciliation.folder, cfg.reconciliation.csv_folder.as_deref())
        .map_err(|e| e.to_string())?;
    Ok(paths.into_iter().map(|p| p.display().to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hisbridge_core::journal::{Cause, NewOrder, State, Update};

    fn config(dir: &std::path::Path) -> Config {
        let text = format!(
            "data_dir = {:?}\nterminals = [\"W01\"]\n[pos]\nport = \"/dev/null\"\ndevice_id = \"POS-0001\"\n",
            dir.display().to_string()
        );
        Config::from_toml(&text, dir).unwrap()
    }

    #[test]
    fn day_report_reads_the_journal_without_a_window() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let mut j = Journal::open(&cfg.journal).unwrap();
        for (no, fen, channel, state) in [
            ("A1", 1250, "WECHAT", State::Success),
            ("A2", 860, "ALIPAY", State::Success),
            ("A3", 500, "", State::Unknown),
        ] {
            let o = j
                .insert(&NewOrder {
                    key: no,
                    order_no: no,
                    refund_no: None,
                    terminal_id: "W01",
                    amount_fen: fen,
                    description: None,
                    operator: None,
                    orig_pos_ref: None,
                    source: "test",
                    reply: None,
                })
                .unwrap();
            let o = j.start_attempt(&o, "POS-0001").unwrap();
            let ch = (!channel.is_empty()).then_some(channel);
            let cause = if state == State::Unknown { Cause::Lost } else { Cause::PosFinal };
            j.transition(&o, cause, state, &Update { channel: ch, pay_order_no: Some(no), ..Default::default() })
                .unwrap();
        }
        let r = day_report(&cfg, None).unwrap();
        assert_eq!(r.date, today());
        assert_eq!(r.transactions.len(), 3);
        assert_eq!(r.totals.net_fen, 2110);
        assert_eq!(r.open_items.len(), 1, "the unknown order is an open item");
        assert_eq!(r.by_hour.iter().map(|h| h.sales).sum::<u64>(), 2);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["totals"]["net_amount"], "21.10", "what the dashboard receives");

        assert!(day_report(&cfg, Some("2026-13-01")).unwrap_err().contains("YYYY-MM-DD"));
        assert!(parse_action("refund").is_err());
        hisbridge_core::keyfile::write_new(&cfg.key_file, &hisbridge_core::envelope::Key::generate("K1").unwrap())
            .unwrap();
        let paths = write_reconciliation(&cfg, None).unwrap();
        assert!(paths[0].ends_with(&format!("RECON-{}.res", today().replace('-', ""))), "{paths:?}");
    }
}

/// A notification for the cashier: title and body, in the chosen language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toast {
    pub title: String,
    pub body: String,
}

fn channel_words(c: Option<&str>, zh: bool) -> &'static str {
    match (c, zh) {
        (Some("WECHAT"), true) => "微信",
        (Some("WECHAT"), false) => "WeChat Pay",
        (Some("ALIPAY"), true) => "支付宝",
        (Some("ALIPAY"), false) => "Alipay",
        (_, true) => "其他",
        (_, false) => "other",
    }
}

/// Which notice becomes a notification, and what it says. Quiet by default where a cashier
/// would find it noisy (a success is already on the POS screen); `[notifications]` decides.
pub fn toast_for(
    n: &hisbridge_core::engine::Notice,
    notify: &hisbridge_core::config::Notify,
    zh: bool,
) -> Option<Toast> {
    use hisbridge_core::engine::Notice;
    use hisbridge_core::his::ErrorCode;
    use hisbridge_core::journal::State;
    let t = |zh_t: String, en_t: String, zh_b: String, en_b: String| {
        Some(if zh { Toast { title: zh_t, body: zh_b } } else { Toast { title: en_t, body: en_b } })
    };
    match n {
        Notice::Order { key, state: State::Success, amount, channel, .. } if notify.success => t(
            "收款成功".into(),
            "Payment received".into(),
            format!("{key}  {amount}  {}", channel_words(channel.as_deref(), true)),
            format!("{key}  {amount}  {}", channel_words(channel.as_deref(), false)),
        ),
        Notice::Order { key, state: State::Refunded, amount, .. } if notify.success => {
            t("退款成功".into(), "Refund done".into(), format!("{key}  {amount}"), format!("{key}  {amount}"))
        }
        Notice::Order { key, state: State::Failed, amount, error_code, pos_message, .. } if notify.failure => {
            let code = error_code.as_deref().and_then(ErrorCode::parse).unwrap_or(ErrorCode::Declined);
            // The wallet's words say most (余额不足, 付款码无效); the code's text otherwise.
            let wallet = pos_message.as_deref().map(|m| format!("（{m}）")).unwrap_or_default();
            let wallet_en = pos_message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default();
            t(
                "收款失败".into(),
                "Payment failed".into(),
                format!("{key}  {amount}：{}{wallet}", code.zh()),
                format!("{key}  {amount}: {}{wallet_en}", hisbridge_core::engine::en_text(code)),
            )
        }
        Notice::Order { key, state: State::Unknown, amount, .. } if notify.unknown => t(
            "结果未知，请勿重复收款".into(),
            "Outcome unknown: do not charge again".into(),
            format!("{key}  {amount}：正在向 POS 查询，结果会自动更新"),
            format!("{key}  {amount}: querying the POS; the result will follow"),
        ),
        Notice::Rejected { code, detail, .. } if notify.rejected => {
            t("HIS 指令被拒收".into(), "HIS instruction refused".into(), code.zh().to_string(), detail.clone())
        }
        // Always shown: each needs a person.
        Notice::Attention { what, detail } => {
            let (zh_t, en_t, zh_b) = attention_words(*what);
            t(zh_t.into(), en_t.into(), zh_b.into(), detail.clone())
        }
        _ => None,
    }
}

/// Title (zh, en) and what to do (zh) for each kind of attention.
pub fn attention_words(what: hisbridge_core::engine::Attention) -> (&'static str, &'static str, &'static str) {
    use hisbridge_core::engine::Attention;
    match what {
        Attention::Journal => (
            "收费记录无法写入，已暂停收款",
            "Journal cannot be written: payments stopped",
            "磁盘已满或数据文件夹只读。请联系信息科；新订单会被退回 HIS，正在进行的交易会在恢复后查询。",
        ),
        Attention::HistoryLost => (
            "收费记录不完整，已暂停收款",
            "Journal lost history: payments stopped",
            "收费记录文件被替换或丢失了部分内容。请联系信息科核对后执行 hisbridge journal accept。",
        ),
        Attention::Files => (
            "结果文件写入失败，正在重试",
            "Result files cannot be written (retrying)",
            "HIS 可能暂时收不到结果。请检查 outbox 文件夹的磁盘空间和权限。",
        ),
        Attention::PosContradiction => (
            "POS 返回的结果前后矛盾，请核实",
            "The POS contradicts itself: check the order",
            "该笔订单结果未知，请勿重复收款；请在 POS 或商户后台核实后联系信息科。",
        ),
    }
}

/// The link notifications: disconnected (with why) and back.
pub fn link_toast(was_ready: bool, is_ready: bool, why_zh: &str, why_en: &str, zh: bool) -> Option<Toast> {
    match (was_ready, is_ready) {
        (true, false) => Some(if zh {
            Toast { title: "POS 已断开".into(), body: why_zh.into() }
        } else {
            Toast { title: "POS disconnected".into(), body: why_en.into() }
        }),
        (false, true) => Some(if zh {
            Toast { title: "POS 已连接".into(), body: "可以收款".into() }
        } else {
            Toast { title: "POS connected".into(), body: "Ready to take payments".into() }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod toast_tests {
    use super::*;
    use hisbridge_core::config::Notify;
    use hisbridge_core::engine::Notice;
    use hisbridge_core::journal::State;

    fn notify() -> Notify {
        Notify { success: false, failure: true, unknown: true, link: true, rejected: true }
    }

    fn order(state: State, code: Option<&str>) -> Notice {
        Notice::Order {
            key: "A1".into(),
            state,
            amount: "+12.50".into(),
            channel: Some("WECHAT".into()),
            error_code: code.map(String::from),
            pos_message: (code == Some("E_PAYMENT_DECLINED")).then(|| "余额不足".to_string()),
        }
    }

    #[test]
    fn failures_say_why_in_words_and_successes_stay_quiet_by_default() {
        let t = toast_for(&order(State::Failed, Some("E_TIMEOUT")), &notify(), true).unwrap();
        assert_eq!(t.title, "收款失败");
        assert!(t.body.contains("患者未在规定时间内完成支付"), "{t:?}");
        let t = toast_for(&order(State::Failed, Some("E_PAYMENT_DECLINED")), &notify(), true).unwrap();
        assert!(t.body.contains("支付失败（余额不足）"), "the wallet's words: {t:?}");
        let t = toast_for(&order(State::Failed, Some("E_TIMEOUT")), &notify(), false).unwrap();
        assert!(t.body.contains("did not pay in time"), "{t:?}");
        assert_eq!(toast_for(&order(State::Success, None), &notify(), true), None);
        let loud = Notify { success: true, ..notify() };
        assert!(toast_for(&order(State::Success, None), &loud, true).unwrap().body.contains("微信"));
        assert!(toast_for(&order(State::Unknown, None), &notify(), true).unwrap().title.contains("请勿重复收款"));
        assert_eq!(toast_for(&order(State::Paying, None), &notify(), true), None, "progress is not a notification");
        let quiet = Notify { failure: false, ..notify() };
        assert_eq!(toast_for(&order(State::Failed, None), &quiet, true), None);
        assert_eq!(link_toast(true, false, "串口拔出", "unplugged", true).unwrap().title, "POS 已断开");
        assert_eq!(link_toast(true, true, "", "", true), None);
    }
}
