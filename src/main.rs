//! The `holterd` binary: see [`holterd::cli`].

fn main() -> std::process::ExitCode {
    match holterd::cli::main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("holterd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
