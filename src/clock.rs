//! Time as holterd keeps it: microseconds since the Unix epoch (UTC) in an
//! `i64`, the way beats, chunks and minutes are keyed in the stores, and its
//! conversion to and from the text shown on pages and typed into forms.

/// Microseconds per minute, the rollup unit.
pub const MINUTE_US: i64 = 60_000_000;

/// Time of a beat's R peak: the segment's start plus its sample index, µs.
pub fn r_time_us(t0_us: i64, fs: f64, sample: u64) -> i64 {
    t0_us.saturating_add((sample as f64 * 1e6 / fs).round() as i64)
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// `2026-11-26 10:49:52` (UTC) for µs since the epoch.
pub fn format_utc(us: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp_nanos(us as i128 * 1000) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => us.to_string(),
    }
}

/// Parses a time given as µs since the epoch or as UTC `YYYY-MM-DDTHH:MM[:SS][Z]`
/// (what an HTML `datetime-local` field sends).
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(us) = s.parse::<i64>() {
        return Some(us);
    }
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (date, clock) = s.split_once(['T', ' ']).unwrap_or((s, "00:00"));
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i32>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let mut c = clock.splitn(3, ':').map(|p| p.parse::<u8>().ok());
    let (h, mi) = (c.next()??, c.next()??);
    let sec = c.next().map_or(Some(0), |x| x)?;
    let date =
        time::Date::from_calendar_date(y, time::Month::try_from(mo as u8).ok()?, da as u8).ok()?;
    let t = time::Time::from_hms(h, mi, sec).ok()?;
    let dt = time::PrimitiveDateTime::new(date, t).assume_utc();
    i64::try_from(dt.unix_timestamp_nanos() / 1000).ok()
}

/// `YYYY-MM-DDTHH:MM` (UTC), the value an HTML `datetime-local` field shows.
pub fn format_datetime_local(us: i64) -> String {
    format_utc(us).replacen(' ', "T", 1)[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let us = parse_time("2026-11-26T10:49:52Z").unwrap();
        assert_eq!(format_utc(us), "2026-11-26 10:49:52");
        assert_eq!(parse_time("2026-11-26T10:49"), Some(us - 52_000_000));
        assert_eq!(format_datetime_local(us), "2026-11-26T10:49");
        assert_eq!(parse_time("123"), Some(123));
        for bad in ["", "2026-13-01T00:00", "yesterday", "2026-11-26T25:00"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }
}
