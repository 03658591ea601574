//! Small, dependency-free SVG charts for the report: a scatter with a Pareto frontier, a bar chart and a
//! box plot. Self-contained strings (no scripts, no external fonts) so they embed in Markdown and HTML.

use std::fmt::Write;

const W: f64 = 640.0;
const H: f64 = 360.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 56.0;
const PALETTE: &[&str] = &["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// "Nice" axis ticks covering [lo, hi] (steps of 1, 2 or 5 x 10^k; Heckbert, Graphics Gems 1990).
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let (lo, hi) = if (hi - lo).abs() < 1e-12 { (lo - 0.5 * lo.abs().max(1e-3), hi + 0.5 * hi.abs().max(1e-3)) } else { (lo, hi) };
    let raw = (hi - lo) / target.max(1) as f64;
    let exp = raw.log10().floor() as i32;
    // value = units * 10^exp, computed as a division by an exact power of ten so 0.6 prints as 0.6.
    let scale = |units: i64| if exp >= 0 { units as f64 * 10f64.powi(exp) } else { units as f64 / 10f64.powi(-exp) };
    let m = [1i64, 2, 5, 10].into_iter().find(|m| scale(*m) >= raw).unwrap_or(10);
    let first = (lo / scale(m)).floor() as i64;
    let mut ticks = Vec::new();
    for k in first.. {
        let t = scale(k * m);
        ticks.push(t);
        if t >= hi || ticks.len() >= 50 {
            break;
        }
    }
    ticks
}

fn fmt_tick(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

struct Axes {
    x: (f64, f64),
    y: (f64, f64),
}

impl Axes {
    fn px(&self, x: f64) -> f64 {
        LEFT + (x - self.x.0) / (self.x.1 - self.x.0) * (W - LEFT - RIGHT)
    }
    fn py(&self, y: f64) -> f64 {
        H - BOTTOM - (y - self.y.0) / (self.y.1 - self.y.0) * (H - TOP - BOTTOM)
    }
}

fn frame(out: &mut String, title: &str) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" font-family="sans-serif" font-size="11"><rect width="{W}" height="{H}" fill="white"/><text x="{}" y="20" text-anchor="middle" font-size="14" font-weight="bold">{}</text>"#,
        W / 2.0,
        escape(title)
    );
}

/// Grid, ticks and axis labels; returns the axes mapping. `x_ticks = None` for a categorical x axis.
fn axes(out: &mut String, xr: Option<(f64, f64)>, yr: (f64, f64), x_label: &str, y_label: &str) -> Axes {
    let yt = nice_ticks(yr.0, yr.1, 5);
    let y = (*yt.first().unwrap_or(&yr.0), *yt.last().unwrap_or(&yr.1));
    let (xt, x) = match xr {
        Some(xr) => {
            let xt = nice_ticks(xr.0, xr.1, 6);
            let x = (*xt.first().unwrap_or(&xr.0), *xt.last().unwrap_or(&xr.1));
            (xt, x)
        }
        None => (Vec::new(), (0.0, 1.0)),
    };
    let a = Axes { x, y };
    for t in &yt {
        let py = a.py(*t);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            py + 4.0,
            fmt_tick(*t)
        );
    }
    for t in &xt {
        let px = a.px(*t);
        let _ = write!(
            out,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{}" stroke="#eee"/><text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
            H - BOTTOM,
            H - BOTTOM + 16.0,
            fmt_tick(*t)
        );
    }
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" y1="{b}" x2="{r}" y2="{b}" stroke="#333"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{b}" stroke="#333"/><text x="{cx}" y="{xl}" text-anchor="middle">{xlab}</text><text transform="translate(16 {cy}) rotate(-90)" text-anchor="middle">{ylab}</text>"##,
        b = H - BOTTOM,
        r = W - RIGHT,
        cx = (LEFT + W - RIGHT) / 2.0,
        xl = H - 12.0,
        cy = (TOP + H - BOTTOM) / 2.0,
        xlab = escape(x_label),
        ylab = escape(y_label)
    );
    a
}

pub struct ScatterPoint {
    pub label: String,
    pub x: f64,
    pub y: f64,
    pub on_front: bool,
    /// Colour index (series), e.g. the suite.
    pub series: usize,
}

/// Scatter of policies with the Pareto frontier (front points joined in x order, dashed).
pub fn scatter(title: &str, x_label: &str, y_label: &str, points: &[ScatterPoint], series_names: &[String]) -> String {
    let mut out = String::new();
    frame(&mut out, title);
    let pts: Vec<&ScatterPoint> = points.iter().filter(|p| p.x.is_finite() && p.y.is_finite()).collect();
    if pts.is_empty() {
        out.push_str(r#"<text x="320" y="180" text-anchor="middle">no data</text></svg>"#);
        return out;
    }
    let (xmin, xmax) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.x), b.max(p.x)));
    let (ymin, ymax) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.y), b.max(p.y)));
    // 10% margins; a degenerate range (all points equal) gets a visible span around its value.
    let pad = |lo: f64, hi: f64| {
        if hi - lo < 1e-12 {
            return if hi.abs() < 1e-12 { (0.0, 1.0) } else { ((lo - 0.1 * lo.abs()).min(lo), hi + 0.1 * hi.abs()) };
        }
        let d = (hi - lo) * 0.1;
        ((lo - d).max(if lo >= 0.0 { 0.0 } else { f64::NEG_INFINITY }), hi + d)
    };
    let a = axes(&mut out, Some(pad(xmin, xmax)), pad(ymin, ymax), x_label, y_label);
    for s in 0..series_names.len().max(1) {
        let mut front: Vec<&&ScatterPoint> = pts.iter().filter(|p| p.on_front && p.series == s).collect();
        front.sort_by(|p, q| p.x.total_cmp(&q.x));
        if front.len() > 1 {
            let path: Vec<String> = front.iter().map(|p| format!("{:.1},{:.1}", a.px(p.x), a.py(p.y))).collect();
            let _ = write!(out, r#"<polyline points="{}" fill="none" stroke="{}" stroke-dasharray="5 3"/>"#, path.join(" "), color(s));
        }
    }
    // Labels: first free spot (right-above, right-below, left-above, left-below) so close points stay legible.
    let mut placed: Vec<(f64, f64, f64, f64)> = Vec::new();
    for p in &pts {
        let (cx, cy) = (a.px(p.x), a.py(p.y));
        let w = 6.2 * p.label.chars().count() as f64;
        let spots = [(cx + 7.0, cy - 6.0), (cx + 7.0, cy + 15.0), (cx - 7.0 - w, cy - 6.0), (cx - 7.0 - w, cy + 15.0)];
        let free = |&(x, y): &(f64, f64)| placed.iter().all(|&(px, py, pw, ph)| x + w < px || px + pw < x || y < py - ph || py < y - 12.0);
        let (lx, ly) = spots.iter().copied().find(free).unwrap_or(spots[0]);
        placed.push((lx, ly, w, 12.0));
        let fill = if p.on_front { color(p.series) } else { "white" };
        let _ = write!(
            out,
            r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="5" fill="{fill}" stroke="{}" stroke-width="2"><title>{}</title></circle><text x="{lx:.1}" y="{ly:.1}">{}</text>"#,
            color(p.series),
            escape(&format!("{}: x={:.4}, y={:.4}", p.label, p.x, p.y)),
            escape(&p.label)
        );
    }
    legend(&mut out, series_names);
    out.push_str(r##"<text x="630" y="350" text-anchor="end" fill="#666">filled = Pareto-optimal</text></svg>"##);
    out
}

fn legend(out: &mut String, names: &[String]) {
    if names.len() < 2 {
        return;
    }
    for (i, n) in names.iter().enumerate() {
        let y = TOP + 8.0 + i as f64 * 14.0;
        let _ = write!(
            out,
            r#"<rect x="{}" y="{:.1}" width="10" height="10" fill="{}"/><text x="{}" y="{:.1}">{}</text>"#,
            W - RIGHT - 120.0,
            y - 9.0,
            color(i),
            W - RIGHT - 106.0,
            y,
            escape(n)
        );
    }
}

/// One curve of a line chart: points joined in x order; `dashed` for a second statistic of the same series.
pub struct Line {
    pub series: usize,
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

/// Lines over a numeric x axis (latency vs offered load), a legend of `series_names`, an optional horizontal
/// reference line (an SLO bound) and a note under the chart.
pub fn lines(title: &str, x_label: &str, y_label: &str, curves: &[Line], series_names: &[String], hline: Option<f64>, note: &str) -> String {
    let mut out = String::new();
    frame(&mut out, title);
    let pts: Vec<(f64, f64)> =
        curves.iter().flat_map(|c| c.points.iter().copied()).filter(|p| p.0.is_finite() && p.1.is_finite()).collect();
    if pts.is_empty() {
        out.push_str(r#"<text x="320" y="180" text-anchor="middle">no data</text></svg>"#);
        return out;
    }
    let xmax = pts.iter().map(|p| p.0).fold(0.0, f64::max);
    let ymax = pts.iter().map(|p| p.1).chain(hline).fold(0.0, f64::max);
    let a = axes(&mut out, Some((0.0, if xmax > 0.0 { xmax * 1.05 } else { 1.0 })), (0.0, if ymax > 0.0 { ymax * 1.05 } else { 1.0 }), x_label, y_label);
    if let Some(h) = hline {
        let y = a.py(h);
        let _ = write!(out, r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#c00" stroke-dasharray="2 2"/>"##, W - RIGHT);
    }
    for c in curves {
        let mut p: Vec<(f64, f64)> = c.points.iter().copied().filter(|p| p.0.is_finite() && p.1.is_finite()).collect();
        p.sort_by(|a, b| a.0.total_cmp(&b.0));
        let path: Vec<String> = p.iter().map(|&(x, y)| format!("{:.1},{:.1}", a.px(x), a.py(y))).collect();
        let dash = if c.dashed { r#" stroke-dasharray="5 3""# } else { "" };
        let _ = write!(out, r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#, path.join(" "), color(c.series));
        for &(x, y) in &p {
            let _ = write!(out, r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#, a.px(x), a.py(y), color(c.series));
        }
    }
    legend(&mut out, series_names);
    let _ = write!(out, r##"<text x="630" y="350" text-anchor="end" fill="#666">{}</text></svg>"##, escape(note));
    out
}

/// Vertical bars, one per label.
pub fn bars(title: &str, y_label: &str, items: &[(String, f64)]) -> String {
    let mut out = String::new();
    frame(&mut out, title);
    let vals: Vec<f64> = items.iter().map(|i| i.1).filter(|v| v.is_finite()).collect();
    if vals.is_empty() {
        out.push_str(r#"<text x="320" y="180" text-anchor="middle">no data</text></svg>"#);
        return out;
    }
    let max = vals.iter().copied().fold(0.0, f64::max);
    let a = axes(&mut out, None, (0.0, if max > 0.0 { max * 1.05 } else { 1.0 }), "", y_label);
    let slot = (W - LEFT - RIGHT) / items.len() as f64;
    for (i, (label, v)) in items.iter().enumerate() {
        let x = LEFT + slot * i as f64 + slot * 0.15;
        let v = if v.is_finite() { *v } else { 0.0 };
        let (top, base) = (a.py(v), a.py(0.0));
        let _ = write!(
            out,
            r#"<rect x="{x:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}</title></rect><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            slot * 0.7,
            (base - top).max(0.0),
            color(i),
            escape(&format!("{label}: {v:.2}")),
            x + slot * 0.35,
            top - 4.0,
            fmt_tick((v * 10.0).round() / 10.0),
            x + slot * 0.35,
            H - BOTTOM + 16.0,
            escape(label)
        );
    }
    out.push_str("</svg>");
    out
}

/// Box plot per label from sorted values: box p25-p75, line at p50, whiskers p5-p95, dot at p99.
pub fn box_plot(title: &str, y_label: &str, series: &[(String, Vec<f64>)]) -> String {
    let mut out = String::new();
    frame(&mut out, title);
    let all_max = series.iter().filter_map(|(_, v)| v.last()).copied().fold(f64::NEG_INFINITY, f64::max);
    if !all_max.is_finite() {
        out.push_str(r#"<text x="320" y="180" text-anchor="middle">no data</text></svg>"#);
        return out;
    }
    let a = axes(&mut out, None, (0.0, all_max * 1.05), "", y_label);
    let slot = (W - LEFT - RIGHT) / series.len() as f64;
    for (i, (label, v)) in series.iter().enumerate() {
        let cx = LEFT + slot * (i as f64 + 0.5);
        let p = |q| ttc_types::timing::percentile_sorted(v, q);
        let _ = write!(out, r#"<text x="{cx:.1}" y="{:.1}" text-anchor="middle">{}</text>"#, H - BOTTOM + 16.0, escape(label));
        let (Some(p5), Some(p25), Some(p50), Some(p75), Some(p95), Some(p99)) =
            (p(5.0), p(25.0), p(50.0), p(75.0), p(95.0), p(99.0))
        else {
            continue;
        };
        let bw = (slot * 0.4).min(60.0);
        let c = color(i);
        let _ = write!(
            out,
            r##"<g><title>{t}</title><line x1="{cx:.1}" y1="{:.1}" x2="{cx:.1}" y2="{:.1}" stroke="#333"/><rect x="{:.1}" y="{:.1}" width="{bw:.1}" height="{:.1}" fill="{c}" fill-opacity="0.6" stroke="#333"/><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#000" stroke-width="2"/><circle cx="{cx:.1}" cy="{:.1}" r="3" fill="#333"/></g>"##,
            a.py(p95),
            a.py(p5),
            cx - bw / 2.0,
            a.py(p75),
            (a.py(p25) - a.py(p75)).max(1.0),
            cx - bw / 2.0,
            a.py(p50),
            cx + bw / 2.0,
            a.py(p50),
            a.py(p99),
            t = escape(&format!("{label}: p5 {p5:.4}, p25 {p25:.4}, p50 {p50:.4}, p75 {p75:.4}, p95 {p95:.4}, p99 {p99:.4}")),
        );
    }
    out.push_str(r##"<text x="630" y="350" text-anchor="end" fill="#666">box p25-p75, bar p50, whiskers p5-p95, dot p99</text></svg>"##);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice_and_cover_the_range() {
        assert_eq!(nice_ticks(0.0, 1.0, 5), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        let t = nice_ticks(0.13, 2.7, 6);
        assert!(t[0] <= 0.13 && *t.last().unwrap() >= 2.7, "{t:?}");
        assert_eq!(t[1] - t[0], 0.5);
    }

    #[test]
    fn charts_are_well_formed_and_escape_labels() {
        let pts = vec![
            ScatterPoint { label: "a<b".into(), x: 1.0, y: 0.5, on_front: true, series: 0 },
            ScatterPoint { label: "c".into(), x: 2.0, y: 0.4, on_front: false, series: 0 },
        ];
        let s = scatter("t", "x", "y", &pts, &["suite".into()]);
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        assert!(s.contains("a&lt;b") && !s.contains("a<b"));
        assert_eq!(s.matches("<circle").count(), 2);
        let b = bars("t", "tok/s", &[("x".into(), 3.0), ("y".into(), 5.0)]);
        assert_eq!(b.matches("<rect x=").count(), 2);
        let bp = box_plot("t", "s", &[("x".into(), vec![0.1, 0.2, 0.3]), ("empty".into(), vec![])]);
        assert_eq!(bp.matches("<g>").count(), 1);
        assert!(bars("t", "y", &[]).contains("no data"));
    }
}
