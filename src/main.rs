//! The `rheo-sfu` binary: flags/env -> Config, logging, bind, run.

use clap::Parser;
use rheo_sfu::config::{Cli, Config};

// Counting wraps the allocator so /metrics can report live heap bytes
// (sfu_heap_live_bytes): the soak tells a leak from allocator retention.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: rheo_sfu::metrics::heap::Counting<mimalloc::MiMalloc> =
    rheo_sfu::metrics::heap::Counting(mimalloc::MiMalloc);
#[cfg(not(feature = "mimalloc"))]
#[global_allocator]
static GLOBAL: rheo_sfu::metrics::heap::Counting<std::alloc::System> =
    rheo_sfu::metrics::heap::Counting(std::alloc::System);

fn main() -> std::process::ExitCode {
    GLOBAL.installed();
    let config = match Config::from_cli(Cli::parse()) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("invalid configuration:");
            for e in errors {
                eprintln!("  - {e}");
            }
            return std::process::ExitCode::from(2);
        }
    };
    let sampler = rheo_sfu::logging::init(&config.rust_log, config.log_format);
    // Every connection and every media socket is a descriptor; the common
    // soft limit of 1,024 is far below what a node serves. The hard limit
    // is the operator's ceiling (README: what to set in production).
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::info!(open_files = n, "open-files limit"),
        Err(e) => tracing::warn!("cannot raise the open-files limit: {e}"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(config.listen).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(addr = %config.listen, "cannot listen: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        if let Some(sampler) = sampler {
            // Summaries of suppressed media-stack log lines, once a minute,
            // for as long as the process runs.
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(rheo_sfu::logging::WINDOW);
                loop {
                    tick.tick().await;
                    sampler.flush(std::time::Instant::now());
                }
            });
        }
        match rheo_sfu::run(config, listener, shutdown_signal()).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e}");
                std::process::ExitCode::FAILURE
            }
        }
    })
}

/// Resolves on the first SIGTERM or Ctrl-C; a second one exits at once.
async fn shutdown_signal() {
    wait_signal().await;
    tokio::spawn(async {
        wait_signal().await;
        eprintln!("second signal: exiting now");
        std::process::exit(130);
    });
}

async fn wait_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
