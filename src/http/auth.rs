//! Who may see what. ECG is health data, so every route except `/healthz` and
//! `/readyz` needs a principal:
//!
//! - people log in with a name and password (Argon2 hashes in the
//!   configuration) and get a session cookie (`HttpOnly`, `SameSite=Strict`,
//!   `Secure` unless configured off) holding a random id; the server keeps
//!   only that id's SHA-256, so a leaked session table opens nothing;
//! - API clients send `Authorization: Bearer <token>`; only the token's
//!   SHA-256 is configured.
//!
//! Two roles: `viewer` reads; `uploader` reads and uploads. Forms that change
//! something carry the session's CSRF token ([`Principal::check_csrf`]).
//! Repeated failed logins for one name are refused for a minute.

use crate::config::{CheckedToken, CheckedUser, ConfigError, Credentials, HttpConfig};
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "holterd_session";
/// Failed logins for one name before it is refused for [`LOCKOUT`].
const MAX_FAILURES: u32 = 5;
const LOCKOUT: Duration = Duration::from_secs(60);

/// What a principal may do (defined beside the configuration that names it).
pub use crate::config::Role;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// The session's CSRF token; `None` for bearer-token callers, who carry no
    /// ambient credential a foreign page could use.
    pub csrf: Option<String>,
}

impl Principal {
    /// Accepts a state-changing request: bearer callers always, sessions only
    /// with their own CSRF token.
    pub fn check_csrf(&self, sent: Option<&str>) -> bool {
        match (&self.csrf, sent) {
            (None, _) => true,
            (Some(expected), Some(sent)) => expected.as_bytes().ct_eq(sent.as_bytes()).into(),
            (Some(_), None) => false,
        }
    }
}

struct Session {
    name: String,
    role: Role,
    csrf: String,
    expires: Instant,
}

/// Configured users and tokens, and the live sessions.
pub struct Accounts {
    users: Vec<CheckedUser>,
    tokens: Vec<CheckedToken>,
    /// Keyed by the SHA-256 of the cookie value.
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    failures: Mutex<HashMap<String, (Instant, u32)>>,
    ttl: Duration,
    secure_cookie: bool,
}

/// Why a login was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginError {
    /// Unknown name or wrong password (deliberately not told apart).
    Invalid,
    /// Too many failures for this name; try again later.
    LockedOut,
}

impl Accounts {
    /// Accounts for already checked users and tokens; no session open yet.
    pub fn new(credentials: Credentials, session_ttl: Duration, secure_cookie: bool) -> Accounts {
        Accounts {
            users: credentials.users,
            tokens: credentials.tokens,
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            ttl: session_ttl,
            secure_cookie,
        }
    }

    /// From `[http]`: its users and tokens checked ([`HttpConfig::credentials`]),
    /// so mistakes stop the start.
    pub fn from_config(http: &HttpConfig) -> Result<Accounts, ConfigError> {
        Ok(Accounts::new(
            http.credentials()?,
            Duration::from_secs(http.session_ttl_s),
            http.secure_cookie,
        ))
    }

    /// True when nobody can log in (the pages then say how to add a user).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.tokens.is_empty()
    }

    /// Adds a user at run time (the demo's generated login).
    pub fn add_user(&mut self, name: &str, role: Role, password: &str) {
        self.users.retain(|u| u.name != name);
        self.users.push(CheckedUser {
            name: name.into(),
            role,
            password_hash: hash_password(password),
        });
    }

    /// Checks a password and opens a session; returns the `Set-Cookie` value.
    /// Argon2 verification is slow on purpose: call it off the async runtime.
    pub fn login(&self, name: &str, password: &str) -> Result<String, LoginError> {
        let now = Instant::now();
        {
            let mut failures = lock(&self.failures);
            failures.retain(|_, (since, _)| now.duration_since(*since) < LOCKOUT);
            if failures.get(name).is_some_and(|(_, n)| *n >= MAX_FAILURES) {
                return Err(LoginError::LockedOut);
            }
        }
        let user = self.users.iter().find(|u| u.name == name);
        let ok = match user {
            Some(u) => PasswordHash::new(&u.password_hash)
                .map(|h| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &h)
                        .is_ok()
                })
                .unwrap_or(false),
            None => {
                // Same work for unknown names, so timing does not reveal which exist.
                let _ = Argon2::default().hash_password(password.as_bytes());
                false
            }
        };
        let Some(user) = user.filter(|_| ok) else {
            let mut failures = lock(&self.failures);
            let e = failures.entry(name.to_string()).or_insert((now, 0));
            e.1 += 1;
            return Err(LoginError::Invalid);
        };
        lock(&self.failures).remove(name);
        let id = random_hex(32);
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(
            sha256(&id),
            Session {
                name: user.name.clone(),
                role: user.role,
                csrf: random_hex(16),
                expires: now + self.ttl,
            },
        );
        Ok(self.cookie(&id, self.ttl.as_secs()))
    }

    /// Ends the caller's session; returns the `Set-Cookie` value that clears it.
    pub fn logout(&self, headers: &HeaderMap) -> String {
        if let Some(id) = session_cookie(headers) {
            lock(&self.sessions).remove(&sha256(id));
        }
        self.cookie("", 0)
    }

    fn cookie(&self, value: &str, max_age: u64) -> String {
        format!(
            "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
            if self.secure_cookie { "; Secure" } else { "" }
        )
    }

    /// The caller, from a bearer token or a live session cookie.
    pub fn principal(&self, headers: &HeaderMap) -> Option<Principal> {
        if let Some(token) = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            let digest = sha256(token.trim());
            return self
                .tokens
                .iter()
                .find(|t| bool::from(t.sha256.ct_eq(&digest)))
                .map(|t| Principal {
                    name: t.name.clone(),
                    role: t.role,
                    csrf: None,
                });
        }
        let id = session_cookie(headers)?;
        let sessions = lock(&self.sessions);
        let s = sessions.get(&sha256(id))?;
        (s.expires > Instant::now()).then(|| Principal {
            name: s.name.clone(),
            role: s.role,
            csrf: Some(s.csrf.clone()),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// `n` random bytes from the operating system, as hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    // The OS generator failing is not recoverable in any useful way.
    getrandom::fill(&mut bytes).expect("operating system random number generator");
    hex::encode(bytes)
}

/// An Argon2id PHC string for `password` (for `http.users`).
pub fn hash_password(password: &str) -> String {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .expect("Argon2 with default parameters hashes any password")
}

/// A new API token and the SHA-256 (hex) to configure for it.
pub fn new_token() -> (String, String) {
    let token = random_hex(32);
    let digest = hex::encode(sha256(&token));
    (token, digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{TokenEntry, UserEntry};

    fn accounts() -> (Accounts, String) {
        let (token, digest) = new_token();
        let http = HttpConfig {
            users: vec![UserEntry {
                name: "alice".into(),
                role: "viewer".into(),
                password_hash: hash_password("correct horse"),
            }],
            tokens: vec![TokenEntry {
                name: "ops".into(),
                role: "uploader".into(),
                sha256: digest,
            }],
            ..HttpConfig::default()
        };
        (Accounts::from_config(&http).unwrap(), token)
    }

    fn with(header: axum::http::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header, value.parse().unwrap());
        h
    }

    #[test]
    fn sessions_tokens_and_lockout() {
        let (a, token) = accounts();
        let p = a
            .principal(&with(AUTHORIZATION, &format!("Bearer {token}")))
            .unwrap();
        assert_eq!((p.name.as_str(), p.role), ("ops", Role::Uploader));
        assert!(p.check_csrf(None));
        assert!(a.principal(&with(AUTHORIZATION, "Bearer nope")).is_none());

        let cookie = a.login("alice", "correct horse").unwrap();
        assert!(cookie.contains("HttpOnly") && cookie.contains("Secure"));
        let value = cookie.split(';').next().unwrap();
        let headers = with(COOKIE, value);
        let p = a.principal(&headers).unwrap();
        assert_eq!(p.role, Role::Viewer);
        assert!(!p.check_csrf(None) && !p.check_csrf(Some("x")));
        assert!(p.check_csrf(p.csrf.as_deref()));
        a.logout(&headers);
        assert!(a.principal(&headers).is_none(), "logout ends the session");

        for _ in 0..MAX_FAILURES {
            assert_eq!(a.login("alice", "wrong"), Err(LoginError::Invalid));
        }
        assert_eq!(
            a.login("alice", "correct horse"),
            Err(LoginError::LockedOut)
        );
        assert_eq!(a.login("mallory", "x"), Err(LoginError::Invalid));
    }

    #[test]
    fn bad_entries_name_the_key() {
        let mut http = HttpConfig::default();
        http.tokens.push(TokenEntry {
            name: "t".into(),
            role: "viewer".into(),
            sha256: "abc".into(),
        });
        let e = Accounts::from_config(&http).err().unwrap().to_string();
        assert!(e.contains("http.tokens.sha256"), "{e}");
        http.tokens.clear();
        http.users.push(UserEntry {
            name: "u".into(),
            role: "admin".into(),
            password_hash: hash_password("p"),
        });
        let e = Accounts::from_config(&http).err().unwrap().to_string();
        assert!(e.contains("http.users.role"), "{e}");
        http.users[0].password_hash = "plain".into();
        let e = Accounts::from_config(&http).err().unwrap().to_string();
        assert!(e.contains("password_hash"), "{e}");
    }
}
