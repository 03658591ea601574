//! Terminal tables of the load axis: each policy's capacity at its SLO, and the probes behind it.

use crate::capacity::Capacity;
use crate::render::{num, table};
use comfy_table::ContentArrangement;
use ttc_types::record::fmt_rate;

/// The capacity table (one row per policy) and, with `probes`, one row per probe. Empty without capacities.
pub fn capacity_tables(caps: &[Capacity], probes: bool) -> String {
    if caps.is_empty() {
        return String::new();
    }
    let multi_run = caps.iter().any(|c| c.run_id != caps[0].run_id);
    let mut h: Vec<String> = Vec::new();
    if multi_run {
        h.push("run".into());
    }
    let nl = h.len() + 1;
    h.extend(["policy", "capacity r/s", "interval", "tok/s at capacity", "probes", "saturated"].map(String::from));
    let mut t = table(h, nl);
    for c in caps {
        let mut row = Vec::new();
        if multi_run {
            row.push(c.run_id.clone());
        }
        row.extend([
            c.policy.clone(),
            fmt_rate(c.capacity_rps),
            c.label(),
            num(c.output_tok_s, 1),
            c.probes.len().to_string(),
            c.saturated_probes.to_string(),
        ]);
        t.add_row(row);
    }
    let slos: Vec<&str> = caps.iter().map(|c| c.slo.as_str()).fold(Vec::new(), |mut v, s| {
        if !v.contains(&s) {
            v.push(s);
        }
        v
    });
    let mut out = format!(
        "\nCapacity: highest offered rate whose steady state meets the SLO ({})\n{t}\n",
        slos.join("; ")
    );
    if probes {
        let mut p = table(
            ["policy", "offered r/s", "achieved r/s", "n", "TTFT p50", "TTFT p95", "E2E p50", "E2E p95", "verdict"]
                .map(String::from)
                .to_vec(),
            1,
        );
        p.set_content_arrangement(ContentArrangement::Dynamic).set_width(crate::render::COMPACT_WIDTH);
        crate::render::keep_labels_whole(&mut p, 1);
        if let Some(c) = p.column_mut(8) {
            c.set_cell_alignment(comfy_table::CellAlignment::Left); // the verdict is prose
        }
        // A saturation's reason is a sentence: numbered under the table, so that the verdict column stays narrow.
        let mut notes = Vec::new();
        for mut row in crate::capacity::probe_rows(caps) {
            if let Some(why) = row[8].strip_prefix("saturated: ") {
                notes.push(format!("[{}] {} at {} r/s: {why}", notes.len() + 1, row[0], row[1]));
                row[8] = format!("saturated [{}]", notes.len());
            }
            p.add_row(row);
        }
        out.push_str(&format!("Capacity probes (latency in ms, queueing included)\n{p}\n"));
        if !notes.is_empty() {
            out.push_str(&format!("Saturated (no steady state, counted as failing):\n{}\n", notes.join("\n")));
        }
    }
    out
}
