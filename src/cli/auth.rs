//! `holterd auth`: password hashes and API tokens for the web view and API.

use anyhow::{Result, bail};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(super) enum AuthCommand {
    /// Read a password from stdin and print its Argon2 hash for `http.users`.
    HashPassword,
    /// Print a new API token (shown once) and the `http.tokens` entry that accepts it.
    NewToken {
        /// Name the token is logged under.
        #[arg(long)]
        name: String,
        /// viewer or uploader.
        #[arg(long, default_value = "viewer")]
        role: String,
    },
}

pub(super) fn auth_command(c: AuthCommand) -> Result<()> {
    match c {
        AuthCommand::HashPassword => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.len() < 12 {
                bail!("use a password of at least 12 characters");
            }
            println!("{}", crate::http::auth::hash_password(password));
        }
        AuthCommand::NewToken { name, role } => {
            if !matches!(role.as_str(), "viewer" | "uploader") {
                bail!("--role must be viewer or uploader");
            }
            let (token, digest) = crate::http::auth::new_token();
            eprintln!("token (give it to the client; it is not stored anywhere):");
            println!("{token}");
            eprintln!("add to [http] tokens in the configuration:");
            eprintln!("{{ name = \"{name}\", role = \"{role}\", sha256 = \"{digest}\" }}");
        }
    }
    Ok(())
}
