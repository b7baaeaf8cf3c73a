//! HIS Bridge tray app: starts the headless core in-process and shows its state in the tray.
//! A thin shell: every decision about orders and money is in `hisbridge-core`.
#![cfg_attr(all(not(debug_assertions), target_os = "windows"), windows_subsystem = "windows")]

mod commands;

use std::path::PathBuf;

use hisbridge_core::bridge::Bridge;
use hisbridge_core::config::Config;
use hisbridge_core::engine::Notice;
use hisbridge_core::journal::State;
use hisbridge_core::keyfile;
use hisbridge_core::pos::{Link, PosStatus};
use serde::Serialize;
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Emitter, Manager, WebviewUrl, WebviewWindowBuilder};

const DASHBOARD: &str = "dashboard";

/// What the dashboard shows about the POS; pushed as the `pos-status` event.
#[derive(Debug, Clone, Serialize)]
struct StatusView {
    state: &'static str,
    tooltip_zh: String,
    tooltip_en: String,
    port: String,
    device_id: Option<String>,
    last_heard: Option<String>,
    config_error: Option<String>,
}

struct AppState {
    status: std::sync::Mutex<StatusView>,
    cfg: Option<Config>,
    /// The core, running for the app's lifetime.
    bridge: Option<Bridge>,
}

/// What the dashboard hears when an order changes; it then asks for the day again.
#[derive(Debug, Clone, Serialize)]
struct OrderEvent {
    key: String,
    state: &'static str,
    amount: String,
    channel: Option<String>,
    error_code: Option<String>,
}

fn config_path() -> PathBuf {
    if let Some(p) = std::env::args().skip_while(|a| a != "--config").nth(1) {
        return p.into();
    }
    if let Some(p) = std::env::var_os("HISBRIDGE_CONFIG") {
        return p.into();
    }
    if cfg!(windows) {
        let base = std::env::var_os("ProgramData").map(PathBuf::from).unwrap_or_else(|| "C:\\ProgramData".into());
        base.join("HISBridge").join("hisbridge.toml")
    } else {
        PathBuf::from("/etc/hisbridge/hisbridge.toml")
    }
}

fn view(s: &PosStatus) -> StatusView {
    let (state, zh, en) = match &s.link {
        Link::Ready => ("ready", "就绪：POS 已连接".to_string(), "Ready: POS connected".to_string()),
        Link::Handshaking => ("attention", "正在连接 POS…".to_string(), "Connecting to the POS…".to_string()),
        Link::PortClosed { reason } => {
            ("attention", format!("POS 未连接：{reason}"), format!("POS not connected: {reason}"))
        }
        Link::WrongDevice { reported } => (
            "attention",
            format!("POS 设备号不符（{reported}），已停止收款"),
            format!("Wrong POS device ({reported}): payments stopped"),
        ),
    };
    StatusView {
        state,
        tooltip_zh: zh,
        tooltip_en: en,
        port: s.port.clone(),
        device_id: s.device_id.clone(),
        last_heard: s.last_heard.clone(),
        config_error: None,
    }
}

/// Folds the orders at the POS into the link's view.
fn with_orders(mut v: StatusView, open: &std::collections::BTreeMap<String, State>) -> StatusView {
    if v.state != "ready" {
        return v;
    }
    if open.values().any(|s| *s == State::Unknown) {
        v.state = "attention";
        v.tooltip_zh = "有订单结果未知，正在向 POS 查询".into();
        v.tooltip_en = "An order's outcome is unknown; querying the POS".into();
    } else if open.values().any(|s| matches!(s, State::Sent | State::Paying | State::Cancelling)) {
        v.state = "busy";
        v.tooltip_zh = "收款中：等待患者付款".into();
        v.tooltip_en = "Busy: waiting for the patient to pay".into();
    }
    v
}

fn tray_image(state: &str) -> Image<'static> {
    let bytes: &'static [u8] = match state {
        "ready" => include_bytes!("../icons/ready.png"),
        "busy" => include_bytes!("../icons/busy.png"),
        _ => include_bytes!("../icons/attention.png"),
    };
    Image::from_bytes(bytes).expect("embedded icon")
}

fn apply(app: &AppHandle, tray: &TrayIcon, v: StatusView) {
    let _ = tray.set_icon(Some(tray_image(v.state)));
    let _ = tray.set_tooltip(Some(format!("HIS Bridge — {}", v.tooltip_zh)));
    let _ = app.emit("pos-status", &v);
    *app.state::<AppState>().status.lock().expect("status") = v;
}

/// Opens the dashboard; its webview exists only while it is open.
fn open_dashboard(app: &AppHandle) {
    if let Some(w) = app.get_webview_window(DASHBOARD) {
        let _ = w.unminimize();
        let _ = w.set_focus();
        return;
    }
    let _ = WebviewWindowBuilder::new(app, DASHBOARD, WebviewUrl::App("index.html".into()))
        .title("HIS Bridge")
        .inner_size(1000.0, 760.0)
        .build();
}

#[tauri::command]
fn status(state: tauri::State<'_, AppState>) -> StatusView {
    state.status.lock().expect("status").clone()
}

fn config_of(state: &AppState) -> Result<Config, String> {
    state.cfg.clone().ok_or_else(|| "配置错误，桥程序未启动 / configuration problem: the bridge is not running".into())
}

#[tauri::command]
async fn day_report(
    state: tauri::State<'_, AppState>,
    date: Option<String>,
) -> Result<hisbridge_core::recon::DayReport, String> {
    let cfg = config_of(&state)?;
    tauri::async_runtime::spawn_blocking(move || commands::day_report(&cfg, date.as_deref()))
        .await
        .map_err(|e| e.to_string())?
}

#[tauri::command]
async fn order_action(state: tauri::State<'_, AppState>, key: String, action: String) -> Result<String, String> {
    let bridge = state.bridge.as_ref().ok_or("the bridge is not running")?;
    commands::order_action(bridge, &key, &action).await
}

#[tauri::command]
async fn check_pos_totals(
    state: tauri::State<'_, AppState>,
    date: Option<String>,
) -> Result<hisbridge_core::recon::DayReport, String> {
    let cfg = config_of(&state)?;
    let bridge = state.bridge.as_ref().ok_or("the bridge is not running")?;
    commands::check_pos_totals(bridge, &cfg, date.as_deref()).await
}

#[tauri::command]
async fn write_reconciliation(state: tauri::State<'_, AppState>, date: Option<String>) -> Result<Vec<String>, String> {
    let cfg = config_of(&state)?;
    tauri::async_runtime::spawn_blocking(move || commands::write_reconciliation(&cfg, date.as_deref()))
        .await
        .map_err(|e| e.to_string())?
}

fn main() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("HISBRIDGE_LOG").unwrap_or_else(|_| "info".into()))
        .try_init();
    tauri::Builder::default()
        .invoke_handler(tauri::generate_handler![status, day_report, order_action, check_pos_totals, write_reconciliation])
        .setup(|app| {
            let cfg_path = config_path();
            let started = Config::load(&cfg_path)
                .map_err(|e| e.to_string())
                .and_then(|cfg| keyfile::load(&cfg.key_file).map(|k| (cfg, k)).map_err(|e| e.to_string()))
                .and_then(|(cfg, key)| {
                    tauri::async_runtime::block_on(async { Bridge::start(&cfg, key) })
                        .map(|b| (cfg, b))
                        .map_err(|e| e.to_string())
                });
            let (cfg, bridge, initial) = match started {
                Ok((cfg, b)) => {
                    let v = view(&b.pos.status());
                    (Some(cfg), Some(b), v)
                }
                Err(e) => {
                    tracing::error!(config = %cfg_path.display(), error = %e, "bridge not started");
                    let v = StatusView {
                        state: "attention",
                        tooltip_zh: format!("配置错误：{e}"),
                        tooltip_en: format!("Configuration problem: {e}"),
                        port: String::new(),
                        device_id: None,
                        last_heard: None,
                        config_error: Some(e),
                    };
                    (None, None, v)
                }
            };
            let watch = bridge.as_ref().map(|b| b.pos.watch());
            let notices = bridge.as_ref().map(|b| b.notices.subscribe());
            app.manage(AppState { status: std::sync::Mutex::new(initial.clone()), cfg, bridge });

            let open = MenuItem::with_id(app, "open", "打开面板 / Open dashboard", true, None::<&str>)?;
            let quit = MenuItem::with_id(app, "quit", "退出 / Quit", true, None::<&str>)?;
            let menu = Menu::with_items(app, &[&open, &quit])?;
            let tray = TrayIconBuilder::with_id("main")
                .icon(tray_image(initial.state))
                .tooltip(format!("HIS Bridge — {}", initial.tooltip_zh))
                .menu(&menu)
                .on_menu_event(|app, ev| match ev.id.as_ref() {
                    "open" => open_dashboard(app),
                    "quit" => app.exit(0),
                    _ => {}
                })
                .build(app)?;
            if let (Some(mut rx), Some(mut notices)) = (watch, notices) {
                let handle = app.handle().clone();
                tauri::async_runtime::spawn(async move {
                    // The icon: the link's state, "busy" while a payment is at the POS, and
                    // "attention" while an outcome is unknown.
                    let mut link = view(&rx.borrow().clone());
                    let mut open: std::collections::BTreeMap<String, State> = Default::default();
                    loop {
                        tokio::select! {
                            changed = rx.changed() => {
                                if changed.is_err() { break; }
                                link = view(&rx.borrow_and_update().clone());
                            }
                            n = notices.recv() => match n {
                                Ok(Notice::Order { key, state, amount, channel, error_code }) => {
                                    if state.is_final() { open.remove(&key); } else { open.insert(key.clone(), state); }
                                    let _ = handle.emit("order", OrderEvent { key, state: state.as_str(), amount, channel, error_code });
                                }
                                Ok(Notice::Rejected { source, code, detail }) => {
                                    let _ = handle.emit("rejected", serde_json::json!({
                                        "source": source, "code": code.as_str(), "zh": code.zh(), "detail": detail,
                                    }));
                                }
                                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                                Err(_) => break,
                            },
                        }
                        apply(&handle, &tray, with_orders(link.clone(), &open));
                    }
                });
            }
            if std::env::args().any(|a| a == "--open") {
                open_dashboard(app.handle());
            }
            Ok(())
        })
        .build(tauri::generate_context!())
        .expect("error while building the tray app")
        .run(|_app, event| {
            // Closing the dashboard keeps the app in the tray; only Quit exits.
            if let tauri::RunEvent::ExitRequested { api, code: None, .. } = event {
                api.prevent_exit();
            }
        });
}
