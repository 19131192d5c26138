//! Self-contained SVG line charts (no dependencies: polylines, axes, a legend) for
//! learning-rate schedules and learning curves.

/// One line of a chart: a label and a y value per x = 0, 1, 2, …
pub struct Series<'a> {
    pub label: &'a str,
    pub values: &'a [f64],
}

const COLORS: [&str; 8] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

/// A chart of `series` over a shared x axis (`x_first` is the label of x = 0).
pub fn line_chart(title: &str, x_label: &str, y_label: &str, x_first: usize, series: &[Series]) -> String {
    let (w, h, pad, left, top) = (720.0f64, 400.0f64, 40.0f64, 80.0f64, 40.0f64);
    let finite = || series.iter().flat_map(|s| s.values.iter().copied()).filter(|v| v.is_finite());
    let (mut lo, mut hi) = (finite().fold(f64::INFINITY, f64::min), finite().fold(f64::NEG_INFINITY, f64::max));
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        (lo, hi) = (lo - 0.5, hi + 0.5);
    }
    let n = series.iter().map(|s| s.values.len()).max().unwrap_or(0).max(2) as f64 - 1.0;
    let (plot_w, plot_h) = (w - left - pad - 160.0, h - top - pad);
    let x = |i: usize| left + plot_w * i as f64 / n;
    let y = |v: f64| top + plot_h * (1.0 - (v - lo) / (hi - lo));
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{cx}" y="20" text-anchor="middle" font-size="14">{title}</text>
<line x1="{left}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#444"/>
<line x1="{left}" y1="{top}" x2="{left}" y2="{y0}" stroke="#444"/>
<text x="{left}" y="{ty}" text-anchor="middle">{x_first}</text>
<text x="{x1}" y="{ty}" text-anchor="middle">{x_last}</text>
<text x="{tx}" y="{y0}" text-anchor="end">{lo:.4}</text>
<text x="{tx}" y="{ytop}" text-anchor="end">{hi:.4}</text>
<text x="16" y="{my}" text-anchor="middle" transform="rotate(-90 16 {my})">{y_label}</text>
<text x="{cx}" y="{ty2}" text-anchor="middle">{x_label}</text>
"##,
        title = esc(title),
        y_label = esc(y_label),
        x_label = esc(x_label),
        cx = left + plot_w / 2.0,
        y0 = top + plot_h,
        x1 = left + plot_w,
        ty = top + plot_h + 16.0,
        ty2 = h - 6.0,
        tx = left - 6.0,
        ytop = top + 4.0,
        my = top + plot_h / 2.0,
        x_last = x_first + n as usize,
    );
    for (k, s) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let pts: Vec<String> =
            s.values.iter().enumerate().filter(|(_, v)| v.is_finite()).map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v))).collect();
        let ly = top + 16.0 * k as f64 + 8.0;
        let lx = left + plot_w + 16.0;
        svg += &format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\n<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"3\"/>\n<text x=\"{}\" y=\"{}\">{}</text>\n",
            pts.join(" "),
            lx + 18.0,
            lx + 24.0,
            ly + 4.0,
            esc(s.label)
        );
    }
    svg + "</svg>\n"
}

/// A chart of (x, y) points over a log₁₀ x axis (decades labelled), with vertical
/// markers at labelled x positions — the learning-rate finder's chart.
pub fn log_x_chart(title: &str, x_label: &str, y_label: &str, points: &[(f64, f64)], marks: &[(&str, f64)]) -> String {
    let (w, h, pad, left, top) = (720.0f64, 400.0f64, 40.0f64, 80.0f64, 40.0f64);
    let pts: Vec<(f64, f64)> = points.iter().copied().filter(|(x, y)| *x > 0.0 && x.is_finite() && y.is_finite()).collect();
    let (mut x0, mut x1) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (x, _)| (a.min(x.log10()), b.max(x.log10())));
    let (mut lo, mut hi) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (_, y)| (a.min(*y), b.max(*y)));
    if !x0.is_finite() || x1 - x0 < 1e-12 {
        (x0, x1) = (x0.min(0.0) - 1.0, x1.max(0.0) + 1.0);
        if !x0.is_finite() {
            (x0, x1) = (-1.0, 1.0);
        }
    }
    if !lo.is_finite() || hi - lo < 1e-12 {
        (lo, hi) = if lo.is_finite() { (lo - 0.5, hi + 0.5) } else { (0.0, 1.0) };
    }
    let (plot_w, plot_h) = (w - left - pad - 160.0, h - top - pad);
    let sx = |x: f64| left + plot_w * (x.log10() - x0) / (x1 - x0);
    let sy = |y: f64| top + plot_h * (1.0 - (y - lo) / (hi - lo));
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let y0 = top + plot_h;
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{cx}" y="20" text-anchor="middle" font-size="14">{title}</text>
<line x1="{left}" y1="{y0}" x2="{xr}" y2="{y0}" stroke="#444"/>
<line x1="{left}" y1="{top}" x2="{left}" y2="{y0}" stroke="#444"/>
<text x="{tx}" y="{y0}" text-anchor="end">{lo:.4}</text>
<text x="{tx}" y="{ytop}" text-anchor="end">{hi:.4}</text>
<text x="16" y="{my}" text-anchor="middle" transform="rotate(-90 16 {my})">{y_label}</text>
<text x="{cx}" y="{ty2}" text-anchor="middle">{x_label}</text>
"##,
        title = esc(title),
        y_label = esc(y_label),
        x_label = esc(x_label),
        cx = left + plot_w / 2.0,
        xr = left + plot_w,
        ty2 = h - 6.0,
        tx = left - 6.0,
        ytop = top + 4.0,
        my = top + plot_h / 2.0,
    );
    for d in (x0.ceil() as i32)..=(x1.floor() as i32) {
        let x = sx(10f64.powi(d));
        svg += &format!("<line x1=\"{x:.1}\" y1=\"{y0}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#444\"/>\n<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">1e{d}</text>\n", y0 + 4.0, y0 + 16.0);
    }
    let line: Vec<String> = pts.iter().map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y))).collect();
    svg += &format!("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>\n", COLORS[0], line.join(" "));
    for (k, (label, x)) in marks.iter().enumerate().filter(|(_, (_, x))| *x > 0.0 && x.is_finite()) {
        let (color, px, ly) = (COLORS[(k + 1) % COLORS.len()], sx(*x), top + 16.0 * k as f64 + 8.0);
        let lx = left + plot_w + 16.0;
        svg += &format!(
            "<line x1=\"{px:.1}\" y1=\"{top}\" x2=\"{px:.1}\" y2=\"{y0}\" stroke=\"{color}\" stroke-dasharray=\"4 3\"/>\n<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"3\"/>\n<text x=\"{}\" y=\"{}\">{} {:.2e}</text>\n",
            lx + 18.0,
            lx + 24.0,
            ly + 4.0,
            esc(label),
            x
        );
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
