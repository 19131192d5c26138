//! Self-contained SVG line charts (no dependencies: polylines, axes, a legend) for
//! learning-rate schedules, learning curves, the range test and the run report. One
//! plotting core ([`xy_chart`]) draws them all.

/// One line of a chart: a label and a y value per x = 0, 1, 2, …
pub struct Series<'a> {
    pub label: &'a str,
    pub values: &'a [f64],
}

/// One line of an (x, y) chart, or with `dots` its points alone (a scatter).
pub struct XySeries<'a> {
    pub label: &'a str,
    pub points: Vec<(f64, f64)>,
    pub dots: bool,
}

const COLORS: [&str; 8] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

/// The x axis of an (x, y) chart.
#[derive(Clone, Copy, PartialEq)]
pub enum XAxis {
    /// Linear; the two ends labelled.
    Linear,
    /// Integer steps from the first x (epochs): the ends labelled as integers.
    Index,
    /// log₁₀, each decade labelled.
    Log,
}

/// A chart of `series` over a shared x axis (`x_first` is the label of x = 0).
pub fn line_chart(title: &str, x_label: &str, y_label: &str, x_first: usize, series: &[Series]) -> String {
    let xy: Vec<XySeries> =
        series.iter().map(|s| XySeries { label: s.label, points: s.values.iter().enumerate().map(|(i, &v)| ((x_first + i) as f64, v)).collect(), dots: false }).collect();
    // At least two x positions, so a one-epoch curve still has an axis.
    let span = series.iter().map(|s| s.values.len()).max().unwrap_or(0).max(2) - 1;
    xy_chart(title, x_label, y_label, XAxis::Index, Some((x_first as f64, (x_first + span) as f64)), &xy, &[])
}

/// A chart of (x, y) points over a log₁₀ x axis (decades labelled), with vertical
/// markers at labelled x positions — the learning-rate finder's chart.
pub fn log_x_chart(title: &str, x_label: &str, y_label: &str, points: &[(f64, f64)], marks: &[(&str, f64)]) -> String {
    xy_chart(title, x_label, y_label, XAxis::Log, None, &[XySeries { label: "", points: points.to_vec(), dots: false }], marks)
}

/// `s` safe inside XML/HTML text and attribute values.
pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// An axis label: four decimals, or three significant digits in exponent form for
/// values below 0.01 or from 1e5 (a learning rate of 0.001 reads 1.000e-3, not 0.0010).
fn tick(v: f64) -> String {
    if v != 0.0 && (v.abs() < 0.01 || v.abs() >= 1e5) { format!("{v:.3e}") } else { format!("{v:.4}") }
}

/// The plotting core: lines of (x, y) points (non-finite ones skipped, and x ≤ 0 on a
/// log axis), the x range `x_range` or the data's, vertical labelled markers, and a
/// legend for labelled lines and markers.
pub fn xy_chart(title: &str, x_label: &str, y_label: &str, axis: XAxis, x_range: Option<(f64, f64)>, series: &[XySeries], marks: &[(&str, f64)]) -> String {
    let (w, h, pad, left, top) = (720.0f64, 400.0f64, 40.0f64, 80.0f64, 40.0f64);
    let tx = |x: f64| if axis == XAxis::Log { x.log10() } else { x };
    let usable = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (axis != XAxis::Log || x > 0.0);
    let all = || series.iter().flat_map(|s| s.points.iter().copied()).filter(usable);
    let (mut x0, mut x1) = match x_range {
        Some((a, b)) => (tx(a), tx(b)),
        None => all().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (x, _)| (a.min(tx(x)), b.max(tx(x)))),
    };
    if !x0.is_finite() || x1 - x0 < 1e-12 {
        (x0, x1) = if x0.is_finite() { (x0 - 1.0, x1 + 1.0) } else { (-1.0, 1.0) };
    }
    let (mut lo, mut hi) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (_, y)| (a.min(y), b.max(y)));
    if !lo.is_finite() || hi - lo < 1e-12 * hi.abs().max(1e-30) {
        // A flat line (a constant learning rate): a band of ±10% around it.
        let band = if lo.is_finite() { (0.1 * lo.abs()).max(1e-12) } else { 0.0 };
        (lo, hi) = if lo.is_finite() { (lo - band, hi + band) } else { (0.0, 1.0) };
    }
    let (plot_w, plot_h) = (w - left - pad - 160.0, h - top - pad);
    let sx = |x: f64| left + plot_w * (tx(x) - x0) / (x1 - x0);
    let sy = |y: f64| top + plot_h * (1.0 - (y - lo) / (hi - lo));
    let esc = xml_escape;
    let y0 = top + plot_h;
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{cx}" y="20" text-anchor="middle" font-size="14">{title}</text>
<line x1="{left}" y1="{y0}" x2="{xr}" y2="{y0}" stroke="#444"/>
<line x1="{left}" y1="{top}" x2="{left}" y2="{y0}" stroke="#444"/>
<text x="{ylx}" y="{y0}" text-anchor="end">{lo_text}</text>
<text x="{ylx}" y="{ytop}" text-anchor="end">{hi_text}</text>
<text x="16" y="{my}" text-anchor="middle" transform="rotate(-90 16 {my})">{y_label}</text>
<text x="{cx}" y="{ty2}" text-anchor="middle">{x_label}</text>
"##,
        title = esc(title),
        y_label = esc(y_label),
        x_label = esc(x_label),
        cx = left + plot_w / 2.0,
        xr = left + plot_w,
        ty2 = h - 6.0,
        ylx = left - 6.0,
        ytop = top + 4.0,
        my = top + plot_h / 2.0,
        lo_text = tick(lo),
        hi_text = tick(hi),
    );
    let ty = y0 + 16.0;
    match axis {
        XAxis::Log => {
            for d in (x0.ceil() as i32)..=(x1.floor() as i32) {
                let x = left + plot_w * (d as f64 - x0) / (x1 - x0);
                svg += &format!("<line x1=\"{x:.1}\" y1=\"{y0}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#444\"/>\n<text x=\"{x:.1}\" y=\"{ty}\" text-anchor=\"middle\">1e{d}</text>\n", y0 + 4.0);
            }
        }
        XAxis::Index => {
            svg += &format!("<text x=\"{left}\" y=\"{ty}\" text-anchor=\"middle\">{}</text>\n<text x=\"{}\" y=\"{ty}\" text-anchor=\"middle\">{}</text>\n", x0.round(), left + plot_w, x1.round());
        }
        XAxis::Linear => {
            svg += &format!("<text x=\"{left}\" y=\"{ty}\" text-anchor=\"middle\">{x0:.3}</text>\n<text x=\"{}\" y=\"{ty}\" text-anchor=\"middle\">{x1:.3}</text>\n", left + plot_w);
        }
    }
    let lx = left + plot_w + 16.0;
    let mut legend = 0;
    let mut legend_entry = |svg: &mut String, color: &str, text: &str| {
        let ly = top + 16.0 * legend as f64 + 8.0;
        legend += 1;
        *svg += &format!("<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"3\"/>\n<text x=\"{}\" y=\"{}\">{}</text>\n", lx + 18.0, lx + 24.0, ly + 4.0, esc(text));
    };
    for (k, s) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        if s.dots {
            for &(x, y) in s.points.iter().filter(|p| usable(p)) {
                svg += &format!("<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{color}\" fill-opacity=\"0.7\"/>\n", sx(x), sy(y));
            }
        } else {
            let pts: Vec<String> = s.points.iter().filter(|p| usable(p)).map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y))).collect();
            svg += &format!("<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\n", pts.join(" "));
        }
        if !s.label.is_empty() {
            legend_entry(&mut svg, color, s.label);
        }
    }
    for (k, (label, x)) in marks.iter().enumerate().filter(|(_, (_, x))| x.is_finite() && (axis != XAxis::Log || *x > 0.0)) {
        let (color, px) = (COLORS[(k + series.len()) % COLORS.len()], sx(*x));
        svg += &format!("<line x1=\"{px:.1}\" y1=\"{top}\" x2=\"{px:.1}\" y2=\"{y0}\" stroke=\"{color}\" stroke-dasharray=\"4 3\"/>\n");
        legend_entry(&mut svg, color, &format!("{label} {x:.2e}"));
    }
    svg + "</svg>\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_chart_places_decades_and_marks() {
        let pts: Vec<(f64, f64)> = (0..=40).map(|i| (1e-4 * 10f64.powf(i as f64 / 10.0), 1.0 + i as f64)).collect();
        let svg = log_x_chart("lr <find>", "learning rate", "loss", &pts, &[("valley", 1e-2)]);
        assert!(svg.contains("lr &lt;find&gt;") && svg.contains(">1e-4<") && svg.contains(">1e0<"));
        assert_eq!(svg.matches("<polyline").count(), 1);
        // 1e-2 is halfway along the four decades: x = 80 + 440 / 2.
        assert!(svg.contains("x1=\"300.0\" y1=\"40\""), "{svg}");
    }

    #[test]
    fn chart_has_one_polyline_per_series_within_the_plot() {
        let a = [0.5, 0.7, 0.9];
        let b = [0.4, f64::NAN, 0.8];
        let svg = line_chart("curves <1>", "epoch", "val_accuracy", 1, &[Series { label: "adam", values: &a }, Series { label: "sgd", values: &b }]);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("curves &lt;1&gt;") && svg.contains(">adam<") && svg.contains(">sgd<"));
        // The NaN point is skipped: the second line has two points.
        let second = svg.split("<polyline").nth(2).unwrap();
        let points = second.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(points.split(' ').count(), 2);
        // Every y lies inside the plot area [40, 360].
        for poly in svg.split("points=\"").skip(1) {
            for p in poly.split('"').next().unwrap().split(' ') {
                let y: f64 = p.split(',').nth(1).unwrap().parse().unwrap();
                assert!((40.0..=360.0).contains(&y), "{y}");
            }
        }
    }
}
