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

/// A notice to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toast {
    pub title: String,
    pub body: String,
    /// Stays until the cashier dismisses it.
    pub critical: bool,
    /// A notice in the same slot replaces this one.
    pub slot: Option<&'static str>,
    /// The order a click opens (its journal key).
    pub order: Option<String>,
}

impl Toast {
    pub fn new(title: impl Into<String>, body: impl Into<String>) -> Toast {
        Toast { title: title.into(), body: body.into(), critical: false, slot: None, order: None }
    }
    pub fn critical(mut self) -> Toast {
        self.critical = true;
        self
    }
    pub fn in_slot(mut self, slot: &'static str) -> Toast {
        self.slot = Some(slot);
        self
    }
    pub fn for_order(mut self, key: impl Into<String>) -> Toast {
        self.order = Some(key.into());
        self
    }
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

/// An order as the cashier reads it: the order number, and a refund named as one (`MZ001 退款 R1`
/// rather than the internal key `MZ001@R1`).
pub fn shown_key(key: &str, zh: bool) -> String {
    match key.split_once('@') {
        Some((order, refund)) if zh => format!("{order} 退款 {refund}"),
        Some((order, refund)) => format!("{order} refund {refund}"),
        None => key.to_string(),
    }
}

/// A signed amount (`+12.50`, `-3.00`) as the cashier reads it: `¥12.50`.
pub fn yuan(amount: &str) -> String {
    format!("¥{}", amount.trim_start_matches(['+', '-']))
}

/// What the last-payment strip and the notifications say about an order: a headline (amount,
/// channel, outcome and why), what to tell the patient or do, and whether it needs the cashier.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OrderWords {
    pub headline: String,
    pub tell: Option<String>,
    /// Needs the cashier (anything but a success or an order in progress).
    pub attention: bool,
}

pub fn order_words(
    key: &str,
    state: hisbridge_core::journal::State,
    amount: &str,
    channel: Option<&str>,
    error_code: Option<&str>,
    pos_message: Option<&str>,
    zh: bool,
) -> OrderWords {
    use hisbridge_core::his::ErrorCode as E;
    use hisbridge_core::journal::State;
    let refund = key.contains('@');
    let money = yuan(amount);
    let code = error_code.and_then(E::parse);
    let why = |c: E| {
        let base = if zh { c.zh().to_string() } else { hisbridge_core::engine::en_text(c).to_string() };
        match pos_message {
            // The wallet's own words say most (余额不足, 付款码无效).
            Some(m) if c == E::Declined || c == E::RefundFailed => {
                if zh {
                    format!("{base}（{m}）")
                } else {
                    format!("{base} ({m})")
                }
            }
            _ => base,
        }
    };
    let w = |h: String, tell: Option<&str>, attention: bool| OrderWords {
        headline: h,
        tell: tell.map(str::to_string),
        attention,
    };
    let ch = channel.map(|c| channel_words(Some(c), zh)).unwrap_or("");
    let sep = if zh { "：" } else { ": " };
    match (state, zh) {
        (State::Success, true) => w(format!("{money} {ch} 收款成功"), None, false),
        (State::Success, false) => w(format!("{money} {ch} received"), None, false),
        (State::Refunded, true) => w(format!("{money} 退款成功"), None, false),
        (State::Refunded, false) => w(format!("{money} refunded"), None, false),
        (State::Failed, _) if refund => {
            let c = code.unwrap_or(E::RefundFailed);
            if zh {
                w(
                    format!("{money} 退款失败{sep}{}", why(c)),
                    Some("钱包未退款：请核对后重新发起退款，或联系信息科"),
                    true,
                )
            } else {
                w(
                    format!("{money} refund failed{sep}{}", why(c)),
                    Some("Nothing was refunded: check, then send the refund again or call IT"),
                    true,
                )
            }
        }
        (State::Failed, _) => {
            let c = code.unwrap_or(E::Declined);
            let tell = match (c, zh) {
                (E::Declined, true) => "请患者换付款方式或刷新付款码后重新收款",
                (E::Declined, false) => {
                    "Ask the patient for another way to pay, or a fresh payment code, and charge again"
                }
                (E::PosUnavailable, true) => "请检查 POS 的 USB 线和电源；未扣款，可请患者到其他窗口",
                (E::PosUnavailable, false) => {
                    "Check the POS's USB cable and power; nothing was charged, the patient may go to another window"
                }
                (E::PosBusy, true) => "POS 正忙：稍后重新收款，未扣款",
                (E::PosBusy, false) => "The POS is busy: charge again shortly; nothing was charged",
                (_, true) => "未扣款，可重新收款",
                (_, false) => "Nothing was charged; you may charge again",
            };
            let h = if zh {
                format!("{money} 未收到{sep}{}", why(c))
            } else {
                format!("{money} not received{sep}{}", why(c))
            };
            w(h, Some(tell), true)
        }
        (State::Cancelled, _) => {
            let c = code.unwrap_or(E::Cancelled);
            let (h, tell) = match (c, zh) {
                (E::Timeout, true) => ("已取消：患者未在规定时间内付款", "未扣款；如需付款请重新收款"),
                (E::Timeout, false) => (
                    "cancelled: the patient did not pay in time",
                    "Nothing was charged; charge again if the patient still pays",
                ),
                (E::PosCancelled, true) => ("已在 POS 上撤销", "未扣款；如需付款请重新收款"),
                (E::PosCancelled, false) => {
                    ("cancelled on the POS", "Nothing was charged; charge again if the patient still pays")
                }
                (_, true) => ("已取消", "未扣款"),
                (_, false) => ("cancelled", "Nothing was charged"),
            };
            w(format!("{money} {h}"), Some(tell), true)
        }
        (State::Reversed, true) => w(format!("{money} 已撤销，款项已退回患者"), Some("如需付款请重新收款"), true),
        (State::Reversed, false) => w(
            format!("{money} reversed: the money went back to the patient"),
            Some("Charge again if the patient still pays"),
            true,
        ),
        (State::Unknown, true) => {
            w(format!("{money} 结果未知"), Some("请勿重复收款：正在向 POS 查询，结果会自动更新"), true)
        }
        (State::Unknown, false) => w(
            format!("{money} outcome unknown"),
            Some("Do not charge again: the POS is being asked, the result will follow"),
            true,
        ),
        (State::Cancelling, true) => w(format!("{money} 正在撤销…"), Some("请稍候，撤销结果会自动更新"), false),
        (State::Cancelling, false) => {
            w(format!("{money} cancelling…"), Some("Please wait for the cancel's result"), false)
        }
        (_, true) if refund => w(format!("{money} 退款中…"), None, false),
        (_, false) if refund => w(format!("{money} refunding…"), None, false),
        (_, true) => w(format!("{money} 收款中…"), Some("请患者在 POS 上出示付款码"), false),
        (_, false) => {
            w(format!("{money} collecting…"), Some("Ask the patient to show the payment code at the POS"), false)
        }
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
    use hisbridge_core::journal::State;
    let t = |zh_t: String, en_t: String, zh_b: String, en_b: String| {
        Some(if zh { Toast::new(zh_t, zh_b) } else { Toast::new(en_t, en_b) })
    };
    match n {
        Notice::Order { key, state, amount, channel, error_code, pos_message } => {
            let wanted = match state {
                State::Success | State::Refunded => notify.success,
                State::Failed | State::Cancelled | State::Reversed => notify.failure,
                State::Unknown => notify.unknown,
                _ => false,
            };
            if !wanted {
                return None;
            }
            let refund = key.contains('@');
            let title = match (state, refund, zh) {
                (State::Success, _, true) => "收款成功",
                (State::Success, _, false) => "Payment received",
                (State::Refunded, _, true) => "退款成功",
                (State::Refunded, _, false) => "Refund done",
                (State::Failed, true, true) => "退款失败",
                (State::Failed, true, false) => "Refund failed",
                (State::Failed, false, true) => "收款失败",
                (State::Failed, false, false) => "Payment failed",
                (State::Cancelled, _, true) => "交易已取消",
                (State::Cancelled, _, false) => "Transaction cancelled",
                (State::Reversed, _, true) => "交易已撤销",
                (State::Reversed, _, false) => "Transaction reversed",
                (_, _, true) => "结果未知，请勿重复收款",
                (_, _, false) => "Outcome unknown: do not charge again",
            };
            let words =
                order_words(key, *state, amount, channel.as_deref(), error_code.as_deref(), pos_message.as_deref(), zh);
            let mut body = format!("{}  {}", shown_key(key, zh), words.headline);
            if let Some(tell) = words.tell {
                body.push_str(if zh { "——" } else { " — " });
                body.push_str(&tell);
            }
            // An unknown outcome and a failed refund need the cashier until they are dealt
            // with: they stay on screen.
            let critical = *state == State::Unknown || (*state == State::Failed && refund);
            let t = Toast::new(title, body).for_order(key.clone());
            Some(if critical { t.critical() } else { t })
        }
        Notice::Rejected { source, code, detail } if notify.rejected => {
            let file = source.strip_prefix("file:").map(|s| format!("{s}.ord"));
            let what = file.as_deref().unwrap_or(source);
            t(
                "HIS 指令被拒收".into(),
                "HIS instruction refused".into(),
                format!("{what}：{}。已退回 HIS 错误结果，未扣款；文件在错误夹，原因见同名 .reason.txt", code.zh()),
                format!("{what}: {detail}. The HIS got an error result, nothing was charged; the file is in the error folder with its reason"),
            )
        }
        // Always shown: each needs a person.
        Notice::Attention { what, detail } => {
            let (zh_t, en_t, zh_b) = attention_words(*what);
            t(zh_t.into(), en_t.into(), zh_b.into(), detail.clone()).map(Toast::critical)
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

/// Why the POS is not connected, in Chinese and with what to do; the OS's own words stay in the
/// English text and the log.
pub fn link_reason_zh(port: &str, reason: &str) -> String {
    let r = reason.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| r.contains(w));
    if has(&["unplugged", "device gone", "broken pipe", "read failed", "write failed", "reader stopped", "no device"]) {
        "POS 连接中断（USB 线被拔出或 POS 关机），正在重新连接；请检查 USB 线和 POS 电源".into()
    } else if has(&["no such file", "not found", "cannot find", "does not exist", "no usb device"]) {
        format!("找不到 {port}，请检查 USB 线和 POS 电源")
    } else if has(&["permission denied", "access is denied", "busy", "in use", "resource busy"]) {
        format!("{port} 被占用或无权打开：请关闭占用它的程序，或联系信息科")
    } else if has(&["winusb", "driver"]) {
        "POS 的 USB 驱动未安装：请联系信息科安装驱动（安装说明第 6 节）".into()
    } else if has(&["timed out", "timeout", "not answer", "no answer", "silent"]) {
        "POS 无应答：请确认 POS 上的收款程序已打开".into()
    } else {
        "POS 未连接，正在重试；详情见日志".into()
    }
}

/// A settings field's error in Chinese (the config's checks speak English, for the log and IT).
pub fn field_message_zh(field: &str, message: &str) -> String {
    let m = message.to_ascii_lowercase();
    if let Some((_, range)) = message.split_once(" is outside ") {
        if let Some((lo, hi)) = range.split_once("..=") {
            return format!("应为 {lo} 到 {hi} 之间的整数");
        }
    }
    if m.contains("must be 1..=65535") {
        return "应为 1 到 65535 之间的端口号，留空则关闭".into();
    }
    if m.contains("is required") || m.contains("lists no") || m.contains("empty") {
        return "不能为空".into();
    }
    if m.contains("listed twice") {
        return "有重复的终端号".into();
    }
    if m.contains("three different folders") {
        return "收件夹、结果夹和错误夹必须是三个不同的文件夹".into();
    }
    if m.contains("is not one of") {
        return "请从列表中选择".into();
    }
    match field {
        "device_id" | "pos.device_id" => "格式不对：只能用字母、数字、- 和 _，不含空格".into(),
        "terminals" => "格式不对：终端号只能用字母、数字、- 和 _，用逗号分隔".into(),
        "pos_port" | "pos.port" => "格式不对：填 COM 口名（如 COM3）或 usb:厂商号:产品号".into(),
        "transport" | "pos.transport" => "请从列表中选择连接方式".into(),
        _ => "填写有误，请检查".into(),
    }
}

/// A settings error that is not a field's, in Chinese.
pub fn settings_error_zh(message: &str) -> String {
    let m = message.to_ascii_lowercase();
    if m.contains("permission denied") || m.contains("access is denied") || m.contains("os error 5") {
        "没有权限修改设置：设置文件只有信息科（管理员）可以修改".into()
    } else if m.contains("not valid toml") {
        "设置文件格式有误，请信息科手工修正后再试".into()
    } else {
        "设置无法保存；详情见日志".into()
    }
}

/// An error of the POS test (INFO) in Chinese.
pub fn pos_error_zh(e: &str) -> String {
    let r = e.to_ascii_lowercase();
    if r.contains("not connected") {
        "POS 未连接：请检查 USB 线和 POS 电源".into()
    } else if r.contains("did not answer") || r.contains("timed out") {
        "POS 没有应答：请确认 POS 上的收款程序已打开".into()
    } else if r.contains("refused") {
        "POS 拒绝了查询：请确认 POS 收款程序版本".into()
    } else if r.contains("not running") || r.contains("stopped") {
        "桥程序未运行：请重启 HIS Bridge".into()
    } else {
        "POS 测试失败；详情见日志".into()
    }
}

/// The link notifications: disconnected (with why) and back.
pub fn link_toast(was_ready: bool, is_ready: bool, why_zh: &str, why_en: &str, zh: bool) -> Option<Toast> {
    match (was_ready, is_ready) {
        // The loss stays on screen until the POS is back, and "connected" takes its place.
        (true, false) => Some(
            if zh { Toast::new("POS 已断开", why_zh) } else { Toast::new("POS disconnected", why_en) }
                .critical()
                .in_slot("link"),
        ),
        (false, true) => Some(
            if zh {
                Toast::new("POS 已连接", "可以收款")
            } else {
                Toast::new("POS connected", "Ready to take payments")
            }
            .in_slot("link"),
        ),
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

    fn failed_refund() -> Notice {
        Notice::Order {
            key: "A1@R1".into(),
            state: State::Failed,
            amount: "-3.00".into(),
            channel: None,
            error_code: Some("E_REFUND_FAILED".into()),
            pos_message: None,
        }
    }

    #[test]
    fn failures_say_why_in_words_and_successes_stay_quiet_by_default() {
        let t = toast_for(&order(State::Cancelled, Some("E_TIMEOUT")), &notify(), true).unwrap();
        assert_eq!(t.title, "交易已取消");
        assert!(t.body.contains("患者未在规定时间内付款") && t.body.contains("未扣款"), "{t:?}");
        let t = toast_for(&order(State::Failed, Some("E_PAYMENT_DECLINED")), &notify(), true).unwrap();
        assert_eq!(t.title, "收款失败");
        assert!(t.body.contains("¥12.50 未收到：支付失败（余额不足）——请患者换付款方式"), "the wallet's words: {t:?}");
        let t = toast_for(&order(State::Cancelled, Some("E_TIMEOUT")), &notify(), false).unwrap();
        assert!(t.body.contains("did not pay in time"), "{t:?}");
        let refund = failed_refund();
        let t = toast_for(&refund, &notify(), true).unwrap();
        assert_eq!(t.title, "退款失败", "a refund's failure is named for what it is");
        assert!(t.body.starts_with("A1 退款 R1  ¥3.00 退款失败"), "no internal key, amounts in ¥: {t:?}");
        assert!(toast_for(&order(State::Reversed, None), &notify(), true).unwrap().body.contains("款项已退回"));
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

    #[test]
    fn what_needs_the_cashier_stays_and_the_link_notice_has_one_place() {
        let unknown = toast_for(&order(State::Unknown, None), &notify(), true).unwrap();
        assert!(unknown.critical, "an unknown outcome stays until seen");
        assert_eq!(unknown.order.as_deref(), Some("A1"), "a click opens the order");
        let declined = toast_for(&order(State::Failed, Some("E_PAYMENT_DECLINED")), &notify(), true).unwrap();
        assert!(!declined.critical, "a decline is told and goes");
        assert_eq!(declined.order.as_deref(), Some("A1"));
        let refund = failed_refund();
        assert!(toast_for(&refund, &notify(), true).unwrap().critical, "a failed refund stays");
        let lost = link_toast(true, false, "串口拔出", "unplugged", true).unwrap();
        let back = link_toast(false, true, "", "", true).unwrap();
        assert!(lost.critical && !back.critical);
        assert_eq!((lost.slot, back.slot), (Some("link"), Some("link")), "the POS back replaces the POS lost");
        let journal =
            Notice::Attention { what: hisbridge_core::engine::Attention::Journal, detail: "disk full".into() };
        assert!(toast_for(&journal, &notify(), true).unwrap().critical);
    }

    #[test]
    fn os_and_pos_errors_are_told_in_chinese_with_a_remedy() {
        let zh = link_reason_zh("COM3", "cannot open COM3: No such file or directory (os error 2)");
        assert_eq!(zh, "找不到 COM3，请检查 USB 线和 POS 电源");
        assert!(link_reason_zh("COM3", "read failed: Broken pipe").contains("USB 线被拔出"));
        assert!(link_reason_zh("COM3", "Access is denied. (os error 5)").contains("被占用"));
        for r in ["something new", "read failed: Broken pipe", "No such file or directory", "no WinUSB driver"] {
            let zh = link_reason_zh("COM3", r);
            assert!(!zh.chars().any(|c| c.is_ascii_lowercase()), "English left in {zh:?}");
        }
        assert_eq!(pos_error_zh("POS not connected"), "POS 未连接：请检查 USB 线和 POS 电源");
        assert_eq!(field_message_zh("scan_secs", "0 is outside 1..=600"), "应为 1 到 600 之间的整数");
        assert!(settings_error_zh("cannot read or write the config file C:\\x: Access is denied. (os error 5)")
            .starts_with("没有权限"));
        assert!(field_message_zh("device_id", "field device_id is invalid: contains a space").starts_with("格式不对"));
        assert!(!pos_error_zh("anything").chars().any(|c| c.is_ascii_lowercase()));
    }
}

#[cfg(test)]
mod i18n_tests {
    use std::collections::BTreeSet;

    /// The keys of one language's table in ui/app.js (`key: "text"` pairs inside `zh: {...}`).
    fn keys(js: &str, lang: &str) -> BTreeSet<String> {
        let start = js.find(&format!("  {lang}: {{")).unwrap_or_else(|| panic!("no {lang} table"));
        let body = &js[start..];
        let end = body.find("\n  },").expect("table end");
        let mut out = BTreeSet::new();
        for part in body[..end].split(['\n', ',']) {
            let part = part.trim();
            if let Some((k, v)) = part.split_once(':') {
                let k = k.trim();
                if v.trim_start().starts_with('"')
                    && !k.is_empty()
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    out.insert(k.to_string());
                }
            }
        }
        out
    }

    /// Every text the dashboard shows by key exists in both languages: a missing key would show
    /// the key itself (English) in the Chinese interface, or the reverse.
    #[test]
    fn every_key_is_in_both_languages() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui");
        let js = std::fs::read_to_string(dir.join("app.js")).unwrap();
        let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
        let (zh, en) = (keys(&js, "zh"), keys(&js, "en"));
        assert!(zh.len() > 100, "{} keys found", zh.len());
        let only_zh: Vec<_> = zh.difference(&en).collect();
        let only_en: Vec<_> = en.difference(&zh).collect();
        assert!(only_zh.is_empty() && only_en.is_empty(), "only in zh: {only_zh:?}; only in en: {only_en:?}");
        let mut used = BTreeSet::new();
        for attr in ["data-i18n=\"", "data-i18n-placeholder=\""] {
            for piece in html.split(attr).skip(1) {
                used.insert(piece.split('"').next().unwrap().to_string());
            }
        }
        for call in ["t(\"", "t('"] {
            for piece in js.split(call).skip(1) {
                let k: String = piece.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if !k.is_empty() {
                    used.insert(k);
                }
            }
        }
        let missing: Vec<_> = used.iter().filter(|k| !zh.contains(*k)).collect();
        assert!(missing.is_empty(), "keys used but not defined: {missing:?}");
    }
}
