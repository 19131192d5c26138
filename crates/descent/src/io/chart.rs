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

#[cfg(test)]
mod tests {
    use super::*;

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
