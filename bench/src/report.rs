//! Collected results, the targets they are held against, and their rendering as a Markdown
//! table (printed, and saved with the JSON).

use std::fmt::Write as _;

use serde::Serialize;

use crate::machine::Machine;
use crate::stats::Summary;
use crate::workloads::Params;

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub key: String,
    pub id: String,
    pub workload: String,
    pub metric: String,
    pub unit: String,
    pub better: Better,
    pub berth: Summary,
    pub official: Summary,
    /// berth's median over the official registry's.
    pub ratio: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Limit {
    pub key: String,
    pub what: String,
    pub unit: String,
    pub summary: Summary,
}

#[derive(Debug, Clone, Serialize)]
pub struct Population {
    pub what: String,
    pub count: usize,
    pub berth_s: f64,
    pub official_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub target: String,
    pub measured: String,
    pub met: bool,
    pub gap: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Results {
    pub rows: Vec<Row>,
    pub limits: Vec<Limit>,
    pub population: Vec<Population>,
}

impl Results {
    #[allow(clippy::too_many_arguments)]
    pub fn row(
        &mut self,
        key: &str,
        id: &str,
        workload: &str,
        metric: &str,
        unit: &str,
        better: Better,
        berth: Summary,
        official: Summary,
    ) {
        let ratio = berth.median / official.median;
        self.rows.push(Row {
            key: key.into(),
            id: id.into(),
            workload: workload.into(),
            metric: metric.into(),
            unit: unit.into(),
            better,
            berth,
            official,
            ratio,
        });
    }

    pub fn limit(&mut self, key: &str, what: &str, unit: &str, summary: Summary) {
        self.limits.push(Limit {
            key: key.into(),
            what: what.into(),
            unit: unit.into(),
            summary,
        });
    }

    pub fn population(&mut self, what: &str, count: usize, berth_s: f64, official_s: f64) {
        self.population.push(Population {
            what: what.into(),
            count,
            berth_s,
            official_s,
        });
    }

    fn get(&self, key: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.key == key)
    }

    fn limit_of(&self, key: &str) -> Option<f64> {
        self.limits
            .iter()
            .find(|l| l.key == key)
            .map(|l| l.summary.median)
    }

    /// The targets, for whatever was measured. Shown, never enforced.
    pub fn targets(&self) -> Vec<Target> {
        let mut out = Vec::new();
        let at_least_ratio = |key: &str, what: &str, goal: f64| {
            self.get(key).map(|r| at_least(what, r.ratio, goal, "×"))
        };
        out.extend(at_least_ratio(
            "pull_single",
            "workload 1 pull ≥ 2× official",
            2.0,
        ));
        out.extend(at_least_ratio(
            "pull_concurrent",
            "workload 2 pulls ≥ 2× official",
            2.0,
        ));
        out.extend(at_least_ratio(
            "push_monolithic",
            "monolithic push ≥ 8× official",
            8.0,
        ));
        out.extend(at_least_ratio(
            "push_chunked",
            "chunked push ≥ 5× official",
            5.0,
        ));
        out.extend(at_least_ratio(
            "manifest_get_rps",
            "manifest GET ≥ 3× official requests/s",
            3.0,
        ));
        out.extend(at_least_ratio(
            "blob_head_rps",
            "blob HEAD ≥ 3× official requests/s",
            3.0,
        ));
        if let (Some(r), Some(ceiling)) = (self.get("pull_single"), self.limit_of("sendfile_mb_s"))
        {
            out.push(at_least(
                "workload 1 pull ≥ 85% of the sendfile ceiling",
                r.berth.median / ceiling,
                0.85,
                "",
            ));
        }
        if let (Some(r), Some(sha)) = (self.get("push_monolithic"), self.limit_of("sha256_mb_s")) {
            out.push(at_least(
                "monolithic push ≥ 80% of one core's SHA-256",
                r.berth.median / sha,
                0.80,
                "",
            ));
        }
        let at_most_value = |key: &str, what: &str, limit: f64, unit: &str| {
            self.get(key)
                .map(|r| at_most(what, r.berth.median, limit, unit))
        };
        out.extend(at_most_value(
            "manifest_get_p99",
            "manifest GET p99 ≤ 2 ms",
            2.0,
            "ms",
        ));
        out.extend(at_most_value(
            "blob_head_p99",
            "blob HEAD p99 ≤ 2 ms",
            2.0,
            "ms",
        ));
        // The largest catalog measured (100k in a full run).
        if let Some(r) = self
            .rows
            .iter()
            .filter(|r| r.key.starts_with("catalog_") && r.key.ends_with("_p50"))
            .max_by_key(|r| {
                r.key
                    .trim_start_matches("catalog_")
                    .trim_end_matches("_p50")
                    .parse::<usize>()
                    .unwrap_or(0)
            })
        {
            let n = r
                .key
                .trim_start_matches("catalog_")
                .trim_end_matches("_p50")
                .parse::<usize>()
                .unwrap_or(0);
            out.push(at_most(
                &format!(
                    "catalog page at {} repositories ≤ 20 ms (p50)",
                    crate::workloads::thousands(n)
                ),
                r.berth.median,
                20.0,
                "ms",
            ));
        }
        if let Some(ratio) = self.limit_of("cache_cold_over_direct") {
            out.push(at_most(
                "cold pull through the cache ≤ 1.10× the direct pull",
                ratio,
                1.10,
                "× the direct pull",
            ));
        }
        out.extend(at_most_value("rss_idle", "idle RSS ≤ 15 MB", 15.0, "MB"));
        out.extend(at_most_value(
            "rss_peak_pushes",
            "peak RSS during concurrent pushes ≤ 150 MB",
            150.0,
            "MB",
        ));
        let no_slower = |key: &str, what: &str| {
            self.get(key)
                .map(|r| at_most(what, r.ratio, 1.0, "× official's time"))
        };
        out.extend(no_slower(
            "skopeo_in",
            "skopeo copy in: no slower than official",
        ));
        out.extend(no_slower(
            "skopeo_out",
            "skopeo copy out: no slower than official",
        ));
        out
    }
}

fn at_least(what: &str, value: f64, goal: f64, unit: &str) -> Target {
    let (measured, gap) = if unit.is_empty() {
        (
            format!("{:.0}%", value * 100.0),
            format!("{:+.0} points", (value - goal) * 100.0),
        )
    } else {
        (
            format!("{}{unit}", num(value)),
            if value >= goal {
                format!("{:.2}× above the goal", value / goal)
            } else {
                format!("needs {:.2}× more", goal / value)
            },
        )
    };
    Target {
        target: what.into(),
        measured,
        met: value >= goal,
        gap,
    }
}

fn at_most(what: &str, value: f64, limit: f64, unit: &str) -> Target {
    Target {
        target: what.into(),
        measured: format!("{} {unit}", num(value)),
        met: value <= limit,
        gap: if value <= limit {
            format!("{:.0}% of the limit", value / limit * 100.0)
        } else {
            format!("{:.2}× over", value / limit)
        },
    }
}

/// A number with precision to suit its size.
pub fn num(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        "–".into()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a == 0.0 {
        "0".into()
    } else {
        // Three significant digits: 0.123, 0.00406.
        let decimals = (2 - a.log10().floor() as i32).max(3) as usize;
        format!("{v:.decimals$}")
    }
}

/// `median (min–max)`, or the one sample.
pub fn cell(s: &Summary) -> String {
    if s.samples.len() == 1 {
        num(s.median)
    } else {
        format!("{} ({}–{})", num(s.median), num(s.min), num(s.max))
    }
}

/// The whole run, as saved in JSON.
#[derive(Debug, Serialize)]
pub struct Report {
    pub mode: String,
    pub started_utc: String,
    pub wall_time_s: f64,
    pub machine: Machine,
    pub loadavg_before: String,
    pub loadavg_after: String,
    /// The scratch directory holding both registries' data, and its filesystem.
    pub storage: String,
    pub params: Params,
    pub results: Results,
    pub targets: Vec<Target>,
    /// Lines each server logged at warn level or above during the run.
    pub server_log_lines: Vec<(String, usize)>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(
            md,
            "# berth vs the official registry ({} run, {})\n",
            self.mode, self.started_utc
        );
        let _ = writeln!(
            md,
            "Machine: {}, {} cores, {:.1} GiB, kernel {}, {}. Load average (1/5/15 min) before: {}, after: {}. Wall time: {:.0} s.\n",
            m.cpu_model,
            m.cores,
            m.memory_gib,
            m.kernel,
            m.os,
            self.loadavg_before,
            self.loadavg_after,
            self.wall_time_s
        );
        let _ = writeln!(md, "Registries' data: {}.\n", self.storage);
        let v = &m.versions;
        let _ = writeln!(
            md,
            "Versions: berth {}; {}; {}; {}.\n",
            v.berth, v.docker_registry, v.nginx, v.skopeo
        );
        let p = &self.params;
        let _ = writeln!(
            md,
            "Each figure is the median of {} repetitions (min–max in parentheses), berth and the official registry alternating. MB = 10⁶ bytes. ↑: higher is better, ↓: lower is better.\n",
            p.reps
        );
        // Workload order; the memory rows (8) were measured along the way.
        let mut sorted: Vec<&Row> = self.results.rows.iter().collect();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        let rows: Vec<Vec<String>> = sorted
            .iter()
            .map(|r| {
                let arrow = if r.better == Better::Higher {
                    "↑"
                } else {
                    "↓"
                };
                vec![
                    r.id.clone(),
                    r.workload.clone(),
                    format!("{} ({}) {arrow}", r.metric, r.unit),
                    cell(&r.berth),
                    cell(&r.official),
                    format!("{}×", num(r.ratio)),
                ]
            })
            .collect();
        table(
            &mut md,
            &[
                "#",
                "workload",
                "metric",
                "berth",
                "official",
                "berth/official",
            ],
            &rows,
        );

        if !self.results.limits.is_empty() {
            let _ = writeln!(md, "\nPhysical limits, measured in the same run:\n");
            let rows: Vec<Vec<String>> = self
                .results
                .limits
                .iter()
                .map(|l| vec![l.what.clone(), format!("{} {}", cell(&l.summary), l.unit)])
                .collect();
            table(&mut md, &["limit", "value"], &rows);
        }
        if !self.targets.is_empty() {
            let _ = writeln!(md, "\nTargets (shown, never enforced):\n");
            let rows: Vec<Vec<String>> = self
                .targets
                .iter()
                .map(|t| {
                    vec![
                        t.target.clone(),
                        t.measured.clone(),
                        if t.met { "met".into() } else { "MISSED".into() },
                        t.gap.clone(),
                    ]
                })
                .collect();
            table(&mut md, &["target", "berth", "", "gap"], &rows);
        }
        if !self.results.population.is_empty() {
            let _ = writeln!(
                md,
                "\nPopulating the listings (information, not a target):\n"
            );
            let rows: Vec<Vec<String>> = self
                .results
                .population
                .iter()
                .map(|p| {
                    vec![
                        p.what.clone(),
                        format!(
                            "{} s ({}/s)",
                            num(p.berth_s),
                            num(p.count as f64 / p.berth_s)
                        ),
                        format!(
                            "{} s ({}/s)",
                            num(p.official_s),
                            num(p.count as f64 / p.official_s)
                        ),
                    ]
                })
                .collect();
            table(&mut md, &["population", "berth", "official"], &rows);
        }
        if !self.notes.is_empty() {
            let _ = writeln!(md);
            for note in &self.notes {
                let _ = writeln!(md, "- {note}");
            }
        }
        md
    }
}

/// A Markdown table padded to line up in a terminal too.
fn table(md: &mut String, head: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, &w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    md.push_str(&line(head.iter().map(|h| h.to_string()).collect()));
    md.push_str(&line(widths.iter().map(|&w| "-".repeat(w)).collect()));
    for row in rows {
        md.push_str(&line(row.clone()));
    }
}

/// UTC date and time of a Unix timestamp, `YYYY-MM-DD HH:MM:SS`, without a date crate.
pub fn utc(secs: u64) -> (String, String) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (hh, mm, ss) = (rem / 3600, rem / 60 % 60, rem % 60);
    (
        format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02} UTC"),
        format!("{y:04}{m:02}{d:02}-{hh:02}{mm:02}{ss:02}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0).0, "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_709_210_096).0, "2024-02-29 12:34:56 UTC");
        assert_eq!(utc(1_709_210_096).1, "20240229-123456");
    }

    #[test]
    fn targets_compare_medians() {
        let mut r = Results::default();
        r.row(
            "push_monolithic",
            "3",
            "w",
            "throughput",
            "MB/s",
            Better::Higher,
            Summary::of(&[900.0]),
            Summary::of(&[100.0]),
        );
        r.limit("sha256_mb_s", "sha", "MB/s", Summary::of(&[1000.0]));
        r.row(
            "rss_idle",
            "8",
            "w",
            "idle RSS",
            "MB",
            Better::Lower,
            Summary::of(&[20.0]),
            Summary::of(&[10.0]),
        );
        let t = r.targets();
        let find = |s: &str| t.iter().find(|t| t.target.contains(s)).unwrap();
        assert!(find("8× official").met);
        assert!(find("SHA-256").met);
        assert!(!find("idle RSS").met);
    }
}
