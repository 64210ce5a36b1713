//! The soak's PNGs: `soak.png` (stable delivery, server memory, descriptors
//! and sockets, tasks and threads, what the server reports) with the phases
//! marked, and `recovery.png` (the same quantities from the end of the load,
//! relative to their baselines).

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::server::Sample;
use super::SoakReport;
use crate::plot::{font, FONT};

const W: u32 = 1200;
const PANEL_H: u32 = 260;
const COLORS: &[RGBColor] = &[
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];
const C_MARK: RGBColor = RGBColor(0x80, 0x80, 0x80);

/// One line: label and points.
type Line = (String, Vec<(f64, f64)>);

struct Panel {
    caption: String,
    lines: Vec<Line>,
    /// Horizontal reference (value, label).
    hline: Option<(f64, String)>,
}

fn server_line(samples: &[&Sample], label: &str, f: impl Fn(&Sample) -> f64) -> Line {
    (
        label.to_owned(),
        samples.iter().map(|s| (s.t, f(s))).collect(),
    )
}

fn draw(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    text: bool,
    x: std::ops::Range<f64>,
    marks: &[(String, f64)],
    p: &Panel,
) -> Result<()> {
    let err = |e| anyhow!("plot {}: {e:?}", p.caption);
    let ys = p
        .lines
        .iter()
        .flat_map(|l| l.1.iter().map(|q| q.1))
        .chain(p.hline.iter().map(|h| h.0))
        .filter(|v| v.is_finite());
    let (lo, hi) = ys.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo > hi { (0.0, 1.0) } else { (lo, hi) };
    let span = if hi > lo {
        hi - lo
    } else {
        lo.abs().max(1.0) * 0.1
    };
    let y = (lo - span * 0.08)..(hi + span * 0.12);
    let mut b = ChartBuilder::on(area);
    b.margin(6);
    if text {
        b.caption(&p.caption, (FONT, 18))
            .x_label_area_size(24)
            .y_label_area_size(70);
    }
    let mut chart = b.build_cartesian_2d(x.clone(), y.clone()).map_err(err)?;
    let mut mesh = chart.configure_mesh();
    mesh.light_line_style(RGBColor(0xee, 0xee, 0xee));
    if text {
        mesh.label_style((FONT, 13));
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw().map_err(err)?;
    // Phase marks (warm-up, baseline, load, load stops, last client gone):
    // vertical lines, named in the caption of the report.
    for (_, t) in marks {
        let series = LineSeries::new([(*t, y.start), (*t, y.end)], C_MARK.stroke_width(1));
        chart.draw_series(series).map_err(err)?;
    }
    if let Some((v, label)) = &p.hline {
        let a = chart
            .draw_series(LineSeries::new(
                [(x.start, *v), (x.end, *v)],
                C_MARK.stroke_width(1),
            ))
            .map_err(err)?;
        if text {
            a.label(label.clone())
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], C_MARK));
        }
    }
    for (i, (label, pts)) in p.lines.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        let a = chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
            .map_err(err)?;
        if text {
            a.label(label.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], c.stroke_width(2)));
        }
    }
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .label_font((FONT, 13))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

fn page(
    path: &Path,
    title: &str,
    x: std::ops::Range<f64>,
    marks: &[(String, f64)],
    panels: &[Panel],
) -> Result<()> {
    let text = font().is_ok();
    let h = PANEL_H * panels.len() as u32 + 40;
    let root = BitMapBackend::new(path, (W, h)).into_drawing_area();
    let e = |e| anyhow!("plot {}: {e:?}", path.display());
    root.fill(&WHITE).map_err(e)?;
    let body = if text {
        root.titled(title, (FONT, 22)).map_err(e)?
    } else {
        root.margin(12, 0, 0, 0)
    };
    let areas = body.split_evenly((panels.len(), 1));
    for (a, p) in areas.iter().zip(panels) {
        draw(a, text, x.clone(), marks, p)?;
    }
    root.present().map_err(e)?;
    Ok(())
}

fn resource_panels(samples: &[&Sample], baseline: Option<&Sample>, rel: bool) -> Vec<Panel> {
    let base = |f: &dyn Fn(&Sample) -> f64| baseline.map_or(0.0, f);
    let d = |f: fn(&Sample) -> f64| -> Box<dyn Fn(&Sample) -> f64> {
        if rel {
            let b = base(&f);
            Box::new(move |s| f(s) - b)
        } else {
            Box::new(f)
        }
    };
    let suffix = if rel { " − baseline" } else { "" };
    let zero = rel.then(|| (0.0, "baseline".to_owned()));
    vec![
        Panel {
            caption: format!("Server RSS and live heap (MiB{suffix})"),
            lines: vec![
                server_line(samples, "RSS", d(|s| s.rss_mb)),
                server_line(samples, "live heap", d(|s| s.heap_mb)),
            ],
            hline: baseline.map(|b| {
                if rel {
                    (0.05 * b.rss_mb, "+5 % of baseline".to_owned())
                } else {
                    (b.rss_mb, "baseline".to_owned())
                }
            }),
        },
        Panel {
            caption: format!("Open FDs, UDP sockets, threads{suffix}"),
            lines: vec![
                server_line(samples, "FDs", d(|s| s.fds as f64)),
                server_line(samples, "UDP sockets", d(|s| s.udp_sockets as f64)),
                server_line(samples, "threads", d(|s| s.threads as f64)),
            ],
            hline: zero.clone(),
        },
        Panel {
            caption: format!("Tokio tasks{suffix}"),
            lines: vec![server_line(samples, "tasks", d(|s| s.tasks as f64))],
            hline: zero.clone(),
        },
        Panel {
            caption: "What the server reports".into(),
            lines: vec![
                server_line(samples, "rooms", |s| s.rooms as f64),
                server_line(samples, "participants", |s| s.participants as f64),
                server_line(samples, "published tracks", |s| s.published_tracks as f64),
                server_line(samples, "forwarded tracks", |s| s.forwarded_tracks as f64),
                server_line(samples, "PeerConnections", |s| s.peer_connections as f64),
                server_line(samples, "connections", |s| s.connections as f64),
            ],
            hline: None,
        },
    ]
}

/// Writes `soak.png` and `recovery.png` into `dir`; returns warnings.
pub fn render(dir: &Path, report: &SoakReport) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    if let Err(w) = font() {
        warnings.push(w.clone());
    }
    let s = &report.summary;
    let series = &report.series;
    let all: Vec<&Sample> = series.server.iter().collect();
    let t_end = all.last().map_or(1.0, |x| x.t);
    let t0 = all.first().map_or(0.0, |x| x.t);
    let title = format!(
        "rheo-sfu churn soak: {:.0} s, {} rooms × {} + {} stable{}",
        s.load_secs,
        s.params.rooms,
        s.params.room_size,
        s.params.stable,
        s.label
            .as_deref()
            .map(|l| format!(" ({l})"))
            .unwrap_or_default()
    );
    let mut panels = vec![Panel {
        caption: "Delivery to the stable participants (% per second)".into(),
        lines: vec![(
            "delivery".into(),
            series
                .stable
                .iter()
                .filter(|x| {
                    (x.t as f64) >= s.stable.window.0 as f64
                        && (x.t as f64) < s.stable.window.1 as f64
                })
                .filter_map(|x| x.delivery_pct.map(|d| (x.t as f64, d)))
                .collect(),
        )],
        hline: Some((
            s.params.min_delivery * 100.0,
            format!("{} %", s.params.min_delivery * 100.0),
        )),
    }];
    panels.extend(resource_panels(&all, Some(&s.baseline), false));
    page(
        &dir.join("soak.png"),
        &title,
        t0..t_end,
        &series.marks,
        &panels,
    )?;

    let gone = series
        .marks
        .iter()
        .find(|m| m.0 == "last client gone")
        .map_or(t0, |m| m.1);
    let tail: Vec<&Sample> = series
        .server
        .iter()
        .filter(|x| x.t >= gone - 10.0)
        .collect();
    let marks: Vec<(String, f64)> = series
        .marks
        .iter()
        .filter(|m| m.1 >= gone - 10.0)
        .cloned()
        .collect();
    let panels = resource_panels(&tail, Some(&s.baseline), true);
    page(
        &dir.join("recovery.png"),
        "rheo-sfu soak: back to baseline after the last client left (grey line)",
        (gone - 10.0)..t_end.max(gone + 1.0),
        &marks,
        &panels,
    )?;
    Ok(warnings)
}
