//! Results: one table row per figure on stdout, one JSON file per figure
//! and a summary, all under the output folder (`target/bench`).

use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;
use serde_json::Value;

/// One line of the results table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Which figure, e.g. `1 desired writes, 32 clients`.
    pub figure: String,
    /// The measured value, with its unit and latencies.
    pub value: String,
    /// The same machine's limit, measured in the same run.
    pub limit: String,
    /// value / limit, when they compare.
    pub ratio: Option<f64>,
    /// The target, or `-`.
    pub target: String,
    /// Whether the target is met (`None`: no target).
    pub met: Option<bool>,
}

/// One figure: its table rows and everything measured, for its JSON file.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// File name stem under the output folder.
    pub name: &'static str,
    /// Its table rows.
    pub rows: Vec<Row>,
    /// Every number measured, CPU shares included.
    pub detail: Value,
}

/// `12,345`: a rate rounded to a whole number, thousands separated.
pub fn count(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Writes `figure` to `<out>/<name>.json`.
pub fn write_figure(out: &Path, figure: &Figure) -> anyhow::Result<()> {
    write_json(&out.join(format!("{}.json", figure.name)), figure)
}

/// Writes `value` as pretty JSON to `path`.
pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("write {}", path.display()))
}

/// The results table, as printed and as pasted into `BENCHMARKS.md`.
pub fn table(rows: &[Row]) -> String {
    let header = [
        "figure",
        "value",
        "limit (same run)",
        "ratio",
        "target",
        "met?",
    ];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.figure.clone(),
                r.value.clone(),
                r.limit.clone(),
                r.ratio.map_or("-".into(), |x| format!("{:.0}%", x * 100.0)),
                r.target.clone(),
                match r.met {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => "-".into(),
                },
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut out = line(&header.map(String::from));
    out.push_str(&line(&widths.map(|w| "-".repeat(w))));
    for row in &cells {
        out.push_str(&line(row));
    }
    out
}
