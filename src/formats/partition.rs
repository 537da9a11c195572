//! Devices split into partitions, so that several daemons can share a fleet
//! with each device's stream on one daemon (its extractor state lives there).
//!
//! A broker that partitions subjects by a topic level does the routing: NATS'
//! subject mapping `"holter.*.ecg": "holterp.{{partition(N,1)}}.{{wildcard(1)}}.ecg"`
//! republishes `holter/<device>/ecg` as `holterp/<k>/<device>/ecg`, `k` being
//! the 32-bit FNV-1a hash of the device id modulo `N`. A daemon subscribes to
//! the partitions it owns (`{partition}` in `mqtt.topic_filter`), and on a
//! restart re-analyses only its own devices' open segments: [`Partitions::owns`]
//! computes the same hash, so it needs no list of devices. MQTT's shared
//! subscriptions (`$share/…`) are no substitute: they spread messages, not
//! devices, over the subscribers.

use serde::{Deserialize, Deserializer, Serialize};

/// The placeholder in a topic filter that stands for a partition number.
pub const PLACEHOLDER: &str = "{partition}";

/// The partition `device` falls in among `count`, as NATS' `partition(count, …)`
/// computes it over the device id: FNV-1a (32 bits) modulo `count`.
pub fn partition_of(device: &str, count: u32) -> u32 {
    // FNV-1a is four lines; no crate needed for it.
    let hash = device.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    hash % count.max(1)
}

/// The partitions a daemon owns: `count` 0 (the default) means the whole fleet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Partitions {
    /// How many partitions the broker's mapping makes (its `partition(N, 1)`); 0: none.
    pub count: u32,
    /// The partitions this daemon subscribes to and re-analyses on a restart.
    #[serde(deserialize_with = "numbers")]
    pub owned: Vec<u32>,
}

impl Partitions {
    /// Whether `device`'s stream is this daemon's.
    pub fn owns(&self, device: &str) -> bool {
        self.count == 0 || self.owned.contains(&partition_of(device, self.count))
    }

    /// The subscriptions for `filter`: one per owned partition, with
    /// [`PLACEHOLDER`] replaced by its number; `filter` itself without partitions.
    pub fn topic_filters(&self, filter: &str) -> Vec<String> {
        if self.count == 0 {
            return vec![filter.to_string()];
        }
        self.owned
            .iter()
            .map(|k| filter.replace(PLACEHOLDER, &k.to_string()))
            .collect()
    }

    /// What is wrong with these partitions for `filter`, if anything.
    pub fn check(&self, filter: &str) -> Result<(), String> {
        let placeholders = filter.matches(PLACEHOLDER).count();
        if self.count == 0 {
            if placeholders > 0 || !self.owned.is_empty() {
                return Err(format!(
                    "set mqtt.partitions.count to the broker's number of partitions to use {PLACEHOLDER} or mqtt.partitions.owned"
                ));
            }
            return Ok(());
        }
        if placeholders != 1 || !filter.split('/').any(|level| level == PLACEHOLDER) {
            return Err(format!(
                "with partitions, mqtt.topic_filter needs one level that is exactly {PLACEHOLDER} (e.g. \"holterp/{PLACEHOLDER}/+/ecg\")"
            ));
        }
        if self.owned.is_empty() {
            return Err("mqtt.partitions.owned lists no partition".into());
        }
        if let Some(k) = self.owned.iter().find(|k| **k >= self.count) {
            return Err(format!(
                "partition {k} is not below mqtt.partitions.count ({})",
                self.count
            ));
        }
        Ok(())
    }
}

/// The partition number `topic` carries at `filter`'s [`PLACEHOLDER`] level, if any.
pub fn partition_in_topic(filter: &str, topic: &str) -> Option<u32> {
    let at = filter.split('/').position(|level| level == PLACEHOLDER)?;
    topic.split('/').nth(at)?.parse().ok()
}

/// Partition numbers from TOML integers or, as `--set` gives them, strings.
fn numbers<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Int(u32),
        Text(String),
    }
    Vec::<Number>::deserialize(d)?
        .into_iter()
        .map(|n| match n {
            Number::Int(k) => Ok(k),
            Number::Text(s) => s.trim().parse().map_err(|_| {
                serde::de::Error::custom(format!("partition {s:?} is not a whole number"))
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_fnv1a_of_the_device_id() {
        // FNV-1a 32-bit test vectors (the empty string is the offset basis).
        assert_eq!(partition_of("", u32::MAX), 0x811c_9dc5);
        assert_eq!(partition_of("a", u32::MAX), 0xe40c_292c);
        assert_eq!(partition_of("foobar", u32::MAX), 0xbf9c_f968);
        for device in ["record100", "p-17", "x"] {
            let k = partition_of(device, 4);
            assert!(k < 4);
            assert_eq!(k, partition_of(device, 4), "stable");
        }
        // 1,000 devices spread over 4 partitions, none far from a quarter.
        let mut counts = [0usize; 4];
        for i in 0..1000 {
            counts[partition_of(&format!("dev{i}"), 4) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (200..300).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn a_daemon_owns_its_partitions_devices_only() {
        let all = Partitions::default();
        assert!(all.owns("anything"));
        let p = Partitions {
            count: 4,
            owned: vec![partition_of("record100", 4)],
        };
        assert!(p.owns("record100"));
        let other = (0..100)
            .map(|i| format!("d{i}"))
            .find(|d| partition_of(d, 4) != partition_of("record100", 4))
            .unwrap();
        assert!(!p.owns(&other));
    }

    #[test]
    fn filters_expand_per_owned_partition() {
        let p = Partitions {
            count: 4,
            owned: vec![1, 3],
        };
        assert_eq!(
            p.topic_filters("holterp/{partition}/+/ecg"),
            vec!["holterp/1/+/ecg", "holterp/3/+/ecg"]
        );
        assert_eq!(
            Partitions::default().topic_filters("holter/+/ecg"),
            vec!["holter/+/ecg"]
        );
        assert_eq!(
            partition_in_topic("holterp/{partition}/+/ecg", "holterp/3/dev/ecg"),
            Some(3)
        );
        assert_eq!(partition_in_topic("holter/+/ecg", "holter/dev/ecg"), None);
    }

    #[test]
    fn inconsistent_settings_say_what_to_change() {
        let p = |count, owned: &[u32]| Partitions {
            count,
            owned: owned.to_vec(),
        };
        assert!(p(0, &[]).check("holter/+/ecg").is_ok());
        assert!(p(4, &[0, 3]).check("holterp/{partition}/+/ecg").is_ok());
        for (partitions, filter, says) in [
            (p(0, &[]), "holterp/{partition}/+/ecg", "partitions.count"),
            (p(0, &[1]), "holter/+/ecg", "partitions.count"),
            (p(4, &[1]), "holter/+/ecg", "exactly {partition}"),
            (
                p(4, &[1]),
                "holterp/x{partition}/+/ecg",
                "exactly {partition}",
            ),
            (p(4, &[]), "holterp/{partition}/+/ecg", "no partition"),
            (p(4, &[4]), "holterp/{partition}/+/ecg", "not below"),
        ] {
            let e = partitions.check(filter).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }
}
