// Dashboard: renders what the core pushes (pos-status, order, rejected events) and asks for the
// day's report when something changed. No polling.
const T = {
  zh: {
    pos: "POS 状态", port: "端口", device: "设备号", heard: "最后通讯", lang: "English", day: "日期",
    totals: "当日汇总", channel: "渠道", sales: "收款笔数", collected: "收款金额", refunds: "退款笔数",
    refunded: "退款金额", net: "净额", open: "未决", checkPos: "核对 POS 汇总", writeRecon: "生成对账文件",
    byHour: "分时收款（元）", openItems: "未决订单", noOpen: "没有未决订单", orders: "当日订单",
    search: "搜索订单号 / 支付单号", all: "全部", time: "时间", orderNo: "HIS 订单号", amount: "金额",
    status: "状态", payNo: "支付单号", query: "查询", cancel: "撤销", rewrite: "重写结果",
    WECHAT: "微信", ALIPAY: "支付宝", OTHER: "其他", NONE: "-", ALL: "合计",
    SUCCESS: "成功", REFUNDED: "已退款", FAILED: "失败", CANCELLED: "已取消", REVERSED: "已撤销退回",
    PROCESSING: "处理中", UNKNOWN: "结果未知", REJECTED: "拒收",
    posNone: "尚未取得 POS 汇总", posOk: "POS 汇总与本系统一致", posDiff: "POS 汇总与本系统不一致：",
    since: "自", written: "对账文件已生成：", confirmCancel: "确定撤销订单 {0}？",
    badFile: "HIS 指令被拒收：", failedOrder: "订单 {0} 失败",
    navDay: "今日", navSettings: "设置", navLogs: "日志", pause: "暂停收款", resume: "恢复收款",
    settings: "设置", setFolders: "文件夹", inbox: "收件夹（HIS 写指令）", outbox: "结果夹（HIS 读结果）",
    errorDir: "错误夹", socketPort: "本机套接字端口（空 = 关闭）", setPos: "POS", baud: "波特率",
    serviceNote: "由 HIS Bridge 服务驱动 POS，本窗口只显示状态（取消、暂停、测试请停止服务或由 HIS 操作）。",
    posPort: "POS 端口", transport: "连接方式", transportSerial: "串口（COM）", transportUsb: "USB 直连（需 WinUSB 驱动）", transportAoa: "安卓 POS（USB 配件模式）",
    portHint: "可填 COM 口名，或 usb:厂商号:产品号[:序列号]（按 USB 标识查找，COM 号变化也能找到）。",
    byIdentity: "按 USB 标识", looksLikePos: "像是 POS",
    terminals: "收费终端号（逗号分隔）", setTimeouts: "超时（秒）", scanSecs: "等待扫码", passwordSecs: "等待输入密码",
    cancelSecs: "等待撤销确认", querySecs: "查询间隔", unavailableSecs: "POS 未连接时订单等待", setNotify: "通知", nSuccess: "收款/退款成功",
    nFailure: "收款失败", nUnknown: "结果未知", nLink: "POS 断开/恢复", nRejected: "HIS 指令被拒收",
    save: "保存", restart: "立即重启桥程序", saved: "已保存，已生效", savedRestart: "已保存；POS 端口、文件夹等设置需重启桥程序后生效",
    key: "密钥", keyInUse: "当前密钥编号：", importKey: "导入密钥文件", keyImported: "已导入密钥 {0}，重启桥程序后生效",
    reload: "刷新", diag: "导出诊断包", testPos: "测试 POS 连接", diagDone: "诊断包已生成：",
    posInfo: "POS 正常：设备 {0}，版本 {1}，POS 时钟 {2}", fieldError: "{0}：{1}", paused: "已暂停收款",
    noOrderYet: "今天还没有订单", backToday: "回到今日", viewing: "正在查看 {0} 的记录（不是今天）",
    CANCELLING: "正在撤销", ACCEPTED: "排队中", SENT: "收款中", PAYING: "患者付款中", close: "关闭",
    refundOf: "{0} 退款 {1}", today: "今天", yesterday: "昨天", notInteger: "请填写整数",
    settingsLocked: "设置只能由信息科（管理员）修改：这里只显示当前设置。",
    itLocked: "设置由信息科密码保护：这里只显示当前设置。", itPassword: "信息科密码", unlock: "解锁",
    itUnlocked: "已用信息科密码解锁（10 分钟无操作或离开本页后自动锁定）", relock: "锁定",
    savedService: "已保存；HIS Bridge 服务重启后生效（请信息科在“服务”中重启 HISBridge，或执行 hisbridge service stop/start）",
    rejectedDay: "当日拒收 HIS 指令 {0} 个：HIS 已收到错误结果，未扣款；文件和原因在错误夹",
    logAll: "全部级别", logWarn: "警告和错误", logError: "只看错误", logSearch: "搜索日志（订单号、错误…）", logFollow: "自动刷新",
  },
  en: {
    pos: "POS status", port: "Port", device: "Device ID", heard: "Last heard", lang: "中文", day: "Day",
    totals: "Today's totals", channel: "Channel", sales: "Sales", collected: "Collected", refunds: "Refunds",
    refunded: "Refunded", net: "Net", open: "Open", checkPos: "Check POS totals", writeRecon: "Write reconciliation file",
    byHour: "Collected by hour (yuan)", openItems: "Open items", noOpen: "No open items", orders: "Orders of the day",
    search: "Search order no. / payment no.", all: "All", time: "Time", orderNo: "HIS order no.", amount: "Amount",
    status: "Status", payNo: "Payment no.", query: "Query", cancel: "Cancel", rewrite: "Rewrite result",
    WECHAT: "WeChat", ALIPAY: "Alipay", OTHER: "Other", NONE: "-", ALL: "Total",
    SUCCESS: "Paid", REFUNDED: "Refunded", FAILED: "Failed", CANCELLED: "Cancelled", REVERSED: "Reversed (money back)",
    PROCESSING: "Processing", UNKNOWN: "Outcome unknown", REJECTED: "Refused",
    posNone: "POS totals not fetched yet", posOk: "POS totals match the journal", posDiff: "POS totals differ: ",
    since: "since", written: "Reconciliation file written: ", confirmCancel: "Cancel order {0}?",
    badFile: "HIS instruction refused: ", failedOrder: "Order {0} failed",
    navDay: "Today", navSettings: "Settings", navLogs: "Logs", pause: "Pause payments", resume: "Resume payments",
    settings: "Settings", setFolders: "Folders", inbox: "Inbox (the HIS writes instructions)", outbox: "Outbox (the HIS reads results)",
    errorDir: "Error folder", socketPort: "Localhost socket port (empty = off)", setPos: "POS", baud: "Baud rate",
    serviceNote: "The HIS Bridge service drives the POS; this window shows its status only (to cancel, pause or test, stop the service or use the HIS).",
    posPort: "POS port", transport: "Connection", transportSerial: "Serial (COM port)", transportUsb: "Raw USB (needs the WinUSB driver)", transportAoa: "Android POS (USB accessory mode)",
    portHint: "A COM port name, or usb:VID:PID[:SERIAL] (found by USB identity, whatever COM number Windows gives it).",
    byIdentity: "by USB identity", looksLikePos: "looks like a POS",
    terminals: "Software terminal IDs (comma-separated)", setTimeouts: "Timeouts (seconds)", scanSecs: "Waiting for the scan",
    passwordSecs: "Waiting for the password", cancelSecs: "Waiting for a cancel", querySecs: "Query interval", unavailableSecs: "Order waits for an unconnected POS",
    setNotify: "Notifications", nSuccess: "Payment/refund succeeded", nFailure: "Payment failed", nUnknown: "Outcome unknown",
    nLink: "POS disconnected/back", nRejected: "HIS instruction refused",
    save: "Save", restart: "Restart the bridge now", saved: "Saved and applied", savedRestart: "Saved; port, folder and similar settings apply after the bridge restarts",
    key: "Key", keyInUse: "Key in use: ", importKey: "Import a key file", keyImported: "Key {0} imported; it applies after the bridge restarts",
    reload: "Reload", diag: "Export diagnostics", testPos: "Test POS connection", diagDone: "Diagnostics written: ",
    posInfo: "POS OK: device {0}, version {1}, POS clock {2}", fieldError: "{0}: {1}", paused: "Taking payments paused",
    noOrderYet: "No order yet today", backToday: "Back to today", viewing: "Viewing {0} (not today)",
    CANCELLING: "Cancelling", ACCEPTED: "Queued", SENT: "Collecting", PAYING: "Patient paying", close: "Close",
    refundOf: "{0} refund {1}", today: "today", yesterday: "yesterday", notInteger: "enter a whole number",
    settingsLocked: "Only IT (an administrator) may change the settings: they are shown here read-only.",
    itLocked: "The settings are guarded by the IT password: they are shown here read-only.", itPassword: "IT password", unlock: "Unlock",
    itUnlocked: "Unlocked with the IT password (locks again after 10 minutes idle or on leaving this page)", relock: "Lock",
    savedService: "Saved; applies when the HIS Bridge service restarts (IT: restart HISBridge in Services, or hisbridge service stop/start)",
    rejectedDay: "{0} HIS instructions refused today: the HIS got error results, nothing was charged; files and reasons are in the error folder",
    logAll: "All levels", logWarn: "Warnings and errors", logError: "Errors only", logSearch: "Search the log (order no., error…)", logFollow: "Follow",
  },
};
let lang = localStorage.getItem("lang") || "zh";
let status = null;
let report = null;
const $ = (id) => document.getElementById(id);
const t = (k, ...a) => (T[lang][k] ?? k).replace(/\{(\d)\}/g, (_, i) => a[i]);
const tauri = window.__TAURI__;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  Object.entries(attrs || {}).forEach(([k, v]) => (k === "class" ? (e.className = v) : e.setAttribute(k, v)));
  kids.forEach((k) => e.append(k));
  return e;
}

// Notices answer the cashier's own actions (saved, written, an error): they close with ×, and
// a plain one by itself after 8 s. Payments are told by the last-payment strip, not here.
let noticeTimer = null;
function notice(text, kind) {
  const n = $("notice");
  $("notice-text").textContent = text;
  n.className = "notice " + (kind || "");
  n.hidden = !text;
  clearTimeout(noticeTimer);
  if (text && kind !== "bad") noticeTimer = setTimeout(() => (n.hidden = true), 8000);
}
$("notice-close").addEventListener("click", () => notice(""));

// ---- Time: local, and one place that says what "now" is --------------------------------------
const now = () => new Date(Date.now() + (window.hbClockOffset || 0));
const ymd = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 10);
const todayStr = () => ymd(now());
// A journal time (`2026-12-02T08:14:25.123+08:00`) as the cashier reads it: the time, with the
// date when it is not today.
function human(ts) {
  if (!ts) return "-";
  const day = ts.slice(0, 10), time = ts.slice(11, 19);
  if (day === todayStr()) return time;
  return `${day} ${time}`;
}
// The POS clock (`20261202041425`) likewise.
function posClock(s) {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$/.exec(String(s || ""));
  return m ? `${m[1]}-${m[2]}-${m[3]} ${m[4]}:${m[5]}:${m[6]}` : String(s || "-");
}
const money = (a) => (a && a.startsWith("-") ? "-¥" : "¥") + String(a || "0.00").replace(/^[+-]/, "");
const shownKey = (o) => (o.refund_no ? t("refundOf", o.order_no, o.refund_no) : o.order_no);

// ---- The last payment --------------------------------------------------------------------------
let last = null;
const FINAL = ["SUCCESS", "REFUNDED", "FAILED", "CANCELLED", "REVERSED"];
function renderLast() {
  const box = $("last");
  if (!last) {
    box.dataset.state = "none";
    $("last-order").textContent = "";
    $("last-headline").textContent = t("noOrderYet");
    $("last-tell").textContent = "";
    return;
  }
  const w = lang === "zh" ? last.words_zh : last.words_en;
  const final = FINAL.includes(last.state);
  box.dataset.state = w.attention ? "bad" : final ? "ok" : "busy";
  box.dataset.order = last.key;
  $("last-order").textContent = lang === "zh" ? last.shown_zh : last.shown_en;
  $("last-headline").textContent = w.headline;
  $("last-tell").textContent = w.tell ? (lang === "zh" ? "——" : " — ") + w.tell : "";
}

function renderStatus() {
  if (!status) return;
  $("pause").textContent = t(status.paused ? "resume" : "pause");
  const s = $("state");
  s.textContent = lang === "zh" ? status.tooltip_zh : status.tooltip_en;
  s.title = s.textContent; // the whole text where a narrow window cuts it short
  s.className = "state " + status.state;
  $("port").textContent = status.port || "-";
  $("device").textContent = status.device_id || "-";
  $("heard").textContent = human(status.last_heard);
  $("service-note").hidden = status.service == null;
  // Actions that need this app's own engine are hidden while the service drives the POS.
  document.body.classList.toggle("status-only", status.service != null);
}

function renderTotals() {
  const body = $("totals-body");
  body.replaceChildren();
  if (!report) return;
  for (const l of [...report.by_channel, report.totals]) {
    body.append(el("tr", { class: l.key === "ALL" ? "sum" : "" },
      el("td", {}, t(l.key)), el("td", {}, String(l.sales)), el("td", { class: "num" }, money(l.sales_amount)),
      el("td", {}, String(l.refunds)), el("td", { class: "num" }, money(l.refunds_amount)), el("td", { class: "num" }, money(l.net_amount)),
      el("td", {}, String(l.open))));
  }
  const rj = $("rejected-line");
  rj.hidden = !report.rejected;
  rj.textContent = t("rejectedDay", report.rejected);
  const p = report.pos;
  const pc = $("poscheck");
  if (!p) { pc.textContent = t("posNone"); pc.className = "muted"; }
  else if (p.differences === 0) { pc.textContent = t("posOk") + " (" + p.fetched_at.slice(11, 19) + ")"; pc.className = "ok"; }
  else {
    pc.textContent = t("posDiff") + p.lines.filter((l) => !l.matches).map((l) =>
      `${t(l.channel)} ${l.journal_sales}/${l.journal_sales_amount} ≠ POS ${l.pos_sales}/${l.pos_sales_amount}`).join("; ");
    pc.className = "bad";
  }
}

function renderChart() {
  const svg = $("chart");
  svg.replaceChildren();
  if (!report) return;
  const hours = new Map();
  for (const h of report.by_hour) {
    const v = hours.get(h.hour) || { WECHAT: 0, ALIPAY: 0, OTHER: 0 };
    v[h.channel in v ? h.channel : "OTHER"] += parseFloat(h.sales_amount);
    hours.set(h.hour, v);
  }
  // Working hours (07–20), widened to any hour that has takings.
  const used = [...hours.keys()];
  const from = Math.min(7, ...used), to = Math.max(20, ...used);
  const n = to - from + 1;
  const max = Math.max(1, ...[...hours.values()].map((v) => v.WECHAT + v.ALIPAY + v.OTHER));
  // A round top for the scale: 1, 2 or 5 times a power of ten.
  const p = Math.pow(10, Math.floor(Math.log10(max)));
  const top = [1, 2, 5, 10].map((m) => m * p).find((x) => x >= max);
  const ns = "http://www.w3.org/2000/svg";
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    Object.entries(attrs).forEach(([k, v]) => e.setAttribute(k, v));
    if (text != null) e.textContent = text;
    svg.append(e);
    return e;
  };
  const left = 44, right = 712, base = 140, height = 120;
  const step = (right - left) / n;
  for (let i = 0; i <= 4; i++) {
    const y = base - (height * i) / 4;
    add("line", { x1: left, x2: right, y1: y, y2: y, class: i === 0 ? "axis" : "grid" });
    add("text", { x: left - 4, y: y + 3, "text-anchor": "end" }, ((top * i) / 4).toFixed(top < 8 ? 2 : 0));
  }
  for (let h = from; h <= to; h++) {
    const x = left + (h - from) * step;
    const v = hours.get(h) || { WECHAT: 0, ALIPAY: 0, OTHER: 0 };
    let y = base;
    for (const [ch, cls] of [["WECHAT", "wx"], ["ALIPAY", "ali"], ["OTHER", "oth"]]) {
      const hh = (v[ch] / top) * height;
      if (hh > 0) {
        y -= hh;
        const r = add("rect", { x: x + step * 0.15, y, width: step * 0.7, height: hh, class: cls });
        // The value on hover.
        const tip = document.createElementNS(ns, "title");
        tip.textContent = `${String(h).padStart(2, "0")}:00–${String(h + 1).padStart(2, "0")}:00 ${t(ch)} ¥${v[ch].toFixed(2)}`;
        r.append(tip);
      }
    }
    add("text", { x: x + step / 2, y: 155, "text-anchor": "middle" }, String(h).padStart(2, "0"));
  }
}

function renderOpen() {
  const list = $("open-list");
  list.replaceChildren();
  const items = report ? report.open_items : [];
  $("open-none").hidden = items.length > 0;
  // Only while something is open: then it is what the cashier must look at.
  $("open-card").hidden = items.length === 0;
  for (const o of items) {
    const key = o.refund_no ? `${o.order_no}@${o.refund_no}` : o.order_no;
    list.append(el("li", { class: "bad", "data-order": key }, `${shownKey(o)}  ${money(o.amount)}  ${t(o.status)}  ${t("since")} ${human(o.created_at)}`));
  }
}

function renderOrders() {
  const body = $("orders-body");
  body.replaceChildren();
  if (!report) return;
  const q = $("search").value.trim().toLowerCase();
  const f = $("filter").value;
  const rows = [...report.transactions].reverse().filter((o) => {
    if (f === "open" && !["PROCESSING", "UNKNOWN"].includes(o.status)) return false;
    if (f !== "all" && f !== "open" && o.status !== f) return false;
    return !q || [o.order_no, o.refund_no, o.pay_order_no].some((v) => v && v.toLowerCase().includes(q));
  });
  for (const o of rows) {
    const key = o.refund_no ? `${o.order_no}@${o.refund_no}` : o.order_no;
    const acts = el("td", { class: "acts" });
    const button = (action, label) => {
      const b = el("button", { type: "button", "data-action": action, "data-key": key }, t(label));
      b.addEventListener("click", () => act(key, action));
      acts.append(b);
    };
    if (["PROCESSING", "UNKNOWN"].includes(o.status)) { button("query", "query"); if (o.kind === "SALE") button("cancel", "cancel"); }
    else button("rewrite", "rewrite");
    const time = (o.finished_at || o.created_at).slice(11, 19);
    const mark = marked && marked.key === key && Date.now() < marked.until ? " focus" : "";
    body.append(el("tr", { class: "st-" + o.status + mark, "data-order": key },
      el("td", {}, time), el("td", {}, shownKey(o)), el("td", { class: "num" }, money(o.amount)), el("td", {}, t(o.channel || "NONE")),
      el("td", { class: "status" }, t(o.status)), el("td", {}, o.pay_order_no || "-"), acts));
  }
  focusOrder();
}

function render() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((e) => (e.textContent = t(e.dataset.i18n)));
  document.querySelectorAll("[data-i18n-placeholder]").forEach((e) => (e.placeholder = t(e.dataset.i18nPlaceholder)));
  $("lang").textContent = t("lang");
  renderStatus(); renderLast(); renderTotals(); renderChart(); renderOpen(); renderOrders(); renderHistory();
}

// ---- The day shown: today, following midnight, unless the cashier looks at another day -------
let followToday = true;
function day() { return $("date").value || null; }
function renderHistory() {
  const h = $("history");
  h.hidden = followToday;
  if (!followToday) $("history-text").textContent = t("viewing", $("date").value);
}
function goToday() {
  followToday = true;
  $("date").value = todayStr();
  renderHistory();
  refresh();
}
// Called every 30 s (and by the tests at a simulated midnight): the day moves with the clock.
function tick() {
  if (followToday && $("date").value !== todayStr()) goToday();
  renderStatus();
}
window.hbTick = tick;
setInterval(tick, 30000);

// ---- Sections (day, settings, logs) -----------------------------------------------------------
const FIELD_LABEL = { inbox: "inbox", outbox: "outbox", error: "errorDir", socket_port: "socketPort", pos_port: "posPort", transport: "transport",
  baud: "baud", device_id: "device", terminals: "terminals", scan_secs: "scanSecs", password_secs: "passwordSecs",
  cancel_secs: "cancelSecs", query_interval_secs: "querySecs", pos_unavailable_secs: "unavailableSecs" };
let form = null;

// The order a notification's click asked for: shown and marked once the day lists it.
let focusKey = null, marked = null;
function focusOrder() {
  if (!focusKey) return;
  const row = [...document.querySelectorAll("#orders tr[data-order]")].find((r) => r.dataset.order === focusKey);
  if (!row) return;
  marked = { key: focusKey, until: Date.now() + 8000 };
  focusKey = null;
  row.classList.add("focus");
  row.scrollIntoView({ block: "center" });
}
function show(section) {
  if (section && section.startsWith("order:")) {
    focusKey = decodeURIComponent(section.slice(6));
    $("search").value = "";
    $("filter").value = "all";
    if (!followToday) goToday();
    section = "";
    renderOrders();
    refresh();
  }
  const s = ["settings", "logs"].includes(section) ? section : "day";
  for (const v of ["day", "settings", "logs"]) $("view-" + v).hidden = v !== s;
  if (s === "settings") loadSettings();
  else if (tauri) tauri.core.invoke("lock_settings");
  if (s === "logs") loadLog();
}

function loadSettings() {
  if (!tauri) return;
  tauri.core.invoke("get_settings").then((f) => {
    form = f;
    const e = $("settings-form").elements;
    for (const k of ["inbox", "outbox", "error", "pos_port", "transport", "device_id", "scan_secs", "password_secs", "cancel_secs", "query_interval_secs", "pos_unavailable_secs"]) e[k].value = f[k];
    e.socket_port.value = f.socket_port ?? "";
    e.baud.value = String(f.baud);
    e.terminals.value = f.terminals.join(", ");
    for (const k of ["success", "failure", "unknown", "link", "rejected"]) e["n_" + k].checked = f.notify[k];
    $("key-id").textContent = f.key_id || "-";
    $("settings-error").textContent = "";
    showAccess();
  }, (err) => ($("settings-error").textContent = String(err)));
  tauri.core.invoke("list_ports").then((ports) => {
    choices = ports;
    const label = (p) => [p.detail, p.by_identity ? t("byIdentity") : "", p.looks_like_pos ? t("looksLikePos") : "",
      p.transport === "usb" ? t("transportUsb") : "", p.transport === "aoa" ? t("transportAoa") : ""].filter(Boolean).join(" · ");
    $("ports").replaceChildren(...ports.map((p) => el("option", { value: p.value }, label(p) || p.value)));
    $("port-hint").textContent = t("portHint");
  });
}

// Who may change the settings: the config file's permissions first, then the IT password.
function showAccess() {
  return tauri.core.invoke("settings_access").then((a) => {
    const open = a.writable && (!a.protected || a.unlocked);
    $("settings-locked").hidden = a.writable;
    $("unlock-form").hidden = !a.writable || !a.protected || a.unlocked;
    $("unlocked").hidden = !(a.writable && a.protected && a.unlocked);
    $("settings-form").querySelectorAll("input, select, button").forEach((x) => (x.disabled = !open));
    $("key-file").disabled = !open;
    if (!$("unlock-form").hidden) $("it-password").focus();
  });
}
// Not a <form>: the settings form stays the page's first; Enter in the field unlocks.
$("it-password").addEventListener("keydown", (ev) => { if (ev.key === "Enter") { ev.preventDefault(); unlock(); } });
$("unlock").addEventListener("click", () => unlock());
function unlock() {
  const password = $("it-password").value;
  $("it-password").value = "";
  tauri.core.invoke("unlock_settings", { password }).then(() => {
    $("unlock-error").textContent = "";
    showAccess();
  }, (e) => { $("unlock-error").textContent = String(e); $("it-password").focus(); });
}
$("relock").addEventListener("click", () => tauri.core.invoke("lock_settings").then(showAccess));

// Picking a listed device sets the connection that goes with it.
let choices = [];
$("settings-form").elements.pos_port.addEventListener("change", (ev) => {
  const c = choices.find((p) => p.value === ev.target.value.trim());
  if (c) $("settings-form").elements.transport.value = c.transport;
});

function num(v) { const n = Number(String(v).trim()); return String(v).trim() === "" || !Number.isInteger(n) || n < 0 ? -1 : n; }

$("settings-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const e = ev.target.elements;
  document.querySelectorAll(".invalid").forEach((x) => x.classList.remove("invalid"));
  for (const k of ["scan_secs", "password_secs", "cancel_secs", "query_interval_secs", "pos_unavailable_secs", "socket_port"]) {
    const v = String(e[k].value).trim();
    if (!(k === "socket_port" && v === "") && !/^\d+$/.test(v)) {
      $("settings-error").textContent = t("fieldError", t(FIELD_LABEL[k]), t("notInteger"));
      e[k].classList.add("invalid"); e[k].focus();
      return;
    }
  }
  const port = String(e.socket_port.value).trim();
  const f = {
    ...form,
    inbox: e.inbox.value, outbox: e.outbox.value, error: e.error.value, pos_port: e.pos_port.value, transport: e.transport.value,
    socket_port: port === "" ? null : num(port) > 65535 ? 0 : Math.max(0, num(port)),
    baud: Number(e.baud.value), device_id: e.device_id.value,
    terminals: e.terminals.value.split(/[,，\s]+/).filter(Boolean),
    scan_secs: Math.max(0, num(e.scan_secs.value)), password_secs: Math.max(0, num(e.password_secs.value)),
    cancel_secs: Math.max(0, num(e.cancel_secs.value)), query_interval_secs: Math.max(0, num(e.query_interval_secs.value)),
    pos_unavailable_secs: Math.max(0, num(e.pos_unavailable_secs.value)),
    notify: Object.fromEntries(["success", "failure", "unknown", "link", "rejected"].map((k) => [k, e["n_" + k].checked])),
  };
  tauri.core.invoke("save_settings", { form: f }).then((outcome) => {
    $("settings-error").textContent = "";
    notice(t({ applied: "saved", restart_app: "savedRestart", restart_service: "savedService" }[outcome] || "saved"));
    $("restart").hidden = outcome !== "restart_app";
    form = f;
  }, (err) => {
    const field = err && err.field;
    const label = field && FIELD_LABEL[field] ? t(FIELD_LABEL[field]) : field || "";
    const message = (lang === "zh" && err && err.message_zh) || (err && err.message) || String(err);
    $("settings-error").textContent = label ? t("fieldError", label, message) : message;
    if (field && e[field]) { e[field].classList.add("invalid"); e[field].focus(); }
    if (!field) showAccess(); // the unlock may have run out
  });
});
$("restart").addEventListener("click", () => tauri.core.invoke("restart_app").catch((e) => notice(String(e), "bad")));
$("key-file").addEventListener("change", (ev) => {
  const file = ev.target.files[0];
  if (!file) return;
  file.text().then((text) => tauri.core.invoke("import_key", { text })).then((id) => {
    $("key-msg").textContent = t("keyImported", id); $("key-msg").className = "ok"; $("key-id").textContent = id;
  }, (e) => { $("key-msg").textContent = String(e); $("key-msg").className = "bad"; showAccess(); });
  ev.target.value = "";
});

// The log: the last 2,000 lines, filtered here by level and text; followed every 3 s while shown.
let logText = "";
function renderLog() {
  const level = $("log-level").value, q = $("log-search").value.trim().toLowerCase();
  const keep = (line) => {
    if (level === "error" && !/\bERROR\b/.test(line)) return false;
    if (level === "warn" && !/\b(WARN|ERROR)\b/.test(line)) return false;
    return !q || line.toLowerCase().includes(q);
  };
  const l = $("log");
  l.textContent = logText.split("\n").filter(keep).slice(-400).join("\n");
  l.scrollTop = l.scrollHeight;
}
function loadLog() {
  if (!tauri) return;
  tauri.core.invoke("read_log", { lines: 2000 }).then((text) => { logText = text; renderLog(); });
}
setInterval(() => { if (!$("view-logs").hidden && $("log-follow").checked) loadLog(); }, 3000);
$("log-level").addEventListener("change", renderLog);
$("log-search").addEventListener("input", renderLog);
$("reload-log").addEventListener("click", loadLog);
$("diag").addEventListener("click", () => tauri.core.invoke("export_diagnostics").then((p) => notice(t("diagDone") + p), (e) => notice(String(e), "bad")));
$("test-pos").addEventListener("click", () => tauri.core.invoke("test_pos")
  .then((i) => notice(t("posInfo", i.device_id, i.version, posClock(i.time))), (e) => notice(String(e), "bad")));
$("pause").addEventListener("click", () => tauri.core.invoke("set_paused", { paused: !(status && status.paused) })
  .catch((e) => notice(String(e), "bad")));
window.addEventListener("hashchange", () => show(location.hash.slice(1)));

let pending = null;
function refresh() {
  // Events can come in bursts: one report request per burst.
  if (pending || !tauri) return;
  pending = setTimeout(() => {
    pending = null;
    tauri.core.invoke("day_report", { date: day() }).then((r) => { report = r; render(); }, (e) => notice(String(e), "bad"));
  }, 150);
}

// The order the last action notice ("正在撤销") is about: its final outcome, shown in the strip,
// takes the notice away so it never contradicts the strip.
let actionKey = null;
function act(key, action) {
  const o = report && report.transactions.find((x) => (x.refund_no ? `${x.order_no}@${x.refund_no}` : x.order_no) === key);
  const shown = o ? shownKey(o) : key;
  const go = () => tauri.core.invoke("order_action", { key, action })
    .then((s) => {
      // Already final (the outcome came first): the strip says it.
      if (!(last && last.key === key && FINAL.includes(last.state))) { notice(`${shown}: ${t(s) || s}`); actionKey = key; }
      refresh();
    }, (e) => notice(String(e), "bad"));
  if (action !== "cancel") return go();
  // A native dialog naming the order and its amount (window.confirm returns at once in some webviews).
  tauri.core.invoke("confirm_cancel", { order: shown, amount: o ? money(o.amount) : "" }).then((yes) => { if (yes) go(); });
}

$("lang").addEventListener("click", () => {
  lang = lang === "zh" ? "en" : "zh";
  localStorage.setItem("lang", lang);
  if (tauri) tauri.core.invoke("set_language", { lang });
  render();
});
$("search").addEventListener("input", renderOrders);
$("filter").addEventListener("change", renderOrders);
$("date").addEventListener("change", () => {
  followToday = $("date").value === todayStr() || !$("date").value;
  if (!$("date").value) $("date").value = todayStr();
  renderHistory();
  refresh();
});
for (const id of ["nav-today", "back-today"]) $(id).addEventListener("click", () => goToday());
$("check-pos").addEventListener("click", () => tauri.core.invoke("check_pos_totals", { date: day() })
  .then((r) => { report = r; render(); }, (e) => notice(String(e), "bad")));
$("write-recon").addEventListener("click", () => tauri.core.invoke("write_reconciliation", { date: day() })
  .then((p) => notice(t("written") + p.join(", ")), (e) => notice(String(e), "bad")));

$("date").value = todayStr();
if (tauri) {
  tauri.core.invoke("status").then((v) => { status = v; renderStatus(); });
  tauri.event.listen("pos-status", (e) => {
    status = e.payload;
    renderStatus();
    // Status-only mode has no order events (the service has them): the day is read again with
    // each status update instead.
    if (status.service != null) refresh();
  });
  tauri.core.invoke("last_order").then((o) => { if (o) { last = o; renderLast(); } });
  tauri.event.listen("order", (e) => {
    // The strip always shows the most recent order: a success replaces an earlier failure.
    last = e.payload;
    renderLast();
    if (actionKey === last.key && FINAL.includes(last.state)) {
      actionKey = null;
      notice("");
    }
    refresh();
  });
  tauri.event.listen("rejected", (e) => {
    const file = String(e.payload.source || "").replace(/^file:/, "");
    notice(t("badFile") + (file ? file + (lang === "zh" ? "：" : ": ") : "") + (lang === "zh" ? e.payload.zh : e.payload.detail), "bad");
  });
  tauri.event.listen("show-section", (e) => { location.hash = e.payload ? "#" + e.payload : ""; show(e.payload); });
  tauri.core.invoke("set_language", { lang });
  refresh();
}
render();
show(location.hash.slice(1));
