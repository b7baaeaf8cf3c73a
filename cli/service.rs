//! `hisbridge service install | uninstall | start | stop | status | run`: the bridge as a Windows
//! service, for cashier PCs where nobody logs in. The service and the tray app share the config
//! in the data folder; whichever starts first drives the POS (the journal lock), and the tray app
//! shows the service's status when the service has it.

use std::path::PathBuf;

use anyhow::Result;

#[cfg_attr(not(windows), allow(dead_code))]
pub const NAME: &str = "HISBridge";
#[cfg_attr(not(windows), allow(dead_code))]
pub const DISPLAY: &str = "HIS Bridge";
#[cfg_attr(not(windows), allow(dead_code))]
pub const DESCRIPTION: &str = "Carries HIS payment orders to the WeChat Pay / Alipay smart POS (HIS Bridge)";

#[derive(clap::Subcommand)]
pub enum ServiceCmd {
    /// Register the service for this executable and config: delayed automatic start, restarted
    /// after a failure (10 s, 30 s, then every 60 s; the count starts again after a day), LocalSystem.
    Install {
        #[command(flatten)]
        config: crate::ConfigArg,
        /// Start it now.
        #[arg(long)]
        start: bool,
    },
    /// Stop and remove the service (the data folder stays).
    Uninstall,
    /// Start the installed service.
    Start,
    /// Stop the service (orders open at the POS are queried at its next start).
    Stop,
    /// Print the service's state (exits 1 when it is not installed).
    Status {
        /// Print JSON: installed, state, start type, the config it runs with.
        #[arg(long)]
        json: bool,
    },
    /// What the service control manager runs; not for use by hand.
    #[command(hide = true)]
    Run {
        /// The config file the service runs with.
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[cfg(not(windows))]
pub fn main(_cmd: ServiceCmd) -> Result<()> {
    anyhow::bail!(
        "the service commands are for Windows; on Linux run `hisbridge run --config FILE` under systemd (docs/install.md)"
    )
}

#[cfg(windows)]
pub fn main(cmd: ServiceCmd) -> Result<()> {
    imp::main(cmd)
}

/// Installs the service (and starts it with `start`); the lines say what was set.
#[cfg(windows)]
pub fn install(config: &std::path::Path, start: bool) -> Result<Vec<String>> {
    imp::install(config, start)
}

#[cfg(windows)]
mod imp {
    use std::ffi::OsString;
    use std::path::{Path, PathBuf};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    use anyhow::{bail, Context, Result};
    use hisbridge_core::bridge::Bridge;
    use hisbridge_core::config::Config;
    use hisbridge_core::keyfile;
    use windows_service::service::{
        ServiceAccess, ServiceControl, ServiceControlAccept, ServiceErrorControl, ServiceExitCode, ServiceInfo,
        ServiceStartType, ServiceState, ServiceStatus, ServiceType,
    };
    use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
    use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
    use windows_service::{define_windows_service, service_dispatcher};

    use super::{ServiceCmd, DESCRIPTION, DISPLAY, NAME};

    static CONFIG: OnceLock<PathBuf> = OnceLock::new();

    pub fn main(cmd: ServiceCmd) -> Result<()> {
        match cmd {
            ServiceCmd::Install { config, start } => {
                for line in install(&config.path()?, start)? {
                    println!("{line}");
                }
                Ok(())
            }
            ServiceCmd::Uninstall => uninstall(),
            ServiceCmd::Start => {
                open(ServiceAccess::START)?.start::<&str>(&[]).context("start the service")?;
                wait_for(ServiceState::Running)
            }
            ServiceCmd::Stop => {
                open(ServiceAccess::STOP | ServiceAccess::QUERY_STATUS)?.stop().context("stop the service")?;
                wait_for(ServiceState::Stopped)
            }
            ServiceCmd::Status { json } => status_of(json),
            ServiceCmd::Run { config } => {
                let _ = CONFIG.set(config);
                service_dispatcher::start(NAME, ffi_service_main).context("not started by the service manager")?;
                Ok(())
            }
        }
    }

    fn manager(access: ServiceManagerAccess) -> Result<ServiceManager> {
        ServiceManager::local_computer(None::<&str>, access)
            .context("cannot reach the service manager (run as administrator)")
    }

    fn open(access: ServiceAccess) -> Result<windows_service::service::Service> {
        manager(ServiceManagerAccess::CONNECT)?
            .open_service(NAME, access)
            .with_context(|| format!("the service {NAME} is not installed"))
    }

    fn wait_for(state: ServiceState) -> Result<()> {
        let s = open(ServiceAccess::QUERY_STATUS)?;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if s.query_status()?.current_state == state {
                println!("{NAME}: {state:?}");
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        bail!("{NAME} did not reach {state:?} within 30 s")
    }

    /// Installs the service; the lines say what was set (for the console and setup.log).
    pub fn install(config: &Path, start: bool) -> Result<Vec<String>> {
        let config = std::path::absolute(config)?;
        Config::load(&config).with_context(|| format!("check {} before installing the service", config.display()))?;
        let mgr = manager(ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE)?;
        let info = ServiceInfo {
            name: OsString::from(NAME),
            display_name: OsString::from(DISPLAY),
            service_type: ServiceType::OWN_PROCESS,
            start_type: ServiceStartType::AutoStart,
            error_control: ServiceErrorControl::Normal,
            executable_path: std::env::current_exe()?,
            launch_arguments: vec!["service".into(), "run".into(), "--config".into(), config.into_os_string()],
            dependencies: vec![],
            account_name: None,
            account_password: None,
        };
        let svc = mgr
            .create_service(&info, ServiceAccess::CHANGE_CONFIG | ServiceAccess::START)
            .context("create the service (already installed? `hisbridge service uninstall` first)")?;
        let _ = svc.set_description(DESCRIPTION);
        let mut lines = vec![format!("{NAME} installed (automatic start)")];
        lines.push(match crate::eventlog::register() {
            Ok(()) => format!("{NAME} writes to the Application event log (source {})", crate::eventlog::SOURCE),
            Err(e) => format!("WARNING event log source {} not registered: {e}", crate::eventlog::SOURCE),
        });
        lines.extend(recovery(&svc).into_iter().map(|l| format!("{NAME} {l}")));
        if start {
            svc.start::<&str>(&[]).context("start the service")?;
            wait_for(ServiceState::Running)?;
        }
        Ok(lines)
    }

    /// A crashed or failed service comes back: restarted after 10 s, 30 s, then 60 s, the count
    /// reset after a day without failure; also when it stops with an error (a config it cannot
    /// load) rather than crashing. Started after boot's rush (delayed automatic start), so the
    /// POS's USB driver and the network are up. Each setting that the service manager refuses
    /// is said (Wine, for one, knows neither the failure flag nor the delayed start) and the
    /// service stays installed.
    pub fn recovery(svc: &windows_service::service::Service) -> Vec<String> {
        use windows_service::service::{
            ServiceAction, ServiceActionType, ServiceFailureActions, ServiceFailureResetPeriod,
        };
        let restart =
            |secs| ServiceAction { action_type: ServiceActionType::Restart, delay: Duration::from_secs(secs) };
        let said = |what: &str, r: windows_service::Result<()>| match r {
            Ok(()) => what.to_string(),
            Err(e) => format!("WARNING {what} not set: {e}"),
        };
        vec![
            said(
                "recovery: restart after 10 s, 30 s, then 60 s (reset after a day)",
                svc.update_failure_actions(ServiceFailureActions {
                    reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(24 * 3600)),
                    reboot_msg: None,
                    command: None,
                    actions: Some(vec![restart(10), restart(30), restart(60)]),
                }),
            ),
            said("recovery also when it stops with an error", svc.set_failure_actions_on_non_crash_failures(true)),
            said("delayed automatic start", svc.set_delayed_auto_start(true)),
        ]
    }

    fn status_of(json: bool) -> Result<()> {
        use crate::exit::{Exit, Failure};
        let svc = match manager(ServiceManagerAccess::CONNECT)?
            .open_service(NAME, ServiceAccess::QUERY_STATUS | ServiceAccess::QUERY_CONFIG)
        {
            Ok(s) => s,
            Err(_) => {
                if json {
                    println!("{}", serde_json::json!({ "service": NAME, "installed": false }));
                }
                let f = Failure::new(Exit::Failed, format!("{NAME}: not installed"));
                return Err(if json { f.silent() } else { f }.into());
            }
        };
        let state = svc.query_status()?.current_state;
        let config = svc.query_config().ok();
        if json {
            let v = serde_json::json!({
                "service": NAME,
                "installed": true,
                "state": format!("{state:?}"),
                "start_type": config.as_ref().map(|c| format!("{:?}", c.start_type)),
                "command": config.as_ref().map(|c| c.executable_path.display().to_string()),
                "account": config.as_ref().and_then(|c| c.account_name.as_ref()).map(|a| a.to_string_lossy().into_owned()),
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            println!("{NAME}: {state:?}");
        }
        Ok(())
    }

    fn uninstall() -> Result<()> {
        let svc = match manager(ServiceManagerAccess::CONNECT)?
            .open_service(NAME, ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE)
        {
            Ok(s) => s,
            Err(_) => {
                println!("{NAME} is not installed");
                return Ok(());
            }
        };
        if svc.query_status()?.current_state != ServiceState::Stopped {
            let _ = svc.stop();
            let start = Instant::now();
            while svc.query_status()?.current_state != ServiceState::Stopped
                && start.elapsed() < Duration::from_secs(30)
            {
                std::thread::sleep(Duration::from_millis(250));
            }
        }
        svc.delete().context("remove the service")?;
        println!("{NAME} removed");
        Ok(())
    }

    define_windows_service!(ffi_service_main, service_main);

    fn service_main(_args: Vec<OsString>) {
        if let Err(e) = serve() {
            let m = crate::exit::message(&e);
            tracing::error!("service stopped: {m}");
            crate::eventlog::write(crate::eventlog::Event::Failed, &format!("HIS Bridge service stopped: {m}"));
        }
    }

    fn status(state: ServiceState, accept: ServiceControlAccept, code: u32) -> ServiceStatus {
        ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted: accept,
            exit_code: ServiceExitCode::Win32(code),
            checkpoint: 0,
            wait_hint: Duration::from_secs(10),
            process_id: None,
        }
    }

    fn serve() -> Result<()> {
        let rt = tokio::runtime::Runtime::new()?;
        let (stop_tx, mut stop_rx) = tokio::sync::mpsc::unbounded_channel();
        let handle = service_control_handler::register(NAME, move |c| match c {
            ServiceControl::Stop | ServiceControl::Shutdown | ServiceControl::Preshutdown => {
                let _ = stop_tx.send(());
                ServiceControlHandlerResult::NoError
            }
            ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
            _ => ServiceControlHandlerResult::NotImplemented,
        })?;
        let config = CONFIG.get().cloned().unwrap_or_default();
        let started = (|| -> Result<_> {
            let cfg = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    // Not readable: the log goes to the logs folder beside it, with the reason.
                    let dir = config.parent().unwrap_or(Path::new("."));
                    crate::init_file_logging(
                        &hisbridge_core::config::Logs::of_data_dir(dir),
                        "hisbridge-service",
                        false,
                    );
                    return Err(e.into());
                }
            };
            crate::init_file_logging(&cfg.logs, "hisbridge-service", false);
            let key = keyfile::load(&cfg.key_file)?;
            let bridge = rt.block_on(async { Bridge::start_as(&cfg, key, "service") })?;
            tracing::info!(config = %config.display(), port = cfg.pos.port, "HIS Bridge service running");
            Ok(bridge)
        })();
        let bridge = match started {
            Ok(b) => b,
            Err(e) => {
                let m = crate::exit::message(&e);
                tracing::error!("cannot start: {m}");
                crate::eventlog::write(
                    crate::eventlog::Event::Failed,
                    &format!("HIS Bridge service cannot start ({}): {m}", config.display()),
                );
                // ERROR_SERVICE_SPECIFIC_ERROR-like exit so the event log shows a failure.
                handle.set_service_status(status(ServiceState::Stopped, ServiceControlAccept::empty(), 1066))?;
                return Err(e);
            }
        };
        handle.set_service_status(status(
            ServiceState::Running,
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
            0,
        ))?;
        crate::eventlog::write(
            crate::eventlog::Event::Started,
            &format!("HIS Bridge service running (config {})", config.display()),
        );
        // Every attention state, and its end, in the event log too.
        let mut notices = bridge.notices.subscribe();
        rt.spawn(async move {
            use hisbridge_core::engine::Notice;
            loop {
                match notices.recv().await {
                    Ok(Notice::Attention { what, detail }) => crate::eventlog::write(
                        crate::eventlog::Event::Attention,
                        &format!("HIS Bridge needs attention ({}): {detail}", what.as_str()),
                    ),
                    Ok(Notice::Resolved(what)) => crate::eventlog::write(
                        crate::eventlog::Event::Resolved,
                        &format!("HIS Bridge: {} is in order again", what.as_str()),
                    ),
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => break,
                }
            }
        });
        rt.block_on(async { stop_rx.recv().await });
        tracing::info!("HIS Bridge service stopping");
        crate::eventlog::write(crate::eventlog::Event::Stopped, "HIS Bridge service stopped");
        handle.set_service_status(status(ServiceState::StopPending, ServiceControlAccept::empty(), 0))?;
        drop(bridge);
        rt.shutdown_timeout(Duration::from_secs(5));
        handle.set_service_status(status(ServiceState::Stopped, ServiceControlAccept::empty(), 0))?;
        Ok(())
    }
}
