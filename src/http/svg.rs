//! Server-drawn SVG charts (no JavaScript): line series with axes and tick
//! labels, and vertical markers. Colours come from classes in `style.css`.

use maud::{Markup, html};

/// A polyline in data coordinates.
pub struct Series {
    pub points: Vec<(f64, f64)>,
    /// CSS class (`s1`, `s2`, `ecg`).
    pub class: &'static str,
    pub label: String,
}

/// A vertical mark at `x` (an R peak, say), optionally a link.
pub struct Marker {
    pub x: f64,
    pub class: &'static str,
    pub title: String,
    pub href: Option<String>,
}

/// A chart: series and markers on linear axes.
pub struct Chart {
    pub width: f64,
    pub height: f64,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub markers: Vec<Marker>,
    /// x is µs since the epoch: ticks on whole clock steps, labelled `HH:MM` (UTC).
    pub x_clock: bool,
}

const PAD_L: f64 = 52.0;
const PAD_R: f64 = 12.0;
const PAD_T: f64 = 10.0;
const PAD_B: f64 = 36.0;

/// The span of the finite `values`; a degenerate one (a single value, or all
/// equal) is widened around it: ±5 min on a time axis, else ±5 % of the value
/// (at least ±1), so the chart has room and ticks to show.
fn range(values: impl Iterator<Item = f64>, time: bool) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return None;
    }
    if hi - lo <= 1e-9 * lo.abs().max(hi.abs()).max(1.0) {
        let mid = (lo + hi) / 2.0;
        let half = if time {
            300e6
        } else {
            (mid.abs() * 0.05).max(1.0)
        };
        return Some((mid - half, mid + half));
    }
    Some((lo, hi))
}

/// Clock steps (µs) for time axes: 1 s to 1 day.
const TIME_STEPS: [f64; 18] = [
    1e6, 2e6, 5e6, 10e6, 15e6, 30e6, 60e6, 120e6, 300e6, 600e6, 900e6, 1800e6, 3600e6, 7200e6,
    10800e6, 21600e6, 43200e6, 86400e6,
];

/// The tick step across `[lo, hi]`: on a time axis a whole clock step, for
/// about five ticks; else the smallest 1, 2 or 5 × 10^k that leaves at most
/// eight intervals (so three to nine ticks).
fn tick_step(lo: f64, hi: f64, time: bool) -> f64 {
    if time {
        let raw = (hi - lo) / 5.0;
        return TIME_STEPS
            .into_iter()
            .find(|s| *s >= raw)
            .unwrap_or(86400e6);
    }
    let raw = (hi - lo) / 8.0;
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * mag)
}

/// Decimals that tell multiples of `step` apart.
fn decimals(step: f64) -> i32 {
    (-step.log10().floor()).clamp(0.0, 15.0) as i32
}

/// The multiples of `step` within `[lo, hi]` (at most 20), increasing, each
/// rounded to the decimals of `step` (so 6 × 0.2 is 1.2, not 1.2000000000000002).
fn ticks_at(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    let first = (lo / step - 1e-9).ceil();
    let scale = 10f64.powi(decimals(step));
    (0..20)
        .map(|i| ((first + i as f64) * step * scale).round() / scale)
        .take_while(|t| *t <= hi + step * 1e-9)
        .collect()
}

impl Chart {
    /// The chart as inline SVG; an empty chart says so.
    pub fn render(&self) -> Markup {
        let xs = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .chain(self.markers.iter().map(|m| m.x));
        let ys = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1));
        let (Some((x0, x1)), Some((y0, y1))) = (range(xs, self.x_clock), range(ys, false)) else {
            return html! { p.empty { "No data in this range." } };
        };
        let (w, h) = (self.width - PAD_L - PAD_R, self.height - PAD_T - PAD_B);
        let sx = move |x: f64| PAD_L + (x - x0) / (x1 - x0) * w;
        let sy = move |y: f64| PAD_T + (y1 - y) / (y1 - y0) * h;
        let path = |pts: &[(f64, f64)]| {
            let mut d = String::with_capacity(pts.len() * 14);
            for (i, (x, y)) in pts.iter().filter(|p| p.1.is_finite()).enumerate() {
                d.push_str(&format!(
                    "{}{:.1},{:.1}",
                    if i == 0 { "M" } else { "L" },
                    sx(*x),
                    sy(*y)
                ));
            }
            d
        };
        let (y_step, x_step) = (tick_step(y0, y1, false), tick_step(x0, x1, self.x_clock));
        html! {
            svg.chart viewBox=(format!("0 0 {} {}", self.width, self.height)) role="img"
                aria-label=(format!("{} against {}", self.y_label, self.x_label)) {
                @for t in ticks_at(y0, y1, y_step) {
                    line.grid x1=(PAD_L) x2=(PAD_L + w) y1=(sy(t)) y2=(sy(t)) {}
                    text.tick x=(PAD_L - 4.0) y=(sy(t) + 4.0) text-anchor="end" { (format_tick(t, y_step)) }
                }
                @for t in ticks_at(x0, x1, x_step) {
                    line.grid x1=(sx(t)) x2=(sx(t)) y1=(PAD_T) y2=(PAD_T + h) {}
                    text.tick x=(sx(t)) y=(PAD_T + h + 14.0) text-anchor="middle" { (if self.x_clock { clock_ticks(t) } else { format_tick(t, x_step) }) }
                }
                rect.frame x=(PAD_L) y=(PAD_T) width=(w) height=(h) {}
                text.axis x=(PAD_L + w / 2.0) y=(self.height - 4.0) text-anchor="middle" { (self.x_label) }
                text.axis x="12" y=(PAD_T + h / 2.0) text-anchor="middle"
                    transform=(format!("rotate(-90 12 {})", PAD_T + h / 2.0)) { (self.y_label) }
                @for m in &self.markers {
                    @if let Some(href) = &m.href {
                        a href=(href) {
                            line class=(m.class) x1=(sx(m.x)) x2=(sx(m.x)) y1=(PAD_T) y2=(PAD_T + h) {
                                title { (m.title) }
                            }
                        }
                    } @else {
                        line class=(m.class) x1=(sx(m.x)) x2=(sx(m.x)) y1=(PAD_T) y2=(PAD_T + h) {
                            title { (m.title) }
                        }
                    }
                }
                @for s in &self.series {
                    @let mut finite = s.points.iter().filter(|p| p.0.is_finite() && p.1.is_finite());
                    @match (finite.next(), finite.next()) {
                        // A lone point has no line to draw: a dot instead.
                        (Some(&(x, y)), None) => {
                            circle class=(format!("point {}", s.class)) cx=(format!("{:.1}", sx(x))) cy=(format!("{:.1}", sy(y))) r="3" {
                                title { (s.label) }
                            }
                        }
                        _ => { path class=(s.class) d=(path(&s.points)) { title { (s.label) } } }
                    }
                }
            }
        }
    }
}

/// One episode on a [`Timeline`]: its extent (µs since the epoch), a tooltip and a link.
pub struct Band {
    pub from_us: i64,
    pub to_us: i64,
    pub title: String,
    pub href: Option<String>,
}

/// One lane of a [`Timeline`]: the episodes of one kind.
pub struct Lane {
    /// Written left of the lane.
    pub label: String,
    /// CSS class of its bands (their colour).
    pub class: String,
    pub bands: Vec<Band>,
}

/// The heart-rate trend over a fixed time range with the episodes under it:
/// one labelled lane per kind, each episode a bar in its lane and a shaded
/// band over the trend, both linked. Bars are at least [`MIN_BAND_PX`] wide,
/// so a pause of two seconds on a 24-hour axis still shows.
pub struct Timeline {
    /// Width, and height of the trend's plot with its axis, px.
    pub width: f64,
    pub height: f64,
    /// The time axis, µs since the epoch (UTC).
    pub from_us: i64,
    pub to_us: i64,
    /// (µs, /min).
    pub trend: Vec<(f64, f64)>,
    pub lanes: Vec<Lane>,
}

/// Narrowest bar or band a timeline draws, px.
pub const MIN_BAND_PX: f64 = 2.0;
const LANE_PX: f64 = 16.0;
const TIMELINE_PAD_L: f64 = 84.0;

impl Timeline {
    /// The timeline as inline SVG; with neither trend nor episodes it says so.
    pub fn render(&self) -> Markup {
        let (x0, x1) = (self.from_us as f64, self.to_us as f64);
        let episodes = self.lanes.iter().any(|l| !l.bands.is_empty());
        let y = range(self.trend.iter().map(|p| p.1), false)
            .or_else(|| episodes.then_some((40.0, 120.0)));
        let Some((y0, y1)) = y.filter(|_| x1 > x0) else {
            return html! { p.empty { "No data in this range." } };
        };
        let h = self.height - PAD_T - PAD_B;
        let w = self.width - TIMELINE_PAD_L - PAD_R;
        let sx = move |x: f64| TIMELINE_PAD_L + (x.clamp(x0, x1) - x0) / (x1 - x0) * w;
        let sy = move |v: f64| PAD_T + (y1 - v) / (y1 - y0) * h;
        let lanes: Vec<&Lane> = self.lanes.iter().filter(|l| !l.bands.is_empty()).collect();
        let lanes_top = PAD_T + h + 22.0;
        let total = lanes_top + lanes.len() as f64 * LANE_PX + 20.0;
        // A bar from `a` to `b` (µs): its left edge and width, widened to the minimum around its middle.
        let bar = move |a: i64, b: i64| {
            let (l, r) = (sx(a as f64), sx(b as f64));
            if r - l >= MIN_BAND_PX {
                (l, r - l)
            } else {
                let mid = ((l + r) / 2.0).clamp(
                    TIMELINE_PAD_L + MIN_BAND_PX / 2.0,
                    TIMELINE_PAD_L + w - MIN_BAND_PX / 2.0,
                );
                (mid - MIN_BAND_PX / 2.0, MIN_BAND_PX)
            }
        };
        let mut d = String::with_capacity(self.trend.len() * 14);
        for (i, (t, v)) in self
            .trend
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .enumerate()
        {
            d.push_str(&format!(
                "{}{:.1},{:.1}",
                if i == 0 { "M" } else { "L" },
                sx(*t),
                sy(*v)
            ));
        }
        let (y_step, x_step) = (tick_step(y0, y1, false), tick_step(x0, x1, true));
        let linked = |href: &Option<String>, inner: Markup| match href {
            Some(href) => html! { a href=(href) { (inner) } },
            None => inner,
        };
        html! {
            svg.chart.timeline viewBox=(format!("0 0 {} {}", self.width, total)) role="img"
                aria-label="heart rate and rhythm episodes against time (UTC)" {
                @for t in ticks_at(y0, y1, y_step) {
                    line.grid x1=(TIMELINE_PAD_L) x2=(TIMELINE_PAD_L + w) y1=(sy(t)) y2=(sy(t)) {}
                    text.tick x=(TIMELINE_PAD_L - 4.0) y=(sy(t) + 4.0) text-anchor="end" { (format_tick(t, y_step)) }
                }
                @for t in ticks_at(x0, x1, x_step) {
                    line.grid x1=(sx(t)) x2=(sx(t)) y1=(PAD_T) y2=(lanes_top + lanes.len() as f64 * LANE_PX) {}
                    text.tick x=(sx(t)) y=(PAD_T + h + 14.0) text-anchor="middle" { (clock_ticks(t)) }
                }
                @for l in &lanes {
                    @for b in &l.bands {
                        @let (left, width) = bar(b.from_us, b.to_us);
                        (linked(&b.href, html! {
                            rect class=(format!("band {}", l.class)) x=(format!("{left:.1}")) y=(PAD_T)
                                width=(format!("{width:.1}")) height=(h) { title { (b.title) } }
                        }))
                    }
                }
                rect.frame x=(TIMELINE_PAD_L) y=(PAD_T) width=(w) height=(h) {}
                text.axis x="12" y=(PAD_T + h / 2.0) text-anchor="middle"
                    transform=(format!("rotate(-90 12 {})", PAD_T + h / 2.0)) { "heart rate (/min)" }
                @let mut finite = self.trend.iter().filter(|p| p.0.is_finite() && p.1.is_finite());
                @match (finite.next(), finite.next()) {
                    (None, _) => {}
                    // A lone point has no line to draw: a dot instead.
                    (Some(&(x, v)), None) => {
                        circle class="point s1" cx=(format!("{:.1}", sx(x))) cy=(format!("{:.1}", sy(v))) r="3" {
                            title { "mean heart rate" }
                        }
                    }
                    _ => { path.s1 d=(d) { title { "mean heart rate" } } }
                }
                @for (i, l) in lanes.iter().enumerate() {
                    @let top = lanes_top + i as f64 * LANE_PX;
                    text.lane x=(TIMELINE_PAD_L - 4.0) y=(top + LANE_PX - 4.0) text-anchor="end" { (l.label) }
                    rect.lane x=(TIMELINE_PAD_L) y=(top) width=(w) height=(LANE_PX) {}
                    @for b in &l.bands {
                        @let (left, width) = bar(b.from_us, b.to_us);
                        (linked(&b.href, html! {
                            rect class=(format!("bar {}", l.class)) x=(format!("{left:.1}")) y=(top + 2.0)
                                width=(format!("{width:.1}")) height=(LANE_PX - 4.0) { title { (b.title) } }
                        }))
                    }
                }
                text.axis x=(TIMELINE_PAD_L + w / 2.0) y=(total - 4.0) text-anchor="middle" { "time (UTC)" }
            }
        }
    }
}

/// A tick label with as many decimals as `step` needs, so neighbouring
/// ticks never read the same (trailing zeros dropped).
fn format_tick(v: f64, step: f64) -> String {
    let v = v + 0.0; // no "-0"
    let decimals = decimals(step) as usize;
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    if s == "-0" { "0".into() } else { s.to_string() }
}

/// Tick labels for x in µs since the epoch, as `HH:MM` UTC (`HH:MM:SS` off the minute).
fn clock_ticks(us: f64) -> String {
    let s = crate::clock::format_utc(us.round() as i64);
    let end = if s.ends_with(":00") { 16 } else { 19 };
    s.get(11..end).unwrap_or(&s).to_string()
}

/// Pixels per millimetre of ECG paper: the strip's fixed scale.
pub const PX_PER_MM: f64 = 4.0;
/// Paper speed and gain of the strip: the standard 25 mm/s and 10 mm/mV.
const MM_PER_S: f64 = 25.0;
const MM_PER_MV: f64 = 10.0;
/// Height of the band above the paper that holds the beat labels, mm.
const LABEL_BAND_MM: f64 = 6.0;
const PAPER_PAD_L: f64 = 34.0;
const PAPER_PAD_B: f64 = 16.0;
/// The strip shows at most ±5 mV (anything beyond is drawn at the edge).
const PAPER_MAX_MV: f64 = 5.0;

/// A beat on an ECG strip: a label above its R peak, or (for a binary
/// model's beat, `text` empty) a line through it.
pub struct PeakLabel {
    /// R time, s on the strip's axis.
    pub t_s: f64,
    /// The class letter, `?` (unreadable) or empty.
    pub text: String,
    /// CSS class: the verdict.
    pub class: &'static str,
    pub title: String,
    pub href: Option<String>,
}

/// Raw ECG on standard paper: minor lines every 1 mm (40 ms, 0.1 mV), major
/// every 5 mm (200 ms, 0.5 mV), at 25 mm/s and 10 mm/mV, [`PX_PER_MM`] px per mm.
pub struct EcgStrip {
    /// (s, mV).
    pub points: Vec<(f64, f64)>,
    /// The time axis, s.
    pub from_s: f64,
    pub to_s: f64,
    pub beats: Vec<PeakLabel>,
}

impl EcgStrip {
    /// The strip as inline SVG with a fixed size in px; an empty strip says so.
    pub fn render(&self) -> Markup {
        let Some((lo, hi)) = range(self.points.iter().map(|p| p.1), false) else {
            return html! { p.empty { "No raw ECG stored around this beat." } };
        };
        if !(self.to_s - self.from_s).is_finite() || self.to_s <= self.from_s {
            return html! { p.empty { "No raw ECG stored around this beat." } };
        }
        // Whole major squares (0.5 mV) around the signal, at least −0.5 to 1 mV.
        let lo = ((lo.max(-PAPER_MAX_MV) * 2.0).floor() / 2.0).min(-0.5);
        let hi = ((hi.min(PAPER_MAX_MV) * 2.0).ceil() / 2.0).max(1.0);
        let mm = PX_PER_MM;
        let cols = ((self.to_s - self.from_s) * MM_PER_S).round() as i64;
        let rows = ((hi - lo) * MM_PER_MV).round() as i64;
        let top = LABEL_BAND_MM * mm;
        let (w, h) = (cols as f64 * mm, rows as f64 * mm);
        let (width, height) = (PAPER_PAD_L + w + 4.0, top + h + PAPER_PAD_B);
        let sx = |t: f64| PAPER_PAD_L + (t - self.from_s) * MM_PER_S * mm;
        let sy = |v: f64| top + (hi - v.clamp(lo, hi)) * MM_PER_MV * mm;
        let mut d = String::with_capacity(self.points.len() * 14);
        for (i, (t, v)) in self.points.iter().filter(|p| p.1.is_finite()).enumerate() {
            d.push_str(&format!(
                "{}{:.1},{:.1}",
                if i == 0 { "M" } else { "L" },
                sx(*t),
                sy(*v)
            ));
        }
        let line_class = |i: i64| {
            if i % 5 == 0 {
                "paper-major"
            } else {
                "paper-minor"
            }
        };
        html! {
            svg.ecg-paper width=(width) height=(height) viewBox=(format!("0 0 {width} {height}"))
                role="img" aria-label="ECG at 25 mm/s and 10 mm/mV" {
                @for i in (0..=cols).filter(|i| i % 5 != 0).chain((0..=cols).filter(|i| i % 5 == 0)) {
                    line class=(line_class(i)) x1=(PAPER_PAD_L + i as f64 * mm) x2=(PAPER_PAD_L + i as f64 * mm)
                        y1=(top) y2=(top + h) {}
                }
                @for i in (0..=rows).filter(|i| i % 5 != 0).chain((0..=rows).filter(|i| i % 5 == 0)) {
                    line class=(line_class(i)) x1=(PAPER_PAD_L) x2=(PAPER_PAD_L + w)
                        y1=(top + i as f64 * mm) y2=(top + i as f64 * mm) {}
                }
                // Seconds below every 25 mm, mV beside every major line.
                @for i in (0..=cols).filter(|i| i % 25 == 0) {
                    text.tick x=(PAPER_PAD_L + i as f64 * mm) y=(top + h + 12.0) text-anchor="middle" {
                        (format_tick(self.from_s + i as f64 / MM_PER_S, 1.0)) " s"
                    }
                }
                @for i in (0..=rows).filter(|i| i % 5 == 0) {
                    text.tick x=(PAPER_PAD_L - 4.0) y=(top + i as f64 * mm + 4.0) text-anchor="end" {
                        (format_tick(hi - i as f64 / MM_PER_MV, 0.5))
                    }
                }
                @for b in self.beats.iter().filter(|b| b.t_s.is_finite() && (self.from_s..=self.to_s).contains(&b.t_s)) {
                    @let x = format!("{:.1}", sx(b.t_s));
                    @let mark = html! {
                        @if b.text.is_empty() {
                            line class=(b.class) x1=(x) x2=(x) y1=(top) y2=(top + h) { title { (b.title) } }
                        } @else {
                            text class=(format!("peak {}", b.class)) x=(x) y=(top - 6.0) text-anchor="middle" {
                                title { (b.title) } (b.text)
                            }
                        }
                    };
                    @if let Some(href) = &b.href { a href=(href) { (mark) } } @else { (mark) }
                }
                path.ecg d=(d) {}
            }
        }
    }
}

/// The 187-sample beat vector.
pub fn beat_chart(values: &[f32], fs_label: &str) -> Markup {
    Chart {
        width: 480.0,
        height: 240.0,
        x_label: format!("sample ({fs_label})"),
        y_label: "normalised amplitude".into(),
        series: vec![Series {
            points: values
                .iter()
                .enumerate()
                .map(|(i, v)| (i as f64, *v as f64))
                .collect(),
            class: "ecg",
            label: "beat".into(),
        }],
        markers: Vec::new(),
        x_clock: false,
    }
    .render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticks(lo: f64, hi: f64, time: bool) -> Vec<f64> {
        ticks_at(lo, hi, tick_step(lo, hi, time))
    }

    fn chart(pts: Vec<(f64, f64)>, x_clock: bool) -> Chart {
        Chart {
            width: 100.0,
            height: 100.0,
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![Series {
                points: pts,
                class: "s1",
                label: "a".into(),
            }],
            markers: vec![],
            x_clock,
        }
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 10.0, false), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let t = ticks(-0.37, 1.2, false);
        assert!(t.first().unwrap() >= &-0.37 && t.last().unwrap() <= &1.2 && t.len() >= 3);
        // Three minutes on a clock axis: whole minutes.
        let t = ticks(100.5e6, 280.5e6, true);
        assert_eq!(t, [120e6, 180e6, 240e6]);
        assert_eq!(clock_ticks(120e6), "00:02");
        assert_eq!(format_tick(-0.0, 1.0), "0");
        assert_eq!(format_tick(-0.001, 0.5), "0");
    }

    #[test]
    fn ticks_are_nice_increasing_and_read_differently() {
        for (lo, hi) in [
            (102.0, 104.5),
            (0.0, 1.0),
            (60.0, 180.0),
            (103.2, 103.9),
            (-0.37, 1.2),
        ] {
            let step = tick_step(lo, hi, false);
            let mantissa = step / 10f64.powf(step.log10().floor());
            assert!(
                [1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-6),
                "step {step} for {lo}..{hi}"
            );
            let t = ticks_at(lo, hi, step);
            assert!(t.len() >= 2, "{lo}..{hi}: {t:?}");
            assert!(t.windows(2).all(|w| w[0] < w[1]), "{t:?}");
            assert!(t[0] >= lo - 1e-9 && t[t.len() - 1] <= hi + 1e-9, "{t:?}");
            let labels: Vec<String> = t.iter().map(|v| format_tick(*v, step)).collect();
            let mut distinct = labels.clone();
            distinct.dedup();
            assert_eq!(distinct, labels, "{lo}..{hi}");
        }
        let labels = |lo, hi| {
            let step = tick_step(lo, hi, false);
            ticks_at(lo, hi, step)
                .iter()
                .map(|v| format_tick(*v, step))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            labels(102.0, 104.5),
            ["102", "102.5", "103", "103.5", "104", "104.5"]
        );
        assert_eq!(
            labels(60.0, 180.0),
            ["60", "80", "100", "120", "140", "160", "180"]
        );
    }

    #[test]
    fn one_point_is_drawn_in_a_widened_range() {
        for x_clock in [false, true] {
            let x = if x_clock { 1.7e15 } else { 3.0 };
            let svg = chart(vec![(x, 72.0)], x_clock).render().into_string();
            assert!(svg.contains("<circle") && !svg.contains("NaN"), "{svg}");
            // In the middle of the plot area, with ticks around it.
            assert!(
                svg.contains(&format!(
                    "cx=\"{:.1}\"",
                    PAD_L + (100.0 - PAD_L - PAD_R) / 2.0
                )),
                "{svg}"
            );
            assert!(
                svg.contains(">72<") && svg.matches("text class=\"tick\"").count() >= 4,
                "{svg}"
            );
        }
        let (lo, hi) = range([72.0, 72.0].into_iter(), false).unwrap();
        assert!(
            (lo - 68.4).abs() < 1e-9 && (hi - 75.6).abs() < 1e-9,
            "{lo}..{hi}"
        );
        assert_eq!(range([0.0].into_iter(), false), Some((-1.0, 1.0)));
        assert_eq!(range([6e8].into_iter(), true), Some((3e8, 9e8)));
    }

    #[test]
    fn empty_and_flat_data_render() {
        let c = |pts| chart(pts, false);
        assert!(c(vec![]).render().into_string().contains("No data"));
        let flat = c(vec![(0.0, 1.0), (1.0, 1.0), (2.0, f64::NAN)])
            .render()
            .into_string();
        assert!(flat.contains("<path") && !flat.contains("NaN"), "{flat}");
    }

    #[test]
    fn the_timeline_draws_each_episode_in_its_lane_and_over_the_trend() {
        let (from, to) = (0i64, 3_600_000_000i64);
        let band = |a: i64, b: i64, href: &str| Band {
            from_us: a,
            to_us: b,
            title: "t".into(),
            href: Some(href.into()),
        };
        let t = Timeline {
            width: 900.0,
            height: 200.0,
            from_us: from,
            to_us: to,
            trend: vec![(0.0, 60.0), (1_800e6, 90.0), (3_540e6, 70.0)],
            lanes: vec![
                Lane {
                    label: "AF".into(),
                    class: "ep-af".into(),
                    // Starts before the range: clipped to its start.
                    bands: vec![band(-600_000_000, 900_000_000, "/af")],
                },
                Lane {
                    label: "Pause".into(),
                    class: "ep-pause".into(),
                    bands: vec![band(1_000_000_000, 1_002_500_000, "/p")],
                },
                Lane {
                    label: "unused".into(),
                    class: "ep-x".into(),
                    bands: vec![],
                },
            ],
        };
        let svg = t.render().into_string();
        assert!(svg.contains("<path class=\"s1\""), "{svg}");
        // Each episode twice (band over the trend, bar in its lane), each linked.
        assert_eq!(svg.matches("href=\"/af\"").count(), 2, "{svg}");
        assert_eq!(svg.matches("href=\"/p\"").count(), 2, "{svg}");
        assert_eq!(svg.matches("class=\"bar ").count(), 2);
        assert!(svg.contains(">AF</text>") && svg.contains(">Pause</text>"));
        assert!(!svg.contains("unused"), "empty lanes are left out");
        // AF from the plot's left edge to a quarter of its width.
        let w = 900.0 - TIMELINE_PAD_L - PAD_R;
        assert!(
            svg.contains(&format!(
                "class=\"bar ep-af\" x=\"{:.1}\" y=\"{}\" width=\"{:.1}\"",
                TIMELINE_PAD_L,
                PAD_T + 200.0 - PAD_T - PAD_B + 22.0 + 2.0,
                w / 4.0
            )),
            "{svg}"
        );
        // The 2.5 s pause is widened to the narrowest bar.
        assert!(
            svg.contains(&format!("width=\"{MIN_BAND_PX:.1}\"")),
            "{svg}"
        );
        assert!(!svg.contains("NaN"));
        let lone = Timeline {
            trend: vec![(1_800e6, 72.0)],
            lanes: vec![],
            ..t
        };
        let svg = lone.render().into_string();
        assert!(
            svg.contains("<circle class=\"point s1\"") && !svg.contains("<path"),
            "{svg}"
        );
        let empty = Timeline {
            trend: vec![],
            lanes: vec![],
            ..lone
        };
        assert!(empty.render().into_string().contains("No data"));
    }

    #[test]
    fn the_strip_is_on_standard_paper_at_a_fixed_scale() {
        let strip = EcgStrip {
            points: (0..3600)
                .map(|i| (-5.0 + i as f64 / 360.0, (i as f64 / 20.0).sin() * 1.2))
                .collect(),
            from_s: -5.0,
            to_s: 5.0,
            beats: vec![
                PeakLabel {
                    t_s: 0.0,
                    text: "V".into(),
                    class: "abnormal",
                    title: "V".into(),
                    href: Some("/b".into()),
                },
                PeakLabel {
                    t_s: 1.0,
                    text: String::new(),
                    class: "normal",
                    title: "normal".into(),
                    href: None,
                },
            ],
        };
        let svg = strip.render().into_string();
        // 10 s at 25 mm/s: 250 mm, 251 vertical lines, 51 of them major.
        let lines = |c: &str| svg.matches(&format!("line class=\"{c}\" x1")).count();
        let (minor, major) = (lines("paper-minor"), lines("paper-major"));
        // −1.5 to 1.5 mV at 10 mm/mV: 31 horizontal lines, 7 major.
        assert_eq!((minor, major), (200 + 24, 51 + 7), "{minor} {major}");
        let width = PAPER_PAD_L + 250.0 * PX_PER_MM + 4.0;
        assert!(svg.contains(&format!("width=\"{width}\"")), "{svg}");
        // One major square (5 mm) is 20 px apart.
        let x = |i: f64| PAPER_PAD_L + i * PX_PER_MM;
        assert!(svg.contains(&format!("line class=\"paper-major\" x1=\"{}\"", x(5.0))));
        assert!(
            svg.contains(">V</text>") && svg.contains("href=\"/b\""),
            "{svg}"
        );
        assert!(svg.contains("line class=\"normal\""), "{svg}");
        assert!(!svg.contains("NaN"));
        let empty = EcgStrip {
            points: vec![],
            from_s: -5.0,
            to_s: 5.0,
            beats: vec![],
        };
        assert!(empty.render().into_string().contains("No raw ECG"));
    }
}
