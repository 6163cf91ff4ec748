//! `dirtylimit observe` / `crosscheck` against the running kernel (issue 6). std only.
