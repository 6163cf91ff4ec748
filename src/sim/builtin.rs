//! The built-in scenarios, kept as TOML files in `src/sim/scenarios/` so that
//! they double as examples of the format.

use std::vec::Vec;

use super::scenario::Scenario;
use super::scenario_file::ScenarioError;

/// Name and TOML text of every built-in scenario, in presentation order.
pub const BUILTIN: [(&str, &str); 9] = [
    (
        "fuse-strict-beside-ssd",
        include_str!("scenarios/fuse-strict-beside-ssd.toml"),
    ),
    (
        "max-ratio-lowered",
        include_str!("scenarios/max-ratio-lowered.toml"),
    ),
    (
        "fuse-server-stalls",
        include_str!("scenarios/fuse-server-stalls.toml"),
    ),
    (
        "usb-beside-ssd",
        include_str!("scenarios/usb-beside-ssd.toml"),
    ),
    (
        "fifty-fuse-one-disk",
        include_str!("scenarios/fifty-fuse-one-disk.toml"),
    ),
    (
        "idle-min-ratio",
        include_str!("scenarios/idle-min-ratio.toml"),
    ),
    (
        "fine-max-ratio-fuse",
        include_str!("scenarios/fine-max-ratio-fuse.toml"),
    ),
    (
        "idle-system-newcomer",
        include_str!("scenarios/idle-system-newcomer.toml"),
    ),
    ("owner-wakes", include_str!("scenarios/owner-wakes.toml")),
];

/// The built-in scenario called `name`, if there is one.
pub fn builtin(name: &str) -> Option<Result<Scenario, ScenarioError>> {
    BUILTIN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, text)| Scenario::from_toml(text, &std::format!("built-in:{n}")))
}

/// Every built-in scenario, parsed.
pub fn all_builtin() -> Result<Vec<Scenario>, ScenarioError> {
    BUILTIN
        .iter()
        .map(|(n, text)| Scenario::from_toml(text, &std::format!("built-in:{n}")))
        .collect()
}
