//! Reading Prometheus text as a scraper does.

/// The value of `series` (its name and labels exactly as exposed, e.g.
/// `shadowbox_ingest_messages_total{result="applied"}`) in `text`.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().expect("a number"))
    })
}
