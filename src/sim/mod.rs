//! Mixed-writer simulator (issue 3). Owned by the simulator work; std only.
