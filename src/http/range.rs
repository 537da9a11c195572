//! What the device pages and their API twins are asked for: a device id from
//! the path ([`check_device`]) and a time range with filters ([`RangeQuery`]),
//! taken together by the [`DeviceRange`] extractor.

use super::{Failure, HttpState};
use crate::clock::{self, MINUTE_US};
use crate::formats::wfdb::AamiClass;
use crate::rhythm::EpisodeKind;
use crate::store::{BeatQuery, Store, Verdict};
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::marker::PhantomData;

/// Flagged beats per page of the device view (and its API twin's default).
pub const PAGE_SIZE: u32 = 50;
const DAY_US: i64 = 86_400_000_000;

/// Filters of the device page and its API twin.
#[derive(Debug, Default, Deserialize)]
pub struct RangeQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    /// `abnormal` (default; `all` when a class is asked for), `normal`, `unreadable` or `all`.
    pub verdict: Option<String>,
    /// An AAMI class letter (`N`, `S`, `V`, `F`, `Q`), or empty for any.
    pub class: Option<String>,
    pub min_p: Option<String>,
    /// Show flagged beats after this R time (µs): the next page.
    pub after: Option<i64>,
    pub limit: Option<u32>,
    /// A rhythm episode kind (`atrial_fibrillation`, `pause`, …), or empty for any (episodes only).
    pub kind: Option<String>,
}

/// A resolved time range.
pub struct Range {
    pub from_us: i64,
    pub to_us: i64,
}

impl RangeQuery {
    /// The range asked for; by default the 24 hours up to the device's last beat.
    pub async fn range<S: Store>(&self, store: &S, device: &str) -> Result<Range, Failure> {
        let parse = |v: &Option<String>, what: &str| -> Result<Option<i64>, Failure> {
            match v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => clock::parse_time(v).map(Some).ok_or_else(|| {
                    Failure::bad_request(format!(
                        "{what} {v:?}: give YYYY-MM-DDTHH:MM (UTC) or µs since 1970"
                    ))
                }),
            }
        };
        let (from, to) = (parse(&self.from, "from")?, parse(&self.to, "to")?);
        let to_us = match to {
            Some(t) => t,
            None => {
                let last = store.last_minute(device).await?;
                last.map_or_else(clock::now_us, |m| (m + 1) * MINUTE_US)
            }
        };
        let from_us = from.unwrap_or(to_us - DAY_US);
        if from_us >= to_us {
            return Err(Failure::bad_request("from must be before to"));
        }
        Ok(Range { from_us, to_us })
    }

    /// The verdict asked for, as given or by default (`abnormal`, or `all`
    /// when a class is asked for).
    pub fn verdict_name(&self) -> &str {
        match self.verdict.as_deref() {
            Some(v) => v,
            None if self.class_letter().is_some() => "all",
            None => "abnormal",
        }
    }

    fn class_letter(&self) -> Option<&str> {
        self.class
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
    }

    /// The class filter: `None` means every class (and beats without one).
    pub fn class(&self) -> Result<Option<AamiClass>, Failure> {
        let Some(c) = self.class_letter() else {
            return Ok(None);
        };
        let mut chars = c.chars();
        match (chars.next().and_then(AamiClass::from_letter), chars.next()) {
            (Some(class), None) => Ok(Some(class)),
            _ => Err(Failure::bad_request(format!(
                "class {c:?}: choose N, S, V, F or Q (or leave it empty for any)"
            ))),
        }
    }

    /// The verdict filter: `None` means every verdict.
    pub fn verdict(&self) -> Result<Option<Verdict>, Failure> {
        match self.verdict_name() {
            "all" | "" => Ok(None),
            v => Verdict::parse(v).map(Some).map_err(|_| {
                Failure::bad_request(format!(
                    "verdict {v:?}: choose abnormal, normal, unreadable or all"
                ))
            }),
        }
    }

    /// The lowest p(abnormal) asked for, if any (0 to 1).
    pub fn min_p(&self) -> Result<Option<f32>, Failure> {
        match self
            .min_p
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            None => Ok(None),
            Some(v) => v
                .parse::<f32>()
                .ok()
                .filter(|p| (0.0..=1.0).contains(p))
                .map(Some)
                .ok_or_else(|| Failure::bad_request(format!("min_p {v:?}: give 0 to 1"))),
        }
    }

    /// The beat query for this page of results.
    /// The episode kind asked for (`None`: any).
    pub fn kind(&self) -> Result<Option<EpisodeKind>, Failure> {
        match self
            .kind
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
        {
            None => Ok(None),
            Some(k) => EpisodeKind::parse(k).map(Some).ok_or_else(|| {
                let kinds: Vec<&str> = EpisodeKind::ALL.iter().map(|k| k.as_str()).collect();
                Failure::bad_request(format!("kind {k:?}: give one of {}", kinds.join(", ")))
            }),
        }
    }

    pub fn beat_query(
        &self,
        device: &str,
        r: &Range,
        max_limit: u32,
    ) -> Result<BeatQuery, Failure> {
        Ok(BeatQuery {
            device: device.to_string(),
            from_us: self
                .after
                .map_or(r.from_us, |a| a.saturating_add(1).max(r.from_us)),
            to_us: r.to_us,
            verdict: self.verdict()?,
            class: self.class()?,
            min_p_abnormal: self.min_p()?,
            limit: self.limit.unwrap_or(PAGE_SIZE).clamp(1, max_limit),
            offset: 0,
        })
    }
}

/// Refuses a malformed device id as "no such device" (it can name none).
pub fn check_device(device: &str) -> Result<(), Failure> {
    crate::formats::wire::check_device_id(device).map_err(|_| Failure::not_found("no such device"))
}

/// The beat of `device` at R time `t` (µs), for the beat page and its API
/// twin: a malformed id or a time with no beat is "not found".
pub async fn stored_beat<S: Store>(
    store: &S,
    device: &str,
    t: i64,
) -> Result<crate::store::BeatRow, Failure> {
    check_device(device)?;
    store
        .beat(device, t)
        .await?
        .ok_or_else(|| Failure::not_found("no beat at that time for this device"))
}

/// The opening of the handlers of one device's range: the device id from the
/// path, checked, and the range query, parsed and resolved against the store.
///
/// `F` is how a refusal is answered: [`Failure`] (the HTML failure page) for
/// the pages, the API's JSON error for the API. Malformed paths and queries
/// get axum's own rejections, as the plain `Path` and `Query` extractors give.
pub struct DeviceRange<F = Failure> {
    pub device: String,
    pub query: RangeQuery,
    pub range: Range,
    answer: PhantomData<fn() -> F>,
}

impl<S, F> FromRequestParts<HttpState<S>> for DeviceRange<F>
where
    S: Store,
    F: From<Failure> + IntoResponse,
{
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &HttpState<S>,
    ) -> Result<Self, Self::Rejection> {
        let Path(device) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Query(query) = Query::<RangeQuery>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let refuse = |f: Failure| F::from(f).into_response();
        check_device(&device).map_err(refuse)?;
        let range = query.range(&state.store, &device).await.map_err(refuse)?;
        Ok(DeviceRange {
            device,
            query,
            range,
            answer: PhantomData,
        })
    }
}
