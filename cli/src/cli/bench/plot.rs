//! `--plot FILE.svg`: the round-trip latency distribution of shmq and each baseline as
//! percentile curves. x: percentile on a "nines" axis (0, 90, 99, 99.9, ...: x = -log10(1 - q));
//! y: nanoseconds on a log scale.

use std::path::Path;

use plotters::coord::combinators::IntoLogRange;
use plotters::prelude::*;

/// One curve: its name and its (nines, ns) points.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: &'a [(f64, u64)],
}

const COLORS: [RGBColor; 4] =
    [RGBColor(220, 50, 32), RGBColor(0, 90, 181), RGBColor(26, 133, 0), RGBColor(120, 120, 120)];

/// The percentile that `nines` stands for: 0 -> "0", 1 -> "90", 3 -> "99.9".
pub fn percentile_label(nines: f64) -> String {
    if nines <= 0.0 {
        return "0".into();
    }
    let p = 100.0 * (1.0 - 10f64.powf(-nines));
    let decimals = (nines.ceil() as usize).saturating_sub(2);
    format!("{p:.decimals$}")
}

fn ns_label(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.0} µs", ns / 1e3)
    } else {
        format!("{:.0} ms", ns / 1e6)
    }
}

/// Writes the chart to `path`.
pub fn write(path: &Path, title: &str, series: &[Series<'_>]) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("cannot write the plot {}: {e}", path.display());
    let points = || series.iter().flat_map(|s| s.points.iter());
    let x_max = points().map(|p| p.0).fold(1.0, f64::max);
    let y_min = points().map(|p| p.1.max(1)).min().unwrap_or(1) as f64;
    let y_max = points().map(|p| p.1.max(1)).max().unwrap_or(10) as f64;

    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .margin_right(48)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..x_max, (y_min * 0.8..y_max * 1.25).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_labels(x_max.floor() as usize + 1)
        .x_desc("percentile")
        .y_desc("round trip (log scale)")
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| ns_label(*y))
        .draw()
        .map_err(|e| err(&e))?;
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(s.points.iter().map(|&(x, ns)| (x, ns.max(1) as f64)), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(s.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_are_labelled_as_percentiles() {
        assert_eq!(percentile_label(0.0), "0");
        assert_eq!(percentile_label(1.0), "90");
        assert_eq!(percentile_label(2.0), "99");
        assert_eq!(percentile_label(3.0), "99.9");
        assert_eq!(percentile_label(5.0), "99.999");
    }

    #[test]
    fn the_chart_is_an_svg_with_every_series() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.svg");
        let a = [(0.0, 100), (1.0, 150), (2.0, 400), (3.0, 2000)];
        let b = [(0.0, 5000), (1.0, 6000), (2.0, 9000), (3.0, 40000)];
        write(&path, "test", &[Series { name: "shmq", points: &a }, Series { name: "uds", points: &b }]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{}", &svg[..80]);
        for want in ["shmq", "uds", "99.9", "test"] {
            assert!(svg.lines().any(|l| l.trim() == want), "{want} is not a text of the chart");
        }
    }
}
