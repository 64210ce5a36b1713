//! PNG summary chart for a load-test run, rendered with `plotters`.
//!
//! Text (title, tick labels, legends) needs a TrueType font. Nothing is
//! embedded: a font is loaded at runtime from `$LOADTEST_PLOT_FONT` if set,
//! else from the first file that exists among [`FONT_CANDIDATES`]
//! (Debian/Ubuntu: `apt-get install fonts-dejavu-core`). Without a font the
//! PNG is still written, with curves, axes and grid but no text, and a
//! warning is returned.
//!
//! Cargo.toml:
//! ```toml
//! plotters = { version = "0.3.7", default-features = false, features = ["bitmap_backend", "bitmap_encoder", "line_series", "ab_glyph"] }
//! anyhow = "1"
//! ```

use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Context, Result};
use plotters::chart::DualCoordChartContext;
use plotters::coord::ranged1d::AsRangedCoord;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

/// One point per sample second. Vectors should have the same length as
/// `t_secs`; extra elements are ignored, missing ones are treated as no data.
pub struct Series {
    pub t_secs: Vec<f64>,
    /// % of expected packets received in that second (all receivers), None = no data.
    pub delivery_pct: Vec<Option<f64>>,
    /// One-way forwarding delay percentiles that second.
    pub delay_p50_ms: Vec<Option<f64>>,
    pub delay_p99_ms: Vec<Option<f64>>,
    /// Connected clients that second.
    pub clients: Vec<f64>,
    /// Server process CPU % (100 = one core), when a pid was given.
    pub server_cpu_pct: Option<Vec<Option<f64>>>,
    pub server_rss_mb: Option<Vec<Option<f64>>>,
}

/// Environment variable that may point at a .ttf/.otf file to use for text
/// (replaces the built-in search list).
pub const FONT_ENV: &str = "LOADTEST_PLOT_FONT";

/// Font files tried in order (first existing, parseable one wins).
pub const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", // Debian/Ubuntu fonts-dejavu-core
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",          // Fedora/Arch
    "/usr/share/fonts/TTF/DejaVuSans.ttf",             // Arch (ttf-dejavu)
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf", // Fedora newer
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/noto/NotoSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf", // macOS
    "/Library/Fonts/Arial.ttf",
];

/// Drawing error of the bitmap backend (its error type is not re-exported).
type DrawErr = DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>;

/// Family name the font is registered under in plotters.
pub(crate) const FONT: &str = "sans-serif";

const W: u32 = 1200;
const H: u32 = 900;

const C_DELIVERY: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const C_P50: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);
const C_P99: RGBColor = RGBColor(0xd6, 0x27, 0x28);
const C_CLIENTS: RGBColor = RGBColor(0x94, 0x67, 0xbd);
const C_CPU: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
const C_RSS: RGBColor = RGBColor(0x17, 0xbe, 0xcf);
const C_TARGET: RGBColor = RGBColor(0x80, 0x80, 0x80);

/// Loads and registers a font once per process. `Ok(path)` when text can be
/// drawn, `Err(warning)` otherwise.
pub(crate) fn font() -> &'static std::result::Result<String, String> {
    static FONT_STATE: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    FONT_STATE.get_or_init(|| {
        let mut tried: Vec<String> = Vec::new();
        // An explicitly configured font replaces the built-in search list.
        let env = std::env::var(FONT_ENV).ok().filter(|p| !p.is_empty());
        let candidates: Vec<&str> = match &env {
            Some(p) => vec![p.as_str()],
            None => FONT_CANDIDATES.to_vec(),
        };
        for p in candidates {
            let Ok(bytes) = std::fs::read(p) else {
                tried.push(p.to_string());
                continue;
            };
            // plotters' ab_glyph backend needs &'static data. Leaked at most
            // once per process (guarded by the OnceLock).
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font(FONT, FontStyle::Normal, bytes).is_ok() {
                return Ok(p.to_string());
            }
            tried.push(format!("{p} (not a usable font)"));
        }
        Err(format!(
            "plot: no usable font found (tried {}); chart written without text. \
             Install fonts-dejavu-core or set {FONT_ENV}=/path/to/font.ttf",
            tried.join(", ")
        ))
    })
}

/// One line to draw in a panel.
struct Line<'a> {
    label: &'a str,
    color: RGBColor,
    ys: Vec<Option<f64>>,
}

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

/// Min/max over all finite values of the given lines.
fn min_max<'a>(vals: impl IntoIterator<Item = &'a Option<f64>>) -> Option<(f64, f64)> {
    vals.into_iter()
        .filter_map(|v| finite(*v))
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// Pads a linear range by `frac` of its span; degenerate ranges get a span.
fn pad(lo: f64, hi: f64, frac: f64) -> Range<f64> {
    let span = hi - lo;
    if span <= 0.0 || !span.is_finite() {
        let d = if lo.abs() > 1.0 { lo.abs() * 0.05 } else { 1.0 };
        return (lo - d)..(hi + d);
    }
    (lo - span * frac)..(hi + span * frac)
}

/// Splits a series into runs of consecutive points with data, so gaps
/// (None) show as breaks in the curve.
fn runs(t: &[f64], ys: &[Option<f64>], map: impl Fn(f64) -> f64) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut cur: Vec<(f64, f64)> = Vec::new();
    for (x, y) in t.iter().zip(ys.iter()) {
        match (x.is_finite(), finite(*y)) {
            (true, Some(y)) => cur.push((*x, map(y))),
            _ => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

struct Panel<'a> {
    caption: &'a str,
    lines: Vec<Line<'a>>,
    /// Horizontal dashed reference line (value, label).
    hline: Option<(f64, &'a str)>,
    /// Clamp for log axes (values below are drawn at this value).
    floor: Option<f64>,
    x_desc: Option<&'a str>,
    legend_pos: SeriesLabelPosition,
    /// Secondary (right) y axis: (lines, range).
    secondary: Option<(Vec<Line<'a>>, Range<f64>)>,
}

/// Draws one panel with a given y coordinate (linear or log).
fn draw_panel<YR>(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    text: bool,
    t: &[f64],
    x_range: Range<f64>,
    y_coord: YR,
    p: Panel<'_>,
) -> Result<()>
where
    YR: AsRangedCoord<Value = f64>,
    YR::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let caption = p.caption;
    let (xs, xe) = (x_range.start, x_range.end);
    let x_dec = match xe - xs {
        d if d >= 10.0 => 0,
        d if d >= 1.0 => 1,
        _ => 2,
    };
    let err = |e: DrawErr| anyhow!("plot: drawing {caption:?} panel: {e:?}");
    let mut b = ChartBuilder::on(area);
    b.margin(6)
        .margin_right(if p.secondary.is_some() { 6 } else { 20 });
    if text {
        b.caption(p.caption, (FONT, 17))
            .x_label_area_size(if p.x_desc.is_some() { 38 } else { 22 })
            .y_label_area_size(64);
        if p.secondary.is_some() {
            b.right_y_label_area_size(64);
        }
    }
    // Without a font there are no label areas at all: plotters draws tick
    // labels (even empty ones) through the font and would fail, and some
    // coordinates (log) ignore a zero label count. A frame is drawn instead.
    let chart = b
        .build_cartesian_2d(x_range.clone(), y_coord)
        .map_err(err)?;
    let mut chart = match &p.secondary {
        Some((_, r2)) => chart.set_secondary_coord(x_range.clone(), r2.clone()),
        // Unused secondary axis: keep a single type for both branches.
        None => chart.set_secondary_coord(x_range.clone(), 0.0..1.0),
    };

    let x_fmt = |x: &f64| format!("{x:.x_dec$}");
    {
        let mut mesh = chart.configure_mesh();
        mesh.light_line_style(RGBColor(0xee, 0xee, 0xee))
            .bold_line_style(RGBColor(0xcc, 0xcc, 0xcc))
            .x_labels(12)
            .y_labels(6)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&|y| fmt_num(*y));
        if text {
            mesh.label_style((FONT, 13));
            if let Some(d) = p.x_desc {
                mesh.x_desc(d).axis_desc_style((FONT, 14));
            }
        }
        mesh.draw().map_err(err)?;
    }
    if !text {
        let frame = chart.plotting_area().strip_coord_spec();
        let (w, h) = frame.dim_in_pixel();
        frame
            .draw(&Rectangle::new(
                [(0, 0), (w as i32 - 1, h as i32 - 1)],
                BLACK.stroke_width(1),
            ))
            .map_err(err)?;
    }
    if text && p.secondary.is_some() {
        let mut ax = chart.configure_secondary_axes();
        ax.label_style((FONT, 13))
            .y_labels(6)
            .y_label_formatter(&|y| fmt_num(*y));
        ax.draw().map_err(err)?;
    }

    let floor = p.floor;
    let map = move |y: f64| match floor {
        Some(f) => y.max(f),
        None => y,
    };

    if let Some((v, label)) = p.hline {
        let style = C_TARGET.stroke_width(1);
        let s = chart
            .draw_series(DashedLineSeries::new([(xs, v), (xe, v)], 6, 4, style))
            .map_err(err)?;
        if text {
            s.label(label)
                .legend(move |(x, y)| DashedPathElement::new([(x, y), (x + 20, y)], 4, 3, style));
        }
    }

    for l in &p.lines {
        draw_line(&mut chart, false, t, l, &map, text).map_err(err)?;
    }
    if let Some((lines2, _)) = &p.secondary {
        for l in lines2 {
            draw_line(&mut chart, true, t, l, &|y| y, text).map_err(err)?;
        }
    }

    let n_legend =
        p.lines.len() + p.secondary.as_ref().map_or(0, |s| s.0.len()) + p.hline.iter().count();
    if text && n_legend > 1 {
        chart
            .configure_series_labels()
            .position(p.legend_pos)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(0xbb, 0xbb, 0xbb))
            .label_font((FONT, 13))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

/// Draws a (possibly gapped) line, on the primary or secondary axis.
fn draw_line<'a, 'b, Y>(
    chart: &mut DualCoordChartContext<
        'a,
        BitMapBackend<'b>,
        Cartesian2d<RangedCoordf64, Y>,
        Cartesian2d<RangedCoordf64, RangedCoordf64>,
    >,
    secondary: bool,
    t: &[f64],
    l: &Line<'_>,
    map: &dyn Fn(f64) -> f64,
    text: bool,
) -> std::result::Result<(), DrawErr>
where
    Y: Ranged<ValueType = f64>,
{
    let style = l.color.stroke_width(2);
    let segs = runs(t, &l.ys, map);
    // Empty series carrying the legend entry, so the legend is present even
    // when the line has no data.
    let empty: Vec<(f64, f64)> = Vec::new();
    let anno = if secondary {
        chart.draw_secondary_series(LineSeries::new(empty, style))?
    } else {
        chart.draw_series(LineSeries::new(empty, style))?
    };
    if text {
        let c = l.color;
        anno.label(l.label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    for seg in segs {
        // Isolated points would be invisible as a line: draw a dot.
        let pt = if seg.len() == 1 { 2 } else { 0 };
        let series = LineSeries::new(seg, style).point_size(pt);
        if secondary {
            chart.draw_secondary_series(series)?;
        } else {
            chart.draw_series(series)?;
        }
    }
    Ok(())
}

fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        let s = format!("{v:.1}");
        s.trim_end_matches(".0").to_string()
    } else if a >= 0.1 {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.3}")
    }
}

/// Renders the run summary to `path` (PNG, 1200x900). Returns warnings
/// (e.g. no font found, so the chart has no text).
pub fn render(path: &Path, title: &str, s: &Series) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let text = match font() {
        Ok(_) => true,
        Err(w) => {
            warnings.push(w.clone());
            false
        }
    };

    let n = s.t_secs.len();
    let t = &s.t_secs[..];
    let take = |v: &[Option<f64>]| -> Vec<Option<f64>> {
        (0..n).map(|i| v.get(i).copied().flatten()).collect()
    };

    // Shared x range.
    let x_range = match min_max(t.iter().map(|x| Some(*x)).collect::<Vec<_>>().iter()) {
        Some((lo, hi)) if hi > lo => lo..hi,
        Some((lo, _)) => (lo - 0.5)..(lo + 0.5),
        None => 0.0..1.0,
    };

    let root = BitMapBackend::new(path, (W, H)).into_drawing_area();
    let e = |e: DrawErr| anyhow!("plot: {}: {e:?}", path.display());
    root.fill(&WHITE).map_err(e)?;
    let body = if text {
        root.margin(8, 0, 0, 0)
            .titled(title, (FONT, 24))
            .map_err(e)?
    } else {
        root.margin(12, 0, 0, 0)
    };

    let server = s.server_cpu_pct.is_some() || s.server_rss_mb.is_some();
    let panels = body.split_evenly((if server { 4 } else { 3 }, 1));
    let last = panels.len() - 1;
    let x_desc = |i: usize| (i == last).then_some("time (s)");

    // (1) Delivery %.
    let delivery = take(&s.delivery_pct);
    let y = {
        let (lo, hi) = min_max(&delivery).unwrap_or((100.0, 100.0));
        // Always include 100 and keep 99.9 distinguishable from 100. (98.5
        // rather than 99 also gives plotters 0.5 ticks: with 0.2 steps its
        // float key points drop the 100 label.)
        let (lo, hi) = (lo.min(98.5), hi.max(100.0));
        let span = hi - lo;
        (lo - span * 0.05)..(hi + span * 0.1)
    };
    draw_panel(
        &panels[0],
        text,
        t,
        x_range.clone(),
        y.clone(),
        Panel {
            caption: "Packet delivery (% of expected, all receivers)",
            lines: vec![Line {
                label: "delivery %",
                color: C_DELIVERY,
                ys: delivery,
            }],
            hline: Some((99.9, "99.9 %")),
            floor: None,
            legend_pos: SeriesLabelPosition::LowerLeft,
            x_desc: x_desc(0),
            secondary: None,
        },
    )?;

    // (2) Delay p50 / p99.
    let p50 = take(&s.delay_p50_ms);
    let p99 = take(&s.delay_p99_ms);
    let all = || p50.iter().chain(p99.iter());
    let p50_min_pos = min_max(p50.iter().filter(|v| v.is_some_and(|x| x > 0.0)));
    let p99_max = min_max(&p99).map(|(_, hi)| hi);
    let min_pos = min_max(all().filter(|v| v.is_some_and(|x| x > 0.0))).map(|(lo, _)| lo);
    let use_log = matches!((p50_min_pos, p99_max), (Some((lo, _)), Some(hi)) if hi / lo > 100.0);
    let delay_panel = |caption| Panel {
        caption,
        lines: vec![
            Line {
                label: "p50",
                color: C_P50,
                ys: p50.clone(),
            },
            Line {
                label: "p99",
                color: C_P99,
                ys: p99.clone(),
            },
        ],
        hline: None,
        floor: None,
        legend_pos: SeriesLabelPosition::UpperLeft,
        x_desc: x_desc(1),
        secondary: None,
    };
    if use_log {
        let lo = min_pos.unwrap_or(1.0);
        let hi = min_max(all()).map_or(10.0, |(_, h)| h);
        let mut p = delay_panel("One-way forwarding delay (ms, log scale)");
        p.floor = Some(lo);
        draw_panel(
            &panels[1],
            text,
            t,
            x_range.clone(),
            ((lo / 1.5)..(hi * 1.5)).log_scale(),
            p,
        )?;
    } else {
        let (lo, hi) = min_max(all()).unwrap_or((0.0, 1.0));
        let r = pad(lo.min(0.0), hi, 0.05);
        let r = (lo.min(0.0))..r.end;
        draw_panel(
            &panels[1],
            text,
            t,
            x_range.clone(),
            r,
            delay_panel("One-way forwarding delay (ms)"),
        )?;
    }

    // (3) Clients.
    let clients: Vec<Option<f64>> = (0..n).map(|i| s.clients.get(i).copied()).collect();
    let hi = min_max(&clients).map_or(1.0, |(_, h)| h.max(1.0));
    draw_panel(
        &panels[2],
        text,
        t,
        x_range.clone(),
        0.0..hi * 1.08,
        Panel {
            caption: "Connected clients",
            lines: vec![Line {
                label: "clients",
                color: C_CLIENTS,
                ys: clients,
            }],
            hline: None,
            floor: None,
            legend_pos: SeriesLabelPosition::UpperLeft,
            x_desc: x_desc(2),
            secondary: None,
        },
    )?;

    // (4) Server CPU % (left axis) and RSS MB (right axis).
    if server {
        let cpu = take(s.server_cpu_pct.as_deref().unwrap_or(&[]));
        let rss = take(s.server_rss_mb.as_deref().unwrap_or(&[]));
        let cpu_hi = min_max(&cpu).map_or(100.0, |(_, h)| h.max(1.0));
        let rss_hi = min_max(&rss).map_or(1.0, |(_, h)| h.max(1.0));
        draw_panel(
            &panels[3],
            text,
            t,
            x_range.clone(),
            0.0..cpu_hi * 1.08,
            Panel {
                caption: "Server process: CPU % (left, 100 = one core) / RSS MB (right)",
                lines: vec![Line {
                    label: "CPU %",
                    color: C_CPU,
                    ys: cpu,
                }],
                hline: None,
                floor: None,
                legend_pos: SeriesLabelPosition::UpperLeft,
                x_desc: x_desc(3),
                secondary: Some((
                    vec![Line {
                        label: "RSS MB",
                        color: C_RSS,
                        ys: rss,
                    }],
                    0.0..rss_hi * 1.08,
                )),
            },
        )?;
    }

    root.present()
        .with_context(|| format!("plot: writing {}", path.display()))?;
    Ok(warnings)
}
