//! `soak`: the churn soak (see `loadtest::soak`); exits non-zero when a
//! criterion is not met.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = loadtest::soak::SoakArgs::parse();
    loadtest::init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("soak: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(loadtest::soak::main_with(args)) {
        Ok(r) if r.summary.pass => std::process::ExitCode::SUCCESS,
        Ok(_) => std::process::ExitCode::from(2),
        Err(e) => {
            eprintln!("soak: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
