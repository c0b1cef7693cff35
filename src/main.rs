//! The `order-sync` binary: sets up the runtime, loads settings, starts
//! logging and hands off to [`order_sync::cli`].

use std::process::ExitCode;

use clap::Parser;
use order_sync::{cli, config, telemetry};

fn main() -> ExitCode {
    limit_malloc_arenas();
    limit_driver_buffers();
    // Built by hand rather than with #[tokio::main] so the line above runs
    // before the runtime's worker threads exist.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("order-sync: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async_main())
}

/// glibc gives every thread that allocates its own malloc arena (up to eight
/// per core), each keeping memory it freed; for a small service that is most of
/// its resident size. One arena is enough for a handful of mostly waiting
/// threads: in the drain benchmark a second one held a third of the heap
/// (peak RSS 59-75 MiB with two, 58-59 with one, the same orders/s).
///
/// And glibc raises its mmap threshold to the largest block freed (up to
/// 32 MiB), after which a drain's large buffers (a batch's insert packet,
/// its messages) are carved from the heap and leave holes it cannot give
/// back: a fixed 256 KiB keeps them mapped apart and returned when freed
/// (peak RSS at 50,000 orders with lifecycle capture 64.0 MiB, 54.4 with it).
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator tunables; it is called before any
    // other thread exists, and both are valid parameters for glibc.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// mysql_async keeps up to 128 of its packet buffers for reuse, each as large
/// as the largest packet it carried up to 4 MiB: a drain's multi-row inserts
/// (hundreds of KiB each) would keep tens of MiB resident. Kept buffers are
/// cut to 64 KiB instead, unless the environment already says otherwise.
fn limit_driver_buffers() {
    const KEY: &str = "MYSQL_ASYNC_BUFFER_SIZE_CAP";
    if std::env::var_os(KEY).is_none() {
        // Before any other thread exists, so no one reads the environment meanwhile.
        std::env::set_var(KEY, (64 * 1024).to_string());
    }
}

async fn async_main() -> ExitCode {
    let args = cli::Cli::parse();
    let settings = match config::load(args.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("order-sync: {e}");
            return ExitCode::from(cli::EXIT_USAGE);
        }
    };
    let format = if args.log_json {
        config::LogFormat::Json
    } else {
        settings.log.format
    };
    telemetry::init(format, &settings.log.filter);
    match cli::run(args.command, settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let message = e.to_string();
            if e.exit_code() == cli::EXIT_FAILURE {
                tracing::error!(error = %message, "order-sync failed.");
            }
            eprintln!("order-sync: {message}");
            ExitCode::from(e.exit_code())
        }
    }
}
