//! `latency.png` for a Jepsen-style run, after Jepsen's `latency-raw` and
//! `rate` plots.
//!
//! The picture has two panels sharing the time axis. The top one scatters
//! every operation at its invocation time against its latency (log scale,
//! milliseconds), coloured by operation kind (`f`) with the marker telling
//! the outcome: a filled dot for ok, a cross for fail, a hollow triangle for
//! info (timed out; the caller passes the timeout as its latency). The bottom
//! one draws, per kind, the ok operations completed in each one-second
//! bucket. Fault windows are translucent vertical bands in both panels, one
//! colour per fault name, and a legend on the right lists the kinds (with
//! their ok / fail / info counts), the outcome markers and the fault names.
//!
//! Text needs a TrueType font: plotters' `ab_glyph` backend draws only fonts
//! registered at runtime, and drawing text with none registered is an error.
//! [`render`] registers the first font found among [`FONT_PATHS`] once per
//! process; if there is none, it renders the same picture without any text
//! rather than failing.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::{Deserialize, Serialize};

/// Width of the rendered picture in pixels.
pub const WIDTH: u32 = 1600;
/// Height of the rendered picture in pixels.
pub const HEIGHT: u32 = 1000;

/// Font files tried in order; the first that exists and parses is used.
/// Debian/Ubuntu's `fonts-dejavu-core` provides the first one.
pub const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

/// The family name the font is registered under with plotters.
const FONT_FAMILY: &str = "raftwatch-plot-sans";

/// Latencies below this (including zero and negative ones) are drawn here:
/// the latency axis is logarithmic.
pub const MIN_LATENCY_MS: f64 = 0.1;

/// Most throughput buckets drawn; longer runs get buckets wider than 1 s.
const MAX_BUCKETS: f64 = 20_000.0;

/// How an operation completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Completed successfully.
    Ok,
    /// Definitely did not take effect.
    Fail,
    /// Indeterminate: timed out or the connection broke.
    Info,
}

/// One operation of the history, as plotted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlotOp {
    /// Invocation time in seconds since the start of the run.
    pub t_s: f64,
    /// Latency in milliseconds; for [`Outcome::Info`] the timeout.
    pub latency_ms: f64,
    /// Operation kind, e.g. `write`, `read-linearizable`, `cas`.
    pub f: String,
    /// How it completed.
    pub outcome: Outcome,
}

/// A period during which a nemesis fault was active.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultWindow {
    /// Start in seconds since the start of the run.
    pub start_s: f64,
    /// End in seconds since the start of the run; a non-finite end means the
    /// fault was still active when the run ended.
    pub end_s: f64,
    /// Fault kind, e.g. `kill`, `pause`, `partition`, `clock`, `membership`.
    pub name: String,
    /// Free-form detail (which nodes, how much skew), drawn in the band when
    /// it fits.
    pub detail: String,
}

/// Everything [`render`] draws.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlotInput {
    /// Title drawn at the top of the picture.
    pub title: String,
    /// Length of the run in seconds (the time axis extends further if an
    /// operation was invoked later).
    pub duration_s: f64,
    /// The operations.
    pub ops: Vec<PlotOp>,
    /// The fault windows.
    pub faults: Vec<FaultWindow>,
}

/// Rendering failed (the drawing backend or writing the PNG).
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Drawing or encoding the picture, or writing the file, failed.
    #[error("rendering {path}: {message}")]
    Draw {
        /// The file being rendered.
        path: PathBuf,
        /// What the drawing backend reported.
        message: String,
    },
}

/// Renders `input` as a [`WIDTH`]×[`HEIGHT`] PNG at `path`.
///
/// Never panics on odd input: empty histories, zero or non-finite duration,
/// zero, negative or NaN latencies and fault windows reaching past the end
/// are all drawn (or skipped) sensibly. Without a usable font the picture is
/// drawn without text.
pub fn render(path: &Path, input: &PlotInput) -> Result<(), PlotError> {
    render_with_font(path, input, default_font())
}

/// The registered font family, registering the first of [`FONT_PATHS`] on
/// the first call.
fn default_font() -> Option<&'static str> {
    static FONT: OnceLock<Option<&'static str>> = OnceLock::new();
    *FONT.get_or_init(|| register_first_font(FONT_PATHS.iter().map(Path::new)))
}

/// Registers the first readable, parseable font among `candidates` with
/// plotters and returns its family name. The font bytes are leaked: plotters
/// keeps a `'static` reference, and this runs once per process.
fn register_first_font<'a>(candidates: impl IntoIterator<Item = &'a Path>) -> Option<&'static str> {
    for candidate in candidates {
        let Ok(bytes) = std::fs::read(candidate) else {
            continue;
        };
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        if plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, bytes).is_ok() {
            return Some(FONT_FAMILY);
        }
    }
    None
}

/// Colour of an operation kind: fixed for the kinds raftwatch-jepsen issues,
/// from a palette (in order of first use) for others.
fn kind_colour(f: &str, unknown_index: &mut usize) -> RGBColor {
    match f {
        "write" => RGBColor(31, 119, 180),
        "read-linearizable" => RGBColor(44, 160, 44),
        "read-stale" => RGBColor(140, 86, 75),
        "cas" => RGBColor(227, 119, 194),
        "silence" => RGBColor(90, 90, 90),
        _ => {
            const PALETTE: [RGBColor; 6] = [
                RGBColor(0, 0, 128),
                RGBColor(128, 128, 0),
                RGBColor(0, 128, 128),
                RGBColor(170, 60, 0),
                RGBColor(100, 0, 160),
                RGBColor(0, 90, 40),
            ];
            let colour = PALETTE[*unknown_index % PALETTE.len()];
            *unknown_index += 1;
            colour
        }
    }
}

/// Colour of a fault band.
fn fault_colour(name: &str, unknown_index: &mut usize) -> RGBColor {
    match name {
        "kill" => RGBColor(214, 39, 40),
        "pause" => RGBColor(255, 150, 0),
        "partition" => RGBColor(148, 103, 189),
        "clock" => RGBColor(23, 190, 207),
        "membership" => RGBColor(188, 189, 34),
        _ => {
            const PALETTE: [RGBColor; 4] = [
                RGBColor(120, 120, 120),
                RGBColor(255, 105, 180),
                RGBColor(70, 130, 180),
                RGBColor(160, 82, 45),
            ];
            let colour = PALETTE[*unknown_index % PALETTE.len()];
            *unknown_index += 1;
            colour
        }
    }
}

/// Opacity of fault bands.
const BAND_ALPHA: f64 = 0.16;

/// Per-kind summary.
#[derive(Debug)]
struct Kind {
    name: String,
    colour: RGBColor,
    ok: usize,
    fail: usize,
    info: usize,
}

/// Per-fault-name summary.
#[derive(Debug)]
struct FaultKind {
    name: String,
    colour: RGBColor,
    windows: usize,
    total_s: f64,
}

/// A fault window clipped to the time axis.
#[derive(Debug)]
struct Band {
    start: f64,
    end: f64,
    fault: usize,
    detail: String,
}

/// A plottable point.
#[derive(Debug, Clone, Copy)]
struct Point {
    t: f64,
    latency: f64,
    kind: usize,
    outcome: Outcome,
}

/// The input cleaned up and summarised for drawing.
#[derive(Debug)]
struct Prepared {
    x_max: f64,
    y_min: f64,
    y_max: f64,
    kinds: Vec<Kind>,
    faults: Vec<FaultKind>,
    bands: Vec<Band>,
    points: Vec<Point>,
    bucket_s: f64,
    /// `rates[kind][bucket]`: ok completions per second.
    rates: Vec<Vec<f64>>,
    rate_max: f64,
    skipped: usize,
}

fn prepare(input: &PlotInput) -> Prepared {
    // Kinds in name order, so colours and legend do not depend on history order.
    let mut kind_index: BTreeMap<&str, usize> = BTreeMap::new();
    for op in &input.ops {
        kind_index.insert(op.f.as_str(), 0);
    }
    let mut unknown = 0;
    let mut kinds = Vec::with_capacity(kind_index.len());
    for (i, (name, index)) in kind_index.iter_mut().enumerate() {
        *index = i;
        kinds.push(Kind {
            name: (*name).to_owned(),
            colour: kind_colour(name, &mut unknown),
            ok: 0,
            fail: 0,
            info: 0,
        });
    }

    let mut x_max = if input.duration_s.is_finite() && input.duration_s > 0.0 {
        input.duration_s
    } else {
        0.0
    };
    let mut points = Vec::with_capacity(input.ops.len());
    let mut skipped = 0;
    let mut lat_min = f64::INFINITY;
    let mut lat_max: f64 = 0.0;
    for op in &input.ops {
        let Some(&kind) = kind_index.get(op.f.as_str()) else {
            continue;
        };
        match op.outcome {
            Outcome::Ok => kinds[kind].ok += 1,
            Outcome::Fail => kinds[kind].fail += 1,
            Outcome::Info => kinds[kind].info += 1,
        }
        if !op.t_s.is_finite()
            || op.t_s < 0.0
            || op.latency_ms.is_nan()
            || op.latency_ms == f64::INFINITY
        {
            skipped += 1;
            continue;
        }
        let latency = op.latency_ms.max(MIN_LATENCY_MS);
        lat_min = lat_min.min(latency);
        lat_max = lat_max.max(latency);
        x_max = x_max.max(op.t_s);
        points.push(Point {
            t: op.t_s,
            latency,
            kind,
            outcome: op.outcome,
        });
    }
    if x_max <= 0.0 {
        x_max = 1.0;
    }

    // Whole decades on the latency axis.
    let (y_min, y_max) = if points.is_empty() {
        (MIN_LATENCY_MS * 10.0, 1000.0)
    } else {
        let lo = 10f64.powf(lat_min.log10().floor()).max(MIN_LATENCY_MS);
        let mut hi = 10f64.powf((lat_max * 1.05).log10().ceil());
        if hi <= lo * 10.0 {
            hi = lo * 100.0;
        }
        (lo, hi)
    };

    let mut fault_index: BTreeMap<&str, usize> = BTreeMap::new();
    for w in &input.faults {
        fault_index.insert(w.name.as_str(), 0);
    }
    let mut unknown = 0;
    let mut faults = Vec::with_capacity(fault_index.len());
    for (i, (name, index)) in fault_index.iter_mut().enumerate() {
        *index = i;
        faults.push(FaultKind {
            name: (*name).to_owned(),
            colour: fault_colour(name, &mut unknown),
            windows: 0,
            total_s: 0.0,
        });
    }
    let mut bands = Vec::with_capacity(input.faults.len());
    for w in &input.faults {
        let Some(&fault) = fault_index.get(w.name.as_str()) else {
            continue;
        };
        if w.start_s.is_nan() {
            continue;
        }
        let start = w.start_s.clamp(0.0, x_max);
        // A missing (NaN or infinite) end: still active when the run ended.
        let end = if w.end_s.is_nan() {
            x_max
        } else {
            w.end_s.clamp(0.0, x_max)
        };
        if end < start {
            continue;
        }
        faults[fault].windows += 1;
        faults[fault].total_s += end - start;
        bands.push(Band {
            start,
            end,
            fault,
            detail: w.detail.clone(),
        });
    }

    let bucket_s = if x_max <= MAX_BUCKETS {
        1.0
    } else {
        x_max / MAX_BUCKETS
    };
    // At most MAX_BUCKETS + 1 by construction.
    let n_buckets = ((x_max / bucket_s).ceil() as usize).max(1);
    let mut rates = vec![Vec::new(); kinds.len()];
    for (k, kind) in kinds.iter().enumerate() {
        if kind.ok > 0 {
            rates[k] = vec![0.0; n_buckets];
        }
    }
    for op in &input.ops {
        if op.outcome != Outcome::Ok || !op.t_s.is_finite() || op.t_s < 0.0 {
            continue;
        }
        let Some(&kind) = kind_index.get(op.f.as_str()) else {
            continue;
        };
        let latency_s = if op.latency_ms.is_finite() {
            op.latency_ms.max(0.0) / 1000.0
        } else {
            0.0
        };
        let completed = op.t_s + latency_s;
        let bucket = (completed / bucket_s).floor();
        // NaN fails the comparison; `as` saturates, and `get_mut` bounds.
        if bucket >= 0.0
            && let Some(slot) = rates[kind].get_mut(bucket as usize)
        {
            *slot += 1.0 / bucket_s;
        }
    }
    let rate_max = rates.iter().flatten().copied().fold(0.0, f64::max);

    Prepared {
        x_max,
        y_min,
        y_max,
        kinds,
        faults,
        bands,
        points,
        bucket_s,
        rates,
        rate_max,
        skipped,
    }
}

/// Text styles, or none when there is no font (then nothing draws text).
#[derive(Debug, Clone, Copy)]
struct Fonts {
    family: Option<&'static str>,
}

impl Fonts {
    fn style(&self, size: f64) -> Option<TextStyle<'static>> {
        self.family
            .map(|family| (family, size).into_font().color(&BLACK))
    }
}

fn draw_err(path: &Path) -> impl Fn(&dyn std::fmt::Display) -> PlotError + '_ {
    move |e| PlotError::Draw {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// [`render`] with the font chosen by the caller (`None`: no text at all).
fn render_with_font(
    path: &Path,
    input: &PlotInput,
    family: Option<&'static str>,
) -> Result<(), PlotError> {
    let err = draw_err(path);
    let fonts = Fonts { family };
    let prepared = prepare(input);

    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;

    let title_h = if fonts.family.is_some() { 64 } else { 10 };
    let (header, body) = root.split_vertically(title_h);
    let (plots, legend) = body.split_horizontally(WIDTH - 300);
    let (top, bottom) = plots.split_vertically((HEIGHT - title_h) * 62 / 100);

    draw_header(&header, input, &prepared, fonts).map_err(|e| err(&e))?;
    draw_latency(&top, &prepared, fonts).map_err(|e| err(&e))?;
    draw_rate(&bottom, &prepared, fonts).map_err(|e| err(&e))?;
    draw_legend(&legend, &prepared, fonts).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type DrawResult<'a> =
    Result<(), DrawingAreaErrorKind<<BitMapBackend<'a> as DrawingBackend>::ErrorType>>;

fn draw_header<'a>(
    area: &Area<'a>,
    input: &PlotInput,
    p: &Prepared,
    fonts: Fonts,
) -> DrawResult<'a> {
    let (Some(title), Some(sub)) = (fonts.style(26.0), fonts.style(15.0)) else {
        return Ok(());
    };
    let (w, _) = area.dim_in_pixel();
    let centre = (w / 2) as i32;
    let title_text = if input.title.is_empty() {
        "raftwatch-jepsen"
    } else {
        input.title.as_str()
    };
    area.draw(&Text::new(
        title_text.to_owned(),
        (centre, 8),
        title.pos(Pos::new(HPos::Center, VPos::Top)),
    ))?;
    let ops = input.ops.len();
    let windows = p.bands.len();
    let mut subtitle = format!(
        "{ops} operations over {:.1} s, {windows} fault window{}",
        p.x_max,
        if windows == 1 { "" } else { "s" }
    );
    if p.skipped > 0 {
        subtitle.push_str(&format!(
            " ({} ops with unplottable time or latency omitted)",
            p.skipped
        ));
    }
    area.draw(&Text::new(
        subtitle,
        (centre, 40),
        sub.color(&RGBColor(80, 80, 80))
            .pos(Pos::new(HPos::Center, VPos::Top)),
    ))?;
    Ok(())
}

/// Shared chart layout for both panels, so their time axes line up.
fn chart_builder<'a, 'b>(
    area: &'b Area<'a>,
    caption: &str,
    fonts: Fonts,
) -> ChartBuilder<'b, 'b, BitMapBackend<'a>> {
    let mut builder = ChartBuilder::on(area);
    builder
        .margin_left(10)
        .margin_right(24)
        .margin_top(6)
        .margin_bottom(6);
    if let Some(style) = fonts.style(19.0) {
        builder
            .caption(caption, style)
            .x_label_area_size(48)
            .y_label_area_size(78);
    } else {
        builder.margin(24);
    }
    builder
}

/// A latency axis label: `0.1 ms`, `20 ms`, `1 s`, `10 s`.
fn format_ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{} s", trim(v / 1000.0))
    } else {
        format!("{} ms", trim(v))
    }
}

/// A number with as few decimals as it needs (at most 3; the log axis puts
/// labels at powers of ten and their small multiples).
fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// A linear axis label with decimals only where the range needs them.
fn format_linear(v: f64, range: f64) -> String {
    if range >= 10.0 {
        format!("{v:.0}")
    } else if range >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn draw_latency<'a>(area: &Area<'a>, p: &Prepared, fonts: Fonts) -> DrawResult<'a> {
    let mut builder = chart_builder(area, "Latency (every operation, by invocation time)", fonts);
    let mut chart = builder.build_cartesian_2d(
        0f64..p.x_max,
        // Nudged outwards so float rounding keeps the end decades' labels.
        (p.y_min * 0.999..p.y_max * 1.001).log_scale(),
    )?;

    let x_format = |v: &f64| format_linear(*v, p.x_max);
    let y_format = |v: &f64| format_ms(*v);
    let decades = ((p.y_max / p.y_min).log10().round() as usize).max(1);
    let mut mesh = chart.configure_mesh();
    mesh.light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(205, 205, 205))
        .x_labels(12)
        // Under ten hints per decade plotters labels only the powers of ten
        // (more would label every 2..9 multiple, unreadably dense).
        .y_labels(decades * 5)
        .x_label_formatter(&x_format)
        .y_label_formatter(&y_format);
    if let Some(style) = fonts.style(15.0) {
        mesh.label_style(style.clone())
            .axis_desc_style(style)
            .x_desc("time since start (s)")
            .y_desc("latency (ms, log scale)");
    }
    mesh.draw()?;

    for band in &p.bands {
        let colour = p.faults[band.fault].colour;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(band.start, p.y_min), (band.end, p.y_max)],
            colour.mix(BAND_ALPHA).filled(),
        )))?;
    }

    // Many operations land on the same pixel; draw each (pixel, kind,
    // outcome) once so 10^5+ operations stay fast.
    let mut seen: HashSet<(i32, i32, usize, Outcome)> = HashSet::new();
    let mut oks = Vec::new();
    let mut fails = Vec::new();
    let mut infos = Vec::new();
    for point in &p.points {
        let (px, py) = chart.backend_coord(&(point.t, point.latency));
        if !seen.insert((px, py, point.kind, point.outcome)) {
            continue;
        }
        match point.outcome {
            Outcome::Ok => oks.push(*point),
            Outcome::Fail => fails.push(*point),
            Outcome::Info => infos.push(*point),
        }
    }
    let colour = |point: &Point| p.kinds[point.kind].colour;
    chart.draw_series(
        oks.iter()
            .map(|pt| Circle::new((pt.t, pt.latency), 2, colour(pt).mix(0.7).filled())),
    )?;
    chart.draw_series(
        infos
            .iter()
            .map(|pt| TriangleMarker::new((pt.t, pt.latency), 5, colour(pt).stroke_width(1))),
    )?;
    chart.draw_series(
        fails
            .iter()
            .map(|pt| Cross::new((pt.t, pt.latency), 4, colour(pt).stroke_width(2))),
    )?;

    if let Some(style) = fonts.style(13.0) {
        for band in &p.bands {
            if band.detail.is_empty() {
                continue;
            }
            let (x0, y0) = chart.backend_coord(&(band.start, p.y_max));
            let (x1, _) = chart.backend_coord(&(band.end, p.y_max));
            let text = &band.detail;
            let (tw, _) = area.estimate_text_size(text, &style)?;
            if (x1 - x0) as u32 > tw + 6 {
                let (ax, ay) = area.get_base_pixel();
                area.draw(&Text::new(
                    text.clone(),
                    (x0 - ax + 3, y0 - ay + 3),
                    style.color(&RGBColor(60, 60, 60)),
                ))?;
            }
        }
        if p.points.is_empty() {
            let (cx, _) = chart.backend_coord(&(p.x_max / 2.0, p.y_max));
            let (_, cy) = chart.backend_coord(&(0.0, (p.y_min * p.y_max).sqrt()));
            let (ax, ay) = area.get_base_pixel();
            area.draw(&Text::new(
                "no operations",
                (cx - ax, cy - ay),
                style.pos(Pos::new(HPos::Center, VPos::Center)),
            ))?;
        }
    }
    Ok(())
}

fn draw_rate<'a>(area: &Area<'a>, p: &Prepared, fonts: Fonts) -> DrawResult<'a> {
    let caption = if p.bucket_s == 1.0 {
        "Throughput (ok operations completed per second, 1 s buckets)".to_owned()
    } else {
        format!(
            "Throughput (ok operations completed per second, {:.1} s buckets)",
            p.bucket_s
        )
    };
    let y_max = (p.rate_max * 1.1).max(1.0);
    let mut builder = chart_builder(area, &caption, fonts);
    let mut chart = builder.build_cartesian_2d(0f64..p.x_max, 0f64..y_max)?;

    let x_format = |v: &f64| format_linear(*v, p.x_max);
    let y_format = |v: &f64| format_linear(*v, y_max);
    let mut mesh = chart.configure_mesh();
    mesh.light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(205, 205, 205))
        .x_labels(12)
        .y_labels(6)
        .x_label_formatter(&x_format)
        .y_label_formatter(&y_format);
    if let Some(style) = fonts.style(15.0) {
        mesh.label_style(style.clone())
            .axis_desc_style(style)
            .x_desc("time since start (s)")
            .y_desc("ok ops/s");
    }
    mesh.draw()?;

    for band in &p.bands {
        let colour = p.faults[band.fault].colour;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(band.start, 0.0), (band.end, y_max)],
            colour.mix(BAND_ALPHA).filled(),
        )))?;
    }
    let bucket_s = p.bucket_s;
    let x_max = p.x_max;
    for (kind, rates) in p.kinds.iter().zip(&p.rates) {
        if rates.is_empty() {
            continue;
        }
        chart.draw_series(LineSeries::new(
            rates
                .iter()
                .enumerate()
                .map(|(i, r)| (((i as f64 + 0.5) * bucket_s).min(x_max), *r)),
            kind.colour.stroke_width(2),
        ))?;
    }
    Ok(())
}

fn draw_legend<'a>(area: &Area<'a>, p: &Prepared, fonts: Fonts) -> DrawResult<'a> {
    let (_, height) = area.dim_in_pixel();
    let bottom = height as i32 - 16;
    let heading = fonts.style(17.0);
    let label = fonts.style(15.0);
    let small = fonts.style(12.5).map(|s| s.color(&RGBColor(90, 90, 90)));
    let x = 14;
    let text_x = x + 34;
    let mut y = 40;

    let write =
        |text: String, at: (i32, i32), style: &Option<TextStyle<'static>>| -> DrawResult<'a> {
            if let Some(style) = style {
                area.draw(&Text::new(
                    text,
                    at,
                    style.pos(Pos::new(HPos::Left, VPos::Center)),
                ))?;
            }
            Ok(())
        };

    write("Operation kinds".to_owned(), (x, y), &heading)?;
    y += 28;
    for kind in &p.kinds {
        if y + 30 > bottom {
            write("…".to_owned(), (x, y), &label)?;
            y += 24;
            break;
        }
        area.draw(&PathElement::new(
            vec![(x, y), (x + 24, y)],
            kind.colour.stroke_width(2),
        ))?;
        area.draw(&Circle::new((x + 12, y), 4, kind.colour.filled()))?;
        write(kind.name.clone(), (text_x, y), &label)?;
        write(
            format!("ok {}  fail {}  info {}", kind.ok, kind.fail, kind.info),
            (text_x, y + 18),
            &small,
        )?;
        y += 44;
    }
    if p.kinds.is_empty() {
        write("(none)".to_owned(), (text_x, y), &label)?;
        y += 30;
    }

    y += 12;
    write("Outcome (latency panel)".to_owned(), (x, y), &heading)?;
    y += 28;
    let grey = RGBColor(70, 70, 70);
    area.draw(&Circle::new((x + 12, y), 3, grey.mix(0.8).filled()))?;
    write("ok".to_owned(), (text_x, y), &label)?;
    y += 24;
    area.draw(&Cross::new((x + 12, y), 4, grey.stroke_width(2)))?;
    write("fail".to_owned(), (text_x, y), &label)?;
    y += 24;
    area.draw(&TriangleMarker::new((x + 12, y), 5, grey.stroke_width(1)))?;
    write(
        "info (timed out, at timeout)".to_owned(),
        (text_x, y),
        &label,
    )?;
    y += 36;

    write("Faults (shaded)".to_owned(), (x, y), &heading)?;
    y += 28;
    for fault in &p.faults {
        if y + 30 > bottom {
            write("…".to_owned(), (x, y), &label)?;
            break;
        }
        area.draw(&Rectangle::new(
            [(x, y - 9), (x + 24, y + 9)],
            fault.colour.mix(BAND_ALPHA * 2.0).filled(),
        ))?;
        area.draw(&Rectangle::new(
            [(x, y - 9), (x + 24, y + 9)],
            fault.colour.mix(0.6),
        ))?;
        write(fault.name.clone(), (text_x, y), &label)?;
        write(
            format!(
                "{} window{}, {:.1} s",
                fault.windows,
                if fault.windows == 1 { "" } else { "s" },
                fault.total_s
            ),
            (text_x, y + 18),
            &small,
        )?;
        y += 44;
    }
    if p.faults.is_empty() {
        write("(none)".to_owned(), (text_x, y), &label)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random sequence (no RNG dependency needed).
    struct Lcg(u64);
    impl Lcg {
        fn next_f64(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn realistic(n_ops: usize, duration_s: f64) -> PlotInput {
        let mut rng = Lcg(42);
        let kinds = ["write", "read-linearizable", "read-stale", "cas", "silence"];
        let faults = vec![
            FaultWindow {
                start_s: 10.0,
                end_s: 18.0,
                name: "partition".into(),
                detail: "{n1,n2} | {n3,n4,n5}".into(),
            },
            FaultWindow {
                start_s: 25.0,
                end_s: 29.0,
                name: "kill".into(),
                detail: "n3".into(),
            },
            FaultWindow {
                start_s: 34.0,
                end_s: 40.0,
                name: "pause".into(),
                detail: "leader".into(),
            },
            FaultWindow {
                start_s: 44.0,
                end_s: 52.0,
                name: "clock".into(),
                detail: "n2 +3s".into(),
            },
            FaultWindow {
                start_s: 55.0,
                end_s: 1e9,
                name: "membership".into(),
                detail: "remove n5".into(),
            },
        ];
        // The windows above are for a 60 s run; stretch them to this one.
        let faults: Vec<FaultWindow> = faults
            .into_iter()
            .map(|w| FaultWindow {
                start_s: w.start_s * duration_s / 60.0,
                end_s: w.end_s * duration_s / 60.0,
                ..w
            })
            .collect();
        let in_fault = |t: f64| {
            faults
                .iter()
                .any(|w| t >= w.start_s && t < w.end_s.min(duration_s))
        };
        let mut ops = Vec::with_capacity(n_ops);
        for i in 0..n_ops {
            let t = duration_s * i as f64 / n_ops as f64;
            let f = kinds[(rng.next_f64() * kinds.len() as f64) as usize % kinds.len()];
            let base = if f == "read-stale" { 0.3 } else { 4.0 };
            let mut latency = base * (1.0 + 8.0 * rng.next_f64().powi(4));
            let roll = rng.next_f64();
            let outcome = if in_fault(t) && roll < 0.25 {
                latency = 5000.0;
                Outcome::Info
            } else if in_fault(t) && roll < 0.35 {
                latency *= 20.0;
                Outcome::Fail
            } else if in_fault(t) && roll < 0.6 {
                latency *= 50.0 * rng.next_f64();
                Outcome::Ok
            } else {
                Outcome::Ok
            };
            ops.push(PlotOp {
                t_s: t,
                latency_ms: latency,
                f: f.to_owned(),
                outcome,
            });
        }
        PlotInput {
            title: "raftwatch-jepsen: register + alerting, 5 nodes, seed 42".into(),
            duration_s,
            ops,
            faults,
        }
    }

    fn assert_png(path: &Path) {
        let bytes = std::fs::read(path).unwrap();
        assert!(bytes.len() > 33, "file too short: {} bytes", bytes.len());
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
        assert_eq!(&bytes[12..16], b"IHDR", "first chunk is IHDR");
        let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((width, height), (WIDTH, HEIGHT));
    }

    #[test]
    fn plot_renders_realistic_run_as_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latency.png");
        render(&path, &realistic(6_000, 60.0)).unwrap();
        assert_png(&path);
    }

    #[test]
    fn plot_renders_empty_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latency.png");
        render(&path, &PlotInput::default()).unwrap();
        assert_png(&path);
    }

    #[test]
    fn plot_renders_without_font() {
        // No font: any attempt to draw text would be an error from plotters,
        // so success shows the font-less path draws none.
        assert_eq!(
            register_first_font([Path::new("/nonexistent/font.ttf")]),
            None
        );
        let dir = tempfile::tempdir().unwrap();
        let not_a_font = dir.path().join("garbage.ttf");
        std::fs::write(&not_a_font, b"not a font").unwrap();
        assert_eq!(register_first_font([not_a_font.as_path()]), None);

        let path = dir.path().join("latency.png");
        render_with_font(&path, &realistic(2_000, 60.0), None).unwrap();
        assert_png(&path);
        let empty = dir.path().join("empty.png");
        render_with_font(&empty, &PlotInput::default(), None).unwrap();
        assert_png(&empty);
    }

    #[test]
    fn plot_text_without_registered_font_is_an_error_not_a_panic() {
        // What the font-less path avoids: plotters (ab_glyph) refuses text in
        // a family nobody registered.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("text.png");
        let root = BitMapBackend::new(&path, (100, 50)).into_drawing_area();
        let style = ("raftwatch-plot-never-registered", 12.0).into_font();
        assert!(root.draw(&Text::new("x", (5, 5), style)).is_err());
    }

    #[test]
    fn plot_survives_degenerate_input() {
        let dir = tempfile::tempdir().unwrap();
        let op = |t_s: f64, latency_ms: f64, outcome| PlotOp {
            t_s,
            latency_ms,
            f: "write".into(),
            outcome,
        };
        let input = PlotInput {
            title: String::new(),
            duration_s: 0.0,
            ops: vec![
                op(0.0, 0.0, Outcome::Ok),
                op(0.0, -3.0, Outcome::Fail),
                op(f64::NAN, 5.0, Outcome::Ok),
                op(1.0, f64::NAN, Outcome::Info),
                op(2.0, f64::INFINITY, Outcome::Info),
                op(-1.0, 1.0, Outcome::Ok),
                op(f64::INFINITY, 1.0, Outcome::Ok),
            ],
            faults: vec![
                FaultWindow {
                    start_s: -5.0,
                    end_s: 100.0,
                    name: "kill".into(),
                    detail: "n1".into(),
                },
                FaultWindow {
                    start_s: 3.0,
                    end_s: 1.0,
                    name: "pause".into(),
                    detail: String::new(),
                },
                FaultWindow {
                    start_s: f64::NAN,
                    end_s: f64::NAN,
                    name: "clock".into(),
                    detail: String::new(),
                },
                FaultWindow {
                    start_s: 0.5,
                    end_s: f64::INFINITY,
                    name: "partition".into(),
                    detail: String::new(),
                },
            ],
        };
        let path = dir.path().join("degenerate.png");
        render(&path, &input).unwrap();
        assert_png(&path);

        // Only zero-latency ops, nothing else.
        let zero = PlotInput {
            title: "zero".into(),
            duration_s: f64::NAN,
            ops: vec![op(0.0, 0.0, Outcome::Ok); 3],
            faults: Vec::new(),
        };
        render(&path, &zero).unwrap();
        assert_png(&path);
    }

    #[test]
    fn plot_prepare_clamps_and_buckets() {
        let input = realistic(1_000, 60.0);
        let p = prepare(&input);
        assert_eq!(p.x_max, 60.0);
        assert!(p.y_min >= MIN_LATENCY_MS);
        assert!(p.bands.iter().all(|b| b.end <= p.x_max && b.start <= b.end));
        assert_eq!(
            p.rates.iter().find(|r| !r.is_empty()).map(Vec::len),
            Some(60)
        );
        let ok_total: usize = p.kinds.iter().map(|k| k.ok).sum();
        let ok_bucketed: f64 = p.rates.iter().flatten().sum();
        // Ops completing after the end of the run fall outside the buckets.
        assert!(ok_bucketed <= ok_total as f64 && ok_bucketed >= ok_total as f64 * 0.95);
    }

    #[test]
    fn plot_renders_200k_ops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.png");
        render(&path, &realistic(200_000, 600.0)).unwrap();
        assert_png(&path);
    }
}
