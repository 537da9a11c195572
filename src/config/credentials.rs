//! The users and tokens of `[http]`, checked: role names known, password
//! hashes Argon2 PHC strings, token digests 64 hex digits, user names unique.
//! [`super::Config::validate`] runs this check so mistakes stop the start; the
//! HTTP layer builds its accounts from the checked result.

use super::{ConfigError, HttpConfig, key_error};
use argon2::password_hash::phc::PasswordHash;

/// What a principal may do; `Uploader` includes everything `Viewer` may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Uploader,
}

impl Role {
    /// The role a configuration names (`viewer` or `uploader`).
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "uploader" => Some(Role::Uploader),
            _ => None,
        }
    }

    /// The name the configuration and the pages use.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Uploader => "uploader",
        }
    }
}

/// A person who logs in, checked.
#[derive(Debug, Clone)]
pub struct CheckedUser {
    pub name: String,
    pub role: Role,
    /// An Argon2 PHC string.
    pub password_hash: String,
}

/// An API token, checked: its SHA-256 decoded.
#[derive(Debug, Clone)]
pub struct CheckedToken {
    pub name: String,
    pub role: Role,
    pub sha256: [u8; 32],
}

/// Every configured user and token, checked.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub users: Vec<CheckedUser>,
    pub tokens: Vec<CheckedToken>,
}

impl HttpConfig {
    /// The users and tokens, checked; an error names the key at fault.
    pub fn credentials(&self) -> Result<Credentials, ConfigError> {
        let role = |key: &str, r: &str| {
            Role::parse(r)
                .ok_or_else(|| key_error(key, format!("role {r:?} must be viewer or uploader")))
        };
        let mut users: Vec<CheckedUser> = Vec::new();
        for u in &self.users {
            PasswordHash::new(&u.password_hash).map_err(|e| {
                key_error(
                    "http.users.password_hash",
                    format!(
                        "user {:?}: not an Argon2 PHC string ({e}); make one with `holterd auth hash-password`",
                        u.name
                    ),
                )
            })?;
            if u.name.is_empty() || users.iter().any(|x| x.name == u.name) {
                return Err(key_error(
                    "http.users.name",
                    format!("user names must be non-empty and unique ({:?})", u.name),
                ));
            }
            users.push(CheckedUser {
                name: u.name.clone(),
                role: role("http.users.role", &u.role)?,
                password_hash: u.password_hash.clone(),
            });
        }
        let mut tokens = Vec::new();
        for t in &self.tokens {
            let sha256 = hex::decode(&t.sha256)
                .ok()
                .and_then(|d| <[u8; 32]>::try_from(d).ok())
                .ok_or_else(|| {
                    key_error(
                        "http.tokens.sha256",
                        format!(
                            "token {:?}: must be 64 hex digits; make one with `holterd auth new-token`",
                            t.name
                        ),
                    )
                })?;
            tokens.push(CheckedToken {
                name: t.name.clone(),
                role: role("http.tokens.role", &t.role)?,
                sha256,
            });
        }
        Ok(Credentials { users, tokens })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{TokenEntry, UserEntry};

    /// A well-formed Argon2id PHC string (of no password anyone uses).
    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$wPnBbKqLBZ3NWn5B0l6l0mR1hBQ8s8HhO1TlP3tCQ3M";

    fn user(name: &str, role: &str, hash: &str) -> UserEntry {
        UserEntry {
            name: name.into(),
            role: role.into(),
            password_hash: hash.into(),
        }
    }

    #[test]
    fn checked_entries_and_errors_naming_the_key() {
        let mut http = HttpConfig::default();
        http.users.push(user("alice", "uploader", HASH));
        http.tokens.push(TokenEntry {
            name: "ops".into(),
            role: "viewer".into(),
            sha256: "ab".repeat(32),
        });
        let c = http.credentials().unwrap();
        assert_eq!(c.users[0].role, Role::Uploader);
        assert_eq!(
            (c.tokens[0].role, c.tokens[0].sha256[0]),
            (Role::Viewer, 0xab)
        );

        let error = |http: &HttpConfig| http.credentials().unwrap_err().to_string();
        let mut bad = http.clone();
        bad.users.push(user("alice", "viewer", HASH));
        assert!(error(&bad).contains("http.users.name"));
        let mut bad = http.clone();
        bad.users[0].role = "admin".into();
        assert!(error(&bad).contains("http.users.role"));
        let mut bad = http.clone();
        bad.users[0].password_hash = "plain".into();
        assert!(error(&bad).contains("http.users.password_hash"));
        let mut bad = http.clone();
        bad.tokens[0].sha256 = "abc".into();
        assert!(error(&bad).contains("http.tokens.sha256"));
        let mut bad = http;
        bad.tokens[0].role = "root".into();
        assert!(error(&bad).contains("http.tokens.role"));
    }
}
