//! The daemon's configuration: `config/holterd.toml`, then `HOLTER_<SECTION>_<KEY>`
//! environment variables, then `--set section.key=value` flags, in that order.
//!
//! Every key has a safe default, so an empty file (or none) runs the daemon on
//! the embedded broker and an SQLite file. Unknown keys and bad values fail at
//! start with a message naming the key.

mod credentials;

use crate::formats::partition::Partitions;
pub use credentials::{CheckedToken, CheckedUser, Credentials, Role};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::{Table, Value};

/// A configuration that can't be used, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("configuration key `{key}`: {message}")]
    Key { key: String, message: String },
}

fn key_error(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.to_string(),
        message: message.into(),
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub mqtt: MqttConfig,
    pub embedded_broker: EmbeddedBrokerConfig,
    pub store: StoreConfig,
    pub streams: StreamsConfig,
    pub pipeline: PipelineConfig,
    /// The rhythm analyser's thresholds (pauses, rates, runs, AF).
    pub rhythm: crate::rhythm::RhythmConfig,
    /// Episode events and alerts published on MQTT.
    pub events: crate::pipeline::alerts::EventsConfig,
    pub http: HttpConfig,
    pub shutdown: ShutdownConfig,
}

/// The MQTT connection ingest subscribes with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker address, `host:port`; empty means the embedded broker.
    pub broker: String,
    /// Client id; the broker keeps this client's session (subscriptions, unacknowledged messages).
    pub client_id: String,
    /// Topic filter; `+` stands for the device id, `{partition}` for each of
    /// `partitions.owned` (see [`Partitions`]).
    pub topic_filter: String,
    /// The share of the fleet this daemon takes when several share it.
    pub partitions: Partitions,
    pub username: String,
    /// File holding the password (kept out of this file); `HOLTER_MQTT_PASSWORD` also works.
    pub password_file: String,
    /// Connect with TLS.
    pub tls: bool,
    /// PEM file of the CA that signed the broker's certificate; empty uses the system's roots.
    pub ca_file: String,
    pub keep_alive_s: u64,
    /// Largest accepted payload, bytes; larger messages are rejected as oversized.
    pub max_payload_bytes: usize,
    /// Unacknowledged messages this client allows in flight.
    pub max_inflight: u16,
    /// First and longest wait between reconnection attempts.
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            broker: String::new(),
            client_id: "holterd".into(),
            topic_filter: "holter/+/ecg".into(),
            partitions: Partitions::default(),
            username: String::new(),
            password_file: String::new(),
            tls: false,
            ca_file: String::new(),
            keep_alive_s: 30,
            max_payload_bytes: 256 * 1024,
            max_inflight: 1000,
            reconnect_min_ms: 200,
            reconnect_max_ms: 30_000,
        }
    }
}

/// The in-process broker started when `mqtt.broker` is empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedBrokerConfig {
    /// Address it listens on (not 1883, so that it can run beside a system Mosquitto).
    pub listen: SocketAddr,
    /// MiB of the devices' messages the broker holds for the daemon (its
    /// routing log, which takes this much memory once full): how far the
    /// daemon may fall behind before the oldest messages are lost.
    pub buffer_mib: u32,
}

impl Default for EmbeddedBrokerConfig {
    fn default() -> Self {
        EmbeddedBrokerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 1884)),
            buffer_mib: 128,
        }
    }
}

/// Where beats and raw signal are kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `postgres://…` URL; empty means an SQLite file at `sqlite_path`. `HOLTER_STORE_URL` keeps it out of files.
    pub url: String,
    pub sqlite_path: PathBuf,
    /// Raw signal older than this is deleted (beats are kept); 0 keeps it forever.
    pub raw_retention_days: u64,
    /// Raw chunks, then normal and unreadable beats, are packed into
    /// compressed blocks once this old, every minute; 0 leaves them loose
    /// (raw signal takes twice the bytes, beats seven times, and strips slow
    /// down, as loose chunks have no time index).
    pub compact_after_s: u64,
    pub max_connections: u32,
    /// Most rows per bulk write.
    pub write_batch: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: String::new(),
            sqlite_path: "holterd.sqlite".into(),
            raw_retention_days: 30,
            compact_after_s: 120,
            max_connections: 8,
            write_batch: 1000,
        }
    }
}

/// Per-device stream handling.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamsConfig {
    /// A device silent this long has its stream closed (its last beats flushed).
    pub expire_after_s: u64,
    /// Messages held while waiting for a missing sequence number before it is declared a gap.
    pub reorder_window: usize,
    /// Powerline frequency notched out of every stream: 50, 60, or 0 for none.
    pub powerline_hz: u32,
}

impl Default for StreamsConfig {
    fn default() -> Self {
        StreamsConfig {
            expire_after_s: 120,
            reorder_window: 16,
            powerline_hz: 60,
        }
    }
}

/// Batching and inference.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Model directories; more than one makes an ensemble (averaged probabilities).
    pub models: Vec<PathBuf>,
    /// `cpu` or `cuda` (needs the `cuda` build feature).
    pub device: String,
    /// Inference threads (CPU); each uses one core.
    pub inference_workers: usize,
    pub max_batch: usize,
    /// Longest a beat waits for its batch to fill.
    pub max_wait_ms: u64,
    /// Capacity of each queue between stages; a full queue pushes back on the broker.
    pub queue_capacity: usize,
    /// Probability of "abnormal" at or above which a binary model flags a beat
    /// (five-class models decide by their card's rule).
    pub threshold: f32,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            models: vec![crate::model::DEFAULT_MODEL.into()],
            device: "cpu".into(),
            inference_workers: 1,
            max_batch: 64,
            max_wait_ms: 50,
            queue_capacity: 4096,
            threshold: 0.5,
        }
    }
}

/// The HTTP server: review pages, JSON API, uploads, health and metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Serve `/metrics` on this address instead (empty: on `listen`).
    pub metrics_listen: String,
    /// Mark the session cookie `Secure` (sent over HTTPS only; browsers also send it to localhost).
    pub secure_cookie: bool,
    /// A browser session ends this long after login.
    pub session_ttl_s: u64,
    /// Largest accepted upload, MiB.
    pub max_upload_mib: u64,
    /// Where the shipped models (directories with `card.json`) are listed from.
    pub models_dir: PathBuf,
    /// People who log in with a password.
    pub users: Vec<UserEntry>,
    /// API clients, which send `Authorization: Bearer <token>`.
    pub tokens: Vec<TokenEntry>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_listen: String::new(),
            secure_cookie: true,
            session_ttl_s: 8 * 3600,
            max_upload_mib: 100,
            models_dir: "models".into(),
            users: Vec::new(),
            tokens: Vec::new(),
        }
    }
}

/// A person's login: `password_hash` is an Argon2 PHC string (`holterd auth hash-password`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    pub name: String,
    /// `viewer` (read) or `uploader` (read and upload).
    pub role: String,
    pub password_hash: String,
}

/// An API token: only its SHA-256 (hex) is kept (`holterd auth new-token`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub name: String,
    pub role: String,
    pub sha256: String,
}

/// Stopping.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// On SIGTERM, longest wait for in-flight work to be stored before exiting.
    pub drain_timeout_s: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            drain_timeout_s: 20,
        }
    }
}

impl Config {
    /// Loads `path` (if given), then the environment's `HOLTER_*` variables, then `overrides`
    /// (`section.key=value`), and checks the result.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &[String],
    ) -> Result<Config, ConfigError> {
        let mut table = to_table(&Config::default());
        if let Some(path) = path {
            let file_error = |message: String| ConfigError::File {
                path: path.display().to_string(),
                message,
            };
            let text = std::fs::read_to_string(path).map_err(|e| {
                file_error(match e.kind() {
                    std::io::ErrorKind::NotFound => {
                        "not found: --config must name a TOML file (config/holterd.toml documents every key), or leave it out for the defaults".into()
                    }
                    _ => e.to_string(),
                })
            })?;
            let file: Table = text.parse().map_err(|e: toml::de::Error| {
                file_error(format!("not valid TOML: {}", e.message()))
            })?;
            merge(&mut table, file, "")?;
        }
        for (name, value) in env {
            if let Some((section, key)) = env_key(&table, &name)? {
                set(&mut table, &section, &key, &value)?;
            }
        }
        for o in overrides {
            let (path, value) = o
                .split_once('=')
                .ok_or_else(|| key_error(o, "expected section.key=value"))?;
            let (section, key) = path
                .split_once('.')
                .ok_or_else(|| key_error(path, "expected section.key"))?;
            set(&mut table, section, key, value)?;
        }
        let config: Config = Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| key_error("?", e.message().to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but can't work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let topic = &self.mqtt.topic_filter;
        let bare = crate::formats::wire::unshared_filter(topic);
        if bare.split('/').filter(|l| *l == "+").count() != 1 || bare.contains('#') {
            return Err(key_error(
                "mqtt.topic_filter",
                "needs exactly one `+` level (the device id) and no `#`",
            ));
        }
        self.mqtt
            .partitions
            .check(topic)
            .map_err(|e| key_error("mqtt.partitions", e))?;
        if self.mqtt.client_id.is_empty() || self.mqtt.client_id.len() > 64 {
            return Err(key_error("mqtt.client_id", "must be 1 to 64 characters"));
        }
        if self.mqtt.keep_alive_s < 5 {
            return Err(key_error("mqtt.keep_alive_s", "must be at least 5"));
        }
        if self.mqtt.max_payload_bytes < 64 || self.mqtt.max_payload_bytes > 16 << 20 {
            return Err(key_error(
                "mqtt.max_payload_bytes",
                "must be between 64 and 16777216",
            ));
        }
        if self.mqtt.max_inflight == 0 {
            return Err(key_error("mqtt.max_inflight", "must be at least 1"));
        }
        if self.mqtt.reconnect_min_ms == 0
            || self.mqtt.reconnect_max_ms < self.mqtt.reconnect_min_ms
        {
            return Err(key_error(
                "mqtt.reconnect_max_ms",
                "needs 0 < reconnect_min_ms <= reconnect_max_ms",
            ));
        }
        if !(8..=65_536).contains(&self.embedded_broker.buffer_mib) {
            return Err(key_error(
                "embedded_broker.buffer_mib",
                "must be 8 to 65536 (MiB)",
            ));
        }
        if !self.store.url.is_empty()
            && !self.store.url.starts_with("postgres://")
            && !self.store.url.starts_with("postgresql://")
        {
            return Err(key_error(
                "store.url",
                "must be a postgres:// URL, or empty for SQLite",
            ));
        }
        if self.store.max_connections == 0 {
            return Err(key_error("store.max_connections", "must be at least 1"));
        }
        if self.store.write_batch == 0 {
            return Err(key_error("store.write_batch", "must be at least 1"));
        }
        if self.streams.expire_after_s == 0 {
            return Err(key_error("streams.expire_after_s", "must be at least 1"));
        }
        if !matches!(self.streams.powerline_hz, 0 | 50 | 60) {
            return Err(key_error("streams.powerline_hz", "must be 50, 60 or 0"));
        }
        if self.pipeline.models.is_empty() {
            return Err(key_error(
                "pipeline.models",
                "name at least one model directory",
            ));
        }
        if !matches!(self.pipeline.device.as_str(), "cpu" | "cuda") {
            return Err(key_error("pipeline.device", "must be cpu or cuda"));
        }
        if self.pipeline.inference_workers == 0 || self.pipeline.inference_workers > 256 {
            return Err(key_error("pipeline.inference_workers", "must be 1 to 256"));
        }
        if self.pipeline.max_batch == 0 || self.pipeline.max_batch > 4096 {
            return Err(key_error("pipeline.max_batch", "must be 1 to 4096"));
        }
        if self.pipeline.queue_capacity < 16 {
            return Err(key_error("pipeline.queue_capacity", "must be at least 16"));
        }
        if !(self.pipeline.threshold > 0.0 && self.pipeline.threshold < 1.0) {
            return Err(key_error("pipeline.threshold", "must be between 0 and 1"));
        }
        self.rhythm
            .validate()
            .map_err(|message| key_error("rhythm", message))?;
        self.events
            .validate()
            .map_err(|message| key_error("events", message))?;
        if !self.http.metrics_listen.is_empty()
            && self.http.metrics_listen.parse::<SocketAddr>().is_err()
        {
            return Err(key_error(
                "http.metrics_listen",
                "must be an address like 127.0.0.1:9100, or empty",
            ));
        }
        if self.http.session_ttl_s == 0 {
            return Err(key_error("http.session_ttl_s", "must be at least 1"));
        }
        if self.http.max_upload_mib == 0 || self.http.max_upload_mib > 4096 {
            return Err(key_error("http.max_upload_mib", "must be 1 to 4096"));
        }
        self.http.credentials()?;
        Ok(())
    }

    /// Powerline frequency to notch, if any.
    pub fn powerline(&self) -> Option<f64> {
        (self.streams.powerline_hz != 0).then_some(self.streams.powerline_hz as f64)
    }

    /// How long a silent device keeps its stream.
    pub fn expire_after(&self) -> Duration {
        Duration::from_secs(self.streams.expire_after_s)
    }

    /// The MQTT password: `HOLTER_MQTT_PASSWORD`, else the contents of `mqtt.password_file`.
    pub fn mqtt_password(&self) -> Result<Option<String>, ConfigError> {
        if let Ok(p) = std::env::var("HOLTER_MQTT_PASSWORD") {
            return Ok(Some(p));
        }
        if self.mqtt.password_file.is_empty() {
            return Ok(None);
        }
        std::fs::read_to_string(&self.mqtt.password_file)
            .map(|s| Some(s.trim_end_matches(['\n', '\r']).to_string()))
            .map_err(|e| key_error("mqtt.password_file", e.to_string()))
    }
}

fn to_table(config: &Config) -> Table {
    match Value::try_from(config) {
        Ok(Value::Table(t)) => t,
        // The defaults always serialise to a table.
        _ => Table::new(),
    }
}

/// Merges `from` into `into`, refusing keys that `into` (the defaults) lacks.
fn merge(into: &mut Table, from: Table, prefix: &str) -> Result<(), ConfigError> {
    for (k, v) in from {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match (into.get_mut(&k), v) {
            (Some(Value::Table(sub)), Value::Table(v)) => merge(sub, v, &key)?,
            (Some(Value::Table(_)), _) => return Err(key_error(&key, "must be a table")),
            (Some(slot), v) => {
                *slot = match (&*slot, v) {
                    (Value::Float(_), Value::Integer(i)) => Value::Float(i as f64),
                    (old, v) if std::mem::discriminant(old) == std::mem::discriminant(&v) => v,
                    (old, _) => {
                        return Err(key_error(&key, format!("must be a {}", old.type_str())));
                    }
                }
            }
            (None, _) if prefix.is_empty() => return Err(key_error(&key, "unknown section")),
            (None, _) => return Err(key_error(&key, "unknown key")),
        }
    }
    Ok(())
}

/// `HOLTER_STORE_URL` → (`store`, `url`); `None` for variables naming no section.
fn env_key(table: &Table, name: &str) -> Result<Option<(String, String)>, ConfigError> {
    let Some(rest) = name.strip_prefix("HOLTER_") else {
        return Ok(None);
    };
    let rest = rest.to_ascii_lowercase();
    for section in table.keys() {
        if let Some(key) = rest
            .strip_prefix(section.as_str())
            .and_then(|r| r.strip_prefix('_'))
        {
            if key == "password" && section == "mqtt" {
                return Ok(None); // read by `mqtt_password`, never stored in the table
            }
            return Ok(Some((section.clone(), key.to_string())));
        }
    }
    Ok(None)
}

/// Sets `section.key` from a string, parsed as the type the key's default has.
/// A key of a nested table is `sub.key` (flags) or `sub_key` (environment),
/// e.g. `rhythm.af.on` and `HOLTER_RHYTHM_AF_ON`.
fn set(table: &mut Table, section: &str, key: &str, raw: &str) -> Result<(), ConfigError> {
    let name = format!("{section}.{key}");
    let Some(Value::Table(top)) = table.get(section) else {
        return Err(key_error(&name, "unknown section"));
    };
    // The nested tables the key walks through, then the key inside the last.
    let (mut path, mut key, mut current) = (Vec::new(), key.to_string(), top);
    while !current.contains_key(&key) {
        let nested = current.iter().find_map(|(k, v)| match v {
            Value::Table(t) => key
                .strip_prefix(k.as_str())
                .and_then(|r| r.strip_prefix('.').or_else(|| r.strip_prefix('_')))
                .map(|rest| (k.clone(), rest.to_string(), t)),
            _ => None,
        });
        let Some((k, rest, t)) = nested else { break };
        (key, current) = (rest, t);
        path.push(k);
    }
    let Some(Value::Table(sub)) = table.get_mut(section) else {
        return Err(key_error(&name, "unknown section"));
    };
    let mut sub = sub;
    for k in &path {
        let Some(Value::Table(inner)) = sub.get_mut(k) else {
            return Err(key_error(&name, "unknown key"));
        };
        sub = inner;
    }
    let key = key.as_str();
    let Some(slot) = sub.get_mut(key) else {
        return Err(key_error(&name, "unknown key"));
    };
    let bad = |what: &str| key_error(&name, format!("{raw:?} is not {what}"));
    *slot = match slot {
        Value::Integer(_) => Value::Integer(raw.trim().parse().map_err(|_| bad("an integer"))?),
        Value::Float(_) => Value::Float(raw.trim().parse().map_err(|_| bad("a number"))?),
        Value::Boolean(_) => Value::Boolean(raw.trim().parse().map_err(|_| bad("true or false"))?),
        Value::Array(_) => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ),
        _ => Value::String(raw.to_string()),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(
        text: &str,
        env: &[(&str, &str)],
        overrides: &[&str],
    ) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!("holterd-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.toml", text.len()));
        std::fs::write(&path, text).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        Config::load(Some(&path), env, &overrides)
    }

    #[test]
    fn shipped_file_equals_defaults() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/holterd.toml");
        let c = Config::load(Some(&shipped), [], &[]).unwrap();
        assert_eq!(to_table(&c), to_table(&Config::default()));
    }

    #[test]
    fn nested_keys_are_set_by_flag_and_by_environment() {
        let c = load_str(
            "",
            &[("HOLTER_RHYTHM_AF_WINDOW", "48")],
            &["rhythm.af.on=0.2", "rhythm.pause_s=2.5"],
        )
        .unwrap();
        assert_eq!((c.rhythm.af.on, c.rhythm.af.window), (0.2, 48));
        assert_eq!(c.rhythm.pause_s, 2.5);
        let e = load_str("", &[], &["rhythm.af.nope=1"]).unwrap_err();
        assert!(e.to_string().contains("rhythm.af.nope"), "{e}");
        let e = load_str("", &[], &["rhythm.af.off=0.5"]).unwrap_err();
        assert!(e.to_string().contains("rhythm.af.off"), "{e}");
    }

    #[test]
    fn file_then_env_then_flags() {
        let c = load_str(
            "[store]\nwrite_batch = 10\n[pipeline]\nmax_batch = 8\n",
            &[
                ("HOLTER_PIPELINE_MAX_BATCH", "16"),
                ("HOLTER_DATA_DIR", "/elsewhere"),
                ("HOLTER_EMBEDDED_BROKER_LISTEN", "127.0.0.1:9999"),
            ],
            &["pipeline.models=a,b", "mqtt.tls=true"],
        )
        .unwrap();
        assert_eq!(c.store.write_batch, 10);
        assert_eq!(c.pipeline.max_batch, 16);
        assert_eq!(c.embedded_broker.listen.port(), 9999);
        assert_eq!(
            c.pipeline.models,
            vec![PathBuf::from("a"), PathBuf::from("b")]
        );
        assert!(c.mqtt.tls);
    }

    #[test]
    fn errors_name_the_key() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str], &'a str);
        let cases: [Case; 6] = [
            ("[store]\nwrite_batchh = 1\n", &[], &[], "write_batchh"),
            ("[pipeline]\nmax_batch = \"many\"\n", &[], &[], "max_batch"),
            (
                "",
                &[("HOLTER_STREAMS_REORDER", "1")],
                &[],
                "streams.reorder",
            ),
            (
                "",
                &[("HOLTER_PIPELINE_MAX_BATCH", "lots")],
                &[],
                "pipeline.max_batch",
            ),
            (
                "",
                &[],
                &["mqtt.topic_filter=holter/#"],
                "mqtt.topic_filter",
            ),
            ("[store]\nurl = \"mysql://x\"\n", &[], &[], "store.url"),
        ];
        for (text, env, flags, key) in cases {
            let e = load_str(text, env, flags).unwrap_err().to_string();
            assert!(e.contains(key), "{e:?} should name {key}");
        }
        let e = load_str("[nonsense]\n", &[], &[]).unwrap_err().to_string();
        assert!(e.contains("nonsense"), "{e}");
        let e = load_str("not toml ][", &[], &[]).unwrap_err().to_string();
        assert!(e.contains("TOML"), "{e}");
    }

    #[test]
    fn partitions_come_from_the_file_or_flags_and_are_checked() {
        let c = load_str(
            "[mqtt]\ntopic_filter = \"holterp/{partition}/+/ecg\"\n[mqtt.partitions]\ncount = 4\nowned = [0, 2]\n",
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(c.mqtt.partitions.owned, vec![0, 2]);
        let c = load_str(
            "",
            &[],
            &[
                "mqtt.topic_filter=holterp/{partition}/+/ecg",
                "mqtt.partitions.count=4",
                "mqtt.partitions.owned=1,3",
            ],
        )
        .unwrap();
        assert_eq!(c.mqtt.partitions.count, 4);
        assert_eq!(c.mqtt.partitions.owned, vec![1, 3]);
        let e = load_str(
            "",
            &[],
            &["mqtt.partitions.count=4", "mqtt.partitions.owned=1"],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("mqtt.partitions") && e.contains("{partition}"),
            "{e}"
        );
        let e = load_str(
            "",
            &[],
            &[
                "mqtt.topic_filter=holterp/{partition}/+/ecg",
                "mqtt.partitions.count=4",
                "mqtt.partitions.owned=one",
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("\"one\""), "{e}");
    }

    #[test]
    fn shared_subscription_filter_is_accepted() {
        let c = load_str(
            "[mqtt]\ntopic_filter = \"$share/g/holter/+/ecg\"\n",
            &[],
            &[],
        )
        .unwrap();
        assert!(c.mqtt.topic_filter.starts_with("$share/"));
    }
}
