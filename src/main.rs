//! The `holterd` binary: see [`holterd::cli`].

fn main() -> std::process::ExitCode {
    match holterd::cli::main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // Output piped into `head` and the like: stop quietly.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("holterd: {}", holterd::cli::error_report(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
