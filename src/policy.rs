//! Allocation policies: how the dirty threshold is divided among bdis.
//!
//! All four compute from the same inputs (completion counts, floors, caps,
//! `T`, global dirty pages; `Lend` also which bdis the caller reports
//! active and the pages each holds) with the arithmetic of [`crate::wb_thresh`]; they differ only
//! where they really differ:
//!
//! | policy | completions counted | pool shared | idle floor |
//! |---|---|---|---|
//! | [`Policy::ClipOnly`] | all | `P·f`, then clipped | no |
//! | [`Policy::Linux`] | up to `max_prop_frac` | `P·f`, then clipped | 6.13+ (switch) |
//! | [`Policy::Redistribute`] | all | water-filled: `min(cap, λ·f·P)` | yes (switch) |
//! | [`Policy::Lend`] | up to `max_prop_frac`, rounded down | water-filled among active bdis | yes (switch) |

/// How the pool is shared.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "fmt", derive(Debug))]
pub enum Policy {
    /// v2.6.24: every completion counted, `wb_thresh = P·f + T·min` clipped
    /// to `T·max`; what the clip removes is allocated to nobody.
    ClipOnly,
    /// Mainline: as `ClipOnly`, but completions past the bdi's
    /// `max_prop_frac` (1/1024 units) are not counted, so its fraction stops
    /// growing at the cap and the others' grow back over a few periods.
    Linux,
    /// Ours: weighted max-min fair water-filling; what a capped bdi cannot
    /// use goes to the others at once.
    #[default]
    Redistribute,
    /// `Redistribute` among the bdis the caller reports active: idle bdis
    /// keep the pages they hold and lend their floors and stale shares,
    /// newcomers share equally what
    /// capped bdis leave, completions count up to the cap
    /// ([`crate::lending`]).
    Lend,
}

impl Policy {
    /// All policies, in the order plots and tables show them.
    pub const ALL: [Policy; 4] = [
        Policy::ClipOnly,
        Policy::Linux,
        Policy::Redistribute,
        Policy::Lend,
    ];

    /// The policy's name as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Policy::ClipOnly => "clip-only",
            Policy::Linux => "linux",
            Policy::Redistribute => "redistribute",
            Policy::Lend => "lend",
        }
    }

    /// The policy as figures and tables title it, with the kernel it
    /// stands for.
    pub fn title(self) -> &'static str {
        match self {
            Policy::ClipOnly => "ClipOnly (2.6.24)",
            Policy::Linux => "Linux (6.13+)",
            Policy::Redistribute => "Redistribute",
            Policy::Lend => "Lend (idle shares lent)",
        }
    }

    /// Parses a name as [`name`](Self::name) prints it, ignoring ASCII case.
    pub fn from_name(s: &str) -> Option<Policy> {
        Policy::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
    }
}

/// What `min_bytes`/`max_bytes` become.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "fmt", derive(Debug))]
pub enum BytesMode {
    /// Kept in pages and resolved against the current `T` at each query.
    #[default]
    Resolve,
    /// Converted to a ratio of `T` once, when set, as Linux does.
    LinuxSnapshot,
}
