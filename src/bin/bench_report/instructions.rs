//! Instruction counts in the benchmark table: the `≤ 1.0× Linux` targets of
//! the hot paths are decided by the counts of `bench-instructions.md`
//! (written by `cargo bench --bench instructions -- --out FILE`), which are
//! deterministic, not by criterion's wall-clock medians, which on a shared
//! machine move by more than the margin being judged.

use std::path::Path;

/// The file the instructions bench writes, in the report's directory.
pub const FILE: &str = "bench-instructions.md";

/// The target rows of the wall-time table and the operation that decides each.
const TARGETS: [(&str, &str); 3] = [
    ("| Redistribute query ≤ 1.0× Linux, every n |", "query"),
    (
        "| Redistribute query (T moved) ≤ 1.0× Linux, every n |",
        "query_t_moved",
    ),
    (
        "| Redistribute completion ≤ 1.0× Linux, every n |",
        "completion",
    ),
];

/// `md` with the hot-path target rows decided by instruction counts, and the
/// counts' targets appended, when `dir` holds the instructions report.
pub fn amend(md: String, dir: &Path) -> String {
    let Ok(counts) = std::fs::read_to_string(dir.join(FILE)) else {
        return md
            + &format!(
                "\n## Instructions per call\n\nNo `{FILE}` here: the `≤ 1.0× Linux` rows above \
                 are wall-clock only. `cargo bench --bench instructions -- --out plots/{FILE}` \
                 counts them.\n"
            );
    };
    let mut out = String::new();
    for line in md.lines() {
        let decided = TARGETS.iter().find_map(|&(row, op)| {
            let verdict = line.strip_prefix(row)?.trim().trim_end_matches('|').trim();
            let (ratio, by_count) = count_verdict(&counts, op)?;
            Some(format!(
                "{row} {by_count} by instructions (worst {ratio}; wall time: {verdict}) |"
            ))
        });
        out.push_str(decided.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out.push_str(&format!(
        "\n## Instructions per call\n\nThe hot-path targets above are decided by these counts \
         (callgrind, deterministic); every figure is in [`{FILE}`]({FILE}).\n\n"
    ));
    let targets = counts
        .lines()
        .skip_while(|l| !l.starts_with("## Targets"))
        .skip(1)
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| l.starts_with('|'));
    for l in targets {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// The worst ratio and the verdict of `op` in the instructions report's
/// targets (rows "| `op` Redistribute ≤ 1.0× Linux, every n | 0.961× | met |").
fn count_verdict(counts: &str, op: &str) -> Option<(String, String)> {
    let prefix = format!("| `{op}` Redistribute");
    let line = counts.lines().find(|l| l.starts_with(&prefix))?;
    let cells: Vec<&str> = line.split('|').map(str::trim).collect();
    Some(((*cells.get(2)?).to_owned(), (*cells.get(3)?).to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_verdict() {
        let counts = "## Targets\n\n| target | worst | |\n|---|---:|---|\n\
                      | `query_t_moved` Redistribute ≤ 1.0× Linux, every n | 0.961× | met |\n";
        assert_eq!(
            count_verdict(counts, "query_t_moved"),
            Some(("0.961×".to_owned(), "met".to_owned()))
        );
        assert_eq!(count_verdict(counts, "query"), None);
    }
}
