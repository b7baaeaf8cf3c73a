//! Reconciliation: generated days of transactions in a real SQLite journal, checked against
//! totals computed here independently; statements in the WeChat Pay, Alipay and POS layouts
//! with each kind of difference; and the bridge asking the simulated POS for its totals.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::Harness;
use hisbridge_core::envelope::Key;
use hisbridge_core::journal::{Cause, Journal, NewOrder, State, Update};
use hisbridge_core::recon::{self, DayReport};
use hisbridge_core::statement::{self, DiffKind, Source};

const DAY: &str = "2026-11-20";

/// A tiny deterministic generator: the test must not depend on a random seed to be repeatable.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Paid,
    PaidThenRefunded(i64),
    Failed,
    Cancelled,
    Reversed,
    Unknown,
}

#[derive(Debug, Clone)]
struct Spec {
    order_no: String,
    terminal: String,
    channel: &'static str,
    fen: i64,
    hour: u32,
    fate: Fate,
    pay_no: String,
    pos_ref: String,
    refund_pay_no: String,
    refund_ref: String,
}

struct Day {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    specs: Vec<Spec>,
    /// Orders of other days, which the day's report must leave out (except open items).
    earlier_open: String,
}

fn ts(date: &str, hour: u32, i: usize) -> String {
    format!("{date}T{hour:02}:{:02}:{:02}.000+08:00", (i / 60) % 60, i % 60)
}

/// Journals `n` orders of DAY through the journal's own API, then dates them.
fn generate(n: usize, seed: u64) -> Day {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let mut j = Journal::open(&path).unwrap();
    let mut rng = Lcg(seed);
    let mut specs = Vec::new();
    // Generation only: the journal's durability is not under test here.
    j.connection().pragma_update(None, "synchronous", "OFF").unwrap();
    for i in 0..n {
        let fate = match rng.next(100) {
            0..=54 => Fate::Paid,
            55..=69 => Fate::PaidThenRefunded(0),
            70..=79 => Fate::Failed,
            80..=86 => Fate::Cancelled,
            87..=93 => Fate::Reversed,
            _ => Fate::Unknown,
        };
        let fen = 1 + rng.next(50_000) as i64;
        let fate = match fate {
            Fate::PaidThenRefunded(_) => Fate::PaidThenRefunded(1 + rng.next(fen as u64) as i64),
            f => f,
        };
        let s = Spec {
            order_no: format!("D{i:06}"),
            terminal: format!("W0{}", 1 + rng.next(3)),
            channel: if rng.next(2) == 0 { "WECHAT" } else { "ALIPAY" },
            fen,
            hour: 7 + rng.next(12) as u32,
            fate,
            pay_no: format!("42000{i:010}"),
            pos_ref: format!("D{i:06}.1"),
            refund_pay_no: format!("50300{i:010}"),
            refund_ref: format!("D{i:06}@R1.1"),
        };
        let o = j
            .insert(&NewOrder {
                key: &s.order_no,
                order_no: &s.order_no,
                refund_no: None,
                terminal_id: &s.terminal,
                amount_fen: s.fen,
                description: None,
                operator: None,
                orig_pos_ref: None,
                source: "test",
                reply: None,
            })
            .unwrap();
        let o = j.start_attempt(&o, "POS-0001").unwrap();
        let paid = Update { pay_order_no: Some(&s.pay_no), channel: Some(s.channel), ..Default::default() };
        let state = match s.fate {
            Fate::Paid | Fate::PaidThenRefunded(_) => State::Success,
            Fate::Failed => State::Failed,
            Fate::Cancelled => State::Cancelled,
            Fate::Reversed => State::Reversed,
            Fate::Unknown => State::Unknown,
        };
        let upd = match state {
            State::Success | State::Reversed => paid,
            _ => Update::default(),
        };
        j.transition(&o, cause_for(state), state, &upd).unwrap();
        let c = j.connection();
        c.execute(
            "UPDATE orders SET created_at = ?2, finished_at = CASE WHEN finished_at IS NULL THEN NULL ELSE ?3 END WHERE id = ?1",
            rusqlite_params(o.id, &ts(DAY, s.hour, i), &ts(DAY, s.hour, i + 1)),
        )
        .unwrap();
        if let Fate::PaidThenRefunded(r) = s.fate {
            let key = format!("{}@R1", s.order_no);
            let ro = j
                .insert(&NewOrder {
                    key: &key,
                    order_no: &s.order_no,
                    refund_no: Some("R1"),
                    terminal_id: &s.terminal,
                    amount_fen: -r,
                    description: None,
                    operator: None,
                    orig_pos_ref: Some(&s.pos_ref),
                    source: "test",
                    reply: None,
                })
                .unwrap();
            let ro = j.start_attempt(&ro, "POS-0001").unwrap();
            j.transition(
                &ro,
                Cause::PosFinal,
                State::Refunded,
                &Update { pay_order_no: Some(&s.refund_pay_no), channel: Some(s.channel), ..Default::default() },
            )
            .unwrap();
            let h = (s.hour + 1).min(23);
            j.connection()
                .execute(
                    "UPDATE orders SET created_at = ?2, finished_at = ?3 WHERE id = ?1",
                    rusqlite_params(ro.id, &ts(DAY, h, i), &ts(DAY, h, i + 1)),
                )
                .unwrap();
        }
        specs.push(s);
    }
    // The day before: one order still open (an open item on DAY too), one paid (not DAY's).
    for (no, state) in [("E000001", State::Unknown), ("E000002", State::Success)] {
        let o = j
            .insert(&NewOrder {
                key: no,
                order_no: no,
                refund_no: None,
                terminal_id: "W01",
                amount_fen: 777,
                description: None,
                operator: None,
                orig_pos_ref: None,
                source: "test",
                reply: None,
            })
            .unwrap();
        let o = j.start_attempt(&o, "POS-0001").unwrap();
        j.transition(&o, cause_for(state), state, &Update { channel: Some("WECHAT"), ..Default::default() }).unwrap();
        j.connection()
            .execute(
                "UPDATE orders SET created_at = ?2, finished_at = CASE WHEN finished_at IS NULL THEN NULL ELSE ?3 END WHERE id = ?1",
                rusqlite_params(o.id, "2026-11-19T22:00:00.000+08:00", "2026-11-19T22:00:05.000+08:00"),
            )
            .unwrap();
    }
    Day { _dir: dir, path, specs, earlier_open: "E000001".into() }
}

fn rusqlite_params<'a>(id: i64, a: &'a str, b: &'a str) -> (i64, &'a str, &'a str) {
    (id, a, b)
}

#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
struct Sums {
    sales: u64,
    sales_fen: i64,
    refunds: u64,
    refunds_fen: i64,
    reversed: u64,
    reversed_fen: i64,
    open: u64,
}

/// The day's figures computed from the generator's own list, not from the journal.
/// (hour, channel) -> (collected fen, refunded fen).
type Hours = BTreeMap<(u32, String), (i64, i64)>;

fn expected(specs: &[Spec]) -> (BTreeMap<String, Sums>, BTreeMap<String, Sums>, Hours) {
    let mut ch: BTreeMap<String, Sums> = BTreeMap::new();
    let mut term: BTreeMap<String, Sums> = BTreeMap::new();
    let mut hour: Hours = BTreeMap::new();
    fn apply(m: &mut Sums, s: &Spec) {
        match s.fate {
            Fate::Paid => {
                m.sales += 1;
                m.sales_fen += s.fen;
            }
            Fate::PaidThenRefunded(r) => {
                m.sales += 1;
                m.sales_fen += s.fen;
                m.refunds += 1;
                m.refunds_fen += r;
            }
            Fate::Reversed => {
                m.reversed += 1;
                m.reversed_fen += s.fen;
            }
            Fate::Unknown => m.open += 1,
            _ => {}
        }
    }
    for s in specs {
        apply(ch.entry(s.channel.to_string()).or_default(), s);
        apply(term.entry(s.terminal.clone()).or_default(), s);
        match s.fate {
            Fate::Paid => hour.entry((s.hour, s.channel.into())).or_default().0 += s.fen,
            Fate::PaidThenRefunded(r) => {
                hour.entry((s.hour, s.channel.into())).or_default().0 += s.fen;
                hour.entry(((s.hour + 1).min(23), s.channel.into())).or_default().1 += r;
            }
            _ => {}
        }
    }
    // Unknown orders have no channel in the journal: they count by terminal, not by channel.
    for v in ch.values_mut() {
        v.open = 0;
    }
    (ch, term, hour)
}

fn sums_of(t: &recon::Totals) -> Sums {
    Sums {
        sales: t.sales,
        sales_fen: t.sales_fen,
        refunds: t.refunds,
        refunds_fen: t.refunds_fen,
        reversed: t.reversed,
        reversed_fen: t.reversed_fen,
        open: t.open,
    }
}

#[test]
fn generated_day_totals_match_independent_sums() {
    for (n, seed) in [(400, 1), (1000, 7)] {
        let day = generate(n, seed);
        let j = Journal::open(&day.path).unwrap();
        let r = DayReport::build(&j, DAY, "POS-0001").unwrap();
        let (ch, term, hour) = expected(&day.specs);
        let got_ch: BTreeMap<String, Sums> = r.by_channel.iter().map(|t| (t.key.clone(), sums_of(t))).collect();
        assert_eq!(got_ch, ch, "by channel (seed {seed})");
        let got_term: BTreeMap<String, Sums> = r.by_terminal.iter().map(|t| (t.key.clone(), sums_of(t))).collect();
        assert_eq!(got_term, term, "by terminal (seed {seed})");
        let got_hour: Hours =
            r.by_hour.iter().map(|h| ((h.hour as u32, h.channel.clone()), (h.sales_fen, h.refunds_fen))).collect();
        assert_eq!(got_hour, hour, "by hour (seed {seed})");
        let all_sales: i64 = ch.values().map(|s| s.sales_fen).sum();
        let all_refunds: i64 = ch.values().map(|s| s.refunds_fen).sum();
        assert_eq!(r.totals.net_fen, all_sales - all_refunds);
        let refunds = day.specs.iter().filter(|s| matches!(s.fate, Fate::PaidThenRefunded(_))).count();
        assert_eq!(r.transactions.len(), n + refunds, "the day's orders and refunds, not the day before's");
        let open: BTreeSet<String> = r.open_items.iter().map(|t| t.order_no.clone()).collect();
        let mut want: BTreeSet<String> =
            day.specs.iter().filter(|s| s.fate == Fate::Unknown).map(|s| s.order_no.clone()).collect();
        want.insert(day.earlier_open.clone());
        assert_eq!(open, want, "open items: the day's unknowns and the earlier one still open");
        // A refunded collection shows how much of it went back.
        let s = day.specs.iter().find(|s| matches!(s.fate, Fate::PaidThenRefunded(_))).unwrap();
        let Fate::PaidThenRefunded(back) = s.fate else { unreachable!() };
        let t = r.transactions.iter().find(|t| t.order_no == s.order_no && t.kind == "SALE").unwrap();
        assert_eq!(t.refunded.as_deref(), Some(recon::signed_yuan(back).as_str()));

        // The CSV: every transaction one line, and the ALL line carries the same net amount.
        let csv = r.to_csv();
        assert!(csv.starts_with('\u{feff}'));
        let tables: Vec<&str> = csv.split("\r\n\r\n").collect();
        assert_eq!(tables.len(), 3);
        assert_eq!(tables[0].lines().count(), 1 + r.transactions.len());
        let all = tables[1].lines().find(|l| l.starts_with("ALL,")).unwrap();
        assert_eq!(all.split(',').nth(5), Some(recon::signed_yuan(all_sales - all_refunds).as_str()));

        // The HIS file: encrypted like every other HIS file, the report inside.
        let key = Key::generate("K1").unwrap();
        let out = tempfile::tempdir().unwrap();
        let paths = recon::write_files(&r, &key, out.path(), Some(out.path())).unwrap();
        assert_eq!(
            paths.iter().map(|p| p.file_name().unwrap().to_str().unwrap()).collect::<Vec<_>>(),
            ["RECON-20261120.res", "RECON-20261120.csv"]
        );
        let plain = key.open_report(&std::fs::read(&paths[0]).unwrap()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        assert_eq!(v["kind"], "reconciliation");
        assert_eq!(v["date"], DAY);
        assert_eq!(v["totals"]["net_amount"], recon::signed_yuan(all_sales - all_refunds));
        assert_eq!(v["transactions"].as_array().unwrap().len(), n + refunds);
    }
}

// ---- Statements ------------------------------------------------------------------------------

fn yuan(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

/// A WeChat Pay daily bill (交易账单) for the WeChat part of the day, in WeChat's layout.
fn wechat_bill(specs: &[Spec]) -> Vec<String> {
    let mut lines = vec!["交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注".to_string()];
    let row = |t: &str, s: &Spec, status: &str, refund: Option<(&str, &str, i64)>| {
        let (rid, rref, ramt) = refund.map(|(a, b, c)| (a.to_string(), b.to_string(), yuan(c))).unwrap_or_default();
        let rstatus = if refund.is_some() { "SUCCESS" } else { "" };
        format!(
            "`{t},`wx8888888888888888,`1900000109,`0,`POS-0001,`{},`{},`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`MICROPAY,`{status},`CMB_DEBIT,`CNY,`{},`0.00,`{rid},`{rref},`{},`0.00,`{},`{rstatus},`门诊缴费,`,`0.00000,`0.60%,`{},`{},`",
            s.pay_no,
            s.pos_ref,
            yuan(s.fen),
            if ramt.is_empty() { "0.00".to_string() } else { ramt.clone() },
            if refund.is_some() { "ORIGINAL" } else { "" },
            yuan(s.fen),
            if ramt.is_empty() { "0.00".to_string() } else { ramt },
        )
    };
    for s in specs.iter().filter(|s| s.channel == "WECHAT") {
        let t = format!("2026-11-20 {:02}:10:00", s.hour);
        match s.fate {
            Fate::Paid => lines.push(row(&t, s, "SUCCESS", None)),
            Fate::PaidThenRefunded(r) => {
                lines.push(row(&t, s, "SUCCESS", None));
                lines.push(row(&t, s, "REFUND", Some((&s.refund_pay_no, &s.refund_ref, r))));
            }
            Fate::Reversed => lines.push(row(&t, s, "REVOKED", None)),
            _ => {}
        }
    }
    lines.push("总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额".into());
    lines.push("`1,`0.00,`0.00,`0.00,`0.00000,`0.00,`0.00".into());
    lines
}

/// An Alipay business detail file for the Alipay part of the day (GBK, Alipay's layout).
fn alipay_bill(specs: &[Spec]) -> Vec<String> {
    let mut lines = vec![
        "#支付宝业务明细查询".to_string(),
        "#账号：[20881234567890120156]".into(),
        "#起始日期：[2026年11月20日 00:00:00]   终止日期：[2026年11月21日 00:00:00]".into(),
        "#-----------------------------------------业务明细列表----------------------------------------".into(),
        "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注".into(),
    ];
    let row = |kind: &str, s: &Spec, amount: &str, req: &str| {
        format!(
            "{}\t,{}\t,{kind},门诊缴费,2026-11-20 {:02}:10:00,2026-11-20 {:02}:10:05,,,,POS-0001,pat***@163.com,{amount},{amount},0.00,0.00,0.00,0.00,0.00,,0.00,0.00,{req}\t,-0.06,0.00,",
            s.pay_no, s.pos_ref, s.hour, s.hour
        )
    };
    for s in specs.iter().filter(|s| s.channel == "ALIPAY") {
        match s.fate {
            Fate::Paid => lines.push(row("交易", s, &yuan(s.fen), "")),
            Fate::PaidThenRefunded(r) => {
                lines.push(row("交易", s, &yuan(s.fen), ""));
                lines.push(row("退款", s, &format!("-{}", yuan(r)), &s.refund_ref));
            }
            Fate::Reversed => {
                lines.push(row("交易", s, &yuan(s.fen), ""));
                lines.push(row("退款", s, &format!("-{}", yuan(s.fen)), &format!("{}_reverse", s.pos_ref)));
            }
            _ => {}
        }
    }
    lines.push("#-----------------------------------------业务明细列表结束------------------------------------".into());
    lines.push("#交易合计：1笔，商家实收：0.00元".into());
    lines
}

fn diffs(m: &statement::MatchReport) -> BTreeSet<(DiffKind, String)> {
    m.differences.iter().map(|d| (d.kind, d.order_no.clone().or(d.merchant_no.clone()).unwrap_or_default())).collect()
}

fn match_text(day: &Day, source: Source, bytes: &[u8]) -> statement::MatchReport {
    let j = Journal::open(&day.path).unwrap();
    statement::match_file(&j, DAY, source, bytes).unwrap()
}

#[test]
fn faithful_statements_match_without_differences() {
    let day = generate(300, 3);
    let w = wechat_bill(&day.specs).join("\r\n");
    let m = match_text(&day, Source::Wechat, w.as_bytes());
    assert!(m.differences.is_empty(), "{}", m.summary());
    assert!(m.matched > 100);
    let a = alipay_bill(&day.specs).join("\r\n");
    let (gbk, _, _) = encoding_rs::GBK.encode(&a);
    let m = match_text(&day, Source::Alipay, &gbk);
    assert!(m.differences.is_empty(), "{}", m.summary());
    assert!(m.matched > 100);
}

#[test]
fn wechat_bill_differences_are_each_named() {
    let day = generate(300, 5);
    let mut lines = wechat_bill(&day.specs);
    let wx = |f: fn(&Fate) -> bool| {
        day.specs.iter().filter(|s| s.channel == "WECHAT" && f(&s.fate)).cloned().collect::<Vec<_>>()
    };
    let paid = wx(|f| *f == Fate::Paid);
    let refunded = wx(|f| matches!(f, Fate::PaidThenRefunded(_)));
    let failed = wx(|f| *f == Fate::Failed);
    // 1. A payment the statement lacks.
    lines.retain(|l| !(l.contains(&format!("`{},", paid[0].pay_no)) && l.contains("`SUCCESS,")));
    // 2. A payment with a different amount.
    let i = lines.iter().position(|l| l.contains(&format!("`{},", paid[1].pay_no))).unwrap();
    lines[i] = lines[i].replace(&format!("`{},", yuan(paid[1].fen)), &format!("`{},", yuan(paid[1].fen + 1)));
    // 3. A refund the statement lacks.
    lines.retain(|l| !(l.contains(&format!("`{},", refunded[0].refund_pay_no))));
    // 4. A payment the wallet reversed after the HIS was told paid.
    let i = lines.iter().position(|l| l.contains(&format!("`{},", paid[2].pay_no))).unwrap();
    lines[i] = lines[i].replace("`SUCCESS,", "`REVOKED,");
    // 5. A payment no order knows of, and 6. one for an order the HIS was told failed.
    let stranger = lines[i]
        .replace(&paid[2].pay_no, "420009999999999")
        .replace(&paid[2].pos_ref, "Z999.1")
        .replace("`REVOKED,", "`SUCCESS,");
    lines.insert(2, stranger);
    let charged_anyway = lines[2].replace("420009999999999", "420008888888888").replace("Z999.1", &failed[0].pos_ref);
    lines.insert(3, charged_anyway);
    let m = match_text(&day, Source::Wechat, lines.join("\n").as_bytes());
    let want: BTreeSet<(DiffKind, String)> = [
        (DiffKind::MissingInStatement, paid[0].order_no.clone()),
        (DiffKind::AmountDiffers, paid[1].order_no.clone()),
        (DiffKind::RefundMissing, refunded[0].order_no.clone()),
        (DiffKind::ReversedAfterSuccess, paid[2].order_no.clone()),
        (DiffKind::MissingInJournal, "Z999.1".into()),
        (DiffKind::MissingInJournal, failed[0].order_no.clone()),
    ]
    .into();
    assert_eq!(diffs(&m), want, "{}", m.summary());
    let amount = m.differences.iter().find(|d| d.kind == DiffKind::AmountDiffers).unwrap();
    assert_eq!(amount.statement_amount.as_deref(), Some(yuan(paid[1].fen + 1).as_str()));
    assert!(amount.line.is_some(), "the statement line is named");
}

#[test]
fn alipay_bill_differences_are_each_named() {
    let day = generate(300, 11);
    let mut lines = alipay_bill(&day.specs);
    let ali = |f: fn(&Fate) -> bool| {
        day.specs.iter().filter(|s| s.channel == "ALIPAY" && f(&s.fate)).cloned().collect::<Vec<_>>()
    };
    let paid = ali(|f| *f == Fate::Paid);
    let refunded = ali(|f| matches!(f, Fate::PaidThenRefunded(_)));
    let reversed = ali(|f| *f == Fate::Reversed);
    lines.retain(|l| !l.starts_with(&format!("{}\t", paid[0].pay_no)));
    lines.retain(|l| !(l.starts_with(&format!("{}\t", refunded[0].pay_no)) && l.contains(",退款,")));
    // A reversal whose money-back line is missing: the statement says still collected.
    lines.retain(|l| !(l.starts_with(&format!("{}\t", reversed[0].pay_no)) && l.contains(",退款,")));
    let m = match_text(&day, Source::Alipay, lines.join("\n").as_bytes());
    let want: BTreeSet<(DiffKind, String)> = [
        (DiffKind::MissingInStatement, paid[0].order_no.clone()),
        (DiffKind::RefundMissing, refunded[0].order_no.clone()),
        (DiffKind::MissingInJournal, reversed[0].order_no.clone()),
    ]
    .into();
    assert_eq!(diffs(&m), want, "{}", m.summary());
}

#[test]
fn a_statement_of_the_wrong_kind_is_refused_clearly() {
    let day = generate(10, 1);
    let j = Journal::open(&day.path).unwrap();
    let w = wechat_bill(&day.specs).join("\n");
    let e = statement::match_file(&j, DAY, Source::Alipay, w.as_bytes()).unwrap_err().to_string();
    assert!(e.contains("支付宝交易号"), "{e}");
    assert!(statement::match_file(&j, "2026-02-30", Source::Wechat, w.as_bytes()).is_err());
}

// ---- With the bridge and the POS ---------------------------------------------------------------

#[test]
fn pos_totals_are_compared_and_the_day_file_is_written() {
    // W02 refunds what W01 took: a supervisor's desk.
    let mut h = Harness::with(hisbridge_sim::SimConfig::default(), "[policy]\nsupervisor_terminals = [\"W02\"]\n");
    let today = chrono::Local::now().format("%Y-%m-%d").to_string();
    let pos_today = chrono::Local::now().format("%Y%m%d").to_string();
    assert_eq!(h.pay("T1", "+12.30").channel.as_deref(), Some("WECHAT"));
    assert_eq!(h.pay("T2", "+8.60").channel.as_deref(), Some("ALIPAY"));
    assert_eq!(h.pay("T3", "+1.91").status, hisbridge_core::his::Status::Failed);
    let stem = h.send(&Harness::order("W02", "T1", "-2.30", Some("R1")));
    assert_eq!(h.wait(&stem).status, hisbridge_core::his::Status::Refunded);

    let fetch = |h: &Harness| {
        let control = h.bridge.as_ref().unwrap().control.clone();
        let date = today.clone();
        h.rt.as_ref().unwrap().block_on(async move { recon::fetch_pos_totals(&control, &date).await })
    };
    let t = fetch(&h).expect("the POS answers TOTALS");
    assert_eq!(t.date, pos_today);
    let r = DayReport::build(&h.journal(), &today, common::DEVICE).unwrap();
    let pos = r.pos.as_ref().expect("totals journaled");
    assert_eq!(pos.differences, 0, "{}", r.summary());
    let wx = r.by_channel.iter().find(|c| c.key == "WECHAT").unwrap();
    assert_eq!((wx.sales, wx.sales_fen, wx.refunds, wx.refunds_fen, wx.net_fen), (1, 1230, 1, 230, 1000));

    // The POS holds a payment the journal never saw (taken on the POS by hand, say).
    {
        let mut l = h.sim.ledger.lock().unwrap();
        let mut e = l.get("T1.1").unwrap().clone();
        e.reference = "HAND-1".into();
        e.pay_order_no = Some("4200HAND000001".into());
        l.entries.insert("HAND-1".into(), e);
    }
    fetch(&h).unwrap();
    let r = DayReport::build(&h.journal(), &today, common::DEVICE).unwrap();
    let pos = r.pos.as_ref().unwrap();
    assert_eq!(pos.differences, 1, "{}", r.summary());
    let line = pos.lines.iter().find(|l| !l.matches).unwrap();
    assert_eq!((line.channel.as_str(), line.journal_sales, line.pos_sales), ("WECHAT", 1, 2));
    assert!(r.summary().contains("DIFFER"));

    // The POS's settlement export names the stranger.
    let csv = h.sim.ledger().settlement_csv(&pos_today);
    let m = statement::match_file(&h.journal(), &today, Source::Pos, csv.as_bytes()).unwrap();
    assert_eq!(diffs(&m), [(DiffKind::MissingInJournal, "HAND-1".to_string())].into(), "{}", m.summary());
    assert_eq!(m.matched, 3, "two collections and a refund match");

    // The scheduler writes the day's file once its time has passed (here: at once on start).
    h.stop();
    h.cfg.reconciliation.at = chrono::NaiveTime::from_hms_opt(0, 0, 0).unwrap();
    h.start();
    let (name, _) = recon::file_names(&today).unwrap();
    let file = h.cfg.reconciliation.folder.join(&name);
    h.eventually("reconciliation file written", || file.exists());
    let plain = h.key.open_report(&std::fs::read(&file).unwrap()).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(v["kind"], "reconciliation");
    assert_eq!(v["totals"]["net_amount"], "18.60");
    assert_eq!(v["transactions"].as_array().unwrap().len(), 4);
    std::thread::sleep(Duration::from_millis(10));
}

/// The cause the lifecycle table allows for moving a just-sent order to `state`.
fn cause_for(state: State) -> Cause {
    if state == State::Unknown {
        Cause::Lost
    } else {
        Cause::PosFinal
    }
}
