//! Charts drawn on the server as SVG: no charting library, no script. Built from numbers and
//! dates only, and coloured by the stylesheet (classes, not inline styles, for the CSP).

use std::fmt::Write;

use berth_meta::browse::DayActivity;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 36.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 10.0;

/// The date (`YYYY-MM-DD`) of a day counted from 1970-01-01.
pub fn date_of(day: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs((day.max(0) as u64) * 86_400);
    humantime::format_rfc3339_seconds(at).to_string()[..10].to_string()
}

/// Pulls and pushes per day as side-by-side bars, with the largest value on the axis.
pub fn activity(days: &[DayActivity]) -> String {
    let max = days
        .iter()
        .map(|d| d.pulls.max(d.pushes))
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = (WIDTH - LEFT) / days.len().max(1) as f64;
    let bar = (slot / 2.0 - 1.0).max(1.0);
    let plot = HEIGHT - BOTTOM - TOP;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title"><title id="chart-title">Pulls and pushes per day, {} to {}</title>"#,
        days.first().map(|d| date_of(d.day)).unwrap_or_default(),
        days.last().map(|d| date_of(d.day)).unwrap_or_default(),
    );
    let base = HEIGHT - BOTTOM;
    let _ = write!(
        svg,
        r#"<line class="axis" x1="{LEFT}" y1="{base}" x2="{WIDTH}" y2="{base}"/><line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base}"/><text x="{x}" y="{y}" text-anchor="end">{max}</text><text x="{x}" y="{base}" text-anchor="end">0</text>"#,
        x = LEFT - 4.0,
        y = TOP + 8.0,
    );
    for (i, day) in days.iter().enumerate() {
        let x = LEFT + i as f64 * slot + 1.0;
        for (offset, value, class, what) in [
            (0.0, day.pulls, "pulls", "pulls"),
            (bar, day.pushes, "pushes", "pushed manifests"),
        ] {
            if value == 0 {
                continue;
            }
            let height = (value as f64 / max as f64 * plot).max(1.0);
            let _ = write!(
                svg,
                r#"<rect class="{class}" x="{:.1}" y="{:.1}" width="{bar:.1}" height="{height:.1}"><title>{}: {value} {what}</title></rect>"#,
                x + offset,
                base - height,
                date_of(day.day),
            );
        }
        // The last day's date, and one a week before it that does not crowd it.
        let last = days.len() - 1;
        if i == last || (i % 7 == 0 && last - i >= 3) {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                x + bar,
                HEIGHT - 6.0,
                &date_of(day.day)[5..],
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_bars() {
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(date_of(20_000), "2024-10-04");
        let svg = activity(&[
            DayActivity {
                day: 20_000,
                pulls: 4,
                pushes: 0,
            },
            DayActivity {
                day: 20_001,
                pulls: 2,
                pushes: 1,
            },
        ]);
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<rect").count(), 3, "{svg}");
        assert!(svg.contains("2024-10-04: 4 pulls"));
        assert!(!svg.contains("style="));
    }
}
